//! One injected fault per table (and two together): each is the top
//! finding, with its evidence and threshold.

use std::collections::BTreeMap;

use tidelake_doctor::{Band, Severity};
use tidelake_engine::RowKind;

use crate::{evidence, rules, threshold, top, Fixture, MINUTE};

#[tokio::test]
async fn small_files_in_a_partition() {
    let fx = Fixture::new(false, &[]).await;
    fx.small_commits(1, 11).await;
    fx.small_commits(2, 2).await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "small-files");
    assert_eq!(f.partition.as_deref(), Some("p=1"));
    assert_eq!(evidence(f, "small_files"), 11);
    assert_eq!(
        threshold(f, "small_files"),
        10,
        "2 x compaction trigger x 1 bucket"
    );
    assert_eq!(rules(&report), vec!["small-files"], "partition p=2 is fine");
    assert_ne!(
        report.health.band,
        Band::Unhealthy,
        "a tiny table is never unhealthy"
    );
    assert!(report.health.layout < 100.0);
    assert_eq!(report.health.lsm, 100.0);
}

#[tokio::test]
async fn the_small_files_threshold_scales_with_the_compaction_trigger() {
    let fx = Fixture::new(false, &[("num-sorted-run.compaction-trigger", "2")]).await;
    fx.small_commits(1, 4).await;
    let f = &fx.diagnose().await.findings[0];
    assert_eq!((f.rule, threshold(f, "small_files")), ("small-files", 4));
}

#[tokio::test]
async fn the_score_falls_as_small_files_pile_up() {
    let fx = Fixture::new(false, &[]).await;
    let mut last = 100.0;
    for n in [10, 10, 20] {
        fx.small_commits(1, n).await;
        let score = fx.diagnose().await.health.score;
        assert!(score < last, "{score} < {last}");
        last = score;
    }
}

#[tokio::test]
async fn sorted_runs_at_the_stop_trigger() {
    let fx = Fixture::new(true, &[("bucket", "1"), ("write-only", "true")]).await;
    fx.small_commits(1, 8).await;
    fx.remove_option("write-only").await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "sorted-run-stall");
    assert_eq!(f.severity, Severity::High);
    assert_eq!((f.partition.as_deref(), f.bucket), (Some("p=1"), Some(0)));
    assert_eq!(evidence(f, "sorted_runs"), 8);
    assert_eq!(evidence(f, "stop_trigger"), 8);
    assert!(f.fixable);
}

#[tokio::test]
async fn a_write_only_table_nobody_compacts() {
    let fx = Fixture::new(true, &[("bucket", "1"), ("write-only", "true")]).await;
    fx.small_commits(1, 6).await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "write-only-uncompacted");
    assert_eq!(f.severity, Severity::Mid);
    assert_eq!(evidence(f, "max_sorted_runs"), 6);
    assert_eq!(threshold(f, "max_sorted_runs"), 5);
    assert_eq!(rules(&report), vec!["write-only-uncompacted"]);
}

#[tokio::test]
async fn snapshots_write_only_never_expires() {
    let fx = Fixture::new(
        false,
        &[
            ("write-only", "true"),
            ("snapshot.num-retained.min", "1"),
            ("snapshot.num-retained.max", "3"),
            ("snapshot.expire.limit", "2"),
        ],
    )
    .await;
    fx.small_commits(1, 8).await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "snapshot-backlog");
    assert_eq!(evidence(f, "expirable_snapshots"), 5);
    assert_eq!(threshold(f, "expirable_snapshots"), 2);
    assert!(f.cause.contains("write-only"), "{}", f.cause);
}

#[tokio::test]
async fn an_idle_table_past_its_time_retention() {
    let fx = Fixture::new(
        false,
        &[
            ("snapshot.num-retained.min", "1"),
            ("snapshot.expire.limit", "2"),
        ],
    )
    .await;
    fx.small_commits(1, 5).await;
    assert!(fx.diagnose().await.findings.is_empty());
    // Two hours later (time-retained is one hour), nothing committed.
    let report = fx.diagnose_at(fx.now_after(120 * MINUTE).await).await;
    let f = top(&report);
    assert_eq!(f.rule, "snapshot-backlog");
    assert_eq!(evidence(f, "expirable_snapshots"), 4);
}

#[tokio::test]
async fn a_consumer_pins_old_snapshots() {
    let fx = Fixture::new(
        false,
        &[
            ("snapshot.num-retained.min", "1"),
            ("snapshot.num-retained.max", "3"),
            ("snapshot.expire.limit", "2"),
        ],
    )
    .await;
    fx.small_commits(1, 1).await;
    fx.table().await.record_consumer("reader", 1).await.unwrap();
    fx.small_commits(2, 7).await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "consumer-pins-snapshots");
    assert_eq!(f.severity, Severity::High, "no consumer.expiration-time");
    assert_eq!(evidence(f, "pinned_snapshots"), 5);
    assert_eq!(evidence(f, "consumer_next_snapshot"), 1);
    assert!(!f.fixable, "deleting a consumer is advice only");
    assert_eq!(rules(&report), vec!["consumer-pins-snapshots"]);
}

