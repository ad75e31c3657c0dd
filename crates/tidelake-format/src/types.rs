//! Paimon data types: the type tree, its JSON form in schema files
//! (`"BIGINT NOT NULL"`, `{"type": "ARRAY", ...}`), its SQL spelling, and its
//! Arrow equivalent.
//!
//! Spellings follow Paimon's Java `DataType#asSQLString` (which is also what
//! the schema JSON holds for atomic types): `STRING` and `BYTES` for the
//! maximal VARCHAR/VARBINARY, `DECIMAL(p, s)` with a space, `TIME(p)`,
//! `TIMESTAMP(p)`, `TIMESTAMP(p) WITH LOCAL TIME ZONE`. The parser accepts
//! every spelling Paimon's own parser accepts (`VARCHAR(2147483647)`,
//! `INTEGER`, `TIMESTAMP_LTZ(6)` as pypaimon writes it, ...).

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType as ArrowType, Field, Fields, TimeUnit};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::{FormatError, Result};

/// A Paimon data type with its nullability.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DataType {
    pub kind: DataTypeKind,
    pub nullable: bool,
}

/// The kinds of Paimon types. Lengths and precisions are as Paimon spells
/// them: `VarChar(2147483647)` is STRING, `VarBinary(2147483647)` is BYTES.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DataTypeKind {
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    /// DECIMAL(p, s): 1 <= p <= 38, 0 <= s <= p.
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// CHAR(n), fixed length.
    Char(u32),
    /// VARCHAR(n); `VarChar(MAX_LENGTH)` is STRING.
    VarChar(u32),
    /// BINARY(n), fixed length.
    Binary(u32),
    /// VARBINARY(n); `VarBinary(MAX_LENGTH)` is BYTES.
    VarBinary(u32),
    /// Days since 1970-01-01.
    Date,
    /// TIME(p): milliseconds of the day (Paimon stores an int).
    Time(u32),
    /// TIMESTAMP(p) without time zone.
    Timestamp(u32),
    /// TIMESTAMP(p) WITH LOCAL TIME ZONE.
    TimestampLtz(u32),
    Array(Box<DataType>),
    Multiset(Box<DataType>),
    /// MAP<key, value>.
    Map(Box<DataType>, Box<DataType>),
    Row(Vec<DataField>),
}

/// A named field with Paimon's stable field id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DataField {
    pub id: i32,
    pub name: String,
    pub data_type: DataType,
    pub description: Option<String>,
}

/// The length Paimon uses for STRING and BYTES.
pub const MAX_LENGTH: u32 = i32::MAX as u32;

/// Highest DECIMAL precision Paimon allows.
pub const MAX_DECIMAL_PRECISION: u32 = 38;

/// Highest TIME/TIMESTAMP precision Paimon allows.
pub const MAX_TIME_PRECISION: u32 = 9;

/// Name of the element field of an Arrow list, as Paimon's Parquet schema
/// (and the Parquet spec) names it.
pub const ARROW_LIST_ELEMENT: &str = "element";

/// Name of the entries field of an Arrow map, as Paimon's Parquet schema
/// names the repeated group.
pub const ARROW_MAP_ENTRIES: &str = "key_value";

/// Names of the key and value fields inside [`ARROW_MAP_ENTRIES`].
pub const ARROW_MAP_KEY: &str = "key";
pub const ARROW_MAP_VALUE: &str = "value";

impl DataType {
    pub fn new(kind: DataTypeKind, nullable: bool) -> Self {
        DataType { kind, nullable }
    }

    /// STRING, nullable.
    pub fn string() -> Self {
        DataType::new(DataTypeKind::VarChar(MAX_LENGTH), true)
    }

    pub fn with_nullable(&self, nullable: bool) -> Self {
        DataType {
            kind: self.kind.clone(),
            nullable,
        }
    }

    pub fn is_nullable(&self) -> bool {
        self.nullable
    }

    /// CHAR, VARCHAR and STRING.
    pub fn is_string_like(&self) -> bool {
        matches!(self.kind, DataTypeKind::Char(_) | DataTypeKind::VarChar(_))
    }

