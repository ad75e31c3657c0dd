//! Streaming reads of a table's changes, snapshot by snapshot, with Paimon's
//! start positions (`scan.mode`) and consumers (`consumer-id`).
//!
//! A [`ChangeReader`] hands out the changes of one snapshot at a time, as
//! Arrow batches whose first column is [`ROW_KIND_COLUMN`] (Paimon's
//! `_VALUE_KIND` byte: 0 `+I`, 1 `-U`, 2 `+U`, 3 `-D`) followed by the
//! table's columns, and says which snapshot they came from. It never blocks:
//! when the next snapshot is not committed yet it returns `None`, and the
//! caller decides how long to wait (a CLI polls; a job may checkpoint).
//!
//! Which files hold a snapshot's changes, as Paimon's follow-up scanners
//! decide:
//! - with a `changelog-producer` (input, lookup, full-compaction) on a
//!   primary-key table: the ADD entries of the snapshot's changelog manifest
//!   list, for every snapshot that has one (lookup and full-compaction write
//!   them on COMPACT snapshots); snapshots without one are skipped;
//! - otherwise: the ADD entries of the delta manifest list of APPEND
//!   snapshots; COMPACT snapshots change no data and are skipped; OVERWRITE
//!   snapshots are skipped too unless `streaming-read-overwrite` is true,
//!   which reads them as `-D` of the replaced buckets' old rows and `+I` of
//!   their new ones.
//!
//! Without a producer, a primary-key table's delta files carry what writers
//! wrote (upserts as `+I`/`+U`, deletes as `-D`): applied in order as
//! upserts by key, they rebuild the table exactly (for deduplicate tables).
//!
//! Whole-state reads (the `-full` modes) merge every level, level 0
//! included, even of tables with deletion vectors (whose batch reads skip
//! it): a stream must start from every committed row. Except with a
//! `lookup` or `full-compaction` producer, whose changelog describes rows
//! only once compaction moves them above level 0 (lookup) or into the top
//! level (full-compaction): the full read of snapshot S reads only those
//! levels, and the rest comes in the changelog of a later snapshot, so
//! nothing is read twice.
//!
//! A snapshot that is not there is expired only if it is older than the
//! earliest snapshot; otherwise it is not committed yet (a committer may
//! create it at any moment, and the LATEST hint lags).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int8Array, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use tidelake_format::manifest::{FileKind, ManifestEntry};
use tidelake_format::snapshot::{CommitKind, Snapshot};

use super::file::{read_data_file, ReadColumn};
use super::scan::Levels;
use crate::error::{EngineError, Result};
use crate::options::ChangelogProducer;
use crate::table::Table;

/// The row-kind column of change batches (Paimon's `_VALUE_KIND` byte).
pub const ROW_KIND_COLUMN: &str = "_row_kind";

const BATCH_SIZE: usize = 8192;

/// A snapshot named by id or by tag (`incremental-between`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotRef {
    Id(i64),
    Tag(String),
}

impl SnapshotRef {
    fn parse(text: &str) -> SnapshotRef {
        let t = text.trim();
        match t.parse::<i64>() {
            Ok(id) => SnapshotRef::Id(id),
            Err(_) => SnapshotRef::Tag(t.to_string()),
        }
    }
}

/// Where a streaming read starts (Paimon's `scan.mode`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// `latest-full` (the default): the latest snapshot's rows as `+I`, then
    /// the changes of every later snapshot.
    LatestFull,
    /// `latest`: only the changes of snapshots committed from now on.
    Latest,
    /// `from-snapshot`: the changes of this snapshot and every later one.
    FromSnapshot(i64),
    /// `from-snapshot-full`: this snapshot's rows as `+I`, then later changes.
    FromSnapshotFull(i64),
    /// `from-timestamp`: the changes from the first snapshot committed at or
    /// after this time (epoch millis).
    FromTimestamp(i64),
    /// `incremental`: a bounded read of the changes in (start, end].
    Incremental {
        start: SnapshotRef,
        end: SnapshotRef,
    },
}

/// How a streaming read starts and records its progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOptions {
    pub mode: StartMode,
    /// `consumer-id`: progress is recorded in `consumer/consumer-{id}` and a
    /// reader with a recorded position resumes from it whatever the mode.
    pub consumer_id: Option<String>,
    /// `consumer.ignore-progress`: start from `mode` even if the consumer
    /// has a recorded position (which is then overwritten).
    pub ignore_consumer_progress: bool,
    /// `streaming-read-overwrite`: read OVERWRITE snapshots as changes.
    pub read_overwrite: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            mode: StartMode::LatestFull,
            consumer_id: None,
            ignore_consumer_progress: false,
            read_overwrite: false,
        }
    }
}

