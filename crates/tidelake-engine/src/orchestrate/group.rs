//! Group commit: the small write statements that sessions of one process
//! run on one table at the same time are committed together, in one
//! snapshot, instead of each racing the others for the next snapshot id
//! (and, on primary-key tables, conflicting on the buckets they share).
//!
//! **How.** A statement hands its rows to [`Table::commit_in_group`], which
//! puts them in the table's queue (`crate::queue`, shared by every handle
//! its catalog loads) and waits. The first statement to find no committer
//! running starts one, a tokio task that takes the table's *turn* and then
//! everything queued (up to [`MAX_GROUP_BYTES`]), writes it through one
//! [`TableWriter`] in queue order, commits once, answers every statement
//! with the snapshot (only after the commit returned, so the snapshot is
//! durable and, on tables that need it, compacted), and goes on while
//! statements keep arriving. While one group commits, the next one
//! gathers: the more concurrent writers, the bigger the groups. The
//! committer is a task of its own so that a statement canceled while it
//! waits takes nothing down with it (it is withdrawn if still queued; once
//! taken, its rows commit with the group's).
//!
//! **Failures stay with their statement.** Each statement's batches are
//! checked and conformed ([`TableWriter::accept`]: types, row kinds, the
//! table hooks' checks) before any of them is buffered; a refusal answers
//! that statement and the group goes on without it. An input error found
//! later, while buffering, restarts the group without the statement (the
//! writer is dropped with its files). A commit conflict (another process
//! wrote a bucket the group writes) re-runs the group from the new latest
//! snapshot: blind rows do not depend on what they were written over (the
//! snapshot's `tidelake.commit.retries` counts those runs, as it counts a
//! statement's re-runs).
//! Errors of the store or the commit itself go to every statement of the
//! group ([`EngineError::Shared`]); an unknown outcome deletes nothing.
//!
//! **Order.** Rows get sequence numbers in queue order, so the snapshot is
//! the statements applied one after the other in that order: within the
//! group a later statement's row for a key wins, as it would in separate
//! snapshots.
//!
//! **Read-then-write statements (UPDATE, DELETE) and lost updates.** An
//! UPDATE computes its rows from what it read; if two UPDATEs of one key
//! both read `v = 1` and both wrote `v = 2` into one snapshot, one update
//! would be lost. Disjoint keys are not enough either (write skew: each
//! statement's WHERE may select rows by values the other one changes). So
//! a read-then-write statement takes the table's turn with
//! [`Table::write_turn`] *before* it reads, holds it while it runs, and
//! commits through [`WriteTurn::commit`]: its rows go first in the group,
//! followed by the blind writes (INSERTs) queued meanwhile. No other commit
//! of this process can come between its read and its commit, and the blind
//! writes after it read nothing, so the snapshot equals the serial order
//! "the UPDATE, then each INSERT". At most one read-then-write statement is
//! in a group. Against other processes its writer starts from the snapshot
//! it read ([`TableWriter::start_from`]), so the commit conflicts if one of
//! its buckets was written since; the conflict answers it alone (the SQL
//! session runs it again, reading anew) and the rest of the group is
//! committed without it.
//!
//! **Not grouped.** Exactly-once writers fenced by progress
//! (`crate::progress`) commit alone with their fence: a group refuses
//! progress properties. So do INSERT OVERWRITE, statements too large to
//! hold in memory, and compactions; they race the groups through the
//! commit protocol's checks as before.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use tidelake_format::snapshot::CommitKind;
use tokio::sync::{oneshot, OwnedMutexGuard};

use crate::error::{EngineError, Result};
use crate::kv::RowKind;
use crate::progress::PROGRESS_PREFIX;
use crate::queue::{GroupOutcome, Member, StatementRows, TableQueue};
use crate::table::Table;
use crate::write::TableWriter;

/// Snapshot property of a group commit holding more than one statement:
/// how many.
pub const GROUP_SIZE_PROPERTY: &str = "tidelake.commit.statements";

/// Snapshot property: how many times the write that committed the snapshot
/// ran again after commit conflicts (a statement re-run by its session, or
/// a group written again); absent when none.
pub const RETRIES_PROPERTY: &str = "tidelake.commit.retries";

/// Rows one group takes at most (the rest wait for the next group).
pub const MAX_GROUP_BYTES: usize = 64 << 20;

