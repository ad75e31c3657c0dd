//! The `tidelake` binary end to end: -e/-f/stdin, output formats, exit
//! codes and one-line errors. Each test uses its own temporary warehouse.

use std::path::Path;
use std::process::Command;

use tidelake_testkit::process::Finished;

use crate::TIDELAKE;

fn run(command: &mut Command) -> Finished {
    TIDELAKE.run(command, "")
}

fn setup(warehouse: &Path) {
    let output = run(TIDELAKE.command(warehouse).args([
        "sql",
        "-e",
        "CREATE TABLE t (id BIGINT, name STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3), PRIMARY KEY (id) NOT ENFORCED)",
        "-e",
        "INSERT INTO t VALUES (1, 'a, \"b\"', 12.5, TIMESTAMP '2024-01-02 03:04:05.678'), (2, NULL, NULL, NULL)",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(output.stdout, "CREATE TABLE\nINSERT 0 2\n");
}

#[test]
fn table_format_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let output =
        run(TIDELAKE
            .command(dir.path())
            .args(["sql", "-e", "SELECT * FROM t ORDER BY id"]));
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(
        output.stdout,
        "\
+----+--------+--------+-------------------------+
| id | name   | amount | ts                      |
+----+--------+--------+-------------------------+
| 1  | a, \"b\" | 12.50  | 2024-01-02T03:04:05.678 |
| 2  | NULL   | NULL   | NULL                    |
+----+--------+--------+-------------------------+
(2 rows)
"
    );
    assert_eq!(output.stderr, "");
}

#[test]
fn csv_is_rfc4180_with_a_header_and_statuses_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let output = run(TIDELAKE.command(dir.path()).args([
        "sql",
        "--format",
        "csv",
        "-e",
        "INSERT INTO t VALUES (3, 'line\nbreak', 1, NULL)",
        "-e",
        "SELECT * FROM t ORDER BY id",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(
        output.stdout,
        "id,name,amount,ts\n1,\"a, \"\"b\"\"\",12.50,2024-01-02T03:04:05.678\n2,,,\n3,\"line\nbreak\",1.00,\n"
    );
    assert_eq!(output.stderr, "INSERT 0 1\n");
}

#[test]
fn json_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let output = run(TIDELAKE.command(dir.path()).args([
        "sql",
        "--format",
        "json",
        "-e",
        "SELECT * FROM t ORDER BY id",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(
        output.stdout,
        "{\"id\":1,\"name\":\"a, \\\"b\\\"\",\"amount\":12.50,\"ts\":\"2024-01-02T03:04:05.678\"}\n\
         {\"id\":2,\"name\":null,\"amount\":null,\"ts\":null}\n"
    );
}

#[test]
fn empty_results_still_name_their_columns() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let csv = run(TIDELAKE.command(dir.path()).args([
        "sql",
        "--format",
        "csv",
        "-e",
        "SELECT id, name FROM t WHERE id > 100",
    ]));
    assert_eq!(csv.stdout, "id,name\n");
    let json = run(TIDELAKE.command(dir.path()).args([
        "sql",
        "--format",
        "json",
        "-e",
        "SELECT id FROM t WHERE id > 100",
    ]));
    assert_eq!(json.stdout, "");
    let table =
        run(TIDELAKE
            .command(dir.path())
            .args(["sql", "-e", "SELECT id FROM t WHERE id > 100"]));
    assert_eq!(table.stdout, "+----+\n| id |\n+----+\n+----+\n(0 rows)\n");
}

#[test]
fn the_first_failing_statement_stops_the_run_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let output = run(TIDELAKE.command(dir.path()).args([
        "sql",
        "-e",
        "INSERT INTO t VALUES (5, 'five', NULL, NULL)",
        "-e",
        "SELECT * FROM missing",
        "-e",
        "INSERT INTO t VALUES (6, 'six', NULL, NULL)",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(output.stdout, "INSERT 0 1\n");
    assert_eq!(
        output.stderr,
        "error[42P01]: table 'default.missing' does not exist\n"
    );
    let ids = run(TIDELAKE.command(dir.path()).args([
        "sql",
        "--format",
        "csv",
        "-e",
        "SELECT id FROM t ORDER BY id",
    ]));
    assert_eq!(ids.stdout, "id\n1\n2\n5\n");
}

#[test]
fn multi_line_errors_are_printed_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        run(TIDELAKE
            .command(dir.path())
            .args(["sql", "-e", "SELECT 1;\nSELECT (1\nFROM t"]));
    assert_eq!(output.status.code(), Some(1));
    let err = output.stderr;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error[42601]: syntax error at line 3, column 1"),
        "{err}"
    );
}

#[test]
fn files_and_inline_statements_run_in_command_line_order() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("load.sql");
    std::fs::write(
        &script,
        "-- a comment; with a semicolon\nINSERT INTO n VALUES (2);\n/* another; */ INSERT INTO n VALUES (3);\n",
    )
    .unwrap();
    let output = run(TIDELAKE.command(&dir.path().join("wh")).args([
        "sql",
        "--format",
        "csv",
        "-e",
        "CREATE TABLE n (x INT); INSERT INTO n VALUES (1)",
        "-f",
        script.to_str().unwrap(),
        "-e",
        "SELECT x FROM n ORDER BY x",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(output.stdout, "x\n1\n2\n3\n");
    assert_eq!(
        output.stderr,
        "CREATE TABLE\nINSERT 0 1\nINSERT 0 1\nINSERT 0 1\n"
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(TIDELAKE
        .command(dir.path())
        .args(["sql", "-f", "/nonexistent/script.sql"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output
            .stderr
            .starts_with("error: cannot read '/nonexistent/script.sql'"),
        "{}",
        output.stderr
    );
}

#[test]
fn statements_are_read_from_stdin_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let output = TIDELAKE.run(
        TIDELAKE.command(dir.path()).args(["sql", "--format", "json"]),
        "CREATE TABLE s (k INT, v STRING, PRIMARY KEY (k));\nINSERT INTO s VALUES (1, 'a');\nINSERT INTO s VALUES (1, 'b');\nSELECT * FROM s;\n",
    );
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(output.stdout, "{\"k\":1,\"v\":\"b\"}\n");
    let failing = TIDELAKE.run(
        TIDELAKE.command(dir.path()).arg("sql"),
        "SELECT * FROM s;\nSELEC 1;\nSELECT 2;\n",
    );
    assert_eq!(failing.status.code(), Some(1));
    assert!(
        failing.stderr.starts_with("error[42601]: syntax error"),
        "{}",
        failing.stderr
    );
    assert!(failing.stdout.contains("(1 row)"), "{}", failing.stdout);
    assert!(!failing.stdout.contains("Int64(2)"), "{}", failing.stdout);
}

#[test]
fn the_warehouse_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("from-env");
    let output = run(TIDELAKE.bare().env("TIDELAKE_WAREHOUSE", &warehouse).args([
        "sql",
        "-e",
        "CREATE DATABASE envdb",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    assert!(warehouse.join("envdb.db").is_dir());
}

#[test]
fn the_default_warehouse_is_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(TIDELAKE
        .bare()
        .current_dir(dir.path())
        .env_remove("TIDELAKE_WAREHOUSE")
        .args(["sql", "-e", "CREATE DATABASE here"]));
    assert!(output.status.success(), "{}", output.stderr);
    assert!(dir.path().join("warehouse/here.db").is_dir());
}

#[test]
fn time_travel_and_dml_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let output = run(TIDELAKE.command(dir.path()).args([
        "sql",
        "-e",
        "UPDATE t SET name = 'z' WHERE id = 2",
        "-e",
        "DELETE FROM t WHERE id = 1",
        "-e",
        "SELECT id, name FROM t VERSION AS OF 1 ORDER BY id",
        "-e",
        "SELECT id, name FROM t ORDER BY id",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(
        output.stdout,
        "\
UPDATE 1
DELETE 1
+----+--------+
| id | name   |
+----+--------+
| 1  | a, \"b\" |
| 2  | NULL   |
+----+--------+
(2 rows)
+----+------+
| id | name |
+----+------+
| 2  | z    |
+----+------+
(1 row)
"
    );
}

#[test]
fn help_documents_the_commands() {
    let output = run(TIDELAKE.bare().args(["sql", "--help"]));
    assert!(output.status.success());
    let help = output.stdout;
    for needle in [
        "--execute",
        "--file",
        "--format",
        "VERSION AS OF",
        "~/.tidelake_history",
        "RUST_LOG",
        "error[SQLSTATE]",
    ] {
        assert!(help.contains(needle), "sql --help lacks {needle}:\n{help}");
    }
    let top = run(TIDELAKE.bare().arg("--help")).stdout;
    assert!(
        top.contains("--warehouse") && top.contains("Examples:"),
        "{top}"
    );
}

#[test]
fn bad_arguments_exit_with_status_2() {
    let output = run(TIDELAKE.bare().args(["sql", "--format", "xml"]));
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn compact_is_a_dedicated_job_that_keeps_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = dir.path().join("wh");
    let output = run(TIDELAKE.command(&warehouse).args([
        "sql",
        "-e",
        "CREATE TABLE o (id BIGINT NOT NULL, dt STRING NOT NULL, v INT, PRIMARY KEY (id, dt) NOT ENFORCED) \
         PARTITIONED BY (dt) WITH ('bucket' = '2', 'write-only' = 'true')",
        "-e",
        "INSERT INTO o VALUES (1, 'a', 1), (2, 'b', 2)",
        "-e",
        "INSERT INTO o VALUES (1, 'a', 10), (3, 'b', 3)",
        "-e",
        "DELETE FROM o WHERE id = 2",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    let output = run(TIDELAKE.command(&warehouse).args([
        "compact",
        "default.o",
        "--partition",
        "dt=a",
        "--format",
        "csv",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    // Two runs are under the compaction trigger: a minor compaction has
    // nothing to do and commits nothing.
    assert_eq!(
        output.stdout,
        "snapshot_id,files_in,files_out,bytes_in,bytes_out\n,0,0,0,0\n"
    );
    let output = run(TIDELAKE
        .command(&warehouse)
        .args(["compact", "o", "--full"]));
    assert!(output.status.success(), "{}", output.stderr);
    let output = run(TIDELAKE.command(&warehouse).args([
        "sql",
        "--format",
        "csv",
        "-e",
        "SELECT id, dt, v FROM o ORDER BY id",
        "-e",
        "SELECT count(*) FROM o$snapshots WHERE commit_kind = 'COMPACT'",
    ]));
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(output.stdout, "id,dt,v\n1,a,10\n3,b,3\ncount(*)\n1\n");
    let output = run(TIDELAKE
        .command(&warehouse)
        .args(["compact", "default.nope"]));
    assert!(!output.status.success());
    assert!(
        output.stderr.starts_with("error[42P01]"),
        "{}",
        output.stderr
    );
}
