//! Interop with Paimon's own implementations: tables Tidelake writes must be
//! read exactly by pypaimon 2.1 and pypaimon-rust 0.4, and tables pypaimon
//! writes must be read exactly by Tidelake.
//!
//! The oracle (`tests/oracle/oracle.py`) reads and writes with those
//! implementations and compares rows in one canonical JSON encoding (see
//! `tests/oracle/canonical.py`); this file computes the expected rows from
//! the statements it runs, with a small model of the table.
//!
//! Python comes from env `TIDELAKE_PYTHON`, else `<workspace>/.venv/bin/python`
//! (which `scripts/test` creates). Without either, the tests fail when `CI`
//! is set and are skipped with a note otherwise.

use std::fmt::{self, Write as _};
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DATABASE: &str = "interop";
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
const ORACLE_TIMEOUT: Duration = Duration::from_secs(300);
const IMPLEMENTATIONS: [&str; 2] = ["pypaimon", "pypaimon-rust"];

// ------------------------------------------------------------------ JSON

/// Just enough JSON to send jobs to the oracle (the crate has no JSON
/// dependency, and the oracle does all parsing and comparing).
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn str(text: impl Into<String>) -> Json {
        Json::Str(text.into())
    }

    fn obj<'a>(members: impl IntoIterator<Item = (&'a str, Json)>) -> Json {
        Json::Obj(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Json {
        Json::Arr(items.into_iter().map(Json::str).collect())
    }
}

fn write_json_string(text: &str, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    out.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

impl fmt::Display for Json {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => out.write_str("null"),
            Json::Bool(b) => write!(out, "{b}"),
            Json::Int(i) => write!(out, "{i}"),
            // `{:?}` prints the shortest text that reads back as the same f64
            // ("0.1", "5e-324"), which is valid JSON for finite values.
            Json::Float(f) if f.is_finite() => write!(out, "{f:?}"),
            Json::Float(f) => panic!("JSON has no encoding for {f}"),
            Json::Str(s) => write_json_string(s, out),
            Json::Arr(items) => {
                out.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.write_char(',')?;
                    }
                    write!(out, "{item}")?;
                }
                out.write_char(']')
            }
            Json::Obj(members) => {
                out.write_char('{')?;
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.write_char(',')?;
                    }
                    write_json_string(key, out)?;
                    write!(out, ":{value}")?;
                }
                out.write_char('}')
            }
        }
    }
}

// ------------------------------------------------------- processes, dirs

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn oracle_script() -> PathBuf {
    workspace_root().join("tests/oracle/oracle.py")
}

