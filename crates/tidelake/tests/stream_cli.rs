//! `tidelake stream` end to end: a child process follows a table while
//! `tidelake sql` commits to it, in every output format; consumers resume;
//! signals stop it cleanly; bad queries and expired snapshots fail with one
//! line. Every wait is bounded, so a broken stream fails instead of hanging.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

fn tidelake(warehouse: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidelake"));
    command
        .arg("--warehouse")
        .arg(warehouse)
        .env_remove("TIDELAKE_WAREHOUSE")
        .env_remove("RUST_LOG");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

fn sql(warehouse: &Path, statements: &[&str]) {
    let mut command = tidelake(warehouse);
    command.arg("sql");
    for s in statements {
        command.arg("-e").arg(s);
    }
    let output = command.output().expect("the tidelake binary runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
}

fn stream(warehouse: &Path, args: &[&str]) -> Output {
    let mut child = tidelake(warehouse)
        .arg("stream")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tidelake stream starts");
    let status = wait(&mut child);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Waits for the child, killing it (and failing) after the timeout.
fn wait(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("tidelake stream did not stop within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `tidelake stream` child whose stdout is collected as it comes.
struct Follower {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

fn collect_into(mut pipe: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

impl Follower {
    fn start(warehouse: &Path, args: &[&str]) -> Follower {
        let mut child = tidelake(warehouse)
            .arg("stream")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tidelake stream starts");
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        collect_into(child.stdout.take().unwrap(), out.clone());
        collect_into(child.stderr.take().unwrap(), err.clone());
        Follower { child, out, err }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits until stdout contains `needle` (flushed per snapshot).
    fn wait_for(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.output().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                if !self.output().contains(needle) {
                    panic!(
                        "stream exited ({status}) without printing {needle:?}\nstdout:\n{}\nstderr:\n{}",
                        self.output(),
                        self.err.lock().unwrap()
                    );
                }
                return;
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!(
                    "no {needle:?} within {TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                    self.output(),
                    self.err.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> (ExitStatus, String, String) {
        let status = wait(&mut self.child);
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        let err = self.err.lock().unwrap().clone();
        (status, self.output(), err)
    }
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
    let mut follower = Follower::start(
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
    follower.wait_for("+I,1,a\n");
    sql(wh, &["INSERT INTO t VALUES (2, 'b')"]);
    follower.wait_for("+I,2,b\n");
    sql(wh, &["UPDATE t SET name = 'c' WHERE id = 1"]);
    follower.wait_for(",1,c\n");
    sql(wh, &["DELETE FROM t WHERE id = 2"]);
    let (status, out, err) = follower.finish();
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
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = text(&output.stdout);
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
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    assert!(out.starts_with("-- snapshot 1\n"), "{out}");
    assert!(out.contains("| +I  | 1  | a    |"), "{out}");
    assert!(out.ends_with("(1 row)\n"), "{out}");
    let recorded = std::fs::read_to_string(consumer_file(wh, "job")).unwrap();
    assert_eq!(recorded, r#"{"nextSnapshot":2}"#);

    sql(wh, &["INSERT INTO t VALUES (5, 'e')"]);
    // The restart prints only what the consumer has not seen yet, although
    // the default mode would print the whole table first.
    let second = stream(wh, &args);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let out = text(&second.stdout);
    assert!(out.starts_with("-- snapshot 2\n"), "{out}");
    assert!(out.contains("| +I  | 5  | e    |"), "{out}");
    assert!(!out.contains("| a "), "{out}");
    let again = stream(wh, &args);
    assert_eq!(text(&again.stdout), "", "nothing new");
}

#[cfg(unix)]
#[test]
fn sigterm_stops_cleanly_and_records_the_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    setup(wh);
    let mut follower = Follower::start(
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
    let start = Instant::now();
    while !consumer_file(wh, "sig").exists() {
        assert!(start.elapsed() < TIMEOUT, "the stream never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    sql(wh, &["INSERT INTO t VALUES (7, 'g')"]);
    follower.wait_for("+I,7,g\n");
    let kill = Command::new("kill")
        .args(["-TERM", &follower.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let (status, out, err) = follower.finish();
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
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "_op,id\n+I,2\n+I,3\n");
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
        let err = text(&output.stderr);
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
    let err = text(&output.stderr);
    assert!(err.contains("snapshot 1 "), "{err}");
    assert!(err.contains("expired"), "{err}");
    assert!(err.contains("consumer-id"), "{err}");
}
