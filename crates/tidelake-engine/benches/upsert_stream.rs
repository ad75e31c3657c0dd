//! Benchmark: a primary-key table under a steady stream of upserts, as a
//! streaming job would write it (one commit per batch), with LSM maintenance.
//!
//! `cargo bench -p tidelake-engine --bench upsert_stream -- [TOTAL] [KEYS] [BATCH] [BUCKETS]
//! [--write-only] [--background] [--deletion-vectors] [--compact-every=K] [--every=N]`
//!
//! TOTAL upserts (default 3,000,000) of random keys out of KEYS (300,000) are
//! committed BATCH (50,000) rows at a time into BUCKETS (4) buckets. By
//! default writers compact inline (the table's defaults); `--write-only`
//! sets `write-only` and runs a dedicated `Table::compact` every K (5)
//! commits instead; `--background` hands the writers' compaction to a
//! `BackgroundCompactor` (write rows/s is then the loop's wall time). Every N (1) commits a line shows the interval's rows/s
//! and the LSM shape of the latest snapshot; at the end: total write rows/s,
//! write amplification, merge-on-read scan rows/s, full compaction, scan
//! rows/s after it, peak RSS.
//!
//! Write amplification counts the bytes of every data file ever committed:
//! the ADD entries of each snapshot's delta manifests, read as the snapshots
//! appear (retention is raised as well, so nothing expires meanwhile).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array, RecordBatch};
use futures::TryStreamExt;
use tidelake_engine::manifests::ManifestStore;
use tidelake_engine::{
    BackgroundCompactor, Catalog, CompactOptions, Identifier, RowKind, Table, TableSpec,
};
use tidelake_format::manifest::FileKind;
use tidelake_format::snapshot::CommitKind;

use common::{make_batch, order_columns, peak_rss_mb, Rng};

type BoxError = Box<dyn Error + Send + Sync>;

/// The run's parameters, from the command line.
struct Args {
    total: usize,
    keys: usize,
    batch: usize,
    buckets: i32,
    write_only: bool,
    /// Compaction by a background task instead of before each commit returns.
    background: bool,
    /// `deletion-vectors.enabled`: scans read compacted files without merging.
    deletion_vectors: bool,
    compact_every: usize,
    report_every: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut positional = Vec::new();
    let mut args = Args {
        total: 3_000_000,
        keys: 300_000,
        batch: 50_000,
        buckets: 4,
        write_only: false,
        background: false,
        deletion_vectors: false,
        compact_every: 5,
        report_every: 1,
    };
    let positive = |name: &str, v: &str| -> Result<usize, BoxError> {
        match v.replace('_', "").parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name}: '{v}' is not a positive number").into()),
        }
    };
    for a in std::env::args().skip(1) {
        if a == "--write-only" {
            args.write_only = true;
        } else if a == "--background" {
            args.background = true;
        } else if a == "--deletion-vectors" {
            args.deletion_vectors = true;
        } else if let Some(v) = a.strip_prefix("--compact-every=") {
            args.compact_every = positive("--compact-every", v)?;
        } else if let Some(v) = a.strip_prefix("--every=") {
            args.report_every = positive("--every", v)?;
        } else if !a.starts_with("--") {
            // `cargo bench` adds `--bench`; other flags are ignored likewise.
            positional.push(a);
        }
    }
    let names = ["TOTAL", "KEYS", "BATCH", "BUCKETS"];
    let mut values = [args.total, args.keys, args.batch, args.buckets as usize];
    if positional.len() > values.len() {
        return Err(format!("at most {} numbers: {}", values.len(), names.join(" ")).into());
    }
    for (i, v) in positional.iter().enumerate() {
        values[i] = positive(names[i], v)?;
    }
    [args.total, args.keys, args.batch] = [values[0], values[1], values[2]];
    args.buckets = i32::try_from(values[3]).map_err(|_| "BUCKETS is too large")?;
    Ok(args)
}

/// The LSM shape of one snapshot.
struct LsmShape {
    max_runs: usize,
    mean_runs: f64,
    files: usize,
    bytes: u64,
}

