//! Catalog, schema evolution, time travel, overwrite, copy-on-write changes,
//! concurrent commits and corrupt metadata, through the engine's API.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use tidelake_engine::{
    Catalog, CompareOp, DataType, DataTypeKind, Datum, EngineError, Identifier, Predicate, RowKind,
    SchemaChange, Table, TableSpec,
};
use tidelake_testkit::table::{col, column, on_disk, option_map, string};

fn spec(pk: bool, options: &[(&str, &str)]) -> TableSpec {
    TableSpec {
        columns: vec![
            col("id", DataTypeKind::BigInt, false),
            col("name", string(), true),
        ],
        primary_keys: if pk { vec!["id".into()] } else { vec![] },
        partition_keys: vec![],
        options: option_map(options),
        comment: None,
    }
}

fn rows(table: &Table, ids: &[i64], name: &str) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(
            ids.iter().map(|i| format!("{name}{i}")).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(table.arrow_schema(), cols).unwrap()
}

async fn read(table: &Table, snapshot: Option<i64>) -> Vec<(i64, Option<String>)> {
    let plan = table.scan().with_snapshot(snapshot).plan().await.unwrap();
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        let ids = column::<Int64Array>(&b, 0);
        let names = column::<StringArray>(&b, 1);
        for i in 0..b.num_rows() {
            out.push((
                ids.value(i),
                names.is_valid(i).then(|| names.value(i).to_string()),
            ));
        }
    }
    out.sort();
    out
}

async fn setup(pk: bool, options: &[(&str, &str)]) -> (Catalog, Identifier, tempfile::TempDir) {
    on_disk(spec(pk, options)).await
}

#[tokio::test]
async fn databases_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    assert_eq!(catalog.list_databases().await.unwrap(), vec!["default"]);
    catalog.create_database("sales", false).await.unwrap();
    assert!(matches!(
        catalog.create_database("sales", false).await,
        Err(EngineError::DatabaseAlreadyExists(_))
    ));
    catalog.create_database("sales", true).await.unwrap();
    assert!(
        dir.path().join("sales.db").is_dir(),
        "Paimon layout: a folder per database"
    );
    let id = Identifier::new("sales", "orders");
    catalog
        .create_table(&id, spec(true, &[("bucket", "2")]), false)
        .await
        .unwrap();
    assert!(dir.path().join("sales.db/orders/schema/schema-0").is_file());
    let err = catalog
        .create_table(&id, spec(true, &[("bucket", "2")]), false)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::TableAlreadyExists(_)), "{err}");
    assert_eq!(catalog.list_tables("sales").await.unwrap(), vec!["orders"]);
    assert!(matches!(
        catalog.drop_database("sales", false, false).await,
        Err(EngineError::DatabaseNotEmpty(_))
    ));
    catalog.drop_table(&id, false).await.unwrap();
    assert!(matches!(
        catalog.load_table(&id).await,
        Err(EngineError::TableNotFound(_))
    ));
    catalog.drop_database("sales", false, false).await.unwrap();
    assert_eq!(catalog.list_databases().await.unwrap(), vec!["default"]);
}

#[tokio::test]
async fn bad_specs_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let id = Identifier::new("default", "t");
    let mut s = spec(true, &[]);
    s.primary_keys = vec!["nope".into()];
    let err = catalog
        .create_table(&id, s, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let err = catalog
        .create_table(&id, spec(true, &[("bucket", "many")]), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("bucket"), "{err}");
    assert!(
        catalog.list_tables("default").await.unwrap().is_empty(),
        "nothing created"
    );
}

#[tokio::test]
async fn upserts_deletes_and_time_travel() {
    let (catalog, id, _dir) = setup(true, &[("bucket", "2")]).await;
    let t = catalog.load_table(&id).await.unwrap();
    let mut w = t.writer();
    w.write(rows(&t, &[1, 2, 3], "a"), RowKind::Insert)
        .await
        .unwrap();
    assert_eq!(w.commit().await.unwrap(), Some(1));
    let mut w = t.writer();
    w.write(rows(&t, &[2, 4], "b"), RowKind::Insert)
        .await
        .unwrap();
    w.write(rows(&t, &[1], "x"), RowKind::Delete).await.unwrap();
    assert_eq!(w.commit().await.unwrap(), Some(2));
    let now = read(&t, None).await;
    assert_eq!(
        now,
        vec![
            (2, Some("b2".into())),
            (3, Some("a3".into())),
            (4, Some("b4".into()))
        ]
    );
    assert_eq!(read(&t, Some(1)).await.len(), 3);
    assert!(t.scan().with_snapshot(Some(9)).plan().await.is_err());
    let snap = t.snapshots().latest_snapshot().await.unwrap().unwrap();
    assert_eq!(
        snap.total_record_count,
        Some(6),
        "records in live files, retractions included"
    );
}

