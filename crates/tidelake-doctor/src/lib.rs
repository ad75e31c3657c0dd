//! # tidelake-doctor
//!
//! Tidelake's operations doctor. It reads a warehouse's Paimon metadata
//! (snapshots, manifests, live files per bucket, deletion-vector indexes,
//! consumers, tags, continuous-job positions in snapshot properties) and
//! reports **findings**: a stable rule id, a severity, the table, partition
//! or bucket, the evidence with its threshold, the root cause and the fix.
//! It scores each table's health (0-100, with sub-scores), applies the
//! fixes that are safe (`--fix`: compaction, expiration within the table's
//! own retention, orphan removal past the safety margin, manifest merge)
//! and advises options
//! (`advise`).
//!
//! It owns the rules, their thresholds (which scale with each table's own
//! options), the score and the advice. It uses the engine's public API only
//! and never opens a data file; it must not know SQL, sessions or the
//! command line (the binary renders its reports and serves them to SQL as
//! `sys.doctor` and `db."t$health"`). Time is an input (`now_millis`), so
//! the same metadata always gives the same report.

mod advise;
mod catalogue;
mod error;
mod finding;
mod fix;
mod observe;
mod render;
mod rules;
mod score;

pub use advise::{advise, Advice};
pub use catalogue::{explain, rule, RuleInfo, RULES};
pub use error::{DoctorError, Result};
pub use finding::{Category, Evidence, Finding, Num, Remedy, Severity};
pub use fix::{apply_fixes, FixAction, FIX_PROPERTY};
pub use observe::{observe, TableFacts};
pub use render::{findings_batch, health_batch, render_json, render_text};
pub use score::{health, warehouse_score, Band, Health};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
pub use tidelake_engine::{Catalog, Identifier};

/// What `doctor` looks at: the whole warehouse, a database or one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Warehouse,
    Database(String),
    Table(Identifier),
}

impl Target {
    /// `""` (everything), `db`, or `db.table`.
    pub fn parse(text: &str) -> Result<Target> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Target::Warehouse);
        }
        match text.split_once('.') {
            None => Ok(Target::Database(text.to_string())),
            Some((db, t)) if !db.is_empty() && !t.is_empty() && !t.contains('.') => {
                Ok(Target::Table(Identifier::new(db, t)))
            }
            _ => Err(DoctorError::Target(format!(
                "'{text}' is not a database or db.table"
            ))),
        }
    }
}

/// One table's diagnosis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableReport {
    pub table: String,
    pub files: usize,
    pub bytes: u64,
    pub snapshots: usize,
    pub health: Health,
    pub findings: Vec<Finding>,
}

/// A diagnosis of the target's tables.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub score: f64,
    pub band: Band,
    pub tables: Vec<TableReport>,
}

impl Report {
    /// Every finding, most severe first.
    pub fn findings(&self) -> Vec<&Finding> {
        let mut all: Vec<&Finding> = self.tables.iter().flat_map(|t| &t.findings).collect();
        all.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(catalogue::rank(a.rule).cmp(&catalogue::rank(b.rule)))
                .then(a.table.cmp(&b.table))
                .then(a.partition.cmp(&b.partition))
                .then(a.bucket.cmp(&b.bucket))
        });
        all
    }
}

/// The tables `target` names, in name order.
pub async fn tables_of(catalog: &Catalog, target: &Target) -> Result<Vec<Identifier>> {
    let databases = match target {
        Target::Table(id) => return Ok(vec![id.clone()]),
        Target::Database(db) => {
            if !catalog.database_exists(db).await? {
                return Err(DoctorError::Target(format!("no database '{db}'")));
            }
            vec![db.clone()]
        }
        Target::Warehouse => catalog.list_databases().await?,
    };
    let mut out = Vec::new();
    for db in databases {
        let mut names = catalog.list_tables(&db).await?;
        names.sort();
        out.extend(names.into_iter().map(|t| Identifier::new(db.clone(), t)));
    }
    Ok(out)
}

/// Diagnoses one table as of `now_millis`.
pub async fn diagnose_table(
    catalog: &Catalog,
    id: &Identifier,
    now_millis: i64,
) -> Result<TableReport> {
    let facts = observe(catalog, id, now_millis).await?;
    Ok(report_of(&facts))
}

/// The report of facts already read.
pub fn report_of(facts: &TableFacts) -> TableReport {
    let findings = rules::check(facts);
    TableReport {
        table: facts.name.clone(),
        files: facts.total_files(),
        bytes: facts.total_bytes(),
        snapshots: facts.snapshots.len(),
        health: health(&findings, facts.is_tiny()),
        findings,
    }
}

/// Tables diagnosed at once: their reads are small metadata files, so the
/// run waits on I/O rather than CPU; a bound keeps open files and memory in
/// check on large warehouses.
const TABLES_AT_ONCE: usize = 16;

/// Diagnoses every table of `target` as of `now_millis`, several at once;
/// the report lists them in name order whatever finished first.
pub async fn diagnose(catalog: &Catalog, target: &Target, now_millis: i64) -> Result<Report> {
    let ids = tables_of(catalog, target).await?;
    // Owned ids: a closure over borrowed ones is not Send-general enough
    // for callers behind `async_trait`.
    let tables: Vec<TableReport> = futures::stream::iter(ids)
        .map(|id| async move { diagnose_table(catalog, &id, now_millis).await })
        .buffered(TABLES_AT_ONCE)
        .try_collect()
        .await?;
    let scores: Vec<(f64, usize)> = tables.iter().map(|t| (t.health.score, t.files)).collect();
    let score = warehouse_score(&scores);
    Ok(Report {
        score,
        band: Band::of(score),
        tables,
    })
}
