//! Streaming reads of a table's changes through the engine's API: every
//! start mode, consumers (resume, pinning snapshots against expiration),
//! expired snapshots, and rebuilding a table from its change history.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, Int32Array, Int64Array, Int8Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use tidelake_engine::{
    Catalog, ChangeReader, ChangeSource, CompactOptions, ExpireOptions, Identifier, RowKind,
    StartMode, StreamOptions, Table,
};
use tidelake_store::{FaultPlan, WarehouseStore};
use tidelake_testkit::table::{column, on_disk_table, read_latest, tagged_batch, tagged_spec};
use tokio::sync::Notify;

type Key = (i32, i64);
/// (row kind byte, p, id, name)
type Change = (i8, i32, i64, Option<String>);

/// Keeps automatic expiration out of the way.
const MANUAL: &[(&str, &str)] = &[
    ("bucket", "2"),
    ("snapshot.num-retained.min", "1000"),
    ("snapshot.num-retained.max", "1000"),
];

async fn setup(primary_key: bool, options: &[(&str, &str)]) -> (Table, tempfile::TempDir) {
    on_disk_table(tagged_spec(primary_key, options)).await
}

/// Commits rows of one kind; returns the new snapshot id.
async fn commit(table: &Table, rows: &[(i32, i64)], tag: &str, kind: RowKind) -> i64 {
    let mut w = table.writer();
    w.write(tagged_batch(table, rows, tag), kind).await.unwrap();
    w.commit()
        .await
        .unwrap()
        .expect("a commit with rows makes a snapshot")
}

fn decode(batches: &[RecordBatch]) -> Vec<Change> {
    let mut out = Vec::new();
    for b in batches {
        assert_eq!(b.schema().field(0).name(), "_row_kind");
        let kinds = column::<Int8Array>(b, 0);
        let p = column::<Int32Array>(b, 1);
        let ids = column::<Int64Array>(b, 2);
        let names = column::<StringArray>(b, 3);
        for i in 0..b.num_rows() {
            out.push((
                kinds.value(i),
                p.value(i),
                ids.value(i),
                names.is_valid(i).then(|| names.value(i).to_string()),
            ));
        }
    }
    out
}

/// One step of a reader: (snapshot id, source, changes); `None` when the
/// next snapshot is not committed yet.
async fn step(reader: &mut ChangeReader) -> Option<(i64, ChangeSource, Vec<Change>)> {
    let changes = reader.next_changes().await.unwrap()?;
    let batches: Vec<RecordBatch> = changes.batches.try_collect().await.unwrap();
    Some((changes.snapshot_id, changes.source, decode(&batches)))
}

/// Every step until the reader has nothing more.
async fn drain(reader: &mut ChangeReader) -> Vec<(i64, ChangeSource, Vec<Change>)> {
    let mut out = Vec::new();
    while let Some(s) = step(reader).await {
        out.push(s);
    }
    out
}

fn sorted(mut v: Vec<Change>) -> Vec<Change> {
    v.sort();
    v
}

fn inserts(rows: &[(i32, i64)], tag: &str) -> Vec<Change> {
    sorted(
        rows.iter()
            .map(|r| (0, r.0, r.1, Some(format!("{tag}-{}", r.1))))
            .collect(),
    )
}

fn options(mode: StartMode) -> StreamOptions {
    StreamOptions {
        mode,
        ..StreamOptions::default()
    }
}

async fn table_rows(table: &Table) -> Vec<Change> {
    let batches = read_latest(table).await;
    let mut out = Vec::new();
    for b in batches {
        let p = column::<Int32Array>(&b, 0);
        let ids = column::<Int64Array>(&b, 1);
        let names = column::<StringArray>(&b, 2);
        for i in 0..b.num_rows() {
            out.push((
                0,
                p.value(i),
                ids.value(i),
                names.is_valid(i).then(|| names.value(i).to_string()),
            ));
        }
    }
    sorted(out)
}