#[tokio::test]
async fn added_columns_read_as_null_from_old_files() {
    let (catalog, id, _dir) = setup(true, &[("bucket", "1")]).await;
    let t = catalog.load_table(&id).await.unwrap();
    let mut w = t.writer();
    w.write(rows(&t, &[1, 2], "a"), RowKind::Insert)
        .await
        .unwrap();
    w.commit().await.unwrap();
    catalog
        .alter_table(
            &id,
            vec![SchemaChange::AddColumn {
                name: "qty".into(),
                data_type: DataType::new(DataTypeKind::Int, true),
                comment: None,
            }],
        )
        .await
        .unwrap();
    let t = catalog.load_table(&id).await.unwrap();
    assert_eq!(t.schema().id, 1);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![2])),
        Arc::new(StringArray::from(vec!["new"])),
        Arc::new(Int32Array::from(vec![7])),
    ];
    let mut w = t.writer();
    w.write(
        RecordBatch::try_new(t.arrow_schema(), cols).unwrap(),
        RowKind::Insert,
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    let batches: Vec<RecordBatch> = t
        .scan()
        .plan()
        .await
        .unwrap()
        .read_all()
        .try_collect()
        .await
        .unwrap();
    let all = arrow_select::concat::concat_batches(&t.arrow_schema(), &batches).unwrap();
    let qty = column::<Int32Array>(&all, 2);
    let ids = column::<Int64Array>(&all, 0);
    for i in 0..all.num_rows() {
        match ids.value(i) {
            1 => assert!(qty.is_null(i)),
            2 => assert_eq!(qty.value(i), 7),
            other => panic!("unexpected id {other}"),
        }
    }
    let err = catalog
        .alter_table(
            &id,
            vec![SchemaChange::SetOption {
                key: "bucket".into(),
                value: "4".into(),
            }],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bucket"), "{err}");
}

#[tokio::test]
async fn overwrite_replaces_the_table() {
    let (catalog, id, _dir) = setup(false, &[]).await;
    let t = catalog.load_table(&id).await.unwrap();
    let mut w = t.writer();
    w.write(rows(&t, &[1, 2], "a"), RowKind::Insert)
        .await
        .unwrap();
    w.commit().await.unwrap();
    let mut w = t.writer();
    w.set_overwrite(true);
    w.write(rows(&t, &[9], "z"), RowKind::Insert).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(read(&t, None).await, vec![(9, Some("z9".into()))]);
}

#[tokio::test]
async fn append_rows_are_deleted_by_rewrite() {
    let (catalog, id, _dir) = setup(false, &[]).await;
    let t = catalog.load_table(&id).await.unwrap();
    for chunk in [[1i64, 2], [3, 4]] {
        let mut w = t.writer();
        w.write(rows(&t, &chunk, "a"), RowKind::Insert)
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
    let pred = Predicate::Compare {
        column: "id".into(),
        op: CompareOp::LtEq,
        value: Datum::BigInt(3),
    };
    let outcome = t
        .rewrite_append_files(Some(pred), |b| {
            let ids = column::<Int64Array>(b, 0);
            let keep: arrow_array::BooleanArray = ids.iter().map(|v| Some(v != Some(3))).collect();
            let kept = arrow_select::filter::filter_record_batch(b, &keep).unwrap();
            let n = (b.num_rows() - kept.num_rows()) as u64;
            Ok((n > 0).then_some((kept, n)))
        })
        .await
        .unwrap();
    assert_eq!(outcome.rows_changed, 1);
    assert_eq!(
        read(&t, None).await.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
}

#[tokio::test]
async fn concurrent_commits_all_land_or_fail_cleanly() {
    let (catalog, id, _dir) = setup(false, &[]).await;
    let t = catalog.load_table(&id).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut w = t.writer();
            w.write(rows(&t, &[i], "c"), RowKind::Insert).await.unwrap();
            w.commit().await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().unwrap());
    }
    ids.sort();
    assert_eq!(
        ids,
        (1..=8).collect::<Vec<_>>(),
        "every append commit lands with its own snapshot"
    );
    assert_eq!(read(&t, None).await.len(), 8);
}

#[tokio::test]
async fn racing_writers_on_one_bucket_never_lose_a_committed_row() {
    let (catalog, id, _dir) = setup(true, &[("bucket", "1")]).await;
    let t = catalog.load_table(&id).await.unwrap();
    let mut a = t.writer();
    let mut b = t.writer();
    a.write(rows(&t, &[1], "a"), RowKind::Insert).await.unwrap();
    b.write(rows(&t, &[1], "b"), RowKind::Insert).await.unwrap();
    a.commit().await.unwrap();
    let err = b.commit().await.unwrap_err();
    assert!(matches!(err, EngineError::CommitConflict { .. }), "{err}");
    assert_eq!(read(&t, None).await, vec![(1, Some("a1".into()))]);
}

#[tokio::test]
async fn corrupt_snapshot_is_a_clear_error() {
    let (catalog, id, dir) = setup(true, &[("bucket", "1")]).await;
    let t = catalog.load_table(&id).await.unwrap();
    let mut w = t.writer();
    w.write(rows(&t, &[1], "a"), RowKind::Insert).await.unwrap();
    w.commit().await.unwrap();
    std::fs::write(
        dir.path().join("default.db/t/snapshot/snapshot-1"),
        b"{ not json",
    )
    .unwrap();
    let err = match t.scan().plan().await {
        Ok(_) => panic!("a corrupt snapshot must not plan"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("snapshot-1"), "{err}");
    // A writer must not build on it either.
    let mut w = t.writer();
    let err = w
        .write(rows(&t, &[2], "a"), RowKind::Insert)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("snapshot-1"), "{err}");
}

#[tokio::test]
async fn dynamic_bucket_keys_keep_their_bucket() {
    let (catalog, id, _dir) = setup(
        true,
        &[("bucket", "-1"), ("dynamic-bucket.target-row-num", "3")],
    )
    .await;
    let t = catalog.load_table(&id).await.unwrap();
    let mut w = t.writer();
    w.write(rows(&t, &[1, 2, 3, 4, 5, 6, 7], "a"), RowKind::Insert)
        .await
        .unwrap();
    w.commit().await.unwrap();
    let t = catalog.load_table(&id).await.unwrap();
    let mut w = t.writer();
    w.write(rows(&t, &[2, 6, 8], "b"), RowKind::Insert)
        .await
        .unwrap();
    w.commit().await.unwrap();
    let got = read(&t, None).await;
    assert_eq!(got.len(), 8, "{got:?}");
    assert_eq!(got[1], (2, Some("b2".into())));
    assert_eq!(got[5], (6, Some("b6".into())));
    let plan = t.scan().plan().await.unwrap();
    assert!(
        plan.splits().len() >= 3,
        "7 keys at 3 per bucket need 3 buckets"
    );
}

#[tokio::test]
async fn counting_rows_needs_no_column() {
    let (catalog, id, _dir) = setup(true, &[("bucket", "1"), ("write-only", "true")]).await;
    let table = catalog.load_table(&id).await.unwrap();
    for (ids, name) in [(&[1i64, 2, 3][..], "a"), (&[2, 3, 4][..], "b")] {
        let mut w = table.writer();
        w.write(rows(&table, ids, name), RowKind::Insert)
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
    // Two overlapping runs: the merge path, with an empty projection.
    let plan = table
        .scan()
        .with_projection(Some(vec![]))
        .plan()
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    assert!(batches.iter().all(|b| b.num_columns() == 0));
}

/// A predicate pinning the whole bucket key reads one bucket: every key is
/// still found (after upserts and a delete spread over several files), and
/// the plan holds only the key's bucket; a range predicate prunes no bucket.
#[tokio::test]
async fn point_lookups_read_only_the_keys_bucket() {
    let (catalog, id, _dir) = setup(true, &[("bucket", "4"), ("write-only", "true")]).await;
    let table = catalog.load_table(&id).await.unwrap();
    let ids: Vec<i64> = (0..200).collect();
    for round in ["a", "b"] {
        let mut w = table.writer();
        w.write(rows(&table, &ids, round), RowKind::Insert)
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
    let mut w = table.writer();
    w.write(rows(&table, &[7], "gone"), RowKind::Delete)
        .await
        .unwrap();
    w.commit().await.unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let all = table.scan().plan().await.unwrap();
    assert_eq!(all.splits().len(), 4, "the rows fill every bucket");
    for key in ids {
        for pred in [
            Predicate::Compare {
                column: "id".into(),
                op: CompareOp::Eq,
                value: Datum::BigInt(key),
            },
            Predicate::In {
                column: "id".into(),
                values: vec![Datum::BigInt(key)],
            },
        ] {
            let plan = table.scan().with_predicate(pred).plan().await.unwrap();
            assert!(
                plan.splits().len() <= 1,
                "key {key}: {} splits",
                plan.splits().len()
            );
            let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
            let mut found = Vec::new();
            for b in &batches {
                let got = column::<Int64Array>(b, 0);
                let names = column::<StringArray>(b, 1);
                for i in 0..b.num_rows() {
                    if got.value(i) == key {
                        found.push(names.value(i).to_string());
                    }
                }
            }
            let expected = if key == 7 {
                vec![]
            } else {
                vec![format!("b{key}")]
            };
            assert_eq!(found, expected, "key {key}");
        }
    }
    let range = Predicate::Compare {
        column: "id".into(),
        op: CompareOp::LtEq,
        value: Datum::BigInt(1_000),
    };
    let plan = table.scan().with_predicate(range).plan().await.unwrap();
    assert_eq!(plan.splits().len(), 4, "a range is no point lookup");
}
