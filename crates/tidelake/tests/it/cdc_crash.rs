//! Crash safety of `tidelake cdc postgres` and `tidelake cdc mysql`: the
//! real processes are SIGKILLed at seeded random points while writers change
//! the source (the local PostgreSQL, MariaDB and MySQL 9) concurrently, and started
//! again; in the end the Paimon tables must equal the source, with no change
//! lost and none applied twice.
//!
//! Kill points (the first round always kills during the initial copy, the
//! second maybe during the copy made again; later rounds pick one of the
//! others by the seed):
//! - **copy**: a random instant after the copy started (the copy is
//!   committed as a whole, so a copy cut short is made again at the next
//!   start, under a temporary slot's snapshot on PostgreSQL);
//! - **stream**: a random instant while streaming;
//! - **transaction**: shortly after a large source transaction (a quarter of
//!   the table updated at once) committed, while the sink reads it;
//! - **commit**: the moment a new snapshot of `items` appears, between the
//!   commit and the acknowledgement of the source.
//!
//! Checks at the end, after one last uninterrupted run caught up:
//! - `ods.items` equals the source: the same number of rows, the same
//!   `id:md5(row)` for every row;
//! - `ods.ledger` (insert-only, one row per writer transaction) equals the
//!   source, and its changelog (`changelog-producer = input`) holds exactly
//!   one record per row: a change applied twice after a restart would show
//!   as a second record there (the table's primary key would hide it);
//! - the position a table records never goes back from one snapshot to the
//!   next.
//!
//! Replay with `TIDELAKE_CDC_CRASH_SEED=<seed>` (printed at the start);
//! timing differs between runs, so a replay repeats the data and decisions,
//! not the exact instants of the kills.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidelake_cdc::event::SourcePosition;
use tidelake_cdc::mysql::BinlogPosition;
use tidelake_testkit::cli::latest_snapshot;
use tidelake_testkit::process::{Spawned, Waited};
use tidelake_testkit::rng::{seed, Rng};
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::TIDELAKE;

/// The source database (on each server) the tests own.
const DB: &str = "tl_cli_cdc_crash";
/// Rows of `items` before the first run: enough for the copy to take a
/// moment (most of a second in a debug build) to be killed in.
const INITIAL_ROWS: u64 = 60_000;
/// Writers changing the source concurrently, each on its own keys.
const WRITERS: u64 = 2;
/// Kill rounds after the one during the copy.
const ROUNDS: usize = 8;
/// How long one run may take to reach the point where it is killed, and
/// the last run to catch up: generous, the machine is shared.
const PATIENCE: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    Postgres,
    Mariadb,
    /// MySQL 9 with GTID sets as positions (tidelake_testkit::mysql9).
    Mysql,
}

