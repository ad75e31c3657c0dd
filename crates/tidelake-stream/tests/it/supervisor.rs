//! The supervisor: jobs in one process fail alone. A job whose query fails
//! at run time is reported, with its name and error, while another job of
//! the same process keeps committing, and its sink stays exact.

use std::collections::BTreeMap;

use tidelake_sql::SqlError;
use tidelake_stream::{JobCommit, JobState, RestartPolicy, Supervisor};
use tokio::sync::mpsc;

use super::*;

fn following() -> JobOptions {
    JobOptions {
        poll_interval: Duration::from_millis(5),
        ..JobOptions::default()
    }
}

/// Waits until each job of `wanted` has committed up to its source
/// snapshot (its progress is past it).
async fn committed_up_to(commits: &mut mpsc::UnboundedReceiver<JobCommit>, wanted: &[(&str, i64)]) {
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    while !wanted
        .iter()
        .all(|(job, snapshot)| next.get(*job).is_some_and(|n| n > snapshot))
    {
        let Some(commit) = commits.recv().await else {
            panic!("every job ended before committing {wanted:?}; committed: {next:?}");
        };
        next.insert(commit.job.clone(), commit.next_snapshot);
    }
}

#[tokio::test]
async fn a_job_failing_at_run_time_leaves_the_others_running() {
    let (_dir, s) = session().await;
    sql(
        &s,
        "CREATE TABLE db.src (k INT NOT NULL, v INT NOT NULL); \
         CREATE TABLE db.copy (k INT NOT NULL, v INT NOT NULL); \
         CREATE TABLE db.ratio (k INT NOT NULL, r INT); \
         INSERT INTO db.src VALUES (1, 10)",
    )
    .await;
    let copy = StreamingJob::prepare(
        &s,
        "copy",
        "INSERT INTO db.copy SELECT k, v FROM db.src",
        following(),
    )
    .await
    .unwrap();
    let ratio = StreamingJob::prepare(
        &s,
        "ratio",
        "INSERT INTO db.ratio SELECT k, 100 / v FROM db.src",
        following(),
    )
    .await
    .unwrap();
    let (sent, mut commits) = mpsc::unbounded_channel();
    let mut supervisor = Supervisor::new(RestartPolicy::default());
    for job in [copy, ratio] {
        let sent = sent.clone();
        supervisor
            .spawn(job, move |commit| {
                let _ = sent.send(commit.clone());
            })
            .unwrap();
    }
    drop(sent);
    let board = supervisor.status_board();
    let first = latest_source_snapshot(&s, "src").await;
    committed_up_to(&mut commits, &[("copy", first), ("ratio", first)]).await;

    // Division by zero is no transient error: the job fails for good.
    sql(&s, "INSERT INTO db.src VALUES (2, 0)").await;
    let failed = supervisor.next_finished().await.unwrap();
    assert_eq!(failed.name, "ratio");
    assert_eq!(failed.restarts, 0);
    let error = failed.result.unwrap_err();
    assert_eq!(error, StreamError::Sql(SqlError::DivisionByZero), "{error}");
    assert_eq!(
        board.status("ratio").unwrap().state,
        JobState::Failed(error)
    );

    sql(&s, "INSERT INTO db.src VALUES (3, 5)").await;
    sql(&s, "INSERT INTO db.src VALUES (4, 2), (5, 1)").await;
    let last = latest_source_snapshot(&s, "src").await;
    committed_up_to(&mut commits, &[("copy", last)]).await;
    let copy = board.status("copy").unwrap();
    assert_eq!(copy.state, JobState::Running);
    assert_eq!(copy.last_commit.unwrap().next_snapshot, last + 1);

    supervisor.stop();
    let stopped = supervisor.next_finished().await.unwrap();
    assert_eq!(stopped.name, "copy");
    let summary = stopped.result.unwrap();
    assert_eq!(summary.next_snapshot, Some(last + 1));
    assert_eq!(summary.rows_out, 5);
    assert!(supervisor.next_finished().await.is_none());
    assert_eq!(board.status("copy").unwrap().state, JobState::Stopped);

    assert_eq!(
        rows(&s, "SELECT * FROM db.copy").await,
        rows(&s, "SELECT * FROM db.src").await
    );
    assert_eq!(rows(&s, "SELECT * FROM db.ratio").await, ["1|10"]);
}

#[tokio::test]
async fn a_second_instance_is_refused_and_a_fenced_one_is_not_restarted() {
    let (_dir, s) = session().await;
    sums_tables(&s).await;
    let prepare = || StreamingJob::prepare(&s, "sums", SUMS_JOB, until_idle());
    let mut supervisor = Supervisor::new(RestartPolicy::default());
    supervisor.spawn(prepare().await.unwrap(), |_| {}).unwrap();
    let twice = supervisor.spawn(prepare().await.unwrap(), |_| {});
    assert!(
        matches!(&twice, Err(StreamError::AlreadySupervised { job }) if job == "sums"),
        "{twice:?}"
    );
    let outcomes = supervisor.run(std::future::pending(), |_| {}).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].result.as_ref().unwrap().commits, 1);

    // Two supervisors (two processes), both started before either reads
    // its progress: the instance that loses the race to commit is fenced,
    // and reported without a restart.
    sql(&s, "INSERT INTO db.src VALUES (1, 1)").await;
    let (job_a, job_b) = (prepare().await.unwrap(), prepare().await.unwrap());
    let (mut a, mut b) = (
        Supervisor::new(RestartPolicy::default()),
        Supervisor::new(RestartPolicy::default()),
    );
    a.spawn(job_a, |_| {}).unwrap();
    b.spawn(job_b, |_| {}).unwrap();
    let (ra, rb) = tokio::join!(
        a.run(std::future::pending(), |_| {}),
        b.run(std::future::pending(), |_| {})
    );
    let failed: Vec<_> = ra.iter().chain(&rb).filter(|o| o.result.is_err()).collect();
    assert_eq!(failed.len(), 1, "{ra:?} {rb:?}");
    assert!(
        matches!(failed[0].result, Err(StreamError::Fenced { .. })),
        "{failed:?}"
    );
    assert_eq!(failed[0].restarts, 0);
    assert_eq!(rows(&s, "SELECT * FROM db.sums").await, ["1|11", "2|20"]);
}