/// The oracle's Python, or `None` (after a note) when there is none outside CI.
fn python() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TIDELAKE_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "interop tests need Python with pypaimon and pypaimon-rust: set TIDELAKE_PYTHON or run \
             scripts/test, which creates {}",
            venv.display()
        );
    }
    eprintln!(
        "note: interop test skipped: no Python oracle (set TIDELAKE_PYTHON, or run scripts/test to create {})",
        venv.display()
    );
    None
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` to completion, feeding `stdin`, killing it after `timeout`.
fn run(mut command: Command, stdin: &str, timeout: Duration) -> Finished {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        // A child that exits early closes the pipe; its exit status tells why.
        let _ = input.write_all(stdin.as_bytes());
    });
    let mut stdout_pipe = child.stdout.take().expect("piped stdout");
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().expect("stdin writer");
    Finished {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A fresh directory, removed afterwards unless the test failed.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tidelake-interop-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs statements through the CLI (`--format json`) and returns its stdout.
fn tidelake(warehouse: &Path, statements: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidelake"));
    command.arg("--warehouse").arg(warehouse).arg("sql");
    for statement in statements {
        command.arg("-e").arg(statement);
    }
    command.arg("--format").arg("json");
    let finished = run(command, "", CLI_TIMEOUT);
    assert!(
        finished.status.success(),
        "tidelake failed ({}) on:\n  {}\nstdout:\n{}\nstderr:\n{}",
        finished.status,
        statements.join("\n  "),
        finished.stdout,
        finished.stderr
    );
    finished.stdout
}

/// Runs oracle jobs in one Python process; panics with every failure.
fn oracle(python: &Path, jobs: Vec<Json>) {
    let mut command = Command::new(python);
    command.arg(oracle_script()).arg("batch");
    let finished = run(command, &Json::Arr(jobs).to_string(), ORACLE_TIMEOUT);
    assert!(
        finished.status.success(),
        "the oracle found differences ({}):\n{}\n(full results:\n{})",
        finished.status,
        finished.stderr,
        finished.stdout
    );
}

fn table_dir(warehouse: &Path, table: &str) -> PathBuf {
    warehouse.join(format!("{DATABASE}.db")).join(table)
}

/// The highest `snapshot-N` in the table's snapshot directory.
fn latest_snapshot(warehouse: &Path, table: &str) -> Option<u64> {
    let entries = std::fs::read_dir(table_dir(warehouse, table).join("snapshot")).ok()?;
    entries
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_prefix("snapshot-")?
                .parse()
                .ok()
        })
        .max()
}

// ------------------------------------------------------- columns, values

/// A value as a SQL literal and in the oracle's canonical encoding.
#[derive(Clone, Debug)]
struct Value {
    sql: String,
    canonical: Json,
}

impl Value {
    fn null() -> Value {
        Value {
            sql: "NULL".into(),
            canonical: Json::Null,
        }
    }

    fn new(sql: impl Into<String>, canonical: Json) -> Value {
        Value {
            sql: sql.into(),
            canonical,
        }
    }
}

fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn decimal(text: String, sql_type: &str) -> Value {
    // A string cast keeps every digit; a bare numeric literal may pass through f64.
    Value::new(
        format!("CAST({} AS {sql_type})", sql_string(&text)),
        Json::Str(text),
    )
}

/// Canonical FLOAT: the shortest decimal of the 32-bit value.
fn float32(x: f32) -> Value {
    let shortest: f64 = format!("{x:?}").parse().expect("f32 text reads back");
    Value::new(format!("CAST({x:?} AS FLOAT)"), Json::Float(shortest))
}

fn float64(x: f64) -> Value {
    Value::new(format!("CAST({x:?} AS DOUBLE)"), Json::Float(x))
}

fn date_of(n: i64) -> String {
    format!("{}-{:02}-{:02}", 1950 + n % 90, 1 + n % 12, 1 + n % 28)
}

/// Timestamp `n` with a fraction of `digits` digits.
fn timestamp(n: i64, fraction: i64, digits: usize) -> Value {
    let date = date_of(n);
    let time = format!("{:02}:{:02}:{:02}", n % 24, n * 7 % 60, n * 13 % 60);
    let fraction = format!("{fraction:0digits$}");
    Value::new(
        format!("TIMESTAMP '{date} {time}.{fraction}'"),
        Json::Str(format!("{date}T{time}.{fraction:0<6}")),
    )
}

/// One column of every scalar type.
const TYPE_COLUMNS: [(&str, &str); 18] = [
    ("b", "BOOLEAN"),
    ("ti", "TINYINT"),
    ("si", "SMALLINT"),
    ("i", "INT"),
    ("bi", "BIGINT"),
    ("f", "FLOAT"),
    ("d", "DOUBLE"),
    ("dec", "DECIMAL(10, 2)"),
    ("dec19", "DECIMAL(19, 0)"),
    ("dec38", "DECIMAL(38, 10)"),
    ("s", "STRING"),
    ("vc", "VARCHAR(20)"),
    ("by", "BYTES"),
    ("da", "DATE"),
    ("ts3", "TIMESTAMP(3)"),
    ("ts6", "TIMESTAMP(6)"),
    ("ltz3", "TIMESTAMP_LTZ(3)"),
    ("ltz6", "TIMESTAMP_LTZ(6)"),
];

/// Value `n` of a type column: varied values with extremes, pre-1970
/// dates, quotes, long and non-ASCII strings.
fn type_value(column: &str, n: i64) -> Value {
    let integer = |v: i64, t: &str| Value::new(format!("CAST({v} AS {t})"), Json::Int(v.into()));
    let text = |s: String| Value::new(sql_string(&s), Json::Str(s));
    match column {
        "b" => Value::new(
            if n % 2 == 0 { "TRUE" } else { "FALSE" },
            Json::Bool(n % 2 == 0),
        ),
        "ti" => integer(n % 256 - 128, "TINYINT"),
        "si" => integer(-32768 + n * 3, "SMALLINT"),
        "i" => integer(2147483647 - n, "INT"),
        "bi" => integer(-9223372036854775807 + n, "BIGINT"),
        "f" => float32([1.1, -0.5, 3.4028235e38, 1e-30][(n % 4) as usize]),
        "d" => float64([0.1, -2.5e300, 1.0 / 3.0, 5e-324][(n % 4) as usize]),
        "dec" => decimal(format!("{}.{:02}", n * 10 - 500, n % 100), "DECIMAL(10, 2)"),
        "dec19" => decimal(
            (9_999_999_999_999_999_999u64 - n as u64).to_string(),
            "DECIMAL(19, 0)",
        ),
        "dec38" => {
            let whole = 1_234_567_890_123_456_789_012_345_678u128 - n as u128;
            decimal(format!("-{whole}.{n:010}"), "DECIMAL(38, 10)")
        }
        "s" => text(format!(
            "it's n{n} ünï ✓{}",
            "x".repeat((n % 3 * 9) as usize)
        )),
        "vc" => text(format!("v{n}")),
        "by" => {
            let hex: String = [n % 256, 0, 255, 7]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let hex = hex.repeat(1 + (n % 3) as usize);
            Value::new(format!("X'{hex}'"), Json::Str(hex))
        }
        "da" => {
            let date = date_of(n);
            Value::new(format!("DATE '{date}'"), Json::Str(date))
        }
        "ts3" => timestamp(n + 1, n % 1000, 3),
        "ts6" => timestamp(n + 2, n * 1001 % 1_000_000, 6),
        "ltz3" => timestamp(n + 3, n * 7 % 1000, 3),
        "ltz6" => timestamp(n + 4, n * 7 % 1_000_000, 6),
        other => panic!("no values for column {other}"),
    }
}

/// A table's columns: `id BIGINT NOT NULL`, `dt STRING NOT NULL`, then every
/// type. `dt` follows from `id`, so `id` alone identifies a row in the model.
struct Layout {
    columns: Vec<(&'static str, &'static str)>,
}

impl Layout {
    fn all_types() -> Layout {
        let mut columns = vec![("id", "BIGINT NOT NULL"), ("dt", "STRING NOT NULL")];
        columns.extend(TYPE_COLUMNS);
        Layout { columns }
    }

    /// Row `id` at `version` (values of `all_types`); one type column,
    /// rotating with both, is NULL.
    fn row(&self, id: i64, version: i64) -> Vec<Value> {
        let dt = format!("p{}", id % 3);
        let mut row = vec![
            Value::new(id.to_string(), Json::Int(id.into())),
            Value::new(sql_string(&dt), Json::Str(dt)),
        ];
        let n = id * 7 + version;
        let null_at = ((id + version) % TYPE_COLUMNS.len() as i64) as usize;
        for (i, (name, _)) in TYPE_COLUMNS.iter().enumerate() {
            row.push(if i == null_at {
                Value::null()
            } else {
                type_value(name, n)
            });
        }
        row
    }

    fn index(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    fn fields_json(&self) -> Json {
        fields(&self.columns)
    }

    fn row_json(&self, row: &[Value]) -> Json {
        Json::Obj(
            self.columns
                .iter()
                .zip(row)
                .map(|((name, _), v)| (name.to_string(), v.canonical.clone()))
                .collect(),
        )
    }
}

// ------------------------------------------------------------ table kinds

struct TableKind {
    name: &'static str,
    primary_key: &'static [&'static str],
    partitioned: bool,
    options: &'static [(&'static str, &'static str)],
}

const APPEND_UNAWARE: TableKind = TableKind {
    name: "append_unaware",
    primary_key: &[],
    partitioned: false,
    options: &[],
};
const APPEND_FIXED: TableKind = TableKind {
    name: "append_fixed",
    primary_key: &[],
    partitioned: true,
    options: &[("bucket", "3"), ("bucket-key", "id")],
};
const PK_FIXED_PARTITIONED: TableKind = TableKind {
    name: "pk_fixed_part",
    primary_key: &["id", "dt"],
    partitioned: true,
    options: &[("bucket", "2")],
};
const PK_FIXED: TableKind = TableKind {
    name: "pk_fixed",
    primary_key: &["id"],
    partitioned: false,
    options: &[("bucket", "2")],
};
const PK_DYNAMIC: TableKind = TableKind {
    name: "pk_dynamic",
    primary_key: &["id"],
    partitioned: false,
    options: &[("bucket", "-1")],
};
const PK_DYNAMIC_PARTITIONED: TableKind = TableKind {
    name: "pk_dynamic_part",
    primary_key: &["id", "dt"],
    partitioned: true,
    options: &[("bucket", "-1")],
};

impl TableKind {
    fn has_primary_key(&self) -> bool {
        !self.primary_key.is_empty()
    }

    fn partition_keys(&self) -> &'static [&'static str] {
        if self.partitioned {
            &["dt"]
        } else {
            &[]
        }
    }

    fn create_sql(&self, layout: &Layout) -> String {
        let mut sql = format!("CREATE TABLE {DATABASE}.{} (", self.name);
        let columns: Vec<String> = layout
            .columns
            .iter()
            .map(|(name, sql_type)| format!("{name} {sql_type}"))
            .collect();
        sql += &columns.join(", ");
        if self.has_primary_key() {
            sql += &format!(
                ", PRIMARY KEY ({}) NOT ENFORCED",
                self.primary_key.join(", ")
            );
        }
        sql += ")";
        if self.partitioned {
            sql += " PARTITIONED BY (dt)";
        }
        if !self.options.is_empty() {
            let options: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| format!("'{k}' = '{v}'"))
                .collect();
            sql += &format!(" WITH ({})", options.join(", "));
        }
        sql
    }

    fn options_json(&self, extra: &[(&str, &str)]) -> Json {
        Json::obj(
            self.options
                .iter()
                .chain(extra)
                .map(|(k, v)| (*k, Json::str(*v))),
        )
    }

    /// A check job: the rows of `actual` must be exactly `expected`, and a
    /// read table's schema must be the declared one.
    fn check(&self, label: String, layout: &Layout, expected: &[Json], actual: Json) -> Json {
        Json::obj([
            ("op", Json::str("check")),
            ("label", Json::Str(label)),
            ("fields", layout.fields_json()),
            ("expected", Json::Arr(expected.to_vec())),
            ("primary_keys", Json::strs(self.primary_key.iter().copied())),
            (
                "partition_keys",
                Json::strs(self.partition_keys().iter().copied()),
            ),
            ("options", self.options_json(&[])),
            ("actual", actual),
        ])
    }
}

/// The rows a table must hold: upserts replace the row with the same id on
/// primary-key tables and add a row on append tables.
struct Model {
    keyed: bool,
    rows: Vec<(i64, Vec<Value>)>,
}

impl Model {
    fn new(keyed: bool) -> Model {
        Model {
            keyed,
            rows: Vec::new(),
        }
    }

    fn upsert(&mut self, id: i64, row: Vec<Value>) {
        if self.keyed {
            self.rows.retain(|(existing, _)| *existing != id);
        }
        self.rows.push((id, row));
    }

    fn delete(&mut self, matches: impl Fn(i64) -> bool) {
        self.rows.retain(|(id, _)| !matches(*id));
    }

    fn json(&self, layout: &Layout) -> Vec<Json> {
        self.rows
            .iter()
            .map(|(_, row)| layout.row_json(row))
            .collect()
    }
}

fn read_job(warehouse: &Path, table: &str, implementation: &str, snapshot: Option<u64>) -> Json {
    let mut members = vec![
        ("op", Json::str("read")),
        ("warehouse", Json::str(warehouse.to_string_lossy())),
        ("table", Json::Str(format!("{DATABASE}.{table}"))),
        ("impl", Json::str(implementation)),
    ];
    if let Some(id) = snapshot {
        members.push(("snapshot", Json::Int(id.into())));
    }
    Json::obj(members)
}

fn canon_job(output: &str) -> Json {
    Json::obj([
        ("op", Json::str("canon")),
        ("lines", Json::Arr(output.lines().map(Json::str).collect())),
    ])
}

// -------------------------------------------------- (a) Tidelake writes

/// One statement of a write script and its effect on the model.
enum Step {
    Insert {
        ids: Vec<i64>,
        version: i64,
    },
    Delete {
        condition: &'static str,
        matches: fn(i64) -> bool,
    },
    Update {
        assignments: Vec<(&'static str, Value)>,
        condition: &'static str,
        matches: fn(i64) -> bool,
    },
}

impl Step {
    fn sql(&self, table: &str, layout: &Layout) -> String {
        match self {
            Step::Insert { ids, version } => {
                let rows: Vec<String> = ids
                    .iter()
                    .map(|id| {
                        let values: Vec<String> = layout
                            .row(*id, *version)
                            .into_iter()
                            .map(|v| v.sql)
                            .collect();
                        format!("({})", values.join(", "))
                    })
                    .collect();
                format!("INSERT INTO {DATABASE}.{table} VALUES {}", rows.join(", "))
            }
            Step::Delete { condition, .. } => {
                format!("DELETE FROM {DATABASE}.{table} WHERE {condition}")
            }
            Step::Update {
                assignments,
                condition,
                ..
            } => {
                let sets: Vec<String> = assignments
                    .iter()
                    .map(|(name, v)| format!("{name} = {}", v.sql))
                    .collect();
                format!(
                    "UPDATE {DATABASE}.{table} SET {} WHERE {condition}",
                    sets.join(", ")
                )
            }
        }
    }

    fn apply(&self, model: &mut Model, layout: &Layout) {
        match self {
            Step::Insert { ids, version } => {
                for id in ids {
                    model.upsert(*id, layout.row(*id, *version));
                }
            }
            Step::Delete { matches, .. } => model.delete(matches),
            Step::Update {
                assignments,
                matches,
                ..
            } => {
                for (id, row) in &mut model.rows {
                    if matches(*id) {
                        for (name, value) in assignments {
                            row[layout.index(name)] = value.clone();
                        }
                    }
                }
            }
        }
    }
}

fn write_script(kind: &TableKind) -> Vec<Step> {
    if !kind.has_primary_key() {
        return vec![
            Step::Insert {
                ids: (0..10).collect(),
                version: 0,
            },
            Step::Insert {
                ids: (5..15).collect(),
                version: 1,
            },
            Step::Insert {
                ids: (0..15).step_by(4).collect(),
                version: 2,
            },
        ];
    }
    vec![
        Step::Insert {
            ids: (0..12).collect(),
            version: 0,
        },
        Step::Insert {
            ids: (0..12).step_by(2).chain(12..15).collect(),
            version: 1,
        },
        Step::Delete {
            condition: "id = 3",
            matches: |id| id == 3,
        },
        Step::Update {
            assignments: vec![
                (
                    "s",
                    Value::new("'updated ''row'''", Json::str("updated 'row'")),
                ),
                ("dec", decimal("-1.05".into(), "DECIMAL(10, 2)")),
                ("ts6", Value::null()),
                ("f", float32(2.5)),
            ],
            condition: "id = 4",
            matches: |id| id == 4,
        },
        Step::Update {
            assignments: vec![("vc", Value::new("'bulk'", Json::str("bulk")))],
            condition: "dt = 'p1'",
            matches: |id| id % 3 == 1,
        },
        Step::Delete {
            condition: "id >= 10 AND id < 13",
            matches: |id| (10..13).contains(&id),
        },
        Step::Insert {
            ids: vec![3, 10, 20],
            version: 2,
        },
        Step::Delete {
            condition: "id = 999",
            matches: |id| id == 999,
        },
    ]
}

/// Tidelake writes `kind` through the CLI; pypaimon and pypaimon-rust must
/// read exactly the model's rows at every snapshot, and so must Tidelake.
fn tidelake_writes(kind: &TableKind) {
    let Some(python) = python() else { return };
    let dir = TempDir::new(kind.name);
    let warehouse = dir.path();
    let layout = Layout::all_types();
    tidelake(
        warehouse,
        &[
            &format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
            &kind.create_sql(&layout),
        ],
    );

    let mut model = Model::new(kind.has_primary_key());
    let mut snapshots: Vec<(u64, Vec<Json>)> = Vec::new();
    for step in write_script(kind) {
        let sql = step.sql(kind.name, &layout);
        let before = latest_snapshot(warehouse, kind.name);
        tidelake(warehouse, &[&sql]);
        step.apply(&mut model, &layout);
        let after = latest_snapshot(warehouse, kind.name);
        match after {
            Some(id) if after != before => snapshots.push((id, model.json(&layout))),
            _ => assert!(
                !matches!(step, Step::Insert { .. }),
                "no new snapshot after: {sql}"
            ),
        }
    }
    let (latest, final_rows) = snapshots
        .last()
        .cloned()
        .expect("the inserts made snapshots");
    let own_read = tidelake(
        warehouse,
        &[&format!("SELECT * FROM {DATABASE}.{}", kind.name)],
    );

    let mut jobs = vec![kind.check(
        format!(
            "{}: Tidelake's own SELECT * after snapshot {latest}",
            kind.name
        ),
        &layout,
        &final_rows,
        canon_job(&own_read),
    )];
    for implementation in IMPLEMENTATIONS {
        jobs.push(kind.check(
            format!("{}: latest snapshot read by {implementation}", kind.name),
            &layout,
            &final_rows,
            read_job(warehouse, kind.name, implementation, None),
        ));
        for (id, rows) in &snapshots {
            jobs.push(kind.check(
                format!("{}: snapshot {id} read by {implementation}", kind.name),
                &layout,
                rows,
                read_job(warehouse, kind.name, implementation, Some(*id)),
            ));
        }
    }
    oracle(&python, jobs);
}

#[test]
fn tidelake_writes_append_unaware_bucket() {
    tidelake_writes(&APPEND_UNAWARE);
}

#[test]
fn tidelake_writes_append_fixed_bucket_with_bucket_key() {
    tidelake_writes(&APPEND_FIXED);
}

#[test]
fn tidelake_writes_primary_key_fixed_bucket_partitioned() {
    tidelake_writes(&PK_FIXED_PARTITIONED);
}

#[test]
fn tidelake_writes_primary_key_fixed_bucket() {
    tidelake_writes(&PK_FIXED);
}

#[test]
fn tidelake_writes_primary_key_dynamic_bucket() {
    tidelake_writes(&PK_DYNAMIC);
}

#[test]
fn tidelake_writes_primary_key_dynamic_bucket_partitioned() {
    tidelake_writes(&PK_DYNAMIC_PARTITIONED);
}

/// Null partition values go to `__DEFAULT_PARTITION__`; others need escaping.
#[test]
fn tidelake_writes_null_and_escaped_partition_values() {
    let Some(python) = python() else { return };
    let dir = TempDir::new("partitions");
    let warehouse = dir.path();
    tidelake(
        warehouse,
        &[
            &format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
            &format!("CREATE TABLE {DATABASE}.parts (id INT NOT NULL, p STRING, q INT, v DOUBLE) PARTITIONED BY (p, q)"),
        ],
    );
    tidelake(
        warehouse,
        &[&format!(
            "INSERT INTO {DATABASE}.parts VALUES (1, NULL, NULL, CAST(1.5 AS DOUBLE)), \
             (2, 'a/b c=d%#?', -1, NULL), (3, 'ünï', 0, CAST(-0.25 AS DOUBLE)), (4, 'x', NULL, NULL)"
        )],
    );
    let expected = [
        Json::obj([
            ("id", Json::Int(1)),
            ("p", Json::Null),
            ("q", Json::Null),
            ("v", Json::Float(1.5)),
        ]),
        Json::obj([
            ("id", Json::Int(2)),
            ("p", Json::str("a/b c=d%#?")),
            ("q", Json::Int(-1)),
            ("v", Json::Null),
        ]),
        Json::obj([
            ("id", Json::Int(3)),
            ("p", Json::str("ünï")),
            ("q", Json::Int(0)),
            ("v", Json::Float(-0.25)),
        ]),
        Json::obj([
            ("id", Json::Int(4)),
            ("p", Json::str("x")),
            ("q", Json::Null),
            ("v", Json::Null),
        ]),
    ];
    let fields = fields(&[
        ("id", "INT NOT NULL"),
        ("p", "STRING"),
        ("q", "INT"),
        ("v", "DOUBLE"),
    ]);
    let check = |label: String, actual: Json| {
        Json::obj([
            ("op", Json::str("check")),
            ("label", Json::Str(label)),
            ("fields", fields.clone()),
            ("expected", Json::Arr(expected.to_vec())),
            ("partition_keys", Json::strs(["p", "q"])),
            ("actual", actual),
        ])
    };
    let own_read = tidelake(warehouse, &[&format!("SELECT * FROM {DATABASE}.parts")]);
    let mut jobs = vec![check(
        "parts: Tidelake's own SELECT *".into(),
        canon_job(&own_read),
    )];
    for implementation in IMPLEMENTATIONS {
        jobs.push(check(
            format!("parts read by {implementation}"),
            read_job(warehouse, "parts", implementation, None),
        ));
    }
    oracle(&python, jobs);
}

// -------------------------------------------------- (b) pypaimon writes

/// pypaimon takes row kinds only from the column named by 'rowkind.field'.
const KIND_COLUMN: &str = "_kind";

/// pypaimon writes `kind` (several commits: overlapping keys, deletes,
/// duplicates within a commit, NULLs); Tidelake must read exactly the
/// model's rows. Both Python readers are checked too, which vouches for the
/// model itself.
fn pypaimon_writes(kind: &TableKind) {
    let Some(python) = python() else { return };
    let dir = TempDir::new(kind.name);
    let warehouse = dir.path();
    let mut layout = Layout::all_types();
    // Exercise the SQL-standard spelling that Java Paimon writes.
    let ltz6 = layout.index("ltz6");
    layout.columns[ltz6].1 = "TIMESTAMP(6) WITH LOCAL TIME ZONE";
    let mut extra_options: Vec<(&str, &str)> = Vec::new();
    if kind.has_primary_key() {
        layout.columns.push((KIND_COLUMN, "STRING"));
        extra_options.push(("rowkind.field", KIND_COLUMN));
    }

    let entry = |row_kind: &str, id: i64, version: i64| -> (String, i64, Vec<Value>) {
        let mut row = layout.row(id, version);
        if kind.has_primary_key() {
            row.push(Value::new(sql_string(row_kind), Json::str(row_kind)));
        }
        (row_kind.to_string(), id, row)
    };
    let commits: Vec<Vec<(String, i64, Vec<Value>)>> = if kind.has_primary_key() {
        vec![
            (0..12).map(|id| entry("+I", id, 0)).collect(),
            (0..12)
                .step_by(2)
                .map(|id| entry("+I", id, 1))
                .chain([
                    entry("-D", 3, 1),
                    entry("-D", 100, 1),
                    entry("+I", 13, 1),
                    entry("+I", 13, 2),
                ])
                .collect(),
            vec![
                entry("-D", 0, 2),
                entry("+I", 3, 2),
                entry("+I", 20, 2),
                entry("+U", 4, 2),
                entry("-D", 20, 2),
            ],
            vec![entry("+I", 0, 3), entry("-D", 5, 3), entry("+I", 5, 4)],
        ]
    } else {
        vec![
            (0..10).map(|id| entry("+I", id, 0)).collect(),
            (5..15).map(|id| entry("+I", id, 1)).collect(),
            (0..15).step_by(4).map(|id| entry("+I", id, 2)).collect(),
        ]
    };

    let mut model = Model::new(kind.has_primary_key());
    for commit in &commits {
        for (row_kind, id, row) in commit {
            match row_kind.as_str() {
                "+I" | "+U" => model.upsert(*id, row.clone()),
                _ => model.delete(|other| other == *id),
            }
        }
    }
    let expected = model.json(&layout);

    let spec = Json::obj([
        ("database", Json::str(DATABASE)),
        ("table", Json::str(kind.name)),
        ("fields", layout.fields_json()),
        ("primary_keys", Json::strs(kind.primary_key.iter().copied())),
        (
            "partition_keys",
            Json::strs(kind.partition_keys().iter().copied()),
        ),
        ("options", kind.options_json(&extra_options)),
        (
            "commits",
            Json::Arr(
                commits
                    .iter()
                    .map(|commit| {
                        Json::Arr(
                            commit
                                .iter()
                                .map(|(row_kind, _, row)| {
                                    Json::obj([
                                        ("kind", Json::str(row_kind.as_str())),
                                        ("row", layout.row_json(row)),
                                    ])
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        ),
    ]);
    let mut jobs = vec![Json::obj([
        ("op", Json::str("write")),
        ("warehouse", Json::str(warehouse.to_string_lossy())),
        ("spec", spec),
    ])];
    for implementation in IMPLEMENTATIONS {
        jobs.push(kind.check(
            format!(
                "{}: written by pypaimon, read by {implementation}",
                kind.name
            ),
            &layout,
            &expected,
            read_job(warehouse, kind.name, implementation, None),
        ));
    }
    oracle(&python, jobs);

    let tidelake_read = tidelake(
        warehouse,
        &[&format!("SELECT * FROM {DATABASE}.{}", kind.name)],
    );
    oracle(
        &python,
        vec![kind.check(
            format!("{}: written by pypaimon, read by Tidelake", kind.name),
            &layout,
            &expected,
            canon_job(&tidelake_read),
        )],
    );
}

#[test]
fn pypaimon_writes_append_unaware_bucket() {
    pypaimon_writes(&APPEND_UNAWARE);
}

#[test]
fn pypaimon_writes_append_fixed_bucket_with_bucket_key() {
    pypaimon_writes(&APPEND_FIXED);
}

#[test]
fn pypaimon_writes_primary_key_fixed_bucket_partitioned() {
    pypaimon_writes(&PK_FIXED_PARTITIONED);
}

#[test]
fn pypaimon_writes_primary_key_fixed_bucket() {
    pypaimon_writes(&PK_FIXED);
}

#[test]
fn pypaimon_writes_primary_key_dynamic_bucket() {
    pypaimon_writes(&PK_DYNAMIC);
}

#[test]
fn pypaimon_writes_primary_key_dynamic_bucket_partitioned() {
    pypaimon_writes(&PK_DYNAMIC_PARTITIONED);
}

/// A table pypaimon wrote, read by Tidelake: `spec` as the oracle takes it.
fn tidelake_reads_spec(label: &str, spec: Json, fields: Json, expected: Vec<Json>) {
    let Some(python) = python() else { return };
    let dir = TempDir::new(label);
    let warehouse = dir.path();
    let Json::Obj(members) = &spec else {
        panic!("a spec is an object")
    };
    let table = members
        .iter()
        .find(|(k, _)| k == "table")
        .map(|(_, v)| v.clone());
    let Some(Json::Str(table)) = table else {
        panic!("the spec names its table")
    };
    let check = |label: String, actual: Json| {
        Json::obj([
            ("op", Json::str("check")),
            ("label", Json::Str(label)),
            ("fields", fields.clone()),
            ("expected", Json::Arr(expected.clone())),
            ("actual", actual),
        ])
    };
    let mut jobs = vec![Json::obj([
        ("op", Json::str("write")),
        ("warehouse", Json::str(warehouse.to_string_lossy())),
        ("spec", spec.clone()),
    ])];
    for implementation in IMPLEMENTATIONS {
        let label = format!("{table}: written by pypaimon, read by {implementation}");
        jobs.push(check(
            label,
            read_job(warehouse, &table, implementation, None),
        ));
    }
    oracle(&python, jobs);
    let tidelake_read = tidelake(warehouse, &[&format!("SELECT * FROM {DATABASE}.{table}")]);
    oracle(
        &python,
        vec![check(
            format!("{table}: written by pypaimon, read by Tidelake"),
            canon_job(&tidelake_read),
        )],
    );
}

fn fields(columns: &[(&str, &str)]) -> Json {
    Json::Arr(
        columns
            .iter()
            .map(|(name, t)| Json::obj([("name", Json::str(*name)), ("type", Json::str(*t))]))
            .collect(),
    )
}

fn spec(
    table: &str,
    columns: &[(&str, &str)],
    keys: (&[&str], &[&str]),
    options: Json,
    commits: Vec<Vec<(&str, Json)>>,
) -> Json {
    let commits = commits
        .into_iter()
        .map(|commit| {
            Json::Arr(
                commit
                    .into_iter()
                    .map(|(k, row)| Json::obj([("kind", Json::str(k)), ("row", row)]))
                    .collect(),
            )
        })
        .collect();
    Json::obj([
        ("database", Json::str(DATABASE)),
        ("table", Json::str(table)),
        ("fields", fields(columns)),
        ("primary_keys", Json::strs(keys.0.iter().copied())),
        ("partition_keys", Json::strs(keys.1.iter().copied())),
        ("options", options),
        ("commits", Json::Arr(commits)),
    ])
}

/// Keys and partitions of many types exercise BinaryRow keys, bucket hashing
/// and partition paths; NULL and odd partition values exercise escaping.
#[test]
fn pypaimon_writes_typed_keys_and_odd_partitions() {
    let columns = [
        ("day", "DATE NOT NULL"),
        ("k_dec", "DECIMAL(20, 4) NOT NULL"),
        ("k_ts", "TIMESTAMP(6) NOT NULL"),
        ("k_s", "STRING NOT NULL"),
        ("v", "INT"),
        ("_kind", "STRING"),
    ];
    let row = |kind: &str, n: i64, v: Option<i64>| {
        Json::obj([
            ("day", Json::Str(format!("1969-12-3{}", n % 2))),
            (
                "k_dec",
                Json::Str(format!("{}.{n:04}", 1_000_000_000_000_000 + n)),
            ),
            (
                "k_ts",
                Json::Str(format!("2024-01-01T00:00:0{}.{n:06}", n % 10)),
            ),
            ("k_s", Json::Str(format!("key-with-a-long-tail-{n}"))),
            ("v", v.map_or(Json::Null, |v| Json::Int(v.into()))),
            ("_kind", Json::str(kind)),
        ])
    };
    let written = spec(
        "typed_keys",
        &columns,
        (&["day", "k_dec", "k_ts", "k_s"], &["day"]),
        Json::obj([
            ("bucket", Json::str("2")),
            ("rowkind.field", Json::str("_kind")),
        ]),
        vec![
            (0..6).map(|n| ("+I", row("+I", n, Some(n)))).collect(),
            vec![
                ("+I", row("+I", 1, Some(100))),
                ("-D", row("-D", 2, None)),
                ("+I", row("+I", 7, None)),
            ],
        ],
    );
    let expected = vec![
        row("+I", 0, Some(0)),
        row("+I", 1, Some(100)),
        row("+I", 3, Some(3)),
        row("+I", 4, Some(4)),
        row("+I", 5, Some(5)),
        row("+I", 7, None),
    ];
    tidelake_reads_spec("typed_keys", written, fields(&columns), expected);

    let columns = [("id", "INT NOT NULL"), ("p", "STRING"), ("q", "INT")];
    let part_row =
        |id: i64, p: Json, q: Json| Json::obj([("id", Json::Int(id.into())), ("p", p), ("q", q)]);
    let rows = vec![
        part_row(1, Json::Null, Json::Null),
        part_row(2, Json::str("a/b c=d%#?"), Json::Int(-1)),
        part_row(3, Json::str("ünï"), Json::Int(0)),
    ];
    let written = spec(
        "odd_partitions",
        &columns,
        (&[], &["p", "q"]),
        Json::obj([]),
        vec![rows.iter().map(|r| ("+I", r.clone())).collect()],
    );
    tidelake_reads_spec("odd_partitions", written, fields(&columns), rows);
}

#[test]
fn pypaimon_writes_nested_types() {
    let columns = [
        ("id", "INT NOT NULL"),
        ("a", "ARRAY<DECIMAL(10, 2)>"),
        ("m", "MAP<STRING, BIGINT>"),
        ("r", "ROW<x INT, y STRING>"),
    ];
    let full = Json::obj([
        ("id", Json::Int(1)),
        (
            "a",
            Json::Arr(vec![Json::str("1.50"), Json::Null, Json::str("-0.01")]),
        ),
        (
            "m",
            Json::Arr(vec![
                Json::Arr(vec![Json::str("a"), Json::Int(1)]),
                Json::Arr(vec![Json::str("b"), Json::Null]),
            ]),
        ),
        (
            "r",
            Json::obj([("x", Json::Int(7)), ("y", Json::str("seven"))]),
        ),
    ]);
    let sparse = Json::obj([
        ("id", Json::Int(2)),
        ("a", Json::Arr(vec![])),
        ("m", Json::Null),
        ("r", Json::obj([("x", Json::Null), ("y", Json::Null)])),
    ]);
    let empty = Json::obj([
        ("id", Json::Int(3)),
        ("a", Json::Null),
        ("m", Json::Arr(vec![])),
        ("r", Json::Null),
    ]);
    let written = spec(
        "nested",
        &columns,
        (&["id"], &[]),
        Json::obj([("bucket", Json::str("1"))]),
        vec![
            vec![("+I", full.clone()), ("+I", sparse.clone())],
            vec![("+I", empty.clone())],
        ],
    );
    tidelake_reads_spec(
        "nested",
        written,
        fields(&columns),
        vec![full, sparse, empty],
    );
}

// ------------------------------------------------------ the oracle itself

/// The oracle's own tests: pypaimon-written tables of every kind read back
/// exactly by both implementations, and the canonical encoding.
#[test]
fn oracle_self_tests_pass() {
    let Some(python) = python() else { return };
    let mut command = Command::new(python);
    command
        .args(["-m", "unittest", "discover", "-s"])
        .arg(workspace_root().join("tests/oracle"));
    let finished = run(command, "", ORACLE_TIMEOUT);
    assert!(
        finished.status.success(),
        "oracle self-tests failed:\n{}{}",
        finished.stdout,
        finished.stderr
    );
}

#[test]
fn json_encoding_is_valid() {
    let value = Json::obj([
        ("s", Json::str("a\"b\\c\n\u{1}ü")),
        (
            "n",
            Json::Arr(vec![
                Json::Int(-5),
                Json::Float(5e-324),
                Json::Float(0.1),
                Json::Float(1e16),
                Json::Null,
            ]),
        ),
        ("b", Json::Bool(false)),
    ]);
    assert_eq!(
        value.to_string(),
        r#"{"s":"a\"b\\c\n\u0001ü","n":[-5,5e-324,0.1,1e16,null],"b":false}"#
    );
}
