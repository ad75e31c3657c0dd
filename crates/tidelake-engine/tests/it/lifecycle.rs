//! Snapshot lifecycle through the engine's API: expiration (with tags,
//! consumers and an interrupted run), rollback, and orphan-file removal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use tidelake_engine::manifests::ManifestStore;
use tidelake_engine::{
    Catalog, CompactOptions, ExpireOptions, Identifier, OrphanOptions, RowKind, Table,
};
use tidelake_store::{FaultPlan, WarehouseStore};
use tidelake_testkit::oracle::{oracle_script, ORACLE_TIMEOUT};
use tidelake_testkit::process::run;
use tidelake_testkit::table::{on_disk, tagged_batch, tagged_rows, tagged_spec, TaggedRow};

type Row = TaggedRow;

async fn read_snapshot(table: &Table, id: i64) -> Vec<Row> {
    tagged_rows(table.scan().with_snapshot(Some(id)).plan().await.unwrap()).await
}

async fn read_tag(table: &Table, tag: &str) -> Vec<Row> {
    tagged_rows(table.scan().with_tag(tag).plan().await.unwrap()).await
}

async fn setup(options: &[(&str, &str)]) -> (Catalog, Identifier, tempfile::TempDir) {
    on_disk(tagged_spec(true, options)).await
}

/// Options that keep automatic expiration out of the way, and merge
/// manifests often so that old files really become unreferenced.
const MANUAL: &[(&str, &str)] = &[
    ("snapshot.num-retained.min", "1000"),
    ("snapshot.num-retained.max", "1000"),
    ("manifest.merge-min-count", "3"),
];

/// Commits `n` times: upserts across two partitions, deletes, and a full
/// compaction every fourth commit (which removes files: DELETE entries).
/// Returns the rows every snapshot reads (writers may add compaction
/// snapshots of their own), checked against a model for each commit.
async fn commit_history(table: &Table, n: usize) -> BTreeMap<i64, Vec<Row>> {
    let mut expected = BTreeMap::new();
    let mut model: HashMap<(i32, i64), String> = HashMap::new();
    for i in 0..n {
        let id = if i % 4 == 3 {
            table
                .compact(CompactOptions {
                    full: true,
                    partition: None,
                })
                .await
                .unwrap()
                .snapshot_id
                .expect("a full compaction commits")
        } else {
            let mut w = table.writer();
            let base = (i as i64) * 3;
            let upserts: Vec<(i32, i64)> = (base..base + 5).map(|k| ((k % 2) as i32, k)).collect();
            w.write(
                tagged_batch(table, &upserts, &format!("c{i}")),
                RowKind::Insert,
            )
            .await
            .unwrap();
            for (p, k) in &upserts {
                model.insert((*p, *k), format!("c{i}-{k}"));
            }
            if i >= 2 {
                let k = base - 4;
                let gone = [((k % 2) as i32, k)];
                w.write(tagged_batch(table, &gone, "x"), RowKind::Delete)
                    .await
                    .unwrap();
                model.remove(&gone[0]);
            }
            w.commit().await.unwrap().expect("a write commits")
        };
        let rows = read_snapshot(table, id).await;
        let mut want: Vec<Row> = model
            .iter()
            .map(|((p, k), v)| (*p, *k, Some(v.clone())))
            .collect();
        want.sort();
        assert_eq!(rows, want, "snapshot {id} reads what was written");
        expected.insert(id, rows);
    }
    let mut all = BTreeMap::new();
    for id in table.snapshots().list_snapshot_ids().await.unwrap() {
        let rows = read_snapshot(table, id).await;
        if let Some(committed) = expected.get(&id) {
            assert_eq!(&rows, committed, "snapshot {id} still reads the same");
        }
        all.insert(id, rows);
    }
    assert_eq!(all.keys().next(), Some(&1));
    assert_eq!(
        all.len() as i64,
        *all.keys().last().unwrap(),
        "ids are contiguous"
    );
    all
}

/// Every file under the table folder, relative to the warehouse.
async fn table_files(table: &Table) -> BTreeSet<String> {
    table
        .store()
        .list(&table.paths().root)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect()
}

