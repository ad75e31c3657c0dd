//! PostgreSQL types to Paimon types (Paimon's default mapping for its
//! PostgreSQL CDC source), by type OID and type modifier as both the
//! catalog and pgoutput's Relation messages give them.

use tidelake_format::types::{DataType, DataTypeKind, MAX_DECIMAL_PRECISION, MAX_LENGTH};

use crate::event::CdcValue;
use crate::values::parse_text;

/// Built-in type OIDs (`pg_type.oid`, stable across versions).
pub(crate) mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const BIT: u32 = 1560;
    pub const NUMERIC: u32 = 1700;
}

/// The element type OID of a built-in array type.
fn array_element(type_oid: u32) -> Option<u32> {
    Some(match type_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1016 => oid::INT8,
        1009 => oid::TEXT,
        1014 => oid::BPCHAR,
        1015 => oid::VARCHAR,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1182 => oid::DATE,
        1183 => oid::TIME,
        1115 => oid::TIMESTAMP,
        1185 => oid::TIMESTAMPTZ,
        1231 => oid::NUMERIC,
        // uuid[], json[], jsonb[]: arrays of strings.
        2951 | 199 | 3807 => oid::TEXT,
        _ => return None,
    })
}

/// A PostgreSQL column type: its OID, modifier and name (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgType {
    pub oid: u32,
    pub modifier: i32,
    pub name: String,
}

/// Paimon's type for a PostgreSQL column type (nullable; the caller sets
/// NOT NULL). Types without a Paimon counterpart (json, uuid, interval,
/// enums, ...) become STRING, numeric beyond 38 digits too.
pub fn paimon_type(type_oid: u32, modifier: i32) -> DataType {
    if let Some(element) = array_element(type_oid) {
        // The modifier of an array column is its elements'.
        let element = paimon_type(element, modifier);
        return DataType::new(DataTypeKind::Array(Box::new(element)), true);
    }
    let kind = match type_oid {
        oid::BOOL => DataTypeKind::Boolean,
        oid::INT2 => DataTypeKind::SmallInt,
        oid::INT4 => DataTypeKind::Int,
        oid::INT8 | oid::OID => DataTypeKind::BigInt,
        oid::FLOAT4 => DataTypeKind::Float,
        oid::FLOAT8 => DataTypeKind::Double,
        oid::NUMERIC => match numeric_precision(modifier) {
            Some((p, s)) if p <= MAX_DECIMAL_PRECISION => DataTypeKind::Decimal {
                precision: p,
                scale: s,
            },
            Some(_) => DataTypeKind::VarChar(MAX_LENGTH),
            // Unconstrained NUMERIC: Paimon's DECIMAL(38, 18).
            None => DataTypeKind::Decimal {
                precision: MAX_DECIMAL_PRECISION,
                scale: 18,
            },
        },
        oid::BPCHAR if modifier > 4 => DataTypeKind::Char((modifier - 4) as u32),
        oid::VARCHAR if modifier > 4 => DataTypeKind::VarChar((modifier - 4) as u32),
        oid::CHAR => DataTypeKind::Char(1),
        oid::BYTEA => DataTypeKind::VarBinary(MAX_LENGTH),
        oid::DATE => DataTypeKind::Date,
        oid::TIME => DataTypeKind::Time(precision(modifier)),
        oid::TIMESTAMP => DataTypeKind::Timestamp(precision(modifier)),
        oid::TIMESTAMPTZ => DataTypeKind::TimestampLtz(precision(modifier)),
        oid::BIT if modifier == 1 => DataTypeKind::Boolean,
        oid::TEXT | oid::NAME | oid::BPCHAR | oid::VARCHAR => DataTypeKind::VarChar(MAX_LENGTH),
        _ => DataTypeKind::VarChar(MAX_LENGTH),
    };
    DataType::new(kind, true)
}

