//! A continuous job whose store lies about its commits: snapshots created
//! but reported failed, or reported as existing although the job created
//! them, plus failing reads and writes. The job is restarted after each
//! failure, as a supervisor would; its aggregation sink (where a change
//! applied twice shows as a doubled count) must end equal to the query run
//! in batch over the source: exactly once. On local disk and on S3 (moto).

use tidelake_engine::Catalog;
use tidelake_store::{FaultPlan, WarehouseStore};
use tidelake_testkit::moto::{MotoServer, BUCKET};

use super::*;

/// Runs the job until it has nothing new, restarting it after failures.
/// Returns how many runs failed.
async fn run_to_idle(faulty: &Session) -> usize {
    for failures in 0..200 {
        let result = async {
            let job = StreamingJob::prepare(faulty, "totals", JOB, until_idle()).await?;
            let (_stop, stopped) = watch::channel(false);
            job.run(stopped, &mut |_| {}).await
        }
        .await;
        match result {
            Ok(_) => return failures,
            // Expected here; kept visible for the log of a failing test.
            Err(e) => eprintln!("job run failed (restarting): {e}"),
        }
    }
    panic!("the job never got through 200 runs");
}

const JOB: &str = "INSERT INTO db.totals SELECT g, count(*), sum(v) FROM db.src GROUP BY g";

/// A source and an aggregation sink, where a change applied twice shows,
/// in the warehouse of `store`; a session on it without faults.
async fn setup(store: &WarehouseStore) -> Session {
    let clean = Session::with_catalog(Catalog::from_store(store.clone()))
        .await
        .unwrap();
    clean
        .execute(
            "CREATE DATABASE db;
             CREATE TABLE db.src (id BIGINT NOT NULL, g BIGINT, v BIGINT);
             CREATE TABLE db.totals (g BIGINT NOT NULL, n BIGINT, s BIGINT,
               PRIMARY KEY (g) NOT ENFORCED) WITH ('merge-engine' = 'aggregation',
               'fields.default-aggregate-function' = 'sum')",
        )
        .await
        .unwrap();
    clean
}

async fn local_store(dir: &tempfile::TempDir) -> WarehouseStore {
    WarehouseStore::open(dir.path().to_str().unwrap())
        .await
        .unwrap()
}

async fn exactly_once_under(base: WarehouseStore, plan: FaultPlan) {
    let clean = setup(&base).await;
    let store = WarehouseStore::with_faults(base, plan);
    let faulty = Session::with_catalog(Catalog::from_store(store.clone()))
        .await
        .unwrap();
    let mut failures = 0;
    for round in 0..8i64 {
        let values: Vec<String> = (0..5)
            .map(|i| format!("({}, {}, {})", round * 10 + i, i % 3, round + i))
            .collect();
        clean
            .execute(&format!("INSERT INTO db.src VALUES {}", values.join(", ")))
            .await
            .unwrap();
        failures += run_to_idle(&faulty).await;
        let expected = rows(&clean, "SELECT g, count(*), sum(v) FROM db.src GROUP BY g").await;
        assert_eq!(
            rows(&clean, "SELECT g, n, s FROM db.totals").await,
            expected,
            "round {round} ({failures} failed runs so far)"
        );
    }
    let stats = store.fault_stats().unwrap();
    assert!(stats.injected > 0, "no fault was injected: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stays_exactly_once_when_its_commits_are_reported_failed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new(21).fail_after_create(0.5).fail_reads(0.02);
    exactly_once_under(local_store(&dir).await, plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stays_exactly_once_when_its_own_snapshots_are_reported_taken() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new(22)
        .report_exists_after_create(0.5)
        .fail_writes(0.03);
    exactly_once_under(local_store(&dir).await, plan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stays_exactly_once_on_s3_whatever_its_commits_are_reported() {
    let Some(server) = MotoServer::start_or_skip() else {
        return;
    };
    for (seed, plan) in [
        (23, FaultPlan::new(23).fail_after_create(0.5)),
        (24, FaultPlan::new(24).report_exists_after_create(0.5)),
    ] {
        let uri = format!("s3://{BUCKET}/jobs-{seed}");
        let store = WarehouseStore::open_with_options(&uri, &server.options())
            .await
            .unwrap();
        exactly_once_under(store, plan).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stays_exactly_once_through_outages_after_its_commits() {
    // The job's first commit is created but reported failed, and the store
    // is down from then on: the run fails with an unknown outcome; the next run, on a fresh store
    // (the network is back), must find out from the sink what happened.
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().to_str().unwrap();
    let clean = setup(&local_store(&dir).await).await;
    let mut unknown = 0;
    for round in 0..6i64 {
        clean
            .execute(&format!(
                "INSERT INTO db.src VALUES ({round}, {}, 1), ({}, {}, 2)",
                round % 2,
                round + 100,
                round % 3
            ))
            .await
            .unwrap();
        let store = WarehouseStore::with_faults(
            WarehouseStore::open(uri).await.unwrap(),
            FaultPlan::new(30 + round as u64)
                .fail_after_create(1.0)
                .outage_after_ambiguous_create(),
        );
        let faulty = Session::with_catalog(Catalog::from_store(store))
            .await
            .unwrap();
        let job = StreamingJob::prepare(&faulty, "totals", JOB, until_idle())
            .await
            .unwrap();
        let (_stop, stopped) = watch::channel(false);
        if let Err(e) = job.run(stopped, &mut |_| {}).await {
            assert!(e.to_string().contains("unknown"), "{e}");
            unknown += 1;
        }
        // Catch up without faults, then compare.
        let job = StreamingJob::prepare(&clean, "totals", JOB, until_idle())
            .await
            .unwrap();
        let (_stop, stopped) = watch::channel(false);
        job.run(stopped, &mut |_| {}).await.unwrap();
        assert_eq!(
            rows(&clean, "SELECT g, n, s FROM db.totals").await,
            rows(&clean, "SELECT g, count(*), sum(v) FROM db.src GROUP BY g").await,
            "round {round}"
        );
    }
    // The first create of each run is its first commit: every run ends so.
    assert_eq!(unknown, 6, "runs that ended with an unknown outcome");
}
