//! The SQL surface, through a session with the vector extension (as the
//! binary builds them).

use datafusion::arrow::array::{Array, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::util::pretty::pretty_format_batches;
use tidelake_engine::Catalog;
use tidelake_sql::{Session, StatementResult};
use tidelake_vector::{VectorExtension, VectorHooks};

pub(crate) async fn session() -> (Session, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().to_string_lossy())
        .await
        .unwrap()
        .with_table_hooks(vec![VectorHooks::shared()]);
    let session = Session::with_extensions(catalog, vec![VectorExtension::shared()])
        .await
        .unwrap();
    (session, dir)
}

pub(crate) async fn rows(session: &Session, sql: &str) -> Vec<RecordBatch> {
    match session
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .pop()
    {
        Some(StatementResult::Rows { batches, .. }) => batches,
        other => panic!("{sql}: {other:?}"),
    }
}

pub(crate) fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            (0..c.len()).map(move |i| c.value(i))
        })
        .collect()
}

const CREATE: &str =
    "CREATE TABLE db.items (id BIGINT NOT NULL, cat INT, emb ARRAY<FLOAT>, PRIMARY KEY (id)) WITH (
    'bucket' = '1', 'deletion-vectors.enabled' = 'true',
    'pk-vector.index.columns' = 'emb',
    'fields.emb.pk-vector.index.type' = 'ivf-flat',
    'fields.emb.pk-vector.distance.metric' = 'l2',
    'fields.emb.dimension' = '3',
    'fields.emb.pk-vector.index.options' = '{\"nlist\":\"2\"}')";

async fn loaded() -> (Session, tempfile::TempDir) {
    let (s, dir) = session().await;
    s.execute("CREATE DATABASE db").await.unwrap();
    s.execute(CREATE).await.unwrap();
    s.execute(
        "INSERT INTO db.items VALUES (1, 1, [0.0, 0.0, 0.0]), (2, 1, [1.0, 0.0, 0.0]), \
         (3, 2, [2.0, 0.0, 0.0]), (4, 2, [3.0, 0.0, 0.0]), (5, 1, [10.0, 0.0, 0.0])",
    )
    .await
    .unwrap();
    (s, dir)
}

#[tokio::test]
async fn vector_search_returns_the_closest_rows_with_distances() {
    let (s, _dir) = loaded().await;
    let b = rows(
        &s,
        "SELECT id, _distance FROM vector_search('db.items', 'emb', [2.1, 0.0, 0.0], 3)",
    )
    .await;
    assert_eq!(ids(&b), vec![3, 4, 2]);
    let d = b[0]
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert!(
        (d.value(0) - 0.1).abs() < 1e-6,
        "{}",
        pretty_format_batches(&b).unwrap()
    );
    // A WHERE is the allow-list: still k rows, all passing.
    let b = rows(
        &s,
        "SELECT id FROM vector_search('db.items', 'emb', [2.1, 0.0, 0.0], 3) WHERE cat = 1",
    )
    .await;
    assert_eq!(ids(&b), vec![2, 1, 5]);
    // Updates and deletes show at once.
    s.execute("DELETE FROM db.items WHERE id = 3")
        .await
        .unwrap();
    s.execute("INSERT INTO db.items VALUES (2, 1, [9.0, 0.0, 0.0])")
        .await
        .unwrap();
    let b = rows(
        &s,
        "SELECT id FROM vector_search('db.items', 'emb', [2.1, 0.0, 0.0], 2, 'mode=exact')",
    )
    .await;
    assert_eq!(ids(&b), vec![4, 1]);
}

#[tokio::test]
async fn order_by_distance_limit_k_becomes_a_vector_search() {
    let (s, _dir) = loaded().await;
    let sql = "SELECT id, l2_distance(emb, [2.1, 0.0, 0.0]) AS d FROM db.items WHERE cat = 2 ORDER BY d LIMIT 1";
    let b = rows(&s, sql).await;
    assert_eq!(ids(&b), vec![3]);
    let plan = rows(&s, &format!("EXPLAIN {sql}")).await;
    let text = pretty_format_batches(&plan).unwrap().to_string();
    assert!(
        text.contains("VectorSearch: table=db.items, column=emb, k=1, metric=l2"),
        "{text}"
    );
    assert!(text.contains("allow-list on cat"), "{text}");
    let b = rows(
        &s,
        "SELECT id FROM db.items ORDER BY inner_product(emb, [1.0, 0.0, 0.0]) DESC LIMIT 2",
    )
    .await;
    assert_eq!(ids(&b), vec![5, 4]);
    let b = rows(
        &s,
        "SELECT id FROM db.items ORDER BY cosine_distance(emb, [0.0, 1.0, 0.0]) LIMIT 5",
    )
    .await;
    assert_eq!(ids(&b).len(), 5);
}

#[tokio::test]
async fn distance_functions_are_exact() {
    let (s, _dir) = session().await;
    let b = rows(
        &s,
        "SELECT l2_distance([3.0, 0.0], [0.0, 4.0]), cosine_distance([1.0, 0.0], [0.0, 2.0]), \
         inner_product([1.0, 2.0], [3.0, 4.0]), l2_distance(NULL, [1.0])",
    )
    .await;
    let text = pretty_format_batches(&b).unwrap().to_string();
    assert!(
        text.contains("| 5.0 ") && text.contains("| 1.0 ") && text.contains("| 11.0 "),
        "{text}"
    );
    let err = s
        .execute("SELECT l2_distance([1.0], [1.0, 2.0])")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 and 2 elements"), "{err}");
}

#[tokio::test]
async fn create_and_drop_vector_index_on_an_existing_table() {
    let (s, _dir) = session().await;
    s.execute("CREATE DATABASE db").await.unwrap();
    s.execute("CREATE TABLE db.t (id BIGINT NOT NULL, emb ARRAY<FLOAT>, PRIMARY KEY (id)) WITH ('bucket' = '1', 'deletion-vectors.enabled' = 'true')")
        .await
        .unwrap();
    s.execute("INSERT INTO db.t VALUES (1, [0.0, 1.0]), (2, [5.0, 5.0])")
        .await
        .unwrap();
    let err = s
        .execute("CALL sys.create_vector_index('db.t', 'emb', 'ivf-flat', 'manhattan', 2)")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown metric 'manhattan'"), "{err}");
    s.execute(
        "CALL sys.create_vector_index('db.t', 'emb', 'ivf-flat', 'l2', 2, '{\"nlist\":\"1\"}')",
    )
    .await
    .unwrap();
    // Rows written before the index are searched exactly.
    let b = rows(
        &s,
        "SELECT id FROM vector_search('db.t', 'emb', [4.0, 4.0], 1)",
    )
    .await;
    assert_eq!(ids(&b), vec![2]);
    let err = s
        .execute("INSERT INTO db.t VALUES (3, [1.0])")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("dimension is 2"), "{err}");
    s.execute("CALL sys.drop_vector_index('db.t')")
        .await
        .unwrap();
    s.execute("INSERT INTO db.t VALUES (3, [1.0])")
        .await
        .unwrap();
    let err = s
        .execute("CALL sys.drop_vector_index('db.t')")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no vector index"), "{err}");
}
