//! Bound parameters of the extended protocol, in text or binary format, as
//! SQL literals put in place of `$1`, `$2`, ... Every value is validated
//! (numbers parsed, strings quoted), so a parameter can never become SQL.

use tidelake_sql::{ScalarValue, SqlError};

use pgwire::api::Type;

use crate::values::{date_text, decimal_text, float_text, time_text, timestamp_text};

const PG_EPOCH_DAYS: i64 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;

/// One parameter as the client sent it.
pub struct Param<'a> {
    pub value: Option<&'a [u8]>,
    pub binary: bool,
    /// The type the client declared (Parse), if any.
    pub pg_type: Option<&'a Type>,
}

fn invalid(what: &str, t: &Type) -> SqlError {
    SqlError::InvalidValue(format!(
        "invalid {} value for a parameter of type {}",
        what,
        t.name()
    ))
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn cast(literal: String, sql_type: &str) -> String {
    format!("CAST({literal} AS {sql_type})")
}

/// The SQL type a PostgreSQL type is cast to (`None`: left untyped).
fn sql_type(t: &Type) -> Option<&'static str> {
    Some(match *t {
        Type::BOOL => "BOOLEAN",
        Type::INT2 => "SMALLINT",
        Type::INT4 => "INT",
        Type::INT8 | Type::OID => "BIGINT",
        Type::FLOAT4 => "REAL",
        Type::FLOAT8 => "DOUBLE",
        Type::DATE => "DATE",
        Type::TIME => "TIME",
        Type::TIMESTAMP | Type::TIMESTAMPTZ => "TIMESTAMP",
        Type::BYTEA => "BYTEA",
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::JSONB => {
            "VARCHAR"
        }
        _ => return None,
    })
}

/// The literal of one parameter.
pub fn literal(p: &Param<'_>) -> Result<String, SqlError> {
    let t = p.pg_type.unwrap_or(&Type::UNKNOWN);
    let Some(bytes) = p.value else {
        return Ok(match sql_type(t) {
            Some(sql) => cast("NULL".into(), sql),
            None => "NULL".into(),
        });
    };
    if p.binary {
        binary_literal(bytes, t)
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("UTF-8", t))?;
        text_literal(text, t)
    }
}

fn text_literal(text: &str, t: &Type) -> Result<String, SqlError> {
    let trimmed = text.trim();
    match *t {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            let n: i64 = trimmed.parse().map_err(|_| {
                SqlError::InvalidValue(format!(
                    "invalid input syntax for type {}: \"{text}\"",
                    t.name()
                ))
            })?;
            Ok(cast(n.to_string(), sql_type(t).unwrap_or("BIGINT")))
        }
        Type::FLOAT4 | Type::FLOAT8 => {
            let v: f64 = trimmed.parse().map_err(|_| {
                SqlError::InvalidValue(format!(
                    "invalid input syntax for type {}: \"{text}\"",
                    t.name()
                ))
            })?;
            Ok(cast(quote(&float_text(v)), sql_type(t).unwrap_or("DOUBLE")))
        }
        Type::NUMERIC => numeric_literal(trimmed),
        Type::BOOL => match trimmed.to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" => Ok("TRUE".into()),
            "f" | "false" | "no" | "off" | "0" => Ok("FALSE".into()),
            _ => Err(SqlError::InvalidValue(format!(
                "invalid input syntax for type boolean: \"{text}\""
            ))),
        },
        Type::BYTEA => match trimmed.strip_prefix("\\x") {
            Some(hex) if hex.chars().all(|c| c.is_ascii_hexdigit()) => Ok(format!("X'{hex}'")),
            _ => Ok(cast(quote(text), "BYTEA")),
        },
        _ => Ok(match sql_type(t) {
            Some(sql) if sql != "VARCHAR" => cast(quote(text), sql),
            _ => quote(text),
        }),
    }
}