/// Applies changes to a primary-key table's rows, as upserts by key.
fn apply_upserts(model: &mut HashMap<Key, Option<String>>, changes: &[Change]) {
    for (kind, p, id, name) in changes {
        match RowKind::from_byte(*kind).unwrap() {
            RowKind::Insert | RowKind::UpdateAfter => {
                model.insert((*p, *id), name.clone());
            }
            RowKind::UpdateBefore | RowKind::Delete => {
                model.remove(&(*p, *id));
            }
        }
    }
}

fn model_rows(model: &HashMap<Key, Option<String>>) -> Vec<Change> {
    sorted(
        model
            .iter()
            .map(|((p, id), name)| (0, *p, *id, name.clone()))
            .collect(),
    )
}

#[tokio::test]
async fn latest_full_reads_the_state_then_each_commit() {
    let (table, _dir) = setup(true, MANUAL).await;
    let first = [(0, 1), (1, 2), (0, 3)];
    commit(&table, &first, "a", RowKind::Insert).await;
    let s2 = commit(&table, &[(0, 1)], "b", RowKind::Insert).await;

    let mut reader = ChangeReader::open(table.clone(), StreamOptions::default())
        .await
        .unwrap();
    let (id, source, rows) = step(&mut reader).await.unwrap();
    assert_eq!((id, source), (s2, ChangeSource::Full));
    assert_eq!(
        sorted(rows),
        sorted(vec![
            (0, 0, 1, Some("b-1".into())),
            (0, 1, 2, Some("a-2".into())),
            (0, 0, 3, Some("a-3".into())),
        ])
    );
    assert!(step(&mut reader).await.is_none(), "nothing committed since");
    assert_eq!(reader.position(), s2 + 1);

    let s3 = commit(&table, &[(1, 2)], "c", RowKind::Delete).await;
    let s4 = commit(&table, &[(1, 9)], "d", RowKind::Insert).await;
    let (id, source, rows) = step(&mut reader).await.unwrap();
    assert_eq!((id, source), (s3, ChangeSource::Delta));
    assert_eq!(rows, vec![(3, 1, 2, Some("c-2".into()))]);
    let (id, _, rows) = step(&mut reader).await.unwrap();
    assert_eq!(id, s4);
    assert_eq!(rows, inserts(&[(1, 9)], "d"));
    assert!(step(&mut reader).await.is_none());
    assert!(!reader.is_finished(), "an unbounded read never finishes");
}

#[tokio::test]
async fn latest_reads_only_later_commits_and_empty_tables_wait() {
    let (table, _dir) = setup(true, MANUAL).await;
    // An empty table: both modes wait for snapshot 1.
    let mut on_empty = ChangeReader::open(table.clone(), StreamOptions::default())
        .await
        .unwrap();
    assert!(step(&mut on_empty).await.is_none());

    commit(&table, &[(0, 1)], "a", RowKind::Insert).await;
    let mut latest = ChangeReader::open(table.clone(), options(StartMode::Latest))
        .await
        .unwrap();
    assert!(step(&mut latest).await.is_none(), "snapshot 1 is not new");
    let s2 = commit(&table, &[(0, 2)], "b", RowKind::Insert).await;
    let steps = drain(&mut latest).await;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].0, s2);
    assert_eq!(steps[0].2, inserts(&[(0, 2)], "b"));

    // The reader opened on the empty table sees both commits as changes.
    let steps = drain(&mut on_empty).await;
    let ids: Vec<i64> = steps.iter().map(|s| s.0).collect();
    assert_eq!(ids, vec![1, s2]);
    assert!(steps.iter().all(|s| s.1 == ChangeSource::Delta));
}

