//! Exact search, index recall, filtered search, fallbacks, time travel,
//! bad input.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Int32Array, RecordBatch};
use tidelake_engine::{CompactOptions, RowKind};
use tidelake_vector::{search, Metric, RowFilter, SearchMode, SearchRequest};

use crate::common::*;

/// Which categories a filtered search keeps.
type CategoryFilter = Box<dyn Fn(i32) -> bool + Send + Sync>;

#[tokio::test]
async fn exact_search_equals_brute_force_for_all_metrics() {
    let (catalog, id, _dir) = table_with(&index_options("l2", 8, 2)).await;
    let table = catalog.load_table(&id).await.unwrap();
    let vecs = vectors(11, 600);
    insert(&table, 0..300, &vecs[..300]).await;
    insert(&table, 300..600, &vecs[300..]).await;
    let rows = logical(&table).await;
    assert_eq!(rows.len(), 600);
    for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
        for q in vectors(12, 5) {
            for mode in [SearchMode::Exact, SearchMode::Auto] {
                let mut req = SearchRequest::new("emb", q.clone(), 7);
                req.metric = Some(metric);
                req.mode = mode;
                let got = found(&search(&table, &req).await.unwrap().batch);
                let want = brute_force(&rows, &q, 7, metric, |_, _| true);
                assert_eq!(got.len(), 7);
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.0, w.0, "{metric:?} {mode:?}: {got:?} vs {want:?}");
                    assert!((g.1 - w.1).abs() < 1e-9);
                }
            }
        }
    }
}

#[tokio::test]
async fn index_recall_meets_its_bound_on_a_seeded_set() {
    let (catalog, id, _dir) = table_with(&index_options("l2", 32, 1)).await;
    let table = catalog.load_table(&id).await.unwrap();
    let n = 12_000;
    let vecs = vectors(21, n);
    for chunk in 0..4 {
        let lo = chunk * n / 4;
        let hi = (chunk + 1) * n / 4;
        insert(&table, lo as i64..hi as i64, &vecs[lo..hi]).await;
    }
    let table = catalog.load_table(&id).await.unwrap();
    let rows = logical(&table).await;
    let mut total = 0.0;
    let queries = vectors(22, 20);
    for q in &queries {
        let mut req = SearchRequest::new("emb", q.clone(), 10);
        req.width = Some(8);
        let outcome = search(&table, &req).await.unwrap();
        assert!(
            outcome.stats.segments > 0,
            "the index is used: {:?}",
            outcome.stats
        );
        assert!(
            outcome.stats.exact_rows < n as u64 / 2,
            "most rows are not measured one by one: {:?}",
            outcome.stats
        );
        let got = found(&outcome.batch);
        assert_eq!(got.len(), 10);
        total += recall(&got, &brute_force(&rows, q, 10, Metric::L2, |_, _| true));
    }
    let recall = total / queries.len() as f64;
    assert!(recall >= 0.9, "recall@10 {recall}");
}

/// A filter on `cat` as a row filter.
fn cat_filter(keep: impl Fn(i32) -> bool + Send + Sync + 'static) -> RowFilter {
    RowFilter {
        columns: vec!["cat".into()],
        eval: Arc::new(move |b: &RecordBatch| {
            let cats = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
            Ok(BooleanArray::from_iter(
                cats.iter().map(|c| Some(c.is_some_and(&keep))),
            ))
        }),
    }
}

#[tokio::test]
async fn filtered_search_returns_k_whenever_k_rows_match() {
    let (catalog, id, _dir) = table_with(&index_options("l2", 16, 1)).await;
    let table = catalog.load_table(&id).await.unwrap();
    let vecs = vectors(31, 6000);
    insert(&table, 0..6000, &vecs).await;
    let rows = logical(&table).await;
    let q = vectors(32, 1).remove(0);
    // 50%, 1% (60 rows), 0.1% (6 rows: fewer than k).
    let cases: Vec<(CategoryFilter, usize)> = vec![
        (Box::new(|c| c < 50), 10),
        (Box::new(|c| c == 7), 10),
        (Box::new(|c| c == 7), 60),
        (Box::new(|c| c == 1000), 10),
    ];
    for (i, (keep, k)) in cases.into_iter().enumerate() {
        let keep: Arc<dyn Fn(i32) -> bool + Send + Sync> = Arc::from(keep);
        let mut req = SearchRequest::new("emb", q.clone(), k);
        req.width = Some(1);
        let k2 = keep.clone();
        req.filter = Some(cat_filter(move |c| k2(c)));
        let got = found(&search(&table, &req).await.unwrap().batch);
        let want = brute_force(&rows, &q, k, Metric::L2, |_, c| keep(c));
        assert_eq!(got.len(), want.len(), "case {i}: k rows whenever k match");
        for (id, _) in &got {
            assert!(keep(rows[id].0), "case {i}: row {id} passes the filter");
        }
        if want.len() < 2048 {
            assert_eq!(got, want, "case {i}: few matches are searched exactly");
        }
    }
    // The index's own width (automatic) with a 1% filter.
    let mut req = SearchRequest::new("emb", q.clone(), 10);
    req.filter = Some(cat_filter(|c| c == 3));
    let got = found(&search(&table, &req).await.unwrap().batch);
    assert_eq!(got.len(), 10);
}

