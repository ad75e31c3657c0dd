//! The `Session` API as protocol servers use it: through the `QueryHandler`
//! trait, with streamed query results.

use std::sync::Arc;

use futures::StreamExt;
use tidelake_sql::{QueryHandler, ScalarValue, Session, StatementResult, StreamingResult};

async fn handler() -> (tempfile::TempDir, Arc<dyn QueryHandler>) {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(dir.path().to_str().unwrap()).await.unwrap();
    (dir, Arc::new(session))
}

#[tokio::test]
async fn scripts_return_one_result_per_statement() {
    let (_dir, h) = handler().await;
    let results = h
        .execute("CREATE TABLE t (id INT, PRIMARY KEY (id)); INSERT INTO t VALUES (1), (2); SELECT * FROM t ORDER BY id;")
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(matches!(&results[0], StatementResult::Status(s) if s.to_string() == "CREATE TABLE"));
    assert!(
        matches!(&results[1], StatementResult::Status(s) if s.to_string() == "INSERT 0 2" && s.rows == Some(2))
    );
    assert_eq!(results[2].row_count(), 2);
}

#[tokio::test]
async fn queries_stream_their_batches() {
    let (_dir, h) = handler().await;
    h.execute("CREATE TABLE t (id INT); INSERT INTO t VALUES (1), (2), (3)")
        .await
        .unwrap();
    let StreamingResult::Rows(query) = h
        .execute_stream("SELECT id * 2 AS twice FROM t")
        .await
        .unwrap()
    else {
        panic!("a query streams rows");
    };
    assert_eq!(query.schema.field(0).name(), "twice");
    let mut rows = 0;
    let mut stream = query.stream;
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 3);
    let status = h.execute_stream("INSERT INTO t VALUES (4)").await.unwrap();
    assert!(matches!(status, StreamingResult::Status(s) if s.to_string() == "INSERT 0 1"));
}

#[tokio::test]
async fn execute_stream_takes_exactly_one_statement() {
    let (_dir, h) = handler().await;
    assert_eq!(
        h.execute_stream("SELECT 1; SELECT 2")
            .await
            .unwrap_err()
            .code(),
        "42601"
    );
    assert_eq!(
        h.execute_stream("  -- nothing\n").await.unwrap_err().code(),
        "42601"
    );
}

#[tokio::test]
async fn a_failing_statement_stops_the_script() {
    let (_dir, h) = handler().await;
    let err = h
        .execute("CREATE TABLE a (x INT); SELECT * FROM b; CREATE TABLE c (x INT)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "42P01");
    let tables = h.execute("SHOW TABLES").await.unwrap();
    let StatementResult::Rows { batches, .. } = &tables[0] else {
        panic!("SHOW TABLES has rows")
    };
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert_eq!(h.current_database(), "default");
    h.execute("CREATE DATABASE d; USE d").await.unwrap();
    assert_eq!(h.current_database(), "d");
}

#[tokio::test]
async fn progress_counts_the_rows_a_statement_writes() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(dir.path().to_str().unwrap()).await.unwrap();
    let progress = session.progress();
    session
        .execute("CREATE TABLE t (id BIGINT, PRIMARY KEY (id) NOT ENFORCED)")
        .await
        .unwrap();
    session
        .execute("INSERT INTO t SELECT unnest(range(1, 2501))")
        .await
        .unwrap();
    assert_eq!(progress.rows_written(), 2500);
    // The next statement starts from zero.
    session.execute("SELECT count(*) FROM t").await.unwrap();
    assert_eq!(progress.rows_written(), 0);
}

/// The rows of a streamed result, as text of the first column.
async fn first_column(result: StreamingResult) -> Vec<String> {
    let StreamingResult::Rows(query) = result else {
        panic!("no rows");
    };
    let batches: Vec<_> = query.stream.collect::<Vec<_>>().await;
    let mut out = Vec::new();
    for batch in batches {
        let batch = batch.unwrap();
        let column = datafusion::arrow::util::display::ArrayFormatter::try_new(
            batch.column(0).as_ref(),
            &Default::default(),
        )
        .unwrap();
        out.extend((0..batch.num_rows()).map(|i| column.value(i).to_string()));
    }
    out
}

#[tokio::test]
async fn a_prepared_point_query_runs_without_planning_and_declines_when_it_must() {
    let (_dir, h) = handler().await;
    h.execute(
        "CREATE TABLE t (dt STRING, id BIGINT, v STRING, PRIMARY KEY (dt, id)); \
         INSERT INTO t VALUES ('a', 1, 'one'), ('a', 2, 'two')",
    )
    .await
    .unwrap();
    // Not point queries: no parameter, a non-key filter, a join, DML.
    for sql in [
        "SELECT v FROM t WHERE dt = 'a' AND id = 1",
        "SELECT v FROM t WHERE dt = $1 AND v = $2",
        "SELECT v FROM t WHERE dt = $1",
        "SELECT a.v FROM t a JOIN t b ON a.id = b.id WHERE a.dt = $1 AND a.id = $2",
        "DELETE FROM t WHERE dt = $1 AND id = $2",
        "SELECT v FROM missing WHERE dt = $1 AND id = $2",
    ] {
        assert!(h.prepare_point(sql).await.is_none(), "{sql}");
    }
    let point = h
        .prepare_point("SELECT v, id FROM t WHERE id = $2 AND dt = $1")
        .await
        .expect("a point query");
    let db = h.current_database();
    let run = |params: Vec<ScalarValue>| {
        let point = point.clone();
        let db = db.clone();
        async move { point.execute(&db, &params).await.unwrap() }
    };
    let text = |s: &str| ScalarValue::Utf8(Some(s.into()));
    let found = run(vec![text("a"), ScalarValue::Int64(Some(2))]).await;
    assert_eq!(first_column(found.expect("answered")).await, ["two"]);
    // Untyped text for the integer key, as pgbench sends it.
    let found = run(vec![text("a"), text("1")]).await;
    assert_eq!(first_column(found.expect("answered")).await, ["one"]);
    let found = run(vec![text("b"), text("1")]).await;
    assert!(first_column(found.expect("answered")).await.is_empty());
    // A value that does not convert, NULL, a missing parameter: declined.
    assert!(run(vec![text("a"), text("x")]).await.is_none());
    assert!(run(vec![text("a"), ScalarValue::Int64(None)])
        .await
        .is_none());
    assert!(run(vec![text("a")]).await.is_none());
    // Another database current: declined.
    assert!(point
        .execute("elsewhere", &[text("a"), text("1")])
        .await
        .unwrap()
        .is_none());
    // A write is seen; a schema change makes it decline.
    h.execute("INSERT INTO t VALUES ('a', 1, 'uno')")
        .await
        .unwrap();
    let found = run(vec![text("a"), text("1")]).await;
    assert_eq!(first_column(found.expect("answered")).await, ["uno"]);
    h.execute("ALTER TABLE t ADD COLUMN w INT").await.unwrap();
    assert!(run(vec![text("a"), text("1")]).await.is_none());
    // Dropped and created again with another key type: planned anew, the
    // old one declines.
    h.execute(
        "DROP TABLE t; CREATE TABLE t (dt STRING, id STRING, v STRING, PRIMARY KEY (dt, id))",
    )
    .await
    .unwrap();
    assert!(run(vec![text("a"), text("1")]).await.is_none());
}
