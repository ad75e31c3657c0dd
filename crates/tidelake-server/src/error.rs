//! Errors of the server: a statement's failure (with its SQLSTATE, sent to
//! that client only) and the server's own (binding, serving).

use std::net::SocketAddr;

use tidelake_sql::SqlError;

/// Why a statement failed, as a client is told.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Cancelled by a CancelRequest or by `statement_timeout` (57014).
    #[error("{0}")]
    Canceled(&'static str),
    /// A statement the server itself refuses, with its SQLSTATE.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
}

impl From<crate::users::Denied> for StatementError {
    fn from(d: crate::users::Denied) -> Self {
        StatementError::refused("42501", d.to_string())
    }
}

impl StatementError {
    pub fn code(&self) -> &'static str {
        match self {
            StatementError::Sql(e) => e.code(),
            StatementError::Canceled(_) => "57014",
            StatementError::Refused { code, .. } => code,
        }
    }

    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        StatementError::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn timeout() -> Self {
        StatementError::Canceled("canceling statement due to statement timeout")
    }

    pub fn user_cancel() -> Self {
        StatementError::Canceled("canceling statement due to user request")
    }
}

/// What stops the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "{addr} is not a loopback address: without a users file (--users) every client is trusted, so the server only listens on loopback (127.0.0.1 or ::1)"
    )]
    NotLoopback { addr: SocketAddr },
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("the Flight SQL server failed: {0}")]
    Flight(String),
    #[error("TLS: {}: {message}", path.display())]
    Tls {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(transparent)]
    Sql(#[from] SqlError),
}
