//! Users and what they may do: the users file, password verification
//! against SCRAM-SHA-256 verifiers, and the role check of a statement. Every
//! front end (PostgreSQL, HTTP, Flight SQL) uses the same [`Users`].
//!
//! The users file is TOML; passwords are only ever stored as verifiers
//! (PostgreSQL's `SCRAM-SHA-256$...` form), written by `tidelake user add`:
//!
//! ```toml
//! [users.ada]
//! role = "admin"            # admin | writer | reader
//! password = "SCRAM-SHA-256$4096:...$...:..."
//!
//! [users.bob]
//! role = "reader"
//! databases = ["sales"]     # optional: only these databases
//! password = "SCRAM-SHA-256$4096:...$...:..."
//! ```
//!
//! Roles: a `reader` runs queries (and SET, SHOW, cursors, transactions); a
//! `writer` also changes rows (INSERT, UPDATE, DELETE, MERGE, TRUNCATE,
//! COPY FROM, CALL); an `admin` also changes what exists (CREATE, DROP,
//! ALTER, COPY TO a file) and runs anything else. See [`classify`].

mod access;
mod scram;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

pub use access::{classify, Denied, StatementClass};
pub use scram::{ScramExchange, Verifier, MECHANISM as SCRAM_MECHANISM};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Writer,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text.to_ascii_lowercase().as_str() {
            "reader" => Some(Role::Reader),
            "writer" => Some(Role::Writer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An authenticated user: who, with which role, in which databases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The databases the user may use; empty: all of them.
    pub databases: Vec<String>,
}

impl Principal {
    /// The principal of every client of a server without users (loopback only).
    pub fn trusted(name: &str) -> Principal {
        Principal {
            name: name.to_string(),
            role: Role::Admin,
            databases: Vec::new(),
        }
    }
}

/// Why the users file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the users file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the users file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
    #[error("invalid user name {0:?}: use letters, digits, '_', '-' and '.' (at most 63)")]
    InvalidName(String),
}

/// Why a client was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A wrong password, or a user that does not exist (told apart by no one).
    #[error("password authentication failed for user \"{0}\"")]
    Failed(String),
    /// A malformed authentication message.
    #[error("{0}")]
    Protocol(String),
}

impl AuthError {
    /// Its SQLSTATE: 28P01 (invalid_password) or 08P01 (protocol_violation).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Failed(_) => "28P01",
            AuthError::Protocol(_) => "08P01",
        }
    }
}

/// One user as the file stores it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    /// A SCRAM-SHA-256 verifier, never a plain password.
    pub password: String,
}

/// The `[server]` table: settings of the servers that share the file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServerSection {
    /// The key material Flight SQL bearer tokens are signed with (base64,
    /// 32 random bytes): servers sharing the file accept each other's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_secret: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<ServerSection>,
    #[serde(default)]
    users: BTreeMap<String, UserEntry>,
}

/// The shortest token secret accepted, in bytes.
pub const MIN_TOKEN_SECRET: usize = 32;

/// The users a server lets in.
#[derive(Default)]
pub struct Users {
    users: BTreeMap<String, (UserEntry, Verifier)>,
    token_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Users")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("token_secret", &self.token_secret.as_ref().map(|_| "..."))
            .finish()
    }
}

