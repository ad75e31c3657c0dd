//! How write statements reach the engine's group commit (see
//! `tidelake_engine`'s `orchestrate::group`): many sessions inserting into
//! one table at once share snapshots instead of racing for them.
//!
//! - An INSERT (not OVERWRITE) whose rows fit in [`GROUP_STATEMENT_BYTES`]
//!   and that does not read its own table is a blind write: its rows are
//!   collected (NOT NULL checked, counted) and handed to
//!   `Table::commit_in_group`, which answers once the shared snapshot is
//!   committed.
//! - UPDATE and DELETE by key read before they write, so they take the
//!   table's turn *before* planning their read (`Table::write_turn`), and
//!   commit first in a group with the blind writes that queued meanwhile,
//!   from the snapshot they read: no commit of this process can come
//!   between their read and their write, and a commit of another process
//!   in one of their buckets is a conflict that runs the statement again.
//! - Anything larger writes through a writer of its own (spilling files as
//!   it goes) and commits alone, as INSERT OVERWRITE, COPY and MERGE do.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SessionConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{execute_stream, ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;
use tidelake_engine::introspect::CommitKind;
use tidelake_engine::{RowKind, StatementRows, Table, TableWriter, WriteTurn};

use crate::error::SqlError;
use crate::provider::{check_not_null, ScanExec};

/// A write statement whose rows take at most this much memory joins a group
/// commit; a larger one commits alone, through a writer that spills.
pub(crate) const GROUP_STATEMENT_BYTES: usize = 4 << 20;

/// Rows a write statement produced so far, and the rest of its input when
/// it outgrew [`GROUP_STATEMENT_BYTES`] (`None`: these are all).
pub(crate) struct InputRows {
    pub batches: Vec<RecordBatch>,
    pub rows: u64,
    pub rest: Option<SendableRecordBatchStream>,
}

/// Reads `stream` until it ends or its rows outgrow the group limit,
/// checking and counting rows as a writer would.
async fn collect_small(
    table: &Table,
    mut stream: SendableRecordBatchStream,
    kind: RowKind,
    config: &SessionConfig,
) -> Result<InputRows, SqlError> {
    let mut collected = InputRows {
        batches: Vec::new(),
        rows: 0,
        rest: None,
    };
    let mut bytes = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        check_batch(table, &batch, kind, config)?;
        collected.rows += batch.num_rows() as u64;
        bytes += batch.get_array_memory_size();
        collected.batches.push(batch);
        if bytes > GROUP_STATEMENT_BYTES {
            collected.rest = Some(stream);
            break;
        }
    }
    Ok(collected)
}

fn check_batch(
    table: &Table,
    batch: &RecordBatch,
    kind: RowKind,
    config: &SessionConfig,
) -> Result<(), SqlError> {
    if kind == RowKind::Insert {
        check_not_null(table, batch)?;
    }
    crate::progress::count_rows_written(config, batch.num_rows());
    Ok(())
}

/// Writes `rows` (already checked) and the rest of their stream through
/// `writer`, and commits once; on failure nothing is committed. Returns the
/// rows written.
pub(crate) async fn write_stream(
    table: &Table,
    mut writer: TableWriter,
    rows: InputRows,
    kind: RowKind,
    properties: BTreeMap<String, String>,
    config: &SessionConfig,
) -> Result<u64, SqlError> {
    let written: Result<u64, SqlError> = async {
        let mut count = rows.rows;
        for batch in rows.batches {
            writer.write(batch, kind).await?;
        }
        if let Some(mut stream) = rows.rest {
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                check_batch(table, &batch, kind, config)?;
                count += batch.num_rows() as u64;
                writer.write(batch, kind).await?;
            }
        }
        Ok(count)
    }
    .await;
    match written {
        Ok(count) => {
            writer.commit_with(CommitKind::Append, properties).await?;
            Ok(count)
        }
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    }
}

/// A blind INSERT: grouped when small, alone otherwise.
pub(crate) async fn insert_grouped(
    table: &Table,
    input: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    properties: BTreeMap<String, String>,
) -> Result<u64, SqlError> {
    let config = context.session_config().clone();
    let stream = execute_stream(input, context)?;
    let rows = collect_small(table, stream, RowKind::Insert, &config).await?;
    if rows.rest.is_some() {
        return write_stream(
            table,
            table.writer(),
            rows,
            RowKind::Insert,
            properties,
            &config,
        )
        .await;
    }
    let count = rows.rows;
    if count == 0 {
        return Ok(0);
    }
    table
        .commit_in_group(StatementRows {
            batches: rows.batches,
            kind: RowKind::Insert,
            properties,
        })
        .await?;
    Ok(count)
}

/// A read-then-write statement (UPDATE or DELETE by key) holding the
/// table's turn: `physical` is its input, planned under the turn; `kind`
/// the row kind it writes.
pub(crate) async fn write_under_turn(
    table: &Table,
    turn: WriteTurn,
    physical: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    kind: RowKind,
    properties: BTreeMap<String, String>,
) -> Result<u64, SqlError> {
    let read_at = match snapshots_read(&physical, table).into_iter().min() {
        Some(read_at) => read_at,
        // It read its table some other way: it read the latest snapshot,
        // which is still the latest while the turn is held (in-process).
        None => table.snapshots().latest_snapshot_id().await?,
    };
    let config = context.session_config().clone();
    let stream = execute_stream(physical, context)?;
    let rows = collect_small(table, stream, kind, &config).await?;
    if rows.rest.is_some() {
        let writer = turn.writer(read_at);
        let count = write_stream(table, writer, rows, kind, properties, &config).await;
        drop(turn);
        return count;
    }
    let count = rows.rows;
    if count == 0 {
        return Ok(0);
    }
    turn.commit(
        StatementRows {
            batches: rows.batches,
            kind,
            properties,
        },
        read_at,
    )
    .await?;
    Ok(count)
}

/// The snapshots of `table` that scans in `plan` read (`None`: the table
/// had no snapshot); empty when the plan does not read the table.
pub(crate) fn snapshots_read(plan: &Arc<dyn ExecutionPlan>, table: &Table) -> Vec<Option<i64>> {
    let target = table.paths();
    let mut found = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<ScanExec>() {
            let paths = scan.plan().table().paths();
            if paths.root == target.root && paths.branch == target.branch {
                found.push(scan.plan().snapshot().map(|s| s.id));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
