//! Health scores: 0-100 per table and for the warehouse, with a sub-score
//! per category. The formula (also in `docs/doctor.md`):
//!
//! - each finding costs `weight(severity) x (2 - 1 / magnitude)`, where
//!   weight is 45 (HIGH), 20 (MID), 8 (LOW) and magnitude (>= 1) is how
//!   far past its threshold the evidence is: at the threshold it costs its
//!   weight, and the cost grows towards twice the weight as it gets worse;
//! - layout, LSM and distribution findings of a tiny table (less than one
//!   `target-file-size` of data) cost at most 40 together: a tiny table is
//!   never unhealthy for being tiny;
//! - a sub-score is 100 minus the costs of its category's findings, the
//!   table's score 100 minus all costs, both at least 0;
//! - the warehouse's score is the mean of its tables' scores weighted by
//!   `1 + log10(1 + live files)`;
//! - bands: above 80 healthy, 60 to 80 sub-healthy, below 60 unhealthy.

use serde::Serialize;

use crate::finding::{Category, Finding, Severity};

/// The band a score falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Band {
    Healthy,
    SubHealthy,
    Unhealthy,
}

impl Band {
    pub fn of(score: f64) -> Band {
        if score > 80.0 {
            Band::Healthy
        } else if score >= 60.0 {
            Band::SubHealthy
        } else {
            Band::Unhealthy
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Band::Healthy => "healthy",
            Band::SubHealthy => "sub-healthy",
            Band::Unhealthy => "unhealthy",
        }
    }
}

/// One table's health.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Health {
    pub score: f64,
    pub band: Band,
    pub layout: f64,
    pub lsm: f64,
    pub deletes: f64,
    pub retention: f64,
    pub distribution: f64,
    pub freshness: f64,
}

fn weight(s: Severity) -> f64 {
    match s {
        Severity::High => 45.0,
        Severity::Mid => 20.0,
        Severity::Low => 8.0,
    }
}

/// Most that size-bound findings (layout, LSM, distribution) cost a tiny table.
pub const TINY_CAP: f64 = 40.0;

/// What one finding costs.
pub fn penalty(f: &Finding) -> f64 {
    weight(f.severity) * (2.0 - 1.0 / f.magnitude.max(1.0))
}

fn size_bound(c: Category) -> bool {
    matches!(c, Category::Layout | Category::Lsm | Category::Distribution)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The health of a table with `findings`; `tiny`: it holds less than one
/// target file.
pub fn health(findings: &[Finding], tiny: bool) -> Health {
    let cost = |pick: &dyn Fn(Category) -> bool| -> f64 {
        findings
            .iter()
            .filter(|f| pick(f.category))
            .map(penalty)
            .sum()
    };
    let capped = |c: f64| if tiny { c.min(TINY_CAP) } else { c };
    let sub = |c: Category| {
        let spent = cost(&|x| x == c);
        let spent = if size_bound(c) { capped(spent) } else { spent };
        round1((100.0 - spent).max(0.0))
    };
    let total = capped(cost(&size_bound)) + cost(&|c| !size_bound(c));
    let score = round1((100.0 - total).max(0.0));
    Health {
        score,
        band: Band::of(score),
        layout: sub(Category::Layout),
        lsm: sub(Category::Lsm),
        deletes: sub(Category::Deletes),
        retention: sub(Category::Retention),
        distribution: sub(Category::Distribution),
        freshness: sub(Category::Freshness),
    }
}

/// The warehouse's score from `(score, live files)` per table (100 when
/// there is no table).
pub fn warehouse_score(tables: &[(f64, usize)]) -> f64 {
    let (mut sum, mut weights) = (0.0, 0.0);
    for (score, files) in tables {
        let w = 1.0 + (1.0 + *files as f64).log10();
        sum += w * score;
        weights += w;
    }
    if weights == 0.0 {
        100.0
    } else {
        round1(sum / weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Remedy;

    fn finding(severity: Severity, category: Category, magnitude: f64) -> Finding {
        Finding {
            rule: "small-files",
            severity,
            category,
            table: "db.t".into(),
            partition: None,
            bucket: None,
            evidence: Vec::new(),
            cause: String::new(),
            fix: String::new(),
            fixable: false,
            magnitude,
            remedy: Remedy::Advice,
        }
    }

    #[test]
    fn bands_follow_the_score() {
        assert_eq!(health(&[], false).band, Band::Healthy);
        assert_eq!(health(&[], false).score, 100.0);
        let high = health(&[finding(Severity::High, Category::Lsm, 1.0)], false);
        assert_eq!(high.band, Band::Unhealthy);
        assert_eq!(high.lsm, 55.0);
        assert_eq!(high.layout, 100.0);
        let mid = health(&[finding(Severity::Mid, Category::Layout, 1.0)], false);
        assert_eq!(mid.band, Band::SubHealthy);
        let low = health(&[finding(Severity::Low, Category::Layout, 1.0)], false);
        assert_eq!(low.band, Band::Healthy);
    }

    #[test]
    fn the_score_falls_as_the_magnitude_grows() {
        let mut last = 101.0;
        for m in [1.0, 1.5, 2.0, 4.0, 8.0] {
            let s = health(&[finding(Severity::Mid, Category::Layout, m)], false).score;
            assert!(s < last, "{s} < {last} at magnitude {m}");
            last = s;
        }
    }

    #[test]
    fn tiny_tables_are_never_unhealthy_for_their_layout() {
        let worst = [
            finding(Severity::High, Category::Layout, 100.0),
            finding(Severity::High, Category::Lsm, 100.0),
        ];
        let h = health(&worst, true);
        assert_eq!(h.band, Band::SubHealthy, "{h:?}");
        assert_eq!(health(&worst, false).band, Band::Unhealthy);
    }

    #[test]
    fn the_warehouse_weights_tables_by_files() {
        assert_eq!(warehouse_score(&[]), 100.0);
        let s = warehouse_score(&[(100.0, 0), (40.0, 999)]);
        assert!(s > 40.0 && s < 70.0, "{s}");
    }
}
