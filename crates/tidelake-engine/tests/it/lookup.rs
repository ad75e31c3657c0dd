//! Primary-key lookups (`Table::lookup`): for random changes committed in
//! random groups, with compactions between them, every key's lookup equals
//! a full scan filtered on the key, for every merge engine, with and
//! without deletion vectors and bloom filters, partitioned or not; pages and
//! bloom filters keep a lookup from decoding rows it cannot need. And the metadata caches:
//! a commit by another catalog (another process) is seen by the next
//! lookup, and the counters show the caches at work.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use proptest::prelude::*;
use tidelake_engine::counters::engine_counters;
use tidelake_engine::{
    CacheConfig, Catalog, CompactOptions, DataType, DataTypeKind, Datum, Identifier, LookupOptions,
    RowKind, Table, TableSpec,
};
use tidelake_testkit::table::{block_on, col, option_map, string, text_rows};

const KEYS: i64 = 10;
const PARTITIONS: [&str; 2] = ["a", "b"];

/// One change: (delete?, key, partition index, v, s).
type Change = (bool, i64, usize, Option<i64>, Option<String>);

/// k BIGINT, p STRING, v BIGINT, s STRING; keyed by k (and p, the
/// partition column, when partitioned).
async fn create(
    engine: &str,
    vectors: bool,
    partitioned: bool,
    buckets: &str,
) -> (Catalog, Identifier) {
    create_with(
        engine,
        vectors,
        partitioned,
        buckets,
        false,
        Caches::KeyIndexes,
    )
    .await
}

/// What a catalog keeps in memory for lookups.
#[derive(Clone, Copy, Debug)]
enum Caches {
    /// Nothing: lookups read pages chosen by statistics and bloom filters.
    Nothing,
    /// Key indexes of data files, pages read for the rows they point at.
    KeyIndexes,
    /// Key indexes and the decoded rows of files (the default).
    KeyIndexesAndRows,
}

impl Caches {
    fn config(self) -> CacheConfig {
        let default = CacheConfig::default();
        match self {
            Caches::Nothing => CacheConfig {
                key_index_bytes: 0,
                lookup_rows_bytes: 0,
                ..default
            },
            Caches::KeyIndexes => CacheConfig {
                lookup_rows_bytes: 0,
                ..default
            },
            Caches::KeyIndexesAndRows => default,
        }
    }
}

/// A catalog on memory with these caches.
async fn memory_catalog(caches: Caches) -> Catalog {
    let catalog = Catalog::open("memory://").await.unwrap();
    catalog.with_cache_config(caches.config())
}

/// `create`, with Parquet bloom filters on every column or not, and a
/// catalog keeping these caches.
async fn create_with(
    engine: &str,
    vectors: bool,
    partitioned: bool,
    buckets: &str,
    bloom: bool,
    caches: Caches,
) -> (Catalog, Identifier) {
    let mut options: Vec<(&str, &str)> = vec![
        ("merge-engine", engine),
        ("bucket", buckets),
        ("write-only", "true"),
    ];
    match engine {
        "partial-update" => options.push(("partial-update.remove-record-on-delete", "true")),
        "aggregation" => {
            options.push(("fields.v.aggregate-function", "sum"));
            options.push(("aggregation.remove-record-on-delete", "true"));
        }
        "first-row" => options.push(("ignore-delete", "true")),
        _ => {}
    }
    if vectors {
        options.push(("deletion-vectors.enabled", "true"));
    }
    if bloom {
        options.push(("parquet.bloom.filter.enabled", "true"));
    }
    let mut k = col("k", DataTypeKind::BigInt, false);
    k.data_type = DataType::new(DataTypeKind::BigInt, false);
    let mut p = col("p", string(), false);
    p.data_type = DataType::new(string(), false);
    let spec = TableSpec {
        columns: vec![
            k,
            p,
            col("v", DataTypeKind::BigInt, true),
            col("s", string(), true),
        ],
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
        options: option_map(&options),
        comment: None,
    };
    let catalog = memory_catalog(caches).await;
    let id = Identifier::new("default", "t");
    catalog.create_table(&id, spec, false).await.unwrap();
    (catalog, id)
}

