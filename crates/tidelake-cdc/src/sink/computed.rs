//! `--computed-column 'name=function(args)'`: a subset of Paimon's computed
//! columns (year, month, day, hour, minute, second, date_format, substring,
//! upper, lower, cast); any other function is refused by name.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use tidelake_format::types::{DataType, DataTypeKind};

use crate::error::{CdcError, Result};
use crate::event::CdcValue;
use crate::values::{parse_text, render_text};

/// What a computed column computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Function {
    /// year .. second of a DATE or TIMESTAMP column (INT).
    Part(TimePart),
    /// `date_format(col, 'yyyy-MM-dd')` with Java's pattern letters.
    DateFormat(String),
    /// `substring(col, begin[, end])`: characters `[begin, end)`.
    Substring(usize, Option<usize>),
    Upper,
    Lower,
    /// `cast(value, TYPE)`: a constant, as Paimon's `cast`.
    Cast(CdcValue, DataType),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePart {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// One `--computed-column`.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputedColumn {
    pub name: String,
    /// The source column it reads (none for `cast`).
    pub column: Option<String>,
    pub function: Function,
}

impl ComputedColumn {
    /// Parses `name=function(arg, ...)`.
    pub fn parse(text: &str) -> Result<ComputedColumn> {
        let bad = |why: &str| CdcError::config(format!("--computed-column '{text}': {why}"));
        let (name, call) = text
            .split_once('=')
            .ok_or_else(|| bad("expected name=function(args)"))?;
        let call = call.trim();
        let open = call
            .find('(')
            .ok_or_else(|| bad("expected function(args)"))?;
        if !call.ends_with(')') {
            return Err(bad("expected function(args)"));
        }
        let function = call[..open].trim().to_ascii_lowercase();
        let args: Vec<String> = call[open + 1..call.len() - 1]
            .split(',')
            .map(|a| a.trim().trim_matches('\'').trim_matches('"').to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let arg = |i: usize| {
            args.get(i)
                .cloned()
                .ok_or_else(|| bad(&format!("{function} needs argument {}", i + 1)))
        };
        let number = |i: usize| -> Result<usize> {
            arg(i)?.parse::<usize>().map_err(|_| {
                bad(&format!(
                    "argument {} of {function} must be a number",
                    i + 1
                ))
            })
        };
        let part = |p: TimePart| -> Result<(Option<String>, Function)> {
            Ok((Some(arg(0)?), Function::Part(p)))
        };
        let (column, function) = match function.as_str() {
            "year" => part(TimePart::Year)?,
            "month" => part(TimePart::Month)?,
            "day" => part(TimePart::Day)?,
            "hour" => part(TimePart::Hour)?,
            "minute" => part(TimePart::Minute)?,
            "second" => part(TimePart::Second)?,
            "date_format" => (
                Some(arg(0)?),
                Function::DateFormat(java_to_chrono(&arg(1)?)),
            ),
            "substring" => {
                let end = if args.len() > 2 { Some(number(2)?) } else { None };
                (Some(arg(0)?), Function::Substring(number(1)?, end))
            }
            "upper" => (Some(arg(0)?), Function::Upper),
            "lower" => (Some(arg(0)?), Function::Lower),
            "cast" => {
                let data_type = DataType::parse_sql(&arg(1)?)
                    .map_err(|e| bad(&format!("type '{}': {e}", arg(1).unwrap_or_default())))?;
                let value = parse_text(&arg(0)?, &data_type)
                    .map_err(|e| bad(&format!("cannot cast: {e}")))?;
                (None, Function::Cast(value, data_type))
            }
            other => {
                return Err(bad(&format!(
                    "function '{other}' is not supported (use year, month, day, hour, minute, second, date_format, substring, upper, lower or cast)"
                )))
            }
        };
        Ok(ComputedColumn {
            name: name.trim().to_string(),
            column,
            function,
        })
    }

    /// The column's type given its input column's type.
    pub fn data_type(&self, input: Option<&DataType>) -> Result<DataType> {
        let check_time = || match input.map(|t| &t.kind) {
            Some(
                DataTypeKind::Date | DataTypeKind::Timestamp(_) | DataTypeKind::TimestampLtz(_),
            ) => Ok(()),
            _ => Err(CdcError::config(format!(
                "computed column '{}': its input must be a DATE or TIMESTAMP column",
                self.name
            ))),
        };
        Ok(match &self.function {
            Function::Part(_) => {
                check_time()?;
                DataType::new(DataTypeKind::Int, true)
            }
            Function::DateFormat(_) => {
                check_time()?;
                DataType::string()
            }
            Function::Substring(..) | Function::Upper | Function::Lower => DataType::string(),
            Function::Cast(_, t) => t.with_nullable(true),
        })
    }

    /// The value for a row whose input column holds `input`.
    pub fn eval(&self, input: &CdcValue) -> CdcValue {
        match &self.function {
            Function::Cast(value, _) => value.clone(),
            Function::Part(part) => match micros_of(input) {
                Some(micros) => time_part(micros, *part),
                None => CdcValue::Null,
            },
            Function::DateFormat(format) => match micros_of(input) {
                Some(micros) => DateTime::from_timestamp_micros(micros)
                    .map(|t| CdcValue::String(t.naive_utc().format(format).to_string()))
                    .unwrap_or(CdcValue::Null),
                None => CdcValue::Null,
            },
            Function::Substring(begin, end) => match text_of(input) {
                Some(text) => {
                    let chars = text.chars().skip(*begin);
                    CdcValue::String(match end {
                        Some(end) => chars.take(end.saturating_sub(*begin)).collect(),
                        None => chars.collect(),
                    })
                }
                None => CdcValue::Null,
            },
            Function::Upper => {
                text_of(input).map_or(CdcValue::Null, |t| CdcValue::String(t.to_uppercase()))
            }
            Function::Lower => {
                text_of(input).map_or(CdcValue::Null, |t| CdcValue::String(t.to_lowercase()))
            }
        }
    }
}

fn text_of(value: &CdcValue) -> Option<String> {
    match value {
        CdcValue::Null | CdcValue::Unchanged => None,
        CdcValue::String(s) => Some(s.clone()),
        other => Some(render_text(other)),
    }
}

/// A date or timestamp as microseconds since the epoch.
fn micros_of(value: &CdcValue) -> Option<i64> {
    match value {
        CdcValue::Date(days) => Some(*days as i64 * 86_400_000_000),
        CdcValue::Timestamp(m) | CdcValue::TimestampUtc(m) => Some(*m),
        _ => None,
    }
}

fn time_part(micros: i64, part: TimePart) -> CdcValue {
    let Some(t) = DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc()) else {
        return CdcValue::Null;
    };
    let date: NaiveDate = t.date();
    CdcValue::Int(match part {
        TimePart::Year => date.year() as i64,
        TimePart::Month => date.month() as i64,
        TimePart::Day => date.day() as i64,
        TimePart::Hour => t.hour() as i64,
        TimePart::Minute => t.minute() as i64,
        TimePart::Second => t.second() as i64,
    })
}

