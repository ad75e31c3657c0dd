//! Partition pruning of filtered search: a predicate on partition columns
//! skips the other partitions' files before the allow-list is built.

use tidelake_sql::{engine_counters, Session};

use crate::sql::{ids, rows, session};

const QUERY: [f32; 2] = [2.2, 0.0];

/// `(id, region, cat, emb)`: region 'a' written once (one file), 'b' and
/// 'c' four times each (four files each, none compacted).
async fn partitioned() -> (
    Session,
    tempfile::TempDir,
    Vec<(i64, &'static str, i32, [f32; 2])>,
) {
    let (s, dir) = session().await;
    s.execute("CREATE DATABASE db").await.unwrap();
    s.execute(
        "CREATE TABLE db.p (id BIGINT NOT NULL, region STRING NOT NULL, cat INT, emb ARRAY<FLOAT>, \
         PRIMARY KEY (id, region)) PARTITIONED BY (region) WITH ('bucket' = '1', \
         'write-only' = 'true', 'fields.emb.dimension' = '2')",
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    let mut id = 0i64;
    for (region, writes) in [("a", 1), ("b", 4), ("c", 4)] {
        for _ in 0..writes {
            let mut values = Vec::new();
            for _ in 0..4 {
                id += 1;
                // Other partitions hold rows closer to the query than 'a'.
                let x = if region == "a" { id as f32 } else { 2.2 };
                let row = (id, region, (id % 2) as i32, [x, (id % 3) as f32]);
                values.push(format!(
                    "({}, '{}', {}, [{:.1}, {:.1}])",
                    row.0, row.1, row.2, row.3[0], row.3[1]
                ));
                all.push(row);
            }
            s.execute(&format!("INSERT INTO db.p VALUES {}", values.join(", ")))
                .await
                .unwrap();
        }
    }
    (s, dir, all)
}

/// Brute force: the ids of the k rows passing `keep` closest to QUERY.
fn brute(
    rows: &[(i64, &str, i32, [f32; 2])],
    keep: impl Fn(&(i64, &str, i32, [f32; 2])) -> bool,
    k: usize,
) -> Vec<i64> {
    let mut d: Vec<(f64, i64)> = rows
        .iter()
        .filter(|r| keep(r))
        .map(|r| {
            let dx = f64::from(r.3[0] - QUERY[0]);
            let dy = f64::from(r.3[1] - QUERY[1]);
            ((dx * dx + dy * dy).sqrt(), r.0)
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|x| x.1).collect()
}

/// Runs `sql`; its rows' ids and the data files it opened.
async fn opened(s: &Session, sql: &str) -> (Vec<i64>, u64) {
    let before = engine_counters().data_files_opened;
    let b = rows(s, sql).await;
    (ids(&b), engine_counters().data_files_opened - before)
}

#[tokio::test]
async fn a_partition_filter_prunes_the_other_partitions_files() {
    let (s, _dir, all) = partitioned().await;
    // Without a filter every file is read: the counter sees them.
    let (_, files) = opened(
        &s,
        "SELECT id FROM vector_search('db.p', 'emb', [2.2, 0.0], 3)",
    )
    .await;
    assert!(files >= 9, "an unfiltered search opened {files} files");

    let (found, files) = opened(
        &s,
        "SELECT id FROM vector_search('db.p', 'emb', [2.2, 0.0], 3) WHERE region = 'a'",
    )
    .await;
    assert_eq!(found, brute(&all, |r| r.1 == "a", 3));
    assert_eq!(files, 1, "only partition a's one file is read");

    // Partition and row filters together: pruning, then the allow-list.
    let (found, files) = opened(
        &s,
        "SELECT id FROM vector_search('db.p', 'emb', [2.2, 0.0], 2) \
         WHERE region = 'a' AND cat = 1",
    )
    .await;
    assert_eq!(found, brute(&all, |r| r.1 == "a" && r.2 == 1, 2));
    assert_eq!(files, 1);

    // A partition filter that is not an equality.
    let (found, files) = opened(
        &s,
        "SELECT id FROM vector_search('db.p', 'emb', [2.2, 0.0], 20) WHERE region < 'b'",
    )
    .await;
    assert_eq!(found, brute(&all, |r| r.1 < "b", 20));
    assert_eq!(files, 1);
}

#[tokio::test]
async fn order_by_distance_limit_prunes_partitions_too() {
    let (s, _dir, all) = partitioned().await;
    let sql = "SELECT id, l2_distance(emb, [2.2, 0.0]) AS d FROM db.p \
               WHERE region = 'a' ORDER BY d LIMIT 3";
    let (found, files) = opened(&s, sql).await;
    assert_eq!(found, brute(&all, |r| r.1 == "a", 3));
    assert_eq!(files, 1, "only partition a's one file is read");
    let plan = rows(&s, &format!("EXPLAIN {sql}")).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(text.contains("partitions pruned by region"), "{text}");
    assert!(!text.contains("allow-list"), "{text}");
}

#[tokio::test]
async fn indexed_partitions_are_pruned_for_vector_and_hybrid_search() {
    let (s, _dir) = session().await;
    s.execute("CREATE DATABASE db").await.unwrap();
    s.execute(
        "CREATE TABLE db.q (id BIGINT NOT NULL, region STRING NOT NULL, body STRING, \
         emb ARRAY<FLOAT>, PRIMARY KEY (id, region)) PARTITIONED BY (region) WITH ( \
         'bucket' = '2', 'deletion-vectors.enabled' = 'true', \
         'pk-vector.index.columns' = 'emb', 'fields.emb.pk-vector.index.type' = 'ivf-flat', \
         'fields.emb.pk-vector.distance.metric' = 'l2', 'fields.emb.dimension' = '2', \
         'fields.emb.pk-vector.index.options' = '{\"nlist\":\"2\"}')",
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    for region in ["a", "b", "c"] {
        let mut values = Vec::new();
        for i in 0..20 {
            let id = all.len() as i64 + 1;
            let x = if region == "a" {
                i as f32
            } else {
                2.2 + i as f32 / 100.0
            };
            values.push(format!("({id}, '{region}', 'lake {id}', [{x:.2}, 0.0])"));
            all.push((id, region, 0, [x, 0.0]));
        }
        s.execute(&format!("INSERT INTO db.q VALUES {}", values.join(", ")))
            .await
            .unwrap();
    }
    let search = "SELECT id FROM vector_search('db.q', 'emb', [2.2, 0.0], 4)";
    let (_, unfiltered) = opened(&s, search).await;
    let (found, filtered) = opened(&s, &format!("{search} WHERE region = 'a'")).await;
    assert_eq!(found, brute(&all, |r| r.1 == "a", 4));
    assert!(
        filtered < unfiltered,
        "pruned search opened {filtered} files, unpruned {unfiltered}"
    );
    let hybrid = "SELECT id FROM hybrid_search('db.q', 'emb', [2.2, 0.0], 'body', 'lake', 30)";
    let (_, unfiltered) = opened(&s, hybrid).await;
    let (found, filtered) = opened(&s, &format!("{hybrid} WHERE region = 'a'")).await;
    let mut found = found;
    found.sort_unstable();
    assert_eq!(found, (1..=20).collect::<Vec<i64>>());
    assert!(
        filtered < unfiltered,
        "pruned hybrid search opened {filtered} files, unpruned {unfiltered}"
    );
}