fn parse_i64(key: &str, value: &str) -> Result<i64> {
    value.trim().parse::<i64>().map_err(|_| {
        EngineError::invalid(format!("option '{key}': '{value}' is not a whole number"))
    })
}

fn parse_flag(key: &str, value: Option<&String>) -> Result<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(EngineError::invalid(format!(
            "option '{key}': '{v}' is not true or false"
        ))),
    }
}

impl StreamOptions {
    /// Reads Paimon's option names: `scan.mode`, `scan.snapshot-id`,
    /// `scan.timestamp-millis`, `incremental-between`, `consumer-id`,
    /// `consumer.ignore-progress`, `streaming-read-overwrite`. `options` is
    /// the table's options overlaid with the read's own (dynamic) options.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<StreamOptions> {
        let get = |k: &str| options.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let snapshot_id = get("scan.snapshot-id")
            .map(|v| parse_i64("scan.snapshot-id", v))
            .transpose()?;
        let timestamp = get("scan.timestamp-millis")
            .map(|v| parse_i64("scan.timestamp-millis", v))
            .transpose()?;
        let incremental = get("incremental-between")
            .map(|v| {
                let parts: Vec<&str> = v.split(',').collect();
                match parts.as_slice() {
                    [start, end] if !start.trim().is_empty() && !end.trim().is_empty() => Ok(
                        StartMode::Incremental {
                            start: SnapshotRef::parse(start),
                            end: SnapshotRef::parse(end),
                        },
                    ),
                    _ => Err(EngineError::invalid(format!(
                        "option 'incremental-between': '{v}' is not 'start,end' (snapshot ids or tag names)"
                    ))),
                }
            })
            .transpose()?;
        let need_id = |mode: &str| {
            snapshot_id.ok_or_else(|| {
                EngineError::invalid(format!(
                    "scan.mode '{mode}' needs the option 'scan.snapshot-id'"
                ))
            })
        };
        let mode = match get("scan.mode").unwrap_or("default") {
            "default" => match (incremental.clone(), snapshot_id, timestamp) {
                (Some(inc), _, _) => inc,
                (None, Some(id), _) => StartMode::FromSnapshot(id),
                (None, None, Some(ts)) => StartMode::FromTimestamp(ts),
                (None, None, None) => StartMode::LatestFull,
            },
            "latest-full" | "full" => StartMode::LatestFull,
            "latest" => StartMode::Latest,
            "from-snapshot" => StartMode::FromSnapshot(need_id("from-snapshot")?),
            "from-snapshot-full" => StartMode::FromSnapshotFull(need_id("from-snapshot-full")?),
            "from-timestamp" => StartMode::FromTimestamp(timestamp.ok_or_else(|| {
                EngineError::invalid(
                    "scan.mode 'from-timestamp' needs the option 'scan.timestamp-millis'",
                )
            })?),
            "incremental" => incremental.ok_or_else(|| {
                EngineError::invalid("scan.mode 'incremental' needs the option 'incremental-between'")
            })?,
            other => {
                return Err(EngineError::invalid(format!(
                    "option 'scan.mode': '{other}' is not one of default, latest-full, latest, from-snapshot, from-snapshot-full, from-timestamp, incremental"
                )))
            }
        };
        Ok(StreamOptions {
            mode,
            consumer_id: get("consumer-id").map(str::to_string),
            ignore_consumer_progress: parse_flag(
                "consumer.ignore-progress",
                options.get("consumer.ignore-progress"),
            )?,
            read_overwrite: parse_flag(
                "streaming-read-overwrite",
                options.get("streaming-read-overwrite"),
            )?,
        })
    }
}

/// What one step of a [`ChangeReader`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeSource {
    /// The whole state of the snapshot, as `+I` rows (the `-full` modes).
    Full,
    /// The snapshot's changelog files (a changelog producer wrote them).
    Changelog,
    /// The files the snapshot's commit added (no changelog producer).
    Delta,
    /// An OVERWRITE read as `-D` old rows, `+I` new rows.
    Overwrite,
    /// Nothing: the snapshot carries no changes for this reader (a COMPACT
    /// snapshot without changelog, an OVERWRITE not read).
    Skipped,
}

