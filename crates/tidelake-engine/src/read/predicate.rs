//! Predicates the engine can use to skip partitions, manifests and files.
//! They are conservative: `may_match` answers "could any row match", so a
//! predicate never hides a row; the query engine still filters exactly.

use std::cmp::Ordering;

use tidelake_format::binary_row::Datum;

use crate::stats::ColumnStats;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A filter over named columns.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    Compare {
        column: String,
        op: CompareOp,
        value: Datum,
    },
    IsNull(String),
    IsNotNull(String),
    In {
        column: String,
        values: Vec<Datum>,
    },
}

impl Predicate {
    /// Whether every column the predicate names satisfies `f`.
    pub fn columns_all(&self, f: &impl Fn(&str) -> bool) -> bool {
        match self {
            Predicate::And(ps) | Predicate::Or(ps) => ps.iter().all(|p| p.columns_all(f)),
            Predicate::Not(p) => p.columns_all(f),
            Predicate::Compare { column, .. } | Predicate::In { column, .. } => f(column),
            Predicate::IsNull(c) | Predicate::IsNotNull(c) => f(c),
        }
    }

    /// The part of the predicate (a conjunction) that only names columns
    /// satisfying `f`; `None` when no such part exists.
    pub fn restrict(&self, f: &impl Fn(&str) -> bool) -> Option<Predicate> {
        if self.columns_all(f) {
            return Some(self.clone());
        }
        match self {
            Predicate::And(ps) => {
                let kept: Vec<Predicate> = ps.iter().filter_map(|p| p.restrict(f)).collect();
                match kept.len() {
                    0 => None,
                    1 => kept.into_iter().next(),
                    _ => Some(Predicate::And(kept)),
                }
            }
            _ => None,
        }
    }

    /// The one value a conjunction pins `column` to (`column = v`, or
    /// `column IN (v)`), if it does.
    pub fn pinned_value(&self, column: &str) -> Option<&Datum> {
        match self {
            Predicate::And(ps) => ps.iter().find_map(|p| p.pinned_value(column)),
            Predicate::Compare {
                column: c,
                op: CompareOp::Eq,
                value,
            } if c == column && *value != Datum::Null => Some(value),
            Predicate::In { column: c, values } if c == column && values.len() == 1 => {
                values.first().filter(|v| **v != Datum::Null)
            }
            _ => None,
        }
    }

    /// Exact evaluation on known values (partition values). Unknown columns
    /// or incomparable values count as "may match".
    pub fn eval(&self, value_of: &impl Fn(&str) -> Option<Datum>) -> bool {
        match self {
            Predicate::And(ps) => ps.iter().all(|p| p.eval(value_of)),
            Predicate::Or(ps) => ps.iter().any(|p| p.eval(value_of)),
            Predicate::Not(p) => match p.as_ref() {
                // NOT is only exact when the inner predicate is exact.
                Predicate::Compare { .. }
                | Predicate::IsNull(_)
                | Predicate::IsNotNull(_)
                | Predicate::In { .. } => !p.eval(value_of),
                _ => true,
            },
            Predicate::IsNull(c) => value_of(c).is_none_or(|v| v == Datum::Null),
            Predicate::IsNotNull(c) => value_of(c).is_none_or(|v| v != Datum::Null),
            Predicate::Compare { column, op, value } => match value_of(column) {
                None => true,
                Some(Datum::Null) => false,
                Some(v) => match v.cmp_same_type(value) {
                    None => true,
                    Some(ord) => compare_holds(*op, ord),
                },
            },
            Predicate::In { column, values } => match value_of(column) {
                None => true,
                Some(Datum::Null) => false,
                Some(v) => values
                    .iter()
                    .any(|x| v.cmp_same_type(x).is_none_or(|o| o == Ordering::Equal)),
            },
        }
    }

