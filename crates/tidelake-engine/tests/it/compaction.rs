//! Compaction of primary-key tables: random upserts, deletes, commits and
//! compactions read back equal to a model; full compaction leaves one run
//! at the highest level without retractions; manifests carry the right
//! levels and sequence numbers; compactions racing writers never lose or
//! resurrect a row; inline compaction bounds the number of sorted runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, Int8Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use proptest::prelude::*;
use tidelake_engine::manifests::ManifestStore;
use tidelake_engine::{
    BackgroundCompactor, Catalog, ColumnSpec, CompactOptions, CompareOp, DataType, DataTypeKind,
    Datum, EngineError, Identifier, Predicate, RowKind, Split, Table, TableSpec,
};
use tidelake_format::manifest::FileKind;
use tidelake_format::snapshot::CommitKind;
use tidelake_testkit::table::{column, in_memory, read_latest, string};

type Model = BTreeMap<(i64, String), Option<i32>>;

fn spec(buckets: i32, partitioned: bool, options: &[(&str, &str)]) -> TableSpec {
    let col = |name: &str, data_type: DataType| ColumnSpec {
        name: name.into(),
        data_type,
        comment: None,
    };
    let mut columns = vec![
        col("k", DataType::new(DataTypeKind::BigInt, false)),
        col("v", DataType::new(DataTypeKind::Int, true)),
        col("p", DataType::string()),
    ];
    let mut opts: BTreeMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    opts.insert("bucket".into(), buckets.to_string());
    columns[2].data_type = DataType::new(string(), false);
    TableSpec {
        columns,
        primary_keys: if partitioned {
            vec!["k".into(), "p".into()]
        } else {
            vec!["k".into()]
        },
        partition_keys: if partitioned {
            vec!["p".into()]
        } else {
            vec![]
        },
        options: opts,
        comment: None,
    }
}

fn partition_of(k: i64, partitioned: bool) -> String {
    if partitioned {
        format!("p{}", k % 2)
    } else {
        "all".into()
    }
}

fn batch(table: &Table, rows: &[(i64, Option<i32>)], partitioned: bool) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| partition_of(r.0, partitioned))
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(table.arrow_schema(), cols).unwrap()
}

async fn read_all(table: &Table) -> Model {
    let batches = read_latest(table).await;
    let mut out = Model::new();
    for b in batches {
        let k = column::<Int64Array>(&b, 0);
        let v = column::<Int32Array>(&b, 1);
        let p = column::<StringArray>(&b, 2);
        for i in 0..b.num_rows() {
            let key = (k.value(i), p.value(i).to_string());
            let value = v.is_valid(i).then(|| v.value(i));
            assert!(
                out.insert(key.clone(), value).is_none(),
                "{key:?} read twice"
            );
        }
    }
    out
}

async fn splits(table: &Table) -> Vec<Split> {
    table.scan().plan().await.unwrap().splits().to_vec()
}

/// Sorted runs of a bucket: each level-0 file, plus each non-empty level.
fn run_count(split: &Split) -> usize {
    let level0 = split.files.iter().filter(|f| f.level == 0).count();
    let levels: BTreeSet<i32> = split
        .files
        .iter()
        .filter(|f| f.level > 0)
        .map(|f| f.level)
        .collect();
    level0 + levels.len()
}

/// The `_VALUE_KIND` values stored in a data file.
async fn stored_kinds(table: &Table, split: &Split, file_name: &str) -> Vec<i8> {
    let path = format!(
        "{}/{}bucket-{}/{}",
        table.paths().root,
        split.partition_path,
        split.bucket,
        file_name
    );
    let bytes = table.store().get(&path).await.unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let mut kinds = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let col = b.column_by_name("_VALUE_KIND").unwrap();
        kinds.extend(
            col.as_any()
                .downcast_ref::<Int8Array>()
                .unwrap()
                .values()
                .iter()
                .copied(),
        );
    }
    kinds
}

