//! `tidelake-vector-bench`: Tidelake's side of the benchmark suite's
//! `vector` workload (bench/run --only vector). Reads the vectors, queries
//! and exact ground truth that `bench/vector_data.py` wrote, and prints one
//! JSON line per measurement, with the same fields as
//! `bench/vector_peers.py` prints for faiss and LanceDB:
//!
//! - `vector_build`: the rows are written into a primary-key table
//!   (`load_seconds`: the writes), then its commit (which compacts inline)
//!   and a full compaction build the IVF-FLAT index (`seconds`), with the
//!   run's `nlist`;
//! - `vector_search`: recall@10 and queries per second at each `nprobe`,
//!   one query at a time on one thread (the index library's scans run in a
//!   one-thread rayon pool);
//! - `vector_filter`: a filter on `cat` at 50%, 10%, 1% and 0.1%
//!   selectivity, at the operating point (the fastest `nprobe` whose recall
//!   reached 0.95, else the most accurate);
//! - `vector_churn`: 10% of the rows upserted with new vectors and 5%
//!   deleted through the table's normal write path, then recall against the
//!   new contents and the count of deleted or stale rows returned.
//!
//!     tidelake-vector-bench --data bench/data/vector/<scale> [--widths 1,2,4,8]

mod npy;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType as ArrowType, FieldRef};
use serde_json::{json, Value};
use tidelake_engine::{
    Catalog, ColumnSpec, CompactOptions, DataType, DataTypeKind, Identifier, RowKind, Table,
    TableSpec,
};
use tidelake_vector::{search, Metric, RowFilter, SearchRequest, VectorError, VectorHooks};

use npy::Npy;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SYSTEM: &str = "tidelake";
const K: usize = 10;
const RECALL_TARGET: f64 = 0.95;
/// Powers of two with a point between each from 8 up, where the curves
/// cross recall 0.9 to 0.99 (the same widths as the IVF peers').
const WIDTHS: &[usize] = &[1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128];
/// Filtered searches select `cat < per_mille`.
const SELECTIVITIES_PER_MILLE: &[i32] = &[500, 100, 10, 1];
/// Stop widening once a curve point takes longer than this.
const POINT_BUDGET_S: f64 = 60.0;
const WRITE_CHUNK: usize = 50_000;

struct Args {
    data: PathBuf,
    widths: Vec<usize>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut data = None;
    let mut widths = WIDTHS.to_vec();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().map(PathBuf::from),
            "--widths" => {
                let text = args.next().ok_or("--widths needs a value")?;
                widths = text
                    .split(',')
                    .map(|w| w.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("bad --widths '{text}'"))?;
            }
            "-h" | "--help" => {
                println!("tidelake-vector-bench --data DIR [--widths 1,2,4,...]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'").into()),
        }
    }
    Ok(Args {
        data: data.ok_or("--data DIR is required")?,
        widths,
    })
}

/// The generator's files. The base vectors are read a chunk at a time
/// while the table is written, and whole only after the build (for the
/// churn), so that the build's peak memory is the build's, not the input
/// arrays' (faiss and LanceDB build from them and hold them).
struct Data {
    dir: PathBuf,
    nlist: usize,
    rows: usize,
    dim: usize,
    cat: Npy<i32>,
    queries: Npy<f32>,
}

