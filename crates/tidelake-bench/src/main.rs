//! `tidelake-bench`: Tidelake's side of the benchmark suite (bench/run).
//! Runs one workload in this process and prints one JSON line per
//! measurement, with the same fields as bench/peers.py; the peak RSS is this
//! process's (VmHWM).
//!
//!     tidelake-bench --data bench/data/<scale> --workload scan
//!     tidelake-bench --data /tmp/sj --workload stream-job --rate 10000 --seconds 30
//!     tidelake-bench --data /tmp/d --workload doctor

mod aggregate;
mod doctor;
mod error;
mod input;
mod measure;
mod orders;
mod sql;
mod stream_job;
mod tpch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::input::DataDir;
use crate::measure::{emit, failure};
use crate::orders::Orders;
use crate::tpch::Tpch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    Ingest,
    Upsert,
    Scan,
    Lookup,
    Compact,
    ScanCompacted,
    Tpch,
    StreamJob,
    Doctor,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Ingest => "ingest",
            Workload::Upsert => "upsert",
            Workload::Scan => "scan",
            Workload::Lookup => "lookup",
            Workload::Compact => "compact",
            Workload::ScanCompacted => "scan_compacted",
            Workload::Tpch => "tpch",
            Workload::StreamJob => "stream_job",
            Workload::Doctor => "doctor",
        }
    }

    /// The measurements it prints, to name them when it fails.
    fn measurements(self) -> Vec<&'static str> {
        match self {
            Workload::Scan => vec!["scan_full", "scan_projection", "scan_filter"],
            Workload::ScanCompacted => vec![
                "scan_full_compacted",
                "scan_projection_compacted",
                "scan_filter_compacted",
            ],
            other => vec![other.name()],
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Runs one benchmark workload on Tidelake and prints JSON lines")]
struct Args {
    /// The scale's data directory (bench/data/<scale>), made by bench/gen_data.py.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_enum)]
    workload: Workload,
    /// Where Tidelake's tables live (default: <data>/work/tidelake).
    #[arg(long)]
    work: Option<PathBuf>,
    /// TPC-H Parquet files (bench/data/tpch/sf<N>).
    #[arg(long)]
    tpch_dir: Option<PathBuf>,
    /// The q01.sql .. q22.sql files (bench/tpch).
    #[arg(long)]
    queries: Option<PathBuf>,
    /// stream-job: changes per second the writer commits to the source.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// stream-job: source commits per second.
    #[arg(long, default_value_t = 10)]
    source_commits_per_s: u64,
    /// stream-job: how long the writer writes.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// stream-job: the job's poll interval.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// stream-job: the job's commit interval.
    #[arg(long, default_value_t = 0)]
    commit_interval_ms: u64,
}

async fn run(args: &Args) -> Result<Vec<Value>> {
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| args.data.join("work").join("tidelake"));
    let orders = Orders {
        data: DataDir::new(args.data.clone()),
        warehouse: work.join("warehouse"),
    };
    Ok(match args.workload {
        Workload::Ingest => vec![orders.ingest().await?],
        Workload::Upsert => vec![orders.upsert().await?],
        Workload::Scan => orders.scans("").await?,
        Workload::Lookup => vec![orders.lookups().await?],
        Workload::Compact => vec![orders.compact().await?],
        Workload::ScanCompacted => orders.scans("_compacted").await?,
        Workload::Tpch => {
            let missing =
                |flag: &str| BenchError::input(format!("the tpch workload needs --{flag}"));
            let tpch = Tpch {
                tpch_dir: args.tpch_dir.clone().ok_or_else(|| missing("tpch-dir"))?,
                queries_dir: args.queries.clone().ok_or_else(|| missing("queries"))?,
                warehouse: work.join("tpch"),
            };
            vec![tpch.run().await?]
        }
        Workload::Doctor => vec![
            doctor::Doctor {
                warehouse: work.join("doctor"),
            }
            .run()
            .await?,
        ],
        Workload::StreamJob => vec![
            stream_job::StreamJob {
                warehouse: work.join("stream_job"),
                rate: args.rate,
                commits_per_second: args.source_commits_per_s,
                seconds: args.seconds,
                poll_interval: std::time::Duration::from_millis(args.poll_ms.max(1)),
                commit_interval: std::time::Duration::from_millis(args.commit_interval_ms),
            }
            .run()
            .await?,
        ],
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            emit(&failure(
                args.workload.name(),
                &format!("cannot start the async runtime: {e}"),
            ));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(records) => {
            records.iter().for_each(emit);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tidelake-bench: {e}");
            for name in args.workload.measurements() {
                emit(&failure(name, &e.to_string()));
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_and_name_their_measurements() {
        let args = Args::try_parse_from([
            "tidelake-bench",
            "--data",
            "d",
            "--workload",
            "scan-compacted",
        ])
        .unwrap();
        assert_eq!(args.workload, Workload::ScanCompacted);
        assert_eq!(args.workload.measurements().len(), 3);
        assert_eq!(Workload::Ingest.measurements(), ["ingest"]);
        assert!(
            Args::try_parse_from(["tidelake-bench", "--data", "d", "--workload", "nope"]).is_err()
        );
    }

    #[test]
    fn compaction_without_a_table_fails_naming_the_input() {
        let args = Args::try_parse_from([
            "tidelake-bench",
            "--data",
            "/nonexistent",
            "--workload",
            "compact",
        ])
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime.block_on(run(&args)).unwrap_err().to_string();
        assert!(err.contains("/nonexistent"), "{err}");
    }

    #[test]
    fn missing_input_is_an_error_naming_the_path() {
        let args = Args::try_parse_from([
            "tidelake-bench",
            "--data",
            "/nonexistent",
            "--workload",
            "ingest",
        ])
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime.block_on(run(&args)).unwrap_err().to_string();
        assert!(err.contains("/nonexistent"), "{err}");
    }
}