#[tokio::test]
async fn from_snapshot_and_from_snapshot_full() {
    let (table, _dir) = setup(true, MANUAL).await;
    let s1 = commit(&table, &[(0, 1), (0, 2)], "a", RowKind::Insert).await;
    let s2 = commit(&table, &[(0, 2)], "b", RowKind::Insert).await;
    let s3 = commit(&table, &[(1, 3)], "c", RowKind::Insert).await;

    let mut from = ChangeReader::open(table.clone(), options(StartMode::FromSnapshot(s2)))
        .await
        .unwrap();
    let steps = drain(&mut from).await;
    assert_eq!(
        steps.iter().map(|s| (s.0, s.2.clone())).collect::<Vec<_>>(),
        vec![(s2, inserts(&[(0, 2)], "b")), (s3, inserts(&[(1, 3)], "c"))]
    );

    let mut full = ChangeReader::open(table.clone(), options(StartMode::FromSnapshotFull(s1)))
        .await
        .unwrap();
    let steps = drain(&mut full).await;
    assert_eq!(steps.len(), 3);
    assert_eq!(
        (steps[0].0, steps[0].1, sorted(steps[0].2.clone())),
        (s1, ChangeSource::Full, inserts(&[(0, 1), (0, 2)], "a"))
    );
    assert_eq!((steps[1].0, steps[2].0), (s2, s3));

    // A snapshot after the latest: the reader waits for it.
    let mut future = ChangeReader::open(table.clone(), options(StartMode::FromSnapshot(s3 + 2)))
        .await
        .unwrap();
    assert!(step(&mut future).await.is_none());
    commit(&table, &[(1, 4)], "d", RowKind::Insert).await;
    assert!(step(&mut future).await.is_none(), "still before s3 + 2");
    let s5 = commit(&table, &[(1, 5)], "e", RowKind::Insert).await;
    assert_eq!(s5, s3 + 2);
    assert_eq!(step(&mut future).await.unwrap().2, inserts(&[(1, 5)], "e"));

    // A full read of a snapshot that does not exist is refused.
    let err = ChangeReader::open(table.clone(), options(StartMode::FromSnapshotFull(99)))
        .await
        .err()
        .expect("snapshot 99 does not exist");
    assert!(err.to_string().contains("snapshot 99"), "{err}");
}

#[tokio::test]
async fn from_timestamp_starts_at_the_first_snapshot_at_or_after() {
    let (table, _dir) = setup(true, MANUAL).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(commit(&table, &[(0, i)], "a", RowKind::Insert).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let time_of = |snapshot: tidelake_format::snapshot::Snapshot| snapshot.time_millis;
    let t2 = time_of(table.snapshots().snapshot(ids[2]).await.unwrap().unwrap());
    let t1 = time_of(table.snapshots().snapshot(ids[1]).await.unwrap().unwrap());
    assert!(t1 < t2, "commits are milliseconds apart");

    for (ts, first) in [(t2, ids[2]), (t1 + 1, ids[2]), (0, ids[0])] {
        let mut reader = ChangeReader::open(table.clone(), options(StartMode::FromTimestamp(ts)))
            .await
            .unwrap();
        let steps = drain(&mut reader).await;
        assert_eq!(steps[0].0, first, "from timestamp {ts}");
        assert_eq!(steps.last().unwrap().0, ids[3]);
    }
    let mut after_all = ChangeReader::open(
        table.clone(),
        options(StartMode::FromTimestamp(i64::MAX / 2)),
    )
    .await
    .unwrap();
    assert!(step(&mut after_all).await.is_none());
    assert_eq!(after_all.position(), ids[3] + 1);
}

#[tokio::test]
async fn incremental_between_snapshots_and_tags_is_bounded() {
    let (table, _dir) = setup(true, MANUAL).await;
    let s1 = commit(&table, &[(0, 1)], "a", RowKind::Insert).await;
    let s2 = commit(&table, &[(0, 2)], "b", RowKind::Insert).await;
    let s3 = commit(&table, &[(0, 1)], "c", RowKind::Delete).await;
    let s4 = commit(&table, &[(0, 4)], "d", RowKind::Insert).await;
    table.create_tag("start", Some(s1)).await.unwrap();
    table.create_tag("end", Some(s3)).await.unwrap();

    let read = |opts: &[(&str, &str)]| {
        let table = table.clone();
        let opts: BTreeMap<String, String> = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            let mut reader = ChangeReader::open(table, StreamOptions::from_options(&opts).unwrap())
                .await
                .unwrap();
            let steps = drain(&mut reader).await;
            assert!(reader.is_finished());
            steps
        }
    };
    let by_ids = read(&[("incremental-between", format!("{s1},{s3}").as_str())]).await;
    assert_eq!(
        by_ids
            .iter()
            .map(|s| (s.0, s.2.clone()))
            .collect::<Vec<_>>(),
        vec![
            (s2, inserts(&[(0, 2)], "b")),
            (s3, vec![(3, 0, 1, Some("c-1".into()))])
        ]
    );
    let by_tags = read(&[
        ("scan.mode", "incremental"),
        ("incremental-between", "start,end"),
    ])
    .await;
    assert_eq!(
        by_tags.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![s2, s3]
    );
    let empty = read(&[("incremental-between", format!("{s4},{s4}").as_str())]).await;
    assert!(empty.is_empty());

    let bad: BTreeMap<String, String> = [("incremental-between".to_string(), format!("{s3},{s1}"))]
        .into_iter()
        .collect();
    let err = ChangeReader::open(table.clone(), StreamOptions::from_options(&bad).unwrap())
        .await
        .err()
        .expect("start after end");
    assert!(err.to_string().contains("after end"), "{err}");
    let missing: BTreeMap<String, String> =
        [("incremental-between".to_string(), "start,nope".to_string())]
            .into_iter()
            .collect();
    let err = ChangeReader::open(
        table.clone(),
        StreamOptions::from_options(&missing).unwrap(),
    )
    .await
    .err()
    .expect("no such tag");
    assert!(err.to_string().contains("tag 'nope'"), "{err}");
}

