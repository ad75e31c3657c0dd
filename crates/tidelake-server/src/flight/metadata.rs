//! Flight SQL's metadata commands, answered from SQL the session runs
//! (`SHOW DATABASES`, `SHOW TABLES IN db`, `SELECT * FROM db.t LIMIT 0`,
//! `SHOW CREATE TABLE`): the warehouse is one catalog (`tidelake`), its
//! databases are the schemas, and every table has type `TABLE`. A caller
//! limited to some databases sees only those.

use std::sync::{Arc, OnceLock};

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::sql::metadata::{
    GetCatalogsBuilder, GetDbSchemasBuilder, GetTablesBuilder, SqlInfoData, SqlInfoDataBuilder,
};
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, SqlInfo};
use regex::Regex;
use tidelake_sql::{QueryHandler, SqlError, StreamingResult, CATALOG_NAME};

use crate::pg::catalog::{names, quote_ident};
use crate::users::Principal;
use crate::StatementError;

/// The one table type.
pub const TABLE_TYPE: &str = "TABLE";

fn arrow_error(e: arrow::error::ArrowError) -> StatementError {
    StatementError::Sql(SqlError::from(e))
}

/// arrow-flight's metadata builders answer `FlightError`s.
fn flight_error(e: arrow_flight::error::FlightError) -> StatementError {
    match e {
        arrow_flight::error::FlightError::Arrow(e) => arrow_error(e),
        other => arrow_error(arrow::error::ArrowError::ExternalError(Box::new(other))),
    }
}

/// Whether `text` matches a Flight SQL (SQL LIKE) pattern: `%` any
/// characters, `_` one, `\` escapes.
pub fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Positions in the text reachable after each pattern token.
    let mut states = vec![false; t.len() + 1];
    states[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; t.len() + 1];
        match p[i] {
            '%' => {
                let mut on = false;
                for (k, state) in states.iter().enumerate() {
                    on |= *state;
                    next[k] = on;
                }
            }
            c => {
                let (literal, any) = match c {
                    '\\' if i + 1 < p.len() => {
                        i += 1;
                        (Some(p[i]), false)
                    }
                    '_' => (None, true),
                    c => (Some(c), false),
                };
                for k in 0..t.len() {
                    if states[k] && (any || literal == Some(t[k])) {
                        next[k + 1] = true;
                    }
                }
            }
        }
        states = next;
        i += 1;
    }
    states[t.len()]
}

fn matches(pattern: &Option<String>, text: &str) -> bool {
    pattern.as_deref().is_none_or(|p| like(p, text))
}

/// Whether a catalog filter admits the warehouse's catalog.
fn catalog_matches(catalog: &Option<String>) -> bool {
    catalog.as_deref().is_none_or(|c| c == CATALOG_NAME)
}

pub fn catalogs() -> Result<RecordBatch, StatementError> {
    let mut builder = GetCatalogsBuilder::new();
    builder.append(CATALOG_NAME);
    builder.build().map_err(flight_error)
}

pub fn catalogs_schema() -> SchemaRef {
    GetCatalogsBuilder::new().schema()
}

/// The databases `caller` may use.
async fn databases(
    session: &Arc<dyn QueryHandler>,
    caller: &Principal,
) -> Result<Vec<String>, StatementError> {
    let mut all = names(session, "SHOW DATABASES").await?;
    all.retain(|d| caller.may_use(d));
    Ok(all)
}

pub async fn db_schemas(
    session: &Arc<dyn QueryHandler>,
    caller: &Principal,
    cmd: CommandGetDbSchemas,
) -> Result<RecordBatch, StatementError> {
    let mut builder = GetDbSchemasBuilder::new(cmd.catalog.clone(), cmd.db_schema_filter_pattern);
    if catalog_matches(&cmd.catalog) {
        for database in databases(session, caller).await? {
            builder.append(CATALOG_NAME, database);
        }
    }
    builder.build().map_err(flight_error)
}

pub fn db_schemas_schema() -> SchemaRef {
    GetDbSchemasBuilder::new(None::<String>, None::<String>).schema()
}

/// A table's columns, as a query over it produces them.
pub async fn table_schema(
    session: &Arc<dyn QueryHandler>,
    database: &str,
    table: &str,
) -> Result<SchemaRef, StatementError> {
    let sql = format!(
        "SELECT * FROM {}.{} LIMIT 0",
        quote_ident(database),
        quote_ident(table)
    );
    match session.execute_stream(&sql).await? {
        StreamingResult::Rows(q) => Ok(q.schema),
        StreamingResult::Status(_) => Ok(Arc::new(Schema::empty())),
    }
}