/// Java's `SimpleDateFormat` letters (the common ones) as chrono's.
fn java_to_chrono(pattern: &str) -> String {
    const TOKENS: &[(&str, &str)] = &[
        ("yyyy", "%Y"),
        ("yy", "%y"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSSSSS", "%6f"),
        ("SSS", "%3f"),
    ];
    let mut out = String::new();
    let mut rest = pattern;
    'outer: while !rest.is_empty() {
        for (java, chrono) in TOKENS {
            if let Some(after) = rest.strip_prefix(java) {
                out.push_str(chrono);
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_columns_compute() {
        let ts = CdcValue::Timestamp(1_700_000_000_123_456); // 2023-11-14 22:13:20.123456
        let c = ComputedColumn::parse("dt=date_format(ts, 'yyyy-MM-dd')").unwrap();
        assert_eq!(c.column.as_deref(), Some("ts"));
        assert_eq!(c.eval(&ts), CdcValue::String("2023-11-14".into()));
        let y = ComputedColumn::parse("y=year(ts)").unwrap();
        assert_eq!(y.eval(&ts), CdcValue::Int(2023));
        assert_eq!(
            ComputedColumn::parse("h=hour(ts)").unwrap().eval(&ts),
            CdcValue::Int(22)
        );
        let s = ComputedColumn::parse("p=substring(name, 1, 3)").unwrap();
        assert_eq!(
            s.eval(&CdcValue::String("abcdef".into())),
            CdcValue::String("bc".into())
        );
        let u = ComputedColumn::parse("u=upper(name)").unwrap();
        assert_eq!(
            u.eval(&CdcValue::String("ab".into())),
            CdcValue::String("AB".into())
        );
        let k = ComputedColumn::parse("k=cast(7, INT)").unwrap();
        assert_eq!(k.eval(&CdcValue::Null), CdcValue::Int(7));
        assert_eq!(y.eval(&CdcValue::Null), CdcValue::Null);
        let err = ComputedColumn::parse("t=truncate(x, 10)")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'truncate' is not supported"), "{err}");
    }
}
