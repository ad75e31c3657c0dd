//! The server's metrics, served by `GET /metrics` in Prometheus' text
//! format (`metrics` with `metrics-exporter-prometheus`'s recorder, installed
//! once per process), followed by the engine's counters (read through
//! `tidelake_sql::engine_counters`) and the text of each
//! [`MetricsSource`] the composition root added (a worker's gauges). The
//! names, all documented in docs/server.md:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `tidelake_connections_opened_total` | counter | `protocol` (`pg`, `http`, `flight`) |
//! | `tidelake_connections_active` | gauge | `protocol` |
//! | `tidelake_connections_refused_total` | counter | `protocol`, `reason` (`limit`, `auth`) |
//! | `tidelake_queries_total` | counter | `protocol`, `outcome` (`ok`, `error`, `canceled`, `timeout`, `denied`) |
//! | `tidelake_query_duration_seconds` | histogram | `protocol` |
//! | `tidelake_rows_returned_total` | counter | `protocol` |
//! | `tidelake_prepared_point_queries_total` | counter | — |
//! | `tidelake_queries_queued` | gauge | — |
//! | `tidelake_queries_running` | gauge | — |
//! | `tidelake_commits_total` | counter | — |
//! | `tidelake_commit_conflicts_total` | counter | — |
//! | `tidelake_engine_commits_total` | counter | — |
//! | `tidelake_engine_commit_conflicts_total` | counter | — |
//! | `tidelake_engine_commit_retries_total` | counter | — |
//! | `tidelake_engine_rows_scanned_total` | counter | — |
//! | `tidelake_engine_bytes_scanned_total` | counter | — |
//! | `tidelake_engine_data_files_read_total` | counter | — |
//! | `tidelake_engine_cache_hits_total` | counter | `cache` (`manifest`, `footer`, `key_index`, `lookup_rows`) |
//! | `tidelake_engine_cache_misses_total` | counter | `cache` (`manifest`, `footer`, `key_index`, `lookup_rows`) |
//! | `tidelake_engine_primary_key_lookups_total` | counter | — |
//! | `tidelake_engine_row_groups_pruned_total` | counter | — |
//! | `tidelake_engine_lookup_files_skipped_total` | counter | — |
//! | `tidelake_engine_snapshot_reuses_total` | counter | — |

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{Shared, StatementError};

/// Metrics from outside the server, added to `/metrics` (see
/// [`crate::Server::with_metrics`]).
pub trait MetricsSource: Send + Sync + 'static {
    /// The metrics in Prometheus' text format: `# HELP` and `# TYPE` lines
    /// and samples, each line ending in a newline.
    fn render(&self) -> String;
}

impl<F> MetricsSource for F
where
    F: Fn() -> String + Send + Sync + 'static,
{
    fn render(&self) -> String {
        self()
    }
}

pub const CONNECTIONS_OPENED: &str = "tidelake_connections_opened_total";
pub const CONNECTIONS_ACTIVE: &str = "tidelake_connections_active";
pub const CONNECTIONS_REFUSED: &str = "tidelake_connections_refused_total";
pub const QUERIES: &str = "tidelake_queries_total";
pub const QUERY_DURATION: &str = "tidelake_query_duration_seconds";
pub const ROWS_RETURNED: &str = "tidelake_rows_returned_total";
pub const QUERIES_QUEUED: &str = "tidelake_queries_queued";
pub const PREPARED_POINT_QUERIES: &str = "tidelake_prepared_point_queries_total";
pub const QUERIES_RUNNING: &str = "tidelake_queries_running";
pub const COMMITS: &str = "tidelake_commits_total";
pub const COMMIT_CONFLICTS: &str = "tidelake_commit_conflicts_total";

/// Latency buckets, in seconds: 1 ms to 5 min.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later servers share it).
pub(crate) fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(QUERY_DURATION.into()), BUCKETS)
            .map(|b| b.build_recorder());
        match builder {
            Ok(recorder) => {
                let handle = recorder.handle();
                match metrics::set_global_recorder(recorder) {
                    Ok(()) => {
                        describe();
                        Some(handle)
                    }
                    Err(e) => {
                        tracing::warn!("metrics are off: another recorder is installed: {e}");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!("metrics are off: {e}");
                None
            }
        }
    });
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(CONNECTIONS_OPENED, "Connections accepted and served");
    describe_gauge!(CONNECTIONS_ACTIVE, "Connections open now");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused (over the limit, failed authentication)"
    );
    describe_counter!(QUERIES, "Statements run, by outcome");
    describe_histogram!(
        QUERY_DURATION,
        Unit::Seconds,
        "Statement latency, rows read included"
    );
    describe_counter!(ROWS_RETURNED, "Rows sent to clients");
    describe_gauge!(QUERIES_QUEUED, "Statements waiting for an admission slot");
    describe_counter!(
        PREPARED_POINT_QUERIES,
        "Executions of prepared point queries answered without planning"
    );
    describe_gauge!(QUERIES_RUNNING, "Statements holding an admission slot");
    describe_counter!(COMMITS, "Write statements that committed");
    describe_counter!(
        COMMIT_CONFLICTS,
        "Write statements that failed on a commit conflict"
    );
}

