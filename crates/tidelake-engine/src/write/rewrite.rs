//! Copy-on-write changes to append tables (DELETE and UPDATE): every file
//! that may hold an affected row is read, rewritten with the change applied,
//! and swapped for its replacement in one OVERWRITE commit. Files whose rows
//! all stay as they are keep their place.

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use tidelake_format::snapshot::CommitKind;

use super::file::{write_data_file, FileContent};
use crate::commit::{CommitMessage, CommitRequest, Committer};
use crate::error::{EngineError, Result};
use crate::read::file::{data_file_path, read_data_file, ReadColumn};
use crate::read::predicate::Predicate;
use crate::table::Table;

/// How many rows a rewrite changed and which snapshot it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteOutcome {
    pub rows_changed: u64,
    pub snapshot_id: Option<i64>,
}

/// The change to apply to one batch: the rows to keep (possibly modified)
/// and how many rows were changed; `None` leaves the batch as it is.
pub type BatchChange = Option<(RecordBatch, u64)>;

impl Table {
    /// Rewrites the files of an append table that `candidates` may match,
    /// applying `change` to each of their batches (all columns, table order).
    pub async fn rewrite_append_files(
        &self,
        candidates: Option<Predicate>,
        mut change: impl FnMut(&RecordBatch) -> Result<BatchChange>,
    ) -> Result<RewriteOutcome> {
        if self.is_primary_key_table() {
            return Err(EngineError::invalid(format!(
                "table '{}' has a primary key: change it by writing rows with their kinds instead",
                self.id
            )));
        }
        let mut scan = self.scan();
        if let Some(p) = candidates {
            scan = scan.with_predicate(p);
        }
        let plan = scan.plan().await?;
        let base_snapshot_id = plan.snapshot().map(|s| s.id);
        let columns: Vec<ReadColumn> = self
            .layout
            .schema
            .fields
            .iter()
            .cloned()
            .map(ReadColumn::Value)
            .collect();
        let mut messages = Vec::new();
        let mut written: Vec<String> = Vec::new();
        let mut rows_changed = 0u64;
        let result: Result<()> = async {
            for split in plan.splits() {
                let mut message = CommitMessage {
                    partition: split.partition.clone(),
                    bucket: split.bucket,
                    total_buckets: self.layout.options.bucket,
                    ..Default::default()
                };
                for file in &split.files {
                    let path = data_file_path(self, &split.partition_path, split.bucket, file);
                    let batches: Vec<RecordBatch> =
                        read_data_file(self, &path, file, &columns, 65_536)
                            .await?
                            .try_collect()
                            .await?;
                    let mut changed = 0u64;
                    let mut out = Vec::with_capacity(batches.len());
                    for b in &batches {
                        match change(b)? {
                            Some((kept, n)) => {
                                changed += n;
                                out.push(kept);
                            }
                            None => out.push(b.clone()),
                        }
                    }
                    if changed == 0 {
                        continue;
                    }
                    rows_changed += changed;
                    message.deleted_files.push(file.clone());
                    let all =
                        arrow_select::concat::concat_batches(&self.layout.arrow_schema, &out)?;
                    if all.num_rows() > 0 {
                        let range = (file.min_sequence_number, file.max_sequence_number);
                        let dir = format!("{}bucket-{}", split.partition_path, split.bucket);
                        let meta = write_data_file(
                            self,
                            &dir,
                            FileContent {
                                batch: all,
                                sequence_range: Some(range),
                            },
                        )
                        .await?;
                        written.push(format!("{}/{}/{}", self.paths().root, dir, meta.file_name));
                        message.new_files.push(meta);
                    }
                }
                if !message.deleted_files.is_empty() {
                    messages.push(message);
                }
            }
            Ok(())
        }
        .await;
        let committed = match result {
            Ok(()) if messages.is_empty() => Ok(None),
            Ok(()) => {
                let request = CommitRequest {
                    watermark: None,
                    messages,
                    kind: CommitKind::Overwrite,
                    overwrite_partitions: None,
                    base_snapshot_id,
                    commit_user: uuid::Uuid::new_v4().to_string(),
                    commit_identifier: i64::MAX,
                    properties: Default::default(),
                    index_entries: Vec::new(),
                    index_loaded_from: Default::default(),
                    deletion_vectors_replaced: Default::default(),
                };
                Committer::new(self)?.commit(request).await
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(snapshot_id) => Ok(RewriteOutcome {
                rows_changed,
                snapshot_id,
            }),
            Err(e) if e.is_commit_unknown() => Err(e),
            Err(e) => {
                for p in &written {
                    let _ = self.store.delete(p).await;
                }
                Err(e)
            }
        }
    }
}
