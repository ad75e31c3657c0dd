//! The `collect` (ARRAY) and `merge_map` (MAP) aggregate functions:
//! Paimon's documented behaviour (distinct, NULLs, retraction and its
//! documented limits), type and option checks, nested element types through
//! Parquet files and compaction, and property tests that compare the table
//! with a row-by-row model of Paimon's functions wherever the engine's
//! partial merges must be exact.
//!
//! Rows are written and read as JSON objects (Arrow's JSON reader and
//! writer), so that nested cells are easy to state.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

use arrow::json::writer::{LineDelimited, WriterBuilder};
use arrow::json::ReaderBuilder;
use arrow_array::RecordBatch;
use futures::TryStreamExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use tidelake_engine::{
    Catalog, ColumnSpec, CompactOptions, DataType, DataTypeKind, EngineError, Identifier, RowKind,
    Table, TableSpec,
};
use tidelake_testkit::table::{block_on, col, option_map, string};

fn array(element: DataTypeKind) -> DataTypeKind {
    DataTypeKind::Array(Box::new(DataType::new(element, true)))
}

fn map(key: DataTypeKind, value: DataTypeKind) -> DataTypeKind {
    DataTypeKind::Map(
        Box::new(DataType::new(key, false)),
        Box::new(DataType::new(value, true)),
    )
}

use DataTypeKind::Int;

const I: RowKind = RowKind::Insert;
const UA: RowKind = RowKind::UpdateAfter;
const UB: RowKind = RowKind::UpdateBefore;
const D: RowKind = RowKind::Delete;

/// An aggregation table keyed by `k` (INT NOT NULL, prepended to
/// `columns`); `write-only` unless the options say otherwise.
async fn try_table(
    columns: Vec<ColumnSpec>,
    options: &[(&str, &str)],
) -> Result<(Catalog, Identifier), EngineError> {
    let mut options = options.to_vec();
    options.push(("merge-engine", "aggregation"));
    if !options.iter().any(|(k, _)| *k == "write-only") {
        options.push(("write-only", "true"));
    }
    let catalog = Catalog::open("memory://").await?;
    let id = Identifier::new("default", "t");
    let mut all = vec![ColumnSpec {
        name: "k".into(),
        data_type: DataType::new(Int, false),
        comment: None,
    }];
    all.extend(columns);
    let spec = TableSpec {
        primary_keys: vec!["k".into()],
        columns: all,
        partition_keys: vec![],
        options: option_map(&options),
        comment: None,
    };
    catalog.create_table(&id, spec, false).await?;
    Ok((catalog, id))
}

async fn table(columns: Vec<ColumnSpec>, options: &[(&str, &str)]) -> (Catalog, Identifier) {
    match try_table(columns, options).await {
        Ok(created) => created,
        Err(e) => panic!("create table: {e}"),
    }
}

/// One-row batch of the table from a JSON object.
fn batch(table: &Table, row: &Value) -> RecordBatch {
    let mut reader = ReaderBuilder::new(table.arrow_schema())
        .build(Cursor::new(row.to_string()))
        .unwrap();
    reader.next().unwrap().unwrap()
}

/// Writes each row with one `write` call (so that a tiny write buffer puts
/// each in its own file) and commits them together.
async fn commit(
    catalog: &Catalog,
    id: &Identifier,
    rows: &[(RowKind, Value)],
) -> Result<(), EngineError> {
    let table = catalog.load_table(id).await?;
    let mut w = table.writer();
    for (kind, row) in rows {
        w.write(batch(&table, row), *kind).await?;
    }
    w.commit().await?;
    Ok(())
}

/// The table's rows as JSON objects, by key. Maps are JSON objects, so
/// their entries compare without order (Paimon's maps have none).
async fn read(catalog: &Catalog, id: &Identifier) -> Result<BTreeMap<i64, Value>, EngineError> {
    let table = catalog.load_table(id).await?;
    let batches: Vec<RecordBatch> = table.scan().plan().await?.read_all().try_collect().await?;
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, LineDelimited>(Vec::new());
    for b in &batches {
        writer.write(b)?;
    }
    writer.finish()?;
    let text = String::from_utf8(writer.into_inner()).unwrap();
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let mut row: Value = serde_json::from_str(line).unwrap();
        let key = row["k"].as_i64().unwrap();
        row.as_object_mut().unwrap().remove("k");
        assert!(rows.insert(key, row).is_none(), "key {key} read twice");
    }
    Ok(rows)
}

