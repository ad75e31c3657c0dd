//! Pure LSM logic over a bucket's data files, with no I/O: key order,
//! sorted runs, the level invariant (each level ≥ 1 is one sorted run) and
//! sections of files whose key ranges do not overlap.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use tidelake_format::binary_row::{deserialize_binary_row, Datum};
use tidelake_format::manifest::{DataFileMeta, ManifestEntry};
use tidelake_format::types::DataType;

/// Partition and bucket of a table.
pub(crate) type BucketId = (Vec<u8>, i32);

/// One sorted run of a bucket: a level-0 file, or all files of a level ≥ 1
/// in key order.
#[derive(Clone, Debug)]
pub(crate) struct SortedRun {
    pub level: usize,
    pub files: Vec<DataFileMeta>,
}

impl SortedRun {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.file_size.max(0) as u64).sum()
    }
}

/// Decodes a serialized key (BinaryRow) of the table's key types.
pub(crate) fn decode_key(row: &[u8], key_types: &[DataType]) -> Option<Vec<Datum>> {
    deserialize_binary_row(row, key_types).ok()
}

/// Orders two decoded keys of the same types.
pub(crate) fn compare_keys(a: &[Datum], b: &[Datum]) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        match x.cmp_same_type(y)? {
            Ordering::Equal => continue,
            other => return Some(other),
        }
    }
    Some(Ordering::Equal)
}

/// Orders two serialized keys (BinaryRow) of the table's key types. To
/// compare one key many times, decode it once with [`decode_key`].
pub(crate) fn compare_key_rows(a: &[u8], b: &[u8], key_types: &[DataType]) -> Option<Ordering> {
    compare_keys(&decode_key(a, key_types)?, &decode_key(b, key_types)?)
}

/// Sorts `items` by the key `min_key` gives, decoding each key once; keys
/// that cannot be decoded or compared count as equal (the sort is stable).
pub(crate) fn sort_by_min_key<T>(
    items: &mut Vec<T>,
    key_types: &[DataType],
    min_key: impl Fn(&T) -> &[u8],
) {
    let mut decoded: Vec<(Option<Vec<Datum>>, T)> = items
        .drain(..)
        .map(|item| (decode_key(min_key(&item), key_types), item))
        .collect();
    decoded.sort_by(|(a, _), (b, _)| match (a, b) {
        (Some(a), Some(b)) => compare_keys(a, b).unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    });
    items.extend(decoded.into_iter().map(|(_, item)| item));
}

/// A bucket's sorted runs, newest first: level-0 files by descending
/// sequence numbers, then each non-empty level ≥ 1 with its files in key
/// order.
pub(crate) fn sorted_runs(files: &[DataFileMeta], key_types: &[DataType]) -> Vec<SortedRun> {
    let mut level0: Vec<&DataFileMeta> = files.iter().filter(|f| f.level <= 0).collect();
    level0.sort_by(|a, b| {
        b.max_sequence_number
            .cmp(&a.max_sequence_number)
            .then_with(|| b.min_sequence_number.cmp(&a.min_sequence_number))
            .then_with(|| a.file_name.cmp(&b.file_name))
    });
    let mut runs: Vec<SortedRun> = level0
        .into_iter()
        .map(|f| SortedRun {
            level: 0,
            files: vec![f.clone()],
        })
        .collect();
    let mut levels: Vec<usize> = files
        .iter()
        .filter(|f| f.level > 0)
        .map(|f| f.level as usize)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    for level in levels {
        let mut in_level: Vec<DataFileMeta> = files
            .iter()
            .filter(|f| f.level as usize == level && f.level > 0)
            .cloned()
            .collect();
        sort_by_min_key(&mut in_level, key_types, |f| &f.min_key);
        runs.push(SortedRun {
            level,
            files: in_level,
        });
    }
    runs
}

/// The number of sorted runs of each bucket among the live files of a
/// snapshot (each level-0 file, plus each non-empty level ≥ 1).
pub(crate) fn runs_per_bucket(live: &[ManifestEntry]) -> HashMap<BucketId, usize> {
    let mut levels: HashMap<BucketId, (usize, HashSet<i32>)> = HashMap::new();
    for e in live {
        let (level0, higher) = levels.entry((e.partition.clone(), e.bucket)).or_default();
        if e.file.level <= 0 {
            *level0 += 1;
        } else {
            higher.insert(e.file.level);
        }
    }
    levels
        .into_iter()
        .map(|(bucket, (level0, higher))| (bucket, level0 + higher.len()))
        .collect()
}

/// Checks that after a commit no two files of one level ≥ 1 of a bucket
/// overlap in keys (each such level must stay one sorted run). `files` are
/// the bucket's live files once the commit applies.
pub(crate) fn levels_overlap(files: &[&DataFileMeta], key_types: &[DataType]) -> Option<String> {
    let mut by_level: std::collections::BTreeMap<i32, Vec<&DataFileMeta>> = Default::default();
    for f in files.iter().filter(|f| f.level > 0) {
        by_level.entry(f.level).or_default().push(f);
    }
    for (level, mut in_level) in by_level {
        sort_by_min_key(&mut in_level, key_types, |f| &f.min_key);
        for pair in in_level.windows(2) {
            if compare_key_rows(&pair[0].max_key, &pair[1].min_key, key_types)
                != Some(Ordering::Less)
            {
                return Some(format!(
                    "files {} and {} of level {level} overlap in keys",
                    pair[0].file_name, pair[1].file_name
                ));
            }
        }
    }
    None
}

