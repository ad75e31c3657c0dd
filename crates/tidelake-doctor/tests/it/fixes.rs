//! `--fix`: the finding is gone, rows at the latest snapshot and at every
//! tag are unchanged, the fix's commit names its rule, and a second run
//! does nothing.

use tidelake_doctor::{apply_fixes, FIX_PROPERTY};

use crate::faults::plant_orphan;
use crate::{rules, Fixture, MINUTE};

/// Runs `--fix` (or a dry run) one minute after the latest commit.
async fn fix(fx: &Fixture, dry_run: bool) -> Vec<tidelake_doctor::FixAction> {
    let now = fx.now_after(MINUTE).await;
    let report = fx.diagnose_at(now).await;
    apply_fixes(&fx.catalog, &[report], dry_run, now)
        .await
        .unwrap_or_else(|e| panic!("fix: {e}"))
}

/// The table's snapshot ids, oldest first.
async fn snapshot_ids(fx: &Fixture) -> Vec<i64> {
    fx.table()
        .await
        .snapshots()
        .list_snapshot_ids()
        .await
        .unwrap()
}

/// A second `--fix` finds nothing to do and commits nothing.
async fn assert_second_fix_does_nothing(fx: &Fixture) {
    let ids = snapshot_ids(fx).await;
    assert!(
        fix(fx, false).await.is_empty(),
        "a second --fix does nothing"
    );
    assert_eq!(
        snapshot_ids(fx).await,
        ids,
        "a second --fix commits nothing"
    );
}

async fn latest_property(fx: &Fixture) -> Option<String> {
    let latest = fx
        .table()
        .await
        .snapshots()
        .latest_snapshot()
        .await
        .unwrap()?;
    latest.properties?.get(FIX_PROPERTY).cloned()
}

#[tokio::test]
async fn compaction_fixes_small_files_and_keeps_rows_and_tags() {
    let fx = Fixture::new(false, &[]).await;
    fx.small_commits(1, 6).await;
    fx.table().await.create_tag("before", None).await.unwrap();
    let at_tag = fx.rows(Some("before")).await;
    fx.small_commits(1, 6).await;
    fx.small_commits(2, 3).await;
    let latest = fx.rows(None).await;
    let snapshots = snapshot_ids(&fx).await;

    let planned = fix(&fx, true).await;
    assert_eq!(planned.len(), 1, "{planned:#?}");
    assert!(planned[0].outcome.is_none());
    let unchanged = snapshot_ids(&fx).await;
    assert_eq!(unchanged, snapshots, "a dry run commits nothing");

    let done = fix(&fx, false).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].rule, "small-files");
    assert_eq!(done[0].scope, "default.t p=1");
    assert_eq!(latest_property(&fx).await.as_deref(), Some("small-files"));
    assert!(fx.diagnose().await.findings.is_empty());
    assert_eq!(fx.rows(None).await, latest);
    assert_eq!(fx.rows(Some("before")).await, at_tag);
    // Partition p=2 (3 files) was not in the finding's scope.
    let table = fx.table().await;
    let plan = table.scan().plan().await.unwrap();
    let p2 = plan
        .splits()
        .iter()
        .find(|s| s.partition_path == "p=2/")
        .unwrap();
    assert_eq!(p2.files.len(), 3);

    assert_second_fix_does_nothing(&fx).await;
}

#[tokio::test]
async fn compaction_fixes_a_stalled_bucket() {
    let fx = Fixture::new(true, &[("bucket", "1"), ("write-only", "true")]).await;
    fx.small_commits(1, 8).await;
    fx.small_commits(2, 2).await;
    fx.remove_option("write-only").await;
    let latest = fx.rows(None).await;
    assert_eq!(rules(&fx.diagnose().await), vec!["sorted-run-stall"]);
    let done = fix(&fx, false).await;
    assert_eq!(done.len(), 1);
    assert_eq!(
        latest_property(&fx).await.as_deref(),
        Some("sorted-run-stall")
    );
    assert!(fx.diagnose().await.findings.is_empty());
    assert_eq!(fx.rows(None).await, latest);
    let table = fx.table().await;
    let plan = table.scan().plan().await.unwrap();
    let p2 = plan
        .splits()
        .iter()
        .find(|s| s.partition_path == "p=2/")
        .unwrap();
    assert_eq!(
        p2.files.len(),
        2,
        "the other partition's bucket is untouched"
    );
    assert!(fix(&fx, false).await.is_empty());
}