/// Commit conflicts a group of blind writes absorbs by running again
/// before it hands the conflict to its statements.
const MAX_GROUP_CONFLICTS: u32 = 8;

impl Table {
    /// Commits a write statement's rows together with those of the other
    /// statements writing this table at the same time (see the module
    /// documentation), and returns once the snapshot holding them is
    /// committed. For blind writes only: rows that do not depend on the
    /// table's contents (an UPDATE's do: use [`Table::write_turn`]).
    pub async fn commit_in_group(&self, rows: StatementRows) -> Result<GroupOutcome> {
        refuse_progress(&rows)?;
        let queue = self.commit_queue();
        let (id, receiver, start) = queue.push(rows)?;
        if start {
            tokio::spawn(drain(self.clone(), queue.clone()));
        }
        let mut waiting = Waiting {
            queue: &queue,
            id,
            answered: false,
        };
        let outcome = receiver.await;
        waiting.answered = true;
        outcome.map_err(|_| EngineError::internal("a group commit ended without an answer"))?
    }

    /// Waits for the table's turn and holds it: no group commit of this
    /// process runs until the turn is committed or dropped. A statement
    /// that reads the table to compute its rows takes it before it reads.
    pub async fn write_turn(&self) -> WriteTurn {
        let queue = self.commit_queue();
        let guard = queue.turn.clone().lock_owned().await;
        WriteTurn {
            table: self.clone(),
            queue,
            guard,
        }
    }
}

/// The table's turn, held by a read-then-write statement (see
/// [`Table::write_turn`]).
pub struct WriteTurn {
    table: Table,
    queue: Arc<TableQueue>,
    guard: OwnedMutexGuard<()>,
}

impl WriteTurn {
    /// Commits `rows`, computed from snapshot `read_at` (`None`: the table
    /// had none), first in a group with the blind writes waiting, and ends
    /// the turn. A conflict (another process wrote one of its buckets
    /// since `read_at`) fails this statement only.
    pub async fn commit(self, rows: StatementRows, read_at: Option<i64>) -> Result<GroupOutcome> {
        refuse_progress(&rows)?;
        let (reply, receiver) = oneshot::channel();
        let head = Member {
            id: u64::MAX,
            rows,
            reply,
        };
        let WriteTurn {
            table,
            queue,
            guard,
        } = self;
        tokio::spawn(async move {
            let mut members = vec![head];
            members.extend(queue.take(MAX_GROUP_BYTES, false));
            commit_group(&table, members, Some(read_at)).await;
            drop(guard);
        });
        receiver
            .await
            .map_err(|_| EngineError::internal("a group commit ended without an answer"))?
    }

    /// A writer for a statement too large to group, starting from the
    /// snapshot it read; commit it while the turn is held.
    pub fn writer(&self, read_at: Option<i64>) -> TableWriter {
        let mut writer = self.table.writer();
        writer.start_from(read_at);
        writer
    }
}

fn refuse_progress(rows: &StatementRows) -> Result<()> {
    match rows.properties.keys().find(|k| k.starts_with(PROGRESS_PREFIX)) {
        Some(key) => Err(EngineError::invalid(format!(
            "a group commit cannot record progress ('{key}'): exactly-once writers commit alone, fenced by their progress"
        ))),
        None => Ok(()),
    }
}

/// Withdraws a statement from the queue when it stops waiting early.
struct Waiting<'a> {
    queue: &'a TableQueue,
    id: u64,
    answered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.queue.withdraw(self.id);
        }
    }
}

/// The committer task: commits groups while statements wait.
async fn drain(table: Table, queue: Arc<TableQueue>) {
    let mut running = Draining {
        queue: &queue,
        finished: false,
    };
    loop {
        let turn = queue.turn.clone().lock_owned().await;
        let members = queue.take(MAX_GROUP_BYTES, true);
        if members.is_empty() {
            break;
        }
        commit_group(&table, members, None).await;
        drop(turn);
    }
    running.finished = true;
}

/// If the committer task ends abnormally (a panic), the statements still
/// queued are answered and the next one starts a new committer.
struct Draining<'a> {
    queue: &'a TableQueue,
    finished: bool,
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.finished {
            for member in self.queue.take(usize::MAX, false) {
                member.answer(Err(EngineError::internal(
                    "the group committer stopped; run the statement again",
                )));
            }
            self.queue.take(usize::MAX, true);
        }
    }
}

