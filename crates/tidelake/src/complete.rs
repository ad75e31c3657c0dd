//! Tab completion in the shell: SQL keywords, database and table names
//! (qualified and, for the current database, bare) and the column names of
//! the current database's tables.
//!
//! Names come from the session through SQL (`SHOW DATABASES`, `SHOW
//! TABLES`, `DESCRIBE`), so the shell needs no catalog access of its own;
//! they are read at start and again after statements that may change them,
//! never while a key is pressed.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use arrow::array::{Array, StringArray};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use tidelake_sql::{Session, StatementResult};

/// Statements whose first word may add, drop or rename names.
const NAME_CHANGING: &[&str] = &["CREATE", "DROP", "ALTER", "USE", "CALL"];
/// At most this many tables are described for their columns.
const MAX_TABLES_DESCRIBED: usize = 200;

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "INSERT",
    "INTO",
    "VALUES",
    "OVERWRITE",
    "UPDATE",
    "SET",
    "DELETE",
    "MERGE",
    "USING",
    "MATCHED",
    "THEN",
    "CREATE",
    "TABLE",
    "DATABASE",
    "VIEW",
    "DROP",
    "ALTER",
    "ADD",
    "COLUMN",
    "RENAME",
    "TO",
    "PARTITIONED",
    "PARTITION",
    "PRIMARY",
    "KEY",
    "NOT",
    "ENFORCED",
    "WITH",
    "AS",
    "AND",
    "OR",
    "NULL",
    "IS",
    "IN",
    "LIKE",
    "BETWEEN",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "ON",
    "UNION",
    "ALL",
    "DISTINCT",
    "CASE",
    "WHEN",
    "ELSE",
    "END",
    "CAST",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "SHOW",
    "TABLES",
    "DATABASES",
    "PARTITIONS",
    "DESCRIBE",
    "USE",
    "EXPLAIN",
    "ANALYZE",
    "CALL",
    "COPY",
    "TRUNCATE",
    "VERSION",
    "OF",
    "BIGINT",
    "INT",
    "STRING",
    "DOUBLE",
    "DECIMAL",
    "BOOLEAN",
    "DATE",
    "TIMESTAMP",
    "IF",
    "EXISTS",
];

/// The shell's line-editor helper; completion only.
#[derive(Clone, Default)]
pub struct SqlHelper {
    names: Arc<RwLock<BTreeSet<String>>>,
}

impl SqlHelper {
    /// Whether running `sql` may change the names worth completing.
    pub fn may_change_names(sql: &str) -> bool {
        sql.split(';').any(|statement| {
            let first = statement.split_whitespace().next().unwrap_or("");
            NAME_CHANGING.iter().any(|k| k.eq_ignore_ascii_case(first))
        })
    }

    /// Reads the names again from the session; a failure keeps the old ones
    /// (completion is a comfort, never a reason to fail a statement).
    pub async fn refresh(&self, session: &Session) {
        match read_names(session).await {
            Ok(names) => *self.names.write().unwrap_or_else(PoisonError::into_inner) = names,
            Err(e) => tracing::debug!("completion names not refreshed: {e}"),
        }
    }

    fn candidates(&self, word: &str) -> Vec<String> {
        let lower = word.to_ascii_lowercase();
        let upper_case = word.chars().any(|c| c.is_ascii_uppercase())
            && !word.chars().any(|c| c.is_ascii_lowercase());
        let mut out: Vec<String> = KEYWORDS
            .iter()
            .filter(|k| k.to_ascii_lowercase().starts_with(&lower))
            .map(|k| {
                if upper_case {
                    k.to_string()
                } else {
                    k.to_ascii_lowercase()
                }
            })
            .collect();
        let names = self.names.read().unwrap_or_else(PoisonError::into_inner);
        out.extend(
            names
                .iter()
                .filter(|n| n.to_ascii_lowercase().starts_with(&lower))
                .cloned(),
        );
        out.sort();
        out.dedup();
        out
    }
}

