//! The commit protocol.
//!
//! A commit turns files already written into a new snapshot:
//! 1. write the manifest(s) of the change (new files as ADD, removed files as
//!    DELETE);
//! 2. read the latest snapshot N and check the change still applies to it
//!    (every file it removes is still live; no other writer has added files
//!    with overlapping sequence numbers to a bucket this commit writes);
//! 3. write the base manifest list (N's base + N's delta, merged when long)
//!    and the delta manifest list;
//! 4. create `snapshot-{N+1}` if absent. This is the only atomic step and the
//!    commit point: if another writer created it first, delete the lists of
//!    step 3 and retry from step 2;
//! 5. update the LATEST hint (best effort).
//!
//! So a snapshot only ever references files that were fully written before
//! it, and a failed or lost commit leaves at most unreferenced files behind.
//!
//! A manifest merge ([`Committer::compact_manifests`]) is a commit of its
//! own with no change: steps 3 to 5 with the latest snapshot's live entries
//! rewritten into fewer manifests as the base list and an empty delta.
//!
//! Exactly-once writers record their position as progress (see
//! [`crate::progress`]) and commit fenced by it: at step 2 of every attempt,
//! each snapshot committed since the writer read its position is checked,
//! and a different recorded position refuses the commit (another instance
//! of the writer got there first). Progress is carried into every later
//! snapshot, so the latest snapshot always holds each owner's position.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use tidelake_format::manifest::{
    write_index_manifest, DataFileMeta, FileKind, IndexFileMeta, IndexManifestEntry, ManifestCodec,
    ManifestEntry, ManifestFileMeta, SimpleStats,
};
use tidelake_format::snapshot::{CommitKind, Snapshot};
use tidelake_store::{PutOutcome, StoreError};

use crate::error::{EngineError, Result};
use crate::manifests::{manifests_compact, ManifestStore, MAX_ENTRIES_PER_MANIFEST};
use crate::progress::{carried_properties, OwnerProgress};
use crate::table::Table;

/// The files one writer changed in one bucket.
#[derive(Clone, Debug, Default)]
pub struct CommitMessage {
    /// Serialized BinaryRow of the partition.
    pub partition: Vec<u8>,
    pub bucket: i32,
    pub total_buckets: i32,
    pub new_files: Vec<DataFileMeta>,
    pub deleted_files: Vec<DataFileMeta>,
    /// Changelog files of this commit (listed in the snapshot's changelog
    /// manifest list, never live data).
    pub changelog_files: Vec<DataFileMeta>,
}

/// What to commit and how.
#[derive(Clone, Debug)]
pub struct CommitRequest {
    pub messages: Vec<CommitMessage>,
    pub kind: CommitKind,
    /// Overwrite: every file live in these partitions is removed. `Some(vec![])`
    /// with an unpartitioned table means the whole table.
    pub overwrite_partitions: Option<Vec<Vec<u8>>>,
    /// The snapshot the writer read its sequence numbers from.
    pub base_snapshot_id: Option<i64>,
    pub commit_user: String,
    pub commit_identifier: i64,
    pub properties: BTreeMap<String, String>,
    /// New HASH index files (dynamic buckets), replacing those of their bucket.
    pub index_entries: Vec<IndexManifestEntry>,
    /// Per partition, the HASH index files the writer assigned buckets from.
    pub index_loaded_from: HashMap<Vec<u8>, Vec<String>>,
    /// Buckets whose deletion vectors this commit replaces (with its
    /// `index_entries` of that bucket, or with none), and the vector index
    /// files it read them from: if those changed meanwhile, the commit
    /// conflicts.
    pub deletion_vectors_replaced: HashMap<(Vec<u8>, i32), Vec<String>>,
    /// The event-time watermark (epoch millis) the commit's data reaches:
    /// the snapshot's `watermark` is the larger of it and the previous one's.
    pub watermark: Option<i64>,
}

pub(crate) struct Committer<'a> {
    table: &'a Table,
    manifests: ManifestStore,
}

impl<'a> Committer<'a> {
    pub fn new(table: &'a Table) -> Result<Self> {
        Ok(Committer {
            table,
            manifests: table.manifest_store()?,
        })
    }

    fn conflict(&self, message: impl Into<String>) -> EngineError {
        crate::counters::conflict();
        EngineError::CommitConflict {
            table: self.table.id.to_string(),
            message: message.into(),
        }
    }

