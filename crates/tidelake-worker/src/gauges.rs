//! What an autoscaler needs to know of a worker, updated every tick:
//! pending work (declared jobs nobody holds), job lag, slots in use.
//! Read them with [`Gauges::values`], or as Prometheus text with
//! [`Gauges::render`] for a `/metrics` endpoint.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A worker's gauges; clones share them.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: AtomicU64,
    slots_busy: AtomicU64,
    jobs_running: AtomicU64,
    maintenance_running: AtomicU64,
    pending_work: AtomicU64,
    job_lag_total: AtomicU64,
    job_lag_max: AtomicU64,
    live_workers: AtomicU64,
}

/// The gauges' values at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GaugeValues {
    /// Work this worker may hold at once (`--worker-slots`).
    pub slots: u64,
    /// Slots holding a job or a maintenance task.
    pub slots_busy: u64,
    pub jobs_running: u64,
    pub maintenance_running: u64,
    /// Declared running jobs that no worker holds (as this worker sees it).
    pub pending_work: u64,
    /// Source snapshots not yet in the sinks of this worker's jobs: summed,
    /// and the largest.
    pub job_lag_total: u64,
    pub job_lag_max: u64,
    /// Workers of the warehouse this worker sees alive (itself included).
    pub live_workers: u64,
}

impl Gauges {
    pub fn values(&self) -> GaugeValues {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let i = &self.inner;
        GaugeValues {
            slots: g(&i.slots),
            slots_busy: g(&i.slots_busy),
            jobs_running: g(&i.jobs_running),
            maintenance_running: g(&i.maintenance_running),
            pending_work: g(&i.pending_work),
            job_lag_total: g(&i.job_lag_total),
            job_lag_max: g(&i.job_lag_max),
            live_workers: g(&i.live_workers),
        }
    }

    pub(crate) fn set(&self, v: GaugeValues) {
        let s = |a: &AtomicU64, x: u64| a.store(x, Ordering::Relaxed);
        let i = &self.inner;
        s(&i.slots, v.slots);
        s(&i.slots_busy, v.slots_busy);
        s(&i.jobs_running, v.jobs_running);
        s(&i.maintenance_running, v.maintenance_running);
        s(&i.pending_work, v.pending_work);
        s(&i.job_lag_total, v.job_lag_total);
        s(&i.job_lag_max, v.job_lag_max);
        s(&i.live_workers, v.live_workers);
    }

    /// Whether the worker holds no work (jobs or maintenance).
    pub fn is_idle(&self) -> bool {
        self.values().slots_busy == 0
    }

    /// The gauges in Prometheus' text format.
    pub fn render(&self) -> String {
        let v = self.values();
        let mut out = String::new();
        for (name, help, value) in [
            (
                "tidelake_worker_slots",
                "Work items this worker may hold",
                v.slots,
            ),
            (
                "tidelake_worker_slots_busy",
                "Slots holding a job or maintenance task",
                v.slots_busy,
            ),
            (
                "tidelake_worker_jobs_running",
                "Jobs this worker runs",
                v.jobs_running,
            ),
            (
                "tidelake_worker_maintenance_running",
                "Maintenance tasks this worker runs",
                v.maintenance_running,
            ),
            (
                "tidelake_worker_pending_work",
                "Declared running jobs no worker holds",
                v.pending_work,
            ),
            (
                "tidelake_worker_job_lag_snapshots",
                "Source snapshots not yet in the sinks of this worker's jobs",
                v.job_lag_total,
            ),
            (
                "tidelake_worker_job_lag_max_snapshots",
                "The largest lag of this worker's jobs",
                v.job_lag_max,
            ),
            (
                "tidelake_worker_live_workers",
                "Workers this worker sees alive",
                v.live_workers,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_render_as_prometheus_text() {
        let gauges = Gauges::default();
        assert!(gauges.is_idle());
        gauges.set(GaugeValues {
            slots: 4,
            slots_busy: 2,
            pending_work: 3,
            ..GaugeValues::default()
        });
        assert!(!gauges.is_idle());
        let text = gauges.render();
        assert!(text.contains("tidelake_worker_slots_busy 2\n"), "{text}");
        assert!(text.contains(
            "# TYPE tidelake_worker_pending_work gauge\ntidelake_worker_pending_work 3\n"
        ));
    }
}