impl Data {
    fn open(dir: &Path) -> Result<Data, BoxError> {
        let meta: Value = serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)?;
        let nlist = meta["nlist"].as_u64().ok_or("meta.json has no nlist")? as usize;
        let shape = npy::shape::<f32>(&dir.join("base.npy"))?;
        let (rows, dim) = match shape[..] {
            [rows, dim] => (rows, dim),
            _ => return Err(format!("base.npy has shape {shape:?}, not rows x dim").into()),
        };
        Ok(Data {
            dir: dir.to_path_buf(),
            nlist,
            rows,
            dim,
            cat: npy::read(&dir.join("cat.npy"))?,
            queries: npy::read(&dir.join("queries.npy"))?,
        })
    }

    fn i64s(&self, name: &str) -> Result<Npy<i64>, BoxError> {
        Ok(npy::read(&self.dir.join(format!("{name}.npy")))?)
    }

    /// Base vectors of rows `rows`.
    fn base_rows(&self, rows: std::ops::Range<usize>) -> Result<Vec<f32>, BoxError> {
        Ok(npy::read_rows(&self.dir.join("base.npy"), rows)?)
    }

    fn base(&self) -> Result<Npy<f32>, BoxError> {
        Ok(npy::read(&self.dir.join("base.npy"))?)
    }

    fn dim(&self) -> usize {
        self.dim
    }
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn record(workload: &str, rows: usize, seconds: f64, index: &str, extra: Value) -> Value {
    let mut out = json!({
        "workload": workload,
        "system": SYSTEM,
        "status": "ok",
        "rows": rows,
        "seconds": (seconds * 1e6).round() / 1e6,
        "rows_per_s": if seconds > 0.0 { Some((rows as f64 / seconds * 10.0).round() / 10.0) } else { None },
        "peak_rss_bytes": peak_rss_bytes(),
        "index": index,
    });
    if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    out
}

fn emit(v: &Value) {
    println!("{v}");
}

/// A table of `(id BIGINT primary key, cat INT, emb ARRAY<FLOAT>)` with an
/// IVF-FLAT index on `emb`, in a fresh warehouse.
async fn create_table(
    work: &Path,
    dim: usize,
    nlist: usize,
) -> Result<(Catalog, Identifier), BoxError> {
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    std::fs::create_dir_all(work)?;
    let catalog = Catalog::open(&work.to_string_lossy())
        .await?
        .with_table_hooks(vec![VectorHooks::shared()]);
    let id = Identifier::new("default", "v");
    let options = [
        ("bucket", "1".to_string()),
        ("deletion-vectors.enabled", "true".into()),
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
    Ok((catalog, id))
}

/// A batch of rows `ids` with their `cat` and the given vectors.
fn batch(
    table: &Table,
    ids: &[i64],
    cat: &[i32],
    vectors: Vec<f32>,
    dim: usize,
) -> Result<RecordBatch, BoxError> {
    let ArrowType::List(element) = table.arrow_schema().field(2).data_type().clone() else {
        return Err("column emb is not a list".into());
    };
    let element: FieldRef = element;
    let emb = ListArray::try_new(
        element,
        OffsetBuffer::from_lengths(std::iter::repeat_n(dim, ids.len())),
        Arc::new(Float32Array::from(vectors)),
        None,
    )?;
    Ok(RecordBatch::try_new(
        table.arrow_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Int32Array::from(cat.to_vec())),
            Arc::new(emb),
        ],
    )?)
}

/// What one pass of queries returned: per query (id, distance) pairs.
struct Pass {
    results: Vec<Vec<(i64, f64)>>,
    seconds: f64,
    segments: usize,
    exact_rows: u64,
}

fn cat_filter(per_mille: i32) -> RowFilter {
    RowFilter {
        columns: vec!["cat".into()],
        eval: Arc::new(move |b: &RecordBatch| {
            let cats = b
                .column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .ok_or_else(|| VectorError::BadSearch("cat is not an INT column".into()))?;
            Ok(cats
                .iter()
                .map(|c| Some(c.is_some_and(|c| c < per_mille)))
                .collect::<BooleanArray>())
        }),
    }
}

