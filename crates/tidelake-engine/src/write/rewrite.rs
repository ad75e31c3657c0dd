//! Copy-on-write changes to append tables (DELETE and UPDATE): every file
//! that may hold an affected row is read, rewritten with the change applied,
//! and swapped for its replacement in one OVERWRITE commit. Files whose rows
//! all stay as they are keep their place.

use arrow_array::RecordBatch;
use futures::future::BoxFuture;
use futures::TryStreamExt;
use tidelake_format::snapshot::CommitKind;

use crate::commit::{CommitMessage, CommitRequest};
use crate::error::{EngineError, Result};
use crate::files::{write_data_file, FileContent};
use crate::read::file::{read_data_file, ReadColumn};
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

/// Rewritten files of an append table waiting for their OVERWRITE commit
/// (see `Table::commit_append_rewrite`); dropping it without committing
/// leaves the files as orphans, so discard it instead.
pub struct PreparedAppendRewrite {
    /// `None` when no row changed.
    pub(crate) request: Option<CommitRequest>,
    pub rows_changed: u64,
    /// Paths of the files written.
    written: Vec<String>,
}

pub(crate) type PreparedRewrite = PreparedAppendRewrite;

impl PreparedAppendRewrite {
    /// Deletes the files written (when the commit failed or is not wanted).
    pub async fn discard(&self, table: &Table) {
        for p in &self.written {
            let _ = table.store.delete(p).await;
        }
    }
}

impl Table {
    /// Rewrites the files of an append table that `candidates` may match,
    /// applying `change` to each of their batches (all columns, table
    /// order); the commit is left to the caller.
    pub(crate) async fn prepare_rewrite(
        &self,
        candidates: Option<Predicate>,
        mut change: impl FnMut(&RecordBatch) -> Result<BatchChange>,
    ) -> Result<PreparedRewrite> {
        self.prepare_append_rewrite(candidates, move |batch| {
            Box::pin(futures::future::ready(change(&batch)))
        })
        .await
    }

    /// [`Table::prepare_rewrite`] with a change that may wait (e.g. run a
    /// query over the batch); the commit is left to the caller
    /// (`Table::commit_append_rewrite`).
    pub async fn prepare_append_rewrite(
        &self,
        candidates: Option<Predicate>,
        mut change: impl FnMut(RecordBatch) -> BoxFuture<'static, Result<BatchChange>>,
    ) -> Result<PreparedRewrite> {
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
                    let path = self.paths().data_file(
                        &split.partition_path,
                        split.bucket,
                        &file.file_name,
                    );
                    let batches: Vec<RecordBatch> =
                        read_data_file(self, &path, file, &columns, 65_536)
                            .await?
                            .try_collect()
                            .await?;
                    let mut changed = 0u64;
                    let mut out = Vec::with_capacity(batches.len());
                    for b in batches {
                        match change(b.clone()).await? {
                            Some((kept, n)) => {
                                changed += n;
                                out.push(kept);
                            }
                            None => out.push(b),
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
                        let dir = crate::kv::TablePaths::relative_bucket_dir(
                            &split.partition_path,
                            split.bucket,
                        );
                        let meta = write_data_file(
                            self,
                            &dir,
                            FileContent {
                                batch: all,
                                sequence_range: Some(range),
                            },
                        )
                        .await?;
                        written.push(self.paths().data_file(
                            &split.partition_path,
                            split.bucket,
                            &meta.file_name,
                        ));
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
        let prepared = PreparedRewrite {
            request: None,
            rows_changed,
            written,
        };
        if let Err(e) = result {
            prepared.discard(self).await;
            return Err(e);
        }
        if messages.is_empty() {
            return Ok(prepared);
        }
        Ok(PreparedRewrite {
            request: Some(CommitRequest {
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
            }),
            ..prepared
        })
    }
}