pub async fn tables(
    session: &Arc<dyn QueryHandler>,
    caller: &Principal,
    cmd: CommandGetTables,
) -> Result<RecordBatch, StatementError> {
    let include_schema = cmd.include_schema;
    let wanted_type = cmd.table_types.is_empty() || cmd.table_types.iter().any(|t| t == TABLE_TYPE);
    let (schema_pattern, table_pattern) = (
        cmd.db_schema_filter_pattern.clone(),
        cmd.table_name_filter_pattern.clone(),
    );
    let list = catalog_matches(&cmd.catalog) && wanted_type;
    let mut builder: GetTablesBuilder = cmd.into_builder();
    if list {
        for database in databases(session, caller).await? {
            if !matches(&schema_pattern, &database) {
                continue;
            }
            let in_database = format!("SHOW TABLES IN {}", quote_ident(&database));
            for table in names(session, &in_database).await? {
                if !matches(&table_pattern, &table) {
                    continue;
                }
                let schema = if include_schema {
                    table_schema(session, &database, &table).await?
                } else {
                    Arc::new(Schema::empty())
                };
                builder
                    .append(CATALOG_NAME, &database, &table, TABLE_TYPE, &schema)
                    .map_err(flight_error)?;
            }
        }
    }
    builder.build().map_err(flight_error)
}

pub fn tables_schema(include_schema: bool) -> SchemaRef {
    GetTablesBuilder::new(
        None::<String>,
        None::<String>,
        None::<String>,
        Vec::<String>::new(),
        include_schema,
    )
    .schema()
}

pub fn table_types() -> Result<RecordBatch, StatementError> {
    RecordBatch::try_new(
        table_types_schema(),
        vec![Arc::new(StringArray::from(vec![TABLE_TYPE]))],
    )
    .map_err(arrow_error)
}

pub fn table_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "table_type",
        DataType::Utf8,
        false,
    )]))
}

/// What the server says about itself (GetSqlInfo).
pub fn sql_info() -> &'static SqlInfoData {
    static INFO: OnceLock<SqlInfoData> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "Tidelake");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "59.3");
        b.append(SqlInfo::FlightSqlServerReadOnly, false);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        // SqlSupportedTransaction::None: each statement commits on its own.
        b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        b.append(SqlInfo::FlightSqlServerCancel, true);
        b.append(SqlInfo::FlightSqlServerBulkIngestion, true);
        b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
        b.append(SqlInfo::SqlDdlCatalog, false);
        b.append(SqlInfo::SqlDdlSchema, true);
        b.append(SqlInfo::SqlDdlTable, true);
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        match b.build() {
            Ok(info) => info,
            // The values above are all of supported kinds.
            Err(e) => unreachable!("static SQL info does not build: {e}"),
        }
    })
}

fn primary_keys_schema_ref() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

pub fn primary_keys_schema() -> SchemaRef {
    primary_keys_schema_ref()
}

/// The key columns a `CREATE TABLE` statement declares.
fn key_columns(create: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re =
        RE.get_or_init(|| Regex::new(r"(?i)PRIMARY\s+KEY\s*\(([^)]*)\)").expect("a valid regex"));
    let Some(list) = re.captures(create).and_then(|c| c.get(1)) else {
        return Vec::new();
    };
    list.as_str()
        .split(',')
        .map(|c| {
            let c = c.trim();
            if c.len() >= 2 && c.starts_with('"') && c.ends_with('"') {
                c[1..c.len() - 1].replace("\"\"", "\"")
            } else if c.len() >= 2 && c.starts_with('`') && c.ends_with('`') {
                c[1..c.len() - 1].to_string()
            } else {
                c.to_string()
            }
        })
        .filter(|c| !c.is_empty())
        .collect()
}

pub async fn primary_keys(
    session: &Arc<dyn QueryHandler>,
    caller: &Principal,
    cmd: CommandGetPrimaryKeys,
) -> Result<RecordBatch, StatementError> {
    let database = cmd
        .db_schema
        .clone()
        .unwrap_or_else(|| session.current_database());
    caller.check_database(&database)?;
    let mut columns = Vec::new();
    if catalog_matches(&cmd.catalog) {
        let sql = format!(
            "SHOW CREATE TABLE {}.{}",
            quote_ident(&database),
            quote_ident(&cmd.table)
        );
        let create = names(session, &sql).await?.join("\n");
        columns = key_columns(&create);
    }
    let n = columns.len();
    let batch = RecordBatch::try_new(
        primary_keys_schema_ref(),
        vec![
            Arc::new(StringArray::from(vec![CATALOG_NAME; n])),
            Arc::new(StringArray::from(vec![database.as_str(); n])),
            Arc::new(StringArray::from(vec![cmd.table.as_str(); n])),
            Arc::new(StringArray::from(columns)),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(Int32Array::from_iter_values(1..=n as i32)),
        ],
    )
    .map_err(arrow_error)?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("%", ""));
        assert!(like("t%", "tab"));
        assert!(like("t_b", "tab"));
        assert!(!like("t_b", "tabs"));
        assert!(like("a\\_b", "a_b"));
        assert!(!like("a\\_b", "axb"));
        assert!(like("%la%", "tidelake"));
        assert!(!like("%le%", "tidelake"));
    }

    #[test]
    fn key_columns_from_create_statements() {
        let sql = "CREATE TABLE \"d\".\"t\" (\n  id BIGINT NOT NULL,\n  \"K 2\" INT,\n  PRIMARY KEY (id, \"K 2\") NOT ENFORCED\n)";
        assert_eq!(key_columns(sql), ["id", "K 2"]);
        assert!(key_columns("CREATE TABLE t (a INT)").is_empty());
    }

    #[test]
    fn sql_info_builds() {
        let batch = sql_info().record_batch(Vec::<u32>::new()).unwrap();
        assert!(batch.num_rows() > 5);
    }
}
