//! The initial copy: tables read with `COPY ... TO STDOUT` (binary format,
//! read into Arrow batches: [`super::binary`]) by several connections in
//! parallel, each in a REPEATABLE READ transaction on the same exported
//! snapshot when there is one.
//!
//! A large table is split into ranges of pages (`ctid` ranges, which
//! PostgreSQL 14+ reads with a TID range scan, touching only those pages):
//! every kind of table has a ctid, whatever its key, and the ranges read
//! under one exported snapshot see exactly the rows of that snapshot, so
//! their union has no gap and no duplicate. The first range has no lower
//! bound and the last no upper bound, so rows on pages past the size
//! measured at planning (the table grew since) are read too. Whole tables
//! and ranges share one queue, largest first, served by `parallelism`
//! connections; a table's progress line comes when its last range is done.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc;

use super::binary::{BinaryRows, FieldError, Wire};
use super::catalog::PgTable;
use super::wire::{ident, literal, source_error, ConnectConfig, Connection, Result};
use crate::error::CdcError;
use crate::event::SourceEvent;
use crate::rows::RowsBuilder;
use tidelake_format::types::DataType;

/// What the source's background task sends: events in batches, so that a
/// copy pays the channel's cost once per batch rather than once per row.
pub(crate) type Events = mpsc::Sender<std::result::Result<Vec<SourceEvent>, CdcError>>;

/// Rows per batch sent by a copy (Arrow columns: large enough that the
/// writer's per-batch work is small per row).
const BATCH_ROWS: usize = 4096;

/// A table with at least twice this many bytes is split into ranges of
/// pages (default of [`super::PostgresConfig::copy_range_bytes`]).
pub const DEFAULT_RANGE_BYTES: u64 = 8 << 20;

/// A table being copied, shared by its ranges.
struct TableCopy {
    table: PgTable,
    parts: usize,
    left: AtomicUsize,
    rows: AtomicU64,
    started: OnceLock<Instant>,
}

/// One unit of work: a whole table, or the pages `[from, to)` of one
/// (`None`: unbounded on that side).
struct CopyTask {
    copy: Arc<TableCopy>,
    pages: Option<(Option<u64>, Option<u64>)>,
    /// Estimated size in pages, for the largest-first order.
    weight: u64,
}

