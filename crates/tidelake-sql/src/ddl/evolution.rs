//! The DDL of schema evolution, parsed with the tokens of [`super::Parser`]:
//! `CREATE TABLE ... AS <query>` and `CREATE TABLE ... LIKE`, Paimon's
//! `'primary-key'` and `'partition'` options, Spark's `USING paimon` and
//! `TBLPROPERTIES (...)`, and the `ALTER TABLE` forms of Flink and Spark:
//!
//! - `RENAME TO [db.]name`, `RENAME [COLUMN] a TO b`
//! - `DROP [COLUMN] c`, `DROP (a, b)`, `DROP COLUMNS (a, b)`
//! - `ALTER [COLUMN] c` followed by `TYPE t` / `SET DATA TYPE t`,
//!   `COMMENT '...'`, `FIRST` / `AFTER x`, `SET NOT NULL` / `DROP NOT NULL`
//! - `MODIFY c t [NOT NULL] [COMMENT '...'] [FIRST | AFTER x]`, `MODIFY (...)`
//! - `ADD [COLUMN] c t ... [FIRST | AFTER x]`, `ADD [COLUMNS] (...)`
//!   (positions on ADD).

use datafusion::sql::sqlparser::tokenizer::Token;
use tidelake_engine::{ColumnPosition, SchemaChange};

use super::{CreateTable, DdlStatement, Parser, TableName};
use crate::error::{Result, SqlError};

/// Paimon's table options that declare the primary key and the partition
/// columns (comma separated) instead of the DDL clauses.
const PRIMARY_KEY_OPTION: &str = "primary-key";
const PARTITION_OPTION: &str = "partition";

impl CreateTable {
    pub(super) fn like(name: TableName, if_not_exists: bool, source: TableName) -> CreateTable {
        CreateTable {
            name,
            if_not_exists,
            columns: Vec::new(),
            primary_key: Vec::new(),
            partition_keys: Vec::new(),
            options: Default::default(),
            comment: None,
            watermark: None,
            query: None,
            like: Some(source),
        }
    }

    /// Moves Paimon's `'primary-key'` and `'partition'` options into the
    /// key lists (Paimon keeps them out of the stored options); a key given
    /// both ways is refused, as Paimon does.
    fn take_key_options(&mut self) -> Result<()> {
        let inline_key = self.columns.iter().any(|c| c.primary_key);
        for (option, clause) in [
            (PRIMARY_KEY_OPTION, "PRIMARY KEY"),
            (PARTITION_OPTION, "PARTITIONED BY"),
        ] {
            let Some(value) = self.options.remove(option) else {
                continue;
            };
            let names: Vec<String> = value
                .split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect();
            let target = if option == PRIMARY_KEY_OPTION {
                &mut self.primary_key
            } else {
                &mut self.partition_keys
            };
            let twice = !target.is_empty() || (option == PRIMARY_KEY_OPTION && inline_key);
            if twice {
                return Err(SqlError::Plan(format!(
                    "the {} is declared twice, by {clause} and by option '{option}' (Paimon allows one of them)",
                    if option == PRIMARY_KEY_OPTION { "primary key" } else { "partitioning" }
                )));
            }
            if names.is_empty() {
                return Err(SqlError::InvalidParameter(format!(
                    "option '{option}' names no column"
                )));
            }
            *target = names;
        }
        Ok(())
    }
}

