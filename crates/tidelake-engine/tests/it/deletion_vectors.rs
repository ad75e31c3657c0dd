//! Tables with `'deletion-vectors.enabled' = 'true'`: compaction marks the
//! older rows of the keys it rewrites in deletion vectors, batch reads skip
//! level 0 and read the other files without merging.
//!
//! The property tests write random upserts and deletes over a small key
//! space, commit, compact (inline or with dedicated full and universal
//! compactions, also while a writer holds uncommitted rows), and compare
//! what reads return with a model of each merge engine; every checked
//! snapshot is read again at the end by time travel, after its vectors have
//! been replaced.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow_array::{Array, Int32Array, Int8Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use proptest::prelude::*;
use tidelake_engine::read::deletion::BucketVectors;
use tidelake_engine::{
    Catalog, ChangeReader, ColumnSpec, CompactOptions, CompareOp, DataType, DataTypeKind, Datum,
    ExpireOptions, Identifier, Predicate, RowKind, SchemaChange, StartMode, StreamOptions, Table,
    TableSpec,
};
use tidelake_testkit::table::{block_on, col, column, in_memory};

fn spec(options: &[(&str, &str)], partitioned: bool) -> TableSpec {
    let mut columns = vec![
        col("k", DataTypeKind::Int, false),
        col("a", DataTypeKind::Int, true),
        col("b", DataTypeKind::Int, true),
    ];
    let mut primary_keys = vec!["k".to_string()];
    let mut partition_keys = vec![];
    if partitioned {
        columns.push(ColumnSpec {
            name: "p".into(),
            data_type: DataType::string().with_nullable(false),
            comment: None,
        });
        primary_keys.push("p".into());
        partition_keys.push("p".into());
    }
    let mut opts: BTreeMap<String, String> = [("deletion-vectors.enabled", "true")]
        .iter()
        .chain(options)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    opts.entry("bucket".into()).or_insert_with(|| "1".into());
    TableSpec {
        columns,
        primary_keys,
        partition_keys,
        options: opts,
        comment: None,
    }
}

async fn create(options: &[(&str, &str)], partitioned: bool) -> Table {
    let (catalog, id) = in_memory(spec(options, partitioned)).await;
    catalog.load_table(&id).await.unwrap()
}

/// (k, a, b); `p` follows from `k` in partitioned tables.
type Row = (i32, Option<i32>, Option<i32>);

fn batch(table: &Table, rows: &[Row]) -> RecordBatch {
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
    ];
    if table.arrow_schema().fields().len() == 4 {
        columns.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| format!("p{}", r.0.rem_euclid(2))),
        )));
    }
    RecordBatch::try_new(table.arrow_schema(), columns).unwrap()
}

async fn commit(table: &Table, rows: &[Row], kind: RowKind) -> Option<i64> {
    let mut w = table.writer();
    w.write(batch(table, rows), kind).await.unwrap();
    w.commit().await.unwrap()
}

/// Visible rows: key -> (a, b).
type State = BTreeMap<i32, (Option<i32>, Option<i32>)>;

fn ints(b: &RecordBatch, i: usize) -> &Int32Array {
    b.column(i).as_any().downcast_ref::<Int32Array>().unwrap()
}

fn value(c: &Int32Array, i: usize) -> Option<i32> {
    (!c.is_null(i)).then(|| c.value(i))
}

async fn read_at(table: &Table, snapshot: Option<i64>) -> State {
    let plan = table.scan().with_snapshot(snapshot).plan().await.unwrap();
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    let mut out = State::new();
    for b in &batches {
        let (k, a, bb) = (ints(b, 0), ints(b, 1), ints(b, 2));
        for i in 0..b.num_rows() {
            let prev = out.insert(k.value(i), (value(a, i), value(bb, i)));
            // Without merging, two live rows of a key would both show.
            assert!(prev.is_none(), "key {} read twice", k.value(i));
        }
    }
    out
}