#[tokio::test]
async fn compactions_are_skipped_without_a_changelog_producer() {
    let (table, _dir) = setup(true, MANUAL).await;
    commit(&table, &[(0, 1), (1, 2)], "a", RowKind::Insert).await;
    commit(&table, &[(0, 1)], "b", RowKind::Insert).await;
    let mut reader = ChangeReader::open(table.clone(), options(StartMode::Latest))
        .await
        .unwrap();
    let compacted = table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap()
        .snapshot_id
        .expect("a full compaction commits");
    let s = commit(&table, &[(0, 5)], "c", RowKind::Insert).await;
    let steps = drain(&mut reader).await;
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[0].0, steps[0].1, steps[0].2.len()),
        (compacted, ChangeSource::Skipped, 0)
    );
    assert_eq!(
        (steps[1].0, steps[1].2.clone()),
        (s, inserts(&[(0, 5)], "c"))
    );
}

#[tokio::test]
async fn consumers_record_progress_and_readers_resume() {
    let (table, _dir) = setup(true, MANUAL).await;
    let s1 = commit(&table, &[(0, 1)], "a", RowKind::Insert).await;
    let with_consumer = |mode: StartMode| StreamOptions {
        mode,
        consumer_id: Some("job".into()),
        ..StreamOptions::default()
    };
    let mut reader = ChangeReader::open(table.clone(), with_consumer(StartMode::LatestFull))
        .await
        .unwrap();
    // Opening records the start, so expiration keeps the snapshot to read.
    assert_eq!(table.consumer("job").await.unwrap(), Some(s1));
    let (id, source, _) = step(&mut reader).await.unwrap();
    assert_eq!((id, source), (s1, ChangeSource::Full));
    reader.record_consumer().await.unwrap();
    assert_eq!(table.consumer("job").await.unwrap(), Some(s1 + 1));
    let on_disk = table
        .store()
        .get(&format!("{}/consumer/consumer-job", table.paths().root))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&on_disk).unwrap(),
        serde_json::json!({ "nextSnapshot": s1 + 1 })
    );

    let s2 = commit(&table, &[(0, 2)], "b", RowKind::Insert).await;
    let s3 = commit(&table, &[(0, 3)], "c", RowKind::Insert).await;
    let (id, _, _) = step(&mut reader).await.unwrap();
    assert_eq!(id, s2);
    reader.record_consumer().await.unwrap();
    drop(reader); // stops after s2, before reading s3

    // A restarted reader resumes at s3 whatever mode it asks for.
    let mut resumed = ChangeReader::open(table.clone(), with_consumer(StartMode::LatestFull))
        .await
        .unwrap();
    assert_eq!(resumed.position(), s3);
    let steps = drain(&mut resumed).await;
    assert_eq!(
        steps.iter().map(|s| (s.0, s.2.clone())).collect::<Vec<_>>(),
        vec![(s3, inserts(&[(0, 3)], "c"))]
    );

    // consumer.ignore-progress starts over from the mode (and records it).
    let mut fresh = ChangeReader::open(
        table.clone(),
        StreamOptions {
            ignore_consumer_progress: true,
            ..with_consumer(StartMode::FromSnapshot(s2))
        },
    )
    .await
    .unwrap();
    assert_eq!(table.consumer("job").await.unwrap(), Some(s2));
    assert_eq!(drain(&mut fresh).await.len(), 2);

    assert_eq!(
        table.list_consumers().await.unwrap(),
        vec![("job".to_string(), s2)]
    );
    assert!(table.delete_consumer("job").await.unwrap());
    assert!(!table.delete_consumer("job").await.unwrap());
    assert_eq!(table.consumer("job").await.unwrap(), None);
}