    fn partition_stats(&self) -> impl Fn(&[ManifestEntry]) -> SimpleStats + '_ {
        move |entries: &[ManifestEntry]| {
            crate::stats::partition_stats(&self.table.layout.partition_types, entries)
        }
    }

    /// Commits; returns the new snapshot id, or `None` when there is nothing to commit.
    pub async fn commit(&self, request: CommitRequest) -> Result<Option<i64>> {
        self.commit_fenced(request, None).await
    }

    /// Commits if nobody recorded other positions for `fence`'s owner since
    /// it was read. With a fence, a commit without files still creates a
    /// snapshot: it records progress.
    pub async fn commit_fenced(
        &self,
        request: CommitRequest,
        fence: Option<&OwnerProgress>,
    ) -> Result<Option<i64>> {
        let mut change: Vec<ManifestEntry> = Vec::new();
        for m in &request.messages {
            for f in &m.deleted_files {
                change.push(entry(FileKind::Delete, m, f));
            }
            for f in &m.new_files {
                change.push(entry(FileKind::Add, m, f));
            }
        }
        let changelog: Vec<ManifestEntry> = request
            .messages
            .iter()
            .flat_map(|m| {
                m.changelog_files
                    .iter()
                    .map(move |f| entry(FileKind::Add, m, f))
            })
            .collect();
        if change.is_empty()
            && changelog.is_empty()
            && request.overwrite_partitions.is_none()
            && fence.is_none()
        {
            return Ok(None);
        }
        let options = &self.table.layout.options;
        let schema_id = self.table.layout.schema.id;
        let mut backoff = Duration::from_millis(20);
        // Snapshots up to this one passed the fence (kept across attempts).
        let mut fence_checked = fence.and_then(|f| f.read_at).unwrap_or(0);
        for attempt in 0..=options.commit_max_retries {
            let latest = self.table.reader.latest_snapshot().await?;
            if let Some(fence) = fence {
                self.check_fence(fence, latest.as_ref(), &mut fence_checked)
                    .await?;
            }
            let mut entries = change.clone();
            // A commit of no files (a fenced progress record) has nothing
            // to check against the live files.
            let needs_live = request.overwrite_partitions.is_some()
                || change.iter().any(|e| e.kind == FileKind::Delete)
                || (latest.as_ref().map(|s| s.id) != request.base_snapshot_id
                    && !request.messages.is_empty());
            if needs_live {
                if let Some(snapshot) = &latest {
                    let touched: HashSet<(Vec<u8>, i32)> = request
                        .messages
                        .iter()
                        .map(|m| (m.partition.clone(), m.bucket))
                        .collect();
                    let overwrite: Option<HashSet<Vec<u8>>> = request
                        .overwrite_partitions
                        .as_ref()
                        .map(|p| p.iter().cloned().collect());
                    let all_partitions = request
                        .overwrite_partitions
                        .as_ref()
                        .is_some_and(|p| p.is_empty());
                    let metas = self.manifests.data_manifests(snapshot).await?;
                    let live = self
                        .manifests
                        .live_entries(&metas, &|e| {
                            touched.contains(&(e.partition.clone(), e.bucket))
                                || all_partitions
                                || overwrite.as_ref().is_some_and(|o| o.contains(&e.partition))
                        })
                        .await?;
                    self.check_conflicts(&request, &change, &live)?;
                    if let Some(o) = &overwrite {
                        for e in &live {
                            if all_partitions || o.contains(&e.partition) {
                                let mut del = e.clone();
                                del.kind = FileKind::Delete;
                                entries.push(del);
                            }
                        }
                    }
                } else if change.iter().any(|e| e.kind == FileKind::Delete) {
                    return Err(
                        self.conflict("the table has no snapshot, but the commit removes files")
                    );
                }
            }
            match self
                .try_commit(&request, latest.as_ref(), &entries, &changelog, schema_id)
                .await?
            {
                Some(id) => {
                    crate::counters::committed();
                    return Ok(Some(id));
                }
                None => {
                    crate::counters::retried();
                    tracing::debug!(table = %self.table.id, attempt, "snapshot id taken by another writer; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        // Not a conflict check's refusal (the retries counted the races).
        Err(EngineError::CommitConflict {
            table: self.table.id.to_string(),
            message: format!(
                "gave up after {} attempts: other writers kept committing first",
                options.commit_max_retries + 1
            ),
        })
    }

    /// Checks every snapshot after `*checked` up to `latest` against the
    /// fence. The commit point is the creation of `latest + 1`, so once the
    /// attempt wins it, no snapshot escaped the check. Expired snapshots
    /// are skipped: carried properties keep their values in later ones.
    async fn check_fence(
        &self,
        fence: &OwnerProgress,
        latest: Option<&Snapshot>,
        checked: &mut i64,
    ) -> Result<()> {
        let Some(latest) = latest else {
            return Ok(());
        };
        let mut id = *checked + 1;
        if id < latest.id {
            if let Some(earliest) = self.table.reader.earliest_snapshot_id().await? {
                id = id.max(earliest);
            }
        }
        while id <= latest.id {
            let snapshot = if id == latest.id {
                Some(latest.clone())
            } else {
                self.table.reader.snapshot(id).await?
            };
            let properties = snapshot.and_then(|s| s.properties).unwrap_or_default();
            if let Some((key, expected, found)) = fence.disagreement(&properties) {
                return Err(self.conflict(format!(
                    "snapshot {id} records '{key}' = '{found}', but this commit expected {} (as of snapshot {}): another writer recorded progress for '{}' meanwhile (a second instance of it?); nothing was committed",
                    expected.map_or("no value".to_string(), |v| format!("'{v}'")),
                    fence.read_at.map_or("none".to_string(), |r| r.to_string()),
                    fence.owner.name(),
                )));
            }
            *checked = id;
            id += 1;
        }
        Ok(())
    }

    fn check_conflicts(
        &self,
        request: &CommitRequest,
        change: &[ManifestEntry],
        live: &[ManifestEntry],
    ) -> Result<()> {
        let live_names: HashSet<(&[u8], i32, &str)> = live
            .iter()
            .map(|e| (e.partition.as_slice(), e.bucket, e.file.file_name.as_str()))
            .collect();
        for e in change.iter().filter(|e| e.kind == FileKind::Delete) {
            if !live_names.contains(&(e.partition.as_slice(), e.bucket, e.file.file_name.as_str()))
            {
                return Err(self.conflict(format!(
                    "file {} was removed by another commit (a concurrent compaction or overwrite); retry the operation",
                    e.file.file_name
                )));
            }
        }
        if !self.table.layout.is_primary_key() {
            return Ok(());
        }
        self.check_levels_stay_sorted(request, change, live)?;
        // Sequence numbers of a bucket must grow with every commit; a writer
        // that started from an older snapshot may collide with another one.
        let mut max_live: HashMap<(&[u8], i32), i64> = HashMap::new();
        for e in live {
            let m = max_live
                .entry((e.partition.as_slice(), e.bucket))
                .or_insert(i64::MIN);
            *m = (*m).max(e.file.max_sequence_number);
        }
        let deleted: HashSet<&str> = change
            .iter()
            .filter(|e| e.kind == FileKind::Delete)
            .map(|e| e.file.file_name.as_str())
            .collect();
        for m in &request.messages {
            let Some(min_new) = m.new_files.iter().map(|f| f.min_sequence_number).min() else {
                continue;
            };
            let live_max = live
                .iter()
                .filter(|e| {
                    e.partition == m.partition
                        && e.bucket == m.bucket
                        && !deleted.contains(e.file.file_name.as_str())
                })
                .filter(|e| !m.new_files.iter().any(|f| f.file_name == e.file.file_name))
                .map(|e| e.file.max_sequence_number)
                .max();
            // A compaction rewrites rows it read, so its sequence numbers
            // are old by design; files added since (by writers) are newer
            // and stay on top. Its safety comes from the checks above:
            // every input still live, no overlap within a level.
            if request.kind == CommitKind::Compact {
                continue;
            }
            if let Some(live_max) = live_max {
                if live_max >= min_new {
                    return Err(self.conflict(format!(
                        "another writer wrote to bucket {} of the same partition concurrently (sequence numbers overlap); retry the statement",
                        m.bucket
                    )));
                }
            }
        }
        let _ = max_live;
        Ok(())
    }

    /// A level ≥ 1 of a bucket must stay one sorted run: two compactions
    /// racing on one bucket could otherwise both write into the same level.
    fn check_levels_stay_sorted(
        &self,
        request: &CommitRequest,
        change: &[ManifestEntry],
        live: &[ManifestEntry],
    ) -> Result<()> {
        let deleted: HashSet<(&[u8], i32, &str)> = change
            .iter()
            .filter(|e| e.kind == FileKind::Delete)
            .map(|e| (e.partition.as_slice(), e.bucket, e.file.file_name.as_str()))
            .collect();
        for m in &request.messages {
            if !m.new_files.iter().any(|f| f.level > 0) {
                continue;
            }
            let files: Vec<&DataFileMeta> = live
                .iter()
                .filter(|e| e.partition == m.partition && e.bucket == m.bucket)
                .filter(|e| {
                    !deleted.contains(&(
                        e.partition.as_slice(),
                        e.bucket,
                        e.file.file_name.as_str(),
                    ))
                })
                .map(|e| &e.file)
                .chain(m.new_files.iter())
                .collect();
            if let Some(problem) = crate::lsm::levels_overlap(&files, &self.table.layout.key_types)
            {
                return Err(self.conflict(format!(
                    "bucket {} was compacted concurrently ({problem}); retry the compaction",
                    m.bucket
                )));
            }
        }
        Ok(())
    }

    /// One attempt: `Ok(None)` when another commit took the snapshot id.
    async fn try_commit(
        &self,
        request: &CommitRequest,
        latest: Option<&Snapshot>,
        entries: &[ManifestEntry],
        changelog: &[ManifestEntry],
        schema_id: i64,
    ) -> Result<Option<i64>> {
        let mut written: Vec<String> = Vec::new();
        let result = self
            .write_snapshot(request, latest, entries, changelog, schema_id, &mut written)
            .await;
        match result {
            Ok(Some(id)) => Ok(Some(id)),
            // The snapshot may be live and reference what this attempt wrote.
            Err(e) if e.is_commit_unknown() => Err(e),
            other => {
                self.manifests.delete_quietly(&written).await;
                other
            }
        }
    }

    async fn write_snapshot(
        &self,
        request: &CommitRequest,
        latest: Option<&Snapshot>,
        entries: &[ManifestEntry],
        changelog: &[ManifestEntry],
        schema_id: i64,
        written: &mut Vec<String>,
    ) -> Result<Option<i64>> {
        let options = &self.table.layout.options;
        let delta_metas = self
            .manifests
            .write_manifests(
                entries,
                schema_id,
                &self.partition_stats(),
                MAX_ENTRIES_PER_MANIFEST,
            )
            .await?;
        written.extend(delta_metas.iter().map(|m| m.file_name.clone()));
        let mut base_metas: Vec<ManifestFileMeta> = match latest {
            Some(s) => self.manifests.data_manifests(s).await?,
            None => Vec::new(),
        };
        if base_metas.len() >= options.manifest_merge_min_count {
            let live = self.manifests.live_entries(&base_metas, &|_| true).await?;
            base_metas = self
                .manifests
                .write_manifests(
                    &live,
                    schema_id,
                    &self.partition_stats(),
                    MAX_ENTRIES_PER_MANIFEST,
                )
                .await?;
            written.extend(base_metas.iter().map(|m| m.file_name.clone()));
        }
        let (base_list, base_size) = self.manifests.write_list(&base_metas).await?;
        written.push(base_list.clone());
        let (delta_list, delta_size) = self.manifests.write_list(&delta_metas).await?;
        written.push(delta_list.clone());
        let changelog_list = if changelog.is_empty() {
            None
        } else {
            let metas = self
                .manifests
                .write_manifests(
                    changelog,
                    schema_id,
                    &self.partition_stats(),
                    MAX_ENTRIES_PER_MANIFEST,
                )
                .await?;
            written.extend(metas.iter().map(|m| m.file_name.clone()));
            let (list, size) = self.manifests.write_list(&metas).await?;
            written.push(list.clone());
            Some((list, size))
        };
        let changelog_rows: i64 = changelog.iter().map(|e| e.file.row_count).sum();
        let rewrites_index = !request.index_entries.is_empty()
            || !request.deletion_vectors_replaced.is_empty()
            || (request.overwrite_partitions.is_some()
                && latest.is_some_and(|s| s.index_manifest.is_some()));
        let index_manifest = if !rewrites_index {
            latest.and_then(|s| s.index_manifest.clone())
        } else {
            let name = self.write_index_manifest(request, latest).await?;
            written.push(name.clone());
            Some(name)
        };

        let added: i64 = entries
            .iter()
            .filter(|e| e.kind == FileKind::Add)
            .map(|e| e.file.row_count)
            .sum();
        let removed: i64 = entries
            .iter()
            .filter(|e| e.kind == FileKind::Delete)
            .map(|e| e.file.row_count)
            .sum();
        let id = latest.map_or(1, |s| s.id + 1);
        let snapshot = Snapshot {
            version: 3,
            id,
            schema_id,
            base_manifest_list: base_list,
            base_manifest_list_size: Some(base_size),
            delta_manifest_list: delta_list,
            delta_manifest_list_size: Some(delta_size),
            changelog_manifest_list_size: changelog_list.as_ref().map(|(_, size)| *size),
            changelog_manifest_list: changelog_list.map(|(name, _)| name),
            index_manifest,
            commit_user: request.commit_user.clone(),
            commit_identifier: request.commit_identifier,
            commit_kind: if request.overwrite_partitions.is_some() {
                CommitKind::Overwrite
            } else {
                request.kind
            },
            time_millis: chrono::Utc::now().timestamp_millis(),
            log_offsets: None,
            total_record_count: Some(
                latest.and_then(|s| s.total_record_count).unwrap_or(0) + added - removed,
            ),
            delta_record_count: Some(added - removed),
            changelog_record_count: Some(changelog_rows),
            watermark: latest.and_then(|s| s.watermark).max(request.watermark),
            statistics: None,
            properties: carried_properties(
                latest.and_then(|s| s.properties.as_ref()),
                &request.properties,
            ),
            next_row_id: latest.and_then(|s| s.next_row_id),
        };
        self.publish_snapshot(&snapshot).await
    }

    /// Publishes `snapshot` (created if absent), then updates the hints:
    /// `Some(id)` when it is the table's snapshot now, `None` when another
    /// writer took its id.
    async fn publish_snapshot(&self, snapshot: &Snapshot) -> Result<Option<i64>> {
        let id = snapshot.id;
        let path = self.table.paths().snapshot(id);
        let json = snapshot
            .to_json()
            .map_err(|e| EngineError::format(path.clone(), e))?;
        let ours = self
            .publish(id, &path, Bytes::from(json.into_bytes()))
            .await?;
        if !ours {
            return Ok(None);
        }
        let hint = self.table.paths().latest_hint();
        if let Err(e) = self
            .table
            .store
            .put(&hint, Bytes::from(id.to_string()))
            .await
        {
            tracing::warn!("could not update {hint}: {e}");
        }
        if id == 1 {
            let _ = self
                .table
                .store
                .put(&self.table.paths().earliest_hint(), Bytes::from("1"))
                .await;
        }
        tracing::debug!(table = %self.table.id, snapshot = id, "committed");
        Ok(Some(id))
    }

    /// Creates `snapshot-{id}` if absent: `true` when this attempt's
    /// snapshot is the one there (committed), `false` when another
    /// writer's is (lost the race; nothing of ours is referenced). The
    /// snapshot names its own fresh manifest lists, so its bytes identify
    /// the attempt, which is what the store's resolution of an ambiguous
    /// create relies on. An unresolved outcome is
    /// [`EngineError::CommitUnknown`]: the caller deletes nothing.
    async fn publish(&self, id: i64, path: &str, json: Bytes) -> Result<bool> {
        match self.table.store.create_if_absent(path, json).await {
            Ok(outcome) => Ok(outcome == PutOutcome::Created),
            Err(StoreError::OutcomeUnknown { message, .. }) => Err(EngineError::CommitUnknown {
                table: self.table.id.to_string(),
                snapshot: id,
                message,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// What [`Committer::compact_manifests`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestCompaction {
    /// The COMPACT snapshot that lists the merged manifests; `None` when
    /// the manifests were already compact (or the table has no snapshot).
    pub snapshot_id: Option<i64>,
    /// Data manifests (base and delta) of the snapshot it started from.
    pub manifests_before: usize,
    /// Data manifests of the new snapshot (`manifests_before` when none).
    pub manifests_after: usize,
    /// Live data files the manifests list, unchanged by the compaction.
    pub live_files: usize,
}

impl Committer<'_> {
    /// Rewrites the live entries of the latest snapshot's data manifests
    /// into the fewest manifests of `manifest.target-file-size`, and
    /// commits them as a COMPACT snapshot that changes no data: its base
    /// list holds the merged manifests, its delta list is empty, and it
    /// keeps the latest snapshot's schema, record counts, watermark, index
    /// manifest, statistics and carried progress (as Paimon's
    /// `compact_manifest` procedure does). Nothing is committed when the
    /// manifests are already compact. Losing the race for the snapshot id
    /// deletes what the attempt wrote and starts over from the new latest
    /// snapshot, which may not need it any more.
    pub async fn compact_manifests(
        &self,
        properties: &BTreeMap<String, String>,
    ) -> Result<ManifestCompaction> {
        let options = &self.table.layout.options;
        let mut backoff = Duration::from_millis(20);
        for attempt in 0..=options.commit_max_retries {
            let Some(latest) = self.table.reader.latest_snapshot().await? else {
                return Ok(ManifestCompaction::default());
            };
            let metas = self.manifests.data_manifests(&latest).await?;
            if manifests_compact(
                &metas,
                options.manifest_target_file_size,
                MAX_ENTRIES_PER_MANIFEST,
            ) {
                let live_files = metas
                    .iter()
                    .map(|m| m.num_added_files.max(0) as usize)
                    .sum();
                return Ok(ManifestCompaction {
                    snapshot_id: None,
                    manifests_before: metas.len(),
                    manifests_after: metas.len(),
                    live_files,
                });
            }
            let mut written = Vec::new();
            let result = self
                .write_compacted_manifests(&latest, &metas, properties, &mut written)
                .await;
            match result {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {
                    self.manifests.delete_quietly(&written).await;
                    tracing::debug!(table = %self.table.id, attempt, "manifest compaction lost the snapshot id; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                // The snapshot may be live and reference what was written.
                Err(e) if e.is_commit_unknown() => return Err(e),
                Err(e) => {
                    self.manifests.delete_quietly(&written).await;
                    return Err(e);
                }
            }
        }
        Err(self.conflict(format!(
            "manifest compaction gave up after {} attempts: other writers kept committing first",
            options.commit_max_retries + 1
        )))
    }

    /// One attempt of [`Self::compact_manifests`] on `latest`: `Ok(None)`
    /// when another commit took the snapshot id.
    async fn write_compacted_manifests(
        &self,
        latest: &Snapshot,
        metas: &[ManifestFileMeta],
        properties: &BTreeMap<String, String>,
        written: &mut Vec<String>,
    ) -> Result<Option<ManifestCompaction>> {
        // It changes no data, so it records no progress of its own: every
        // owner's position is carried as it is.
        let own: BTreeMap<String, String> = properties
            .iter()
            .filter(|(k, _)| !k.starts_with(crate::progress::PROGRESS_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let live = self.manifests.live_entries(metas, &|_| true).await?;
        let merged = self
            .manifests
            .write_manifests_sized(
                &live,
                latest.schema_id,
                &self.partition_stats(),
                self.table.layout.options.manifest_target_file_size,
                MAX_ENTRIES_PER_MANIFEST,
            )
            .await?;
        written.extend(merged.iter().map(|m| m.file_name.clone()));
        let (base_list, base_size) = self.manifests.write_list(&merged).await?;
        written.push(base_list.clone());
        let (delta_list, delta_size) = self.manifests.write_list(&[]).await?;
        written.push(delta_list.clone());
        let snapshot = Snapshot {
            version: 3,
            id: latest.id + 1,
            schema_id: latest.schema_id,
            base_manifest_list: base_list,
            base_manifest_list_size: Some(base_size),
            delta_manifest_list: delta_list,
            delta_manifest_list_size: Some(delta_size),
            changelog_manifest_list: None,
            changelog_manifest_list_size: None,
            index_manifest: latest.index_manifest.clone(),
            commit_user: uuid::Uuid::new_v4().to_string(),
            // Paimon's manifest compaction commits with the largest
            // identifier: it belongs to no writer's sequence of commits.
            commit_identifier: i64::MAX,
            commit_kind: CommitKind::Compact,
            time_millis: chrono::Utc::now().timestamp_millis(),
            log_offsets: latest.log_offsets.clone(),
            total_record_count: latest.total_record_count,
            delta_record_count: Some(0),
            changelog_record_count: Some(0),
            watermark: latest.watermark,
            statistics: latest.statistics.clone(),
            properties: carried_properties(latest.properties.as_ref(), &own),
            next_row_id: latest.next_row_id,
        };
        let Some(id) = self.publish_snapshot(&snapshot).await? else {
            return Ok(None);
        };
        tracing::info!(table = %self.table.id, snapshot = id, before = metas.len(), after = merged.len(), "manifests compacted");
        Ok(Some(ManifestCompaction {
            snapshot_id: Some(id),
            manifests_before: metas.len(),
            manifests_after: merged.len(),
            live_files: live.len(),
        }))
    }
}

impl Committer<'_> {
    /// Writes the full index manifest of the new snapshot: the latest one's
    /// entries, with the buckets this commit re-indexed replaced.
    async fn write_index_manifest(
        &self,
        request: &CommitRequest,
        latest: Option<&Snapshot>,
    ) -> Result<String> {
        let current = crate::index::index_entries(self.table, latest).await?;
        let is_hash = |e: &IndexManifestEntry| e.index_file.index_type == IndexFileMeta::HASH;
        let is_dv =
            |e: &IndexManifestEntry| e.index_file.index_type == IndexFileMeta::DELETION_VECTORS;
        for (partition, loaded) in &request.index_loaded_from {
            let mut now: Vec<&str> = current
                .iter()
                .filter(|e| is_hash(e) && &e.partition == partition)
                .map(|e| e.index_file.file_name.as_str())
                .collect();
            let mut before: Vec<&str> = loaded.iter().map(String::as_str).collect();
            now.sort_unstable();
            before.sort_unstable();
            if now != before {
                return Err(self.conflict(
                    "another writer assigned dynamic buckets in the same partition concurrently; retry the statement",
                ));
            }
        }
        for ((partition, bucket), loaded) in &request.deletion_vectors_replaced {
            let mut now: Vec<&str> = current
                .iter()
                .filter(|e| is_dv(e) && &e.partition == partition && e.bucket == *bucket)
                .map(|e| e.index_file.file_name.as_str())
                .collect();
            let mut before: Vec<&str> = loaded.iter().map(String::as_str).collect();
            now.sort_unstable();
            before.sort_unstable();
            if now != before {
                return Err(self.conflict(format!(
                    "the deletion vectors of bucket {bucket} were changed by a concurrent compaction; retry the compaction"
                )));
            }
        }
        // Replaced: (partition, bucket, type) of every new entry, the
        // buckets whose vectors were rewritten, and, for an overwrite, the
        // vectors and key hashes of the partitions it replaces (their data
        // files are gone; a dropped partition's keys must not steer later
        // writes).
        let mut replaced: HashSet<(&[u8], i32, &str)> = request
            .index_entries
            .iter()
            .map(|e| {
                (
                    e.partition.as_slice(),
                    e.bucket,
                    e.index_file.index_type.as_str(),
                )
            })
            .collect();
        for (partition, bucket) in request.deletion_vectors_replaced.keys() {
            replaced.insert((
                partition.as_slice(),
                *bucket,
                IndexFileMeta::DELETION_VECTORS,
            ));
        }
        let overwritten = |e: &IndexManifestEntry| {
            (is_dv(e) || is_hash(e))
                && request
                    .overwrite_partitions
                    .as_ref()
                    .is_some_and(|p| p.is_empty() || p.contains(&e.partition))
        };
        let mut entries: Vec<IndexManifestEntry> = current
            .iter()
            .filter(|e| {
                !replaced.contains(&(
                    e.partition.as_slice(),
                    e.bucket,
                    e.index_file.index_type.as_str(),
                )) && !overwritten(e)
            })
            .cloned()
            .collect();
        entries.extend(request.index_entries.iter().cloned());
        let codec = ManifestCodec::from_option(&self.table.layout.options.manifest_compression)
            .map_err(|e| EngineError::format("manifest.compression", e))?;
        let name = format!("index-manifest-{}-0", uuid::Uuid::new_v4());
        let path = self.table.paths().manifest(&name);
        let bytes = write_index_manifest(&entries, codec)
            .map_err(|e| EngineError::format(path.clone(), e))?;
        self.table.store.put(&path, Bytes::from(bytes)).await?;
        Ok(name)
    }
}

fn entry(kind: FileKind, m: &CommitMessage, f: &DataFileMeta) -> ManifestEntry {
    ManifestEntry {
        kind,
        partition: m.partition.clone(),
        bucket: m.bucket,
        total_buckets: m.total_buckets,
        file: f.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch};

    use super::*;

    /// `(k BIGINT primary key, v BIGINT)` in one bucket; writers never
    /// merge manifests (merge-min-count 100).
    async fn table() -> Table {
        let catalog = crate::Catalog::open("memory://").await.unwrap();
        let id = crate::Identifier::new("default", "t");
        let column = |name: &str| crate::ColumnSpec {
            name: name.into(),
            data_type: crate::DataType::new(crate::DataTypeKind::BigInt, false),
            comment: None,
        };
        let spec = crate::TableSpec {
            columns: vec![column("k"), column("v")],
            primary_keys: vec!["k".into()],
            partition_keys: vec![],
            options: [
                ("bucket", "1"),
                ("write-only", "true"),
                ("manifest.merge-min-count", "100"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            comment: None,
        };
        catalog.create_table(&id, spec, false).await.unwrap();
        catalog.load_table(&id).await.unwrap()
    }

    async fn commit_row(table: &Table, k: i64) {
        let column = |v: i64| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
        let batch = RecordBatch::try_new(table.arrow_schema(), vec![column(k), column(k)]).unwrap();
        let mut writer = table.writer();
        writer
            .write(batch, crate::kv::RowKind::Insert)
            .await
            .unwrap();
        writer.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_merge_from_a_stale_snapshot_loses_the_race_and_changes_nothing() {
        let table = table().await;
        for k in 0..4 {
            commit_row(&table, k).await;
        }
        let stale = table.reader.latest_snapshot().await.unwrap().unwrap();
        // Another writer takes the next snapshot id meanwhile.
        commit_row(&table, 9).await;
        let theirs = table.reader.latest_snapshot().await.unwrap().unwrap();
        assert_eq!(theirs.id, stale.id + 1);

        let committer = Committer::new(&table).unwrap();
        let metas = committer.manifests.data_manifests(&stale).await.unwrap();
        let mut written = Vec::new();
        let attempt = committer
            .write_compacted_manifests(&stale, &metas, &BTreeMap::new(), &mut written)
            .await
            .unwrap();
        assert_eq!(attempt, None, "the snapshot id was taken");
        assert!(!written.is_empty());
        let after = table.reader.latest_snapshot().await.unwrap().unwrap();
        assert_eq!(after, theirs, "the other writer's snapshot stands");

        // The whole operation starts over from the latest snapshot.
        let done = committer.compact_manifests(&BTreeMap::new()).await.unwrap();
        assert_eq!(done.snapshot_id, Some(theirs.id + 1));
        assert_eq!(done.manifests_before, 5);
        assert_eq!(done.manifests_after, 1);
        assert_eq!(done.live_files, 5);
    }

    #[test]
    fn compact_manifests_are_judged_from_the_list() {
        use tidelake_format::manifest::ManifestFileMeta;
        let meta = |added: i64, deleted: i64, size: i64| ManifestFileMeta {
            file_name: "m".into(),
            file_size: size,
            num_added_files: added,
            num_deleted_files: deleted,
            partition_stats: SimpleStats::empty(),
            schema_id: 0,
            min_bucket: None,
            max_bucket: None,
            min_level: None,
            max_level: None,
            min_row_id: None,
            max_row_id: None,
        };
        let mb = 1 << 20;
        assert!(manifests_compact(&[], 8 * mb, 100));
        assert!(manifests_compact(&[meta(10, 0, 2_000)], 8 * mb, 100));
        // Two small ones fit in one.
        assert!(!manifests_compact(
            &[meta(10, 0, 2_000), meta(1, 0, 1_000)],
            8 * mb,
            100
        ));
        // A DELETE entry is worth dropping even in one manifest.
        assert!(!manifests_compact(&[meta(10, 1, 2_000)], 8 * mb, 100));
        // Full ones (by size or by entry count) stay.
        assert!(manifests_compact(
            &[meta(10, 0, 8 * mb as i64), meta(10, 0, 8 * mb as i64)],
            8 * mb,
            100
        ));
        assert!(manifests_compact(
            &[meta(100, 0, 10), meta(50, 0, 10)],
            8 * mb,
            100
        ));
        assert!(!manifests_compact(
            &[meta(50, 0, 10), meta(50, 0, 10), meta(1, 0, 10)],
            8 * mb,
            100
        ));
    }
}