impl Parser<'_> {
    /// Whether the next word starts a clause that may follow the table name
    /// of `CREATE TABLE ... AS` directly.
    pub(super) fn starts_table_clause(&self) -> bool {
        [
            "COMMENT",
            "PARTITIONED",
            "WITH",
            "AS",
            "USING",
            "TBLPROPERTIES",
        ]
        .iter()
        .any(|kw| self.is_keyword_at(0, kw))
    }

    /// Spark's `USING paimon` and `TBLPROPERTIES (...)` (Spark's WITH).
    pub(super) fn spark_clause(&mut self, table: &mut CreateTable) -> Result<bool> {
        if self.parse_keyword("USING") {
            let format = self.identifier("a table format")?;
            if !format.eq_ignore_ascii_case("paimon") {
                return Err(SqlError::Unsupported(format!(
                    "USING {format}: tables in the warehouse are Paimon tables (USING paimon)"
                )));
            }
            return Ok(true);
        }
        if self.parse_keyword("TBLPROPERTIES") {
            let at = self.position_of(self.pos);
            for (key, value) in self.options()? {
                if table.options.insert(key.clone(), value).is_some() {
                    return Err(SqlError::syntax(
                        format!("option '{key}' is given twice"),
                        at,
                    ));
                }
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// The rest of the statement after `AS`: the query of a CTAS.
    pub(super) fn rest_as_query(&mut self) -> Result<String> {
        let end = self.tokens().len();
        if self.pos >= end {
            return Err(self.error("a query after AS"));
        }
        let text = self.text_between(self.pos, end)?;
        self.pos = end;
        Ok(text)
    }

    /// Checks the shape of a parsed CREATE TABLE and applies Paimon's key
    /// options.
    pub(super) fn finish_create(&self, table: &mut CreateTable, has_body: bool) -> Result<()> {
        if table.query.is_some() {
            if !table.columns.is_empty() {
                return Err(SqlError::Plan(
                    "CREATE TABLE ... AS takes its columns from the query: in parentheses, declare only PRIMARY KEY (...) NOT ENFORCED".into(),
                ));
            }
            if table.watermark.is_some() {
                return Err(SqlError::Unsupported(
                    "CREATE TABLE ... AS does not take a WATERMARK: create the table first, then INSERT INTO it".into(),
                ));
            }
        } else if !has_body {
            return Err(self.error("'(' with the columns, or AS with a query"));
        }
        table.take_key_options()
    }

    /// `FIRST` or `AFTER column`, if next.
    fn position(&mut self) -> Result<Option<ColumnPosition>> {
        if self.parse_keyword("FIRST") {
            return Ok(Some(ColumnPosition::First));
        }
        if self.parse_keyword("AFTER") {
            let other = self.identifier("the column to place it after")?;
            return Ok(Some(ColumnPosition::After(other)));
        }
        Ok(None)
    }

    /// `(column, ...)` or `[COLUMN] column`, each parsed by `one` (the
    /// columns of ADD and MODIFY).
    pub(super) fn column_changes(
        &mut self,
        one: fn(&mut Self, &mut Vec<SchemaChange>) -> Result<()>,
        changes: &mut Vec<SchemaChange>,
    ) -> Result<()> {
        // Spark writes `ADD COLUMNS (...)`, Flink `ADD (...)`.
        let list = self.parse_keyword("COLUMNS") || self.peek() == Some(&Token::LParen);
        if !list {
            self.parse_keyword("COLUMN");
            return one(self, changes);
        }
        self.expect(&Token::LParen)?;
        loop {
            one(self, changes)?;
            if !self.consume(&Token::Comma) {
                return self.expect(&Token::RParen);
            }
        }
    }

    /// One column of `ADD`, with its position.
    pub(super) fn added_column(&mut self, changes: &mut Vec<SchemaChange>) -> Result<()> {
        let column = self.column_def(false)?;
        let position = self.position()?;
        let name = column.name.clone();
        changes.push(SchemaChange::AddColumn {
            name: column.name,
            data_type: column.data_type,
            comment: column.comment,
        });
        if let Some(position) = position {
            changes.push(SchemaChange::UpdateColumnPosition { name, position });
        }
        Ok(())
    }

    /// One column of Flink's `MODIFY`: its new type (and nullability), and
    /// its comment and position when given.
    fn modified_column(&mut self, changes: &mut Vec<SchemaChange>) -> Result<()> {
        let column = self.column_def(false)?;
        let position = self.position()?;
        let name = column.name;
        changes.push(SchemaChange::UpdateColumnType {
            name: name.clone(),
            data_type: column.data_type,
            keep_nullability: false,
        });
        if let Some(comment) = column.comment {
            changes.push(SchemaChange::UpdateColumnComment {
                name: name.clone(),
                comment: Some(comment),
            });
        }
        if let Some(position) = position {
            changes.push(SchemaChange::UpdateColumnPosition { name, position });
        }
        Ok(())
    }

    /// Spark's `ALTER COLUMN c <action> [<action> ...]`.
    fn altered_column(&mut self, changes: &mut Vec<SchemaChange>) -> Result<()> {
        let name = self.identifier("a column name")?;
        let before = changes.len();
        loop {
            if self.parse_keyword("TYPE") || self.parse_keywords(&["SET", "DATA", "TYPE"]) {
                changes.push(SchemaChange::UpdateColumnType {
                    name: name.clone(),
                    data_type: self.data_type()?,
                    keep_nullability: true,
                });
            } else if self.parse_keyword("COMMENT") {
                changes.push(SchemaChange::UpdateColumnComment {
                    name: name.clone(),
                    comment: Some(self.string_literal("a quoted column comment")?),
                });
            } else if self.parse_keywords(&["SET", "NOT", "NULL"]) {
                changes.push(SchemaChange::UpdateColumnNullability {
                    name: name.clone(),
                    nullable: false,
                });
            } else if self.parse_keywords(&["DROP", "NOT", "NULL"]) {
                changes.push(SchemaChange::UpdateColumnNullability {
                    name: name.clone(),
                    nullable: true,
                });
            } else if let Some(position) = self.position()? {
                changes.push(SchemaChange::UpdateColumnPosition {
                    name: name.clone(),
                    position,
                });
            } else if changes.len() == before {
                return Err(self.error(
                    "TYPE, SET DATA TYPE, COMMENT, FIRST, AFTER, SET NOT NULL or DROP NOT NULL",
                ));
            } else {
                return Ok(());
            }
        }
    }

    /// The schema-evolution forms of `ALTER TABLE name ...`; None (nothing
    /// consumed) when the next words start none of them.
    pub(super) fn evolution_changes(&mut self, name: &TableName) -> Result<Option<DdlStatement>> {
        let mut changes = Vec::new();
        if self.parse_keyword("RENAME") {
            if self.parse_keyword("TO") {
                let to = self.table_name()?;
                return Ok(Some(DdlStatement::RenameTable {
                    from: name.clone(),
                    to,
                }));
            }
            // Flink leaves out COLUMN.
            self.parse_keyword("COLUMN");
            let from = self.identifier("a column name")?;
            self.expect_keyword("TO")?;
            let to = self.identifier("the new column name")?;
            changes.push(SchemaChange::RenameColumn { from, to });
        } else if self.is_keyword_at(0, "DROP") && !self.drops_partition() {
            self.pos += 1;
            let names = if self.parse_keyword("COLUMNS") || self.peek() == Some(&Token::LParen) {
                self.name_list()?
            } else {
                self.parse_keyword("COLUMN");
                vec![self.identifier("a column name")?]
            };
            if names.is_empty() {
                return Err(self.error("at least one column to drop"));
            }
            changes.extend(
                names
                    .into_iter()
                    .map(|name| SchemaChange::DropColumn { name }),
            );
        } else if self.parse_keyword("ALTER") {
            self.parse_keyword("COLUMN");
            self.altered_column(&mut changes)?;
        } else if self.parse_keyword("MODIFY") {
            self.column_changes(Self::modified_column, &mut changes)?;
        } else {
            return Ok(None);
        }
        Ok(Some(DdlStatement::AlterTable {
            name: name.clone(),
            changes,
        }))
    }

    /// `DROP [IF EXISTS] PARTITION ...` is not a column drop.
    fn drops_partition(&self) -> bool {
        self.is_keyword_at(1, "PARTITION")
            || (self.is_keyword_at(1, "IF")
                && self.is_keyword_at(2, "EXISTS")
                && self.is_keyword_at(3, "PARTITION"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    fn changes(sql: &str) -> Vec<SchemaChange> {
        match parse(sql).unwrap() {
            DdlStatement::AlterTable { changes, .. } => changes,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alter_forms_of_flink_and_spark() {
        assert!(matches!(
            &changes("ALTER TABLE t RENAME COLUMN a TO \"B\"")[..],
            [SchemaChange::RenameColumn { from, to }] if from == "a" && to == "B"
        ));
        assert_eq!(changes("ALTER TABLE t DROP (a, b)").len(), 2);
        assert_eq!(changes("ALTER TABLE t RENAME a TO b").len(), 1);
        assert_eq!(
            changes("ALTER TABLE t ADD COLUMNS (a INT, b INT FIRST)").len(),
            3
        );
        assert_eq!(changes("ALTER TABLE t DROP COLUMN a").len(), 1);
        assert!(matches!(
            &changes("ALTER TABLE t ALTER COLUMN c TYPE BIGINT")[..],
            [SchemaChange::UpdateColumnType {
                keep_nullability: true,
                ..
            }]
        ));
        assert!(matches!(
            &changes("ALTER TABLE t ALTER c SET DATA TYPE DECIMAL(10, 2) COMMENT 'x' FIRST")[..],
            [
                SchemaChange::UpdateColumnType { .. },
                SchemaChange::UpdateColumnComment { .. },
                SchemaChange::UpdateColumnPosition {
                    position: ColumnPosition::First,
                    ..
                }
            ]
        ));
        assert!(matches!(
            &changes("ALTER TABLE t MODIFY c BIGINT NOT NULL COMMENT 'x' AFTER d")[..],
            [SchemaChange::UpdateColumnType { keep_nullability: false, data_type, .. }, SchemaChange::UpdateColumnComment { .. }, SchemaChange::UpdateColumnPosition { position: ColumnPosition::After(d), .. }] if !data_type.is_nullable() && d == "d"
        ));
        assert!(matches!(
            &changes("ALTER TABLE t ADD COLUMN c INT AFTER a")[..],
            [
                SchemaChange::AddColumn { .. },
                SchemaChange::UpdateColumnPosition { .. }
            ]
        ));
        assert!(matches!(
            &changes("ALTER TABLE t ALTER COLUMN c DROP NOT NULL")[..],
            [SchemaChange::UpdateColumnNullability { nullable: true, .. }]
        ));
        assert!(matches!(
            parse("ALTER TABLE a.t RENAME TO b.u").unwrap(),
            DdlStatement::RenameTable { to, .. } if to.database.as_deref() == Some("b") && to.table == "u"
        ));
        assert!(parse("ALTER TABLE t ALTER COLUMN c").is_err());
        assert!(parse("ALTER TABLE t DROP PARTITION (dt = '1')").is_err());
    }

    fn create(sql: &str) -> Result<CreateTable> {
        match parse(sql)? {
            DdlStatement::CreateTable(c) => Ok(c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_as_and_like() {
        let c = create(
            "CREATE TABLE IF NOT EXISTS t (PRIMARY KEY (id) NOT ENFORCED) COMMENT 'c' PARTITIONED BY (dt) WITH ('bucket' = '2') AS SELECT id, dt FROM s WHERE x > 1",
        )
        .unwrap();
        assert_eq!(c.query.as_deref(), Some("SELECT id, dt FROM s WHERE x > 1"));
        assert_eq!(c.primary_key, vec!["id"]);
        assert_eq!(c.partition_keys, vec!["dt"]);
        let c = create("CREATE TABLE t WITH ('primary-key' = 'a, b', 'partition' = 'b') AS SELECT 1 AS a, 2 AS b").unwrap();
        assert_eq!(c.primary_key, vec!["a", "b"]);
        assert_eq!(c.partition_keys, vec!["b"]);
        assert!(c.options.is_empty());
        let c = create("CREATE TABLE t USING paimon PARTITIONED BY (b) TBLPROPERTIES ('primary-key' = 'a,b') AS SELECT 1 AS a, 2 AS b").unwrap();
        assert_eq!(c.primary_key, vec!["a", "b"]);
        assert!(create("CREATE TABLE t USING parquet AS SELECT 1").is_err());
        let c = create("CREATE TABLE t AS (SELECT 1)").unwrap();
        assert_eq!(c.query.as_deref(), Some("(SELECT 1)"));
        let c = create("CREATE TABLE b LIKE db.a").unwrap();
        assert_eq!(c.like.map(|l| l.table), Some("a".to_string()));
        assert!(create("CREATE TABLE t (a INT) AS SELECT 1").is_err());
        assert!(create("CREATE TABLE t").is_err());
        assert!(create("CREATE TABLE t AS").is_err());
        let twice = create("CREATE TABLE t (a INT, PRIMARY KEY (a)) WITH ('primary-key' = 'a')")
            .unwrap_err();
        assert!(twice.to_string().contains("declared twice"), "{twice}");
    }
}
