//! Read-only views of a table's metadata for its system tables (`t$files`,
//! `t$tags`, `t$consumers`, ...): the metadata types they show, consumers,
//! tags with the extra keys Paimon writes into tag files, schemas as JSON and
//! values rendered as Paimon's Java code renders them.
//!
//! Nothing here changes a table; callers own the presentation.

use serde_json::Value;
use tidelake_format::binary_row::deserialize_binary_row;
use tidelake_format::path::partition_value_string;
use tidelake_store::StoreError;

use crate::error::{EngineError, Result};
use crate::manifests::ManifestStore;
use crate::snapshots::file_name;
use crate::table::Table;
use crate::{DataType, Datum, TableSchema};

pub use tidelake_format::manifest::{DataFileMeta, ManifestEntry, ManifestFileMeta, SimpleStats};
pub use tidelake_format::snapshot::{CommitKind, Snapshot};

const TAG_PREFIX: &str = "tag-";

/// The manifest reader of a table (with its manifest codec option).
pub fn manifest_store(table: &Table) -> Result<ManifestStore> {
    table.manifest_store()
}

/// One tag: its snapshot plus what Paimon's Java `Tag` adds to the
/// snapshot JSON when it creates the tag.
#[derive(Clone, Debug)]
pub struct TagInfo {
    pub name: String,
    pub snapshot: Snapshot,
    /// `tagCreateTime` as milliseconds since the epoch (a local date-time in
    /// the file, read as UTC).
    pub create_time_millis: Option<i64>,
    /// `tagTimeRetained`, rendered as Java's `Duration.toString` (`PT1H`).
    pub time_retained: Option<String>,
}

/// Every tag of the table, by snapshot id then name.
pub async fn list_tag_infos(table: &Table) -> Result<Vec<TagInfo>> {
    list_tag_infos_at(&table.store, table.paths()).await
}

/// Every tag of the branch `paths` name, by snapshot id then name.
pub(crate) async fn list_tag_infos_at(
    store: &tidelake_store::WarehouseStore,
    paths: &crate::kv::TablePaths,
) -> Result<Vec<TagInfo>> {
    let dir = paths.tag_dir();
    let entries = match store.list(&dir).await {
        Ok(e) => e,
        Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut tags = Vec::new();
    for e in entries {
        let Some(name) = file_name(&e.path).strip_prefix(TAG_PREFIX) else {
            continue;
        };
        let bytes = match store.get(&e.path).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => continue,
            Err(err) => return Err(err.into()),
        };
        let snapshot =
            Snapshot::from_json(&bytes).map_err(|err| EngineError::format(e.path.clone(), err))?;
        // The snapshot parsed, so the JSON does too.
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        tags.push(TagInfo {
            name: name.to_string(),
            snapshot,
            create_time_millis: json.get("tagCreateTime").and_then(local_date_time_millis),
            time_retained: json.get("tagTimeRetained").and_then(duration_string),
        });
    }
    tags.sort_by(|a, b| (a.snapshot.id, &a.name).cmp(&(b.snapshot.id, &b.name)));
    Ok(tags)
}

/// Jackson writes a `LocalDateTime` as `[y, m, d, h, min, s, nanos]` (or as
/// an ISO string when configured so).
fn local_date_time_millis(v: &Value) -> Option<i64> {
    use chrono::{NaiveDate, NaiveDateTime};
    let date_time = match v {
        Value::Array(parts) => {
            let n = |i: usize| parts.get(i).and_then(Value::as_i64).unwrap_or(0);
            let date = NaiveDate::from_ymd_opt(
                i32::try_from(n(0)).ok()?,
                u32::try_from(n(1)).ok()?,
                u32::try_from(n(2)).ok()?,
            )?;
            date.and_hms_nano_opt(
                u32::try_from(n(3)).ok()?,
                u32::try_from(n(4)).ok()?,
                u32::try_from(n(5)).ok()?,
                u32::try_from(n(6)).ok()?,
            )?
        }
        Value::String(s) => NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
            .ok()?,
        _ => return None,
    };
    Some(date_time.and_utc().timestamp_millis())
}

/// Jackson writes a `Duration` as seconds (`3600.000000000`) or as its
/// ISO-8601 text; Paimon shows it as `Duration.toString`.
fn duration_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            let seconds = n.as_f64()?;
            Some(java_duration(seconds))
        }
        _ => None,
    }
}