impl Source {
    /// The MySQL/MariaDB server's port.
    fn port(self) -> &'static str {
        match self {
            Source::Mysql => "3307",
            _ => "3306",
        }
    }

    /// A client reading statements from stdin (`psql`, `mariadb`), going on
    /// after an error (a deadlock between writers aborts one transaction).
    fn client(self) -> Command {
        match self {
            Source::Postgres => {
                let mut c = Command::new("psql");
                c.args(["-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-qtAX"]);
                c
            }
            Source::Mariadb | Source::Mysql => {
                let mut c = Command::new("mariadb");
                c.args(["-h", "127.0.0.1", "-P", self.port(), "-uroot", "--batch"])
                    .args(["--skip-column-names", "--force", DB]);
                c
            }
        }
    }

    /// Runs `sql` on `database`, failing the test unless it succeeds;
    /// its output lines.
    fn sql_on(self, database: &str, sql: &str) -> Vec<String> {
        let output = match self {
            Source::Postgres => Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database])
                .args(["-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .output(),
            Source::Mariadb | Source::Mysql => Command::new("mariadb")
                .args(["-h", "127.0.0.1", "-P", self.port(), "-uroot", "--batch"])
                .args(["--skip-column-names", database, "-e", sql])
                .output(),
        }
        .unwrap_or_else(|e| panic!("cannot run the {self:?} client: {e}"));
        assert!(
            output.status.success(),
            "{self:?} on {database}: {sql}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn sql(self, sql: &str) -> Vec<String> {
        self.sql_on(DB, sql)
    }

    /// Drops the test database (and on PostgreSQL its slots), creates it
    /// with `items` filled and an empty `ledger`.
    fn recreate(self) {
        match self {
            Source::Postgres => {
                self.drop_database();
                self.sql_on("postgres", &format!("CREATE DATABASE {DB}"));
                self.sql(
                    "CREATE TABLE items (id bigint PRIMARY KEY, grp int NOT NULL, \
                     v bigint NOT NULL, s text, ver int NOT NULL)",
                );
                self.sql(
                    "CREATE TABLE ledger (writer int, seq bigint, note text, \
                     PRIMARY KEY (writer, seq))",
                );
                self.sql(&format!(
                    "INSERT INTO items SELECT i, i % 7, i * 3, 'init-' || i, 0 \
                     FROM generate_series(1, {INITIAL_ROWS}) i"
                ));
            }
            Source::Mariadb | Source::Mysql => {
                self.drop_database();
                self.sql_on("mysql", &format!("CREATE DATABASE {DB}"));
                self.sql(
                    "CREATE TABLE items (id BIGINT PRIMARY KEY, grp INT NOT NULL, \
                     v BIGINT NOT NULL, s VARCHAR(64), ver INT NOT NULL) ENGINE=InnoDB",
                );
                self.sql(
                    "CREATE TABLE ledger (writer INT, seq BIGINT, note VARCHAR(32), \
                     PRIMARY KEY (writer, seq)) ENGINE=InnoDB",
                );
                // MariaDB's sequence table; MySQL has none: a recursive CTE.
                let numbers = if self == Source::Mysql {
                    format!(
                        "SET SESSION cte_max_recursion_depth = {INITIAL_ROWS}; INSERT INTO items \
                         WITH RECURSIVE numbers (seq) AS (SELECT 1 UNION ALL \
                         SELECT seq + 1 FROM numbers WHERE seq < {INITIAL_ROWS}) SELECT"
                    )
                } else {
                    "INSERT INTO items SELECT".to_string()
                };
                let from = if self == Source::Mysql {
                    "numbers".to_string()
                } else {
                    format!("seq_1_to_{INITIAL_ROWS}")
                };
                self.sql(&format!(
                    "{numbers} seq, seq % 7, seq * 3, CONCAT('init-', seq), 0 FROM {from}"
                ));
            }
        }
    }

    fn drop_database(self) {
        match self {
            Source::Postgres => {
                // A killed process's walsender may hold the slot a moment.
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    self.sql_on(
                        "postgres",
                        &format!("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '{DB}' AND active"),
                    );
                    let dropped = Command::new("psql")
                        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
                        .args(["-qtAX", "-v", "ON_ERROR_STOP=1", "-c"])
                        .arg(format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{DB}'"))
                        .output()
                        .is_ok_and(|o| o.status.success());
                    if dropped || Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                self.sql_on(
                    "postgres",
                    &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
                );
            }
            Source::Mariadb | Source::Mysql => {
                self.sql_on("mysql", &format!("DROP DATABASE IF EXISTS {DB}"));
            }
        }
    }

    /// `tidelake cdc ...` on `warehouse`.
    fn start(self, warehouse: &Path) -> Spawned {
        let mut command = TIDELAKE.command(warehouse);
        match self {
            Source::Postgres => command.args([
                "cdc",
                "postgres",
                "--source",
                &format!("host=127.0.0.1 user=postgres dbname={DB}"),
                // Ranges of 1 MB: `items` (about 4 MB) is copied in 4
                // ranges at once, so kills cut a copy made of ranges.
                "--copy-range-mb",
                "1",
            ]),
            Source::Mariadb | Source::Mysql => command.args([
                "cdc",
                "mysql",
                "--source",
                &format!("mysql://root@127.0.0.1:{}/{DB}", self.port()),
            ]),
        };
        command.args([
            "--database",
            "ods",
            "--commit-interval",
            "200ms",
            "--table-conf",
            "changelog-producer=input",
        ]);
        Spawned::start(&mut command)
    }

    /// What the process prints once its initial copy has begun.
    fn copy_marker(self) -> &'static str {
        "cdc: copying"
    }

    /// What the process prints once it streams changes.
    fn stream_marker(self) -> &'static str {
        match self {
            Source::Postgres => "cdc: streaming from slot",
            Source::Mariadb | Source::Mysql => "cdc: streaming the binlog",
        }
    }

    /// One writer transaction: a few changes of the writer's own keys and
    /// its ledger row.
    fn transaction(self, rng: &mut Rng, writer: u64, seq: u64) -> String {
        let (begin, commit) = match self {
            Source::Postgres => ("BEGIN;", "COMMIT;"),
            Source::Mariadb | Source::Mysql => ("START TRANSACTION;", "COMMIT;"),
        };
        let mut sql = format!("{begin}\n");
        let keys = INITIAL_ROWS * 5 / 4 / WRITERS;
        for _ in 0..rng.range(1, 5) {
            let id = rng.below(keys) * WRITERS + writer + 1;
            let delta = rng.range(1, 100);
            sql.push_str(&match (rng.below(10), self) {
                (0..=5, _) => format!(
                    "UPDATE items SET v = v + {delta}, ver = ver + 1, s = 'w{writer}-{seq}' WHERE id = {id};\n"
                ),
                (6..=8, Source::Postgres) => format!(
                    "INSERT INTO items VALUES ({id}, {}, {delta}, 'new-{seq}', 0) \
                     ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, ver = items.ver + 1, s = NULL;\n",
                    id % 7
                ),
                (6..=8, Source::Mariadb | Source::Mysql) => format!(
                    "INSERT INTO items VALUES ({id}, {}, {delta}, 'new-{seq}', 0) \
                     ON DUPLICATE KEY UPDATE v = VALUES(v), ver = ver + 1, s = NULL;\n",
                    id % 7
                ),
                _ => format!("DELETE FROM items WHERE id = {id};\n"),
            });
        }
        sql.push_str(&format!(
            "INSERT INTO ledger VALUES ({writer}, {seq}, 'n{}');\n{commit}\n",
            rng.below(1000)
        ));
        sql
    }

    /// A large transaction: a quarter of `items` and a ledger row. It may
    /// lose a deadlock against a writer; the source's state is what counts.
    fn large_transaction(self, part: u64, seq: u64) {
        let (begin, commit) = match self {
            Source::Postgres => ("BEGIN", "COMMIT"),
            Source::Mariadb | Source::Mysql => ("START TRANSACTION", "COMMIT"),
        };
        let sql = format!(
            "{begin}; UPDATE items SET v = v - 1, ver = ver + 1 WHERE id % 4 = {part}; \
             INSERT INTO ledger VALUES (99, {seq}, 'large'); {commit};"
        );
        let mut client = self.client();
        let output = client.arg(match self {
            Source::Postgres => "-c",
            Source::Mariadb | Source::Mysql => "-e",
        });
        if let Ok(out) = output.arg(sql).output() {
            if !out.status.success() {
                eprintln!(
                    "the large transaction failed (allowed): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// `items` as sorted `id:md5(row)` lines.
    fn items(self) -> Vec<String> {
        let mut rows = self.sql(match self {
            Source::Postgres => {
                "SELECT id::text || ':' || md5(concat_ws('|', grp, v, coalesce(s, 'NULL'), ver)) FROM items"
            }
            Source::Mariadb => {
                "SELECT CONCAT(id, ':', MD5(CONCAT_WS('|', grp, v, COALESCE(s, 'NULL'), ver))) FROM items"
            }
            // MySQL 9 has no MD5(): the row itself.
            Source::Mysql => {
                "SELECT CONCAT(id, ':', CONCAT_WS('|', grp, v, COALESCE(s, 'NULL'), ver)) FROM items"
            }
        });
        rows.sort();
        rows
    }

    /// `ledger` as sorted `writer:seq:note` lines.
    fn ledger(self) -> Vec<String> {
        let mut rows = self.sql("SELECT CONCAT(writer, ':', seq, ':', note) FROM ledger");
        rows.sort();
        rows
    }

    /// The order of two recorded positions.
    fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Source::Postgres => {
                let lsn =
                    |p: &str| u64::from_str_radix(p, 16).unwrap_or_else(|_| panic!("LSN {p}"));
                lsn(a).cmp(&lsn(b))
            }
            Source::Mariadb => binlog_key(a).cmp(&binlog_key(b)),
            // GTID sets: the library's own order (a subset first).
            Source::Mysql => {
                let parse = |p: &str| {
                    BinlogPosition::parse(&SourcePosition(p.to_string()))
                        .unwrap_or_else(|e| panic!("position {p}: {e}"))
                };
                parse(a).compare(&parse(b))
            }
        }
    }
}

/// A binlog position `gtid=D-S-N,...;file=F;pos=P` as (GTID sequences by
/// domain, file, offset): ordered as the server wrote them.
fn binlog_key(position: &str) -> (BTreeMap<u32, u64>, String, u64) {
    let mut gtids = BTreeMap::new();
    let mut file = String::new();
    let mut pos = 0;
    for part in position.split(';') {
        match part.split_once('=') {
            Some(("gtid", list)) => {
                for gtid in list.split(',').filter(|g| !g.is_empty()) {
                    let fields: Vec<u64> = gtid.split('-').filter_map(|f| f.parse().ok()).collect();
                    assert_eq!(fields.len(), 3, "GTID {gtid} in {position}");
                    gtids.insert(fields[0] as u32, fields[2]);
                }
            }
            Some(("file", f)) => file = f.to_string(),
            Some(("pos", p)) => pos = p.parse().unwrap_or(0),
            _ => panic!("position {position}"),
        }
    }
    (gtids, file, pos)
}

/// Writers changing the source until `stop`.
struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl Writers {
    fn start(source: Source, rng: &mut Rng) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..WRITERS)
            .map(|writer| {
                let stop = stop.clone();
                let mut rng = Rng::new(rng.next_u64());
                std::thread::spawn(move || {
                    let mut client = source
                        .client()
                        .stdin(Stdio::piped())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap_or_else(|e| panic!("cannot start the {source:?} client: {e}"));
                    let mut stdin = client.stdin.take().expect("piped stdin");
                    let mut seq = 0;
                    while !stop.load(AtomicOrdering::Relaxed) {
                        let txn = source.transaction(&mut rng, writer, seq);
                        stdin
                            .write_all(txn.as_bytes())
                            .unwrap_or_else(|e| panic!("writer {writer}: {e}"));
                        seq += 1;
                        std::thread::sleep(Duration::from_millis(rng.range(3, 15)));
                    }
                    drop(stdin);
                    let status = client.wait().expect("the client ends");
                    assert!(status.success(), "writer {writer}'s client: {status}");
                    seq
                })
            })
            .collect();
        Writers { stop, threads }
    }

    /// Stops the writers once their clients have run every statement;
    /// the number of transactions they sent.
    fn stop(self) -> u64 {
        self.stop.store(true, AtomicOrdering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().expect("a writer panicked"))
            .sum()
    }
}

