//! The lease protocol over the engine's lease records (see
//! `tidelake_engine::services`).
//!
//! - **Take**: a worker that judges a lease free writes the next epoch
//!   (create-if-absent). Exactly one of several racing workers creates it;
//!   the others see it exists and leave the lease alone.
//! - **Hold**: the holder's claim runs from the moment it *started* writing
//!   its epoch for the record's TTL, on its own monotonic clock. It renews
//!   by writing the next epoch itself, every third of the TTL; a renewal
//!   that finds the epoch taken means the lease was taken over, and one that
//!   cannot be written before the claim runs out loses the lease. Either
//!   way the holder stops the work at once.
//! - **Expire**: an observer judges a lease expired when its newest epoch
//!   has not changed for the record's TTL, measured on the observer's own
//!   monotonic clock from when it first saw that epoch. It first saw it
//!   after the holder started writing it, so the observer's deadline is
//!   never before the holder's: no wall clocks are compared, and a worker
//!   whose clock is skewed by hours neither steals a live lease nor keeps
//!   a dead one.
//! - **Release**: the holder writes the next epoch marked released; it is
//!   free at once.
//! - A newest epoch that cannot be read (corrupt) counts as held by an
//!   unknown worker for this worker's TTL, then is taken over like any
//!   expired lease. One written by a newer Tidelake is never taken over.
//!
//! A lease only keeps two workers from doing the same work; it is not what
//! makes a job exactly-once (the sink's fenced progress is).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::time::Instant;
use tidelake_engine::services::{LeaseEntry, LeaseRecord, LeaseStore, SERVICE_FORMAT};

use crate::error::Result;

/// Epochs kept behind the newest (history for people; never read).
const EPOCHS_KEPT: u64 = 3;

/// What a worker concludes about a lease it looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Nobody holds it: never taken, released, or expired.
    Free,
    /// Held by this worker (as far as the records go).
    Mine,
    /// Held by another worker whose claim has not run out.
    Held {
        holder: String,
        note: Option<String>,
    },
    /// Its newest epoch was written by a newer Tidelake: left alone.
    Newer { format: u32 },
}

/// A lease looked at: its newest epoch and what that means.
#[derive(Clone, Debug)]
pub struct Observed {
    pub epoch: u64,
    pub status: LeaseStatus,
    /// The newest record, when it could be read.
    pub record: Option<LeaseRecord>,
}

/// A lease this worker holds.
#[derive(Clone, Debug)]
pub struct Held {
    pub kind: String,
    pub name: String,
    pub epoch: u64,
    /// When the claim runs out unless renewed (this worker's clock).
    pub valid_until: Instant,
    /// When the last renewal (or the take) started.
    pub renewed_at: Instant,
}

/// How a renewal went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    /// Another worker wrote the next epoch: the lease is theirs.
    TakenOver,
    /// The record could not be written and the claim ran out.
    Expired,
    /// Not written this time (store trouble); the claim still runs.
    Pending(String),
}

/// The monotonic clock leases are timed with (a hand-moved one in tests).
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The process's monotonic clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// One worker's side of the lease protocol.
#[derive(Clone)]
pub struct Leases {
    clock: Arc<dyn Clock>,
    store: LeaseStore,
    worker: String,
    ttl: Duration,
    /// Added to this worker's wall clock in the records it writes (tests
    /// of skewed clocks; the protocol never reads it).
    skew_ms: i64,
    /// The newest epoch seen of each lease, and when it was first seen.
    seen: Arc<Mutex<HashMap<LeaseKey, (u64, Instant)>>>,
}

/// A lease by (kind, name).
type LeaseKey = (String, String);

impl Leases {
    pub fn new(store: LeaseStore, worker: &str, ttl: Duration, skew_ms: i64) -> Leases {
        Self::with_clock(store, worker, ttl, skew_ms, Arc::new(SystemClock))
    }

