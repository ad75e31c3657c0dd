//! Table schemas read from information_schema, and the server checks a
//! CDC source needs.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::types::{map_column, ColumnDef, MysqlColumn};
use super::{source_err, table_err};
use crate::error::{CdcError, Result};
use crate::event::{SourceColumn, SourceSchema, SourceTableId};

/// A source table as we decode it: its columns with their decoders, and
/// the schema the sink sees.
#[derive(Clone, Debug, PartialEq)]
pub struct MysqlTable {
    pub id: SourceTableId,
    pub columns: Vec<MysqlColumn>,
    pub primary_key: Vec<String>,
}

impl MysqlTable {
    pub fn schema(&self) -> SourceSchema {
        SourceSchema {
            columns: self
                .columns
                .iter()
                .map(|c| SourceColumn {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                    source_type: c.source_type.clone(),
                    comment: c.comment.clone(),
                })
                .collect(),
            primary_key: self.primary_key.clone(),
        }
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}

fn opt_u64(row: &Row, index: usize) -> Option<u64> {
    row.get_opt::<Option<u64>, _>(index)
        .and_then(|v| v.ok())
        .flatten()
}

fn text(row: &Row, index: usize) -> String {
    row.get_opt::<Option<String>, _>(index)
        .and_then(|v| v.ok())
        .flatten()
        .unwrap_or_default()
}

/// The base tables of `database` (optionally only `table`) with their
/// columns and primary keys, in name order.
pub async fn read_tables(
    conn: &mut Conn,
    database: &str,
    table: Option<&str>,
) -> Result<Vec<MysqlTable>> {
    let filter = if table.is_some() {
        " AND c.TABLE_NAME = ?"
    } else {
        ""
    };
    let sql = format!(
        "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE, \
         c.CHARACTER_MAXIMUM_LENGTH, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION, \
         c.COLUMN_COMMENT \
         FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
         ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
         WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA = ?{filter} \
         ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
    );
    let mut params: Vec<mysql_async::Value> = vec![database.into()];
    if let Some(table) = table {
        params.push(table.into());
    }
    let rows: Vec<Row> = conn
        .exec(sql, params.clone())
        .await
        .map_err(|e| source_err(format!("reading the columns of {database}: {e}")))?;
    let mut defs: BTreeMap<String, Vec<ColumnDef>> = BTreeMap::new();
    for row in &rows {
        defs.entry(text(row, 0)).or_default().push(ColumnDef {
            name: text(row, 1),
            data_type: text(row, 2),
            column_type: text(row, 3),
            nullable: text(row, 4) == "YES",
            char_length: opt_u64(row, 5),
            numeric_precision: opt_u64(row, 6),
            numeric_scale: opt_u64(row, 7),
            datetime_precision: opt_u64(row, 8),
            comment: text(row, 9),
        });
    }
    let key_sql = format!(
        "SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE c \
         WHERE c.CONSTRAINT_NAME = 'PRIMARY' AND c.TABLE_SCHEMA = ?{filter} \
         ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
    );
    let keys: Vec<(String, String)> = conn
        .exec(key_sql, params)
        .await
        .map_err(|e| source_err(format!("reading the primary keys of {database}: {e}")))?;
    let mut tables = Vec::new();
    for (name, defs) in defs {
        let id = SourceTableId::new(database, &name);
        let columns = defs
            .iter()
            .map(map_column)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|message| table_err(&id, message))?;
        let primary_key = keys
            .iter()
            .filter(|(t, _)| *t == name)
            .map(|(_, c)| c.clone())
            .collect();
        tables.push(MysqlTable {
            id,
            columns,
            primary_key,
        });
    }
    Ok(tables)
}

/// Refuses a server whose binlog cannot feed CDC, naming what to set.
pub async fn check_server(conn: &mut Conn) -> Result<()> {
    type Settings = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Settings> = conn
        .query_first(
            "SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image, \
             @@GLOBAL.binlog_row_metadata",
        )
        .await
        .map_err(|e| source_err(format!("reading the binlog settings: {e}")))?;
    let (log_bin, format, image, metadata) = row.unwrap_or_default();
    let mut wrong = Vec::new();
    let log_bin = log_bin.unwrap_or_default();
    if log_bin != "1" && !log_bin.eq_ignore_ascii_case("ON") {
        wrong.push("log-bin (the binary log is off)".to_string());
    }
    let mut want = |name: &str, got: Option<String>, value: &str| {
        let got = got.unwrap_or_default();
        if !got.eq_ignore_ascii_case(value) {
            wrong.push(format!("{name}={value} (is {got})"));
        }
    };
    want("binlog_format", format, "ROW");
    want("binlog_row_image", image, "FULL");
    want("binlog_row_metadata", metadata, "FULL");
    if wrong.is_empty() {
        return Ok(());
    }
    Err(CdcError::Config(format!(
        "the MySQL/MariaDB server is not configured for CDC: set {} in its configuration \
         (plus a server_id) and restart it",
        wrong.join(", ")
    )))
}
