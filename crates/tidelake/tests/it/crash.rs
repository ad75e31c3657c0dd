//! Crash test of the LSM maintenance path: a writer and a compactor, real
//! `tidelake` processes, are killed with SIGKILL at random points, round
//! after round, and the table must stay whole.
//!
//! Each round runs one writer process (a script of one to three statements:
//! an INSERT of new keys, overwrites of live keys and re-inserts of deleted
//! ones, plus a marker row `(-k, 'm')`; maybe a DELETE of live keys; maybe
//! an UPDATE of a key range; each statement is one commit) and, concurrently,
//! a maintenance process (`tidelake compact [--full]` or
//! `CALL sys.expire_snapshots`). Either, both or neither is SIGKILLed after
//! a random delay scaled to how long such a process takes.
//!
//! After every round the table is read back, and the round is resolved
//! exactly: the latest state must equal the model after some prefix of the
//! writer's statements (all of them when the writer exited 0; each statement
//! all-or-nothing), and the number of new APPEND snapshots must be that
//! prefix's length. Every snapshot still listed in `db.t$snapshots` must read
//! (`VERSION AS OF n`) exactly what the model held when it was committed:
//! a fingerprint every round, every row at the end. At the end, with all
//! files backdated past the one-day safety margin,
//! `CALL sys.remove_orphan_files` runs, then a full compaction, and every
//! check runs again.
//!
//! Replay or lengthen a run with `TIDELAKE_CRASH_SEED=<seed>` (printed in
//! every failure, and on stderr at the start) and
//! `TIDELAKE_CRASH_ROUNDS=<rounds per variant>`. Timing differs between
//! runs, so a replay repeats the data and the decisions, not the exact
//! instants of the kills.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidelake_testkit::cli::CLI_TIMEOUT;
use tidelake_testkit::rng::Rng;

use crate::TIDELAKE;

/// Rounds per variant unless `TIDELAKE_CRASH_ROUNDS` says otherwise: the
/// two variants together stay well under a minute on two busy cores.
const DEFAULT_ROUNDS: usize = 24;

/// A row's `pad` column is a function of its `v`, so a torn or misassembled
/// row shows up; the filler makes files big enough to roll.
const FILL: &str = "-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn pad(v: i64) -> String {
    format!("p{v}{FILL}")
}

/// Data rows live in partitions a, b, c (by id); markers in m.
fn dt_of(id: i64) -> &'static str {
    ["a", "b", "c"][id.rem_euclid(3) as usize]
}

const MARKER_DT: &str = "m";

type Key = (i64, String);
/// The table's rows: (id, dt) -> v (`pad` follows from `v`).
type State = BTreeMap<Key, i64>;

// ----------------------------------------------------------- statements

/// One statement of a writer's script: one commit.
#[derive(Debug)]
enum Stmt {
    Insert {
        rows: Vec<(Key, i64)>,
    },
    /// `v = base + id % 1000` for the data rows with `lo <= id < hi`.
    Update {
        lo: i64,
        hi: i64,
        base: i64,
    },
    /// Deletes the data rows of these ids.
    Delete {
        ids: Vec<i64>,
    },
}

impl Stmt {
    fn sql(&self) -> String {
        match self {
            Stmt::Insert { rows } => {
                let values: Vec<String> = rows
                    .iter()
                    .map(|((id, dt), v)| format!("({id}, '{dt}', {v}, '{}')", pad(*v)))
                    .collect();
                format!("INSERT INTO db.t VALUES\n{}", values.join(",\n"))
            }
            Stmt::Update { lo, hi, base } => format!(
                "UPDATE db.t SET v = {base} + id % 1000, \
                 pad = concat('p', CAST({base} + id % 1000 AS VARCHAR), '{FILL}') \
                 WHERE dt <> '{MARKER_DT}' AND id >= {lo} AND id < {hi}"
            ),
            Stmt::Delete { ids } => {
                let list: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                format!(
                    "DELETE FROM db.t WHERE dt <> '{MARKER_DT}' AND id IN ({})",
                    list.join(", ")
                )
            }
        }
    }

