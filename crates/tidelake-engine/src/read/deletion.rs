//! Deletion vectors on the read path (`deletion-vectors.enabled`).
//!
//! A scan of such a table loads, for every bucket it reads, the vectors of
//! the bucket's data files from the index of the snapshot it reads (so time
//! travel sees the vectors of its own snapshot, not the latest ones). A
//! batch read then skips level-0 files and reads every other file as it is,
//! without merging, leaving out the rows its vector marks: compaction keeps
//! exactly one live row per key among the levels ≥ 1 (see
//! `crate::compact::lookup`).
//!
//! Positions in a vector are row numbers within the data file, counted from
//! its first row. Readers count the rows of each batch as the file yields
//! them, which holds because data files are read whole (no row group or page
//! is pruned); a reader that selects rows maps them back itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tidelake_format::deletion_vector::{decode_vector, DeletionVector};
use tidelake_format::manifest::IndexFileMeta;
use tidelake_format::snapshot::Snapshot;

use crate::cache::DeletionFile;
use crate::error::{EngineError, Result};
use crate::table::Table;

/// Partition (BinaryRow bytes) and bucket.
type BucketId = (Vec<u8>, i32);

/// Index files read at once while planning.
const CONCURRENT_INDEX_READS: usize = 8;

/// The deletion vectors of one bucket as of one snapshot.
#[derive(Clone, Debug, Default)]
pub struct BucketVectors {
    /// The bucket's `DELETION_VECTORS` index files (usually one): a
    /// compaction that replaces the vectors conflicts if these changed.
    index_files: Vec<String>,
    /// Data file name -> its deleted rows (files without deletions absent).
    vectors: HashMap<String, Arc<DeletionVector>>,
}

impl BucketVectors {
    /// Vectors of the given files, as read from `index_files`.
    #[cfg(test)]
    pub(crate) fn new(
        index_files: Vec<String>,
        vectors: impl IntoIterator<Item = (String, DeletionVector)>,
    ) -> BucketVectors {
        BucketVectors {
            index_files,
            vectors: vectors
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, v)| (name, Arc::new(v)))
                .collect(),
        }
    }

    /// Like [`BucketVectors::new`], with vectors shared with the cache.
    fn shared(
        index_files: Vec<String>,
        vectors: HashMap<String, Arc<DeletionVector>>,
    ) -> BucketVectors {
        let vectors = vectors.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        BucketVectors {
            index_files,
            vectors,
        }
    }

    /// The index files the vectors were read from.
    pub fn index_files(&self) -> &[String] {
        &self.index_files
    }

    /// The vector of a data file, if any of its rows is deleted.
    pub fn get(&self, data_file: &str) -> Option<&Arc<DeletionVector>> {
        self.vectors.get(data_file)
    }

    /// Rows of `data_file` marked deleted.
    pub fn deleted_rows(&self, data_file: &str) -> u64 {
        self.get(data_file).map_or(0, |v| v.cardinality())
    }

    /// Every (data file, vector), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<DeletionVector>)> {
        self.vectors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether no row of the bucket is deleted.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }
}

/// Loads the vectors of the given buckets (each with the names of its live
/// files) from `snapshot`'s index. Every listed bucket gets an entry, empty
/// when it has no vectors; vectors of files not listed are not decoded.
pub(crate) async fn load_bucket_vectors(
    table: &Table,
    snapshot: &Snapshot,
    buckets: &HashMap<BucketId, HashSet<String>>,
) -> Result<HashMap<BucketId, BucketVectors>> {
    let mut by_bucket: HashMap<BucketId, Vec<IndexFileMeta>> = HashMap::new();
    for e in crate::index::index_entries(table, Some(snapshot)).await? {
        if e.index_file.index_type != IndexFileMeta::DELETION_VECTORS {
            continue;
        }
        let id = (e.partition, e.bucket);
        if buckets.contains_key(&id) {
            by_bucket.entry(id).or_default().push(e.index_file);
        }
    }
    // Owned futures: a stream of futures borrowing from here is not `Send`
    // for every lifetime, which spawned writers need.
    let mut reads = Vec::with_capacity(by_bucket.len());
    for (id, files) in by_bucket {
        let live = buckets.get(&id).cloned().unwrap_or_default();
        let table = table.clone();
        reads.push(async move {
            let vectors = read_index_files(&table, &files, &live).await?;
            Ok::<_, EngineError>((id, vectors))
        });
    }
    let mut loaded: HashMap<BucketId, BucketVectors> = futures::stream::iter(reads)
        .buffer_unordered(CONCURRENT_INDEX_READS)
        .try_collect()
        .await?;
    for id in buckets.keys() {
        loaded.entry(id.clone()).or_default();
    }
    Ok(loaded)
}

/// Decodes the vectors of `live` files from a bucket's index files.
async fn read_index_files(
    table: &Table,
    files: &[IndexFileMeta],
    live: &HashSet<String>,
) -> Result<BucketVectors> {
    let mut vectors: HashMap<String, Arc<DeletionVector>> = HashMap::new();
    for file in files {
        if file.external_path.is_some() {
            return Err(EngineError::Unsupported(format!(
                "deletion-vector index file {} is stored at an external path",
                file.file_name
            )));
        }
        let ranges = file.deletion_vector_ranges.as_deref().unwrap_or_default();
        if !ranges.iter().any(|r| live.contains(&r.data_file_name)) {
            continue;
        }
        let decoded = decoded_index_file(table, file).await?;
        for (name, dv) in decoded.iter().filter(|(name, _)| live.contains(*name)) {
            match vectors.get_mut(name) {
                // Two index files naming one data file: both deletions hold.
                Some(existing) => Arc::make_mut(existing).merge(dv),
                None => {
                    vectors.insert(name.clone(), dv.clone());
                }
            }
        }
    }
    Ok(BucketVectors::shared(
        files.iter().map(|f| f.file_name.clone()).collect(),
        vectors,
    ))
}

