//! The PostgreSQL source: logical replication with pgoutput.
//!
//! Start-up (in [`PostgresSource::start`], so that a wrong password, a
//! server without `wal_level = logical` or a lost slot fail at once):
//! 1. the tables the filter accepts are read from the catalog; those with
//!    a primary key (or REPLICA IDENTITY FULL) are published in publication
//!    `tidelake_<pipeline>` (created, or completed when it exists);
//! 2. a fresh start creates slot `tidelake_<pipeline>` with an exported
//!    snapshot, copies every table under that snapshot (several
//!    connections in parallel) and ends the copy with a commit at the
//!    slot's consistent point, so the stream continues with no gap and no
//!    duplicate;
//! 3. a restart finds the slot and resumes at the smallest position the
//!    sink's tables recorded, skipping each table's transactions up to its
//!    own; a table the sink never committed (a crash during the copy) is
//!    copied again first, under the exported snapshot of a temporary slot,
//!    and its transactions before that slot's consistent point are skipped:
//!    nothing is lost or applied twice;
//! 4. the stream: each source transaction's changes (updates with their
//!    old image, looked up by the sink when PostgreSQL sends only the key;
//!    unchanged TOAST values as [`CdcValue::Unchanged`]) then a commit whose
//!    position is the transaction's end LSN; keepalives between
//!    transactions become heartbeats; the slot is acknowledged only up to
//!    what the sink says is committed.
//!
//! Tables created while the stream runs are found by polling the catalog
//! between transactions: added to the publication, copied under a
//! temporary slot's snapshot, and streamed from its consistent point.

mod binary;
mod catalog;
mod copy;
mod pgoutput;
mod stream;
pub mod types;
mod wire;

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use self::catalog::{check_server, discover, ensure_publication, slot_position};
use self::pgoutput::{format_lsn, parse_lsn};
pub use self::wire::ConnectConfig;
use self::wire::{ident, source_error, Connection};
use crate::error::{CdcError, Result};
use crate::event::{ChangeSource, Resume, SourceEvent, SourcePosition};
use crate::sink::config::TableFilter;

/// What runs: the copy, the stream, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    SnapshotAndStream,
    /// Copy the tables, then end (no slot is created).
    SnapshotOnly,
    /// Stream from the slot only (created without a copy if missing).
    StreamOnly,
}

/// The PostgreSQL source's settings.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    pub connect: ConnectConfig,
    pub pipeline: String,
    /// Default `tidelake_<pipeline>`.
    pub slot: Option<String>,
    /// Default `tidelake_<pipeline>`.
    pub publication: Option<String>,
    pub filter: TableFilter,
    pub mode: Mode,
    /// Connections copying tables (or ranges of a large table) at once.
    pub copy_parallelism: usize,
    /// A table of at least twice this size is copied in ranges of pages
    /// of about this size, at most `copy_parallelism` of them (0: tables are
    /// never split).
    pub copy_range_bytes: u64,
    /// How often the catalog is polled for new tables while streaming.
    pub new_table_poll: Duration,
}

impl PostgresConfig {
    pub fn new(connect: ConnectConfig, pipeline: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            connect,
            pipeline: pipeline.into(),
            slot: None,
            publication: None,
            filter: TableFilter::all(),
            mode: Mode::SnapshotAndStream,
            copy_parallelism: 4,
            copy_range_bytes: copy::DEFAULT_RANGE_BYTES,
            new_table_poll: Duration::from_secs(5),
        }
    }

    pub fn slot_name(&self) -> String {
        self.slot
            .clone()
            .unwrap_or_else(|| default_name(&self.pipeline))
    }

    pub fn publication_name(&self) -> String {
        self.publication
            .clone()
            .unwrap_or_else(|| default_name(&self.pipeline))
    }
}

/// Slot names allow lower-case letters, digits and `_` only.
fn default_name(pipeline: &str) -> String {
    let cleaned: String = pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("tidelake_{cleaned}")
}

/// A position: the LSN as 16 hex digits (ordered as text too).
pub(crate) fn position(lsn: u64) -> SourcePosition {
    SourcePosition(format!("{lsn:016X}"))
}

pub(crate) fn lsn_of(position: &SourcePosition) -> Option<u64> {
    u64::from_str_radix(&position.0, 16)
        .ok()
        .or_else(|| parse_lsn(&position.0))
}

