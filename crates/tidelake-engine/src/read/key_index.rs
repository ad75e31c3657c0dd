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
//!
//! The rows themselves: a lookup that finds a key's hash in a file reads
//! the pages holding the row, in every column read, and decompresses and
//! decodes them whole. For a file that lookups keep meeting, that is paid
//! again and again, so once a file has been hit often enough (one hit per
//! 256 KiB of the file on storage) and is small enough (at most a sixteenth
//! of `CacheConfig::lookup_rows_bytes`), the file is decoded once, all its
//! columns (key, sequence, kind and every field, conformed to the reading
//! schema), and kept in the catalog's cache; lookups then take their rows
//! from it by position and read no page at all. This is what Paimon's
//! lookup files do on local disk, kept in memory. It is exact for the same
//! reasons the index is: files are immutable, and positions are the file's
//! own row numbers (the deletion vector already applied to them).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt64Array};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tidelake_format::manifest::DataFileMeta;

use super::deletion::BucketVectors;
use super::file::{
    key_columns, key_positions, output_schema, read_data_file, read_indexed_rows, ReadColumn,
};
use super::key::{KeyFilter, KeyHasher};
use crate::cache::FileKeyIndex;
use crate::error::{EngineError, Result};
use crate::table::Table;

/// Rows read per batch while building an index.
const BUILD_BATCH: usize = 8192;

/// Files indexed at once when a lookup meets several unindexed files
/// (their reads overlap; decoding stays on the lookup's task).
const BUILD_CONCURRENCY: usize = 4;

/// A file's rows are decoded whole into the cache once lookups have found
/// rows in it this many bytes (on storage) of it per hit: a small file at
/// its first hit, a 4 MiB file at its sixteenth.
const DECODE_BYTES_PER_HIT: u64 = 256 * 1024;

/// The rows of one file that may hold a lookup's key.
#[derive(Debug)]
pub(crate) struct KeyHits {
    /// Row positions in the file (ascending), deleted rows left out.
    pub positions: Vec<u64>,
    /// Lookups that found rows in the file so far, this one included.
    pub hits: u32,
}

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
    files: &[(&DataFileMeta, &str)],
    key_columns: &[ReadColumn],
    hasher: &KeyHasher,
    hash: u32,
) -> Result<Option<HashMap<String, KeyHits>>> {
    if !table.cache.key_indexes_enabled() {
        return Ok(None);
    }
    let mut indexes: Vec<Arc<FileKeyIndex>> = Vec::with_capacity(files.len());
    for chunk in files.chunks(BUILD_CONCURRENCY) {
        let built = chunk
            .iter()
            .map(|(f, cached_as)| file_index(table, split, f, cached_as, key_columns, hasher));
        indexes.extend(futures::future::try_join_all(built).await?);
    }
    let mut found = HashMap::new();
    for ((file, _), index) in files.iter().zip(indexes) {
        let name = file.file_name.as_str();
        let mut rows = index.rows_of(hash);
        if let Some(deleted) = split.deletion_vectors.and_then(|v| v.get(name).cloned()) {
            rows.retain(|p| !deleted.is_deleted(*p));
        }
        if !rows.is_empty() {
            let hits = index.hit();
            found.insert(
                name.to_string(),
                KeyHits {
                    positions: rows,
                    hits,
                },
            );
        }
    }
    Ok(Some(found))
}

/// The key index of one file of `split` (cached as `cached_as`, its
/// [`cache_key`]): from the cache, or built by reading the file's key
/// columns and cached.
async fn file_index(
    table: &Table,
    split: &BucketFiles<'_>,
    file: &DataFileMeta,
    cached_as: &str,
    columns: &[ReadColumn],
    hasher: &KeyHasher,
) -> Result<Arc<FileKeyIndex>> {
    if let Some(index) = table.cache.key_index(cached_as) {
        return Ok(index);
    }
    let path = table
        .paths()
        .data_file(split.partition_path, split.bucket, &file.file_name);
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
    table.cache.put_key_index(cached_as, index.clone());
    Ok(index)
}

