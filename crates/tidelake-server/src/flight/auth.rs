//! Who a Flight SQL caller is: Basic auth (user and password) in the
//! Handshake, answered with a signed bearer token that every later call
//! sends in its `authorization` header.
//!
//! Passwords are checked by an [`Authenticator`]: [`UsersAuthenticator`]
//! against the users file's SCRAM-SHA-256 verifiers (the server uses it
//! whenever it has users), [`AnyUser`] without users, where every name is
//! accepted with any password and a call without credentials is anonymous,
//! as PostgreSQL and HTTP trust every client then. Either way a header that
//! is malformed, or a token that does not verify, is refused
//! (UNAUTHENTICATED): a client that sends credentials learns they are wrong.
//!
//! Tokens are self-contained ([`Tokens`]): `tl1.<claims>.<signature>`, the
//! claims (user, role, databases, issued and expiry times, a fingerprint of
//! the user's password verifier) as base64url JSON, signed with
//! HMAC-SHA-256 under a key derived from the server's token secret. Any
//! server process with the same secret accepts them, so a client may log in
//! at one process and call another. A token is refused once it expires, and
//! when the user it names is gone from the users file, has another role or
//! databases, or another password (the fingerprint differs): changing a
//! user revokes their tokens; rotating the secret revokes all of them.
//! Where the secret comes from is the composition root's choice (the users
//! file's `[server] token-secret`, or `--token-secret-file`; see
//! docs/server.md); without one, a random key of this process is used and
//! its tokens are valid here only.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tonic::metadata::MetadataMap;
use tonic::Status;

pub use crate::users::Principal;
use crate::users::{Role, Users};

/// How long a bearer token is valid after its Handshake, by default.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The first part of every token: its format's version.
const TOKEN_VERSION: &str = "tl1";

/// What the signing key is derived for, so that the same secret could sign
/// other things without one signature standing for another.
const KEY_CONTEXT: &[u8] = b"tidelake flight sql bearer token v1";

/// The longest `authorization` value looked at (a token is a few hundred
/// bytes; a bigger one is not ours).
const MAX_HEADER: usize = 8 * 1024;

/// Why credentials were refused (the caller sees UNAUTHENTICATED).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// What a token is issued for and checked against: the principal, and
/// bytes that change when the user's password does (the verifier; empty
/// without users).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub principal: Principal,
    pub credential: Vec<u8>,
}

/// Checks users' passwords and says what each user may do now.
pub trait Authenticator: Send + Sync + 'static {
    /// The grant of `user` if `password` is theirs.
    fn verify(&self, user: &str, password: &str) -> Result<Grant, AuthError>;

    /// The grant of `user` now, without a password (to check a token).
    fn grant(&self, user: &str) -> Result<Grant, AuthError>;

    /// Whether a call without credentials is served (only without users).
    fn allows_anonymous(&self) -> bool;
}

/// No users configured: every user name is accepted, with any password,
/// and trusted (as PostgreSQL and HTTP trust every client without users).
#[derive(Debug, Default)]
pub struct AnyUser;

impl Authenticator for AnyUser {
    fn verify(&self, user: &str, _password: &str) -> Result<Grant, AuthError> {
        self.grant(user)
    }

    fn grant(&self, user: &str) -> Result<Grant, AuthError> {
        if user.is_empty() {
            return Err(AuthError("the user name is empty".into()));
        }
        Ok(Grant {
            principal: Principal::trusted(user),
            credential: Vec::new(),
        })
    }

    fn allows_anonymous(&self) -> bool {
        true
    }
}

/// The users of the users file, with their SCRAM-SHA-256 verifiers.
#[derive(Debug)]
pub struct UsersAuthenticator(pub Arc<Users>);

impl Authenticator for UsersAuthenticator {
    fn verify(&self, user: &str, password: &str) -> Result<Grant, AuthError> {
        let principal = self
            .0
            .verify_password(user, password)
            .map_err(|e| AuthError(e.to_string()))?;
        let credential = self.credential(user);
        Ok(Grant {
            principal,
            credential,
        })
    }

    fn grant(&self, user: &str) -> Result<Grant, AuthError> {
        let principal = self.0.principal(user).ok_or_else(|| {
            AuthError(format!(
                "the token's user \"{user}\" is not in the users file: log in again"
            ))
        })?;
        Ok(Grant {
            principal,
            credential: self.credential(user),
        })
    }

    fn allows_anonymous(&self) -> bool {
        false
    }
}

impl UsersAuthenticator {
    fn credential(&self, user: &str) -> Vec<u8> {
        self.0
            .verifier(user)
            .map(|v| v.to_string().into_bytes())
            .unwrap_or_default()
    }
}

