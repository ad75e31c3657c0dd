//! The per-table commit queues of a catalog, for group commit: the write
//! statements waiting to be committed together, and the table's *turn*, the
//! lock a group's leader (or a read-then-write statement) holds while it
//! writes and commits. `orchestrate::group` runs the groups; this module
//! only holds the state, so that the table handle (a lower layer) can carry
//! it.
//!
//! A catalog's tables share one [`CommitQueues`]: every handle loaded from
//! it (any session of a server) finds the same queue for the same table,
//! branch and schema. Handles of different schemas get different queues, so
//! a group's rows all fit the schema its leader writes them with.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow_array::RecordBatch;
use tokio::sync::oneshot;

use crate::error::{EngineError, Result};
use crate::kv::RowKind;

/// The rows one write statement commits, all of one kind (INSERT and
/// UPDATE write `+I` upserts, DELETE `-D` rows), and the properties it
/// wants in the snapshot (e.g. its retry count).
#[derive(Clone, Debug)]
pub struct StatementRows {
    pub batches: Vec<RecordBatch>,
    pub kind: RowKind,
    pub properties: BTreeMap<String, String>,
}

impl StatementRows {
    /// Memory the batches hold (what a group's size is bounded by).
    pub fn bytes(&self) -> usize {
        self.batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }
}

/// What a grouped commit did for one statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupOutcome {
    /// The snapshot holding the statement's rows (`None`: nothing was
    /// written, e.g. no rows).
    pub snapshot_id: Option<i64>,
    /// Statements committed in that snapshot (1 when alone).
    pub statements: usize,
}

/// A statement waiting in a queue, and where its outcome goes.
pub(crate) struct Member {
    pub id: u64,
    pub rows: StatementRows,
    pub reply: oneshot::Sender<Result<GroupOutcome>>,
}

impl Member {
    /// Sends the outcome; a statement that stopped waiting (canceled) no
    /// longer listens, which changes nothing for the others.
    pub fn answer(self, outcome: Result<GroupOutcome>) {
        let _ = self.reply.send(outcome);
    }
}

#[derive(Default)]
struct Pending {
    members: VecDeque<Member>,
    /// A task is committing this queue's members (or about to).
    draining: bool,
    next_id: u64,
}

/// One table's queue.
#[derive(Default)]
pub(crate) struct TableQueue {
    /// Held by whoever writes and commits the table's group, or by a
    /// read-then-write statement from before its read until its commit.
    pub turn: Arc<tokio::sync::Mutex<()>>,
    pending: Mutex<Pending>,
}

impl TableQueue {
    fn pending(&self) -> Result<MutexGuard<'_, Pending>> {
        self.pending
            .lock()
            .map_err(|_| EngineError::internal("commit queue poisoned"))
    }

    /// Adds a statement; returns its id, the receiver of its outcome, and
    /// whether the caller must start the task that commits the queue (none
    /// is running).
    pub fn push(
        &self,
        rows: StatementRows,
    ) -> Result<(u64, oneshot::Receiver<Result<GroupOutcome>>, bool)> {
        let (reply, receiver) = oneshot::channel();
        let mut pending = self.pending()?;
        let id = pending.next_id;
        pending.next_id += 1;
        pending.members.push_back(Member { id, rows, reply });
        let start = !pending.draining;
        pending.draining = true;
        Ok((id, receiver, start))
    }

    /// Takes waiting statements, oldest first, up to `max_bytes` of rows
    /// (at least one). With `last_call`, an empty queue also records that
    /// no task drains it any more (the next `push` starts one).
    pub fn take(&self, max_bytes: usize, last_call: bool) -> Vec<Member> {
        let Ok(mut pending) = self.pending() else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        let mut bytes = 0;
        while let Some(front) = pending.members.front() {
            let size = front.rows.bytes();
            if !taken.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            taken.extend(pending.members.pop_front());
        }
        if taken.is_empty() && last_call {
            pending.draining = false;
        }
        taken
    }

    /// Statements waiting (for tests that wait until a group has formed).
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.pending().map_or(0, |p| p.members.len())
    }

    /// Removes a statement that stopped waiting before a group took it;
    /// `false` when a group has it (it will be committed).
    pub fn withdraw(&self, id: u64) -> bool {
        let Ok(mut pending) = self.pending() else {
            return false;
        };
        let before = pending.members.len();
        pending.members.retain(|m| m.id != id);
        pending.members.len() != before
    }
}

/// Which queue: (table root, branch, schema id).
type QueueKey = (String, Option<String>, i64);

/// The queues of a catalog's tables.
#[derive(Default)]
pub(crate) struct CommitQueues {
    tables: Mutex<HashMap<QueueKey, Arc<TableQueue>>>,
}

impl CommitQueues {
    pub fn queue(&self, root: &str, branch: Option<&str>, schema_id: i64) -> Arc<TableQueue> {
        let key = (root.to_string(), branch.map(str::to_string), schema_id);
        match self.tables.lock() {
            Ok(mut tables) => tables.entry(key).or_default().clone(),
            // Poisoned: a queue of its own still commits correctly, only
            // without company.
            Err(_) => Arc::default(),
        }
    }
}

impl std::fmt::Debug for CommitQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitQueues")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> StatementRows {
        StatementRows {
            batches: Vec::new(),
            kind: RowKind::Insert,
            properties: BTreeMap::new(),
        }
    }

    #[test]
    fn the_first_push_starts_a_drainer_and_an_empty_last_take_stops_it() {
        let queue = TableQueue::default();
        let (a, _ra, start) = queue.push(rows()).unwrap();
        assert!(start);
        let (_b, _rb, start) = queue.push(rows()).unwrap();
        assert!(!start, "a drainer is already due");
        assert!(queue.withdraw(a));
        assert!(!queue.withdraw(a));
        assert_eq!(queue.take(usize::MAX, true).len(), 1);
        // Empty, but not the drainer's last call: it stays registered.
        assert!(queue.take(usize::MAX, false).is_empty());
        let (_c, _rc, start) = queue.push(rows()).unwrap();
        assert!(!start);
        assert_eq!(queue.take(usize::MAX, true).len(), 1);
        assert!(queue.take(usize::MAX, true).is_empty());
        let (_d, _rd, start) = queue.push(rows()).unwrap();
        assert!(start, "the drainer stopped, so the next push starts one");
    }
}