/// A source `default.src` (append) with `n` snapshots.
async fn source(fx: &Fixture, options: &[(&str, &str)], n: i64) -> Fixture {
    let src = Fixture {
        catalog: fx.catalog.clone(),
        id: tidelake_engine::Identifier::new("default", "src"),
        dir: tempfile::tempdir().unwrap(),
    };
    src.catalog
        .create_table(
            &src.id,
            tidelake_testkit::table::tagged_spec(false, options),
            false,
        )
        .await
        .unwrap();
    src.small_commits(1, n).await;
    src
}

async fn record_position(sink: &Fixture, next: i64) {
    let properties = BTreeMap::from([(
        "tidelake.progress.job.totals.default.src".to_string(),
        next.to_string(),
    )]);
    sink.commit(&[(1, 1)], "job", RowKind::Insert, properties)
        .await;
}

#[tokio::test]
async fn a_job_whose_position_expired() {
    let sink = Fixture::new(true, &[("bucket", "1")]).await;
    let retention = [
        ("snapshot.num-retained.min", "1"),
        ("snapshot.num-retained.max", "3"),
    ];
    let _src = source(&sink, &retention, 6).await;
    record_position(&sink, 2).await;
    let report = sink.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "stream-position-expiring");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(evidence(f, "next_snapshot"), 2);
    assert_eq!(evidence(f, "source_earliest_snapshot"), 4);
}

#[tokio::test]
async fn a_job_that_stopped_and_one_that_lags() {
    let sink = Fixture::new(true, &[("bucket", "1")]).await;
    let src = source(&sink, &[], 5).await;
    record_position(&sink, 2).await;
    let src_latest = src.now_after(0).await;
    // 40 minutes on, the job has not moved.
    let report = sink.diagnose_at(src_latest + 40 * MINUTE).await;
    let f = top(&report);
    assert_eq!(f.rule, "job-stopped");
    assert_eq!(evidence(f, "unread_snapshots"), 4);
    assert_eq!(threshold(f, "lag_ms"), 30 * MINUTE);
    // 10 minutes on: lagging (4 snapshots and more than 5 minutes behind).
    let report = sink.diagnose_at(src_latest + 10 * MINUTE).await;
    let f = top(&report);
    assert_eq!(f.rule, "job-lagging");
    assert_eq!(f.severity, Severity::Mid);
    // One minute on: neither (the absolute gap is not reached).
    let report = sink.diagnose_at(src_latest + MINUTE).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[tokio::test]
async fn a_job_that_caught_up_is_fine() {
    let sink = Fixture::new(true, &[("bucket", "1")]).await;
    let src = source(&sink, &[], 3).await;
    record_position(&sink, 4).await;
    let report = sink.diagnose_at(src.now_after(120 * MINUTE).await).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[tokio::test]
async fn buckets_too_large_get_a_bucket_count() {
    let fx = Fixture::new(
        false,
        &[
            ("bucket", "1"),
            ("bucket-key", "id"),
            ("target-file-size", "4 kb"),
        ],
    )
    .await;
    let rows: Vec<(i32, i64)> = (0..20_000).map(|i| (1, i)).collect();
    fx.insert(&rows, "bulk").await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "bucket-too-large");
    let per_bucket = evidence(f, "bytes_per_bucket");
    assert_eq!(threshold(f, "bytes_per_bucket"), 2 * 4 * 4096);
    let recommended = evidence(f, "recommended_buckets");
    assert_eq!(recommended, (per_bucket + 4 * 4096 - 1) / (4 * 4096));
    assert!(
        f.fix.contains(&format!("'bucket' = '{recommended}'")),
        "{}",
        f.fix
    );
    assert!(!f.fixable);
}

#[tokio::test]
async fn a_skewed_bucket() {
    use std::sync::Arc;
    let fx = Fixture::new(
        false,
        &[
            ("bucket", "4"),
            ("bucket-key", "id"),
            ("target-file-size", "64 kb"),
        ],
    )
    .await;
    // 20,000 rows of one id (one bucket) with names that do not compress.
    let mut rng = tidelake_testkit::rng::Rng::new(11);
    let n = 20_000;
    let names: Vec<String> = (0..n).map(|_| format!("{:016x}", rng.next_u64())).collect();
    let table = fx.table().await;
    let batch = arrow_array::RecordBatch::try_new(
        table.arrow_schema(),
        vec![
            Arc::new(arrow_array::Int32Array::from(vec![1; n])),
            Arc::new(arrow_array::Int64Array::from(vec![7; n])),
            Arc::new(arrow_array::StringArray::from(names)),
        ],
    )
    .unwrap();
    let mut w = table.writer();
    w.write(batch, RowKind::Insert).await.unwrap();
    w.commit().await.unwrap();
    fx.insert(&[(1, 100), (1, 101), (1, 102), (1, 103), (1, 104)], "few")
        .await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "bucket-skew", "{:#?}", report.findings);
    assert!(evidence(f, "largest_bucket_bytes") >= threshold(f, "largest_bucket_bytes"));
}

