//! The initial snapshot: every captured table read under one consistent
//! read view whose binlog position is known.

use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::position::GtidSet;
use super::schema::{read_tables, MysqlTable};
use super::types::{from_binary, ColumnKind};
use super::{emit, source_err, table_err, BinlogPosition, Events, Flavor, MysqlConfig};
use crate::error::Result;
use crate::event::SourceEvent;
use crate::rows::RowsBuilder;

/// Rows per batch of a table's copy.
const BATCH_ROWS: usize = 4096;

async fn query_drop(conn: &mut Conn, sql: &str) -> Result<()> {
    conn.query_drop(sql)
        .await
        .map_err(|e| source_err(format!("{sql}: {e}")))
}

/// The GTID state at a binlog file and offset (MariaDB).
async fn gtid_at(conn: &mut Conn, position: &mut BinlogPosition) -> Result<()> {
    let state: Option<Option<String>> = conn
        .exec_first(
            "SELECT BINLOG_GTID_POS(?, ?)",
            (&position.file, position.offset),
        )
        .await
        .map_err(|e| source_err(format!("BINLOG_GTID_POS: {e}")))?;
    position
        .set_gtid_state(&state.flatten().unwrap_or_default())
        .map_err(source_err)
}

/// The server's current binlog position (for a stream-only start, and on
/// MySQL the snapshot's while commits are held).
pub async fn current_position(conn: &mut Conn, flavor: Flavor) -> Result<BinlogPosition> {
    // MySQL 8.2 renamed SHOW MASTER STATUS, and 8.4 removed the old name;
    // MariaDB and older MySQL know only the old one.
    let statements: &[&str] = if flavor.is_mariadb() {
        &["SHOW MASTER STATUS"]
    } else {
        &["SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"]
    };
    let mut last_error = None;
    let mut found = None;
    for sql in statements {
        match conn.query_first::<Row, _>(*sql).await {
            Ok(row) => {
                found = Some((*sql, row));
                break;
            }
            Err(e) => last_error = Some(format!("{sql}: {e}")),
        }
    }
    let Some((sql, row)) = found else {
        return Err(source_err(last_error.unwrap_or_default()));
    };
    let row = row.ok_or_else(|| source_err(format!("{sql} is empty: the binary log is off")))?;
    let mut position = BinlogPosition {
        file: row.get::<String, _>(0).unwrap_or_default(),
        offset: row.get::<u64, _>(1).unwrap_or(4),
        ..Default::default()
    };
    match flavor {
        Flavor::Mariadb => gtid_at(conn, &mut position).await?,
        Flavor::Mysql { gtids: true } => {
            let executed: String = row
                .get_opt::<Option<String>, _>("Executed_Gtid_Set")
                .and_then(|v| v.ok())
                .flatten()
                .unwrap_or_default();
            position.gtid_set = GtidSet::parse(&executed).map_err(source_err)?;
        }
        Flavor::Mysql { gtids: false } => {}
    }
    Ok(position)
}

