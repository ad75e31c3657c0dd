//! Statement text that the streaming `SELECT` and the jobs read alike: a
//! Flink-style `/*+ OPTIONS(...) */` hint and identifiers.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::Ident;
use tidelake_sql::{Result, SqlError};

/// An identifier as DataFusion resolves it: unquoted ones lowercased.
pub(crate) fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// Removes a `/*+ OPTIONS('k'='v', ...) */` hint from the statement and
/// returns its options.
pub(crate) fn extract_options_hint(sql: &str) -> Result<(String, BTreeMap<String, String>)> {
    let mut options = BTreeMap::new();
    let Some(start) = sql.find("/*+") else {
        return Ok((sql.to_string(), options));
    };
    let end = sql[start..]
        .find("*/")
        .map(|e| start + e + 2)
        .ok_or_else(|| SqlError::Syntax {
            message: "unterminated hint '/*+ ...'".into(),
            position: None,
        })?;
    let body = sql[start + 3..end - 2].trim();
    let bad = |why: &str| SqlError::Syntax {
        message: format!("hint '/*+ {body} */': {why} (expected OPTIONS('key'='value', ...))"),
        position: None,
    };
    let inner = body
        .strip_prefix("OPTIONS")
        .or_else(|| body.strip_prefix("options"))
        .map(str::trim_start)
        .and_then(|b| b.strip_prefix('('))
        .and_then(|b| b.trim_end().strip_suffix(')'))
        .ok_or_else(|| bad("not an OPTIONS hint"))?;
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = quoted(rest).ok_or_else(|| bad("a key must be a quoted string"))?;
        let after = after
            .trim_start()
            .strip_prefix('=')
            .ok_or_else(|| bad("missing '='"))?;
        let (value, after) =
            quoted(after.trim_start()).ok_or_else(|| bad("a value must be a quoted string"))?;
        options.insert(key, value);
        rest = after.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(bad("options must be separated by ','"));
        }
    }
    let mut cleaned = String::with_capacity(sql.len());
    cleaned.push_str(&sql[..start]);
    cleaned.push(' ');
    cleaned.push_str(&sql[end..]);
    Ok((cleaned, options))
}

/// A single-quoted SQL string at the start of `text` ('' escapes a quote),
/// and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut chars = text.strip_prefix('\'')?.char_indices().peekable();
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|(_, n)| *n) == Some('\'') {
                value.push('\'');
                chars.next();
                continue;
            }
            return Some((value, &text[i + 2..]));
        }
        value.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_carry_options() {
        let (sql, options) = extract_options_hint(
            "SELECT * FROM t /*+ OPTIONS('scan.mode'='from-snapshot', 'scan.snapshot-id' = '3', 'x'='it''s') */ WHERE id > 1",
        )
        .unwrap();
        assert_eq!(sql, "SELECT * FROM t   WHERE id > 1");
        assert_eq!(options["scan.mode"], "from-snapshot");
        assert_eq!(options["scan.snapshot-id"], "3");
        assert_eq!(options["x"], "it's");
        assert!(extract_options_hint("SELECT 1 /*+ OPTIONS('a') */").is_err());
        assert!(extract_options_hint("SELECT 1 /*+ BROADCAST(t) */").is_err());
        assert!(extract_options_hint("SELECT 1 /*+ OPTIONS('a'='b'").is_err());
        assert_eq!(extract_options_hint("SELECT 1").unwrap().1.len(), 0);
    }
}