fn batch(table: &Table, changes: &[&Change]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(changes.iter().map(|c| c.1))),
        Arc::new(StringArray::from_iter_values(
            changes.iter().map(|c| PARTITIONS[c.2]),
        )),
        Arc::new(Int64Array::from_iter(changes.iter().map(|c| c.3))),
        Arc::new(StringArray::from_iter(changes.iter().map(|c| c.4.clone()))),
    ];
    RecordBatch::try_new(table.arrow_schema(), columns).unwrap()
}

async fn commit(catalog: &Catalog, id: &Identifier, changes: &[Change]) {
    let table = catalog.load_table(id).await.unwrap();
    let mut writer = table.writer();
    // Runs of one kind, in order, so that the writer sees the changes'
    // order within the commit.
    let mut start = 0;
    while start < changes.len() {
        let kind = changes[start].0;
        let end = changes[start..]
            .iter()
            .position(|c| c.0 != kind)
            .map_or(changes.len(), |n| start + n);
        let run: Vec<&Change> = changes[start..end].iter().collect();
        let row_kind = if kind {
            RowKind::Delete
        } else {
            RowKind::Insert
        };
        writer.write(batch(&table, &run), row_kind).await.unwrap();
        start = end;
    }
    writer.commit().await.unwrap();
}

/// The table's key values for (k, partition).
fn key(table: &Table, k: i64, p: usize) -> Vec<Datum> {
    if table.primary_keys().len() == 2 {
        vec![Datum::BigInt(k), Datum::String(PARTITIONS[p].into())]
    } else {
        vec![Datum::BigInt(k)]
    }
}

/// Every row of the table's latest snapshot, as text.
async fn scanned_rows(table: &Table) -> Vec<Vec<Option<String>>> {
    let all: Vec<RecordBatch> = table
        .scan()
        .plan()
        .await
        .unwrap()
        .read_all()
        .try_collect()
        .await
        .unwrap();
    text_rows(&all)
}

/// Every key's lookup against the full scan's rows of that key.
async fn check_every_key(table: &Table) {
    let all = scanned_rows(table).await;
    let partitioned = table.primary_keys().len() == 2;
    for k in -1..=KEYS {
        let partitions = if partitioned { PARTITIONS.len() } else { 1 };
        for (p, name) in PARTITIONS.iter().enumerate().take(partitions) {
            let want: Vec<_> = all
                .iter()
                .filter(|r| {
                    r[0].as_deref() == Some(&k.to_string())
                        && (!partitioned || r[1].as_deref() == Some(*name))
                })
                .cloned()
                .collect();
            let got = table.lookup(&key(table, k, p)).await.unwrap();
            let got = got.map(|b| text_rows(&[b])).unwrap_or_default();
            assert_eq!(got, want, "key {k} in partition {p}");
        }
    }
}

fn change() -> impl Strategy<Value = Change> {
    (
        prop::bool::weighted(0.2),
        0..KEYS,
        0..PARTITIONS.len(),
        prop::option::weighted(0.8, -50i64..50),
        prop::option::weighted(0.7, "[a-c]{1,3}"),
    )
}

/// A commit's changes, then what compaction follows it (0: none, 1:
/// universal, 2: full).
fn commits() -> impl Strategy<Value = Vec<(Vec<Change>, u8)>> {
    prop::collection::vec((prop::collection::vec(change(), 1..12), 0u8..3), 1..6)
}

