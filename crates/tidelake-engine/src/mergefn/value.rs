//! Single values of the columns that aggregate functions compute on (numbers,
//! booleans, strings), read from and written back to Arrow arrays. Functions
//! that only choose one of their inputs (last_value, min, ...) never go
//! through here: they pick cells and the output is assembled by `interleave`.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, LargeStringArray, StringArray,
};
use arrow_schema::{DataType as ArrowType, TimeUnit};

use crate::error::{EngineError, Result};

/// One cell's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    /// Every integer-backed type (integers, dates, times, timestamps).
    Int(i64),
    Float(f64),
    /// Unscaled DECIMAL value.
    Decimal(i128),
    Str(String),
}

impl Scalar {
    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    /// Orders two non-null values of one column; `None` when incomparable.
    pub fn compare(&self, other: &Scalar) -> Option<Ordering> {
        match (self, other) {
            (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
            (Scalar::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
            (Scalar::Float(a), Scalar::Float(b)) => a.partial_cmp(b),
            (Scalar::Decimal(a), Scalar::Decimal(b)) => Some(a.cmp(b)),
            (Scalar::Str(a), Scalar::Str(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Whether values of this Arrow type can be read as [`Scalar`]s.
pub(crate) fn is_scalar_type(t: &ArrowType) -> bool {
    matches!(
        t,
        ArrowType::Boolean
            | ArrowType::Int8
            | ArrowType::Int16
            | ArrowType::Int32
            | ArrowType::Int64
            | ArrowType::Float32
            | ArrowType::Float64
            | ArrowType::Decimal128(_, _)
            | ArrowType::Utf8
            | ArrowType::LargeUtf8
            | ArrowType::Date32
            | ArrowType::Time32(_)
            | ArrowType::Time64(_)
            | ArrowType::Timestamp(_, _)
    )
}

pub(crate) fn is_numeric(t: &ArrowType) -> bool {
    matches!(
        t,
        ArrowType::Int8
            | ArrowType::Int16
            | ArrowType::Int32
            | ArrowType::Int64
            | ArrowType::Float32
            | ArrowType::Float64
            | ArrowType::Decimal128(_, _)
    )
}

/// Reads row `row` of `array`.
pub(crate) fn read(array: &dyn Array, row: usize) -> Result<Scalar> {
    if array.is_null(row) {
        return Ok(Scalar::Null);
    }
    Ok(match array.data_type() {
        ArrowType::Boolean => Scalar::Bool(array.as_boolean().value(row)),
        ArrowType::Int8 => Scalar::Int(array.as_primitive::<Int8Type>().value(row).into()),
        ArrowType::Int16 => Scalar::Int(array.as_primitive::<Int16Type>().value(row).into()),
        ArrowType::Int32 => Scalar::Int(array.as_primitive::<Int32Type>().value(row).into()),
        ArrowType::Int64 => Scalar::Int(array.as_primitive::<Int64Type>().value(row)),
        ArrowType::Date32 => Scalar::Int(array.as_primitive::<Date32Type>().value(row).into()),
        ArrowType::Time32(TimeUnit::Second) => {
            Scalar::Int(array.as_primitive::<Time32SecondType>().value(row).into())
        }
        ArrowType::Time32(_) => Scalar::Int(
            array
                .as_primitive::<Time32MillisecondType>()
                .value(row)
                .into(),
        ),
        ArrowType::Time64(TimeUnit::Microsecond) => {
            Scalar::Int(array.as_primitive::<Time64MicrosecondType>().value(row))
        }
        ArrowType::Time64(_) => {
            Scalar::Int(array.as_primitive::<Time64NanosecondType>().value(row))
        }
        ArrowType::Timestamp(unit, _) => Scalar::Int(match unit {
            TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
            TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
            TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
        }),
        ArrowType::Float32 => Scalar::Float(array.as_primitive::<Float32Type>().value(row).into()),
        ArrowType::Float64 => Scalar::Float(array.as_primitive::<Float64Type>().value(row)),
        ArrowType::Decimal128(_, _) => {
            Scalar::Decimal(array.as_primitive::<Decimal128Type>().value(row))
        }
        ArrowType::Utf8 => Scalar::Str(array.as_string::<i32>().value(row).to_string()),
        ArrowType::LargeUtf8 => Scalar::Str(array.as_string::<i64>().value(row).to_string()),
        other => {
            return Err(EngineError::internal(format!(
                "aggregate functions cannot compute on {other} values"
            )))
        }
    })
}

fn wrong(t: &ArrowType, v: &Scalar) -> EngineError {
    EngineError::internal(format!("value {v:?} does not fit an aggregated {t} column"))
}

/// Builds an array of type `t` from computed values.
pub(crate) fn build(t: &ArrowType, values: &[Scalar]) -> Result<ArrayRef> {
    fn ints(t: &ArrowType, values: &[Scalar]) -> Result<Vec<Option<i64>>> {
        values
            .iter()
            .map(|v| match v {
                Scalar::Null => Ok(None),
                Scalar::Int(i) => Ok(Some(*i)),
                other => Err(wrong(t, other)),
            })
            .collect()
    }
    // Integers wrap at their width, as Java's arithmetic does.
    Ok(match t {
        ArrowType::Int8 => Arc::new(
            ints(t, values)?
                .into_iter()
                .map(|v| v.map(|v| v as i8))
                .collect::<Int8Array>(),
        ),
        ArrowType::Int16 => Arc::new(
            ints(t, values)?
                .into_iter()
                .map(|v| v.map(|v| v as i16))
                .collect::<Int16Array>(),
        ),
        ArrowType::Int32 => Arc::new(
            ints(t, values)?
                .into_iter()
                .map(|v| v.map(|v| v as i32))
                .collect::<Int32Array>(),
        ),
        ArrowType::Int64 => Arc::new(ints(t, values)?.into_iter().collect::<Int64Array>()),
        ArrowType::Float32 | ArrowType::Float64 => {
            let f = values
                .iter()
                .map(|v| match v {
                    Scalar::Null => Ok(None),
                    Scalar::Float(f) => Ok(Some(*f)),
                    other => Err(wrong(t, other)),
                })
                .collect::<Result<Vec<_>>>()?;
            if *t == ArrowType::Float32 {
                Arc::new(
                    f.into_iter()
                        .map(|v| v.map(|v| v as f32))
                        .collect::<Float32Array>(),
                )
            } else {
                Arc::new(f.into_iter().collect::<Float64Array>())
            }
        }
        ArrowType::Decimal128(p, s) => {
            let d = values
                .iter()
                .map(|v| match v {
                    Scalar::Null => Ok(None),
                    Scalar::Decimal(d) => Ok(Some(*d)),
                    other => Err(wrong(t, other)),
                })
                .collect::<Result<Vec<_>>>()?;
            Arc::new(
                d.into_iter()
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(*p, *s)?,
            )
        }
        ArrowType::Boolean => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Null => Ok(None),
                    Scalar::Bool(b) => Ok(Some(*b)),
                    other => Err(wrong(t, other)),
                })
                .collect::<Result<BooleanArray>>()?,
        ),
        ArrowType::Utf8 | ArrowType::LargeUtf8 => {
            let s = values
                .iter()
                .map(|v| match v {
                    Scalar::Null => Ok(None),
                    Scalar::Str(s) => Ok(Some(s.as_str())),
                    other => Err(wrong(t, other)),
                })
                .collect::<Result<Vec<_>>>()?;
            if *t == ArrowType::Utf8 {
                Arc::new(StringArray::from(s))
            } else {
                Arc::new(LargeStringArray::from(s))
            }
        }
        other => {
            return Err(EngineError::internal(format!(
                "aggregate functions cannot produce {other} values"
            )))
        }
    })
}

/// Java's `StringUtils.isBlank`: empty or only white space.
pub(crate) fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// `listagg` of two non-blank strings. With `distinct`, tokens of `b`
/// (split at the delimiter; at white space when it is empty) that are blank
/// or already in `a` are left out, as Paimon does; `a` stays as it is.
pub(crate) fn listagg(a: &str, b: &str, delimiter: &str, distinct: bool) -> String {
    if !distinct {
        return format!("{a}{delimiter}{b}");
    }
    fn tokens<'s>(s: &'s str, delimiter: &str) -> Vec<&'s str> {
        if delimiter.is_empty() {
            s.split(char::is_whitespace).collect()
        } else {
            s.split(delimiter).collect()
        }
    }
    let mut seen: std::collections::HashSet<&str> = tokens(a, delimiter).into_iter().collect();
    let mut out = a.to_string();
    for token in tokens(b, delimiter) {
        if !is_blank(token) && seen.insert(token) {
            out.push_str(delimiter);
            out.push_str(token);
        }
    }
    out
}

/// Largest unscaled value of DECIMAL(p, _), or `None` past i128.
fn decimal_bound(precision: u8) -> i128 {
    10i128.saturating_pow(u32::from(precision))
}

/// Divides rounding half away from zero (Java's `HALF_UP`).
fn div_half_up(n: i128, d: i128) -> Option<i128> {
    if d == 0 {
        return None;
    }
    let q = n.checked_div(d)?;
    let r = n.checked_rem(d)?;
    if r.checked_abs()?.checked_mul(2)? >= d.checked_abs()? {
        Some(if (n < 0) == (d < 0) { q + 1 } else { q - 1 })
    } else {
        Some(q)
    }
}

/// Arithmetic of `sum` and `product` (and their retractions) on column type `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

pub(crate) fn arith(
    t: &ArrowType,
    op: Arith,
    a: &Scalar,
    b: &Scalar,
    field: &str,
) -> Result<Scalar> {
    let overflow = || {
        EngineError::invalid(format!(
            "aggregating field '{field}': {a:?} {op:?} {b:?} overflows or divides by zero"
        ))
    };
    Ok(match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => {
            // Compute at the column's width so that wrapping matches Java.
            let bits = match t {
                ArrowType::Int8 => 8,
                ArrowType::Int16 => 16,
                ArrowType::Int32 => 32,
                _ => 64,
            };
            let r = match op {
                Arith::Add => x.wrapping_add(*y),
                Arith::Sub => x.wrapping_sub(*y),
                Arith::Mul => x.wrapping_mul(*y),
                Arith::Div => {
                    if *y == 0 {
                        return Err(overflow());
                    }
                    x.wrapping_div(*y)
                }
            };
            Scalar::Int(match bits {
                8 => i64::from(r as i8),
                16 => i64::from(r as i16),
                32 => i64::from(r as i32),
                _ => r,
            })
        }
        (Scalar::Float(x), Scalar::Float(y)) => {
            if *t == ArrowType::Float32 {
                let (x, y) = (*x as f32, *y as f32);
                Scalar::Float(f64::from(match op {
                    Arith::Add => x + y,
                    Arith::Sub => x - y,
                    Arith::Mul => x * y,
                    Arith::Div => x / y,
                }))
            } else {
                Scalar::Float(match op {
                    Arith::Add => x + y,
                    Arith::Sub => x - y,
                    Arith::Mul => x * y,
                    Arith::Div => x / y,
                })
            }
        }
        (Scalar::Decimal(x), Scalar::Decimal(y)) => {
            let (precision, scale) = match t {
                ArrowType::Decimal128(p, s) => (*p, (*s).max(0) as u32),
                _ => return Err(wrong(t, a)),
            };
            let unit = 10i128.checked_pow(scale).ok_or_else(overflow)?;
            let r = match op {
                Arith::Add => x.checked_add(*y),
                Arith::Sub => x.checked_sub(*y),
                Arith::Mul => x.checked_mul(*y).and_then(|m| div_half_up(m, unit)),
                Arith::Div => x.checked_mul(unit).and_then(|n| div_half_up(n, *y)),
            }
            .ok_or_else(overflow)?;
            // Paimon turns a result that does not fit the precision into NULL.
            if r.checked_abs()
                .is_none_or(|m| m >= decimal_bound(precision))
            {
                Scalar::Null
            } else {
                Scalar::Decimal(r)
            }
        }
        _ => return Err(wrong(t, a)),
    })
}

/// `-v`, for the retraction of a sum that has nothing to subtract from.
pub(crate) fn negate(t: &ArrowType, v: &Scalar, field: &str) -> Result<Scalar> {
    match v {
        Scalar::Null => Ok(Scalar::Null),
        Scalar::Int(_) => arith(t, Arith::Sub, &Scalar::Int(0), v, field),
        Scalar::Float(f) => Ok(Scalar::Float(-f)),
        Scalar::Decimal(d) => Ok(Scalar::Decimal(-d)),
        other => Err(wrong(t, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_wrap_at_their_width() {
        let t = ArrowType::Int8;
        let r = arith(&t, Arith::Add, &Scalar::Int(127), &Scalar::Int(1), "f").unwrap();
        assert_eq!(r, Scalar::Int(-128));
        assert!(arith(&t, Arith::Div, &Scalar::Int(1), &Scalar::Int(0), "f").is_err());
    }

    #[test]
    fn decimals_round_half_up_and_overflow_to_null() {
        let t = ArrowType::Decimal128(5, 2);
        // 1.25 * 1.10 = 1.375 -> 1.38
        let r = arith(
            &t,
            Arith::Mul,
            &Scalar::Decimal(125),
            &Scalar::Decimal(110),
            "f",
        )
        .unwrap();
        assert_eq!(r, Scalar::Decimal(138));
        let r = arith(
            &t,
            Arith::Add,
            &Scalar::Decimal(99_999),
            &Scalar::Decimal(1),
            "f",
        )
        .unwrap();
        assert_eq!(r, Scalar::Null);
        // 1.00 / 3.00 = 0.33
        let r = arith(
            &t,
            Arith::Div,
            &Scalar::Decimal(100),
            &Scalar::Decimal(300),
            "f",
        )
        .unwrap();
        assert_eq!(r, Scalar::Decimal(33));
    }

    #[test]
    fn listagg_distinct_adds_new_tokens_only() {
        assert_eq!(listagg("a,b", "b,c", ",", false), "a,b,b,c");
        assert_eq!(listagg("a,b", "b,c,,a,c", ",", true), "a,b,c");
        // The accumulator is never deduplicated, only what is added.
        assert_eq!(listagg("a,a", "a", ",", true), "a,a");
        assert!(is_blank(" \t") && is_blank("") && !is_blank(" a"));
    }

    #[test]
    fn read_and_build_round_trip() {
        let a: ArrayRef = Arc::new(Int16Array::from(vec![Some(3), None]));
        let v = vec![read(a.as_ref(), 0).unwrap(), read(a.as_ref(), 1).unwrap()];
        assert_eq!(v, vec![Scalar::Int(3), Scalar::Null]);
        let b = build(&ArrowType::Int16, &v).unwrap();
        assert_eq!(b.as_ref(), a.as_ref());
        let s = build(&ArrowType::Utf8, &[Scalar::Str("x".into())]).unwrap();
        assert_eq!(read(s.as_ref(), 0).unwrap(), Scalar::Str("x".into()));
    }
}