async fn assert_fully_compacted(table: &Table, max_level: i32) {
    for split in splits(table).await {
        assert_eq!(run_count(&split), 1, "bucket {} has one run", split.bucket);
        for f in &split.files {
            assert_eq!(f.level, max_level, "file {} at the max level", f.file_name);
            assert_eq!(f.delete_row_count, Some(0));
            let kinds = stored_kinds(table, &split, &f.file_name).await;
            assert!(
                kinds.iter().all(|k| *k == 0 || *k == 2),
                "no retraction rows after full compaction: {kinds:?}"
            );
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(i64, i32),
    Delete(i64),
    /// Upserts many keys at once, so that older runs are much larger than
    /// the newest ones and picks stop above them.
    Bulk(i32),
    Commit,
    Compact {
        full: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0i64..24, any::<i32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        3 => (0i64..24).prop_map(Op::Delete),
        1 => any::<i32>().prop_map(Op::Bulk),
        3 => Just(Op::Commit),
        2 => any::<bool>().prop_map(|full| Op::Compact { full }),
    ]
}

async fn run_model(
    ops: Vec<Op>,
    buckets: i32,
    partitioned: bool,
    inline: bool,
    tiny: bool,
    no_amplification_pick: bool,
) {
    let catalog = Catalog::open("memory://").await.unwrap();
    let id = Identifier::new("default", "t");
    let options = [
        ("write-only", if inline { "false" } else { "true" }),
        ("num-sorted-run.compaction-trigger", "3"),
        // Without size-amplification picks, compactions mostly write into
        // levels above older runs, where retractions must stay.
        (
            "compaction.max-size-amplification-percent",
            if no_amplification_pick {
                "1000000"
            } else {
                "200"
            },
        ),
        ("write-buffer-size", if tiny { "1 b" } else { "64 mb" }),
        // Small files so that rolling output is exercised.
        ("target-file-size", if tiny { "2 kb" } else { "128 mb" }),
    ];
    catalog
        .create_table(&id, spec(buckets, partitioned, &options), false)
        .await
        .unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let mut model = Model::new();
    let mut pending = model.clone();
    let mut writer = table.writer();
    for op in ops {
        match op {
            Op::Upsert(k, v) => {
                let value = (v % 4 != 0).then_some(v);
                writer
                    .write(batch(&table, &[(k, value)], partitioned), RowKind::Insert)
                    .await
                    .unwrap();
                pending.insert((k, partition_of(k, partitioned)), value);
            }
            Op::Delete(k) => {
                writer
                    .write(batch(&table, &[(k, None)], partitioned), RowKind::Delete)
                    .await
                    .unwrap();
                pending.remove(&(k, partition_of(k, partitioned)));
            }
            Op::Bulk(v) => {
                let rows: Vec<(i64, Option<i32>)> = (100..1100).map(|k| (k, Some(v))).collect();
                writer
                    .write(batch(&table, &rows, partitioned), RowKind::Insert)
                    .await
                    .unwrap();
                for (k, value) in rows {
                    pending.insert((k, partition_of(k, partitioned)), value);
                }
            }
            Op::Commit => {
                writer.commit().await.unwrap();
                model = pending.clone();
                writer = table.writer();
            }
            Op::Compact { full } => {
                let outcome = table
                    .compact(CompactOptions {
                        full,
                        partition: None,
                    })
                    .await
                    .unwrap();
                assert_eq!(outcome.snapshot_id.is_some(), outcome.files_in > 0);
                assert_eq!(read_all(&table).await, model);
                if full {
                    assert_fully_compacted(&table, 3).await;
                }
            }
        }
    }
    writer.commit().await.unwrap();
    assert_eq!(read_all(&table).await, pending);
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    assert_eq!(read_all(&table).await, pending);
    assert_fully_compacted(&table, 3).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn compaction_keeps_reads_equal_to_the_model(
        ops in proptest::collection::vec(op(), 1..100),
        buckets in 1i32..3,
        partitioned: bool,
        inline: bool,
        tiny: bool,
        no_amplification_pick: bool,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_model(ops, buckets, partitioned, inline, tiny, no_amplification_pick));
    }
}

async fn write_commit(table: &Table, rows: &[(i64, Option<i32>)], kind: RowKind) -> Option<i64> {
    let mut w = table.writer();
    w.write(batch(table, rows, false), kind).await.unwrap();
    w.commit().await.unwrap()
}

async fn delta_entries(
    table: &Table,
    snapshot_id: i64,
) -> Vec<tidelake_format::manifest::ManifestEntry> {
    let snapshot = table
        .snapshots()
        .snapshot(snapshot_id)
        .await
        .unwrap()
        .unwrap();
    let ms = ManifestStore::new(table.store().clone(), table.paths().clone(), "zstd").unwrap();
    let mut out = Vec::new();
    for meta in ms.read_list(&snapshot.delta_manifest_list).await.unwrap() {
        out.extend(ms.read_manifest(&meta.file_name).await.unwrap());
    }
    out
}

#[tokio::test]
async fn manifests_record_levels_and_sequence_numbers() {
    let (catalog, id) = in_memory(spec(1, false, &[("write-only", "true")])).await;
    let table = catalog.load_table(&id).await.unwrap();
    write_commit(
        &table,
        &[(1, Some(1)), (2, Some(2)), (3, Some(3))],
        RowKind::Insert,
    )
    .await;
    write_commit(&table, &[(2, Some(20))], RowKind::Insert).await;
    write_commit(&table, &[(3, None)], RowKind::Delete).await;
    let before = splits(&table).await;
    let inputs: Vec<_> = before[0].files.clone();
    assert_eq!(inputs.len(), 3);
    assert!(inputs.iter().all(|f| f.level == 0));

    // Three level-0 runs of similar size: not below the default trigger (5).
    let outcome = table.compact(CompactOptions::default()).await.unwrap();
    assert_eq!(outcome.snapshot_id, None);

    let outcome = table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    let snapshot_id = outcome.snapshot_id.unwrap();
    assert_eq!((outcome.files_in, outcome.files_out), (3, 1));
    assert_eq!(
        outcome.bytes_in,
        inputs.iter().map(|f| f.file_size as u64).sum::<u64>()
    );
    let snapshot = table
        .snapshots()
        .snapshot(snapshot_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.commit_kind, CommitKind::Compact);
    // Two rows remain (key 3 deleted), five rows were read.
    assert_eq!(snapshot.total_record_count, Some(2));

    let entries = delta_entries(&table, snapshot_id).await;
    let deleted: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.kind == FileKind::Delete)
        .map(|e| e.file.file_name.as_str())
        .collect();
    let expected: BTreeSet<&str> = inputs.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(deleted, expected);
    assert!(entries
        .iter()
        .filter(|e| e.kind == FileKind::Delete)
        .all(|e| e.file.level == 0));
    let added: Vec<_> = entries.iter().filter(|e| e.kind == FileKind::Add).collect();
    assert_eq!(added.len(), 1);
    let out = &added[0].file;
    // num-levels defaults to trigger + 1 = 6: the highest level is 5.
    assert_eq!(out.level, 5);
    assert_eq!(out.file_source, Some(1));
    assert_eq!(out.row_count, 2);
    // Surviving rows: key 1 (sequence 0) and key 2 (sequence 3).
    assert_eq!((out.min_sequence_number, out.max_sequence_number), (0, 3));
    assert_eq!(
        read_all(&table).await.into_iter().collect::<Vec<_>>(),
        vec![((1, "all".into()), Some(1)), ((2, "all".into()), Some(20))]
    );

    // A writer continues above the highest sequence number still stored.
    write_commit(&table, &[(4, Some(4))], RowKind::Insert).await;
    let latest = splits(&table).await;
    let new_file = latest[0].files.iter().find(|f| f.level == 0).unwrap();
    assert_eq!(new_file.min_sequence_number, 4);

    // A second full compaction of one top-level run plus one level-0 file
    // merges both; another one has nothing to do.
    let again = table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    assert_eq!((again.files_in, again.files_out), (2, 1));
    let nothing = table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    assert_eq!(nothing.snapshot_id, None);
}

