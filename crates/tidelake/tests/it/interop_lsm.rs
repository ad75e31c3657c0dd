//! Interop after LSM maintenance: after any mix of writes and compactions
//! (universal, full, inline), on every merge engine, pypaimon 2.1,
//! pypaimon-rust 0.4 and Tidelake must read exactly the rows of an
//! independent model of the table, at several snapshots, including tables
//! with files above level 0.
//!
//! Each case is a row of a table: columns, keys, options, the writer
//! (Tidelake SQL through the CLI, or pypaimon) and a script of steps
//! (commits, compactions, checks). A `Check` step records the latest
//! snapshot with the model's rows at that point and asserts the levels of
//! its live files (as pypaimon plans them); at the end every recorded
//! snapshot is read by each implementation (time travel) and by Tidelake.
//! An implementation that cannot read a case is listed with the error it
//! raises, and that error is asserted, so the test notices when the
//! limitation is lifted.
//!
//! The model (`Model`, in `tidelake_testkit::oracle::lsm_model`) implements Paimon's merge
//! semantics directly from the table options, version by version, with none
//! of the engine's associativity tricks.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use tidelake_testkit::oracle::lsm_model::*;
use tidelake_testkit::oracle::*;
use tidelake_testkit::process::run;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::json_sql;

// ---------------------------------------------------------------- cases

#[derive(Clone, Copy, Debug, PartialEq)]
enum Writer {
    /// SQL through the CLI.
    Tidelake,
    /// pypaimon 2.1 through the oracle, one commit per step.
    Pypaimon,
}

/// What the live files of a checked snapshot must look like.
#[derive(Clone, Copy, Debug)]
enum Levels {
    /// Only level-0 files (nothing compacted yet).
    OnlyZero,
    /// Some file above level 0.
    SomeAbove,
    /// Files at level 0 and above it.
    Mixed,
    /// No level-0 file left (after a full compaction).
    NoneAtZero,
    /// No level-0 file, and the files above it hold more rows than the
    /// table shows: deletion vectors hide the others.
    Vectors,
}

enum Step {
    /// One commit adding rows (INSERT INTO ... VALUES, or a pypaimon commit).
    Upsert(Vec<Vec<V>>),
    /// One commit deleting the visible rows whose first column is one of
    /// these ids (DELETE ... WHERE id IN, or pypaimon `-D` rows).
    Delete(Vec<i64>),
    /// `CALL sys.compact` with this `compact_strategy` (or none); it must
    /// commit a compaction.
    Compact(Option<&'static str>),
    /// Every implementation reads the latest snapshot (at the end, by time
    /// travel); its files must have these levels.
    Check(Levels),
}

struct Case {
    name: &'static str,
    columns: &'static [(&'static str, &'static str)],
    primary_key: &'static [&'static str],
    partition_keys: &'static [&'static str],
    options: &'static [(&'static str, &'static str)],
    writer: Writer,
    steps: Vec<Step>,
    /// Implementations that cannot read this table: (implementation, the
    /// error text they fail with). Proven at the last check.
    unreadable: &'static [(&'static str, &'static str)],
    /// Paimon's batch reads skip level-0 files of this table (Java's
    /// `CoreOptions.batchScanSkipLevel0`: first-row tables, and deletion
    /// vectors without merge-on-read), so pypaimon and pypaimon-rust see
    /// the table as of its last full compaction, while Tidelake reads every
    /// level.
    paimon_skips_level0: bool,
}

impl Case {
    fn create_sql(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|(name, t)| format!("{name} {t}"))
            .collect();
        let mut sql = format!(
            "CREATE TABLE {DATABASE}.{} ({}, PRIMARY KEY ({}) NOT ENFORCED)",
            self.name,
            columns.join(", "),
            self.primary_key.join(", ")
        );
        if !self.partition_keys.is_empty() {
            sql += &format!(" PARTITIONED BY ({})", self.partition_keys.join(", "));
        }
        let options: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("'{k}' = '{v}'"))
            .collect();
        sql + &format!(" WITH ({})", options.join(", "))
    }

    fn row_json(&self, row: &[V]) -> Json {
        Json::Obj(
            self.columns
                .iter()
                .zip(row)
                .map(|((name, _), v)| (name.to_string(), v.json()))
                .collect(),
        )
    }

    fn insert_sql(&self, rows: &[Vec<V>]) -> String {
        let rows: Vec<String> = rows
            .iter()
            .map(|row| {
                assert_eq!(row.len(), self.columns.len(), "{}: row width", self.name);
                let cells: Vec<String> = row
                    .iter()
                    .zip(self.columns)
                    .map(|(v, (_, t))| v.sql(t.trim_end_matches(" NOT NULL")))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {DATABASE}.{} VALUES {}",
            self.name,
            rows.join(", ")
        )
    }

    /// One pypaimon commit of `(kind, row)` entries (creating the table first).
    fn pypaimon_write(&self, warehouse: &Path, entries: &[(&str, Vec<V>)]) -> Json {
        let commit = entries
            .iter()
            .map(|(kind, row)| Json::obj([("kind", Json::str(*kind)), ("row", self.row_json(row))]))
            .collect();
        let spec = Json::obj([
            ("database", Json::str(DATABASE)),
            ("table", Json::str(self.name)),
            ("fields", fields(self.columns)),
            ("primary_keys", Json::strs(self.primary_key.iter().copied())),
            (
                "partition_keys",
                Json::strs(self.partition_keys.iter().copied()),
            ),
            (
                "options",
                Json::obj(self.options.iter().map(|(k, v)| (*k, Json::str(*v)))),
            ),
            ("commits", Json::Arr(vec![Json::Arr(commit)])),
        ]);
        Json::obj([
            ("op", Json::str("write")),
            ("warehouse", Json::str(warehouse.to_string_lossy())),
            ("spec", spec),
        ])
    }

    fn check_job(&self, label: String, expected: &[Vec<V>], actual: Json) -> Json {
        Json::obj([
            ("op", Json::str("check")),
            ("label", Json::Str(label)),
            ("fields", fields(self.columns)),
            (
                "expected",
                Json::Arr(expected.iter().map(|r| self.row_json(r)).collect()),
            ),
            ("primary_keys", Json::strs(self.primary_key.iter().copied())),
            (
                "partition_keys",
                Json::strs(self.partition_keys.iter().copied()),
            ),
            ("actual", actual),
        ])
    }
}

