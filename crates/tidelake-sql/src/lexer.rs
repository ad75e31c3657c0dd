//! Splitting SQL text into statements and tokens, with positions. The
//! tokenizer is sqlparser's (PostgreSQL dialect), so quoting, comments and
//! dollar-quoted strings behave exactly as the DataFusion parser sees them.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{
    Location, Token, TokenWithSpan, Tokenizer, Whitespace,
};

use crate::error::{Position, Result, SqlError};

/// One statement of a script: its text and its significant tokens (no
/// whitespace or comments, no trailing `;`).
#[derive(Clone, Debug)]
pub(crate) struct RawStatement {
    pub text: String,
    pub tokens: Vec<TokenWithSpan>,
    /// Where the statement starts in the whole script.
    pub start: Position,
}

impl RawStatement {
    /// The statement text with time travel (`table VERSION AS OF n`, see
    /// `catalog::time_travel_clause`) rewritten to the table names our
    /// catalog resolves (`table$snapshot_n`), and `` `backquoted` ``
    /// identifiers (as Flink and Spark write `` `t$files` ``) double-quoted.
    pub fn text_for_datafusion(&self) -> String {
        match backquotes_to_double_quotes(&self.text, &self.tokens) {
            Some(text) => match tokenize(&text) {
                Ok(tokens) => {
                    let tokens: Vec<TokenWithSpan> = tokens
                        .into_iter()
                        .filter(|t| is_significant(&t.token))
                        .collect();
                    rewrite_time_travel(&text, &tokens)
                }
                Err(_) => rewrite_time_travel(&self.text, &self.tokens),
            },
            None => rewrite_time_travel(&self.text, &self.tokens),
        }
    }
}

fn rewrite_time_travel(text: &str, tokens: &[TokenWithSpan]) -> String {
    let mut out = String::new();
    let lines = LineIndex::new(text);
    let mut copied_to = 0usize;
    let mut i = 0usize;
    while i < tokens.len() {
        if let Some((suffix, consumed)) = crate::catalog::time_travel_clause(tokens, i) {
            if i > 0 {
                if let Token::Word(table) = &tokens[i - 1].token {
                    // Relative positions: the tokens were re-located to this text.
                    let name_start = lines.offset(tokens[i - 1].span.start);
                    let clause_end = lines.offset(tokens[i + consumed - 1].span.end);
                    if let (Some(name_start), Some(clause_end)) = (name_start, clause_end) {
                        out.push_str(&text[copied_to..name_start]);
                        out.push_str(&crate::catalog::suffixed_table_name(table, &suffix));
                        copied_to = clause_end;
                        i += consumed;
                        continue;
                    }
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[copied_to..]);
    out
}

/// The text with each `` `name` `` as `"name"`; None when there is none.
fn backquotes_to_double_quotes(text: &str, tokens: &[TokenWithSpan]) -> Option<String> {
    let ticks: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| t.token == Token::Char('`'))
        .collect();
    if ticks.len() < 2 {
        return None;
    }
    let lines = LineIndex::new(text);
    let mut out = String::new();
    let mut copied_to = 0usize;
    for pair in ticks.chunks_exact(2) {
        let open = lines.offset(pair[0].span.start)?;
        let close = lines.offset(pair[1].span.start)?;
        let inner = text.get(open + 1..close)?;
        out.push_str(&text[copied_to..open]);
        out.push('"');
        out.push_str(&inner.replace('"', "\"\""));
        out.push('"');
        copied_to = close + 1;
    }
    out.push_str(&text[copied_to..]);
    Some(out)
}

/// Maps line/column locations to byte offsets of a text.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, line_starts }
    }

    /// Byte offset of a 1-based location (columns count characters).
    pub fn offset(&self, loc: Location) -> Option<usize> {
        let line_start = *self
            .line_starts
            .get(usize::try_from(loc.line).ok()?.checked_sub(1)?)?;
        let column = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let rest = &self.text[line_start..];
        match rest.char_indices().nth(column) {
            Some((i, _)) => Some(line_start + i),
            None if rest.chars().count() == column => Some(self.text.len()),
            None => None,
        }
    }
}

pub(crate) fn tokenize(text: &str) -> Result<Vec<TokenWithSpan>> {
    let dialect = PostgreSqlDialect {};
    Tokenizer::new(&dialect, text)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| {
            let position = (e.location.line > 0).then_some(Position {
                line: e.location.line,
                column: e.location.column,
            });
            SqlError::syntax(e.message.clone(), position)
        })
}

fn is_significant(t: &Token) -> bool {
    !matches!(t, Token::Whitespace(_) | Token::EOF)
}