/// The PostgreSQL change source; see the module doc.
pub struct PostgresSource {
    events: mpsc::Receiver<std::result::Result<Vec<SourceEvent>, CdcError>>,
    /// The rest of the batch received last.
    pending: VecDeque<SourceEvent>,
    acks: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PostgresSource {
    /// Connects, checks the server, prepares publication and slot, and
    /// starts copying and streaming in a background task.
    pub async fn start(config: PostgresConfig, resume: Resume) -> Result<PostgresSource> {
        let mut ctl = Connection::connect(&config.connect, false).await?;
        check_server(&mut ctl).await?;
        let tables = discover(&mut ctl, &config.filter).await?;
        let publication = config.publication_name();
        let slot = config.slot_name();
        let replicable: Vec<_> = tables.iter().filter(|t| t.replicable()).collect();
        // Copies send batches of rows: at most 64 batches (16k rows) in
        // flight, whatever the number of copy connections.
        let (sender, events) = mpsc::channel(64);
        let (acks, ack_receiver) = watch::channel(0u64);
        if config.mode == Mode::SnapshotOnly {
            let task = tokio::spawn(async move {
                let result = stream::snapshot_only(&config, ctl, tables, &sender).await;
                if let Err(e) = result {
                    let _ = sender.send(Err(e)).await;
                }
            });
            return Ok(PostgresSource {
                events,
                pending: VecDeque::new(),
                acks,
                task,
            });
        }
        ensure_publication(&mut ctl, &publication, &replicable).await?;
        let existing = slot_position(&mut ctl, &slot, &config.connect.dbname).await?;
        let mut repl = Connection::connect(&config.connect, true).await?;
        let (start, snapshot) = match existing {
            Some(confirmed) => {
                let confirmed = confirmed.as_deref().and_then(parse_lsn).unwrap_or(0);
                let min = resume
                    .min_by(compare)
                    .and_then(lsn_of)
                    .unwrap_or(confirmed);
                (min.max(confirmed), None)
            }
            None if !resume.tables.is_empty() => {
                return Err(source_error(format!(
                    "replication slot '{slot}' does not exist, but the pipeline's tables record positions (up to {}): the changes since are lost. Drop the pipeline's tables to sync again from a fresh copy, or recreate the pipeline under another name",
                    resume.tables.values().map(|p| p.0.clone()).max().unwrap_or_default()
                )))
            }
            None => {
                let export = if config.mode == Mode::StreamOnly {
                    "NOEXPORT_SNAPSHOT"
                } else {
                    "EXPORT_SNAPSHOT"
                };
                let (consistent, snapshot) =
                    create_slot(&mut repl, &slot, &format!("LOGICAL pgoutput {export}")).await?;
                eprintln!(
                    "cdc: created replication slot '{slot}' at {}",
                    format_lsn(consistent)
                );
                (consistent, snapshot)
            }
        };
        let state = stream::StreamState::new(config, publication, slot, resume, tables, start);
        let task = tokio::spawn(async move {
            let result = state.run(ctl, repl, snapshot, ack_receiver, &sender).await;
            if let Err(e) = result {
                let _ = sender.send(Err(e)).await;
            }
        });
        Ok(PostgresSource {
            events,
            pending: VecDeque::new(),
            acks,
            task,
        })
    }
}

/// `CREATE_REPLICATION_SLOT slot <options>` on a replication connection:
/// the slot's consistent point and its exported snapshot, if any.
pub(crate) async fn create_slot(
    repl: &mut Connection,
    slot: &str,
    options: &str,
) -> Result<(u64, Option<String>)> {
    let rows = repl
        .query(&format!(
            "CREATE_REPLICATION_SLOT {} {options}",
            ident(slot)
        ))
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| source_error("CREATE_REPLICATION_SLOT returned nothing"))?;
    let consistent = row
        .get(1)
        .cloned()
        .flatten()
        .and_then(|l| parse_lsn(&l))
        .ok_or_else(|| source_error("CREATE_REPLICATION_SLOT gave no LSN"))?;
    Ok((consistent, row.get(2).cloned().flatten()))
}

fn compare(a: &SourcePosition, b: &SourcePosition) -> Ordering {
    match (lsn_of(a), lsn_of(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => a.0.cmp(&b.0),
    }
}

#[async_trait::async_trait]
impl ChangeSource for PostgresSource {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            // Cancel-safe: a batch is either received whole or not at all.
            match self.events.recv().await {
                Some(Ok(batch)) => self.pending = batch.into(),
                Some(Err(e)) => return Err(e),
                None => return Ok(None),
            }
        }
    }

    async fn acknowledge(&mut self, position: &SourcePosition) -> Result<()> {
        let lsn = lsn_of(position).ok_or_else(|| CdcError::Source {
            source_kind: "PostgreSQL",
            message: format!("'{position}' is not an LSN"),
        })?;
        self.acks.send_if_modified(|acked| {
            let newer = lsn > *acked;
            if newer {
                *acked = lsn;
            }
            newer
        });
        Ok(())
    }

    fn compare_positions(&self, a: &SourcePosition, b: &SourcePosition) -> Ordering {
        compare(a, b)
    }
}

/// A slot's state for `--status`: confirmed position and bytes of WAL
/// behind the server's current position.
pub async fn slot_status(config: &PostgresConfig) -> Result<Option<(String, i64)>> {
    let mut conn = Connection::connect(&config.connect, false).await?;
    let rows = conn
        .query(&format!(
            "SELECT confirmed_flush_lsn::text, (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 \
             FROM pg_replication_slots WHERE slot_name = {}",
            wire::literal(&config.slot_name())
        ))
        .await?;
    conn.terminate().await;
    Ok(rows.first().map(|r| {
        let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        (get(0), get(1).parse().unwrap_or(0))
    }))
}

/// Drops the pipeline's slot and publication (`--drop`, tests).
pub async fn drop_replication(config: &PostgresConfig) -> Result<()> {
    let mut conn = Connection::connect(&config.connect, false).await?;
    conn.query(&format!(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = {} AND NOT active",
        wire::literal(&config.slot_name())
    ))
    .await?;
    conn.query(&format!(
        "DROP PUBLICATION IF EXISTS {}",
        ident(&config.publication_name())
    ))
    .await?;
    conn.terminate().await;
    Ok(())
}