#[tokio::test]
async fn expiration_keeps_what_a_consumer_still_needs() {
    let (table, _dir) = setup(true, MANUAL).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(commit(&table, &[(0, i), (1, i)], "a", RowKind::Insert).await);
    }
    let mut reader = ChangeReader::open(
        table.clone(),
        StreamOptions {
            mode: StartMode::Latest,
            consumer_id: Some("slow".into()),
            ..StreamOptions::default()
        },
    )
    .await
    .unwrap();
    let needed = reader.position();
    assert_eq!(needed, ids[2] + 1);
    let mut later = Vec::new();
    for i in 10..16 {
        later.push(commit(&table, &[(0, i)], "b", RowKind::Insert).await);
    }
    // A compaction rewrites the files the consumer has not read yet.
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    let outcome = table
        .expire_snapshots(ExpireOptions {
            retain_max: 1,
            retain_min: 1,
            older_than: None,
            max_deletes: 1000,
        })
        .await
        .unwrap();
    assert_eq!(outcome.snapshots_deleted as i64, needed - 1);
    assert_eq!(
        table.snapshots().earliest_snapshot_id().await.unwrap(),
        Some(needed)
    );
    // Every change the consumer had not read is still there.
    let steps = drain(&mut reader).await;
    let delivered: Vec<Change> = steps
        .iter()
        .filter(|s| s.1 == ChangeSource::Delta)
        .flat_map(|s| s.2.clone())
        .collect();
    let expected: Vec<Change> = (10..16)
        .map(|i| (0, 0, i, Some(format!("b-{i}"))))
        .collect();
    assert_eq!(delivered, expected);
    assert_eq!(steps.first().unwrap().0, later[0]);
}

#[tokio::test]
async fn expired_snapshots_fail_loudly_and_suggest_a_consumer() {
    let (table, _dir) = setup(true, MANUAL).await;
    commit(&table, &[(0, 1)], "a", RowKind::Insert).await;
    let mut reader = ChangeReader::open(table.clone(), options(StartMode::Latest))
        .await
        .unwrap();
    let waiting_for = reader.position();
    for i in 2..6 {
        commit(&table, &[(0, i)], "b", RowKind::Insert).await;
    }
    table
        .expire_snapshots(ExpireOptions {
            retain_max: 2,
            retain_min: 1,
            older_than: None,
            max_deletes: 1000,
        })
        .await
        .unwrap();
    let err = match reader.next_changes().await {
        Err(e) => e,
        Ok(_) => panic!("the snapshot the reader waits for has expired"),
    };
    let msg = err.to_string();
    assert!(msg.contains(&format!("snapshot {waiting_for}")), "{msg}");
    assert!(msg.contains("expired"), "{msg}");
    assert!(msg.contains("consumer-id"), "{msg}");
    // And no reader may start before the earliest snapshot either.
    let err = ChangeReader::open(table.clone(), options(StartMode::FromSnapshot(1)))
        .await
        .err()
        .expect("snapshot 1 has expired");
    assert!(err.to_string().contains("snapshot 1 "), "{err}");
}

