//! The `tidelake` binary end to end, one test binary (each file under
//! `tests/` would link a binary of its own): the CLI, crash recovery,
//! interoperability with pypaimon, streams, continuous jobs and the server
//! (`tidelake serve` with psql, psycopg, ADBC Flight SQL and HTTP clients).

mod cdc_crash;
mod cdc_nats_crash;
mod cli;
mod concurrent_writers;
mod console;
mod crash;
mod doctor;
mod flight;
mod flight_access;
mod interop;
mod interop_branches;
mod interop_evolution;
mod interop_lsm;
mod quickstart;
mod serve;
mod serve_access;
mod serve_clients;
mod serve_group_commit;
mod serve_lookup;
mod serve_metrics;
mod serve_tls;
mod shell;
mod stream_cli;
mod stream_jobs;
mod workers;

use tidelake_testkit::cli::Cli;

/// The binary under test; only this crate's tests know where cargo built it.
const TIDELAKE: Cli = Cli::new(env!("CARGO_BIN_EXE_tidelake"));

/// Statements through the CLI with `--format json`; its stdout, failing
/// the test unless every statement succeeds.
fn json_sql(warehouse: &std::path::Path, statements: &[&str]) -> String {
    TIDELAKE.sql(warehouse, statements, &["--format", "json"])
}
