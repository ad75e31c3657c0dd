//! `Table::compact_manifests`: a COMPACT snapshot that merges the latest
//! snapshot's data manifests and changes nothing a reader sees (the same
//! live files, rows at every snapshot and tag, index manifest, record
//! counts), through the ordinary commit (snapshot created if absent); a
//! second call finds nothing to do.

use std::collections::{BTreeMap, BTreeSet};

use tidelake_engine::introspect::{manifest_store, CommitKind};
use tidelake_engine::{Catalog, CompactOptions, Identifier, RowKind, Table};
use tidelake_testkit::oracle::{oracle_script, ORACLE_TIMEOUT};
use tidelake_testkit::process::run;
use tidelake_testkit::table::{load, on_disk, tagged_batch, tagged_rows, tagged_spec, TaggedRow};

type Row = TaggedRow;

async fn rows_at(table: &Table, snapshot: i64) -> Vec<Row> {
    tagged_rows(
        table
            .scan()
            .with_snapshot(Some(snapshot))
            .plan()
            .await
            .unwrap(),
    )
    .await
}

/// Every retained snapshot's rows, by id.
async fn all_rows(table: &Table) -> BTreeMap<i64, Vec<Row>> {
    let mut out = BTreeMap::new();
    for id in table.snapshots().list_snapshot_ids().await.unwrap() {
        out.insert(id, rows_at(table, id).await);
    }
    out
}

/// The live files of a snapshot: (partition, bucket, level, name).
async fn live_files(table: &Table, snapshot: i64) -> BTreeSet<(Vec<u8>, i32, i32, String)> {
    let plan = table
        .scan()
        .with_snapshot(Some(snapshot))
        .plan()
        .await
        .unwrap();
    plan.splits()
        .iter()
        .flat_map(|s| {
            s.files
                .iter()
                .map(|f| (s.partition.clone(), s.bucket, f.level, f.file_name.clone()))
        })
        .collect()
}

/// (manifests, DELETE entries) of a snapshot's data manifests.
async fn manifest_shape(table: &Table, snapshot: i64) -> (usize, i64) {
    let s = table.snapshots().snapshot(snapshot).await.unwrap().unwrap();
    let metas = manifest_store(table)
        .unwrap()
        .data_manifests(&s)
        .await
        .unwrap();
    (metas.len(), metas.iter().map(|m| m.num_deleted_files).sum())
}

async fn latest_id(table: &Table) -> i64 {
    table
        .snapshots()
        .latest_snapshot()
        .await
        .unwrap()
        .unwrap()
        .id
}

/// A keyed table (`p` partition, 2 buckets) whose writers never merge
/// manifests on their own (merge-min-count 100) and never expire: upserts
/// and deletes in both partitions, and a full compaction halfway (DELETE
/// entries in the manifests). Returns the tag it sets at snapshot 3.
async fn fragmented(options: &[(&str, &str)]) -> (Catalog, Identifier, tempfile::TempDir) {
    let mut all = vec![
        ("bucket", "2"),
        ("write-only", "true"),
        ("manifest.merge-min-count", "100"),
        ("snapshot.num-retained.min", "1000"),
        ("snapshot.num-retained.max", "1000"),
    ];
    all.extend_from_slice(options);
    let (catalog, id, dir) = on_disk(tagged_spec(true, &all)).await;
    let table = load(&catalog, &id).await;
    for i in 0..10i64 {
        if i == 5 {
            table
                .compact(CompactOptions {
                    full: true,
                    partition: None,
                })
                .await
                .unwrap();
            continue;
        }
        let rows: Vec<(i32, i64)> = (0..6).map(|k| ((k % 2) as i32, i * 3 + k)).collect();
        let mut w = table.writer();
        w.write(
            tagged_batch(&table, &rows, &format!("c{i}")),
            RowKind::Insert,
        )
        .await
        .unwrap();
        if i >= 2 {
            let gone = [(((i - 2) % 2) as i32, (i - 2) * 3)];
            w.write(tagged_batch(&table, &gone, "x"), RowKind::Delete)
                .await
                .unwrap();
        }
        w.commit().await.unwrap();
        if i == 2 {
            table.create_tag("early", None).await.unwrap();
        }
    }
    (catalog, id, dir)
}

