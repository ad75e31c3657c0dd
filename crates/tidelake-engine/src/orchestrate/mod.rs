//! The table-level orchestrator, the top layer of the engine below the
//! catalog: it runs a commit and what follows it.
//!
//! The layers below never commit on their own behalf: the writer, compaction
//! and rewrites prepare a [`CommitRequest`], and [`commit`] here runs the
//! commit protocol, then expiration (`lifecycle`); after a writer's commit,
//! inline or background compaction of the buckets it wrote follows, itself
//! committed (and followed by expiration) the same way. So the commit
//! protocol makes no call upward, and every successful commit (writers,
//! INSERT OVERWRITE, compactions, copy-on-write rewrites, procedures) is
//! followed by the same work.

mod background;
mod group;
mod partitions;
mod writer;

pub use background::{BackgroundCompactor, BackgroundSummary};
pub use group::{WriteTurn, GROUP_SIZE_PROPERTY, MAX_GROUP_BYTES, RETRIES_PROPERTY};
pub use partitions::{parse_partition_time, ExpireStrategy, PartitionExpireOptions, PartitionInfo};

use std::collections::HashSet;

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use tidelake_format::snapshot::CommitKind;

use crate::commit::{CommitRequest, Committer, ManifestCompaction};
use crate::compact::{self, compacts_inline, CompactOptions, CompactOutcome, Prepared};
use crate::error::Result;
use crate::lsm::BucketId;
use crate::progress::OwnerProgress;
use crate::read::predicate::Predicate;
use crate::table::Table;
use crate::write::{BatchChange, PreparedAppendRewrite, RewriteOutcome};

/// Commits `request`, then runs what follows a commit. Returns the new
/// snapshot id, or `None` when there was nothing to commit.
pub(crate) async fn commit(table: &Table, request: CommitRequest) -> Result<Option<i64>> {
    let id = Committer::new(table)?.commit(request).await?;
    after_commit(table, id).await;
    Ok(id)
}

/// [`commit`], refused with a conflict if a snapshot after `fence.read_at`
/// records other positions for its owner (see [`crate::progress`]).
pub(crate) async fn commit_fenced(
    table: &Table,
    request: CommitRequest,
    fence: Option<&OwnerProgress>,
) -> Result<Option<i64>> {
    let id = Committer::new(table)?.commit_fenced(request, fence).await?;
    after_commit(table, id).await;
    Ok(id)
}

/// After a successful commit (`id` is its snapshot), expires partitions,
/// snapshots and consumers as the table's options say.
async fn after_commit(table: &Table, id: Option<i64>) {
    if id.is_some() {
        partitions::expire_partitions_after_commit(table).await;
        crate::lifecycle::expire_after_commit(table).await;
    }
}

/// Compacts the buckets of `table` (all, or those in `only`), and commits
/// one COMPACT snapshot.
pub(crate) async fn compact_table(
    table: &Table,
    options: &CompactOptions,
    only: Option<&HashSet<BucketId>>,
) -> Result<CompactOutcome> {
    let table = &compact::with_latest_schema(table).await?;
    let prepared = compact::prepare(table, options, only).await?;
    commit_prepared(table, prepared).await
}

/// Commits prepared compaction work as one COMPACT snapshot; on failure its
/// output files are deleted, unless the outcome is unknown (a live snapshot
/// may reference them).
pub(crate) async fn commit_prepared(table: &Table, prepared: Prepared) -> Result<CompactOutcome> {
    commit_prepared_with(table, prepared, BTreeMap::new()).await
}

/// [`commit_prepared`], recording `properties` in the COMPACT snapshot.
async fn commit_prepared_with(
    table: &Table,
    prepared: Prepared,
    properties: BTreeMap<String, String>,
) -> Result<CompactOutcome> {
    let Some(mut request) = prepared.commit_request() else {
        return Ok(prepared.outcome(None));
    };
    request.properties = properties;
    match commit(table, request).await {
        Ok(id) => Ok(prepared.outcome(id)),
        Err(e) if e.is_commit_unknown() => Err(e),
        Err(e) => {
            prepared.discard(table).await;
            Err(e)
        }
    }
}

/// Inline compaction by a writer: after its commit, of the buckets it wrote
/// (those at `num-sorted-run.compaction-trigger` runs get compacted); before
/// it accepts data, of buckets at `num-sorted-run.stop-trigger`. Each makes
/// a COMPACT snapshot of its own. A failure (e.g. a concurrent compaction
/// won) is only logged: the writer's data is unaffected either way.
pub(crate) async fn compact_inline(table: &Table, written: &HashSet<BucketId>, full: bool) {
    if !compacts_inline(table) || written.is_empty() {
        return;
    }
    let options = CompactOptions {
        full,
        partition: None,
    };
    match compact_table(table, &options, Some(written)).await {
        Ok(outcome) => {
            if let Some(id) = outcome.snapshot_id {
                tracing::debug!(table = %table.id, snapshot = id, files_in = outcome.files_in, files_out = outcome.files_out, "inline compaction committed");
            }
        }
        Err(e) => tracing::warn!(table = %table.id, "inline compaction skipped: {e}"),
    }
}