async fn read(table: &Table) -> State {
    read_at(table, None).await
}

/// Asserts two states equal, showing only the keys that differ.
#[track_caller]
fn assert_same(got: &State, expected: &State, what: &str) {
    if got == expected {
        return;
    }
    let keys: BTreeSet<&i32> = got.keys().chain(expected.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(k) != expected.get(k))
        .map(|k| {
            format!(
                "key {k}: read {:?}, expected {:?}",
                got.get(k),
                expected.get(k)
            )
        })
        .collect();
    panic!("{what}: {} keys differ:\n{}", diff.len(), diff.join("\n"));
}

fn full() -> CompactOptions {
    CompactOptions {
        full: true,
        partition: None,
    }
}

fn universal() -> CompactOptions {
    CompactOptions {
        full: false,
        partition: None,
    }
}

/// Deleted rows over every vector of the snapshot's splits.
async fn deleted_rows(table: &Table, snapshot: Option<i64>) -> u64 {
    let plan = table.scan().with_snapshot(snapshot).plan().await.unwrap();
    plan.splits()
        .iter()
        .flat_map(|s| s.deletion_vectors.iter())
        .flat_map(|v: &Arc<BucketVectors>| v.iter().map(|(_, dv)| dv.cardinality()))
        .sum()
}

/// What every snapshot of a deletion-vector table must look like: no
/// retraction above level 0, vectors only for live files of their bucket.
async fn assert_invariants(table: &Table, snapshot: Option<i64>) {
    let plan = table.scan().with_snapshot(snapshot).plan().await.unwrap();
    for split in plan.splits() {
        let names: HashSet<&str> = split.files.iter().map(|f| f.file_name.as_str()).collect();
        for f in split.files.iter().filter(|f| f.level > 0) {
            assert_eq!(
                f.delete_row_count,
                Some(0),
                "retractions in {}",
                f.file_name
            );
        }
        let vectors = split.deletion_vectors.as_ref().expect("vectors loaded");
        for (file, dv) in vectors.iter() {
            assert!(names.contains(file), "vector of a file not live: {file}");
            let meta = split.files.iter().find(|f| f.file_name == file).unwrap();
            assert!(meta.level > 0, "vector of level-0 file {file}");
            assert!(dv.iter().all(|p| p < meta.row_count as u64), "{file}");
        }
        assert!(split.reads_without_merge());
    }
}

// ------------------------------------------------------------- options

