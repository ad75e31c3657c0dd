//! The sink: drives any [`ChangeSource`] into Paimon tables.
//!
//! - **Tables.** A source table (by `--including-tables`/`--excluding-tables`)
//!   with a primary key becomes `<database>.<prefix><name><suffix>`, created
//!   on its first schema; tables without a key are reported and skipped.
//!   Schema changes follow [`evolve`]'s rules.
//! - **Groups and commits.** Changes are grouped until a source transaction
//!   ends and `commit_interval` has passed (or the group is idle); the group
//!   is then committed table by table, each commit recording the position
//!   after the group as fenced progress of owner `cdc.<pipeline>` (slots
//!   `position` and `source`) in the same snapshot as its rows. A group never
//!   ends inside a source transaction.
//! - **Restart.** Each table's recorded position is read at open
//!   ([`Pipeline::resume`]); the source starts from the smallest and skips a
//!   table's changes up to its own position, so a crash between two tables'
//!   commits loses and repeats nothing.
//! - **Copies.** The rows of an initial copy are committed at its
//!   [`SourceEvent::CopyEnd`], in the copied tables only, with the copy's
//!   position (which may be ahead of the stream).
//! - **Acknowledgement.** After a group is committed, the source is
//!   acknowledged up to the smallest position every table recorded. Tables
//!   idle for `idle_progress_interval` get a commit recording the position
//!   only, so that heartbeats let the source release its log; a table whose
//!   recorded position is ahead of the group's (copied ahead of the stream,
//!   or replayed after a restart) is left alone: positions never go back.
//! - **Memory.** A table's rows are held until `max_buffered_rows`, then
//!   handed to its writer, which writes uncommitted files past its
//!   `write-buffer-size`: a large source transaction spills to the
//!   warehouse, uncommitted until it ends. The latest image of each key the
//!   group wrote (to resolve unchanged TOAST values) stays in memory up to
//!   `images_in_memory` keys per table, then goes to a temporary file
//!   ([`spill`]).

pub mod computed;
pub mod config;
mod evolve;
pub mod spill;
pub mod status;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tidelake_engine::{read_progress, Catalog, Identifier, OwnerProgress, ProgressOwner};

use self::config::SinkConfig;
use self::evolve::{evolve, primary_key, table_spec, wanted_columns};
use self::spill::ImageStore;
use self::table::{is_conflict, TableSink};
use crate::error::{CdcError, Result};
use crate::event::{
    ChangeSource, Resume, RowChange, SourceEvent, SourcePosition, SourceSchema, SourceTableId,
};

/// Progress slot holding the source position after the committed rows.
pub const POSITION_SLOT: &str = "position";
/// Progress slot naming the source table (`database.table`).
pub const SOURCE_SLOT: &str = "source";

/// The progress owner of a pipeline.
pub fn pipeline_owner(pipeline: &str) -> Result<ProgressOwner> {
    ProgressOwner::new(format!("cdc.{pipeline}"))
        .map_err(|e| CdcError::config(format!("pipeline name '{pipeline}': {e}")))
}

/// What a pipeline did so far (for progress lines and tests).
#[derive(Clone, Debug, Default)]
pub struct SinkStats {
    pub rows: u64,
    pub commits: u64,
    pub tables: usize,
    /// Tables skipped because they have no primary key.
    pub skipped_without_key: BTreeSet<SourceTableId>,
    /// Tables stopped by an incompatible schema change, with the error.
    pub stopped: BTreeMap<SourceTableId, String>,
    /// The position of the latest committed group.
    pub position: Option<SourcePosition>,
    /// The source commit time of the latest committed change.
    pub last_op_ts_micros: Option<i64>,
    /// The source position acknowledged last.
    pub acknowledged: Option<SourcePosition>,
    /// Images of keys written by large groups that went to spill files.
    pub spilled_images: u64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The source ended (a snapshot-only run).
    SourceEnded,
    /// Asked to stop.
    Stopped,
}

