//! `tidelake-vector-bench [rows] [dim] [queries]`: recall@10 and QPS (one
//! query thread) of the index against exact search on seeded synthetic
//! vectors (a Gaussian mixture in an 8-dimensional space, projected to
//! `dim` dimensions), in a table of a temporary warehouse; also filtered
//! search at 10% and 1% selectivity and the index build (compaction) time.
//! Ground truth is brute force over the generated vectors. Prints one line
//! per measurement.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    BooleanArray, Float32Array, Int32Array, Int64Array, ListArray, RecordBatch,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::DataType as ArrowType;
use tidelake_engine::{
    Catalog, ColumnSpec, CompactOptions, DataType, DataTypeKind, Identifier, RowKind, TableSpec,
};
use tidelake_vector::{search, Metric, RowFilter, SearchMode, SearchRequest, VectorHooks};

/// Which generated rows a filter keeps, by row number (for the ground truth).
type RowPredicate = Arc<dyn Fn(usize) -> bool + Send + Sync>;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// `n` vectors: 64 clusters in 8 dimensions, projected to `dim`.
fn dataset(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    const LOW: usize = 8;
    let mut rng = Rng(seed);
    let projection: Vec<f64> = (0..LOW * dim).map(|_| rng.gaussian()).collect();
    let centers: Vec<Vec<f64>> = (0..64)
        .map(|_| (0..LOW).map(|_| rng.gaussian() * 4.0).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centers[(rng.next() % 64) as usize];
            let low: Vec<f64> = c.iter().map(|x| x + rng.gaussian()).collect();
            (0..dim)
                .map(|j| {
                    (0..LOW)
                        .map(|i| low[i] * projection[i * dim + j])
                        .sum::<f64>() as f32
                        + 0.05 * rng.gaussian() as f32
                })
                .collect()
        })
        .collect()
}

