//! Changelog producers (`input`, `lookup`, `full-compaction`): random
//! upserts, deletes, commits and compactions (inline and dedicated), then
//! the changelog files of every snapshot, replayed from the start, must
//! rebuild the table exactly; for the compaction producers every change
//! must also be consistent with the replayed state (`-U`/`-D` carry the
//! current value, `+I` only for absent keys).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, Int32Array, Int64Array, Int8Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;
use tidelake_engine::manifests::ManifestStore;
use tidelake_engine::{
    Catalog, ColumnSpec, CompactOptions, DataType, DataTypeKind, Identifier, RowKind, Table,
    TableSpec,
};
use tidelake_testkit::table::{block_on, col, column, read_latest};

#[derive(Clone, Debug)]
enum Op {
    Upsert(i64, i32),
    Delete(i64),
    Commit,
    Compact,
    FullCompact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0i64..30, 0i32..1000).prop_map(|(k, v)| Op::Upsert(k, v)),
        2 => (0i64..30).prop_map(Op::Delete),
        3 => Just(Op::Commit),
        1 => Just(Op::Compact),
        1 => Just(Op::FullCompact),
    ]
}

async fn create(options: &[(&str, &str)]) -> (Catalog, Identifier) {
    let catalog = Catalog::open("memory://").await.unwrap();
    let id = Identifier::new("default", "t");
    let mut opts: BTreeMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    opts.entry("bucket".into()).or_insert_with(|| "2".into());
    let spec = TableSpec {
        columns: vec![
            col("k", DataTypeKind::BigInt, false),
            col("v", DataTypeKind::Int, true),
            ColumnSpec {
                name: "s".into(),
                data_type: DataType::string(),
                comment: None,
            },
        ],
        primary_keys: vec!["k".into()],
        partition_keys: vec![],
        options: opts,
        comment: None,
    };
    catalog.create_table(&id, spec, false).await.unwrap();
    (catalog, id)
}

fn rows_batch(table: &Table, rows: &[(i64, Option<i32>)]) -> RecordBatch {
    let k = Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
    let v = Int32Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let s = StringArray::from(
        rows.iter()
            .map(|r| r.1.map(|v| format!("s{v}")))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        table.arrow_schema(),
        vec![Arc::new(k), Arc::new(v), Arc::new(s)],
    )
    .unwrap()
}

type State = HashMap<i64, (Option<i32>, Option<String>)>;

async fn read_table(table: &Table) -> State {
    let batches = read_latest(table).await;
    let mut out = State::new();
    for b in batches {
        let k = column::<Int64Array>(&b, 0);
        let v = column::<Int32Array>(&b, 1);
        let s = column::<StringArray>(&b, 2);
        for i in 0..b.num_rows() {
            let value = (
                (!v.is_null(i)).then(|| v.value(i)),
                (!s.is_null(i)).then(|| s.value(i).to_string()),
            );
            assert!(out.insert(k.value(i), value).is_none(), "key read twice");
        }
    }
    out
}

/// One changelog row: key, kind, value.
type Change = (i64, RowKind, (Option<i32>, Option<String>));

/// The changelog rows of every snapshot, oldest snapshot first.
async fn changelog(table: &Table) -> Vec<(i64, Vec<Change>)> {
    let manifests =
        ManifestStore::new(table.store().clone(), table.paths().clone(), "zstd").unwrap();
    let mut out = Vec::new();
    for id in table.snapshots().list_snapshot_ids().await.unwrap() {
        let snapshot = table.snapshots().snapshot(id).await.unwrap().unwrap();
        let mut changes = Vec::new();
        if let Some(list) = &snapshot.changelog_manifest_list {
            let mut rows_in_files = 0;
            for meta in manifests.read_list(list).await.unwrap() {
                for entry in manifests.read_manifest(&meta.file_name).await.unwrap() {
                    let path = format!(
                        "{}/{}",
                        table.paths().bucket_dir("", entry.bucket),
                        entry.file.file_name
                    );
                    assert!(entry.file.file_name.starts_with("changelog-"), "{path}");
                    let bytes = table.store().get(&path).await.unwrap();
                    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                        .unwrap()
                        .build()
                        .unwrap();
                    for b in reader {
                        let b = b.unwrap();
                        rows_in_files += b.num_rows() as i64;
                        changes.extend(decode(&b));
                    }
                }
            }
            assert_eq!(snapshot.changelog_record_count, Some(rows_in_files));
        }
        out.push((id, changes));
    }
    out
}