#[tokio::test]
async fn paimon_s_refusals_and_immutability() {
    let catalog = Catalog::open("memory://").await.unwrap();
    let id = Identifier::new("default", "t");
    let refused = [
        (vec![("merge-engine", "first-row")], "first-row"),
        (
            vec![("changelog-producer", "full-compaction")],
            "changelog-producer",
        ),
    ];
    for (options, needle) in refused {
        let err = catalog
            .create_table(&id, spec(&options, false), false)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    let mut append = spec(&[], false);
    append.primary_keys.clear();
    let err = catalog
        .create_table(&id, append, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("primary key"), "{err}");
    // Accepted with the producers Paimon accepts; never switched later.
    for producer in ["input", "lookup"] {
        let id = Identifier::new("default", producer);
        let options = [("changelog-producer", producer)];
        catalog
            .create_table(&id, spec(&options, false), false)
            .await
            .unwrap();
        let change = SchemaChange::SetOption {
            key: "deletion-vectors.enabled".into(),
            value: "false".into(),
        };
        let err = catalog
            .alter_table(&id, vec![change])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be changed"), "{err}");
    }
}

// ------------------------------------------------------- the read path

#[tokio::test]
async fn batch_reads_skip_level_zero_and_never_merge() {
    let table = create(&[("write-only", "true")], false).await;
    let rows: Vec<Row> = (0..10).map(|k| (k, Some(k), Some(-k))).collect();
    commit(&table, &rows, RowKind::Insert).await;
    assert!(
        read(&table).await.is_empty(),
        "level-0 rows are not visible"
    );
    table.compact(universal()).await.unwrap();
    let expected: State = rows.iter().map(|r| (r.0, (r.1, r.2))).collect();
    assert_eq!(read(&table).await, expected);
    assert_eq!(deleted_rows(&table, None).await, 0);

    let updates: Vec<Row> = (0..3).map(|k| (k, Some(100 + k), None)).collect();
    commit(&table, &updates, RowKind::Insert).await;
    commit(&table, &[(5, None, None)], RowKind::Delete).await;
    assert_eq!(
        read(&table).await,
        expected,
        "still only the compacted rows"
    );

    // Level 0 into level 4, above the first compaction's level-5 file: its
    // rows of keys 0, 1, 2 and 5 are deleted by vector, not rewritten.
    table.compact(universal()).await.unwrap();
    let mut now = expected.clone();
    for r in &updates {
        now.insert(r.0, (r.1, r.2));
    }
    now.remove(&5);
    assert_eq!(read(&table).await, now);
    assert_eq!(deleted_rows(&table, None).await, 4);
    assert_invariants(&table, None).await;

    let plan = table.scan().plan().await.unwrap();
    let split = &plan.splits()[0];
    let levels: Vec<i32> = split.files_to_read().map(|f| f.level).collect();
    assert_eq!(levels.len(), 2);
    assert!(levels.iter().all(|l| *l > 0), "{levels:?}");
    let vectors = split.deletion_vectors.as_ref().unwrap();
    let live: i64 = split
        .files_to_read()
        .map(|f| f.row_count - vectors.deleted_rows(&f.file_name) as i64)
        .sum();
    assert_eq!(
        live,
        now.len() as i64,
        "each file read as it is, minus its vector"
    );

    // A write-only writer's new rows stay invisible until compacted.
    commit(&table, &[(1, Some(7), Some(7))], RowKind::Insert).await;
    assert_eq!(read(&table).await, now);

    // Projections, COUNT(*) (no column) and value-statistics pruning.
    let plan = table
        .scan()
        .with_projection(Some(vec![1]))
        .plan()
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    let mut a: Vec<Option<i32>> = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| value(ints(b, 0), i)))
        .collect();
    a.sort();
    let mut expected_a: Vec<Option<i32>> = now.values().map(|v| v.0).collect();
    expected_a.sort();
    assert_eq!(a, expected_a);
    let plan = table
        .scan()
        .with_projection(Some(vec![]))
        .plan()
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    let count: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(count, now.len());
    let big_a = Predicate::Compare {
        column: "a".into(),
        op: CompareOp::Gt,
        value: Datum::Int(50),
    };
    let plan = table.scan().with_predicate(big_a).plan().await.unwrap();
    let files: Vec<i32> = plan.splits()[0].files_to_read().map(|f| f.level).collect();
    assert_eq!(files, vec![4], "the level-5 file holds no a > 50");
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    let keys: BTreeSet<i32> = batches
        .iter()
        .flat_map(|b| ints(b, 0).values().to_vec())
        .collect();
    assert_eq!(keys, BTreeSet::from([0, 1, 2]));
}

#[tokio::test]
async fn sequence_field_decides_against_the_looked_up_row() {
    // `b` orders versions; inline compaction looks every key up.
    let table = create(&[("sequence.field", "b")], false).await;
    commit(&table, &[(1, Some(1), Some(10))], RowKind::Insert).await;
    commit(&table, &[(1, Some(2), Some(5))], RowKind::Insert).await;
    let only = |a, b| State::from([(1, (Some(a), Some(b)))]);
    assert_eq!(
        read(&table).await,
        only(1, 10),
        "the older write has a lower b"
    );
    commit(&table, &[(1, Some(3), Some(10))], RowKind::Insert).await;
    assert_eq!(
        read(&table).await,
        only(3, 10),
        "equal b: the later write wins"
    );
    commit(&table, &[(1, None, Some(10))], RowKind::Delete).await;
    assert!(read(&table).await.is_empty());
    // With vectors the delete is applied at once and not kept, so a later
    // write with a lower `b` shows (Paimon drops deletes above level 0 too).
    commit(&table, &[(1, Some(4), Some(1))], RowKind::Insert).await;
    assert_eq!(read(&table).await, only(4, 1));
    assert_invariants(&table, None).await;
}

