//! Bulk ingest (`CommandStatementIngest`): the client's Arrow batches go
//! into a Tidelake table in one commit.
//!
//! The batches are written, as they arrive, to a Parquet file in a private
//! temporary folder, and the table loads it with `COPY db.t FROM 'file'
//! (FORMAT parquet)`: columns map by name, every value is cast to its
//! column's type and checked before anything is written, and the rows
//! commit at once (or not at all). The table definition options say what
//! happens when the table is missing (create it, from the batches' schema,
//! as an append table without a primary key; or fail) and when it exists
//! (append, replace: drop and create again; or fail).
//!
//! The caller's rights are checked before a byte is read, as for the
//! statements the ingest stands for: appending to a table is a write
//! (`COPY ... FROM`: writer or admin), creating or replacing one is DDL
//! (admin); both only in a database the caller may use (42501 otherwise).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption, TableNotExistOption};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ArrowWriter;
use tidelake_sql::{QueryHandler, SqlError, StreamingResult};

use crate::pg::catalog::{names, quote_ident};
use crate::users::{Principal, StatementClass};
use crate::StatementError;

fn refused(code: &'static str, message: impl Into<String>) -> StatementError {
    StatementError::refused(code, message)
}

/// The column type `CREATE TABLE` spells for an Arrow type.
pub fn ddl_type(t: &DataType) -> Result<String, StatementError> {
    let precision = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    Ok(match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 | DataType::UInt8 => "SMALLINT".into(),
        DataType::Int32 | DataType::UInt16 => "INT".into(),
        DataType::Int64 | DataType::UInt32 => "BIGINT".into(),
        DataType::UInt64 => "DECIMAL(20, 0)".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) if *p <= 38 && *s >= 0 => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            "STRING".into()
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::FixedSizeBinary(n) => format!("BINARY({n})"),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(u) | DataType::Time64(u) => format!("TIME({})", precision(u)),
        DataType::Timestamp(u, None) => format!("TIMESTAMP({})", precision(u)),
        DataType::Timestamp(u, Some(_)) => format!("TIMESTAMP_LTZ({})", precision(u)),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("ARRAY<{}>", column_type(f)?)
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("MAP<{}, {}>", column_type(&kv[0])?, column_type(&kv[1])?)
            }
            other => return Err(unsupported(other)),
        },
        DataType::Struct(fields) => {
            let parts = fields
                .iter()
                .map(|f| Ok(format!("{} {}", quote_ident(f.name()), column_type(f)?)))
                .collect::<Result<Vec<String>, StatementError>>()?;
            format!("ROW<{}>", parts.join(", "))
        }
        DataType::Dictionary(_, value) => ddl_type(value)?,
        other => return Err(unsupported(other)),
    })
}

fn unsupported(t: &DataType) -> StatementError {
    refused("0A000", format!("cannot create a column of Arrow type {t}"))
}

/// A field's type with `NOT NULL` when it has no nulls.
fn column_type(f: &Field) -> Result<String, StatementError> {
    let t = ddl_type(f.data_type())?;
    Ok(if f.is_nullable() {
        t
    } else {
        format!("{t} NOT NULL")
    })
}

/// `CREATE TABLE db.t (...)` for the batches' schema.
pub fn create_statement(
    database: &str,
    table: &str,
    schema: &SchemaRef,
) -> Result<String, StatementError> {
    if schema.fields().is_empty() {
        return Err(refused("42601", "cannot create a table without columns"));
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| Ok(format!("{} {}", quote_ident(f.name()), column_type(f)?)))
        .collect::<Result<Vec<String>, StatementError>>()?;
    Ok(format!(
        "CREATE TABLE {}.{} ({})",
        quote_ident(database),
        quote_ident(table),
        columns.join(", ")
    ))
}

/// The batches written to a Parquet file: the schema and the row count.
async fn spool(
    stream: PeekableFlightDataStream,
    path: &std::path::Path,
) -> Result<(Option<SchemaRef>, u64), StatementError> {
    let decode_error =
        |e: FlightError| refused("08P01", format!("cannot read the ingested batches: {e}"));
    let io_error = |e: std::io::Error| {
        StatementError::Sql(SqlError::Internal(format!("cannot spool the batches: {e}")))
    };
    let mut batches = FlightRecordBatchStream::new_from_flight_data(
        stream
            // A message of the descriptor alone carries no batch.
            .try_filter(|data| futures::future::ready(!data.data_header.is_empty()))
            .map_err(|status| FlightError::Tonic(Box::new(status))),
    );
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut rows = 0u64;
    while let Some(batch) = batches.try_next().await.map_err(decode_error)? {
        if writer.is_none() {
            let file = std::fs::File::create(path).map_err(io_error)?;
            writer = Some(
                ArrowWriter::try_new(file, batch.schema(), None)
                    .map_err(|e| StatementError::Sql(SqlError::Internal(e.to_string())))?,
            );
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch)
                .map_err(|e| StatementError::Sql(SqlError::Internal(e.to_string())))?;
        }
        rows += batch.num_rows() as u64;
    }
    let schema = batches.schema().cloned();
    if let Some(w) = writer {
        w.close()
            .map_err(|e| StatementError::Sql(SqlError::Internal(e.to_string())))?;
    }
    Ok((schema, rows))
}

