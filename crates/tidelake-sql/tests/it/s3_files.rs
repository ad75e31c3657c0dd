//! Files on S3 (moto on loopback): COPY TO and read_parquet on the
//! warehouse's bucket and on another bucket, reached with the warehouse's
//! S3 settings, and COPY FROM an s3:// glob.

use tidelake_engine::Catalog;
use tidelake_sql::{Session, StatementResult};
use tidelake_store::WarehouseStore;
use tidelake_testkit::moto::{MotoServer, BUCKET};

async fn run(session: &Session, sql: &str) -> StatementResult {
    match session.execute(sql).await {
        Ok(mut results) => results.pop().expect("one result"),
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn status(result: &StatementResult) -> String {
    match result {
        StatementResult::Status(s) => s.to_string(),
        StatementResult::Rows { .. } => "rows".into(),
    }
}

async fn scalar(session: &Session, sql: &str) -> String {
    let StatementResult::Rows { batches, .. } = run(session, sql).await else {
        panic!("{sql} gave no rows");
    };
    let column = batches[0].column(0);
    datafusion::arrow::util::display::array_value_to_string(column, 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_and_read_files_on_s3() {
    let Some(server) = MotoServer::start_or_skip() else {
        return;
    };
    server.create_bucket("exports").unwrap();
    let uri = format!("s3://{BUCKET}/warehouse");
    let store = WarehouseStore::open_with_options(&uri, &server.options())
        .await
        .unwrap();
    let session = Session::with_catalog(Catalog::from_store(store))
        .await
        .unwrap();
    run(
        &session,
        "CREATE TABLE t (id BIGINT NOT NULL, v STRING, PRIMARY KEY (id) NOT ENFORCED)",
    )
    .await;
    run(
        &session,
        "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .await;

    for bucket in [BUCKET, "exports"] {
        let copied = run(
            &session,
            &format!("COPY t TO 's3://{bucket}/out/dt=1/t.parquet'"),
        )
        .await;
        assert_eq!(status(&copied), "COPY 3");
        let query =
            format!("SELECT sum(id), min(dt) FROM read_parquet('s3://{bucket}/out/*/*.parquet')");
        assert_eq!(scalar(&session, &query).await, "6");
        let query = format!("SELECT count(*) FROM 's3://{bucket}/out/dt=1/t.parquet'");
        assert_eq!(scalar(&session, &query).await, "3");
    }

    run(
        &session,
        "CREATE TABLE copy (id BIGINT NOT NULL, v STRING, PRIMARY KEY (id) NOT ENFORCED)",
    )
    .await;
    let loaded = run(&session, "COPY copy FROM 's3://exports/out/**/*.parquet'").await;
    assert_eq!(status(&loaded), "COPY 3");
    assert_eq!(
        scalar(&session, "SELECT string_agg(v, ',' ORDER BY id) FROM copy").await,
        "a,b,c"
    );

    let missing = session
        .execute("SELECT * FROM read_parquet('s3://exports/nothing/*.parquet')")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "58P01", "{missing}");
    assert!(
        missing
            .to_string()
            .contains("s3://exports/nothing/*.parquet"),
        "{missing}"
    );
}
