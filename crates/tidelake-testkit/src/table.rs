//! Engine tables for tests: column and table specs, catalogs in memory or
//! in a temporary directory with one table `default.t`, and a runtime for
//! property tests (which are not async).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use tidelake_engine::{Catalog, ColumnSpec, DataType, DataTypeKind, Identifier, Table, TableSpec};

/// A column without a comment.
pub fn col(name: &str, kind: DataTypeKind, nullable: bool) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        data_type: DataType::new(kind, nullable),
        comment: None,
    }
}

/// `STRING`: Paimon's VARCHAR of the largest length.
pub fn string() -> DataTypeKind {
    DataTypeKind::VarChar(i32::MAX as u32)
}

/// Table options from pairs.
pub fn option_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A table spec without a comment.
pub fn spec(
    columns: Vec<ColumnSpec>,
    primary_keys: &[&str],
    partition_keys: &[&str],
    pairs: &[(&str, &str)],
) -> TableSpec {
    TableSpec {
        columns,
        primary_keys: primary_keys.iter().map(|k| k.to_string()).collect(),
        partition_keys: partition_keys.iter().map(|k| k.to_string()).collect(),
        options: option_map(pairs),
        comment: None,
    }
}

/// `default.t`, the table of most tests.
pub fn table_t() -> Identifier {
    Identifier::new("default", "t")
}

/// A catalog in memory with `default.t` created from `spec`.
pub async fn in_memory(spec: TableSpec) -> (Catalog, Identifier) {
    let catalog = Catalog::open("memory://")
        .await
        .unwrap_or_else(|e| panic!("an in-memory catalog opens: {e}"));
    let id = table_t();
    create(&catalog, &id, spec).await;
    (catalog, id)
}

/// A catalog in a fresh temporary directory (removed with the returned
/// guard) with `default.t` created from `spec`.
pub async fn on_disk(spec: TableSpec) -> (Catalog, Identifier, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary warehouse: {e}"));
    let catalog = Catalog::open(&dir.path().to_string_lossy())
        .await
        .unwrap_or_else(|e| panic!("a catalog on {} opens: {e}", dir.path().display()));
    let id = table_t();
    create(&catalog, &id, spec).await;
    (catalog, id, dir)
}

/// Like [`on_disk`], returning the loaded table.
pub async fn on_disk_table(spec: TableSpec) -> (Table, tempfile::TempDir) {
    let (catalog, id, dir) = on_disk(spec).await;
    (load(&catalog, &id).await, dir)
}

async fn create(catalog: &Catalog, id: &Identifier, spec: TableSpec) {
    catalog
        .create_table(id, spec, false)
        .await
        .unwrap_or_else(|e| panic!("{id:?} is created: {e}"));
}

/// Loads a table that exists.
pub async fn load(catalog: &Catalog, id: &Identifier) -> Table {
    catalog
        .load_table(id)
        .await
        .unwrap_or_else(|e| panic!("{id:?} loads: {e}"))
}

/// Runs a future to its end on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a tokio runtime: {e}"))
        .block_on(future)
}

/// The tagged table: `p INT NOT NULL, id BIGINT NOT NULL, name STRING`,
/// partitioned by `p` and keyed by `(p, id)` when `primary_key`; its rows
/// carry a tag in `name` that tells which write they came from.
pub fn tagged_spec(primary_key: bool, pairs: &[(&str, &str)]) -> TableSpec {
    let columns = vec![
        col("p", DataTypeKind::Int, false),
        col("id", DataTypeKind::BigInt, false),
        col("name", string(), true),
    ];
    let keys: &[&str] = if primary_key { &["p", "id"] } else { &[] };
    spec(columns, keys, &["p"], pairs)
}

/// Rows `(p, id)` of a [`tagged_spec`] table, each named `{tag}-{id}`.
pub fn tagged_batch(table: &Table, rows: &[(i32, i64)], tag: &str) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| format!("{tag}-{}", r.1)),
        )),
    ];
    RecordBatch::try_new(table.arrow_schema(), columns)
        .unwrap_or_else(|e| panic!("a batch of the tagged table: {e}"))
}

/// A row of a [`tagged_spec`] table: `(p, id, name)`.
pub type TaggedRow = (i32, i64, Option<String>);

/// Every row a plan of a [`tagged_spec`] table reads, sorted.
pub async fn tagged_rows(plan: tidelake_engine::ScanPlan) -> Vec<TaggedRow> {
    let batches: Vec<RecordBatch> = plan
        .read_all()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("a scan reads: {e}"));
    let mut out = Vec::new();
    for b in batches {
        let p = column::<Int32Array>(&b, 0);
        let ids = column::<Int64Array>(&b, 1);
        let names = column::<StringArray>(&b, 2);
        for i in 0..b.num_rows() {
            out.push((
                p.value(i),
                ids.value(i),
                names.is_valid(i).then(|| names.value(i).to_string()),
            ));
        }
    }
    out.sort();
    out
}

/// Every batch of the table's latest snapshot.
pub async fn read_latest(table: &Table) -> Vec<RecordBatch> {
    let plan = table
        .scan()
        .plan()
        .await
        .unwrap_or_else(|e| panic!("a scan plans: {e}"));
    plan.read_all()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("a scan reads: {e}"))
}

/// Column `i` of `batch` as the array type the test knows it has.
pub fn column<T: Array + 'static>(batch: &RecordBatch, i: usize) -> &T {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {i} is a {}", batch.column(i).data_type()))
}

/// Every row of `batches` as text cells (None for NULL), sorted: results
/// compared regardless of the order files and buckets were read in.
pub fn text_rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("a displayable column"))
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(r)).then(|| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    rows.sort();
    rows
}
