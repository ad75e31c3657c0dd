//! The healthy corpus: no finding, and a score above 80, on tables that
//! are fine (empty, one file, steady streaming with compaction, every
//! merge engine, deletion vectors, append tables, several seeds).

use std::collections::BTreeMap;

use tidelake_doctor::Band;
use tidelake_engine::RowKind;
use tidelake_testkit::rng::Rng;

use crate::{Fixture, MINUTE};

async fn assert_healthy(fx: &Fixture, what: &str) {
    let report = fx.diagnose().await;
    assert!(
        report.findings.is_empty(),
        "{what}: no findings expected, got {:#?}",
        report.findings
    );
    assert!(report.health.score > 80.0, "{what}: {:?}", report.health);
    assert_eq!(report.health.band, Band::Healthy, "{what}");
}

#[tokio::test]
async fn empty_tables() {
    for pk in [true, false] {
        let fx = Fixture::new(pk, &[]).await;
        let report = fx.diagnose_at(0).await;
        assert!(report.findings.is_empty(), "{:#?}", report.findings);
        assert_eq!(report.health.score, 100.0);
    }
}

#[tokio::test]
async fn one_file() {
    for pk in [true, false] {
        let fx = Fixture::new(pk, &[("bucket", "1"), ("bucket-key", "id")]).await;
        fx.insert(&[(1, 1)], "one").await;
        assert_healthy(&fx, &format!("one file, primary key {pk}")).await;
    }
}

/// Upserts, deletes and inserts over three partitions, `commits` times.
async fn stream(fx: &Fixture, rng: &mut Rng, commits: usize) {
    for c in 0..commits {
        let p = rng.below(3) as i32;
        let rows: Vec<(i32, i64)> = (0..1 + rng.below(20))
            .map(|_| (p, rng.below(200) as i64))
            .collect();
        let kind = if rng.chance(0.1) {
            RowKind::Delete
        } else {
            RowKind::Insert
        };
        fx.commit(&rows, &format!("s{c}"), kind, BTreeMap::new())
            .await;
    }
}

#[tokio::test]
async fn steady_streaming_with_compaction_over_seeds() {
    for seed in [1, 2, 3] {
        let fx = Fixture::new(true, &[("bucket", "2")]).await;
        let mut rng = Rng::new(seed);
        stream(&fx, &mut rng, 40).await;
        assert_healthy(&fx, &format!("streaming, seed {seed}")).await;
    }
}

#[tokio::test]
async fn every_merge_engine() {
    let engines: [&[(&str, &str)]; 4] = [
        &[("merge-engine", "deduplicate")],
        &[("merge-engine", "partial-update")],
        &[
            ("merge-engine", "aggregation"),
            ("fields.name.aggregate-function", "last_non_null_value"),
        ],
        &[("merge-engine", "first-row")],
    ];
    for options in engines {
        let mut all = vec![("bucket", "1")];
        all.extend_from_slice(options);
        let fx = Fixture::new(true, &all).await;
        let mut rng = Rng::new(7);
        for c in 0..15 {
            let rows: Vec<(i32, i64)> = (0..5).map(|_| (1, rng.below(50) as i64)).collect();
            fx.insert(&rows, &format!("m{c}")).await;
        }
        assert_healthy(&fx, &format!("{options:?}")).await;
    }
}

#[tokio::test]
async fn deletion_vectors_with_few_deletes() {
    let fx = Fixture::new(
        true,
        &[("bucket", "1"), ("deletion-vectors.enabled", "true")],
    )
    .await;
    let rows: Vec<(i32, i64)> = (0..300).map(|i| (1, i)).collect();
    fx.insert(&rows, "a").await;
    let gone: Vec<(i32, i64)> = (0..20).map(|i| (1, i)).collect();
    fx.commit(&gone, "a", RowKind::Delete, BTreeMap::new())
        .await;
    fx.insert(&[(1, 500)], "b").await;
    assert_healthy(&fx, "deletion vectors").await;
}

#[tokio::test]
async fn append_tables_and_changelog_producers() {
    let fx = Fixture::new(false, &[]).await;
    fx.small_commits(1, 5).await;
    fx.small_commits(2, 5).await;
    assert_healthy(&fx, "append").await;
    for producer in ["input", "lookup"] {
        let fx = Fixture::new(true, &[("bucket", "1"), ("changelog-producer", producer)]).await;
        fx.small_commits(1, 12).await;
        assert_healthy(&fx, producer).await;
    }
}

#[tokio::test]
async fn a_consumer_that_keeps_up() {
    let fx = Fixture::new(
        false,
        &[
            ("snapshot.num-retained.min", "1"),
            ("snapshot.num-retained.max", "3"),
        ],
    )
    .await;
    fx.small_commits(1, 6).await;
    fx.table().await.record_consumer("reader", 6).await.unwrap();
    fx.small_commits(2, 2).await;
    assert_healthy(&fx, "consumer").await;
    let _ = MINUTE;
}