fn java_duration(seconds: f64) -> String {
    if seconds == 0.0 {
        return "PT0S".to_string();
    }
    let whole = seconds.trunc() as i64;
    let (hours, minutes, secs) = (whole / 3600, whole % 3600 / 60, whole % 60);
    let fraction = seconds - whole as f64;
    let mut out = String::from("PT");
    if hours != 0 {
        out.push_str(&format!("{hours}H"));
    }
    if minutes != 0 {
        out.push_str(&format!("{minutes}M"));
    }
    if secs != 0 || fraction != 0.0 {
        if fraction != 0.0 {
            let text = format!("{:.9}", secs as f64 + fraction);
            out.push_str(text.trim_end_matches('0'));
        } else {
            out.push_str(&secs.to_string());
        }
        out.push('S');
    }
    out
}

/// A schema's parts as the compact JSON Paimon's `$schemas` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaJson {
    pub fields: String,
    pub partition_keys: String,
    pub primary_keys: String,
    pub options: String,
}

pub fn schema_json(schema: &TableSchema) -> SchemaJson {
    let fields: Vec<Value> = schema.fields.iter().map(|f| f.to_json()).collect();
    // Serializing strings, lists and string maps cannot fail.
    let text = |v: Value| serde_json::to_string(&v).unwrap_or_default();
    SchemaJson {
        fields: text(Value::Array(fields)),
        partition_keys: text(Value::from(schema.partition_keys.clone())),
        primary_keys: text(Value::from(schema.primary_keys.clone())),
        options: text(Value::Object(
            schema
                .options
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )),
    }
}

/// Decodes a serialized BinaryRow (partition, key, statistics) of `types`.
pub fn decode_row(bytes: &[u8], types: &[DataType]) -> Result<Vec<Datum>> {
    deserialize_binary_row(bytes, types).map_err(|e| EngineError::format("binary row", e))
}

/// How a value is shown as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueText {
    /// SQL `CAST(v AS STRING)` (Paimon's partition strings): dates as
    /// `2024-03-15`, timestamps as `2024-03-15 13:45:30.123`.
    Sql,
    /// Java's `toString` of Paimon's internal objects (statistics and keys
    /// in `$files`): dates as day numbers, timestamps as `2024-03-15T13:45:30.123`.
    Internal,
}

/// A value as Paimon's system tables show it; `None` for NULL.
pub fn value_text(value: &Datum, ty: &DataType, style: ValueText) -> Option<String> {
    match partition_value_string(value, ty, style == ValueText::Internal) {
        Ok(text) => text,
        // Bytes have no readable Java form: show them as hex.
        Err(_) => match value {
            Datum::Bytes(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
            other => Some(format!("{other:?}")),
        },
    }
}

/// The full URI of a data file, as `$files.file_path` shows it.
pub fn data_file_uri(
    table: &Table,
    partition_path: &str,
    bucket: i32,
    file: &DataFileMeta,
) -> String {
    if let Some(external) = &file.external_path {
        return external.clone();
    }
    format!(
        "{}/{}",
        table.store.uri().trim_end_matches('/'),
        table
            .paths()
            .data_file(partition_path, bucket, &file.file_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_like_java() {
        assert_eq!(java_duration(3600.0), "PT1H");
        assert_eq!(java_duration(5400.0), "PT1H30M");
        assert_eq!(java_duration(1.5), "PT1.5S");
        assert_eq!(java_duration(0.0), "PT0S");
        assert_eq!(
            duration_string(&Value::String("PT2H".into())).as_deref(),
            Some("PT2H")
        );
    }

    #[test]
    fn tag_create_times_parse_from_jackson_forms() {
        let array: Value = serde_json::from_str("[2024,1,2,3,4,5,6000000]").unwrap();
        let millis = local_date_time_millis(&array).unwrap();
        assert_eq!(millis, 1_704_164_645_006);
        let text = Value::String("2024-01-02T03:04:05.006".into());
        assert_eq!(local_date_time_millis(&text), Some(millis));
        assert_eq!(local_date_time_millis(&Value::Bool(true)), None);
    }

    #[test]
    fn schema_parts_are_compact_json() {
        let schema = TableSchema {
            version: 3,
            id: 0,
            fields: vec![crate::DataField::new(
                0,
                "id",
                DataType::new(crate::DataTypeKind::BigInt, false),
            )],
            highest_field_id: 0,
            partition_keys: vec![],
            primary_keys: vec!["id".into()],
            options: [("bucket".to_string(), "2".to_string())].into(),
            comment: None,
            time_millis: 0,
        };
        let json = schema_json(&schema);
        assert_eq!(
            json.fields,
            r#"[{"id":0,"name":"id","type":"BIGINT NOT NULL"}]"#
        );
        assert_eq!(json.partition_keys, "[]");
        assert_eq!(json.primary_keys, r#"["id"]"#);
        assert_eq!(json.options, r#"{"bucket":"2"}"#);
    }
}