/// Sorted runs per bucket among the live files of the latest snapshot: each
/// level-0 file is a run, each non-empty level ≥ 1 is one more.
async fn lsm_shape(table: &Table, manifests: &ManifestStore) -> Result<LsmShape, BoxError> {
    let Some(snapshot) = table.snapshots().latest_snapshot().await? else {
        return Ok(LsmShape {
            max_runs: 0,
            mean_runs: 0.0,
            files: 0,
            bytes: 0,
        });
    };
    let metas = manifests.data_manifests(&snapshot).await?;
    let live = manifests.live_entries(&metas, &|_| true).await?;
    let mut buckets: HashMap<(Vec<u8>, i32), (usize, HashSet<i32>)> = HashMap::new();
    for e in &live {
        let (level0, higher) = buckets.entry((e.partition.clone(), e.bucket)).or_default();
        if e.file.level <= 0 {
            *level0 += 1;
        } else {
            higher.insert(e.file.level);
        }
    }
    let runs: Vec<usize> = buckets.values().map(|(l0, hi)| l0 + hi.len()).collect();
    Ok(LsmShape {
        max_runs: runs.iter().copied().max().unwrap_or(0),
        mean_runs: runs.iter().sum::<usize>() as f64 / runs.len().max(1) as f64,
        files: live.len(),
        bytes: live.iter().map(|e| e.file.file_size.max(0) as u64).sum(),
    })
}

/// Data files committed so far, by the kind of snapshot that added them.
#[derive(Default)]
struct WrittenFiles {
    /// Snapshots read so far (the next one to read is `last + 1`).
    last_snapshot: i64,
    append_snapshots: usize,
    append_files: usize,
    append_bytes: u64,
    compact_snapshots: usize,
    compact_files: usize,
    compact_bytes: u64,
}

impl WrittenFiles {
    /// Adds the ADD entries of the delta manifests of every snapshot newer
    /// than the last one read.
    async fn catch_up(&mut self, table: &Table, manifests: &ManifestStore) -> Result<(), BoxError> {
        let Some(latest) = table.snapshots().latest_snapshot_id().await? else {
            return Ok(());
        };
        for id in self.last_snapshot + 1..=latest {
            let snapshot = table
                .snapshots()
                .snapshot(id)
                .await?
                .ok_or_else(|| format!("snapshot {id} expired before it was counted"))?;
            let mut files = 0usize;
            let mut bytes = 0u64;
            for meta in manifests.read_list(&snapshot.delta_manifest_list).await? {
                for e in manifests.read_manifest(&meta.file_name).await? {
                    if e.kind == FileKind::Add {
                        files += 1;
                        bytes += e.file.file_size.max(0) as u64;
                    }
                }
            }
            match snapshot.commit_kind {
                CommitKind::Compact => {
                    self.compact_snapshots += 1;
                    self.compact_files += files;
                    self.compact_bytes += bytes;
                }
                CommitKind::Append => {
                    self.append_snapshots += 1;
                    self.append_files += files;
                    self.append_bytes += bytes;
                }
                other => return Err(format!("unexpected {other:?} snapshot {id}").into()),
            }
            self.last_snapshot = id;
        }
        Ok(())
    }

    fn total_bytes(&self) -> u64 {
        self.append_bytes + self.compact_bytes
    }

    /// Bytes of every file written per byte of level-0 files the writers wrote.
    fn amplification(&self) -> f64 {
        self.total_bytes() as f64 / self.append_bytes.max(1) as f64
    }
}

/// The newest value of column `customer` written for each key (`None`: the
/// key was never written), to check what scans return.
struct Expected(Vec<Option<i64>>);

impl Expected {
    /// Rows of one batch get increasing sequence numbers, so the last
    /// occurrence of a key wins.
    fn record(&mut self, batch: &RecordBatch) -> Result<(), BoxError> {
        let (ids, customers) = id_and_customer(batch)?;
        for i in 0..batch.num_rows() {
            let slot = usize::try_from(ids.value(i))
                .ok()
                .and_then(|k| self.0.get_mut(k))
                .ok_or("generated key out of the key space")?;
            *slot = Some(customers.value(i));
        }
        Ok(())
    }

    fn distinct_keys(&self) -> usize {
        self.0.iter().filter(|v| v.is_some()).count()
    }
}

fn id_and_customer(batch: &RecordBatch) -> Result<(&Int64Array, &Int64Array), BoxError> {
    let int64 = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| BoxError::from(format!("column {i} is not BIGINT")))
    };
    Ok((int64(0)?, int64(1)?))
}