/// Where the word under the cursor starts: names may hold '.', '$' and '_'.
fn word_start(line: &str, pos: usize) -> usize {
    line[..pos]
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '$')))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

impl Completer for SqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = word_start(line, pos);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let pairs = self
            .candidates(word)
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for SqlHelper {
    type Hint = String;
}

impl Highlighter for SqlHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}

impl Validator for SqlHelper {}

impl Helper for SqlHelper {}

async fn read_names(session: &Session) -> Result<BTreeSet<String>, tidelake_sql::SqlError> {
    let mut names = BTreeSet::new();
    let current = session.current_database();
    let databases = first_column(session, "SHOW DATABASES").await?;
    let mut current_tables = Vec::new();
    for database in &databases {
        names.insert(database.clone());
        let sql = format!("SHOW TABLES IN {}", quote(database));
        let tables = first_column(session, &sql).await?;
        names.extend(tables.iter().map(|table| format!("{database}.{table}")));
        if *database == current {
            current_tables = tables;
        }
    }
    for table in current_tables.iter().take(MAX_TABLES_DESCRIBED) {
        let sql = format!("DESCRIBE {}.{}", quote(&current), quote(table));
        names.extend(first_column(session, &sql).await.unwrap_or_default());
    }
    names.extend(current_tables);
    Ok(names)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The first column of a statement's rows, as strings.
async fn first_column(session: &Session, sql: &str) -> Result<Vec<String>, tidelake_sql::SqlError> {
    let mut out = Vec::new();
    for result in session.execute(sql).await? {
        if let StatementResult::Rows { batches, .. } = result {
            for batch in batches {
                if batch.num_columns() == 0 {
                    continue;
                }
                if let Some(column) = batch.column(0).as_any().downcast_ref::<StringArray>() {
                    out.extend(column.iter().flatten().map(str::to_string));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(names: &[&str]) -> SqlHelper {
        let helper = SqlHelper::default();
        *helper.names.write().unwrap() = names.iter().map(|s| s.to_string()).collect();
        helper
    }

    #[test]
    fn words_include_qualified_names() {
        assert_eq!(word_start("SELECT * FROM shop.or", 21), 14);
        assert_eq!(word_start("sel", 3), 0);
        assert_eq!(word_start("SELECT a,b", 10), 9);
    }

    #[test]
    fn keywords_follow_the_case_typed_and_names_complete() {
        let h = helper(&["shop", "shop.orders", "orders", "order_id"]);
        assert!(h.candidates("SEL").contains(&"SELECT".to_string()));
        assert!(h.candidates("sel").contains(&"select".to_string()));
        assert_eq!(h.candidates("shop.o"), vec!["shop.orders".to_string()]);
        let ord = h.candidates("ord");
        assert!(ord.contains(&"orders".to_string()) && ord.contains(&"order_id".to_string()));
        assert!(ord.contains(&"order".to_string()));
    }

    #[test]
    fn name_changing_statements() {
        assert!(SqlHelper::may_change_names("create table t (a int)"));
        assert!(SqlHelper::may_change_names("SELECT 1; USE shop"));
        assert!(!SqlHelper::may_change_names("SELECT * FROM t"));
    }

    #[tokio::test]
    async fn names_are_read_from_the_session() {
        let session = Session::open("memory://").await.unwrap();
        session
            .execute("CREATE DATABASE shop; CREATE TABLE shop.orders (order_id BIGINT, amount DOUBLE); CREATE TABLE items (sku STRING)")
            .await
            .unwrap();
        let h = SqlHelper::default();
        h.refresh(&session).await;
        let names = h.names.read().unwrap().clone();
        for expected in ["shop", "shop.orders", "default.items", "items", "sku"] {
            assert!(
                names.contains(expected),
                "{expected} missing from {names:?}"
            );
        }
        // Columns of other databases' tables are not described.
        assert!(!names.contains("order_id"));
    }
}