/// Waits for `needle` on the process's stderr, failing with its output if
/// it exits first or takes too long.
fn expect_stderr(child: &mut Spawned, needle: &str) {
    match child.wait_for_stderr(PATIENCE, |e| e.contains(needle)) {
        Waited::Met => {}
        other => {
            child.kill();
            panic!(
                "tidelake cdc did not print {needle:?} ({other:?}); stderr:\n{}",
                child.stderr()
            );
        }
    }
}

/// `items` of the warehouse as sorted `id:md5(row)` lines (`id:row` for
/// MySQL, as [`Source::items`]).
fn lake_items(source: Source, warehouse: &Path) -> Vec<String> {
    let row = "concat_ws('|', grp, v, coalesce(s, 'NULL'), ver)";
    let row = if source == Source::Mysql {
        row.to_string()
    } else {
        format!("md5({row})")
    };
    TIDELAKE.query_csv(
        warehouse,
        &format!("SELECT concat(CAST(id AS VARCHAR), ':', {row}) AS h FROM ods.items"),
    )
}

fn lake_ledger(warehouse: &Path) -> Vec<String> {
    TIDELAKE.query_csv(
        warehouse,
        "SELECT concat(CAST(writer AS VARCHAR), ':', CAST(seq AS VARCHAR), ':', note) AS r FROM ods.ledger",
    )
}

