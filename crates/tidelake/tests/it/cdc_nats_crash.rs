//! Crash safety of `tidelake cdc nats`: a publisher appends Maxwell JSON
//! change messages (multi-row source transactions, the last row marked
//! `"commit": true`) to a JetStream stream while the real process is
//! SIGKILLed at seeded random points and started again; it resumes by the
//! stream sequence its tables recorded in their snapshots' properties.
//!
//! Kill points, one per round by the seed: a random instant after the
//! start (reading the backlog or following the publisher), or the moment a
//! new snapshot of `items` or of `ledger` appears (between the commit and
//! the next group).
//!
//! Checks, after a last run caught up with the whole stream:
//! - `ods.items` equals what the publisher's model holds (updates, deletes
//!   and re-inserts of random keys);
//! - `ods.ledger` (insert-only, one row per transaction) holds every
//!   transaction once, and its changelog (`changelog-producer = input`) one
//!   record per row: a message applied twice would add a second record;
//! - the sequence a table records never goes back.
//!
//! Replay with `TIDELAKE_CDC_CRASH_SEED=<seed>`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use tidelake_testkit::cli::latest_snapshot;
use tidelake_testkit::process::Spawned;
use tidelake_testkit::rng::{seed, Rng};
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::cdc_crash::{changelog_records, snapshots};
use crate::TIDELAKE;

const SERVER: &str = "127.0.0.1:4222";
const STREAM: &str = "tl_cli_cdc_nats_crash";
/// Transactions in the stream before the first run: a backlog to be
/// killed while reading.
const BACKLOG: u64 = 400;
const ROUNDS: usize = 8;
/// Keys of `items` the transactions pick from.
const KEYS: u64 = 300;
const PATIENCE: Duration = Duration::from_secs(90);

/// What the published messages amount to.
#[derive(Default)]
struct Model {
    /// id -> (v, s)
    items: BTreeMap<u64, (u64, String)>,
    /// xid -> note
    ledger: BTreeMap<u64, String>,
    xid: u64,
}

impl Model {
    /// One source transaction as Maxwell messages: a few changes of
    /// `items` and a ledger row, the last message marked as the commit.
    fn transaction(&mut self, rng: &mut Rng) -> Vec<String> {
        self.xid += 1;
        let xid = self.xid;
        let message = |table: &str, kind: &str, data: String, old: Option<String>| {
            let old = old.map(|o| format!(",\"old\":{o}")).unwrap_or_default();
            let key = if table == "items" { "id" } else { "xid" };
            format!(
                "{{\"database\":\"shop\",\"table\":\"{table}\",\"type\":\"{kind}\",\"ts\":1700000000,\
                 \"xid\":{xid},\"data\":{data}{old},\"primary_key_columns\":[\"{key}\"]"
            )
        };
        let row = |id: u64, v: u64, s: &str| format!("{{\"id\":{id},\"v\":{v},\"s\":\"{s}\"}}");
        let mut messages = Vec::new();
        for _ in 0..rng.range(1, 5) {
            let id = rng.below(KEYS);
            let v = rng.range(1, 1_000_000);
            let s = format!("x{xid}");
            match self.items.get(&id).cloned() {
                None => {
                    messages.push(message("items", "insert", row(id, v, &s), None));
                    self.items.insert(id, (v, s));
                }
                Some((old_v, old_s)) if rng.chance(0.75) => {
                    let old = format!("{{\"v\":{old_v},\"s\":\"{old_s}\"}}");
                    messages.push(message("items", "update", row(id, v, &s), Some(old)));
                    self.items.insert(id, (v, s));
                }
                Some((old_v, old_s)) => {
                    messages.push(message("items", "delete", row(id, old_v, &old_s), None));
                    self.items.remove(&id);
                }
            }
        }
        let note = format!("n{}", rng.below(1000));
        messages.push(message(
            "ledger",
            "insert",
            format!("{{\"xid\":{xid},\"note\":\"{note}\"}}"),
            None,
        ));
        self.ledger.insert(xid, note);
        let n = messages.len();
        messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                if i + 1 == n {
                    format!("{m},\"commit\":true}}")
                } else {
                    format!("{m}}}")
                }
            })
            .collect()
    }

    fn items(&self) -> Vec<String> {
        let mut rows: Vec<String> = self
            .items
            .iter()
            .map(|(id, (v, s))| format!("{id}:{v}:{s}"))
            .collect();
        rows.sort();
        rows
    }

    fn ledger(&self) -> Vec<String> {
        let mut rows: Vec<String> = self
            .ledger
            .iter()
            .map(|(xid, note)| format!("{xid}:{note}"))
            .collect();
        rows.sort();
        rows
    }
}

/// Publishes `messages` in order, each acknowledged (stored) before the next.
async fn publish(js: &jetstream::Context, messages: Vec<String>) {
    for message in messages {
        js.publish(format!("{STREAM}.shop"), message.into())
            .await
            .expect("publish")
            .await
            .expect("the stream stores the message");
    }
}

/// The publisher: the backlog at once, then transactions every few
/// milliseconds until stopped; returns the model of everything published.
struct Publisher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Model>,
}