// ------------------------------------------------------------ the runner

/// One live data file as pypaimon plans it.
#[derive(Debug)]
struct FileInfo {
    partition: String,
    bucket: i64,
    level: i64,
    rows: i64,
}

fn live_files(python: &Path, warehouse: &Path, table: &str, snapshot: u64) -> Vec<FileInfo> {
    let mut command = Command::new(python);
    command
        .arg(oracle_script())
        .arg("files")
        .arg("--warehouse")
        .arg(warehouse)
        .arg("--table")
        .arg(format!("{DATABASE}.{table}"))
        .arg("--snapshot")
        .arg(snapshot.to_string());
    let finished = run(&mut command, "", ORACLE_TIMEOUT);
    assert!(
        finished.status.success(),
        "listing the files of {table} failed:\n{}",
        finished.stderr
    );
    finished
        .stdout
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split('\t').collect();
            assert_eq!(parts.len(), 5, "odd file line {line:?}");
            let number = |text: &str| -> i64 {
                text.parse()
                    .unwrap_or_else(|e| panic!("{text:?} in {line:?}: {e}"))
            };
            FileInfo {
                partition: parts[0].to_string(),
                bucket: number(parts[1]),
                level: number(parts[2]),
                rows: number(parts[3]),
            }
        })
        .collect()
}

/// `shown`: the rows the table shows at that snapshot.
fn assert_levels(label: &str, files: &[FileInfo], levels: Levels, shown: usize) {
    let at_zero = files.iter().filter(|f| f.level == 0).count();
    let above = files.len() - at_zero;
    let mut histogram: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    for f in files {
        histogram
            .entry((f.partition.clone(), f.bucket))
            .or_default()
            .push(f.level);
    }
    eprintln!("{label}: levels of live files per (partition, bucket): {histogram:?}");
    let ok = match levels {
        Levels::OnlyZero => above == 0 && at_zero > 0,
        Levels::SomeAbove => above > 0,
        Levels::Mixed => above > 0 && at_zero > 0,
        Levels::NoneAtZero => above > 0 && at_zero == 0,
        Levels::Vectors => {
            let stored: i64 = files.iter().map(|f| f.rows).sum();
            eprintln!("{label}: {stored} rows stored, {shown} shown");
            above > 0 && at_zero == 0 && stored > shown as i64
        }
    };
    assert!(ok, "{label}: expected {levels:?} files, got {histogram:?}");
}