fn engines() -> impl Strategy<Value = (&'static str, bool)> {
    prop_oneof![
        Just(("deduplicate", false)),
        Just(("deduplicate", true)),
        Just(("partial-update", false)),
        Just(("partial-update", true)),
        Just(("aggregation", false)),
        Just(("aggregation", true)),
        Just(("first-row", false)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn lookups_equal_filtered_scans(
        (engine, vectors) in engines(),
        partitioned in any::<bool>(),
        buckets in prop_oneof![Just("1"), Just("3")],
        bloom in any::<bool>(),
        caches in prop_oneof![
            Just(Caches::Nothing),
            Just(Caches::KeyIndexes),
            Just(Caches::KeyIndexesAndRows),
        ],
        commits in commits(),
    ) {
        block_on(async {
            let (catalog, id) =
                create_with(engine, vectors, partitioned, buckets, bloom, caches).await;
            for (changes, compaction) in &commits {
                commit(&catalog, &id, changes).await;
                if *compaction > 0 {
                    let table = catalog.load_table(&id).await.unwrap();
                    table
                        .compact(CompactOptions {
                            full: *compaction == 2,
                            ..CompactOptions::default()
                        })
                        .await
                        .unwrap();
                }
                check_every_key(&catalog.load_table(&id).await.unwrap()).await;
            }
        });
    }
}

#[tokio::test]
async fn lookups_project_and_read_one_snapshot_for_many_keys() {
    let (catalog, id) = create("deduplicate", false, true, "2").await;
    commit(
        &catalog,
        &id,
        &[
            (false, 1, 0, Some(10), Some("x".into())),
            (false, 2, 1, Some(20), None),
        ],
    )
    .await;
    let first = catalog.load_table(&id).await.unwrap();
    let snapshot = first.snapshots().latest_snapshot_id().await.unwrap();
    commit(&catalog, &id, &[(false, 1, 0, Some(11), None)]).await;
    let table = catalog.load_table(&id).await.unwrap();
    let keys = vec![key(&table, 2, 1), key(&table, 1, 0), key(&table, 3, 0)];
    let latest = table
        .lookup_keys(
            &keys,
            &LookupOptions {
                projection: Some(vec![2, 0]),
                snapshot: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        text_rows(&[latest]),
        [
            [Some("11".into()), Some("1".into())],
            [Some("20".into()), Some("2".into())]
        ]
    );
    let old = table
        .lookup_keys(
            &keys,
            &LookupOptions {
                projection: Some(vec![2]),
                snapshot,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        text_rows(&[old]),
        [[Some("10".into())], [Some("20".into())]]
    );
    // Wrong keys are errors, not misses.
    assert!(table.lookup(&[Datum::BigInt(1)]).await.is_err());
    assert!(table
        .lookup(&[Datum::String("1".into()), Datum::String("a".into())])
        .await
        .is_err());
    assert!(table.lookup(&[Datum::Null, Datum::Null]).await.is_err());
}

#[tokio::test]
async fn a_commit_of_another_catalog_is_seen_by_the_next_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().to_str().unwrap().to_string();
    let spec_catalog = Catalog::open(&uri).await.unwrap();
    let id = Identifier::new("default", "t");
    let mut spec = tidelake_testkit::table::spec(
        vec![
            col("k", DataTypeKind::BigInt, false),
            col("v", DataTypeKind::BigInt, true),
            col("s", string(), true),
        ],
        &["k"],
        &[],
        &[("bucket", "2")],
    );
    spec.columns[0].data_type = DataType::new(DataTypeKind::BigInt, false);
    spec_catalog.create_table(&id, spec, false).await.unwrap();

    // Pages read (not decoded rows) so that footers are read again.
    let reader = Catalog::open(&uri)
        .await
        .unwrap()
        .with_cache_config(Caches::KeyIndexes.config());
    let writer = Catalog::open(&uri).await.unwrap();
    let write = |k: i64, v: i64| {
        let writer = writer.clone();
        let id = id.clone();
        async move {
            let table = writer.load_table(&id).await.unwrap();
            let mut w = table.writer();
            let batch = RecordBatch::try_new(
                table.arrow_schema(),
                vec![
                    Arc::new(Int64Array::from(vec![k])),
                    Arc::new(Int64Array::from(vec![v])),
                    Arc::new(StringArray::from(vec![Some("s")])),
                ],
            )
            .unwrap();
            w.write(batch, RowKind::Insert).await.unwrap();
            w.commit().await.unwrap();
        }
    };
    let value = |table: Table, k: i64| async move {
        table
            .lookup(&[Datum::BigInt(k)])
            .await
            .unwrap()
            .map(|b| text_rows(&[b])[0][1].clone().unwrap())
    };
    write(1, 100).await;
    // One handle, as a server keeps it: it must still see new commits.
    let table = reader.load_table(&id).await.unwrap();
    assert_eq!(value(table.clone(), 1).await.as_deref(), Some("100"));
    let before = engine_counters();
    assert_eq!(value(table.clone(), 1).await.as_deref(), Some("100"));
    let after = engine_counters();
    assert!(
        after.manifest_cache_hits > before.manifest_cache_hits,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.manifest_cache_misses, before.manifest_cache_misses);
    assert!(after.footer_cache_hits > before.footer_cache_hits);
    assert_eq!(after.footer_cache_misses, before.footer_cache_misses);
    assert_eq!(after.primary_key_lookups, before.primary_key_lookups + 1);

    write(1, 101).await;
    write(2, 200).await;
    assert_eq!(value(table.clone(), 1).await.as_deref(), Some("101"));
    assert_eq!(value(table.clone(), 2).await.as_deref(), Some("200"));
    assert_eq!(value(table.clone(), 3).await, None);
    // The caches stay within their bounds and hold what was read.
    let cache = reader.metadata_cache();
    assert!(cache.manifest_bytes_held() > 0);
    assert!(cache.footer_bytes_held() > 0);
}

#[tokio::test]
async fn a_lookup_reads_only_the_pages_that_may_hold_the_key() {
    // One file of 60,000 keys: Parquet's writer cuts pages at 20,000 rows
    // and writes their statistics in the page index. Without key indexes
    // (with them, see `key_indexes_skip_files_and_read_one_row`).
    let (catalog, id) = create_with("deduplicate", false, false, "1", false, Caches::Nothing).await;
    let table = catalog.load_table(&id).await.unwrap();
    let n = 60_000i64;
    let rows = RecordBatch::try_new(
        table.arrow_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter_values((0..n).map(|_| "a"))),
            Arc::new(Int64Array::from_iter_values((0..n).map(|k| k * 2))),
            Arc::new(StringArray::from_iter((0..n).map(|_| None::<String>))),
        ],
    )
    .unwrap();
    let mut writer = table.writer();
    writer.write(rows, RowKind::Insert).await.unwrap();
    writer.commit().await.unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let plan = table.scan().plan().await.unwrap();
    assert_eq!(plan.splits()[0].files.len(), 1, "one file");

    let before = engine_counters();
    let found = table
        .lookup(&[Datum::BigInt(45_678)])
        .await
        .unwrap()
        .unwrap();
    let scanned = engine_counters().rows_scanned - before.rows_scanned;
    assert_eq!(text_rows(&[found])[0][2].as_deref(), Some("91356"));
    assert!(
        scanned <= 20_000,
        "a lookup decoded {scanned} rows of a 60,000-row file"
    );
    // A key beyond the file's range opens nothing.
    let before = engine_counters();
    assert!(table
        .lookup(&[Datum::BigInt(n + 5)])
        .await
        .unwrap()
        .is_none());
    let after = engine_counters();
    assert_eq!(after.data_files_opened, before.data_files_opened);
}

/// A one-file table of the even keys 0..2000, with `options`.
/// Without key indexes, which would skip the file before its bloom filter.
async fn even_keys(options: &[(&str, &str)]) -> Table {
    let catalog = memory_catalog(Caches::Nothing).await;
    let id = Identifier::new("default", "t");
    let mut spec = tidelake_testkit::table::spec(
        vec![
            col("k", DataTypeKind::BigInt, false),
            col("v", DataTypeKind::BigInt, true),
        ],
        &["k"],
        &[],
        options,
    );
    spec.columns[0].data_type = DataType::new(DataTypeKind::BigInt, false);
    catalog.create_table(&id, spec, false).await.unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let keys: Vec<i64> = (0..1000).map(|i| i * 2).collect();
    let rows = RecordBatch::try_new(
        table.arrow_schema(),
        vec![
            Arc::new(Int64Array::from(keys.clone())),
            Arc::new(Int64Array::from(keys)),
        ],
    )
    .unwrap();
    let mut writer = table.writer();
    writer.write(rows, RowKind::Insert).await.unwrap();
    writer.commit().await.unwrap();
    catalog.load_table(&id).await.unwrap()
}

#[tokio::test]
async fn bloom_filters_written_on_request_rule_keys_out() {
    let bloom = even_keys(&[("bucket", "1"), ("parquet.bloom.filter.enabled#k", "true")]).await;
    let plain = even_keys(&[("bucket", "1")]).await;
    for table in [&bloom, &plain] {
        let found = table.lookup(&[Datum::BigInt(1000)]).await.unwrap();
        assert_eq!(
            text_rows(&[found.unwrap()]),
            [vec![Some("1000".to_string()); 2]]
        );
    }
    // An absent key inside the file's key range and its page: only the
    // bloom filter tells, and then no row is decoded.
    let before = engine_counters();
    assert!(bloom
        .lookup(&[Datum::BigInt(1001)])
        .await
        .unwrap()
        .is_none());
    let after = engine_counters();
    assert_eq!(after.row_groups_pruned, before.row_groups_pruned + 1);
    assert_eq!(after.rows_scanned, before.rows_scanned);

    let before = engine_counters();
    assert!(plain
        .lookup(&[Datum::BigInt(1001)])
        .await
        .unwrap()
        .is_none());
    let after = engine_counters();
    assert_eq!(after.row_groups_pruned, before.row_groups_pruned);
    assert!(after.rows_scanned > before.rows_scanned);

    // A bad value is refused when a file is written.
    let catalog = Catalog::open("memory://").await.unwrap();
    let id = Identifier::new("default", "bad");
    let mut spec = tidelake_testkit::table::spec(
        vec![col("k", DataTypeKind::BigInt, false)],
        &["k"],
        &[],
        &[("bucket", "1"), ("parquet.bloom.filter.enabled", "yes")],
    );
    spec.columns[0].data_type = DataType::new(DataTypeKind::BigInt, false);
    catalog.create_table(&id, spec, false).await.unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let mut writer = table.writer();
    let rows = RecordBatch::try_new(
        table.arrow_schema(),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let written = async {
        writer.write(rows, RowKind::Insert).await?;
        writer.commit().await
    }
    .await;
    let e = written.expect_err("a bad bloom filter option");
    assert!(
        e.to_string().contains("parquet.bloom.filter.enabled"),
        "{e}"
    );
}

#[tokio::test]
async fn with_deletion_vectors_a_lookup_still_reads_only_its_pages() {
    let (catalog, id) = create_with("deduplicate", true, false, "1", false, Caches::Nothing).await;
    write_keys_compacted(&catalog, &id, 60_000).await;
    commit(
        &catalog,
        &id,
        &[
            (true, 45_678, 0, None, None),
            (false, 45_680, 0, Some(-1), None),
        ],
    )
    .await;
    // Lookup compaction: the big file keeps its rows, a vector marks two.
    compact(&catalog, &id, false).await;
    let table = catalog.load_table(&id).await.unwrap();
    let plan = table.scan().plan().await.unwrap();
    assert!(
        plan.splits()[0]
            .deletion_vectors
            .as_ref()
            .is_some_and(|v| !v.is_empty()),
        "a deletion vector"
    );
    let v = |k: i64| {
        let table = table.clone();
        async move {
            let before = engine_counters();
            let found = table.lookup(&[Datum::BigInt(k)]).await.unwrap();
            let scanned = engine_counters().rows_scanned - before.rows_scanned;
            // Pages hold about 20,000 rows: one page, not the file's 60,000.
            assert!(scanned <= 25_000, "{scanned} rows decoded for key {k}");
            found.map(|b| text_rows(&[b])[0][2].clone().unwrap())
        }
    };
    assert_eq!(v(45_678).await, None);
    assert_eq!(v(45_680).await.as_deref(), Some("-1"));
    assert_eq!(v(45_682).await.as_deref(), Some("45682"));
    assert_eq!(v(3).await.as_deref(), Some("3"));
    check_every_key(&table).await;
}

/// Writes keys 0..n (k, "a", v = k, no s) in one commit, then compacts the
/// table fully into one sorted run.
async fn write_keys_compacted(catalog: &Catalog, id: &Identifier, n: i64) {
    let table = catalog.load_table(id).await.unwrap();
    let rows = RecordBatch::try_new(
        table.arrow_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter_values((0..n).map(|_| "a"))),
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter((0..n).map(|_| None::<String>))),
        ],
    )
    .unwrap();
    let mut writer = table.writer();
    writer.write(rows, RowKind::Insert).await.unwrap();
    writer.commit().await.unwrap();
    compact(catalog, id, true).await;
}