    fn apply(&self, state: &mut State) {
        match self {
            Stmt::Insert { rows } => {
                for (key, v) in rows {
                    state.insert(key.clone(), *v);
                }
            }
            Stmt::Update { lo, hi, base } => {
                for ((id, dt), v) in state.iter_mut() {
                    if dt != MARKER_DT && (*lo..*hi).contains(id) {
                        *v = base + id % 1000;
                    }
                }
            }
            Stmt::Delete { ids } => {
                for id in ids {
                    state.remove(&(*id, dt_of(*id).to_string()));
                }
            }
        }
    }

    fn label(&self) -> String {
        match self {
            Stmt::Insert { rows } => format!("INSERT of {} rows", rows.len()),
            Stmt::Update { lo, hi, .. } => format!("UPDATE of ids {lo}..{hi}"),
            Stmt::Delete { ids } => format!("DELETE of {} ids", ids.len()),
        }
    }
}

// ------------------------------------------------------------- variants

/// What runs next to the writer.
#[derive(Clone, Copy, Debug)]
enum Maintenance {
    CompactMinor,
    CompactFull,
    Expire,
}

impl Maintenance {
    fn args(self) -> Vec<String> {
        let args: &[&str] = match self {
            Maintenance::CompactMinor => &["compact", "db.t"],
            Maintenance::CompactFull => &["compact", "db.t", "--full"],
            Maintenance::Expire => &[
                "sql",
                "-e",
                "CALL sys.expire_snapshots(table => 'db.t', retain_max => 8, retain_min => 2)",
            ],
        };
        args.iter().map(|s| s.to_string()).collect()
    }
}

struct Variant {
    name: &'static str,
    /// Table options besides the common ones.
    options: &'static [(&'static str, &'static str)],
    /// The chance that a round runs a maintenance process at all.
    maintenance_chance: f64,
    /// Weights of minor compaction, full compaction, expiration.
    maintenance_weights: [u64; 3],
}

/// The writer never compacts; a dedicated process does, and expires.
const DEDICATED: Variant = Variant {
    name: "dedicated_compactor",
    options: &[("write-only", "true")],
    maintenance_chance: 0.9,
    maintenance_weights: [6, 2, 2],
};

/// The writer compacts (and expires) after its commits; now and then a
/// dedicated full compaction races it.
const INLINE: Variant = Variant {
    name: "inline_compaction",
    options: &[
        ("num-sorted-run.compaction-trigger", "2"),
        ("num-sorted-run.stop-trigger", "4"),
        ("snapshot.num-retained.min", "2"),
        ("snapshot.num-retained.max", "10"),
    ],
    maintenance_chance: 0.3,
    maintenance_weights: [1, 3, 0],
};

/// Small buffers and files so that a batch flushes and rolls several files
/// per bucket, and manifests merge often: more places to be killed in.
const COMMON_OPTIONS: &[(&str, &str)] = &[
    ("bucket", "3"),
    ("write-buffer-size", "64 kb"),
    ("target-file-size", "96 kb"),
    ("manifest.merge-min-count", "3"),
    ("manifest.target-file-size", "16 kb"),
];

// -------------------------------------------------------------- processes

/// How a process of a round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    NotRun,
    Acknowledged,
    Killed,
    Failed(i32),
}

/// A process of a round: started at an offset, maybe killed after a delay.
struct Proc {
    label: &'static str,
    args: Vec<String>,
    start_at: Duration,
    kill_after: Option<Duration>,
    stderr: PathBuf,
    child: Option<Child>,
    started: Option<Instant>,
    status: Option<ExitStatus>,
    ran_for: Duration,
}

impl Proc {
    fn done(&self) -> bool {
        self.status.is_some()
    }

