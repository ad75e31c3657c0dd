//! Table schemas: the `schema/schema-{N}` JSON documents.
//!
//! Files are written exactly as Paimon's Java writer lays them out (key order
//! of `SchemaSerializer`, Jackson's default pretty printer), and files from
//! every Paimon version are read, with the defaults older versions implied.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use serde_json::ser::Formatter;
use serde_json::Value;

use crate::error::{FormatError, Result};
use crate::types::DataField;

/// Schema file version written by current Paimon.
pub const CURRENT_SCHEMA_VERSION: i32 = 3;
/// Version of schemas written by Paimon 0.7 and earlier (also assumed when
/// the file has no version): their default bucket count was 1.
pub const PAIMON_07_SCHEMA_VERSION: i32 = 1;
/// Version of schemas written by Paimon 0.8: their default file format was ORC.
pub const PAIMON_08_SCHEMA_VERSION: i32 = 2;

/// Table option naming the bucket key columns (comma separated).
pub const BUCKET_KEY_OPTION: &str = "bucket-key";

/// One version of a table's schema.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    pub version: i32,
    pub id: i64,
    pub fields: Vec<DataField>,
    /// Highest field id ever given out (nested fields included); new columns
    /// get ids above it.
    pub highest_field_id: i32,
    pub partition_keys: Vec<String>,
    pub primary_keys: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub comment: Option<String>,
    pub time_millis: i64,
}

/// The document as read; fields are checked and converted afterwards.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaFileIn {
    version: Option<i32>,
    id: i64,
    fields: Vec<Value>,
    highest_field_id: i32,
    #[serde(default)]
    partition_keys: Vec<String>,
    #[serde(default)]
    primary_keys: Vec<String>,
    #[serde(default)]
    options: BTreeMap<String, Value>,
    comment: Option<String>,
    time_millis: Option<i64>,
}

/// The document as written, keys in Java's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SchemaFileOut<'a> {
    version: i32,
    id: i64,
    fields: &'a [DataField],
    highest_field_id: i32,
    partition_keys: &'a [String],
    primary_keys: &'a [String],
    options: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    time_millis: i64,
}

impl TableSchema {
    /// Reads a schema file. Options of version 1 and 2 files get the
    /// defaults those Paimon versions implied (`bucket` = 1 and
    /// `file.format` = orc when absent), as Paimon's own reader does.
    pub fn from_json(bytes: &[u8]) -> Result<TableSchema> {
        let file: SchemaFileIn =
            serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
                what: "table schema",
                source,
            })?;
        let fields = file
            .fields
            .iter()
            .map(DataField::parse_json)
            .collect::<Result<Vec<_>>>()?;
        let mut options = BTreeMap::new();
        for (key, value) in file.options {
            // Paimon reads option values as text, whatever JSON type they have.
            let text = match value {
                Value::String(text) => text,
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                other => {
                    return Err(FormatError::Invalid(format!(
                        "table schema {}: option {key:?} has non-scalar value {other}",
                        file.id
                    )))
                }
            };
            options.insert(key, text);
        }
        let version = file.version.unwrap_or(PAIMON_07_SCHEMA_VERSION);
        if version <= PAIMON_07_SCHEMA_VERSION {
            options
                .entry("bucket".to_string())
                .or_insert_with(|| "1".to_string());
        }
        if version <= PAIMON_08_SCHEMA_VERSION {
            options
                .entry("file.format".to_string())
                .or_insert_with(|| "orc".to_string());
        }
        let schema = TableSchema {
            version,
            id: file.id,
            fields,
            highest_field_id: file.highest_field_id,
            partition_keys: file.partition_keys,
            primary_keys: file.primary_keys,
            options,
            comment: file.comment,
            time_millis: file.time_millis.unwrap_or(0),
        };
        schema.check_keys()?;
        Ok(schema)
    }

    /// The schema file, as Paimon's Java writer lays it out.
    pub fn to_json(&self) -> Result<String> {
        let file = SchemaFileOut {
            version: self.version,
            id: self.id,
            fields: &self.fields,
            highest_field_id: self.highest_field_id,
            partition_keys: &self.partition_keys,
            primary_keys: &self.primary_keys,
            options: &self.options,
            comment: self.comment.as_deref(),
            time_millis: self.time_millis,
        };
        to_pretty_json(&file).map_err(|source| FormatError::Json {
            what: "table schema",
            source,
        })
    }

    /// Primary keys without the partition keys: the key of rows within a
    /// bucket (Paimon's "trimmed primary key").
    pub fn trimmed_primary_keys(&self) -> Vec<String> {
        self.primary_keys
            .iter()
            .filter(|key| !self.partition_keys.contains(key))
            .cloned()
            .collect()
    }

    /// Columns hashed to pick a bucket: option `bucket-key` (comma
    /// separated), else the trimmed primary keys. Empty for an append table
    /// without a bucket key.
    pub fn bucket_keys(&self) -> Vec<String> {
        let configured: Vec<String> = self
            .options
            .get(BUCKET_KEY_OPTION)
            .map(|keys| {
                keys.split(',')
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if configured.is_empty() {
            self.trimmed_primary_keys()
        } else {
            configured
        }
    }

    /// The table's columns as Arrow fields, nullability from the types, no
    /// field metadata.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.fields
                .iter()
                .map(DataField::to_arrow_field)
                .collect::<Vec<_>>(),
        ))
    }

    pub fn field(&self, name: &str) -> Option<&DataField> {
        self.fields.iter().find(|field| field.name == name)
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|field| field.name == name)
    }

    /// Partition and primary keys must name columns.
    fn check_keys(&self) -> Result<()> {
        for (what, keys) in [
            ("partition key", &self.partition_keys),
            ("primary key", &self.primary_keys),
        ] {
            if let Some(missing) = keys.iter().find(|key| self.field(key).is_none()) {
                return Err(FormatError::Invalid(format!(
                    "table schema {}: {what} {missing:?} is not a column",
                    self.id
                )));
            }
        }
        Ok(())
    }
}