/// Groups a bucket's files into sections whose key ranges do not overlap,
/// each section a list of sorted runs (Paimon's interval partition). A
/// section of one run needs no merge. Files are given as their indexes in
/// `files`, so that a caller copies only those it reads.
pub(crate) fn section_indices(
    files: &[DataFileMeta],
    key_types: &[DataType],
) -> Vec<Vec<Vec<usize>>> {
    let decoded: Option<Vec<(Vec<Datum>, Vec<Datum>)>> = files
        .iter()
        .map(|f| {
            Some((
                decode_key(&f.min_key, key_types)?,
                decode_key(&f.max_key, key_types)?,
            ))
        })
        .collect();
    let Some(ranges) = decoded else {
        // Unreadable key ranges: merge everything, one run per file.
        return vec![(0..files.len()).map(|f| vec![f]).collect()];
    };
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| compare_keys(&ranges[a].0, &ranges[b].0).unwrap_or(Ordering::Equal));
    let mut out: Vec<Vec<Vec<usize>>> = Vec::new();
    let mut section: Vec<(Vec<Datum>, Vec<usize>)> = Vec::new(); // runs: (max key, files)
    let mut section_max: Option<Vec<Datum>> = None;
    for i in order {
        let (min, max) = &ranges[i];
        let starts_new = match &section_max {
            Some(m) => {
                compare_keys(min, m) != Some(Ordering::Less)
                    && compare_keys(min, m) != Some(Ordering::Equal)
            }
            None => true,
        };
        if starts_new && !section.is_empty() {
            out.push(section.drain(..).map(|(_, fs)| fs).collect());
            section_max = None;
        }
        match section
            .iter_mut()
            .find(|(run_max, _)| compare_keys(min, run_max) == Some(Ordering::Greater))
        {
            Some(run) => {
                run.0 = max.clone();
                run.1.push(i);
            }
            None => section.push((max.clone(), vec![i])),
        }
        if section_max
            .as_ref()
            .is_none_or(|m| compare_keys(max, m) == Some(Ordering::Greater))
        {
            section_max = Some(max.clone());
        }
    }
    if !section.is_empty() {
        out.push(section.into_iter().map(|(_, fs)| fs).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelake_format::binary_row::serialize_binary_row;
    use tidelake_format::types::DataTypeKind;

    fn key_types() -> Vec<DataType> {
        vec![DataType::new(DataTypeKind::BigInt, false)]
    }

    fn file(name: &str, level: i32, keys: (i64, i64), seqs: (i64, i64)) -> DataFileMeta {
        let types = key_types();
        let key = |k| serialize_binary_row(&[Datum::BigInt(k)], &types).unwrap();
        DataFileMeta {
            file_name: name.into(),
            file_size: 100,
            row_count: 1,
            min_key: key(keys.0),
            max_key: key(keys.1),
            key_stats: tidelake_format::manifest::SimpleStats::empty(),
            value_stats: tidelake_format::manifest::SimpleStats::empty(),
            min_sequence_number: seqs.0,
            max_sequence_number: seqs.1,
            schema_id: 0,
            level,
            extra_files: Vec::new(),
            creation_time: None,
            delete_row_count: Some(0),
            embedded_index: None,
            file_source: Some(0),
            value_stats_cols: None,
            external_path: None,
            first_row_id: None,
            write_cols: None,
        }
    }

    #[test]
    fn runs_are_newest_first_and_levels_in_key_order() {
        let files = vec![
            file("old0", 0, (0, 9), (0, 4)),
            file("l3b", 3, (50, 60), (0, 1)),
            file("new0", 0, (0, 9), (5, 9)),
            file("l3a", 3, (10, 20), (0, 1)),
            file("l1", 1, (0, 100), (2, 3)),
        ];
        let runs = sorted_runs(&files, &key_types());
        let shape: Vec<(usize, Vec<&str>)> = runs
            .iter()
            .map(|r| {
                (
                    r.level,
                    r.files.iter().map(|f| f.file_name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, vec!["new0"]),
                (0, vec!["old0"]),
                (1, vec!["l1"]),
                (3, vec!["l3a", "l3b"]),
            ]
        );
    }

    #[test]
    fn overlapping_files_in_a_level_are_reported() {
        let a = file("a", 2, (0, 10), (0, 0));
        let b = file("b", 2, (10, 20), (0, 0));
        let c = file("c", 2, (11, 20), (0, 0));
        let zero = file("z", 0, (0, 100), (0, 0));
        assert!(levels_overlap(&[&a, &b], &key_types()).is_some());
        assert!(levels_overlap(&[&a, &c, &zero], &key_types()).is_none());
    }
}
