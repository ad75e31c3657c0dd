//! Decoders of the change-message formats CDC tools publish: Debezium
//! JSON, Canal JSON and Maxwell JSON. Schemas are inferred from the
//! messages as Paimon's `kafka_sync_database` does:
//!
//! - **Debezium** with `schema` (Kafka Connect's converter with
//!   `schemas.enable=true`): each field's Connect type and logical name
//!   (`io.debezium.time.MicroTimestamp`, `...connect.data.Decimal`, ...)
//!   give the Paimon type; without a schema every column is STRING. The
//!   message has no primary key: it comes from `--primary-keys`.
//! - **Canal**: `mysqlType` gives MySQL types, mapped as the MySQL source
//!   maps them; `pkNames` is the key.
//! - **Maxwell**: no types (every column STRING); `primary_key_columns` is
//!   the key (Maxwell's `output_primary_key_columns`). Maxwell marks the
//!   last row of a source transaction with `"commit": true`: rows before it
//!   wait for it, so a transaction is never split.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use tidelake_format::types::{DataType, DataTypeKind, MAX_LENGTH};

use crate::event::{
    CdcValue, ChangeKind, RowChange, SourceColumn, SourceEvent, SourceSchema, SourceTableId,
};
use crate::mysql::types::{from_text, map_column, ColumnDef, ColumnKind};

/// The message formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageFormat {
    DebeziumJson,
    CanalJson,
    MaxwellJson,
}

impl std::str::FromStr for MessageFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "debezium-json" => Ok(MessageFormat::DebeziumJson),
            "canal-json" => Ok(MessageFormat::CanalJson),
            "maxwell-json" => Ok(MessageFormat::MaxwellJson),
            other => Err(format!(
                "unknown message format {other:?}: expected debezium-json, canal-json or maxwell-json"
            )),
        }
    }
}

/// A JSON object with its keys in message order (column order).
#[derive(Debug, Default)]
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

/// How one column's JSON values are read.
#[derive(Clone, Debug, PartialEq)]
enum ValueKind {
    /// MySQL text values (Canal).
    Mysql(ColumnKind),
    /// A Kafka Connect type with its logical name (Debezium).
    Connect {
        ty: String,
        name: String,
        scale: u32,
    },
    /// Any JSON value as text.
    Text,
}

#[derive(Clone, Debug, PartialEq)]
struct TableState {
    schema: SourceSchema,
    kinds: Vec<ValueKind>,
}

/// What one message holds.
#[derive(Debug)]
pub struct Decoded {
    /// Schema events (when a table's inferred schema changed) and changes.
    pub events: Vec<SourceEvent>,
    /// Whether the message ends a source transaction (always, except
    /// Maxwell rows before their `"commit": true`).
    pub ends_transaction: bool,
}

/// Turns messages of one format into events, remembering each table's
/// inferred schema.
pub struct Decoder {
    format: MessageFormat,
    primary_keys: Vec<String>,
    tables: HashMap<SourceTableId, TableState>,
}

fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn string_type() -> DataType {
    DataType::string()
}

impl Decoder {
    pub fn new(format: MessageFormat, primary_keys: Vec<String>) -> Self {
        Decoder {
            format,
            primary_keys,
            tables: HashMap::new(),
        }
    }

    /// Decodes one message; `Err` says what is wrong with it.
    pub fn decode(&mut self, payload: &[u8]) -> Result<Decoded, String> {
        if payload.iter().all(u8::is_ascii_whitespace) {
            // a tombstone (Debezium writes one after a delete)
            return Ok(Decoded {
                events: Vec::new(),
                ends_transaction: true,
            });
        }
        let json: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
        if !json.is_object() {
            return Err("not a JSON object".into());
        }
        match self.format {
            MessageFormat::DebeziumJson => self.debezium(&json),
            MessageFormat::CanalJson => self.canal(&json, payload),
            MessageFormat::MaxwellJson => self.maxwell(&json, payload),
        }
    }

    fn keys(&self, from_message: Option<&Value>) -> Vec<String> {
        let named: Vec<String> = from_message
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if named.is_empty() {
            self.primary_keys.clone()
        } else {
            named
        }
    }

    /// Records `state` for `table`, emitting a schema event if it changed.
    fn table_state(
        &mut self,
        table: &SourceTableId,
        state: TableState,
        events: &mut Vec<SourceEvent>,
    ) {
        if self.tables.get(table) != Some(&state) {
            events.push(SourceEvent::Schema {
                table: table.clone(),
                schema: state.schema.clone(),
            });
            self.tables.insert(table.clone(), state);
        }
    }