/// Compacts the table (fully, or a lookup compaction when not `full`).
async fn compact(catalog: &Catalog, id: &Identifier, full: bool) {
    let table = catalog.load_table(id).await.unwrap();
    table
        .compact(CompactOptions {
            full,
            ..CompactOptions::default()
        })
        .await
        .unwrap();
}

/// A table (k BIGINT key, v BIGINT, s STRING; one bucket) in a warehouse
/// at `uri`, created by a catalog of its own.
async fn kv_table(uri: &str) -> Identifier {
    let catalog = Catalog::open(uri).await.unwrap();
    let id = Identifier::new("default", "t");
    let mut spec = tidelake_testkit::table::spec(
        vec![
            col("k", DataTypeKind::BigInt, false),
            col("v", DataTypeKind::BigInt, true),
            col("s", string(), true),
        ],
        &["k"],
        &[],
        &[("bucket", "1"), ("write-only", "true")],
    );
    spec.columns[0].data_type = DataType::new(DataTypeKind::BigInt, false);
    catalog.create_table(&id, spec, false).await.unwrap();
    id
}

/// A kv table in a new folder holding one file of the even keys
/// `0..2n` (v = k / 2), and the catalog that wrote it.
async fn even_kv_table(n: i64) -> (tempfile::TempDir, Identifier, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().to_str().unwrap().to_string();
    let id = kv_table(&uri).await;
    let writer = Catalog::open(&uri).await.unwrap();
    write_kv(
        &writer,
        &id,
        &(0..n).map(|i| (i * 2, i)).collect::<Vec<_>>(),
    )
    .await;
    (dir, id, writer)
}

