//! Property test: random upserts and deletes over a small key space, split
//! into random commits and buffer flushes, read back equal to a model map.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use proptest::prelude::*;
use tidelake_engine::{
    Catalog, ColumnSpec, DataType, DataTypeKind, Identifier, RowKind, TableSpec,
};
use tidelake_testkit::table::{column, in_memory, read_latest};

#[derive(Clone, Debug)]
enum Op {
    Upsert(i64, i32),
    Delete(i64),
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0i64..40, any::<i32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        2 => (0i64..40).prop_map(Op::Delete),
        1 => Just(Op::Commit),
    ]
}

fn spec(buckets: i32, partitioned: bool, buffer: &str) -> TableSpec {
    let mut options = BTreeMap::new();
    options.insert("bucket".to_string(), buckets.to_string());
    options.insert("write-buffer-size".to_string(), buffer.to_string());
    let mut columns = vec![
        ColumnSpec {
            name: "k".into(),
            data_type: DataType::new(DataTypeKind::BigInt, false),
            comment: None,
        },
        ColumnSpec {
            name: "v".into(),
            data_type: DataType::new(DataTypeKind::Int, true),
            comment: None,
        },
        ColumnSpec {
            name: "s".into(),
            data_type: DataType::string(),
            comment: None,
        },
    ];
    let mut pk = vec!["k".to_string()];
    let mut part = vec![];
    if partitioned {
        columns.push(ColumnSpec {
            name: "p".into(),
            data_type: DataType::string(),
            comment: None,
        });
        pk.push("p".into());
        part.push("p".into());
    }
    TableSpec {
        columns,
        primary_keys: pk,
        partition_keys: part,
        options,
        comment: None,
    }
}

fn batch(
    rows: &[(i64, Option<i32>)],
    partitioned: bool,
    schema: arrow_schema::SchemaRef,
) -> RecordBatch {
    let k = Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
    let v = Int32Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let s = StringArray::from(
        rows.iter()
            .map(|r| Some(format!("row-{}-{:?}", r.0, r.1)))
            .collect::<Vec<_>>(),
    );
    let mut cols: Vec<Arc<dyn Array>> = vec![Arc::new(k), Arc::new(v), Arc::new(s)];
    if partitioned {
        let p = StringArray::from(
            rows.iter()
                .map(|r| Some(format!("p{}", r.0 % 3)))
                .collect::<Vec<_>>(),
        );
        cols.push(Arc::new(p));
    }
    RecordBatch::try_new(schema, cols).unwrap()
}

async fn read_all(catalog: &Catalog, id: &Identifier) -> HashMap<i64, Option<i32>> {
    let table = catalog.load_table(id).await.unwrap();
    let batches = read_latest(&table).await;
    let mut out = HashMap::new();
    for b in batches {
        let k = column::<Int64Array>(&b, 0);
        let v = column::<Int32Array>(&b, 1);
        for i in 0..b.num_rows() {
            let prev = out.insert(
                k.value(i),
                if v.is_null(i) { None } else { Some(v.value(i)) },
            );
            assert!(prev.is_none(), "key {} read twice", k.value(i));
        }
    }
    out
}

async fn run(ops: Vec<Op>, buckets: i32, partitioned: bool, buffer: &str) {
    let (catalog, id) = in_memory(spec(buckets, partitioned, buffer)).await;
    let table = catalog.load_table(&id).await.unwrap();
    let schema = table.arrow_schema();
    let mut model: HashMap<i64, Option<i32>> = HashMap::new();
    let mut writer = table.writer();
    // Rows are written one small batch per op so that several versions of a
    // key can meet in one buffer, in one file, and across files.
    for op in ops {
        match op {
            Op::Upsert(k, v) => {
                let val = if v % 5 == 0 { None } else { Some(v) };
                writer
                    .write(
                        batch(&[(k, val)], partitioned, schema.clone()),
                        RowKind::Insert,
                    )
                    .await
                    .unwrap();
                model.insert(k, val);
            }
            Op::Delete(k) => {
                writer
                    .write(
                        batch(&[(k, None)], partitioned, schema.clone()),
                        RowKind::Delete,
                    )
                    .await
                    .unwrap();
                model.remove(&k);
            }
            Op::Commit => {
                writer.commit().await.unwrap();
                writer = catalog.load_table(&id).await.unwrap().writer();
            }
        }
    }
    writer.commit().await.unwrap();
    assert_eq!(read_all(&catalog, &id).await, model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn reads_equal_model(ops in proptest::collection::vec(op(), 1..120), buckets in 1i32..4, partitioned: bool, tiny_buffer: bool) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // A tiny buffer makes nearly every write its own level-0 file.
        let buffer = if tiny_buffer { "1 b" } else { "64 mb" };
        rt.block_on(run(ops, buckets, partitioned, buffer));
    }
}
