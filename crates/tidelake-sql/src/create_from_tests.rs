//! `SHOW CREATE TABLE` stays a statement that recreates the table after
//! every kind of schema change.

use datafusion::arrow::array::{Array, StringArray};

use crate::session::{Session, StatementResult};

async fn show_create(session: &Session, table: &str) -> String {
    let results = session
        .execute(&format!("SHOW CREATE TABLE {table}"))
        .await
        .unwrap();
    let Some(StatementResult::Rows { batches, .. }) = results.into_iter().next() else {
        panic!("SHOW CREATE TABLE returned no rows");
    };
    let column = batches[0].column(0);
    let text = column.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(text.len(), 1);
    text.value(0).to_string()
}

#[tokio::test]
async fn show_create_table_round_trips_after_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(dir.path().to_str().unwrap()).await.unwrap();
    session
        .execute(
            "CREATE TABLE t (id BIGINT, dt STRING, n INT COMMENT 'n''s', price DECIMAL(5, 2), \
             \"Mixed Case\" STRING, ts TIMESTAMP(3), seq INT, total BIGINT, \
             WATERMARK FOR ts AS ts - INTERVAL '1' SECOND, PRIMARY KEY (id, dt) NOT ENFORCED) \
             COMMENT 'orders' PARTITIONED BY (dt) \
             WITH ('bucket' = '2', 'sequence.field' = 'seq', 'merge-engine' = 'aggregation', \
             'fields.total.aggregate-function' = 'sum'); \
             INSERT INTO t VALUES (1, 'd', 1, 1.5, 'm', TIMESTAMP '2024-01-01 00:00:00', 1, 5)",
        )
        .await
        .unwrap();
    let changes = [
        "ALTER TABLE t RENAME COLUMN n TO qty",
        "ALTER TABLE t ALTER COLUMN qty TYPE BIGINT",
        "ALTER TABLE t MODIFY price DECIMAL(12, 4) COMMENT 'it''s money'",
        "ALTER TABLE t DROP COLUMN \"Mixed Case\"",
        "ALTER TABLE t ADD COLUMN \"select\" VARCHAR(3) FIRST",
        "ALTER TABLE t ALTER COLUMN qty AFTER id",
        "ALTER TABLE t RENAME COLUMN seq TO \"Version\"",
        "ALTER TABLE t RENAME COLUMN total TO amount",
        "ALTER TABLE t RENAME COLUMN id TO \"Order Id\"",
        "ALTER TABLE t ALTER COLUMN \"select\" TYPE STRING",
        "ALTER TABLE t ALTER COLUMN qty COMMENT ''",
    ];
    for (i, change) in changes.iter().enumerate() {
        session
            .execute(change)
            .await
            .unwrap_or_else(|e| panic!("{change}: {e}"));
        let shown = show_create(&session, "t").await;
        let copy = format!("copy{i}");
        let recreate = shown.replacen(
            "CREATE TABLE \"default\".t ",
            &format!("CREATE TABLE {copy}.t "),
            1,
        );
        assert_ne!(recreate, shown, "{shown}");
        session
            .execute(&format!("CREATE DATABASE {copy}; {recreate}"))
            .await
            .unwrap_or_else(|e| panic!("after {change}, {recreate}: {e}"));
        let again = show_create(&session, &format!("{copy}.t")).await;
        assert_eq!(
            again.replacen(&format!("{copy}.t "), "\"default\".t ", 1),
            shown,
            "after {change}"
        );
    }
    let last = show_create(&session, "t").await;
    assert!(
        last.contains("'fields.amount.aggregate-function' = 'sum'"),
        "{last}"
    );
    assert!(last.contains("'sequence.field' = 'Version'"), "{last}");
    assert!(last.contains("PRIMARY KEY (\"Order Id\", dt)"), "{last}");
}

#[tokio::test]
async fn a_failed_ctas_leaves_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(dir.path().to_str().unwrap()).await.unwrap();
    session
        .execute("CREATE TABLE src (k INT, v INT); INSERT INTO src VALUES (1, 1), (NULL, 2)")
        .await
        .unwrap();
    let failed = session
        .execute("CREATE TABLE bad (PRIMARY KEY (k) NOT ENFORCED) AS SELECT k, v FROM src")
        .await;
    assert!(failed.is_err());
    assert!(!dir.path().join("default.db").join("bad").exists());
    let failed = session
        .execute("CREATE TABLE bad2 AS SELECT nope FROM src")
        .await;
    assert!(failed.is_err());
    assert!(!dir.path().join("default.db").join("bad2").exists());
}

#[tokio::test]
async fn object_stores_refuse_to_rename_tables() {
    let session = Session::open("memory://").await.unwrap();
    session
        .execute("CREATE TABLE t (a INT); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let refused = session
        .execute("ALTER TABLE t RENAME TO u")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "0A000");
    assert!(
        refused
            .to_string()
            .contains("an object store cannot rename a folder"),
        "{refused}"
    );
    assert_eq!(
        session.execute("SELECT * FROM t").await.unwrap()[0].row_count(),
        1
    );
    assert!(session.execute("SELECT * FROM u").await.is_err());
}
