//! Flink's table hint `t /*+ OPTIONS('branch' = 'dev') */`, which reads or
//! writes a branch as Paimon's `t$branch_dev` does. sqlparser drops comments,
//! so the hint is applied to the text before DataFusion parses it: the table
//! name right before the hint becomes `t$branch_dev`.
//!
//! Other options in such a hint are left alone (streaming statements read
//! theirs in `tidelake-stream` before the text gets here). A hint that is
//! not `OPTIONS('key' = 'value', ...)` is refused: it may have meant to
//! name a branch, and ignoring it would write to main.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::catalog::{suffixed_table_name, BRANCH_SUFFIX};
use crate::error::{Result, SqlError};
use crate::lexer::{tokenize, LineIndex};

/// The option that selects a branch.
const BRANCH_OPTION: &str = "branch";

fn bad_hint(body: &str, why: &str) -> SqlError {
    SqlError::syntax(
        format!("hint '/*{body}*/': {why} (expected OPTIONS('key' = 'value', ...))"),
        None,
    )
}

/// The options of a hint body (the comment text after `/*`, starting with '+').
fn hint_options(body: &str) -> Result<BTreeMap<String, String>> {
    let inner = body[1..].trim();
    let dialect = PostgreSqlDialect {};
    let tokens: Vec<Token> = Tokenizer::new(&dialect, inner)
        .tokenize()
        .map_err(|e| bad_hint(body, &e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .collect();
    let opens = matches!(tokens.first(), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("options"))
        && tokens.get(1) == Some(&Token::LParen)
        && tokens.last() == Some(&Token::RParen);
    if !opens {
        return Err(bad_hint(body, "not an OPTIONS hint"));
    }
    let mut options = BTreeMap::new();
    let pairs = &tokens[2..tokens.len() - 1];
    for (i, pair) in pairs.split(|t| *t == Token::Comma).enumerate() {
        match pair {
            [] if i == 0 && pairs.is_empty() => {}
            [Token::SingleQuotedString(k), Token::Eq, Token::SingleQuotedString(v)] => {
                options.insert(k.clone(), v.clone());
            }
            _ => return Err(bad_hint(body, "each option must be 'key' = 'value'")),
        }
    }
    Ok(options)
}

/// Whether the word at `i` is a table name: it follows `FROM`, `JOIN`,
/// `INTO`, `UPDATE`, `TABLE`, a ',' or a '.' (`db.t`).
fn names_a_table(
    tokens: &[datafusion::sql::sqlparser::tokenizer::TokenWithSpan],
    i: usize,
) -> bool {
    let before = tokens[..i]
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| &t.token);
    match before {
        Some(Token::Period | Token::Comma) => true,
        Some(Token::Word(w)) if w.quote_style.is_none() => {
            ["from", "join", "into", "update", "table"]
                .iter()
                .any(|k| w.value.eq_ignore_ascii_case(k))
        }
        _ => false,
    }
}

/// The text with every `name /*+ OPTIONS('branch' = 'b') */` applied as
/// `name$branch_b`; `None` when nothing changes.
pub(crate) fn apply_branch_hints(text: &str) -> Result<Option<String>> {
    if !text.contains("/*+") {
        return Ok(None);
    }
    let tokens = tokenize(text)?;
    let lines = LineIndex::new(text);
    let mut out = String::new();
    let mut copied_to = 0usize;
    let mut previous: Option<usize> = None;
    for (i, t) in tokens.iter().enumerate() {
        let body = match &t.token {
            Token::Whitespace(Whitespace::MultiLineComment(body)) if body.starts_with('+') => body,
            Token::Whitespace(_) | Token::EOF => continue,
            _ => {
                previous = Some(i);
                continue;
            }
        };
        let options = hint_options(body)?;
        let Some(branch) = options.get(BRANCH_OPTION) else {
            continue;
        };
        let Some(Token::Word(table)) = previous
            .filter(|p| names_a_table(&tokens, *p))
            .map(|p| &tokens[p].token)
        else {
            return Err(bad_hint(
                body,
                "an OPTIONS hint with 'branch' must follow a table name",
            ));
        };
        if table.value.contains(BRANCH_SUFFIX) {
            return Err(bad_hint(
                body,
                &format!("'{}' already names a branch", table.value),
            ));
        }
        if branch == tidelake_engine::MAIN_BRANCH {
            continue;
        }
        let word = &tokens[previous.unwrap_or_default()];
        let (Some(start), Some(end)) = (lines.offset(word.span.start), lines.offset(word.span.end))
        else {
            return Err(SqlError::Internal(format!(
                "could not locate table name '{}' of a hint",
                table.value
            )));
        };
        out.push_str(&text[copied_to..start]);
        out.push_str(&suffixed_table_name(
            table,
            &format!("{BRANCH_SUFFIX}{branch}"),
        ));
        copied_to = end;
    }
    if copied_to == 0 {
        return Ok(None);
    }
    out.push_str(&text[copied_to..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(sql: &str) -> String {
        apply_branch_hints(sql)
            .unwrap()
            .unwrap_or_else(|| sql.to_string())
    }

    #[test]
    fn branch_hints_become_names() {
        assert_eq!(
            applied("INSERT INTO t /*+ OPTIONS('branch' = 'dev') */ VALUES (1)"),
            "INSERT INTO t$branch_dev /*+ OPTIONS('branch' = 'dev') */ VALUES (1)"
        );
        assert_eq!(
            applied("SELECT * FROM db.T /*+ OPTIONS('branch'='Dev-2', 'x'='y') */ WHERE a = 1"),
            "SELECT * FROM db.\"t$branch_Dev-2\" /*+ OPTIONS('branch'='Dev-2', 'x'='y') */ WHERE a = 1"
        );
        assert_eq!(
            applied("SELECT * FROM t /*+ OPTIONS('scan.mode'='latest') */"),
            "SELECT * FROM t /*+ OPTIONS('scan.mode'='latest') */"
        );
        assert_eq!(
            applied("SELECT * FROM t /*+ OPTIONS('branch'='main') */"),
            "SELECT * FROM t /*+ OPTIONS('branch'='main') */"
        );
        assert_eq!(
            applied("SELECT 1 /* plain comment */"),
            "SELECT 1 /* plain comment */"
        );
    }

    #[test]
    fn bad_hints_are_refused() {
        for sql in [
            "INSERT INTO t /*+ OPTIONS('branch') */ VALUES (1)",
            "INSERT INTO t /*+ BRANCH('dev') */ VALUES (1)",
            "INSERT INTO t$branch_a /*+ OPTIONS('branch'='b') */ VALUES (1)",
            "SELECT /*+ OPTIONS('branch'='b') */ 1",
        ] {
            assert!(apply_branch_hints(sql).is_err(), "{sql}");
        }
    }
}
