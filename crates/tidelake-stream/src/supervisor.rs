//! Runs many jobs in one process, each in its own task, so that one job's
//! failure is that job's alone: it is reported (tracing, the status board,
//! its [`JobOutcome`]) and the others go on committing.
//!
//! A job that fails with a transient error (a commit conflict that outlasted
//! the job's own retries, store I/O) runs again after a backoff that doubles
//! up to a bound, at most [`RestartPolicy::max_restarts`] times in a row (a
//! run that commits resets the count). A restarted job resumes from the
//! progress recorded in its sink, so a restart neither loses nor repeats a
//! change. A fenced job (a second instance of a running job), or one whose
//! statement or data it cannot process, is never restarted.
//!
//! A stop (asked for with [`Supervisor::stop`], or by the shutdown future
//! given to [`Supervisor::run`]) ends every job after its current commit.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::{Id as TaskId, JoinSet};

use crate::error::{Result, StreamError};
use crate::job::{JobCommit, JobSummary, StreamingJob};

/// When and how often a job that failed with a transient error runs again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts in a row (without a commit between them) before the job is
    /// reported failed; 0 never restarts.
    pub max_restarts: u32,
    /// The wait before the first restart; it doubles with each one after.
    pub first_backoff: Duration,
    /// The longest wait between restarts.
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 3,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RestartPolicy {
    /// Reports every failure at once.
    pub fn never() -> Self {
        RestartPolicy {
            max_restarts: 0,
            ..RestartPolicy::default()
        }
    }

    /// The wait before restart number `attempt` (from 1) of a row.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// Where a supervised job is.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    Running,
    /// Failed with a transient error; runs again after a backoff.
    Restarting {
        attempt: u32,
        error: StreamError,
    },
    /// Ended without error: stopped, or at the bounds of its options.
    Stopped,
    Failed(StreamError),
}

/// What the supervisor knows of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobStatus {
    pub name: String,
    pub state: JobState,
    /// Commits over every run of the job.
    pub commits: u64,
    pub last_commit: Option<JobCommit>,
    /// Restarts over the job's life.
    pub restarts: u32,
}

/// How a supervised job ended.
#[derive(Clone, Debug, PartialEq)]
pub struct JobOutcome {
    pub name: String,
    /// What every run of the job did together, or the error that ended it.
    pub result: Result<JobSummary>,
    pub restarts: u32,
}

/// The statuses of a supervisor's jobs, readable while they run (clones
/// share one board).
#[derive(Clone, Debug, Default)]
pub struct StatusBoard {
    jobs: Arc<Mutex<BTreeMap<String, JobStatus>>>,
}

impl StatusBoard {
    /// Every job's status, by name.
    pub fn statuses(&self) -> Vec<JobStatus> {
        self.lock().values().cloned().collect()
    }

    pub fn status(&self, job: &str) -> Option<JobStatus> {
        self.lock().get(job).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, JobStatus>> {
        // A panic while updating a status leaves a status, not a broken one.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a job; false if one of that name is there already.
    fn add(&self, name: &str) -> bool {
        let mut jobs = self.lock();
        if jobs.contains_key(name) {
            return false;
        }
        jobs.insert(
            name.to_string(),
            JobStatus {
                name: name.to_string(),
                state: JobState::Running,
                commits: 0,
                last_commit: None,
                restarts: 0,
            },
        );
        true
    }

    fn update(&self, job: &str, change: impl FnOnce(&mut JobStatus)) {
        if let Some(status) = self.lock().get_mut(job) {
            change(status);
        }
    }
}

/// What the supervisor runs: a job, or a stand-in in tests.
pub(crate) trait Runnable: Send + Sync + 'static {
    fn name(&self) -> &str;

    fn run<'a>(
        &'a self,
        stop: watch::Receiver<bool>,
        on_commit: &'a mut (dyn FnMut(&JobCommit) + Send),
    ) -> BoxFuture<'a, Result<JobSummary>>;
}

impl Runnable for StreamingJob {
    fn name(&self) -> &str {
        StreamingJob::name(self)
    }

    fn run<'a>(
        &'a self,
        stop: watch::Receiver<bool>,
        on_commit: &'a mut (dyn FnMut(&JobCommit) + Send),
    ) -> BoxFuture<'a, Result<JobSummary>> {
        Box::pin(StreamingJob::run(self, stop, on_commit))
    }
}