/// The changes of one snapshot.
pub struct SnapshotChanges {
    pub snapshot_id: i64,
    pub commit_kind: CommitKind,
    /// When the snapshot was committed (epoch millis).
    pub time_millis: i64,
    pub source: ChangeSource,
    /// Batches of [`ChangeReader::schema`]; empty when `source` is `Skipped`.
    pub batches: BoxStream<'static, Result<RecordBatch>>,
}

impl std::fmt::Debug for SnapshotChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotChanges")
            .field("snapshot_id", &self.snapshot_id)
            .field("commit_kind", &self.commit_kind)
            .field("source", &self.source)
            .finish()
    }
}

/// Reads a table's changes snapshot after snapshot.
pub struct ChangeReader {
    table: Table,
    schema: SchemaRef,
    changelog: bool,
    read_overwrite: bool,
    consumer_id: Option<String>,
    /// A full read of this snapshot comes first.
    full: Option<i64>,
    /// The next snapshot whose changes to read.
    next: i64,
    /// Bounded reads (`incremental`) stop after this snapshot.
    end: Option<i64>,
}

/// Whether the table's `changelog-producer` writes changelog files.
fn has_changelog_producer(table: &Table) -> bool {
    table.is_primary_key_table()
        && table
            .schema()
            .options
            .get("changelog-producer")
            .is_some_and(|p| !p.trim().eq_ignore_ascii_case("none"))
}

/// The schema of change batches: the row kind, then the table's columns.
pub fn change_schema(table_schema: &Schema) -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new(
        ROW_KIND_COLUMN,
        ArrowType::Int8,
        false,
    ))];
    fields.extend(table_schema.fields().iter().cloned());
    Arc::new(Schema::new(fields))
}

impl ChangeReader {
    /// Opens a reader: resolves the start position (a consumer's recorded
    /// position wins over `mode`) and, with a consumer id, records it at
    /// once so that expiration keeps what this reader still needs.
    pub async fn open(table: Table, options: StreamOptions) -> Result<ChangeReader> {
        let schema = change_schema(&table.arrow_schema());
        let changelog = has_changelog_producer(&table);
        let mut reader = ChangeReader {
            schema,
            changelog,
            read_overwrite: options.read_overwrite,
            consumer_id: options.consumer_id.clone(),
            full: None,
            next: 1,
            end: None,
            table,
        };
        if let Some(id) = &options.consumer_id {
            if !options.ignore_consumer_progress {
                if let Some(next) = reader.table.consumer(id).await? {
                    tracing::info!(table = %reader.table.id, consumer = %id, next, "resuming from the consumer's position");
                    reader.next = next;
                    reader.check_not_expired(next).await?;
                    return Ok(reader);
                }
            }
        }
        reader.resolve_start(&options.mode).await?;
        if reader.consumer_id.is_some() {
            reader.record_consumer().await?;
        }
        Ok(reader)
    }

    async fn resolve_start(&mut self, mode: &StartMode) -> Result<()> {
        let snapshots = self.table.snapshots().clone();
        let latest = snapshots.latest_snapshot_id().await?;
        match mode {
            StartMode::LatestFull => {
                self.full = latest;
                self.next = latest.unwrap_or(0) + 1;
            }
            StartMode::Latest => self.next = latest.unwrap_or(0) + 1,
            StartMode::FromSnapshot(id) => {
                self.check_not_expired(*id).await?;
                self.next = *id;
            }
            StartMode::FromSnapshotFull(id) => {
                if snapshots.snapshot(*id).await?.is_none() {
                    return Err(self.missing_snapshot(*id).await);
                }
                self.full = Some(*id);
                self.next = id + 1;
            }
            StartMode::FromTimestamp(ts) => {
                self.next = self.first_snapshot_at_or_after(*ts, latest).await?;
            }
            StartMode::Incremental { start, end } => {
                let start_id = self.resolve_ref(start).await?;
                let end_id = self.resolve_ref(end).await?;
                if start_id > end_id {
                    return Err(EngineError::invalid(format!(
                        "incremental-between: start snapshot {start_id} is after end snapshot {end_id}"
                    )));
                }
                self.next = start_id + 1;
                self.end = Some(end_id);
                if start_id < end_id {
                    self.check_not_expired(start_id + 1).await?;
                }
            }
        }
        Ok(())
    }