/// The number after `"files_in":` in the procedure's JSON output.
fn files_in(output: &str) -> Option<u64> {
    let rest = &output[output.find("\"files_in\":")? + "\"files_in\":".len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A checked snapshot: the model's rows, what Paimon's readers must see,
/// and what Tidelake's SELECT * returned right then.
struct Checked {
    snapshot: u64,
    rows: Vec<Vec<V>>,
    paimon_rows: Vec<Vec<V>>,
    own_read: String,
}

fn run_case(case: Case) {
    let Some(python) = python() else { return };
    let dir = KeptOnFailure::new(case.name);
    let warehouse = dir.path();
    let table = case.name;
    let select = |snapshot: Option<u64>| match snapshot {
        Some(id) => format!("SELECT * FROM {DATABASE}.{table} VERSION AS OF {id}"),
        None => format!("SELECT * FROM {DATABASE}.{table}"),
    };
    if case.writer == Writer::Tidelake {
        json_sql(
            warehouse,
            &[
                &format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
                &case.create_sql(),
            ],
        );
    }
    let mut model = Model::new(case.columns, case.primary_key, case.options);
    let deletion_vectors = case.options.contains(&("deletion-vectors.enabled", "true"));
    // The rows as of the last full compaction: what readers that skip
    // level 0 see.
    let mut compacted: Vec<Vec<V>> = Vec::new();
    let mut checks: Vec<Checked> = Vec::new();
    for (number, step) in case.steps.iter().enumerate() {
        let at = format!("{table} step {number}");
        let before = latest_snapshot(warehouse, table);
        match step {
            Step::Upsert(rows) => {
                match case.writer {
                    Writer::Tidelake => {
                        json_sql(warehouse, &[&case.insert_sql(rows)]);
                    }
                    Writer::Pypaimon => {
                        let entries: Vec<(&str, Vec<V>)> =
                            rows.iter().map(|r| ("+I", r.clone())).collect();
                        oracle(&python, vec![case.pypaimon_write(warehouse, &entries)]);
                    }
                }
                for row in rows {
                    model.write(row.clone(), true);
                }
            }
            Step::Delete(ids) => {
                let deleted = model.rows_with_ids(ids);
                assert!(!deleted.is_empty(), "{at}: deletes nothing");
                match case.writer {
                    Writer::Tidelake => {
                        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                        json_sql(
                            warehouse,
                            &[&format!(
                                "DELETE FROM {DATABASE}.{table} WHERE {} IN ({})",
                                case.columns[0].0,
                                list.join(", ")
                            )],
                        );
                    }
                    Writer::Pypaimon => {
                        let entries: Vec<(&str, Vec<V>)> =
                            deleted.iter().map(|r| ("-D", r.clone())).collect();
                        oracle(&python, vec![case.pypaimon_write(warehouse, &entries)]);
                    }
                }
                // A delete carries the whole row it deletes (its sequence field too).
                for row in deleted {
                    model.write(row, false);
                }
            }
            Step::Compact(strategy) => {
                let call = match strategy {
                    Some(s) => format!(
                        "CALL sys.compact(table => '{DATABASE}.{table}', compact_strategy => '{s}')"
                    ),
                    None => format!("CALL sys.compact(table => '{DATABASE}.{table}')"),
                };
                let output = json_sql(warehouse, &[&call]);
                assert!(
                    files_in(&output).is_some_and(|n| n > 0),
                    "{at}: {call} compacted nothing: {output}"
                );
                // Compactions of deletion-vector tables take every level-0
                // file, so readers see all committed rows after any of them.
                assert!(
                    *strategy == Some("full") || !case.paimon_skips_level0 || deletion_vectors,
                    "{at}: the model knows what level-0-skipping readers see only after full compactions"
                );
                if *strategy == Some("full") {
                    model.compact_fully();
                }
                compacted = model.rows();
            }
            Step::Check(levels) => {
                let snapshot = before.unwrap_or_else(|| panic!("{at}: no snapshot to check"));
                let files = live_files(&python, warehouse, table, snapshot);
                // With deletion vectors Tidelake's reads skip level 0 too.
                let rows = if case.paimon_skips_level0 && deletion_vectors {
                    compacted.clone()
                } else {
                    model.rows()
                };
                let label = format!("{at} (snapshot {snapshot})");
                assert_levels(&label, &files, *levels, rows.len());
                checks.push(Checked {
                    snapshot,
                    rows,
                    paimon_rows: if case.paimon_skips_level0 {
                        compacted.clone()
                    } else {
                        model.rows()
                    },
                    own_read: json_sql(warehouse, &[&select(None)]),
                });
                continue;
            }
        }
        let after = latest_snapshot(warehouse, table);
        assert!(
            after > before,
            "{at}: no new snapshot (before {before:?}, after {after:?})"
        );
    }

    let mut jobs = Vec::new();
    let last = checks.last().expect("a case checks at least once").snapshot;
    for Checked {
        snapshot,
        rows,
        paimon_rows,
        own_read,
    } in &checks
    {
        jobs.push(case.check_job(
            format!("{table} snapshot {snapshot}: Tidelake's SELECT * then"),
            rows,
            canon_job(own_read),
        ));
        // Older snapshots stay readable after compaction (their files remain).
        let travelled = json_sql(warehouse, &[&select(Some(*snapshot))]);
        jobs.push(case.check_job(
            format!("{table} snapshot {snapshot}: Tidelake's VERSION AS OF"),
            rows,
            canon_job(&travelled),
        ));
        for implementation in IMPLEMENTATIONS {
            let read = read_job(warehouse, table, implementation, Some(*snapshot));
            match case.unreadable.iter().find(|(i, _)| *i == implementation) {
                Some((_, error)) if *snapshot == last => jobs.push(Json::obj([
                    ("op", Json::str("check")),
                    (
                        "label",
                        Json::Str(format!(
                            "{table} snapshot {snapshot}: {implementation} fails as documented"
                        )),
                    ),
                    ("fields", fields(case.columns)),
                    ("expected", Json::Arr(Vec::new())),
                    ("expect_error", Json::str(*error)),
                    ("actual", read),
                ])),
                Some(_) => {}
                None => jobs.push(case.check_job(
                    format!("{table} snapshot {snapshot} read by {implementation}"),
                    paimon_rows,
                    read,
                )),
            }
        }
    }
    oracle(&python, jobs);
}

// ---------------------------------------------------------------- the cases

/// Row `id` at `version` of the wide tables: `dt` follows from `id`, one
/// value column is NULL in turn, `name` is long enough to give files sizes
/// that grow with their rows.
fn wide_row(id: i64, version: i64) -> Vec<V> {
    let null_at = (id + version) % 5;
    let cell = |i: i64, v: V| if i == null_at { V::Null } else { v };
    vec![
        V::Int(id),
        V::Str(format!("p{}", id % 2)),
        cell(
            0,
            V::Str(format!("v{version}-{}", noise(id * 31 + version, 40))),
        ),
        cell(1, V::Dec(id * 100 + version * 7 - 5_000)),
        cell(2, V::Ts((id * 13 + version * 1_440) % (28 * 1_440))),
        cell(3, V::Int(version * 1_000 + id)),
    ]
}

const WIDE: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL"),
    ("dt", "STRING NOT NULL"),
    ("name", "STRING"),
    ("amount", "DECIMAL(12, 2)"),
    ("ts", "TIMESTAMP(3)"),
    ("n", "INT"),
];

fn wide_rows(ids: impl IntoIterator<Item = i64>, version: i64) -> Step {
    Step::Upsert(ids.into_iter().map(|id| wide_row(id, version)).collect())
}

/// Case 1: a partitioned primary-key table in 2 buckets per partition,
/// compacted only on request: universal compaction (level > 0 files next
/// to level-0 ones), more writes, universal again, a full compaction, then
/// more deletes and upserts on top.
#[test]
fn deduplicate_after_universal_and_full_compaction() {
    run_case(Case {
        name: "pk_compacted",
        columns: WIDE,
        primary_key: &["id", "dt"],
        partition_keys: &["dt"],
        options: &[("bucket", "2"), ("write-only", "true")],
        writer: Writer::Tidelake,
        steps: vec![
            // One large commit (within the 128 KiB limit of one CLI argument).
            wide_rows(0..600, 0),
            wide_rows((0..600).step_by(41), 1),
            Step::Delete(vec![3, 100, 250, 401]),
            wide_rows((20..30).chain(1200..1204), 2),
            wide_rows((5..600).step_by(37), 3),
            Step::Delete(vec![20, 21, 350, 1201]),
            Step::Check(Levels::OnlyZero),
            Step::Compact(None),
            Step::Check(Levels::SomeAbove),
            wide_rows((1..600).step_by(29), 4),
            wide_rows((2..600).step_by(31), 5),
            Step::Delete(vec![2, 33, 64]),
            wide_rows((3..600).step_by(43), 6),
            wide_rows((0..40).chain(1300..1310), 7),
            Step::Check(Levels::Mixed),
            Step::Compact(Some("minor")),
            Step::Check(Levels::SomeAbove),
            wide_rows((0..1310).step_by(17), 8),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
            Step::Delete(vec![0, 17, 34, 1305, 1200]),
            wide_rows([34, 5000], 9),
            Step::Delete(vec![51]),
            Step::Check(Levels::Mixed),
        ],
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 2: writers compact inline once a bucket has 2 sorted runs.
#[test]
fn deduplicate_with_inline_compaction() {
    run_case(Case {
        name: "pk_inline",
        columns: WIDE,
        primary_key: &["id"],
        partition_keys: &[],
        options: &[("bucket", "2"), ("num-sorted-run.compaction-trigger", "2")],
        writer: Writer::Tidelake,
        steps: vec![
            wide_rows(0..60, 0),
            Step::Check(Levels::OnlyZero),
            // Two runs are no reason to compact (no size amplification, no
            // similar sizes, not more runs than the trigger); three are.
            wide_rows((0..60).step_by(3), 1),
            Step::Check(Levels::OnlyZero),
            wide_rows((1..60).step_by(5), 2),
            Step::Check(Levels::SomeAbove),
            Step::Delete(vec![3, 4, 5]),
            wide_rows((0..70).step_by(7), 3),
            Step::Delete(vec![14, 63]),
            Step::Check(Levels::SomeAbove),
        ],
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

const PARTIAL: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL"),
    ("a", "INT"),
    ("b", "STRING"),
    ("c", "DECIMAL(12, 2)"),
    ("ts", "TIMESTAMP(3)"),
];

/// A partial-update row: `None` cells stay NULL, which keeps old values.
fn partial(id: i64, a: Option<i64>, b: Option<&str>, c: Option<i64>, ts: Option<i64>) -> Vec<V> {
    vec![
        V::Int(id),
        a.map_or(V::Null, V::Int),
        b.map_or(V::Null, s),
        c.map_or(V::Null, V::Dec),
        ts.map_or(V::Null, V::Ts),
    ]
}

fn partial_steps() -> Vec<Step> {
    vec![
        Step::Upsert(
            [
                partial(1, Some(1), Some("a1"), None, None),
                partial(2, None, Some("b2"), Some(200), None),
                partial(3, Some(3), None, None, Some(3)),
            ]
            .into_iter()
            .chain((4..30).map(|id| partial(id, Some(id), Some("full"), Some(id * 11), Some(id))))
            .collect(),
        ),
        Step::Upsert(vec![
            partial(1, None, None, Some(150), Some(10)),
            partial(2, Some(22), None, None, None),
            partial(5, None, None, None, None),
            partial(6, Some(-6), None, None, None),
        ]),
        Step::Upsert(vec![
            partial(7, None, Some("seven"), None, None),
            partial(31, None, None, Some(-3_100), None),
        ]),
        Step::Check(Levels::OnlyZero),
        Step::Compact(Some("full")),
        Step::Check(Levels::NoneAtZero),
        Step::Upsert(vec![
            partial(1, Some(100), None, None, None),
            partial(3, None, Some("c3"), None, None),
            partial(40, None, Some("new"), None, None),
        ]),
        Step::Upsert(vec![
            partial(2, None, None, None, Some(99)),
            partial(1, None, Some("a1b"), None, None),
        ]),
        Step::Check(Levels::Mixed),
        Step::Compact(Some("full")),
        Step::Check(Levels::NoneAtZero),
    ]
}

/// Case 3: partial-update (NULLs keep old values), before and after
/// compaction.
#[test]
fn partial_update_before_and_after_compaction() {
    run_case(Case {
        name: "partial",
        columns: PARTIAL,
        primary_key: &["id"],
        partition_keys: &[],
        options: &[("bucket", "2"), ("merge-engine", "partial-update")],
        writer: Writer::Tidelake,
        steps: partial_steps(),
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

const AGGREGATED: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL"),
    ("dt", "STRING NOT NULL"),
    ("total", "BIGINT"),
    ("amount", "DECIMAL(12, 2)"),
    ("hi", "INT"),
    ("lo", "TIMESTAMP(3)"),
    ("note", "STRING"),
    ("first_note", "STRING"),
    ("last", "STRING"),
];

const AGGREGATION_OPTIONS: &[(&str, &str)] = &[
    ("bucket", "2"),
    ("merge-engine", "aggregation"),
    ("fields.total.aggregate-function", "sum"),
    ("fields.amount.aggregate-function", "sum"),
    ("fields.hi.aggregate-function", "max"),
    ("fields.lo.aggregate-function", "min"),
    (
        "fields.first_note.aggregate-function",
        "first_non_null_value",
    ),
    ("fields.last.aggregate-function", "last_value"),
];

/// Contribution `version` to key `id`; some cells NULL in turn (NULLs add
/// nothing to sums and do not replace non-null values).
fn aggregated(id: i64, version: i64) -> Vec<V> {
    let null_at = (id + version) % 7;
    let cell = |i: i64, v: V| if i == null_at { V::Null } else { v };
    vec![
        V::Int(id),
        V::Str(format!("p{}", id % 2)),
        cell(0, V::Int(id * 3 - version)),
        cell(1, V::Dec(version * 125 - id)),
        cell(2, V::Int((id * 7 + version * 5) % 23 - 11)),
        cell(3, V::Ts((id * 17 + version * 29) % 500)),
        cell(4, V::Str(format!("note {id}.{version}"))),
        cell(5, V::Str(format!("first {id}.{version}"))),
        cell(6, V::Str(format!("last {id}.{version}"))),
    ]
}

fn aggregation_steps() -> Vec<Step> {
    let commit = |ids: Vec<i64>, version: i64| {
        Step::Upsert(ids.into_iter().map(|id| aggregated(id, version)).collect())
    };
    vec![
        commit((0..40).collect(), 0),
        commit((0..40).step_by(3).collect(), 1),
        commit(vec![1, 1, 2, 50], 2),
        Step::Check(Levels::OnlyZero),
        Step::Compact(Some("full")),
        Step::Check(Levels::NoneAtZero),
        commit((0..60).step_by(4).collect(), 3),
        commit(vec![2, 3, 5, 7, 11], 4),
        Step::Check(Levels::Mixed),
        Step::Compact(Some("full")),
        commit(vec![3, 60], 5),
        Step::Check(Levels::Mixed),
    ]
}

/// Case 4: aggregation with sum, max, min, last_non_null_value (the
/// default), first_non_null_value and last_value fields, before and after
/// compaction.
#[test]
fn aggregation_before_and_after_compaction() {
    run_case(Case {
        name: "aggregated",
        columns: AGGREGATED,
        primary_key: &["id", "dt"],
        partition_keys: &["dt"],
        options: AGGREGATION_OPTIONS,
        writer: Writer::Tidelake,
        steps: aggregation_steps(),
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 4b: the same with `fields.hi.ignore-retract`, an option pypaimon
/// 2.1 refuses to read (it implements no retraction opt-in), so only
/// pypaimon-rust and Tidelake read it; pypaimon's refusal is asserted.
#[test]
fn aggregation_with_ignore_retract_excludes_pypaimon() {
    run_case(Case {
        name: "aggregated_ignore_retract",
        columns: AGGREGATED,
        primary_key: &["id", "dt"],
        partition_keys: &["dt"],
        options: &[
            ("bucket", "2"),
            ("merge-engine", "aggregation"),
            ("fields.total.aggregate-function", "sum"),
            ("fields.amount.aggregate-function", "sum"),
            ("fields.hi.aggregate-function", "max"),
            ("fields.hi.ignore-retract", "true"),
            ("fields.lo.aggregate-function", "min"),
            (
                "fields.first_note.aggregate-function",
                "first_non_null_value",
            ),
            ("fields.last.aggregate-function", "last_value"),
        ],
        writer: Writer::Tidelake,
        steps: aggregation_steps(),
        unreadable: &[(
            "pypaimon",
            "options that pypaimon does not yet implement: fields.hi.ignore-retract",
        )],
        paimon_skips_level0: false,
    });
}

const SMALL: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL"),
    ("ver", "BIGINT"),
    ("v", "STRING"),
];

fn small(id: i64, ver: i64, v: &str) -> Vec<V> {
    vec![V::Int(id), V::Int(ver), s(v)]
}

/// Case 5a: first-row keeps the first version written of each key.
/// Paimon's batch reads skip level 0 of first-row tables, so writers
/// compact level 0 at every commit; a `write-only` writer leaves level-0
/// files, which Tidelake's reader reads and Paimon's do not: before a full
/// compaction pypaimon and pypaimon-rust see less than Tidelake. Asserted
/// both ways, so a change on either side shows here.
#[test]
fn first_row_write_only_before_and_after_compaction() {
    run_case(Case {
        name: "first_row",
        columns: SMALL,
        primary_key: &["id"],
        partition_keys: &[],
        options: &[
            ("bucket", "2"),
            ("merge-engine", "first-row"),
            ("write-only", "true"),
        ],
        writer: Writer::Tidelake,
        steps: vec![
            Step::Upsert((0..20).map(|id| small(id, 0, "first")).collect()),
            Step::Upsert(vec![
                small(1, 1, "second"),
                small(25, 1, "first"),
                small(25, 2, "second in the same commit"),
            ]),
            Step::Check(Levels::OnlyZero),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
            Step::Upsert(vec![small(2, 3, "late"), small(30, 3, "first")]),
            Step::Check(Levels::Mixed),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
        ],
        unreadable: &[],
        paimon_skips_level0: true,
    });
}

/// Case 5a': a first-row writer that compacts inline takes every level-0
/// file at each commit, so Paimon's level-0-skipping readers see every
/// committed row at once.
#[test]
fn first_row_inline_compaction_is_visible_to_paimon_at_once() {
    run_case(Case {
        name: "first_row_inline",
        columns: SMALL,
        primary_key: &["id"],
        partition_keys: &[],
        options: &[("bucket", "2"), ("merge-engine", "first-row")],
        writer: Writer::Tidelake,
        steps: vec![
            Step::Upsert((0..20).map(|id| small(id, 0, "first")).collect()),
            Step::Check(Levels::NoneAtZero),
            Step::Upsert(vec![
                small(1, 1, "second"),
                small(25, 1, "first"),
                small(25, 2, "second in the same commit"),
            ]),
            Step::Check(Levels::NoneAtZero),
            Step::Upsert(vec![small(2, 3, "late"), small(30, 3, "first")]),
            Step::Check(Levels::NoneAtZero),
        ],
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 5b: deduplicate ordered by `sequence.field`: a lower `ver` written
/// later loses, and a delete (which carries the deleted row's `ver`) hides
/// later writes with a lower `ver` until a full compaction drops it.
#[test]
fn sequence_field_before_and_after_compaction() {
    run_case(Case {
        name: "sequenced",
        columns: SMALL,
        primary_key: &["id"],
        partition_keys: &[],
        options: &[("bucket", "2"), ("sequence.field", "ver")],
        writer: Writer::Tidelake,
        steps: vec![
            Step::Upsert((0..20).map(|id| small(id, 10, "ten")).collect()),
            Step::Upsert(vec![
                small(1, 5, "older, loses"),
                small(2, 11, "newer, wins"),
                small(3, 10, "same ver, later, wins"),
            ]),
            Step::Delete(vec![4, 5]),
            Step::Upsert(vec![small(4, 8, "below the delete, hidden")]),
            Step::Check(Levels::OnlyZero),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
            Step::Upsert(vec![
                small(4, 9, "below the compacted delete, shows"),
                small(5, 12, "above the delete, shows"),
                small(2, 3, "older, loses"),
            ]),
            Step::Check(Levels::Mixed),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
        ],
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

// ------------------------------------------- (6) pypaimon writes, Tidelake compacts

const KINDED: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL"),
    ("dt", "STRING NOT NULL"),
    ("v", "STRING"),
    ("n", "INT"),
    ("_kind", "STRING"),
];

fn kinded(id: i64, version: i64) -> Vec<V> {
    vec![
        V::Int(id),
        V::Str(format!("p{}", id % 2)),
        V::Str(format!("v{version}")),
        if (id + version) % 4 == 0 {
            V::Null
        } else {
            V::Int(id * 10 + version)
        },
        // pypaimon takes row kinds from this column (and fills it).
        s("+I"),
    ]
}

/// Case 6a: pypaimon writes a deduplicate table (upserts and deletes over
/// several commits); Tidelake compacts it; everybody reads the same rows.
#[test]
fn pypaimon_writes_deduplicate_tidelake_compacts() {
    let commit = |ids: Vec<i64>, version: i64| {
        Step::Upsert(ids.into_iter().map(|id| kinded(id, version)).collect())
    };
    run_case(Case {
        name: "py_dedup",
        columns: KINDED,
        primary_key: &["id", "dt"],
        partition_keys: &["dt"],
        options: &[("bucket", "2"), ("rowkind.field", "_kind")],
        writer: Writer::Pypaimon,
        steps: vec![
            commit((0..30).collect(), 0),
            commit((0..30).step_by(3).collect(), 1),
            Step::Delete(vec![1, 2, 9]),
            Step::Check(Levels::OnlyZero),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
            commit(vec![1, 3, 40], 2),
            Step::Delete(vec![4, 40]),
            Step::Check(Levels::Mixed),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
        ],
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 6b: pypaimon writes a partial-update table; Tidelake compacts it.
#[test]
fn pypaimon_writes_partial_update_tidelake_compacts() {
    run_case(Case {
        name: "py_partial",
        columns: PARTIAL,
        primary_key: &["id"],
        partition_keys: &[],
        options: &[("bucket", "2"), ("merge-engine", "partial-update")],
        writer: Writer::Pypaimon,
        steps: partial_steps(),
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 6c: pypaimon writes an aggregation table; Tidelake compacts it.
/// (pypaimon 2.1 cannot write retractions to aggregation tables, and
/// Tidelake's SQL writes none, so no case retracts.)
#[test]
fn pypaimon_writes_aggregation_tidelake_compacts() {
    run_case(Case {
        name: "py_aggregated",
        columns: AGGREGATED,
        primary_key: &["id", "dt"],
        partition_keys: &["dt"],
        options: AGGREGATION_OPTIONS,
        writer: Writer::Pypaimon,
        steps: aggregation_steps(),
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

// ------------------------------------------- (7) collect and merge_map

const COLLECTED: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL"),
    ("tags", "ARRAY<STRING>"),
    ("seen", "ARRAY<INT>"),
];

const COLLECTED_OPTIONS: &[(&str, &str)] = &[
    ("bucket", "2"),
    ("merge-engine", "aggregation"),
    ("fields.tags.aggregate-function", "collect"),
    ("fields.seen.aggregate-function", "collect"),
    ("fields.seen.distinct", "true"),
];

/// Contribution `version` to key `id`: arrays with NULL elements (and
/// repeated values in `tags`), NULL cells in turn.
fn collected(id: i64, version: i64) -> Vec<V> {
    let null_at = (id + version) % 5;
    let tags = (0..=(id + version) % 3)
        .map(|i| {
            if (i + id) % 4 == 3 {
                V::Null
            } else {
                V::Str(format!("t{}", (id * i + version) % 4))
            }
        })
        .collect();
    // Distinct values within a version: pypaimon 2.1 deduplicates a key's
    // only version too, where Java (and Tidelake, pypaimon-rust) leave it
    // as written. Across versions values repeat.
    let first = (id + version) % 4;
    let seen = vec![V::Int(first), V::Int((first + 1 + version % 2) % 4)];
    vec![
        V::Int(id),
        if null_at == 0 { V::Null } else { V::Arr(tags) },
        if null_at == 1 { V::Null } else { V::Arr(seen) },
    ]
}

const MAPPED: &[(&str, &str)] = &[
    ("id", "BIGINT NOT NULL"),
    ("attrs", "MAP<STRING, BIGINT>"),
    ("total", "BIGINT"),
];

const MAPPED_OPTIONS: &[(&str, &str)] = &[
    ("bucket", "2"),
    ("merge-engine", "aggregation"),
    ("fields.attrs.aggregate-function", "merge_map"),
    ("fields.total.aggregate-function", "sum"),
];

/// Contribution `version` to key `id`: maps whose keys recur across
/// versions (later values win), NULL values and cells in turn.
fn mapped(id: i64, version: i64) -> Vec<V> {
    let null_at = (id + version) % 5;
    let attrs = vec![
        (
            V::Str(format!("v{}", version % 3)),
            V::Int(id * 10 + version),
        ),
        (
            V::Str(format!("k{}", id % 3)),
            if null_at == 3 {
                V::Null
            } else {
                V::Int(version)
            },
        ),
    ];
    vec![
        V::Int(id),
        if null_at == 2 { V::Null } else { V::Map(attrs) },
        V::Int(id + version),
    ]
}

/// Commits, compactions and checks; `repeat` writes some keys twice in one
/// commit (pypaimon 2.1's writer cannot merge maps within a commit).
fn collection_steps(row: fn(i64, i64) -> Vec<V>, repeat: bool) -> Vec<Step> {
    let commit = |ids: Vec<i64>, version: i64| {
        Step::Upsert(ids.into_iter().map(|id| row(id, version)).collect())
    };
    let twice = |id: i64| if repeat { vec![id, id] } else { vec![id] };
    vec![
        commit((0..30).collect(), 0),
        commit((0..30).step_by(3).collect(), 1),
        commit([twice(1), vec![2, 40]].concat(), 2),
        Step::Check(Levels::OnlyZero),
        Step::Compact(Some("full")),
        Step::Check(Levels::NoneAtZero),
        commit((0..45).step_by(4).collect(), 3),
        commit([vec![2, 3, 5, 7], twice(11)].concat(), 4),
        Step::Check(Levels::Mixed),
        Step::Compact(Some("full")),
        commit(vec![3, 50], 5),
        Step::Check(Levels::Mixed),
    ]
}

/// pypaimon 2.1 reads merge_map tables only where no key needs merging: a
/// read that merges some keys' maps and passes others through fails when
/// building its Arrow result.
const PYPAIMON_MERGE_MAP_ERROR: (&str, &str) = ("pypaimon", "ArrowTypeError: Could not convert");

/// Case 7a: collect (plain and distinct), written by Tidelake's SQL, before
/// and after compaction.
#[test]
fn collect_before_and_after_compaction() {
    run_case(Case {
        name: "collected",
        columns: COLLECTED,
        primary_key: &["id"],
        partition_keys: &[],
        options: COLLECTED_OPTIONS,
        writer: Writer::Tidelake,
        steps: collection_steps(collected, true),
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 7b: merge_map, written by Tidelake's SQL; pypaimon's failure is
/// asserted.
#[test]
fn merge_map_before_and_after_compaction_excludes_pypaimon() {
    run_case(Case {
        name: "mapped",
        columns: MAPPED,
        primary_key: &["id"],
        partition_keys: &[],
        options: MAPPED_OPTIONS,
        writer: Writer::Tidelake,
        steps: collection_steps(mapped, true),
        unreadable: &[PYPAIMON_MERGE_MAP_ERROR],
        paimon_skips_level0: false,
    });
}

/// Case 7c: pypaimon writes the collect table, Tidelake compacts it.
#[test]
fn pypaimon_writes_collect_tidelake_compacts() {
    run_case(Case {
        name: "py_collected",
        columns: COLLECTED,
        primary_key: &["id"],
        partition_keys: &[],
        options: COLLECTED_OPTIONS,
        writer: Writer::Pypaimon,
        steps: collection_steps(collected, true),
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 7d: pypaimon writes the merge_map table (one version of a key per
/// commit), Tidelake compacts it.
#[test]
fn pypaimon_writes_merge_map_tidelake_compacts() {
    run_case(Case {
        name: "py_mapped",
        columns: MAPPED,
        primary_key: &["id"],
        partition_keys: &[],
        options: MAPPED_OPTIONS,
        writer: Writer::Pypaimon,
        steps: collection_steps(mapped, false),
        unreadable: &[PYPAIMON_MERGE_MAP_ERROR],
        paimon_skips_level0: false,
    });
}

/// The model's collect and merge_map against hand-computed merges.
#[test]
fn model_collects_as_paimon_documents() {
    let mut m = Model::new(COLLECTED, &["id"], COLLECTED_OPTIONS);
    let row = |tags: V, seen: V| vec![V::Int(1), tags, seen];
    let ints = |v: &[i64]| V::Arr(v.iter().map(|i| V::Int(*i)).collect());
    m.write(row(V::Arr(vec![s("a"), V::Null]), ints(&[2, 2])), true);
    assert_eq!(
        m.rows(),
        vec![row(V::Arr(vec![s("a"), V::Null]), ints(&[2, 2]))],
        "one version is not merged"
    );
    m.write(row(V::Null, V::Null), true);
    m.write(row(V::Arr(vec![s("a")]), ints(&[3, 2])), true);
    assert_eq!(
        m.rows(),
        vec![row(V::Arr(vec![s("a"), V::Null, s("a")]), ints(&[2, 3]))]
    );

    let mut m = Model::new(MAPPED, &["id"], MAPPED_OPTIONS);
    let entry = |k: &str, v: V| (s(k), v);
    m.write(
        vec![V::Int(1), V::Map(vec![entry("x", V::Int(1))]), V::Int(1)],
        true,
    );
    m.write(vec![V::Int(1), V::Null, V::Null], true);
    m.write(
        vec![
            V::Int(1),
            V::Map(vec![entry("y", V::Null), entry("x", V::Int(5))]),
            V::Int(2),
        ],
        true,
    );
    assert_eq!(
        m.rows(),
        vec![vec![
            V::Int(1),
            V::Map(vec![entry("x", V::Int(5)), entry("y", V::Null)]),
            V::Int(3)
        ]]
    );
    assert_eq!(
        ints(&[1, 2]).sql("ARRAY<INT>"),
        "make_array(CAST(1 AS INT), CAST(2 AS INT))"
    );
    assert_eq!(
        V::Map(vec![entry("k", V::Int(1))]).sql("MAP<STRING, BIGINT>"),
        "map(make_array('k'), make_array(CAST(1 AS BIGINT)))"
    );
}

// ----------------------------------------------- (8) deletion vectors

/// Options of the deletion-vector cases.
const DV_OPTIONS: &[(&str, &str)] = &[("bucket", "2"), ("deletion-vectors.enabled", "true")];

/// The steps of a case whose writer compacts inline: level 0 is compacted
/// at every commit, so no dedicated compaction is needed, and every check
/// (all come after updates of earlier keys) finds rows hidden by vector.
fn compacted_inline(steps: Vec<Step>) -> Vec<Step> {
    steps
        .into_iter()
        .filter(|s| !matches!(s, Step::Compact(_)))
        .map(|s| match s {
            Step::Check(_) => Step::Check(Levels::Vectors),
            other => other,
        })
        .collect()
}

/// Case 8a: deletion vectors, compacted inline: every commit's level-0
/// files are merged into a level above older runs, whose rows of the same
/// keys are marked deleted by vector; readers read the files without
/// merging. The checks prove rows are hidden by vectors (more rows stored
/// than shown, no level-0 file).
#[test]
fn deletion_vectors_with_inline_compaction() {
    run_case(Case {
        name: "dv_inline",
        columns: WIDE,
        primary_key: &["id", "dt"],
        partition_keys: &["dt"],
        options: DV_OPTIONS,
        writer: Writer::Tidelake,
        steps: vec![
            wide_rows(0..300, 0),
            Step::Check(Levels::NoneAtZero),
            wide_rows((0..300).step_by(7), 1),
            Step::Check(Levels::Vectors),
            Step::Delete(vec![3, 14, 100, 101]),
            Step::Check(Levels::Vectors),
            wide_rows((5..320).step_by(11), 2),
            Step::Delete(vec![16, 27, 310]),
            wide_rows([3, 27, 400], 3),
            Step::Check(Levels::Vectors),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
            wide_rows((1..300).step_by(13), 4),
            Step::Delete(vec![40, 41]),
            Step::Check(Levels::Vectors),
        ],
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 8b: deletion vectors with a `write-only` writer: level-0 rows stay
/// invisible to every reader (Tidelake's too) until a dedicated
/// compaction, which takes every level-0 file whatever it picks, and marks
/// the replaced rows of higher levels by vector.
#[test]
fn deletion_vectors_write_only_compacted_on_request() {
    run_case(Case {
        name: "dv_write_only",
        columns: WIDE,
        primary_key: &["id", "dt"],
        partition_keys: &["dt"],
        options: &[
            ("bucket", "2"),
            ("deletion-vectors.enabled", "true"),
            ("write-only", "true"),
        ],
        writer: Writer::Tidelake,
        steps: vec![
            wide_rows(0..300, 0),
            wide_rows((0..300).step_by(9), 1),
            Step::Check(Levels::OnlyZero),
            Step::Compact(None),
            Step::Check(Levels::NoneAtZero),
            wide_rows((2..300).step_by(5), 2),
            Step::Delete(vec![2, 7, 200]),
            Step::Check(Levels::Mixed),
            Step::Compact(Some("minor")),
            Step::Check(Levels::Vectors),
            wide_rows((0..320).step_by(17), 3),
            Step::Delete(vec![17, 34]),
            Step::Compact(None),
            Step::Check(Levels::Vectors),
            wide_rows([1, 2, 3], 4),
            Step::Check(Levels::Mixed),
            Step::Compact(Some("full")),
            Step::Check(Levels::NoneAtZero),
        ],
        unreadable: &[],
        paimon_skips_level0: true,
    });
}

/// Case 8c: partial-update with deletion vectors, compacted inline.
#[test]
fn deletion_vectors_partial_update() {
    run_case(Case {
        name: "dv_partial",
        columns: PARTIAL,
        primary_key: &["id"],
        partition_keys: &[],
        options: &[
            ("bucket", "2"),
            ("deletion-vectors.enabled", "true"),
            ("merge-engine", "partial-update"),
        ],
        writer: Writer::Tidelake,
        steps: compacted_inline(partial_steps()),
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

/// Case 8d: aggregation with deletion vectors, compacted inline.
#[test]
fn deletion_vectors_aggregation() {
    let mut options = AGGREGATION_OPTIONS.to_vec();
    options.push(("deletion-vectors.enabled", "true"));
    run_case(Case {
        name: "dv_aggregated",
        columns: AGGREGATED,
        primary_key: &["id", "dt"],
        partition_keys: &["dt"],
        options: options.leak(),
        writer: Writer::Tidelake,
        steps: compacted_inline(aggregation_steps()),
        unreadable: &[],
        paimon_skips_level0: false,
    });
}

#[test]
fn model_values_encode_as_the_oracle_expects() {
    assert_eq!(V::Dec(-5).json(), Json::str("-0.05"));
    assert_eq!(
        V::Dec(12_345).sql("DECIMAL(12, 2)"),
        "CAST('123.45' AS DECIMAL(12, 2))"
    );
    assert_eq!(V::Ts(1_441).json(), Json::str("2026-11-02T00:01:00.000000"));
    assert_eq!(
        V::Ts(61).sql("TIMESTAMP(3)"),
        "TIMESTAMP '2026-11-01 01:01:00.000'"
    );
    assert_eq!(
        files_in(r#"{"snapshot_id":7,"files_in":12,"files_out":4}"#),
        Some(12)
    );
    assert_eq!(noise(1, 40).len(), 40);
    assert_ne!(noise(1, 40), noise(2, 40));
}

/// The model against hand-computed merges, so that a wrong model cannot
/// make Tidelake and the oracles agree on wrong rows unnoticed.
#[test]
fn model_merges_as_paimon_documents() {
    let mut m = Model::new(PARTIAL, &["id"], &[("merge-engine", "partial-update")]);
    m.write(partial(1, Some(1), Some("a"), None, None), true);
    m.write(partial(1, None, Some("b"), Some(5), None), true);
    m.write(partial(1, None, None, None, Some(7)), true);
    assert_eq!(
        m.rows(),
        vec![partial(1, Some(1), Some("b"), Some(5), Some(7))]
    );

    let mut m = Model::new(AGGREGATED, &["id"], AGGREGATION_OPTIONS);
    let row = |total: V, hi: V, note: V, first: V, last: V| {
        vec![
            V::Int(1),
            s("p1"),
            total,
            V::Null,
            hi,
            V::Null,
            note,
            first,
            last,
        ]
    };
    m.write(row(V::Null, V::Int(3), V::Null, V::Null, s("x")), true);
    m.write(row(V::Int(2), V::Int(9), s("n1"), s("f1"), V::Null), true);
    m.write(row(V::Int(5), V::Int(4), V::Null, s("f2"), s("z")), true);
    assert_eq!(
        m.rows(),
        vec![row(V::Int(7), V::Int(9), s("n1"), s("f1"), s("z"))]
    );

    let mut m = Model::new(SMALL, &["id"], &[("merge-engine", "first-row")]);
    m.write(small(1, 2, "a"), true);
    m.write(small(1, 1, "b"), true);
    assert_eq!(m.rows(), vec![small(1, 2, "a")]);

    let mut m = Model::new(SMALL, &["id"], &[("sequence.field", "ver")]);
    m.write(small(1, 5, "a"), true);
    m.write(small(1, 4, "older"), true);
    assert_eq!(m.rows(), vec![small(1, 5, "a")]);
    m.write(small(1, 5, "a"), false);
    m.write(small(1, 3, "hidden"), true);
    assert!(m.rows().is_empty(), "a delete at ver 5 hides ver 3");
    m.write(small(1, 6, "shown"), true);
    assert_eq!(m.rows_with_ids(&[1]), vec![small(1, 6, "shown")]);
    m.write(small(1, 6, "shown"), false);
    m.compact_fully();
    m.write(small(1, 2, "after a full compaction"), true);
    assert_eq!(m.rows(), vec![small(1, 2, "after a full compaction")]);
}