/// A table known from a previous run, not yet seen in this one.
struct Recorded {
    id: Identifier,
    progress: OwnerProgress,
    position: SourcePosition,
}

/// The uncommitted group.
#[derive(Default)]
struct Group {
    started: Option<Instant>,
    /// Inside a source transaction (changes since the last commit event).
    open: bool,
    /// The position after the last complete transaction of the group.
    position: Option<SourcePosition>,
    touched: BTreeSet<SourceTableId>,
    op_ts: Option<i64>,
}

/// Called after each commit with the sink's running totals.
type CommitReport = Box<dyn FnMut(&SinkStats) + Send>;

/// Syncs a source into Paimon tables.
pub struct Pipeline {
    catalog: Catalog,
    config: SinkConfig,
    owner: ProgressOwner,
    tables: BTreeMap<SourceTableId, TableSink>,
    recorded: BTreeMap<SourceTableId, Recorded>,
    /// Tables whose changes are dropped (filtered out, no key, stopped).
    ignored: BTreeSet<SourceTableId>,
    group: Group,
    stats: SinkStats,
    on_commit: Option<CommitReport>,
}

impl Pipeline {
    /// Opens the pipeline over `catalog`: creates the target database if
    /// missing and reads what each of its tables recorded for the pipeline.
    pub async fn open(catalog: Catalog, config: SinkConfig) -> Result<Pipeline> {
        let owner = pipeline_owner(&config.pipeline)?;
        if !catalog.database_exists(&config.database).await? {
            catalog.create_database(&config.database, true).await?;
        }
        let mut recorded = BTreeMap::new();
        for name in catalog.list_tables(&config.database).await? {
            let id = Identifier::new(config.database.clone(), name);
            let table = catalog.load_table(&id).await?;
            let progress = read_progress(table.snapshots(), &owner).await?;
            let (Some(source), Some(position)) = (
                progress.positions.get(SOURCE_SLOT),
                progress.positions.get(POSITION_SLOT),
            ) else {
                continue;
            };
            let Some((database, table_name)) = source.split_once('.') else {
                continue;
            };
            let source = SourceTableId::new(database, table_name);
            let position = SourcePosition(position.clone());
            recorded.insert(
                source,
                Recorded {
                    id,
                    progress,
                    position,
                },
            );
        }
        Ok(Pipeline {
            catalog,
            config,
            owner,
            tables: BTreeMap::new(),
            recorded,
            ignored: BTreeSet::new(),
            group: Group::default(),
            stats: SinkStats::default(),
            on_commit: None,
        })
    }

    /// Where the source resumes: each table's recorded position.
    pub fn resume(&self) -> Resume {
        Resume {
            tables: self
                .recorded
                .iter()
                .map(|(t, r)| (t.clone(), r.position.clone()))
                .collect(),
        }
    }

