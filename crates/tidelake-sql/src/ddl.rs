//! A parser for the statements sqlparser cannot express in Paimon's shape:
//! `CREATE TABLE ... PARTITIONED BY (...) WITH (...)` with Paimon types, the
//! database statements, `ALTER TABLE ... ADD/SET/RESET`, `SHOW`, `DESCRIBE`
//! and `USE`. It works on sqlparser's tokens, so quoting and comments follow
//! the same rules as every other statement.
//!
//! Unquoted identifiers are folded to lower case, as DataFusion does.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use tidelake_engine::{ColumnSpec, DataType, SchemaChange};

use crate::error::{Position, Result, SqlError};
use crate::lexer::{shift_position, LineIndex, RawStatement};

mod evolution;

/// `[database.]table` as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableName {
    pub database: Option<String>,
    pub table: String,
}

/// A column as `CREATE TABLE` or `ALTER TABLE ... ADD` declares it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub comment: Option<String>,
    pub primary_key: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct CreateTable {
    pub name: TableName,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<String>,
    pub partition_keys: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub comment: Option<String>,
    /// `WATERMARK FOR column AS expression`: the column and the text.
    pub watermark: Option<(String, String)>,
    /// `CREATE TABLE ... AS <query>`: the query's text.
    pub query: Option<String>,
    /// `CREATE TABLE ... LIKE <source>`.
    pub like: Option<TableName>,
}

impl CreateTable {
    /// The column specs for the engine, with the primary key from either
    /// the column constraints or the table constraint.
    pub fn columns_and_key(&self) -> Result<(Vec<ColumnSpec>, Vec<String>)> {
        let inline: Vec<String> = self
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.clone())
            .collect();
        let primary_key = match (inline.is_empty(), self.primary_key.is_empty()) {
            (true, _) => self.primary_key.clone(),
            (false, true) => inline,
            (false, false) => {
                return Err(SqlError::Plan(
                    "the primary key is declared twice (on a column and as a table constraint)"
                        .into(),
                ))
            }
        };
        let columns = self
            .columns
            .iter()
            .map(|c| ColumnSpec {
                name: c.name.clone(),
                data_type: c.data_type.clone(),
                comment: c.comment.clone(),
            })
            .collect();
        Ok((columns, primary_key))
    }
}