    pub fn with_clock(
        store: LeaseStore,
        worker: &str,
        ttl: Duration,
        skew_ms: i64,
        clock: Arc<dyn Clock>,
    ) -> Leases {
        Leases {
            clock,
            store,
            worker: worker.to_string(),
            ttl,
            skew_ms,
            seen: Arc::default(),
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn store(&self) -> &LeaseStore {
        &self.store
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    fn wall_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.skew_ms
    }

    /// Remembers `epoch` of a lease; returns how long it has been the newest.
    fn age(&self, kind: &str, name: &str, epoch: u64) -> Duration {
        let now = self.now();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = seen
            .entry((kind.to_string(), name.to_string()))
            .or_insert((epoch, now));
        if entry.0 != epoch {
            *entry = (epoch, now);
        }
        now.saturating_duration_since(entry.1)
    }

    /// Forgets what was seen of leases not in `keep` (work that is gone).
    pub fn forget(&self, kind: &str, keep: &dyn Fn(&str) -> bool) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|(k, name), _| k != kind || keep(name));
    }

    /// Reads a lease and judges it.
    pub async fn observe(&self, kind: &str, name: &str) -> Result<Observed> {
        let entry = self.store.read(kind, name).await?;
        Ok(self.judge(kind, name, entry))
    }

    fn judge(&self, kind: &str, name: &str, entry: LeaseEntry) -> Observed {
        let epoch = entry.epoch();
        let (status, record) = match entry {
            LeaseEntry::Absent => (LeaseStatus::Free, None),
            LeaseEntry::Newer { format, .. } => (LeaseStatus::Newer { format }, None),
            LeaseEntry::Corrupt { message, .. } => {
                tracing::warn!(
                    kind,
                    name,
                    epoch,
                    "lease record is corrupt ({message}); it counts as held until it expires"
                );
                let expired = self.age(kind, name, epoch) >= self.ttl;
                let status = if expired {
                    LeaseStatus::Free
                } else {
                    LeaseStatus::Held {
                        holder: "(unreadable lease record)".into(),
                        note: Some(format!("corrupt lease record: {message}")),
                    }
                };
                (status, None)
            }
            LeaseEntry::Record(record) => {
                // Released, or unchanged for its TTL on this worker's clock.
                let expired = record.released
                    || self.age(kind, name, epoch) >= Duration::from_millis(record.ttl_ms);
                let status = if expired {
                    LeaseStatus::Free
                } else if record.holder == self.worker {
                    LeaseStatus::Mine
                } else {
                    LeaseStatus::Held {
                        holder: record.holder.clone(),
                        note: record.note.clone(),
                    }
                };
                (status, Some(record))
            }
        };
        Observed {
            epoch,
            status,
            record,
        }
    }

    fn record(&self, epoch: u64, released: bool, note: Option<String>) -> LeaseRecord {
        LeaseRecord {
            format: SERVICE_FORMAT,
            holder: self.worker.clone(),
            epoch,
            ttl_ms: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
            written_at_ms: self.wall_ms(),
            released,
            note,
        }
    }

    /// Takes a lease judged free at `observed` epoch; `None` if another
    /// worker wrote the next epoch first.
    pub async fn take(&self, kind: &str, name: &str, observed: u64) -> Result<Option<Held>> {
        let started = self.now();
        let epoch = observed + 1;
        if !self
            .store
            .write(kind, name, &self.record(epoch, false, None))
            .await?
        {
            return Ok(None);
        }
        tracing::info!(kind, name, epoch, worker = %self.worker, "lease taken");
        Ok(Some(Held {
            kind: kind.to_string(),
            name: name.to_string(),
            epoch,
            valid_until: started + self.ttl,
            renewed_at: started,
        }))
    }

    /// Whether `held` is due for renewal.
    pub fn due(&self, held: &Held) -> bool {
        self.now().saturating_duration_since(held.renewed_at) >= self.ttl / 3
    }