#[tokio::test]
async fn exact_filtered_search_in_a_flat_index_equals_brute_force() {
    // 5% of 6,000 rows pass: few enough to be measured exactly, and an
    // IVF-FLAT segment measures them itself (every list probed).
    for (name, metric) in [
        ("l2", Metric::L2),
        ("cosine", Metric::Cosine),
        ("inner_product", Metric::InnerProduct),
    ] {
        let (catalog, id, _dir) = table_with(&index_options(name, 16, 1)).await;
        let table = catalog.load_table(&id).await.unwrap();
        let vecs = vectors(71, 6000);
        insert(&table, 0..3000, &vecs[..3000]).await;
        insert(&table, 3000..6000, &vecs[3000..]).await;
        let table = catalog.load_table(&id).await.unwrap();
        let rows = logical(&table).await;
        for q in vectors(72, 3) {
            let mut req = SearchRequest::new("emb", q.clone(), 10);
            req.metric = Some(metric);
            req.filter = Some(cat_filter(|c| c < 5));
            let outcome = search(&table, &req).await.unwrap();
            assert!(
                outcome.stats.segments > 0,
                "{name}: measured in the index: {:?}",
                outcome.stats
            );
            let want = brute_force(&rows, &q, 10, metric, |_, c| c < 5);
            assert_eq!(found(&outcome.batch), want, "{name}");
        }
    }
}

#[tokio::test]
async fn rows_without_a_matching_segment_are_searched_exactly() {
    // Indexed from the start, then compacted by a catalog without the
    // hooks: the segments no longer match their levels.
    let (catalog, id, dir) = table_with(&index_options("l2", 8, 1)).await;
    let table = catalog.load_table(&id).await.unwrap();
    let vecs = vectors(41, 4000);
    insert(&table, 0..4000, &vecs).await;
    let q = vectors(42, 1).remove(0);
    let req = SearchRequest::new("emb", q.clone(), 10);
    assert!(search(&table, &req).await.unwrap().stats.segments > 0);

    let plain = tidelake_engine::Catalog::open(&dir.path().to_string_lossy())
        .await
        .unwrap();
    let unhooked = plain.load_table(&id).await.unwrap();
    let more = vectors(43, 3000);
    insert(&unhooked, 4000..7000, &more).await;
    unhooked
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let outcome = search(&table, &req).await.unwrap();
    assert_eq!(outcome.stats.segments, 0, "stale segments are not used");
    let rows = logical(&table).await;
    assert_eq!(rows.len(), 7000);
    assert_eq!(
        found(&outcome.batch),
        brute_force(&rows, &q, 10, Metric::L2, |_, _| true)
    );

    // The next compaction through the hooks indexes the level again.
    table
        .compact(CompactOptions {
            full: true,
            partition: None,
        })
        .await
        .unwrap();
    insert(&table, 7000..7001, &more[..1]).await;
    let table = catalog.load_table(&id).await.unwrap();
    assert!(search(&table, &req).await.unwrap().stats.segments > 0);
}

