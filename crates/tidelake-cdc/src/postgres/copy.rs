//! The initial copy: tables read with `COPY ... TO STDOUT` (text format)
//! by several connections in parallel, each in a REPEATABLE READ
//! transaction on the same exported snapshot when there is one.
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

use super::catalog::PgTable;
use super::types::parse_value;
use super::wire::{ident, literal, source_error, ConnectConfig, Connection, Result};
use crate::error::CdcError;
use crate::event::{CdcValue, ChangeKind, RowChange, SourceEvent};
use tidelake_format::types::DataTypeKind;

/// What the source's background task sends: events in batches, so that a
/// copy pays the channel's cost once per batch rather than once per row.
pub(crate) type Events = mpsc::Sender<std::result::Result<Vec<SourceEvent>, CdcError>>;

/// Rows per batch sent by a copy.
const BATCH_ROWS: usize = 256;

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
/// catalog order.
fn copy_statement(task: &CopyTask) -> String {
    let table = &task.copy.table;
    let columns: Vec<String> = table
        .schema
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect();
    let columns = columns.join(", ");
    match task.pages {
        // ONLY: like `COPY table`, without the rows of inheritance children.
        Some((from, to)) => {
            let mut bounds = Vec::new();
            if let Some(from) = from {
                bounds.push(format!("ctid >= '({from},0)'::tid"));
            }
            if let Some(to) = to {
                bounds.push(format!("ctid < '({to},0)'::tid"));
            }
            if bounds.is_empty() {
                bounds.push("true".into());
            }
            format!(
                "COPY (SELECT {columns} FROM ONLY {} WHERE {}) TO STDOUT",
                table.sql_name(),
                bounds.join(" AND ")
            )
        }
        None if table.partitioned => format!(
            "COPY (SELECT {columns} FROM {}) TO STDOUT",
            table.sql_name()
        ),
        None => format!("COPY {} ({columns}) TO STDOUT", table.sql_name()),
    }
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
    let mut rows = 0u64;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    while let Some(line) = conn.copy_row().await? {
        let values = parse_copy_line(&line, table)?;
        rows += 1;
        batch.push(SourceEvent::Change(RowChange {
            table: table.id.clone(),
            kind: ChangeKind::Insert,
            values,
            op_ts_micros: None,
        }));
        if batch.len() >= BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if events.send(Ok(full)).await.is_err() {
                return Err(source_error("the pipeline stopped"));
            }
        }
    }
    if !batch.is_empty() && events.send(Ok(batch)).await.is_err() {
        return Err(source_error("the pipeline stopped"));
    }
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

/// One row of COPY's text format: tab-separated, `\N` for NULL, backslash
/// escapes.
fn parse_copy_line(line: &[u8], table: &PgTable) -> Result<Vec<CdcValue>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let columns = &table.schema.columns;
    let mut values = Vec::with_capacity(columns.len());
    let mut fields = line.split(|b| *b == b'\t');
    for column in columns {
        let Some(field) = fields.next() else {
            break;
        };
        if field == b"\\N" {
            values.push(CdcValue::Null);
            continue;
        }
        let text = unescape(field);
        let value = match column.data_type.kind {
            // Text is the common case: its unescaped text is the value.
            DataTypeKind::Char(_) | DataTypeKind::VarChar(_) => CdcValue::String(text.into_owned()),
            _ => parse_value(&text, &column.data_type).map_err(|e| {
                CdcError::table(
                    &table.id,
                    format!("column '{}' ({}): {e}", column.name, column.source_type),
                )
            })?,
        };
        values.push(value);
    }
    if values.len() != columns.len() || fields.next().is_some() {
        let got = line.split(|b| *b == b'\t').count();
        return Err(source_error(format!(
            "COPY of {} gave {got} values for {} columns",
            table.id,
            columns.len()
        )));
    }
    Ok(values)
}

/// A field's text with COPY's backslash escapes resolved (borrowed when it
/// has none, the usual case).
fn unescape(field: &[u8]) -> std::borrow::Cow<'_, str> {
    if !field.contains(&b'\\') {
        return String::from_utf8_lossy(field);
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let next = field[i + 1];
        i += 2;
        match next {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = (next - b'0') as u32;
                let mut digits = 1;
                while digits < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    value = value * 8 + (field[i] - b'0') as u32;
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            b'x' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    value = value * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
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
        let table = PgTable {
            id: crate::event::SourceTableId::new("public", "t"),
            oid: 1,
            partitioned: false,
            replica_identity: 'd',
            schema: crate::event::SourceSchema {
                columns: vec![crate::event::SourceColumn {
                    name: "id".into(),
                    data_type: tidelake_format::types::DataType::string(),
                    source_type: "text".into(),
                    comment: None,
                }],
                primary_key: vec!["id".into()],
            },
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
        assert_eq!(
            copy_statement(&task(Some((None, Some(8))))),
            "COPY (SELECT \"id\" FROM ONLY \"public\".\"t\" WHERE ctid < '(8,0)'::tid) TO STDOUT"
        );
        assert_eq!(
            copy_statement(&task(Some((Some(8), None)))),
            "COPY (SELECT \"id\" FROM ONLY \"public\".\"t\" WHERE ctid >= '(8,0)'::tid) TO STDOUT"
        );
        assert_eq!(
            copy_statement(&task(None)),
            "COPY \"public\".\"t\" (\"id\") TO STDOUT"
        );
    }

    #[test]
    fn copy_text_unescapes() {
        assert_eq!(unescape(b"a\\tb\\\\c\\nd"), "a\tb\\c\nd");
        assert_eq!(unescape(b"\\101\\x42"), "AB");
        assert_eq!(unescape(b"\\\\x00ff"), "\\x00ff");
    }
}
