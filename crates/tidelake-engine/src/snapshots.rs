//! Finding and reading a table's snapshots and schemas.
//!
//! `snapshot/LATEST` and `snapshot/EARLIEST` are hints: they are written after
//! a commit, best effort, so they may lag. The truth is which `snapshot-N`
//! files exist; a reader starts from the hint and probes forward.

use tidelake_format::schema::TableSchema;
use tidelake_format::snapshot::Snapshot;
use tidelake_store::{StoreError, WarehouseStore};

use crate::error::{EngineError, Result};
pub use crate::kv::TablePaths;

fn parse_numbered(name: &str, prefix: &str) -> Option<i64> {
    name.strip_prefix(prefix)?.parse::<i64>().ok()
}

/// The last path segment of a listed object.
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Reads snapshot and schema files of one table.
#[derive(Clone)]
pub struct SnapshotReader {
    store: WarehouseStore,
    paths: TablePaths,
}

impl SnapshotReader {
    pub fn new(store: WarehouseStore, paths: TablePaths) -> Self {
        SnapshotReader { store, paths }
    }

    pub fn paths(&self) -> &TablePaths {
        &self.paths
    }

    /// Reads `snapshot-{id}`; `Ok(None)` when it does not exist.
    pub async fn snapshot(&self, id: i64) -> Result<Option<Snapshot>> {
        let path = self.paths.snapshot(id);
        match self.store.get(&path).await {
            Ok(bytes) => Snapshot::from_json(&bytes)
                .map(Some)
                .map_err(|e| EngineError::format(path, e)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn hint(&self, path: &str) -> Option<i64> {
        let bytes = self.store.get(path).await.ok()?;
        std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
    }

    /// Every snapshot id present, ascending (lists the folder).
    pub async fn list_snapshot_ids(&self) -> Result<Vec<i64>> {
        let entries = self.store.list(&self.paths.snapshot_dir()).await?;
        let mut ids: Vec<i64> = entries
            .iter()
            .filter_map(|e| parse_numbered(file_name(&e.path), "snapshot-"))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The id of the newest snapshot, or `None` for an empty table.
    pub async fn latest_snapshot_id(&self) -> Result<Option<i64>> {
        if let Some(hint) = self.hint(&self.paths.latest_hint()).await {
            if self.store.exists(&self.paths.snapshot(hint)).await? {
                let mut id = hint;
                while self.store.exists(&self.paths.snapshot(id + 1)).await? {
                    id += 1;
                }
                return Ok(Some(id));
            }
        }
        Ok(self.list_snapshot_ids().await?.last().copied())
    }

    pub async fn earliest_snapshot_id(&self) -> Result<Option<i64>> {
        if let Some(hint) = self.hint(&self.paths.earliest_hint()).await {
            if self.store.exists(&self.paths.snapshot(hint)).await? {
                return Ok(Some(hint));
            }
        }
        Ok(self.list_snapshot_ids().await?.first().copied())
    }

    pub async fn latest_snapshot(&self) -> Result<Option<Snapshot>> {
        match self.latest_snapshot_id().await? {
            Some(id) => self.snapshot(id).await,
            None => Ok(None),
        }
    }

    /// Reads `schema-{id}`.
    pub async fn schema(&self, id: i64) -> Result<TableSchema> {
        let path = self.paths.schema(id);
        let bytes = self.store.get(&path).await?;
        TableSchema::from_json(&bytes).map_err(|e| EngineError::format(path, e))
    }

    /// Every schema id present, ascending.
    pub async fn list_schema_ids(&self) -> Result<Vec<i64>> {
        let entries = self.store.list(&self.paths.schema_dir()).await?;
        let mut ids: Vec<i64> = entries
            .iter()
            .filter_map(|e| parse_numbered(file_name(&e.path), "schema-"))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The newest schema, or `None` when the folder holds no schema.
    pub async fn latest_schema(&self) -> Result<Option<TableSchema>> {
        match self.list_schema_ids().await?.last() {
            Some(id) => Ok(Some(self.schema(*id).await?)),
            None => Ok(None),
        }
    }
}
