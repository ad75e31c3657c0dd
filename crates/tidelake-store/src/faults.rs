//! Seeded fault injection for simulation tests of the layers above.
//!
//! [`WarehouseStore::with_faults`](crate::WarehouseStore::with_faults) wraps
//! a store so that its operations fail according to a [`FaultPlan`]. The same
//! seed and the same sequence of operations inject the same faults, so a
//! failing simulation can be replayed.
//!
//! Operations are numbered from 1 in the order they start, across every clone
//! of the wrapped store. Each counts once, whatever it does inside:
//! - reads: `get`, `get_range`, `head`, `exists`, `list`, `list_dir`;
//! - writes: `put`, `put_if_absent`, `create_dir`, `delete`, `delete_dir`.
//!
//! An operation can also be held before it runs until the test releases it
//! ([`WarehouseStore::hold_operation`](crate::WarehouseStore::hold_operation)),
//! for deterministic interleavings.
//!
//! Reads and writes fail *before* touching the backend, except the two
//! ambiguous-create faults: `put_if_absent` creates the object and then
//! either reports [`StoreError::Injected`] with `written: true`, as a commit
//! whose acknowledgement was lost would, or reports
//! [`PutOutcome::AlreadyExists`](crate::PutOutcome::AlreadyExists), as an S3
//! request that the HTTP client retried after the first try had created the
//! object does. Reads through
//! [`object_store()`](crate::WarehouseStore::object_store) bypass the faults.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::{Result, StoreError};

/// Which faults to inject, and the seed of their randomness.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    seed: u64,
    failing_operations: BTreeSet<u64>,
    read_failure_rate: f64,
    write_failure_rate: f64,
    ambiguous_create_rate: f64,
    exists_after_create_rate: f64,
    outage_after_ambiguous_create: bool,
}

impl FaultPlan {
    /// A plan that injects nothing yet, with the seed for its random faults.
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            ..FaultPlan::default()
        }
    }

    /// Fails the `n`th operation (1-based) before it runs; may be given several times.
    pub fn fail_operation(mut self, n: u64) -> FaultPlan {
        self.failing_operations.insert(n);
        self
    }

    /// Fails this fraction (0.0..=1.0) of reads before they run.
    pub fn fail_reads(mut self, rate: f64) -> FaultPlan {
        self.read_failure_rate = clamp_rate(rate);
        self
    }

    /// Fails this fraction (0.0..=1.0) of writes before they run.
    pub fn fail_writes(mut self, rate: f64) -> FaultPlan {
        self.write_failure_rate = clamp_rate(rate);
        self
    }

    /// Makes this fraction (0.0..=1.0) of successful `put_if_absent` calls
    /// report an error after the object was created.
    pub fn fail_after_create(mut self, rate: f64) -> FaultPlan {
        self.ambiguous_create_rate = clamp_rate(rate);
        self
    }

    /// Makes this fraction (0.0..=1.0) of successful `put_if_absent` calls
    /// report `AlreadyExists` for the object they created themselves.
    pub fn report_exists_after_create(mut self, rate: f64) -> FaultPlan {
        self.exists_after_create_rate = clamp_rate(rate);
        self
    }
}

impl FaultPlan {
    /// After the first `put_if_absent` that fails although it created its
    /// object, every later operation fails too: the network went down
    /// right after the write, so nothing can be read back.
    pub fn outage_after_ambiguous_create(mut self) -> FaultPlan {
        self.outage_after_ambiguous_create = true;
        self
    }
}

/// What a `put_if_absent` that created its object reports under a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterCreate {
    /// The truth: created.
    Created,
    /// An error, though the object was written.
    Fail,
    /// `AlreadyExists`, though this very call created the object.
    ReportExists,
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// Counters of a faulty store, for asserting that a simulation really hit faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    /// Operations started so far.
    pub operations: u64,
    /// Faults injected so far.
    pub injected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Read,
    Write,
}

/// The shared, mutable side of a fault plan.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    plan: FaultPlan,
    state: Mutex<InjectorState>,
}

#[derive(Debug)]
struct InjectorState {
    operations: u64,
    injected: u64,
    rng: SplitMix64,
    /// Set by an ambiguous create under `outage_after_ambiguous_create`.
    outage: bool,
    /// Operations to hold before they run, until notified.
    held: BTreeMap<u64, Arc<Notify>>,
}

impl FaultInjector {
    pub(crate) fn new(plan: FaultPlan) -> FaultInjector {
        let rng = SplitMix64(plan.seed);
        FaultInjector {
            plan,
            state: Mutex::new(InjectorState {
                operations: 0,
                injected: 0,
                rng,
                outage: false,
                held: BTreeMap::new(),
            }),
        }
    }

    /// Counts an operation and decides whether it fails before running;
    /// `Some(release)` when it is to wait for that first.
    pub(crate) fn before(
        &self,
        op: &'static str,
        kind: OpKind,
        path: &str,
    ) -> Result<Option<Arc<Notify>>> {
        let mut state = self.lock();
        state.operations += 1;
        // One draw per operation whatever the plan, so adding a rate does not
        // shift which operations the other faults hit.
        let draw = state.rng.next_unit();
        let rate = match kind {
            OpKind::Read => self.plan.read_failure_rate,
            OpKind::Write => self.plan.write_failure_rate,
        };
        let nth = self.plan.failing_operations.contains(&state.operations);
        if nth || draw < rate || state.outage {
            state.injected += 1;
            return Err(StoreError::Injected {
                op,
                path: path.to_string(),
                written: false,
            });
        }
        let n = state.operations;
        Ok(state.held.remove(&n))
    }