    pub fn config(&self) -> &SinkConfig {
        &self.config
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// Called after every committed group (progress lines).
    pub fn on_commit(&mut self, report: impl FnMut(&SinkStats) + Send + 'static) {
        self.on_commit = Some(Box::new(report));
    }

    /// Runs until the source ends or `stop` turns true. A stop inside a
    /// source transaction drops the uncommitted group (the source sends it
    /// again on restart). `next_event` must be cancel-safe.
    pub async fn run(
        &mut self,
        source: &mut dyn ChangeSource,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<RunEnd> {
        let tick = self.config.commit_interval.max(Duration::from_millis(50));
        // One timer for the run, not one per event (a copy sends millions):
        // commit_due() decides, so a tick while events flow is harmless.
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop_open = true;
        loop {
            if *stop.borrow() {
                return self.finish(source, RunEnd::Stopped).await;
            }
            let event = tokio::select! {
                event = source.next_event() => event?,
                changed = stop.changed(), if stop_open => {
                    // The sender is gone: nobody can ask to stop any more.
                    stop_open = changed.is_ok();
                    continue;
                }
                _ = ticker.tick() => {
                    if self.commit_due() {
                        self.commit(source).await?;
                    }
                    continue;
                }
            };
            let Some(event) = event else {
                return self.finish(source, RunEnd::SourceEnded).await;
            };
            self.handle(source, event).await?;
        }
    }

    async fn finish(&mut self, source: &mut dyn ChangeSource, end: RunEnd) -> Result<RunEnd> {
        if self.group.open {
            for table in self.tables.values_mut() {
                table.abort().await;
            }
            self.group = Group::default();
        } else {
            self.commit(source).await?;
        }
        Ok(end)
    }

    fn commit_due(&self) -> bool {
        !self.group.open
            && self.group.position.is_some()
            && self
                .group
                .started
                .is_some_and(|s| s.elapsed() >= self.config.commit_interval)
    }

    /// Handles one source event.
    pub async fn handle(
        &mut self,
        source: &mut dyn ChangeSource,
        event: SourceEvent,
    ) -> Result<()> {
        match event {
            SourceEvent::Schema { table, schema } => self.on_schema(source, table, schema).await,
            SourceEvent::Change(change) => self.on_change(change).await,
            SourceEvent::Rows { table, batch } => self.on_rows(table, batch).await,
            SourceEvent::Commit { position } => {
                self.group.open = false;
                self.group.position = Some(position);
                self.group.started.get_or_insert_with(Instant::now);
                if self.commit_due() {
                    self.commit(source).await?;
                }
                Ok(())
            }
            SourceEvent::CopyEnd { position, tables } => {
                self.group.open = false;
                self.commit_copy(source, position, tables).await
            }
            SourceEvent::Heartbeat { position } => {
                if !self.group.open && self.group.touched.is_empty() {
                    self.group.position = Some(position);
                    self.group.started.get_or_insert_with(Instant::now);
                    if self.commit_due() {
                        self.commit(source).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Rows of a copy: handed to the table's writer as they are when the
    /// table's columns are the source's (see [`TableSink::add_rows`]).
    async fn on_rows(
        &mut self,
        id: SourceTableId,
        batch: arrow::record_batch::RecordBatch,
    ) -> Result<()> {
        self.group.open = true;
        self.group.started.get_or_insert_with(Instant::now);
        if self.ignored.contains(&id) {
            return Ok(());
        }
        let Some(table) = self.tables.get_mut(&id) else {
            return Err(CdcError::table(
                &id,
                "rows came before the table's schema (a source bug)",
            ));
        };
        table.add_rows(batch, self.config.max_buffered_rows).await?;
        self.group.touched.insert(id);
        Ok(())
    }

    async fn on_change(&mut self, change: RowChange) -> Result<()> {
        self.group.open = true;
        self.group.started.get_or_insert_with(Instant::now);
        if self.ignored.contains(&change.table) {
            return Ok(());
        }
        let Some(table) = self.tables.get_mut(&change.table) else {
            return Err(CdcError::table(
                &change.table,
                "a change came before the table's schema (a source bug)",
            ));
        };
        if let Some(ts) = change.op_ts_micros {
            self.group.op_ts = Some(ts);
        }
        // The table's name is cloned once per group, not once per row.
        if !self.group.touched.contains(&change.table) {
            self.group.touched.insert(change.table.clone());
        }
        table.add(change)?;
        table.spill_if_over(self.config.max_buffered_rows).await?;
        Ok(())
    }

    async fn on_schema(
        &mut self,
        source: &mut dyn ChangeSource,
        id: SourceTableId,
        schema: SourceSchema,
    ) -> Result<()> {
        if !self.config.filter.accepts(&id) {
            self.ignored.insert(id);
            return Ok(());
        }
        let key = primary_key(&self.config, &schema);
        if key.is_empty() {
            if self.stats.skipped_without_key.insert(id.clone()) {
                tracing::warn!(table = %id, "no primary key: skipped");
                eprintln!("cdc: table {id} has no primary key: skipped");
            }
            self.ignored.insert(id);
            return Ok(());
        }
        if let Some(missing) = key
            .iter()
            .find(|k| !schema.columns.iter().any(|c| &c.name == *k))
        {
            return Err(CdcError::table(
                &id,
                format!("primary key column '{missing}' is not a column of the table"),
            ));
        }
        if self.tables.get(&id).is_some_and(|t| t.stopped.is_some()) {
            return Ok(());
        }
        let wanted = wanted_columns(&self.config, &id, &schema, &key)?;
        let paimon = self.identifier(&id);
        let table = match self.catalog.load_table(&paimon).await {
            Ok(table) => table,
            Err(tidelake_engine::EngineError::TableNotFound(_)) => {
                let spec = table_spec(&self.config, &wanted, &key);
                self.catalog.create_table(&paimon, spec, true).await?;
                eprintln!("cdc: created table {paimon} for {id}");
                self.catalog.load_table(&paimon).await?
            }
            Err(e) => return Err(e.into()),
        };
        let evolution = evolve(&table, &id, &wanted);
        if let Some(first) = evolution.incompatible.into_iter().next() {
            if self.config.ignore_incompatible {
                tracing::warn!(table = %id, error = %first, "incompatible schema change ignored");
                eprintln!("cdc: ignored: {first}");
            } else {
                eprintln!("cdc: {first}");
                self.stats.stopped.insert(id.clone(), first.to_string());
                if let Some(t) = self.tables.get_mut(&id) {
                    t.abort().await;
                    t.stopped = Some(first.to_string());
                }
                self.ignored.insert(id);
                return Ok(());
            }
        }
        let mut table = table;
        if !evolution.changes.is_empty() {
            if self.tables.get(&id).is_some_and(TableSink::has_writer) {
                if self.group.open {
                    return Err(CdcError::table(
                        &id,
                        "its schema changed inside a source transaction whose rows were already written; restart the pipeline to replay it",
                    ));
                }
                self.commit(source).await?;
            }
            self.catalog.alter_table(&paimon, evolution.changes).await?;
            table = self.catalog.load_table(&paimon).await?;
            eprintln!("cdc: table {paimon} follows a schema change of {id}");
        }
        match self.tables.get_mut(&id) {
            Some(existing) => existing.replace_table(table, evolution.slots)?,
            None => {
                let (progress, recorded) = match self.recorded.remove(&id) {
                    Some(r) if r.id == paimon => (r.progress, Some(r.position)),
                    _ => (read_progress(table.snapshots(), &self.owner).await?, None),
                };
                // Without unchanged values no image is ever read: none kept.
                let images = ImageStore::new(
                    self.config.images_in_memory,
                    self.config.spill_dir.clone(),
                    source.may_send_unchanged(),
                );
                let sink = TableSink::new(
                    id.clone(),
                    table,
                    evolution.slots,
                    progress,
                    recorded,
                    images,
                );
                self.tables.insert(id, sink);
                self.stats.tables = self.tables.len();
            }
        }
        Ok(())
    }

    fn identifier(&self, table: &SourceTableId) -> Identifier {
        Identifier::new(self.config.database.clone(), self.config.table_name(table))
    }

    /// Commits the group in each table it touched (and the position alone
    /// in tables idle too long), then acknowledges the source.
    async fn commit(&mut self, source: &mut dyn ChangeSource) -> Result<()> {
        let Some(position) = self.group.position.clone() else {
            return Ok(());
        };
        let idle = self.config.idle_progress_interval;
        let due: Vec<SourceTableId> = self
            .tables
            .iter()
            .filter(|(id, t)| {
                t.stopped.is_none()
                    && (self.group.touched.contains(*id)
                        || t.has_changes()
                        || (t.last_commit.elapsed() >= idle
                            && t.recorded
                                .as_ref()
                                .is_none_or(|r| source.compare_positions(r, &position).is_lt())))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            self.commit_table(id, &position).await?;
        }
        self.stats.position = Some(position);
        self.finish_commit(source).await
    }

    /// Commits an initial copy: the copied tables alone, at the copy's
    /// position; the rest of the group (stream changes of other tables
    /// before the copy) stays for its own commit.
    async fn commit_copy(
        &mut self,
        source: &mut dyn ChangeSource,
        position: SourcePosition,
        tables: Vec<SourceTableId>,
    ) -> Result<()> {
        for id in &tables {
            self.group.touched.remove(id);
            if self.tables.get(id).is_some_and(|t| t.stopped.is_none()) {
                self.commit_table(id, &position).await?;
            }
        }
        if self.group.touched.is_empty() && self.group.position.is_none() {
            self.group = Group::default();
        }
        let copied = tables.len();
        eprintln!("cdc: committed the copy of {copied} tables at {position}");
        self.stats.position = Some(position);
        self.stats.commits += 1;
        self.stats.rows = self.tables.values().map(|t| t.rows).sum();
        self.acknowledge(source).await?;
        if let Some(report) = self.on_commit.as_mut() {
            report(&self.stats);
        }
        Ok(())
    }

    /// Commits one table's changes of the group (or its position alone).
    async fn commit_table(&mut self, id: &SourceTableId, position: &SourcePosition) -> Result<()> {
        let Some(table) = self.tables.get_mut(id) else {
            return Ok(());
        };
        let positions = BTreeMap::from([
            (POSITION_SLOT.to_string(), position.0.clone()),
            (SOURCE_SLOT.to_string(), id.to_string()),
        ]);
        let started_from = table.recorded.clone();
        match table.commit(&positions).await {
            Ok(_) => {
                table.recorded = Some(position.clone());
                Ok(())
            }
            Err(e) if is_conflict(&e) => {
                let now = read_progress(table.table.snapshots(), &self.owner).await?;
                let show = |p: Option<&String>| p.map_or("none".to_string(), |p| p.clone());
                Err(CdcError::Fenced {
                    pipeline: self.config.pipeline.clone(),
                    table: table.table.identifier().to_string(),
                    recorded: show(now.positions.get(POSITION_SLOT)),
                    started_from: show(started_from.as_ref().map(|p| &p.0)),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// After a group's commits: totals, the source acknowledged, the report.
    async fn finish_commit(&mut self, source: &mut dyn ChangeSource) -> Result<()> {
        self.stats.commits += 1;
        self.stats.rows = self.tables.values().map(|t| t.rows).sum();
        self.stats.spilled_images = self.tables.values().map(|t| t.spilled_images).sum();
        if self.group.op_ts.is_some() {
            self.stats.last_op_ts_micros = self.group.op_ts;
        }
        self.group = Group::default();
        self.acknowledge(source).await?;
        if let Some(report) = self.on_commit.as_mut() {
            report(&self.stats);
        }
        Ok(())
    }

    /// Acknowledges the smallest position every table recorded.
    async fn acknowledge(&mut self, source: &mut dyn ChangeSource) -> Result<()> {
        let recorded = self
            .tables
            .values()
            .map(|t| t.recorded.as_ref())
            .chain(self.recorded.values().map(|r| Some(&r.position)));
        let mut min: Option<&SourcePosition> = None;
        for p in recorded {
            let Some(p) = p else {
                // A table that never committed holds the source back.
                return Ok(());
            };
            if min.is_none_or(|m| source.compare_positions(p, m).is_lt()) {
                min = Some(p);
            }
        }
        let Some(min) = min.cloned() else {
            return Ok(());
        };
        let newer = self
            .stats
            .acknowledged
            .as_ref()
            .is_none_or(|a| source.compare_positions(&min, a).is_gt());
        if newer {
            source.acknowledge(&min).await?;
            self.stats.acknowledged = Some(min);
        }
        Ok(())
    }
}
