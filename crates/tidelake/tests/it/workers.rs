//! Workers end to end: `tidelake serve` processes sharing the jobs declared
//! with `CREATE JOB` in one warehouse, on local disk and on S3 (the
//! loopback moto server).
//!
//! - Three workers run ten jobs while a writer commits to the source; one
//!   worker, chosen by the seed, is SIGKILLed after a seeded number of
//!   rounds. The other two take its jobs over (after the lease TTL), and at
//!   the end every sink equals its query run in batch: nothing lost, nothing
//!   counted twice. Every worker journals its lease claims; no two workers
//!   ever held one job's lease at once.
//! - A worker with `--idle-exit` and nothing to do exits; a job declared
//!   meanwhile is pending until a new worker starts and runs it.
//!
//! The seed is printed on stderr; replay with `TIDELAKE_WORKERS_SEED=<seed>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tidelake_testkit::moto::{MotoServer, BUCKET};
use tidelake_testkit::process::Spawned;
use tidelake_testkit::rng::{seed, Rng};
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::TIDELAKE;

const TIMEOUT: Duration = Duration::from_secs(120);
const SEED_VAR: &str = "TIDELAKE_WORKERS_SEED";
/// Jobs per run: with one of three workers killed, the two left hold them
/// all in their slots.
const JOBS: usize = 10;
const SLOTS: &str = "5";

/// The warehouse the workers share: a local folder, or a prefix of a bucket
/// on the loopback S3 server (configured through the `AWS_*` environment of
/// every process, as a deployment would). Lease journals stay local.
struct Lake {
    uri: String,
    env: Vec<(&'static str, String)>,
    /// How often workers look for new jobs: S3 listings cost more.
    poll: &'static str,
    _moto: Option<MotoServer>,
}

impl Lake {
    fn local(dir: &Path) -> Lake {
        Lake {
            uri: dir.display().to_string(),
            env: Vec::new(),
            poll: "50ms",
            _moto: None,
        }
    }

