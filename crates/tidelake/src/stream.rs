//! `tidelake stream`: prints a table's changes as they are committed, one
//! snapshot at a time (output is flushed after each), with an `_op` column
//! (`+I`, `-U`, `+U`, `-D`). SIGINT and SIGTERM stop it cleanly: the
//! snapshot being printed is not recorded, every one printed before is (with
//! `--consumer-id`), so a restart prints nothing twice and misses nothing.
//!
//! With `--job NAME`, the statement is `INSERT INTO sink SELECT ...` and
//! runs continuously as a job of `tidelake-stream` (exactly-once into the
//! sink); one line is printed per commit. Several `--job`/`-e` pairs run
//! several jobs in one process under its supervisor: a job that fails is
//! reported on stderr and the others go on; the exit status says whether
//! any failed. A signal stops every job after its current commit.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use tidelake_sql::StatementResult;
use tidelake_stream::{
    shutdown_signal, ChangeStream, JobCommit, JobOptions, RestartPolicy, StreamError, StreamingJob,
    Supervisor,
};

use crate::output::{print_result, Format};
use crate::print_error;

pub const STREAM_HELP: &str = "\
The query is SELECT columns FROM one table [WHERE ...]; aggregations, joins,
ORDER BY and LIMIT are refused. Every row printed starts with _op: +I (insert),
-U (update before), +U (update after) or -D (delete).