impl Table {
    /// Compacts the table as of its latest snapshot: with `full`, every
    /// bucket into one sorted run at the highest level; otherwise the buckets
    /// universal compaction picks. Commits one COMPACT snapshot. Fails with
    /// `CommitConflict` (and leaves no trace) when a concurrent commit
    /// removed an input file; the caller may then retry.
    pub async fn compact(&self, options: CompactOptions) -> Result<CompactOutcome> {
        compact_table(self, &options, None).await
    }

    /// Compacts only the buckets `(partition, bucket)` in `buckets` (all
    /// when `None`), as [`Table::compact`] does, and records `properties`
    /// in the COMPACT snapshot (e.g. which tool asked for it, as the
    /// doctor's `tidelake.doctor.fix` does).
    pub async fn compact_buckets(
        &self,
        options: CompactOptions,
        buckets: Option<&HashSet<(Vec<u8>, i32)>>,
        properties: BTreeMap<String, String>,
    ) -> Result<CompactOutcome> {
        let table = &compact::with_latest_schema(self).await?;
        let prepared = compact::prepare(table, &options, buckets).await?;
        commit_prepared_with(table, prepared, properties).await
    }

    /// Merges the latest snapshot's data manifests into the fewest of
    /// `manifest.target-file-size` (Paimon's `compact_manifest`): one
    /// COMPACT snapshot with the same live files, rows, index manifest and
    /// statistics, recording `properties`; followed by expiration as every
    /// commit is. A no-op (no snapshot) when they are already compact.
    pub async fn compact_manifests(
        &self,
        properties: BTreeMap<String, String>,
    ) -> Result<ManifestCompaction> {
        let table = &compact::with_latest_schema(self).await?;
        let done = Committer::new(table)?
            .compact_manifests(&properties)
            .await?;
        after_commit(table, done.snapshot_id).await;
        Ok(done)
    }

    /// Rewrites the files of an append table that `candidates` may match,
    /// applying `change` to each of their batches (all columns, table order),
    /// and swaps them for their replacements in one OVERWRITE commit.
    pub async fn rewrite_append_files(
        &self,
        candidates: Option<Predicate>,
        change: impl FnMut(&RecordBatch) -> Result<BatchChange>,
    ) -> Result<RewriteOutcome> {
        let prepared = self.prepare_rewrite(candidates, change).await?;
        let Some(request) = prepared.request.clone() else {
            return Ok(RewriteOutcome {
                rows_changed: prepared.rows_changed,
                snapshot_id: None,
            });
        };
        match commit(self, request).await {
            Ok(snapshot_id) => Ok(RewriteOutcome {
                rows_changed: prepared.rows_changed,
                snapshot_id,
            }),
            Err(e) if e.is_commit_unknown() => Err(e),
            Err(e) => {
                prepared.discard(self).await;
                Err(e)
            }
        }
    }

    /// Commits a prepared rewrite of an append table together with new
    /// rows `appended` in one snapshot (OVERWRITE when files are replaced,
    /// APPEND otherwise); `rows_changed` counts both. On failure nothing is
    /// committed and the files written are deleted (unless the outcome is
    /// unknown).
    pub async fn commit_append_rewrite(
        &self,
        prepared: PreparedAppendRewrite,
        appended: Vec<RecordBatch>,
        properties: BTreeMap<String, String>,
    ) -> Result<RewriteOutcome> {
        let mut writer = self.writer();
        let mut rows_appended = 0u64;
        let written: Result<CommitRequest> = async {
            for batch in appended {
                rows_appended += batch.num_rows() as u64;
                writer.write(batch, crate::kv::RowKind::Insert).await?;
            }
            writer
                .prepare_commit(CommitKind::Append, properties.clone())
                .await
        }
        .await;
        let extra = match written {
            Ok(extra) => extra,
            Err(e) => {
                prepared.discard(self).await;
                writer.abort().await;
                return Err(e);
            }
        };
        let request = match prepared.request.clone() {
            Some(mut request) => {
                request.messages.extend(extra.messages);
                request.properties = properties;
                Some(request)
            }
            None if !extra.messages.is_empty() => Some(extra),
            None => None,
        };
        let rows_changed = prepared.rows_changed + rows_appended;
        let Some(request) = request else {
            return Ok(RewriteOutcome {
                rows_changed,
                snapshot_id: None,
            });
        };
        match commit(self, request).await {
            Ok(snapshot_id) => Ok(RewriteOutcome {
                rows_changed,
                snapshot_id,
            }),
            Err(e) if e.is_commit_unknown() => Err(e),
            Err(e) => {
                prepared.discard(self).await;
                writer.delete_written_files().await;
                Err(e)
            }
        }
    }
}