    /// Integers, FLOAT, DOUBLE and DECIMAL.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self.kind,
            DataTypeKind::TinyInt
                | DataTypeKind::SmallInt
                | DataTypeKind::Int
                | DataTypeKind::BigInt
                | DataTypeKind::Float
                | DataTypeKind::Double
                | DataTypeKind::Decimal { .. }
        )
    }

    /// The type in Paimon's schema-file JSON form: a string for atomic types,
    /// an object for ARRAY, MULTISET, MAP and ROW.
    pub fn to_json(&self) -> Value {
        // Serializing our own tree into a Value cannot fail (no non-string
        // map keys, no non-finite floats).
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses a type from its schema-file JSON form.
    pub fn parse_json(json: &Value) -> Result<DataType> {
        match json {
            Value::String(text) => DataType::parse_sql(text),
            Value::Object(object) => {
                let invalid =
                    |problem: String| FormatError::InvalidType(format!("{json}: {problem}"));
                let type_text = (object.get("type").and_then(Value::as_str))
                    .ok_or_else(|| invalid("missing string \"type\"".into()))?;
                let upper = type_text.to_ascii_uppercase();
                let head = upper
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next();
                let head = head.unwrap_or_default();
                let child = |key: &str| -> Result<DataType> {
                    let value = object
                        .get(key)
                        .ok_or_else(|| invalid(format!("{head} lacks \"{key}\"")))?;
                    DataType::parse_json(value)
                };
                let kind = match head {
                    "ARRAY" => DataTypeKind::Array(Box::new(child("element")?)),
                    "MULTISET" => DataTypeKind::Multiset(Box::new(child("element")?)),
                    "MAP" => DataTypeKind::Map(Box::new(child("key")?), Box::new(child("value")?)),
                    "ROW" => {
                        let fields = (object.get("fields").and_then(Value::as_array))
                            .ok_or_else(|| invalid("ROW lacks a \"fields\" array".into()))?;
                        let fields = fields.iter().map(DataField::parse_json);
                        DataTypeKind::Row(fields.collect::<Result<_>>()?)
                    }
                    // Atomic types written as objects are not something Paimon
                    // produces, but the type string alone is unambiguous.
                    _ => return DataType::parse_sql(type_text),
                };
                Ok(DataType::new(kind, !upper.contains("NOT NULL")))
            }
            other => Err(FormatError::InvalidType(format!(
                "{other}: expected a type string or object"
            ))),
        }
    }

    /// Parses a type as a user writes it in CREATE TABLE (case-insensitive),
    /// e.g. `DECIMAL(12, 2) NOT NULL`, `MAP<STRING, ARRAY<INT>>`,
    /// `ROW<name STRING, age INT>`. Fields of nested ROWs are numbered from 0
    /// in order of appearance; the catalog assigns the real ids.
    pub fn parse_sql(text: &str) -> Result<DataType> {
        let tokens = tokenize(text)?;
        let mut parser = TypeParser {
            text,
            tokens,
            position: 0,
            next_field_id: 0,
        };
        let data_type = parser.parse_type()?;
        if let Some(token) = parser.peek() {
            return Err(parser.error_at(token.offset, "unexpected text after the type"));
        }
        Ok(data_type)
    }

    /// The Arrow type of this column in Paimon's Parquet files (as Java
    /// Paimon writes them and arrow-rs reads them back):
    ///
    /// - BOOLEAN, TINYINT..BIGINT, FLOAT, DOUBLE: Boolean, Int8..Int64,
    ///   Float32, Float64.
    /// - DECIMAL(p, s): Decimal128(p, s) (whatever the physical Parquet type).
    /// - CHAR, VARCHAR, STRING: Utf8. BINARY, VARBINARY, BYTES: Binary (Paimon
    ///   writes plain BINARY even for fixed lengths).
    /// - DATE: Date32. TIME(p): Time32(ms), whatever p, since Paimon stores
    ///   milliseconds of the day.
    /// - TIMESTAMP(p): Timestamp(ms) for p <= 3, (us) for p <= 6, (ns) above
    ///   (Paimon writes INT96 there, read as nanoseconds); no time zone.
    /// - TIMESTAMP(p) WITH LOCAL TIME ZONE: the same units with time zone
    ///   "UTC" (Parquet `isAdjustedToUTC`; pypaimon uses "UTC" too).
    /// - ARRAY<T>: List with field "element". MAP<K, V>: Map of "key_value"
    ///   entries {key (never null, as in Parquet), value}. MULTISET<T>: Map
    ///   from T to its count (INT NOT NULL), as Paimon stores it.
    /// - ROW: Struct with the fields' names and nullability.
    pub fn to_arrow(&self) -> ArrowType {
        match &self.kind {
            DataTypeKind::Boolean => ArrowType::Boolean,
            DataTypeKind::TinyInt => ArrowType::Int8,
            DataTypeKind::SmallInt => ArrowType::Int16,
            DataTypeKind::Int => ArrowType::Int32,
            DataTypeKind::BigInt => ArrowType::Int64,
            DataTypeKind::Float => ArrowType::Float32,
            DataTypeKind::Double => ArrowType::Float64,
            DataTypeKind::Decimal { precision, scale } => {
                // Parsing bounds precision to 38 and scale to precision.
                ArrowType::Decimal128(clamp_u8(*precision), clamp_u8(*scale) as i8)
            }
            DataTypeKind::Char(_) | DataTypeKind::VarChar(_) => ArrowType::Utf8,
            DataTypeKind::Binary(_) | DataTypeKind::VarBinary(_) => ArrowType::Binary,
            DataTypeKind::Date => ArrowType::Date32,
            DataTypeKind::Time(_) => ArrowType::Time32(TimeUnit::Millisecond),
            DataTypeKind::Timestamp(precision) => {
                ArrowType::Timestamp(timestamp_unit(*precision), None)
            }
            DataTypeKind::TimestampLtz(precision) => {
                ArrowType::Timestamp(timestamp_unit(*precision), Some(Arc::from("UTC")))
            }
            DataTypeKind::Array(element) => ArrowType::List(Arc::new(Field::new(
                ARROW_LIST_ELEMENT,
                element.to_arrow(),
                element.nullable,
            ))),
            DataTypeKind::Map(key, value) => {
                arrow_map(key.to_arrow(), value.to_arrow(), value.nullable)
            }
            DataTypeKind::Multiset(element) => {
                arrow_map(element.to_arrow(), ArrowType::Int32, false)
            }
            DataTypeKind::Row(fields) => ArrowType::Struct(
                fields
                    .iter()
                    .map(DataField::to_arrow_field)
                    .collect::<Fields>(),
            ),
        }
    }

    /// The Paimon type for an Arrow type (CREATE TABLE AS SELECT, files
    /// written by others). Lossless widenings are accepted (Float16 to FLOAT,
    /// UInt8/16/32 to SMALLINT/INT/BIGINT, Date64 to DATE, dictionaries to
    /// their values); any time zone makes a TIMESTAMP WITH LOCAL TIME ZONE.
    /// Struct fields are numbered from 0 in order of appearance.
    pub fn from_arrow(arrow_type: &ArrowType, nullable: bool) -> Result<DataType> {
        let mut next_field_id = 0;
        from_arrow_numbered(arrow_type, nullable, &mut next_field_id)
    }
}

impl DataField {
    pub fn new(id: i32, name: impl Into<String>, data_type: DataType) -> Self {
        DataField {
            id,
            name: name.into(),
            data_type,
            description: None,
        }
    }

    /// `{"id":0,"name":"a","type":"INT","description":"..."}`, description
    /// left out when there is none.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses a field of a schema file. Paimon's `defaultValue` is not kept.
    pub fn parse_json(json: &Value) -> Result<DataField> {
        let invalid = |problem: &str| FormatError::Invalid(format!("data field {json}: {problem}"));
        let object = json
            .as_object()
            .ok_or_else(|| invalid("expected an object"))?;
        let id = object
            .get("id")
            .and_then(Value::as_i64)
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| invalid("missing 32-bit integer \"id\""))?;
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("missing string \"name\""))?;
        let type_json = object
            .get("type")
            .ok_or_else(|| invalid("missing \"type\""))?;
        let data_type = DataType::parse_json(type_json)?;
        let description = match object.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => return Err(invalid("\"description\" is not a string")),
        };
        Ok(DataField {
            id,
            name: name.to_string(),
            data_type,
            description,
        })
    }

    /// The Arrow field: same name, the type's Arrow form and nullability, no
    /// metadata.
    pub fn to_arrow_field(&self) -> Field {
        Field::new(
            &self.name,
            self.data_type.to_arrow(),
            self.data_type.nullable,
        )
    }
}

// ---------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------

/// Paimon's string form (`DataType#asSQLString` in Java), which `parse_sql`
/// reads back.
impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DataTypeKind::Boolean => f.write_str("BOOLEAN")?,
            DataTypeKind::TinyInt => f.write_str("TINYINT")?,
            DataTypeKind::SmallInt => f.write_str("SMALLINT")?,
            DataTypeKind::Int => f.write_str("INT")?,
            DataTypeKind::BigInt => f.write_str("BIGINT")?,
            DataTypeKind::Float => f.write_str("FLOAT")?,
            DataTypeKind::Double => f.write_str("DOUBLE")?,
            DataTypeKind::Decimal { precision, scale } => {
                write!(f, "DECIMAL({precision}, {scale})")?
            }
            DataTypeKind::Char(length) => write!(f, "CHAR({length})")?,
            DataTypeKind::VarChar(MAX_LENGTH) => f.write_str("STRING")?,
            DataTypeKind::VarChar(length) => write!(f, "VARCHAR({length})")?,
            DataTypeKind::Binary(length) => write!(f, "BINARY({length})")?,
            DataTypeKind::VarBinary(MAX_LENGTH) => f.write_str("BYTES")?,
            DataTypeKind::VarBinary(length) => write!(f, "VARBINARY({length})")?,
            DataTypeKind::Date => f.write_str("DATE")?,
            DataTypeKind::Time(precision) => write!(f, "TIME({precision})")?,
            DataTypeKind::Timestamp(precision) => write!(f, "TIMESTAMP({precision})")?,
            DataTypeKind::TimestampLtz(precision) => {
                write!(f, "TIMESTAMP({precision}) WITH LOCAL TIME ZONE")?
            }
            DataTypeKind::Array(element) => write!(f, "ARRAY<{element}>")?,
            DataTypeKind::Multiset(element) => write!(f, "MULTISET<{element}>")?,
            DataTypeKind::Map(key, value) => write!(f, "MAP<{key}, {value}>")?,
            DataTypeKind::Row(fields) => {
                f.write_str("ROW<")?;
                for (index, field) in fields.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{field}")?;
                }
                f.write_str(">")?;
            }
        }
        if !self.nullable {
            f.write_str(" NOT NULL")?;
        }
        Ok(())
    }
}

