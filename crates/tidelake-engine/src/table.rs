//! A handle on one table: where it lives, its schema and layout, and its
//! snapshots. The operations on a table (scans, writers, compaction,
//! lifecycle) are defined by the modules above, in their own `impl Table`
//! blocks.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::future::BoxFuture;
use tidelake_format::manifest::{DataFileMeta, IndexManifestEntry};
use tidelake_format::schema::TableSchema;
use tidelake_store::WarehouseStore;

use crate::cache::MetadataCache;
use crate::error::{EngineError, Result};
use crate::kv::{RowKind, TablePaths};
use crate::layout::TableLayout;
use crate::manifests::ManifestStore;
use crate::mergefn::MergeFunction;
use crate::options::TableOptions;
use crate::queue::{CommitQueues, TableQueue};
use crate::snapshots::SnapshotReader;

/// `database.table`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier {
    pub database: String,
    pub table: String,
}

impl Identifier {
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        Identifier {
            database: database.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// Whether `name` may name a database, table, view or column: not empty, no
/// '/', '\\', '$' (system tables, branches, time travel) or control
/// characters, no leading '.'.
pub fn is_valid_name(name: &str) -> bool {
    !(name.is_empty()
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
        || name.contains('$'))
}

pub(crate) fn validate_name(kind: &str, name: &str) -> Result<()> {
    if !is_valid_name(name) {
        return Err(EngineError::invalid(format!(
            "'{name}' is not a valid {kind} name (no '/', '\\', '$', control characters or leading '.')"
        )));
    }
    Ok(())
}

/// Derives a schema's layout and checks its options against its columns
/// (merge functions, sequence groups), so a bad table is refused when it is
/// created or opened rather than at its first flush.
pub(crate) fn checked_layout(schema: TableSchema) -> Result<TableLayout> {
    let layout = TableLayout::new(schema)?;
    MergeFunction::for_table(&layout)?;
    Ok(layout)
}

/// What a crate beside the engine adds to the tables a catalog opens
/// (`Catalog::with_table_hooks`), e.g. vector indexes: checks of the rows a
/// writer takes, and index files built from compaction output and
/// committed in the same COMPACT snapshot. The engine knows nothing of what
/// these indexes hold; a hook decides from the table's options whether it
/// applies.
pub trait TableHooks: Send + Sync + fmt::Debug {
    /// Checks a table's schema (options included) when a table is created
    /// or altered; an error refuses the statement and nothing is written.
    fn check_schema(&self, _table: &Identifier, _schema: &TableSchema) -> Result<()> {
        Ok(())
    }

    /// Checks rows (conformed to the table's columns) before a writer takes
    /// them; an error refuses the whole batch and nothing is buffered.
    fn check_rows(&self, _table: &Table, _batch: &RecordBatch, _kinds: &[RowKind]) -> Result<()> {
        Ok(())
    }

    /// The index files of one bucket as a compaction leaves it, written
    /// before the COMPACT commit (`None`: this hook does not index the
    /// table). The returned entries replace, in that commit, every entry
    /// of the bucket with the same index type; entries returned unchanged
    /// from `bucket.index_entries` are kept, files of new ones are deleted
    /// if the commit fails.
    fn index_compacted_bucket<'a>(
        &'a self,
        _table: &'a Table,
        _bucket: &'a CompactedBucket,
    ) -> BoxFuture<'a, Result<Option<Vec<IndexManifestEntry>>>> {
        Box::pin(async { Ok(None) })
    }
}

/// One bucket as a compaction leaves it (before its commit).
#[derive(Clone, Debug)]
pub struct CompactedBucket {
    /// Serialized BinaryRow of the partition.
    pub partition: Vec<u8>,
    pub partition_path: String,
    pub bucket: i32,
    /// Every live file of the bucket once the compaction is committed.
    pub files: Vec<DataFileMeta>,
    /// The files the compaction wrote (a subset of `files`).
    pub written: Vec<DataFileMeta>,
    /// The bucket's index manifest entries in the snapshot compacted.
    pub index_entries: Vec<IndexManifestEntry>,
}

/// The hooks of a catalog's tables.
pub(crate) type Hooks = Arc<Vec<Arc<dyn TableHooks>>>;

