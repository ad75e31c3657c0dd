//! The doctor against tables the tests build, each with an injected fault
//! (or two), and a healthy corpus: findings, evidence, scores, fixes and
//! the report's JSON. Time is injected (`now` derived from the table's own
//! snapshots), never read from the clock.

mod faults;
mod fixes;
mod healthy;
mod report;

use std::collections::BTreeMap;

use arrow_array::{Int64Array, StringArray};
use tidelake_doctor::{Finding, TableReport};
use tidelake_engine::introspect::CommitKind;
use tidelake_engine::{Catalog, Identifier, RowKind, SchemaChange, Table};
use tidelake_testkit::table::{column, load, on_disk, read_latest, tagged_batch, tagged_spec};

pub const MINUTE: i64 = 60_000;

/// A warehouse on disk with `default.t` (the testkit's tagged table:
/// `p INT` partition, `id BIGINT`, `name STRING`; keyed by `(p, id)` when
/// `primary_key`).
pub struct Fixture {
    pub catalog: Catalog,
    pub id: Identifier,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new(primary_key: bool, options: &[(&str, &str)]) -> Fixture {
        let (catalog, id, dir) = on_disk(tagged_spec(primary_key, options)).await;
        Fixture { catalog, id, dir }
    }

    pub async fn table(&self) -> Table {
        load(&self.catalog, &self.id).await
    }

    /// Commits `rows` (as `(p, id)`) in one snapshot.
    pub async fn insert(&self, rows: &[(i32, i64)], tag: &str) {
        self.commit(rows, tag, RowKind::Insert, BTreeMap::new())
            .await;
    }

    pub async fn commit(
        &self,
        rows: &[(i32, i64)],
        tag: &str,
        kind: RowKind,
        properties: BTreeMap<String, String>,
    ) {
        let table = self.table().await;
        let mut w = table.writer();
        w.write(tagged_batch(&table, rows, tag), kind)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        w.commit_with(CommitKind::Append, properties)
            .await
            .unwrap_or_else(|e| panic!("commit: {e}"));
    }

    /// `n` commits of a few rows each into partition `p`.
    pub async fn small_commits(&self, p: i32, n: i64) {
        for i in 0..n {
            self.insert(&[(p, i * 10), (p, i * 10 + 1)], &format!("c{i}"))
                .await;
        }
    }

    pub async fn set_option(&self, key: &str, value: &str) {
        self.catalog
            .alter_table(
                &self.id,
                vec![SchemaChange::SetOption {
                    key: key.into(),
                    value: value.into(),
                }],
            )
            .await
            .unwrap_or_else(|e| panic!("alter: {e}"));
    }

    pub async fn remove_option(&self, key: &str) {
        self.catalog
            .alter_table(
                &self.id,
                vec![SchemaChange::RemoveOption { key: key.into() }],
            )
            .await
            .unwrap_or_else(|e| panic!("alter: {e}"));
    }

    /// The latest snapshot's commit time plus `after` millis: "now" for
    /// the doctor, from the metadata, not the clock.
    pub async fn now_after(&self, after: i64) -> i64 {
        let latest = self
            .table()
            .await
            .snapshots()
            .latest_snapshot()
            .await
            .unwrap_or_else(|e| panic!("latest snapshot: {e}"));
        latest.map_or(0, |s| s.time_millis) + after
    }

    pub async fn diagnose_at(&self, now: i64) -> TableReport {
        tidelake_doctor::diagnose_table(&self.catalog, &self.id, now)
            .await
            .unwrap_or_else(|e| panic!("diagnose: {e}"))
    }

    /// The diagnosis one minute after the latest commit.
    pub async fn diagnose(&self) -> TableReport {
        let now = self.now_after(MINUTE).await;
        self.diagnose_at(now).await
    }

    /// The table's rows at its latest snapshot (or a tag), sorted.
    pub async fn rows(&self, tag: Option<&str>) -> Vec<(i64, String)> {
        let table = self.table().await;
        let batches = match tag {
            None => read_latest(&table).await,
            Some(tag) => {
                use futures::TryStreamExt;
                let plan = table
                    .scan()
                    .with_tag(tag)
                    .plan()
                    .await
                    .unwrap_or_else(|e| panic!("plan at tag {tag}: {e}"));
                plan.read_all()
                    .try_collect()
                    .await
                    .unwrap_or_else(|e| panic!("read at tag {tag}: {e}"))
            }
        };
        let mut out = Vec::new();
        for b in &batches {
            let ids = column::<Int64Array>(b, 1);
            let names = column::<StringArray>(b, 2);
            for i in 0..b.num_rows() {
                out.push((ids.value(i), names.value(i).to_string()));
            }
        }
        out.sort();
        out
    }
}

/// The rule ids of a report, in report order.
pub fn rules(report: &TableReport) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.rule).collect()
}

/// The top finding, failing the test with the report when there is none.
pub fn top(report: &TableReport) -> &Finding {
    report
        .findings
        .first()
        .unwrap_or_else(|| panic!("expected a finding on {report:#?}"))
}

/// The evidence value of `metric` as an integer.
pub fn evidence(f: &Finding, metric: &str) -> i64 {
    let e = f
        .evidence
        .iter()
        .find(|e| e.metric == metric)
        .unwrap_or_else(|| panic!("no evidence {metric} in {f:#?}"));
    match e.value {
        tidelake_doctor::Num::Int(v) => v,
        tidelake_doctor::Num::Real(v) => v as i64,
    }
}

/// The threshold of `metric`'s evidence as an integer.
pub fn threshold(f: &Finding, metric: &str) -> i64 {
    let e = f
        .evidence
        .iter()
        .find(|e| e.metric == metric)
        .unwrap_or_else(|| panic!("no evidence {metric} in {f:#?}"));
    match e.threshold {
        Some(tidelake_doctor::Num::Int(v)) => v,
        Some(tidelake_doctor::Num::Real(v)) => v as i64,
        None => panic!("{metric} has no threshold"),
    }
}