    fn debezium(&mut self, json: &Value) -> Result<Decoded, String> {
        let (schema, payload) = match (json.get("schema"), json.get("payload")) {
            (schema, Some(payload)) => (schema, payload),
            (_, None) => (None, json),
        };
        let op = field(payload, "op")
            .and_then(Value::as_str)
            .ok_or("no \"op\" field")?;
        let kinds: &[(ChangeKind, &str)] = match op {
            "c" | "r" => &[(ChangeKind::Insert, "after")],
            "u" => &[
                (ChangeKind::UpdateBefore, "before"),
                (ChangeKind::UpdateAfter, "after"),
            ],
            "d" => &[(ChangeKind::Delete, "before")],
            "t" | "m" => {
                return Ok(Decoded {
                    events: Vec::new(),
                    ends_transaction: true,
                })
            }
            other => return Err(format!("unknown Debezium op {other:?}")),
        };
        let source = field(payload, "source").ok_or("no \"source\" block")?;
        let db = field(source, "db")
            .and_then(Value::as_str)
            .ok_or("no source.db")?;
        let table_name = field(source, "table")
            .and_then(Value::as_str)
            .ok_or("no source.table")?;
        let table = SourceTableId::new(db, table_name);
        let image_name = kinds[kinds.len() - 1].1;
        let state = match schema {
            Some(schema) => debezium_schema(schema, image_name, self.keys(None))?,
            None => {
                let image = field(payload, image_name)
                    .ok_or_else(|| format!("no \"{image_name}\" image"))?;
                let names = serde_json::from_value::<Ordered>(image.clone())
                    .map_err(|e| format!("\"{image_name}\" is not an object: {e}"))?;
                text_state(
                    names.0.iter().map(|(n, _)| n.clone()).collect(),
                    self.keys(None),
                )
            }
        };
        let mut events = Vec::new();
        self.table_state(&table, state.clone(), &mut events);
        let op_ts = field(payload, "ts_ms")
            .and_then(Value::as_i64)
            .map(|ms| ms * 1000);
        for (kind, image_name) in kinds {
            let image = field(payload, image_name)
                .ok_or_else(|| format!("op {op:?} without a \"{image_name}\" image"))?;
            let values = read_image(&state, image, None)?;
            events.push(change(&table, *kind, values, op_ts));
        }
        Ok(Decoded {
            events,
            ends_transaction: true,
        })
    }

    fn canal(&mut self, json: &Value, payload: &[u8]) -> Result<Decoded, String> {
        let none = Decoded {
            events: Vec::new(),
            ends_transaction: true,
        };
        if field(json, "isDdl").and_then(Value::as_bool) == Some(true) {
            return Ok(none);
        }
        let op = field(json, "type")
            .and_then(Value::as_str)
            .ok_or("no \"type\" field")?;
        let op = match op {
            "INSERT" => ChangeKind::Insert,
            "UPDATE" => ChangeKind::UpdateAfter,
            "DELETE" => ChangeKind::Delete,
            "CREATE" | "ALTER" | "ERASE" | "QUERY" | "TRUNCATE" | "RENAME" | "CINDEX"
            | "DINDEX" => return Ok(none),
            other => return Err(format!("unknown Canal type {other:?}")),
        };
        let table = table_of(json, "database", "table")?;
        // mysqlType in message order: re-read the raw message keeping order.
        #[derive(Deserialize)]
        struct Types {
            #[serde(rename = "mysqlType")]
            mysql_type: Option<Ordered>,
        }
        let types: Types =
            serde_json::from_slice(payload).map_err(|e| format!("bad mysqlType: {e}"))?;
        let keys = self.keys(json.get("pkNames"));
        let state = match types.mysql_type {
            Some(types) => canal_state(&types.0, keys)?,
            None => {
                return Err("no \"mysqlType\": Canal messages need it for the column types".into())
            }
        };
        let mut events = Vec::new();
        self.table_state(&table, state.clone(), &mut events);
        let rows = field(json, "data")
            .and_then(Value::as_array)
            .ok_or("no \"data\" array")?;
        let olds = field(json, "old").and_then(Value::as_array);
        let op_ts = field(json, "es")
            .and_then(Value::as_i64)
            .map(|ms| ms * 1000);
        for (i, row) in rows.iter().enumerate() {
            let values = read_image(&state, row, None)?;
            if op == ChangeKind::UpdateAfter {
                let old = olds.and_then(|o| o.get(i));
                let before = read_image(&state, row, old)?;
                events.push(change(&table, ChangeKind::UpdateBefore, before, op_ts));
            }
            events.push(change(&table, op, values, op_ts));
        }
        Ok(Decoded {
            events,
            ends_transaction: true,
        })
    }

