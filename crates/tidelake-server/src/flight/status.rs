//! A statement's failure as a gRPC status: the code from the SQLSTATE's
//! class, the SQLSTATE in the message (`... (SQLSTATE 42P01)`) and in the
//! `x-tidelake-sqlstate` metadata entry.

use tonic::{Code, Status};

use crate::StatementError;

/// The metadata key that carries the SQLSTATE of a failed statement.
pub const SQLSTATE_KEY: &str = "x-tidelake-sqlstate";

/// The gRPC code of a SQLSTATE.
pub fn code_of(sqlstate: &str) -> Code {
    match sqlstate {
        "57014" => Code::Cancelled,
        "42501" => Code::PermissionDenied,
        "0A000" => Code::Unimplemented,
        "42P01" | "3D000" | "3F000" | "42704" | "42883" | "42703" | "34000" | "26000" => {
            Code::NotFound
        }
        "42P07" | "42P04" | "42P06" | "42710" => Code::AlreadyExists,
        _ => match sqlstate.get(..2).unwrap_or("XX") {
            "28" => Code::Unauthenticated,
            "40" => Code::Aborted,
            "53" | "54" => Code::ResourceExhausted,
            "08" => Code::Unavailable,
            "22" | "23" | "42" | "2B" | "0L" => Code::InvalidArgument,
            "55" => Code::FailedPrecondition,
            _ => Code::Internal,
        },
    }
}

/// The status a client receives for a failed statement.
pub fn status(e: &StatementError) -> Status {
    let sqlstate = e.code();
    let mut status = Status::new(code_of(sqlstate), format!("{e} (SQLSTATE {sqlstate})"));
    if let Ok(value) = sqlstate.parse() {
        status.metadata_mut().insert(SQLSTATE_KEY, value);
    }
    status
}

impl From<StatementError> for Status {
    fn from(e: StatementError) -> Status {
        status(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelake_sql::SqlError;

    #[test]
    fn sqlstates_map_to_grpc_codes() {
        let e = StatementError::Sql(SqlError::UndefinedDatabase("nope".into()));
        let s = status(&e);
        assert_eq!(s.code(), Code::NotFound);
        // An unknown database is PostgreSQL's invalid_schema_name.
        assert!(s.message().contains("SQLSTATE 3F000"), "{}", s.message());
        assert_eq!(s.metadata().get(SQLSTATE_KEY).unwrap(), "3F000");
        assert_eq!(code_of("57014"), Code::Cancelled);
        assert_eq!(code_of("42601"), Code::InvalidArgument);
        assert_eq!(code_of("40001"), Code::Aborted);
        assert_eq!(code_of("XX000"), Code::Internal);
    }
}