Start positions (Paimon's scan.mode):
  latest-full (default)  the current rows as +I, then every later change
  latest                 only changes committed from now on
  from-snapshot          changes from --snapshot N on (N included)
  from-snapshot-full     the rows of snapshot N as +I, then later changes
  from-timestamp         changes from the first snapshot committed at or after
                         --option scan.timestamp-millis=MILLIS
  incremental            the changes in (start, end]: --option
                         incremental-between=START,END (snapshot ids or tags);
                         stops at the end

Tables with 'changelog-producer' (input, lookup, full-compaction) stream their
changelog files; others the files each commit added (compactions carry no
changes). Read options may also be given in the statement, as Flink does:
  SELECT * FROM db.t /*+ OPTIONS('scan.mode'='latest', 'consumer-id'='job') */
Precedence: table options < --option < the flags above < the hint.

--consumer-id records progress in the table (consumer/consumer-ID) after each
snapshot printed: expiration keeps what the consumer has not read, and a
restart resumes where it stopped (whatever --mode says).

Examples:
  tidelake stream -e \"SELECT * FROM shop.orders\"
  tidelake stream -e \"SELECT id, amount FROM shop.orders WHERE amount > 100\" \\
      --mode latest --consumer-id dashboard --format json

Continuous jobs (--job NAME -e \"INSERT INTO db.sink SELECT ... FROM db.source ...\"):
each source snapshot is processed as it is committed and written to the sink
in one commit with the job's progress (sink snapshot property
tidelake.progress.job.NAME.DB.TABLE = next source snapshot), so a crash neither loses
nor repeats a change; the same command resumes where it stopped (a job that
never committed starts per the source's scan.mode, default latest-full). A
second instance of a running job stops at its first commit. Shapes:
  per row       SELECT exprs FROM src [WHERE ...]   (+I/-U/+U/-D pass through)
  lookup join   ... FROM src s [LEFT] JOIN dim FOR SYSTEM_TIME AS OF PROCTIME() d
                ON ...  (dim read at its latest snapshot for each batch)
  aggregate     SELECT keys, sum(x), count(*), count(x), min(x), max(x) ...
                GROUP BY keys, into a sink whose primary key is the keys, with
                'merge-engine' = 'aggregation' and 'fields.<col>.aggregate-function'
                sum for sum/count (retractions are subtracted), min, max (min
                and max need an insert-only source)
  stream join   ... FROM a [LEFT | RIGHT] JOIN b ON a.x = b.y (equalities), both
                primary-key tables, into a sink whose primary key identifies
                output rows; the sink follows changes on either side
  window        SELECT window_start, window_end, keys, aggregates FROM
                TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                GROUP BY window_start, window_end, keys   (or HOP(TABLE src,
                DESCRIPTOR(ts), slide, size)); src declares WATERMARK FOR ts,
                and each window is written once, when the watermark passes
                its end (later rows for it are dropped)
A group whose rows are all retracted stays in the sink with zero counts.
Not supported: FULL OUTER joins of streams, aggregates over a stream join,
SESSION and CUMULATE windows.
Several --job/-e pairs run in one process: a job that fails is reported on
stderr (error[CODE]: job 'NAME': ...) and the others keep running; a job that
fails with a transient error (a commit conflict, store I/O, a commit whose
outcome is unknown) is restarted from its committed progress, up to
--max-restarts times in a row. The exit status is non-zero if any job failed.
  tidelake stream --job daily -e \"INSERT INTO shop.daily SELECT dt, count(*), sum(amount)
      FROM shop.payments GROUP BY dt\" --commit-interval 1s
  tidelake stream --job a -e \"INSERT ...\" --job b -e \"INSERT ...\"   (two jobs)";

#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// The query: SELECT columns FROM db.table [WHERE ...]; with --job, the
    /// job's INSERT INTO db.sink SELECT ... (one -e per --job, in order)
    #[arg(short = 'e', long = "execute", value_name = "SQL", required = true)]
    execute: Vec<String>,
    /// Run the statement continuously as the job NAME (exactly-once into
    /// its sink; resumes from the progress recorded there); repeatable
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    /// With --job: the least time between reading a change and committing
    /// it (changes read meanwhile share one sink snapshot; 0 commits as
    /// soon as the job has caught up)
    #[arg(long, value_name = "DURATION", default_value = "0ms", value_parser = parse_commit_interval)]
    commit_interval: Duration,
    /// With --job: restart a job that failed with a transient error (a
    /// commit conflict, store I/O, an unknown commit outcome) up to N times
    /// in a row, after 1s, 2s,
    /// 4s... (at most 30s); 0 reports the failure at once
    #[arg(long, value_name = "N", default_value_t = RestartPolicy::default().max_restarts)]
    max_restarts: u32,
    /// How to print changes
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Where to start (Paimon's scan.mode)
    #[arg(long, value_name = "MODE", value_parser = [
        "latest-full", "latest", "from-snapshot", "from-snapshot-full",
        "from-timestamp", "incremental",
    ])]
    mode: Option<String>,
    /// The snapshot to start from (scan.snapshot-id; implies from-snapshot)
    #[arg(long, value_name = "N")]
    snapshot: Option<i64>,
    /// Record progress as this consumer and resume from it (consumer-id)
    #[arg(long, value_name = "ID")]
    consumer_id: Option<String>,
    /// Any Paimon read option, KEY=VALUE; repeatable
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// How often to look for a new snapshot (e.g. 200ms, 1s)
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_interval)]
    poll_interval: Duration,
    /// Stop after this many snapshots with changes (the initial full read
    /// counts as one); a job stops after committing them
    #[arg(long, value_name = "N")]
    max_snapshots: Option<u64>,
    /// Stop as soon as no new snapshot is committed (for scripts and
    /// tests); a job first commits everything it has read
    #[arg(long)]
    until_idle: bool,
}

fn parse_commit_interval(text: &str) -> Result<Duration, String> {
    if text.trim().trim_end_matches("ms").trim_end_matches('s') == "0" {
        return Ok(Duration::ZERO);
    }
    parse_interval(text)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (e.g. 200ms, 1s)"))?;
    let millis = match unit.trim() {
        "" | "ms" => amount,
        "s" => amount.saturating_mul(1000),
        "m" | "min" => amount.saturating_mul(60_000),
        other => return Err(format!("unknown unit '{other}' (ms, s, min)")),
    };
    Ok(Duration::from_millis(millis.max(1)))
}

impl StreamArgs {
    fn read_options(&self) -> Result<BTreeMap<String, String>, String> {
        let mut options = BTreeMap::new();
        for kv in &self.options {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("--option '{kv}' is not KEY=VALUE"))?;
            options.insert(k.trim().to_string(), v.trim().to_string());
        }
        if let Some(mode) = &self.mode {
            options.insert("scan.mode".into(), mode.clone());
        }
        if let Some(id) = self.snapshot {
            options.insert("scan.snapshot-id".into(), id.to_string());
            if self.mode.is_none() {
                options.insert("scan.mode".into(), "from-snapshot".into());
            }
        }
        if let Some(id) = &self.consumer_id {
            options.insert("consumer-id".into(), id.clone());
        }
        Ok(options)
    }
}