fn names(files: &BTreeSet<String>) -> BTreeSet<String> {
    files
        .iter()
        .map(|f| f.rsplit('/').next().unwrap().to_string())
        .collect()
}

/// Checks that every file a snapshot (or tag) references exists: manifest
/// lists, manifests, index manifest, and each live data file.
async fn assert_complete(table: &Table, snapshot: &tidelake_format::snapshot::Snapshot) {
    let present = names(&table_files(table).await);
    let ms = ManifestStore::new(table.store().clone(), table.paths().clone(), "zstd").unwrap();
    for list in [&snapshot.base_manifest_list, &snapshot.delta_manifest_list] {
        assert!(
            present.contains(list),
            "snapshot {}: list {list} missing",
            snapshot.id
        );
    }
    if let Some(index) = &snapshot.index_manifest {
        assert!(present.contains(index), "index manifest {index} missing");
    }
    let metas = ms.data_manifests(snapshot).await.unwrap();
    for m in &metas {
        assert!(
            present.contains(&m.file_name),
            "manifest {} missing",
            m.file_name
        );
    }
    let live = ms.live_entries(&metas, &|_| true).await.unwrap();
    assert!(!live.is_empty());
    for e in live {
        assert!(
            present.contains(&e.file.file_name),
            "snapshot {}: data file {} missing",
            snapshot.id,
            e.file.file_name
        );
    }
}

fn expire(retain_max: usize, retain_min: usize) -> ExpireOptions {
    ExpireOptions {
        retain_max,
        retain_min,
        older_than: None,
        max_deletes: 1000,
    }
}

async fn ids(table: &Table) -> Vec<i64> {
    table.snapshots().list_snapshot_ids().await.unwrap()
}

fn last_n(expected: &BTreeMap<i64, Vec<Row>>, n: usize) -> Vec<i64> {
    let all: Vec<i64> = expected.keys().copied().collect();
    all[all.len().saturating_sub(n)..].to_vec()
}

#[tokio::test]
async fn expiration_keeps_retained_snapshots_and_tags_readable() {
    let (catalog, id, _dir) = setup(MANUAL).await;
    let table = catalog.load_table(&id).await.unwrap();
    let expected = commit_history(&table, 12).await;
    let total = expected.len();
    table.create_tag("v3", Some(3)).await.unwrap();
    let files_before = table_files(&table).await;

    let outcome = table.expire_snapshots(expire(4, 1)).await.unwrap();
    let kept = last_n(&expected, 4);
    assert_eq!(outcome.snapshots_deleted, total - 4);
    assert_eq!(ids(&table).await, kept);
    assert_eq!(
        table.snapshots().earliest_snapshot_id().await.unwrap(),
        Some(kept[0])
    );
    let hint = table
        .store()
        .get(&table.paths().earliest_hint())
        .await
        .unwrap();
    assert_eq!(&hint[..], kept[0].to_string().as_bytes());

    let files_after = table_files(&table).await;
    let removed: BTreeSet<_> = files_before.difference(&files_after).cloned().collect();
    assert!(files_after.is_subset(&files_before));
    // The snapshot files plus the data and metadata files counted.
    assert_eq!(removed.len(), outcome.files_deleted + total - 4);
    assert!(
        removed.iter().any(|f| f.ends_with(".parquet")),
        "{removed:?}"
    );
    assert!(removed
        .iter()
        .any(|f| f.contains("/manifest/manifest-list-")));
    for f in &removed {
        assert!(table.store().get(f).await.is_err(), "{f} still readable");
    }

    for id in &kept {
        assert_eq!(
            read_snapshot(&table, *id).await,
            expected[id],
            "snapshot {id}"
        );
        let s = table.snapshots().snapshot(*id).await.unwrap().unwrap();
        assert_complete(&table, &s).await;
    }
    assert_eq!(read_tag(&table, "v3").await, expected[&3]);
    let (name, tagged) = &table.list_tags().await.unwrap()[0];
    assert_eq!((name.as_str(), tagged.id), ("v3", 3));
    assert_complete(&table, tagged).await;
    assert!(table.scan().with_snapshot(Some(3)).plan().await.is_err());
    assert!(table.scan().with_tag("nope").plan().await.is_err());

    // Nothing more to do: a second run is a no-op.
    let again = table.expire_snapshots(expire(4, 1)).await.unwrap();
    assert_eq!(again, tidelake_engine::ExpireOutcome::default());
    assert_eq!(table_files(&table).await, files_after);

    // Deleting the tag of an expired snapshot frees the files only it kept.
    table.delete_tag("v3").await.unwrap();
    assert!(table.list_tags().await.unwrap().is_empty());
    assert!(table_files(&table).await.len() < files_after.len());
    for id in &kept {
        assert_eq!(
            read_snapshot(&table, *id).await,
            expected[id],
            "snapshot {id}"
        );
    }
    assert!(table.delete_tag("v3").await.is_err());
}

