//! `tidelake stream` end to end: a child process follows a table while
//! `tidelake sql` commits to it, in every output format; consumers resume;
//! signals stop it cleanly; bad queries and expired snapshots fail with one
//! line. Every wait is bounded, so a broken stream fails instead of hanging.

use std::path::Path;
use std::time::Duration;

use tidelake_testkit::process::{wait_until, Finished};

use crate::TIDELAKE;

const TIMEOUT: Duration = Duration::from_secs(60);

fn sql(warehouse: &Path, statements: &[&str]) {
    TIDELAKE.sql(warehouse, statements, &[]);
}

/// `tidelake stream` run to its end.
fn stream(warehouse: &Path, args: &[&str]) -> Finished {
    TIDELAKE.stream(warehouse, args).finish(TIMEOUT)
}

fn setup(warehouse: &Path) {
    sql(
        warehouse,
        &[
            "CREATE TABLE t (id BIGINT, name STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '1')",
            "INSERT INTO t VALUES (1, 'a')",
        ],
    );
}

fn consumer_file(warehouse: &Path, id: &str) -> std::path::PathBuf {
    warehouse.join(format!("default.db/t/consumer/consumer-{id}"))
}

#[test]
fn csv_follows_commits_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    setup(wh);
    let mut follower = TIDELAKE.stream(
        wh,
        &[
            "-e",
            "SELECT * FROM t",
            "--format",
            "csv",
            "--max-snapshots",
            "4",
            "--poll-interval",
            "50ms",
        ],
    );
    // latest-full: the current row first.
    follower.expect_stdout("+I,1,a\n", TIMEOUT);
    sql(wh, &["INSERT INTO t VALUES (2, 'b')"]);
    follower.expect_stdout("+I,2,b\n", TIMEOUT);
    sql(wh, &["UPDATE t SET name = 'c' WHERE id = 1"]);
    follower.expect_stdout(",1,c\n", TIMEOUT);
    sql(wh, &["DELETE FROM t WHERE id = 2"]);
    let Finished {
        status,
        stdout: out,
        stderr: err,
    } = follower.finish(TIMEOUT);
    assert!(status.success(), "{err}");
    // Without a changelog producer an update is an upsert of the new row.
    assert_eq!(out, "_op,id,name\n+I,1,a\n+I,2,b\n+I,1,c\n-D,2,b\n");
}