    async fn resolve_ref(&self, r: &SnapshotRef) -> Result<i64> {
        match r {
            SnapshotRef::Id(id) => {
                if self.table.snapshots().snapshot(*id).await?.is_none() {
                    return Err(self.missing_snapshot(*id).await);
                }
                Ok(*id)
            }
            SnapshotRef::Tag(name) => match self.table.tag(name).await? {
                Some(s) => Ok(s.id),
                None => Err(EngineError::invalid(format!(
                    "tag '{name}' of table '{}' does not exist",
                    self.table.id
                ))),
            },
        }
    }

    /// Snapshot ids grow with commit time: a binary search over the
    /// snapshots present finds the first committed at or after `ts`.
    async fn first_snapshot_at_or_after(&self, ts: i64, latest: Option<i64>) -> Result<i64> {
        let snapshots = self.table.snapshots();
        let (Some(earliest), Some(latest)) = (snapshots.earliest_snapshot_id().await?, latest)
        else {
            return Ok(1);
        };
        let (mut lo, mut hi) = (earliest, latest + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let snapshot = snapshots.snapshot(mid).await?.ok_or_else(|| {
                EngineError::invalid(format!(
                    "snapshot {mid} of table '{}' vanished while looking for scan.timestamp-millis {ts} (expired meanwhile?)",
                    self.table.id
                ))
            })?;
            if snapshot.time_millis >= ts {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// The error for a snapshot to read that is not there: expired when it
    /// is older than the earliest snapshot, else it does not exist (yet).
    /// (Not decided by the latest id: a snapshot committed right after the
    /// miss would make a future snapshot look expired.)
    async fn missing_snapshot(&self, id: i64) -> EngineError {
        let snapshots = self.table.snapshots();
        if let Ok(Some(earliest)) = snapshots.earliest_snapshot_id().await {
            if earliest > id {
                return self.expired(id).await;
            }
        }
        let latest = snapshots.latest_snapshot_id().await.ok().flatten();
        EngineError::invalid(format!(
            "snapshot {id} of table '{}' does not exist (latest is {})",
            self.table.id,
            latest.map_or("none".to_string(), |l| l.to_string())
        ))
    }

    async fn expired(&self, id: i64) -> EngineError {
        let earliest = self
            .table
            .snapshots()
            .earliest_snapshot_id()
            .await
            .ok()
            .flatten();
        let hint = match &self.consumer_id {
            Some(c) => format!(
                " (consumer '{c}' should have pinned it: was its file removed, e.g. by consumer.expiration-time?)"
            ),
            None => " (give the reader a consumer-id so that expiration keeps the snapshots it has not read yet)".to_string(),
        };
        EngineError::invalid(format!(
            "snapshot {id} of table '{}' has expired before it was read; the earliest snapshot is {}{hint}",
            self.table.id,
            earliest.map_or("none".to_string(), |e| e.to_string()),
        ))
    }

    /// Fails when snapshot `id` is older than the earliest one present.
    async fn check_not_expired(&self, id: i64) -> Result<()> {
        let snapshots = self.table.snapshots();
        if snapshots.snapshot(id).await?.is_some() {
            return Ok(());
        }
        match snapshots.earliest_snapshot_id().await? {
            Some(earliest) if earliest > id => Err(self.expired(id).await),
            _ => Ok(()),
        }
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Reads the files each APPEND snapshot added even when the table has a
    /// changelog producer: every key written in a snapshot, in that very
    /// snapshot (a producer's changelog may come in a later COMPACT one),
    /// for readers that need the keys touched rather than a changelog.
    pub fn reading_data_files(mut self) -> ChangeReader {
        self.changelog = false;
        self
    }

    /// `_row_kind` (Int8), then the table's columns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Whether the table's changelog producer's files are read (rather than
    /// delta files).
    pub fn reads_changelog(&self) -> bool {
        self.changelog
    }

    /// The first snapshot this reader still has to read: what a consumer
    /// records, and where a restarted reader resumes.
    pub fn position(&self) -> i64 {
        self.full.unwrap_or(self.next)
    }

    /// A bounded read (`incremental`) that has read its last snapshot.
    pub fn is_finished(&self) -> bool {
        self.full.is_none() && self.end.is_some_and(|end| self.next > end)
    }

    /// Records [`position`](Self::position) for the consumer id, if any.
    /// Call it once the changes handed out so far are safely processed.
    pub async fn record_consumer(&self) -> Result<()> {
        if let Some(id) = &self.consumer_id {
            self.table.record_consumer(id, self.position()).await?;
        }
        Ok(())
    }

    /// The changes of the next snapshot, or `None` when it is not committed
    /// yet (or a bounded read is finished). The position advances past it;
    /// read all of `batches` before recording the consumer.
    pub async fn next_changes(&mut self) -> Result<Option<SnapshotChanges>> {
        if let Some(id) = self.full {
            let snapshot = match self.table.snapshots().snapshot(id).await? {
                Some(s) => s,
                None => return Err(self.expired(id).await),
            };
            let batches = self.full_batches(&snapshot).await?;
            self.full = None;
            self.next = id + 1;
            return Ok(Some(SnapshotChanges {
                snapshot_id: id,
                commit_kind: snapshot.commit_kind,
                time_millis: snapshot.time_millis,
                source: ChangeSource::Full,
                batches,
            }));
        }
        if self.is_finished() {
            return Ok(None);
        }
        let id = self.next;
        let Some(snapshot) = self.committed_snapshot(id).await? else {
            return Ok(None);
        };
        let (source, batches) = self.snapshot_batches(&snapshot).await?;
        self.next = id + 1;
        tracing::debug!(table = %self.table.id, snapshot = id, ?source, "read snapshot changes");
        Ok(Some(SnapshotChanges {
            snapshot_id: id,
            commit_kind: snapshot.commit_kind,
            time_millis: snapshot.time_millis,
            source,
            batches,
        }))
    }

    /// Snapshot `id` if it is committed, `None` if it is not yet, an error
    /// if it has expired (or, for a bounded read, is gone).
    ///
    /// A miss alone cannot tell "not yet" from "expired", and asking for the
    /// latest snapshot after it races a committer: `snapshot-{id}` may be
    /// created right after the miss, and the latest id then says it exists.
    /// Expiration deletes the oldest snapshots first, so only the earliest
    /// one decides: `id` expired iff it is below the earliest present.
    async fn committed_snapshot(&self, id: i64) -> Result<Option<Snapshot>> {
        let snapshots = self.table.snapshots();
        if let Some(snapshot) = snapshots.snapshot(id).await? {
            return Ok(Some(snapshot));
        }
        if snapshots
            .earliest_snapshot_id()
            .await?
            .is_some_and(|earliest| earliest > id)
        {
            return Err(self.expired(id).await);
        }
        if self.end.is_some() {
            // The end snapshot existed when the read opened, so `id` (not
            // after it) was committed: it went away (a rollback).
            return Err(self.missing_snapshot(id).await);
        }
        tracing::trace!(table = %self.table.id, snapshot = id, "snapshot not committed yet");
        Ok(None)
    }

    /// The whole state of `snapshot` as `+I` rows: what the changes of the
    /// later snapshots apply to. With a `lookup` or `full-compaction`
    /// producer, changelog describes only what compaction moved above
    /// level 0 (lookup) or into the top level (full-compaction); the other
    /// files' rows come in the changelog of a later COMPACT snapshot, so
    /// reading them here too would hand them out twice (as Paimon, whose
    /// streaming start filters levels the same way).
    async fn full_batches(
        &self,
        snapshot: &Snapshot,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let levels = if self.changelog {
            match self.table.layout.options.changelog_producer {
                ChangelogProducer::Lookup => Levels::AboveZero,
                ChangelogProducer::FullCompaction => Levels::Top,
                ChangelogProducer::None | ChangelogProducer::Input => Levels::All,
            }
        } else {
            Levels::All
        };
        let plan = self
            .table
            .scan()
            .merging_level0()
            .only_levels(levels)
            .with_snapshot(Some(snapshot.id))
            .plan()
            .await?;
        Ok(self.with_kind(plan.read_all(), 0, snapshot.id))
    }

    /// Adds a constant row kind to a stream of table rows.
    fn with_kind(
        &self,
        rows: BoxStream<'static, Result<RecordBatch>>,
        kind: i8,
        snapshot_id: i64,
    ) -> BoxStream<'static, Result<RecordBatch>> {
        let schema = self.schema.clone();
        let table = self.table.id.to_string();
        rows.and_then(move |b| {
            let kinds: ArrayRef = Arc::new(Int8Array::from(vec![kind; b.num_rows()]));
            futures::future::ready(prepend_kind(&schema, kinds, &b))
        })
        .map_err(move |e| while_reading(e, &table, snapshot_id))
        .boxed()
    }

    async fn snapshot_batches(
        &self,
        snapshot: &Snapshot,
    ) -> Result<(ChangeSource, BoxStream<'static, Result<RecordBatch>>)> {
        let skipped = || (ChangeSource::Skipped, stream::empty().boxed());
        let list = if self.changelog {
            match &snapshot.changelog_manifest_list {
                Some(list) => (ChangeSource::Changelog, list.clone()),
                None => return Ok(skipped()),
            }
        } else {
            match snapshot.commit_kind {
                CommitKind::Append => (ChangeSource::Delta, snapshot.delta_manifest_list.clone()),
                CommitKind::Overwrite if self.read_overwrite => {
                    return Ok((
                        ChangeSource::Overwrite,
                        self.overwrite_batches(snapshot).await?,
                    ));
                }
                CommitKind::Overwrite => {
                    tracing::info!(table = %self.table.id, snapshot = snapshot.id, "OVERWRITE snapshot skipped (set 'streaming-read-overwrite' to read it)");
                    return Ok(skipped());
                }
                CommitKind::Compact | CommitKind::Analyze => return Ok(skipped()),
            }
        };
        let (source, list) = list;
        let entries = match self.added_entries(&list).await {
            Ok(e) => e,
            Err(e) => return Err(self.gone_or(e, snapshot.id).await),
        };
        Ok((source, self.read_entries(entries, snapshot.id)))
    }

    /// The ADD entries of a manifest list, per bucket in sequence order, so
    /// that applying the rows in order applies each key's versions in order.
    async fn added_entries(&self, list: &str) -> Result<Vec<ManifestEntry>> {
        let ms = self.table.manifest_store()?;
        let mut entries = Vec::new();
        for meta in ms.read_list(list).await? {
            entries.extend(
                ms.read_manifest(&meta.file_name)
                    .await?
                    .into_iter()
                    .filter(|e| e.kind == FileKind::Add),
            );
        }
        // A stable sort: files of equal sequence keep their manifest order.
        entries.sort_by(|a, b| {
            (&a.partition, a.bucket, a.file.min_sequence_number).cmp(&(
                &b.partition,
                b.bucket,
                b.file.min_sequence_number,
            ))
        });
        Ok(entries)
    }

    fn read_entries(
        &self,
        entries: Vec<ManifestEntry>,
        snapshot_id: i64,
    ) -> BoxStream<'static, Result<RecordBatch>> {
        let table = self.table.clone();
        let schema = self.schema.clone();
        let layout = table.layout.clone();
        let is_pk = layout.is_primary_key();
        let mut columns: Vec<ReadColumn> = Vec::new();
        if is_pk {
            columns.push(ReadColumn::ValueKind);
        }
        columns.extend(layout.schema.fields.iter().cloned().map(ReadColumn::Value));
        let table_name = table.id.to_string();
        stream::iter(entries)
            .then(move |entry| {
                let table = table.clone();
                let columns = columns.clone();
                async move {
                    let (_, partition_path) = table
                        .layout
                        .partition_location(&entry.partition, &entry.file.file_name)?;
                    let path = table.paths().data_file(
                        &partition_path,
                        entry.bucket,
                        &entry.file.file_name,
                    );
                    read_data_file(&table, &path, &entry.file, &columns, BATCH_SIZE).await
                }
            })
            .try_flatten()
            .and_then(move |b| {
                let out = if is_pk {
                    // Already `_VALUE_KIND`, then the values: only the name differs.
                    RecordBatch::try_new_with_options(
                        schema.clone(),
                        b.columns().to_vec(),
                        &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
                    )
                    .map_err(EngineError::from)
                } else {
                    let kinds: ArrayRef = Arc::new(Int8Array::from(vec![0i8; b.num_rows()]));
                    prepend_kind(&schema, kinds, &b)
                };
                futures::future::ready(out)
            })
            .map_err(move |e| while_reading(e, &table_name, snapshot_id))
            .boxed()
    }

    /// An OVERWRITE as changes: the old rows of every bucket it touched as
    /// `-D`, then the new rows of those buckets as `+I`.
    async fn overwrite_batches(
        &self,
        snapshot: &Snapshot,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let ms = self.table.manifest_store()?;
        let mut touched = std::collections::BTreeSet::new();
        for meta in ms.read_list(&snapshot.delta_manifest_list).await? {
            for e in ms.read_manifest(&meta.file_name).await? {
                touched.insert((e.partition, e.bucket));
            }
        }
        let mut parts = Vec::new();
        let before_id = snapshot.id - 1;
        if before_id >= 1 {
            if self.table.snapshots().snapshot(before_id).await?.is_none() {
                return Err(self.expired(before_id).await);
            }
            let before = self
                .table
                .scan()
                .merging_level0()
                .with_snapshot(Some(before_id))
                .plan()
                .await?;
            parts.push(self.touched_rows(&before, &touched, 3, snapshot.id));
        }
        let after = self
            .table
            .scan()
            .merging_level0()
            .with_snapshot(Some(snapshot.id))
            .plan()
            .await?;
        parts.push(self.touched_rows(&after, &touched, 0, snapshot.id));
        Ok(stream::iter(parts).flatten().boxed())
    }

    fn touched_rows(
        &self,
        plan: &super::scan::ScanPlan,
        touched: &std::collections::BTreeSet<(Vec<u8>, i32)>,
        kind: i8,
        snapshot_id: i64,
    ) -> BoxStream<'static, Result<RecordBatch>> {
        let streams: Vec<_> = plan
            .splits()
            .iter()
            .enumerate()
            .filter(|(_, s)| touched.contains(&(s.partition.clone(), s.bucket)))
            .map(|(i, _)| plan.read_split(i))
            .collect();
        self.with_kind(stream::iter(streams).flatten().boxed(), kind, snapshot_id)
    }

    /// A failure while reading a snapshot's files is most often its expiry
    /// under our feet: say so when the snapshot is gone.
    async fn gone_or(&self, error: EngineError, id: i64) -> EngineError {
        match self.table.snapshots().snapshot(id).await {
            Ok(None) => self.expired(id).await,
            _ => error,
        }
    }
}

fn prepend_kind(schema: &SchemaRef, kinds: ArrayRef, rows: &RecordBatch) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(rows.num_columns() + 1);
    columns.push(kinds);
    columns.extend(rows.columns().iter().cloned());
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )?)
}

