//! The report's shape: JSON keys, byte-identical output for the same
//! metadata, the warehouse score, `--explain`, the advisor.

use tidelake_doctor::{diagnose, explain, render_json, Target, RULES};

use crate::{Fixture, MINUTE};

#[tokio::test]
async fn json_is_stable_and_has_the_documented_shape() {
    let fx = Fixture::new(false, &[]).await;
    fx.small_commits(1, 11).await;
    let now = fx.now_after(MINUTE).await;
    let one = render_json(
        &diagnose(&fx.catalog, &Target::Warehouse, now)
            .await
            .unwrap(),
    )
    .unwrap();
    let two = render_json(
        &diagnose(&fx.catalog, &Target::Warehouse, now)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(one, two, "the same metadata gives byte-identical JSON");
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert!(v["score"].is_number());
    assert_eq!(v["band"], "sub-healthy");
    let table = &v["tables"][0];
    assert_eq!(table["table"], "default.t");
    for key in [
        "score",
        "band",
        "layout",
        "lsm",
        "deletes",
        "retention",
        "distribution",
        "freshness",
    ] {
        assert!(!table["health"][key].is_null(), "health.{key} in {table}");
    }
    let f = &table["findings"][0];
    assert_eq!(f["rule"], "small-files");
    assert_eq!(f["severity"], "MID");
    assert_eq!(f["category"], "layout");
    assert_eq!(f["partition"], "p=1");
    assert_eq!(f["evidence"][0]["metric"], "small_files");
    assert_eq!(f["evidence"][0]["value"], 11);
    assert_eq!(f["evidence"][0]["threshold"], 10);
    assert!(f["cause"].as_str().unwrap().contains("11 of 11 files"));
    assert_eq!(f["fixable"], true);
}

#[tokio::test]
async fn targets_select_tables() {
    let fx = Fixture::new(false, &[]).await;
    let all = diagnose(&fx.catalog, &Target::parse("").unwrap(), 0)
        .await
        .unwrap();
    assert_eq!(all.tables.len(), 1);
    let db = diagnose(&fx.catalog, &Target::parse("default").unwrap(), 0)
        .await
        .unwrap();
    assert_eq!(db.tables.len(), 1);
    let err = diagnose(&fx.catalog, &Target::parse("nope").unwrap(), 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no database 'nope'"), "{err}");
    let err = diagnose(&fx.catalog, &Target::parse("default.missing").unwrap(), 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("default.missing"), "{err}");
    assert!(Target::parse("a.b.c").is_err());
}

#[test]
fn every_rule_explains_itself() {
    let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "rule ids are unique");
    for r in RULES {
        let text = explain(r.id).unwrap();
        assert!(text.contains(r.threshold) && text.contains(r.fix), "{text}");
    }
    assert!(explain("no-such-rule").is_none());
}

#[tokio::test]
async fn the_advisor_recommends_from_the_shape() {
    let fx = Fixture::new(
        false,
        &[
            ("bucket", "8"),
            ("bucket-key", "id"),
            ("target-file-size", "4 kb"),
            ("write-buffer-size", "2 kb"),
        ],
    )
    .await;
    let rows: Vec<(i32, i64)> = (0..30_000).map(|i| (1, i)).collect();
    fx.insert(&rows, "bulk").await;
    fx.table().await.record_consumer("reader", 1).await.unwrap();
    let facts = tidelake_doctor::observe(&fx.catalog, &fx.id, fx.now_after(MINUTE).await)
        .await
        .unwrap();
    let advice = tidelake_doctor::advise(&facts);
    let options: Vec<&str> = advice.iter().map(|a| a.option.as_str()).collect();
    assert!(options.contains(&"write-buffer-size"), "{advice:#?}");
    assert!(options.contains(&"consumer.expiration-time"), "{advice:#?}");
    let buffer = advice
        .iter()
        .find(|a| a.option == "write-buffer-size")
        .unwrap();
    assert_eq!(buffer.recommended, "4 kb");
    assert!(!buffer.effect.is_empty() && !buffer.evidence.is_empty());
}