/// The rows at `hits` of one file that hold `key`, as `columns` (which
/// must hold the key columns): taken from the file's decoded rows when they
/// are cached or now worth decoding, else read from the pages holding them.
pub(crate) async fn indexed_rows(
    table: &Table,
    path: &str,
    file: &DataFileMeta,
    columns: &[ReadColumn],
    key: &Arc<KeyFilter>,
    hits: Option<&KeyHits>,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    let Some(hits) = hits.filter(|h| !h.positions.is_empty()) else {
        return Ok(futures::stream::empty().boxed());
    };
    let (Some(at), Some(key_at)) = (
        decoded_positions(table, columns),
        key_positions(key, columns),
    ) else {
        return read_indexed_rows(table, path, file, columns, key, &hits.positions).await;
    };
    let cached_as = cache_key(table, path);
    let rows = match table.cache.lookup_rows(&cached_as) {
        Some(rows) => {
            crate::counters::lookup_rows(true);
            rows
        }
        None if worth_decoding(table, file, hits.hits) => {
            crate::counters::lookup_rows(false);
            let rows = decode_file(table, path, file).await?;
            table.cache.put_lookup_rows(&cached_as, rows.clone());
            rows
        }
        None => return read_indexed_rows(table, path, file, columns, key, &hits.positions).await,
    };
    if let Some(bad) = hits
        .positions
        .iter()
        .find(|p| **p >= rows.num_rows() as u64)
    {
        return Err(EngineError::Corrupt {
            path: path.to_string(),
            message: format!(
                "row {bad} asked for, but the file has {} rows",
                rows.num_rows()
            ),
        });
    }
    let taken = arrow_select::take::take_record_batch(
        &rows.project(&at)?,
        &UInt64Array::from(hits.positions.clone()),
    )?;
    let taken = RecordBatch::try_new(output_schema(columns), taken.columns().to_vec())?;
    // A hash collision may have selected another key's row: filter.
    let found = key.filter(taken, &key_at)?;
    Ok(futures::stream::once(async move { Ok(found) }).boxed())
}

/// A data file's key in the caches of its key index and decoded rows: the
/// reading schema's id (types decide hashes and decoded columns) and path.
pub(crate) fn cache_key(table: &Table, path: &str) -> String {
    format!("{}#{}", table.layout.schema.id, path)
}

fn worth_decoding(table: &Table, file: &DataFileMeta, hits: u32) -> bool {
    let size = u64::try_from(file.file_size).unwrap_or(u64::MAX);
    size <= table.cache.lookup_rows_file_limit()
        && u64::from(hits).saturating_mul(DECODE_BYTES_PER_HIT) >= size
}

/// What a file's rows are decoded as: the key columns, sequence, kind and
/// every field of the reading schema.
fn decoded_columns(table: &Table) -> Vec<ReadColumn> {
    let mut columns = key_columns(table);
    columns.push(ReadColumn::Sequence);
    columns.push(ReadColumn::ValueKind);
    columns.extend(
        table
            .layout
            .schema
            .fields
            .iter()
            .map(|f| ReadColumn::Value(f.clone())),
    );
    columns
}

/// Where each of `columns` is among [`decoded_columns`]; `None` when one
/// is not (a field of another schema).
fn decoded_positions(table: &Table, columns: &[ReadColumn]) -> Option<Vec<usize>> {
    let layout = &table.layout;
    let nk = layout.key_indices.len();
    let field_at = |id: i32| layout.schema.fields.iter().position(|f| f.id == id);
    columns
        .iter()
        .map(|c| match c {
            ReadColumn::Key(f) => layout
                .key_indices
                .iter()
                .position(|&i| layout.schema.fields[i].id == f.id),
            ReadColumn::Sequence => Some(nk),
            ReadColumn::ValueKind => Some(nk + 1),
            ReadColumn::Value(f) => field_at(f.id).map(|i| nk + 2 + i),
        })
        .collect()
}

/// Every row of `file`, as [`decoded_columns`], in one batch.
async fn decode_file(table: &Table, path: &str, file: &DataFileMeta) -> Result<Arc<RecordBatch>> {
    let columns = decoded_columns(table);
    let batches: Vec<_> = read_data_file(table, path, file, &columns, BUILD_BATCH)
        .await?
        .try_collect()
        .await?;
    let batch = arrow_select::concat::concat_batches(&output_schema(&columns), &batches)?;
    Ok(Arc::new(batch))
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