async fn run(session: &Arc<dyn QueryHandler>, sql: &str) -> Result<Option<u64>, StatementError> {
    match session.execute_stream(sql).await? {
        StreamingResult::Status(s) => Ok(s.rows),
        StreamingResult::Rows(q) => {
            let _ = q.stream.count().await;
            Ok(None)
        }
    }
}

/// What an ingest does to its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Append,
    Replace,
    Create,
}

/// Runs one ingest command for `caller`; the number of rows committed.
pub async fn ingest(
    session: &Arc<dyn QueryHandler>,
    caller: &Principal,
    cmd: &CommandStatementIngest,
    stream: PeekableFlightDataStream,
) -> Result<i64, StatementError> {
    if cmd.temporary {
        return Err(refused("0A000", "temporary tables are not supported"));
    }
    if cmd.transaction_id.is_some() {
        return Err(refused("0A000", "transactions are not supported"));
    }
    if cmd.table.is_empty() {
        return Err(refused("42601", "the ingest command names no table"));
    }
    let database = cmd
        .schema
        .clone()
        .unwrap_or_else(|| session.current_database());
    let options = cmd.table_definition_options.unwrap_or_default();
    let if_missing = TableNotExistOption::try_from(options.if_not_exist)
        .unwrap_or(TableNotExistOption::Unspecified);
    let if_exists =
        TableExistsOption::try_from(options.if_exists).unwrap_or(TableExistsOption::Unspecified);
    caller.check_database(&database)?;

    let in_database = format!("SHOW TABLES IN {}", quote_ident(&database));
    let exists = names(session, &in_database).await?.contains(&cmd.table);
    let target = format!("{}.{}", quote_ident(&database), quote_ident(&cmd.table));
    let action = match (exists, if_exists, if_missing) {
        (true, TableExistsOption::Append, _) => Action::Append,
        (true, TableExistsOption::Replace, _) => Action::Replace,
        (true, _, _) => {
            return Err(refused(
                "42P07",
                format!("table {target} already exists (ingest with mode append or replace)"),
            ))
        }
        (false, _, TableNotExistOption::Create) => Action::Create,
        (false, _, _) => {
            return Err(refused(
                "42P01",
                format!("table {target} does not exist (ingest with mode create)"),
            ))
        }
    };
    caller.check_class(match action {
        Action::Append => StatementClass::Write,
        Action::Replace | Action::Create => StatementClass::Ddl,
    })?;

    let dir = tempfile::Builder::new()
        .prefix("tidelake-ingest-")
        .tempdir()
        .map_err(|e| {
            StatementError::Sql(SqlError::Internal(format!("no temporary folder: {e}")))
        })?;
    let file = dir.path().join("batches.parquet");
    let (schema, rows) = spool(stream, &file).await?;

    let mut created = false;
    let create = |schema: &Option<SchemaRef>| match schema {
        Some(s) => create_statement(&database, &cmd.table, s),
        None => Err(refused("08P01", "the ingest stream has no schema")),
    };
    match action {
        Action::Append => {}
        Action::Replace => {
            let sql = create(&schema)?;
            run(session, &format!("DROP TABLE {target}")).await?;
            run(session, &sql).await?;
            created = true;
        }
        Action::Create => {
            run(session, &create(&schema)?).await?;
            created = true;
        }
    }
    if rows == 0 {
        return Ok(0);
    }
    let path = file.to_string_lossy().replace('\'', "''");
    let copy = format!("COPY {target} FROM '{path}' (FORMAT parquet)");
    match run(session, &copy).await {
        Ok(n) => Ok(n.unwrap_or(rows) as i64),
        Err(e) => {
            if created {
                // The table this ingest made would stay empty: take it away.
                let _ = run(session, &format!("DROP TABLE {target}")).await;
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Schema;

    #[test]
    fn arrow_schemas_become_create_statements() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ]));
        assert_eq!(
            create_statement("d", "t", &schema).unwrap(),
            "CREATE TABLE \"d\".\"t\" (\"id\" BIGINT NOT NULL, \"name\" STRING, \
             \"at\" TIMESTAMP(9), \"tags\" ARRAY<STRING>)"
        );
        assert!(ddl_type(&DataType::Duration(TimeUnit::Second)).is_err());
    }
}