#[tokio::test]
async fn expiration_keeps_tagged_snapshots() {
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
    fx.small_commits(1, 2).await;
    fx.table().await.create_tag("old", Some(2)).await.unwrap();
    let at_tag = fx.rows(Some("old")).await;
    fx.small_commits(2, 6).await;
    let latest = fx.rows(None).await;
    assert_eq!(rules(&fx.diagnose().await), vec!["snapshot-backlog"]);
    let done = fix(&fx, false).await;
    assert_eq!(done.len(), 1);
    assert!(
        done[0]
            .outcome
            .as_deref()
            .unwrap_or("")
            .starts_with("5 snapshots"),
        "{done:#?}"
    );
    let ids = snapshot_ids(&fx).await;
    assert_eq!(ids, vec![6, 7, 8]);
    assert!(fx.diagnose().await.findings.is_empty());
    assert_eq!(fx.rows(None).await, latest);
    assert_eq!(fx.rows(Some("old")).await, at_tag);
    assert!(fix(&fx, false).await.is_empty());
}

#[tokio::test]
async fn orphans_go_and_live_files_stay() {
    let fx = Fixture::new(false, &[]).await;
    fx.small_commits(1, 3).await;
    let root = fx.table().await.paths().root.clone();
    let orphan = plant_orphan(&fx, &root, "data-orphan.parquet");
    let latest = fx.rows(None).await;
    let done = fix(&fx, false).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome.as_deref(), Some("1 files removed"));
    assert!(!orphan.exists());
    assert_eq!(fx.rows(None).await, latest);
    assert!(fx.diagnose().await.findings.is_empty());
    assert!(fix(&fx, false).await.is_empty());
}

#[tokio::test]
async fn deletion_vectors_are_compacted_away() {
    use std::collections::BTreeMap;
    use tidelake_engine::RowKind;
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
    let latest = fx.rows(None).await;
    assert_eq!(latest.len(), 100);
    fix(&fx, false).await;
    assert_eq!(
        latest_property(&fx).await.as_deref(),
        Some("deletion-ratio")
    );
    assert!(fx.diagnose().await.findings.is_empty());
    assert_eq!(fx.rows(None).await, latest);
}

#[tokio::test]
async fn advice_is_never_applied() {
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
    assert!(fix(&fx, false).await.is_empty());
    assert_eq!(fx.table().await.consumer("reader").await.unwrap(), Some(1));
    assert_eq!(rules(&fx.diagnose().await), vec!["consumer-pins-snapshots"]);
}

#[tokio::test]
async fn manifest_merge_fixes_fragmented_manifests() {
    let fx = Fixture::new(false, &[("manifest.merge-min-count", "100")]).await;
    fx.small_commits(1, 3).await;
    fx.table().await.create_tag("before", None).await.unwrap();
    let at_tag = fx.rows(Some("before")).await;
    fx.small_commits(2, 3).await;
    fx.set_option("manifest.merge-min-count", "4").await;
    assert_eq!(rules(&fx.diagnose().await), vec!["manifest-fragmented"]);
    let latest = fx.rows(None).await;
    let ids = snapshot_ids(&fx).await;

    let planned = fix(&fx, true).await;
    assert_eq!(planned.len(), 1, "{planned:#?}");
    assert_eq!(planned[0].rule, "manifest-fragmented");
    assert!(planned[0].outcome.is_none());
    let table = fx.table().await;
    assert_eq!(table.snapshots().list_snapshot_ids().await.unwrap(), ids);

    let done = fix(&fx, false).await;
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(done[0].scope, "default.t");
    assert_eq!(
        done[0].outcome.as_deref(),
        Some("snapshot 7: 6 manifests -> 1 (6 live files)")
    );
    assert_eq!(
        latest_property(&fx).await.as_deref(),
        Some("manifest-fragmented")
    );
    assert!(fx.diagnose().await.findings.is_empty());
    assert_eq!(fx.rows(None).await, latest);
    assert_eq!(fx.rows(Some("before")).await, at_tag);
    // The same files: a merge rewrites metadata only.
    let plan = fx.table().await.scan().plan().await.unwrap();
    let files: usize = plan.splits().iter().map(|s| s.files.len()).sum();
    assert_eq!(files, 6);

    assert_second_fix_does_nothing(&fx).await;
}