/// How the copy of `tables` is split: the page count of each splittable
/// table, read from `pg_relation_size` (exact and cheap, where
/// `pg_class.relpages` is 0 until the first VACUUM or ANALYZE, as after a
/// bulk load).
async fn plan(
    conn: &mut Connection,
    tables: Vec<PgTable>,
    split: bool,
    parallelism: usize,
    range_bytes: u64,
) -> Result<VecDeque<CopyTask>> {
    let mut sizes: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    let mut block_size = 8192u64;
    // Before 14, a ctid range is read by a scan of the whole table.
    let split = split
        && parallelism > 1
        && range_bytes > 0
        && !tables.is_empty()
        && server_version(conn).await? >= 140_000;
    if split {
        let oids: Vec<String> = tables.iter().map(|t| t.oid.to_string()).collect();
        let rows = conn
            .query(&format!(
                "SELECT c.oid::int8, pg_relation_size(c.oid)::int8, current_setting('block_size')::int8 \
                   FROM pg_class c WHERE c.oid IN ({}) AND c.relkind = 'r'",
                oids.join(",")
            ))
            .await?;
        for row in rows {
            let get = |i: usize| {
                row.get(i)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            block_size = get(2).max(1);
            sizes.insert(get(0) as u32, get(1));
        }
    }
    let mut tasks = Vec::new();
    for table in tables {
        let pages = sizes.get(&table.oid).map(|bytes| bytes / block_size);
        let range_pages = (range_bytes / block_size).max(1);
        let parts = match pages {
            Some(pages) if split && pages >= 2 * range_pages => {
                ((pages / range_pages) as usize).clamp(1, parallelism)
            }
            _ => 1,
        };
        // Unknown sizes (partitioned tables) first: they may be large.
        let weight = pages.unwrap_or(u64::MAX);
        let copy = Arc::new(TableCopy {
            table,
            parts,
            left: AtomicUsize::new(parts),
            rows: AtomicU64::new(0),
            started: OnceLock::new(),
        });
        if parts == 1 {
            tasks.push(CopyTask {
                copy,
                pages: None,
                weight,
            });
            continue;
        }
        for (from, to, weight) in page_ranges(pages.unwrap_or(0), parts) {
            tasks.push(CopyTask {
                copy: copy.clone(),
                pages: Some((from, to)),
                weight,
            });
        }
    }
    // Largest first: the connections finish at about the same time.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.weight));
    Ok(tasks.into())
}

/// `parts` ranges of about equal size over `pages` pages, as (from, to,
/// size): the first unbounded below, the last above (the table may have
/// grown since it was measured), each starting where the previous ends.
fn page_ranges(pages: u64, parts: usize) -> Vec<(Option<u64>, Option<u64>, u64)> {
    let parts = parts.max(1);
    let bound = |i: usize| pages * i as u64 / parts as u64;
    (0..parts)
        .map(|i| {
            let from = (i > 0).then(|| bound(i));
            let to = (i + 1 < parts).then(|| bound(i + 1));
            (from, to, bound(i + 1) - bound(i))
        })
        .collect()
}

async fn server_version(conn: &mut Connection) -> Result<u32> {
    let rows = conn.query("SHOW server_version_num").await?;
    Ok(rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Copies `tables` with `parallelism` connections, sending each row as an
/// insert. `snapshot`: the exported snapshot to read at; without one,
/// tables are not split (their ranges would not be read at one point).
/// `range_bytes`: the size of a table's ranges (0: never split).
pub(crate) async fn copy_tables(
    connect: &ConnectConfig,
    tables: Vec<PgTable>,
    snapshot: Option<String>,
    parallelism: usize,
    range_bytes: u64,
    events: &Events,
) -> Result<u64> {
    let started = Instant::now();
    let total = Arc::new(AtomicU64::new(0));
    let count = tables.len();
    let parallelism = parallelism.max(1);
    let mut first = Connection::connect(connect, false).await?;
    let tasks = plan(
        &mut first,
        tables,
        snapshot.is_some(),
        parallelism,
        range_bytes,
    )
    .await?;
    let workers_wanted = parallelism.min(tasks.len().max(1));
    let queue = Arc::new(Mutex::new(tasks));
    let mut first = Some(first);
    let mut workers = Vec::new();
    for _ in 0..workers_wanted {
        let queue = queue.clone();
        let connect = connect.clone();
        let snapshot = snapshot.clone();
        let events = events.clone();
        let total = total.clone();
        let conn = first.take();
        workers.push(tokio::spawn(async move {
            let mut conn = match conn {
                Some(conn) => conn,
                None => Connection::connect(&connect, false).await?,
            };
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(task) = next else {
                    break;
                };
                let rows = copy_part(&mut conn, &task, snapshot.as_deref(), &events).await?;
                total.fetch_add(rows, Ordering::Relaxed);
            }
            conn.terminate().await;
            Ok::<(), CdcError>(())
        }));
    }
    if let Some(conn) = first {
        conn.terminate().await;
    }
    for worker in workers {
        worker
            .await
            .map_err(|e| source_error(format!("a copy worker failed: {e}")))??;
    }
    let rows = total.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    eprintln!(
        "cdc: initial copy: {count} tables, {rows} rows in {seconds:.1} s ({:.0} rows/s)",
        rows as f64 / seconds
    );
    Ok(rows)
}

/// The statement copying `task`: the table (or its range), its columns in
/// catalog order, in the binary format (columns without a binary reading
/// of ours as text).
fn copy_statement(task: &CopyTask) -> String {
    let table = &task.copy.table;
    let columns: Vec<String> = wires(table)
        .zip(&table.schema.columns)
        .map(|((wire, _), c)| match wire {
            Wire::AsText => format!("{}::text", ident(&c.name)),
            _ => ident(&c.name),
        })
        .collect();
    let columns = columns.join(", ");
    let mut bounds = Vec::new();
    if let Some((from, to)) = task.pages {
        if let Some(from) = from {
            bounds.push(format!("ctid >= '({from},0)'::tid"));
        }
        if let Some(to) = to {
            bounds.push(format!("ctid < '({to},0)'::tid"));
        }
    }
    let filter = if bounds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", bounds.join(" AND "))
    };
    // ONLY: like `COPY table`, without the rows of inheritance children; a
    // partitioned table's rows are all in its partitions.
    let only = if table.partitioned { "" } else { "ONLY " };
    format!(
        "COPY (SELECT {columns} FROM {only}{}{filter}) TO STDOUT (FORMAT binary)",
        table.sql_name()
    )
}

/// The binary form of each column of `table`, with its type.
fn wires(table: &PgTable) -> impl Iterator<Item = (Wire, DataType)> + '_ {
    table.schema.columns.iter().enumerate().map(|(i, c)| {
        let type_oid = table.type_oids.get(i).copied().unwrap_or(0);
        (Wire::of(type_oid, &c.data_type), c.data_type.clone())
    })
}

