//! Column statistics as Paimon stores them (`SimpleStats`: a BinaryRow of
//! minimums, one of maximums, and null counts), computed from Arrow arrays,
//! and the predicates' use of them for skipping files and manifests.

use arrow::compute::{sort_to_indices, SortOptions};
use arrow_array::{Array, ArrayRef};
use tidelake_format::binary_row::{
    datum_from_arrow, deserialize_binary_row, serialize_binary_row, Datum,
};
use tidelake_format::manifest::{ManifestEntry, SimpleStats};
use tidelake_format::types::{DataType, DataTypeKind};

use crate::error::Result;

/// Minimum, maximum and null count of one column.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnStats {
    pub min: Datum,
    pub max: Datum,
    pub null_count: i64,
}

fn has_orderable_stats(ty: &DataType) -> bool {
    !matches!(
        ty.kind,
        DataTypeKind::Array(_)
            | DataTypeKind::Map(..)
            | DataTypeKind::Row(_)
            | DataTypeKind::Multiset(_)
    )
}

fn extreme_index(array: &dyn Array, descending: bool) -> Result<Option<usize>> {
    let options = SortOptions {
        descending,
        nulls_first: false,
    };
    let idx = sort_to_indices(array, Some(options), Some(1))?;
    Ok(idx
        .values()
        .first()
        .map(|i| *i as usize)
        .filter(|i| array.is_valid(*i)))
}

/// Shortens a string minimum to `len` characters (still a lower bound).
fn truncate_min(d: Datum, len: Option<usize>) -> Datum {
    match (d, len) {
        (Datum::String(s), Some(n)) if s.chars().count() > n => {
            Datum::String(s.chars().take(n).collect())
        }
        (d, _) => d,
    }
}

/// Shortens a string maximum to `len` characters and rounds its last
/// character up, so that it stays an upper bound; `Null` when it cannot.
fn truncate_max(d: Datum, len: Option<usize>) -> Datum {
    match (d, len) {
        (Datum::String(s), Some(n)) if s.chars().count() > n => {
            let mut chars: Vec<char> = s.chars().take(n).collect();
            while let Some(last) = chars.pop() {
                if let Some(next) = char::from_u32(last as u32 + 1) {
                    chars.push(next);
                    return Datum::String(chars.into_iter().collect());
                }
            }
            Datum::Null
        }
        (d, _) => d,
    }
}

/// Statistics of one column. `truncate`: `Some(0)` keeps only null counts,
/// `Some(n)` shortens strings to n characters, `None` keeps them whole.
pub fn column_stats(
    array: &ArrayRef,
    ty: &DataType,
    truncate: Option<usize>,
) -> Result<ColumnStats> {
    let null_count = array.null_count() as i64;
    if !has_orderable_stats(ty) || truncate == Some(0) || null_count as usize == array.len() {
        return Ok(ColumnStats {
            min: Datum::Null,
            max: Datum::Null,
            null_count,
        });
    }
    if matches!(
        ty.kind,
        DataTypeKind::Binary(_) | DataTypeKind::VarBinary(_)
    ) {
        return Ok(ColumnStats {
            min: Datum::Null,
            max: Datum::Null,
            null_count,
        });
    }
    let min = match extreme_index(array.as_ref(), false)? {
        Some(i) => datum_from_arrow(array.as_ref(), i, ty)?,
        None => Datum::Null,
    };
    let max = match extreme_index(array.as_ref(), true)? {
        Some(i) => datum_from_arrow(array.as_ref(), i, ty)?,
        None => Datum::Null,
    };
    let (min, max) = match (min, max) {
        (Datum::Double(a), Datum::Double(b)) if a.is_nan() || b.is_nan() => {
            (Datum::Null, Datum::Null)
        }
        (Datum::Float(a), Datum::Float(b)) if a.is_nan() || b.is_nan() => {
            (Datum::Null, Datum::Null)
        }
        (a, b) => (truncate_min(a, truncate), truncate_max(b, truncate)),
    };
    Ok(ColumnStats {
        min,
        max,
        null_count,
    })
}

/// Encodes per-column statistics as Paimon's `SimpleStats`.
pub fn encode_stats(stats: &[ColumnStats], types: &[DataType]) -> Result<SimpleStats> {
    let mins: Vec<Datum> = stats.iter().map(|s| s.min.clone()).collect();
    let maxs: Vec<Datum> = stats.iter().map(|s| s.max.clone()).collect();
    Ok(SimpleStats {
        min_values: serialize_binary_row(&mins, types)?,
        max_values: serialize_binary_row(&maxs, types)?,
        null_counts: Some(stats.iter().map(|s| Some(s.null_count)).collect()),
    })
}

/// Decodes `SimpleStats` written for `types`; `None` if they do not decode
/// (stats are an optimisation: unreadable stats only disable skipping).
pub fn decode_stats(stats: &SimpleStats, types: &[DataType]) -> Option<Vec<ColumnStats>> {
    let mins = deserialize_binary_row(&stats.min_values, types).ok()?;
    let maxs = deserialize_binary_row(&stats.max_values, types).ok()?;
    if mins.len() != types.len() || maxs.len() != types.len() {
        return None;
    }
    let nulls = stats.null_counts.clone().unwrap_or_default();
    Some(
        mins.into_iter()
            .zip(maxs)
            .enumerate()
            .map(|(i, (min, max))| ColumnStats {
                min,
                max,
                null_count: nulls.get(i).copied().flatten().unwrap_or(-1),
            })
            .collect(),
    )
}

/// Min/max/null counts of the partitions of manifest entries (a manifest's
/// `_PARTITION_STATS`).
pub fn partition_stats(types: &[DataType], entries: &[ManifestEntry]) -> SimpleStats {
    let mut acc: Vec<ColumnStats> = types
        .iter()
        .map(|_| ColumnStats {
            min: Datum::Null,
            max: Datum::Null,
            null_count: 0,
        })
        .collect();
    for e in entries {
        let Ok(values) = deserialize_binary_row(&e.partition, types) else {
            continue;
        };
        for (s, v) in acc.iter_mut().zip(values) {
            if v == Datum::Null {
                s.null_count += 1;
                continue;
            }
            if s.min == Datum::Null || v.cmp_same_type(&s.min) == Some(std::cmp::Ordering::Less) {
                s.min = v.clone();
            }
            if s.max == Datum::Null || v.cmp_same_type(&s.max) == Some(std::cmp::Ordering::Greater)
            {
                s.max = v;
            }
        }
    }
    encode_stats(&acc, types).unwrap_or_else(|_| SimpleStats::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn min_max_and_nulls() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None, Some(-3), Some(9)]));
        let s = column_stats(&a, &DataType::new(DataTypeKind::BigInt, true), Some(16)).unwrap();
        assert_eq!(
            s,
            ColumnStats {
                min: Datum::BigInt(-3),
                max: Datum::BigInt(9),
                null_count: 1
            }
        );
    }

    #[test]
    fn long_strings_are_truncated_to_bounds() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["abcdefghij", "abcdezzzzz"]));
        let s = column_stats(&a, &DataType::string(), Some(5)).unwrap();
        assert_eq!(s.min, Datum::String("abcde".into()));
        assert_eq!(s.max, Datum::String("abcdf".into()));
        assert!(
            Datum::String("abcdezzzzz".into()).cmp_same_type(&s.max)
                == Some(std::cmp::Ordering::Less)
        );
    }
}
