//! `hybrid_search`: reciprocal rank fusion of the vector and keyword lists,
//! with expected orders worked out by hand below.

use datafusion::arrow::array::{Array, Float64Array, Int64Array, RecordBatch};
use tidelake_sql::Session;

use crate::sql::{ids, rows, session};

/// Every body has four tokens, so BM25 ranks rows holding 'lake' by how
/// often they hold it; distances to [0, 0] are the first coordinate.
async fn docs() -> (Session, tempfile::TempDir) {
    let (s, dir) = session().await;
    s.execute("CREATE DATABASE db").await.unwrap();
    s.execute(
        "CREATE TABLE db.docs (id BIGINT NOT NULL, cat INT, body STRING, emb ARRAY<FLOAT>, \
         PRIMARY KEY (id)) WITH ('bucket' = '1', 'deletion-vectors.enabled' = 'true', \
         'pk-vector.index.columns' = 'emb', 'fields.emb.pk-vector.index.type' = 'ivf-flat', \
         'fields.emb.pk-vector.distance.metric' = 'l2', 'fields.emb.dimension' = '2', \
         'fields.emb.pk-vector.index.options' = '{\"nlist\":\"2\"}')",
    )
    .await
    .unwrap();
    s.execute(
        "INSERT INTO db.docs VALUES \
         (1, 1, 'Lake lake LAKE house', [1.0, 0.0]), \
         (2, 2, 'river stone mountain path', [2.0, 0.0]), \
         (3, 1, 'lake water blue sky', [3.0, 0.0]), \
         (4, 2, 'lake-lake water sky', [4.0, 0.0]), \
         (5, 1, 'lake lake lake lake', [50.0, 0.0])",
    )
    .await
    .unwrap();
    (s, dir)
}

const SEARCH: &str = "SELECT id, _score, _vector_rank, _keyword_rank, _distance \
    FROM hybrid_search('db.docs', 'emb', [0.0, 0.0], 'body', 'Lake', 5, 'candidates=3')";