fn decode(b: &RecordBatch) -> Vec<Change> {
    let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
    let k = col("k");
    let k = k.as_any().downcast_ref::<Int64Array>().unwrap();
    let kind = col("_VALUE_KIND");
    let kind = kind.as_any().downcast_ref::<Int8Array>().unwrap();
    let v = col("v");
    let v = v.as_any().downcast_ref::<Int32Array>().unwrap();
    let s = col("s");
    let s = s.as_any().downcast_ref::<StringArray>().unwrap();
    (0..b.num_rows())
        .map(|i| {
            (
                k.value(i),
                RowKind::from_byte(kind.value(i)).unwrap(),
                (
                    (!v.is_null(i)).then(|| v.value(i)),
                    (!s.is_null(i)).then(|| s.value(i).to_string()),
                ),
            )
        })
        .collect()
}

/// Replays the changelog. `strict`: every change must agree with the state
/// it applies to, as a complete changelog does.
fn replay(log: &[(i64, Vec<Change>)], strict: bool) -> State {
    let mut state = State::new();
    for (snapshot, changes) in log {
        for (k, kind, value) in changes {
            let at = format!("snapshot {snapshot}, key {k}, {kind:?} {value:?}");
            match kind {
                RowKind::Insert | RowKind::UpdateAfter => {
                    let prev = state.insert(*k, value.clone());
                    if strict {
                        assert!(prev.is_none(), "{at}: key already present as {prev:?}");
                    }
                }
                RowKind::UpdateBefore | RowKind::Delete => {
                    let prev = state.remove(k);
                    if strict {
                        assert_eq!(prev.as_ref(), Some(value), "{at}: retracts another value");
                    }
                }
            }
        }
    }
    state
}

async fn run(ops: Vec<Op>, options: &[(&str, &str)], strict: bool) {
    let (catalog, id) = create(options).await;
    let table = catalog.load_table(&id).await.unwrap();
    let mut writer = table.writer();
    let mut model = State::new();
    for op in ops {
        match op {
            Op::Upsert(k, v) => {
                let val = (v % 7 != 0).then_some(v);
                writer
                    .write(rows_batch(&table, &[(k, val)]), RowKind::Insert)
                    .await
                    .unwrap();
                model.insert(k, (val, val.map(|v| format!("s{v}"))));
            }
            Op::Delete(k) => {
                writer
                    .write(rows_batch(&table, &[(k, None)]), RowKind::Delete)
                    .await
                    .unwrap();
                model.remove(&k);
            }
            Op::Commit => {
                writer.commit().await.unwrap();
                writer = table.writer();
            }
            Op::Compact | Op::FullCompact => {
                let full = matches!(op, Op::FullCompact);
                table
                    .compact(CompactOptions {
                        full,
                        partition: None,
                    })
                    .await
                    .unwrap();
            }
        }
    }
    writer.commit().await.unwrap();
    assert_eq!(
        read_table(&table).await,
        model,
        "table differs from the model"
    );
    // The compaction producers describe data once compacted.
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    let log = changelog(&table).await;
    assert_eq!(replay(&log, strict), model, "replayed changelog differs");
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..80)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn input_changelog_replays_to_the_table(ops in ops(), write_only: bool) {
        let write_only = write_only.to_string();
        block_on(run(ops, &[
            ("changelog-producer", "input"),
            ("write-only", &write_only),
            ("num-sorted-run.compaction-trigger", "2"),
        ], false));
    }

    #[test]
    fn lookup_changelog_is_complete(ops in ops(), write_only: bool, trigger in 2usize..5) {
        let write_only = write_only.to_string();
        let trigger = trigger.to_string();
        block_on(run(ops, &[
            ("changelog-producer", "lookup"),
            ("write-only", &write_only),
            ("num-sorted-run.compaction-trigger", &trigger),
        ], true));
    }

    #[test]
    fn full_compaction_changelog_is_complete(ops in ops(), write_only: bool, delta_commits in 1u32..4) {
        let write_only = write_only.to_string();
        let delta_commits = delta_commits.to_string();
        block_on(run(ops, &[
            ("changelog-producer", "full-compaction"),
            ("write-only", &write_only),
            ("full-compaction.delta-commits", &delta_commits),
            ("num-sorted-run.compaction-trigger", "2"),
        ], true));
    }
}

#[test]
fn changelog_producer_needs_a_primary_key_and_a_known_name() {
    block_on(async {
        let catalog = Catalog::open("memory://").await.unwrap();
        let spec = |producer: &str, pk: bool| TableSpec {
            columns: vec![col("k", DataTypeKind::BigInt, false)],
            primary_keys: if pk { vec!["k".into()] } else { vec![] },
            partition_keys: vec![],
            options: [("changelog-producer".to_string(), producer.to_string())]
                .into_iter()
                .collect(),
            comment: None,
        };
        let id = Identifier::new("default", "t");
        let err = catalog
            .create_table(&id, spec("input", false), false)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a primary key"), "{err}");
        let err = catalog
            .create_table(&id, spec("sometimes", true), false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'changelog-producer'") && err.contains("sometimes"),
            "{err}"
        );
        assert!(
            catalog.load_table(&id).await.is_err(),
            "nothing was created"
        );
    });
}