#[tokio::test]
async fn merging_manifests_changes_no_row_at_any_snapshot() {
    let (catalog, id, _dir) = fragmented(&[]).await;
    let table = load(&catalog, &id).await;
    let before_id = latest_id(&table).await;
    let before = table
        .snapshots()
        .snapshot(before_id)
        .await
        .unwrap()
        .unwrap();
    let (manifests, deletes) = manifest_shape(&table, before_id).await;
    assert!(manifests >= 10, "{manifests} manifests");
    assert!(deletes > 0, "the compaction left DELETE entries");
    let history = all_rows(&table).await;
    let at_tag = tagged_rows(table.scan().with_tag("early").plan().await.unwrap()).await;
    let files = live_files(&table, before_id).await;

    let props = BTreeMap::from([("tidelake.doctor.fix".to_string(), "test".to_string())]);
    let done = table.compact_manifests(props.clone()).await.unwrap();
    assert_eq!(done.snapshot_id, Some(before_id + 1));
    assert_eq!(done.manifests_before, manifests);
    assert_eq!(done.manifests_after, 1, "{done:?}");
    assert_eq!(done.live_files, files.len());

    let table = load(&catalog, &id).await;
    let after = table
        .snapshots()
        .snapshot(before_id + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.commit_kind, CommitKind::Compact);
    assert_eq!(after.schema_id, before.schema_id);
    assert_eq!(after.total_record_count, before.total_record_count);
    assert_eq!(after.delta_record_count, Some(0));
    assert_eq!(after.index_manifest, before.index_manifest);
    assert_eq!(after.statistics, before.statistics);
    assert_eq!(after.watermark, before.watermark);
    assert_eq!(after.changelog_manifest_list, None);
    assert_eq!(
        after
            .properties
            .as_ref()
            .and_then(|p| p.get("tidelake.doctor.fix"))
            .map(String::as_str),
        Some("test")
    );
    assert_eq!(manifest_shape(&table, after.id).await, (1, 0));
    let store = manifest_store(&table).unwrap();
    assert!(
        store
            .read_list(&after.delta_manifest_list)
            .await
            .unwrap()
            .is_empty(),
        "no delta: nothing changed"
    );
    assert_eq!(live_files(&table, after.id).await, files);
    assert_eq!(rows_at(&table, after.id).await, history[&before_id]);
    // Time travel: every older snapshot and the tag still read the same.
    for (snapshot, rows) in &history {
        assert_eq!(
            &rows_at(&table, *snapshot).await,
            rows,
            "snapshot {snapshot}"
        );
    }
    let tag = tagged_rows(table.scan().with_tag("early").plan().await.unwrap()).await;
    assert_eq!(tag, at_tag);

    // Already compact: no snapshot, nothing written.
    let again = table.compact_manifests(props).await.unwrap();
    assert_eq!(again.snapshot_id, None);
    assert_eq!((again.manifests_before, again.manifests_after), (1, 1));
    assert_eq!(latest_id(&table).await, after.id);

    // Writers go on from the merged manifests.
    let mut w = table.writer();
    w.write(tagged_batch(&table, &[(1, 1000)], "late"), RowKind::Insert)
        .await
        .unwrap();
    let next = w.commit().await.unwrap().unwrap();
    let mut want = history[&before_id].clone();
    want.push((1, 1000, Some("late-1000".to_string())));
    want.sort();
    assert_eq!(rows_at(&table, next).await, want);
    assert_eq!(manifest_shape(&table, next).await, (2, 0));
}