#[tokio::test]
async fn consumers_idle_past_their_expiration_time_are_removed() {
    let (table, _dir) = setup(true, &[("consumer.expiration-time", "1 h")]).await;
    table.record_consumer("idle", 1).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    assert!(table.expire_consumers(now).await.unwrap().is_empty());
    let removed = table.expire_consumers(now + 2 * 3_600_000).await.unwrap();
    assert_eq!(removed, vec!["idle".to_string()]);
    assert_eq!(table.consumer("idle").await.unwrap(), None);
}

/// Upserts, deletes and compactions over several partitions and buckets;
/// applying the change history in order as upserts rebuilds the table.
#[tokio::test]
async fn the_change_history_of_a_deduplicate_table_rebuilds_it() {
    let (table, _dir) = setup(true, &[("bucket", "3")]).await;
    let mut reader = ChangeReader::open(table.clone(), StreamOptions::default())
        .await
        .unwrap();
    let mut model = HashMap::new();
    let mut seed: u64 = 42;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for round in 0..24 {
        match round % 6 {
            5 => {
                table
                    .compact(CompactOptions {
                        full: round % 12 == 11,
                        partition: None,
                    })
                    .await
                    .unwrap();
            }
            _ => {
                let mut w = table.writer();
                // Several writes per commit: keys may repeat across flushes.
                for part in 0..2 {
                    let rows: Vec<(i32, i64)> = (0..8)
                        .map(|_| ((next() % 3) as i32, (next() % 20) as i64))
                        .collect();
                    let kind = if part == 1 && round % 3 == 2 {
                        RowKind::Delete
                    } else if part == 1 {
                        RowKind::UpdateAfter
                    } else {
                        RowKind::Insert
                    };
                    w.write(
                        tagged_batch(&table, &rows, &format!("r{round}p{part}")),
                        kind,
                    )
                    .await
                    .unwrap();
                }
                w.commit().await.unwrap();
            }
        }
        // Read as we go (the reader polls between commits) ...
        for (_, _, changes) in drain(&mut reader).await {
            apply_upserts(&mut model, &changes);
        }
        assert_eq!(
            model_rows(&model),
            table_rows(&table).await,
            "after round {round}"
        );
    }
    // ... and from the first snapshot in one go.
    let mut replay = ChangeReader::open(table.clone(), options(StartMode::FromSnapshot(1)))
        .await
        .unwrap();
    let mut from_start = HashMap::new();
    for (_, _, changes) in drain(&mut replay).await {
        apply_upserts(&mut from_start, &changes);
    }
    assert_eq!(model_rows(&from_start), table_rows(&table).await);
    assert!(!from_start.is_empty());
}

#[tokio::test]
async fn the_change_history_of_an_append_table_rebuilds_it() {
    let (table, _dir) = setup(false, &[]).await;
    let mut reader = ChangeReader::open(table.clone(), options(StartMode::FromSnapshot(1)))
        .await
        .unwrap();
    for round in 0..5 {
        let rows: Vec<(i32, i64)> = (0..4).map(|i| (i % 2, round * 10 + i as i64)).collect();
        commit(&table, &rows, "x", RowKind::Insert).await;
    }
    let mut rows: Vec<Change> = drain(&mut reader)
        .await
        .into_iter()
        .flat_map(|s| s.2)
        .collect();
    assert!(rows.iter().all(|r| r.0 == 0), "append tables only insert");
    rows.sort();
    assert_eq!(rows, table_rows(&table).await);
    assert_eq!(rows.len(), 20);
}