async fn run_queries(
    table: &Table,
    queries: &Npy<f32>,
    width: usize,
    filter: Option<RowFilter>,
) -> Result<Pass, BoxError> {
    let mut pass = Pass {
        results: Vec::with_capacity(queries.rows()),
        seconds: 0.0,
        segments: 0,
        exact_rows: 0,
    };
    let started = Instant::now();
    for q in 0..queries.rows() {
        let mut req = SearchRequest::new("emb", queries.row(q).to_vec(), K);
        req.width = Some(width);
        req.projection = Some(vec!["id".into()]);
        req.filter = filter.clone();
        let out = search(table, &req).await?;
        pass.segments += out.stats.segments;
        pass.exact_rows += out.stats.exact_rows;
        let ids = out
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("id is not BIGINT")?;
        let distances = out
            .batch
            .column(out.batch.num_columns() - 1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or("_distance is not DOUBLE")?;
        pass.results.push(
            (0..ids.len())
                .map(|i| (ids.value(i), distances.value(i)))
                .collect(),
        );
    }
    pass.seconds = started.elapsed().as_secs_f64();
    Ok(pass)
}

/// Mean over queries of |returned top k ∩ true top k| / (true rows, at most k).
fn recall(results: &[Vec<(i64, f64)>], truth: &Npy<i64>) -> f64 {
    let (mut total, mut counted) = (0.0, 0usize);
    for (q, got) in results.iter().enumerate() {
        let want: Vec<i64> = truth
            .row(q)
            .iter()
            .take(K)
            .copied()
            .filter(|i| *i >= 0)
            .collect();
        if want.is_empty() {
            continue;
        }
        let hits = want
            .iter()
            .filter(|w| got.iter().take(K).any(|(id, _)| id == *w))
            .count();
        total += hits as f64 / want.len() as f64;
        counted += 1;
    }
    if counted == 0 {
        1.0
    } else {
        total / counted as f64
    }
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The fastest point that reached the recall target, else the most accurate.
fn operating_point(points: &[(usize, f64, f64)]) -> usize {
    let good = points.iter().filter(|p| p.1 >= RECALL_TARGET);
    match good.max_by(|a, b| a.2.total_cmp(&b.2)) {
        Some(p) => p.0,
        None => points
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)))
            .map_or(1, |p| p.0),
    }
}

fn search_extra(width: usize, recall: f64, pass: &Pass, queries: usize) -> Value {
    json!({
        "width_name": "nprobe",
        "width": width,
        "recall_at_10": round4(recall),
        "segments_per_query": pass.segments as f64 / queries.max(1) as f64,
        "exact_rows_per_query": (pass.exact_rows as f64 / queries.max(1) as f64).round(),
    })
}