/// The snapshots of `ods.<table>` in id order, as JSON.
pub(crate) fn snapshots(warehouse: &Path, table: &str) -> Vec<serde_json::Value> {
    let dir = warehouse.join(format!("ods.db/{table}/snapshot"));
    let mut found: Vec<(i64, serde_json::Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let id: i64 = entry
                .file_name()
                .to_str()?
                .strip_prefix("snapshot-")?
                .parse()
                .ok()?;
            let text = std::fs::read_to_string(entry.path()).ok()?;
            Some((id, serde_json::from_str(&text).expect("a snapshot is JSON")))
        })
        .collect();
    found.sort_by_key(|(id, _)| *id);
    let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "ods.{table} keeps every snapshot since the first"
    );
    found.into_iter().map(|(_, s)| s).collect()
}

/// The recorded position never goes back from one snapshot to the next.
fn assert_positions_advance(source: Source, warehouse: &Path, table: &str) {
    let mut last: Option<String> = None;
    for snapshot in snapshots(warehouse, table) {
        let position = snapshot["properties"].as_object().and_then(|props| {
            props
                .iter()
                .find(|(k, _)| k.starts_with("tidelake.progress.cdc.") && k.ends_with(".position"))
                .and_then(|(_, v)| v.as_str().map(str::to_string))
        });
        let Some(position) = position else {
            continue;
        };
        if let Some(previous) = &last {
            assert_ne!(
                source.compare(previous, &position),
                Ordering::Greater,
                "ods.{table}: snapshot {} records {position} after {previous}",
                snapshot["id"]
            );
        }
        last = Some(position);
    }
    assert!(last.is_some(), "ods.{table} records no position");
}