/// Copies one table or range in its own transaction; returns its row
/// count, and reports the table once its last range is done.
async fn copy_part(
    conn: &mut Connection,
    task: &CopyTask,
    snapshot: Option<&str>,
    events: &Events,
) -> Result<u64> {
    let copy = &task.copy;
    let table = &copy.table;
    copy.started.get_or_init(Instant::now);
    conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    if let Some(snapshot) = snapshot {
        conn.query(&format!("SET TRANSACTION SNAPSHOT {}", literal(snapshot)))
            .await?;
    }
    conn.copy_out(&copy_statement(task)).await?;
    let mut reader = BinaryRows::new(wires(table));
    let mut batch = RowsBuilder::new(&table.schema, BATCH_ROWS);
    let mut rows = 0u64;
    while let Some(data) = conn.copy_row().await? {
        reader
            .feed(&data, &mut batch)
            .map_err(|e| field_error(table, e))?;
        if batch.rows() >= BATCH_ROWS {
            rows += send_rows(table, &mut batch, events).await?;
        }
    }
    if !reader.complete() {
        return Err(CdcError::table(
            &table.id,
            "the binary COPY ended without its trailer",
        ));
    }
    rows += send_rows(table, &mut batch, events).await?;
    conn.query("COMMIT").await?;
    let table_rows = copy.rows.fetch_add(rows, Ordering::Relaxed) + rows;
    if copy.left.fetch_sub(1, Ordering::AcqRel) == 1 {
        let seconds = copy
            .started
            .get()
            .map_or(0.0, |s| s.elapsed().as_secs_f64())
            .max(0.001);
        let ranges = if copy.parts > 1 {
            format!(", {} ranges", copy.parts)
        } else {
            String::new()
        };
        eprintln!(
            "cdc: copied {}: {table_rows} rows in {seconds:.1} s ({:.0} rows/s{ranges})",
            table.id,
            table_rows as f64 / seconds
        );
    }
    Ok(rows)
}

/// Sends the rows built so far as one batch; returns their count.
async fn send_rows(table: &PgTable, batch: &mut RowsBuilder, events: &Events) -> Result<u64> {
    let rows = batch.rows();
    if rows == 0 {
        return Ok(0);
    }
    let batch = batch.finish().map_err(|e| CdcError::table(&table.id, e))?;
    let event = SourceEvent::Rows {
        table: table.id.clone(),
        batch,
    };
    if events.send(Ok(vec![event])).await.is_err() {
        return Err(source_error("the pipeline stopped"));
    }
    Ok(rows as u64)
}

/// An error reading the copy, naming the table and the column.
fn field_error(table: &PgTable, (column, message): FieldError) -> CdcError {
    match column.and_then(|i| table.schema.columns.get(i)) {
        Some(c) => CdcError::table(
            &table.id,
            format!("column '{}' ({}): {message}", c.name, c.source_type),
        ),
        None => CdcError::table(&table.id, format!("COPY: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_page_once() {
        assert_eq!(page_ranges(100, 1), vec![(None, None, 100)]);
        assert_eq!(
            page_ranges(10, 3),
            vec![
                (None, Some(3), 3),
                (Some(3), Some(6), 3),
                (Some(6), None, 4)
            ]
        );
    }

    #[test]
    fn ranges_read_by_ctid_from_the_table_only() {
        let column = |name: &str, data_type: DataType| crate::event::SourceColumn {
            name: name.into(),
            data_type,
            source_type: "?".into(),
            comment: None,
        };
        let table = PgTable {
            id: crate::event::SourceTableId::new("public", "t"),
            oid: 1,
            partitioned: false,
            replica_identity: 'd',
            schema: crate::event::SourceSchema {
                columns: vec![
                    column("id", DataType::string()),
                    column("tags", DataType::parse_sql("ARRAY<INT>").unwrap()),
                ],
                primary_key: vec!["id".into()],
            },
            type_oids: vec![25, 1007],
        };
        let copy = Arc::new(TableCopy {
            table,
            parts: 2,
            left: AtomicUsize::new(2),
            rows: AtomicU64::new(0),
            started: OnceLock::new(),
        });
        let task = |pages| CopyTask {
            copy: copy.clone(),
            pages,
            weight: 0,
        };
        let select = "COPY (SELECT \"id\", \"tags\"::text FROM ONLY \"public\".\"t\"";
        assert_eq!(
            copy_statement(&task(Some((None, Some(8))))),
            format!("{select} WHERE ctid < '(8,0)'::tid) TO STDOUT (FORMAT binary)")
        );
        assert_eq!(
            copy_statement(&task(Some((Some(8), None)))),
            format!("{select} WHERE ctid >= '(8,0)'::tid) TO STDOUT (FORMAT binary)")
        );
        assert_eq!(
            copy_statement(&task(None)),
            format!("{select}) TO STDOUT (FORMAT binary)")
        );
    }
}
