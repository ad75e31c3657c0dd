//! What a statement does, decided from its text before it runs, and
//! whether a principal may run it.
//!
//! The class comes from the statement's words outside quotes and comments:
//! its first word, and for statements that wrap others (`WITH`, `EXPLAIN`,
//! `DECLARE ... CURSOR FOR`, `SELECT ... INTO`) any writing word inside. A
//! statement the rules do not know is DDL: only an admin may run it.

use super::{Principal, Role};

/// What a statement may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementClass {
    /// Reads only (queries, SHOW, SET, transactions, cursors).
    Read,
    /// Changes rows (INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY FROM, CALL).
    Write,
    /// Changes what exists (CREATE, DROP, ALTER, COPY TO a file) or is unknown.
    Ddl,
}

impl StatementClass {
    fn name(self) -> &'static str {
        match self {
            StatementClass::Read => "read",
            StatementClass::Write => "write",
            StatementClass::Ddl => "DDL",
        }
    }
}

/// A statement refused to a principal (SQLSTATE 42501).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied: {0}")]
pub struct Denied(pub String);

impl Denied {
    pub fn code(&self) -> &'static str {
        "42501"
    }
}

const READS: &[&str] = &[
    "select",
    "values",
    "table",
    "show",
    "describe",
    "desc",
    "set",
    "reset",
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "discard",
    "deallocate",
    "savepoint",
    "release",
    "listen",
    "unlisten",
    "close",
    "fetch",
    "move",
    "use",
];
const WRAPPERS: &[&str] = &["with", "explain", "declare", "select"];
const WRITES: &[&str] = &[
    "insert", "update", "delete", "merge", "call", "truncate", "upsert", "replace",
];
const WRAPPED_WRITES: &[&str] = &[
    "insert", "update", "delete", "merge", "call", "truncate", "copy",
];
const WRAPPED_DDL: &[&str] = &["create", "drop", "alter"];

/// A word of a statement outside quotes and comments (quoted identifiers
/// are words too, unquoted), and whether a `.` follows it.
#[derive(Debug, PartialEq)]
struct Word {
    text: String,
    quoted: bool,
    dotted: bool,
}

fn words(sql: &str) -> Vec<Word> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    while i < chars.len() {
        let c = chars[i];
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' && chars.get(i + 1) == Some(&'\'') {
                    i += 2;
                } else if chars[i] == '\'' {
                    break;
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if c == '"' || is_word(c) {
            let quoted = c == '"';
            let mut text = String::new();
            if quoted {
                i += 1;
                while i < chars.len() {
                    if chars[i] == '"' && chars.get(i + 1) == Some(&'"') {
                        text.push('"');
                        i += 2;
                    } else if chars[i] == '"' {
                        i += 1;
                        break;
                    } else {
                        text.push(chars[i]);
                        i += 1;
                    }
                }
            } else {
                while i < chars.len() && is_word(chars[i]) {
                    text.push(chars[i].to_ascii_lowercase());
                    i += 1;
                }
            }
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let dotted = chars.get(j) == Some(&'.');
            out.push(Word {
                text,
                quoted,
                dotted,
            });
            continue;
        } else {
            i += 1;
        }
    }
    out
}

/// What `sql` (one statement) may change.
pub fn classify(sql: &str) -> StatementClass {
    let words = words(sql);
    let bare = |w: &&Word| !w.quoted;
    let Some(first) = words.iter().find(bare) else {
        return StatementClass::Read;
    };
    let first = first.text.as_str();
    // Inside a wrapper only the words that start a writing statement count
    // (a column may be called `comment`, a function `replace`).
    let inner = || {
        let rest: Vec<&str> = words
            .iter()
            .skip(1)
            .filter(bare)
            .map(|w| w.text.as_str())
            .collect();
        if first == "select" {
            return if rest.contains(&"into") {
                StatementClass::Ddl
            } else {
                StatementClass::Read
            };
        }
        if rest.iter().any(|w| WRAPPED_DDL.contains(w)) {
            StatementClass::Ddl
        } else if rest.iter().any(|w| WRAPPED_WRITES.contains(w)) {
            StatementClass::Write
        } else {
            StatementClass::Read
        }
    };
    if WRAPPERS.contains(&first) {
        inner()
    } else if READS.contains(&first) {
        StatementClass::Read
    } else if WRITES.contains(&first) {
        StatementClass::Write
    } else if first == "copy" {
        // COPY ... FROM loads a table; COPY ... TO writes a file on the server.
        let to = words.iter().any(|w| !w.quoted && w.text == "to");
        if to {
            StatementClass::Ddl
        } else {
            StatementClass::Write
        }
    } else {
        StatementClass::Ddl
    }
}