/// Names the snapshot in errors of its files; a file that is not found is
/// most likely removed by expiration.
fn while_reading(error: EngineError, table: &str, snapshot_id: i64) -> EngineError {
    let missing = match &error {
        EngineError::Store(s) => s.is_not_found(),
        EngineError::Parquet { source, .. } => source.to_string().contains("not found"),
        _ => false,
    };
    if missing {
        EngineError::invalid(format!(
            "a file of snapshot {snapshot_id} of table '{table}' disappeared while it was read (the snapshot expired?): {error}; give the reader a consumer-id so that expiration keeps the snapshots it has not read yet"
        ))
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Result<StreamOptions> {
        StreamOptions::from_options(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn scan_modes_read_like_paimon() {
        assert_eq!(opts(&[]).unwrap().mode, StartMode::LatestFull);
        assert_eq!(
            opts(&[("scan.mode", "latest")]).unwrap().mode,
            StartMode::Latest
        );
        assert_eq!(
            opts(&[("scan.snapshot-id", "4")]).unwrap().mode,
            StartMode::FromSnapshot(4)
        );
        assert_eq!(
            opts(&[
                ("scan.mode", "from-snapshot-full"),
                ("scan.snapshot-id", "2")
            ])
            .unwrap()
            .mode,
            StartMode::FromSnapshotFull(2)
        );
        assert_eq!(
            opts(&[("scan.timestamp-millis", "1000")]).unwrap().mode,
            StartMode::FromTimestamp(1000)
        );
        assert_eq!(
            opts(&[("incremental-between", "3, nightly")]).unwrap().mode,
            StartMode::Incremental {
                start: SnapshotRef::Id(3),
                end: SnapshotRef::Tag("nightly".into())
            }
        );
        let o = opts(&[("consumer-id", "job"), ("consumer.ignore-progress", "true")]).unwrap();
        assert_eq!(o.consumer_id.as_deref(), Some("job"));
        assert!(o.ignore_consumer_progress);
        let bad_options: [&[(&str, &str)]; 5] = [
            &[("scan.mode", "from-snapshot")],
            &[("scan.mode", "sometime")],
            &[("scan.snapshot-id", "x")],
            &[("incremental-between", "5")],
            &[("consumer.ignore-progress", "yes")],
        ];
        for bad in bad_options {
            assert!(opts(bad).is_err(), "{bad:?}");
        }
    }
}
