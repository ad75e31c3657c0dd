//! The key-value file layout of Paimon tables, the bottom layer of the
//! engine: the column names and field ids of key-value data files, the kind
//! of change each row is, and where a table's files live.
//!
//! Primary-key data files hold `_KEY_<k>` columns for the trimmed primary
//! key, `_SEQUENCE_NUMBER`, `_VALUE_KIND`, then every table column.

use arrow_array::{BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;

use crate::error::Result;

/// The sequence-number column of key-value files.
pub const SEQUENCE_COLUMN: &str = "_SEQUENCE_NUMBER";
/// The row-kind column of key-value files (a [`RowKind`] byte).
pub const VALUE_KIND_COLUMN: &str = "_VALUE_KIND";
/// The prefix of the key columns of key-value files.
pub const KEY_PREFIX: &str = "_KEY_";
pub const SEQUENCE_FIELD_ID: i32 = 2147483646;
pub const VALUE_KIND_FIELD_ID: i32 = 2147483645;
pub const KEY_FIELD_ID_OFFSET: i32 = 1_000_000;

/// The kind of change a row is, as Paimon's `_VALUE_KIND` encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowKind {
    Insert,
    UpdateBefore,
    UpdateAfter,
    Delete,
}

impl RowKind {
    pub fn to_byte(self) -> i8 {
        match self {
            RowKind::Insert => 0,
            RowKind::UpdateBefore => 1,
            RowKind::UpdateAfter => 2,
            RowKind::Delete => 3,
        }
    }

    pub fn from_byte(b: i8) -> Option<RowKind> {
        Some(match b {
            0 => RowKind::Insert,
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            _ => return None,
        })
    }

    /// Whether the row removes (rather than adds) a value.
    pub fn is_retract(self) -> bool {
        matches!(self, RowKind::UpdateBefore | RowKind::Delete)
    }

    /// `+I`, `-U`, `+U`, `-D`.
    pub fn short_name(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }
}

/// Whether a `_VALUE_KIND` byte is a retraction (-U or -D).
pub(crate) fn is_retraction(kind: i8) -> bool {
    RowKind::from_byte(kind).is_some_and(RowKind::is_retract)
}

/// Whether a `_VALUE_KIND` byte adds a value (+I or +U).
pub(crate) fn is_addition(kind: i8) -> bool {
    RowKind::from_byte(kind).is_some_and(|k| !k.is_retract())
}

/// The filter that keeps the rows adding a value among `_VALUE_KIND`
/// bytes, or `None` when every row does.
pub(crate) fn additions_mask(kinds: &[i8]) -> Option<BooleanArray> {
    if kinds.iter().all(|k| is_addition(*k)) {
        return None;
    }
    Some(kinds.iter().map(|k| Some(is_addition(*k))).collect())
}

/// The rows of `batch` that add a value, given their `_VALUE_KIND` bytes.
pub(crate) fn keep_additions(batch: RecordBatch, kinds: &[i8]) -> Result<RecordBatch> {
    match additions_mask(kinds) {
        Some(mask) => Ok(filter_record_batch(&batch, &mask)?),
        None => Ok(batch),
    }
}

/// Paths of one table's metadata, relative to the warehouse root.
///
/// A branch (Paimon's layout) keeps its own `snapshot/`, `schema/`, `tag/`
/// and `consumer/` folders under `{root}/branch/branch-{name}/`, and shares
/// the table's `manifest/`, `index/` and data folders with every other
/// branch: [`TablePaths::meta_root`] is where the former live.
#[derive(Clone, Debug)]
pub struct TablePaths {
    pub root: String,
    /// The branch these paths name; `None` is the main branch.
    pub branch: Option<String>,
}

/// Folder of a table's branches, under its root.
pub const BRANCH_DIR: &str = "branch";
/// Prefix of a branch's folder name.
pub const BRANCH_PREFIX: &str = "branch-";

impl TablePaths {
    pub fn new(root: impl Into<String>) -> Self {
        TablePaths {
            root: root.into(),
            branch: None,
        }
    }
    /// The same table's paths on `branch` (`None`: main).
    pub fn on_branch(&self, branch: Option<&str>) -> TablePaths {
        TablePaths {
            root: self.root.clone(),
            branch: branch.map(str::to_string),
        }
    }
    /// `{root}/branch`, the folder holding every branch.
    pub fn branches_dir(&self) -> String {
        format!("{}/{BRANCH_DIR}", self.root)
    }
    /// Where this branch's snapshots, schemas, tags and consumers live.
    pub fn meta_root(&self) -> String {
        match &self.branch {
            Some(b) => format!("{}/{BRANCH_DIR}/{BRANCH_PREFIX}{b}", self.root),
            None => self.root.clone(),
        }
    }
    pub fn snapshot_dir(&self) -> String {
        format!("{}/snapshot", self.meta_root())
    }
    pub fn snapshot(&self, id: i64) -> String {
        format!("{}/snapshot/snapshot-{id}", self.meta_root())
    }
    pub fn latest_hint(&self) -> String {
        format!("{}/snapshot/LATEST", self.meta_root())
    }
    pub fn earliest_hint(&self) -> String {
        format!("{}/snapshot/EARLIEST", self.meta_root())
    }
    pub fn schema_dir(&self) -> String {
        format!("{}/schema", self.meta_root())
    }
    pub fn schema(&self, id: i64) -> String {
        format!("{}/schema/schema-{id}", self.meta_root())
    }
    pub fn tag_dir(&self) -> String {
        format!("{}/tag", self.meta_root())
    }
    pub fn consumer_dir(&self) -> String {
        format!("{}/consumer", self.meta_root())
    }
    pub fn manifest(&self, name: &str) -> String {
        format!("{}/manifest/{name}", self.root)
    }
    pub fn index(&self, name: &str) -> String {
        format!("{}/index/{name}", self.root)
    }
    /// A bucket's directory relative to the table root (`partition_path`
    /// ends with '/' or is empty).
    pub fn relative_bucket_dir(partition_path: &str, bucket: i32) -> String {
        format!("{partition_path}bucket-{bucket}")
    }
    pub fn bucket_dir(&self, partition_path: &str, bucket: i32) -> String {
        format!(
            "{}/{}",
            self.root,
            Self::relative_bucket_dir(partition_path, bucket)
        )
    }
    /// The path of a data or changelog file of a bucket.
    pub fn data_file(&self, partition_path: &str, bucket: i32, file_name: &str) -> String {
        format!("{}/{file_name}", self.bucket_dir(partition_path, bucket))
    }
}
