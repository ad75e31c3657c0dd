//! The `Session` API as protocol servers use it: through the `QueryHandler`
//! trait, with streamed query results.

use std::sync::Arc;

use futures::StreamExt;
use tidelake_sql::{QueryHandler, Session, StatementResult, StreamingResult};

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
