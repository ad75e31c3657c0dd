//! Indexes under change: upserts and deletes never show stale rows, and a
//! crash between writing index files and committing leaves only orphans.

use std::time::{Duration, SystemTime};

use tidelake_engine::{CompactedBucket, RowKind, TableHooks};
use tidelake_testkit::rng::Rng;
use tidelake_vector::{search, Metric, SearchRequest, VectorHooks};

use crate::common::*;

#[tokio::test]
async fn upserts_and_deletes_never_return_stale_or_deleted_rows() {
    let (catalog, id, _dir) = table_with(&index_options("l2", 16, 2)).await;
    let table = catalog.load_table(&id).await.unwrap();
    let n = 5000i64;
    let original = vectors(81, n as usize);
    insert(&table, 0..n, &original).await;
    let mut rng = Rng::new(82);
    let fresh = vectors(83, n as usize);
    let mut deleted = std::collections::BTreeSet::new();
    for round in 0..3 {
        // Upsert 10% with new vectors, delete 5%.
        let mut upserts = Vec::new();
        for _ in 0..n / 10 {
            let key = rng.below(n as u64) as i64;
            upserts.push((
                key,
                (key % 100) as i32,
                Some(
                    fresh[key as usize]
                        .iter()
                        .map(|x| x + round as f32)
                        .collect(),
                ),
            ));
            deleted.remove(&key);
        }
        write(&table, &upserts, RowKind::Insert).await.unwrap();
        let mut deletes = Vec::new();
        for _ in 0..n / 20 {
            let key = rng.below(n as u64) as i64;
            deletes.push((key, 0, Some(original[key as usize].clone())));
            deleted.insert(key);
        }
        write(&table, &deletes, RowKind::Delete).await.unwrap();
        let table = catalog.load_table(&id).await.unwrap();
        let rows = logical(&table).await;
        assert!(deleted.iter().all(|k| !rows.contains_key(k)));
        let mut total = 0.0;
        // Queries at old vectors of changed rows: their stale versions
        // would be the closest.
        let probes: Vec<Vec<f32>> = upserts
            .iter()
            .take(10)
            .map(|u| original[u.0 as usize].clone())
            .chain(
                deleted
                    .iter()
                    .take(10)
                    .map(|k| original[*k as usize].clone()),
            )
            .collect();
        for q in &probes {
            let outcome = search(&table, &SearchRequest::new("emb", q.clone(), 10))
                .await
                .unwrap();
            let got = found(&outcome.batch);
            assert_eq!(got.len(), 10);
            for (key, distance) in &got {
                let (_, v) = rows
                    .get(key)
                    .unwrap_or_else(|| panic!("round {round}: deleted row {key} returned"));
                let current = Metric::L2.distance(q, v);
                assert!(
                    (current - distance).abs() < 1e-6,
                    "round {round}: row {key} is stale ({distance} vs {current})"
                );
            }
            total += recall(&got, &brute_force(&rows, q, 10, Metric::L2, |_, _| true));
        }
        let recall = total / probes.len() as f64;
        assert!(recall >= 0.9, "round {round}: recall {recall}");
    }
}

#[tokio::test]
async fn a_crash_between_index_write_and_commit_leaves_only_orphans() {
    let (catalog, id, dir) = table_with(&index_options("l2", 4, 1)).await;
    let table = catalog.load_table(&id).await.unwrap();
    insert(&table, 0..500, &vectors(91, 500)).await;
    let live_index: Vec<String> = table
        .index_manifest_entries(table.snapshots().latest_snapshot().await.unwrap().as_ref())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.index_file.file_name)
        .collect();
    assert!(
        !live_index.is_empty(),
        "a segment is committed: {live_index:?}"
    );
    // A compaction's index files written, then the process dies before
    // the commit: nothing references them.
    let plan = table.scan().plan().await.unwrap();
    let split = &plan.splits()[0];
    let mut files = split.files.clone();
    for f in &mut files {
        f.level = 3;
    }
    let bucket = CompactedBucket {
        partition: split.partition.clone(),
        partition_path: split.partition_path.clone(),
        bucket: split.bucket,
        files: files.clone(),
        written: files,
        index_entries: Vec::new(),
    };
    let built = VectorHooks
        .index_compacted_bucket(&table, &bucket)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(built.len(), 1);
    let orphan = built[0].index_file.file_name.clone();
    let index_dir = dir.path().join("default.db/t/index");
    assert!(index_dir.join(&orphan).exists());
    // Readers never see it.
    let before = found(
        &search(&table, &SearchRequest::new("emb", vec![0.0; DIM], 5))
            .await
            .unwrap()
            .batch,
    );
    assert_eq!(before.len(), 5);
    // Once old enough, orphan removal deletes it and nothing else.
    for entry in std::fs::read_dir(&index_dir).unwrap() {
        let f = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3 * 86_400))
            .unwrap();
    }
    let removed = table.remove_orphan_files(chrono_now()).await.unwrap();
    assert!(removed.iter().any(|p| p.ends_with(&orphan)), "{removed:?}");
    assert!(
        removed
            .iter()
            .all(|p| !live_index.iter().any(|l| p.ends_with(l))),
        "{removed:?}"
    );
    assert!(!index_dir.join(&orphan).exists());
    let after = found(
        &search(&table, &SearchRequest::new("emb", vec![0.0; DIM], 5))
            .await
            .unwrap()
            .batch,
    );
    assert_eq!(before, after);
}

fn chrono_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Searches keep what they derive from a snapshot; a rollback followed by
/// a commit writes `snapshot-N` again with other files, and the next search
/// must see those, not the ones the number had before.
#[tokio::test]
async fn a_snapshot_written_again_after_a_rollback_is_searched_afresh() {
    let (catalog, id, _dir) = table_with(&index_options("l2", 8, 1)).await;
    let table = catalog.load_table(&id).await.unwrap();
    let base = vectors(91, 500);
    insert(&table, 0..500, &base).await;
    let before = table
        .snapshots()
        .latest_snapshot_id()
        .await
        .unwrap()
        .unwrap();
    let far: Vec<f32> = base[0].iter().map(|x| x + 1000.0).collect();
    let query = far.clone();
    // Row 1000 right at the query, then searched (and its snapshot kept).
    insert(&table, 1000..1001, std::slice::from_ref(&far)).await;
    let first = table
        .snapshots()
        .latest_snapshot_id()
        .await
        .unwrap()
        .unwrap();
    let req = SearchRequest::new("emb", query.clone(), 1);
    let got = found(&search(&table, &req).await.unwrap().batch);
    assert_eq!(got[0].0, 1000);
    // Rolled back, and another row written at the query: the same snapshot
    // numbers again, other files.
    table.rollback_to_snapshot(before).await.unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    insert(&table, 2000..2001, std::slice::from_ref(&far)).await;
    let again = table
        .snapshots()
        .latest_snapshot_id()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, first, "the commit reuses the rolled-back number");
    let got = found(&search(&table, &req).await.unwrap().batch);
    assert_eq!(
        got[0].0, 2000,
        "the rewritten snapshot is searched, not the kept one"
    );
    let rows = logical(&table).await;
    assert!(!rows.contains_key(&1000));
}