#[tokio::test]
async fn time_travel_reads_each_snapshot_with_its_own_vectors() {
    // Inline compaction takes level 0 at every commit.
    let table = create(&[], false).await;
    let mut states: Vec<(i64, State, u64)> = Vec::new();
    let mut state = State::new();
    let check = |table: Table, state: State| async move {
        let id = table
            .snapshots()
            .latest_snapshot_id()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read(&table).await, state, "snapshot {id}");
        (id, state, deleted_rows(&table, None).await)
    };
    let rows: Vec<Row> = (0..20).map(|k| (k, Some(0), Some(k))).collect();
    commit(&table, &rows, RowKind::Insert).await;
    state.extend(rows.iter().map(|r| (r.0, (r.1, r.2))));
    states.push(check(table.clone(), state.clone()).await);
    let rows: Vec<Row> = (0..5).map(|k| (k, Some(1), None)).collect();
    commit(&table, &rows, RowKind::Insert).await;
    state.extend(rows.iter().map(|r| (r.0, (r.1, r.2))));
    states.push(check(table.clone(), state.clone()).await);
    commit(&table, &[(2, None, None)], RowKind::Delete).await;
    commit(
        &table,
        &[(10, Some(2), Some(2)), (3, Some(2), None)],
        RowKind::Insert,
    )
    .await;
    state.remove(&2);
    state.insert(10, (Some(2), Some(2)));
    state.insert(3, (Some(2), None));
    states.push(check(table.clone(), state.clone()).await);
    let deleted: Vec<u64> = states.iter().map(|s| s.2).collect();
    assert_eq!(deleted[0], 0);
    assert_eq!(deleted[1], 5, "keys 0-4 of the first file");
    assert!(deleted[2] > deleted[1], "{deleted:?}");

    // A full compaction leaves no vector; the old snapshots keep theirs.
    table.compact(full()).await.unwrap();
    assert_eq!(read(&table).await, state);
    assert_eq!(deleted_rows(&table, None).await, 0);
    for (id, expected, deleted) in &states {
        assert_eq!(&read_at(&table, Some(*id)).await, expected, "snapshot {id}");
        assert_eq!(
            deleted_rows(&table, Some(*id)).await,
            *deleted,
            "snapshot {id}"
        );
        assert_invariants(&table, Some(*id)).await;
    }
    // The snapshot before a compaction (its writer's rows at level 0).
    let (first, ..) = states[1];
    assert_eq!(read_at(&table, Some(first - 1)).await, states[0].1);

    // Rolled back, the table reads as then, with that snapshot's vectors.
    let (id, expected, deleted) = states[1].clone();
    table.rollback_to_snapshot(id).await.unwrap();
    assert_eq!(read(&table).await, expected);
    assert_eq!(deleted_rows(&table, None).await, deleted);
}

