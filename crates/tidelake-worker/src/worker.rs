//! A worker: one process's share of a warehouse's work. Every tick (a
//! fifth of the lease TTL) it
//! 1. renews its membership lease (`_leases/worker/<id>`) and the leases of
//!    the work it holds; work whose lease is lost stops at once;
//! 2. reads the job declarations: a job it holds that was suspended,
//!    dropped or changed stops after its current commit and its lease is
//!    released;
//! 3. balances: with N live workers and J runnable jobs each worker aims
//!    at ceil(J / N) jobs (at most its slots). Below that it takes free
//!    jobs, first those whose rendezvous score ranks it first among the
//!    live workers, others once they stayed free for two ticks; above it
//!    it stops and releases the jobs it ranks lowest;
//! 4. runs maintenance of `write-only` tables that is due (see
//!    `maintenance.rs`);
//! 5. updates its [`Gauges`].
//!
//! A job runs in its own task, guarded by its lease's deadline: the task
//! ends when the claim runs out, whatever it is doing. A job that fails is
//! reported in its lease record (sys.jobs shows it) and run again after a
//! doubling backoff; it resumes from the progress in its sink.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tidelake_engine::services::{DeclaredState, JobCatalog, JobDeclaration, LeaseStore};
use tidelake_engine::Catalog;
use tidelake_stream::{JobCommit, JobOptions, StreamingJob};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::gauges::{GaugeValues, Gauges};
use crate::lease::{score, Held, LeaseStatus, Leases, Renewal};
use crate::maintenance::Maintenance;
use crate::status::JOB_LEASE;

/// The lease kind of worker membership.
pub const WORKER_LEASE: &str = "worker";

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The worker's name in leases (default: host, process id and a
    /// random suffix).
    pub id: Option<String>,
    /// Jobs and maintenance tasks held at once.
    pub slots: usize,
    /// How long a lease holds without renewal.
    pub lease_ttl: Duration,
    /// How often each `write-only` table is compacted and expired.
    pub maintenance_interval: Duration,
    /// How the jobs run (polling, commit interval).
    pub job_options: JobOptions,
    /// Added to this worker's wall clock in what it writes (tests of
    /// skewed clocks).
    pub clock_skew_ms: i64,
    /// Appends every lease claim (`kind name holder epoch from_ms until_ms`,
    /// real wall clock) to this file, for tests that check that leases
    /// never overlap.
    pub lease_journal: Option<PathBuf>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            id: None,
            slots: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            lease_ttl: Duration::from_secs(10),
            maintenance_interval: Duration::from_secs(300),
            job_options: JobOptions::default(),
            clock_skew_ms: 0,
            lease_journal: None,
        }
    }
}

/// A job this worker holds.
struct RunningJob {
    lease: Held,
    declaration: JobDeclaration,
    /// Commits over every run, and their count when the last error came.
    commits: Arc<AtomicU64>,
    commits_at_error: u64,
    stop: watch::Sender<bool>,
    /// The lease's deadline, which the job's task obeys.
    deadline: watch::Sender<Instant>,
    task: Option<JoinHandle<std::result::Result<(), String>>>,
    /// The prepared job, once its task planned it (for its lag).
    prepared: Arc<Mutex<Option<Arc<StreamingJob>>>>,
    last_error: Option<String>,
    failures: u32,
    restart_at: Option<Instant>,
    /// Asked to stop (suspended, dropped, changed, rebalanced): its lease
    /// is released once its task has ended.
    stopping: bool,
}

/// Where lease claims are recorded for tests (see
/// [`WorkerConfig::lease_journal`]).
pub(crate) struct Journal {
    path: Option<PathBuf>,
    worker: String,
    ttl: Duration,
}

