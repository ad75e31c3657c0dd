//! The built `tidelake` binary as child processes. Cargo tells only the
//! binary's own crate where it is (`CARGO_BIN_EXE_tidelake`), so the test
//! hands the path in: `Cli::new(env!("CARGO_BIN_EXE_tidelake"))`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{run, Finished, Spawned};

/// How long one `tidelake sql` run may take before the test fails.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// The `tidelake` command at a known path.
#[derive(Clone, Copy, Debug)]
pub struct Cli {
    binary: &'static str,
}

impl Cli {
    pub const fn new(binary: &'static str) -> Cli {
        Cli { binary }
    }

    /// The command without a warehouse, and without the environment that
    /// would choose one or change the logs.
    pub fn bare(&self) -> Command {
        let mut command = Command::new(self.binary);
        command
            .env_remove("TIDELAKE_WAREHOUSE")
            .env_remove("RUST_LOG");
        command
    }

    /// The command on `warehouse`.
    pub fn command(&self, warehouse: &Path) -> Command {
        let mut command = self.bare();
        command.arg("--warehouse").arg(warehouse);
        command
    }

    /// Runs `command` to its end with `stdin`, bounded by [`CLI_TIMEOUT`].
    pub fn run(&self, command: &mut Command, stdin: &str) -> Finished {
        run(command, stdin, CLI_TIMEOUT)
    }

    /// `tidelake sql` with one `-e` per statement and `extra` arguments,
    /// successful or not.
    pub fn try_sql(&self, warehouse: &Path, statements: &[&str], extra: &[&str]) -> Finished {
        let mut command = self.command(warehouse);
        command.arg("sql");
        for statement in statements {
            command.arg("-e").arg(statement);
        }
        command.args(extra);
        self.run(&mut command, "")
    }

    /// Like [`Cli::try_sql`], failing the test with stderr unless it succeeds;
    /// returns stdout.
    pub fn sql(&self, warehouse: &Path, statements: &[&str], extra: &[&str]) -> String {
        let finished = self.try_sql(warehouse, statements, extra);
        assert!(
            finished.status.success(),
            "tidelake failed ({}) on:\n  {}\nstdout:\n{}\nstderr:\n{}",
            finished.status,
            statements.join("\n  "),
            finished.stdout,
            finished.stderr
        );
        finished.stdout
    }

    /// The rows of a query as sorted CSV lines, without the header.
    pub fn query_csv(&self, warehouse: &Path, query: &str) -> Vec<String> {
        let out = self.sql(warehouse, &[query], &["--format", "csv"]);
        let mut rows: Vec<String> = out.lines().skip(1).map(str::to_string).collect();
        rows.sort();
        rows
    }

    /// Starts `tidelake stream` with `args`, its output collected.
    pub fn stream(&self, warehouse: &Path, args: &[impl AsRef<std::ffi::OsStr>]) -> Spawned {
        Spawned::start(self.command(warehouse).arg("stream").args(args))
    }
}

/// The newest snapshot id of `database.table` in a filesystem warehouse,
/// from its snapshot file names.
pub fn latest_snapshot(warehouse: &Path, database: &str, table: &str) -> Option<i64> {
    std::fs::read_dir(warehouse.join(format!("{database}.db/{table}/snapshot")))
        .ok()?
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_prefix("snapshot-")?
                .parse()
                .ok()
        })
        .max()
}