/// Statements of a group; with `head_read_at`, the first one read the table
/// at that snapshot (a read-then-write statement).
struct Group {
    members: Vec<Member>,
    head_read_at: Option<Option<i64>>,
}

impl Group {
    fn remove(&mut self, i: usize) -> Member {
        if i == 0 {
            self.head_read_at = None;
        }
        self.members.remove(i)
    }
}

enum Buffered {
    Done,
    /// A statement's rows were refused after part of them was buffered:
    /// it was answered and removed; the group starts over without it.
    Restart,
    Failed(EngineError),
}

/// Writes and commits `members` as one snapshot (running again after a
/// conflict or an input error), and answers each of them.
async fn commit_group(table: &Table, members: Vec<Member>, head_read_at: Option<Option<i64>>) {
    let mut group = Group {
        members,
        head_read_at,
    };
    let mut conflicts = 0;
    let mut backoff = Duration::from_millis(10);
    while !group.members.is_empty() {
        let mut writer = table.writer();
        if let Some(read_at) = group.head_read_at {
            writer.start_from(read_at);
        }
        match buffer_group(&mut writer, &mut group).await {
            Buffered::Done => {}
            Buffered::Restart => {
                writer.abort().await;
                continue;
            }
            Buffered::Failed(e) => {
                writer.abort().await;
                answer_all(group.members, e);
                return;
            }
        }
        let statements = group.members.len();
        let properties = group_properties(&group.members, conflicts);
        match writer.commit_with(CommitKind::Append, properties).await {
            Ok(snapshot_id) => {
                if snapshot_id.is_some() {
                    crate::counters::group_committed(statements);
                }
                tracing::debug!(table = %table.id, snapshot = ?snapshot_id, statements, "group committed");
                let outcome = GroupOutcome {
                    snapshot_id,
                    statements,
                };
                for member in group.members {
                    member.answer(Ok(outcome));
                }
                return;
            }
            Err(e) if e.is_commit_conflict() && conflicts < MAX_GROUP_CONFLICTS => {
                conflicts += 1;
                // The read-then-write statement read what is no longer
                // the latest state: only it must run again.
                if group.head_read_at.is_some() {
                    group.remove(0).answer(Err(e));
                } else {
                    tracing::debug!(table = %table.id, conflicts, "group commit conflicted; writing the group again");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(e) => {
                answer_all(group.members, e);
                return;
            }
        }
    }
}

/// Buffers the group's statements in order; a statement whose rows are
/// refused is answered and left out.
async fn buffer_group(writer: &mut TableWriter, group: &mut Group) -> Buffered {
    let mut i = 0;
    while i < group.members.len() {
        // All of a statement's batches are checked before any is buffered.
        let accepted = match accept_all(writer, &group.members[i].rows) {
            Ok(accepted) => accepted,
            Err(e) => {
                group.remove(i).answer(Err(e));
                continue;
            }
        };
        for (batch, kinds) in accepted {
            if let Err(e) = writer.write_accepted(batch, &kinds).await {
                if !e.is_input_error() {
                    return Buffered::Failed(e);
                }
                group.remove(i).answer(Err(e));
                return Buffered::Restart;
            }
        }
        i += 1;
    }
    Buffered::Done
}

fn accept_all(
    writer: &TableWriter,
    rows: &StatementRows,
) -> Result<Vec<(RecordBatch, Vec<RowKind>)>> {
    let mut accepted = Vec::with_capacity(rows.batches.len());
    for batch in &rows.batches {
        let kinds = vec![rows.kind; batch.num_rows()];
        if let Some(batch) = writer.accept(batch.clone(), &kinds)? {
            accepted.push((batch, kinds));
        }
    }
    Ok(accepted)
}

/// The snapshot properties of a group: its statements' (a key several give
/// keeps the largest number, such as the most retries), the times the group
/// was written again after conflicts added to the retries, and the group's
/// size when it holds more than one.
fn group_properties(members: &[Member], rewrites: u32) -> BTreeMap<String, String> {
    let mut properties: BTreeMap<String, String> = BTreeMap::new();
    for member in members {
        for (key, value) in &member.rows.properties {
            match properties.get(key) {
                Some(old) if larger_or_equal(old, value) => {}
                _ => {
                    properties.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if rewrites > 0 {
        let before: u64 = properties
            .get(RETRIES_PROPERTY)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let retries = before + u64::from(rewrites);
        properties.insert(RETRIES_PROPERTY.to_string(), retries.to_string());
    }
    if members.len() > 1 {
        properties.insert(GROUP_SIZE_PROPERTY.to_string(), members.len().to_string());
    }
    properties
}

fn larger_or_equal(old: &str, new: &str) -> bool {
    match (old.parse::<i64>(), new.parse::<i64>()) {
        (Ok(a), Ok(b)) => a >= b,
        _ => true,
    }
}

/// Answers every statement with `e` (shared when there are several).
fn answer_all(members: Vec<Member>, e: EngineError) {
    let mut members = members;
    if members.len() == 1 {
        if let Some(member) = members.pop() {
            member.answer(Err(e));
        }
        return;
    }
    let shared = Arc::new(e);
    for member in members {
        member.answer(Err(EngineError::Shared(shared.clone())));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use futures::TryStreamExt;

    use super::*;
    use crate::{Catalog, ColumnSpec, DataTypeKind, Identifier, TableSpec};

    /// `(k BIGINT primary key, v BIGINT)` in 2 buckets, in `catalog`.
    async fn create(catalog: &Catalog) -> Identifier {
        let id = Identifier::new("default", "t");
        let column = |name: &str| ColumnSpec {
            name: name.into(),
            data_type: crate::DataType::new(DataTypeKind::BigInt, false),
            comment: None,
        };
        let spec = TableSpec {
            columns: vec![column("k"), column("v")],
            primary_keys: vec!["k".into()],
            partition_keys: vec![],
            options: [("bucket".to_string(), "2".to_string())].into(),
            comment: None,
        };
        catalog.create_table(&id, spec, false).await.unwrap();
        id
    }

    fn rows(table: &Table, pairs: &[(i64, i64)]) -> StatementRows {
        let column = |f: fn(&(i64, i64)) -> i64| {
            Arc::new(Int64Array::from_iter_values(pairs.iter().map(f))) as ArrayRef
        };
        let batch =
            RecordBatch::try_new(table.arrow_schema(), vec![column(|p| p.0), column(|p| p.1)])
                .unwrap();
        StatementRows {
            batches: vec![batch],
            kind: RowKind::Insert,
            properties: BTreeMap::new(),
        }
    }

    /// Rows whose `v` is text that is no number: refused by the writer.
    fn bad_rows() -> StatementRows {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![999])),
                Arc::new(StringArray::from(vec!["not a number"])),
            ],
        )
        .unwrap();
        StatementRows {
            batches: vec![batch],
            kind: RowKind::Insert,
            properties: BTreeMap::new(),
        }
    }

    async fn contents(table: &Table) -> BTreeMap<i64, i64> {
        let plan = table.scan().plan().await.unwrap();
        let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
        let mut out = BTreeMap::new();
        for b in batches {
            let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                out.insert(k.value(i), v.value(i));
            }
        }
        out
    }

    async fn snapshot_count(table: &Table) -> i64 {
        table
            .reader
            .latest_snapshot_id()
            .await
            .unwrap()
            .unwrap_or(0)
    }

    /// Waits until `n` statements are queued on the table.
    async fn until_queued(table: &Table, n: usize) {
        for _ in 0..2_000 {
            if table.commit_queue().waiting() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{n} statements never queued");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_statements_share_one_snapshot_and_a_bad_one_fails_alone() {
        let catalog = Catalog::open("memory://").await.unwrap();
        let id = create(&catalog).await;
        let table = catalog.load_table(&id).await.unwrap();
        // Hold the turn so that every statement is queued before the group
        // forms (otherwise how many share a snapshot depends on timing).
        let turn = table.write_turn().await;
        let mut tasks = Vec::new();
        for i in 0..32i64 {
            // A handle of its own, as each session loads one.
            let handle = catalog.load_table(&id).await.unwrap();
            tasks.push(tokio::spawn(async move {
                let statement = if i == 7 {
                    bad_rows()
                } else {
                    rows(&handle, &[(i, i * 10), (100 + i, i)])
                };
                handle.commit_in_group(statement).await
            }));
        }
        until_queued(&table, 32).await;
        drop(turn);
        let mut snapshots = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            let outcome = task.await.unwrap();
            if i == 7 {
                let e = outcome.expect_err("text is no BIGINT");
                assert!(matches!(e, EngineError::TypeMismatch { .. }), "{e}");
            } else {
                let outcome = outcome.unwrap();
                assert_eq!(outcome.statements, 31, "{outcome:?}");
                snapshots.push(outcome.snapshot_id.unwrap());
            }
        }
        snapshots.dedup();
        assert_eq!(snapshots.len(), 1, "one snapshot for the group");
        assert_eq!(snapshot_count(&table).await, 1);
        let latest = table.reader.latest_snapshot().await.unwrap().unwrap();
        let properties = latest.properties.unwrap_or_default();
        assert_eq!(
            properties.get(GROUP_SIZE_PROPERTY).map(String::as_str),
            Some("31")
        );
        let rows = contents(&table).await;
        assert_eq!(rows.len(), 62);
        assert_eq!(rows.get(&5), Some(&50));
        assert!(!rows.contains_key(&7) && !rows.contains_key(&999));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_update_goes_first_and_a_later_insert_of_its_key_wins() {
        let catalog = Catalog::open("memory://").await.unwrap();
        let id = create(&catalog).await;
        let table = catalog.load_table(&id).await.unwrap();
        table
            .commit_in_group(rows(&table, &[(1, 1), (2, 2)]))
            .await
            .unwrap();
        let turn = table.write_turn().await;
        let read_at = table.reader.latest_snapshot_id().await.unwrap();
        // Blind writes queue while the "UPDATE" holds the turn: one of them
        // writes the UPDATE's key, so it must come after it.
        let handle = table.clone();
        let insert = tokio::spawn(async move {
            handle
                .commit_in_group(rows(&handle, &[(1, 100), (3, 3)]))
                .await
        });
        until_queued(&table, 1).await;
        let update = turn
            .commit(rows(&table, &[(1, 11)]), read_at)
            .await
            .unwrap();
        assert_eq!(update.statements, 2);
        assert_eq!(insert.await.unwrap().unwrap(), update);
        assert_eq!(snapshot_count(&table).await, 2);
        let rows = contents(&table).await;
        assert_eq!(rows, BTreeMap::from([(1, 100), (2, 2), (3, 3)]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_stale_update_conflicts_alone_and_the_blind_writes_commit() {
        let catalog = Catalog::open("memory://").await.unwrap();
        let id = create(&catalog).await;
        let table = catalog.load_table(&id).await.unwrap();
        table
            .commit_in_group(rows(&table, &[(1, 1)]))
            .await
            .unwrap();
        let turn = table.write_turn().await;
        let read_at = table.reader.latest_snapshot_id().await.unwrap();
        // Another process (a catalog of its own: other queues) writes key 1
        // after the UPDATE read it.
        let other = Catalog::from_store(catalog.store().clone());
        let theirs = other.load_table(&id).await.unwrap();
        let mut writer = theirs.writer();
        let batch = rows(&theirs, &[(1, 50)]).batches.remove(0);
        writer.write(batch, RowKind::Insert).await.unwrap();
        writer.commit().await.unwrap();
        let handle = table.clone();
        let insert =
            tokio::spawn(async move { handle.commit_in_group(rows(&handle, &[(4, 4)])).await });
        until_queued(&table, 1).await;
        let stale = turn.commit(rows(&table, &[(1, 2)]), read_at).await;
        let e = stale.expect_err("the UPDATE read a snapshot its bucket has moved past");
        assert!(e.is_commit_conflict(), "{e}");
        let blind = insert.await.unwrap().unwrap();
        assert_eq!(blind.statements, 1);
        let rows = contents(&table).await;
        assert_eq!(rows, BTreeMap::from([(1, 50), (4, 4)]), "no update lost");
    }

    #[tokio::test]
    async fn progress_is_never_grouped() {
        let catalog = Catalog::open("memory://").await.unwrap();
        let id = create(&catalog).await;
        let table = catalog.load_table(&id).await.unwrap();
        let mut statement = rows(&table, &[(1, 1)]);
        statement
            .properties
            .insert(format!("{PROGRESS_PREFIX}job.j.0"), "5".into());
        let e = table.commit_in_group(statement).await.unwrap_err();
        assert!(e.to_string().contains("exactly-once"), "{e}");
        assert_eq!(snapshot_count(&table).await, 0);
    }
}