/// A table of the warehouse, as of the schema it was loaded with.
#[derive(Clone)]
pub struct Table {
    pub(crate) store: WarehouseStore,
    pub(crate) id: Identifier,
    pub(crate) reader: SnapshotReader,
    pub(crate) layout: Arc<TableLayout>,
    schema_cache: Arc<Mutex<HashMap<i64, Arc<TableSchema>>>>,
    hooks: Hooks,
    /// The commit queues of the table's catalog (group commit).
    queues: Arc<CommitQueues>,
    /// The catalog's caches of immutable metadata (see `cache.rs`).
    pub(crate) cache: Arc<MetadataCache>,
}

impl Table {
    pub(crate) fn new(
        store: WarehouseStore,
        id: Identifier,
        reader: SnapshotReader,
        schema: TableSchema,
    ) -> Result<Self> {
        let layout = Arc::new(checked_layout(schema)?);
        let current = Arc::new(layout.schema.clone());
        Ok(Table::with_layout(store, id, reader, layout, current))
    }

    /// A table of an already checked layout (`current`: its schema).
    pub(crate) fn with_layout(
        store: WarehouseStore,
        id: Identifier,
        reader: SnapshotReader,
        layout: Arc<TableLayout>,
        current: Arc<TableSchema>,
    ) -> Self {
        // The current schema too, so that reading a file of it (most files)
        // does not copy the schema.
        let schemas = HashMap::from([(layout.schema.id, current)]);
        Table {
            store,
            id,
            reader,
            layout,
            schema_cache: Arc::new(Mutex::new(schemas)),
            hooks: Arc::default(),
            queues: Arc::default(),
            cache: Arc::default(),
        }
    }

    /// The same table sharing `cache` (its catalog's).
    pub(crate) fn with_cache(mut self, cache: Arc<MetadataCache>) -> Self {
        self.cache = cache;
        self
    }

    /// The metadata caches this handle shares with its catalog.
    pub fn metadata_cache(&self) -> &Arc<MetadataCache> {
        &self.cache
    }

    /// The same table sharing the commit queues `queues` (its catalog's),
    /// so that its concurrent writers are grouped with those of every other
    /// handle on it.
    pub(crate) fn with_commit_queues(mut self, queues: Arc<CommitQueues>) -> Self {
        self.queues = queues;
        self
    }

    pub(crate) fn shared_commit_queues(&self) -> Arc<CommitQueues> {
        self.queues.clone()
    }

    /// This table's commit queue (by root, branch and schema).
    pub(crate) fn commit_queue(&self) -> Arc<TableQueue> {
        let paths = self.paths();
        self.queues
            .queue(&paths.root, paths.branch.as_deref(), self.layout.schema.id)
    }

    /// The same table with the hooks of its catalog.
    pub(crate) fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// The hooks the table's catalog was given.
    pub fn hooks(&self) -> &[Arc<dyn TableHooks>] {
        &self.hooks
    }

    pub(crate) fn shared_hooks(&self) -> Hooks {
        self.hooks.clone()
    }

    pub fn identifier(&self) -> &Identifier {
        &self.id
    }

    pub fn schema(&self) -> &TableSchema {
        &self.layout.schema
    }

    pub fn options(&self) -> &TableOptions {
        &self.layout.options
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        self.layout.arrow_schema.clone()
    }

    pub fn primary_keys(&self) -> &[String] {
        &self.layout.schema.primary_keys
    }

    pub fn partition_keys(&self) -> &[String] {
        &self.layout.schema.partition_keys
    }

    pub fn is_primary_key_table(&self) -> bool {
        self.layout.is_primary_key()
    }

    pub fn paths(&self) -> &TablePaths {
        self.reader.paths()
    }

    pub fn snapshots(&self) -> &SnapshotReader {
        &self.reader
    }

    pub fn store(&self) -> &WarehouseStore {
        &self.store
    }

    /// The table's manifests, compressed as its options say.
    pub(crate) fn manifest_store(&self) -> Result<ManifestStore> {
        Ok(ManifestStore::new(
            self.store.clone(),
            self.paths().clone(),
            &self.layout.options.manifest_compression,
        )?
        .with_cache(self.cache.clone()))
    }

    /// The schema a data file was written with (files carry their schema id).
    pub(crate) async fn schema_by_id(&self, id: i64) -> Result<Arc<TableSchema>> {
        if let Some(s) = self
            .schema_cache
            .lock()
            .map_err(|_| EngineError::invalid("schema cache poisoned"))?
            .get(&id)
        {
            return Ok(s.clone());
        }
        let schema = Arc::new(self.reader.schema(id).await?);
        self.schema_cache
            .lock()
            .map_err(|_| EngineError::invalid("schema cache poisoned"))?
            .insert(id, schema.clone());
        Ok(schema)
    }
}
