//! Dynamic buckets (`'bucket' = '-1'`): a key keeps the bucket it was first
//! assigned to, recorded in per-bucket HASH index files (sorted big-endian
//! int32 hashes of the trimmed primary key); a new key goes to the first
//! bucket of its partition holding fewer than `dynamic-bucket.target-row-num`
//! keys, or opens the next bucket.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use tidelake_format::manifest::{FileKind, IndexFileMeta, IndexManifestEntry};
use tidelake_format::snapshot::Snapshot;

use crate::error::{EngineError, Result};
use crate::table::Table;

pub(crate) const HASH_INDEX: &str = "HASH";

#[derive(Default)]
struct PartitionIndex {
    hash_to_bucket: HashMap<i32, i32>,
    counts: BTreeMap<i32, u64>,
    modified: HashSet<i32>,
    /// Index files this partition was loaded from (for conflict checks).
    loaded_from: Vec<String>,
}

/// Assigns buckets for one writer.
pub(crate) struct DynamicBucketAssigner {
    target: u64,
    base_entries: Vec<IndexManifestEntry>,
    partitions: HashMap<Vec<u8>, PartitionIndex>,
}

/// Reads the HASH entries of a snapshot's index manifest.
pub(crate) async fn hash_entries(
    table: &Table,
    snapshot: Option<&Snapshot>,
) -> Result<Vec<IndexManifestEntry>> {
    Ok(crate::index::index_entries(table, snapshot)
        .await?
        .into_iter()
        .filter(|e| e.index_file.index_type == HASH_INDEX)
        .collect())
}

impl DynamicBucketAssigner {
    pub async fn new(table: &Table, base: Option<&Snapshot>) -> Result<Self> {
        Ok(DynamicBucketAssigner {
            target: table.layout.options.dynamic_bucket_target_row_num.max(1),
            base_entries: hash_entries(table, base).await?,
            partitions: HashMap::new(),
        })
    }

    async fn load(&mut self, table: &Table, partition: &[u8]) -> Result<()> {
        if self.partitions.contains_key(partition) {
            return Ok(());
        }
        let mut index = PartitionIndex::default();
        for e in self
            .base_entries
            .iter()
            .filter(|e| e.partition == partition)
        {
            let path = table.paths().index(&e.index_file.file_name);
            let bytes = table.store.get(&path).await?;
            if bytes.len() % 4 != 0 {
                return Err(EngineError::Corrupt {
                    path,
                    message: "a HASH index must hold whole 4-byte hashes".into(),
                });
            }
            for chunk in bytes.chunks_exact(4) {
                let h = i32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                index.hash_to_bucket.insert(h, e.bucket);
            }
            *index.counts.entry(e.bucket).or_default() += (bytes.len() / 4) as u64;
            index.loaded_from.push(e.index_file.file_name.clone());
        }
        self.partitions.insert(partition.to_vec(), index);
        Ok(())
    }

    /// The bucket of each key hash, assigning new keys.
    pub async fn assign(
        &mut self,
        table: &Table,
        partition: &[u8],
        hashes: &[i32],
    ) -> Result<Vec<i32>> {
        self.load(table, partition).await?;
        let target = self.target;
        let index = self
            .partitions
            .get_mut(partition)
            .ok_or_else(|| EngineError::internal("partition index missing"))?;
        let mut out = Vec::with_capacity(hashes.len());
        for &h in hashes {
            if let Some(b) = index.hash_to_bucket.get(&h) {
                out.push(*b);
                continue;
            }
            let bucket = match index
                .counts
                .iter()
                .find(|(_, c)| **c < target)
                .map(|(b, _)| *b)
            {
                Some(b) => b,
                None => (0..).find(|b| !index.counts.contains_key(b)).unwrap_or(0),
            };
            *index.counts.entry(bucket).or_default() += 1;
            index.hash_to_bucket.insert(h, bucket);
            index.modified.insert(bucket);
            out.push(bucket);
        }
        Ok(out)
    }

    /// Writes one full HASH index file per modified bucket and returns the
    /// index manifest entries that replace the old ones.
    pub async fn write_index_files(&self, table: &Table) -> Result<Vec<IndexManifestEntry>> {
        let mut out = Vec::new();
        for (partition, index) in &self.partitions {
            for &bucket in &index.modified {
                let mut hashes: Vec<i32> = index
                    .hash_to_bucket
                    .iter()
                    .filter(|(_, b)| **b == bucket)
                    .map(|(h, _)| *h)
                    .collect();
                hashes.sort_unstable();
                let payload: Vec<u8> = hashes.iter().flat_map(|h| h.to_be_bytes()).collect();
                let name = format!("index-{}-0", uuid::Uuid::new_v4());
                let size = payload.len() as i64;
                table
                    .store
                    .put(&table.paths().index(&name), Bytes::from(payload))
                    .await?;
                out.push(IndexManifestEntry {
                    kind: FileKind::Add,
                    partition: partition.clone(),
                    bucket,
                    index_file: IndexFileMeta {
                        index_type: HASH_INDEX.to_string(),
                        file_name: name,
                        file_size: size,
                        row_count: hashes.len() as i64,
                        ..IndexFileMeta::default()
                    },
                });
            }
        }
        Ok(out)
    }

    /// Index files each modified partition was loaded from.
    pub fn loaded_files(&self) -> HashMap<Vec<u8>, Vec<String>> {
        self.partitions
            .iter()
            .filter(|(_, i)| !i.modified.is_empty())
            .map(|(p, i)| (p.clone(), i.loaded_from.clone()))
            .collect()
    }
}
