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
//!
//! The harness (JSON, the oracle, values) is `tidelake_testkit::oracle`.

use std::process::Command;

use tidelake_testkit::oracle::*;
use tidelake_testkit::process::run;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::json_sql;

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
    /// Any other statement (`{t}` stands for the table) and its effect.
    Sql {
        template: &'static str,
        effect: fn(&mut Model, &Layout),
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
            Step::Sql { template, .. } => template.replace("{t}", &format!("{DATABASE}.{table}")),
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
            Step::Sql { effect, .. } => effect(model, layout),
        }
    }
}

/// MERGE, DROP PARTITION and TRUNCATE (OVERWRITE commits with DELETE
/// entries, rewritten files), then rows again: ids 1 and 2 exist once in
/// every script, 99 in none.
fn partition_and_merge_steps(kind: &TableKind) -> Vec<Step> {
    let mut steps = vec![Step::Sql {
        template: "MERGE INTO {t} AS t USING (VALUES (1, 'gone'), (2, 'merged'), (99, 'new')) AS s(id, tag) \
                   ON t.id = s.id \
                   WHEN MATCHED AND s.tag = 'gone' THEN DELETE \
                   WHEN MATCHED THEN UPDATE SET vc = s.tag \
                   WHEN NOT MATCHED THEN INSERT (id, dt, vc) VALUES (s.id, 'p0', s.tag)",
        effect: |model, layout| {
            model.delete(|id| id == 1);
            let vc = layout.index("vc");
            for (id, row) in &mut model.rows {
                if *id == 2 {
                    row[vc] = Value::new("'merged'", Json::str("merged"));
                }
            }
            let mut row = vec![Value::null(); layout.columns.len()];
            row[0] = Value::new("99", Json::Int(99.into()));
            row[1] = Value::new("'p0'", Json::str("p0"));
            row[vc] = Value::new("'new'", Json::str("new"));
            model.upsert(99, row);
        },
    }];
    if kind.partitioned {
        steps.push(Step::Sql {
            template: "ALTER TABLE {t} DROP PARTITION (dt = 'p1')",
            effect: |model, _| model.delete(|id| id % 3 == 1),
        });
    }
    steps.push(Step::Sql {
        template: "TRUNCATE TABLE {t}",
        effect: |model, _| model.delete(|_| true),
    });
    steps.push(Step::Insert {
        ids: vec![1, 2, 4],
        version: 3,
    });
    steps
}

fn write_script(kind: &TableKind) -> Vec<Step> {
    let mut steps = script_of_rows(kind);
    steps.extend(partition_and_merge_steps(kind));
    steps
}

fn script_of_rows(kind: &TableKind) -> Vec<Step> {
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
    let dir = KeptOnFailure::new(kind.name);
    let warehouse = dir.path();
    let layout = Layout::all_types();
    json_sql(
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
        json_sql(warehouse, &[&sql]);
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
    let own_read = json_sql(
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
    let dir = KeptOnFailure::new("partitions");
    let warehouse = dir.path();
    json_sql(
        warehouse,
        &[
            &format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
            &format!("CREATE TABLE {DATABASE}.parts (id INT NOT NULL, p STRING, q INT, v DOUBLE) PARTITIONED BY (p, q)"),
        ],
    );
    json_sql(
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
    let own_read = json_sql(warehouse, &[&format!("SELECT * FROM {DATABASE}.parts")]);
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
    let dir = KeptOnFailure::new(kind.name);
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

    let tidelake_read = json_sql(
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
    let dir = KeptOnFailure::new(label);
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
    let tidelake_read = json_sql(warehouse, &[&format!("SELECT * FROM {DATABASE}.{table}")]);
    oracle(
        &python,
        vec![check(
            format!("{table}: written by pypaimon, read by Tidelake"),
            canon_job(&tidelake_read),
        )],
    );
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
    let finished = run(&mut command, "", ORACLE_TIMEOUT);
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