impl Journal {
    /// A claim: held from when its epoch was written for the TTL.
    pub(crate) fn record(&self, held: &Held) {
        let now = chrono::Utc::now().timestamp_millis();
        let started = now - i64::try_from(held.renewed_at.elapsed().as_millis()).unwrap_or(0);
        let until = started + i64::try_from(self.ttl.as_millis()).unwrap_or(0);
        self.append(held, held.epoch, started, until, "hold");
    }

    /// A release: the work stopped before this.
    pub(crate) fn released(&self, held: &Held) {
        let now = chrono::Utc::now().timestamp_millis();
        self.append(held, held.epoch + 1, now, now, "release");
    }

    fn append(&self, held: &Held, epoch: u64, from: i64, until: i64, what: &str) {
        let Some(path) = &self.path else {
            return;
        };
        let line = format!(
            "{} {} {} {epoch} {from} {until} {what}\n",
            held.kind, held.name, self.worker
        );
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!("cannot append to the lease journal: {e}");
        }
    }
}

/// A worker over one warehouse; see the module documentation.
pub struct Worker {
    catalog: Catalog,
    config: WorkerConfig,
    leases: Leases,
    jobs: JobCatalog,
    member: Option<Held>,
    running: BTreeMap<String, RunningJob>,
    /// Ticks in a row each job was seen free (not preferred by this worker).
    free_ticks: HashMap<String, u32>,
    maintenance: Maintenance,
    journal: Journal,
    gauges: Gauges,
    /// Free jobs seen at the last tick.
    pending: usize,
}

fn default_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

impl Worker {
    pub fn new(catalog: Catalog, config: WorkerConfig) -> Worker {
        let id = config.id.clone().unwrap_or_else(default_id);
        let store = LeaseStore::new(catalog.store().clone());
        let leases = Leases::new(store, &id, config.lease_ttl, config.clock_skew_ms);
        let maintenance = Maintenance::new(config.maintenance_interval);
        let journal = Journal {
            path: config.lease_journal.clone(),
            worker: id.clone(),
            ttl: config.lease_ttl,
        };
        Worker {
            journal,
            pending: 0,
            jobs: JobCatalog::new(catalog.store().clone()),
            catalog,
            config,
            leases,
            member: None,
            running: BTreeMap::new(),
            free_ticks: HashMap::new(),
            maintenance,
            gauges: Gauges::default(),
        }
    }

    pub fn id(&self) -> &str {
        self.leases.worker()
    }

    /// The worker's gauges, readable while it runs.
    pub fn gauges(&self) -> Gauges {
        self.gauges.clone()
    }