#[tokio::test]
async fn a_small_target_size_gives_several_manifests_and_stays_put() {
    let (catalog, id, _dir) = fragmented(&[("manifest.target-file-size", "2 kb")]).await;
    let table = load(&catalog, &id).await;
    let before_id = latest_id(&table).await;
    let rows = rows_at(&table, before_id).await;
    let (manifests, _) = manifest_shape(&table, before_id).await;
    let done = table.compact_manifests(BTreeMap::new()).await.unwrap();
    assert!(done.snapshot_id.is_some());
    assert!(
        done.manifests_after >= 2 && done.manifests_after < manifests,
        "{done:?} from {manifests}"
    );
    let after = latest_id(&table).await;
    assert_eq!(
        manifest_shape(&table, after).await,
        (done.manifests_after, 0)
    );
    assert_eq!(rows_at(&table, after).await, rows);
    let again = table.compact_manifests(BTreeMap::new()).await.unwrap();
    assert_eq!(again.snapshot_id, None, "{again:?}");
    assert_eq!(latest_id(&table).await, after);
}

#[tokio::test]
async fn an_empty_table_has_nothing_to_merge() {
    let (catalog, id, _dir) = on_disk(tagged_spec(false, &[])).await;
    let table = load(&catalog, &id).await;
    let done = table.compact_manifests(BTreeMap::new()).await.unwrap();
    assert_eq!(done, tidelake_engine::ManifestCompaction::default());
    assert!(table.snapshots().latest_snapshot().await.unwrap().is_none());
}

#[tokio::test]
async fn deletion_vectors_and_progress_are_kept() {
    let (catalog, id, _dir) = on_disk(tagged_spec(
        true,
        &[
            ("bucket", "1"),
            ("deletion-vectors.enabled", "true"),
            ("manifest.merge-min-count", "100"),
        ],
    ))
    .await;
    let table = load(&catalog, &id).await;
    let rows: Vec<(i32, i64)> = (0..50).map(|k| (1, k)).collect();
    let mut w = table.writer();
    w.write(tagged_batch(&table, &rows, "a"), RowKind::Insert)
        .await
        .unwrap();
    w.commit().await.unwrap();
    for k in 0..5 {
        let mut w = table.writer();
        w.write(tagged_batch(&table, &[(1, k)], "x"), RowKind::Delete)
            .await
            .unwrap();
        let progress = BTreeMap::from([(
            "tidelake.progress.job.j.default.src".to_string(),
            k.to_string(),
        )]);
        w.commit_with(CommitKind::Append, progress).await.unwrap();
    }
    let latest = table.snapshots().latest_snapshot().await.unwrap().unwrap();
    assert!(latest.index_manifest.is_some(), "deletion vectors exist");
    let want = rows_at(&table, latest.id).await;
    assert_eq!(want.len(), 45);
    let done = table.compact_manifests(BTreeMap::new()).await.unwrap();
    let id = done.snapshot_id.unwrap();
    let after = table.snapshots().snapshot(id).await.unwrap().unwrap();
    assert_eq!(after.index_manifest, latest.index_manifest);
    assert_eq!(
        after
            .properties
            .as_ref()
            .and_then(|p| p.get("tidelake.progress.job.j.default.src"))
            .map(String::as_str),
        Some("4"),
        "progress is carried"
    );
    assert_eq!(rows_at(&table, id).await, want);
}

