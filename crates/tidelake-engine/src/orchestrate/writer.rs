//! The steps of a [`TableWriter`] that compact or commit: the writer
//! (`crate::write`) buffers and flushes rows, and this layer runs the
//! compactions and commits around it.

use std::collections::{BTreeMap, HashSet};

use arrow_array::RecordBatch;
use tidelake_format::snapshot::CommitKind;

use super::{commit_fenced, compact_inline};
use crate::compact::forces_level0_compaction;
use crate::error::Result;
use crate::kv::RowKind;
use crate::lsm::BucketId;
use crate::progress::OwnerProgress;
use crate::write::TableWriter;

impl TableWriter {
    /// Writes rows that all have the same kind.
    pub async fn write(&mut self, batch: RecordBatch, kind: RowKind) -> Result<()> {
        let kinds = vec![kind; batch.num_rows()];
        self.write_with_kinds(batch, &kinds).await
    }

    /// Writes rows with a kind each. The batch has the table's columns, in order.
    pub async fn write_with_kinds(&mut self, batch: RecordBatch, kinds: &[RowKind]) -> Result<()> {
        let Some(batch) = self.accept(batch, kinds)? else {
            return Ok(());
        };
        self.write_accepted(batch, kinds).await
    }

    /// Buffers rows [`TableWriter::accept`] returned.
    pub(crate) async fn write_accepted(
        &mut self,
        batch: RecordBatch,
        kinds: &[RowKind],
    ) -> Result<()> {
        // Buckets at `num-sorted-run.stop-trigger` are compacted before the
        // writer accepts data (once; then it starts from what is there).
        let stalled = self.load_base(true).await?;
        if !stalled.is_empty() {
            compact_inline(self.table(), &stalled, false).await;
            self.load_base(false).await?;
        }
        self.buffer(batch, kinds).await
    }

    /// Flushes everything and commits one snapshot; returns its id, or `None`
    /// when nothing was written. On error nothing is committed.
    pub async fn commit(mut self) -> Result<Option<i64>> {
        self.commit_with(CommitKind::Append, BTreeMap::new()).await
    }

    /// Like `commit`, with snapshot properties (e.g. a streaming job's progress).
    pub async fn commit_with(
        &mut self,
        kind: CommitKind,
        properties: BTreeMap<String, String>,
    ) -> Result<Option<i64>> {
        self.commit_fenced(kind, properties, None).await
    }

    /// Commits recording `positions` (by slot) for `from.owner`, fenced: the
    /// commit is refused with a conflict (nothing committed) if a snapshot
    /// after `from.read_at` records other positions for the owner; see
    /// [`crate::progress`]. A writer that wrote no rows still commits a
    /// snapshot: it records the progress over input without output.
    pub async fn commit_progress(
        &mut self,
        kind: CommitKind,
        from: &OwnerProgress,
        positions: &BTreeMap<String, String>,
        mut properties: BTreeMap<String, String>,
    ) -> Result<Option<i64>> {
        for (slot, value) in positions {
            properties.insert(from.owner.key(slot), value.clone());
        }
        self.commit_fenced(kind, properties, Some(from)).await
    }

    /// Like `commit_with`, fenced by `fence` (see [`commit_progress`]) when
    /// given: `properties` then hold the owner's new positions by key.
    ///
    /// [`commit_progress`]: TableWriter::commit_progress
    pub async fn commit_fenced(
        &mut self,
        kind: CommitKind,
        properties: BTreeMap<String, String>,
        fence: Option<&OwnerProgress>,
    ) -> Result<Option<i64>> {
        let committed = match self.prepare_commit(kind, properties).await {
            Ok(request) => commit_fenced(self.table(), request, fence).await,
            Err(e) => Err(e),
        };
        let id = match committed {
            Ok(id) => id,
            // A live snapshot may reference the files: keep them (at worst
            // they are orphans for `remove_orphan_files`).
            Err(e) if e.is_commit_unknown() => {
                self.forget_written_files();
                return Err(e);
            }
            Err(e) => {
                self.delete_written_files().await;
                return Err(e);
            }
        };
        let written = self.finish_commit();
        if let Some(id) = id {
            self.compact_after_commit(id, written).await;
        }
        Ok(id)
    }

    /// Compacts the buckets a commit wrote: in the background task when the
    /// writer was given one (and the table allows it), otherwise inline.
    /// With `full-compaction.delta-commits`, every N-th snapshot (counted by
    /// id, so that any number of writers share one cadence) the writer
    /// compacts its buckets fully.
    async fn compact_after_commit(&self, id: i64, written: HashSet<BucketId>) {
        let table = self.table();
        let full = table
            .layout
            .options
            .full_compaction_delta_commits
            .is_some_and(|n| (id as u64).is_multiple_of(n));
        let queued = match self.background() {
            Some(handle) if !forces_level0_compaction(table) => {
                handle.request(written.clone(), full)
            }
            _ => false,
        };
        if !queued {
            compact_inline(table, &written, full).await;
        }
    }
}
