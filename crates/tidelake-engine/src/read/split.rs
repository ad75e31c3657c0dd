//! A split: the files of one bucket of one partition that a read reads
//! together, and (for a lookup) what of them it reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tidelake_format::binary_row::Datum;
use tidelake_format::deletion_vector::DeletionVector;
use tidelake_format::manifest::DataFileMeta;

use super::deletion::BucketVectors;
use super::key_index::KeyHits;

/// The rows of a lookup's files that may hold its key (by the files' key
/// indexes), by file name; files absent hold none.
pub(crate) type KeyRows = HashMap<String, KeyHits>;

/// What a lookup's split reads, decided when it was planned
/// (`key_plan.rs`).
#[derive(Debug)]
pub(crate) struct PlannedKeyRead {
    /// The rows of each file of the split that may hold the key; `None`
    /// when the table keeps no key indexes (pages are filtered instead).
    pub key_rows: Option<Arc<KeyRows>>,
    /// The split's files (indexes into [`Split::files`]) grouped as the
    /// bucket's sections and sorted runs, each section with whether it is
    /// a single run (read without merging).
    pub sections: Vec<(bool, Vec<Vec<usize>>)>,
}

/// The files of one bucket of one partition to read together.
#[derive(Clone, Debug)]
pub struct Split {
    pub partition: Vec<u8>,
    pub partition_values: Vec<Datum>,
    pub partition_path: String,
    pub bucket: i32,
    /// Every live file of the bucket (that the scan's filters keep).
    pub files: Vec<DataFileMeta>,
    /// The bucket's deletion vectors in the scanned snapshot; `None` when
    /// the table has none (`deletion-vectors.enabled` off).
    pub deletion_vectors: Option<Arc<BucketVectors>>,
    /// Batch read of a deletion-vector table: level-0 files are skipped and
    /// the others read without merging.
    pub(crate) skip_level0: bool,
    /// A lookup's split: what it reads, decided when it was planned.
    pub(crate) lookup: Option<Arc<PlannedKeyRead>>,
}

impl Split {
    pub fn row_count(&self) -> i64 {
        self.files.iter().map(|f| f.row_count).sum()
    }

    /// The files a read of this split opens: for batch reads of tables
    /// with deletion vectors, only those above level 0 (Paimon's readers
    /// see level-0 rows once a compaction has moved them up).
    pub fn files_to_read(&self) -> impl Iterator<Item = &DataFileMeta> {
        let skip = self.skip_level0;
        self.files.iter().filter(move |f| !skip || f.level > 0)
    }

    /// Whether a read of this split reads each file as it is, leaving out
    /// deleted rows, instead of merging versions of keys.
    pub fn reads_without_merge(&self) -> bool {
        self.skip_level0 && self.files_to_read().all(has_no_retractions)
    }

    /// The sorted runs among the files a read opens: each level-0 file is
    /// one, each higher level one more.
    pub fn sorted_runs(&self) -> usize {
        let mut levels = HashSet::new();
        let mut runs = 0;
        for file in self.files_to_read() {
            if file.level == 0 || levels.insert(file.level) {
                runs += 1;
            }
        }
        runs
    }

    /// The vector of one of the split's files, if it has deleted rows.
    pub(crate) fn vector(&self, file: &DataFileMeta) -> Option<Arc<DeletionVector>> {
        self.deletion_vectors
            .as_ref()
            .and_then(|v| v.get(&file.file_name).cloned())
    }
}

/// Files written with deletion vectors never hold retractions above level
/// 0; a file that does (written otherwise) needs merging, as in Paimon.
pub(crate) fn has_no_retractions(file: &DataFileMeta) -> bool {
    file.delete_row_count.unwrap_or(0) == 0
}