impl Publisher {
    fn start(rng: &mut Rng) -> Publisher {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut model = Model::default();
        let js = runtime.block_on(async {
            let client = async_nats::connect(SERVER)
                .await
                .expect("NATS on 127.0.0.1:4222");
            let js = jetstream::new(client);
            let _ = js.delete_stream(STREAM).await;
            js.create_stream(stream::Config {
                name: STREAM.to_string(),
                subjects: vec![format!("{STREAM}.>")],
                ..Default::default()
            })
            .await
            .expect("the stream is created");
            js
        });
        let mut backlog = Vec::new();
        for _ in 0..BACKLOG {
            backlog.extend(model.transaction(rng));
        }
        runtime.block_on(publish(&js, backlog));
        let stop = Arc::new(AtomicBool::new(false));
        let mut rng = Rng::new(rng.next_u64());
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(AtomicOrdering::Relaxed) {
                let messages = model.transaction(&mut rng);
                runtime.block_on(publish(&js, messages));
                std::thread::sleep(Duration::from_millis(rng.range(2, 12)));
            }
            model
        });
        Publisher { stop, thread }
    }

    fn stop(self) -> Model {
        self.stop.store(true, AtomicOrdering::Relaxed);
        self.thread.join().expect("the publisher panicked")
    }
}

fn start(warehouse: &Path, extra: &[&str]) -> Spawned {
    let mut command = TIDELAKE.command(warehouse);
    command
        .args(["cdc", "nats", "--server", SERVER, "--stream", STREAM])
        .args(["--format", "maxwell-json", "--database", "ods"])
        .args(["--commit-interval", "200ms"])
        .args(["--table-conf", "changelog-producer=input"])
        .args(extra);
    Spawned::start(&mut command)
}

fn lake_items(warehouse: &Path) -> Vec<String> {
    TIDELAKE.query_csv(
        warehouse,
        "SELECT concat(id, ':', v, ':', s) AS r FROM ods.items",
    )
}

fn lake_ledger(warehouse: &Path) -> Vec<String> {
    TIDELAKE.query_csv(
        warehouse,
        "SELECT concat(xid, ':', note) AS r FROM ods.ledger",
    )
}

/// The recorded sequence never goes back from one snapshot to the next.
fn assert_sequences_advance(warehouse: &Path, table: &str) {
    let mut last = 0u64;
    let mut seen = false;
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
        let sequence: u64 = position
            .strip_prefix("seq=")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("ods.{table}: position {position} is not seq=N"));
        assert!(
            sequence >= last,
            "ods.{table}: snapshot {} records {position} after seq={last}",
            snapshot["id"]
        );
        last = sequence;
        seen = true;
    }
    assert!(seen, "ods.{table} records no position");
}

// Seed 12 found a loss (a table that never committed was not read again
// from the start of the stream); keep it replayable.
#[test]
fn cdc_nats_killed_at_random_points_loses_and_repeats_nothing() {
    let seed = seed("cdc_crash_nats", "TIDELAKE_CDC_CRASH_SEED");
    let mut rng = Rng::new(seed);
    let dir = KeptOnFailure::new("cdc-nats-crash");
    let warehouse = dir.path();
    let publisher = Publisher::start(&mut rng);
    let mut log = Vec::new();
    for round in 1..=ROUNDS {
        let mut child = start(warehouse, &[]);
        let point = match rng.below(3) {
            0 => {
                let delay = rng.range(100, 2_000);
                std::thread::sleep(Duration::from_millis(delay));
                format!("+{delay} ms")
            }
            table => {
                let table = if table == 1 { "items" } else { "ledger" };
                let before = latest_snapshot(warehouse, "ods", table).unwrap_or(0);
                let deadline = Instant::now() + PATIENCE;
                while latest_snapshot(warehouse, "ods", table).unwrap_or(0) <= before {
                    assert!(
                        Instant::now() < deadline && child.try_status().is_none(),
                        "round {round}: no new snapshot of ods.{table}; stderr:\n{}",
                        child.stderr()
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                format!("{table} commit")
            }
        };
        assert!(
            child.try_status().is_none(),
            "round {round}: tidelake cdc nats exited by itself; stderr:\n{}",
            child.stderr()
        );
        child.kill();
        log.push(point);
    }
    let model = publisher.stop();
    eprintln!(
        "seed {seed}: kills {log:?}; {} transactions published",
        model.xid
    );

    // The last run catches up (polled, as the other crash tests do); then
    // it is stopped with SIGTERM.
    let mut child = start(warehouse, &[]);
    let expected_ledger = model.ledger();
    let expected_items = model.items();
    let deadline = Instant::now() + PATIENCE;
    let (mut items, mut ledger);
    loop {
        (items, ledger) = (lake_items(warehouse), lake_ledger(warehouse));
        if (items == expected_items && ledger == expected_ledger)
            || Instant::now() > deadline
            || child.try_status().is_some()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    child.signal("TERM");
    let finished = child.finish(PATIENCE);
    assert!(
        finished.status.success(),
        "seed {seed}: the last run: {}\n{}",
        finished.status,
        finished.stderr
    );
    assert_eq!(
        ledger.len(),
        expected_ledger.len(),
        "seed {seed}: ods.ledger rows; kills {log:?}"
    );
    assert!(
        ledger == expected_ledger,
        "seed {seed}: ods.ledger differs from the published transactions; kills {log:?}"
    );
    if items != expected_items {
        let (missing, extra) = crate::cdc_crash::first_differences(&expected_items, &items);
        panic!(
            "seed {seed}: ods.items ({} rows) differs from the model ({} rows): missing or different {missing:?}, extra or different {extra:?}; kills {log:?}",
            items.len(),
            expected_items.len()
        );
    }
    assert_eq!(
        changelog_records(warehouse, "ledger"),
        expected_ledger.len() as i64,
        "seed {seed}: ods.ledger's changelog holds a record per transaction, none twice; kills {log:?}"
    );
    assert_sequences_advance(warehouse, "items");
    assert_sequences_advance(warehouse, "ledger");
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    client.block_on(async {
        if let Ok(c) = async_nats::connect(SERVER).await {
            let _ = jetstream::new(c).delete_stream(STREAM).await;
        }
    });
}