/// Commits the rows (k, v) through `catalog`.
async fn write_kv(catalog: &Catalog, id: &Identifier, rows: &[(i64, i64)]) {
    let table = catalog.load_table(id).await.unwrap();
    let mut w = table.writer();
    let batch = RecordBatch::try_new(
        table.arrow_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "s"))),
        ],
    )
    .unwrap();
    w.write(batch, RowKind::Insert).await.unwrap();
    w.commit().await.unwrap();
}

/// The v of key `k` as a lookup of `table` finds it.
async fn looked_up_v(table: &Table, k: i64) -> Option<String> {
    table
        .lookup(&[Datum::BigInt(k)])
        .await
        .unwrap()
        .map(|b| text_rows(&[b])[0][1].clone().unwrap())
}

#[tokio::test]
async fn a_rollback_that_writes_a_snapshot_again_is_seen_by_the_next_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().to_str().unwrap().to_string();
    let id = kv_table(&uri).await;
    let reader = Catalog::open(&uri).await.unwrap();
    let writer = Catalog::open(&uri).await.unwrap();
    write_kv(&writer, &id, &[(1, 100)]).await;
    write_kv(&writer, &id, &[(1, 200)]).await;
    // One handle for every lookup, as a server keeps it.
    let table = reader.load_table(&id).await.unwrap();
    assert_eq!(looked_up_v(&table, 1).await.as_deref(), Some("200"));
    let before = engine_counters();
    assert_eq!(looked_up_v(&table, 1).await.as_deref(), Some("200"));
    let after = engine_counters();
    assert_eq!(after.snapshot_reuses, before.snapshot_reuses + 1);

    // Back to snapshot 1, and snapshot 2 written again with other files:
    // the lookup's remembered snapshot 2 must not be reused.
    let admin = writer.load_table(&id).await.unwrap();
    admin.rollback_to_snapshot(1).await.unwrap();
    write_kv(&writer, &id, &[(1, 300)]).await;
    assert_eq!(
        admin.snapshots().latest_snapshot_id().await.unwrap(),
        Some(2)
    );
    assert_eq!(looked_up_v(&table, 1).await.as_deref(), Some("300"));
    // Rolled back with nothing written since: the older snapshot.
    admin.rollback_to_snapshot(1).await.unwrap();
    assert_eq!(looked_up_v(&table, 1).await.as_deref(), Some("100"));
    write_kv(&writer, &id, &[(1, 400), (2, 2)]).await;
    assert_eq!(looked_up_v(&table, 1).await.as_deref(), Some("400"));
    assert_eq!(looked_up_v(&table, 2).await.as_deref(), Some("2"));
    // Several keys at once read one snapshot, checked the same way.
    let both = table
        .lookup_keys(
            &[vec![Datum::BigInt(2)], vec![Datum::BigInt(1)]],
            &LookupOptions::default(),
        )
        .await
        .unwrap();
    let values: Vec<_> = text_rows(&[both])
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert!(values.contains(&Some("400".into())), "{values:?}");
    assert!(values.contains(&Some("2".into())), "{values:?}");
}

