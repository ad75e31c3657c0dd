//! Branches across implementations: a branch Tidelake creates and writes
//! (`<table>/branch/branch-<name>/`, Paimon's layout) must be read exactly
//! by pypaimon (`catalog.get_table("db.t$branch_dev")`), with main left as
//! it was; and a branch pypaimon creates must be read and written by
//! Tidelake, and read back by pypaimon. pypaimon-rust reads a branch too.

use tidelake_testkit::oracle::*;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::json_sql;

const TABLE: &str = "bt";
const COLUMNS: [(&str, &str); 2] = [("id", "BIGINT NOT NULL"), ("s", "STRING")];

fn rows(values: &[(i64, &str)]) -> Vec<Json> {
    values
        .iter()
        .map(|(id, s)| Json::obj([("id", Json::Int((*id).into())), ("s", Json::str(*s))]))
        .collect()
}

/// pypaimon must read exactly `expected` from `table` (a name in the
/// interop database, `bt` or `bt$branch_dev`).
fn check(warehouse: &std::path::Path, label: &str, table: &str, expected: &[(i64, &str)]) -> Json {
    check_with(warehouse, label, table, expected, "pypaimon")
}

/// As [`check`], read by `implementation`.
fn check_with(
    warehouse: &std::path::Path,
    label: &str,
    table: &str,
    expected: &[(i64, &str)],
    implementation: &str,
) -> Json {
    Json::obj([
        ("op", Json::str("check")),
        ("label", Json::str(label)),
        ("fields", fields(&COLUMNS)),
        ("expected", Json::Arr(rows(expected))),
        ("primary_keys", Json::strs(["id"])),
        ("partition_keys", Json::Arr(vec![])),
        ("options", Json::obj([("bucket", Json::str("2"))])),
        ("actual", read_job(warehouse, table, implementation, None)),
    ])
}

#[test]
fn pypaimon_reads_branches_tidelake_writes_and_back() {
    let Some(python) = python() else { return };
    let dir = KeptOnFailure::new("branches");
    let warehouse = dir.path();
    let t = format!("{DATABASE}.{TABLE}");
    json_sql(
        warehouse,
        &[
            &format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
            &format!(
                "CREATE TABLE {t} (id BIGINT NOT NULL, s STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '2')"
            ),
            &format!("INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c')"),
            &format!("CALL sys.create_tag(table => '{t}', tag => 'v1')"),
            &format!("INSERT INTO {t} VALUES (4, 'main only')"),
            &format!("CALL sys.create_branch(table => '{t}', branch => 'dev', tag => 'v1')"),
            &format!("INSERT INTO {t}$branch_dev VALUES (2, 'B'), (5, 'dev only')"),
            &format!("INSERT INTO {t} /*+ OPTIONS('branch' = 'dev') */ VALUES (6, 'hinted')"),
            &format!("DELETE FROM {t}$branch_dev WHERE id = 1"),
            &format!("CALL sys.create_branch(table => '{t}', branch => 'fresh')"),
            &format!("INSERT INTO {t}$branch_fresh VALUES (7, 'fresh')"),
        ],
    );
    let main = [(1, "a"), (2, "b"), (3, "c"), (4, "main only")];
    oracle(
        &python,
        vec![
            check(warehouse, "main, read by pypaimon", TABLE, &main),
            check(
                warehouse,
                "branch dev (from tag v1), read by pypaimon",
                &format!("{TABLE}$branch_dev"),
                &[(2, "B"), (3, "c"), (5, "dev only"), (6, "hinted")],
            ),
            check(
                warehouse,
                "branch fresh (no tag), read by pypaimon",
                &format!("{TABLE}$branch_fresh"),
                &[(7, "fresh")],
            ),
            check_with(
                warehouse,
                "branch dev, read by pypaimon-rust",
                &format!("{TABLE}$branch_dev"),
                &[(2, "B"), (3, "c"), (5, "dev only"), (6, "hinted")],
                "pypaimon-rust",
            ),
            // pypaimon makes a branch of its own from the same tag.
            Json::obj([
                ("op", Json::str("branch")),
                ("label", Json::str("pypaimon creates branch py from tag v1")),
                ("warehouse", Json::str(warehouse.to_string_lossy())),
                ("table", Json::str(&t)),
                ("branch", Json::str("py")),
                ("tag", Json::str("v1")),
            ]),
        ],
    );

    let listed = json_sql(
        warehouse,
        &[
            &format!("SELECT branch_name FROM {t}$branches ORDER BY branch_name"),
            &format!("INSERT INTO {t}$branch_py VALUES (3, 'C from tidelake')"),
            &format!("SELECT id, s FROM {t}$branch_py ORDER BY id"),
        ],
    );
    for expected in ["\"dev\"", "\"fresh\"", "\"py\"", "\"C from tidelake\""] {
        assert!(
            listed.contains(expected),
            "{expected} missing from:\n{listed}"
        );
    }
    oracle(
        &python,
        vec![
            check(
                warehouse,
                "branch py (pypaimon's), written by Tidelake, read by pypaimon",
                &format!("{TABLE}$branch_py"),
                &[(1, "a"), (2, "b"), (3, "C from tidelake")],
            ),
            check(warehouse, "main unchanged by branches", TABLE, &main),
        ],
    );
}