/// Rows of key 1 (`{"v": ...}` cells), written one commit each and all in
/// one buffer; both must give the same table, whose row (or `None`) is returned.
async fn aggregate(
    kind: DataTypeKind,
    options: &[(&str, &str)],
    rows: &[(RowKind, Value)],
) -> Option<Value> {
    let rows: Vec<(RowKind, Value)> = rows
        .iter()
        .map(|(k, v)| (*k, json!({"k": 1, "v": v})))
        .collect();
    let mut results = Vec::new();
    for split in [true, false] {
        let (c, id) = table(vec![col("v", kind.clone(), true)], options).await;
        if split {
            for r in &rows {
                commit(&c, &id, std::slice::from_ref(r)).await.unwrap();
            }
        } else {
            commit(&c, &id, &rows).await.unwrap();
        }
        let read = read(&c, &id).await.unwrap();
        results.push(read.get(&1).map(|r| r["v"].clone()));
    }
    assert_eq!(
        results[0], results[1],
        "split commits and one buffer disagree"
    );
    results.pop().flatten()
}

const COLLECT: (&str, &str) = ("fields.v.aggregate-function", "collect");
const DISTINCT: (&str, &str) = ("fields.v.distinct", "true");
const MERGE_MAP: (&str, &str) = ("fields.v.aggregate-function", "merge_map");

#[tokio::test]
async fn collect_concatenates_and_distinct_keeps_first_appearances() {
    let rows = vec![
        (I, json!(["a", null, "b"])),
        (I, Value::Null),
        (I, json!(["b", "a"])),
        (UA, json!([])),
    ];
    assert_eq!(
        aggregate(array(string()), &[COLLECT], &rows).await,
        Some(json!(["a", null, "b", "b", "a"]))
    );
    assert_eq!(
        aggregate(array(string()), &[COLLECT, DISTINCT], &rows).await,
        Some(json!(["a", null, "b"]))
    );
    // NULL inputs add nothing; an empty array is an array.
    assert_eq!(
        aggregate(
            array(string()),
            &[COLLECT],
            &[(I, Value::Null), (I, Value::Null)]
        )
        .await,
        Some(Value::Null)
    );
    assert_eq!(
        aggregate(
            array(string()),
            &[COLLECT],
            &[(I, Value::Null), (I, json!([]))]
        )
        .await,
        Some(json!([]))
    );
    // As in Paimon, a key's only version is not merged with anything, so
    // its repeated values stay until a second version arrives.
    assert_eq!(
        aggregate(array(Int), &[COLLECT, DISTINCT], &[(I, json!([1, 1]))]).await,
        Some(json!([1, 1]))
    );
    assert_eq!(
        aggregate(
            array(Int),
            &[COLLECT, DISTINCT],
            &[(I, json!([1, 1])), (I, Value::Null)]
        )
        .await,
        Some(json!([1]))
    );
}

#[tokio::test]
async fn merge_map_lets_later_entries_win() {
    let rows = vec![
        (I, json!({"a": 1, "b": 2})),
        (I, Value::Null),
        (I, json!({"b": null, "c": 3})),
        (I, json!({})),
    ];
    assert_eq!(
        aggregate(map(string(), Int), &[MERGE_MAP], &rows).await,
        Some(json!({"a": 1, "b": null, "c": 3}))
    );
}

/// Paimon documents retraction of collect and merge_map as best effort,
/// with these two examples; the engine behaves as documented.
#[tokio::test]
async fn retraction_as_paimon_documents_it() {
    let collect = vec![
        (I, json!(["A", "B", "A"])),
        (UB, json!(["A", "C"])),
        (I, json!(["D"])),
        (D, json!(["D", "B"])),
    ];
    assert_eq!(
        aggregate(array(string()), &[COLLECT], &collect).await,
        Some(json!(["A"]))
    );
    // 1. A retraction that arrives before what it retracts does nothing.
    let disordered = vec![(UB, json!(["A"])), (I, json!(["A", "B"]))];
    assert_eq!(
        aggregate(array(string()), &[COLLECT], &disordered).await,
        Some(json!(["A", "B"]))
    );
    // 2. A retraction retracts the merged result, whoever added it.
    let merged = vec![
        (I, json!({"1": "A"})),
        (I, json!({"1": "B"})),
        (D, json!({"1": "B"})),
    ];
    assert_eq!(
        aggregate(map(string(), string()), &[MERGE_MAP], &merged).await,
        Some(json!({}))
    );
    // Retractions alone are no row, but later merges still apply them.
    let early = vec![
        (I, json!({"a": 1, "b": 2, "c": 3})),
        (D, json!({"a": 0})),
        (UB, json!({"c": null})),
    ];
    assert_eq!(
        aggregate(map(string(), Int), &[MERGE_MAP], &early).await,
        Some(json!({"b": 2}))
    );
    let only = vec![(D, json!({"a": 1}))];
    assert_eq!(
        aggregate(map(string(), Int), &[MERGE_MAP], &only).await,
        None
    );
}