/// What a token says (short names keep it small).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    /// The user.
    u: String,
    /// Their role.
    r: Role,
    /// Their databases (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    d: Vec<String>,
    /// Issued at, Unix seconds.
    iat: u64,
    /// Expires at, Unix seconds.
    exp: u64,
    /// A keyed fingerprint of the user's password verifier.
    g: String,
}

/// Signs and checks bearer tokens with one key.
#[derive(Clone)]
pub struct Tokens {
    key: [u8; 32],
    lifetime: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this never fails.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Tokens {
    /// Tokens signed under a key derived from `secret`: every process
    /// with the same secret accepts the others' tokens.
    pub fn new(secret: &[u8], lifetime: Duration) -> Tokens {
        let mut m = mac(secret);
        m.update(KEY_CONTEXT);
        Tokens {
            key: m.finalize().into_bytes().into(),
            lifetime,
        }
    }

    /// Tokens under a random key: valid on this process only.
    pub fn random(lifetime: Duration) -> Tokens {
        Tokens::new(&crate::users::random_secret(), lifetime)
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn fingerprint(&self, credential: &[u8]) -> String {
        let mut m = mac(&self.key);
        m.update(b"grant\0");
        m.update(credential);
        let bytes = m.finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(&bytes[..16])
    }

    fn sign(&self, payload: &str) -> Vec<u8> {
        let mut m = mac(&self.key);
        m.update(TOKEN_VERSION.as_bytes());
        m.update(b".");
        m.update(payload.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// A token for `grant`, issued at `now`, valid for the lifetime.
    pub fn issue(&self, grant: &Grant, now: SystemTime) -> String {
        let iat = unix_seconds(now);
        let claims = Claims {
            u: grant.principal.name.clone(),
            r: grant.principal.role,
            d: grant.principal.databases.clone(),
            iat,
            exp: iat.saturating_add(self.lifetime.as_secs().max(1)),
            g: self.fingerprint(&grant.credential),
        };
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signature = URL_SAFE_NO_PAD.encode(self.sign(&payload));
        format!("{TOKEN_VERSION}.{payload}.{signature}")
    }

    /// The claims of a well-formed token with a valid signature.
    fn open(&self, token: &str) -> Result<Claims, AuthError> {
        let invalid = |why: &str| AuthError(format!("invalid bearer token: {why}"));
        let mut parts = token.split('.');
        let (Some(version), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a Tidelake token"));
        };
        if version != TOKEN_VERSION {
            return Err(invalid("not a Tidelake token"));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| invalid("malformed signature"))?;
        let mut m = mac(&self.key);
        m.update(TOKEN_VERSION.as_bytes());
        m.update(b".");
        m.update(payload.as_bytes());
        // Constant-time comparison.
        m.verify_slice(&signature).map_err(|_| {
            invalid("wrong signature (altered, or signed with another secret: servers that share tokens need the same token secret)")
        })?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| invalid("malformed claims"))?;
        serde_json::from_slice(&json).map_err(|_| invalid("malformed claims"))
    }

    /// The principal of `token` at `now`: signed with this key, not
    /// expired, and its user's grant (from `authenticator`) unchanged.
    pub fn verify(
        &self,
        token: &str,
        authenticator: &dyn Authenticator,
        now: SystemTime,
    ) -> Result<Principal, AuthError> {
        let claims = self.open(token)?;
        if unix_seconds(now) >= claims.exp {
            return Err(AuthError(
                "the bearer token has expired: log in again".into(),
            ));
        }
        let grant = authenticator.grant(&claims.u)?;
        let p = &grant.principal;
        // Compared in constant time: the fingerprint is keyed, but equal
        // prefixes should tell nothing anyway.
        let same_password = {
            let ours = self.fingerprint(&grant.credential);
            ours.len() == claims.g.len()
                && ours
                    .bytes()
                    .zip(claims.g.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        };
        if !same_password || p.role != claims.r || p.databases != claims.d {
            return Err(AuthError(format!(
                "the password or the rights of user \"{}\" changed since the token was issued: log in again",
                claims.u
            )));
        }
        Ok(grant.principal)
    }
}

/// Standard base64, with or without padding.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What an `authorization` header says.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
}

/// An UNAUTHENTICATED status, counted and logged.
fn unauthenticated(message: impl Into<String>) -> Status {
    let message = message.into();
    crate::telemetry::refused("flight", "auth");
    tracing::info!("Flight SQL authentication refused: {message}");
    Status::unauthenticated(message)
}

/// Parses `Basic base64(user:password)` or `Bearer token`.
fn parse_header(value: &str) -> Result<Credentials, AuthError> {
    let refused = |m: &str| AuthError(m.to_string());
    if value.len() > MAX_HEADER {
        return Err(refused("the authorization header is too long"));
    }
    let (scheme, rest) = value.trim().split_once(' ').ok_or_else(|| {
        refused("malformed authorization header: expected 'Basic ...' or 'Bearer ...'")
    })?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Credentials::Bearer(rest.to_string()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError(format!(
            "unsupported authorization scheme '{scheme}': use Basic or Bearer"
        )));
    }
    // Padded or not: Arrow's Go client (under ADBC) leaves the padding off.
    let decoded = BASIC_BASE64
        .decode(rest)
        .map_err(|_| refused("malformed Basic credentials: not base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| refused("malformed Basic credentials: not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| refused("malformed Basic credentials: expected user:password"))?;
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

/// The authenticator that checks passwords and the tokens it leads to,
/// for Flight SQL and HTTP alike (one token works on both, and on every
/// process sharing the token secret).
#[derive(Clone)]
pub struct Auth {
    authenticator: Arc<dyn Authenticator>,
    tokens: Tokens,
}

impl Auth {
    pub fn new(authenticator: Arc<dyn Authenticator>, tokens: Tokens) -> Auth {
        Auth {
            authenticator,
            tokens,
        }
    }

    /// How long the tokens issued last.
    pub fn token_lifetime(&self) -> Duration {
        self.tokens.lifetime()
    }

    /// Checks a password off the async threads: a SCRAM verifier costs
    /// thousands of HMACs on purpose.
    async fn password(&self, user: String, password: String) -> Result<Grant, AuthError> {
        let authenticator = self.authenticator.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let result = authenticator.verify(&user, &password);
            (user, result)
        })
        .await
        .map_err(|e| AuthError(format!("the password check failed: {e}")))?;
        match checked {
            (_, Ok(grant)) => Ok(grant),
            (user, Err(e)) => {
                tracing::warn!(user, "authentication failed: {e}");
                Err(AuthError(format!("authentication failed: {e}")))
            }
        }
    }

    fn token(&self, token: &str) -> Result<Principal, AuthError> {
        self.tokens
            .verify(token, self.authenticator.as_ref(), SystemTime::now())
    }

    /// A login: Basic credentials (or a valid token) in, the principal and
    /// a new bearer token out (`authorization`: the header's value).
    pub async fn login(
        &self,
        authorization: Option<&str>,
    ) -> Result<(Principal, String), AuthError> {
        let grant = match authorization.map(parse_header).transpose()? {
            Some(Credentials::Basic { user, password }) => self.password(user, password).await?,
            Some(Credentials::Bearer(token)) => {
                let principal = self.token(&token)?;
                self.authenticator.grant(&principal.name)?
            }
            None if self.authenticator.allows_anonymous() => AnyUser.grant("anonymous")?,
            None => return Err(AuthError("a user and password are required".into())),
        };
        let token = self.tokens.issue(&grant, SystemTime::now());
        Ok((grant.principal, token))
    }

    /// The caller of a request with this `authorization` header: `None`
    /// when it has none and anonymous callers are not served.
    pub async fn caller(
        &self,
        authorization: Option<&str>,
    ) -> Result<Option<Principal>, AuthError> {
        match authorization.map(parse_header).transpose()? {
            Some(Credentials::Bearer(token)) => self.token(&token).map(Some),
            Some(Credentials::Basic { user, password }) => {
                Ok(Some(self.password(user, password).await?.principal))
            }
            None if self.authenticator.allows_anonymous() => {
                Ok(Some(Principal::trusted("anonymous")))
            }
            None => Ok(None),
        }
    }

    /// The Flight Handshake: Basic credentials (or a valid token) in, a
    /// new bearer token out.
    pub async fn handshake(&self, metadata: &MetadataMap) -> Result<(Principal, String), Status> {
        self.login(header(metadata)?)
            .await
            .map_err(|e| unauthenticated(e.0))
    }

    /// The caller of any other Flight call.
    pub async fn principal(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        match self.caller(header(metadata)?).await {
            Ok(Some(principal)) => Ok(principal),
            Ok(None) => Err(unauthenticated(
                "authenticate first: Handshake with Basic credentials, then send the bearer token",
            )),
            Err(e) => Err(unauthenticated(e.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(text: &str) -> Arc<dyn Authenticator> {
        Arc::new(UsersAuthenticator(Arc::new(
            Users::parse(text, "test").unwrap(),
        )))
    }

    fn entry(name: &str, role: &str, password: &str) -> String {
        let verifier = crate::users::Verifier::with_salt(password, b"0123456789abcdef", 16);
        format!("[users.{name}]\nrole = \"{role}\"\npassword = \"{verifier}\"\n")
    }

    fn ada_and_rita() -> String {
        entry("ada", "admin", "secret") + &entry("rita", "reader", "rpw")
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

    fn bearer(token: &str) -> MetadataMap {
        with_header(&format!("Bearer {token}"))
    }

    fn tokens() -> Tokens {
        Tokens::new(&[7u8; 32], DEFAULT_TOKEN_LIFETIME)
    }

    #[tokio::test]
    async fn handshake_issues_a_token_that_later_calls_use() {
        let auth = Auth::new(users(&ada_and_rita()), tokens());
        let (principal, token) = auth.handshake(&basic("rita:rpw")).await.unwrap();
        // Unpadded base64 too ("rita:rpw" pads with one '=').
        let unpadded = with_header("Basic cml0YTpycHc");
        assert_eq!(auth.principal(&unpadded).await.unwrap(), principal);
        assert_eq!(
            (principal.name.as_str(), principal.role),
            ("rita", Role::Reader)
        );
        let again = auth.principal(&bearer(&token)).await.unwrap();
        assert_eq!(again, principal);
    }

    #[tokio::test]
    async fn a_token_is_accepted_by_any_process_with_the_same_secret() {
        let a = Auth::new(users(&ada_and_rita()), tokens());
        let b = Auth::new(users(&ada_and_rita()), tokens());
        let (_, token) = a.handshake(&basic("ada:secret")).await.unwrap();
        assert_eq!(b.principal(&bearer(&token)).await.unwrap().name, "ada");
        let other = Auth::new(
            users(&ada_and_rita()),
            Tokens::new(&[8u8; 32], DEFAULT_TOKEN_LIFETIME),
        );
        let e = other.principal(&bearer(&token)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(e.message().contains("another secret"), "{e:?}");
    }

    #[tokio::test]
    async fn wrong_passwords_tokens_and_headers_are_unauthenticated() {
        let auth = Auth::new(users(&ada_and_rita()), tokens());
        for metadata in [
            basic("ada:wrong"),
            basic("nobody:secret"),
            basic("nobody"),
            bearer("made-up"),
            bearer("tl1.e30.AAAA"),
            with_header("Garbage"),
            with_header("Basic !!!"),
            MetadataMap::new(),
        ] {
            let e = auth.principal(&metadata).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        }
        assert!(auth.handshake(&basic("ada:wrong")).await.is_err());
    }

    #[test]
    fn tampered_expired_and_outdated_tokens_are_refused() {
        let t = tokens();
        let rita = users(&ada_and_rita());
        let grant = rita.verify("rita", "rpw").unwrap();
        let now = SystemTime::now();
        let token = t.issue(&grant, now);
        assert!(t.verify(&token, rita.as_ref(), now).is_ok());
        // The claims changed to say admin: the signature no longer fits.
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_claims = Claims {
            u: "rita".into(),
            r: Role::Admin,
            d: vec![],
            iat: 0,
            exp: u64::MAX,
            g: String::new(),
        };
        let forged = format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap())
        );
        let e = t.verify(&forged, rita.as_ref(), now).unwrap_err();
        assert!(e.0.contains("wrong signature"), "{e}");
        // Expired.
        let later = now + DEFAULT_TOKEN_LIFETIME + Duration::from_secs(1);
        let e = t.verify(&token, rita.as_ref(), later).unwrap_err();
        assert!(e.0.contains("expired"), "{e}");
        // Rita became a writer, or got another password: log in again.
        let promoted = users(&(entry("ada", "admin", "secret") + &entry("rita", "writer", "rpw")));
        assert!(t.verify(&token, promoted.as_ref(), now).is_err());
        let new_password = users(&entry("rita", "reader", "other"));
        assert!(t.verify(&token, new_password.as_ref(), now).is_err());
        let gone = users(&entry("ada", "admin", "secret"));
        assert!(t.verify(&token, gone.as_ref(), now).is_err());
    }

    #[tokio::test]
    async fn without_users_anyone_is_served_but_bad_headers_are_not() {
        let auth = Auth::new(Arc::new(AnyUser), Tokens::random(DEFAULT_TOKEN_LIFETIME));
        let anonymous = auth.principal(&MetadataMap::new()).await.unwrap();
        assert_eq!(anonymous, Principal::trusted("anonymous"));
        let (bob, token) = auth.handshake(&basic("bob:x")).await.unwrap();
        assert_eq!((bob.name.as_str(), bob.role), ("bob", Role::Admin));
        assert_eq!(auth.principal(&bearer(&token)).await.unwrap(), bob);
        assert!(auth.principal(&bearer("nope")).await.is_err());
        assert!(auth.principal(&with_header("Token abc")).await.is_err());
    }
}