#[tokio::test]
async fn picked_compaction_keeps_retractions_above_older_runs() {
    let catalog = Catalog::open("memory://").await.unwrap();
    let id = Identifier::new("default", "t");
    let options = [
        ("write-only", "true"),
        ("num-sorted-run.compaction-trigger", "2"),
        // Never amplification: force size-ratio and run-count picks.
        ("compaction.max-size-amplification-percent", "100000"),
    ];
    catalog
        .create_table(&id, spec(1, false, &options), false)
        .await
        .unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let big: Vec<(i64, Option<i32>)> = (0..2000).map(|k| (k, Some(k as i32))).collect();
    write_commit(&table, &big, RowKind::Insert).await;
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    // Level 2 (max) holds everything; delete a key, update another.
    write_commit(&table, &[(5, None)], RowKind::Delete).await;
    write_commit(&table, &[(6, Some(-6))], RowKind::Insert).await;
    let outcome = table.compact(CompactOptions::default()).await.unwrap();
    assert!(
        outcome.snapshot_id.is_some(),
        "two small level-0 runs are picked"
    );
    let split = &splits(&table).await[0];
    let mut levels: Vec<i32> = split.files.iter().map(|f| f.level).collect();
    levels.sort();
    assert_eq!(
        levels,
        vec![1, 2],
        "the small runs go just above the big one"
    );
    let level1 = split.files.iter().find(|f| f.level == 1).unwrap();
    assert_eq!(
        stored_kinds(&table, split, &level1.file_name).await,
        vec![3, 0],
        "the delete of key 5 stays to hide the older version"
    );
    let rows = read_all(&table).await;
    assert_eq!(rows.len(), 1999);
    assert!(!rows.contains_key(&(5, "all".into())));
    assert_eq!(rows[&(6, "all".into())], Some(-6));
}