/// Reads the whole table (all columns, merge-on-read) and checks every key
/// appears once with its newest value. Returns rows read and the time taken
/// (the check is a few array lookups a row, against decoding 8 columns).
async fn full_scan(table: &Table, expected: &Expected) -> Result<(usize, Duration), BoxError> {
    let start = Instant::now();
    let plan = table.scan().plan().await?;
    let mut stream = plan.read_all();
    let mut seen = vec![false; expected.0.len()];
    let mut rows = 0usize;
    while let Some(batch) = stream.try_next().await? {
        let (ids, customers) = id_and_customer(&batch)?;
        for i in 0..batch.num_rows() {
            let key = usize::try_from(ids.value(i)).map_err(|_| "negative key read")?;
            let want = expected.0.get(key).copied().flatten();
            if customers.is_null(i) || want != Some(customers.value(i)) {
                return Err(format!(
                    "key {key}: read customer {}, expected {want:?}",
                    customers.value(i)
                )
                .into());
            }
            if std::mem::replace(&mut seen[key], true) {
                return Err(format!("key {key} read twice").into());
            }
        }
        rows += batch.num_rows();
    }
    let elapsed = start.elapsed();
    if rows != expected.distinct_keys() {
        return Err(format!(
            "scan read {rows} rows, {} keys were written",
            expected.distinct_keys()
        )
        .into());
    }
    Ok((rows, elapsed))
}

