//! Planning a primary-key lookup without planning a scan each time.
//!
//! A lookup reads one bucket of one partition: the bucket the key hashes
//! to. What it needs of that bucket besides the key (its files, their key
//! statistics decoded, its sections of sorted runs, its deletion vectors,
//! its partition path) is the same for every lookup of the same snapshot,
//! so it is prepared once ([`PlannedBucket`]) and kept in the catalog's
//! cache, keyed by the snapshot's manifest lists and index manifest (named
//! once, like every file the cache holds, so a cached bucket is never
//! stale). Each lookup then only judges the bucket's files against its key
//! (key statistics, key indexes) and copies the metadata of the few files
//! that may hold it.
//!
//! Exactness: the split a lookup reads is the one the scan planner would
//! give, less files that cannot hold the key, with the bucket's sections
//! and sorted runs decided over *all* its files (so a section merges
//! exactly when it merges in a full scan), then restricted to the files
//! read. Only buckets whose files all share the reading schema and one
//! bucket count are planned here; the others (a table rescaled, or files
//! of an older schema) go through the scan planner as before.

use std::collections::HashMap;
use std::sync::Arc;

use tidelake_format::binary_row::Datum;
use tidelake_format::bucket::bucket_of;
use tidelake_format::manifest::DataFileMeta;
use tidelake_format::snapshot::Snapshot;

use super::deletion::{load_bucket_vectors, BucketVectors};
use super::file::key_columns;
use super::key::KeyFilter;
use super::key_index::{key_rows, BucketFiles};
use super::predicate::Predicate;
use super::split::{PlannedKeyRead, Split};
use crate::cache::{file_weight, PartitionFiles};
use crate::error::Result;
use crate::lsm::section_indices;
use crate::stats::{decode_stats, ColumnStats};
use crate::table::Table;

/// One bucket of one snapshot as lookups read it (see the module doc).
struct PlannedBucket {
    partition: Vec<u8>,
    partition_values: Vec<Datum>,
    partition_path: String,
    bucket: i32,
    /// The files a read of the bucket opens (level 0 left out where reads
    /// skip it), in the snapshot's order.
    files: Vec<DataFileMeta>,
    /// Each file's key-column statistics, decoded; `None`: not usable.
    key_stats: Vec<Option<Vec<ColumnStats>>>,
    /// The key indexes' cache key of each file.
    index_keys: Vec<String>,
    /// `files` as sections of sorted runs (`lsm::section_indices`).
    sections: Vec<Vec<Vec<usize>>>,
    deletion_vectors: Option<Arc<BucketVectors>>,
}

/// How a lookup plan was made.
pub(crate) struct KeyPlanInput<'a> {
    pub snapshot: &'a Snapshot,
    pub key: &'a KeyFilter,
    /// Paimon's bucket hash of the key's bucket key.
    pub key_hash: i32,
    /// The key predicate restricted to the key columns.
    pub file_predicate: Option<&'a Predicate>,
    pub skip_level0: bool,
}

/// The splits of a lookup, and the live files of the partitions it judged;
/// `None` when some partition's files are not all of the reading schema
/// and one bucket count (the scan planner then plans the lookup).
pub(crate) async fn plan_key(
    table: &Table,
    partitions: &[PartitionFiles],
    keep_partition: &(dyn Fn(&[u8]) -> bool + Sync),
    input: &KeyPlanInput<'_>,
) -> Result<Option<(Vec<Split>, usize)>> {
    let mut chosen = Vec::new();
    let mut considered = 0;
    for part in partitions.iter().filter(|p| keep_partition(&p.partition)) {
        let Some(bucket) = uniform_bucket(table, part, input.key_hash) else {
            return Ok(None);
        };
        considered += part.entries.len();
        chosen.push((part, bucket));
    }
    let mut splits = Vec::with_capacity(chosen.len());
    for (part, bucket) in chosen {
        let planned = planned_bucket(table, input, part, bucket).await?;
        if let Some(split) = key_split(table, &planned, input).await? {
            splits.push(split);
        }
    }
    Ok(Some((splits, considered)))
}

/// The bucket `key_hash` goes to in `part`, when every file of the
/// partition is of the reading schema and of one bucket count.
fn uniform_bucket(table: &Table, part: &PartitionFiles, key_hash: i32) -> Option<i32> {
    let schema = table.layout.schema.id;
    let first = part.entries.first()?;
    let total = first.total_buckets;
    let uniform = part
        .entries
        .iter()
        .all(|e| e.file.schema_id == schema && e.total_buckets == total);
    let buckets = if total > 0 {
        total
    } else {
        table.layout.options.bucket
    };
    (uniform && buckets > 0).then(|| bucket_of(key_hash, buckets))
}