    /// Renews `held` (writes its next epoch), carrying `note`.
    pub async fn renew(&self, held: &mut Held, note: Option<String>) -> Renewal {
        let started = self.now();
        if started >= held.valid_until {
            return Renewal::Expired;
        }
        let epoch = held.epoch + 1;
        match self
            .store
            .write(&held.kind, &held.name, &self.record(epoch, false, note))
            .await
        {
            Ok(true) => {
                held.epoch = epoch;
                held.valid_until = started + self.ttl;
                held.renewed_at = started;
                if epoch > EPOCHS_KEPT {
                    if let Err(e) = self
                        .store
                        .prune(&held.kind, &held.name, epoch - EPOCHS_KEPT)
                        .await
                    {
                        tracing::debug!(lease = %held.name, "could not prune old lease epochs: {e}");
                    }
                }
                Renewal::Renewed
            }
            Ok(false) => Renewal::TakenOver,
            Err(e) if self.now() >= held.valid_until => {
                tracing::warn!(lease = %held.name, "lease renewal failed and the claim ran out: {e}");
                Renewal::Expired
            }
            Err(e) => Renewal::Pending(e.to_string()),
        }
    }

    /// Gives `held` up: its next epoch says released, so anyone may take it.
    pub async fn release(&self, held: &Held, note: Option<String>) -> Result<()> {
        let epoch = held.epoch + 1;
        if self
            .store
            .write(&held.kind, &held.name, &self.record(epoch, true, note))
            .await?
        {
            tracing::info!(kind = %held.kind, name = %held.name, epoch, "lease released");
        }
        Ok(())
    }
}

