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
use std::hash::Hasher;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use futures::{StreamExt, TryStreamExt};
use tidelake_format::manifest::DataFileMeta;

use super::file::{read_data_file, ReadColumn};
use super::scan::{key_columns, Split};
use crate::error::{EngineError, Result};
use crate::table::Table;

/// Rows read per batch while building an index.
const BUILD_BATCH: usize = 8192;

/// Files indexed at once when a lookup meets several unindexed files
/// (their reads overlap; decoding stays on the lookup's task).
const BUILD_CONCURRENCY: usize = 4;

/// The key index of one data file (see the module doc).
#[derive(Debug)]
pub(crate) struct FileKeyIndex {
    /// Key hashes, ascending.
    hashes: Vec<u32>,
    /// `positions[i]`: the row whose key hashes to `hashes[i]`.
    positions: Vec<u32>,
}

impl FileKeyIndex {
    /// The positions (ascending) of the rows whose key hashes to `hash`.
    pub(crate) fn rows_of(&self, hash: u32) -> Vec<u64> {
        let start = self.hashes.partition_point(|h| *h < hash);
        let end = start + self.hashes[start..].partition_point(|h| *h == hash);
        let mut rows: Vec<u64> = self.positions[start..end]
            .iter()
            .map(|p| u64::from(*p))
            .collect();
        rows.sort_unstable();
        rows
    }

    /// Estimated bytes held.
    pub(crate) fn weight(&self) -> usize {
        (self.hashes.capacity() + self.positions.capacity()) * 4 + 64
    }
}

/// Hashes of key rows: the key columns (in key order, of the types the
/// current schema gives them) encoded by the Arrow row format, so that a
/// looked-up key and a file's rows hash alike exactly when they are equal.
pub(crate) struct KeyHasher {
    converter: RowConverter,
    types: Vec<DataType>,
}

impl KeyHasher {
    /// A hasher for key columns of these types; `None` when the row format
    /// cannot encode one of them (lookups then read files without index).
    pub(crate) fn new(types: Vec<DataType>) -> Option<KeyHasher> {
        let fields: Vec<SortField> = types.iter().cloned().map(SortField::new).collect();
        if !RowConverter::supports_fields(&fields) {
            return None;
        }
        let converter = RowConverter::new(fields).ok()?;
        Some(KeyHasher { converter, types })
    }

    /// The hash of every row of `columns` (one array per key column).
    pub(crate) fn hashes(&self, columns: &[ArrayRef]) -> Result<Vec<u32>> {
        let mut cast = Vec::with_capacity(columns.len());
        for (c, t) in columns.iter().zip(&self.types) {
            cast.push(if c.data_type() == t {
                c.clone()
            } else {
                arrow::compute::cast(c, t)?
            });
        }
        let rows = self.converter.convert_columns(&cast)?;
        Ok(rows.iter().map(|r| hash_bytes(r.as_ref())).collect())
    }
}

/// A stable hash (the same for the same bytes, in every run).
fn hash_bytes(bytes: &[u8]) -> u32 {
    // SipHash with fixed keys: `DefaultHasher::new` is not randomized.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    let x = h.finish();
    (x ^ (x >> 32)) as u32
}

/// The rows of each of `files` (of `split`) that may hold the key whose
/// hash is `hash`, as positions in the file: files absent from the answer
/// hold no row of the key. Positions marked deleted by the split's deletion
/// vectors are left out. Indexes are built (and cached) for files that
/// have none yet. `None` when the table's cache keeps no key indexes.
pub(crate) async fn key_rows(
    table: &Table,
    split: &Split,
    files: &[DataFileMeta],
    hasher: &KeyHasher,
    hash: u32,
) -> Result<Option<HashMap<String, Vec<u64>>>> {
    if !table.cache.key_indexes_enabled() {
        return Ok(None);
    }
    let indexes: Vec<(String, Arc<FileKeyIndex>)> =
        futures::stream::iter(files.iter().cloned().map(|f| async move {
            let index = file_index(table, split, &f, hasher).await?;
            Ok::<_, EngineError>((f.file_name, index))
        }))
        .buffered(BUILD_CONCURRENCY)
        .try_collect()
        .await?;
    let mut found = HashMap::new();
    for (name, index) in indexes {
        let mut rows = index.rows_of(hash);
        if let Some(deleted) = split
            .deletion_vectors
            .as_ref()
            .and_then(|v| v.get(&name).cloned())
        {
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
    split: &Split,
    file: &DataFileMeta,
    hasher: &KeyHasher,
) -> Result<Arc<FileKeyIndex>> {
    let path = table
        .paths()
        .data_file(&split.partition_path, split.bucket, &file.file_name);
    let cache_key = format!("{}#{}", table.layout.schema.id, path);
    if let Some(index) = table.cache.key_index(&cache_key) {
        return Ok(index);
    }
    let columns: Vec<ReadColumn> = key_columns(table);
    let batches: Vec<_> = read_data_file(table, &path, file, &columns, BUILD_BATCH)
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
    let index = Arc::new(FileKeyIndex {
        hashes: pairs.iter().map(|p| p.0).collect(),
        positions: pairs.iter().map(|p| p.1).collect(),
    });
    table.cache.put_key_index(&cache_key, index.clone());
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};

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
        let index = FileKeyIndex {
            hashes: pairs.iter().map(|p| p.0).collect(),
            positions: pairs.iter().map(|p| p.1).collect(),
        };
        assert_eq!(index.rows_of(hashes[0]), vec![0, 2]);
        assert_eq!(index.rows_of(hashes[3]), vec![3]);
        let absent = (0..u32::MAX).find(|h| !hashes.contains(h)).unwrap();
        assert!(index.rows_of(absent).is_empty());
    }
}