#[tokio::test]
async fn compaction_after_a_concurrent_writer_keeps_its_rows() {
    let (catalog, id) = in_memory(spec(1, false, &[("write-only", "true")])).await;
    let table = catalog.load_table(&id).await.unwrap();
    write_commit(&table, &[(1, Some(1)), (2, Some(2))], RowKind::Insert).await;
    write_commit(&table, &[(1, Some(10))], RowKind::Insert).await;
    // The writer reads its base now, then the compaction commits first.
    let mut writer = table.writer();
    writer
        .write(batch(&table, &[(2, None)], false), RowKind::Delete)
        .await
        .unwrap();
    writer
        .write(batch(&table, &[(3, Some(3))], false), RowKind::Insert)
        .await
        .unwrap();
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    writer.commit().await.unwrap();
    let rows: Vec<_> = read_all(&table).await.into_iter().collect();
    assert_eq!(
        rows,
        vec![((1, "all".into()), Some(10)), ((3, "all".into()), Some(3))]
    );
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    assert_eq!(read_all(&table).await.into_iter().collect::<Vec<_>>(), rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactions_racing_writers_never_lose_or_resurrect_rows() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
    let id = Identifier::new("default", "t");
    let options = [("num-sorted-run.compaction-trigger", "2")];
    catalog
        .create_table(&id, spec(2, false, &options), false)
        .await
        .unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let mut model: HashMap<i64, Option<i32>> = HashMap::new();
    for round in 0..24i64 {
        let rows: Vec<(i64, Option<i32>)> = (0..6)
            .map(|i| ((round * 7 + i * 3) % 20, Some((round * 10 + i) as i32)))
            .collect();
        let deleted = (round * 5) % 20;
        let writer_table = table.clone();
        let writer_rows = rows.clone();
        let writer = tokio::spawn(async move {
            let mut w = writer_table.writer();
            w.write(batch(&writer_table, &writer_rows, false), RowKind::Insert)
                .await
                .unwrap();
            w.write(
                batch(&writer_table, &[(deleted, None)], false),
                RowKind::Delete,
            )
            .await
            .unwrap();
            w.commit().await
        });
        let compactor_table = table.clone();
        let compactor = tokio::spawn(async move {
            compactor_table
                .compact(CompactOptions {
                    full: round % 3 == 0,
                    partition: None,
                })
                .await
        });
        writer
            .await
            .unwrap()
            .expect("a writer never conflicts with a compaction");
        match compactor.await.unwrap() {
            Ok(_) => {}
            // Lost to the writer's inline compaction: nothing committed.
            Err(EngineError::CommitConflict { .. }) => {}
            Err(e) => panic!("unexpected compaction error: {e}"),
        }
        for (k, v) in rows {
            model.insert(k, v);
        }
        model.remove(&deleted);
        let expected: Model = model
            .iter()
            .map(|(k, v)| ((*k, "all".to_string()), *v))
            .collect();
        assert_eq!(read_all(&table).await, expected, "round {round}");
    }
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    let expected: Model = model
        .iter()
        .map(|(k, v)| ((*k, "all".to_string()), *v))
        .collect();
    assert_eq!(read_all(&table).await, expected);
}

#[tokio::test]
async fn inline_compaction_bounds_sorted_runs() {
    let (catalog, id) = in_memory(spec(2, true, &[])).await;
    let table = catalog.load_table(&id).await.unwrap();
    let mut model = Model::new();
    let mut compact_snapshots = 0;
    for round in 0..50i64 {
        let rows: Vec<(i64, Option<i32>)> = (0..8)
            .map(|i| ((round * 13 + i * 5) % 40, Some((round * 100 + i) as i32)))
            .collect();
        let mut w = table.writer();
        w.write(batch(&table, &rows, true), RowKind::Insert)
            .await
            .unwrap();
        let before = table.snapshots().latest_snapshot_id().await.unwrap();
        let id = w.commit().await.unwrap().unwrap();
        assert_eq!(Some(id - 1), before.or(Some(0)));
        let latest = table.snapshots().latest_snapshot().await.unwrap().unwrap();
        if latest.id > id {
            assert_eq!(latest.commit_kind, CommitKind::Compact);
            compact_snapshots += 1;
        }
        for (k, v) in rows {
            model.insert((k, partition_of(k, true)), v);
        }
        for split in splits(&table).await {
            let runs = run_count(&split);
            assert!(runs <= 8, "round {round}: bucket has {runs} sorted runs");
            assert!(
                runs <= 5,
                "one run above the trigger at most after a commit"
            );
        }
    }
    assert!(
        compact_snapshots >= 5,
        "inline compaction ran ({compact_snapshots})"
    );
    assert_eq!(read_all(&table).await, model);
}

#[tokio::test]
async fn write_only_tables_are_not_compacted_inline() {
    let (catalog, id) = in_memory(spec(1, false, &[("write-only", "true")])).await;
    let table = catalog.load_table(&id).await.unwrap();
    for round in 0..8 {
        write_commit(&table, &[(round, Some(1))], RowKind::Insert).await;
    }
    assert_eq!(run_count(&splits(&table).await[0]), 8);
    let latest = table.snapshots().latest_snapshot().await.unwrap().unwrap();
    assert_eq!((latest.id, latest.commit_kind), (8, CommitKind::Append));
    // A dedicated compaction picks by run count.
    let outcome = table.compact(CompactOptions::default()).await.unwrap();
    assert!(outcome.snapshot_id.is_some());
    assert!(run_count(&splits(&table).await[0]) <= 5);
}

#[tokio::test]
async fn partition_filter_limits_the_compaction() {
    let (catalog, id) = in_memory(spec(1, true, &[("write-only", "true")])).await;
    let table = catalog.load_table(&id).await.unwrap();
    for round in 0..3i64 {
        let mut w = table.writer();
        w.write(
            batch(
                &table,
                &[(round * 2, Some(1)), (round * 2 + 1, Some(2))],
                true,
            ),
            RowKind::Insert,
        )
        .await
        .unwrap();
        w.commit().await.unwrap();
    }
    let only_p0 = Predicate::Compare {
        column: "p".into(),
        op: CompareOp::Eq,
        value: Datum::String("p0".into()),
    };
    let outcome = table
        .compact(CompactOptions {
            full: true,
            partition: Some(only_p0),
        })
        .await
        .unwrap();
    assert_eq!(outcome.files_in, 3);
    for split in splits(&table).await {
        let p0 = split.partition_path.contains("p0");
        assert_eq!(
            run_count(&split),
            if p0 { 1 } else { 3 },
            "{}",
            split.partition_path
        );
    }
    let by_key = Predicate::Compare {
        column: "k".into(),
        op: CompareOp::Eq,
        value: Datum::BigInt(1),
    };
    let err = table
        .compact(CompactOptions {
            full: true,
            partition: Some(by_key),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partition columns"), "{err}");
}

#[tokio::test]
async fn writer_compacts_before_writing_into_a_stalled_bucket() {
    let (catalog, id) = in_memory(spec(1, false, &[("write-only", "true")])).await;
    let table = catalog.load_table(&id).await.unwrap();
    for round in 0..10 {
        write_commit(&table, &[(round, Some(round as i32))], RowKind::Insert).await;
    }
    write_commit(&table, &[(3, None)], RowKind::Delete).await;
    assert_eq!(run_count(&splits(&table).await[0]), 11);
    catalog
        .alter_table(
            &id,
            vec![tidelake_engine::SchemaChange::RemoveOption {
                key: "write-only".into(),
            }],
        )
        .await
        .unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let mut w = table.writer();
    w.write(batch(&table, &[(42, Some(42))], false), RowKind::Insert)
        .await
        .unwrap();
    // The writer compacted (stop-trigger 8 reached) before taking the row.
    let latest = table.snapshots().latest_snapshot().await.unwrap().unwrap();
    assert_eq!((latest.id, latest.commit_kind), (12, CommitKind::Compact));
    assert!(run_count(&splits(&table).await[0]) <= 5);
    let data_snapshot = w.commit().await.unwrap().unwrap();
    assert_eq!(data_snapshot, 13);
    let rows = read_all(&table).await;
    let expected: Model = (0..10)
        .filter(|k| *k != 3)
        .map(|k| ((k, "all".to_string()), Some(k as i32)))
        .chain([((42, "all".to_string()), Some(42))])
        .collect();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn a_writer_merges_its_own_files_at_the_stop_trigger() {
    let catalog = Catalog::open("memory://").await.unwrap();
    let id = Identifier::new("default", "t");
    // A one-byte buffer: every write becomes a level-0 file of its own.
    catalog
        .create_table(&id, spec(1, false, &[("write-buffer-size", "1 b")]), false)
        .await
        .unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    write_commit(&table, &[(0, Some(0)), (1, Some(1))], RowKind::Insert).await;
    let mut model: Model = [(0, Some(0)), (1, Some(1))]
        .into_iter()
        .map(|(k, v)| ((k, "all".to_string()), v))
        .collect();
    let mut w = table.writer();
    for i in 0..40i64 {
        let k = i % 7;
        if i % 5 == 4 {
            w.write(batch(&table, &[(k, None)], false), RowKind::Delete)
                .await
                .unwrap();
            model.remove(&(k, "all".to_string()));
        } else {
            w.write(
                batch(&table, &[(k, Some(i as i32))], false),
                RowKind::Insert,
            )
            .await
            .unwrap();
            model.insert((k, "all".to_string()), Some(i as i32));
        }
    }
    let data_snapshot = w.commit().await.unwrap().unwrap();
    let added: Vec<_> = delta_entries(&table, data_snapshot)
        .await
        .into_iter()
        .filter(|e| e.kind == FileKind::Add)
        .collect();
    assert!(
        !added.is_empty() && added.len() < 8,
        "40 spills were merged down to {} files",
        added.len()
    );
    assert!(added.iter().all(|e| e.file.level == 0));
    // Sequence numbers stay the writer's: 2.. for 40 rows.
    let min_seq = added.iter().map(|e| e.file.min_sequence_number).min();
    let max_seq = added.iter().map(|e| e.file.max_sequence_number).max();
    assert!(
        min_seq >= Some(2) && max_seq == Some(41),
        "{min_seq:?} {max_seq:?}"
    );
    assert_eq!(read_all(&table).await, model);
}

#[tokio::test]
async fn full_compaction_merges_small_files_of_append_tables() {
    let catalog = Catalog::open("memory://").await.unwrap();
    let id = Identifier::new("default", "t");
    let mut append = spec(2, false, &[]);
    append.primary_keys.clear();
    append.options.insert("bucket-key".into(), "k".into());
    catalog.create_table(&id, append, false).await.unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let mut expected = Vec::new();
    for round in 0..5i64 {
        let rows: Vec<(i64, Option<i32>)> =
            (0..4).map(|i| (round * 4 + i, Some(i as i32))).collect();
        write_commit(&table, &rows, RowKind::Insert).await;
        expected.extend(rows.into_iter().map(|(k, v)| ((k, "all".to_string()), v)));
    }
    let before = splits(&table).await;
    let files_before: usize = before.iter().map(|s| s.files.len()).sum();
    assert_eq!(before.len(), 2);
    assert!(files_before >= 6, "{files_before}");
    let nothing = table.compact(CompactOptions::default()).await.unwrap();
    assert_eq!(
        nothing.snapshot_id, None,
        "append tables compact only when asked for full"
    );
    let outcome = table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    assert_eq!((outcome.files_in, outcome.files_out), (files_before, 2));
    for split in splits(&table).await {
        assert_eq!(split.files.len(), 1);
        let f = &split.files[0];
        assert_eq!((f.level, f.file_source), (0, Some(1)));
        assert_eq!(
            f.max_sequence_number - f.min_sequence_number + 1,
            f.row_count
        );
    }
    let rows: Vec<_> = read_all(&table).await.into_iter().collect();
    expected.sort();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn a_stale_table_handle_compacts_with_the_latest_schema() {
    let (catalog, id) = in_memory(spec(1, false, &[("write-only", "true")])).await;
    let stale = catalog.load_table(&id).await.unwrap();
    write_commit(&stale, &[(1, Some(1))], RowKind::Insert).await;
    catalog
        .alter_table(
            &id,
            vec![tidelake_engine::SchemaChange::AddColumn {
                name: "extra".into(),
                data_type: DataType::new(DataTypeKind::BigInt, true),
                comment: None,
            }],
        )
        .await
        .unwrap();
    let fresh = catalog.load_table(&id).await.unwrap();
    let base = batch(&stale, &[(2, Some(2))], false);
    let mut columns = base.columns().to_vec();
    columns.push(Arc::new(Int64Array::from(vec![Some(77)])));
    let mut w = fresh.writer();
    w.write(
        RecordBatch::try_new(fresh.arrow_schema(), columns).unwrap(),
        RowKind::Insert,
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    stale
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    let split = &splits(&fresh).await[0];
    assert_eq!(split.files.len(), 1);
    assert_eq!(split.files[0].schema_id, 1);
    let plan = fresh.scan().plan().await.unwrap();
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    let extra: Vec<Option<i64>> = batches
        .iter()
        .flat_map(|b| {
            let c = column::<Int64Array>(b, 3);
            (0..b.num_rows())
                .map(|i| c.is_valid(i).then(|| c.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(extra, vec![None, Some(77)]);
}

/// A long-running writer hands its compaction to a background task: every
/// APPEND is the writer's, the task commits COMPACT snapshots (the writer
/// only compacts itself at the stop trigger), and the runs stay bounded
/// with the table equal to the model throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_keeps_runs_bounded_off_the_commit_path() {
    let (catalog, id) = in_memory(spec(2, true, &[])).await;
    let table = catalog.load_table(&id).await.unwrap();
    let compactor = BackgroundCompactor::start(&table);
    let mut writer = table.writer();
    writer.compact_in_background(compactor.handle());
    let mut model = Model::new();
    let mut appends = BTreeSet::new();
    for round in 0..40i64 {
        let rows: Vec<(i64, Option<i32>)> = (0..8)
            .map(|i| ((round * 13 + i * 5) % 40, Some((round * 100 + i) as i32)))
            .collect();
        writer
            .write(batch(&table, &rows, true), RowKind::Insert)
            .await
            .unwrap();
        let id = writer
            .commit_with(CommitKind::Append, BTreeMap::new())
            .await
            .unwrap()
            .unwrap();
        appends.insert(id);
        for (k, v) in rows {
            model.insert((k, partition_of(k, true)), v);
        }
        if round % 10 == 9 {
            compactor.flush().await;
            for split in splits(&table).await {
                let runs = run_count(&split);
                assert!(runs <= 5, "round {round}: bucket has {runs} sorted runs");
            }
            assert_eq!(read_all(&table).await, model, "round {round}");
        }
    }
    let summary = compactor.finish().await;
    // Each flush follows requests, so each makes a round; compactions may
    // also be the writer's own (below), so the task's count has no floor
    // beyond one.
    assert!(summary.rounds >= 4 && summary.snapshots >= 1, "{summary:?}");
    let latest = table
        .snapshots()
        .latest_snapshot_id()
        .await
        .unwrap()
        .unwrap();
    let mut compacts = 0;
    for id in 1..=latest {
        let s = table.snapshots().snapshot(id).await.unwrap().unwrap();
        match s.commit_kind {
            CommitKind::Append => assert!(appends.contains(&id), "snapshot {id}"),
            CommitKind::Compact => compacts += 1,
            other => panic!("snapshot {id} is {other:?}"),
        }
    }
    // The rest are the writer's own, when it found a bucket at the stop
    // trigger before the task got to it.
    assert!(compacts >= summary.snapshots, "{compacts} {summary:?}");
    assert_eq!(read_all(&table).await, model);
}

/// Tables whose readers skip level 0 (deletion vectors) compact before the
/// commit returns, background compactor or not; a stopped compactor makes
/// the writer compact inline again.
#[tokio::test]
async fn level0_skipping_tables_and_stopped_compactors_compact_inline() {
    let catalog = Catalog::open("memory://").await.unwrap();
    for (name, options) in [
        ("dv", vec![("deletion-vectors.enabled", "true")]),
        ("stopped", vec![("num-sorted-run.compaction-trigger", "2")]),
    ] {
        let id = Identifier::new("default", name);
        catalog
            .create_table(&id, spec(1, false, &options), false)
            .await
            .unwrap();
        let table = catalog.load_table(&id).await.unwrap();
        let compactor = BackgroundCompactor::start(&table);
        let handle = compactor.handle();
        let compactor = if name == "stopped" {
            assert_eq!(compactor.finish().await, Default::default());
            None
        } else {
            Some(compactor)
        };
        let mut model = Model::new();
        for round in 0..3i64 {
            let mut writer = table.writer();
            writer.compact_in_background(handle.clone());
            let rows = [(round, Some(round as i32)), (7, Some(round as i32))];
            writer
                .write(batch(&table, &rows, false), RowKind::Insert)
                .await
                .unwrap();
            let id = writer.commit().await.unwrap().unwrap();
            for (k, v) in rows {
                model.insert((k, partition_of(k, false)), v);
            }
            let latest = table.snapshots().latest_snapshot().await.unwrap().unwrap();
            if name == "dv" || round > 0 {
                assert_eq!(
                    (latest.id, latest.commit_kind),
                    (id + 1, CommitKind::Compact),
                    "{name} round {round}"
                );
            }
            assert_eq!(read_all(&table).await, model, "{name} round {round}");
        }
        if let Some(compactor) = compactor {
            assert_eq!(compactor.finish().await.rounds, 0, "{name}");
        }
    }
}