/// The statements this module parses.
#[derive(Clone, Debug)]
pub(crate) enum DdlStatement {
    CreateDatabase {
        name: String,
        if_not_exists: bool,
    },
    DropDatabase {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    Use {
        database: String,
    },
    ShowDatabases,
    ShowTables {
        database: Option<String>,
    },
    ShowCreateTable {
        name: TableName,
    },
    Describe {
        name: TableName,
    },
    CreateTable(CreateTable),
    DropTable {
        name: TableName,
        if_exists: bool,
    },
    AlterTable {
        name: TableName,
        changes: Vec<SchemaChange>,
    },
    RenameTable {
        from: TableName,
        to: TableName,
    },
}

/// Whether a statement is one this module parses (by its first words).
pub(crate) fn is_ddl(statement: &RawStatement) -> bool {
    let words: Vec<String> = statement
        .tokens
        .iter()
        .take(2)
        .map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    let second = words.get(1).map(String::as_str).unwrap_or("");
    match first {
        "CREATE" | "DROP" => matches!(second, "DATABASE" | "SCHEMA" | "TABLE"),
        "ALTER" => second == "TABLE",
        "USE" | "SHOW" | "DESCRIBE" | "DESC" => true,
        _ => false,
    }
}

/// Parses a statement for which `is_ddl` holds.
pub(crate) fn parse_ddl(statement: &RawStatement) -> Result<DdlStatement> {
    let mut p = Parser::new(statement);
    let parsed = p.statement()?;
    p.expect_end()?;
    Ok(parsed)
}

/// A parser over a statement's tokens (also used by `crate::partitions`).
pub(crate) struct Parser<'a> {
    statement: &'a RawStatement,
    pub(crate) pos: usize,
    lines: LineIndex<'a>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(statement: &'a RawStatement) -> Self {
        Parser {
            statement,
            pos: 0,
            lines: LineIndex::new(&statement.text),
        }
    }

    fn tokens(&self) -> &'a [TokenWithSpan] {
        &self.statement.tokens
    }

    pub(crate) fn peek(&self) -> Option<&'a Token> {
        self.tokens().get(self.pos).map(|t| &t.token)
    }

    fn peek_at(&self, ahead: usize) -> Option<&'a Token> {
        self.tokens().get(self.pos + ahead).map(|t| &t.token)
    }

    fn position_of(&self, index: usize) -> Option<Position> {
        let loc = match self.tokens().get(index) {
            Some(t) => t.span.start,
            None => self.tokens().last()?.span.end,
        };
        Some(shift_position(
            self.statement.start,
            Position {
                line: loc.line,
                column: loc.column,
            },
        ))
    }

    fn describe_current(&self) -> String {
        match self.peek() {
            None => "the end of the statement".to_string(),
            Some(t) => format!("'{t}'"),
        }
    }

    pub(crate) fn error(&self, expected: &str) -> SqlError {
        SqlError::syntax(
            format!("expected {expected}, found {}", self.describe_current()),
            self.position_of(self.pos),
        )
    }

    fn is_keyword_at(&self, ahead: usize, kw: &str) -> bool {
        matches!(self.peek_at(ahead), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
    }

    pub(crate) fn parse_keyword(&mut self, kw: &str) -> bool {
        if self.is_keyword_at(0, kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn parse_keywords(&mut self, kws: &[&str]) -> bool {
        if kws
            .iter()
            .enumerate()
            .all(|(i, k)| self.is_keyword_at(i, k))
        {
            self.pos += kws.len();
            true
        } else {
            false
        }
    }

    pub(crate) fn expect_keyword(&mut self, kw: &str) -> Result<()> {
        if self.parse_keyword(kw) {
            Ok(())
        } else {
            Err(self.error(kw))
        }
    }

    pub(crate) fn consume(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token) -> Result<()> {
        if self.consume(token) {
            Ok(())
        } else {
            Err(self.error(&format!("'{token}'")))
        }
    }

    pub(crate) fn expect_end(&self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("the end of the statement")),
        }
    }

    pub(crate) fn identifier(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                self.pos += 1;
                Ok(match w.quote_style {
                    Some(_) => w.value.clone(),
                    None => w.value.to_lowercase(),
                })
            }
            _ => Err(self.error(what)),
        }
    }

    fn string_literal(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            Some(Token::DollarQuotedString(d)) => {
                self.pos += 1;
                Ok(d.value.clone())
            }
            _ => Err(self.error(what)),
        }
    }

    pub(crate) fn table_name(&mut self) -> Result<TableName> {
        let first = self.identifier("a table name")?;
        if self.consume(&Token::Period) {
            let table = self.identifier("a table name after '.'")?;
            if self.peek() == Some(&Token::Period) {
                return Err(self.error("a name of the form table or database.table"));
            }
            Ok(TableName {
                database: Some(first),
                table,
            })
        } else {
            Ok(TableName {
                database: None,
                table: first,
            })
        }
    }

    pub(crate) fn if_not_exists(&mut self) -> Result<bool> {
        if self.parse_keyword("IF") {
            self.expect_keyword("NOT")?;
            self.expect_keyword("EXISTS")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    pub(crate) fn if_exists(&mut self) -> Result<bool> {
        if self.parse_keyword("IF") {
            self.expect_keyword("EXISTS")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn statement(&mut self) -> Result<DdlStatement> {
        if self.parse_keyword("CREATE") {
            if self.parse_keyword("DATABASE") || self.parse_keyword("SCHEMA") {
                let if_not_exists = self.if_not_exists()?;
                let name = self.identifier("a database name")?;
                return Ok(DdlStatement::CreateDatabase {
                    name,
                    if_not_exists,
                });
            }
            self.expect_keyword("TABLE")?;
            return self.create_table().map(DdlStatement::CreateTable);
        }
        if self.parse_keyword("DROP") {
            if self.parse_keyword("DATABASE") || self.parse_keyword("SCHEMA") {
                let if_exists = self.if_exists()?;
                let name = self.identifier("a database name")?;
                let cascade = if self.parse_keyword("CASCADE") {
                    true
                } else {
                    self.parse_keyword("RESTRICT");
                    false
                };
                return Ok(DdlStatement::DropDatabase {
                    name,
                    if_exists,
                    cascade,
                });
            }
            self.expect_keyword("TABLE")?;
            let if_exists = self.if_exists()?;
            let name = self.table_name()?;
            return Ok(DdlStatement::DropTable { name, if_exists });
        }
        if self.parse_keyword("ALTER") {
            self.expect_keyword("TABLE")?;
            return self.alter_table();
        }
        if self.parse_keyword("USE") {
            let database = self.identifier("a database name")?;
            return Ok(DdlStatement::Use { database });
        }
        if self.parse_keyword("SHOW") {
            if self.parse_keyword("DATABASES") || self.parse_keyword("SCHEMAS") {
                return Ok(DdlStatement::ShowDatabases);
            }
            if self.parse_keyword("TABLES") {
                let database = if self.parse_keyword("IN") || self.parse_keyword("FROM") {
                    Some(self.identifier("a database name")?)
                } else {
                    None
                };
                return Ok(DdlStatement::ShowTables { database });
            }
            if self.parse_keywords(&["CREATE", "TABLE"]) {
                let name = self.table_name()?;
                return Ok(DdlStatement::ShowCreateTable { name });
            }
            return Err(self.error("DATABASES, TABLES or CREATE TABLE after SHOW"));
        }
        if self.parse_keyword("DESCRIBE") || self.parse_keyword("DESC") {
            self.parse_keyword("TABLE");
            let name = self.table_name()?;
            return Ok(DdlStatement::Describe { name });
        }
        Err(self.error("a statement"))
    }

    fn create_table(&mut self) -> Result<CreateTable> {
        let if_not_exists = self.if_not_exists()?;
        let name = self.table_name()?;
        if self.parse_keyword("LIKE") {
            let source = self.table_name()?;
            return Ok(CreateTable::like(name, if_not_exists, source));
        }
        let mut columns = Vec::new();
        let mut primary_key = Vec::new();
        let mut watermark = None;
        // CREATE TABLE ... AS SELECT may leave out the parentheses.
        let has_body = self.consume(&Token::LParen);
        if !has_body && !self.starts_table_clause() {
            return Err(self.error("'(' or AS"));
        }
        loop {
            if !has_body {
                break;
            }
            if self.is_keyword_at(0, "PRIMARY") || self.is_keyword_at(0, "CONSTRAINT") {
                if !primary_key.is_empty() {
                    return Err(SqlError::syntax(
                        "the table has two PRIMARY KEY constraints",
                        self.position_of(self.pos),
                    ));
                }
                primary_key = self.primary_key_constraint()?;
            } else if self.is_keyword_at(0, "WATERMARK") {
                if watermark.is_some() {
                    return Err(SqlError::syntax(
                        "the table has two WATERMARK clauses",
                        self.position_of(self.pos),
                    ));
                }
                watermark = Some(self.watermark_clause()?);
            } else {
                columns.push(self.column_def(true)?);
            }
            if self.consume(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen)?;
            break;
        }
        let mut table = CreateTable {
            name,
            if_not_exists,
            columns,
            primary_key,
            partition_keys: Vec::new(),
            options: BTreeMap::new(),
            comment: None,
            watermark,
            query: None,
            like: None,
        };
        let (mut seen_comment, mut seen_partition, mut seen_with) = (false, false, false);
        while self.peek().is_some() {
            let start = self.pos;
            if self.parse_keyword("COMMENT") && !seen_comment {
                seen_comment = true;
                table.comment = Some(self.string_literal("a quoted comment")?);
            } else if self.parse_keywords(&["PARTITIONED", "BY"]) && !seen_partition {
                seen_partition = true;
                table.partition_keys = self.name_list()?;
                if table.partition_keys.is_empty() {
                    return Err(self.error("at least one partition column"));
                }
            } else if self.parse_keyword("WITH") && !seen_with {
                seen_with = true;
                table.options = self.options()?;
            } else if self.parse_keyword("AS") {
                table.query = Some(self.rest_as_query()?);
            } else if self.spark_clause(&mut table)? {
            } else {
                self.pos = start;
                return Err(self.error("COMMENT, PARTITIONED BY, WITH (each at most once) or AS"));
            }
        }
        self.finish_create(&mut table, has_body)?;
        Ok(table)
    }

    /// `[CONSTRAINT name] PRIMARY KEY (a, b) [NOT ENFORCED]`.
    fn primary_key_constraint(&mut self) -> Result<Vec<String>> {
        if self.parse_keyword("CONSTRAINT") {
            self.identifier("a constraint name")?;
        }
        self.expect_keyword("PRIMARY")?;
        self.expect_keyword("KEY")?;
        let keys = self.name_list()?;
        if keys.is_empty() {
            return Err(self.error("at least one primary key column"));
        }
        self.parse_keywords(&["NOT", "ENFORCED"]);
        Ok(keys)
    }

    /// `WATERMARK FOR column AS expression`: the expression is every token
    /// up to a `,` or `)` at nesting depth zero, kept as text (checked when
    /// the table is created, against the column's type).
    fn watermark_clause(&mut self) -> Result<(String, String)> {
        self.expect_keyword("WATERMARK")?;
        self.expect_keyword("FOR")?;
        let column = self.identifier("the watermark's time column")?;
        self.expect_keyword("AS")?;
        let start = self.pos;
        let mut depth: i64 = 0;
        while let Some(tok) = self.peek() {
            match tok {
                Token::Comma | Token::RParen if depth == 0 => break,
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ => {}
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("a watermark expression"));
        }
        Ok((column, self.text_between(start, self.pos)?))
    }

    /// `(a, b, ...)`: identifiers in parentheses.
    fn name_list(&mut self) -> Result<Vec<String>> {
        self.expect(&Token::LParen)?;
        let mut names = Vec::new();
        if self.consume(&Token::RParen) {
            return Ok(names);
        }
        loop {
            names.push(self.identifier("a column name")?);
            if self.consume(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen)?;
            return Ok(names);
        }
    }

    /// `('k' = 'v', ...)`.
    fn options(&mut self) -> Result<BTreeMap<String, String>> {
        self.expect(&Token::LParen)?;
        let mut options = BTreeMap::new();
        if self.consume(&Token::RParen) {
            return Ok(options);
        }
        loop {
            let at = self.position_of(self.pos);
            let key = self.string_literal("a quoted option name such as 'bucket'")?;
            self.expect(&Token::Eq)?;
            let value = self.option_value()?;
            if options.insert(key.clone(), value).is_some() {
                return Err(SqlError::syntax(
                    format!("option '{key}' is given twice"),
                    at,
                ));
            }
            if self.consume(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen)?;
            return Ok(options);
        }
    }

    /// Option values are quoted strings; plain numbers and words are
    /// accepted too (`'bucket' = 2`), as their text.
    fn option_value(&mut self) -> Result<String> {
        match self.peek() {
            Some(Token::Number(n, _)) => {
                self.pos += 1;
                Ok(n.clone())
            }
            Some(Token::Word(w)) if w.quote_style.is_none() => {
                self.pos += 1;
                Ok(w.value.clone())
            }
            _ => self.string_literal("a quoted option value"),
        }
    }

    /// `name type [NOT NULL | NULL] [PRIMARY KEY [NOT ENFORCED]] [COMMENT '...']`.
    fn column_def(&mut self, allow_primary_key: bool) -> Result<ColumnDef> {
        let name = self.identifier("a column name")?;
        let data_type = self.data_type()?;
        let mut column = ColumnDef {
            name,
            data_type,
            comment: None,
            primary_key: false,
        };
        loop {
            if self.parse_keywords(&["NOT", "NULL"]) {
                column.data_type = column.data_type.with_nullable(false);
            } else if self.parse_keyword("NULL") {
                column.data_type = column.data_type.with_nullable(true);
            } else if allow_primary_key && self.parse_keywords(&["PRIMARY", "KEY"]) {
                column.primary_key = true;
                self.parse_keywords(&["NOT", "ENFORCED"]);
            } else if self.parse_keyword("COMMENT") {
                column.comment = Some(self.string_literal("a quoted column comment")?);
            } else {
                return Ok(column);
            }
        }
    }

    /// A type is every token up to a `,` or `)` at nesting depth zero, or a
    /// column constraint keyword; its text goes to the format's type parser.
    fn data_type(&mut self) -> Result<DataType> {
        let start = self.pos;
        let mut depth: i64 = 0;
        while let Some(tok) = self.peek() {
            let stop = depth == 0
                && (matches!(tok, Token::Comma | Token::RParen)
                    || (self.is_keyword_at(0, "NOT") && self.is_keyword_at(1, "NULL"))
                    || self.is_keyword_at(0, "NULL")
                    || (self.is_keyword_at(0, "PRIMARY") && self.is_keyword_at(1, "KEY"))
                    || self.is_keyword_at(0, "COMMENT")
                    || self.is_keyword_at(0, "FIRST")
                    || self.is_keyword_at(0, "AFTER"));
            if stop {
                break;
            }
            match tok {
                Token::LParen | Token::Lt => depth += 1,
                Token::RParen | Token::Gt => depth -= 1,
                Token::ShiftRight => depth -= 2,
                Token::Neq => {} // `<>` in `ROW<>`: opens and closes
                _ => {}
            }
            if depth < 0 {
                return Err(SqlError::syntax(
                    "unbalanced brackets in a data type",
                    self.position_of(self.pos),
                ));
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("a data type"));
        }
        let text = self.text_between(start, self.pos)?;
        let position = self.position_of(start);
        DataType::parse_sql(&text).map_err(|e| SqlError::UndefinedType {
            text: text.clone(),
            message: e.to_string(),
            position,
        })
    }

    /// The source text of tokens `[from, to)`.
    fn text_between(&self, from: usize, to: usize) -> Result<String> {
        let tokens = self.tokens();
        let (Some(first), Some(last)) = (tokens.get(from), tokens.get(to.saturating_sub(1))) else {
            return Err(SqlError::Internal("empty token range".into()));
        };
        let start = self.lines.offset(first.span.start);
        let end = self.lines.offset(last.span.end);
        match (start, end) {
            (Some(s), Some(e)) if s <= e => Ok(self.statement.text[s..e].to_string()),
            _ => Err(SqlError::Internal(
                "token positions outside the statement".into(),
            )),
        }
    }

    fn alter_table(&mut self) -> Result<DdlStatement> {
        let name = self.table_name()?;
        let mut changes = Vec::new();
        if let Some(statement) = self.evolution_changes(&name)? {
            return Ok(statement);
        }
        if self.parse_keyword("ADD") {
            self.column_changes(Self::added_column, &mut changes)?;
        } else if self.parse_keyword("SET") {
            for (key, value) in self.options()? {
                changes.push(SchemaChange::SetOption { key, value });
            }
        } else if self.parse_keyword("RESET") {
            self.expect(&Token::LParen)?;
            loop {
                let key = self.string_literal("a quoted option name")?;
                changes.push(SchemaChange::RemoveOption { key });
                if self.consume(&Token::Comma) {
                    continue;
                }
                self.expect(&Token::RParen)?;
                break;
            }
        } else {
            return Err(
                self.error("ADD, DROP, RENAME, ALTER, MODIFY, SET or RESET after ALTER TABLE name")
            );
        }
        if changes.is_empty() {
            return Err(self.error("at least one change"));
        }
        Ok(DdlStatement::AlterTable { name, changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::split_statements;
    use tidelake_engine::DataTypeKind;

    pub(super) fn parse(sql: &str) -> Result<DdlStatement> {
        let statements = split_statements(sql)?;
        assert_eq!(statements.len(), 1);
        assert!(is_ddl(&statements[0]), "{sql}");
        parse_ddl(&statements[0])
    }

    fn create(sql: &str) -> CreateTable {
        match parse(sql).unwrap() {
            DdlStatement::CreateTable(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_table_in_paimon_shape() {
        let c = create(
            "CREATE TABLE IF NOT EXISTS Db.Orders (\n  id BIGINT NOT NULL, dt STRING NOT NULL COMMENT 'day',\n  amount DECIMAL(10, 2), \"Ts\" TIMESTAMP(3),\n  PRIMARY KEY (id, dt) NOT ENFORCED\n) COMMENT 'orders' PARTITIONED BY (dt) WITH ('bucket' = '2', 'file.format' = 'parquet')",
        );
        assert_eq!(
            c.name,
            TableName {
                database: Some("db".into()),
                table: "orders".into()
            }
        );
        assert!(c.if_not_exists);
        let names: Vec<&str> = c.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["id", "dt", "amount", "Ts"]);
        assert!(!c.columns[0].data_type.is_nullable());
        assert!(c.columns[2].data_type.is_nullable());
        assert_eq!(
            c.columns[2].data_type.kind,
            DataTypeKind::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(c.columns[3].data_type.kind, DataTypeKind::Timestamp(3));
        assert_eq!(c.columns[1].comment.as_deref(), Some("day"));
        assert_eq!(c.primary_key, vec!["id", "dt"]);
        assert_eq!(c.partition_keys, vec!["dt"]);
        assert_eq!(c.comment.as_deref(), Some("orders"));
        assert_eq!(c.options.get("bucket").map(String::as_str), Some("2"));
        assert_eq!(c.options.len(), 2);
    }

    #[test]
    fn nested_types_keep_their_commas_and_not_nulls() {
        let c = create("CREATE TABLE t (a ARRAY<INT NOT NULL>, m MAP<STRING, ARRAY<BIGINT>> NOT NULL, r ROW<x INT, y STRING>)");
        assert_eq!(c.columns.len(), 3);
        match &c.columns[0].data_type.kind {
            DataTypeKind::Array(inner) => assert!(!inner.is_nullable()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.columns[1].data_type.kind, DataTypeKind::Map(..)));
        assert!(!c.columns[1].data_type.is_nullable());
        match &c.columns[2].data_type.kind {
            DataTypeKind::Row(fields) => assert_eq!(fields.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inline_primary_key() {
        let c = create("create table t (id INT PRIMARY KEY NOT ENFORCED, v STRING)");
        let (cols, pk) = c.columns_and_key().unwrap();
        assert_eq!(pk, vec!["id"]);
        assert_eq!(cols.len(), 2);
        let twice = create("create table t (id INT PRIMARY KEY, v STRING, PRIMARY KEY (id))");
        assert_eq!(twice.columns_and_key().unwrap_err().code(), "42000");
    }

    #[test]
    fn syntax_errors_point_at_the_token() {
        let e = parse("CREATE TABLE t (id INT,\n  PRIMARY KEY id)").unwrap_err();
        assert_eq!(e.code(), "42601");
        assert_eq!(
            e.to_string(),
            "syntax error at line 2, column 15: expected '(', found 'id'"
        );
        let e = parse("CREATE TABLE t (id INT) WITH ('a' = '1') WITH ('b' = '2')").unwrap_err();
        assert!(e.to_string().contains("each at most once"), "{e}");
        let e = parse("CREATE TABLE t (id INT").unwrap_err();
        assert!(
            e.to_string().contains("found the end of the statement"),
            "{e}"
        );
        let e = parse("CREATE TABLE t (id INT) WITH ('a' = '1', 'a' = '2')").unwrap_err();
        assert!(e.to_string().contains("option 'a' is given twice"), "{e}");
    }

    #[test]
    fn unknown_types_are_reported_with_their_text() {
        let e = parse("CREATE TABLE t (id NOSUCHTYPE(3))").unwrap_err();
        assert_eq!(e.code(), "42704");
        assert!(e.to_string().contains("NOSUCHTYPE(3)"), "{e}");
    }

    #[test]
    fn database_statements() {
        assert!(matches!(
            parse("CREATE DATABASE IF NOT EXISTS Sales").unwrap(),
            DdlStatement::CreateDatabase { name, if_not_exists: true } if name == "sales"
        ));
        assert!(matches!(
            parse("DROP SCHEMA IF EXISTS sales CASCADE").unwrap(),
            DdlStatement::DropDatabase { name, if_exists: true, cascade: true } if name == "sales"
        ));
        assert!(
            matches!(parse("USE \"Mixed\"").unwrap(), DdlStatement::Use { database } if database == "Mixed")
        );
        assert!(matches!(
            parse("SHOW DATABASES").unwrap(),
            DdlStatement::ShowDatabases
        ));
        assert!(matches!(
            parse("SHOW TABLES IN sales").unwrap(),
            DdlStatement::ShowTables { database: Some(d) } if d == "sales"
        ));
        assert!(matches!(
            parse("DESCRIBE sales.orders").unwrap(),
            DdlStatement::Describe { name } if name == TableName { database: Some("sales".into()), table: "orders".into() }
        ));
        assert!(parse("SHOW FUNCTIONS").is_err());
        assert!(parse("DROP TABLE a.b.c").is_err());
    }

    #[test]
    fn alter_table_changes() {
        match parse("ALTER TABLE t ADD (c INT COMMENT 'x', d STRING)").unwrap() {
            DdlStatement::AlterTable { changes, .. } => {
                assert_eq!(changes.len(), 2);
                assert!(
                    matches!(&changes[0], SchemaChange::AddColumn { name, comment: Some(c), .. } if name == "c" && c == "x")
                );
            }
            other => panic!("{other:?}"),
        }
        match parse("ALTER TABLE t ADD COLUMN c INT").unwrap() {
            DdlStatement::AlterTable { changes, .. } => assert_eq!(changes.len(), 1),
            other => panic!("{other:?}"),
        }
        match parse("ALTER TABLE t SET ('k' = 'v')").unwrap() {
            DdlStatement::AlterTable { changes, .. } => {
                assert!(
                    matches!(&changes[0], SchemaChange::SetOption { key, value } if key == "k" && value == "v")
                )
            }
            other => panic!("{other:?}"),
        }
        match parse("ALTER TABLE t RESET ('k', 'j')").unwrap() {
            DdlStatement::AlterTable { changes, .. } => assert_eq!(changes.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_statements_are_not_ddl() {
        for sql in [
            "SELECT 1",
            "INSERT INTO t VALUES (1)",
            "CREATE VIEW v AS SELECT 1",
            "DELETE FROM t",
        ] {
            let s = &split_statements(sql).unwrap()[0];
            assert!(!is_ddl(s), "{sql}");
        }
    }
}