fn run(args: &Args) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The index library scans lists in rayon; queries get one thread, as
    // faiss gets one OpenMP thread. Builds keep every core.
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let data = Data::open(&args.data)?;
    let (n, dim) = (data.rows, data.dim());
    let index = format!("IVF-FLAT nlist={}", data.nlist);
    let work = data.dir.join("work").join(SYSTEM);

    // Load: write every row. Build: the commit and a full compaction, which
    // build the index.
    let table = rt.block_on(async {
        let (catalog, id) = create_table(&work, dim, data.nlist).await?;
        let table = catalog.load_table(&id).await?;
        let started = Instant::now();
        let mut writer = table.writer();
        for start in (0..n).step_by(WRITE_CHUNK) {
            let end = (start + WRITE_CHUNK).min(n);
            let ids: Vec<i64> = (start as i64..end as i64).collect();
            let values = data.base_rows(start..end)?;
            let b = batch(&table, &ids, &data.cat.values[start..end], values, dim)?;
            writer.write(b, RowKind::Insert).await?;
        }
        let load = started.elapsed().as_secs_f64();
        // The build clock includes the commit: it compacts inline and builds
        // the index of what it compacted, before the full compaction below.
        let started = Instant::now();
        writer.commit().await?;
        table
            .compact(CompactOptions {
                full: true,
                partition: None,
            })
            .await?;
        let build = started.elapsed().as_secs_f64();
        emit(&record(
            "vector_build",
            n,
            build,
            &index,
            json!({"load_seconds": (load * 1e3).round() / 1e3, "dim": dim}),
        ));
        Ok::<_, BoxError>((catalog, id))
    })?;
    let (catalog, id) = table;
    let table = rt.block_on(catalog.load_table(&id))?;

    let truth = data.i64s("truth")?;
    let nq = data.queries.rows();
    let mut points = Vec::new();
    for &width in &args.widths {
        let pass =
            one_thread.install(|| rt.block_on(run_queries(&table, &data.queries, width, None)))?;
        let r = recall(&pass.results, &truth);
        let rec = record(
            "vector_search",
            nq,
            pass.seconds,
            &index,
            search_extra(width, r, &pass, nq),
        );
        emit(&rec);
        points.push((width, r, nq as f64 / pass.seconds.max(1e-9)));
        if r >= 0.999 || pass.seconds > POINT_BUDGET_S {
            break;
        }
    }
    let width = operating_point(&points);

    for &per_mille in SELECTIVITIES_PER_MILLE {
        let want = data.i64s(&format!("truth_filter_{per_mille}"))?;
        let filter = cat_filter(per_mille);
        let pass = one_thread
            .install(|| rt.block_on(run_queries(&table, &data.queries, width, Some(filter))))?;
        let mut extra = search_extra(width, recall(&pass.results, &want), &pass, nq);
        extra["selectivity"] = json!(f64::from(per_mille) / 1000.0);
        emit(&record("vector_filter", nq, pass.seconds, &index, extra));
    }

    // Churn through the normal write path: upserts, then deletes, one commit.
    let base = data.base()?;
    let upsert_ids = data.i64s("upsert_ids")?;
    let upsert_vectors: Npy<f32> = npy::read(&data.dir.join("upsert_vectors.npy"))?;
    let delete_ids = data.i64s("delete_ids")?;
    let write_seconds = rt.block_on(async {
        let started = Instant::now();
        let mut writer = table.writer();
        for start in (0..upsert_ids.rows()).step_by(WRITE_CHUNK) {
            let end = (start + WRITE_CHUNK).min(upsert_ids.rows());
            let ids = &upsert_ids.values[start..end];
            let cats: Vec<i32> = ids.iter().map(|i| data.cat.values[*i as usize]).collect();
            let values = upsert_vectors.values[start * dim..end * dim].to_vec();
            writer
                .write(batch(&table, ids, &cats, values, dim)?, RowKind::Insert)
                .await?;
        }
        for start in (0..delete_ids.rows()).step_by(WRITE_CHUNK) {
            let end = (start + WRITE_CHUNK).min(delete_ids.rows());
            let ids = &delete_ids.values[start..end];
            let cats: Vec<i32> = ids.iter().map(|i| data.cat.values[*i as usize]).collect();
            let values: Vec<f32> = ids
                .iter()
                .flat_map(|i| base.row(*i as usize).iter().copied())
                .collect();
            writer
                .write(batch(&table, ids, &cats, values, dim)?, RowKind::Delete)
                .await?;
        }
        writer.commit().await?;
        Ok::<_, BoxError>(started.elapsed().as_secs_f64())
    })?;
    let table = rt.block_on(catalog.load_table(&id))?;
    let pass =
        one_thread.install(|| rt.block_on(run_queries(&table, &data.queries, width, None)))?;
    let mut current = base.values;
    for (i, id) in upsert_ids.values.iter().enumerate() {
        let at = *id as usize * dim;
        current[at..at + dim].copy_from_slice(upsert_vectors.row(i));
    }
    let deleted: HashSet<i64> = delete_ids.values.iter().copied().collect();
    let mut stale = 0usize;
    for (q, got) in pass.results.iter().enumerate() {
        for (id, distance) in got {
            if deleted.contains(id) {
                stale += 1;
                continue;
            }
            let at = *id as usize * dim;
            let Some(row) = current.get(at..at + dim) else {
                stale += 1;
                continue;
            };
            let truth = Metric::L2.distance(data.queries.row(q), row);
            if (truth - distance).abs() > 1e-3 * truth.max(1.0) {
                stale += 1;
            }
        }
    }
    let mut extra = search_extra(
        width,
        recall(&pass.results, &data.i64s("truth_churn")?),
        &pass,
        nq,
    );
    extra["stale_rows"] = json!(stale);
    extra["upserted"] = json!(upsert_ids.rows());
    extra["deleted"] = json!(delete_ids.rows());
    extra["write_seconds"] = json!((write_seconds * 1e3).round() / 1e3);
    emit(&record("vector_churn", nq, pass.seconds, &index, extra));
    Ok(())
}

fn main() -> ExitCode {
    let outcome = parse_args().and_then(|args| run(&args));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidelake-vector-bench: {e}");
            emit(
                &json!({"workload": "vector", "system": SYSTEM, "status": "error", "reason": e.to_string()}),
            );
            ExitCode::FAILURE
        }
    }
}