/// The value of one parameter, for a prepared point query (see
/// `tidelake_sql::PreparedPoint`), for the types a key is looked up by:
/// integers, booleans and text (also untyped text). `None` for anything
/// else, for NULL and for a value that does not parse: the statement then
/// runs with [`literal`]s in place, which answers or reports it.
pub fn scalar(p: &Param<'_>) -> Option<ScalarValue> {
    let t = p.pg_type.unwrap_or(&Type::UNKNOWN);
    let bytes = p.value?;
    if p.binary {
        return Some(match *t {
            Type::INT2 => ScalarValue::Int16(Some(i16::from_be_bytes(bytes.try_into().ok()?))),
            Type::INT4 => ScalarValue::Int32(Some(i32::from_be_bytes(bytes.try_into().ok()?))),
            Type::INT8 => ScalarValue::Int64(Some(i64::from_be_bytes(bytes.try_into().ok()?))),
            Type::BOOL => ScalarValue::Boolean(Some(*bytes.first()? != 0)),
            _ if is_text(t) => ScalarValue::Utf8(Some(std::str::from_utf8(bytes).ok()?.into())),
            _ => return None,
        });
    }
    let text = std::str::from_utf8(bytes).ok()?;
    Some(match *t {
        Type::INT2 => ScalarValue::Int16(Some(text.trim().parse().ok()?)),
        Type::INT4 => ScalarValue::Int32(Some(text.trim().parse().ok()?)),
        Type::INT8 => ScalarValue::Int64(Some(text.trim().parse().ok()?)),
        _ if is_text(t) => ScalarValue::Utf8(Some(text.to_string())),
        _ => return None,
    })
}

/// Types whose values are plain text (untyped parameters arrive as text).
fn is_text(t: &Type) -> bool {
    matches!(
        *t,
        Type::UNKNOWN | Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME
    )
}

/// A numeric literal: digits only, so `12.50` stays an exact decimal.
fn numeric_literal(text: &str) -> Result<String, SqlError> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let valid = !body.is_empty()
        && body.chars().filter(|c| *c == '.').count() <= 1
        && body.chars().all(|c| c.is_ascii_digit() || c == '.')
        && body.chars().any(|c| c.is_ascii_digit());
    if valid {
        Ok(if text.starts_with('-') {
            format!("-{body}")
        } else {
            body.to_string()
        })
    } else {
        Err(SqlError::InvalidValue(format!(
            "invalid input syntax for type numeric: \"{text}\""
        )))
    }
}

fn fixed<const N: usize>(bytes: &[u8], t: &Type) -> Result<[u8; N], SqlError> {
    bytes.try_into().map_err(|_| invalid("binary", t))
}

fn binary_literal(bytes: &[u8], t: &Type) -> Result<String, SqlError> {
    let typed = |text: String| cast(text, sql_type(t).unwrap_or("VARCHAR"));
    Ok(match *t {
        Type::BOOL => match bytes {
            [0] => "FALSE".into(),
            [_] => "TRUE".into(),
            _ => return Err(invalid("binary", t)),
        },
        Type::INT2 => typed(i16::from_be_bytes(fixed(bytes, t)?).to_string()),
        Type::INT4 => typed(i32::from_be_bytes(fixed(bytes, t)?).to_string()),
        Type::INT8 => typed(i64::from_be_bytes(fixed(bytes, t)?).to_string()),
        Type::OID => typed(u32::from_be_bytes(fixed(bytes, t)?).to_string()),
        Type::FLOAT4 => typed(quote(&float_text(f64::from(f32::from_be_bytes(fixed(
            bytes, t,
        )?))))),
        Type::FLOAT8 => typed(quote(&float_text(f64::from_be_bytes(fixed(bytes, t)?)))),
        Type::NUMERIC => numeric_literal(&numeric_from_binary(bytes)?)?,
        Type::DATE => {
            let days = i64::from(i32::from_be_bytes(fixed(bytes, t)?)) + PG_EPOCH_DAYS;
            typed(quote(&date_text(days)))
        }
        Type::TIME => typed(quote(&time_text(i64::from_be_bytes(fixed(bytes, t)?)))),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(fixed(bytes, t)?).saturating_add(PG_EPOCH_MICROS);
            typed(quote(&timestamp_text(micros)))
        }
        Type::BYTEA => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("X'{hex}'")
        }
        Type::UUID => {
            let b: [u8; 16] = fixed(bytes, t)?;
            let hex: String = b.iter().map(|b| format!("{b:02x}")).collect();
            quote(&format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        Type::JSONB => {
            let text = std::str::from_utf8(bytes.get(1..).unwrap_or_default())
                .map_err(|_| invalid("UTF-8", t))?;
            quote(text)
        }
        _ => {
            // Text-like types (and unknown) send their text as the binary form.
            let text = std::str::from_utf8(bytes).map_err(|_| invalid("UTF-8", t))?;
            text_literal(text, t)?
        }
    })
}