#[tokio::test]
async fn retention_by_time_min_and_limit() {
    let (catalog, id, _dir) = setup(MANUAL).await;
    let table = catalog.load_table(&id).await.unwrap();
    let expected = commit_history(&table, 8).await;
    let all: Vec<i64> = expected.keys().copied().collect();
    let latest = *all.last().unwrap();
    let first_young = all[5];
    let young = table
        .snapshots()
        .snapshot(first_young)
        .await
        .unwrap()
        .unwrap();
    // Snapshots committed at or after `young` stay.
    let by_time = ExpireOptions {
        older_than: Some(young.time_millis),
        ..expire(1000, 1)
    };
    let limited = ExpireOptions {
        max_deletes: 2,
        ..by_time
    };
    assert_eq!(
        table
            .expire_snapshots(limited)
            .await
            .unwrap()
            .snapshots_deleted,
        2
    );
    assert_eq!(ids(&table).await, all[2..].to_vec());
    table.expire_snapshots(by_time).await.unwrap();
    let left = ids(&table).await;
    // Several snapshots may share a millisecond with `young`.
    assert!(
        left[0] <= first_young && left.last() == Some(&latest),
        "{left:?}"
    );
    assert!(left[0] > all[2], "old snapshots expired: {left:?}");
    // retain_min wins over age; retain_max wins over youth.
    let min2 = ExpireOptions {
        older_than: Some(i64::MAX),
        ..expire(1000, 2)
    };
    table.expire_snapshots(min2).await.unwrap();
    assert_eq!(ids(&table).await, vec![latest - 1, latest]);
    table.expire_snapshots(expire(1, 1)).await.unwrap();
    assert_eq!(ids(&table).await, vec![latest]);
    assert_eq!(read_snapshot(&table, latest).await, expected[&latest]);
    assert!(table.expire_snapshots(expire(1, 2)).await.is_err());
    assert!(table.expire_snapshots(expire(5, 0)).await.is_err());
}