    fn s3(moto: MotoServer) -> Lake {
        let env = vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", moto.port),
            ),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ];
        Lake {
            uri: format!("s3://{BUCKET}/lake"),
            env,
            poll: "250ms",
            _moto: Some(moto),
        }
    }

    fn command(&self) -> Command {
        let mut command = TIDELAKE.bare();
        command.arg("--warehouse").arg(&self.uri);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn sql(&self, statements: &[&str]) {
        let mut command = self.command();
        command.arg("sql");
        for statement in statements {
            command.arg("-e").arg(statement);
        }
        let done = TIDELAKE.run(&mut command, "");
        assert!(
            done.status.success(),
            "tidelake failed ({}) on:\n  {}\nstderr:\n{}",
            done.status,
            statements.join("\n  "),
            done.stderr
        );
    }

    /// The rows of a query as sorted CSV lines, without the header.
    fn query(&self, q: &str) -> Vec<String> {
        let mut command = self.command();
        command.args(["sql", "--format", "csv", "-e", q]);
        let done = TIDELAKE.run(&mut command, "");
        assert!(done.status.success(), "{q}: {}", done.stderr);
        let mut rows: Vec<String> = done.stdout.lines().skip(1).map(str::to_string).collect();
        rows.sort();
        rows
    }

    /// A worker: `tidelake serve` on free ports, journaling its leases.
    fn worker(&self, id: &str, journal: &Path, extra: &[&str]) -> Spawned {
        let mut command = self.command();
        command
            .args(["serve", "--pg", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--worker-id", id, "--worker-slots", SLOTS])
            .args(["--lease-ttl", "3s", "--job-poll-interval", self.poll])
            .arg("--lease-journal")
            .arg(journal)
            .args(extra);
        let mut child = Spawned::start(&mut command);
        child.expect_stdout("worker: ", TIMEOUT);
        child
    }
}

/// The jobs: (name, statement, sink query, batch query).
fn jobs() -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for i in 0..JOBS / 2 {
        out.push((
            format!("agg{i}"),
            format!("INSERT INTO db.agg{i} SELECT k, count(*), sum(v) FROM db.src WHERE v % 5 = {i} GROUP BY k"),
            format!("SELECT k, n, s FROM db.agg{i}"),
            format!("SELECT k, count(*), sum(v) FROM db.src WHERE v % 5 = {i} GROUP BY k"),
        ));
        out.push((
            format!("copy{i}"),
            format!("INSERT INTO db.copy{i} SELECT id, k, v * 10 FROM db.src WHERE v % 5 = {i}"),
            format!("SELECT id, k, v FROM db.copy{i}"),
            format!("SELECT id, k, v * 10 FROM db.src WHERE v % 5 = {i}"),
        ));
    }
    out
}

fn create_tables(lake: &Lake) {
    let mut statements = vec![
        "CREATE DATABASE db".to_string(),
        "CREATE TABLE db.src (id BIGINT, k STRING, v BIGINT)".to_string(),
    ];
    for i in 0..JOBS / 2 {
        statements.push(format!(
            "CREATE TABLE db.agg{i} (k STRING NOT NULL, n BIGINT, s BIGINT, PRIMARY KEY (k) NOT ENFORCED) \
             WITH ('bucket' = '1', 'merge-engine' = 'aggregation', \
             'fields.n.aggregate-function' = 'sum', 'fields.s.aggregate-function' = 'sum')"
        ));
        statements.push(format!(
            "CREATE TABLE db.copy{i} (id BIGINT NOT NULL, k STRING, v BIGINT, PRIMARY KEY (id) NOT ENFORCED) \
             WITH ('bucket' = '2')"
        ));
    }
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    lake.sql(&refs);
}

/// Waits until every job's sink equals its batch query.
fn sinks_converge(lake: &Lake, workers: &mut [Option<Spawned>]) {
    let deadline = Instant::now() + TIMEOUT;
    for (name, _, sink, batch) in jobs() {
        loop {
            let (got, want) = (lake.query(&sink), lake.query(&batch));
            if got == want {
                break;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = workers.iter_mut().flatten().map(|w| w.stderr()).collect();
                panic!(
                    "job {name}: sink {got:?} != batch {want:?}\njobs: {:?}\nworker logs:\n{}",
                    lake.query("SELECT name, state, owner, lag, last_error FROM sys.jobs"),
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One line of a lease journal.
struct Claim {
    holder: String,
    epoch: u64,
    from: i64,
    until: i64,
    release: bool,
}

/// Checks that no two workers held one lease at once: per lease, in epoch
/// order, a holder's period runs from its take to its last claim's end
/// (or its release), and the next holder's starts no earlier.
fn leases_never_overlap(journals: &[PathBuf]) -> usize {
    let mut by_lease: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
    for path in journals {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 7, "journal line {line:?}");
            if f[0] != "job" {
                continue;
            }
            by_lease.entry(f[1].to_string()).or_default().push(Claim {
                holder: f[2].to_string(),
                epoch: f[3].parse().unwrap(),
                from: f[4].parse().unwrap(),
                until: f[5].parse().unwrap(),
                release: f[6] == "release",
            });
        }
    }
    let mut handovers = 0;
    for (lease, mut claims) in by_lease {
        claims.sort_by_key(|c| c.epoch);
        // (holder, end of its current period)
        let mut current: Option<(String, i64)> = None;
        for c in &claims {
            match &mut current {
                Some((holder, end)) if *holder == c.holder => {
                    *end = if c.release {
                        c.from
                    } else {
                        (*end).max(c.until)
                    };
                }
                Some((holder, end)) => {
                    assert!(
                        !c.release && *end <= c.from,
                        "lease {lease}: {holder} held it until {end}, but {} took it at {} (epoch {})",
                        c.holder,
                        c.from,
                        c.epoch
                    );
                    handovers += 1;
                    current = Some((c.holder.clone(), c.until));
                }
                None => current = Some((c.holder.clone(), c.until)),
            }
        }
    }
    handovers
}

#[test]
fn three_workers_run_jobs_and_a_killed_ones_jobs_move_on() {
    let dir = KeptOnFailure::new("workers");
    three_workers_with_a_kill(
        &Lake::local(dir.path()),
        dir.path(),
        "three_workers_run_jobs",
    );
}

#[test]
fn three_workers_on_s3_run_jobs_and_a_killed_ones_jobs_move_on() {
    let Some(moto) = MotoServer::start_or_skip() else {
        return;
    };
    let dir = KeptOnFailure::new("workers-s3");
    three_workers_with_a_kill(&Lake::s3(moto), dir.path(), "three_workers_on_s3");
}

/// Three workers on `lake` run the jobs while rows arrive; a seeded one is
/// killed; the sinks converge and leases never overlap. Journals go to
/// `local`.
fn three_workers_with_a_kill(lake: &Lake, local: &Path, seed_name: &str) {
    let seed = seed(seed_name, SEED_VAR);
    let mut rng = Rng::new(seed);
    create_tables(lake);
    for (name, statement, _, _) in jobs() {
        lake.sql(&[&format!("CREATE JOB {name} AS {statement}")]);
    }
    let journals: Vec<PathBuf> = (0..3).map(|i| local.join(format!("journal-{i}"))).collect();
    let mut workers: Vec<Option<Spawned>> = (0..3)
        .map(|i| Some(lake.worker(&format!("w{i}"), &journals[i], &[])))
        .collect();
    let rounds = 8;
    let kill_after = rng.range(1, rounds - 2);
    let victim = rng.below(3) as usize;
    let mut id = 0;
    for round in 0..rounds {
        let rows: Vec<String> = (0..rng.range(1, 20))
            .map(|_| {
                id += 1;
                format!("({id}, 'k{}', {})", rng.below(4), rng.below(100))
            })
            .collect();
        lake.sql(&[&format!("INSERT INTO db.src VALUES {}", rows.join(", "))]);
        if round == kill_after {
            if let Some(mut killed) = workers[victim].take() {
                eprintln!("round {round}: SIGKILL worker w{victim}");
                let _ = killed.kill();
            }
        }
        std::thread::sleep(Duration::from_millis(rng.range(50, 600)));
    }
    sinks_converge(lake, &mut workers);
    // Every job runs on a survivor.
    let owners = lake.query("SELECT DISTINCT owner FROM sys.jobs WHERE state = 'RUNNING'");
    assert!(
        !owners.is_empty() && owners.iter().all(|o| o != &format!("w{victim}")),
        "owners after the kill: {owners:?}"
    );
    for child in workers.iter_mut().flatten() {
        child.signal("TERM");
        assert!(child.wait_exit(TIMEOUT).is_some_and(|s| s.success()));
    }
    let handovers = leases_never_overlap(&journals);
    eprintln!(
        "seed {seed}: worker w{victim} killed after round {kill_after}; {handovers} handovers"
    );
    // The victim held at least its share of the jobs, which moved.
    assert!(handovers > 0);
}

#[test]
fn an_idle_worker_exits_and_a_new_one_picks_up_pending_work() {
    let dir = KeptOnFailure::new("idle-worker");
    let lake = Lake::local(dir.path());
    let journal = dir.path().join("journal");
    let mut idle = lake.worker("idle", &journal, &["--idle-exit", "1s"]);
    let status = idle.wait_exit(TIMEOUT).expect("the idle worker exits");
    assert!(status.success(), "stderr: {}", idle.stderr());
    assert!(idle.stdout().contains("idle for"), "{}", idle.stdout());

    create_tables(&lake);
    let (name, statement, sink, batch) = jobs().remove(0);
    lake.sql(&[&format!("CREATE JOB {name} AS {statement}")]);
    lake.sql(&["INSERT INTO db.src VALUES (1, 'a', 3), (2, 'a', 6), (3, 'b', 9)"]);
    assert_eq!(
        lake.query("SELECT name, state FROM sys.jobs"),
        [format!("{name},PENDING")]
    );
    let mut fresh = lake.worker("fresh", &journal, &["--idle-exit", "1s"]);
    let deadline = Instant::now() + TIMEOUT;
    while lake.query(&sink) != lake.query(&batch) {
        assert!(
            Instant::now() < deadline,
            "the new worker did not run the job: {}",
            fresh.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Holding a job, it is not idle.
    assert!(fresh.try_status().is_none());
    fresh.signal("TERM");
    assert!(fresh.wait_exit(TIMEOUT).is_some_and(|s| s.success()));
}

/// The sample Kubernetes manifest passes a strict schema validation
/// (`kubernetes-validate`, from the test venv); it is never applied.
#[test]
fn the_sample_kubernetes_manifest_is_valid() {
    let Some(python) = tidelake_testkit::python::or_skip("the Kubernetes manifest check") else {
        return;
    };
    let manifest = tidelake_testkit::python::workspace_root().join("deploy/kubernetes.yaml");
    let mut command = std::process::Command::new(python);
    command
        .args(["-m", "kubernetes_validate", "--strict"])
        .arg(&manifest);
    let done = tidelake_testkit::process::run(&mut command, "", TIMEOUT);
    assert!(
        done.status.success(),
        "kubernetes-validate refused {}:\n{}\n{}",
        manifest.display(),
        done.stdout,
        done.stderr
    );
    assert_eq!(
        done.stdout.matches("passed for resource").count(),
        2,
        "{}",
        done.stdout
    );
}