/// The text of a binary numeric.
fn numeric_from_binary(bytes: &[u8]) -> Result<String, SqlError> {
    let bad = || SqlError::InvalidValue("invalid binary numeric parameter".into());
    let word = |i: usize| -> Result<i16, SqlError> {
        bytes
            .get(i * 2..i * 2 + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(bad)
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Err(SqlError::InvalidValue(
            "NaN is not a supported numeric value".into(),
        ));
    }
    let ndigits = usize::try_from(ndigits).map_err(|_| bad())?;
    let dscale = usize::try_from(dscale).map_err(|_| bad())?;
    // All digits as one integer string, then placed by the weight.
    let mut digits = String::new();
    for i in 0..ndigits {
        digits.push_str(&format!("{:04}", word(4 + i)?));
    }
    // The value is 0.digits * 10000^(weight + 1).
    let point = (i64::from(weight) + 1) * 4;
    let mut unscaled = String::new();
    let total = point + dscale as i64;
    for i in 0..total.max(0) {
        unscaled.push(
            digits
                .as_bytes()
                .get(i as usize)
                .map(|b| *b as char)
                .unwrap_or('0'),
        );
    }
    let unscaled = unscaled.trim_start_matches('0');
    let unscaled = if unscaled.is_empty() { "0" } else { unscaled };
    let text = decimal_text(unscaled, dscale as i8);
    Ok(if sign == 0x4000 {
        format!("-{text}")
    } else {
        text
    })
}

/// Replaces `$n` placeholders outside quotes and comments with the
/// literals; a placeholder without a parameter is an error.
pub fn substitute(sql: &str, literals: &[String]) -> Result<String, SqlError> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => i = skip_quoted(b, i, b'\''),
            b'"' => i = skip_quoted(b, i, b'"'),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(b.len(), |p| i + p)
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2)
            }
            b'$' => {
                let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                let before_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                if digits > 0 && !before_ident {
                    let n: usize = sql[i + 1..i + 1 + digits].parse().unwrap_or(0);
                    let value =
                        n.checked_sub(1)
                            .and_then(|k| literals.get(k))
                            .ok_or_else(|| {
                                SqlError::InvalidParameter(format!(
                                    "there is no parameter ${n} ({} given)",
                                    literals.len()
                                ))
                            })?;
                    out.push_str(&sql[copied..i]);
                    out.push_str(value);
                    i += 1 + digits;
                    copied = i;
                } else if let Some(end) = dollar_quote_end(sql, i) {
                    i = end;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// The statement with JDBC/ODBC-style `?` placeholders (outside quotes
/// and comments) numbered `$1`, `$2`, ... in order; a statement that
/// already uses `$n` is returned as it is.
pub fn number_question_marks(sql: &str) -> String {
    if count(sql) > 0 {
        return sql.to_string();
    }
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut i, mut copied, mut n) = (0, 0, 0);
    while i < b.len() {
        match b[i] {
            b'\'' => i = skip_quoted(b, i, b'\''),
            b'"' => i = skip_quoted(b, i, b'"'),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(b.len(), |p| i + p)
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2)
            }
            b'$' => i = dollar_quote_end(sql, i).unwrap_or(i + 1),
            b'?' => {
                n += 1;
                out.push_str(&sql[copied..i]);
                out.push_str(&format!("${n}"));
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// The number of parameters a statement refers to (its highest `$n`).
pub fn count(sql: &str) -> usize {
    let mut max = 0;
    // Substituting markers that record their number finds the placeholders
    // exactly where `substitute` would.
    let markers: Vec<String> = (1..=64).map(|n| format!("\u{1}{n}\u{1}")).collect();
    if let Ok(marked) = substitute(sql, &markers) {
        for part in marked.split('\u{1}').skip(1).step_by(2) {
            max = max.max(part.parse().unwrap_or(0));
        }
    }
    max
}

fn skip_quoted(b: &[u8], start: usize, quote: u8) -> usize {
    let escapes = quote == b'\'' && start > 0 && matches!(b[start - 1], b'e' | b'E');
    let mut i = start + 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// The end of a `$tag$ ... $tag$` string starting at `start`, if it is one.
fn dollar_quote_end(sql: &str, start: usize) -> Option<usize> {
    let rest = &sql[start + 1..];
    let tag_len = rest.find('$')?;
    let tag = &rest[..tag_len];
    if !tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let delimiter = format!("${tag}$");
    let body = start + delimiter.len();
    sql[body..]
        .find(&delimiter)
        .map(|p| body + p + delimiter.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str, t: &Type) -> String {
        literal(&Param {
            value: Some(value.as_bytes()),
            binary: false,
            pg_type: Some(t),
        })
        .unwrap()
    }

    #[test]
    fn key_parameters_become_values_and_the_rest_declines() {
        let param = |value: Option<&'static [u8]>, binary: bool, t: &'static Type| {
            scalar(&Param {
                value,
                binary,
                pg_type: Some(t),
            })
        };
        assert_eq!(
            param(Some(b" 42"), false, &Type::INT8),
            Some(ScalarValue::Int64(Some(42)))
        );
        assert_eq!(
            param(Some(&[0, 0, 0, 7]), true, &Type::INT4),
            Some(ScalarValue::Int32(Some(7)))
        );
        assert_eq!(
            param(Some(b"d'1"), false, &Type::UNKNOWN),
            Some(ScalarValue::Utf8(Some("d'1".into())))
        );
        assert_eq!(
            param(Some(b"abc"), true, &Type::TEXT),
            Some(ScalarValue::Utf8(Some("abc".into())))
        );
        // NULL, values that do not parse and other types run the normal way.
        assert_eq!(param(None, false, &Type::INT8), None);
        assert_eq!(param(Some(b"70000"), false, &Type::INT2), None);
        assert_eq!(param(Some(&[0, 1]), true, &Type::INT8), None);
        assert_eq!(param(Some(b"2024-01-01"), false, &Type::DATE), None);
        assert_eq!(param(Some(b"1.5"), false, &Type::FLOAT8), None);
    }

    #[test]
    fn placeholders_outside_quotes_are_replaced() {
        let sql = "SELECT '$1', \"$2\", $1 -- $2\n, $2 /* $1 */, $$ $1 $$";
        let out = substitute(sql, &["10".into(), "'x'".into()]).unwrap();
        assert_eq!(
            out,
            "SELECT '$1', \"$2\", 10 -- $2\n, 'x' /* $1 */, $$ $1 $$"
        );
        assert_eq!(count("SELECT $1 + $3"), 3);
        assert!(substitute("SELECT $2", &["1".into()]).is_err());
        assert_eq!(
            number_question_marks("SELECT ?, '?', \"?\" -- ?\n, ?"),
            "SELECT $1, '?', \"?\" -- ?\n, $2"
        );
        assert_eq!(number_question_marks("SELECT $1, ?"), "SELECT $1, ?");
    }

    #[test]
    fn parameters_never_become_sql() {
        assert_eq!(text("it's", &Type::TEXT), "'it''s'");
        assert!(literal(&Param {
            value: Some(b"1; DROP TABLE t"),
            binary: false,
            pg_type: Some(&Type::INT8),
        })
        .is_err());
        assert!(numeric_literal("1e5; x").is_err());
        assert_eq!(text("-12.50", &Type::NUMERIC), "-12.50");
    }

    #[test]
    fn binary_parameters_decode() {
        let p = |bytes: &[u8], t: &Type| {
            literal(&Param {
                value: Some(bytes),
                binary: true,
                pg_type: Some(t),
            })
            .unwrap()
        };
        assert_eq!(p(&42i64.to_be_bytes(), &Type::INT8), "CAST(42 AS BIGINT)");
        assert_eq!(p(&[1], &Type::BOOL), "TRUE");
        // 12.50: ndigits 2, weight 0, sign 0, dscale 2, digits 12 5000
        let numeric: Vec<u8> = [2i16, 0, 0, 2, 12, 5000]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(p(&numeric, &Type::NUMERIC), "12.50");
        let small: Vec<u8> = [1i16, -1, 0x4000, 4, 1]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(p(&small, &Type::NUMERIC), "-0.0001");
        assert_eq!(
            p(&0i32.to_be_bytes(), &Type::DATE),
            "CAST('2000-01-01' AS DATE)"
        );
    }
}