    fn maxwell(&mut self, json: &Value, payload: &[u8]) -> Result<Decoded, String> {
        let op = field(json, "type")
            .and_then(Value::as_str)
            .ok_or("no \"type\" field")?;
        let op = match op {
            "insert" | "bootstrap-insert" => ChangeKind::Insert,
            "update" => ChangeKind::UpdateAfter,
            "delete" => ChangeKind::Delete,
            "bootstrap-start" | "bootstrap-complete" | "table-create" | "table-alter"
            | "table-drop" | "database-create" | "database-alter" | "database-drop"
            | "heartbeat" => {
                return Ok(Decoded {
                    events: Vec::new(),
                    ends_transaction: true,
                })
            }
            other => return Err(format!("unknown Maxwell type {other:?}")),
        };
        let table = table_of(json, "database", "table")?;
        #[derive(Deserialize)]
        struct Data {
            data: Option<Ordered>,
        }
        let data: Data =
            serde_json::from_slice(payload).map_err(|e| format!("bad \"data\": {e}"))?;
        let data = data.data.ok_or("no \"data\" object")?;
        // Columns: those known so far, then any new ones in message order.
        let mut names: Vec<String> = self
            .tables
            .get(&table)
            .map(|t| t.schema.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        for (name, _) in &data.0 {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let state = text_state(names, self.keys(json.get("primary_key_columns")));
        let mut events = Vec::new();
        self.table_state(&table, state.clone(), &mut events);
        let row = json.get("data").ok_or("no \"data\" object")?;
        let op_ts = field(json, "ts")
            .and_then(Value::as_i64)
            .map(|s| s * 1_000_000);
        if op == ChangeKind::UpdateAfter {
            let before = read_image(&state, row, json.get("old"))?;
            events.push(change(&table, ChangeKind::UpdateBefore, before, op_ts));
        }
        events.push(change(&table, op, read_image(&state, row, None)?, op_ts));
        // Rows of a transaction carry its xid; the last one "commit": true.
        let in_transaction = field(json, "xid").is_some();
        let commit = field(json, "commit").and_then(Value::as_bool) == Some(true);
        Ok(Decoded {
            events,
            ends_transaction: !in_transaction || commit,
        })
    }
}

fn change(
    table: &SourceTableId,
    kind: ChangeKind,
    values: Vec<CdcValue>,
    op_ts: Option<i64>,
) -> SourceEvent {
    SourceEvent::Change(RowChange {
        table: table.clone(),
        kind,
        values,
        op_ts_micros: op_ts,
    })
}

fn table_of(json: &Value, db: &str, table: &str) -> Result<SourceTableId, String> {
    let db = field(json, db)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no \"{db}\" field"))?;
    let table = field(json, table)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no \"{table}\" field"))?;
    Ok(SourceTableId::new(db, table))
}

fn column(name: &str, data_type: DataType, source_type: &str, keys: &[String]) -> SourceColumn {
    let key = keys.iter().any(|k| k == name);
    SourceColumn {
        name: name.to_string(),
        data_type: if key {
            data_type.with_nullable(false)
        } else {
            data_type
        },
        source_type: source_type.to_string(),
        comment: None,
    }
}

fn text_state(names: Vec<String>, keys: Vec<String>) -> TableState {
    TableState {
        kinds: vec![ValueKind::Text; names.len()],
        schema: SourceSchema {
            columns: names
                .iter()
                .map(|n| column(n, string_type(), "string", &keys))
                .collect(),
            primary_key: keys,
        },
    }
}

