//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: verifiers
//! in PostgreSQL's own text form (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
//! base64), the server side of the exchange, and checking a cleartext
//! password against a verifier. No channel binding (there is no TLS), so a
//! client asking for `SCRAM-SHA-256-PLUS` is refused.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::{AuthError, Principal, Users};

/// Iterations of a new verifier (PostgreSQL's default too).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// The most iterations a verifier may ask for (a bigger number is an attack
/// on the server's CPU, not a stronger password).
const MAX_ITERATIONS: u32 = 1_000_000;
const SALT_LEN: usize = 16;
/// The mechanism's name on the wire.
pub const MECHANISM: &str = "SCRAM-SHA-256";

type Key = [u8; 32];

/// What the server keeps of a password: never the password itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: Key,
    server_key: Key,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    // HMAC takes keys of any length: this never fails.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
        unreachable!("HMAC accepts keys of any length");
    });
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

/// PBKDF2-HMAC-SHA-256 with one output block: SCRAM's `Hi()`.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Key {
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(password)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: Key = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

/// The password as SCRAM hashes it: SASLprep'd when it can be, as is
/// otherwise (PostgreSQL does the same).
fn normalize(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.as_bytes().to_vec(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// Equality that takes as long whatever the bytes.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes (from the operating system's generator, through
/// UUID v4).
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

impl Verifier {
    /// A verifier of `password` with a fresh random salt.
    pub fn new(password: &str) -> Verifier {
        Verifier::with_salt(password, &random_bytes(SALT_LEN), DEFAULT_ITERATIONS)
    }

    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let salted = salted_password(&normalize(password), salt, iterations);
        let client_key = hmac(&salted, &[b"Client Key"]);
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }

    /// Parses PostgreSQL's text form of a verifier.
    pub fn parse(text: &str) -> Result<Verifier, String> {
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or("a password must be a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>), never a plain password; `tidelake user add` writes one")?;
        let (params, keys) = rest.split_once('$').ok_or("no '$' before the keys")?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or("no ':' after the iterations")?;
        let (stored, server) = keys.split_once(':').ok_or("no ':' between the keys")?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("the iteration count {iterations:?} is not a number"))?;
        if !(1..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "the iteration count {iterations} is not within 1..={MAX_ITERATIONS}"
            ));
        }
        let decode = |what: &str, s: &str| {
            BASE64
                .decode(s)
                .map_err(|e| format!("the {what} is not base64: {e}"))
        };
        let key = |what: &str, s: &str| -> Result<Key, String> {
            decode(what, s)?
                .try_into()
                .map_err(|_| format!("the {what} is not 32 bytes"))
        };
        Ok(Verifier {
            iterations,
            salt: decode("salt", salt)?,
            stored_key: key("StoredKey", stored)?,
            server_key: key("ServerKey", server)?,
        })
    }

    /// Whether `password` is the one this verifier was made of: its
    /// SaltedPassword (the stored salt and iterations) must give both the
    /// StoredKey and the ServerKey, compared in constant time.
    pub fn matches(&self, password: &str) -> bool {
        let salted = salted_password(&normalize(password), &self.salt, self.iterations);
        let client_key = hmac(&salted, &[b"Client Key"]);
        let stored = same(&sha256(&client_key), &self.stored_key);
        let server = same(&hmac(&salted, &[b"Server Key"]), &self.server_key);
        // `&`, not `&&`: both comparisons always run.
        stored & server
    }

    /// A verifier no password matches, for names that are not users (the
    /// exchange then fails as a wrong password does, not earlier).
    fn mock(user: &str) -> Verifier {
        let salt = sha256(format!("tidelake mock salt {user}").as_bytes());
        Verifier {
            iterations: DEFAULT_ITERATIONS,
            salt: salt[..SALT_LEN].to_vec(),
            stored_key: random_bytes(32).try_into().unwrap_or([0; 32]),
            server_key: random_bytes(32).try_into().unwrap_or([0; 32]),
        }
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }
}

/// A SCRAM exchange after the server's first message.
pub struct ScramExchange {
    user: String,
    principal: Option<Principal>,
    verifier: Verifier,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

fn protocol(message: impl Into<String>) -> AuthError {
    AuthError::Protocol(message.into())
}

/// The value of attribute `name` (`r=...`) among `attrs`.
fn attribute(attrs: &str, name: char) -> Option<&str> {
    attrs.split(',').find_map(|a| {
        let mut chars = a.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &a[2..])
    })
}