/// Splits a script into its statements; empty statements (`;;`) are dropped.
pub(crate) fn split_statements(script: &str) -> Result<Vec<RawStatement>> {
    let tokens = tokenize(script)?;
    let index = LineIndex::new(script);
    let mut statements = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let mut flush = |current: &mut Vec<TokenWithSpan>, end: Option<Location>| -> Result<()> {
        if current.is_empty() {
            return Ok(());
        }
        let first = current[0].span.start;
        let start = index.offset(first).ok_or_else(|| {
            SqlError::Internal(format!("token location {first} is outside the text"))
        })?;
        let end = match end {
            Some(loc) => index.offset(loc).unwrap_or(script.len()),
            None => script.len(),
        };
        let text = script[start..end].trim_end().to_string();
        // Re-tokenize the slice so spans are relative to the statement text.
        let tokens: Vec<TokenWithSpan> = tokenize(&text)?
            .into_iter()
            .filter(|t| is_significant(&t.token))
            .collect();
        statements.push(RawStatement {
            text,
            tokens,
            start: Position {
                line: first.line,
                column: first.column,
            },
        });
        current.clear();
        Ok(())
    };
    for t in tokens {
        match &t.token {
            Token::SemiColon => flush(&mut current, Some(t.span.start))?,
            tok if is_significant(tok) => current.push(t),
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_),
            ) => {}
            _ => {}
        }
    }
    flush(&mut current, None)?;
    Ok(statements)
}

/// Whether `text` ends with a complete statement: its last significant
/// token is a `;` outside strings and comments. Text that does not tokenize
/// (an unterminated string, say) is incomplete.
pub fn statement_is_complete(text: &str) -> bool {
    match tokenize(text) {
        Ok(tokens) => tokens
            .iter()
            .rev()
            .find(|t| is_significant(&t.token))
            .is_some_and(|t| t.token == Token::SemiColon),
        Err(_) => false,
    }
}

/// Shifts a position inside a statement to a position in the whole script.
pub(crate) fn shift_position(statement_start: Position, inner: Position) -> Position {
    if inner.line <= 1 {
        Position {
            line: statement_start.line,
            column: statement_start.column + inner.column.saturating_sub(1),
        }
    } else {
        Position {
            line: statement_start.line + inner.line - 1,
            column: inner.column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_on_semicolons_outside_strings_and_comments() {
        let script = "SELECT 'a;b'; -- c;\n/* d; */ SELECT 2;\n\n;  SELECT \"x;y\" FROM t";
        let parts = split_statements(script).unwrap();
        let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            vec!["SELECT 'a;b'", "SELECT 2", "SELECT \"x;y\" FROM t"]
        );
        assert_eq!(
            parts[1].start,
            Position {
                line: 2,
                column: 10
            }
        );
        assert_eq!(parts[0].tokens.len(), 2);
    }

    #[test]
    fn unterminated_strings_are_syntax_errors_with_a_position() {
        let err = split_statements("SELECT 1;\nSELECT 'oops").unwrap_err();
        assert_eq!(err.code(), "42601");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn version_as_of_becomes_a_snapshot_table_name() {
        let s = &split_statements(
            "SELECT * FROM db.Orders VERSION AS OF 12 o WHERE x = 'VERSION AS OF 1'",
        )
        .unwrap()[0];
        assert_eq!(
            s.text_for_datafusion(),
            "SELECT * FROM db.Orders$snapshot_12 o WHERE x = 'VERSION AS OF 1'"
        );
        let q = &split_statements("SELECT * FROM \"My\"\"T\" VERSION AS OF 3").unwrap()[0];
        assert_eq!(
            q.text_for_datafusion(),
            "SELECT * FROM \"My\"\"T$snapshot_3\""
        );
        let untouched = &split_statements("SELECT version FROM t").unwrap()[0];
        assert_eq!(untouched.text_for_datafusion(), "SELECT version FROM t");
    }

    #[test]
    fn offsets_count_characters_per_line() {
        let idx = LineIndex::new("é1\nab");
        assert_eq!(idx.offset(Location::new(1, 2)), Some(2));
        assert_eq!(idx.offset(Location::new(2, 2)), Some(5));
        assert_eq!(idx.offset(Location::new(2, 3)), Some(6));
        assert_eq!(idx.offset(Location::new(3, 1)), None);
    }

    #[test]
    fn completeness_ignores_semicolons_in_strings_and_comments() {
        assert!(statement_is_complete("SELECT 1;"));
        assert!(statement_is_complete("SELECT 1; -- done"));
        assert!(!statement_is_complete("SELECT ';'"));
        assert!(!statement_is_complete("SELECT 1 -- ;"));
        assert!(!statement_is_complete("SELECT 'abc;"));
        assert!(!statement_is_complete(""));
    }

    #[test]
    fn positions_shift_to_the_script() {
        let start = Position { line: 3, column: 5 };
        assert_eq!(
            shift_position(start, Position { line: 1, column: 4 }),
            Position { line: 3, column: 8 }
        );
        assert_eq!(
            shift_position(start, Position { line: 2, column: 4 }),
            Position { line: 4, column: 4 }
        );
    }
}
