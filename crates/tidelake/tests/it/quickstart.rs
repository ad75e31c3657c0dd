//! The README's quickstart, statement by statement, from the repository's
//! root (where `examples/orders.csv` is), so the first thing a new user
//! types keeps working.

use std::path::{Path, PathBuf};

use crate::TIDELAKE;

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sql(warehouse: &Path, statement: &str, format: &str) -> String {
    let mut command = TIDELAKE.command(warehouse);
    command
        .current_dir(repository_root())
        .args(["sql", "--format", format, "-e", statement]);
    let output = TIDELAKE.run(&mut command, "");
    assert!(
        output.status.success(),
        "{statement}\nstdout: {}\nstderr: {}",
        output.stdout,
        output.stderr
    );
    output.stdout
}

#[test]
fn the_readme_quickstart_runs() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse");
    let out = dir.path().join("nov1.parquet");
    sql(&warehouse, "CREATE DATABASE shop", "table");
    sql(
        &warehouse,
        "CREATE TABLE shop.orders (
           id BIGINT NOT NULL, dt STRING NOT NULL, customer STRING,
           amount DECIMAL(10, 2), ts TIMESTAMP(3),
           PRIMARY KEY (id, dt) NOT ENFORCED
         ) PARTITIONED BY (dt) WITH ('bucket' = '2')",
        "table",
    );
    let copied = sql(
        &warehouse,
        "COPY shop.orders FROM 'examples/orders.csv' (FORMAT csv, HEADER true)",
        "table",
    );
    assert_eq!(copied.trim(), "COPY 40");
    let peek = sql(
        &warehouse,
        "SELECT * FROM read_csv('examples/orders.csv') LIMIT 3",
        "csv",
    );
    assert_eq!(peek.lines().count(), 4, "{peek}");
    sql(
        &warehouse,
        "UPDATE shop.orders SET amount = amount * 2 WHERE customer = 'ada'",
        "table",
    );
    sql(&warehouse, "DELETE FROM shop.orders WHERE id = 2", "table");
    sql(
        &warehouse,
        "MERGE INTO shop.orders t USING (VALUES (1, '2026-11-01', 5.00)) AS s(id, dt, amount)
           ON t.id = s.id AND t.dt = s.dt
           WHEN MATCHED THEN UPDATE SET amount = t.amount + s.amount
           WHEN NOT MATCHED THEN INSERT (id, dt, amount) VALUES (s.id, s.dt, s.amount)",
        "table",
    );
    let totals = sql(
        &warehouse,
        "SELECT count(*) AS n, sum(CASE WHEN id = 1 THEN amount END) AS merged FROM shop.orders",
        "csv",
    );
    assert_eq!(totals, "n,merged\n39,55.43\n");
    let export = format!(
        "COPY (SELECT * FROM shop.orders WHERE dt = '2026-11-01') TO '{}'",
        out.display()
    );
    sql(&warehouse, &export, "table");
    let back = sql(
        &warehouse,
        &format!(
            "SELECT count(*) AS n FROM read_parquet('{}')",
            out.display()
        ),
        "csv",
    );
    assert_eq!(back, "n\n13\n");
    let partitions = sql(&warehouse, "SHOW PARTITIONS shop.orders", "csv");
    assert_eq!(
        partitions,
        "partition\ndt=2026-11-01\ndt=2026-11-02\ndt=2026-11-03\n"
    );
    let kept = sql(
        &warehouse,
        "SELECT count(*) AS n FROM shop.orders WHERE dt = '2026-11-02' AND amount > 100",
        "csv",
    );
    let kept = kept.trim().trim_start_matches("n\n").to_string();
    sql(
        &warehouse,
        "INSERT OVERWRITE shop.orders PARTITION (dt = '2026-11-02') \
         SELECT id, customer, amount, ts FROM shop.orders WHERE dt = '2026-11-02' AND amount > 100",
        "table",
    );
    sql(
        &warehouse,
        "ALTER TABLE shop.orders DROP PARTITION (dt = '2026-11-03')",
        "table",
    );
    let left = sql(
        &warehouse,
        "SELECT dt, count(*) AS n FROM shop.orders GROUP BY dt ORDER BY dt",
        "csv",
    );
    assert!(kept.parse::<u32>().unwrap() < 14, "{kept}");
    assert_eq!(left, format!("dt,n\n2026-11-01,13\n2026-11-02,{kept}\n"));
}
