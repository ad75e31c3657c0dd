//! Write statements that lost a commit race run again, inside Tidelake.
//!
//! A commit conflict (another writer wrote the same bucket with overlapping
//! sequence numbers, compacted away a file the statement rewrites, or
//! assigned the same dynamic buckets) leaves nothing committed: the
//! statement is atomic. So the statement is planned and run again against
//! the new latest snapshot, which makes an UPDATE's expressions see the
//! other writer's rows and gives an INSERT fresh sequence numbers, after a
//! bounded, jittered backoff. Only a conflict that outlasts the retry budget
//! reaches the user. An unknown commit outcome is never retried: the change
//! may be in the table already.
//!
//! The retry count of the statement's commit is recorded in its snapshot's
//! properties under [`RETRIES_PROPERTY`], so contention is visible.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use datafusion::execution::context::SessionConfig;

use crate::lexer::RawStatement;

/// Snapshot property: how many times the statement that committed the
/// snapshot was run again after commit conflicts (absent when none).
/// (The engine's, which also counts a group commit written again.)
pub const RETRIES_PROPERTY: &str = tidelake_engine::RETRIES_PROPERTY;

/// How many times a write statement runs again after a commit conflict.
pub(crate) const MAX_STATEMENT_RETRIES: u32 = 16;

/// The attempt of the write statement being run, as a DataFusion config
/// extension: the write paths read it to label their commit.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StatementAttempt {
    pub retries: u32,
}

/// The properties a statement's commit records: its retry count, if any.
pub(crate) fn commit_properties(config: &SessionConfig) -> BTreeMap<String, String> {
    let retries = config
        .get_extension::<StatementAttempt>()
        .map_or(0, |a| a.retries);
    if retries == 0 {
        BTreeMap::new()
    } else {
        BTreeMap::from([(RETRIES_PROPERTY.to_string(), retries.to_string())])
    }
}

/// Whether the statement writes rows (and so may lose a commit race).
pub(crate) fn is_write(statement: &RawStatement) -> bool {
    use datafusion::sql::sqlparser::tokenizer::Token;
    let first = statement.tokens.iter().find_map(|t| match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        Token::Whitespace(_) => None,
        _ => Some(String::new()),
    });
    matches!(
        first.as_deref(),
        Some("INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY")
    )
}

/// The pause before retry `retry` (1-based): exponential from 10 ms up to
/// 1 s, with full jitter so that racing writers spread out.
pub(crate) fn backoff(retry: u32) -> Duration {
    let cap_ms = (10u64 << retry.min(7)).min(1_000);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(retry);
    Duration::from_millis(cap_ms / 2 + hasher.finish() % (cap_ms / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split_statements;

    fn first(sql: &str) -> RawStatement {
        split_statements(sql).unwrap().remove(0)
    }

    #[test]
    fn write_statements_are_recognised() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "  insert overwrite t select * from s",
            "UPDATE t SET v = 1",
            "delete from t where k = 1",
        ] {
            assert!(is_write(&first(sql)), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "CREATE TABLE t (a INT)",
            "CALL sys.compact('t')",
        ] {
            assert!(!is_write(&first(sql)), "{sql}");
        }
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        for retry in 1..40 {
            let pause = backoff(retry);
            let cap = (10u64 << retry.min(7)).min(1_000);
            assert!(
                pause >= Duration::from_millis(cap / 2),
                "{retry}: {pause:?}"
            );
            assert!(pause <= Duration::from_millis(cap), "{retry}: {pause:?}");
        }
    }

    #[test]
    fn properties_carry_the_retry_count() {
        let config = SessionConfig::new();
        assert!(commit_properties(&config).is_empty());
        let config = config.with_extension(std::sync::Arc::new(StatementAttempt { retries: 3 }));
        assert_eq!(
            commit_properties(&config)
                .get(RETRIES_PROPERTY)
                .map(String::as_str),
            Some("3")
        );
    }
}