    /// Works until `shutdown` completes, then stops its jobs after their
    /// current commit and releases every lease.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tracing::info!(worker = %self.id(), slots = self.config.slots, ttl = ?self.config.lease_ttl, "worker started");
        let tick = (self.config.lease_ttl / 5).max(Duration::from_millis(50));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = interval.tick() => {}
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(worker = %self.id(), "worker tick failed (retried next tick): {e}");
            }
        }
        self.leave().await;
        Ok(())
    }

    async fn tick(&mut self) -> Result<()> {
        self.keep_membership().await?;
        self.renew_jobs().await;
        let live = self.live_workers().await?;
        let declared = self.declared().await?;
        self.follow_declarations(&declared);
        self.reap_tasks().await;
        self.balance(&declared, &live).await?;
        let busy = self.running.len();
        let slots_left = self.config.slots.saturating_sub(busy);
        let maintenance_running = self
            .maintenance
            .tick(
                &self.catalog,
                &self.leases,
                &live,
                slots_left,
                &self.journal,
            )
            .await;
        self.update_gauges(live.len(), maintenance_running).await;
        Ok(())
    }

    async fn keep_membership(&mut self) -> Result<()> {
        if let Some(held) = self.member.as_mut() {
            if !self.leases.due(held) {
                return Ok(());
            }
            match self.leases.renew(held, None).await {
                Renewal::Renewed | Renewal::Pending(_) => return Ok(()),
                Renewal::TakenOver | Renewal::Expired => self.member = None,
            }
        }
        let observed = self.leases.observe(WORKER_LEASE, self.id()).await?;
        let id = self.id().to_string();
        self.member = self.leases.take(WORKER_LEASE, &id, observed.epoch).await?;
        Ok(())
    }

    /// Renews the leases of held jobs that are due (carrying the job's last
    /// error, cleared once it commits again); stops jobs whose lease is lost.
    async fn renew_jobs(&mut self) {
        let mut lost = Vec::new();
        for (name, job) in self.running.iter_mut() {
            if job.last_error.is_some()
                && job.commits.load(Ordering::Relaxed) > job.commits_at_error
            {
                job.last_error = None;
                job.failures = 0;
            }
            if !self.leases.due(&job.lease) {
                continue;
            }
            match self
                .leases
                .renew(&mut job.lease, job.last_error.clone())
                .await
            {
                Renewal::Renewed => {
                    job.deadline.send_replace(job.lease.valid_until);
                    self.journal.record(&job.lease);
                }
                Renewal::Pending(e) => {
                    tracing::warn!(job = %name, "could not renew the job's lease yet: {e}")
                }
                Renewal::TakenOver | Renewal::Expired => lost.push(name.clone()),
            }
        }
        for name in lost {
            if let Some(job) = self.running.remove(&name) {
                tracing::warn!(job = %name, worker = %self.id(), "lost the job's lease: stopping it now");
                if let Some(task) = job.task {
                    task.abort();
                }
            }
        }
    }

    /// The live workers (this one included), sorted.
    async fn live_workers(&self) -> Result<Vec<String>> {
        let mut live = vec![self.id().to_string()];
        for name in self.leases.store().names(WORKER_LEASE).await? {
            if name == self.id() {
                continue;
            }
            let observed = self.leases.observe(WORKER_LEASE, &name).await?;
            match observed.status {
                LeaseStatus::Held { .. } | LeaseStatus::Mine => live.push(name),
                LeaseStatus::Free if observed.record.is_some() => {
                    // A worker that left or died: its folder goes.
                    tracing::info!(worker = %name, "worker is gone");
                    self.leases.store().remove(WORKER_LEASE, &name).await?;
                }
                _ => {}
            }
        }
        live.sort();
        Ok(live)
    }

    /// Declared jobs that should run, by name.
    async fn declared(&self) -> Result<BTreeMap<String, JobDeclaration>> {
        let mut out = BTreeMap::new();
        for (name, declared) in self.jobs.list().await? {
            match declared {
                Ok(d) if d.state == DeclaredState::Running => {
                    out.insert(name, d);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(job = %name, "cannot read the job's declaration: {e}"),
            }
        }
        Ok(out)
    }

    /// Asks held jobs that are no longer declared as they run to stop.
    fn follow_declarations(&mut self, declared: &BTreeMap<String, JobDeclaration>) {
        for (name, job) in self.running.iter_mut() {
            let current = declared
                .get(name)
                .is_some_and(|d| d.version == job.declaration.version);
            if !current && !job.stopping {
                tracing::info!(job = %name, "job suspended, dropped or changed: stopping it after its current commit");
                job.stopping = true;
                job.stop.send_replace(true);
            }
        }
    }

    /// Handles ended tasks: releases stopped jobs, schedules restarts of
    /// failed ones, starts those due.
    async fn reap_tasks(&mut self) {
        let mut released = Vec::new();
        for (name, job) in self.running.iter_mut() {
            if job.task.as_ref().is_some_and(|t| t.is_finished()) {
                let result = match job.task.take() {
                    Some(task) => task.await.unwrap_or_else(|e| Err(e.to_string())),
                    None => Ok(()),
                };
                if !job.stopping {
                    job.failures += 1;
                    let wait = backoff(job.failures);
                    if let Err(e) = &result {
                        tracing::warn!(job = %name, ?wait, "job failed; running it again after a backoff: {e}");
                        job.last_error = Some(e.clone());
                        job.commits_at_error = job.commits.load(Ordering::Relaxed);
                    }
                    job.restart_at = Some(Instant::now() + wait);
                }
            }
            if job.stopping && job.task.is_none() {
                released.push(name.clone());
            }
        }
        for name in released {
            if let Some(job) = self.running.remove(&name) {
                self.journal.released(&job.lease);
                if let Err(e) = self.leases.release(&job.lease, job.last_error).await {
                    tracing::warn!(job = %name, "could not release the job's lease (it expires): {e}");
                }
            }
        }
        let due: Vec<String> = self
            .running
            .iter()
            .filter(|(_, j)| j.task.is_none() && j.restart_at.is_some_and(|t| t <= Instant::now()))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.start(&name);
        }
    }

    /// Starts (or restarts) the task of a held job.
    fn start(&mut self, name: &str) {
        let catalog = self.catalog.clone();
        let options = self.config.job_options.clone();
        let Some(job) = self.running.get_mut(name) else {
            return;
        };
        job.stop.send_replace(false);
        job.restart_at = None;
        let stop = job.stop.subscribe();
        let deadline = job.deadline.subscribe();
        let prepared = job.prepared.clone();
        let commits = job.commits.clone();
        let d = job.declaration.clone();
        let task = async move {
            let job =
                StreamingJob::prepare_in(&catalog, &d.database, &d.name, &d.statement, options)
                    .await
                    .map_err(|e| e.to_string())?;
            let job = Arc::new(job);
            *prepared.lock().unwrap_or_else(PoisonError::into_inner) = Some(job.clone());
            let mut on_commit = |commit: &JobCommit| {
                commits.fetch_add(1, Ordering::Relaxed);
                tracing::info!(job = %commit.job, sink_snapshot = commit.sink_snapshot, next = commit.next_snapshot, rows_out = commit.rows_out, "job committed");
            };
            let run = job.run(stop, &mut on_commit);
            guarded(run, deadline)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        job.task = Some(tokio::spawn(task));
    }

    /// Takes free jobs up to this worker's share, or gives up the excess.
    async fn balance(
        &mut self,
        declared: &BTreeMap<String, JobDeclaration>,
        live: &[String],
    ) -> Result<()> {
        let runnable = declared.len();
        let share = runnable.div_ceil(live.len().max(1)).min(self.config.slots);
        let mine: Vec<String> = self
            .running
            .iter()
            .filter(|(_, j)| !j.stopping)
            .map(|(n, _)| n.clone())
            .collect();
        if mine.len() > share {
            let mut ranked = mine.clone();
            let me = self.id().to_string();
            ranked.sort_by_key(|n| score(n, &me));
            for name in ranked.into_iter().take(mine.len() - share) {
                if let Some(job) = self.running.get_mut(&name) {
                    tracing::info!(job = %name, share, "rebalancing: handing the job over");
                    job.stopping = true;
                    job.stop.send_replace(true);
                }
            }
            return Ok(());
        }
        let me = self.id().to_string();
        let mut room = share.saturating_sub(mine.len());
        let mut free = 0;
        self.free_ticks.retain(|n, _| declared.contains_key(n));
        self.leases.forget(JOB_LEASE, &|n| declared.contains_key(n));
        for (name, declaration) in declared {
            if self.running.contains_key(name) {
                continue;
            }
            let observed = self.leases.observe(JOB_LEASE, name).await?;
            if observed.status != LeaseStatus::Free && observed.status != LeaseStatus::Mine {
                self.free_ticks.remove(name);
                continue;
            }
            free += 1;
            let ticks = self.free_ticks.entry(name.clone()).or_insert(0);
            *ticks += 1;
            let preferred = live
                .iter()
                .max_by_key(|w| score(name, w))
                .map(String::as_str)
                == Some(me.as_str());
            if room == 0 || !(preferred || *ticks > 2) {
                continue;
            }
            let Some(held) = self.leases.take(JOB_LEASE, name, observed.epoch).await? else {
                continue;
            };
            self.journal.record(&held);
            free -= 1;
            room -= 1;
            self.free_ticks.remove(name);
            self.adopt(declaration, held);
        }
        self.pending = free;
        Ok(())
    }

    /// Starts running a job whose lease was just taken.
    fn adopt(&mut self, declaration: &JobDeclaration, lease: Held) {
        let name = declaration.name.clone();
        tracing::info!(job = %name, worker = %self.id(), epoch = lease.epoch, "running job");
        let job = RunningJob {
            deadline: watch::channel(lease.valid_until).0,
            lease,
            declaration: declaration.clone(),
            commits: Arc::default(),
            commits_at_error: 0,
            stop: watch::channel(false).0,
            task: None,
            prepared: Arc::default(),
            last_error: None,
            failures: 0,
            restart_at: None,
            stopping: false,
        };
        self.running.insert(name.clone(), job);
        self.start(&name);
    }

    async fn update_gauges(&mut self, live: usize, maintenance_running: usize) {
        let (mut total, mut max) = (0u64, 0u64);
        for job in self.running.values() {
            let prepared = job
                .prepared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(prepared) = prepared {
                if let Ok(position) = prepared.position().await {
                    let lag = u64::try_from(position.lag()).unwrap_or(0);
                    total += lag;
                    max = max.max(lag);
                }
            }
        }
        let jobs = self.running.len() as u64;
        self.gauges.set(GaugeValues {
            slots: self.config.slots as u64,
            slots_busy: jobs + maintenance_running as u64,
            jobs_running: jobs,
            maintenance_running: maintenance_running as u64,
            pending_work: self.pending as u64,
            job_lag_total: total,
            job_lag_max: max,
            live_workers: live as u64,
        });
    }

    /// Stops every job after its current commit (waiting at most the
    /// lease TTL), releases every lease, and leaves the membership.
    async fn leave(&mut self) {
        for job in self.running.values() {
            job.stop.send_replace(true);
        }
        let deadline = Instant::now() + self.config.lease_ttl;
        for (name, job) in std::mem::take(&mut self.running) {
            if let Some(mut task) = job.task {
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, &mut task).await.is_err() {
                    tracing::warn!(job = %name, "job did not stop in time; its lease expires instead");
                    task.abort();
                    continue;
                }
            }
            self.journal.released(&job.lease);
            if let Err(e) = self.leases.release(&job.lease, job.last_error).await {
                tracing::warn!(job = %name, "could not release the job's lease: {e}");
            }
        }
        self.maintenance.leave(&self.leases).await;
        if let Some(member) = self.member.take() {
            let _ = self.leases.release(&member, None).await;
            let _ = self.leases.store().remove(WORKER_LEASE, self.id()).await;
        }
        tracing::info!(worker = %self.id(), "worker stopped");
    }
}

/// Runs `work` until it ends or the deadline (which renewals move) passes.
async fn guarded<T>(
    work: impl Future<Output = tidelake_stream::Result<T>>,
    mut deadline: watch::Receiver<Instant>,
) -> tidelake_stream::Result<T> {
    tokio::pin!(work);
    loop {
        let until = tokio::time::Instant::from_std(*deadline.borrow_and_update());
        tokio::select! {
            result = &mut work => return result,
            changed = deadline.changed() => {
                if changed.is_err() {
                    // The worker dropped the job: stop with it.
                    return Err(lease_lost());
                }
            }
            () = tokio::time::sleep_until(until) => return Err(lease_lost()),
        }
    }
}

fn lease_lost() -> tidelake_stream::StreamError {
    tidelake_sql::SqlError::Execution(
        "the job's lease ran out before it could be renewed: stopped so that no two workers run it at once".into(),
    )
    .into()
}