/// Rendezvous hashing: how much `worker` wants `item` (the highest score
/// among live workers takes it), the same on every worker.
pub fn score(item: &str, worker: &str) -> u64 {
    // FNV-1a, stable across processes and versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in item.bytes().chain([0]).chain(worker.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tidelake_store::WarehouseStore;

    use super::*;

    /// A clock moved by hand; a test's workers share it.
    struct Manual {
        base: Instant,
        offset_ms: AtomicU64,
    }

    impl Manual {
        fn new() -> Arc<Manual> {
            Arc::new(Manual {
                base: Instant::now(),
                offset_ms: AtomicU64::new(0),
            })
        }

        fn advance(&self, ms: u64) {
            self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl Clock for Manual {
        fn now(&self) -> Instant {
            self.base + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
        }
    }

    fn leases(worker: &str, store: &LeaseStore, skew_ms: i64, clock: &Arc<Manual>) -> Leases {
        let clock: Arc<dyn Clock> = clock.clone();
        Leases::with_clock(
            store.clone(),
            worker,
            Duration::from_millis(1000),
            skew_ms,
            clock,
        )
    }

    async fn memory() -> (WarehouseStore, LeaseStore) {
        let raw = WarehouseStore::open("memory://").await.unwrap();
        (raw.clone(), LeaseStore::new(raw))
    }

    fn is_held_by(status: &LeaseStatus, worker: &str) -> bool {
        matches!(status, LeaseStatus::Held { holder, .. } if holder == worker)
    }

    #[tokio::test]
    async fn a_lease_expires_only_after_the_ttl_on_the_observers_clock() {
        let (_, store) = memory().await;
        let clock = Manual::new();
        // Wall clocks hours apart change nothing: they are never compared.
        let a = leases("a", &store, 3_600_000, &clock);
        let b = leases("b", &store, -3_600_000, &clock);
        let mut held = a.take("job", "j", 0).await.unwrap().unwrap();
        assert!(is_held_by(
            &b.observe("job", "j").await.unwrap().status,
            "a"
        ));
        clock.advance(600);
        assert_eq!(a.renew(&mut held, None).await, Renewal::Renewed);
        clock.advance(600);
        // The renewal is a new epoch: b counts from when it saw it.
        assert!(is_held_by(
            &b.observe("job", "j").await.unwrap().status,
            "a"
        ));
        clock.advance(999);
        assert!(is_held_by(
            &b.observe("job", "j").await.unwrap().status,
            "a"
        ));
        clock.advance(1);
        let seen = b.observe("job", "j").await.unwrap();
        assert_eq!(seen.status, LeaseStatus::Free);
        // a's claim ran out before b judged the lease expired.
        assert!(clock.now() >= held.valid_until);
        let taken = b.take("job", "j", seen.epoch).await.unwrap().unwrap();
        assert_eq!(taken.epoch, 3);
        assert_eq!(a.renew(&mut held, None).await, Renewal::Expired);
    }

    #[tokio::test]
    async fn of_two_racing_workers_one_takes_the_lease_and_the_loser_is_told() {
        let (_, store) = memory().await;
        let clock = Manual::new();
        let a = leases("a", &store, 0, &clock);
        let b = leases("b", &store, 0, &clock);
        let (ta, tb) = tokio::join!(a.take("job", "j", 0), b.take("job", "j", 0));
        let (ta, tb) = (ta.unwrap(), tb.unwrap());
        assert!(ta.is_some() ^ tb.is_some());
        let (winner, mut held, loser) = match (ta, tb) {
            (Some(h), None) => (a, h, b),
            (None, Some(h)) => (b, h, a),
            _ => unreachable!(),
        };
        assert_eq!(
            winner.observe("job", "j").await.unwrap().status,
            LeaseStatus::Mine
        );
        // A holder whose next epoch someone else wrote has lost the lease.
        assert!(loser.take("job", "j", 1).await.unwrap().is_some());
        assert_eq!(winner.renew(&mut held, None).await, Renewal::TakenOver);
    }

    #[tokio::test]
    async fn released_leases_are_free_at_once_and_newer_ones_are_left_alone() {
        let (raw, store) = memory().await;
        let clock = Manual::new();
        let a = leases("a", &store, 0, &clock);
        let b = leases("b", &store, 0, &clock);
        let held = a.take("job", "j", 0).await.unwrap().unwrap();
        a.release(&held, Some("done".into())).await.unwrap();
        let seen = b.observe("job", "j").await.unwrap();
        assert_eq!((seen.epoch, seen.status), (2, LeaseStatus::Free));
        let newer = r#"{"format": 2, "holder": "future", "epoch": 1}"#;
        raw.put(
            "_leases/job/k/epoch-00000000000000000001.json",
            newer.into(),
        )
        .await
        .unwrap();
        b.observe("job", "k").await.unwrap();
        clock.advance(3_600_000);
        assert_eq!(
            b.observe("job", "k").await.unwrap().status,
            LeaseStatus::Newer { format: 2 }
        );
    }

    #[tokio::test]
    async fn a_corrupt_record_is_held_until_it_expires_then_taken_over() {
        let (raw, store) = memory().await;
        raw.put(
            "_leases/job/j/epoch-00000000000000000004.json",
            "{garbage".into(),
        )
        .await
        .unwrap();
        let clock = Manual::new();
        let a = leases("a", &store, 0, &clock);
        let seen = a.observe("job", "j").await.unwrap();
        assert!(matches!(seen.status, LeaseStatus::Held { .. }), "{seen:?}");
        clock.advance(1000);
        let seen = a.observe("job", "j").await.unwrap();
        assert_eq!(seen.status, LeaseStatus::Free);
        let held = a.take("job", "j", seen.epoch).await.unwrap().unwrap();
        assert_eq!(held.epoch, 5);
    }

    #[test]
    fn scores_spread_items_over_workers() {
        let workers = ["w1", "w2", "w3"];
        let mut counts = [0; 3];
        for i in 0..300 {
            let item = format!("job{i}");
            let best = (0..3).max_by_key(|&w| score(&item, workers[w])).unwrap();
            counts[best] += 1;
        }
        assert!(counts.iter().all(|&c| c > 60), "{counts:?}");
    }
}