fn truth(data: &[Vec<f32>], q: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<i64> {
    let mut all: Vec<(usize, f64)> = data
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, v)| (i, Metric::L2.distance(q, v)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1));
    all.iter().take(k).map(|(i, _)| *i as i64).collect()
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    let c = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .map(|a| a.values().to_vec());
    c.unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, dim, queries) = (
        args.first().copied().unwrap_or(100_000),
        args.get(1).copied().unwrap_or(128),
        args.get(2).copied().unwrap_or(100),
    );
    let nlist = ((n as f64).sqrt() as usize).clamp(1, 4096);
    let dir = tempfile_dir()?;
    let catalog = Catalog::open(&dir)
        .await?
        .with_table_hooks(vec![VectorHooks::shared()]);
    let id = Identifier::new("default", "v");
    let options = [
        ("bucket", "1".to_string()),
        ("deletion-vectors.enabled", "true".into()),
        ("write-only", "true".into()),
        ("pk-vector.index.columns", "emb".into()),
        ("fields.emb.pk-vector.index.type", "ivf-flat".into()),
        ("fields.emb.pk-vector.distance.metric", "l2".into()),
        ("fields.emb.dimension", dim.to_string()),
        (
            "fields.emb.pk-vector.index.options",
            format!("{{\"nlist\":\"{nlist}\"}}"),
        ),
    ];
    let column = |name: &str, kind| ColumnSpec {
        name: name.into(),
        data_type: DataType::new(kind, name != "id"),
        comment: None,
    };
    let spec = TableSpec {
        columns: vec![
            column("id", DataTypeKind::BigInt),
            column("cat", DataTypeKind::Int),
            column(
                "emb",
                DataTypeKind::Array(Box::new(DataType::new(DataTypeKind::Float, true))),
            ),
        ],
        primary_keys: vec!["id".into()],
        partition_keys: vec![],
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        comment: None,
    };
    catalog.create_table(&id, spec, false).await?;
    let table = catalog.load_table(&id).await?;
    let data = dataset(7, n, dim);
    let started = Instant::now();
    let ArrowType::List(element) = table.arrow_schema().field(2).data_type().clone() else {
        return Err("emb is not a list".into());
    };
    let mut writer = table.writer();
    for chunk_start in (0..n).step_by(50_000) {
        let end = (chunk_start + 50_000).min(n);
        let values: Vec<f32> = data[chunk_start..end].iter().flatten().copied().collect();
        let emb = ListArray::try_new(
            element.clone(),
            OffsetBuffer::from_lengths(std::iter::repeat_n(dim, end - chunk_start)),
            Arc::new(Float32Array::from(values)),
            None,
        )?;
        let batch = RecordBatch::try_new(
            table.arrow_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(chunk_start as i64..end as i64)),
                Arc::new(Int32Array::from_iter_values(
                    (chunk_start..end).map(|i| (i % 100) as i32),
                )),
                Arc::new(emb),
            ],
        )?;
        writer.write(batch, RowKind::Insert).await?;
    }
    writer.commit().await?;
    println!(
        "load: {n} x {dim} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await?;
    println!(
        "compaction with index build (ivf-flat, nlist={nlist}): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let table = catalog.load_table(&id).await?;
    let qs = dataset(8, queries, dim);
    let truths: Vec<Vec<i64>> = qs.iter().map(|q| truth(&data, q, 10, |_| true)).collect();
    let run =
        |mode: SearchMode, width: Option<usize>, filter: Option<(RowFilter, RowPredicate)>| {
            let table = table.clone();
            let qs = qs.clone();
            let truths = truths.clone();
            let data = &data;
            async move {
                let started = Instant::now();
                let mut hits = 0usize;
                let mut total = 0usize;
                for (i, q) in qs.iter().enumerate() {
                    let mut req = SearchRequest::new("emb", q.clone(), 10);
                    req.mode = mode;
                    req.width = width;
                    req.projection = Some(vec!["id".into()]);
                    req.filter = filter.as_ref().map(|f| f.0.clone());
                    let got = ids(&search(&table, &req).await?.batch);
                    let want = match &filter {
                        None => truths[i].clone(),
                        Some((_, keep)) => truth(data, q, 10, |r| keep(r)),
                    };
                    hits += want.iter().filter(|w| got.contains(w)).count();
                    total += want.len();
                }
                let qps = qs.len() as f64 / started.elapsed().as_secs_f64();
                Ok::<_, tidelake_vector::VectorError>((hits as f64 / total.max(1) as f64, qps))
            }
        };
    let (recall, qps) = run(SearchMode::Exact, None, None).await?;
    println!("exact: recall@10 {recall:.3}, {qps:.1} QPS");
    for nprobe in [1, 4, 8, 16, 32] {
        let (recall, qps) = run(SearchMode::Auto, Some(nprobe), None).await?;
        println!("ivf-flat nprobe={nprobe}: recall@10 {recall:.3}, {qps:.1} QPS");
    }
    for (name, modulo) in [("10%", 10), ("1%", 100)] {
        let filter = RowFilter {
            columns: vec!["cat".into()],
            eval: Arc::new(move |b: &RecordBatch| {
                let cats = b.column(0).as_any().downcast_ref::<Int32Array>().cloned();
                let cats =
                    cats.ok_or_else(|| tidelake_vector::VectorError::BadSearch("cat".into()))?;
                Ok(BooleanArray::from_iter(
                    cats.iter()
                        .map(|c| Some(c.is_some_and(|c| c % modulo == 0))),
                ))
            }),
        };
        let keep: Arc<dyn Fn(usize) -> bool + Send + Sync> =
            Arc::new(move |r| (r % 100) as i32 % modulo == 0);
        let (recall, qps) = run(SearchMode::Auto, Some(8), Some((filter, keep))).await?;
        println!("ivf-flat nprobe=8, filter {name}: recall@10 {recall:.3}, {qps:.1} QPS");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> std::io::Result<String> {
    let dir = std::env::temp_dir().join(format!("tidelake-vector-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.to_string_lossy().into_owned())
}