#[tokio::test]
async fn key_indexes_skip_files_and_read_one_row() {
    // One file of the even keys 0..120,000, then five small files whose
    // keys spread over the same range (six overlapping sorted runs).
    let (dir, id, writer) = even_kv_table(60_000).await;
    let uri = dir.path().to_str().unwrap().to_string();
    for c in 1..=5i64 {
        let rows: Vec<(i64, i64)> = (0..100).map(|i| (i * 1_200 + c * 2, -c)).collect();
        write_kv(&writer, &id, &rows).await;
    }
    // Rows read from pages (decoded rows: `hot_files_are_decoded_once`).
    let reader = Catalog::open(&uri)
        .await
        .unwrap()
        .with_cache_config(Caches::KeyIndexes.config());
    let table = reader.load_table(&id).await.unwrap();
    assert_eq!(
        table.scan().plan().await.unwrap().splits()[0].files.len(),
        6
    );
    // The first lookup indexes the six files (the key is in every file's
    // key range).
    let before = engine_counters();
    assert_eq!(looked_up_v(&table, 60_004).await.as_deref(), Some("-2"));
    let after = engine_counters();
    assert_eq!(after.key_index_misses - before.key_index_misses, 6);
    assert!(reader.metadata_cache().key_index_bytes_held() >= 8 * 60_500);

    // Then a key only the big file holds: one file opened, one row decoded.
    let before = engine_counters();
    assert_eq!(looked_up_v(&table, 45_678).await.as_deref(), Some("22839"));
    let after = engine_counters();
    assert_eq!(after.key_index_hits - before.key_index_hits, 6);
    assert_eq!(after.key_index_misses, before.key_index_misses);
    assert_eq!(after.lookup_files_skipped - before.lookup_files_skipped, 5);
    assert_eq!(after.data_files_opened - before.data_files_opened, 1);
    assert_eq!(after.rows_scanned - before.rows_scanned, 1);
    // A key two files hold: both read, the newer wins.
    let before = engine_counters();
    assert_eq!(
        looked_up_v(&table, 1_200 * 7 + 6).await.as_deref(),
        Some("-3")
    );
    let after = engine_counters();
    assert_eq!(after.data_files_opened - before.data_files_opened, 2);
    assert_eq!(after.rows_scanned - before.rows_scanned, 2);
    // An absent key inside every file's key range: nothing opened.
    let before = engine_counters();
    assert_eq!(looked_up_v(&table, 45_679).await, None);
    let after = engine_counters();
    assert_eq!(after.data_files_opened, before.data_files_opened);
    assert_eq!(after.rows_scanned, before.rows_scanned);
    check_every_key(&table).await;

    // A commit of another catalog is seen at once: its new file is indexed
    // by the next lookup, the others' indexes are kept.
    write_kv(&writer, &id, &[(45_678, 7)]).await;
    let before = engine_counters();
    assert_eq!(looked_up_v(&table, 45_678).await.as_deref(), Some("7"));
    let after = engine_counters();
    assert_eq!(after.key_index_misses - before.key_index_misses, 1);
    assert_eq!(after.key_index_hits - before.key_index_hits, 6);
}