fn numeric_precision(modifier: i32) -> Option<(u32, u32)> {
    if modifier < 4 {
        return None;
    }
    let m = modifier - 4;
    Some((((m >> 16) & 0xffff) as u32, (m & 0xffff) as u32))
}

fn precision(modifier: i32) -> u32 {
    if modifier < 0 {
        6
    } else {
        modifier as u32
    }
}

/// A value in PostgreSQL's text output as a value of `data_type`.
pub fn parse_value(text: &str, data_type: &DataType) -> Result<CdcValue, String> {
    // bit(1) is written 0/1, which parse_text reads as a boolean.
    parse_text(text, data_type)
}

/// The golden list: every PostgreSQL type the CDC source maps, its
/// Paimon type, and a value in PostgreSQL's text form read as it. The
/// integration test `postgres::types_golden` checks the same list
/// against a live server.
pub const GOLDEN: &[(&str, u32, i32, &str, &str)] = &[
    // (PostgreSQL type, oid, typmod, Paimon type, text value)
    ("boolean", 16, -1, "BOOLEAN", "t"),
    ("smallint", 21, -1, "SMALLINT", "-32768"),
    ("integer", 23, -1, "INT", "2147483647"),
    ("bigint", 20, -1, "BIGINT", "-9223372036854775808"),
    ("real", 700, -1, "FLOAT", "1.5"),
    ("double precision", 701, -1, "DOUBLE", "NaN"),
    (
        "numeric(10,2)",
        1700,
        (10 << 16 | 2) + 4,
        "DECIMAL(10, 2)",
        "12345678.90",
    ),
    (
        "numeric(38,0)",
        1700,
        (38 << 16) + 4,
        "DECIMAL(38, 0)",
        "12345678901234567890123456789012345678",
    ),
    (
        "numeric(50,5)",
        1700,
        (50 << 16 | 5) + 4,
        "STRING",
        "123456789012345678901234567890123456789012345.12345",
    ),
    ("numeric", 1700, -1, "DECIMAL(38, 18)", "3.14"),
    ("char(3)", 1042, 7, "CHAR(3)", "ab "),
    ("varchar(20)", 1043, 24, "VARCHAR(20)", "hello"),
    ("varchar", 1043, -1, "STRING", "unbounded"),
    ("text", 25, -1, "STRING", "some text"),
    ("bytea", 17, -1, "BYTES", "\\xdeadbeef"),
    ("date", 1082, -1, "DATE", "2024-02-29"),
    ("time", 1083, -1, "TIME(6)", "12:34:56.789"),
    (
        "timestamp(3)",
        1114,
        3,
        "TIMESTAMP(3)",
        "2024-02-29 12:34:56.789",
    ),
    (
        "timestamp",
        1114,
        -1,
        "TIMESTAMP(6)",
        "2024-02-29 12:34:56.123456",
    ),
    (
        "timestamptz",
        1184,
        -1,
        "TIMESTAMP(6) WITH LOCAL TIME ZONE",
        "2024-02-29 12:34:56.123456+00",
    ),
    ("json", 114, -1, "STRING", "{\"a\": 1}"),
    ("jsonb", 3802, -1, "STRING", "{\"a\": 1}"),
    (
        "uuid",
        2950,
        -1,
        "STRING",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ),
    ("interval", 1186, -1, "STRING", "1 day 02:00:00"),
    ("bit(1)", 1560, 1, "BOOLEAN", "1"),
    ("integer[]", 1007, -1, "ARRAY<INT>", "{1,2,NULL}"),
    ("text[]", 1009, -1, "ARRAY<STRING>", "{a,\"b c\"}"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_types_map_and_parse() {
        for (pg, oid, typmod, paimon, text) in GOLDEN {
            let t = paimon_type(*oid, *typmod);
            assert_eq!(t.to_string(), *paimon, "{pg}");
            let value = parse_value(text, &t);
            assert!(
                matches!(value, Ok(ref v) if *v != CdcValue::Null),
                "{pg}: {value:?}"
            );
        }
    }
}
