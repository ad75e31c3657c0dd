//! Benchmark: write, upsert and scan a primary-key table on local disk.
//!
//! `cargo bench -p tidelake-engine --bench pk_table -- [ROWS] [BUCKETS]`
//! prints rows/s for each phase and the process's peak resident memory.
//! Rows are generated deterministically (seeded), 8 order-like columns.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{make_batch, order_columns, peak_rss_mb, Rng};
use futures::TryStreamExt;
use tidelake_engine::{Catalog, Identifier, RowKind, TableSpec};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rows: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let buckets: i32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::open(dir.path().to_str().expect("path"))
        .await
        .expect("catalog");
    let id = Identifier::new("default", "orders");
    let mut options = BTreeMap::new();
    options.insert("bucket".into(), buckets.to_string());
    // No inline compaction: the scans below measure merge-on-read over every
    // sorted run, then a dedicated full compaction is timed on its own.
    options.insert("write-only".into(), "true".into());
    let spec = TableSpec {
        columns: order_columns(),
        primary_keys: vec!["id".into()],
        options,
        ..Default::default()
    };
    catalog
        .create_table(&id, spec, false)
        .await
        .expect("create");
    let table = catalog.load_table(&id).await.expect("load");
    let schema = table.arrow_schema();
    let mut rng = Rng(0x5eed);
    const BATCH: usize = 65_536;

    // Phase 1: ingest `rows` new keys (shuffled order within each batch).
    // Only the engine's work is timed, not the generation of the rows.
    let mut engine_time = std::time::Duration::ZERO;
    let mut w = table.writer();
    let mut start = 0usize;
    while start < rows {
        let n = BATCH.min(rows - start);
        let mut keys: Vec<i64> = (start..start + n).map(|k| k as i64).collect();
        for i in (1..keys.len()).rev() {
            keys.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let batch = make_batch(schema.clone(), &keys, &mut rng);
        let t = Instant::now();
        w.write(batch, RowKind::Insert).await.expect("write");
        engine_time += t.elapsed();
        start += n;
    }
    let t = Instant::now();
    w.commit().await.expect("commit");
    let secs = (engine_time + t.elapsed()).as_secs_f64();
    println!(
        "write   {rows} rows into {buckets} buckets: {:.2} s, {:.0} rows/s, peak RSS {:.0} MB",
        secs,
        rows as f64 / secs,
        peak_rss_mb()
    );

    // Phase 2: upsert half as many random existing keys, in 10 commits.
    let upserts = rows / 2;
    let mut engine_time = std::time::Duration::ZERO;
    for _ in 0..10 {
        let table = catalog.load_table(&id).await.expect("load");
        let mut w = table.writer();
        let mut done = 0;
        while done < upserts / 10 {
            let n = BATCH.min(upserts / 10 - done);
            let keys: Vec<i64> = (0..n).map(|_| (rng.next() % rows as u64) as i64).collect();
            let batch = make_batch(schema.clone(), &keys, &mut rng);
            let t = Instant::now();
            w.write(batch, RowKind::Insert).await.expect("write");
            engine_time += t.elapsed();
            done += n;
        }
        let t = Instant::now();
        w.commit().await.expect("commit");
        engine_time += t.elapsed();
    }
    let secs = engine_time.as_secs_f64();
    println!(
        "upsert  {upserts} rows in 10 commits: {:.2} s, {:.0} rows/s, peak RSS {:.0} MB",
        secs,
        upserts as f64 / secs,
        peak_rss_mb()
    );

    // Phase 3: merge-on-read scan of everything (11 sorted runs per bucket).
    let table = catalog.load_table(&id).await.expect("load");
    let t = Instant::now();
    let plan = table.scan().plan().await.expect("plan");
    let mut seen = 0usize;
    let mut stream = plan.read_all();
    while let Some(b) = stream.try_next().await.expect("read") {
        seen += b.num_rows();
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(seen, rows, "every key once");
    println!("scan    {seen} rows (merge-on-read, 11 runs/bucket): {:.2} s, {:.0} rows/s, peak RSS {:.0} MB", secs, seen as f64 / secs, peak_rss_mb());

    // Phase 4: 2-column projection.
    let t = Instant::now();
    let plan = table
        .scan()
        .with_projection(Some(vec![0, 3]))
        .plan()
        .await
        .expect("plan");
    let mut seen = 0usize;
    let mut stream = plan.read_all();
    while let Some(b) = stream.try_next().await.expect("read") {
        seen += b.num_rows();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "project {seen} rows (2 columns): {:.2} s, {:.0} rows/s, peak RSS {:.0} MB",
        secs,
        seen as f64 / secs,
        peak_rss_mb()
    );

    // Phase 5: full compaction (a dedicated job), then the full scan again.
    let t = Instant::now();
    let outcome = table
        .compact(tidelake_engine::CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .expect("compact");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "compact {} files ({} MB) into {} files ({} MB): {:.2} s, {:.0} rows/s, peak RSS {:.0} MB",
        outcome.files_in,
        outcome.bytes_in >> 20,
        outcome.files_out,
        outcome.bytes_out >> 20,
        secs,
        (rows + upserts) as f64 / secs,
        peak_rss_mb()
    );
    let table = catalog.load_table(&id).await.expect("load");
    let t = Instant::now();
    let plan = table.scan().plan().await.expect("plan");
    let mut seen = 0usize;
    let mut stream = plan.read_all();
    while let Some(b) = stream.try_next().await.expect("read") {
        seen += b.num_rows();
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(seen, rows, "every key once after compaction");
    println!("scan    {seen} rows after full compaction (1 run/bucket): {:.2} s, {:.0} rows/s, peak RSS {:.0} MB", secs, seen as f64 / secs, peak_rss_mb());
}
