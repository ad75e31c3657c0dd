//! Maintenance as a service: tables with `'write-only' = 'true'` (whose
//! writers neither compact nor expire) are compacted (universal
//! compaction, as `tidelake compact` does) and expired (consumers, then
//! snapshots, per the table's options) by the workers, without anyone
//! starting a job.
//!
//! Each table has a lease (`_leases/maintenance/<db>.<table>`), held only
//! while its maintenance runs, so two workers never compact one table at
//! once. Its released record says when it last ran: a table is due once
//! that is `maintenance_interval` ago (by the reader's wall clock: a skewed
//! clock only makes maintenance run sooner or later). The worker the
//! table's rendezvous score ranks first takes it; any other does once it
//! is overdue by another interval.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidelake_engine::{Catalog, CompactOptions, ExpireOptions, Identifier};
use tokio::task::JoinHandle;

use crate::lease::{score, Held, LeaseStatus, Leases, Renewal};
use crate::worker::Journal;

/// The lease kind of table maintenance.
pub const MAINTENANCE_LEASE: &str = "maintenance";

type Task = JoinHandle<Result<String, String>>;

pub(crate) struct Maintenance {
    interval: Duration,
    /// The `write-only` tables, as of the last scan.
    tables: Vec<Identifier>,
    scanned_at: Option<Instant>,
    running: BTreeMap<String, (Held, Task)>,
}

impl Maintenance {
    pub fn new(interval: Duration) -> Maintenance {
        Maintenance {
            interval,
            tables: Vec::new(),
            scanned_at: None,
            running: BTreeMap::new(),
        }
    }

    /// Renews, finishes and starts maintenance; returns how many run.
    pub async fn tick(
        &mut self,
        catalog: &Catalog,
        leases: &Leases,
        live: &[String],
        slots_left: usize,
        journal: &Journal,
    ) -> usize {
        self.follow(leases, journal).await;
        if self
            .scanned_at
            .is_none_or(|at| at.elapsed() >= self.interval)
        {
            match write_only_tables(catalog).await {
                Ok(tables) => self.tables = tables,
                Err(e) => tracing::warn!("cannot list the write-only tables: {e}"),
            }
            self.scanned_at = Some(Instant::now());
        }
        let mut room = slots_left;
        for id in self.tables.clone() {
            if room == 0 {
                break;
            }
            let name = id.to_string();
            if self.running.contains_key(&name) {
                continue;
            }
            match self.start_if_due(leases, live, &id).await {
                Ok(Some(held)) => {
                    journal.record(&held);
                    let task = tokio::spawn(maintain(catalog.clone(), id));
                    self.running.insert(name, (held, task));
                    room -= 1;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(table = %name, "maintenance lease: {e}"),
            }
        }
        self.running.len()
    }

    /// Takes a table's lease if its maintenance is due and this worker
    /// should run it.
    async fn start_if_due(
        &self,
        leases: &Leases,
        live: &[String],
        id: &Identifier,
    ) -> crate::error::Result<Option<Held>> {
        let name = id.to_string();
        let observed = leases.observe(MAINTENANCE_LEASE, &name).await?;
        if observed.status != LeaseStatus::Free {
            return Ok(None);
        }
        let interval = i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX);
        let since = observed.record.as_ref().map_or(i64::MAX, |r| {
            chrono::Utc::now().timestamp_millis() - r.written_at_ms
        });
        let preferred = live
            .iter()
            .max_by_key(|w| score(&name, w))
            .map(String::as_str)
            == Some(leases.worker());
        let due = if preferred {
            since >= interval
        } else {
            since >= interval.saturating_mul(2)
        };
        if !due {
            return Ok(None);
        }
        leases.take(MAINTENANCE_LEASE, &name, observed.epoch).await
    }

    /// Renews running maintenance; releases what finished.
    async fn follow(&mut self, leases: &Leases, journal: &Journal) {
        let mut done = Vec::new();
        for (name, (held, task)) in self.running.iter_mut() {
            if task.is_finished() {
                done.push(name.clone());
                continue;
            }
            if !leases.due(held) {
                continue;
            }
            match leases.renew(held, None).await {
                Renewal::Renewed => journal.record(held),
                Renewal::Pending(e) => {
                    tracing::warn!(table = %name, "maintenance lease not renewed yet: {e}")
                }
                Renewal::TakenOver | Renewal::Expired => {
                    tracing::warn!(table = %name, "lost the maintenance lease: stopping");
                    task.abort();
                    done.push(name.clone());
                }
            }
        }
        for name in done {
            let Some((held, task)) = self.running.remove(&name) else {
                continue;
            };
            let note = match task.await {
                Ok(Ok(summary)) => {
                    tracing::info!(table = %name, "maintenance: {summary}");
                    summary
                }
                Ok(Err(e)) => {
                    tracing::warn!(table = %name, "maintenance failed: {e}");
                    format!("failed: {e}")
                }
                // Aborted: the lease was lost, nothing to release.
                Err(_) => continue,
            };
            journal.released(&held);
            if let Err(e) = leases.release(&held, Some(note)).await {
                tracing::warn!(table = %name, "could not release the maintenance lease: {e}");
            }
        }
    }

    /// Waits for running maintenance and releases its leases.
    pub async fn leave(&mut self, leases: &Leases) {
        for (name, (held, task)) in std::mem::take(&mut self.running) {
            let note = match task.await {
                Ok(Ok(summary)) => summary,
                Ok(Err(e)) => format!("failed: {e}"),
                Err(_) => continue,
            };
            if let Err(e) = leases.release(&held, Some(note)).await {
                tracing::warn!(table = %name, "could not release the maintenance lease: {e}");
            }
        }
    }
}

/// Every table of the warehouse with `'write-only' = 'true'`.
async fn write_only_tables(catalog: &Catalog) -> tidelake_engine::Result<Vec<Identifier>> {
    let mut out = Vec::new();
    for database in catalog.list_databases().await? {
        for table in catalog.list_tables(&database).await? {
            let id = Identifier::new(database.clone(), table);
            match catalog.load_table(&id).await {
                Ok(t) if t.options().write_only => out.push(id),
                Ok(_) => {}
                Err(e) => tracing::debug!(table = %id, "skipped by maintenance: {e}"),
            }
        }
    }
    Ok(out)
}

/// Compacts and expires one table.
async fn maintain(catalog: Catalog, id: Identifier) -> Result<String, String> {
    let run = async {
        let table = catalog.load_table(&id).await?;
        let compacted = table.compact(CompactOptions::default()).await?;
        let now = chrono::Utc::now().timestamp_millis();
        table.expire_consumers(now).await?;
        let table = catalog.load_table(&id).await?;
        let expired = table
            .expire_snapshots(ExpireOptions::from_table(&table, now))
            .await?;
        Ok::<_, tidelake_engine::EngineError>(format!(
            "compacted {} files into {} (snapshot {}), expired {} snapshots",
            compacted.files_in,
            compacted.files_out,
            compacted
                .snapshot_id
                .map_or_else(|| "none".to_string(), |s| s.to_string()),
            expired.snapshots_deleted
        ))
    };
    run.await.map_err(|e| e.to_string())
}