/// Writes changes in the chosen format; CSV prints its header once.
struct Printer {
    format: Format,
    schema: SchemaRef,
}

impl Printer {
    fn start(&self, out: &mut dyn Write) -> Result<(), arrow::error::ArrowError> {
        if self.format == Format::Csv {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            writer.write(&RecordBatch::new_empty(self.schema.clone()))?;
        }
        Ok(())
    }

    fn snapshot(
        &self,
        id: i64,
        batches: Vec<RecordBatch>,
        out: &mut dyn Write,
    ) -> Result<(), arrow::error::ArrowError> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        match self.format {
            Format::Table => {
                writeln!(out, "-- snapshot {id}")?;
                let result = StatementResult::Rows {
                    schema: self.schema.clone(),
                    batches,
                };
                print_result(&result, Format::Table, out, &mut std::io::sink())?;
            }
            Format::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut *out);
                for b in &batches {
                    writer.write(b)?;
                }
            }
            Format::Json => {
                let result = StatementResult::Rows {
                    schema: self.schema.clone(),
                    batches,
                };
                print_result(&result, Format::Json, out, &mut std::io::sink())?;
            }
        }
        Ok(())
    }
}

/// Why the loop ended.
enum Stop {
    Done,
    Signal,
}

async fn follow(stream: &mut ChangeStream, args: &StreamArgs) -> Result<Stop, StreamError> {
    let printer = Printer {
        format: args.format,
        schema: stream.schema(),
    };
    let io_error = |e: &dyn std::fmt::Display| {
        StreamError::from(tidelake_sql::SqlError::Io(format!(
            "cannot print changes: {e}"
        )))
    };
    {
        let mut out = std::io::stdout().lock();
        printer.start(&mut out).map_err(|e| io_error(&e))?;
        out.flush().map_err(|e| io_error(&e))?;
    }
    let mut printed: u64 = 0;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        if args.max_snapshots.is_some_and(|max| printed >= max) {
            return Ok(Stop::Done);
        }
        // A snapshot is read whole before it is printed, so that a signal
        // never leaves half a snapshot printed and recorded.
        let step = async {
            let Some(set) = stream.next_changes().await? else {
                return Ok::<_, StreamError>(None);
            };
            let (id, skipped) = (set.snapshot_id, set.skipped);
            Ok(Some((id, skipped, set.collect().await?)))
        };
        let next = tokio::select! {
            r = step => r?,
            _ = &mut signal => return Ok(Stop::Signal),
        };
        match next {
            Some((id, skipped, batches)) => {
                {
                    let mut out = std::io::stdout().lock();
                    printer
                        .snapshot(id, batches, &mut out)
                        .map_err(|e| io_error(&e))?;
                    out.flush().map_err(|e| io_error(&e))?;
                }
                stream.record_consumer().await?;
                if !skipped {
                    printed += 1;
                }
            }
            None => {
                if stream.is_finished() || args.until_idle {
                    return Ok(Stop::Done);
                }
                tokio::select! {
                    _ = tokio::time::sleep(args.poll_interval) => {}
                    _ = &mut signal => return Ok(Stop::Signal),
                }
            }
        }
    }
}

pub async fn run_stream(warehouse: &str, args: StreamArgs) -> ExitCode {
    let options = match args.read_options() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    if !args.jobs.is_empty() {
        return run_jobs(warehouse, &args, options).await;
    }
    let [query] = args.execute.as_slice() else {
        eprintln!(
            "error: give one query with -e (several -e need as many --job names: one job each)"
        );
        return ExitCode::FAILURE;
    };
    let session = match crate::open_session(warehouse).await {
        Ok(s) => s,
        Err(e) => {
            print_error(e.code(), &e);
            return ExitCode::FAILURE;
        }
    };
    let mut stream = match ChangeStream::open(&session, query, &options).await {
        Ok(s) => s,
        Err(e) => {
            print_error(e.code(), &e);
            return ExitCode::FAILURE;
        }
    };
    match follow(&mut stream, &args).await {
        Ok(Stop::Done) => ExitCode::SUCCESS,
        Ok(Stop::Signal) => {
            tracing::info!(position = stream.position(), "stopped by a signal");
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error(e.code(), &e);
            ExitCode::FAILURE
        }
    }
}