impl ScramExchange {
    /// Starts an exchange for `user` (the startup packet's user: PostgreSQL
    /// ignores the name inside the SCRAM message) from the client's first
    /// message; returns the server's first message to send.
    pub fn start(
        users: &Users,
        user: &str,
        mechanism: &str,
        client_first: &[u8],
    ) -> Result<(ScramExchange, String), AuthError> {
        if mechanism != MECHANISM {
            return Err(protocol(format!(
                "the client chose the SASL mechanism {mechanism:?}; this server offers {MECHANISM} only"
            )));
        }
        let text = std::str::from_utf8(client_first)
            .map_err(|_| protocol("the SCRAM client-first message is not UTF-8"))?;
        let mut parts = text.splitn(3, ',');
        let (flag, authzid, bare) = match (parts.next(), parts.next(), parts.next()) {
            (Some(f), Some(a), Some(b)) => (f, a, b),
            _ => return Err(protocol("malformed SCRAM client-first message")),
        };
        if flag.starts_with('p') {
            return Err(protocol(
                "channel binding (SCRAM-SHA-256-PLUS) needs TLS, which this server does not offer",
            ));
        }
        if flag != "n" && flag != "y" {
            return Err(protocol("malformed SCRAM channel binding flag"));
        }
        let client_nonce = attribute(bare, 'r')
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != ','))
            .ok_or_else(|| protocol("the SCRAM client-first message has no nonce"))?;
        let principal = users.principal(user);
        let verifier = match users.verifier(user) {
            Some(v) => v.clone(),
            None => Verifier::mock(user),
        };
        let nonce = format!("{client_nonce}{}", BASE64.encode(random_bytes(18)));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&verifier.salt),
            verifier.iterations
        );
        let exchange = ScramExchange {
            user: user.to_string(),
            principal,
            verifier,
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first))
    }

    /// Checks the client's proof; the user and the server's final message.
    pub fn finish(self, client_final: &[u8]) -> Result<(Principal, String), AuthError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| protocol("the SCRAM client-final message is not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| protocol("the SCRAM client-final message has no proof"))?;
        let binding = attribute(without_proof, 'c')
            .and_then(|c| BASE64.decode(c).ok())
            .ok_or_else(|| protocol("the SCRAM client-final message has no channel binding"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(protocol("SCRAM channel binding does not match"));
        }
        if attribute(without_proof, 'r') != Some(self.nonce.as_str()) {
            return Err(protocol("SCRAM nonce does not match"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| protocol("the SCRAM proof is not base64"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let failed = || AuthError::Failed(self.user.clone());
        if proof.len() != signature.len() {
            return Err(failed());
        }
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let principal = match &self.principal {
            Some(p) if same(&sha256(&client_key), &self.verifier.stored_key) => p.clone(),
            _ => return Err(failed()),
        };
        let server_signature = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok((principal, format!("v={}", BASE64.encode(server_signature))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Role;

    fn users() -> Users {
        let verifier = Verifier::with_salt("s3cret", b"0123456789abcdef", 4096);
        let text = format!("[users.ada]\nrole = \"reader\"\npassword = \"{verifier}\"\n");
        Users::parse(&text, "test").unwrap()
    }

    /// An exchange driven by postgres-protocol's client, not ours.
    fn exchange(password: &str, user: &str) -> Result<Principal, AuthError> {
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        let users = users();
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let (exchange, server_first) =
            ScramExchange::start(&users, user, MECHANISM, client.message())?;
        client.update(server_first.as_bytes()).unwrap();
        let (principal, server_final) = exchange.finish(client.message())?;
        client
            .finish(server_final.as_bytes())
            .expect("the client accepts the server's signature");
        Ok(principal)
    }

    #[test]
    fn a_real_client_authenticates_with_the_right_password_only() {
        let p = exchange("s3cret", "ada").unwrap();
        assert_eq!((p.name.as_str(), p.role), ("ada", Role::Reader));
        assert!(matches!(exchange("wrong", "ada"), Err(AuthError::Failed(u)) if u == "ada"));
        assert!(matches!(
            exchange("s3cret", "bob"),
            Err(AuthError::Failed(_))
        ));
    }

    #[test]
    fn verifiers_round_trip_and_match_postgres_protocol() {
        let theirs = postgres_protocol::password::scram_sha_256("pässword".as_bytes());
        let parsed = Verifier::parse(&theirs).unwrap();
        assert_eq!(parsed.to_string(), theirs);
        assert!(parsed.matches("pässword"));
        assert!(!parsed.matches("password"));
        let ours = Verifier::new("x");
        assert_eq!(Verifier::parse(&ours.to_string()).unwrap(), ours);
        assert!(Verifier::parse("plain-text").is_err());
        assert!(Verifier::parse("SCRAM-SHA-256$0:AA==$AA==:AA==").is_err());
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        let users = users();
        for bad in [
            &b""[..],
            b"n,,",
            b"x,,n=,r=abc",
            b"p=tls-server-end-point,,n=,r=a",
            b"\xff",
        ] {
            assert!(matches!(
                ScramExchange::start(&users, "ada", MECHANISM, bad),
                Err(AuthError::Protocol(_))
            ));
        }
        let (exchange, _) = ScramExchange::start(&users, "ada", MECHANISM, b"n,,n=,r=abc").unwrap();
        assert!(matches!(
            exchange.finish(b"c=biws,r=other,p=AAAA"),
            Err(AuthError::Protocol(_))
        ));
    }
}
