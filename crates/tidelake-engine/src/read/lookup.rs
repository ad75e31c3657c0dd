//! Primary-key lookups: the row of a key, read the way a full scan filtered
//! on the key would read it, but touching only what can hold the key.
//!
//! A lookup plans a scan with the key as its predicate, which pins the
//! partition and the bucket (Paimon's bucket hash, as the writer routes)
//! and skips every file whose key range does not hold the key; manifests
//! and footers come from the catalog's caches. Each remaining file is read
//! only in the row groups and pages that may hold the key (statistics, page
//! index, bloom filters where written) and only the key's rows go on to
//! the merge, which is the scan's own: deletion vectors, level-0 rules,
//! sequence order and every merge engine behave exactly as in a scan. So a
//! lookup returns exactly the row `SELECT ... WHERE key = ...` returns.

use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use tidelake_format::binary_row::Datum;
use tidelake_format::snapshot::Snapshot;
use tidelake_store::StoreError;

use super::key::KeyFilter;
use crate::cache::LatestSnapshot;
use crate::error::{EngineError, Result};
use crate::table::Table;

/// What a lookup returns, and as of which snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LookupOptions {
    /// Column indexes (into the table schema) to return, in order; `None`:
    /// every column.
    pub projection: Option<Vec<usize>>,
    /// The snapshot to read (time travel); `None`: the latest, read fresh
    /// from the store (a commit of another process is seen at once).
    pub snapshot: Option<i64>,
}

impl Table {
    /// The row of `key` (one value per primary-key column, in the order of
    /// the primary key, partition columns included) at the latest
    /// snapshot, or `None` when the key has no live row.
    pub async fn lookup(&self, key: &[Datum]) -> Result<Option<RecordBatch>> {
        let found = self
            .lookup_keys(&[key.to_vec()], &LookupOptions::default())
            .await?;
        Ok((found.num_rows() > 0).then_some(found))
    }

    /// The rows of `keys` (each as in [`Table::lookup`]), all read at one
    /// snapshot, in the order of the keys; keys without a live row have
    /// none.
    pub async fn lookup_keys(
        &self,
        keys: &[Vec<Datum>],
        options: &LookupOptions,
    ) -> Result<RecordBatch> {
        let nfields = self.layout.schema.fields.len();
        let projection = options
            .projection
            .clone()
            .unwrap_or_else(|| (0..nfields).collect());
        if let Some(bad) = projection.iter().find(|i| **i >= nfields) {
            return Err(EngineError::invalid(format!(
                "projection index {bad} is out of range"
            )));
        }
        let schema = Arc::new(self.layout.arrow_schema.project(&projection)?);
        crate::counters::looked_up(keys.len());
        // Several keys read one snapshot, whatever commits meanwhile.
        let (snapshot, resolved) = match options.snapshot {
            Some(id) => (Some(id), None),
            None if keys.len() > 1 => match self.fresh_latest_snapshot().await? {
                Some(s) => (Some(s.id), Some(s)),
                // An empty table: no key has a row.
                None => return Ok(RecordBatch::new_empty(schema)),
            },
            None => (None, None),
        };
        let mut found = Vec::new();
        for key in keys {
            let (filter, predicate) = KeyFilter::new(self, key)?;
            let plan = self
                .scan()
                .with_projection(Some(projection.clone()))
                .with_predicate(predicate)
                .with_snapshot(snapshot)
                .with_resolved_snapshot(resolved.clone())
                .only_key(Arc::new(filter))
                .plan()
                .await?;
            for i in 0..plan.splits().len() {
                let mut rows = plan.read_split(i);
                while let Some(batch) = rows.next().await {
                    let batch = batch?;
                    if batch.num_rows() > 0 {
                        found.push(batch);
                    }
                }
            }
        }
        Ok(arrow_select::concat::concat_batches(&schema, &found)?)
    }

    /// The latest snapshot, as [`SnapshotReader::latest_snapshot`] finds it
    /// (a commit of another process is seen at once), but with one or two
    /// small requests instead of four when the table did not change: the
    /// latest snapshot seen before (in the catalog's cache) is reused when
    /// `snapshot-{N+1}` does not exist and `snapshot-N` still holds the
    /// same bytes. Comparing the bytes is what keeps a rollback exact: it
    /// deletes snapshots and a later commit may write `snapshot-N` again
    /// with other files.
    ///
    /// [`SnapshotReader::latest_snapshot`]: crate::snapshots::SnapshotReader::latest_snapshot
    pub async fn fresh_latest_snapshot(&self) -> Result<Option<Snapshot>> {
        let dir = self.paths().snapshot_dir();
        if let Some(seen) = self.cache.latest_snapshot(&dir) {
            let id = seen.id;
            let next = self.paths().snapshot(id + 1);
            let this = self.paths().snapshot(id);
            let (next, this) = futures::join!(self.store.exists(&next), self.store.get(&this));
            if !next? {
                match this {
                    Ok(bytes) if bytes == seen.bytes => {
                        crate::counters::snapshot_reused();
                        return Ok(Some(seen.snapshot.clone()));
                    }
                    // Written again since (a rollback, then a commit).
                    Ok(bytes) => return self.remember_snapshot(&dir, id, bytes).map(Some),
                    // Rolled back below it: find the latest afresh.
                    Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let Some(id) = self.reader.latest_snapshot_id().await? else {
            return Ok(None);
        };
        match self.store.get(&self.paths().snapshot(id)).await {
            Ok(bytes) => self.remember_snapshot(&dir, id, bytes).map(Some),
            // Expired or rolled back meanwhile: read as a scan would.
            Err(StoreError::NotFound { .. }) => self.reader.latest_snapshot().await,
            Err(e) => Err(e.into()),
        }
    }

    /// Parses `snapshot-{id}` from `bytes` and keeps it as the latest seen.
    fn remember_snapshot(&self, dir: &str, id: i64, bytes: Bytes) -> Result<Snapshot> {
        let snapshot = Snapshot::from_json(&bytes)
            .map_err(|e| EngineError::format(self.paths().snapshot(id), e))?;
        let latest = LatestSnapshot {
            id,
            bytes,
            snapshot: snapshot.clone(),
        };
        self.cache.put_latest_snapshot(dir, Arc::new(latest));
        Ok(snapshot)
    }
}