fn int_column(b: &[RecordBatch], at: usize) -> Vec<Option<i64>> {
    b.iter()
        .flat_map(|b| {
            let c = b.column(at).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..c.len())
                .map(|i| c.is_valid(i).then(|| c.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn float_column(b: &[RecordBatch], at: usize) -> Vec<Option<f64>> {
    b.iter()
        .flat_map(|b| {
            let c = b
                .column(at)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            (0..c.len())
                .map(|i| c.is_valid(i).then(|| c.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn rrf(rank: f64) -> f64 {
    1.0 / (60.0 + rank)
}

#[tokio::test]
async fn hybrid_search_fuses_the_two_ranks() {
    let (s, _dir) = docs().await;
    let b = rows(&s, SEARCH).await;
    // Vector list (3 candidates): 1, 2, 3. Keyword list by 'lake' count
    // (4, 3, 2, 1 times: rows 5, 1, 4, 3), cut to 3: 5, 1, 4.
    // Scores: 1 -> 1/61 + 1/62; 5 -> 1/61; 2 -> 1/62; 3 and 4 -> 1/63
    // each, the tie going to the row with a vector rank.
    assert_eq!(ids(&b), vec![1, 5, 2, 3, 4]);
    let scores = float_column(&b, 1);
    let expected = [rrf(1.0) + rrf(2.0), rrf(1.0), rrf(2.0), rrf(3.0), rrf(3.0)];
    for (got, want) in scores.iter().zip(expected) {
        assert!((got.unwrap() - want).abs() < 1e-12, "{scores:?}");
    }
    assert_eq!(
        int_column(&b, 2),
        vec![Some(1), None, Some(2), Some(3), None]
    );
    // Row 5 is found by the keyword side only.
    assert_eq!(
        int_column(&b, 3),
        vec![Some(2), Some(1), None, None, Some(3)]
    );
    let distances = float_column(&b, 4);
    assert_eq!(distances[1], None);
    assert_eq!(distances[4], None);
    assert!((distances[0].unwrap() - 1.0).abs() < 1e-6, "{distances:?}");
    assert!((distances[3].unwrap() - 3.0).abs() < 1e-6, "{distances:?}");

    // k cuts the fused list; a smaller rrf_k changes the scores, not this
    // order.
    let b = rows(
        &s,
        "SELECT id FROM hybrid_search('db.docs', 'emb', [0.0, 0.0], 'body', 'lake', 2, \
         'rrf_k=1, candidates=3')",
    )
    .await;
    assert_eq!(ids(&b), vec![1, 5]);
}

#[tokio::test]
async fn deleted_and_superseded_rows_never_come_back() {
    let (s, _dir) = docs().await;
    s.execute("DELETE FROM db.docs WHERE id = 1").await.unwrap();
    s.execute("UPDATE db.docs SET body = 'stone stone river path' WHERE id = 4")
        .await
        .unwrap();
    let b = rows(&s, SEARCH).await;
    // Vector list: 2, 3, 4. Keyword list: 5 (4 times), 3 (once); row 4's
    // old text is gone. Scores: 3 -> 2/62; 2 and 5 -> 1/61 (2 has a
    // vector rank); 4 -> 1/63.
    assert_eq!(ids(&b), vec![3, 2, 5, 4]);
    assert_eq!(int_column(&b, 3), vec![Some(2), None, Some(1), None]);
}

#[tokio::test]
async fn a_filter_restricts_both_lists() {
    let (s, _dir) = docs().await;
    let b = rows(
        &s,
        "SELECT id, _vector_rank, _keyword_rank FROM hybrid_search('db.docs', 'emb', \
         [0.0, 0.0], 'body', 'lake', 5, 'candidates=2') WHERE cat = 2",
    )
    .await;
    // Rows 2 and 4 pass. Vector list: 2, 4; keyword list: 4.
    // Scores: 4 -> 1/62 + 1/61; 2 -> 1/61.
    assert_eq!(ids(&b), vec![4, 2]);
    assert_eq!(int_column(&b, 1), vec![Some(2), Some(1)]);
    assert_eq!(int_column(&b, 2), vec![Some(1), None]);
}

#[tokio::test]
async fn bad_arguments_are_named() {
    let (s, _dir) = docs().await;
    let cases = [
        (
            "hybrid_search('db.docs', 'emb', [0.0, 0.0], 'nope', 'lake', 3)",
            "text column 'nope' is not a column",
        ),
        (
            "hybrid_search('db.docs', 'emb', [0.0, 0.0], 'cat', 'lake', 3)",
            "text column 'cat' is Int32, not a string",
        ),
        (
            "hybrid_search('db.docs', 'nope', [0.0, 0.0], 'body', 'lake', 3)",
            "vector column 'nope' is not a column",
        ),
        (
            "hybrid_search('db.docs', 'emb', [0.0, 0.0], 'body', ' -- ', 3)",
            "keyword query ' -- ' has no terms",
        ),
        (
            "hybrid_search('db.docs', 'emb', [0.0, 0.0], 'body', 'lake', 0)",
            "argument 6 (k) must be a positive integer",
        ),
        (
            "hybrid_search('db.docs', 'emb', [0.0, 0.0], 'body', 'lake', 3, 'rrf_k=-1')",
            "option rrf_k needs a number >= 0",
        ),
        (
            "hybrid_search('db.docs', 'emb', [0.0, 0.0], 'body', 'lake', 3, 'candidates=0')",
            "option candidates needs a positive integer",
        ),
        (
            "hybrid_search('db.docs', 'emb', [0.0, 0.0], 'body', 'lake', 3, 'colour=red')",
            "argument 7 (options): unknown search option 'colour=red'",
        ),
        (
            "hybrid_search('db.docs', 'emb', [0.0, 0.0], 4, 'lake', 3)",
            "argument 4 (text column) must be a text literal",
        ),
    ];
    for (call, wanted) in cases {
        let err = s
            .execute(&format!("SELECT * FROM {call}"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(wanted), "{call}: {err}");
    }
}