    /// Holds operation `n` before it runs until `release` is notified.
    pub(crate) fn hold(&self, n: u64, release: Arc<Notify>) {
        self.lock().held.insert(n, release);
    }

    /// Decides what a `put_if_absent` that created its object reports. One
    /// draw whatever the plan, so adding a rate shifts no other fault.
    pub(crate) fn after_create(&self) -> AfterCreate {
        let mut state = self.lock();
        let draw = state.rng.next_unit();
        let fail = self.plan.ambiguous_create_rate;
        let report = if draw < fail {
            AfterCreate::Fail
        } else if draw < fail + self.plan.exists_after_create_rate {
            AfterCreate::ReportExists
        } else {
            AfterCreate::Created
        };
        if report != AfterCreate::Created {
            state.injected += 1;
        }
        if report == AfterCreate::Fail && self.plan.outage_after_ambiguous_create {
            state.outage = true;
        }
        report
    }

    pub(crate) fn stats(&self) -> FaultStats {
        let state = self.lock();
        FaultStats {
            operations: state.operations,
            injected: state.injected,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InjectorState> {
        // The state stays consistent even if a holder panicked: recover it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A tiny deterministic generator (SplitMix64); statistical quality is ample
/// for picking which operations fail.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1).
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(injector: &FaultInjector, kinds: &[OpKind]) -> Vec<bool> {
        kinds
            .iter()
            .map(|kind| injector.before("get", *kind, "p").is_err())
            .collect()
    }

    #[test]
    fn nth_operation_fails_exactly_once() {
        let injector = FaultInjector::new(FaultPlan::new(7).fail_operation(3).fail_operation(5));
        let failed = outcomes(&injector, &[OpKind::Read; 6]);
        assert_eq!(failed, [false, false, true, false, true, false]);
        assert_eq!(
            injector.stats(),
            FaultStats {
                operations: 6,
                injected: 2
            }
        );
    }

    #[test]
    fn same_seed_same_faults_and_rate_is_respected() {
        let plan = FaultPlan::new(42).fail_reads(0.3);
        let kinds = vec![OpKind::Read; 2000];
        let first = outcomes(&FaultInjector::new(plan.clone()), &kinds);
        let second = outcomes(&FaultInjector::new(plan), &kinds);
        assert_eq!(first, second);
        let failures = first.iter().filter(|f| **f).count();
        assert!(
            (450..750).contains(&failures),
            "{failures} of 2000 failed at rate 0.3"
        );
        let other_seed = outcomes(
            &FaultInjector::new(FaultPlan::new(43).fail_reads(0.3)),
            &kinds,
        );
        assert_ne!(first, other_seed);
    }

    #[test]
    fn read_and_write_rates_are_separate() {
        let injector = FaultInjector::new(FaultPlan::new(1).fail_writes(1.0));
        assert!(outcomes(&injector, &[OpKind::Read; 50]).iter().all(|f| !f));
        assert!(outcomes(&injector, &[OpKind::Write; 50]).iter().all(|f| *f));
    }

    #[test]
    fn ambiguous_creates_are_drawn_by_rate() {
        let fail = FaultInjector::new(FaultPlan::new(1).fail_after_create(1.0));
        assert_eq!(fail.after_create(), AfterCreate::Fail);
        let exists = FaultInjector::new(FaultPlan::new(1).report_exists_after_create(1.0));
        assert_eq!(exists.after_create(), AfterCreate::ReportExists);
        assert_eq!(exists.stats().injected, 1);
        let quiet = FaultInjector::new(FaultPlan::new(1));
        assert_eq!(quiet.after_create(), AfterCreate::Created);
        assert_eq!(quiet.stats().injected, 0);
        let mixed = FaultInjector::new(
            FaultPlan::new(9)
                .fail_after_create(0.3)
                .report_exists_after_create(0.3),
        );
        let draws: Vec<AfterCreate> = (0..1000).map(|_| mixed.after_create()).collect();
        for kind in [
            AfterCreate::Fail,
            AfterCreate::ReportExists,
            AfterCreate::Created,
        ] {
            let n = draws.iter().filter(|d| **d == kind).count();
            assert!((200..500).contains(&n), "{kind:?}: {n} of 1000");
        }
    }

    #[test]
    fn an_outage_follows_the_first_ambiguous_create() {
        let injector = FaultInjector::new(
            FaultPlan::new(5)
                .fail_after_create(1.0)
                .outage_after_ambiguous_create(),
        );
        assert!(injector.before("get", OpKind::Read, "p").is_ok());
        assert_eq!(injector.after_create(), AfterCreate::Fail);
        assert!(outcomes(&injector, &[OpKind::Read, OpKind::Write])
            .iter()
            .all(|failed| *failed));
    }

    #[test]
    fn rates_are_clamped() {
        let plan = FaultPlan::new(0).fail_reads(f64::NAN).fail_writes(7.0);
        assert_eq!(plan.read_failure_rate, 0.0);
        assert_eq!(plan.write_failure_rate, 1.0);
    }
}