/// One line per commit of a job.
fn print_commit(format: Format, commit: &JobCommit) {
    let line = match format {
        Format::Json => format!(
            "{{\"job\":\"{}\",\"sink_snapshot\":{},\"from_snapshot\":{},\"next_snapshot\":{},\"snapshots\":{},\"rows_in\":{},\"rows_out\":{}}}",
            commit.job,
            commit.sink_snapshot,
            commit.from_snapshot,
            commit.next_snapshot,
            commit.snapshots,
            commit.rows_in,
            commit.rows_out
        ),
        _ => format!(
            "job {}: committed sink snapshot {} (source snapshots {}..{}, {} with changes, {} rows in, {} rows out)",
            commit.job,
            commit.sink_snapshot,
            commit.from_snapshot,
            commit.next_snapshot,
            commit.snapshots,
            commit.rows_in,
            commit.rows_out
        ),
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        tracing::warn!("could not print a commit of job {}", commit.job);
    }
}

/// Runs every `--job NAME -e SQL` pair under a supervisor until a signal
/// (or their bounds); a job that fails is reported at once and the others
/// go on.
async fn run_jobs(
    warehouse: &str,
    args: &StreamArgs,
    read_options: BTreeMap<String, String>,
) -> ExitCode {
    if args.jobs.len() != args.execute.len() {
        eprintln!(
            "error: {} --job names for {} -e statements: give each job its statement",
            args.jobs.len(),
            args.execute.len()
        );
        return ExitCode::FAILURE;
    }
    let mut names = std::collections::BTreeSet::new();
    if let Some(twice) = args.jobs.iter().find(|n| !names.insert(n.as_str())) {
        eprintln!("error: job '{twice}' is named twice");
        return ExitCode::FAILURE;
    }
    let session = match crate::open_session(warehouse).await {
        Ok(s) => s,
        Err(e) => {
            print_error(e.code(), &e);
            return ExitCode::FAILURE;
        }
    };
    let options = JobOptions {
        poll_interval: args.poll_interval,
        commit_interval: args.commit_interval,
        max_snapshots: args.max_snapshots,
        until_idle: args.until_idle,
        read_options,
    };
    // Every statement is checked before any job starts.
    let mut jobs = Vec::new();
    for (name, sql) in args.jobs.iter().zip(&args.execute) {
        match StreamingJob::prepare(&session, name, sql, options.clone()).await {
            Ok(job) => jobs.push(job),
            Err(e) => {
                report_job(name, &e);
                return ExitCode::FAILURE;
            }
        }
    }
    let mut supervisor = Supervisor::new(RestartPolicy {
        max_restarts: args.max_restarts,
        ..RestartPolicy::default()
    });
    for job in jobs {
        let name = job.name().to_string();
        let format = args.format;
        if let Err(e) = supervisor.spawn(job, move |commit| print_commit(format, commit)) {
            report_job(&name, &e);
            return ExitCode::FAILURE;
        }
    }
    let outcomes = supervisor
        .run(shutdown_signal(), |outcome| match &outcome.result {
            Ok(summary) => tracing::info!(job = %outcome.name, ?summary, "job stopped"),
            Err(e) => report_job(&outcome.name, e),
        })
        .await;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.name.as_str())
        .collect();
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    if outcomes.len() > 1 {
        eprintln!(
            "error: {} of {} jobs failed: {}",
            failed.len(),
            outcomes.len(),
            failed.join(", ")
        );
    }
    ExitCode::FAILURE
}

/// `error[CODE]: job 'NAME': message`, on one line.
fn report_job(name: &str, error: &StreamError) {
    print_error(error.code(), &format_args!("job '{name}': {error}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_intervals_parse() {
        assert_eq!(parse_interval("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_interval("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_interval("50").unwrap(), Duration::from_millis(50));
        assert!(parse_interval("soon").is_err());
        assert!(parse_interval("1h").is_err());
        assert_eq!(parse_commit_interval("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_commit_interval("0ms").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_commit_interval("500ms").unwrap(),
            Duration::from_millis(500)
        );
    }
}