#[tokio::test]
async fn ignore_retract_and_remove_record_on_delete() {
    let rows = vec![(I, json!([1, 2])), (UB, json!([1])), (I, json!([3]))];
    assert_eq!(
        aggregate(
            array(Int),
            &[COLLECT, ("fields.v.ignore-retract", "true")],
            &rows
        )
        .await,
        Some(json!([1, 2, 3]))
    );
    let remove = ("aggregation.remove-record-on-delete", "true");
    // -U still retracts; -D removes the record; a later insert starts afresh.
    assert_eq!(
        aggregate(array(Int), &[COLLECT, remove], &rows).await,
        Some(json!([2, 3]))
    );
    let deleted = vec![(I, json!([1, 2])), (D, json!([]))];
    assert_eq!(
        aggregate(array(Int), &[COLLECT, remove], &deleted).await,
        None
    );
    let again = vec![(I, json!({"a": 1})), (D, Value::Null), (I, json!({"b": 2}))];
    assert_eq!(
        aggregate(map(string(), Int), &[MERGE_MAP, remove], &again).await,
        Some(json!({"b": 2}))
    );
}

#[tokio::test]
async fn wrong_types_and_options_are_refused_with_the_field_named() {
    let multiset = DataTypeKind::Multiset(Box::new(DataType::new(string(), true)));
    /// Column type, options, words the error must contain.
    type Case = (
        DataTypeKind,
        Vec<(&'static str, &'static str)>,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (Int, vec![COLLECT], &["'collect'", "'v'", "ARRAY"]),
        (map(string(), Int), vec![COLLECT], &["'collect'", "MAP"]),
        (
            array(Int),
            vec![MERGE_MAP],
            &["'merge_map'", "'v'", "ARRAY"],
        ),
        (multiset, vec![MERGE_MAP], &["'merge_map'", "MULTISET"]),
        (
            array(Int),
            vec![COLLECT, ("fields.v.distinct", "maybe")],
            &["fields.v.distinct", "maybe"],
        ),
        (
            array(Int),
            vec![COLLECT, ("fields.nope.distinct", "true")],
            &["'nope'"],
        ),
    ];
    for (kind, options, needles) in cases {
        let Err(err) = try_table(vec![col("v", kind.clone(), true)], &options).await else {
            panic!("{kind:?} with {options:?} was accepted")
        };
        let err = err.to_string();
        for needle in needles {
            assert!(err.contains(needle), "{options:?}: {err}");
        }
    }
}