#[tokio::test]
async fn expiration_keeps_the_vectors_of_retained_snapshots() {
    let table = create(&[("snapshot.num-retained.min", "1")], false).await;
    for round in 0..6 {
        let rows: Vec<Row> = (round..round + 8).map(|k| (k, Some(round), None)).collect();
        commit(&table, &rows, RowKind::Insert).await;
    }
    let expected = read(&table).await;
    let latest = table
        .snapshots()
        .latest_snapshot_id()
        .await
        .unwrap()
        .unwrap();
    // The snapshot before the last inline compaction: its writer's rows are
    // still at level 0, so it reads as the one before.
    let before_last = read_at(&table, Some(latest - 2)).await;
    assert_ne!(before_last, expected);
    let outcome = table
        .expire_snapshots(ExpireOptions {
            retain_max: 2,
            retain_min: 1,
            older_than: None,
            max_deletes: 100,
        })
        .await
        .unwrap();
    assert!(outcome.snapshots_deleted > 0);
    assert!(deleted_rows(&table, None).await > 0, "vectors survive");
    assert_eq!(read(&table).await, expected);
    assert_eq!(read_at(&table, Some(latest - 1)).await, before_last);
    assert!(table
        .snapshots()
        .snapshot(latest - 2)
        .await
        .unwrap()
        .is_none());
    // Only index files a retained snapshot names are left.
    let listed = table
        .store()
        .list(&format!("{}/index", table.paths().root))
        .await
        .unwrap();
    let plan = table.scan().plan().await.unwrap();
    let named: HashSet<String> = plan
        .splits()
        .iter()
        .flat_map(|s| s.deletion_vectors.iter())
        .flat_map(|v| v.index_files().to_vec())
        .collect();
    let before = table
        .scan()
        .with_snapshot(Some(latest - 1))
        .plan()
        .await
        .unwrap();
    let named_before: HashSet<String> = before
        .splits()
        .iter()
        .flat_map(|s| s.deletion_vectors.iter())
        .flat_map(|v| v.index_files().to_vec())
        .collect();
    let on_disk: HashSet<String> = listed
        .iter()
        .map(|e| e.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(named.is_subset(&on_disk));
    assert!(on_disk.is_subset(&named.union(&named_before).cloned().collect()));
}

#[tokio::test]
async fn an_overwrite_drops_the_vectors_of_what_it_replaces() {
    let table = create(&[("bucket", "2")], true).await;
    let rows: Vec<Row> = (0..40).map(|k| (k, Some(k), None)).collect();
    commit(&table, &rows, RowKind::Insert).await;
    let updates: Vec<Row> = (0..40).step_by(3).map(|k| (k, Some(-k), None)).collect();
    commit(&table, &updates, RowKind::Insert).await;
    assert!(deleted_rows(&table, None).await > 0);
    // Partition p0 (even keys) is replaced; p1 keeps its rows and vectors.
    let mut w = table.writer();
    w.set_overwrite(true);
    w.write(batch(&table, &[(100, Some(1), None)]), RowKind::Insert)
        .await
        .unwrap();
    w.commit().await.unwrap();
    let mut expected: State = rows
        .iter()
        .filter(|r| r.0 % 2 == 1)
        .map(|r| (r.0, (r.1, r.2)))
        .collect();
    for r in updates.iter().filter(|r| r.0 % 2 == 1) {
        expected.insert(r.0, (r.1, r.2));
    }
    expected.insert(100, (Some(1), None));
    assert_same(&read(&table).await, &expected, "after the overwrite");
    assert_invariants(&table, None).await;
    let plan = table.scan().plan().await.unwrap();
    for split in plan.splits() {
        let vectors = split.deletion_vectors.as_ref().unwrap();
        let p0 = split.partition_values == vec![Datum::String("p0".into())];
        assert_eq!(vectors.is_empty(), p0, "bucket {}", split.bucket);
    }
}

// ------------------------------------------------------ streaming reads

#[tokio::test]
async fn a_full_streaming_read_includes_rows_not_compacted_yet() {
    let table = create(&[("write-only", "true")], false).await;
    commit(
        &table,
        &[(1, Some(1), None), (2, Some(2), None)],
        RowKind::Insert,
    )
    .await;
    table.compact(universal()).await.unwrap();
    commit(
        &table,
        &[(1, Some(10), None), (3, Some(3), None)],
        RowKind::Insert,
    )
    .await;
    assert_eq!(read(&table).await.len(), 2, "the batch read skips level 0");
    let mut reader = ChangeReader::open(table.clone(), StreamOptions::default())
        .await
        .unwrap();
    let changes = reader.next_changes().await.unwrap().unwrap();
    let batches: Vec<RecordBatch> = changes.batches.try_collect().await.unwrap();
    let mut rows: Vec<(i32, Option<i32>)> = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| (ints(b, 1).value(i), value(ints(b, 2), i))))
        .collect();
    rows.sort();
    assert_eq!(rows, vec![(1, Some(10)), (2, Some(2)), (3, Some(3))]);
}