/// Writes `value` as Paimon's Java writer does (Jackson's default pretty
/// printer): two-space indented objects, `"key" : value`, arrays inline as
/// `[ 1, 2 ]`, empty containers as `{ }` and `[ ]`, no final newline.
pub fn to_pretty_json<T: Serialize + ?Sized>(
    value: &T,
) -> std::result::Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, JacksonPrettyFormatter::default());
    value.serialize(&mut serializer)?;
    // serde_json writes only valid UTF-8.
    String::from_utf8(out)
        .map_err(|error| serde_json::Error::io(io::Error::new(io::ErrorKind::InvalidData, error)))
}

/// Mirror of Jackson's `DefaultPrettyPrinter`: objects indent their entries
/// on new lines; arrays keep values on the line, separated by spaces, and do
/// not add indentation for nested objects.
#[derive(Default)]
struct JacksonPrettyFormatter {
    /// Number of objects open around the current position.
    depth: usize,
    /// Whether each open object has had an entry yet.
    object_has_entries: Vec<bool>,
}

impl JacksonPrettyFormatter {
    fn newline_and_indent<W: ?Sized + io::Write>(&self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b"\n")?;
        for _ in 0..self.depth {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }
}

impl Formatter for JacksonPrettyFormatter {
    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.object_has_entries.push(false);
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if self.object_has_entries.pop().unwrap_or(false) {
            self.newline_and_indent(writer)?;
        } else {
            writer.write_all(b" ")?;
        }
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if let Some(has_entries) = self.object_has_entries.last_mut() {
            *has_entries = true;
        }
        if !first {
            writer.write_all(b",")?;
        }
        self.newline_and_indent(writer)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b" : ")
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b" ]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        writer.write_all(if first { b" " } else { b", " })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DataType, DataTypeKind, MAX_LENGTH};
    use arrow_schema::{DataType as ArrowType, Field};

    const PYPAIMON_SCHEMA: &[u8] = include_bytes!("../tests/data/pypaimon-schema-0.json");

    fn example() -> TableSchema {
        let mut comment_field = DataField::new(
            2,
            "v",
            DataType::new(
                DataTypeKind::Decimal {
                    precision: 10,
                    scale: 2,
                },
                true,
            ),
        );
        comment_field.description = Some("price".into());
        TableSchema {
            version: 3,
            id: 0,
            fields: vec![
                DataField::new(0, "k", DataType::new(DataTypeKind::Int, false)),
                DataField::new(
                    1,
                    "dt",
                    DataType::new(DataTypeKind::VarChar(MAX_LENGTH), false),
                ),
                comment_field,
                DataField::new(
                    3,
                    "tags",
                    DataType::new(DataTypeKind::Array(Box::new(DataType::string())), true),
                ),
            ],
            highest_field_id: 3,
            partition_keys: vec!["dt".into()],
            primary_keys: vec!["dt".into(), "k".into()],
            options: BTreeMap::from([
                ("bucket".into(), "4".into()),
                ("file.format".into(), "parquet".into()),
            ]),
            comment: None,
            time_millis: 1_727_338_236_066,
        }
    }

    #[test]
    fn writes_java_layout() {
        let expected = r#"{
  "version" : 3,
  "id" : 0,
  "fields" : [ {
    "id" : 0,
    "name" : "k",
    "type" : "INT NOT NULL"
  }, {
    "id" : 1,
    "name" : "dt",
    "type" : "STRING NOT NULL"
  }, {
    "id" : 2,
    "name" : "v",
    "type" : "DECIMAL(10, 2)",
    "description" : "price"
  }, {
    "id" : 3,
    "name" : "tags",
    "type" : {
      "type" : "ARRAY",
      "element" : "STRING"
    }
  } ],
  "highestFieldId" : 3,
  "partitionKeys" : [ "dt" ],
  "primaryKeys" : [ "dt", "k" ],
  "options" : {
    "bucket" : "4",
    "file.format" : "parquet"
  },
  "timeMillis" : 1727338236066
}"#;
        assert_eq!(example().to_json().unwrap(), expected);
    }

    #[test]
    fn writes_empty_containers_and_comment_like_java() {
        let schema = TableSchema {
            partition_keys: vec![],
            primary_keys: vec![],
            options: BTreeMap::new(),
            comment: Some("c".into()),
            fields: vec![],
            ..example()
        };
        let json = schema.to_json().unwrap();
        assert!(json.contains("\"fields\" : [ ],\n"), "{json}");
        assert!(
            json.contains(
                "\"partitionKeys\" : [ ],\n  \"primaryKeys\" : [ ],\n  \"options\" : { },\n"
            ),
            "{json}"
        );
        assert!(
            json.ends_with("\"comment\" : \"c\",\n  \"timeMillis\" : 1727338236066\n}"),
            "{json}"
        );
    }

    #[test]
    fn round_trips() {
        let schema = example();
        assert_eq!(
            TableSchema::from_json(schema.to_json().unwrap().as_bytes()).unwrap(),
            schema
        );
        let commented = TableSchema {
            comment: Some("a \"table\"\n".into()),
            ..example()
        };
        assert_eq!(
            TableSchema::from_json(commented.to_json().unwrap().as_bytes()).unwrap(),
            commented
        );
    }

    #[test]
    fn reads_pypaimon_schema_file() {
        let schema = TableSchema::from_json(PYPAIMON_SCHEMA).unwrap();
        assert_eq!(
            (schema.version, schema.id, schema.highest_field_id),
            (3, 0, 19)
        );
        assert_eq!(schema.fields.len(), 18);
        assert_eq!(schema.partition_keys, vec!["dt"]);
        assert_eq!(schema.primary_keys, vec!["dt", "id"]);
        assert_eq!(
            schema.options,
            BTreeMap::from([("bucket".to_string(), "2".to_string())])
        );
        assert_eq!(schema.comment.as_deref(), Some("reference table"));
        assert_eq!(schema.time_millis, 1_795_570_054_274);
        let types: Vec<String> = schema
            .fields
            .iter()
            .map(|f| f.data_type.to_string())
            .collect();
        assert_eq!(
            types,
            vec![
                "BIGINT NOT NULL",
                "STRING NOT NULL",
                "BOOLEAN",
                "TINYINT",
                "SMALLINT",
                "INT",
                "FLOAT",
                "DOUBLE",
                "DECIMAL(10, 2)",
                "BYTES",
                "DATE",
                "TIME(0)",
                "TIMESTAMP(6)",
                "TIMESTAMP(3)",
                "TIMESTAMP(6) WITH LOCAL TIME ZONE",
                "ARRAY<INT>",
                "MAP<STRING NOT NULL, BIGINT>",
                "ROW<`x` INT NOT NULL, `y` STRING>",
            ]
        );
        let row = schema.field("r").unwrap();
        assert_eq!(row.description.as_deref(), Some("a nested row"));
        let DataTypeKind::Row(nested) = &row.data_type.kind else {
            panic!("not a row")
        };
        assert_eq!(
            nested.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![18, 19]
        );
        assert_eq!(schema.trimmed_primary_keys(), vec!["id"]);
        assert_eq!(schema.bucket_keys(), vec!["id"]);
        // Writing it again keeps every fact (the layout becomes Java's).
        assert_eq!(
            TableSchema::from_json(schema.to_json().unwrap().as_bytes()).unwrap(),
            schema
        );
    }

    #[test]
    fn old_versions_get_their_implied_defaults() {
        let v1 =
            br#"{"id": 0, "fields": [{"id": 0, "name": "a", "type": "INT"}], "highestFieldId": 0,
            "partitionKeys": [], "primaryKeys": [], "options": {}}"#;
        let schema = TableSchema::from_json(v1).unwrap();
        assert_eq!(schema.version, 1);
        assert_eq!(schema.time_millis, 0);
        assert_eq!(schema.options.get("bucket").map(String::as_str), Some("1"));
        assert_eq!(
            schema.options.get("file.format").map(String::as_str),
            Some("orc")
        );

        let v2 =
            br#"{"version": 2, "id": 1, "fields": [], "highestFieldId": -1, "partitionKeys": [],
            "primaryKeys": [], "options": {"bucket": 3}, "timeMillis": 5, "somethingNew": true}"#;
        let schema = TableSchema::from_json(v2).unwrap();
        assert_eq!(schema.options.get("bucket").map(String::as_str), Some("3"));
        assert_eq!(
            schema.options.get("file.format").map(String::as_str),
            Some("orc")
        );

        let v3 =
            br#"{"version": 3, "id": 1, "fields": [], "highestFieldId": -1, "partitionKeys": [],
            "primaryKeys": [], "options": {}, "timeMillis": 5}"#;
        assert!(TableSchema::from_json(v3).unwrap().options.is_empty());
    }

    #[test]
    fn bad_documents_are_reported() {
        let missing =
            TableSchema::from_json(br#"{"version": 3, "id": 0, "fields": []}"#).unwrap_err();
        assert!(missing.to_string().contains("highestFieldId"), "{missing}");
        let bad_type = br#"{"id": 0, "fields": [{"id": 0, "name": "a", "type": "INTT"}], "highestFieldId": 0}"#;
        let error = TableSchema::from_json(bad_type).unwrap_err();
        assert!(
            error.to_string().contains("unknown type name INTT"),
            "{error}"
        );
        let bad_key = br#"{"id": 4, "fields": [], "highestFieldId": 0, "primaryKeys": ["zz"]}"#;
        let error = TableSchema::from_json(bad_key).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("table schema 4: primary key \"zz\" is not a column"),
            "{error}"
        );
        let bad_option = br#"{"id": 0, "fields": [], "highestFieldId": 0, "options": {"a": [1]}}"#;
        assert!(TableSchema::from_json(bad_option)
            .unwrap_err()
            .to_string()
            .contains("option \"a\""));
        assert!(TableSchema::from_json(b"not json").is_err());
    }

    #[test]
    fn keys_and_lookups() {
        let mut schema = example();
        assert_eq!(schema.trimmed_primary_keys(), vec!["k"]);
        assert_eq!(schema.bucket_keys(), vec!["k"]);
        schema
            .options
            .insert(BUCKET_KEY_OPTION.into(), " v , tags,".into());
        assert_eq!(schema.bucket_keys(), vec!["v", "tags"]);
        assert_eq!(schema.field_index("v"), Some(2));
        assert_eq!(schema.field("tags").map(|f| f.id), Some(3));
        assert_eq!(schema.field("V"), None);
        assert_eq!(schema.field_index("nope"), None);
    }

    #[test]
    fn arrow_schema_has_columns_without_metadata() {
        let arrow = example().arrow_schema();
        let expected = Schema::new(vec![
            Field::new("k", ArrowType::Int32, false),
            Field::new("dt", ArrowType::Utf8, false),
            Field::new("v", ArrowType::Decimal128(10, 2), true),
            Field::new(
                "tags",
                ArrowType::List(Arc::new(Field::new("element", ArrowType::Utf8, true))),
                true,
            ),
        ]);
        assert_eq!(arrow.as_ref(), &expected);
        assert!(arrow.fields().iter().all(|f| f.metadata().is_empty()));
    }
}