/// A MySQL type as Canal spells it (`int(10) unsigned`, `decimal(10,2)`)
/// in information_schema's terms.
fn mysql_column_def(name: &str, spelled: &str) -> ColumnDef {
    let lower = spelled.trim().to_ascii_lowercase();
    let base = lower
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_string();
    let args: Vec<u64> = lower
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .filter(|_| base != "enum" && base != "set")
        .map(|(args, _)| {
            args.split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut def = ColumnDef {
        name: name.to_string(),
        data_type: base.clone(),
        column_type: spelled.to_string(),
        nullable: true,
        ..Default::default()
    };
    match base.as_str() {
        "decimal" | "numeric" | "fixed" => {
            def.numeric_precision = Some(args.first().copied().unwrap_or(10));
            def.numeric_scale = Some(args.get(1).copied().unwrap_or(0));
        }
        "bit" => def.numeric_precision = Some(args.first().copied().unwrap_or(1)),
        "char" | "varchar" | "binary" | "varbinary" => def.char_length = args.first().copied(),
        "time" | "datetime" | "timestamp" => def.datetime_precision = args.first().copied(),
        _ => {}
    }
    def
}

fn canal_state(types: &[(String, Value)], keys: Vec<String>) -> Result<TableState, String> {
    let mut columns = Vec::new();
    let mut kinds = Vec::new();
    for (name, spelled) in types {
        let spelled = spelled
            .as_str()
            .ok_or_else(|| format!("mysqlType of {name} is not a string"))?;
        let mapped = map_column(&mysql_column_def(name, spelled))?;
        columns.push(column(name, mapped.data_type, spelled, &keys));
        kinds.push(ValueKind::Mysql(mapped.kind));
    }
    Ok(TableState {
        schema: SourceSchema {
            columns,
            primary_key: keys,
        },
        kinds,
    })
}

/// The Paimon type of a Debezium (Kafka Connect) field.
fn connect_type(field: &Value) -> Result<(DataType, ValueKind, String), String> {
    let ty = field
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let name = field.get("name").and_then(Value::as_str).unwrap_or("");
    let optional = field
        .get("optional")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let params = field.get("parameters");
    let param = |key: &str| {
        params
            .and_then(|p| p.get(key))
            .and_then(text_of)
            .and_then(|v| v.parse::<u32>().ok())
    };
    let scale = param("scale").unwrap_or(0);
    use DataTypeKind as K;
    let kind = match (ty, name) {
        (_, "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date") => K::Date,
        (_, "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp") => {
            K::Timestamp(3)
        }
        (_, "io.debezium.time.MicroTimestamp") => K::Timestamp(6),
        (_, "io.debezium.time.NanoTimestamp") => K::Timestamp(9),
        (_, "io.debezium.time.ZonedTimestamp") => K::TimestampLtz(6),
        (_, "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time") => K::Time(3),
        (_, "io.debezium.time.MicroTime" | "io.debezium.time.NanoTime") => K::Time(6),
        (_, "org.apache.kafka.connect.data.Decimal") => {
            let precision = param("connect.decimal.precision").unwrap_or(38);
            if precision > 38 {
                K::VarChar(MAX_LENGTH)
            } else {
                K::Decimal { precision, scale }
            }
        }
        ("int8", _) => K::TinyInt,
        ("int16", _) => K::SmallInt,
        ("int32", _) => K::Int,
        ("int64", _) => K::BigInt,
        ("float32", _) => K::Float,
        ("float64", _) => K::Double,
        ("boolean", _) => K::Boolean,
        ("bytes", _) => K::VarBinary(MAX_LENGTH),
        ("string", _) => K::VarChar(MAX_LENGTH),
        (other, _) => {
            return Err(format!(
                "Debezium field type {other:?} has no Paimon mapping"
            ))
        }
    };
    let kind_of_values = ValueKind::Connect {
        ty: ty.to_string(),
        name: name.to_string(),
        scale,
    };
    let spelled = if name.is_empty() {
        ty.to_string()
    } else {
        format!("{ty} ({name})")
    };
    Ok((DataType::new(kind, optional), kind_of_values, spelled))
}

fn debezium_schema(schema: &Value, image: &str, keys: Vec<String>) -> Result<TableState, String> {
    let fields = schema
        .get("fields")
        .and_then(Value::as_array)
        .and_then(|f| {
            f.iter()
                .find(|f| f.get("field").and_then(Value::as_str) == Some(image))
        })
        .and_then(|f| f.get("fields"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the schema has no fields for \"{image}\""))?;
    let mut columns = Vec::new();
    let mut kinds = Vec::new();
    for f in fields {
        let name = f
            .get("field")
            .and_then(Value::as_str)
            .ok_or("a schema field without a name")?;
        let (data_type, kind, spelled) =
            connect_type(f).map_err(|e| format!("field {name}: {e}"))?;
        columns.push(column(name, data_type, &spelled, &keys));
        kinds.push(kind);
    }
    Ok(TableState {
        schema: SourceSchema {
            columns,
            primary_key: keys,
        },
        kinds,
    })
}

/// A row image's values in schema order; `overlay` (Canal's and Maxwell's
/// `old`: the changed columns' previous values) wins where it has a key.
fn read_image(
    state: &TableState,
    image: &Value,
    overlay: Option<&Value>,
) -> Result<Vec<CdcValue>, String> {
    let image = image.as_object().ok_or("a row image is not an object")?;
    let overlay = overlay.and_then(Value::as_object);
    state
        .schema
        .columns
        .iter()
        .zip(&state.kinds)
        .map(|(column, kind)| {
            let value = overlay
                .and_then(|o| o.get(&column.name))
                .or_else(|| image.get(&column.name))
                .unwrap_or(&Value::Null);
            read_value(kind, value).map_err(|e| format!("column {}: {e}", column.name))
        })
        .collect()
}

fn read_value(kind: &ValueKind, value: &Value) -> Result<CdcValue, String> {
    if value.is_null() {
        return Ok(CdcValue::Null);
    }
    match kind {
        ValueKind::Text => Ok(CdcValue::String(text_of(value).unwrap_or_default())),
        ValueKind::Mysql(kind) => from_text(kind, text_of(value).unwrap_or_default().as_bytes()),
        ValueKind::Connect { ty, name, scale } => connect_value(ty, name, *scale, value),
    }
}

fn connect_value(ty: &str, name: &str, scale: u32, value: &Value) -> Result<CdcValue, String> {
    let int = || {
        value
            .as_i64()
            .ok_or_else(|| format!("{value} is not an integer"))
    };
    Ok(match (ty, name) {
        (_, "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date") => {
            CdcValue::Date(int()? as i32)
        }
        (_, "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp") => {
            CdcValue::Timestamp(int()? * 1000)
        }
        (_, "io.debezium.time.MicroTimestamp") => CdcValue::Timestamp(int()?),
        (_, "io.debezium.time.NanoTimestamp") => CdcValue::Timestamp(int()? / 1000),
        (_, "io.debezium.time.ZonedTimestamp") => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("{value} is not a zoned timestamp"))?;
            let ts =
                chrono::DateTime::parse_from_rfc3339(text).map_err(|e| format!("{text:?}: {e}"))?;
            CdcValue::TimestampUtc(ts.timestamp_micros())
        }
        (_, "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time") => {
            CdcValue::Time(int()? * 1000)
        }
        (_, "io.debezium.time.MicroTime") => CdcValue::Time(int()?),
        (_, "io.debezium.time.NanoTime") => CdcValue::Time(int()? / 1000),
        (_, "org.apache.kafka.connect.data.Decimal") => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("{value} is not a base64 decimal"))?;
            let bytes = base64_decode(text).ok_or_else(|| format!("{text:?} is not base64"))?;
            if bytes.len() > 16 {
                return Err(format!("decimal {text:?} has more than 38 digits"));
            }
            let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
            let mut unscaled: i128 = if negative { -1 } else { 0 };
            for b in bytes {
                unscaled = (unscaled << 8) | b as i128;
            }
            CdcValue::Decimal(unscaled, scale)
        }
        ("int8" | "int16" | "int32" | "int64", _) => CdcValue::Int(int()?),
        ("float32", _) => CdcValue::Float(
            value
                .as_f64()
                .ok_or_else(|| format!("{value} is not a number"))? as f32,
        ),
        ("float64", _) => CdcValue::Double(
            value
                .as_f64()
                .ok_or_else(|| format!("{value} is not a number"))?,
        ),
        ("boolean", _) => CdcValue::Boolean(
            value
                .as_bool()
                .ok_or_else(|| format!("{value} is not a boolean"))?,
        ),
        ("bytes", _) => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("{value} is not base64"))?;
            CdcValue::Bytes(base64_decode(text).ok_or_else(|| format!("{text:?} is not base64"))?)
        }
        _ => CdcValue::String(text_of(value).unwrap_or_default()),
    })
}

/// Standard base64 (Kafka Connect's JSON converter encodes bytes so).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_canal_types() {
        assert_eq!(base64_decode("AeJA").unwrap(), vec![0x01, 0xe2, 0x40]);
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        let def = mysql_column_def("p", "decimal(10,2) unsigned");
        assert_eq!(
            (def.numeric_precision, def.numeric_scale),
            (Some(10), Some(2))
        );
        assert_eq!(mysql_column_def("e", "enum('a','b')").data_type, "enum");
    }

    #[test]
    fn unknown_and_corrupt_messages_are_errors() {
        let mut decoder = Decoder::new(MessageFormat::CanalJson, Vec::new());
        assert!(decoder
            .decode(b"{not json")
            .unwrap_err()
            .contains("not JSON"));
        assert!(decoder
            .decode(br#"{"type":"UPSERT"}"#)
            .unwrap_err()
            .contains("UPSERT"));
    }
}