/// Changelog records of every snapshot of `ods.<table>`.
pub(crate) fn changelog_records(warehouse: &Path, table: &str) -> i64 {
    snapshots(warehouse, table)
        .iter()
        .map(|s| s["changelogRecordCount"].as_i64().unwrap_or(0))
        .sum()
}

fn kill_and_restart_loses_and_repeats_nothing(source: Source, seed_var: &str) {
    let seed = seed(&format!("cdc_crash_{source:?}"), seed_var);
    let mut rng = Rng::new(seed);
    source.recreate();
    let dir = KeptOnFailure::new("cdc-crash");
    let warehouse = dir.path();
    let writers = Writers::start(source, &mut rng);
    let mut log = Vec::new();

    // During the initial copy; again during the copy made again if the
    // first kill cut it short (and the seed says so).
    let mut copy_rounds = 0;
    loop {
        let mut child = source.start(warehouse);
        expect_stderr(&mut child, source.copy_marker());
        std::thread::sleep(Duration::from_millis(rng.range(0, 700)));
        child.kill();
        copy_rounds += 1;
        let committed = child.stderr().contains("cdc: committed the copy");
        log.push(format!(
            "copy ({})",
            if committed {
                "committed first"
            } else {
                "cut short"
            }
        ));
        if committed || copy_rounds == 2 || rng.chance(0.5) {
            break;
        }
    }

    let mut large = 0;
    for round in 1..=ROUNDS {
        let mut child = source.start(warehouse);
        expect_stderr(&mut child, source.stream_marker());
        let point = match rng.below(3) {
            0 => {
                let delay = rng.range(100, 1_500);
                std::thread::sleep(Duration::from_millis(delay));
                format!("stream +{delay} ms")
            }
            1 => {
                large += 1;
                source.large_transaction(rng.below(4), large);
                let delay = rng.range(0, 300);
                std::thread::sleep(Duration::from_millis(delay));
                format!("transaction +{delay} ms")
            }
            _ => {
                let before = latest_snapshot(warehouse, "ods", "items").unwrap_or(0);
                let deadline = Instant::now() + PATIENCE;
                while latest_snapshot(warehouse, "ods", "items").unwrap_or(0) <= before {
                    assert!(
                        Instant::now() < deadline && child.try_status().is_none(),
                        "round {round}: no new snapshot of ods.items; stderr:\n{}",
                        child.stderr()
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                "commit".to_string()
            }
        };
        assert!(
            child.try_status().is_none(),
            "round {round}: tidelake cdc exited by itself; stderr:\n{}",
            child.stderr()
        );
        child.kill();
        log.push(point);
    }
    let transactions = writers.stop();
    eprintln!("seed {seed}: kills {log:?}; {transactions} writer transactions");

    // The last run catches up; then everything must match.
    let mut child = source.start(warehouse);
    let deadline = Instant::now() + PATIENCE;
    let expected_items = source.items();
    let expected_ledger = source.ledger();
    loop {
        let items = lake_items(source, warehouse);
        let ledger = lake_ledger(warehouse);
        if items == expected_items && ledger == expected_ledger {
            break;
        }
        if Instant::now() > deadline || child.try_status().is_some() {
            child.kill();
            let (missing, extra) = first_differences(&expected_items, &items);
            panic!(
                "seed {seed}: ods.items ({} rows) and ods.ledger ({} rows) never equalled the source ({} and {} rows); \
                 missing or different: {missing:?}, extra or different: {extra:?}; kills {log:?}\nstderr:\n{}",
                items.len(),
                ledger.len(),
                expected_items.len(),
                expected_ledger.len(),
                child.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    child.signal("TERM");
    let finished = child.finish(PATIENCE);
    assert!(
        finished.status.success(),
        "tidelake cdc after SIGTERM: {}\n{}",
        finished.status,
        finished.stderr
    );
    assert_eq!(
        changelog_records(warehouse, "ledger"),
        expected_ledger.len() as i64,
        "seed {seed}: ods.ledger's changelog holds a record per source row, none twice; kills {log:?}"
    );
    assert_positions_advance(source, warehouse, "items");
    assert_positions_advance(source, warehouse, "ledger");
    source.drop_database();
}

#[test]
fn cdc_postgres_killed_at_random_points_loses_and_repeats_nothing() {
    kill_and_restart_loses_and_repeats_nothing(Source::Postgres, "TIDELAKE_CDC_CRASH_SEED");
}

#[test]
fn cdc_mysql_killed_at_random_points_loses_and_repeats_nothing() {
    kill_and_restart_loses_and_repeats_nothing(Source::Mariadb, "TIDELAKE_CDC_CRASH_SEED");
}

#[test]
fn cdc_mysql9_gtid_killed_at_random_points_loses_and_repeats_nothing() {
    let Some(_lock) = tidelake_testkit::mysql9::lock_or_skip() else {
        return;
    };
    kill_and_restart_loses_and_repeats_nothing(Source::Mysql, "TIDELAKE_CDC_CRASH_SEED");
}

/// Up to five rows of each sorted side that the other lacks: what a failed
/// comparison of a synced table with its model reports.
pub(crate) fn first_differences<'a, T: Ord>(
    expected: &'a [T],
    got: &'a [T],
) -> (Vec<&'a T>, Vec<&'a T>) {
    let lacking = |a: &'a [T], b: &'a [T]| -> Vec<&'a T> {
        a.iter()
            .filter(|r| b.binary_search(r).is_err())
            .take(5)
            .collect()
    };
    (lacking(expected, got), lacking(got, expected))
}
