//! The filesystem catalog, in Paimon's layout: `{warehouse}/{db}.db/{table}/`
//! with `schema/schema-N` files. A table exists when its folder holds a
//! schema; creating a table is the create-if-absent of `schema-0`, so two
//! processes creating the same table cannot both succeed.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use tidelake_format::schema::TableSchema;
use tidelake_format::types::{DataField, DataType};
use tidelake_store::{PutOutcome, StoreError, WarehouseStore};

use crate::cache::{CacheConfig, MetadataCache};
use crate::error::{EngineError, Result};
use crate::evolution;
pub use crate::evolution::ColumnPosition;
use crate::kv::TablePaths;
use crate::layout::TableLayout;
use crate::options::TableOptions;
use crate::queue::CommitQueues;
use crate::snapshots::SnapshotReader;
pub use crate::table::{is_valid_name, Identifier};
use crate::table::{validate_name, Hooks, Table, TableHooks};
use crate::views::ViewStore;

/// The database every session starts in; it always exists.
pub const DEFAULT_DATABASE: &str = "default";

/// One column of a table to create.
#[derive(Clone, Debug)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: DataType,
    pub comment: Option<String>,
}

/// Everything `CREATE TABLE` says.
#[derive(Clone, Debug, Default)]
pub struct TableSpec {
    pub columns: Vec<ColumnSpec>,
    pub primary_keys: Vec<String>,
    pub partition_keys: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub comment: Option<String>,
}

/// One step of `ALTER TABLE`.
#[derive(Clone, Debug)]
pub enum SchemaChange {
    AddColumn {
        name: String,
        data_type: DataType,
        comment: Option<String>,
    },
    SetOption {
        key: String,
        value: String,
    },
    RemoveOption {
        key: String,
    },
    /// Keeps the field id (see [`crate::evolution`] for Paimon's rules).
    RenameColumn {
        from: String,
        to: String,
    },
    DropColumn {
        name: String,
    },
    /// `keep_nullability`: change only the type (Spark's `ALTER COLUMN c
    /// TYPE t`); otherwise the nullability of `data_type` too (Flink's
    /// `MODIFY c t`).
    UpdateColumnType {
        name: String,
        data_type: DataType,
        keep_nullability: bool,
    },
    UpdateColumnNullability {
        name: String,
        nullable: bool,
    },
    UpdateColumnComment {
        name: String,
        comment: Option<String>,
    },
    UpdateColumnPosition {
        name: String,
        position: ColumnPosition,
    },
}

/// Options that change how existing files must be read: refused by ALTER.
const IMMUTABLE_OPTIONS: &[&str] = &[
    "bucket",
    "bucket-key",
    "merge-engine",
    "sequence.field",
    "file.format",
    "primary-key",
    "partition",
    // Levels written without vectors overlap in keys; vectors dropped would
    // bring deleted rows back.
    "deletion-vectors.enabled",
];

/// A catalog over one warehouse.
#[derive(Clone)]
pub struct Catalog {
    store: WarehouseStore,
    hooks: Hooks,
    /// Shared by every table handle the catalog loads (group commit).
    queues: Arc<CommitQueues>,
    /// Shared by every table handle this catalog (and its clones) opens.
    cache: Arc<MetadataCache>,
    /// The schema each table was last loaded with, by schema folder.
    schemas: Arc<Mutex<LruCache<String, Arc<LoadedSchema>>>>,
}

/// Tables whose loaded schema a catalog keeps.
const LOADED_SCHEMAS: usize = 1024;

fn loaded_schemas() -> Arc<Mutex<LruCache<String, Arc<LoadedSchema>>>> {
    let capacity =
        std::num::NonZeroUsize::new(LOADED_SCHEMAS).unwrap_or(std::num::NonZeroUsize::MIN);
    Arc::new(Mutex::new(LruCache::new(capacity)))
}

