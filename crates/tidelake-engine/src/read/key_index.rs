//! In-memory key indexes of data files, for primary-key lookups: for each
//! row of a file, a 32-bit hash of its key and its position, sorted by
//! hash (8 bytes a row). Built the first time a lookup meets the file (by
//! reading its key columns once) and kept in the catalog's bounded cache,
//! like Paimon's lookup files. A lookup then skips every file whose index
//! lacks the key's hash without opening it, and reads only the rows at the
//! indexed positions of the others (the pages holding them).
//!
//! Why this is exact: equal keys have equal hashes (both sides hash the
//! key values conformed to the current schema's types, encoded by the
//! Arrow row format), so a file holding the key is never skipped; a hash
//! collision only reads a row more, which the key filter then drops. Data
//! files are immutable and never renamed, so an index never goes stale;
//! the cache key carries the reading schema's id, since a key column's type
//! (and so its encoding) may change with the schema.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tidelake_format::manifest::DataFileMeta;

use super::deletion::BucketVectors;
use super::file::{read_data_file, ReadColumn};
use super::key::KeyHasher;
use crate::cache::FileKeyIndex;
use crate::error::{EngineError, Result};
use crate::table::Table;

/// Rows read per batch while building an index.
const BUILD_BATCH: usize = 8192;

/// Files indexed at once when a lookup meets several unindexed files
/// (their reads overlap; decoding stays on the lookup's task).
const BUILD_CONCURRENCY: usize = 4;

/// Where a bucket's files are and which rows of them are deleted.
pub(crate) struct BucketFiles<'a> {
    pub partition_path: &'a str,
    pub bucket: i32,
    pub deletion_vectors: Option<&'a BucketVectors>,
}

/// The rows of each of `files` (of `split`) that may hold the key whose
/// hash is `hash`, as positions in the file: files absent from the answer
/// hold no row of the key. Positions marked deleted by the split's deletion
/// vectors are left out. Indexes are built (and cached) for files that
/// have none yet. `None` when the table's cache keeps no key indexes.
pub(crate) async fn key_rows(
    table: &Table,
    split: &BucketFiles<'_>,
    files: &[DataFileMeta],
    key_columns: &[ReadColumn],
    hasher: &KeyHasher,
    hash: u32,
) -> Result<Option<HashMap<String, Vec<u64>>>> {
    if !table.cache.key_indexes_enabled() {
        return Ok(None);
    }
    let indexes: Vec<(String, Arc<FileKeyIndex>)> =
        futures::stream::iter(files.iter().cloned().map(|f| async move {
            let index = file_index(table, split, &f, key_columns, hasher).await?;
            Ok::<_, EngineError>((f.file_name, index))
        }))
        .buffered(BUILD_CONCURRENCY)
        .try_collect()
        .await?;
    let mut found = HashMap::new();
    for (name, index) in indexes {
        let mut rows = index.rows_of(hash);
        if let Some(deleted) = split.deletion_vectors.and_then(|v| v.get(&name).cloned()) {
            rows.retain(|p| !deleted.is_deleted(*p));
        }
        if !rows.is_empty() {
            found.insert(name, rows);
        }
    }
    Ok(Some(found))
}

/// The key index of one file of `split`: from the cache, or built by
/// reading the file's key columns and cached.
async fn file_index(
    table: &Table,
    split: &BucketFiles<'_>,
    file: &DataFileMeta,
    columns: &[ReadColumn],
    hasher: &KeyHasher,
) -> Result<Arc<FileKeyIndex>> {
    let path = table
        .paths()
        .data_file(split.partition_path, split.bucket, &file.file_name);
    let cache_key = format!("{}#{}", table.layout.schema.id, path);
    if let Some(index) = table.cache.key_index(&cache_key) {
        return Ok(index);
    }
    let batches: Vec<_> = read_data_file(table, &path, file, columns, BUILD_BATCH)
        .await?
        .try_collect()
        .await?;
    let mut pairs: Vec<(u32, u32)> =
        Vec::with_capacity(usize::try_from(file.row_count).unwrap_or(0));
    let mut at: u64 = 0;
    for batch in &batches {
        for h in hasher.hashes(batch.columns())? {
            let position = u32::try_from(at).map_err(|_| {
                EngineError::internal(format!("'{path}' has too many rows to index"))
            })?;
            pairs.push((h, position));
            at += 1;
        }
    }
    pairs.sort_unstable();
    let index = Arc::new(FileKeyIndex::from_sorted(pairs));
    table.cache.put_key_index(&cache_key, index.clone());
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::DataType;

    #[test]
    fn equal_keys_hash_alike_and_rows_are_found() {
        let hasher = KeyHasher::new(vec![DataType::Int64, DataType::Utf8]).unwrap();
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![5, 7, 5, 9]));
        let names: ArrayRef = Arc::new(StringArray::from(vec!["a", "a", "a", "b"]));
        let hashes = hasher.hashes(&[ids, names]).unwrap();
        assert_eq!(hashes[0], hashes[2]);
        assert_ne!(hashes[0], hashes[1]);
        // Another type of the same values is cast to the hasher's types.
        let ids32: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![5]));
        let one: ArrayRef = Arc::new(arrow_array::LargeStringArray::from(vec!["a"]));
        assert_eq!(hasher.hashes(&[ids32, one]).unwrap()[0], hashes[0]);

        let mut pairs: Vec<(u32, u32)> = hashes.iter().copied().zip(0..).collect();
        pairs.sort_unstable();
        let index = FileKeyIndex::from_sorted(pairs);
        assert_eq!(index.rows_of(hashes[0]), vec![0, 2]);
        assert_eq!(index.rows_of(hashes[3]), vec![3]);
        let absent = (0..u32::MAX).find(|h| !hashes.contains(h)).unwrap();
        assert!(index.rows_of(absent).is_empty());
    }
}
