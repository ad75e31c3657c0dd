//! Compaction in the background of long-running writers.
//!
//! A [`BackgroundCompactor`] owns one tokio task per table. Writers given
//! its [`CompactionHandle`] (see [`TableWriter::compact_in_background`])
//! send it the buckets they committed instead of compacting them before
//! `commit` returns, so the next batch is written while the last one is
//! compacted. Requests that arrive while a round runs are merged into the
//! next round; rounds run one at a time (the machine's cores are better
//! spent on one compaction than on several contending ones).
//!
//! Safety rests on the commit protocol, not on this task: a round commits a
//! COMPACT snapshot that fails if its input files were removed meanwhile
//! (another compaction won) and never conflicts with the writers' APPEND
//! commits, which only add level-0 files. A round that fails is logged and
//! its buckets are left for a later one. `num-sorted-run.stop-trigger`
//! still holds: a writer that finds a bucket at the stop trigger compacts
//! it itself before it accepts data.
//!
//! Tables whose readers need level 0 compacted at each commit (deletion
//! vectors, first-row, the lookup changelog producer) keep compacting
//! before `commit` returns, whatever the writer was given.
//!
//! [`TableWriter::compact_in_background`]: crate::write::TableWriter::compact_in_background

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::compact_table;
use crate::compact::{
    compacts_inline, CompactOptions, CompactRequest as Request, CompactionHandle,
};
use crate::table::Table;

/// What a background compactor did over its life.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackgroundSummary {
    /// Rounds run (each compacts the buckets requested since the last one).
    pub rounds: u64,
    /// COMPACT snapshots committed.
    pub snapshots: u64,
    /// Rounds that failed (logged; their buckets wait for a later round).
    pub failures: u64,
}

/// A table's background compaction task; see the module documentation.
pub struct BackgroundCompactor {
    sender: mpsc::UnboundedSender<Request>,
    worker: JoinHandle<BackgroundSummary>,
}

impl BackgroundCompactor {
    /// Starts the task (on the current tokio runtime).
    pub fn start(table: &Table) -> BackgroundCompactor {
        let (sender, receiver) = mpsc::unbounded_channel();
        let worker = tokio::spawn(run(table.clone(), receiver));
        BackgroundCompactor { sender, worker }
    }

    /// A handle for writers of the table.
    pub fn handle(&self) -> CompactionHandle {
        CompactionHandle::new(self.sender.clone())
    }

    /// Waits until every request queued so far has been compacted.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Request::Flush(done)).is_ok() {
            // An error means the task stopped; nothing is left to wait for.
            let _ = wait.await;
        }
    }

    /// Compacts what is queued, stops the task and says what it did.
    pub async fn finish(self) -> BackgroundSummary {
        // A send error means the task already stopped.
        let _ = self.sender.send(Request::Finish);
        match self.worker.await {
            Ok(summary) => summary,
            Err(e) => {
                tracing::warn!("background compaction task ended abnormally: {e}");
                BackgroundSummary::default()
            }
        }
    }
}

async fn run(table: Table, mut receiver: mpsc::UnboundedReceiver<Request>) -> BackgroundSummary {
    let mut summary = BackgroundSummary::default();
    let mut finishing = false;
    while !finishing {
        let Some(first) = receiver.recv().await else {
            break;
        };
        let mut buckets = HashSet::new();
        let mut full = false;
        let mut waiting = Vec::new();
        // Everything queued joins this round.
        let mut next = Some(first);
        while let Some(request) = next {
            match request {
                Request::Compact {
                    buckets: more,
                    full: more_full,
                } => {
                    buckets.extend(more);
                    full |= more_full;
                }
                Request::Finish => finishing = true,
                Request::Flush(done) => waiting.push(done),
            }
            next = receiver.try_recv().ok();
        }
        if !buckets.is_empty() && compacts_inline(&table) {
            summary.rounds += 1;
            let options = CompactOptions {
                full,
                partition: None,
            };
            match compact_table(&table, &options, Some(&buckets)).await {
                Ok(outcome) => {
                    if let Some(id) = outcome.snapshot_id {
                        summary.snapshots += 1;
                        tracing::debug!(table = %table.id, snapshot = id, buckets = buckets.len(), files_in = outcome.files_in, files_out = outcome.files_out, "background compaction committed");
                    }
                }
                Err(e) => {
                    summary.failures += 1;
                    tracing::warn!(table = %table.id, "background compaction round failed, left for a later one: {e}");
                }
            }
        }
        for done in waiting {
            // The flusher may have given up waiting; nothing to do then.
            let _ = done.send(());
        }
    }
    summary
}