/// The schema a table was last loaded with: `Catalog::load_table` reuses
/// it (and its checked layout) once it checked that `schema-{id + 1}` does
/// not exist and that `schema-{id}` still holds these bytes (a table
/// dropped and created again writes `schema-0` again).
struct LoadedSchema {
    id: i64,
    bytes: bytes::Bytes,
    layout: Arc<TableLayout>,
    schema: Arc<TableSchema>,
}

impl Catalog {
    /// Opens the warehouse at `uri` (a local path, `file://`, `memory://` or `s3://`).
    pub async fn open(uri: &str) -> Result<Catalog> {
        Ok(Catalog {
            store: WarehouseStore::open(uri).await?,
            hooks: Hooks::default(),
            queues: Arc::default(),
            cache: Arc::default(),
            schemas: loaded_schemas(),
        })
    }

    pub fn from_store(store: WarehouseStore) -> Catalog {
        Catalog {
            store,
            hooks: Hooks::default(),
            queues: Arc::default(),
            cache: Arc::default(),
            schemas: loaded_schemas(),
        }
    }

    /// Asks every hook whether it accepts `schema` (CREATE and ALTER).
    fn check_schema(&self, id: &Identifier, schema: &TableSchema) -> Result<()> {
        self.hooks
            .iter()
            .try_for_each(|h| h.check_schema(id, schema))
    }

    /// The same catalog, whose tables run `hooks` (see [`TableHooks`]).
    pub fn with_table_hooks(mut self, hooks: Vec<Arc<dyn TableHooks>>) -> Catalog {
        self.hooks = Arc::new(hooks);
        self
    }

    /// The same catalog with caches of these sizes (replacing, not sharing,
    /// the caches it had).
    pub fn with_cache_config(mut self, config: CacheConfig) -> Catalog {
        self.cache = Arc::new(MetadataCache::new(config));
        self
    }

    /// The caches of immutable metadata every table of this catalog shares.
    pub fn metadata_cache(&self) -> &Arc<MetadataCache> {
        &self.cache
    }

    pub fn store(&self) -> &WarehouseStore {
        &self.store
    }

    /// The warehouse's views (see [`crate::views`]).
    pub fn views(&self) -> ViewStore {
        ViewStore::new(self.store.clone())
    }

    pub fn warehouse_uri(&self) -> String {
        self.store.uri()
    }

    fn database_path(name: &str) -> String {
        format!("{name}.db")
    }

    fn table_paths(id: &Identifier) -> TablePaths {
        TablePaths::new(format!("{}.db/{}", id.database, id.table))
    }

    pub async fn list_databases(&self) -> Result<Vec<String>> {
        let (dirs, _) = self.store.list_dir("").await?;
        let mut names: Vec<String> = dirs
            .iter()
            .filter_map(|d| {
                d.trim_end_matches('/')
                    .strip_suffix(".db")
                    .map(str::to_string)
            })
            .collect();
        if !names.iter().any(|n| n == DEFAULT_DATABASE) {
            names.push(DEFAULT_DATABASE.to_string());
        }
        names.sort();
        Ok(names)
    }

    pub async fn database_exists(&self, name: &str) -> Result<bool> {
        Ok(name == DEFAULT_DATABASE || self.list_databases().await?.iter().any(|d| d == name))
    }

    pub async fn create_database(&self, name: &str, ignore_if_exists: bool) -> Result<()> {
        validate_name("database", name)?;
        if self.database_exists(name).await? {
            if ignore_if_exists || name == DEFAULT_DATABASE {
                return Ok(());
            }
            return Err(EngineError::DatabaseAlreadyExists(name.to_string()));
        }
        self.store.create_dir(&Self::database_path(name)).await?;
        Ok(())
    }