/// Bytes of the Arrow buffers a batch covers (its logical input size).
fn arrow_bytes(batch: &RecordBatch) -> Result<u64, BoxError> {
    let mut total = 0u64;
    for c in batch.columns() {
        total += c.to_data().get_slice_memory_size()? as u64;
    }
    Ok(total)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let warehouse = dir.path().to_str().ok_or("temporary path is not UTF-8")?;
    let catalog = Catalog::open(warehouse).await?;
    let id = Identifier::new("default", "orders");
    let mut options = BTreeMap::new();
    options.insert("bucket".to_string(), args.buckets.to_string());
    // Keep every snapshot so that written files can be counted from them
    // (they are also counted as they appear).
    options.insert("snapshot.num-retained.min".into(), i32::MAX.to_string());
    options.insert("snapshot.time-retained".into(), "365 d".into());
    if args.deletion_vectors {
        options.insert("deletion-vectors.enabled".into(), "true".into());
    }
    if args.write_only {
        options.insert("write-only".into(), "true".into());
    }
    let spec = TableSpec {
        columns: order_columns(),
        primary_keys: vec!["id".into()],
        options,
        ..Default::default()
    };
    catalog.create_table(&id, spec, false).await?;
    let table = catalog.load_table(&id).await?;
    let o = table.options();
    let manifests = ManifestStore::new(
        table.store().clone(),
        table.paths().clone(),
        &o.manifest_compression,
    )?;
    let commits = args.total.div_ceil(args.batch);
    println!(
        "upsert_stream: {} upserts over {} keys, {} rows a commit ({} commits), {} buckets, local disk",
        args.total, args.keys, args.batch, commits, args.buckets
    );
    if args.write_only {
        println!(
            "mode: write-only, dedicated Table::compact (universal picks) every {} commits",
            args.compact_every
        );
    } else {
        println!("mode: inline compaction by the writer (default)");
    }
    println!(
        "options: num-sorted-run.compaction-trigger={} stop-trigger={} num-levels={} \
         size-amplification={}% size-ratio={}% target-file-size={} MB write-buffer-size={} MB {}",
        o.num_sorted_run_compaction_trigger,
        o.num_sorted_run_stop_trigger,
        o.num_levels,
        o.compaction_max_size_amplification_percent,
        o.compaction_size_ratio,
        o.target_file_size >> 20,
        o.write_buffer_size >> 20,
        o.file_compression,
    );
    println!(
        "{:>6} {:>10} {:>10} {:>8} {:>9} {:>6} {:>9} {:>6} {:>7}",
        "commit", "rows", "rows/s", "runs_max", "runs_mean", "files", "live_MB", "wamp", "compact"
    );

    let schema = table.arrow_schema();
    let mut rng = Rng(0x5eed);
    let mut expected = Expected(vec![None; args.keys]);
    let mut written = WrittenFiles::default();
    let mut input_bytes = 0u64;
    let mut engine = Duration::ZERO;
    let mut compaction_time = Duration::ZERO;
    let mut interval = Duration::ZERO;
    let mut interval_rows = 0usize;
    let mut interval_compactions = 0usize;
    let mut done = 0usize;
    let compactor = args.background.then(|| BackgroundCompactor::start(&table));
    let loop_start = Instant::now();
    for commit in 1..=commits {
        let n = args.batch.min(args.total - done);
        let keys: Vec<i64> = (0..n)
            .map(|_| (rng.next() % args.keys as u64) as i64)
            .collect();
        let batch = make_batch(schema.clone(), &keys, &mut rng);
        expected.record(&batch)?;
        input_bytes += arrow_bytes(&batch)?;
        // Timed: the writer's work, its commit and any inline compaction.
        let t = Instant::now();
        let mut writer = table.writer();
        if let Some(compactor) = &compactor {
            writer.compact_in_background(compactor.handle());
        }
        writer.write(batch, RowKind::Insert).await?;
        writer.commit().await?;
        let mut spent = t.elapsed();
        if args.write_only && commit % args.compact_every == 0 {
            let t = Instant::now();
            table.compact(CompactOptions::default()).await?;
            let c = t.elapsed();
            compaction_time += c;
            spent += c;
        }
        engine += spent;
        interval += spent;
        interval_rows += n;
        done += n;
        let before = written.compact_snapshots;
        written.catch_up(&table, &manifests).await?;
        interval_compactions += written.compact_snapshots - before;
        if commit % args.report_every == 0 || commit == commits {
            let shape = lsm_shape(&table, &manifests).await?;
            println!(
                "{:>6} {:>10} {:>10.0} {:>8} {:>9.2} {:>6} {:>9.1} {:>6.2} {:>7}",
                commit,
                done,
                interval_rows as f64 / interval.as_secs_f64(),
                shape.max_runs,
                shape.mean_runs,
                shape.files,
                mb(shape.bytes),
                written.amplification(),
                interval_compactions
            );
            interval = Duration::ZERO;
            interval_rows = 0;
            interval_compactions = 0;
        }
    }

    if let Some(compactor) = compactor {
        // The compaction still queued belongs to the write; and since the
        // task also works between commits (while the benchmark generates
        // and inspects), the whole loop's wall time is the honest measure.
        let summary = compactor.finish().await;
        engine = loop_start.elapsed();
        println!(
            "background compaction: {} rounds, {} COMPACT snapshots, {} failed rounds",
            summary.rounds, summary.snapshots, summary.failures
        );
        written.catch_up(&table, &manifests).await?;
    }
    let secs = engine.as_secs_f64();
    println!(
        "write: {} rows in {:.2} s engine time, {:.0} rows/s ({})",
        done,
        secs,
        done as f64 / secs,
        if args.write_only {
            format!(
                "of which {:.2} s in dedicated compactions",
                compaction_time.as_secs_f64()
            )
        } else if args.background {
            "wall time of the whole loop, background compaction included".to_string()
        } else {
            "inline compaction included".to_string()
        }
    );
    println!(
        "files written: {} level-0 files by writers ({:.1} MB, {} snapshots), {} by compactions ({:.1} MB, {} snapshots)",
        written.append_files,
        mb(written.append_bytes),
        written.append_snapshots,
        written.compact_files,
        mb(written.compact_bytes),
        written.compact_snapshots
    );
    println!(
        "write amplification: {:.2} bytes written per level-0 byte; {:.2} per raw Arrow input byte ({:.1} MB input)",
        written.amplification(),
        written.total_bytes() as f64 / input_bytes.max(1) as f64,
        mb(input_bytes)
    );

    let shape = lsm_shape(&table, &manifests).await?;
    let (rows, elapsed) = full_scan(&table, &expected).await?;
    println!(
        "scan before full compaction: {} rows, {} files, runs/bucket max {} mean {:.2}: {:.2} s, {:.0} rows/s",
        rows,
        shape.files,
        shape.max_runs,
        shape.mean_runs,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    let t = Instant::now();
    let outcome = table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await?;
    println!(
        "full compaction: {} files ({:.1} MB) into {} files ({:.1} MB): {:.2} s",
        outcome.files_in,
        mb(outcome.bytes_in),
        outcome.files_out,
        mb(outcome.bytes_out),
        t.elapsed().as_secs_f64()
    );
    let shape = lsm_shape(&table, &manifests).await?;
    let (rows, elapsed) = full_scan(&table, &expected).await?;
    println!(
        "scan after full compaction: {} rows, {} files, runs/bucket max {}: {:.2} s, {:.0} rows/s",
        rows,
        shape.files,
        shape.max_runs,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    println!("peak RSS: {:.0} MB", peak_rss_mb());
    Ok(())
}