/// The metrics in Prometheus' text format: the server's, the engine's,
/// and those of the added sources.
pub(crate) fn render(shared: &Shared) -> String {
    let mut out = match HANDLE.get().and_then(Option::as_ref) {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => "# metrics are off: another metrics recorder is installed in this process\n".into(),
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&engine_metrics());
    let sources = shared
        .metrics_sources
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for source in sources {
        let text = source.render();
        out.push_str(&text);
        if !text.is_empty() && !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The engine's process-wide counters as Prometheus counters.
fn engine_metrics() -> String {
    let c = tidelake_sql::engine_counters();
    let mut out = String::new();
    for (name, help, value) in [
        (
            "tidelake_engine_commits_total",
            "Snapshots this process committed (statements, jobs, compaction, maintenance)",
            c.commits,
        ),
        (
            "tidelake_engine_commit_conflicts_total",
            "Commit attempts refused by a conflict check (retried or not)",
            c.commit_conflicts,
        ),
        (
            "tidelake_engine_commit_retries_total",
            "Commit attempts that lost the race for the snapshot id and were retried",
            c.commit_retries,
        ),
        (
            "tidelake_engine_rows_scanned_total",
            "Rows read from data files, before merging and filtering",
            c.rows_scanned,
        ),
        (
            "tidelake_engine_bytes_scanned_total",
            "Bytes read from data files",
            c.bytes_scanned,
        ),
        (
            "tidelake_engine_data_files_read_total",
            "Data files opened for reading",
            c.data_files_opened,
        ),
        (
            "tidelake_engine_group_commits_total",
            "Snapshots made by group commit (write statements of sessions committed together)",
            c.group_commits,
        ),
        (
            "tidelake_engine_group_commit_statements_total",
            "Write statements those group-commit snapshots hold",
            c.group_commit_statements,
        ),
        (
            "tidelake_engine_primary_key_lookups_total",
            "Keys looked up through the primary-key fast path",
            c.primary_key_lookups,
        ),
        (
            "tidelake_engine_row_groups_pruned_total",
            "Row groups key lookups skipped by statistics or bloom filters",
            c.row_groups_pruned,
        ),
        (
            "tidelake_engine_lookup_files_skipped_total",
            "Data files key lookups skipped because the file's key index lacks the key",
            c.lookup_files_skipped,
        ),
        (
            "tidelake_engine_snapshot_reuses_total",
            "Key lookups that reused the latest snapshot seen, after checking it is still the latest",
            c.snapshot_reuses,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    // The metadata caches, by cache: hit ratio = hits / (hits + misses).
    for (name, help, manifest, footer, key_index, lookup_rows) in [
        (
            "tidelake_engine_cache_hits_total",
            "Reads answered by the in-memory caches",
            c.manifest_cache_hits,
            c.footer_cache_hits,
            c.key_index_hits,
            c.lookup_rows_hits,
        ),
        (
            "tidelake_engine_cache_misses_total",
            "Reads that went to the store (and were cached)",
            c.manifest_cache_misses,
            c.footer_cache_misses,
            c.key_index_misses,
            c.lookup_rows_misses,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n\
             {name}{{cache=\"manifest\"}} {manifest}\n{name}{{cache=\"footer\"}} {footer}\n\
             {name}{{cache=\"key_index\"}} {key_index}\n{name}{{cache=\"lookup_rows\"}} {lookup_rows}"
        );
    }
    out
}

/// An open connection: counted while it lives.
pub(crate) struct ConnectionGauge(&'static str);

impl ConnectionGauge {
    pub(crate) fn open(protocol: &'static str) -> ConnectionGauge {
        metrics::counter!(CONNECTIONS_OPENED, "protocol" => protocol).increment(1);
        metrics::gauge!(CONNECTIONS_ACTIVE, "protocol" => protocol).increment(1.0);
        ConnectionGauge(protocol)
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_ACTIVE, "protocol" => self.0).decrement(1.0);
    }
}

pub(crate) fn refused(protocol: &'static str, reason: &'static str) {
    metrics::counter!(CONNECTIONS_REFUSED, "protocol" => protocol, "reason" => reason).increment(1);
}

/// How a failed statement ended, as `tidelake_queries_total` labels it.
fn outcome_of(e: &StatementError) -> &'static str {
    match e {
        StatementError::Canceled(m) if m.contains("timeout") => "timeout",
        StatementError::Canceled(_) => "canceled",
        e if e.code() == "42501" => "denied",
        _ => "error",
    }
}

/// One statement from start to its last row: recorded when dropped.
pub(crate) struct StatementRecord {
    protocol: &'static str,
    start: Instant,
    rows: u64,
    /// The failure's SQLSTATE and outcome label.
    error: Option<(&'static str, &'static str)>,
    write: bool,
    done: bool,
}

impl StatementRecord {
    pub(crate) fn start(protocol: &'static str, write: bool) -> StatementRecord {
        StatementRecord {
            protocol,
            start: Instant::now(),
            rows: 0,
            error: None,
            write,
            done: false,
        }
    }

    pub(crate) fn rows(&mut self, n: usize) {
        self.rows += n as u64;
    }

    pub(crate) fn fail(&mut self, e: &StatementError) {
        self.error.get_or_insert((e.code(), outcome_of(e)));
    }

    /// The statement ran to its end (a status, or its last row).
    pub(crate) fn finish(&mut self) {
        self.done = true;
    }
}

impl Drop for StatementRecord {
    fn drop(&mut self) {
        let protocol = self.protocol;
        // Rows no one read to the end: the client went on without them.
        let outcome = match (self.error, self.done) {
            (Some((_, outcome)), _) => outcome,
            (None, true) => "ok",
            (None, false) => "canceled",
        };
        metrics::counter!(QUERIES, "protocol" => protocol, "outcome" => outcome).increment(1);
        metrics::histogram!(QUERY_DURATION, "protocol" => protocol)
            .record(self.start.elapsed().as_secs_f64());
        if self.rows > 0 {
            metrics::counter!(ROWS_RETURNED, "protocol" => protocol).increment(self.rows);
        }
        if self.write {
            match self.error {
                None if self.done => metrics::counter!(COMMITS).increment(1),
                Some(("40001", _)) => metrics::counter!(COMMIT_CONFLICTS).increment(1),
                _ => {}
            }
        }
    }
}