/// Runs jobs, each in a task; see the module documentation.
pub struct Supervisor {
    policy: RestartPolicy,
    stop: watch::Sender<bool>,
    tasks: JoinSet<JobOutcome>,
    /// The job each task runs, to name a task that panicked.
    names: HashMap<TaskId, String>,
    board: StatusBoard,
}

impl Supervisor {
    pub fn new(policy: RestartPolicy) -> Self {
        Supervisor {
            policy,
            stop: watch::channel(false).0,
            tasks: JoinSet::new(),
            names: HashMap::new(),
            board: StatusBoard::default(),
        }
    }

    /// Starts running `job` at once; `on_commit` hears of each of its
    /// commits. Refused if a job of the same name is supervised already.
    pub fn spawn(
        &mut self,
        job: StreamingJob,
        on_commit: impl FnMut(&JobCommit) + Send + 'static,
    ) -> Result<()> {
        self.spawn_runnable(job, Box::new(on_commit))
    }

    pub(crate) fn spawn_runnable(
        &mut self,
        job: impl Runnable,
        on_commit: Box<dyn FnMut(&JobCommit) + Send>,
    ) -> Result<()> {
        let name = job.name().to_string();
        if !self.board.add(&name) {
            return Err(StreamError::AlreadySupervised { job: name });
        }
        let task = supervise(
            job,
            on_commit,
            self.stop.subscribe(),
            self.policy.clone(),
            self.board.clone(),
        );
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
        Ok(())
    }

    /// Asks every job to stop after its current commit (a job waiting to
    /// restart stops waiting, and is reported with its last error).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// The jobs' statuses, readable from elsewhere while they run.
    pub fn status_board(&self) -> StatusBoard {
        self.board.clone()
    }

    /// The next job to end, or `None` once every job has ended.
    pub async fn next_finished(&mut self) -> Option<JobOutcome> {
        let joined = self.tasks.join_next_with_id().await?;
        Some(match joined {
            Ok((id, outcome)) => {
                self.names.remove(&id);
                outcome
            }
            Err(e) => {
                let name = self.names.remove(&e.id()).unwrap_or_default();
                let error = StreamError::Panicked {
                    job: name.clone(),
                    message: e.to_string(),
                };
                tracing::error!(job = %name, "{error}");
                let mut restarts = 0;
                self.board.update(&name, |status| {
                    status.state = JobState::Failed(error.clone());
                    restarts = status.restarts;
                });
                JobOutcome {
                    name,
                    result: Err(error),
                    restarts,
                }
            }
        })
    }

    /// Waits for every job to end, handing each outcome to `on_finished` as
    /// it comes; once `shutdown` resolves, stops them all after their
    /// current commit. Returns the outcomes in the order the jobs ended.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut on_finished: impl FnMut(&JobOutcome),
    ) -> Vec<JobOutcome> {
        tokio::pin!(shutdown);
        let stop = self.stop.clone();
        let mut stopping = false;
        let mut outcomes = Vec::new();
        loop {
            tokio::select! {
                () = &mut shutdown, if !stopping => {
                    tracing::info!("stopping the jobs after their current commit");
                    stop.send_replace(true);
                    stopping = true;
                }
                next = self.next_finished() => match next {
                    Some(outcome) => {
                        on_finished(&outcome);
                        outcomes.push(outcome);
                    }
                    None => return outcomes,
                },
            }
        }
    }
}

/// A job's task: runs it until it ends, restarting it per the policy.
async fn supervise(
    job: impl Runnable,
    mut on_commit: Box<dyn FnMut(&JobCommit) + Send>,
    mut stop: watch::Receiver<bool>,
    policy: RestartPolicy,
    board: StatusBoard,
) -> JobOutcome {
    let name = job.name().to_string();
    // What runs that failed had committed.
    let mut earlier = JobSummary::default();
    let (mut restarts, mut in_a_row) = (0u32, 0u32);
    loop {
        board.update(&name, |status| status.state = JobState::Running);
        let mut this_run = JobSummary::default();
        let result = job
            .run(stop.clone(), &mut |commit: &JobCommit| {
                add_commit(&mut this_run, commit);
                board.update(&name, |status| {
                    status.commits += 1;
                    status.last_commit = Some(commit.clone());
                });
                on_commit(commit);
            })
            .await;
        let error = match result {
            Ok(summary) => {
                let total = combine(earlier, summary);
                tracing::info!(job = %name, ?total, restarts, "job stopped");
                board.update(&name, |status| status.state = JobState::Stopped);
                return JobOutcome {
                    name,
                    result: Ok(total),
                    restarts,
                };
            }
            Err(error) => error,
        };
        if this_run.commits > 0 {
            in_a_row = 0;
        }
        earlier = combine(earlier, this_run);
        let restart = error.is_transient() && in_a_row < policy.max_restarts && !*stop.borrow();
        if restart {
            in_a_row += 1;
            restarts += 1;
            let backoff = policy.backoff(in_a_row);
            tracing::warn!(job = %name, attempt = in_a_row, ?backoff, code = error.code(), "job failed with a transient error; restarting it: {error}");
            board.update(&name, |status| {
                status.state = JobState::Restarting {
                    attempt: in_a_row,
                    error: error.clone(),
                };
                status.restarts = restarts;
            });
            if !stopped_during(&mut stop, backoff).await {
                continue;
            }
        }
        tracing::error!(job = %name, code = error.code(), restarts, "job failed: {error}");
        board.update(&name, |status| {
            status.state = JobState::Failed(error.clone())
        });
        return JobOutcome {
            name,
            result: Err(error),
            restarts,
        };
    }
}