/// A ROW field as Paimon prints it: `` `name` TYPE COMMENT 'text' ``.
impl fmt::Display for DataField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.name.replace('`', "``"), self.data_type)?;
        if let Some(description) = self.description.as_deref().filter(|d| !d.is_empty()) {
            write!(f, " COMMENT '{}'", description.replace('\'', "''"))?;
        }
        Ok(())
    }
}

/// The schema-file JSON form, keys in the order Paimon's Java writer emits
/// them (so that files are laid out like Java's).
impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let type_name = |name: &str| {
            if self.nullable {
                name.to_string()
            } else {
                format!("{name} NOT NULL")
            }
        };
        match &self.kind {
            DataTypeKind::Array(element) | DataTypeKind::Multiset(element) => {
                let name = if matches!(self.kind, DataTypeKind::Array(_)) {
                    "ARRAY"
                } else {
                    "MULTISET"
                };
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", &type_name(name))?;
                map.serialize_entry("element", element.as_ref())?;
                map.end()
            }
            DataTypeKind::Map(key, value) => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("type", &type_name("MAP"))?;
                map.serialize_entry("key", key.as_ref())?;
                map.serialize_entry("value", value.as_ref())?;
                map.end()
            }
            DataTypeKind::Row(fields) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", &type_name("ROW"))?;
                map.serialize_entry("fields", &FieldList(fields))?;
                map.end()
            }
            _ => serializer.serialize_str(&self.to_string()),
        }
    }
}

struct FieldList<'a>(&'a [DataField]);

impl Serialize for FieldList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for field in self.0 {
            seq.serialize_element(field)?;
        }
        seq.end()
    }
}

