//! Fenced progress, the engine's part of exactly-once jobs and pipelines: a
//! commit whose recorded progress is stale is refused without writing
//! anything; progress (`tidelake.progress.*`) carries into every later
//! snapshot; a fenced commit without rows still records.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use tidelake_engine::introspect::CommitKind;
use tidelake_engine::{
    read_progress, Catalog, ColumnSpec, CompactOptions, DataType, DataTypeKind, EngineError,
    Identifier, OwnerProgress, ProgressOwner, RowKind, Table, TableSpec,
};

async fn table(dir: &tempfile::TempDir) -> Table {
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let id = Identifier::new("default", "t");
    let spec = TableSpec {
        columns: vec![
            ColumnSpec {
                name: "k".into(),
                data_type: DataType::new(DataTypeKind::BigInt, false),
                comment: None,
            },
            ColumnSpec {
                name: "v".into(),
                data_type: DataType::new(DataTypeKind::BigInt, true),
                comment: None,
            },
        ],
        primary_keys: vec!["k".into()],
        partition_keys: Vec::new(),
        options: BTreeMap::from([("bucket".to_string(), "1".to_string())]),
        comment: None,
    };
    catalog.create_table(&id, spec, false).await.unwrap();
    catalog.load_table(&id).await.unwrap()
}

fn rows(table: &Table, keys: &[i64]) -> RecordBatch {
    let k: ArrayRef = Arc::new(Int64Array::from(keys.to_vec()));
    let v: ArrayRef = Arc::new(Int64Array::from(
        keys.iter().map(|k| k * 10).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(table.arrow_schema(), vec![k, v]).unwrap()
}

fn owner() -> ProgressOwner {
    ProgressOwner::new("job.j").unwrap()
}

fn key() -> String {
    owner().key("db.src")
}

/// Commits `keys`, recording `progress` (if any) from `fence` (if any).
async fn commit(
    table: &Table,
    keys: &[i64],
    progress: Option<&str>,
    fence: Option<OwnerProgress>,
) -> Result<Option<i64>, EngineError> {
    let mut writer = table.writer();
    if !keys.is_empty() {
        writer
            .write(rows(table, keys), RowKind::Insert)
            .await
            .unwrap();
    }
    match (progress, fence) {
        (Some(p), Some(from)) => {
            let positions = BTreeMap::from([("db.src".to_string(), p.to_string())]);
            writer
                .commit_progress(CommitKind::Append, &from, &positions, BTreeMap::new())
                .await
        }
        (None, None) => {
            writer
                .commit_with(CommitKind::Append, BTreeMap::new())
                .await
        }
        _ => panic!("progress and fence go together"),
    }
}

async fn latest_properties(table: &Table) -> BTreeMap<String, String> {
    let snapshot = table.snapshots().latest_snapshot().await.unwrap().unwrap();
    snapshot.properties.unwrap_or_default()
}

fn fence(read_at: Option<i64>, expected: Option<&str>) -> OwnerProgress {
    let mut progress = OwnerProgress::none(owner(), read_at);
    if let Some(value) = expected {
        progress
            .positions
            .insert("db.src".to_string(), value.to_string());
    }
    progress
}

fn files_under(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            n += files_under(&path);
        } else {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn a_stale_fence_refuses_the_commit_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = table(&dir).await;
    // Two instances read "no progress" at snapshot 1.
    assert_eq!(commit(&t, &[1], None, None).await.unwrap(), Some(1));
    let first = commit(&t, &[2], Some("5"), Some(fence(Some(1), None)))
        .await
        .unwrap();
    assert_eq!(first, Some(2));
    let files_before = files_under(dir.path());
    let second = commit(&t, &[3], Some("5"), Some(fence(Some(1), None))).await;
    let Err(EngineError::CommitConflict { message, .. }) = second else {
        panic!("the second instance committed: {second:?}");
    };
    assert!(message.contains("snapshot 2 records"), "{message}");
    assert_eq!(t.snapshots().latest_snapshot_id().await.unwrap(), Some(2));
    assert_eq!(
        files_under(dir.path()),
        files_before,
        "its files are deleted"
    );
    // The first instance goes on from what it recorded.
    let third = commit(&t, &[4], Some("7"), Some(fence(Some(2), Some("5"))))
        .await
        .unwrap();
    assert_eq!(third, Some(3));
}

#[tokio::test]
async fn progress_is_carried_by_later_commits_and_checked_through_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = table(&dir).await;
    commit(&t, &[1], Some("3"), Some(fence(None, None)))
        .await
        .unwrap();
    // Another writer, then a compaction: neither records progress.
    commit(&t, &[2], None, None).await.unwrap();
    t.compact(CompactOptions {
        full: true,
        ..CompactOptions::default()
    })
    .await
    .unwrap();
    let latest = t.snapshots().latest_snapshot_id().await.unwrap().unwrap();
    assert!(latest >= 3, "a compaction committed");
    assert_eq!(
        latest_properties(&t).await.get(&key()),
        Some(&"3".to_string())
    );
    // A fence read at snapshot 1 sees the same value carried: no conflict.
    let next = commit(&t, &[], Some("4"), Some(fence(Some(1), Some("3"))))
        .await
        .unwrap();
    assert_eq!(next, Some(latest + 1), "a commit of progress alone");
    assert_eq!(
        latest_properties(&t).await.get(&key()),
        Some(&"4".to_string())
    );
    // Other properties are the commit's own, not carried.
    let mut writer = t.writer();
    writer.write(rows(&t, &[5]), RowKind::Insert).await.unwrap();
    writer
        .commit_with(
            CommitKind::Append,
            BTreeMap::from([("note".to_string(), "x".to_string())]),
        )
        .await
        .unwrap();
    commit(&t, &[6], None, None).await.unwrap();
    let properties = latest_properties(&t).await;
    assert_eq!(properties.get("note"), None);
    assert_eq!(properties.get(&key()), Some(&"4".to_string()));
    // Without a fence, a commit of nothing is still nothing.
    assert_eq!(commit(&t, &[], None, None).await.unwrap(), None);
    // The owner reads its newest position back, from the latest snapshot.
    let read = read_progress(t.snapshots(), &owner()).await.unwrap();
    let latest = t.snapshots().latest_snapshot_id().await.unwrap();
    assert_eq!(read.read_at, latest);
    assert_eq!(read.recorded_in, latest);
    assert_eq!(read.positions.get("db.src"), Some(&"4".to_string()));
    let stranger = ProgressOwner::new("job.other").unwrap();
    let none = read_progress(t.snapshots(), &stranger).await.unwrap();
    assert_eq!((none.recorded_in, none.positions.len()), (None, 0));
}