#[tokio::test]
async fn overwrites_are_skipped_unless_streaming_read_overwrite() {
    let (table, _dir) = setup(true, MANUAL).await;
    commit(&table, &[(0, 1), (0, 2), (1, 3)], "a", RowKind::Insert).await;
    let open = |read_overwrite: bool| {
        ChangeReader::open(
            table.clone(),
            StreamOptions {
                mode: StartMode::FromSnapshot(1),
                read_overwrite,
                ..StreamOptions::default()
            },
        )
    };
    let mut skipping = open(false).await.unwrap();
    let mut reading = open(true).await.unwrap();
    let mut w = table.writer();
    w.set_overwrite(true);
    w.write(tagged_batch(&table, &[(0, 7)], "o"), RowKind::Insert)
        .await
        .unwrap();
    let s2 = w.commit().await.unwrap().unwrap();

    let steps = drain(&mut skipping).await;
    assert_eq!((steps[1].0, steps[1].1), (s2, ChangeSource::Skipped));

    let mut model = HashMap::new();
    let steps = drain(&mut reading).await;
    assert_eq!((steps[1].0, steps[1].1), (s2, ChangeSource::Overwrite));
    for (_, _, changes) in &steps {
        apply_upserts(&mut model, changes);
    }
    assert_eq!(model_rows(&model), table_rows(&table).await);
}

/// A snapshot committed between the reader's miss of `snapshot-N` and its
/// next look at the table is "not yet", never "expired". Deterministic: the
/// store (counting operations, injecting nothing) holds the reader's miss
/// and then its next operation while the commit lands (the snapshot file
/// appears; the LATEST hint lags, as after a real commit).
#[tokio::test]
async fn a_snapshot_committed_during_the_lookup_is_not_expired() {
    let (table, dir) = setup(true, MANUAL).await;
    commit(&table, &[(0, 1)], "a", RowKind::Insert).await;
    let s2 = commit(&table, &[(0, 2)], "b", RowKind::Insert).await;
    // Take snapshot-2 back out (its files stay) as if its commit were
    // in flight, the LATEST hint back to 1.
    let root = dir.path().join(&table.paths().root);
    let snapshot_file = root.join(format!("snapshot/snapshot-{s2}"));
    let staged = dir.path().join("staged-snapshot");
    std::fs::rename(&snapshot_file, &staged).unwrap();
    std::fs::write(root.join("snapshot/LATEST"), (s2 - 1).to_string()).unwrap();

    let counting = WarehouseStore::with_faults(
        WarehouseStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap(),
        FaultPlan::new(1),
    );
    let watched = Catalog::from_store(counting.clone())
        .load_table(&Identifier::new("default", "t"))
        .await
        .unwrap();
    let mut reader = ChangeReader::open(watched, options(StartMode::Latest))
        .await
        .unwrap();
    assert_eq!(reader.position(), s2);

    let operations = || counting.fault_stats().unwrap().operations;
    let miss = operations() + 1; // the read of snapshot-2
    let (first_gate, second_gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    assert!(counting.hold_operation(miss, first_gate.clone()));
    assert!(counting.hold_operation(miss + 1, second_gate.clone()));
    let first = {
        let mut next = std::pin::pin!(reader.next_changes());
        assert!(futures::poll!(next.as_mut()).is_pending());
        assert_eq!(operations(), miss, "the reader starts with snapshot-2");
        first_gate.notify_one();
        // The miss runs; the reader's next operation waits at its gate.
        while operations() == miss {
            assert!(futures::poll!(next.as_mut()).is_pending());
            tokio::task::yield_now().await;
        }
        std::fs::rename(&staged, &snapshot_file).unwrap();
        second_gate.notify_one();
        next.await
    };
    assert_eq!(counting.fault_stats().unwrap().injected, 0);
    let first = match first {
        Ok(changes) => changes.map(|c| c.snapshot_id),
        Err(e) => panic!("snapshot {s2} was being committed, not expired: {e}"),
    };
    assert_eq!(first, None, "not committed when the reader looked");
    let steps = drain(&mut reader).await;
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].0, steps[0].2.clone()),
        (s2, inserts(&[(0, 2)], "b"))
    );
    assert_eq!(reader.position(), s2 + 1);
}