    fn ending(&self) -> Ending {
        match self.status {
            None => Ending::NotRun,
            Some(s) if s.signal() == Some(9) => Ending::Killed,
            Some(s) if s.success() => Ending::Acknowledged,
            Some(s) => Ending::Failed(s.code().unwrap_or(-1)),
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Runs the processes of a round to their end: each starts at its offset
/// and gets SIGKILL once its delay has passed. A scheduler, not a wait:
/// it ticks every 2 ms to start, kill and reap on time, and fails if a
/// process outlives [`CLI_TIMEOUT`].
fn run_round(warehouse: &Path, procs: &mut [Proc]) {
    let t0 = Instant::now();
    while !procs.iter().all(Proc::done) {
        let now = Instant::now();
        if let Some(hung) = procs
            .iter()
            .find(|p| p.child.is_some() && p.started.is_some_and(|s| now - s > CLI_TIMEOUT))
        {
            panic!(
                "{} ran longer than {CLI_TIMEOUT:?}: {:?}",
                hung.label, hung.args
            );
        }
        for p in procs.iter_mut() {
            if p.started.is_none() && now >= t0 + p.start_at {
                let stderr = File::create(&p.stderr).expect("a stderr file");
                let child = TIDELAKE
                    .command(warehouse)
                    .args(&p.args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .expect("the tidelake binary starts");
                p.child = Some(child);
                p.started = Some(now);
            }
            let (Some(child), Some(started)) = (p.child.as_mut(), p.started) else {
                continue;
            };
            if p.kill_after.is_some_and(|d| now >= started + d) {
                // Fails only if the process was already reaped; it was not.
                child.kill().expect("SIGKILL is delivered");
                p.kill_after = None;
            }
            if let Some(status) = child.try_wait().expect("the child can be waited for") {
                p.status = Some(status);
                p.ran_for = started.elapsed();
                p.child = None;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

// --------------------------------------------------------------- reading

/// What a snapshot must read: the model's state when it was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    rows: i64,
    keys: i64,
    sum_v: i64,
    mix: i64,
    dt_mix: i64,
    bad_pad: i64,
}

impl Fingerprint {
    fn of(state: &State) -> Fingerprint {
        let mut f = Fingerprint {
            rows: state.len() as i64,
            keys: state.len() as i64,
            sum_v: 0,
            mix: 0,
            dt_mix: 0,
            bad_pad: 0,
        };
        for ((id, dt), v) in state {
            f.sum_v += v;
            // Truncating `%`, as SQL's.
            f.mix += (id * 1_000_003 + v * 7_919) % 999_983;
            f.dt_mix += i64::from(dt.as_bytes()[0]) * id;
        }
        f
    }

    fn query(snapshot: i64) -> String {
        format!(
            "SELECT 'F{snapshot}' AS q, count(*) AS n_rows, \
             count(DISTINCT concat(dt, ':', CAST(id AS VARCHAR))) AS n_keys, \
             COALESCE(sum(v), 0) AS sum_v, \
             COALESCE(sum((id * 1000003 + v * 7919) % 999983), 0) AS mix, \
             COALESCE(sum(ascii(dt) * id), 0) AS dt_mix, \
             COALESCE(sum(CASE WHEN pad = concat('p', CAST(v AS VARCHAR), '{FILL}') THEN 0 ELSE 1 END), 0) AS bad_pad \
             FROM db.t VERSION AS OF {snapshot}"
        )
    }
}

/// The rows of one read, checked for duplicate keys and well-formed values.
fn rows_to_state(rows: &[Vec<String>]) -> Result<State, String> {
    let mut state = State::new();
    for row in rows {
        let [_, id, dt, v, p] = row.as_slice() else {
            return Err(format!("a row with {} columns: {row:?}", row.len()));
        };
        let id: i64 = id.parse().map_err(|e| format!("id {id:?}: {e}"))?;
        let v: i64 = v.parse().map_err(|e| format!("v {v:?} of id {id}: {e}"))?;
        if *p != pad(v) {
            return Err(format!("row ({id}, {dt}): pad {p:?} does not match v {v}"));
        }
        if state.insert((id, dt.clone()), v).is_some() {
            return Err(format!("key ({id}, {dt}) read twice"));
        }
    }
    Ok(state)
}

/// A difference between two states, briefly.
fn diff(expected: &State, actual: &State) -> String {
    let mut lines = Vec::new();
    for (key, v) in expected {
        match actual.get(key) {
            None => lines.push(format!("missing {key:?} (v {v})")),
            Some(a) if a != v => lines.push(format!("{key:?}: v {a}, expected {v}")),
            Some(_) => {}
        }
    }
    for (key, v) in actual {
        if !expected.contains_key(key) {
            lines.push(format!("unexpected {key:?} (v {v})"));
        }
    }
    let total = lines.len();
    lines.truncate(12);
    format!(
        "{total} differences ({} rows expected, {} read): {}",
        expected.len(),
        actual.len(),
        lines.join("; ")
    )
}

// ---------------------------------------------------------------- harness

#[derive(Debug, Default)]
struct Stats {
    writers_killed: usize,
    /// Writers killed after some but not all of their commits.
    writers_killed_midway: usize,
    /// Writers killed after all their commits (yet unacknowledged).
    writers_killed_after_commit: usize,
    maintenance_run: usize,
    maintenance_killed: usize,
    maintenance_conflicts: usize,
    append_snapshots: usize,
    compact_snapshots: usize,
    orphans_removed: usize,
}

struct Crash {
    variant: &'static Variant,
    seed: u64,
    /// Rounds completed.
    round: usize,
    /// In the final checks (orphans, full compaction).
    finishing: bool,
    rng: Rng,
    _dir: tempfile::TempDir,
    warehouse: PathBuf,
    /// The table after every commit so far.
    model: State,
    /// Ids deleted from the model and not re-inserted.
    deleted: BTreeSet<i64>,
    next_id: i64,
    /// The newest snapshot seen so far (0: none).
    last_snapshot: i64,
    /// What each listed snapshot must read.
    expected: BTreeMap<i64, Rc<State>>,
    /// Durations of recent uninterrupted runs, to aim the kills.
    writer_estimate: Duration,
    maintenance_estimate: Duration,
    stats: Stats,
}

impl Crash {
    fn new(variant: &'static Variant, seed: u64) -> Crash {
        let dir = tempfile::tempdir().expect("a temporary warehouse");
        let warehouse = dir.path().join("warehouse");
        let variant_seed = seed ^ (variant.name.len() as u64).wrapping_mul(0x1000_0000_01B3);
        let crash = Crash {
            variant,
            seed,
            round: 0,
            finishing: false,
            rng: Rng::new(variant_seed),
            _dir: dir,
            warehouse,
            model: State::new(),
            deleted: BTreeSet::new(),
            next_id: 1,
            last_snapshot: 0,
            expected: BTreeMap::new(),
            writer_estimate: Duration::from_millis(400),
            maintenance_estimate: Duration::from_millis(300),
            stats: Stats::default(),
        };
        let options: Vec<String> = COMMON_OPTIONS
            .iter()
            .chain(variant.options)
            .map(|(k, v)| format!("'{k}' = '{v}'"))
            .collect();
        let create = format!(
            "CREATE TABLE db.t (id BIGINT NOT NULL, dt STRING NOT NULL, v BIGINT, pad STRING, \
             PRIMARY KEY (id, dt) NOT ENFORCED) PARTITIONED BY (dt) WITH ({})",
            options.join(", ")
        );
        let output = TIDELAKE.run(
            TIDELAKE.command(&crash.warehouse).args([
                "sql",
                "-e",
                "CREATE DATABASE db",
                "-e",
                &create,
            ]),
            "",
        );
        if !output.status.success() {
            crash.fail(format!("CREATE TABLE failed: {}", output.stderr));
        }
        crash
    }

    /// Panics with what failed and how to replay it.
    fn fail(&self, message: impl AsRef<str>) -> ! {
        let (when, rounds) = if self.finishing {
            (format!("after all {} rounds", self.round), self.round)
        } else {
            (format!("round {}", self.round + 1), self.round + 1)
        };
        panic!(
            "crash test '{}', seed {}, {when}: {}\n\
             replay: TIDELAKE_CRASH_SEED={} TIDELAKE_CRASH_ROUNDS={rounds} \
             cargo nextest run --workspace -E 'binary_id(tidelake::it) & test(/^crash::{}$/)'",
            self.variant.name,
            self.seed,
            message.as_ref(),
            self.seed,
            self.variant.name
        )
    }

    /// Runs SQL statements (csv output); every query's first column `q`
    /// tags its rows, so the rows come back grouped by tag.
    fn query(&self, statements: &[String]) -> BTreeMap<String, Vec<Vec<String>>> {
        let mut command = TIDELAKE.command(&self.warehouse);
        command.args(["sql", "--format", "csv"]);
        for s in statements {
            command.arg("-e").arg(s);
        }
        let output = TIDELAKE.run(&mut command, "");
        if !output.status.success() {
            self.fail(format!(
                "a read failed: {}\nstatements: {}",
                output.stderr.trim(),
                statements.join("; ")
            ));
        }
        let text = output.stdout;
        let mut grouped: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for line in text.lines() {
            // Headers start with the tag column's name; values never contain
            // commas or quotes.
            if line.is_empty() || line.starts_with("q,") {
                continue;
            }
            let fields: Vec<String> = line.split(',').map(str::to_string).collect();
            grouped.entry(fields[0].clone()).or_default().push(fields);
        }
        grouped
    }

    /// The snapshots listed, oldest first, and the latest rows.
    fn read_latest(&self) -> (Vec<(i64, String)>, State) {
        let grouped = self.query(&[
            "SELECT 'L' AS q, snapshot_id, commit_kind FROM db.t$snapshots ORDER BY snapshot_id"
                .to_string(),
            "SELECT 'R' AS q, id, dt, v, pad FROM db.t".to_string(),
        ]);
        let snapshots = grouped
            .get("L")
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let id = r
                            .get(1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_else(|| self.fail(format!("a snapshot row {r:?}")));
                        (id, r.get(2).cloned().unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rows = grouped.get("R").map(Vec::as_slice).unwrap_or_default();
        let state =
            rows_to_state(rows).unwrap_or_else(|e| self.fail(format!("the latest snapshot: {e}")));
        (snapshots, state)
    }

    /// Every listed snapshot must still read what it read when committed,
    /// by fingerprint (`exact`: row by row).
    fn check_snapshots(&self, listed: &[(i64, String)], exact: bool, when: &str) {
        let ids: Vec<i64> = listed.iter().map(|(id, _)| *id).collect();
        let queries: Vec<String> = ids
            .iter()
            .map(|id| {
                if exact {
                    format!("SELECT '{id}' AS q, id, dt, v, pad FROM db.t VERSION AS OF {id}")
                } else {
                    Fingerprint::query(*id)
                }
            })
            .collect();
        let grouped = self.query(&queries);
        for id in ids {
            let Some(expected) = self.expected.get(&id) else {
                self.fail(format!(
                    "{when}: snapshot {id} is listed but was never seen committed"
                ));
            };
            if exact {
                let rows = grouped
                    .get(&id.to_string())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let actual = rows_to_state(rows)
                    .unwrap_or_else(|e| self.fail(format!("{when}: snapshot {id}: {e}")));
                if actual != **expected {
                    self.fail(format!(
                        "{when}: snapshot {id} reads wrong: {}",
                        diff(expected, &actual)
                    ));
                }
            } else {
                let row = grouped
                    .get(&format!("F{id}"))
                    .and_then(|rows| rows.first())
                    .unwrap_or_else(|| self.fail(format!("{when}: no fingerprint of {id}")));
                let number = |i: usize| -> i64 {
                    row.get(i)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| self.fail(format!("fingerprint row {row:?}")))
                };
                let actual = Fingerprint {
                    rows: number(1),
                    keys: number(2),
                    sum_v: number(3),
                    mix: number(4),
                    dt_mix: number(5),
                    bad_pad: number(6),
                };
                let want = Fingerprint::of(expected);
                if actual != want {
                    self.fail(format!(
                        "{when}: snapshot {id} reads wrong: fingerprint {actual:?}, expected {want:?}"
                    ));
                }
            }
        }
    }

    /// A writer's script for round `k`: an INSERT, then maybe a DELETE and
    /// an UPDATE in either order.
    fn script(&mut self, k: i64) -> Vec<Stmt> {
        let live: Vec<i64> = self
            .model
            .keys()
            .filter(|(_, dt)| dt != MARKER_DT)
            .map(|(id, _)| *id)
            .collect();
        let mut rows: BTreeMap<Key, i64> = BTreeMap::new();
        let base = k * 1_000_000;
        let fresh = self.rng.range(60, 400) as i64;
        for id in self.next_id..self.next_id + fresh {
            rows.insert(
                (id, dt_of(id).to_string()),
                base + self.rng.below(100_000) as i64,
            );
        }
        self.next_id += fresh;
        let overwrites = if live.is_empty() {
            0
        } else {
            self.rng.below(200)
        };
        for _ in 0..overwrites {
            let id = live[self.rng.below(live.len() as u64) as usize];
            rows.insert(
                (id, dt_of(id).to_string()),
                base + self.rng.below(100_000) as i64,
            );
        }
        let deleted: Vec<i64> = self.deleted.iter().copied().collect();
        for _ in 0..self.rng.below(deleted.len().min(20) as u64 + 1) {
            let id = deleted[self.rng.below(deleted.len() as u64) as usize];
            rows.insert(
                (id, dt_of(id).to_string()),
                base + self.rng.below(100_000) as i64,
            );
        }
        rows.insert((-k, MARKER_DT.to_string()), k);
        let mut rows: Vec<(Key, i64)> = rows.into_iter().collect();
        self.rng.shuffle(&mut rows);
        let mut script = vec![Stmt::Insert { rows }];

        let mut more = Vec::new();
        if live.len() > 10 && self.rng.chance(0.5) {
            let count = self.rng.range(1, 80);
            let mut ids: BTreeSet<i64> = (0..count)
                .map(|_| live[self.rng.below(live.len() as u64) as usize])
                .collect();
            // An id that never existed: deleting it must change nothing.
            ids.insert(self.next_id + 1_000_000);
            more.push(Stmt::Delete {
                ids: ids.into_iter().collect(),
            });
        }
        if live.len() > 10 && self.rng.chance(0.35) {
            let lo = live[self.rng.below(live.len() as u64) as usize];
            let hi = lo + self.rng.range(1, 300) as i64;
            more.push(Stmt::Update {
                lo,
                hi,
                base: base + 500_000,
            });
        }
        self.rng.shuffle(&mut more);
        script.extend(more);
        script
    }

    fn round(&mut self) {
        let k = self.round as i64 + 1;
        // The model after each prefix of the script; a statement that
        // would change nothing is left out, as it may commit nothing.
        let mut script = Vec::new();
        let mut prefixes = vec![Rc::new(self.model.clone())];
        for stmt in self.script(k) {
            let mut next = (**prefixes.last().expect("prefix 0")).clone();
            stmt.apply(&mut next);
            if next != **prefixes.last().expect("prefix 0") {
                script.push(stmt);
                prefixes.push(Rc::new(next));
            }
        }
        let sql: Vec<String> = script.iter().map(Stmt::sql).collect();
        let dir = self.warehouse.with_file_name(format!("round-{k}"));
        std::fs::create_dir_all(&dir).expect("a round folder");
        let file = dir.join("writer.sql");
        std::fs::write(&file, sql.join(";\n") + ";\n").expect("the script is written");

        // Kills land anywhere in a process's life, including just after it
        // finished (then nothing happens).
        let writer_kill = self
            .rng
            .chance(0.55)
            .then(|| self.writer_estimate.mul_f64(self.rng.unit() * 1.15));
        let mut procs = vec![Proc {
            label: "writer",
            args: vec![
                "sql".into(),
                "-f".into(),
                file.to_string_lossy().into_owned(),
            ],
            start_at: Duration::ZERO,
            kill_after: writer_kill,
            stderr: dir.join("writer.err"),
            child: None,
            started: None,
            status: None,
            ran_for: Duration::ZERO,
        }];
        let mut maintenance = None;
        if self.rng.chance(self.variant.maintenance_chance) {
            let [minor, full, expire] = self.variant.maintenance_weights;
            let pick = self.rng.below(minor + full + expire);
            let kind = if pick < minor {
                Maintenance::CompactMinor
            } else if pick < minor + full {
                Maintenance::CompactFull
            } else {
                Maintenance::Expire
            };
            maintenance = Some(kind);
            let start_at = self.writer_estimate.mul_f64(self.rng.unit() * 0.9);
            let kill_after = self
                .rng
                .chance(0.5)
                .then(|| self.maintenance_estimate.mul_f64(self.rng.unit() * 1.15));
            procs.push(Proc {
                label: "maintenance",
                args: kind.args(),
                start_at,
                kill_after,
                stderr: dir.join("maintenance.err"),
                child: None,
                started: None,
                status: None,
                ran_for: Duration::ZERO,
            });
        }
        run_round(&self.warehouse, &mut procs);

        let writer = &procs[0];
        let writer_ending = writer.ending();
        match writer_ending {
            Ending::Acknowledged => {
                self.writer_estimate =
                    self.writer_estimate.mul_f64(0.7) + writer.ran_for.mul_f64(0.3);
            }
            Ending::Killed => self.stats.writers_killed += 1,
            Ending::Failed(code) => self.fail(format!(
                "the writer ({}) failed with status {code} without being killed: {}",
                script
                    .iter()
                    .map(Stmt::label)
                    .collect::<Vec<_>>()
                    .join(", "),
                writer.stderr_text().trim()
            )),
            Ending::NotRun => unreachable!("the writer always runs"),
        }
        if let (Some(kind), Some(p)) = (maintenance, procs.get(1)) {
            self.stats.maintenance_run += 1;
            match p.ending() {
                Ending::Acknowledged => {
                    self.maintenance_estimate =
                        self.maintenance_estimate.mul_f64(0.7) + p.ran_for.mul_f64(0.3);
                }
                Ending::Killed => self.stats.maintenance_killed += 1,
                // Racing compactions (inline and dedicated) may conflict;
                // the loser must say so and change nothing.
                Ending::Failed(_) if p.stderr_text().contains("error[40001]") => {
                    self.stats.maintenance_conflicts += 1;
                }
                Ending::Failed(code) => self.fail(format!(
                    "{kind:?} ({}) failed with status {code} without being killed: {}",
                    p.label,
                    p.stderr_text().trim()
                )),
                Ending::NotRun => unreachable!("started processes end"),
            }
        }

        self.resolve(&script, &prefixes, writer_ending);
        self.round += 1;
    }

    /// Works out which of the writer's statements committed, from the
    /// snapshots and the rows, and checks that the table agrees with itself.
    fn resolve(&mut self, script: &[Stmt], prefixes: &[Rc<State>], writer: Ending) {
        let (listed, latest) = self.read_latest();
        let new: Vec<&(i64, String)> = listed
            .iter()
            .filter(|(id, _)| *id > self.last_snapshot)
            .collect();
        let mut committed = 0;
        for (expected_id, (id, kind)) in (self.last_snapshot + 1..).zip(new.iter()) {
            if *id != expected_id {
                self.fail(format!(
                    "new snapshots are not consecutive: {expected_id} expected, {id} listed (all: {listed:?})"
                ));
            }
            match kind.as_str() {
                "APPEND" => {
                    committed += 1;
                    self.stats.append_snapshots += 1;
                    if committed > script.len() {
                        self.fail(format!(
                            "{committed} APPEND snapshots from a script of {} statements",
                            script.len()
                        ));
                    }
                }
                "COMPACT" => self.stats.compact_snapshots += 1,
                other => self.fail(format!("snapshot {id} of unexpected kind {other}")),
            }
            self.expected.insert(*id, prefixes[committed].clone());
        }
        if let Some((latest_id, _)) = listed.last() {
            self.last_snapshot = self.last_snapshot.max(*latest_id);
        }
        let statements = || {
            script
                .iter()
                .map(Stmt::label)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if writer == Ending::Acknowledged && committed != script.len() {
            self.fail(format!(
                "the writer exited 0 but only {committed} of its statements committed ({})",
                statements()
            ));
        }
        if latest != *prefixes[committed] {
            let matching: Vec<usize> = (0..prefixes.len())
                .filter(|i| *prefixes[*i] == latest)
                .collect();
            self.fail(format!(
                "after {committed} committed statements of ({}), writer {writer:?}, the latest \
                 snapshot reads wrong (it matches the prefixes {matching:?}): {}",
                statements(),
                diff(&prefixes[committed], &latest)
            ));
        }
        if writer == Ending::Killed {
            if committed == script.len() {
                self.stats.writers_killed_after_commit += 1;
            } else if committed > 0 {
                self.stats.writers_killed_midway += 1;
            }
        }
        // Ids the committed statements deleted or re-inserted.
        for stmt in &script[..committed] {
            match stmt {
                Stmt::Delete { ids } => self.deleted.extend(ids.iter().copied()),
                Stmt::Insert { rows } => {
                    for ((id, _), _) in rows {
                        self.deleted.remove(id);
                    }
                }
                Stmt::Update { .. } => {}
            }
        }
        self.deleted.retain(|id| *id < self.next_id);
        self.model = (*prefixes[committed]).clone();
        // Forget expired snapshots; an expired snapshot never comes back.
        let still: BTreeSet<i64> = listed.iter().map(|(id, _)| *id).collect();
        self.expected.retain(|id, _| still.contains(id));
        self.check_snapshots(&listed, false, "after the round");
    }

    /// Backdates every file past the orphan safety margin (one day), removes
    /// orphans, and checks that the table reads the same.
    fn remove_orphans(&mut self) {
        let table = self.warehouse.join("db.db").join("t");
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
        let mut files = Vec::new();
        collect_files(&table, &mut files);
        for path in &files {
            let file = File::open(path).expect("a table file opens");
            file.set_modified(two_days_ago).expect("mtime is settable");
        }
        let now_millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_millis();
        let call = |dry_run: bool| {
            format!(
                "CALL sys.remove_orphan_files(table => 'db.t', older_than => '{now_millis}', dry_run => {dry_run})"
            )
        };
        let listing = |dry_run: bool| -> Vec<String> {
            let output = TIDELAKE.run(
                TIDELAKE.command(&self.warehouse).args([
                    "sql",
                    "--format",
                    "csv",
                    "-e",
                    &call(dry_run),
                ]),
                "",
            );
            if !output.status.success() {
                self.fail(format!(
                    "remove_orphan_files failed: {}",
                    output.stderr.trim()
                ));
            }
            let mut paths: Vec<String> =
                output.stdout.lines().skip(1).map(str::to_string).collect();
            paths.sort();
            paths
        };
        let planned = listing(true);
        let removed = listing(false);
        if planned != removed {
            self.fail(format!(
                "remove_orphan_files removed {removed:?} after a dry run listed {planned:?}"
            ));
        }
        for path in &removed {
            let name = path.rsplit('/').next().unwrap_or_default();
            let data = path.contains("/bucket-") && name.starts_with("data-");
            let manifest = path.contains("/manifest/") && name.starts_with("manifest");
            if !data && !manifest {
                self.fail(format!(
                    "remove_orphan_files removed {path}, not a data or manifest file"
                ));
            }
        }
        let again = listing(true);
        if !again.is_empty() {
            self.fail(format!("orphans left after removal: {again:?}"));
        }
        self.stats.orphans_removed = removed.len();
    }

    fn finish(&mut self) {
        self.finishing = true;
        let (listed, latest) = self.read_latest();
        if latest != self.model {
            self.fail(format!("at the end: {}", diff(&self.model, &latest)));
        }
        self.check_snapshots(&listed, true, "at the end");

        self.remove_orphans();
        let (listed, latest) = self.read_latest();
        if latest != self.model {
            self.fail(format!(
                "after orphan removal: {}",
                diff(&self.model, &latest)
            ));
        }
        self.check_snapshots(&listed, true, "after orphan removal");

        let output = TIDELAKE.run(
            TIDELAKE
                .command(&self.warehouse)
                .args(["compact", "db.t", "--full"]),
            "",
        );
        if !output.status.success() {
            self.fail(format!(
                "the last full compaction failed: {}",
                output.stderr.trim()
            ));
        }
        let (listed, latest) = self.read_latest();
        for (id, kind) in listed.iter().filter(|(id, _)| *id > self.last_snapshot) {
            if kind != "COMPACT" {
                self.fail(format!(
                    "the full compaction made snapshot {id} of kind {kind}"
                ));
            }
            self.expected.insert(*id, Rc::new(self.model.clone()));
        }
        if latest != self.model {
            self.fail(format!(
                "after the full compaction: {}",
                diff(&self.model, &latest)
            ));
        }
        self.check_snapshots(&listed, false, "after the full compaction");
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a table folder lists") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(n) => Some(n),
        Err(e) => panic!("{name}={text:?}: {e}"),
    }
}

fn crash_test(variant: &'static Variant) {
    let seed = env_number("TIDELAKE_CRASH_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let rounds = env_number("TIDELAKE_CRASH_ROUNDS").map_or(DEFAULT_ROUNDS, |n| n as usize);
    eprintln!(
        "crash test '{}': seed {seed}, {rounds} rounds (TIDELAKE_CRASH_SEED / TIDELAKE_CRASH_ROUNDS)",
        variant.name
    );
    let started = Instant::now();
    let mut crash = Crash::new(variant, seed);
    for _ in 0..rounds {
        crash.round();
    }
    crash.finish();
    eprintln!(
        "crash test '{}': {rounds} rounds in {:.1?}, {} rows at the end, {:?}",
        variant.name,
        started.elapsed(),
        crash.model.len(),
        crash.stats
    );
    // A run that never killed anything proves little.
    if rounds >= 10 && crash.stats.writers_killed + crash.stats.maintenance_killed == 0 {
        crash.fail("no process was killed: the kill delays miss the processes");
    }
}

#[test]
fn dedicated_compactor() {
    crash_test(&DEDICATED);
}

#[test]
fn inline_compaction() {
    crash_test(&INLINE);
}
