//! The Python oracle (`tests/oracle/oracle.py`, run by the venv's Python):
//! a JSON builder for its jobs, running them, and typed values with their
//! SQL and canonical encodings; [`lsm_model`] is the model of Paimon's merge
//! semantics the LSM interop tests compare with.

pub mod lsm_model;

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::run;
pub use crate::python::workspace_root;

pub const DATABASE: &str = "interop";
pub const ORACLE_TIMEOUT: Duration = Duration::from_secs(300);
pub const IMPLEMENTATIONS: [&str; 2] = ["pypaimon", "pypaimon-rust"];

// ------------------------------------------------------------------ JSON

/// Just enough JSON to send jobs to the oracle (the crate has no JSON
/// dependency, and the oracle does all parsing and comparing).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn str(text: impl Into<String>) -> Json {
        Json::Str(text.into())
    }

    pub fn obj<'a>(members: impl IntoIterator<Item = (&'a str, Json)>) -> Json {
        Json::Obj(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Json {
        Json::Arr(items.into_iter().map(Json::str).collect())
    }
}

pub fn write_json_string(text: &str, out: &mut fmt::Formatter<'_>) -> fmt::Result {
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

// ------------------------------------------------------- the oracle

pub fn oracle_script() -> PathBuf {
    workspace_root().join("tests/oracle/oracle.py")
}

/// The oracle's Python, or `None` (after a note) when there is none outside CI.
pub fn python() -> Option<PathBuf> {
    crate::python::or_skip("interop test (needs pypaimon and pypaimon-rust)")
}

/// Runs oracle jobs in one Python process; panics with every failure.
pub fn oracle(python: &Path, jobs: Vec<Json>) {
    let mut command = Command::new(python);
    command.arg(oracle_script()).arg("batch");
    let finished = run(&mut command, &Json::Arr(jobs).to_string(), ORACLE_TIMEOUT);
    assert!(
        finished.status.success(),
        "the oracle found differences ({}):\n{}\n(full results:\n{})",
        finished.status,
        finished.stderr,
        finished.stdout
    );
}

pub fn table_dir(warehouse: &Path, table: &str) -> PathBuf {
    warehouse.join(format!("{DATABASE}.db")).join(table)
}

/// The highest `snapshot-N` in the table's snapshot directory.
pub fn latest_snapshot(warehouse: &Path, table: &str) -> Option<u64> {
    crate::cli::latest_snapshot(warehouse, DATABASE, table).and_then(|id| u64::try_from(id).ok())
}

// ------------------------------------------------------- columns, values

/// A value as a SQL literal and in the oracle's canonical encoding.
#[derive(Clone, Debug)]
pub struct Value {
    pub sql: String,
    pub canonical: Json,
}

impl Value {
    pub fn null() -> Value {
        Value {
            sql: "NULL".into(),
            canonical: Json::Null,
        }
    }

    pub fn new(sql: impl Into<String>, canonical: Json) -> Value {
        Value {
            sql: sql.into(),
            canonical,
        }
    }
}

pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub fn decimal(text: String, sql_type: &str) -> Value {
    // A string cast keeps every digit; a bare numeric literal may pass through f64.
    Value::new(
        format!("CAST({} AS {sql_type})", sql_string(&text)),
        Json::Str(text),
    )
}

/// Canonical FLOAT: the shortest decimal of the 32-bit value.
pub fn float32(x: f32) -> Value {
    let shortest: f64 = format!("{x:?}").parse().expect("f32 text reads back");
    Value::new(format!("CAST({x:?} AS FLOAT)"), Json::Float(shortest))
}

pub fn float64(x: f64) -> Value {
    Value::new(format!("CAST({x:?} AS DOUBLE)"), Json::Float(x))
}

pub fn date_of(n: i64) -> String {
    format!("{}-{:02}-{:02}", 1950 + n % 90, 1 + n % 12, 1 + n % 28)
}

/// Timestamp `n` with a fraction of `digits` digits.
pub fn timestamp(n: i64, fraction: i64, digits: usize) -> Value {
    let date = date_of(n);
    let time = format!("{:02}:{:02}:{:02}", n % 24, n * 7 % 60, n * 13 % 60);
    let fraction = format!("{fraction:0digits$}");
    Value::new(
        format!("TIMESTAMP '{date} {time}.{fraction}'"),
        Json::Str(format!("{date}T{time}.{fraction:0<6}")),
    )
}

/// One column of every scalar type.
pub const TYPE_COLUMNS: [(&str, &str); 18] = [
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
pub fn type_value(column: &str, n: i64) -> Value {
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
pub struct Layout {
    pub columns: Vec<(&'static str, &'static str)>,
}

impl Layout {
    pub fn all_types() -> Layout {
        let mut columns = vec![("id", "BIGINT NOT NULL"), ("dt", "STRING NOT NULL")];
        columns.extend(TYPE_COLUMNS);
        Layout { columns }
    }

    /// Row `id` at `version` (values of `all_types`); one type column,
    /// rotating with both, is NULL.
    pub fn row(&self, id: i64, version: i64) -> Vec<Value> {
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

    pub fn index(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    pub fn fields_json(&self) -> Json {
        fields(&self.columns)
    }

    pub fn row_json(&self, row: &[Value]) -> Json {
        Json::Obj(
            self.columns
                .iter()
                .zip(row)
                .map(|((name, _), v)| (name.to_string(), v.canonical.clone()))
                .collect(),
        )
    }
}

pub fn read_job(
    warehouse: &Path,
    table: &str,
    implementation: &str,
    snapshot: Option<u64>,
) -> Json {
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

pub fn canon_job(output: &str) -> Json {
    Json::obj([
        ("op", Json::str("canon")),
        ("lines", Json::Arr(output.lines().map(Json::str).collect())),
    ])
}

/// A check job: `actual` (a read or canon job) must hold exactly the
/// `expected` rows of `fields`; `extra` adds members such as
/// `primary_keys` or `partition_keys` that a read table must have too.
pub fn check_job(
    label: String,
    fields: &Json,
    expected: &[Json],
    extra: &[(&str, Json)],
    actual: Json,
) -> Json {
    let mut members = vec![
        ("op", Json::str("check")),
        ("label", Json::Str(label)),
        ("fields", fields.clone()),
        ("expected", Json::Arr(expected.to_vec())),
    ];
    members.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    members.push(("actual", actual));
    Json::obj(members)
}

pub fn fields(columns: &[(&str, &str)]) -> Json {
    Json::Arr(
        columns
            .iter()
            .map(|(name, t)| Json::obj([("name", Json::str(*name)), ("type", Json::str(*t))]))
            .collect(),
    )
}

pub fn spec(
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