/// Applies a complete changelog strictly: `+I` only for absent keys, `-U`
/// and `-D` only of the current row, `+U` only after its `-U`.
fn apply_strictly(model: &mut HashMap<Key, Option<String>>, changes: &[Change]) {
    let mut retracted: Option<Key> = None;
    for (kind, p, id, name) in changes {
        let key = (*p, *id);
        match RowKind::from_byte(*kind).unwrap() {
            RowKind::Insert => {
                assert!(
                    model.insert(key, name.clone()).is_none(),
                    "+I of {key:?} that is already there (read twice?)"
                );
            }
            RowKind::UpdateBefore | RowKind::Delete => {
                let old = model.remove(&key);
                assert_eq!(old.as_ref(), Some(name), "retraction of {key:?}");
                if RowKind::from_byte(*kind).unwrap() == RowKind::UpdateBefore {
                    retracted = Some(key);
                }
            }
            RowKind::UpdateAfter => {
                assert!(
                    retracted.take() == Some(key) || !model.contains_key(&key),
                    "+U of {key:?} without its -U"
                );
                model.insert(key, name.clone());
            }
        }
    }
}

async fn compact(table: &Table, full: bool) -> i64 {
    table
        .compact(CompactOptions {
            full,
            partition: None,
        })
        .await
        .unwrap()
        .snapshot_id
        .expect("a compaction commits")
}

/// With a compaction changelog producer, a `-full` start reads only what
/// the changelog has described so far: rows still waiting for the
/// compaction that describes them come once, in its changelog.
#[tokio::test]
async fn full_starts_of_compaction_producers_read_each_row_once() {
    let producers: [(&str, &[(&str, &str)]); 3] = [
        ("lookup", &[("changelog-producer", "lookup")]),
        (
            "lookup with deletion vectors",
            &[
                ("changelog-producer", "lookup"),
                ("deletion-vectors.enabled", "true"),
            ],
        ),
        (
            "full-compaction",
            &[("changelog-producer", "full-compaction")],
        ),
    ];
    for (name, producer) in producers {
        let mut opts: Vec<(&str, &str)> = MANUAL.to_vec();
        opts.extend_from_slice(producer);
        // Compactions only when the test runs them: the writer's commit
        // and the compaction that follows it are two snapshots to race.
        opts.push(("write-only", "true"));
        let (table, _dir) = setup(true, &opts).await;
        let full = name == "full-compaction";
        commit(&table, &[(0, 1), (1, 2)], "a", RowKind::Insert).await;
        compact(&table, full).await;
        let pending = commit(&table, &[(0, 1), (0, 3)], "b", RowKind::Insert).await;

        // Starts between the writer's commit and its compaction.
        let mut reader = ChangeReader::open(table.clone(), StreamOptions::default())
            .await
            .unwrap();
        let compacted = compact(&table, full).await;
        assert_eq!(compacted, pending + 1, "{name}");
        let steps = drain(&mut reader).await;
        assert_eq!(
            steps.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
            vec![
                (pending, ChangeSource::Full),
                (compacted, ChangeSource::Changelog)
            ],
            "{name}"
        );
        assert_eq!(
            sorted(steps[0].2.clone()),
            inserts(&[(0, 1), (1, 2)], "a"),
            "{name}: the full read holds only compacted rows"
        );
        let mut model = HashMap::new();
        for (_, _, changes) in &steps {
            apply_strictly(&mut model, changes);
        }
        assert_eq!(model_rows(&model), table_rows(&table).await, "{name}");

        // from-snapshot-full starts the same way.
        let mut reader =
            ChangeReader::open(table.clone(), options(StartMode::FromSnapshotFull(pending)))
                .await
                .unwrap();
        let mut model = HashMap::new();
        for (_, _, changes) in &drain(&mut reader).await {
            apply_strictly(&mut model, changes);
        }
        assert_eq!(model_rows(&model), table_rows(&table).await, "{name}");
    }
}