/// Opens the consistent read view and returns its binlog position.
///
/// MySQL reports no binlog position for a read view. Two ways are known:
/// `performance_schema.log_status` (no lock, but read in a statement of its
/// own, so a commit between it and `START TRANSACTION WITH CONSISTENT
/// SNAPSHOT` is in the copy and replayed by the stream again: a duplicate
/// change, and needs BACKUP_ADMIN), or a short `FLUSH TABLES WITH READ
/// LOCK` around opening the view and reading the binlog status. We take the
/// lock: the copy and the position then agree exactly, which the
/// exactly-once sink relies on. It blocks writes only while the view opens
/// (milliseconds), but waits for running statements to finish first, and
/// needs the RELOAD privilege.
async fn open_view(conn: &mut Conn, flavor: Flavor) -> Result<BinlogPosition> {
    query_drop(conn, "SET SESSION time_zone = '+00:00'").await?;
    query_drop(
        conn,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await?;
    if !flavor.is_mariadb() {
        // MySQL has no binlog_snapshot_*: hold commits while the view opens.
        conn.query_drop("FLUSH TABLES WITH READ LOCK")
            .await
            .map_err(|e| {
                source_err(format!(
                    "FLUSH TABLES WITH READ LOCK (which pins the snapshot's binlog position; \
                     the user needs the RELOAD privilege): {e}"
                ))
            })?;
        let opened = query_drop(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT").await;
        let position = match opened {
            Ok(()) => current_position(conn, flavor).await,
            Err(e) => Err(e),
        };
        query_drop(conn, "UNLOCK TABLES").await?;
        return position;
    }
    query_drop(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(|e| source_err(format!("SHOW STATUS LIKE 'binlog_snapshot_%': {e}")))?;
    let mut position = BinlogPosition::default();
    for (name, value) in rows {
        match name.to_ascii_lowercase().as_str() {
            "binlog_snapshot_file" => position.file = value,
            "binlog_snapshot_position" => {
                position.offset = value
                    .parse()
                    .map_err(|_| source_err(format!("bad binlog_snapshot_position {value:?}")))?
            }
            _ => {}
        }
    }
    if position.file.is_empty() {
        return Err(source_err(
            "the server reports no binlog_snapshot_file: is log-bin set?",
        ));
    }
    gtid_at(conn, &mut position).await?;
    Ok(position)
}

/// Reads every captured table that `wanted` accepts under one read view,
/// emitting each table's schema and rows and then one
/// [`SourceEvent::CopyEnd`] at the view's binlog position. `None` when the
/// source was dropped meanwhile.
pub async fn run(
    conn: &mut Conn,
    config: &MysqlConfig,
    flavor: Flavor,
    tx: Events<'_>,
    wanted: impl Fn(&MysqlTable) -> bool,
) -> Result<Option<(BinlogPosition, Vec<MysqlTable>)>> {
    let position = open_view(conn, flavor).await?;
    tracing::info!(position = %position.to_source(), "mysql snapshot opened");
    let started = Instant::now();
    let mut tables = Vec::new();
    for database in &config.databases {
        for table in read_tables(conn, database, None).await? {
            if config.captures(&table.id) && wanted(&table) {
                tables.push(table);
            }
        }
    }
    let names: Vec<String> = tables.iter().map(|t| t.id.to_string()).collect();
    eprintln!(
        "cdc: copying {} tables at {}: {}",
        names.len(),
        position.to_source(),
        names.join(", ")
    );
    let mut total = 0;
    for table in &tables {
        let schema = table.schema();
        if !emit(
            tx,
            SourceEvent::Schema {
                table: table.id.clone(),
                schema,
            },
        )
        .await
        {
            return Ok(None);
        }
        match copy_table(conn, table, tx).await? {
            Some(rows) => total += rows,
            None => return Ok(None),
        }
    }
    query_drop(conn, "COMMIT").await?;
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    eprintln!(
        "cdc: initial copy: {} tables, {total} rows in {seconds:.1} s ({:.0} rows/s)",
        tables.len(),
        total as f64 / seconds
    );
    if !emit(
        tx,
        SourceEvent::CopyEnd {
            position: position.to_source(),
            tables: tables.iter().map(|t| t.id.clone()).collect(),
        },
    )
    .await
    {
        return Ok(None);
    }
    Ok(Some((position, tables)))
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Whether a column's value arrives as its text, to be copied as it is.
fn is_text(kind: &ColumnKind) -> bool {
    matches!(
        kind,
        ColumnKind::DecimalString | ColumnKind::Text | ColumnKind::Enum(_)
    )
}

/// Sends the rows built so far as one batch: their count, `None` once the
/// source was dropped.
async fn send_rows(
    table: &MysqlTable,
    batch: &mut RowsBuilder,
    tx: Events<'_>,
) -> Result<Option<u64>> {
    let rows = batch.rows();
    if rows == 0 {
        return Ok(Some(0));
    }
    let batch = batch.finish().map_err(|e| table_err(&table.id, e))?;
    let event = SourceEvent::Rows {
        table: table.id.clone(),
        batch,
    };
    Ok(emit(tx, event).await.then_some(rows as u64))
}

/// Copies one table; its row count, `None` once the source was dropped.
async fn copy_table(conn: &mut Conn, table: &MysqlTable, tx: Events<'_>) -> Result<Option<u64>> {
    let started = Instant::now();
    let columns: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
    let sql = format!(
        "SELECT {} FROM {}.{}",
        columns.join(", "),
        quote(&table.id.database),
        quote(&table.id.table)
    );
    // The binary protocol (a prepared statement): numbers, dates and times
    // arrive as numbers, which neither the server nor we format or parse
    // as text, and hold no buffer of their own per value.
    let mut result = conn
        .exec_iter(sql, ())
        .await
        .map_err(|e| table_err(&table.id, format!("snapshot read: {e}")))?;
    let mut rows = 0u64;
    let mut batch = RowsBuilder::new(&table.schema(), BATCH_ROWS);
    while let Some(row) = result
        .next()
        .await
        .map_err(|e| table_err(&table.id, format!("snapshot read: {e}")))?
    {
        for (i, (column, value)) in table.columns.iter().zip(row.unwrap_raw()).enumerate() {
            let pushed = match value {
                None | Some(Value::NULL) => batch.push_null(i),
                // Text as it is, without a value of its own.
                Some(Value::Bytes(bytes)) if is_text(&column.kind) => {
                    batch.push_str(i, &String::from_utf8_lossy(&bytes))
                }
                Some(value) => from_binary(&column.kind, value).and_then(|v| batch.push(i, v)),
            };
            pushed.map_err(|e| table_err(&table.id, format!("column {}: {e}", column.name)))?;
        }
        batch.end_row();
        if batch.rows() >= BATCH_ROWS {
            match send_rows(table, &mut batch, tx).await? {
                Some(n) => rows += n,
                None => return Ok(None),
            }
        }
    }
    match send_rows(table, &mut batch, tx).await? {
        Some(n) => rows += n,
        None => return Ok(None),
    }
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    eprintln!(
        "cdc: copied {}: {rows} rows in {seconds:.1} s ({:.0} rows/s)",
        table.id,
        rows as f64 / seconds
    );
    Ok(Some(rows))
}
