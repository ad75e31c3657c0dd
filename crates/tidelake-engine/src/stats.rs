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

/// Rows of the smallest and largest non-null value, by one linear scan.
fn scan_extremes<T: Copy>(
    valid: impl Fn(usize) -> bool,
    len: usize,
    value: impl Fn(usize) -> T,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Option<(usize, usize)> {
    let first = (0..len).find(|i| valid(*i))?;
    let (mut lo, mut hi) = (first, first);
    let (mut lo_v, mut hi_v) = (value(first), value(first));
    for i in first + 1..len {
        if !valid(i) {
            continue;
        }
        let v = value(i);
        if cmp(&v, &lo_v).is_lt() {
            lo = i;
            lo_v = v;
        } else if cmp(&v, &hi_v).is_gt() {
            hi = i;
            hi_v = v;
        }
    }
    Some((lo, hi))
}

/// Rows of the minimum and maximum: a linear scan for the common types (a
/// file's statistics are computed for every column of every flush), Arrow's
/// partial sort for the rest. Floats use the total order, so a NaN is the
/// maximum, as in Arrow's sort.
fn extreme_indices(array: &dyn Array) -> Result<Option<(usize, usize)>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::DataType as A;
    let len = array.len();
    let valid = |i: usize| array.is_valid(i);
    macro_rules! primitive {
        ($t:ty, $cmp:expr) => {{
            let a = array.as_primitive::<$t>();
            let values = a.values();
            Ok(scan_extremes(valid, len, |i| values[i], $cmp))
        }};
    }
    match array.data_type() {
        A::Int8 => primitive!(Int8Type, |a: &i8, b: &i8| a.cmp(b)),
        A::Int16 => primitive!(Int16Type, |a: &i16, b: &i16| a.cmp(b)),
        A::Int32 => primitive!(Int32Type, |a: &i32, b: &i32| a.cmp(b)),
        A::Int64 => primitive!(Int64Type, |a: &i64, b: &i64| a.cmp(b)),
        A::Date32 => primitive!(Date32Type, |a: &i32, b: &i32| a.cmp(b)),
        A::Float32 => primitive!(Float32Type, |a: &f32, b: &f32| a.total_cmp(b)),
        A::Float64 => primitive!(Float64Type, |a: &f64, b: &f64| a.total_cmp(b)),
        A::Decimal128(..) => primitive!(Decimal128Type, |a: &i128, b: &i128| a.cmp(b)),
        A::Timestamp(arrow_schema::TimeUnit::Millisecond, _) => {
            primitive!(TimestampMillisecondType, |a: &i64, b: &i64| a.cmp(b))
        }
        A::Timestamp(arrow_schema::TimeUnit::Microsecond, _) => {
            primitive!(TimestampMicrosecondType, |a: &i64, b: &i64| a.cmp(b))
        }
        A::Timestamp(arrow_schema::TimeUnit::Nanosecond, _) => {
            primitive!(TimestampNanosecondType, |a: &i64, b: &i64| a.cmp(b))
        }
        A::Utf8 => {
            let a = array.as_string::<i32>();
            Ok(scan_extremes(valid, len, |i| a.value(i), |x, y| x.cmp(y)))
        }
        _ => {
            let min = extreme_index(array, false)?;
            let max = extreme_index(array, true)?;
            Ok(min.zip(max))
        }
    }
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
pub(crate) fn column_stats(
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
    let (min, max) = match extreme_indices(array.as_ref())? {
        Some((lo, hi)) => (
            datum_from_arrow(array.as_ref(), lo, ty)?,
            datum_from_arrow(array.as_ref(), hi, ty)?,
        ),
        None => (Datum::Null, Datum::Null),
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
pub(crate) fn encode_stats(stats: &[ColumnStats], types: &[DataType]) -> Result<SimpleStats> {
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
pub(crate) fn partition_stats(types: &[DataType], entries: &[ManifestEntry]) -> SimpleStats {
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn linear_extremes_equal_sorted_extremes(values in proptest::collection::vec(proptest::option::of(any::<i64>()), 0..64),
                                                 floats in proptest::collection::vec(proptest::option::of(any::<f64>()), 0..64),
                                                 strings in proptest::collection::vec(proptest::option::of("[a-c]{0,3}"), 0..64)) {
            let arrays: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(values)),
                Arc::new(arrow_array::Float64Array::from(floats)),
                Arc::new(StringArray::from(strings)),
            ];
            for a in arrays {
                let by_sort = extreme_index(a.as_ref(), false).unwrap().zip(extreme_index(a.as_ref(), true).unwrap());
                let by_scan = extreme_indices(a.as_ref()).unwrap();
                let value = |i: usize| arrow::util::display::array_value_to_string(&a, i).unwrap();
                prop_assert_eq!(by_sort.map(|(l, h)| (value(l), value(h))), by_scan.map(|(l, h)| (value(l), value(h))));
            }
        }
    }

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