#[tokio::test]
async fn consumers_pin_their_snapshots() {
    let (catalog, id, _dir) = setup(MANUAL).await;
    let table = catalog.load_table(&id).await.unwrap();
    let expected = commit_history(&table, 8).await;
    let latest = *expected.keys().last().unwrap();
    let consumer = format!("{}/consumer/consumer-job1", table.paths().root);
    table
        .store()
        .put(&consumer, bytes::Bytes::from(r#"{"nextSnapshot":5}"#))
        .await
        .unwrap();
    table.expire_snapshots(expire(1, 1)).await.unwrap();
    assert_eq!(ids(&table).await, (5..=latest).collect::<Vec<_>>());
    for id in 5..=latest {
        assert_eq!(read_snapshot(&table, id).await, expected[&id]);
    }
    // An unreadable consumer file stops expiration rather than being ignored.
    table
        .store()
        .put(&consumer, bytes::Bytes::from("not json"))
        .await
        .unwrap();
    let err = table.expire_snapshots(expire(1, 1)).await.unwrap_err();
    assert!(err.to_string().contains("consumer-job1"), "{err}");
    assert_eq!(ids(&table).await, (5..=latest).collect::<Vec<_>>());
    table.store().delete(&consumer).await.unwrap();
    table.expire_snapshots(expire(1, 1)).await.unwrap();
    assert_eq!(ids(&table).await, vec![latest]);
}

#[tokio::test]
async fn commits_expire_by_table_options_unless_write_only() {
    let opts = [
        ("snapshot.num-retained.min", "2"),
        ("snapshot.num-retained.max", "3"),
        ("manifest.merge-min-count", "3"),
    ];
    let (catalog, id, _dir) = setup(&opts).await;
    let table = catalog.load_table(&id).await.unwrap();
    for i in 0..6 {
        let mut w = table.writer();
        w.write(tagged_batch(&table, &[(0, i)], "w"), RowKind::Insert)
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
    let left = ids(&table).await;
    let latest = table
        .snapshots()
        .latest_snapshot_id()
        .await
        .unwrap()
        .unwrap();
    assert!(latest >= 6);
    assert_eq!(left, vec![latest - 2, latest - 1, latest]);
    let rows = tagged_rows(table.scan().plan().await.unwrap()).await;
    assert_eq!(rows.len(), 6);

    let mut write_only: Vec<(&str, &str)> = opts.to_vec();
    write_only.push(("write-only", "true"));
    let (catalog, id, _dir2) = setup(&write_only).await;
    let table = catalog.load_table(&id).await.unwrap();
    let expected = commit_history(&table, 5).await;
    assert_eq!(ids(&table).await.len(), expected.len());
    assert!(expected.len() >= 5);

    let bad = [("snapshot.time-retained", "a while")];
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    assert!(catalog
        .create_table(&id, tagged_spec(true, &bad), false)
        .await
        .is_err());
    let bad = [("snapshot.num-retained.min", "0")];
    assert!(catalog
        .create_table(&id, tagged_spec(true, &bad), false)
        .await
        .is_err());
}

#[tokio::test]
async fn rollback_to_snapshot_and_tag() {
    let (catalog, id, dir) = setup(MANUAL).await;
    let table = catalog.load_table(&id).await.unwrap();
    let expected = commit_history(&table, 10).await;
    let latest = *expected.keys().last().unwrap();
    table.create_tag("keep", Some(2)).await.unwrap();
    table.create_tag("late", Some(latest - 1)).await.unwrap();
    assert!(table.create_tag("keep", None).await.is_err());
    assert!(table.create_tag("42", None).await.is_err());
    assert!(table.create_tag("x", Some(latest + 50)).await.is_err());

    table.rollback_to_snapshot(6).await.unwrap();
    assert_eq!(ids(&table).await, (1..=6).collect::<Vec<_>>());
    assert_eq!(
        table.snapshots().latest_snapshot_id().await.unwrap(),
        Some(6)
    );
    let tags: Vec<String> = table
        .list_tags()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(
        tags,
        vec!["keep".to_string()],
        "tags on removed snapshots go too"
    );
    for id in 1..=6 {
        assert_eq!(read_snapshot(&table, id).await, expected[&id]);
        let s = table.snapshots().snapshot(id).await.unwrap().unwrap();
        assert_complete(&table, &s).await;
    }
    // Files only the removed snapshots had are gone: no orphan left behind.
    age_tree(
        &dir.path().join("default.db/t"),
        Duration::from_secs(2 * 86_400),
    );
    let orphans = table
        .remove_orphan_files_with(OrphanOptions {
            older_than: i64::MAX,
            dry_run: true,
        })
        .await
        .unwrap();
    assert!(orphans.is_empty(), "{orphans:?}");
    // Writing continues from snapshot 6.
    let mut w = table.writer();
    w.write(tagged_batch(&table, &[(0, 1000)], "after"), RowKind::Insert)
        .await
        .unwrap();
    let next = w.commit().await.unwrap().unwrap();
    assert!(next > 6);
    let mut want = expected[&6].clone();
    want.push((0, 1000, Some("after-1000".into())));
    want.sort();
    assert_eq!(read_snapshot(&table, next).await, want);

    // An expired snapshot cannot be a target; its tag can.
    table.expire_snapshots(expire(2, 1)).await.unwrap();
    assert_eq!(ids(&table).await, vec![next - 1, next]);
    let err = table.rollback_to_snapshot(2).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    table.rollback_to_tag("keep").await.unwrap();
    assert_eq!(ids(&table).await, vec![2]);
    assert_eq!(
        table.snapshots().latest_snapshot_id().await.unwrap(),
        Some(2)
    );
    assert_eq!(
        table.snapshots().earliest_snapshot_id().await.unwrap(),
        Some(2)
    );
    assert_eq!(read_snapshot(&table, 2).await, expected[&2]);
    let s2 = table.snapshots().snapshot(2).await.unwrap().unwrap();
    assert_complete(&table, &s2).await;
    assert!(table.rollback_to_tag("nope").await.is_err());
}

fn age(path: &std::path::Path, by: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

fn age_tree(dir: &std::path::Path, by: Duration) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            age_tree(&path, by);
        } else {
            age(&path, by);
        }
    }
}

#[tokio::test]
async fn orphan_removal_spares_young_and_referenced_files() {
    let (catalog, id, dir) = setup(MANUAL).await;
    let table = catalog.load_table(&id).await.unwrap();
    let expected = commit_history(&table, 6).await;
    table.create_tag("t1", Some(1)).await.unwrap();
    table.expire_snapshots(expire(3, 1)).await.unwrap();
    let kept = last_n(&expected, 3);
    let table_dir = dir.path().join("default.db").join("t");
    let two_days = Duration::from_secs(2 * 86_400);
    // Every real file is old: only the safety of references protects them.
    age_tree(&table_dir, two_days);
    let referenced = table_files(&table).await;

    let plant = |rel: &str, old: bool| {
        let path = table_dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"junk").unwrap();
        if old {
            age(&path, two_days);
        }
    };
    plant("p=0/bucket-0/data-orphan-old.parquet", true);
    plant("p=0/bucket-0/data-orphan-young.parquet", false);
    plant("manifest/manifest-orphan-old-0", true);
    plant("index/index-orphan-old-0", true);
    plant("snapshot/unrelated-old", true);

    let now = chrono::Utc::now().timestamp_millis();
    let dry = table
        .remove_orphan_files_with(OrphanOptions {
            older_than: now,
            dry_run: true,
        })
        .await
        .unwrap();
    let mut dry_names: Vec<&str> = dry.iter().map(|p| p.rsplit('/').next().unwrap()).collect();
    dry_names.sort();
    assert_eq!(
        dry_names,
        vec![
            "data-orphan-old.parquet",
            "index-orphan-old-0",
            "manifest-orphan-old-0"
        ]
    );
    assert!(table_dir
        .join("p=0/bucket-0/data-orphan-old.parquet")
        .exists());

    let removed = table.remove_orphan_files(now).await.unwrap();
    assert_eq!(removed, dry);
    assert!(!table_dir
        .join("p=0/bucket-0/data-orphan-old.parquet")
        .exists());
    assert!(!table_dir.join("manifest/manifest-orphan-old-0").exists());
    assert!(table_dir
        .join("p=0/bucket-0/data-orphan-young.parquet")
        .exists());
    assert!(table_dir.join("snapshot/unrelated-old").exists());
    let after = table_files(&table).await;
    assert!(
        referenced.is_subset(&after),
        "a referenced file was removed"
    );
    for id in &kept {
        assert_eq!(read_snapshot(&table, *id).await, expected[id]);
    }
    assert_eq!(read_tag(&table, "t1").await, expected[&1]);

    // The safety margin holds whatever the caller asks.
    let young = table.remove_orphan_files(i64::MAX).await.unwrap();
    assert!(young.is_empty(), "{young:?}");
}