#[tokio::test]
async fn key_indexes_leave_out_rows_deletion_vectors_mark() {
    let (catalog, id) = create("deduplicate", true, false, "1").await;
    write_keys_compacted(&catalog, &id, 30_000).await;
    let table = catalog.load_table(&id).await.unwrap();
    // Indexed before the deletions: the index still lists the rows, the
    // vector leaves them out.
    assert!(table
        .lookup(&[Datum::BigInt(20_001)])
        .await
        .unwrap()
        .is_some());
    commit(
        &catalog,
        &id,
        &[
            (true, 20_001, 0, None, None),
            (false, 20_003, 0, Some(-1), None),
        ],
    )
    .await;
    compact(&catalog, &id, false).await;
    let table = catalog.load_table(&id).await.unwrap();
    let v = |k: i64| {
        let table = table.clone();
        async move {
            let found = table.lookup(&[Datum::BigInt(k)]).await.unwrap();
            found.map(|b| text_rows(&[b])[0][2].clone().unwrap())
        }
    };
    assert_eq!(v(20_001).await, None);
    assert_eq!(v(20_003).await.as_deref(), Some("-1"));
    let before = engine_counters();
    assert_eq!(v(20_005).await.as_deref(), Some("20005"));
    let after = engine_counters();
    assert!(after.rows_scanned - before.rows_scanned <= 1);
    check_every_key(&table).await;
}