    /// Whether a file with these column statistics may hold a matching row.
    pub fn may_match(
        &self,
        stats_of: &impl Fn(&str) -> Option<ColumnStats>,
        row_count: i64,
    ) -> bool {
        match self {
            Predicate::And(ps) => ps.iter().all(|p| p.may_match(stats_of, row_count)),
            Predicate::Or(ps) => ps.iter().any(|p| p.may_match(stats_of, row_count)),
            Predicate::Not(_) => true,
            Predicate::IsNull(c) => stats_of(c).is_none_or(|s| s.null_count != 0),
            Predicate::IsNotNull(c) => {
                stats_of(c).is_none_or(|s| s.null_count < 0 || s.null_count < row_count)
            }
            Predicate::Compare { column, op, value } => {
                let Some(s) = stats_of(column) else {
                    return true;
                };
                if s.null_count >= 0 && s.null_count == row_count {
                    return false;
                }
                range_may_match(&s, *op, value)
            }
            Predicate::In { column, values } => {
                let Some(s) = stats_of(column) else {
                    return true;
                };
                values.iter().any(|v| range_may_match(&s, CompareOp::Eq, v))
            }
        }
    }
}

fn compare_holds(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::NotEq => ord != Ordering::Equal,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::LtEq => ord != Ordering::Greater,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::GtEq => ord != Ordering::Less,
    }
}

fn range_may_match(s: &ColumnStats, op: CompareOp, value: &Datum) -> bool {
    if s.min == Datum::Null || s.max == Datum::Null {
        return true;
    }
    let (Some(lo), Some(hi)) = (s.min.cmp_same_type(value), s.max.cmp_same_type(value)) else {
        return true;
    };
    match op {
        CompareOp::Eq => lo != Ordering::Greater && hi != Ordering::Less,
        CompareOp::NotEq => !(lo == Ordering::Equal && hi == Ordering::Equal),
        CompareOp::Lt => lo == Ordering::Less,
        CompareOp::LtEq => lo != Ordering::Greater,
        CompareOp::Gt => hi == Ordering::Greater,
        CompareOp::GtEq => hi != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(min: i64, max: i64, nulls: i64) -> ColumnStats {
        ColumnStats {
            min: Datum::BigInt(min),
            max: Datum::BigInt(max),
            null_count: nulls,
        }
    }

    #[test]
    fn ranges_skip_only_impossible_files() {
        let p = Predicate::Compare {
            column: "a".into(),
            op: CompareOp::Eq,
            value: Datum::BigInt(5),
        };
        assert!(p.may_match(&|_| Some(stats(1, 9, 0)), 10));
        assert!(!p.may_match(&|_| Some(stats(6, 9, 0)), 10));
        assert!(p.may_match(&|_| None, 10));
        let gt = Predicate::Compare {
            column: "a".into(),
            op: CompareOp::Gt,
            value: Datum::BigInt(9),
        };
        assert!(!gt.may_match(&|_| Some(stats(1, 9, 0)), 10));
        let all_null = Predicate::Compare {
            column: "a".into(),
            op: CompareOp::Lt,
            value: Datum::BigInt(100),
        };
        assert!(!all_null.may_match(
            &|_| Some(ColumnStats {
                min: Datum::Null,
                max: Datum::Null,
                null_count: 10
            }),
            10
        ));
    }

    #[test]
    fn restrict_keeps_conjuncts_on_allowed_columns() {
        let p = Predicate::And(vec![
            Predicate::IsNull("a".into()),
            Predicate::Or(vec![
                Predicate::IsNull("b".into()),
                Predicate::IsNull("a".into()),
            ]),
        ]);
        assert_eq!(
            p.restrict(&|c| c == "a"),
            Some(Predicate::IsNull("a".into()))
        );
        assert_eq!(p.restrict(&|c| c == "z"), None);
    }

    #[test]
    fn partition_values_evaluate_exactly() {
        let p = Predicate::In {
            column: "dt".into(),
            values: vec![Datum::String("a".into())],
        };
        assert!(p.eval(&|_| Some(Datum::String("a".into()))));
        assert!(!p.eval(&|_| Some(Datum::String("b".into()))));
        assert!(!p.eval(&|_| Some(Datum::Null)));
    }
}