#[test]
fn json_applies_projection_and_filter_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    setup(wh);
    sql(
        wh,
        &[
            "INSERT INTO t VALUES (2, 'b'), (3, 'c')",
            "DELETE FROM t WHERE id = 3",
        ],
    );
    let output = stream(
        wh,
        &[
            "-e",
            "SELECT upper(name) AS n, id FROM t WHERE id >= 2",
            "--format",
            "json",
            "--snapshot",
            "2",
            "--until-idle",
        ],
    );
    assert!(output.status.success(), "{}", output.stderr);
    let out = output.stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let mut snapshot2: Vec<&str> = lines[..2].to_vec();
    snapshot2.sort();
    assert_eq!(
        snapshot2,
        vec![
            r#"{"_op":"+I","n":"B","id":2}"#,
            r#"{"_op":"+I","n":"C","id":3}"#
        ]
    );
    assert_eq!(lines[2..], [r#"{"_op":"-D","n":"C","id":3}"#]);
}

#[test]
fn table_format_and_consumers_resume_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    setup(wh);
    let args = [
        "-e",
        "SELECT id, name FROM t",
        "--consumer-id",
        "job",
        "--until-idle",
    ];
    let first = stream(wh, &args);
    assert!(first.status.success(), "{}", first.stderr);
    let out = first.stdout;
    assert!(out.starts_with("-- snapshot 1\n"), "{out}");
    assert!(out.contains("| +I  | 1  | a    |"), "{out}");
    assert!(out.ends_with("(1 row)\n"), "{out}");
    let recorded = std::fs::read_to_string(consumer_file(wh, "job")).unwrap();
    assert_eq!(recorded, r#"{"nextSnapshot":2}"#);

    sql(wh, &["INSERT INTO t VALUES (5, 'e')"]);
    // The restart prints only what the consumer has not seen yet, although
    // the default mode would print the whole table first.
    let second = stream(wh, &args);
    assert!(second.status.success(), "{}", second.stderr);
    let out = second.stdout;
    assert!(out.starts_with("-- snapshot 2\n"), "{out}");
    assert!(out.contains("| +I  | 5  | e    |"), "{out}");
    assert!(!out.contains("| a "), "{out}");
    let again = stream(wh, &args);
    assert_eq!(again.stdout, "", "nothing new");
}

#[cfg(unix)]
#[test]
fn sigterm_stops_cleanly_and_records_the_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    setup(wh);
    let mut follower = TIDELAKE.stream(
        wh,
        &[
            "-e",
            "SELECT * FROM t",
            "--format",
            "csv",
            "--mode",
            "latest",
            "--consumer-id",
            "sig",
            "--poll-interval",
            "50ms",
        ],
    );
    // The consumer file appears when the stream has opened its position.
    wait_until(TIMEOUT, "the stream opens its position", || {
        consumer_file(wh, "sig").exists()
    });
    sql(wh, &["INSERT INTO t VALUES (7, 'g')"]);
    follower.expect_stdout("+I,7,g\n", TIMEOUT);
    follower.signal("TERM");
    let Finished {
        status,
        stdout: out,
        stderr: err,
    } = follower.finish(TIMEOUT);
    assert!(status.success(), "SIGTERM is a clean stop: {status} {err}");
    assert_eq!(out, "_op,id,name\n+I,7,g\n");
    assert_eq!(
        std::fs::read_to_string(consumer_file(wh, "sig")).unwrap(),
        r#"{"nextSnapshot":3}"#
    );
}

#[test]
fn hints_choose_the_start_and_incremental_reads_stop() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    setup(wh);
    sql(
        wh,
        &[
            "INSERT INTO t VALUES (2, 'b')",
            "INSERT INTO t VALUES (3, 'c')",
            "INSERT INTO t VALUES (4, 'd')",
        ],
    );
    let output = stream(
        wh,
        &[
            "-e",
            "SELECT id FROM t /*+ OPTIONS('incremental-between' = '1,3') */",
            "--format",
            "csv",
        ],
    );
    assert!(output.status.success(), "{}", output.stderr);
    assert_eq!(output.stdout, "_op,id\n+I,2\n+I,3\n");
}

#[test]
fn streaming_queries_that_cannot_apply_per_row_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    setup(wh);
    for (query, needle) in [
        ("SELECT count(*) FROM t", "stream of changes"),
        ("SELECT * FROM t ORDER BY id", "stream of changes"),
        ("SELECT * FROM nope", "nope"),
    ] {
        let output = stream(wh, &["-e", query, "--until-idle"]);
        assert!(!output.status.success(), "{query}");
        let err = output.stderr;
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error["), "{err}");
        assert!(err.contains(needle), "{query}: {err}");
    }
}

#[test]
fn an_expired_start_snapshot_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    setup(wh);
    sql(
        wh,
        &[
            "INSERT INTO t VALUES (2, 'b')",
            "INSERT INTO t VALUES (3, 'c')",
            "CALL sys.expire_snapshots(table => 'default.t', retain_max => 1, retain_min => 1)",
        ],
    );
    let output = stream(
        wh,
        &["-e", "SELECT * FROM t", "--snapshot", "1", "--until-idle"],
    );
    assert!(!output.status.success());
    let err = output.stderr;
    assert!(err.contains("snapshot 1 "), "{err}");
    assert!(err.contains("expired"), "{err}");
    assert!(err.contains("consumer-id"), "{err}");
}