/// The v of every key in `keys` as a full scan finds it (`None`: no row).
async fn scanned_v(table: &Table, keys: &[i64]) -> Vec<Option<String>> {
    let rows = scanned_rows(table).await;
    keys.iter()
        .map(|k| {
            rows.iter()
                .find(|r| r[0].as_deref() == Some(&k.to_string()))
                .map(|r| r[1].clone().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn hot_files_are_decoded_once_and_lookups_take_rows_from_them() {
    let n = 20_000i64;
    let (dir, id, writer) = even_kv_table(n).await;
    let uri = dir.path().to_str().unwrap().to_string();
    write_kv(&writer, &id, &[(10, -1), (12, -2)]).await;
    let reader = Catalog::open(&uri).await.unwrap();
    let table = reader.load_table(&id).await.unwrap();
    // Looking up keys of the big file: it is decoded whole once it has been
    // hit often enough (one hit per 256 KiB of it), never more than once.
    let before = engine_counters();
    let mut decoded_after = None;
    for i in 0..64i64 {
        let k = 1_000 + i * 2;
        assert_eq!(looked_up_v(&table, k).await, Some((k / 2).to_string()));
        if engine_counters().lookup_rows_misses > before.lookup_rows_misses {
            decoded_after = Some(i + 1);
            break;
        }
    }
    assert!(decoded_after.is_some(), "the file was never decoded");
    assert_eq!(
        engine_counters().lookup_rows_misses - before.lookup_rows_misses,
        1
    );
    assert!(reader.metadata_cache().lookup_rows_bytes_held() >= 16 * n as usize);
    // Then lookups open no file and decode no row, and agree with a scan:
    // the newer small file's rows win, absent keys have none.
    let keys: Vec<i64> = vec![2, 10, 12, 11, 14, 39_998, 40_000, -2];
    let want = scanned_v(&table, &keys).await;
    // (The small file is indexed and decoded by the first lookup in its
    // key range.)
    for &k in &keys {
        looked_up_v(&table, k).await;
    }
    let before = engine_counters();
    let mut got = Vec::new();
    for &k in &keys {
        got.push(looked_up_v(&table, k).await);
    }
    let after = engine_counters();
    assert_eq!(got, want);
    assert_eq!(got[1].as_deref(), Some("-1"));
    assert_eq!(got[3], None);
    assert_eq!(after.data_files_opened, before.data_files_opened);
    assert_eq!(after.rows_scanned, before.rows_scanned);
    assert!(after.lookup_rows_hits - before.lookup_rows_hits >= 6);
    assert_eq!(after.lookup_rows_misses, before.lookup_rows_misses);

    // A delete (a newer file) hides the decoded row.
    let table_w = writer.load_table(&id).await.unwrap();
    let mut w = table_w.writer();
    let gone = RecordBatch::try_new(
        table_w.arrow_schema(),
        vec![
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["s"])),
        ],
    )
    .unwrap();
    w.write(gone, RowKind::Delete).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(looked_up_v(&table, 2).await, None);
    assert_eq!(looked_up_v(&table, 4).await.as_deref(), Some("2"));
}

#[tokio::test]
async fn files_larger_than_a_sixteenth_of_the_budget_are_never_decoded() {
    let (dir, id, _writer) = even_kv_table(20_000).await;
    let uri = dir.path().to_str().unwrap().to_string();
    let reader = Catalog::open(&uri)
        .await
        .unwrap()
        .with_cache_config(CacheConfig {
            lookup_rows_bytes: 16 * 1024,
            ..CacheConfig::default()
        });
    let table = reader.load_table(&id).await.unwrap();
    let size = table.scan().plan().await.unwrap().splits()[0].files[0].file_size;
    assert!(size > 1024, "the file is {size} bytes");
    let before = engine_counters();
    for k in 0..20 {
        assert_eq!(looked_up_v(&table, k * 14).await, Some((k * 7).to_string()));
    }
    let after = engine_counters();
    // Each lookup reads the row's pages (the first also builds the index).
    assert!(after.data_files_opened - before.data_files_opened >= 20);
    assert_eq!(after.lookup_rows_misses, before.lookup_rows_misses);
    assert_eq!(after.lookup_rows_hits, before.lookup_rows_hits);
    assert_eq!(reader.metadata_cache().lookup_rows_bytes_held(), 0);
}