#[tokio::test]
async fn a_table_without_deletion_vectors_is_searched_merged() {
    // No index (no deletion vectors): every level, level 0 included, is
    // read merged, so only the newest version of a key is found.
    let options = vec![
        ("bucket".to_string(), "1".to_string()),
        ("write-only".to_string(), "true".to_string()),
    ];
    let (catalog, id, _dir) = table_with(&options).await;
    let table = catalog.load_table(&id).await.unwrap();
    let vecs = vectors(51, 200);
    insert(&table, 0..200, &vecs).await;
    // Key 5 moves next to the query; key 6 is deleted.
    let q = vecs[6].clone();
    write(&table, &[(5, 5, Some(q.clone()))], RowKind::Insert)
        .await
        .unwrap();
    write(&table, &[(6, 6, Some(vecs[6].clone()))], RowKind::Delete)
        .await
        .unwrap();
    let table = catalog.load_table(&id).await.unwrap();
    let got = found(
        &search(&table, &SearchRequest::new("emb", q.clone(), 3))
            .await
            .unwrap()
            .batch,
    );
    assert_eq!(got[0], (5, 0.0));
    assert!(got.iter().all(|(id, _)| *id != 6), "{got:?}");
    let rows = logical(&table).await;
    assert_eq!(got, brute_force(&rows, &q, 3, Metric::L2, |_, _| true));
}

#[tokio::test]
async fn time_travel_searches_the_snapshots_own_rows_and_indexes() {
    let (catalog, id, _dir) = table_with(&index_options("l2", 8, 1)).await;
    let table = catalog.load_table(&id).await.unwrap();
    let vecs = vectors(61, 3000);
    insert(&table, 0..3000, &vecs).await;
    let before = table.snapshots().latest_snapshot_id().await.unwrap();
    let old_rows = logical(&table).await;
    let moved = vectors(62, 3000);
    insert(&table, 0..3000, &moved).await;
    let q = vecs[17].clone();
    let mut req = SearchRequest::new("emb", q.clone(), 5);
    req.snapshot = before;
    let outcome = search(&table, &req).await.unwrap();
    assert!(
        outcome.stats.segments > 0,
        "the old snapshot's segments are used"
    );
    let got = found(&outcome.batch);
    assert_eq!(got[0], (17, 0.0));
    assert!(
        recall(
            &got,
            &brute_force(&old_rows, &q, 5, Metric::L2, |_, _| true)
        ) >= 0.8
    );
}

#[tokio::test]
async fn bad_vectors_and_definitions_are_refused_and_nothing_is_committed() {
    let (catalog, id, _dir) = table_with(&index_options("l2", 8, 1)).await;
    let table = catalog.load_table(&id).await.unwrap();
    insert(&table, 0..10, &vectors(71, 10)).await;
    let latest = table.snapshots().latest_snapshot_id().await.unwrap();
    let bad: Vec<(Option<Vec<f32>>, &str)> = vec![
        (Some(vec![1.0; DIM - 1]), "dimension is 16"),
        (None, "is NULL"),
        (
            Some({
                let mut v = vec![0.5; DIM];
                v[3] = f32::NAN;
                v
            }),
            "non-finite",
        ),
    ];
    for (v, says) in bad {
        let err = write(
            &table,
            &[(100, 1, Some(vec![0.0; DIM])), (101, 1, v)],
            RowKind::Insert,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains(says) && err.contains("emb"), "{err}");
    }
    assert_eq!(
        table.snapshots().latest_snapshot_id().await.unwrap(),
        latest
    );
    assert_eq!(logical(&table).await.len(), 10);

    let query = SearchRequest::new("emb", vec![0.0; DIM + 1], 3);
    assert!(search(&table, &query)
        .await
        .unwrap_err()
        .to_string()
        .contains("dimension"));

    for (key, value, says) in [
        (
            "fields.emb.pk-vector.index.type",
            "hnsw",
            "unknown index type",
        ),
        (
            "fields.emb.pk-vector.distance.metric",
            "hamming",
            "unknown metric",
        ),
        (
            "fields.emb.pk-vector.index.options",
            "{\"nlist\":\"many\"}",
            "nlist",
        ),
        ("deletion-vectors.enabled", "false", "deletion-vectors"),
    ] {
        let mut options = index_options("l2", 8, 1);
        for o in options.iter_mut().filter(|o| o.0 == key) {
            o.1 = value.to_string();
        }
        let pairs: Vec<(&str, &str)> = options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let columns = table
            .schema()
            .fields
            .iter()
            .map(|f| tidelake_engine::ColumnSpec {
                name: f.name.clone(),
                data_type: f.data_type.clone(),
                comment: None,
            })
            .collect();
        let other = tidelake_engine::Identifier::new("default", "bad");
        let err = catalog
            .create_table(
                &other,
                tidelake_testkit::table::spec(columns, &["id"], &[], &pairs),
                false,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{key}={value}: {err}");
        assert!(
            catalog.load_table(&other).await.is_err(),
            "nothing was created"
        );
    }
}