/// pypaimon 2.1 and pypaimon-rust 0.4 (independent readers) read the
/// merged snapshot and the one before it alike. Without the oracle's
/// Python it fails under CI and is skipped, with a note, elsewhere.
#[tokio::test]
async fn paimon_readers_read_the_merged_manifests() {
    let Some(python) = tidelake_testkit::python::or_skip("the manifest compaction oracle check")
    else {
        return;
    };
    let (catalog, id, dir) = fragmented(&[]).await;
    let table = load(&catalog, &id).await;
    let before = latest_id(&table).await;
    let want = rows_at(&table, before).await;
    let merged = table
        .compact_manifests(BTreeMap::new())
        .await
        .unwrap()
        .snapshot_id
        .unwrap();
    for implementation in ["pypaimon", "pypaimon-rust"] {
        for snapshot in [before, merged] {
            let out = run(
                std::process::Command::new(&python)
                    .arg(oracle_script())
                    .args(["read", "--warehouse"])
                    .arg(dir.path())
                    .args([
                        "--table",
                        "default.t",
                        "--impl",
                        implementation,
                        "--snapshot",
                    ])
                    .arg(snapshot.to_string()),
                "",
                ORACLE_TIMEOUT,
            );
            assert!(
                out.status.success(),
                "{implementation} failed on snapshot {snapshot}: {}",
                out.stderr
            );
            let lines: Vec<&str> = out
                .stdout
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect();
            assert_eq!(
                lines.len(),
                want.len(),
                "{implementation}, snapshot {snapshot}:\n{}",
                out.stdout
            );
            for (_, _, name) in &want {
                let name = name.as_deref().unwrap();
                assert!(
                    out.stdout.contains(&format!("\"{name}\"")),
                    "{implementation}, snapshot {snapshot} lacks {name}:\n{}",
                    out.stdout
                );
            }
        }
    }
}

/// Every manifest file (lists included) some retained snapshot refers to.
async fn referenced_manifests(table: &Table) -> BTreeSet<String> {
    let store = manifest_store(table).unwrap();
    let mut out = BTreeSet::new();
    for id in table.snapshots().list_snapshot_ids().await.unwrap() {
        let s = table.snapshots().snapshot(id).await.unwrap().unwrap();
        for list in [Some(&s.base_manifest_list), Some(&s.delta_manifest_list)]
            .into_iter()
            .chain([s.changelog_manifest_list.as_ref()])
            .flatten()
        {
            out.insert(list.clone());
            for meta in store.read_list(list).await.unwrap() {
                out.insert(meta.file_name);
            }
        }
        out.extend(s.index_manifest.clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_racing_a_writer_keep_every_row_and_leave_no_manifest_behind() {
    let (catalog, id, _dir) = on_disk(tagged_spec(
        false,
        &[
            ("manifest.merge-min-count", "100"),
            ("snapshot.num-retained.min", "1000"),
            ("snapshot.num-retained.max", "1000"),
        ],
    ))
    .await;
    let table = load(&catalog, &id).await;
    let writer = table.clone();
    let writes = tokio::spawn(async move {
        for i in 0..12i64 {
            let mut w = writer.writer();
            w.write(tagged_batch(&writer, &[(1, i)], "w"), RowKind::Insert)
                .await
                .unwrap();
            w.commit().await.unwrap();
        }
    });
    for _ in 0..12 {
        table.compact_manifests(BTreeMap::new()).await.unwrap();
        tokio::task::yield_now().await;
    }
    writes.await.unwrap();
    table.compact_manifests(BTreeMap::new()).await.unwrap();

    let want: Vec<Row> = (0..12).map(|i| (1, i, Some(format!("w-{i}")))).collect();
    let latest = latest_id(&table).await;
    assert_eq!(rows_at(&table, latest).await, want);
    assert_eq!(manifest_shape(&table, latest).await, (1, 0));
    // A merge shows what the snapshot before it showed.
    let mut previous: Option<Vec<Row>> = None;
    for id in table.snapshots().list_snapshot_ids().await.unwrap() {
        let s = table.snapshots().snapshot(id).await.unwrap().unwrap();
        let rows = rows_at(&table, id).await;
        if s.commit_kind == CommitKind::Compact {
            assert_eq!(Some(&rows), previous.as_ref(), "snapshot {id}");
        }
        previous = Some(rows);
    }
    // Attempts that lost deleted what they wrote.
    let listed: BTreeSet<String> = table
        .store()
        .list(&format!("{}/manifest", table.paths().root))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.path.rsplit('/').next().map(str::to_string))
        .collect();
    let referenced = referenced_manifests(&table).await;
    let stray: Vec<&String> = listed.difference(&referenced).collect();
    assert!(stray.is_empty(), "unreferenced manifests: {stray:?}");
}