/// The bucket from the cache, or prepared from the partition's files and
/// cached.
async fn planned_bucket(
    table: &Table,
    input: &KeyPlanInput<'_>,
    part: &PartitionFiles,
    bucket: i32,
) -> Result<Arc<PlannedBucket>> {
    let snapshot = input.snapshot;
    let cached_as = format!(
        "lookup-bucket|{}|{}|{}|{}|{}|{}|{}",
        snapshot.base_manifest_list,
        snapshot.delta_manifest_list,
        snapshot.index_manifest.as_deref().unwrap_or(""),
        table.layout.schema.id,
        input.skip_level0,
        hex(&part.partition),
        bucket
    );
    if let Some(found) = table.cache.derived::<PlannedBucket>(&cached_as) {
        return Ok(found);
    }
    let layout = &table.layout;
    let files: Vec<DataFileMeta> = part
        .entries
        .iter()
        .filter(|e| e.bucket == bucket && (!input.skip_level0 || e.file.level > 0))
        .map(|e| e.file.clone())
        .collect();
    let (partition_values, partition_path) =
        layout.partition_location(&part.partition, format_args!("bucket {bucket}"))?;
    let deletion_vectors = if layout.options.deletion_vectors_enabled && layout.is_primary_key() {
        let id = (part.partition.clone(), bucket);
        let names = files.iter().map(|f| f.file_name.clone()).collect();
        let mut loaded =
            load_bucket_vectors(table, snapshot, &HashMap::from([(id.clone(), names)])).await?;
        loaded.remove(&id).map(Arc::new)
    } else {
        None
    };
    let key_stats = files
        .iter()
        .map(|f| decode_stats(&f.key_stats, &layout.key_types))
        .collect();
    let index_keys = files
        .iter()
        .map(|f| {
            let path = table
                .paths()
                .data_file(&partition_path, bucket, &f.file_name);
            super::key_index::cache_key(table, &path)
        })
        .collect();
    let sections = section_indices(&files, &layout.key_types);
    let weight = files
        .iter()
        .map(|f| file_weight(f) * 2 + 512)
        .sum::<usize>();
    let planned = Arc::new(PlannedBucket {
        partition: part.partition.clone(),
        partition_values,
        partition_path,
        bucket,
        files,
        key_stats,
        index_keys,
        sections,
        deletion_vectors,
    });
    table.cache.put_derived(&cached_as, planned.clone(), weight);
    Ok(planned)
}

/// The split of `planned` a lookup of `input.key` reads: the files its key
/// statistics and key indexes leave, or `None` when none is left.
async fn key_split(
    table: &Table,
    planned: &PlannedBucket,
    input: &KeyPlanInput<'_>,
) -> Result<Option<Split>> {
    let keys = table.layout.schema.trimmed_primary_keys();
    let candidates: Vec<usize> = (0..planned.files.len())
        .filter(|&i| match (input.file_predicate, &planned.key_stats[i]) {
            (Some(pred), Some(stats)) => pred.may_match(
                &|c: &str| keys.iter().position(|k| k == c).map(|j| stats[j].clone()),
                planned.files[i].row_count,
            ),
            _ => true,
        })
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let hashed = input
        .key
        .hashed()
        .filter(|_| table.cache.key_indexes_enabled());
    let rows = match hashed {
        Some((hasher, hash)) => {
            let files: Vec<(&DataFileMeta, &str)> = candidates
                .iter()
                .map(|&i| (&planned.files[i], planned.index_keys[i].as_str()))
                .collect();
            let bucket = BucketFiles {
                partition_path: &planned.partition_path,
                bucket: planned.bucket,
                deletion_vectors: planned.deletion_vectors.as_deref(),
            };
            let columns = key_columns(table);
            let rows = key_rows(table, &bucket, &files, &columns, hasher, hash).await?;
            if let Some(r) = &rows {
                crate::counters::lookup_files_skipped(files.len() - r.len());
            }
            rows
        }
        None => None,
    };
    let read: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| {
            rows.as_ref()
                .is_none_or(|r| r.contains_key(&planned.files[i].file_name))
        })
        .collect();
    if read.is_empty() {
        return Ok(None);
    }
    let sections = restricted_sections(&planned.sections, &read, planned.files.len());
    Ok(Some(Split {
        partition: planned.partition.clone(),
        partition_values: planned.partition_values.clone(),
        partition_path: planned.partition_path.clone(),
        bucket: planned.bucket,
        files: read.iter().map(|&i| planned.files[i].clone()).collect(),
        deletion_vectors: planned.deletion_vectors.clone(),
        skip_level0: input.skip_level0,
        lookup: Some(Arc::new(PlannedKeyRead {
            key_rows: rows.map(Arc::new),
            sections,
        })),
    }))
}

/// `sections` (of a bucket's `nfiles` files) restricted to the files of
/// `read` (ascending), renumbered as positions in `read`; sections left
/// without a file are dropped, and each keeps whether it was one run.
fn restricted_sections(
    sections: &[Vec<Vec<usize>>],
    read: &[usize],
    nfiles: usize,
) -> Vec<(bool, Vec<Vec<usize>>)> {
    let mut at = vec![None; nfiles];
    for (j, &i) in read.iter().enumerate() {
        at[i] = Some(j);
    }
    sections
        .iter()
        .filter_map(|section| {
            let runs: Vec<Vec<usize>> = section
                .iter()
                .map(|run| run.iter().filter_map(|&i| at[i]).collect::<Vec<_>>())
                .filter(|run| !run.is_empty())
                .collect();
            (!runs.is_empty()).then_some((section.len() == 1, runs))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keep_their_runs_and_whether_they_merge() {
        // Files 0..5: section A = runs [0, 1] and [2]; section B = [3]; C = [4].
        let sections = vec![vec![vec![0, 1], vec![2]], vec![vec![3]], vec![vec![4]]];
        // Reading files 1 and 4: A keeps one run of its two and still merges.
        assert_eq!(
            restricted_sections(&sections, &[1, 4], 5),
            vec![(false, vec![vec![0]]), (true, vec![vec![1]])]
        );
        assert_eq!(
            restricted_sections(&sections, &[0, 2, 3], 5),
            vec![(false, vec![vec![0], vec![1]]), (true, vec![vec![2]])]
        );
        assert!(restricted_sections(&sections, &[], 5).is_empty());
    }
}
