//! The initial copy: tables read with `COPY ... TO STDOUT` (text format)
//! by several connections in parallel, each in a REPEATABLE READ
//! transaction on the same exported snapshot when there is one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use super::catalog::PgTable;
use super::types::parse_value;
use super::wire::{ident, literal, source_error, ConnectConfig, Connection, Result};
use crate::error::CdcError;
use crate::event::{CdcValue, ChangeKind, RowChange, SourceEvent};

pub(crate) type Events = mpsc::Sender<std::result::Result<SourceEvent, CdcError>>;

/// Copies `tables` with `parallelism` connections, sending each row as an
/// insert. `snapshot`: the exported snapshot to read at.
pub(crate) async fn copy_tables(
    connect: &ConnectConfig,
    tables: Vec<PgTable>,
    snapshot: Option<String>,
    parallelism: usize,
    events: &Events,
) -> Result<u64> {
    let started = Instant::now();
    let total = Arc::new(AtomicU64::new(0));
    let count = tables.len();
    let queue = Arc::new(Mutex::new(tables.into_iter().collect::<VecDeque<_>>()));
    let mut workers = Vec::new();
    for _ in 0..parallelism.clamp(1, count.max(1)) {
        let queue = queue.clone();
        let connect = connect.clone();
        let snapshot = snapshot.clone();
        let events = events.clone();
        let total = total.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = Connection::connect(&connect, false).await?;
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(table) = next else {
                    break;
                };
                let rows = copy_one(&mut conn, &table, snapshot.as_deref(), &events).await?;
                total.fetch_add(rows, Ordering::Relaxed);
            }
            conn.terminate().await;
            Ok::<(), CdcError>(())
        }));
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

/// Copies one table in its own transaction; returns its row count.
pub(crate) async fn copy_one(
    conn: &mut Connection,
    table: &PgTable,
    snapshot: Option<&str>,
    events: &Events,
) -> Result<u64> {
    let started = Instant::now();
    conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    if let Some(snapshot) = snapshot {
        conn.query(&format!("SET TRANSACTION SNAPSHOT {}", literal(snapshot)))
            .await?;
    }
    let columns: Vec<String> = table
        .schema
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect();
    let sql = if table.partitioned {
        format!(
            "COPY (SELECT {} FROM {}) TO STDOUT",
            columns.join(", "),
            table.sql_name()
        )
    } else {
        format!(
            "COPY {} ({}) TO STDOUT",
            table.sql_name(),
            columns.join(", ")
        )
    };
    conn.copy_out(&sql).await?;
    let mut rows = 0u64;
    while let Some(line) = conn.copy_row().await? {
        let values = parse_copy_line(&line, table)?;
        rows += 1;
        let change = RowChange {
            table: table.id.clone(),
            kind: ChangeKind::Insert,
            values,
            op_ts_micros: None,
        };
        if events.send(Ok(SourceEvent::Change(change))).await.is_err() {
            return Ok(rows);
        }
    }
    conn.query("COMMIT").await?;
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    eprintln!(
        "cdc: copied {}: {rows} rows in {seconds:.1} s ({:.0} rows/s)",
        table.id,
        rows as f64 / seconds
    );
    Ok(rows)
}

/// One row of COPY's text format: tab-separated, `\N` for NULL, backslash
/// escapes.
fn parse_copy_line(line: &[u8], table: &PgTable) -> Result<Vec<CdcValue>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let fields: Vec<&[u8]> = line.split(|b| *b == b'\t').collect();
    if fields.len() != table.schema.columns.len() {
        return Err(source_error(format!(
            "COPY of {} gave {} values for {} columns",
            table.id,
            fields.len(),
            table.schema.columns.len()
        )));
    }
    fields
        .iter()
        .zip(&table.schema.columns)
        .map(|(field, column)| {
            if *field == b"\\N" {
                return Ok(CdcValue::Null);
            }
            let text = unescape(field);
            parse_value(&text, &column.data_type).map_err(|e| {
                CdcError::table(
                    &table.id,
                    format!("column '{}' ({}): {e}", column.name, column.source_type),
                )
            })
        })
        .collect()
}

fn unescape(field: &[u8]) -> String {
    if !field.contains(&b'\\') {
        return String::from_utf8_lossy(field).into_owned();
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
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_unescapes() {
        assert_eq!(unescape(b"a\\tb\\\\c\\nd"), "a\tb\\c\nd");
        assert_eq!(unescape(b"\\101\\x42"), "AB");
        assert_eq!(unescape(b"\\\\x00ff"), "\\x00ff");
    }
}