#[tokio::test]
async fn interrupted_expiration_leaves_retained_snapshots_readable() {
    let (catalog, id, dir) = setup(MANUAL).await;
    let table = catalog.load_table(&id).await.unwrap();
    let expected = commit_history(&table, 12).await;
    let uri = dir.path().to_str().unwrap().to_string();

    // Fail the k-th store operation, for growing k, until a run stops after
    // it removed some expired snapshots but before it deleted their files.
    let mut interrupted = false;
    for k in 1..5_000u64 {
        let faulty = WarehouseStore::with_faults(
            WarehouseStore::open(&uri).await.unwrap(),
            FaultPlan::new(7).fail_operation(k),
        );
        let Ok(t) = Catalog::from_store(faulty).load_table(&id).await else {
            continue;
        };
        let result = t.expire_snapshots(expire(3, 1)).await;
        assert!(
            result.is_err(),
            "run {k} finished before any fault hit a delete"
        );
        // Whatever the run got to, every listed snapshot reads completely.
        for id in table.snapshots().list_snapshot_ids().await.unwrap() {
            assert_eq!(read_snapshot(&table, id).await, expected[&id], "run {k}");
            let s = table.snapshots().snapshot(id).await.unwrap().unwrap();
            assert_complete(&table, &s).await;
        }
        let listed = table.snapshots().list_snapshot_ids().await.unwrap();
        if listed.first().is_some_and(|first| *first > 1) && listed.len() > 3 {
            interrupted = true;
            break;
        }
    }
    assert!(interrupted, "no run was interrupted half way");
    let outcome = table.expire_snapshots(expire(3, 1)).await.unwrap();
    assert!(outcome.snapshots_deleted > 0);
    assert_eq!(
        table.snapshots().list_snapshot_ids().await.unwrap(),
        vec![10, 11, 12]
    );
    // What the half-done run left behind is unreferenced: orphan removal
    // takes it, and the retained snapshots still read the same.
    age_tree(
        &dir.path().join("default.db/t"),
        Duration::from_secs(2 * 86_400),
    );
    let orphan_options = || OrphanOptions {
        older_than: i64::MAX,
        dry_run: false,
    };
    table
        .remove_orphan_files_with(orphan_options())
        .await
        .unwrap();
    for id in 10..=12 {
        assert_eq!(read_snapshot(&table, id).await, expected[&id]);
        let s = table.snapshots().snapshot(id).await.unwrap().unwrap();
        assert_complete(&table, &s).await;
    }
    let again = table
        .remove_orphan_files_with(OrphanOptions {
            older_than: i64::MAX,
            dry_run: true,
        })
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

/// pypaimon 2.1 (an independent reader) reads every retained snapshot and
/// the restored tag after expiration and rollback. Without the oracle's
/// Python environment it fails under CI and is skipped, with a note, elsewhere.
#[tokio::test]
async fn pypaimon_reads_the_table_after_lifecycle_operations() {
    let Some(python) = tidelake_testkit::python::or_skip("the pypaimon lifecycle check") else {
        return;
    };
    let (catalog, id, dir) = setup(MANUAL).await;
    let table = catalog.load_table(&id).await.unwrap();
    let expected = commit_history(&table, 9).await;
    table.create_tag("t2", Some(2)).await.unwrap();
    table.expire_snapshots(expire(3, 1)).await.unwrap();
    let oracle_read = |snapshot: i64| {
        let out = run(
            std::process::Command::new(&python)
                .arg(oracle_script())
                .args(["read", "--warehouse"])
                .arg(dir.path())
                .args(["--table", "default.t", "--impl", "pypaimon", "--snapshot"])
                .arg(snapshot.to_string()),
            "",
            ORACLE_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "pypaimon failed on snapshot {snapshot}: {}",
            out.stderr
        );
        out.stdout
    };
    let check = |snapshot: i64, rows: &[Row]| {
        let text = oracle_read(snapshot);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), rows.len(), "snapshot {snapshot}:\n{text}");
        for (_, _, name) in rows {
            let name = name.as_deref().unwrap();
            assert!(
                text.contains(name),
                "snapshot {snapshot} lacks {name}:\n{text}"
            );
        }
    };
    for id in last_n(&expected, 3) {
        check(id, &expected[&id]);
    }
    table.rollback_to_tag("t2").await.unwrap();
    check(2, &expected[&2]);
}