/// Nested element types (rows, arrays inside maps, NULLs at every depth)
/// through level-0 files, universal and full compaction.
#[tokio::test]
async fn nested_elements_survive_files_and_compaction() {
    let point = DataTypeKind::Row(vec![
        tidelake_engine::DataField {
            id: 10,
            name: "x".into(),
            data_type: DataType::new(Int, true),
            description: None,
        },
        tidelake_engine::DataField {
            id: 11,
            name: "tag".into(),
            data_type: DataType::new(string(), true),
            description: None,
        },
    ]);
    let (c, id) = table(
        vec![
            col("pts", array(point), true),
            col("m", map(string(), array(Int)), true),
        ],
        &[
            ("fields.pts.aggregate-function", "collect"),
            ("fields.pts.distinct", "true"),
            ("fields.m.aggregate-function", "merge_map"),
            ("write-only", "false"),
            ("num-sorted-run.compaction-trigger", "2"),
        ],
    )
    .await;
    let p = |x: Option<i64>, tag: Option<&str>| json!({"x": x, "tag": tag});
    let versions = vec![
        json!({"k": 1, "pts": [p(Some(1), Some("a")), p(None, None), null], "m": {"a": [1, null]}}),
        json!({"k": 1, "pts": [p(Some(1), Some("a")), p(Some(1), None)], "m": {"b": null}}),
        json!({"k": 2, "pts": null, "m": {}}),
        json!({"k": 1, "pts": [null, p(None, None), p(Some(2), Some("b"))], "m": {"a": [], "c": [3]}}),
        json!({"k": 2, "pts": [p(Some(5), None)], "m": null}),
    ];
    for v in &versions {
        commit(&c, &id, &[(I, v.clone())]).await.unwrap();
    }
    let want: BTreeMap<i64, Value> = [
        (
            1,
            json!({
                "pts": [p(Some(1), Some("a")), p(None, None), null, p(Some(1), None), p(Some(2), Some("b"))],
                "m": {"a": [], "b": null, "c": [3]},
            }),
        ),
        (2, json!({"pts": [p(Some(5), None)], "m": {}})),
    ]
    .into_iter()
    .collect();
    assert_eq!(read(&c, &id).await.unwrap(), want);
    let t = c.load_table(&id).await.unwrap();
    let plan = t.scan().plan().await.unwrap();
    assert!(
        plan.splits()
            .iter()
            .flat_map(|s| &s.files)
            .any(|f| f.level > 0),
        "inline compaction rewrote nothing"
    );
    t.compact(CompactOptions {
        full: true,
        ..CompactOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(read(&c, &id).await.unwrap(), want);
}

// ---------------------------------------------------------------------------
// Property tests against a row-by-row model.
// ---------------------------------------------------------------------------

type Arr = Option<Vec<Option<i32>>>;
type Entries = Option<Vec<(u8, Option<i32>)>>;

#[derive(Clone, Debug)]
enum Op {
    /// kind, key, c (collect), d (collect distinct), m (merge_map)
    Change(RowKind, i32, Arr, Arr, Entries),
    Commit,
}

fn ops(with_retracts: bool) -> impl Strategy<Value = Vec<Op>> {
    let kind = if with_retracts {
        prop_oneof![5 => Just(I), 1 => Just(UA), 2 => Just(D), 1 => Just(UB)].boxed()
    } else {
        prop_oneof![3 => Just(I), 1 => Just(UA)].boxed()
    };
    // Few distinct values, so that repeats, distinct and retraction matter.
    let arr = || {
        proptest::option::weighted(
            0.85,
            proptest::collection::vec(proptest::option::weighted(0.85, 0i32..4), 0..4),
        )
    };
    let entries = proptest::option::weighted(
        0.85,
        proptest::collection::btree_map(0u8..5, proptest::option::weighted(0.85, 0i32..4), 0..4)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
    );
    let change = (kind, 0i32..6, arr(), arr(), entries)
        .prop_map(|(kind, key, c, d, m)| Op::Change(kind, key, c, d, m));
    proptest::collection::vec(prop_oneof![8 => change, 1 => Just(Op::Commit)], 1..60)
}

/// Within each commit, turns a key's changes to the direction (addition or
/// retraction) of its first one there, so that every flushed row is either
/// merged additions or combined retractions.
fn one_direction_per_commit(ops: &[Op]) -> Vec<Op> {
    let mut first: HashMap<i32, bool> = HashMap::new();
    ops.iter()
        .map(|op| match op {
            Op::Commit => {
                first.clear();
                Op::Commit
            }
            Op::Change(kind, k, c, d, m) => {
                let add = *first.entry(*k).or_insert(!kind.is_retract());
                let kind = match (add, kind.is_retract()) {
                    (true, true) => I,
                    (false, false) => D,
                    _ => *kind,
                };
                Op::Change(kind, *k, c.clone(), d.clone(), m.clone())
            }
        })
        .collect()
}

fn arr_json(a: &Arr) -> Value {
    match a {
        None => Value::Null,
        Some(v) => json!(v),
    }
}

fn entries_json(m: &Entries) -> Value {
    match m {
        None => Value::Null,
        Some(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (format!("k{k}"), json!(v)))
                .collect(),
        ),
    }
}

async fn run_ops(ops: &[Op], tiny_buffer: bool, compaction: bool) -> BTreeMap<i64, Value> {
    let mut options = vec![
        ("bucket", "2"),
        ("fields.c.aggregate-function", "collect"),
        ("fields.d.aggregate-function", "collect"),
        ("fields.d.distinct", "true"),
        ("fields.m.aggregate-function", "merge_map"),
        (
            "write-buffer-size",
            if tiny_buffer { "1 b" } else { "64 mb" },
        ),
    ];
    if compaction {
        // Compact often, so that merged rows are merged again.
        options.push(("write-only", "false"));
        options.push(("num-sorted-run.compaction-trigger", "2"));
    }
    let (c, id) = table(
        vec![
            col("c", array(Int), true),
            col("d", array(Int), true),
            col("m", map(string(), Int), true),
        ],
        &options,
    )
    .await;
    let mut table = c.load_table(&id).await.unwrap();
    let mut w = table.writer();
    for op in ops {
        match op {
            Op::Change(kind, k, cc, d, m) => {
                let row =
                    json!({"k": k, "c": arr_json(cc), "d": arr_json(d), "m": entries_json(m)});
                w.write(batch(&table, &row), *kind).await.unwrap();
            }
            Op::Commit => {
                w.commit().await.unwrap();
                table = c.load_table(&id).await.unwrap();
                w = table.writer();
            }
        }
    }
    w.commit().await.unwrap();
    read(&c, &id).await.unwrap()
}

/// Paimon's functions applied version by version; a key's only version is
/// taken as it is (Paimon merges nothing then).
fn model(ops: &[Op]) -> BTreeMap<i64, Value> {
    let mut versions: BTreeMap<i32, Vec<(bool, Arr, Arr, Entries)>> = BTreeMap::new();
    for op in ops {
        if let Op::Change(kind, k, c, d, m) = op {
            versions.entry(*k).or_default().push((
                !kind.is_retract(),
                c.clone(),
                d.clone(),
                m.clone(),
            ));
        }
    }
    let mut rows = BTreeMap::new();
    for (k, vs) in versions {
        if !vs.iter().any(|v| v.0) {
            continue;
        }
        let (mut c, mut d, mut m): (Arr, Arr, Entries) = (None, None, None);
        if let [(true, c1, d1, m1)] = vs.as_slice() {
            (c, d, m) = (c1.clone(), d1.clone(), m1.clone());
        } else {
            for (add, vc, vd, vm) in &vs {
                if *add {
                    collect_add(&mut c, vc, false);
                    collect_add(&mut d, vd, true);
                    map_add(&mut m, vm);
                } else {
                    collect_retract(&mut c, vc);
                    collect_retract(&mut d, vd);
                    map_retract(&mut m, vm);
                }
            }
        }
        rows.insert(
            i64::from(k),
            json!({"c": arr_json(&c), "d": arr_json(&d), "m": entries_json(&m)}),
        );
    }
    rows
}

fn collect_add(acc: &mut Arr, input: &Arr, distinct: bool) {
    if acc.is_none() && input.is_none() {
        return;
    }
    let mut all = acc.take().unwrap_or_default();
    all.extend(input.iter().flatten().copied());
    if distinct {
        let mut unique = Vec::new();
        for e in all {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        all = unique;
    }
    *acc = Some(all);
}

fn collect_retract(acc: &mut Arr, input: &Arr) {
    if let (Some(a), Some(r)) = (acc, input) {
        for e in r {
            if let Some(p) = a.iter().position(|x| x == e) {
                a.remove(p);
            }
        }
    }
}

fn map_add(acc: &mut Entries, input: &Entries) {
    match (acc.as_mut(), input) {
        (_, None) => {}
        (None, Some(x)) => *acc = Some(x.clone()),
        (Some(a), Some(x)) => {
            for (k, v) in x {
                match a.iter_mut().find(|(ak, _)| ak == k) {
                    Some(entry) => entry.1 = *v,
                    None => a.push((*k, *v)),
                }
            }
        }
    }
}

fn map_retract(acc: &mut Entries, input: &Entries) {
    if let (Some(a), Some(r)) = (acc, input) {
        a.retain(|(k, _)| !r.iter().any(|(rk, _)| rk == k));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Additions merge associatively: any buffer, file and compaction
    /// boundaries give the model's rows, element order included.
    #[test]
    fn additions_match_model(ops in ops(false), tiny_buffer: bool, compaction: bool) {
        let got = block_on(run_ops(&ops, tiny_buffer, compaction));
        prop_assert_eq!(got, model(&ops));
    }

    /// Retractions are exact when every version is merged with all older
    /// ones: one file per write, no compaction.
    #[test]
    fn retractions_match_model_version_by_version(ops in ops(true)) {
        let got = block_on(run_ops(&ops, true, false));
        prop_assert_eq!(got, model(&ops));
    }

    /// ... and when a flush combines only retractions (into one retraction
    /// row) or only additions of a key.
    #[test]
    fn combined_retractions_match_model(ops in ops(true)) {
        let ops = one_direction_per_commit(&ops);
        let got = block_on(run_ops(&ops, false, false));
        prop_assert_eq!(got, model(&ops));
    }
}