/// Waits `wait`, or less if a stop is asked for meanwhile; says whether it was.
async fn stopped_during(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        // A closed channel disables this branch: the wait is served whole.
        Ok(_) = stop.wait_for(|stopped| *stopped) => true,
    }
}

fn add_commit(summary: &mut JobSummary, commit: &JobCommit) {
    summary.commits += 1;
    summary.snapshots += commit.snapshots;
    summary.rows_in += commit.rows_in;
    summary.rows_out += commit.rows_out;
    summary.next_snapshot = Some(commit.next_snapshot);
}

/// Two runs one after the other.
fn combine(first: JobSummary, then: JobSummary) -> JobSummary {
    JobSummary {
        commits: first.commits + then.commits,
        snapshots: first.snapshots + then.snapshots,
        rows_in: first.rows_in + then.rows_in,
        rows_out: first.rows_out + then.rows_out,
        next_snapshot: then.next_snapshot.or(first.next_snapshot),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tidelake_sql::SqlError;
    use tokio::sync::mpsc;

    use super::*;

    /// What one run of a scripted job does.
    enum Run {
        Fail(StreamError),
        CommitThenFail(StreamError),
        Finish,
    }

    /// A stand-in job that runs a script, one step per run; past its end,
    /// it runs until stopped.
    struct Scripted {
        name: String,
        script: Mutex<VecDeque<Run>>,
        runs: Arc<AtomicU32>,
        /// Hears of every failing run.
        failed: Option<mpsc::UnboundedSender<()>>,
    }

    impl Scripted {
        fn new(name: &str, script: Vec<Run>) -> (Scripted, Arc<AtomicU32>) {
            let runs = Arc::new(AtomicU32::new(0));
            let job = Scripted {
                name: name.to_string(),
                script: Mutex::new(script.into()),
                runs: runs.clone(),
                failed: None,
            };
            (job, runs)
        }
    }

    impl Runnable for Scripted {
        fn name(&self) -> &str {
            &self.name
        }

        fn run<'a>(
            &'a self,
            mut stop: watch::Receiver<bool>,
            on_commit: &'a mut (dyn FnMut(&JobCommit) + Send),
        ) -> BoxFuture<'a, Result<JobSummary>> {
            Box::pin(async move {
                let run = self.runs.fetch_add(1, Ordering::SeqCst) as i64;
                let step = self.script.lock().ok().and_then(|mut s| s.pop_front());
                let error = match step {
                    Some(Run::Fail(error)) => error,
                    Some(Run::CommitThenFail(error)) => {
                        on_commit(&JobCommit {
                            job: self.name.clone(),
                            sink_snapshot: run + 1,
                            from_snapshot: run,
                            next_snapshot: run + 1,
                            snapshots: 1,
                            rows_in: 1,
                            rows_out: 1,
                        });
                        error
                    }
                    Some(Run::Finish) => return Ok(JobSummary::default()),
                    None => {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                        return Ok(JobSummary::default());
                    }
                };
                if let Some(failed) = &self.failed {
                    let _ = failed.send(());
                }
                Err(error)
            })
        }
    }

    fn io() -> StreamError {
        StreamError::Sql(SqlError::Io("connection reset".into()))
    }

    fn quick(max_restarts: u32) -> RestartPolicy {
        RestartPolicy {
            max_restarts,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        }
    }

    async fn outcome_of(job: Scripted, policy: RestartPolicy) -> JobOutcome {
        let mut supervisor = Supervisor::new(policy);
        supervisor.spawn_runnable(job, Box::new(|_| {})).unwrap();
        let mut outcomes = supervisor.run(std::future::pending(), |_| {}).await;
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let policy = RestartPolicy {
            max_restarts: 10,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
        };
        let waits: Vec<u64> = (1..=5).map(|a| policy.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn transient_failures_are_restarted_until_the_job_runs() {
        let (job, runs) = Scripted::new("j", vec![Run::Fail(io()), Run::Fail(io()), Run::Finish]);
        let outcome = outcome_of(job, quick(2)).await;
        assert_eq!(outcome.result, Ok(JobSummary::default()));
        assert_eq!(outcome.restarts, 2);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn restarts_in_a_row_are_bounded() {
        let (job, runs) = Scripted::new("j", (0..5).map(|_| Run::Fail(io())).collect());
        let outcome = outcome_of(job, quick(2)).await;
        assert_eq!(outcome.result, Err(io()));
        assert_eq!(outcome.restarts, 2);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_run_that_commits_resets_the_count_and_its_commits_add_up() {
        let script = vec![
            Run::CommitThenFail(io()),
            Run::CommitThenFail(io()),
            Run::CommitThenFail(io()),
            Run::Finish,
        ];
        let (job, runs) = Scripted::new("j", script);
        let outcome = outcome_of(job, quick(1)).await;
        assert_eq!(outcome.restarts, 3);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        let summary = outcome.result.unwrap();
        assert_eq!((summary.commits, summary.rows_out), (3, 3));
        assert_eq!(summary.next_snapshot, Some(3));
    }

    #[tokio::test]
    async fn fenced_and_other_errors_are_never_restarted() {
        let fenced = StreamError::Fenced {
            job: "j".into(),
            sink: "db.s".into(),
            recorded: "5".into(),
            started_from: "3".into(),
            detail: "fence".into(),
        };
        for error in [fenced, StreamError::Sql(SqlError::DivisionByZero)] {
            let (job, runs) = Scripted::new("j", vec![Run::Fail(error.clone()), Run::Finish]);
            let outcome = outcome_of(job, quick(5)).await;
            assert_eq!(outcome.result, Err(error));
            assert_eq!(outcome.restarts, 0);
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_for_a_restart() {
        let (mut job, runs) = Scripted::new("j", vec![Run::Fail(io()), Run::Finish]);
        let (failed, mut failures) = mpsc::unbounded_channel();
        job.failed = Some(failed);
        let mut supervisor = Supervisor::new(RestartPolicy {
            max_restarts: 1,
            first_backoff: Duration::from_secs(3600),
            max_backoff: Duration::from_secs(3600),
        });
        supervisor.spawn_runnable(job, Box::new(|_| {})).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = supervisor.run(
            async {
                let _ = stopped.await;
            },
            |_| {},
        );
        let (outcomes, ()) = tokio::join!(run, async {
            failures.recv().await;
            let _ = stop.send(());
        });
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].result, Err(io()));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_by_name() {
        struct Panics;
        impl Runnable for Panics {
            fn name(&self) -> &str {
                "boom"
            }
            fn run<'a>(
                &'a self,
                _stop: watch::Receiver<bool>,
                _on_commit: &'a mut (dyn FnMut(&JobCommit) + Send),
            ) -> BoxFuture<'a, Result<JobSummary>> {
                Box::pin(async { panic!("scripted panic") })
            }
        }
        let (other, _) = Scripted::new("calm", vec![Run::Finish]);
        let mut supervisor = Supervisor::new(quick(3));
        supervisor.spawn_runnable(Panics, Box::new(|_| {})).unwrap();
        supervisor.spawn_runnable(other, Box::new(|_| {})).unwrap();
        let board = supervisor.status_board();
        let outcomes = supervisor.run(std::future::pending(), |_| {}).await;
        let boom = outcomes.iter().find(|o| o.name == "boom").unwrap();
        assert!(
            matches!(&boom.result, Err(StreamError::Panicked { job, .. }) if job == "boom"),
            "{boom:?}"
        );
        assert!(matches!(
            board.status("boom").unwrap().state,
            JobState::Failed(StreamError::Panicked { .. })
        ));
        let calm = outcomes.iter().find(|o| o.name == "calm").unwrap();
        assert!(calm.result.is_ok());
    }
}
