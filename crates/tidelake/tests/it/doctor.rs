//! `tidelake doctor` / `advise` end to end, and the doctor's tables from
//! SQL (`sys.doctor`, `db."t$health"`). "Now" is passed in (`--now`), taken
//! from the table's latest snapshot.

use std::path::Path;

use tidelake_testkit::cli::latest_snapshot;
use tidelake_testkit::process::Finished;

use crate::TIDELAKE;

/// An append table `default.t` with 11 one-row commits into one partition:
/// a small-files problem.
fn setup(warehouse: &Path) {
    let mut statements = vec!["CREATE TABLE t (id BIGINT, p INT) PARTITIONED BY (p)".to_string()];
    statements.extend((0..11).map(|i| format!("INSERT INTO t VALUES ({i}, 1)")));
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    TIDELAKE.sql(warehouse, &refs, &[]);
}

/// One minute after the latest snapshot of `default.t`, in epoch millis.
fn now(warehouse: &Path) -> String {
    let id = latest_snapshot(warehouse, "default", "t").expect("a snapshot");
    let path = warehouse.join(format!("default.db/t/snapshot/snapshot-{id}"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("the snapshot file")).unwrap();
    (json["timeMillis"].as_i64().expect("timeMillis") + 60_000).to_string()
}

fn doctor(warehouse: &Path, args: &[&str]) -> Finished {
    let now = now(warehouse);
    let mut command = TIDELAKE.command(warehouse);
    command.arg("doctor").args(args).args(["--now", &now]);
    let done = TIDELAKE.run(&mut command, "");
    assert!(done.status.success(), "doctor {args:?}: {}", done.stderr);
    done
}

#[test]
fn doctor_reports_fixes_and_then_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = doctor(dir.path(), &["default.t"]).stdout;
    assert!(out.contains("MID  small-files  default.t p=1"), "{out}");
    assert!(
        out.contains("evidence: small_files=11 (threshold 10)"),
        "{out}"
    );
    assert!(
        out.contains("tidelake compact default.t --partition p=1 --full"),
        "{out}"
    );
    assert!(out.contains("sub-healthy"), "{out}");

    let json: serde_json::Value =
        serde_json::from_str(&doctor(dir.path(), &["--format", "json"]).stdout).unwrap();
    assert_eq!(json["tables"][0]["findings"][0]["rule"], "small-files");

    let dry = doctor(dir.path(), &["--fix", "--dry-run", "default"]).stdout;
    assert!(
        dry.contains("small-files default.t p=1: would full compaction"),
        "{dry}"
    );
    let before = latest_snapshot(dir.path(), "default", "t");
    let fixed = doctor(dir.path(), &["--fix", "default"]).stdout;
    assert!(fixed.contains("did full compaction"), "{fixed}");
    assert_eq!(
        latest_snapshot(dir.path(), "default", "t"),
        before.map(|s| s + 1)
    );
    let again = doctor(dir.path(), &["--fix"]).stdout;
    assert_eq!(again, "Nothing to fix.\n");
    let out = doctor(dir.path(), &[]).stdout;
    assert!(out.contains("No findings."), "{out}");
    let rows = TIDELAKE.query_csv(dir.path(), "SELECT count(*) FROM t");
    assert_eq!(rows, vec!["11"]);
}

#[test]
fn explain_advise_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = doctor(dir.path(), &["--explain", "small-files"]).stdout;
    assert!(out.starts_with("small-files  [layout]"), "{out}");
    let list = doctor(dir.path(), &["--explain", "list"]).stdout;
    assert!(list.lines().count() >= 14, "{list}");

    let mut command = TIDELAKE.command(dir.path());
    command.args(["doctor", "--explain", "nope"]);
    let bad = TIDELAKE.run(&mut command, "");
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("no rule 'nope'"), "{}", bad.stderr);

    let mut command = TIDELAKE.command(dir.path());
    command.args(["doctor", "default.missing"]);
    let bad = TIDELAKE.run(&mut command, "");
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("default.missing"), "{}", bad.stderr);

    let mut command = TIDELAKE.command(dir.path());
    command.args(["advise", "default.t", "--format", "json"]);
    let advice = TIDELAKE.run(&mut command, "");
    assert!(advice.status.success(), "{}", advice.stderr);
    let json: serde_json::Value = serde_json::from_str(&advice.stdout).unwrap();
    assert!(json.is_array(), "{json}");

    let mut command = TIDELAKE.command(dir.path());
    command.args(["advise", "default"]);
    let bad = TIDELAKE.run(&mut command, "");
    assert!(!bad.status.success());
    assert!(
        bad.stderr.contains("advise needs db.table"),
        "{}",
        bad.stderr
    );
}

#[test]
fn doctor_tables_from_sql() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let rows = TIDELAKE.query_csv(
        dir.path(),
        "SELECT table_name, rule, severity, partition_name, fixable FROM sys.doctor",
    );
    assert_eq!(rows, vec!["default.t,small-files,MID,p=1,true"]);
    let rows = TIDELAKE.query_csv(
        dir.path(),
        "SELECT table_name, band, layout < 100, CAST(lsm AS INT), findings FROM default.\"t$health\"",
    );
    assert_eq!(rows, vec!["default.t,sub-healthy,true,100,1"]);
}
