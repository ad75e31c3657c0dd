//! The engine on an S3 warehouse: a real S3-compatible server (moto, from
//! the test venv) on loopback, reached through object_store's S3 client.
//! Commits rely on S3's conditional put, so racing writers are covered too.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use tidelake_engine::{
    Catalog, ColumnSpec, DataType, DataTypeKind, Identifier, RowKind, Table, TableSpec,
};
use tidelake_store::WarehouseStore;
use tidelake_testkit::moto::{MotoServer, BUCKET};
use tidelake_testkit::table::column;

fn spec() -> TableSpec {
    let column = |name: &str, data_type: DataType| ColumnSpec {
        name: name.into(),
        data_type,
        comment: None,
    };
    TableSpec {
        columns: vec![
            column("id", DataType::new(DataTypeKind::BigInt, false)),
            column(
                "dt",
                DataType::new(DataTypeKind::VarChar(i32::MAX as u32), false),
            ),
            column("v", DataType::string()),
        ],
        primary_keys: vec!["id".into(), "dt".into()],
        partition_keys: vec!["dt".into()],
        options: BTreeMap::from([("bucket".to_string(), "2".to_string())]),
        comment: None,
    }
}

fn rows(table: &Table, ids: &[i64], value: &str) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|i| format!("d{}", i % 2))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|i| format!("{value}{i}"))
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(table.arrow_schema(), columns).unwrap()
}

async fn read(table: &Table, snapshot: Option<i64>) -> Vec<(i64, String)> {
    let plan = table.scan().with_snapshot(snapshot).plan().await.unwrap();
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        let ids = column::<Int64Array>(&b, 0);
        let values = column::<StringArray>(&b, 2);
        for i in 0..b.num_rows() {
            out.push((ids.value(i), values.value(i).to_string()));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_on_s3_upsert_delete_race_and_time_travel() {
    let Some(server) = MotoServer::start_or_skip() else {
        return;
    };
    let uri = format!("s3://{BUCKET}/warehouse");
    let store = WarehouseStore::open_with_options(&uri, &server.options())
        .await
        .unwrap();
    let catalog = Catalog::from_store(store);
    catalog.create_database("shop", false).await.unwrap();
    assert!(catalog
        .list_databases()
        .await
        .unwrap()
        .contains(&"shop".to_string()));
    let id = Identifier::new("shop", "orders");
    catalog.create_table(&id, spec(), false).await.unwrap();
    assert_eq!(
        catalog.list_tables("shop").await.unwrap(),
        vec!["orders".to_string()]
    );

    let table = catalog.load_table(&id).await.unwrap();
    let mut w = table.writer();
    w.write(rows(&table, &[1, 2, 3, 4], "a"), RowKind::Insert)
        .await
        .unwrap();
    let first = w.commit().await.unwrap().unwrap();

    let mut w = table.writer();
    w.write(rows(&table, &[2, 3], "b"), RowKind::Insert)
        .await
        .unwrap();
    w.write(rows(&table, &[4], "x"), RowKind::Delete)
        .await
        .unwrap();
    w.commit().await.unwrap();

    // Two writers on different keys of the same buckets, from one base
    // snapshot: both land, or the loser gets a clear conflict, never a loss.
    let (t1, t2) = (
        catalog.load_table(&id).await.unwrap(),
        catalog.load_table(&id).await.unwrap(),
    );
    let task = |t: Table, ids: Vec<i64>| async move {
        let mut w = t.writer();
        w.write(rows(&t, &ids, "c"), RowKind::Insert).await.unwrap();
        w.commit().await
    };
    let (r1, r2) = tokio::join!(task(t1, vec![10, 11]), task(t2, vec![20, 21]));
    let landed: Vec<i64> = [(r1, [10, 11]), (r2, [20, 21])]
        .into_iter()
        .filter_map(|(r, ids)| match r {
            Ok(Some(_)) => Some(ids.to_vec()),
            Ok(None) => panic!("a writer with rows committed nothing"),
            Err(e) => {
                assert!(e.to_string().contains("conflict"), "unexpected error: {e}");
                None
            }
        })
        .flatten()
        .collect();
    assert!(!landed.is_empty(), "at least one racing writer lands");

    let table = catalog.load_table(&id).await.unwrap();
    let mut expected = vec![
        (1, "a1".to_string()),
        (2, "b2".to_string()),
        (3, "b3".to_string()),
    ];
    expected.extend(landed.iter().map(|i| (*i, format!("c{i}"))));
    expected.sort();
    assert_eq!(read(&table, None).await, expected);
    let at_first: Vec<(i64, String)> = (1..=4).map(|i| (i, format!("a{i}"))).collect();
    assert_eq!(read(&table, Some(first)).await, at_first);

    catalog.drop_table(&id, false).await.unwrap();
    assert!(catalog.load_table(&id).await.is_err());
}