#[tokio::test]
async fn partition_explosion() {
    let fx = Fixture::new(false, &[]).await;
    let rows: Vec<(i32, i64)> = (0..120).map(|p| (p, 1)).collect();
    fx.insert(&rows, "wide").await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "partition-explosion");
    assert_eq!(evidence(f, "partitions"), 120);
    assert_eq!(threshold(f, "partitions"), 100);
}

/// Writes an unreferenced file into the table's bucket folder, last
/// modified in 2020 (past any safety margin).
pub fn plant_orphan(fx: &Fixture, root: &str, name: &str) -> std::path::PathBuf {
    let dir = fx.dir.path().join(root).join("p=1").join("bucket-0");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, b"not referenced").unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
    file.set_modified(old).unwrap();
    path
}

#[tokio::test]
async fn orphan_files() {
    let fx = Fixture::new(false, &[]).await;
    fx.small_commits(1, 2).await;
    let root = fx.table().await.paths().root.clone();
    plant_orphan(&fx, &root, "data-orphan-1.parquet");
    plant_orphan(&fx, &root, "data-orphan-2.parquet");
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "orphan-files");
    assert_eq!(f.severity, Severity::Low);
    assert_eq!(evidence(f, "orphan_files"), 2);
}

#[tokio::test]
async fn fragmented_manifests() {
    let fx = Fixture::new(false, &[("manifest.merge-min-count", "100")]).await;
    fx.small_commits(1, 6).await;
    fx.set_option("manifest.merge-min-count", "4").await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "manifest-fragmented");
    assert!(evidence(f, "data_manifests") >= 6, "{f:#?}");
    assert_eq!(threshold(f, "data_manifests"), 5);
}

#[tokio::test]
async fn deleted_rows_in_deletion_vectors() {
    let fx = Fixture::new(
        true,
        &[("bucket", "1"), ("deletion-vectors.enabled", "true")],
    )
    .await;
    let rows: Vec<(i32, i64)> = (0..300).map(|i| (1, i)).collect();
    fx.insert(&rows, "a").await;
    let gone: Vec<(i32, i64)> = (0..200).map(|i| (1, i)).collect();
    fx.commit(&gone, "a", RowKind::Delete, BTreeMap::new())
        .await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "deletion-ratio", "{:#?}", report.findings);
    assert_eq!((f.partition.as_deref(), f.bucket), (Some("p=1"), Some(0)));
    assert_eq!(evidence(f, "deleted_rows"), 200);
    assert_eq!(evidence(f, "rows"), 300);
}

#[tokio::test]
async fn commits_that_retried_on_one_partition() {
    let fx = Fixture::new(false, &[]).await;
    for i in 0..2 {
        let retries = BTreeMap::from([("tidelake.commit.retries".to_string(), "2".to_string())]);
        fx.commit(&[(1, i)], "w", RowKind::Insert, retries).await;
    }
    fx.insert(&[(2, 1)], "w").await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "multi-writer-conflicts");
    assert_eq!(f.partition.as_deref(), Some("p=1"));
    assert_eq!(evidence(f, "commit_retries"), 4);
    assert_eq!(rules(&report), vec!["multi-writer-conflicts"]);
}

#[tokio::test]
async fn a_lookup_changelog_nothing_compacts() {
    let fx = Fixture::new(
        true,
        &[
            ("bucket", "1"),
            ("changelog-producer", "lookup"),
            ("write-only", "true"),
        ],
    )
    .await;
    fx.small_commits(1, 6).await;
    let report = fx.diagnose().await;
    let f = top(&report);
    assert_eq!(f.rule, "changelog-starved");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(evidence(f, "commits_without_changelog"), 6);
    assert!(rules(&report).contains(&"write-only-uncompacted"));
}

#[tokio::test]
async fn two_faults_are_both_reported() {
    let fx = Fixture::new(false, &[]).await;
    fx.small_commits(1, 12).await;
    let root = fx.table().await.paths().root.clone();
    plant_orphan(&fx, &root, "data-orphan.parquet");
    let report = fx.diagnose().await;
    assert_eq!(rules(&report), vec!["small-files", "orphan-files"]);
}
