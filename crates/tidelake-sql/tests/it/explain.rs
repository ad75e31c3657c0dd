//! `EXPLAIN ANALYZE` shows what Tidelake's scan did: files read and
//! skipped, manifests skipped, sorted runs merged.

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::util::pretty::pretty_format_batches;
use tidelake_sql::{Session, StatementResult};

async fn explain_analyze(session: &Session, query: &str) -> String {
    let results = session
        .execute(&format!("EXPLAIN ANALYZE {query}"))
        .await
        .unwrap();
    let StatementResult::Rows { batches, .. } = &results[0] else {
        panic!("EXPLAIN ANALYZE returns rows");
    };
    let mut text = String::new();
    for batch in batches {
        let plans = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("plan column is text");
        for i in 0..plans.len() {
            text.push_str(plans.value(i));
        }
    }
    assert!(
        !text.is_empty(),
        "{}",
        pretty_format_batches(batches).unwrap()
    );
    text
}

fn metric(plan: &str, name: &str) -> usize {
    let scan = plan
        .lines()
        .find(|l| l.contains("TidelakeScan"))
        .unwrap_or_else(|| panic!("no TidelakeScan in {plan}"));
    let start = scan
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {scan}"))
        + name.len()
        + 1;
    scan[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn scan_metrics_count_files_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(dir.path().to_str().unwrap()).await.unwrap();
    session
        .execute(
            "CREATE TABLE t (id INT NOT NULL, dt STRING NOT NULL, v STRING, PRIMARY KEY (id, dt) NOT ENFORCED) \
             PARTITIONED BY (dt) WITH ('bucket' = '1');
             INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'y');
             INSERT INTO t VALUES (1, 'a', 'z');",
        )
        .await
        .unwrap();
    // Both partitions: partition a has two level-0 files, b one.
    let all = explain_analyze(&session, "SELECT * FROM t").await;
    assert_eq!(metric(&all, "files_read"), 3, "{all}");
    assert_eq!(metric(&all, "files_pruned"), 0, "{all}");
    assert_eq!(metric(&all, "sorted_runs_merged"), 3, "{all}");
    assert_eq!(metric(&all, "output_rows"), 2, "{all}");
    // A filter on the partition column reads only partition a's files.
    let one = explain_analyze(&session, "SELECT * FROM t WHERE dt = 'a'").await;
    assert_eq!(metric(&one, "files_read"), 2, "{one}");
    assert_eq!(metric(&one, "splits_merged"), 1, "{one}");
    // A key filter outside the files' key range skips them by statistics.
    let none = explain_analyze(&session, "SELECT * FROM t WHERE id = 7").await;
    assert_eq!(metric(&none, "files_pruned"), 3, "{none}");
}