/// Every vector of one index file, decoded once per catalog (index files
/// are written once under a unique name).
async fn decoded_index_file(table: &Table, file: &IndexFileMeta) -> Result<Arc<DeletionFile>> {
    let path = table.paths().index(&file.file_name);
    if let Some(found) = table.cache.deletion_file(&path) {
        return Ok(found);
    }
    let bytes = table.store.get(&path).await?;
    let mut decoded = DeletionFile::new();
    for range in file.deletion_vector_ranges.as_deref().unwrap_or_default() {
        let dv = decode_vector(&bytes, range).map_err(|e| EngineError::format(&path, e))?;
        decoded.insert(range.data_file_name.clone(), Arc::new(dv));
    }
    let decoded = Arc::new(decoded);
    table.cache.put_deletion_file(&path, decoded.clone());
    Ok(decoded)
}

/// Leaves out of `batch`, which holds the file rows `[start, start + n)`,
/// the rows `dv` marks deleted. Zero-column batches keep their row count.
pub(crate) fn drop_deleted(
    batch: RecordBatch,
    start: u64,
    dv: &DeletionVector,
) -> Result<RecordBatch> {
    match dv.keep_mask(start, batch.num_rows()) {
        None => Ok(batch),
        Some(keep) => Ok(arrow_select::filter::filter_record_batch(&batch, &keep)?),
    }
}

/// The batches of one whole data file (in file order) without the rows its
/// vector marks deleted.
pub(crate) fn without_deleted(
    batches: BoxStream<'static, Result<RecordBatch>>,
    dv: Option<Arc<DeletionVector>>,
) -> BoxStream<'static, Result<RecordBatch>> {
    let Some(dv) = dv else {
        return batches;
    };
    let mut next_position = 0u64;
    batches
        .map(move |batch| {
            let batch = batch?;
            let start = next_position;
            next_position += batch.num_rows() as u64;
            drop_deleted(batch, start, &dv)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, RecordBatchOptions};
    use arrow_schema::{DataType, Field, Schema};

    fn numbered(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let values = Int64Array::from_iter_values(from..from + n);
        RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap()
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                c.values().to_vec()
            })
            .collect()
    }

    /// The file's rows in batches of the given sizes, read through a vector.
    async fn read_through(sizes: &[i64], deleted: &[u64]) -> Vec<RecordBatch> {
        let mut batches = Vec::new();
        let mut next = 0;
        for n in sizes {
            batches.push(Ok(numbered(next, *n)));
            next += n;
        }
        let dv = DeletionVector::from_positions(deleted.iter().copied()).unwrap();
        without_deleted(futures::stream::iter(batches).boxed(), Some(Arc::new(dv)))
            .try_collect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn positions_run_on_across_batches() {
        // Row i holds value i, so the values left are the live positions.
        let deleted = [0, 4, 5, 6, 9, 10, 17, 19];
        let got = read_through(&[5, 1, 6, 0, 8], &deleted).await;
        let expected: Vec<i64> = (0..20)
            .filter(|i| !deleted.contains(&(*i as u64)))
            .collect();
        assert_eq!(values(&got), expected);
        assert_eq!(got.len(), 5, "every batch passes, possibly emptied");
        assert_eq!(got[1].num_rows(), 0, "batch [5, 6) was deleted whole");
    }

    #[tokio::test]
    async fn batches_without_deletions_pass_untouched() {
        let got = read_through(&[3, 3], &[100]).await;
        assert_eq!(values(&got), vec![0, 1, 2, 3, 4, 5]);
        let none = without_deleted(
            futures::stream::iter(vec![Ok(numbered(0, 2))]).boxed(),
            None,
        );
        let got: Vec<RecordBatch> = none.try_collect().await.unwrap();
        assert_eq!(values(&got), vec![0, 1]);
    }

    #[test]
    fn zero_column_batches_keep_the_live_row_count() {
        // COUNT(*) reads no column: only the row count must shrink.
        let empty = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(10)),
        )
        .unwrap();
        let dv = DeletionVector::from_positions([12, 13, 19, 25]).unwrap();
        let kept = drop_deleted(empty, 10, &dv).unwrap();
        assert_eq!(kept.num_rows(), 7);
        assert_eq!(kept.num_columns(), 0);
    }

    #[test]
    fn vectors_without_deletions_are_not_kept() {
        let v = BucketVectors::new(
            vec!["index-1".into()],
            [
                ("a".to_string(), DeletionVector::new()),
                (
                    "b".to_string(),
                    DeletionVector::from_positions([3]).unwrap(),
                ),
            ],
        );
        assert!(v.get("a").is_none());
        assert_eq!(v.deleted_rows("b"), 1);
        assert_eq!(v.index_files(), ["index-1".to_string()]);
        assert!(!v.is_empty());
    }
}