// ------------------------------------------------------- property tests

#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    Deduplicate,
    /// partial-update, `a` in the sequence group of `b`
    /// (`fields.b.sequence-group` = `a`), so retractions clear `a`.
    PartialUpdate,
    /// aggregation: a = sum, b = last_value.
    Aggregation,
}

impl Engine {
    fn options(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Engine::Deduplicate => vec![],
            Engine::PartialUpdate => vec![
                ("merge-engine", "partial-update"),
                ("fields.b.sequence-group", "a"),
            ],
            Engine::Aggregation => vec![
                ("merge-engine", "aggregation"),
                ("fields.a.aggregate-function", "sum"),
                ("fields.b.aggregate-function", "last_value"),
            ],
        }
    }
}

/// The merge engine's state of every key, applied version by version.
#[derive(Clone, Debug, Default)]
struct Model {
    /// key -> (a, b, visible)
    keys: BTreeMap<i32, (Option<i32>, Option<i32>, bool)>,
}

impl Model {
    fn apply(&mut self, engine: Engine, kind: RowKind, (k, a, b): Row) {
        let add = !kind.is_retract();
        let entry = self.keys.entry(k).or_default();
        match engine {
            Engine::Deduplicate => *entry = (a, b, add),
            Engine::PartialUpdate => {
                // `b` orders its group: a version without it leaves `a`
                // alone; one at least as new sets (or retracts) `a`.
                if let Some(seq) = b {
                    if entry.1.is_none_or(|current| seq >= current) {
                        entry.0 = if add { a } else { None };
                        entry.1 = Some(seq);
                    }
                }
                entry.2 |= add;
            }
            Engine::Aggregation => {
                entry.0 = match (entry.0, a) {
                    (acc, None) => acc,
                    (None, Some(x)) => Some(if add { x } else { -x }),
                    (Some(acc), Some(x)) => Some(if add { acc + x } else { acc - x }),
                };
                entry.1 = if add { b } else { None };
                entry.2 |= add;
            }
        }
    }

