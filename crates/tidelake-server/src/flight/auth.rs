//! Who a Flight SQL caller is: Basic auth (user and password) in the
//! Handshake, answered with a bearer token that every later call sends in
//! its `authorization` header.
//!
//! Checking a user and password is one call, [`Authenticator::verify`], so
//! that the server's users (a users file with SCRAM verifiers) plug in
//! without this module knowing how passwords are kept. Without users
//! ([`AnyUser`]) every name is accepted and a call without an
//! `authorization` header is anonymous; a header that is malformed or names
//! a token this process did not issue is refused (UNAUTHENTICATED) either
//! way.
//!
//! Tokens are random, kept in this process's memory for [`TOKEN_LIFETIME`]:
//! a client authenticates with each server process it talks to (a ticket,
//! in contrast, is valid on any process; see [`super::handle`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// How long a bearer token is valid after its Handshake.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Tokens kept at most; the oldest go first.
const MAX_TOKENS: usize = 100_000;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
}

impl Principal {
    /// The caller of a server without users, who sent no credentials.
    pub fn anonymous() -> Principal {
        Principal {
            user: "anonymous".into(),
        }
    }
}

/// Why credentials were refused (the caller sees only UNAUTHENTICATED).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Checks a user's password.
pub trait Authenticator: Send + Sync + 'static {
    /// The principal of `user` if `password` is theirs.
    fn verify(&self, user: &str, password: &str) -> Result<Principal, AuthError>;

    /// Whether a call without credentials is served (only without users).
    fn allows_anonymous(&self) -> bool;
}

/// No users configured: every user name is accepted, with any password.
#[derive(Debug, Default)]
pub struct AnyUser;

impl Authenticator for AnyUser {
    fn verify(&self, user: &str, _password: &str) -> Result<Principal, AuthError> {
        if user.is_empty() {
            return Err(AuthError("the user name is empty".into()));
        }
        Ok(Principal { user: user.into() })
    }

    fn allows_anonymous(&self) -> bool {
        true
    }
}

/// What an `authorization` header says.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
}

fn unauthenticated(message: impl Into<String>) -> Status {
    Status::unauthenticated(message.into())
}

/// Parses `Basic base64(user:password)` or `Bearer token`.
fn parse_header(value: &str) -> Result<Credentials, Status> {
    let (scheme, rest) = value.trim().split_once(' ').ok_or_else(|| {
        unauthenticated("malformed authorization header: expected 'Basic ...' or 'Bearer ...'")
    })?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Credentials::Bearer(rest.to_string()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(unauthenticated(format!(
            "unsupported authorization scheme '{scheme}': use Basic or Bearer"
        )));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|_| unauthenticated("malformed Basic credentials: not base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| unauthenticated("malformed Basic credentials: not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| unauthenticated("malformed Basic credentials: expected user:password"))?;
    Ok(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// The `authorization` header of a call, if any.
fn header(metadata: &MetadataMap) -> Result<Option<&str>, Status> {
    match metadata.get("authorization") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| unauthenticated("malformed authorization header: not ASCII")),
    }
}

/// Issued tokens and the authenticator that checks passwords.
pub struct Auth {
    authenticator: Box<dyn Authenticator>,
    tokens: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl Auth {
    pub fn new(authenticator: Box<dyn Authenticator>) -> Auth {
        Auth {
            authenticator,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The Handshake: Basic credentials in, a new bearer token out.
    pub fn handshake(&self, metadata: &MetadataMap) -> Result<(Principal, String), Status> {
        let principal = match header(metadata)?.map(parse_header).transpose()? {
            Some(Credentials::Basic { user, password }) => self
                .authenticator
                .verify(&user, &password)
                .map_err(|e| unauthenticated(format!("authentication failed: {e}")))?,
            Some(Credentials::Bearer(token)) => self.token(&token)?,
            None if self.authenticator.allows_anonymous() => Principal::anonymous(),
            None => return Err(unauthenticated("a user and password are required")),
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (_, issued)| now.duration_since(*issued) < TOKEN_LIFETIME);
        if tokens.len() >= MAX_TOKENS {
            if let Some(oldest) = tokens
                .iter()
                .min_by_key(|(_, (_, issued))| *issued)
                .map(|(k, _)| k.clone())
            {
                tokens.remove(&oldest);
            }
        }
        tokens.insert(token.clone(), (principal.clone(), now));
        Ok((principal, token))
    }

    fn token(&self, token: &str) -> Result<Principal, Status> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match tokens.get(token) {
            Some((principal, issued)) if issued.elapsed() < TOKEN_LIFETIME => Ok(principal.clone()),
            Some(_) => Err(unauthenticated(
                "the bearer token has expired: log in again",
            )),
            None => Err(unauthenticated(
                "invalid bearer token (tokens are valid on the server process that issued them)",
            )),
        }
    }

    /// The caller of any other call.
    pub fn principal(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        match header(metadata)?.map(parse_header).transpose()? {
            Some(Credentials::Bearer(token)) => self.token(&token),
            Some(Credentials::Basic { user, password }) => self
                .authenticator
                .verify(&user, &password)
                .map_err(|e| unauthenticated(format!("authentication failed: {e}"))),
            None if self.authenticator.allows_anonymous() => Ok(Principal::anonymous()),
            None => Err(unauthenticated(
                "authenticate first: Handshake with Basic credentials, then send the bearer token",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct OnlyAda;

    impl Authenticator for OnlyAda {
        fn verify(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
            if user == "ada" && password == "secret" {
                Ok(Principal { user: user.into() })
            } else {
                Err(AuthError("wrong user or password".into()))
            }
        }

        fn allows_anonymous(&self) -> bool {
            false
        }
    }

    fn with_header(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    fn basic(user_password: &str) -> MetadataMap {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        with_header(&format!("Basic {encoded}"))
    }

    #[test]
    fn handshake_issues_a_token_that_later_calls_use() {
        let auth = Auth::new(Box::new(OnlyAda));
        let (principal, token) = auth.handshake(&basic("ada:secret")).unwrap();
        assert_eq!(principal.user, "ada");
        let again = auth
            .principal(&with_header(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(again, principal);
    }

    #[test]
    fn wrong_passwords_tokens_and_headers_are_unauthenticated() {
        let auth = Auth::new(Box::new(OnlyAda));
        for metadata in [
            basic("ada:wrong"),
            basic("nobody"),
            with_header("Bearer made-up"),
            with_header("Garbage"),
            with_header("Basic !!!"),
            MetadataMap::new(),
        ] {
            let e = auth.principal(&metadata).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        }
        assert!(auth.handshake(&basic("ada:wrong")).is_err());
    }

    #[test]
    fn without_users_anyone_is_served_but_bad_headers_are_not() {
        let auth = Auth::new(Box::new(AnyUser));
        assert_eq!(
            auth.principal(&MetadataMap::new()).unwrap(),
            Principal::anonymous()
        );
        assert_eq!(auth.handshake(&basic("bob:x")).unwrap().0.user, "bob");
        assert!(auth.principal(&with_header("Bearer nope")).is_err());
        assert!(auth.principal(&with_header("Token abc")).is_err());
    }
}
