//! Schema evolution as Paimon's readers see it: Tidelake renames, drops and
//! widens columns (new `schema-N` files, stable field ids), then renames the
//! primary key (or the append table's bucket key), with rows written before
//! and after each change; pypaimon and pypaimon-rust must read the latest
//! schema's rows exactly, and so must Tidelake.

use tidelake_testkit::oracle::*;
use tidelake_testkit::warehouse::KeptOnFailure;

use crate::json_sql;

/// The statements: (SQL, rows it upserts as (id, qty, price, note)).
type Row = (i64, i64, &'static str, &'static str);

fn script(table: &str) -> Vec<(String, Vec<Row>)> {
    let t = format!("{DATABASE}.{table}");
    vec![
        (
            format!("INSERT INTO {t} VALUES (1, 10, 1.25, 'a', 'x'), (2, 20, 2.50, 'b', 'y')"),
            vec![(1, 10, "1.250", "a"), (2, 20, "2.500", "b")],
        ),
        (format!("ALTER TABLE {t} RENAME COLUMN n TO qty"), vec![]),
        (
            format!("INSERT INTO {t} VALUES (3, 30, 3.75, 'c', 'z'), (1, 11, 1.5, 'a2', 'x2')"),
            vec![(3, 30, "3.750", "c"), (1, 11, "1.500", "a2")],
        ),
        (format!("ALTER TABLE {t} DROP COLUMN extra"), vec![]),
        (
            format!("INSERT INTO {t} VALUES (4, 40, 4.00, 'd')"),
            vec![(4, 40, "4.000", "d")],
        ),
        (
            format!("ALTER TABLE {t} ALTER COLUMN qty TYPE BIGINT"),
            vec![],
        ),
        (
            format!("ALTER TABLE {t} MODIFY price DECIMAL(10, 3)"),
            vec![],
        ),
        (
            format!("INSERT INTO {t} VALUES (5, 5000000000, 12345.125, 'e'), (2, 21, 2.5, 'b2')"),
            vec![(5, 5_000_000_000, "12345.125", "e"), (2, 21, "2.500", "b2")],
        ),
        // The primary key (or the append table's bucket key) renamed.
        (
            format!("ALTER TABLE {t} RENAME COLUMN id TO order_id"),
            vec![],
        ),
        (
            format!("INSERT INTO {t} VALUES (6, 60, 6, 'f'), (3, 31, 3.5, 'c2')"),
            vec![(6, 60, "6.000", "f"), (3, 31, "3.500", "c2")],
        ),
    ]
}

fn evolve_and_read(table: &str, primary_key: bool) {
    let Some(python) = python() else { return };
    let dir = KeptOnFailure::new(table);
    let warehouse = dir.path();
    let key = if primary_key {
        ", PRIMARY KEY (id) NOT ENFORCED"
    } else {
        ""
    };
    json_sql(
        warehouse,
        &[
            &format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
            &format!(
                "CREATE TABLE {DATABASE}.{table} (id INT NOT NULL, n INT, price DECIMAL(5, 2), note STRING, extra STRING{key}) WITH ('bucket' = '1'{})",
                if primary_key { "" } else { ", 'bucket-key' = 'id'" }
            ),
        ],
    );
    let mut rows: Vec<Row> = Vec::new();
    for (sql, upserts) in script(table) {
        json_sql(warehouse, &[&sql]);
        for row in upserts {
            if primary_key {
                rows.retain(|r| r.0 != row.0);
            }
            rows.push(row);
        }
    }
    let expected: Vec<Json> = rows
        .iter()
        .map(|(id, qty, price, note)| {
            Json::obj([
                ("order_id", Json::Int((*id).into())),
                ("qty", Json::Int((*qty).into())),
                ("price", Json::str(*price)),
                ("note", Json::str(*note)),
            ])
        })
        .collect();
    let fields = fields(&[
        ("order_id", "INT NOT NULL"),
        ("qty", "BIGINT"),
        ("price", "DECIMAL(10, 3)"),
        ("note", "STRING"),
    ]);
    let keys: &[&str] = if primary_key { &["order_id"] } else { &[] };
    let extra = [("primary_keys", Json::strs(keys.iter().copied()))];
    let check = |label: String, actual: Json| check_job(label, &fields, &expected, &extra, actual);
    let own_read = json_sql(warehouse, &[&format!("SELECT * FROM {DATABASE}.{table}")]);
    let mut jobs = vec![check(
        format!("{table}: Tidelake's own SELECT *"),
        canon_job(&own_read),
    )];
    for implementation in IMPLEMENTATIONS {
        jobs.push(check(
            format!("{table} after rename, drop and widening, read by {implementation}"),
            read_job(warehouse, table, implementation, None),
        ));
    }
    oracle(&python, jobs);
}

#[test]
fn primary_key_table_after_rename_drop_and_widening() {
    evolve_and_read("evolved_pk", true);
}

#[test]
fn append_table_after_rename_drop_and_widening() {
    evolve_and_read("evolved_append", false);
}