    fn state(&self) -> State {
        self.keys
            .iter()
            .filter(|(_, v)| v.2)
            .map(|(k, v)| (*k, (v.0, v.1)))
            .collect()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Change(RowKind, Row),
    /// Many keys at once, so that older runs grow much larger than new
    /// ones and compactions stop above them (and look keys up there).
    Bulk(i32),
    Commit,
    Compact {
        full: bool,
    },
}

fn ops(engine: Engine) -> impl Strategy<Value = Vec<Op>> {
    let kind = prop_oneof![
        6 => Just(RowKind::Insert),
        1 => Just(RowKind::UpdateAfter),
        2 => Just(RowKind::Delete),
        1 => Just(RowKind::UpdateBefore),
    ];
    let cell = || proptest::option::weighted(0.8, -20i32..20);
    let op = prop_oneof![
        10 => (kind, 0i32..24, cell(), cell()).prop_map(|(kind, k, a, b)| Op::Change(kind, (k, a, b))),
        1 => (-5i32..5).prop_map(Op::Bulk),
        4 => Just(Op::Commit),
        2 => any::<bool>().prop_map(|full| Op::Compact { full }),
    ];
    proptest::collection::vec(op, 1..90).prop_map(move |ops| only_known_retractions(engine, ops))
}

/// Partial-update and aggregation keep a key whose versions are all
/// retractions as a retraction row for later merges, but with deletion
/// vectors compaction drops it (as Paimon does), so whether it meets a
/// later insert depends on compaction timing: retract only keys inserted
/// before.
fn only_known_retractions(engine: Engine, ops: Vec<Op>) -> Vec<Op> {
    if engine == Engine::Deduplicate {
        return ops;
    }
    let mut inserted = HashSet::new();
    ops.into_iter()
        .map(|op| match op {
            Op::Change(kind, row) if kind.is_retract() && !inserted.contains(&row.0) => {
                inserted.insert(row.0);
                Op::Change(RowKind::Insert, row)
            }
            Op::Change(kind, row) => {
                inserted.insert(row.0);
                Op::Change(kind, row)
            }
            Op::Bulk(v) => {
                inserted.extend(100..400);
                Op::Bulk(v)
            }
            other => other,
        })
        .collect()
}

struct Run {
    engine: Engine,
    buckets: i32,
    partitioned: bool,
    write_only: bool,
    tiny: bool,
}

async fn run_model(run: Run, ops: Vec<Op>) {
    let buckets = run.buckets.to_string();
    let write_only = run.write_only.to_string();
    let mut options = vec![
        ("bucket", buckets.as_str()),
        ("write-only", write_only.as_str()),
        ("num-sorted-run.compaction-trigger", "3"),
        ("write-buffer-size", if run.tiny { "1 b" } else { "64 mb" }),
        ("target-file-size", if run.tiny { "2 kb" } else { "128 mb" }),
    ];
    options.extend(run.engine.options());
    let table = create(&options, run.partitioned).await;
    let mut pending = Model::default();
    let mut committed = pending.clone();
    let mut visible = committed.state();
    let mut checked: Vec<(i64, State)> = Vec::new();
    let mut writer = table.writer();
    for op in ops {
        match op {
            Op::Change(kind, row) => {
                writer.write(batch(&table, &[row]), kind).await.unwrap();
                pending.apply(run.engine, kind, row);
            }
            Op::Bulk(v) => {
                let rows: Vec<Row> = (100..400).map(|k| (k, Some(v), Some(k))).collect();
                writer
                    .write(batch(&table, &rows), RowKind::Insert)
                    .await
                    .unwrap();
                for r in rows {
                    pending.apply(run.engine, RowKind::Insert, r);
                }
            }
            Op::Commit => {
                writer.commit().await.unwrap();
                writer = table.writer();
                committed = pending.clone();
                if !run.write_only {
                    // Inline compaction takes every level-0 file.
                    visible = committed.state();
                }
                assert_same(&read(&table).await, &visible, "after a commit");
            }
            Op::Compact { full } => {
                // Possibly while `writer` holds rows it commits afterwards.
                let options = CompactOptions {
                    full,
                    partition: None,
                };
                table.compact(options).await.unwrap();
                visible = committed.state();
                assert_same(&read(&table).await, &visible, "after a compaction");
                assert_invariants(&table, None).await;
                let id = table.snapshots().latest_snapshot_id().await.unwrap();
                checked.extend(id.map(|id| (id, visible.clone())));
            }
        }
    }
    writer.commit().await.unwrap();
    table.compact(universal()).await.unwrap();
    assert_same(&read(&table).await, &pending.state(), "at the end");
    assert_invariants(&table, None).await;
    table.compact(full()).await.unwrap();
    assert_same(
        &read(&table).await,
        &pending.state(),
        "after a full compaction",
    );
    assert_eq!(deleted_rows(&table, None).await, 0, "full compaction");
    for (id, state) in checked {
        assert_same(
            &read_at(&table, Some(id)).await,
            &state,
            &format!("snapshot {id}"),
        );
    }
}

/// Buckets (fixed, or dynamic: -1), partitioned, write-only, tiny files.
fn runs() -> impl Strategy<Value = (i32, bool, bool, bool)> {
    (
        prop_oneof![Just(1), Just(3), Just(-1)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn deduplicate_matches_the_model(
        ops in ops(Engine::Deduplicate),
        (buckets, partitioned, write_only, tiny) in runs(),
    ) {
        let run = Run { engine: Engine::Deduplicate, buckets, partitioned, write_only, tiny };
        block_on(run_model(run, ops));
    }

    #[test]
    fn partial_update_matches_the_model(
        ops in ops(Engine::PartialUpdate),
        (buckets, _, write_only, tiny) in runs(),
    ) {
        // Unpartitioned, as for aggregation below.
        let run = Run { engine: Engine::PartialUpdate, buckets, partitioned: false, write_only, tiny };
        block_on(run_model(run, ops));
    }

    #[test]
    fn aggregation_matches_the_model(
        ops in ops(Engine::Aggregation),
        (buckets, _, write_only, tiny) in runs(),
    ) {
        // Unpartitioned: merge functions fold partition columns like values
        // (a lone retraction nulls them), a fault outside deletion vectors.
        let run = Run { engine: Engine::Aggregation, buckets, partitioned: false, write_only, tiny };
        block_on(run_model(run, ops));
    }

    #[test]
    fn lookup_changelog_replays_to_the_table(
        ops in ops(Engine::Deduplicate),
        write_only: bool,
    ) {
        block_on(run_changelog(ops, write_only));
    }
}

/// With `changelog-producer` = `lookup`, the changelog (read as a stream
/// from the first snapshot) must describe every change exactly.
async fn run_changelog(ops: Vec<Op>, write_only: bool) {
    let write_only = write_only.to_string();
    let options = [
        ("changelog-producer", "lookup"),
        ("write-only", write_only.as_str()),
        ("bucket", "2"),
        ("num-sorted-run.compaction-trigger", "3"),
    ];
    let table = create(&options, false).await;
    let mut model = Model::default();
    let mut writer = table.writer();
    for op in ops {
        match op {
            Op::Change(kind, row) => {
                writer.write(batch(&table, &[row]), kind).await.unwrap();
                model.apply(Engine::Deduplicate, kind, row);
            }
            Op::Bulk(v) => {
                let rows: Vec<Row> = (100..200).map(|k| (k, Some(v), None)).collect();
                writer
                    .write(batch(&table, &rows), RowKind::Insert)
                    .await
                    .unwrap();
                for r in rows {
                    model.apply(Engine::Deduplicate, RowKind::Insert, r);
                }
            }
            Op::Commit => {
                writer.commit().await.unwrap();
                writer = table.writer();
            }
            Op::Compact { full } => {
                let options = CompactOptions {
                    full,
                    partition: None,
                };
                table.compact(options).await.unwrap();
            }
        }
    }
    writer.commit().await.unwrap();
    table.compact(universal()).await.unwrap();
    assert_eq!(read(&table).await, model.state());
    let options = StreamOptions {
        mode: StartMode::FromSnapshot(1),
        ..StreamOptions::default()
    };
    let mut reader = ChangeReader::open(table.clone(), options).await.unwrap();
    let mut replayed = State::new();
    while let Some(changes) = reader.next_changes().await.unwrap() {
        let id = changes.snapshot_id;
        let batches: Vec<RecordBatch> = changes.batches.try_collect().await.unwrap();
        for b in &batches {
            let kinds = column::<Int8Array>(b, 0);
            let (k, a, bb) = (ints(b, 1), ints(b, 2), ints(b, 3));
            for i in 0..b.num_rows() {
                let key = k.value(i);
                let row = (value(a, i), value(bb, i));
                let at = format!("snapshot {id}, key {key}, kind {}", kinds.value(i));
                match kinds.value(i) {
                    0 | 2 => assert_eq!(replayed.insert(key, row), None, "{at}: present"),
                    _ => assert_eq!(replayed.remove(&key), Some(row), "{at}: other value"),
                }
            }
        }
    }
    assert_eq!(replayed, model.state());
}