impl Serialize for DataField {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let entries = if self.description.is_some() { 4 } else { 3 };
        let mut map = serializer.serialize_map(Some(entries))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("type", &self.data_type)?;
        if let Some(description) = &self.description {
            map.serialize_entry("description", description)?;
        }
        map.end()
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum TokenKind {
    /// A bare word: keyword or identifier, as typed.
    Word(String),
    /// A `` `quoted` `` identifier, unescaped.
    QuotedIdentifier(String),
    /// A `'string'` literal, unescaped.
    Literal(String),
    Integer(String),
    Symbol(char),
}

#[derive(Clone, Debug)]
struct Token {
    kind: TokenKind,
    /// Byte offset of the token in the input, for error messages.
    offset: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let error = |offset: usize, problem: &str| {
        FormatError::InvalidType(format!("{text:?}: {problem} at position {offset}"))
    };
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let kind = match c {
            c if c.is_whitespace() => continue,
            '<' | '>' | '(' | ')' | ',' | ':' => TokenKind::Symbol(c),
            '`' | '\'' => {
                // Quotes are escaped by doubling them, as in Paimon's printer.
                let mut content = String::new();
                let mut closed = false;
                while let Some((_, next)) = chars.next() {
                    if next == c {
                        if chars.peek().map(|&(_, after)| after) == Some(c) {
                            chars.next();
                            content.push(c);
                        } else {
                            closed = true;
                            break;
                        }
                    } else {
                        content.push(next);
                    }
                }
                if !closed {
                    return Err(error(offset, &format!("unterminated {c}quote{c}")));
                }
                if c == '`' {
                    TokenKind::QuotedIdentifier(content)
                } else {
                    TokenKind::Literal(content)
                }
            }
            c if c.is_ascii_digit() => {
                let mut digits = c.to_string();
                while let Some(&(_, next)) = chars.peek() {
                    if !next.is_ascii_digit() {
                        break;
                    }
                    digits.push(next);
                    chars.next();
                }
                TokenKind::Integer(digits)
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut word = c.to_string();
                while let Some(&(_, next)) = chars.peek() {
                    if !(next.is_alphanumeric() || next == '_' || next == '$') {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                TokenKind::Word(word)
            }
            other => return Err(error(offset, &format!("unexpected character {other:?}"))),
        };
        tokens.push(Token { kind, offset });
    }
    Ok(tokens)
}

/// Type names Paimon defines that Tidelake does not support yet.
const UNSUPPORTED_TYPE_NAMES: &[&str] = &[
    "VARIANT",
    "BLOB",
    "VECTOR",
    "GEOMETRY",
    "GEOGRAPHY",
    "INTERVAL",
    "RAW",
];

struct TypeParser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    position: usize,
    next_field_id: i32,
}

impl TypeParser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.position + ahead)
    }

    fn error_at(&self, offset: usize, problem: &str) -> FormatError {
        FormatError::InvalidType(format!("{:?}: {problem} at position {offset}", self.text))
    }

    /// An error about the next token (or the end of the input).
    fn error_here(&self, problem: &str) -> FormatError {
        let offset = self.peek().map_or(self.text.len(), |token| token.offset);
        self.error_at(offset, problem)
    }

    fn is_keyword_at(&self, ahead: usize, keyword: &str) -> bool {
        matches!(self.peek_at(ahead), Some(Token { kind: TokenKind::Word(word), .. })
            if word.eq_ignore_ascii_case(keyword))
    }

    fn accept_keyword(&mut self, keyword: &str) -> bool {
        let found = self.is_keyword_at(0, keyword);
        if found {
            self.position += 1;
        }
        found
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<()> {
        if self.accept_keyword(keyword) {
            Ok(())
        } else {
            Err(self.error_here(&format!("expected {keyword}")))
        }
    }

    fn accept_symbol(&mut self, symbol: char) -> bool {
        let found =
            matches!(self.peek(), Some(Token { kind: TokenKind::Symbol(s), .. }) if *s == symbol);
        if found {
            self.position += 1;
        }
        found
    }

    fn expect_symbol(&mut self, symbol: char) -> Result<()> {
        if self.accept_symbol(symbol) {
            Ok(())
        } else {
            Err(self.error_here(&format!("expected '{symbol}'")))
        }
    }

    fn expect_integer(&mut self, what: &str) -> Result<u32> {
        match self.peek().cloned() {
            Some(Token {
                kind: TokenKind::Integer(digits),
                offset,
            }) => {
                self.position += 1;
                digits
                    .parse::<u32>()
                    .ok()
                    .filter(|value| *value <= MAX_LENGTH)
                    .ok_or_else(|| self.error_at(offset, &format!("{what} {digits} is too large")))
            }
            _ => Err(self.error_here(&format!("expected the {what}"))),
        }
    }

    /// `(n)` if present, after checking `min <= n <= max`.
    fn optional_parameter(&mut self, what: &str, min: u32, max: u32, default: u32) -> Result<u32> {
        if !self.accept_symbol('(') {
            return Ok(default);
        }
        let offset = self.peek().map_or(self.text.len(), |token| token.offset);
        let value = self.expect_integer(what)?;
        if value < min || value > max {
            return Err(self.error_at(
                offset,
                &format!("{what} {value} is not between {min} and {max}"),
            ));
        }
        self.expect_symbol(')')?;
        Ok(value)
    }

    /// `NOT NULL` gives false; `NULL` or nothing gives true.
    fn parse_nullability(&mut self) -> Result<bool> {
        if self.accept_keyword("NOT") {
            self.expect_keyword("NULL")?;
            Ok(false)
        } else {
            self.accept_keyword("NULL");
            Ok(true)
        }
    }

    fn parse_type(&mut self) -> Result<DataType> {
        let kind = self.parse_kind()?;
        let mut data_type = DataType::new(kind, self.parse_nullability()?);
        // Paimon's parser also takes the suffix forms `INT ARRAY` and
        // `INT MULTISET`.
        loop {
            if self.accept_keyword("ARRAY") {
                let kind = DataTypeKind::Array(Box::new(data_type));
                data_type = DataType::new(kind, self.parse_nullability()?);
            } else if self.accept_keyword("MULTISET") {
                let kind = DataTypeKind::Multiset(Box::new(data_type));
                data_type = DataType::new(kind, self.parse_nullability()?);
            } else {
                return Ok(data_type);
            }
        }
    }

    fn parse_kind(&mut self) -> Result<DataTypeKind> {
        let (name, offset) = match self.peek() {
            Some(Token {
                kind: TokenKind::Word(word),
                offset,
            }) => (word.to_ascii_uppercase(), *offset),
            _ => return Err(self.error_here("expected a type name")),
        };
        self.position += 1;
        let kind = match name.as_str() {
            "BOOLEAN" => DataTypeKind::Boolean,
            "TINYINT" => DataTypeKind::TinyInt,
            "SMALLINT" => DataTypeKind::SmallInt,
            "INT" | "INTEGER" => DataTypeKind::Int,
            "BIGINT" => DataTypeKind::BigInt,
            "FLOAT" | "REAL" => DataTypeKind::Float,
            "DOUBLE" => {
                self.accept_keyword("PRECISION");
                DataTypeKind::Double
            }
            "DECIMAL" | "NUMERIC" | "DEC" => self.parse_decimal()?,
            "CHAR" => DataTypeKind::Char(self.optional_parameter("length", 1, MAX_LENGTH, 1)?),
            "VARCHAR" => {
                DataTypeKind::VarChar(self.optional_parameter("length", 1, MAX_LENGTH, 1)?)
            }
            "STRING" => DataTypeKind::VarChar(MAX_LENGTH),
            "BINARY" => DataTypeKind::Binary(self.optional_parameter("length", 1, MAX_LENGTH, 1)?),
            "VARBINARY" => {
                DataTypeKind::VarBinary(self.optional_parameter("length", 1, MAX_LENGTH, 1)?)
            }
            "BYTES" => DataTypeKind::VarBinary(MAX_LENGTH),
            "DATE" => DataTypeKind::Date,
            "TIME" => {
                let precision = self.optional_parameter("precision", 0, MAX_TIME_PRECISION, 0)?;
                self.parse_without_time_zone()?;
                DataTypeKind::Time(precision)
            }
            "TIMESTAMP" => {
                let precision = self.optional_parameter("precision", 0, MAX_TIME_PRECISION, 6)?;
                if self.is_keyword_at(0, "WITH") && self.is_keyword_at(1, "LOCAL") {
                    self.position += 2;
                    self.expect_keyword("TIME")?;
                    self.expect_keyword("ZONE")?;
                    DataTypeKind::TimestampLtz(precision)
                } else if self.is_keyword_at(0, "WITH") {
                    return Err(self.error_here(
                        "TIMESTAMP WITH TIME ZONE is not a Paimon type (use WITH LOCAL TIME ZONE)",
                    ));
                } else {
                    self.parse_without_time_zone()?;
                    DataTypeKind::Timestamp(precision)
                }
            }
            "TIMESTAMP_LTZ" => DataTypeKind::TimestampLtz(self.optional_parameter(
                "precision",
                0,
                MAX_TIME_PRECISION,
                6,
            )?),
            "ARRAY" => {
                self.expect_symbol('<')?;
                let element = self.parse_type()?;
                self.expect_symbol('>')?;
                DataTypeKind::Array(Box::new(element))
            }
            "MULTISET" => {
                self.expect_symbol('<')?;
                let element = self.parse_type()?;
                self.expect_symbol('>')?;
                DataTypeKind::Multiset(Box::new(element))
            }
            "MAP" => {
                self.expect_symbol('<')?;
                let key = self.parse_type()?;
                self.expect_symbol(',')?;
                let value = self.parse_type()?;
                self.expect_symbol('>')?;
                DataTypeKind::Map(Box::new(key), Box::new(value))
            }
            "ROW" => self.parse_row()?,
            unsupported if UNSUPPORTED_TYPE_NAMES.contains(&unsupported) => {
                return Err(FormatError::Unsupported(format!(
                    "data type {unsupported} (in {:?})",
                    self.text
                )))
            }
            _ => return Err(self.error_at(offset, &format!("unknown type name {name}"))),
        };
        Ok(kind)
    }

    fn parse_without_time_zone(&mut self) -> Result<()> {
        if self.accept_keyword("WITHOUT") {
            self.expect_keyword("TIME")?;
            self.expect_keyword("ZONE")?;
        }
        Ok(())
    }

    /// `[(p[, s])]`, default DECIMAL(10, 0).
    fn parse_decimal(&mut self) -> Result<DataTypeKind> {
        let (mut precision, mut scale) = (10, 0);
        if self.accept_symbol('(') {
            let offset = self.peek().map_or(self.text.len(), |token| token.offset);
            precision = self.expect_integer("precision")?;
            if self.accept_symbol(',') {
                scale = self.expect_integer("scale")?;
            }
            self.expect_symbol(')')?;
            if !(1..=MAX_DECIMAL_PRECISION).contains(&precision) {
                return Err(self.error_at(
                    offset,
                    &format!("decimal precision {precision} is not between 1 and {MAX_DECIMAL_PRECISION}"),
                ));
            }
            if scale > precision {
                return Err(self.error_at(
                    offset,
                    &format!("decimal scale {scale} is greater than the precision {precision}"),
                ));
            }
        }
        Ok(DataTypeKind::Decimal { precision, scale })
    }

    /// `ROW<name type [COMMENT 'text'], ...>` or the same in parentheses.
    fn parse_row(&mut self) -> Result<DataTypeKind> {
        let close = if self.accept_symbol('<') {
            '>'
        } else if self.accept_symbol('(') {
            ')'
        } else {
            return Err(self.error_here("expected '<' or '(' after ROW"));
        };
        let mut fields: Vec<DataField> = Vec::new();
        if self.accept_symbol(close) {
            return Ok(DataTypeKind::Row(fields));
        }
        loop {
            let (name, offset) = match self.peek() {
                Some(Token {
                    kind: TokenKind::Word(name) | TokenKind::QuotedIdentifier(name),
                    offset,
                }) => (name.clone(), *offset),
                _ => return Err(self.error_here("expected a field name")),
            };
            self.position += 1;
            if fields.iter().any(|field| field.name == name) {
                return Err(self.error_at(offset, &format!("duplicate field name {name:?}")));
            }
            // pypaimon prints nested fields as `name: TYPE`.
            self.accept_symbol(':');
            let id = self.next_field_id;
            self.next_field_id += 1;
            let data_type = self.parse_type()?;
            let description = if self.accept_keyword("COMMENT") {
                match self.peek() {
                    Some(Token {
                        kind: TokenKind::Literal(text),
                        ..
                    }) => {
                        let text = text.clone();
                        self.position += 1;
                        Some(text)
                    }
                    _ => return Err(self.error_here("expected a quoted comment after COMMENT")),
                }
            } else {
                None
            };
            fields.push(DataField {
                id,
                name,
                data_type,
                description,
            });
            if self.accept_symbol(close) {
                return Ok(DataTypeKind::Row(fields));
            }
            if !self.accept_symbol(',') {
                return Err(self.error_here(&format!("expected ',' or '{close}'")));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Arrow
// ---------------------------------------------------------------------------

fn clamp_u8(value: u32) -> u8 {
    u8::try_from(value).unwrap_or(u8::MAX)
}

fn timestamp_unit(precision: u32) -> TimeUnit {
    match precision {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

fn arrow_map(key: ArrowType, value: ArrowType, value_nullable: bool) -> ArrowType {
    let entries = Fields::from(vec![
        Field::new(ARROW_MAP_KEY, key, false),
        Field::new(ARROW_MAP_VALUE, value, value_nullable),
    ]);
    ArrowType::Map(
        Arc::new(Field::new(
            ARROW_MAP_ENTRIES,
            ArrowType::Struct(entries),
            false,
        )),
        false,
    )
}

fn precision_of_unit(unit: &TimeUnit) -> u32 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

fn arrow_decimal(arrow_type: &ArrowType, precision: u8, scale: i8) -> Result<DataTypeKind> {
    let precision = u32::from(precision);
    match u32::try_from(scale) {
        Ok(scale) if (1..=MAX_DECIMAL_PRECISION).contains(&precision) && scale <= precision => {
            Ok(DataTypeKind::Decimal { precision, scale })
        }
        _ => Err(FormatError::Unsupported(format!(
            "Arrow type {arrow_type}: Paimon decimals need 1 <= precision <= 38 and 0 <= scale <= precision"
        ))),
    }
}

fn from_arrow_numbered(
    arrow_type: &ArrowType,
    nullable: bool,
    next_field_id: &mut i32,
) -> Result<DataType> {
    let kind = match arrow_type {
        ArrowType::Boolean => DataTypeKind::Boolean,
        ArrowType::Int8 => DataTypeKind::TinyInt,
        ArrowType::Int16 | ArrowType::UInt8 => DataTypeKind::SmallInt,
        ArrowType::Int32 | ArrowType::UInt16 => DataTypeKind::Int,
        ArrowType::Int64 | ArrowType::UInt32 => DataTypeKind::BigInt,
        ArrowType::Float16 | ArrowType::Float32 => DataTypeKind::Float,
        ArrowType::Float64 => DataTypeKind::Double,
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => {
            DataTypeKind::VarChar(MAX_LENGTH)
        }
        ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => {
            DataTypeKind::VarBinary(MAX_LENGTH)
        }
        ArrowType::FixedSizeBinary(width) => match u32::try_from(*width) {
            Ok(width) if width >= 1 => DataTypeKind::Binary(width),
            _ => {
                return Err(FormatError::Unsupported(format!(
                    "Arrow type {arrow_type}: BINARY needs a positive length"
                )))
            }
        },
        ArrowType::Decimal32(p, s)
        | ArrowType::Decimal64(p, s)
        | ArrowType::Decimal128(p, s)
        | ArrowType::Decimal256(p, s) => arrow_decimal(arrow_type, *p, *s)?,
        ArrowType::Date32 | ArrowType::Date64 => DataTypeKind::Date,
        ArrowType::Time32(unit) | ArrowType::Time64(unit) => {
            DataTypeKind::Time(precision_of_unit(unit))
        }
        ArrowType::Timestamp(unit, None) => DataTypeKind::Timestamp(precision_of_unit(unit)),
        ArrowType::Timestamp(unit, Some(_)) => DataTypeKind::TimestampLtz(precision_of_unit(unit)),
        ArrowType::List(element) | ArrowType::LargeList(element) => DataTypeKind::Array(Box::new(
            from_arrow_numbered(element.data_type(), element.is_nullable(), next_field_id)?,
        )),
        ArrowType::Map(entries, _) => match entries.data_type() {
            ArrowType::Struct(pair) if pair.len() == 2 => {
                let key =
                    from_arrow_numbered(pair[0].data_type(), pair[0].is_nullable(), next_field_id)?;
                let value =
                    from_arrow_numbered(pair[1].data_type(), pair[1].is_nullable(), next_field_id)?;
                DataTypeKind::Map(Box::new(key), Box::new(value))
            }
            _ => {
                return Err(FormatError::Unsupported(format!(
                    "Arrow type {arrow_type}: map entries are not a key/value struct"
                )))
            }
        },
        ArrowType::Struct(fields) => {
            let mut paimon_fields = Vec::with_capacity(fields.len());
            for field in fields {
                let id = *next_field_id;
                *next_field_id += 1;
                let data_type =
                    from_arrow_numbered(field.data_type(), field.is_nullable(), next_field_id)?;
                paimon_fields.push(DataField::new(id, field.name().as_str(), data_type));
            }
            DataTypeKind::Row(paimon_fields)
        }
        ArrowType::Dictionary(_, values) => {
            return from_arrow_numbered(values, nullable, next_field_id)
        }
        other => {
            return Err(FormatError::Unsupported(format!(
                "Arrow type {other} has no Paimon equivalent"
            )))
        }
    };
    Ok(DataType::new(kind, nullable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ty(text: &str) -> DataType {
        DataType::parse_sql(text).unwrap()
    }

    /// Every atomic kind once, with its Paimon string form.
    fn atomic_cases() -> Vec<(DataTypeKind, &'static str)> {
        use DataTypeKind::*;
        let decimal = |precision, scale| Decimal { precision, scale };
        vec![
            (Boolean, "BOOLEAN"),
            (TinyInt, "TINYINT"),
            (SmallInt, "SMALLINT"),
            (Int, "INT"),
            (BigInt, "BIGINT"),
            (Float, "FLOAT"),
            (Double, "DOUBLE"),
            (decimal(10, 2), "DECIMAL(10, 2)"),
            (decimal(38, 0), "DECIMAL(38, 0)"),
            (Char(3), "CHAR(3)"),
            (VarChar(20), "VARCHAR(20)"),
            (VarChar(MAX_LENGTH), "STRING"),
            (Binary(16), "BINARY(16)"),
            (VarBinary(100), "VARBINARY(100)"),
            (VarBinary(MAX_LENGTH), "BYTES"),
            (Date, "DATE"),
            (Time(0), "TIME(0)"),
            (Time(3), "TIME(3)"),
            (Timestamp(3), "TIMESTAMP(3)"),
            (Timestamp(6), "TIMESTAMP(6)"),
            (Timestamp(9), "TIMESTAMP(9)"),
            (TimestampLtz(6), "TIMESTAMP(6) WITH LOCAL TIME ZONE"),
        ]
    }

    /// A ROW using every composite kind, odd names and a comment.
    fn nested_example() -> DataType {
        let mut described = DataField::new(2, "it's", DataType::string());
        described.description = Some("a 'quoted' note".into());
        let decimals = DataTypeKind::Array(Box::new(ty("DECIMAL(5, 1)")));
        let map = DataTypeKind::Map(
            Box::new(ty("STRING NOT NULL")),
            Box::new(DataType::new(decimals, true)),
        );
        let bag = DataTypeKind::Multiset(Box::new(ty("DATE")));
        let fields = vec![
            DataField::new(0, "x", ty("INT NOT NULL")),
            DataField::new(1, "we`ird name", DataType::new(map, true)),
            described,
            DataField::new(3, "bag", DataType::new(bag, false)),
        ];
        DataType::new(DataTypeKind::Row(fields), true)
    }

    #[test]
    fn atomic_types_print_and_serialize_as_paimon_spells_them() {
        for (kind, text) in atomic_cases() {
            let nullable = DataType::new(kind.clone(), true);
            assert_eq!(nullable.to_string(), text);
            assert_eq!(nullable.to_json(), json!(text));
            let not_null = DataType::new(kind, false);
            assert_eq!(not_null.to_json(), json!(format!("{text} NOT NULL")));
        }
    }

    #[test]
    fn every_type_round_trips_through_json_and_sql() {
        let mut types: Vec<DataType> = atomic_cases()
            .into_iter()
            .flat_map(|(kind, _)| [true, false].map(|n| DataType::new(kind.clone(), n)))
            .collect();
        types.push(nested_example());
        types.push(DataType::new(
            DataTypeKind::Array(Box::new(nested_example())),
            false,
        ));
        types.push(DataType::new(DataTypeKind::Row(vec![]), true));
        for data_type in types {
            let json = data_type.to_json();
            assert_eq!(
                DataType::parse_json(&json).unwrap(),
                data_type,
                "JSON {json}"
            );
            let text = data_type.to_string();
            assert_eq!(DataType::parse_sql(&text).unwrap(), data_type, "SQL {text}");
        }
    }

    #[test]
    fn composite_json_matches_java_layout() {
        let cases = [
            (
                "ARRAY<INT NOT NULL> NOT NULL",
                r#"{"type":"ARRAY NOT NULL","element":"INT NOT NULL"}"#,
            ),
            (
                "MAP<STRING NOT NULL, BIGINT>",
                r#"{"type":"MAP","key":"STRING NOT NULL","value":"BIGINT"}"#,
            ),
            (
                "ROW<y STRING COMMENT 'why'> NOT NULL",
                r#"{"type":"ROW NOT NULL","fields":[{"id":0,"name":"y","type":"STRING","description":"why"}]}"#,
            ),
            ("MULTISET<DATE>", r#"{"type":"MULTISET","element":"DATE"}"#),
        ];
        for (text, expected) in cases {
            assert_eq!(serde_json::to_string(&ty(text)).unwrap(), expected);
        }
    }

    #[test]
    fn parses_json_written_by_pypaimon() {
        // pypaimon adds "nullable" to composite types and spells some atomic
        // types its own way.
        let json = json!({
            "type": "ROW",
            "fields": [
                {"id": 18, "name": "x", "type": "INT NOT NULL"},
                {"id": 19, "name": "ts", "type": "TIMESTAMP_LTZ(6)"},
                {"id": 20, "name": "s", "type": "VARCHAR(2147483647)"},
                {"id": 21, "name": "b", "type": "VARBINARY(2147483647) NOT NULL"},
                {"id": 22, "name": "m", "type": {"type": "MAP NOT NULL", "key": "STRING NOT NULL",
                    "value": "integer", "nullable": false}},
                {"id": 23, "name": "d", "type": "DECIMAL(12,2)", "description": null}
            ],
            "nullable": true
        });
        let parsed = DataType::parse_json(&json).unwrap();
        let DataTypeKind::Row(fields) = &parsed.kind else {
            panic!("not a row: {parsed:?}")
        };
        let ids: Vec<i32> = fields.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![18, 19, 20, 21, 22, 23]);
        let types: Vec<String> = fields.iter().map(|f| f.data_type.to_string()).collect();
        let expected = [
            "INT NOT NULL",
            "TIMESTAMP(6) WITH LOCAL TIME ZONE",
            "STRING",
            "BYTES NOT NULL",
            "MAP<STRING NOT NULL, INT> NOT NULL",
            "DECIMAL(12, 2)",
        ];
        assert_eq!(types, expected);
        assert_eq!(fields[5].description, None);
    }

    #[test]
    fn sql_spellings_and_defaults() {
        use DataTypeKind::*;
        let t = |kind| DataType::new(kind, true);
        let nn = |kind| DataType::new(kind, false);
        let cases: Vec<(&str, DataType)> = vec![
            ("int", t(Int)),
            ("Integer NOT NULL", nn(Int)),
            ("bigint null", t(BigInt)),
            ("real", t(Float)),
            ("double precision not null", nn(Double)),
            (
                "decimal",
                t(Decimal {
                    precision: 10,
                    scale: 0,
                }),
            ),
            (
                "NUMERIC(7)",
                t(Decimal {
                    precision: 7,
                    scale: 0,
                }),
            ),
            (
                "dec(20 , 4)",
                t(Decimal {
                    precision: 20,
                    scale: 4,
                }),
            ),
            ("char", t(Char(1))),
            ("varchar(255)", t(VarChar(255))),
            ("string", t(VarChar(MAX_LENGTH))),
            ("binary(4)", t(Binary(4))),
            ("bytes", t(VarBinary(MAX_LENGTH))),
            ("time", t(Time(0))),
            ("time(3) without time zone", t(Time(3))),
            ("timestamp", t(Timestamp(6))),
            ("timestamp(3) without time zone", t(Timestamp(3))),
            ("timestamp with local time zone", t(TimestampLtz(6))),
            (
                "TIMESTAMP(9) WITH LOCAL TIME ZONE NOT NULL",
                nn(TimestampLtz(9)),
            ),
            ("timestamp_ltz(3)", t(TimestampLtz(3))),
            ("array<int not null> not null", nn(Array(Box::new(nn(Int))))),
            ("INT ARRAY", t(Array(Box::new(t(Int))))),
            (
                "multiset<string>",
                t(Multiset(Box::new(DataType::string()))),
            ),
            (
                "map<string, bigint>",
                t(Map(Box::new(DataType::string()), Box::new(t(BigInt)))),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(DataType::parse_sql(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn sql_rows_number_fields_in_order_and_keep_comments() {
        let parsed = ty("ROW(a INT, `b c` ROW<d STRING COMMENT 'it''s d'>, e: DATE) NOT NULL");
        assert!(!parsed.nullable);
        let DataTypeKind::Row(fields) = &parsed.kind else {
            panic!("not a row")
        };
        let ids: Vec<(i32, &str)> = fields.iter().map(|f| (f.id, f.name.as_str())).collect();
        assert_eq!(ids, vec![(0, "a"), (1, "b c"), (3, "e")]);
        let DataTypeKind::Row(inner) = &fields[1].data_type.kind else {
            panic!("not a row")
        };
        assert_eq!(inner[0].id, 2);
        assert_eq!(inner[0].description.as_deref(), Some("it's d"));
        assert_eq!(fields[2].data_type, ty("DATE"));
    }

    #[test]
    fn bad_types_name_the_text_and_problem() {
        let cases = [
            ("FOO", "unknown type name FOO"),
            ("DECIMAL(39, 2)", "precision 39 is not between 1 and 38"),
            ("DECIMAL(5, 6)", "scale 6 is greater than the precision 5"),
            ("VARCHAR(0)", "length 0 is not between 1"),
            ("TIMESTAMP(10)", "precision 10 is not between 0 and 9"),
            ("ARRAY<INT", "expected '>'"),
            ("MAP<INT>", "expected ','"),
            ("ROW<a INT, a STRING>", "duplicate field name \"a\""),
            ("INT NOT", "expected NULL"),
            ("INT extra", "unexpected text after the type"),
            ("TIMESTAMP WITH TIME ZONE", "not a Paimon type"),
            ("VARCHAR(99999999999)", "too large"),
            ("ROW<a INT COMMENT 'x>", "unterminated"),
            ("INT;", "unexpected character ';'"),
            ("", "expected a type name"),
        ];
        for (text, expected) in cases {
            let message = DataType::parse_sql(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert!(message.contains(&format!("{text:?}")), "{text}: {message}");
        }
        let unsupported = DataType::parse_sql("VARIANT").unwrap_err();
        assert!(
            matches!(unsupported, FormatError::Unsupported(_)),
            "{unsupported}"
        );
    }

    #[test]
    fn bad_json_is_reported() {
        let cases = [
            (json!(5), "expected a type string or object"),
            (json!({"element": "INT"}), "missing string \"type\""),
            (json!({"type": "ARRAY"}), "ARRAY lacks \"element\""),
            (json!({"type": "ROW", "fields": 3}), "\"fields\" array"),
            (
                json!({"type": "ROW", "fields": [{"name": "a", "type": "INT"}]}),
                "\"id\"",
            ),
            (
                json!({"type": "ROW", "fields": [{"id": 1, "type": "INT"}]}),
                "\"name\"",
            ),
        ];
        for (json, expected) in cases {
            let message = DataType::parse_json(&json).unwrap_err().to_string();
            assert!(message.contains(expected), "{json}: {message}");
        }
    }

    #[test]
    fn data_field_json_omits_missing_description() {
        let field = DataField::new(0, "a", ty("INT"));
        let text = serde_json::to_string(&field).unwrap();
        assert_eq!(text, r#"{"id":0,"name":"a","type":"INT"}"#);
        assert_eq!(DataField::parse_json(&field.to_json()).unwrap(), field);
        let mut described = field.clone();
        described.description = Some("d".into());
        let json = described.to_json();
        assert_eq!(
            json,
            json!({"id": 0, "name": "a", "type": "INT", "description": "d"})
        );
        assert_eq!(DataField::parse_json(&json).unwrap(), described);
    }

    fn arrow_timestamp(unit: TimeUnit, utc: bool) -> ArrowType {
        ArrowType::Timestamp(unit, utc.then(|| Arc::from("UTC")))
    }

    #[test]
    fn arrow_mapping_follows_paimon_parquet_files() {
        use TimeUnit::*;
        let cases = vec![
            ("BOOLEAN", ArrowType::Boolean),
            ("TINYINT", ArrowType::Int8),
            ("SMALLINT", ArrowType::Int16),
            ("INT", ArrowType::Int32),
            ("BIGINT", ArrowType::Int64),
            ("FLOAT", ArrowType::Float32),
            ("DOUBLE", ArrowType::Float64),
            ("DECIMAL(20, 3)", ArrowType::Decimal128(20, 3)),
            ("CHAR(2)", ArrowType::Utf8),
            ("STRING", ArrowType::Utf8),
            ("BINARY(2)", ArrowType::Binary),
            ("BYTES", ArrowType::Binary),
            ("DATE", ArrowType::Date32),
            ("TIME(0)", ArrowType::Time32(Millisecond)),
            ("TIMESTAMP(0)", arrow_timestamp(Millisecond, false)),
            ("TIMESTAMP(3)", arrow_timestamp(Millisecond, false)),
            ("TIMESTAMP(6)", arrow_timestamp(Microsecond, false)),
            ("TIMESTAMP(9)", arrow_timestamp(Nanosecond, false)),
            ("TIMESTAMP_LTZ(3)", arrow_timestamp(Millisecond, true)),
            ("TIMESTAMP_LTZ(6)", arrow_timestamp(Microsecond, true)),
        ];
        for (text, arrow) in cases {
            assert_eq!(ty(text).to_arrow(), arrow, "{text}");
        }
        let element = Field::new("element", ArrowType::Int32, false);
        let list = ArrowType::List(Arc::new(element));
        assert_eq!(ty("ARRAY<INT NOT NULL>").to_arrow(), list);

        let map_pair = |text: &str| {
            let ArrowType::Map(entries, sorted) = ty(text).to_arrow() else {
                panic!("{text} is not a map")
            };
            assert!(!sorted);
            assert_eq!(entries.name(), "key_value");
            let ArrowType::Struct(pair) = entries.data_type() else {
                panic!("entries of {text} not a struct")
            };
            (pair[0].as_ref().clone(), pair[1].as_ref().clone())
        };
        let (key, value) = map_pair("MAP<STRING, BIGINT>");
        assert_eq!(key, Field::new("key", ArrowType::Utf8, false));
        assert_eq!(value, Field::new("value", ArrowType::Int64, true));
        let (key, value) = map_pair("MULTISET<DATE>");
        assert_eq!(key, Field::new("key", ArrowType::Date32, false));
        assert_eq!(value, Field::new("value", ArrowType::Int32, false));

        let ArrowType::Struct(fields) = nested_example().to_arrow() else {
            panic!("not a struct")
        };
        assert_eq!(fields.len(), 4);
        assert_eq!(
            fields[0].as_ref(),
            &Field::new("x", ArrowType::Int32, false)
        );
        assert_eq!(fields[1].name(), "we`ird name");
        assert!(fields[1].is_nullable());
    }

    #[test]
    fn arrow_round_trips_for_types_with_a_canonical_arrow_form() {
        let texts = [
            "BOOLEAN",
            "BIGINT NOT NULL",
            "DECIMAL(38, 10)",
            "STRING",
            "BYTES",
            "DATE",
            "TIMESTAMP(3)",
            "TIMESTAMP(6) NOT NULL",
            "TIMESTAMP(9)",
            "TIMESTAMP_LTZ(6)",
            "TIME(3)",
        ];
        for text in texts {
            let data_type = ty(text);
            let back = DataType::from_arrow(&data_type.to_arrow(), data_type.nullable).unwrap();
            assert_eq!(back, data_type, "{text}");
        }
        // Descriptions have no Arrow form; MULTISET reads back as a map of
        // counts.
        let nested = nested_example().with_nullable(false);
        let back = DataType::from_arrow(&nested.to_arrow(), false).unwrap();
        let expected = "ROW<`x` INT NOT NULL, `we``ird name` MAP<STRING NOT NULL, \
            ARRAY<DECIMAL(5, 1)>>, `it's` STRING, `bag` MAP<DATE NOT NULL, INT NOT NULL> NOT NULL> \
            NOT NULL";
        assert_eq!(back.to_string(), expected);
    }

    #[test]
    fn from_arrow_accepts_other_writers_types() {
        let dictionary =
            ArrowType::Dictionary(Box::new(ArrowType::Int32), Box::new(ArrowType::Utf8));
        let large_list = ArrowType::LargeList(Arc::new(Field::new("item", ArrowType::Int16, true)));
        let offset_tz = ArrowType::Timestamp(TimeUnit::Microsecond, Some("+02:00".into()));
        let cases = [
            (ArrowType::LargeUtf8, "STRING"),
            (ArrowType::Utf8View, "STRING"),
            (ArrowType::LargeBinary, "BYTES"),
            (ArrowType::FixedSizeBinary(16), "BINARY(16)"),
            (ArrowType::Timestamp(TimeUnit::Second, None), "TIMESTAMP(0)"),
            (offset_tz, "TIMESTAMP(6) WITH LOCAL TIME ZONE"),
            (ArrowType::Time64(TimeUnit::Microsecond), "TIME(6)"),
            (ArrowType::UInt32, "BIGINT"),
            (dictionary, "STRING"),
            (large_list, "ARRAY<SMALLINT>"),
        ];
        for (arrow, expected) in cases {
            let converted = DataType::from_arrow(&arrow, true).unwrap();
            assert_eq!(converted.to_string(), expected, "{arrow}");
        }
        let inner = ArrowType::Struct(Fields::from(vec![Field::new("b", ArrowType::Int32, false)]));
        let nested = ArrowType::Struct(Fields::from(vec![
            Field::new("a", inner, true),
            Field::new("c", ArrowType::Utf8, true),
        ]));
        let DataTypeKind::Row(fields) = DataType::from_arrow(&nested, false).unwrap().kind else {
            panic!("not a row")
        };
        let DataTypeKind::Row(inner) = &fields[0].data_type.kind else {
            panic!("not a row")
        };
        assert_eq!((fields[0].id, inner[0].id, fields[1].id), (0, 1, 2));
        let unsupported = [
            ArrowType::Null,
            ArrowType::UInt64,
            ArrowType::Decimal128(10, -2),
            ArrowType::Duration(TimeUnit::Second),
        ];
        for bad in unsupported {
            let error = DataType::from_arrow(&bad, true).unwrap_err();
            assert!(
                matches!(error, FormatError::Unsupported(_)),
                "{bad}: {error}"
            );
            assert!(error.to_string().contains(&bad.to_string()), "{error}");
        }
    }

    fn arbitrary_type() -> impl Strategy<Value = DataType> {
        use DataTypeKind::*;
        let decimal = (1u32..=38).prop_flat_map(|p| (Just(p), 0..=p));
        let atomic = prop_oneof![
            Just(Boolean),
            Just(TinyInt),
            Just(Int),
            Just(BigInt),
            Just(Double),
            decimal.prop_map(|(precision, scale)| Decimal { precision, scale }),
            (1u32..=MAX_LENGTH).prop_map(Char),
            (1u32..=MAX_LENGTH).prop_map(VarChar),
            (1u32..=MAX_LENGTH).prop_map(VarBinary),
            (0u32..=9).prop_map(Time),
            (0u32..=9).prop_map(Timestamp),
            (0u32..=9).prop_map(TimestampLtz),
        ];
        let leaf =
            (atomic, any::<bool>()).prop_map(|(kind, nullable)| DataType::new(kind, nullable));
        leaf.prop_recursive(3, 16, 4, |inner| {
            let field = (
                inner.clone(),
                "[a-z ]{1,6}",
                proptest::option::of("[a-z' ]{1,6}"),
            );
            let to_row = |fields: Vec<(DataType, String, Option<String>)>| {
                let fields = fields.into_iter().enumerate().map(
                    |(index, (data_type, name, description))| {
                        let name = format!("{name}{index}");
                        DataField {
                            id: index as i32,
                            name,
                            data_type,
                            description,
                        }
                    },
                );
                Row(fields.collect())
            };
            let composite = prop_oneof![
                inner.clone().prop_map(|e| Array(Box::new(e))),
                inner.clone().prop_map(|e| Multiset(Box::new(e))),
                (inner.clone(), inner).prop_map(|(k, v)| Map(Box::new(k), Box::new(v))),
                prop::collection::vec(field, 0..4).prop_map(to_row),
            ];
            (composite, any::<bool>()).prop_map(|(kind, nullable)| DataType::new(kind, nullable))
        })
    }

    proptest! {
        #[test]
        fn json_round_trip_holds_for_any_type(data_type in arbitrary_type()) {
            prop_assert_eq!(DataType::parse_json(&data_type.to_json()).unwrap(), data_type);
        }

        #[test]
        fn sql_round_trip_holds_for_any_type(data_type in arbitrary_type()) {
            // Rows renumber their fields from 0 in SQL; compare by text.
            let parsed = DataType::parse_sql(&data_type.to_string()).unwrap();
            prop_assert_eq!(parsed.to_string(), data_type.to_string());
        }
    }
}