impl Role {
    /// Whether the role may run statements of `class`.
    pub fn allows(self, class: StatementClass) -> bool {
        match self {
            Role::Admin => true,
            Role::Writer => class != StatementClass::Ddl,
            Role::Reader => class == StatementClass::Read,
        }
    }
}

impl Principal {
    /// Whether the principal may use database `name`.
    pub fn may_use(&self, database: &str) -> bool {
        self.databases.is_empty() || self.databases.iter().any(|d| d == database)
    }

    /// Refuses a database the principal may not use.
    pub fn check_database(&self, database: &str) -> Result<(), Denied> {
        if self.may_use(database) {
            Ok(())
        } else {
            Err(Denied(format!(
                "user \"{}\" may not use database \"{database}\"",
                self.name
            )))
        }
    }

    /// Refuses statements of `class` unless the role allows them.
    pub fn check_class(&self, class: StatementClass) -> Result<(), Denied> {
        if self.role.allows(class) {
            Ok(())
        } else {
            Err(Denied(format!(
                "user \"{}\" has role {} and may not run {} statements",
                self.name,
                self.role.name(),
                class.name()
            )))
        }
    }

    /// Decides, before it runs, whether the principal may run `sql` (one
    /// statement): its class must be one the role allows, and a principal
    /// limited to some databases may not name another one of `databases`
    /// (the warehouse's) as a qualifier (`db.t`) or after USE / IN /
    /// DATABASE / SCHEMA.
    pub fn authorize(&self, sql: &str, databases: &[String]) -> Result<(), Denied> {
        self.check_class(classify(sql))?;
        if self.databases.is_empty() {
            return Ok(());
        }
        let words = words(sql);
        for (i, word) in words.iter().enumerate() {
            let after_keyword = i > 0
                && !words[i - 1].quoted
                && matches!(
                    words[i - 1].text.as_str(),
                    "use" | "in" | "database" | "schema"
                );
            let named = word.dotted || after_keyword;
            if named && databases.contains(&word.text) {
                self.check_database(&word.text)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StatementClass::*;

    #[test]
    fn statements_are_classified_before_they_run() {
        for (sql, class) in [
            ("SELECT * FROM t", Read),
            ("  -- c\n/* x */ select 'insert into t' from t", Read),
            ("WITH x AS (SELECT 1) SELECT * FROM x", Read),
            ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", Write),
            ("EXPLAIN SELECT 1", Read),
            ("explain analyze delete from t", Write),
            (
                "EXPLAIN ANALYZE SELECT comment, replace(a, 'x', 'y') FROM t",
                Read,
            ),
            ("SHOW TABLES", Read),
            ("SET statement_timeout = 5", Read),
            ("DECLARE c CURSOR FOR SELECT 1", Read),
            ("INSERT INTO t VALUES (1)", Write),
            ("CALL sys.compact(table => 'db.t')", Write),
            ("COPY t FROM '/x.csv'", Write),
            ("COPY t TO '/x.csv'", Ddl),
            ("CREATE TABLE t (a INT)", Ddl),
            ("drop database d cascade", Ddl),
            ("SELECT * INTO u FROM t", Ddl),
            ("SELECT \"insert\" FROM t", Read),
            ("FROBNICATE", Ddl),
            ("", Read),
        ] {
            assert_eq!(classify(sql), class, "{sql}");
        }
    }

    #[test]
    fn roles_and_databases() {
        let reader = Principal {
            name: "r".into(),
            role: Role::Reader,
            databases: vec!["sales".into()],
        };
        let dbs = vec!["sales".to_string(), "hr".to_string()];
        assert!(reader.authorize("SELECT * FROM t", &dbs).is_ok());
        assert!(reader.authorize("SELECT * FROM sales.t", &dbs).is_ok());
        assert!(reader.authorize("SELECT * FROM hr.t", &dbs).is_err());
        assert!(reader
            .authorize("SELECT * FROM tidelake.\"hr\" . t", &dbs)
            .is_err());
        assert!(reader.authorize("USE hr", &dbs).is_err());
        assert!(reader.authorize("SHOW TABLES IN hr", &dbs).is_err());
        assert!(reader.authorize("SELECT 'hr.t'", &dbs).is_ok());
        let denied = reader
            .authorize("INSERT INTO t VALUES (1)", &dbs)
            .unwrap_err();
        assert_eq!(denied.code(), "42501");
        assert!(denied.to_string().contains("role reader"), "{denied}");
        assert!(Role::Writer.allows(Write) && !Role::Writer.allows(Ddl));
        assert!(Role::Admin.allows(Ddl));
    }
}