fn decode_secret(text: &str) -> Result<Vec<u8>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("[server] token-secret is not base64: {e}"))?;
    if bytes.len() < MIN_TOKEN_SECRET {
        return Err(format!(
            "[server] token-secret has {} bytes; it needs at least {MIN_TOKEN_SECRET} (`tidelake user rotate-token-secret` writes one)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Fresh random bytes for a token secret.
pub(crate) fn random_secret() -> Vec<u8> {
    scram::random_bytes(MIN_TOKEN_SECRET)
}

/// A fresh token secret as the file stores it.
fn new_secret() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_secret())
}

/// Reads a token secret from a file of its own (`--token-secret-file`):
/// its bytes as they are, but for surrounding whitespace, at least
/// [`MIN_TOKEN_SECRET`] of them (e.g. `head -c 32 /dev/urandom | base64`).
pub fn read_token_secret(path: &Path) -> Result<Vec<u8>, UsersError> {
    let bytes = std::fs::read(path).map_err(|source| UsersError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = bytes.trim_ascii();
    if text.len() < MIN_TOKEN_SECRET {
        return Err(UsersError::Invalid {
            path: path.display().to_string(),
            message: format!(
                "a token secret needs at least {MIN_TOKEN_SECRET} bytes (e.g. `head -c 32 /dev/urandom | base64 > FILE`); this one has {}",
                text.len()
            ),
        });
    }
    Ok(text.to_vec())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Users {
    /// Reads the users file at `path`.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Users::parse(&text, &path.display().to_string())
    }

    /// Parses a users file's text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Users, UsersError> {
        let invalid = |message: String| UsersError::Invalid {
            path: origin.to_string(),
            message,
        };
        let file: UsersFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let token_secret = match file.server.and_then(|s| s.token_secret) {
            Some(text) => Some(decode_secret(&text).map_err(invalid)?),
            None => None,
        };
        let mut users = BTreeMap::new();
        for (name, entry) in file.users {
            if !valid_name(&name) {
                return Err(UsersError::InvalidName(name));
            }
            let verifier = Verifier::parse(&entry.password)
                .map_err(|m| invalid(format!("user \"{name}\": {m}")))?;
            users.insert(name, (entry, verifier));
        }
        Ok(Users {
            users,
            token_secret,
        })
    }

    /// The secret bearer tokens are signed with, if the file has one.
    pub fn token_secret(&self) -> Option<&[u8]> {
        self.token_secret.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user `name` as a principal, if there is one (no password checked).
    pub fn principal(&self, name: &str) -> Option<Principal> {
        self.users.get(name).map(|(entry, _)| Principal {
            name: name.to_string(),
            role: entry.role,
            databases: entry.databases.clone(),
        })
    }

    pub(crate) fn verifier(&self, name: &str) -> Option<&Verifier> {
        self.users.get(name).map(|(_, v)| v)
    }

    /// Checks a password given in clear (HTTP Basic, Flight Handshake,
    /// PostgreSQL's cleartext method) against the user's verifier.
    pub fn verify_password(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        match (self.verifier(user), self.principal(user)) {
            (Some(verifier), Some(principal)) if verifier.matches(password) => Ok(principal),
            _ => Err(AuthError::Failed(user.to_string())),
        }
    }
}

/// Adds (or replaces) user `name` in the users file at `path`, creating the
/// file if needed and keeping the other users; a file without a token
/// secret gets one. The file is replaced atomically and readable by its
/// owner only.
pub fn add_user(
    path: &Path,
    name: &str,
    role: Role,
    databases: Vec<String>,
    password: &str,
) -> Result<(), UsersError> {
    if !valid_name(name) {
        return Err(UsersError::InvalidName(name.to_string()));
    }
    let mut file = read_file(path)?;
    file.users.insert(
        name.to_string(),
        UserEntry {
            role,
            databases,
            password: Verifier::new(password).to_string(),
        },
    );
    let server = file.server.get_or_insert_with(ServerSection::default);
    if server.token_secret.is_none() {
        server.token_secret = Some(new_secret());
    }
    write_file(path, &file)
}

/// Replaces the token secret of the users file at `path` with a new one:
/// every bearer token signed with the old one stops being accepted (once
/// the servers read the file again, at their start).
pub fn rotate_token_secret(path: &Path) -> Result<(), UsersError> {
    let mut file = read_file(path)?;
    file.server
        .get_or_insert_with(ServerSection::default)
        .token_secret = Some(new_secret());
    write_file(path, &file)
}

/// The users file at `path` as it stands (empty if there is none).
fn read_file(path: &Path) -> Result<UsersFile, UsersError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let file: UsersFile = toml::from_str(&text).map_err(|e| UsersError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            if let Some(secret) = file.server.as_ref().and_then(|s| s.token_secret.as_ref()) {
                decode_secret(secret).map_err(|message| UsersError::Invalid {
                    path: path.display().to_string(),
                    message,
                })?;
            }
            Ok(file)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
        Err(source) => Err(UsersError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_file(path: &Path, file: &UsersFile) -> Result<(), UsersError> {
    let body = toml::to_string(file).map_err(|e| UsersError::Invalid {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let text = format!(
        "# Tidelake users: roles admin | writer | reader, SCRAM-SHA-256 verifiers\n\
         # (never plain passwords), and [server] token-secret, the key Flight SQL\n\
         # bearer tokens are signed with. Keep this file private.\n\
         # Edit with `tidelake user add`.\n\n{body}"
    );
    write_private(path, &text).map_err(|source| UsersError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `text` to a temporary file beside `path` (mode 0600), then renames it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "users.toml".into());
    let temp = dir.unwrap_or(Path::new(".")).join(format!(
        ".{file_name}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = write_then_rename(&options, &temp, path, text);
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_then_rename(
    options: &std::fs::OpenOptions,
    temp: &Path,
    path: &Path,
    text: &str,
) -> std::io::Result<()> {
    let mut file = options.open(temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_load_then_verify() {
        let dir = std::env::temp_dir().join(format!("tl-users-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        add_user(&path, "ada", Role::Admin, vec![], "pw1").unwrap();
        add_user(&path, "bob", Role::Reader, vec!["sales".into()], "pw2").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("pw1") && text.contains("SCRAM-SHA-256$4096:"),
            "{text}"
        );
        let users = Users::load(&path).unwrap();
        let bob = users.verify_password("bob", "pw2").unwrap();
        assert_eq!(bob.role, Role::Reader);
        assert_eq!(bob.databases, ["sales"]);
        assert_eq!(
            users.verify_password("bob", "pw1").unwrap_err().code(),
            "28P01"
        );
        assert!(users.verify_password("nobody", "pw1").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_keeps_one_token_secret_until_it_is_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        add_user(&path, "ada", Role::Admin, vec![], "pw1").unwrap();
        let first = Users::load(&path).unwrap().token_secret().unwrap().to_vec();
        assert_eq!(first.len(), MIN_TOKEN_SECRET);
        add_user(&path, "bob", Role::Reader, vec![], "pw2").unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.token_secret(), Some(&first[..]), "kept by user add");
        let printed = format!("{users:?}");
        assert!(
            printed.contains(r#"token_secret: Some("...")"#),
            "{printed}"
        );
        rotate_token_secret(&path).unwrap();
        let rotated = Users::load(&path).unwrap();
        assert_ne!(rotated.token_secret(), Some(&first[..]));
        assert!(
            rotated.verify_password("bob", "pw2").is_ok(),
            "users are kept"
        );
        // A short or malformed secret is refused, not used.
        let short = "[server]\ntoken-secret = \"c2hvcnQ=\"\n";
        let e = Users::parse(short, "u.toml").unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        assert!(Users::parse("[server]\ntoken-secret = \"!!\"\n", "u").is_err());
        // A secret of its own file: its bytes, at least 32 of them.
        let file = dir.path().join("secret");
        std::fs::write(&file, "too short\n").unwrap();
        assert!(read_token_secret(&file).is_err());
        std::fs::write(&file, format!("{}\n", "k".repeat(40))).unwrap();
        assert_eq!(
            read_token_secret(&file).unwrap(),
            "k".repeat(40).into_bytes()
        );
    }

    #[test]
    fn plain_passwords_and_bad_files_are_refused() {
        let plain = "[users.ada]\nrole = \"admin\"\npassword = \"hunter2\"\n";
        let e = Users::parse(plain, "u.toml").unwrap_err().to_string();
        assert!(e.contains("never a plain password"), "{e}");
        let role = "[users.ada]\nrole = \"root\"\npassword = \"x\"\n";
        assert!(Users::parse(role, "u.toml").is_err());
        assert!(Users::parse("[users.\"a b\"]\nrole = \"admin\"\npassword = \"x\"", "u").is_err());
        assert!(Users::parse("", "u").unwrap().is_empty());
    }
}