    pub async fn drop_database(
        &self,
        name: &str,
        ignore_if_not_exists: bool,
        cascade: bool,
    ) -> Result<()> {
        if !self.database_exists(name).await? {
            if ignore_if_not_exists {
                return Ok(());
            }
            return Err(EngineError::DatabaseNotFound(name.to_string()));
        }
        // Views count too (as in Paimon's JDBC catalog).
        if !cascade
            && (!self.list_tables(name).await?.is_empty()
                || !self.views().list(name).await?.is_empty())
        {
            return Err(EngineError::DatabaseNotEmpty(name.to_string()));
        }
        self.store.delete_dir(&Self::database_path(name)).await?;
        Ok(())
    }

    pub async fn list_tables(&self, database: &str) -> Result<Vec<String>> {
        if !self.database_exists(database).await? {
            return Err(EngineError::DatabaseNotFound(database.to_string()));
        }
        let (dirs, _) = self.store.list_dir(&Self::database_path(database)).await?;
        let mut tables = Vec::new();
        for dir in dirs {
            let name = dir
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                continue;
            }
            let id = Identifier::new(database, name.clone());
            let reader = SnapshotReader::new(self.store.clone(), Self::table_paths(&id));
            if !reader.list_schema_ids().await?.is_empty() {
                tables.push(name);
            }
        }
        tables.sort();
        Ok(tables)
    }

    /// Builds schema 0 from a spec, checking it the way Paimon does.
    pub fn schema_from_spec(spec: TableSpec) -> Result<TableSchema> {
        if spec.columns.is_empty() {
            return Err(EngineError::invalid("a table needs at least one column"));
        }
        let mut seen = HashSet::new();
        for c in &spec.columns {
            validate_name("column", &c.name)?;
            if !seen.insert(c.name.to_ascii_lowercase()) {
                return Err(EngineError::invalid(format!(
                    "column '{}' is declared twice",
                    c.name
                )));
            }
        }
        let find = |what: &str, k: &String| -> Result<()> {
            if spec.columns.iter().any(|c| &c.name == k) {
                Ok(())
            } else {
                Err(EngineError::invalid(format!(
                    "{what} column '{k}' is not a column of the table"
                )))
            }
        };
        for k in &spec.primary_keys {
            find("primary key", k)?;
        }
        for k in &spec.partition_keys {
            find("partition", k)?;
        }
        let options = TableOptions::from_map(&spec.options, !spec.primary_keys.is_empty())?;
        if !spec.primary_keys.is_empty() {
            if let Some(k) = spec
                .partition_keys
                .iter()
                .find(|k| !spec.primary_keys.contains(k))
            {
                return Err(EngineError::Unsupported(format!(
                    "partition column '{k}' must be part of the primary key (cross-partition upsert is not supported yet)"
                )));
            }
            if spec.primary_keys.len() == spec.partition_keys.len() {
                return Err(EngineError::invalid(
                    "the primary key must hold at least one column that is not a partition column",
                ));
            }
            for f in &options.sequence_fields {
                find("sequence.field", f)?;
            }
        } else {
            if options.merge_engine != crate::options::MergeEngine::Deduplicate
                && spec.options.contains_key("merge-engine")
            {
                return Err(EngineError::invalid(
                    "option 'merge-engine' needs a primary key",
                ));
            }
            if options.bucket > 0 && !spec.options.contains_key("bucket-key") {
                return Err(EngineError::invalid(
                    "an append table with a fixed 'bucket' needs the option 'bucket-key'",
                ));
            }
        }
        if let Some(keys) = spec.options.get("bucket-key") {
            for k in keys.split(',').map(str::trim) {
                find("bucket-key", &k.to_string())?;
                if !spec.primary_keys.is_empty() && !spec.primary_keys.iter().any(|p| p == k) {
                    return Err(EngineError::invalid(format!(
                        "bucket-key column '{k}' must be part of the primary key"
                    )));
                }
            }
        }
        let fields: Vec<DataField> = spec
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| DataField {
                id: i as i32,
                name: c.name.clone(),
                // Paimon stores primary key columns as NOT NULL.
                data_type: if spec.primary_keys.contains(&c.name) {
                    c.data_type.with_nullable(false)
                } else {
                    c.data_type.clone()
                },
                description: c.comment.clone(),
            })
            .collect();
        Ok(TableSchema {
            version: 3,
            id: 0,
            highest_field_id: fields.len() as i32 - 1,
            fields,
            partition_keys: spec.partition_keys,
            primary_keys: spec.primary_keys,
            options: spec.options,
            comment: spec.comment,
            time_millis: chrono::Utc::now().timestamp_millis(),
        })
    }

    pub async fn create_table(
        &self,
        id: &Identifier,
        spec: TableSpec,
        ignore_if_exists: bool,
    ) -> Result<()> {
        validate_name("table", &id.table)?;
        if !self.database_exists(&id.database).await? {
            return Err(EngineError::DatabaseNotFound(id.database.clone()));
        }
        if self.views().exists(id).await? {
            return Err(EngineError::invalid(format!(
                "cannot create table '{id}': a view of that name exists (tables and views share names)"
            )));
        }
        let schema = Self::schema_from_spec(spec)?;
        crate::table::checked_layout(schema.clone())?;
        self.check_schema(id, &schema)?;
        let paths = Self::table_paths(id);
        let json = schema
            .to_json()
            .map_err(|e| EngineError::format(paths.schema(0), e))?;
        // An existing table is refused before writing: `create_if_absent`
        // takes an object holding exactly its bytes for its own earlier try,
        // and one spec created twice within a millisecond gives the same
        // bytes. (Two concurrent creates of one spec in one millisecond both
        // succeed still; the table is the one both asked for.)
        if self.store.exists(&paths.schema(0)).await? {
            return match ignore_if_exists {
                true => Ok(()),
                false => Err(EngineError::TableAlreadyExists(id.to_string())),
            };
        }
        match self
            .store
            .create_if_absent(&paths.schema(0), json.into_bytes().into())
            .await?
        {
            PutOutcome::Created => Ok(()),
            PutOutcome::AlreadyExists if ignore_if_exists => Ok(()),
            PutOutcome::AlreadyExists => Err(EngineError::TableAlreadyExists(id.to_string())),
        }
    }

    pub async fn drop_table(&self, id: &Identifier, ignore_if_not_exists: bool) -> Result<()> {
        let paths = Self::table_paths(id);
        let reader = SnapshotReader::new(self.store.clone(), paths.clone());
        if reader.list_schema_ids().await?.is_empty() {
            if ignore_if_not_exists {
                return Ok(());
            }
            return Err(EngineError::TableNotFound(id.to_string()));
        }
        self.store.delete_dir(&paths.root).await?;
        Ok(())
    }

    /// `ALTER TABLE from RENAME TO to`: Paimon's filesystem catalog moves the
    /// table's folder. Only local disk can move a folder in one step; object
    /// stores would copy and delete object by object, and readers and
    /// writers could meet a half-moved table, so there it is refused. (On
    /// local disk too, writers still running on the old name must stop
    /// first: they would recreate the old folder.)
    pub async fn rename_table(&self, from: &Identifier, to: &Identifier) -> Result<()> {
        validate_name("table", &to.table)?;
        if !self.store.renames_folders() {
            return Err(EngineError::Unsupported(format!(
                "cannot rename table '{from}' in warehouse '{}': an object store cannot rename a folder, so every file of the table would be copied and deleted one by one, and readers or writers meanwhile would see a half-moved table. Copy it instead (CREATE TABLE {to} LIKE {from}; INSERT INTO {to} SELECT * FROM {from}; DROP TABLE {from})",
                self.warehouse_uri()
            )));
        }
        let source = Self::table_paths(from);
        let reader = SnapshotReader::new(self.store.clone(), source.clone());
        if reader.list_schema_ids().await?.is_empty() {
            return Err(EngineError::TableNotFound(from.to_string()));
        }
        if !self.database_exists(&to.database).await? {
            return Err(EngineError::DatabaseNotFound(to.database.clone()));
        }
        if self.views().exists(to).await? {
            return Err(EngineError::invalid(format!(
                "cannot rename table '{from}' to '{to}': a view of that name exists (tables and views share names)"
            )));
        }
        let target = Self::table_paths(to);
        let (dirs, _) = self
            .store
            .list_dir(&Self::database_path(&to.database))
            .await?;
        if dirs.iter().any(|d| d.trim_end_matches('/') == target.root) {
            return Err(EngineError::TableAlreadyExists(to.to_string()));
        }
        self.store.rename_dir(&source.root, &target.root).await?;
        Ok(())
    }

    pub async fn load_table(&self, id: &Identifier) -> Result<Table> {
        let paths = Self::table_paths(id);
        let reader = SnapshotReader::new(self.store.clone(), paths);
        let loaded = self
            .latest_schema(&reader)
            .await?
            .ok_or_else(|| EngineError::TableNotFound(id.to_string()))?;
        let table = Table::with_layout(
            self.store.clone(),
            id.clone(),
            reader,
            loaded.layout.clone(),
            loaded.schema.clone(),
        );
        Ok(table
            .with_hooks(self.hooks.clone())
            .with_commit_queues(self.queues.clone())
            .with_cache(self.cache.clone()))
    }

    /// The latest schema of a table (`None`: no schema, no table), with its
    /// checked layout. Every statement of a server loads its tables, so the
    /// one loaded before is reused when two small requests show it is still
    /// the latest: `schema-{N+1}` does not exist (an ALTER creates it) and
    /// `schema-N` holds the same bytes (a table dropped and created again
    /// writes it anew). Otherwise the folder is listed, as before.
    async fn latest_schema(&self, reader: &SnapshotReader) -> Result<Option<Arc<LoadedSchema>>> {
        let paths = reader.paths();
        let dir = paths.schema_dir();
        let seen = self
            .schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&dir)
            .cloned();
        if let Some(seen) = seen {
            let (next, this) = (paths.schema(seen.id + 1), paths.schema(seen.id));
            let (next, this) = futures::join!(self.store.exists(&next), self.store.get(&this));
            if !next? {
                match this {
                    Ok(bytes) if bytes == seen.bytes => return Ok(Some(seen)),
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let Some(&id) = reader.list_schema_ids().await?.last() else {
            return Ok(None);
        };
        let path = paths.schema(id);
        let bytes = self.store.get(&path).await?;
        let schema = TableSchema::from_json(&bytes).map_err(|e| EngineError::format(path, e))?;
        let layout = Arc::new(crate::table::checked_layout(schema)?);
        let loaded = Arc::new(LoadedSchema {
            id,
            bytes,
            schema: Arc::new(layout.schema.clone()),
            layout,
        });
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(dir, loaded.clone());
        Ok(Some(loaded))
    }

    /// A branch of a table (Paimon's `t$branch_{name}`): reads and writes
    /// go to the branch's snapshots, with the branch's latest schema.
    pub async fn load_branch(&self, id: &Identifier, branch: &str) -> Result<Table> {
        if branch == crate::lifecycle::MAIN_BRANCH {
            return self.load_table(id).await;
        }
        // The table first, so that a missing table is reported as such.
        let main = self.load_table(id).await?;
        crate::lifecycle::validate_branch_name(branch)?;
        let reader = SnapshotReader::new(self.store.clone(), main.paths().on_branch(Some(branch)));
        let schema = reader.latest_schema().await?.ok_or_else(|| {
            EngineError::invalid(format!("branch '{branch}' of table '{id}' does not exist"))
        })?;
        Ok(Table::new(self.store.clone(), id.clone(), reader, schema)?
            .with_hooks(self.hooks.clone())
            .with_commit_queues(self.queues.clone())
            .with_cache(self.cache.clone()))
    }

    /// Applies schema changes as a new `schema-{N+1}` (create-if-absent, so
    /// concurrent ALTERs cannot overwrite each other: the loser retries).
    pub async fn alter_table(&self, id: &Identifier, changes: Vec<SchemaChange>) -> Result<()> {
        for _attempt in 0..10 {
            let table = self.load_table(id).await?;
            let mut schema = table.schema().clone();
            let has_rows = match table.snapshots().latest_snapshot().await? {
                // Unknown counts (older writers) count as rows.
                Some(s) => s.total_record_count != Some(0),
                None => false,
            };
            for change in &changes {
                apply_change(&mut schema, change, id, has_rows)?;
            }
            crate::table::checked_layout(schema.clone())?;
            self.check_schema(id, &schema)?;
            schema.id += 1;
            schema.time_millis = chrono::Utc::now().timestamp_millis();
            let path = table.paths().schema(schema.id);
            let json = schema
                .to_json()
                .map_err(|e| EngineError::format(path.clone(), e))?;
            if let PutOutcome::Created = self
                .store
                .create_if_absent(&path, json.into_bytes().into())
                .await?
            {
                return Ok(());
            }
        }
        Err(EngineError::CommitConflict {
            table: id.to_string(),
            message: "the schema kept changing under concurrent ALTER TABLE statements".into(),
        })
    }
}

fn apply_change(
    schema: &mut TableSchema,
    change: &SchemaChange,
    id: &Identifier,
    has_rows: bool,
) -> Result<()> {
    let table = id.to_string();
    match change {
        SchemaChange::AddColumn {
            name,
            data_type,
            comment,
        } => {
            validate_name("column", name)?;
            if schema
                .fields
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(name))
            {
                return Err(EngineError::invalid(format!(
                    "column '{name}' already exists in table '{id}'"
                )));
            }
            if !data_type.is_nullable() {
                return Err(EngineError::invalid(format!(
                    "column '{name}' is added to existing rows, so it must be nullable"
                )));
            }
            schema.highest_field_id += 1;
            schema.fields.push(DataField {
                id: schema.highest_field_id,
                name: name.clone(),
                data_type: data_type.clone(),
                description: comment.clone(),
            });
        }
        SchemaChange::SetOption { key, value } => {
            if IMMUTABLE_OPTIONS.contains(&key.as_str()) && schema.options.get(key) != Some(value) {
                return Err(EngineError::invalid(format!(
                    "option '{key}' cannot be changed on an existing table"
                )));
            }
            schema.options.insert(key.clone(), value.clone());
        }
        SchemaChange::RemoveOption { key } => {
            if IMMUTABLE_OPTIONS.contains(&key.as_str()) {
                return Err(EngineError::invalid(format!(
                    "option '{key}' cannot be changed on an existing table"
                )));
            }
            schema.options.remove(key);
        }
        SchemaChange::RenameColumn { from, to } => {
            validate_name("column", to)?;
            evolution::rename_column(schema, from, to, &table)?;
        }
        SchemaChange::DropColumn { name } => evolution::drop_column(schema, name, &table)?,
        SchemaChange::UpdateColumnType {
            name,
            data_type,
            keep_nullability,
        } => evolution::set_type(schema, name, data_type, *keep_nullability, has_rows, &table)?,
        SchemaChange::UpdateColumnNullability { name, nullable } => {
            evolution::set_nullable(schema, name, *nullable, has_rows, &table)?
        }
        SchemaChange::UpdateColumnComment { name, comment } => {
            evolution::set_comment(schema, name, comment.as_deref(), &table)?
        }
        SchemaChange::UpdateColumnPosition { name, position } => {
            evolution::move_column(schema, name, position, &table)?
        }
    }
    Ok(())
}
