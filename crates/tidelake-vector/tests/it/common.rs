//! Tables with a vector column `(id BIGINT key, cat INT, emb ARRAY<FLOAT>)`,
//! seeded vectors, and brute force.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::DataType as ArrowType;
use futures::TryStreamExt;
use tidelake_engine::{Catalog, DataType, DataTypeKind, Identifier, RowKind, Table};
use tidelake_testkit::rng::Rng;
use tidelake_testkit::table::{col, spec};
use tidelake_vector::{Metric, VectorHooks};

pub const DIM: usize = 16;

/// Options of an indexed table (`metric`, `nlist`, `bucket`s).
pub fn index_options(metric: &str, nlist: usize, buckets: usize) -> Vec<(String, String)> {
    vec![
        ("bucket".into(), buckets.to_string()),
        ("deletion-vectors.enabled".into(), "true".into()),
        ("pk-vector.index.columns".into(), "emb".into()),
        ("fields.emb.pk-vector.index.type".into(), "ivf-flat".into()),
        ("fields.emb.pk-vector.distance.metric".into(), metric.into()),
        ("fields.emb.dimension".into(), DIM.to_string()),
        (
            "fields.emb.pk-vector.index.options".into(),
            format!("{{\"nlist\":\"{nlist}\"}}"),
        ),
    ]
}

/// A catalog in a temporary directory whose tables run the vector hooks,
/// with `default.t` created with `options`.
pub async fn table_with(options: &[(String, String)]) -> (Catalog, Identifier, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().to_string_lossy())
        .await
        .unwrap()
        .with_table_hooks(vec![VectorHooks::shared()]);
    let id = Identifier::new("default", "t");
    let pairs: Vec<(&str, &str)> = options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let columns = vec![
        col("id", DataTypeKind::BigInt, false),
        col("cat", DataTypeKind::Int, true),
        col(
            "emb",
            DataTypeKind::Array(Box::new(DataType::new(DataTypeKind::Float, true))),
            true,
        ),
    ];
    catalog
        .create_table(&id, spec(columns, &["id"], &[], &pairs), false)
        .await
        .unwrap();
    (catalog, id, dir)
}

/// Seeded vectors: a mixture of Gaussian clusters (as real embeddings are).
pub fn vectors(seed: u64, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let centers: Vec<Vec<f32>> = (0..16)
        .map(|_| {
            (0..DIM)
                .map(|_| (rng.unit() * 20.0 - 10.0) as f32)
                .collect()
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = &centers[rng.below(centers.len() as u64) as usize];
            c.iter().map(|x| x + (gaussian(&mut rng) as f32)).collect()
        })
        .collect()
}

fn gaussian(rng: &mut Rng) -> f64 {
    let (u, v) = (rng.unit().max(1e-12), rng.unit());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// The `emb` column of `table` holding `rows`.
pub fn emb_array(table: &Table, rows: &[Option<Vec<f32>>]) -> ArrayRef {
    let schema = table.arrow_schema();
    let ArrowType::List(element) = schema.field(2).data_type().clone() else {
        panic!("emb is a list");
    };
    let values: Vec<f32> = rows.iter().flatten().flatten().copied().collect();
    let lengths = rows.iter().map(|r| r.as_ref().map_or(0, |v| v.len()));
    let nulls = rows.iter().map(|r| r.is_some()).collect::<Vec<bool>>();
    Arc::new(
        ListArray::try_new(
            element,
            OffsetBuffer::from_lengths(lengths),
            Arc::new(Float32Array::from(values)),
            Some(nulls.into()),
        )
        .unwrap(),
    )
}

/// Writes `(id, cat, emb)` rows with `kind` and commits.
pub async fn write(
    table: &Table,
    rows: &[(i64, i32, Option<Vec<f32>>)],
    kind: RowKind,
) -> tidelake_engine::Result<Option<i64>> {
    let emb: Vec<Option<Vec<f32>>> = rows.iter().map(|r| r.2.clone()).collect();
    let batch = RecordBatch::try_new(
        table.arrow_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
            emb_array(table, &emb),
        ],
    )
    .unwrap();
    let mut writer = table.writer();
    writer.write(batch, kind).await?;
    writer.commit().await
}

/// Inserts rows `ids` with vectors, `cat = id % 100`.
pub async fn insert(table: &Table, ids: std::ops::Range<i64>, vecs: &[Vec<f32>]) {
    let rows: Vec<(i64, i32, Option<Vec<f32>>)> = ids
        .zip(vecs)
        .map(|(id, v)| (id, (id % 100) as i32, Some(v.clone())))
        .collect();
    write(table, &rows, RowKind::Insert).await.unwrap();
}

/// The table as a SELECT sees it: id -> (cat, emb).
pub async fn logical(table: &Table) -> std::collections::BTreeMap<i64, (i32, Vec<f32>)> {
    let plan = table.scan().plan().await.unwrap();
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await.unwrap();
    let mut out = std::collections::BTreeMap::new();
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let cats = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        let embs = b.column(2).as_any().downcast_ref::<ListArray>().unwrap();
        for i in 0..b.num_rows() {
            let v = embs.value(i);
            let v = v.as_any().downcast_ref::<Float32Array>().unwrap();
            out.insert(ids.value(i), (cats.value(i), v.values().to_vec()));
        }
    }
    out
}

/// Exact top-k ids of the rows passing `keep`, by `metric`.
pub fn brute_force(
    rows: &std::collections::BTreeMap<i64, (i32, Vec<f32>)>,
    query: &[f32],
    k: usize,
    metric: Metric,
    keep: impl Fn(i64, i32) -> bool,
) -> Vec<(i64, f64)> {
    let mut all: Vec<(i64, f64)> = rows
        .iter()
        .filter(|(id, (cat, _))| keep(**id, *cat))
        .map(|(id, (_, v))| (*id, metric.distance(query, v)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// (id, _distance) of a search result.
pub fn found(batch: &RecordBatch) -> Vec<(i64, f64)> {
    let ids = batch
        .column(batch.schema().index_of("id").unwrap())
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .clone();
    let d = batch
        .column(batch.schema().index_of("_distance").unwrap())
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .clone();
    (0..batch.num_rows())
        .map(|i| (ids.value(i), d.value(i)))
        .collect()
}

/// The fraction of `truth` ids found.
pub fn recall(found: &[(i64, f64)], truth: &[(i64, f64)]) -> f64 {
    let hits = truth
        .iter()
        .filter(|(id, _)| found.iter().any(|(f, _)| f == id))
        .count();
    hits as f64 / truth.len().max(1) as f64
}
