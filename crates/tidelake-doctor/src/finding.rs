//! What the doctor reports: findings (a rule that fired, where, on which
//! evidence, why and what to do) and their severities and categories.

use serde::Serialize;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Low,
    Mid,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Mid => "MID",
            Severity::High => "HIGH",
        }
    }
}

/// The sub-score a rule counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Files and metadata: small files, partitions, manifests, orphans.
    Layout,
    /// The LSM tree: sorted runs, compaction, changelog production.
    Lsm,
    /// Deleted rows still stored.
    Deletes,
    /// Snapshots kept: expiration, consumers, stream positions.
    Retention,
    /// Data over buckets and writers over partitions.
    Distribution,
    /// Continuous jobs keeping up with their sources.
    Freshness,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Layout,
        Category::Lsm,
        Category::Deletes,
        Category::Retention,
        Category::Distribution,
        Category::Freshness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Layout => "layout",
            Category::Lsm => "lsm",
            Category::Deletes => "deletes",
            Category::Retention => "retention",
            Category::Distribution => "distribution",
            Category::Freshness => "freshness",
        }
    }
}

/// A number of the evidence: counts stay integers in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Num {
    Int(i64),
    Real(f64),
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Int(v) => write!(f, "{v}"),
            Num::Real(v) => write!(f, "{v:.2}"),
        }
    }
}

impl From<i64> for Num {
    fn from(v: i64) -> Num {
        Num::Int(v)
    }
}

impl From<usize> for Num {
    fn from(v: usize) -> Num {
        Num::Int(v as i64)
    }
}

impl From<u64> for Num {
    fn from(v: u64) -> Num {
        Num::Int(v as i64)
    }
}

impl From<f64> for Num {
    fn from(v: f64) -> Num {
        // Two decimals: the same metadata always prints the same JSON.
        Num::Real((v * 100.0).round() / 100.0)
    }
}

/// One measured number and the threshold it was compared with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub metric: String,
    pub value: Num,
    /// The value at which the rule fires (`None`: context only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Num>,
}

impl Evidence {
    pub fn new(metric: &str, value: impl Into<Num>, threshold: impl Into<Num>) -> Evidence {
        Evidence {
            metric: metric.to_string(),
            value: value.into(),
            threshold: Some(threshold.into()),
        }
    }

    pub fn context(metric: &str, value: impl Into<Num>) -> Evidence {
        Evidence {
            metric: metric.to_string(),
            value: value.into(),
            threshold: None,
        }
    }
}

/// What the doctor can do about a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Remedy {
    /// `--fix` compacts these buckets (all of the table when empty).
    Compact { buckets: Vec<(Vec<u8>, i32)> },
    /// `--fix` expires snapshots within the table's own retention options.
    Expire,
    /// `--fix` removes orphan files older than the safety margin.
    RemoveOrphans,
    /// `--fix` merges the latest snapshot's data manifests in a COMPACT
    /// snapshot that changes no data.
    MergeManifests,
    /// Nothing automatic: an option change, a rescale, a consumer to drop.
    Advice,
}

/// One rule that fired on one table, partition or bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub category: Category,
    /// `db.table`.
    pub table: String,
    /// The partition, as its path (`dt=2024-01-01`), when the finding
    /// concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<i32>,
    pub evidence: Vec<Evidence>,
    /// Why it happens, in one or two sentences.
    pub cause: String,
    /// What to run or change.
    pub fix: String,
    /// Whether `--fix` applies it (`auto`) or it is advice only.
    pub fixable: bool,
    /// How far past its threshold (1 = at the threshold); the score's
    /// penalty grows with it.
    pub magnitude: f64,
    #[serde(skip)]
    pub remedy: Remedy,
}

impl Finding {
    /// Where: `db.t`, `db.t dt=1`, `db.t dt=1 bucket 0`.
    pub fn scope(&self) -> String {
        let mut s = self.table.clone();
        if let Some(p) = &self.partition {
            s.push(' ');
            s.push_str(p);
        }
        if let Some(b) = self.bucket {
            s.push_str(&format!(" bucket {b}"));
        }
        s
    }

    /// The evidence as one line: `small_files=12 (>= 10), files=14`.
    pub fn evidence_text(&self) -> String {
        self.evidence
            .iter()
            .map(|e| match &e.threshold {
                Some(t) => format!("{}={} (threshold {t})", e.metric, e.value),
                None => format!("{}={}", e.metric, e.value),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
