//! Many PostgreSQL sessions writing one table through a real `tidelake
//! serve` (tests/server/group_commit.py runs the sessions, all released
//! at once by a barrier): every statement commits, concurrent INSERTs share
//! snapshots (group commit), concurrent UPDATEs lose nothing, and bad input
//! fails its own statement only.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use tidelake_testkit::process::run;
use tidelake_testkit::python;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::serve::{psql_ok, serve, Served};
use crate::serve_metrics::{scrape, value};

/// Runs group_commit.py; each session's statement outcomes.
fn sessions(server: &mut Served, args: &[&str]) -> Vec<Vec<serde_json::Value>> {
    let python = python::find().expect("the test venv's python (scripts/test builds it)");
    let script = python::workspace_root().join("tests/server/group_commit.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(args[0])
        .arg(server.pg.to_string())
        .args(&args[1..]);
    let done = run(&mut command, "", Duration::from_secs(300));
    assert!(
        done.status.success(),
        "group_commit.py failed\nstdout:\n{}\nstderr:\n{}\nserver stderr:\n{}",
        done.stdout,
        done.stderr,
        server.child.stderr()
    );
    serde_json::from_str(done.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", done.stdout))
}

fn scalar(port: u16, sql: &str) -> i64 {
    let out = psql_ok(port, &["-At", "-c", sql]);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}: {out}"))
}

/// `k -> v` of a two-column table.
fn pairs(port: u16, sql: &str) -> BTreeMap<i64, i64> {
    psql_ok(port, &["-At", "-F", ",", "-c", sql])
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(',').unwrap_or_else(|| panic!("{l}"));
            (k.parse().unwrap(), v.parse().unwrap())
        })
        .collect()
}

const CREATE_G: &str = "CREATE TABLE g (k BIGINT NOT NULL, s BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('bucket' = '2')";

#[test]
fn sixty_four_sessions_inserting_at_once_share_a_few_snapshots() {
    let dir = KeptOnFailure::new("serve-group-insert");
    let mut server = serve(dir.path(), &[]);
    let (p, h) = (server.pg, server.http);
    psql_ok(p, &["-c", CREATE_G]);
    let before = scrape(h);

    let results = sessions(&mut server, &["insert", "64"]);
    for (s, outcomes) in results.iter().enumerate() {
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0]["rows"], 3, "session {s}: {}", outcomes[0]);
    }
    // Every row exactly once, with its session's value.
    let rows = pairs(p, "SELECT k, s FROM g ORDER BY k");
    assert_eq!(rows.len(), 192);
    for (k, s) in &rows {
        assert_eq!(*s, k / 3, "key {k}");
    }
    assert_eq!(scalar(p, "SELECT count(*) FROM g"), 192);

    // Far fewer snapshots than statements, and /metrics shows the grouping.
    let appends = scalar(
        p,
        "SELECT count(*) FROM g$snapshots WHERE commit_kind = 'APPEND'",
    );
    assert!(
        (1..=16).contains(&appends),
        "{appends} snapshots for 64 statements"
    );
    let after = scrape(h);
    let grew = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(grew("tidelake_engine_group_commit_statements_total"), 64.0);
    assert_eq!(
        grew("tidelake_engine_group_commits_total"),
        appends as f64,
        "one group commit per snapshot"
    );
    server.child.kill();
}

#[test]
fn concurrent_updates_of_own_and_shared_keys_lose_nothing() {
    const SESSIONS: i64 = 16;
    const ROUNDS: i64 = 5;
    let dir = KeptOnFailure::new("serve-group-update");
    let mut server = serve(dir.path(), &[]);
    let p = server.pg;
    let rows: Vec<String> = (0..=SESSIONS).map(|k| format!("({k}, 0)")).collect();
    let values = format!("INSERT INTO c VALUES {}", rows.join(", "));
    psql_ok(
        p,
        &[
            "-c",
            "CREATE TABLE c (k BIGINT NOT NULL, v BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('bucket' = '2')",
            "-c",
            &values,
        ],
    );
    let results = sessions(
        &mut server,
        &["update", &SESSIONS.to_string(), &ROUNDS.to_string()],
    );
    for (s, outcomes) in results.iter().enumerate() {
        assert_eq!(outcomes.len() as i64, 2 * ROUNDS);
        for outcome in outcomes {
            assert_eq!(outcome["rows"], 1, "session {s}: {outcome}");
        }
    }
    // What any serial order gives: every increment counted.
    let mut expected: BTreeMap<i64, i64> = (1..=SESSIONS).map(|k| (k, ROUNDS)).collect();
    expected.insert(0, SESSIONS * ROUNDS);
    assert_eq!(pairs(p, "SELECT k, v FROM c ORDER BY k"), expected);
    server.child.kill();
}

#[test]
fn bad_input_in_a_group_fails_its_own_statement_only() {
    let dir = KeptOnFailure::new("serve-group-bad");
    let mut server = serve(dir.path(), &[]);
    let p = server.pg;
    psql_ok(p, &["-c", CREATE_G]);
    let results = sessions(&mut server, &["bad", "24"]);
    let mut expected = BTreeMap::new();
    for (s, outcomes) in results.iter().enumerate() {
        let outcome = &outcomes[0];
        // A NULL key, text into BIGINT, too many values: each its own error.
        let code = match s {
            5 => Some("23502"),
            11 => Some("22P02"),
            17 => Some("42601"),
            _ => None,
        };
        match code {
            Some(code) => assert_eq!(outcome["error"], code, "session {s}: {outcome}"),
            _ => {
                assert_eq!(outcome["rows"], 3, "session {s}: {outcome}");
                for k in 3 * s as i64..3 * s as i64 + 3 {
                    expected.insert(k, s as i64);
                }
            }
        }
    }
    assert_eq!(pairs(p, "SELECT k, s FROM g ORDER BY k"), expected);
    server.child.kill();
}
