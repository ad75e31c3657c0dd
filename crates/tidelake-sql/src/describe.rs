//! What `DESCRIBE`, `SHOW CREATE TABLE`, `SHOW TABLES` and `SHOW DATABASES`
//! print: Paimon types spelled the way `CREATE TABLE` accepts them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use tidelake_engine::{DataType, DataTypeKind, TableSchema};

use crate::error::Result;
use crate::watermark;

/// The SQL spelling of a type, without its nullability.
pub(crate) fn sql_type(data_type: &DataType) -> String {
    use DataTypeKind as K;
    const MAX: u32 = i32::MAX as u32;
    match &data_type.kind {
        K::Boolean => "BOOLEAN".into(),
        K::TinyInt => "TINYINT".into(),
        K::SmallInt => "SMALLINT".into(),
        K::Int => "INT".into(),
        K::BigInt => "BIGINT".into(),
        K::Float => "FLOAT".into(),
        K::Double => "DOUBLE".into(),
        K::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
        K::Char(n) => format!("CHAR({n})"),
        K::VarChar(MAX) => "STRING".into(),
        K::VarChar(n) => format!("VARCHAR({n})"),
        K::Binary(n) => format!("BINARY({n})"),
        K::VarBinary(MAX) => "BYTES".into(),
        K::VarBinary(n) => format!("VARBINARY({n})"),
        K::Date => "DATE".into(),
        K::Time(p) => format!("TIME({p})"),
        K::Timestamp(p) => format!("TIMESTAMP({p})"),
        K::TimestampLtz(p) => format!("TIMESTAMP_LTZ({p})"),
        K::Array(inner) => format!("ARRAY<{}>", sql_type_with_null(inner)),
        K::Multiset(inner) => format!("MULTISET<{}>", sql_type_with_null(inner)),
        K::Map(k, v) => format!("MAP<{}, {}>", sql_type_with_null(k), sql_type_with_null(v)),
        K::Row(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        quote_identifier(&f.name),
                        sql_type_with_null(&f.data_type)
                    )
                })
                .collect();
            format!("ROW<{}>", parts.join(", "))
        }
    }
}

/// The SQL spelling of a type with ` NOT NULL` when it is not nullable.
pub(crate) fn sql_type_with_null(data_type: &DataType) -> String {
    if data_type.is_nullable() {
        sql_type(data_type)
    } else {
        format!("{} NOT NULL", sql_type(data_type))
    }
}

/// PostgreSQL's reserved words: names spelled like them must be quoted.
const RESERVED_WORDS: &[&str] = &[
    "ALL",
    "ANALYSE",
    "ANALYZE",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "ASC",
    "ASYMMETRIC",
    "BOTH",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "CONSTRAINT",
    "CREATE",
    "CURRENT_CATALOG",
    "CURRENT_DATE",
    "CURRENT_ROLE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "DEFAULT",
    "DEFERRABLE",
    "DESC",
    "DISTINCT",
    "DO",
    "ELSE",
    "END",
    "EXCEPT",
    "FALSE",
    "FETCH",
    "FOR",
    "FOREIGN",
    "FROM",
    "GRANT",
    "GROUP",
    "HAVING",
    "IN",
    "INITIALLY",
    "INTERSECT",
    "INTO",
    "LATERAL",
    "LEADING",
    "LIMIT",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "NOT",
    "NULL",
    "OFFSET",
    "ON",
    "ONLY",
    "OR",
    "ORDER",
    "PLACING",
    "PRIMARY",
    "REFERENCES",
    "RETURNING",
    "SELECT",
    "SESSION_USER",
    "SOME",
    "SYMMETRIC",
    "TABLE",
    "THEN",
    "TO",
    "TRAILING",
    "TRUE",
    "UNION",
    "UNIQUE",
    "USER",
    "USING",
    "VARIADIC",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

/// An identifier as it must be written to mean exactly this name.
pub(crate) fn quote_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED_WORDS.contains(&name.to_ascii_uppercase().as_str());
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

pub(crate) fn quote_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// One text column named `name`, one row per value.
pub(crate) fn names_batch(name: &str, values: &[String]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, ArrowType::Utf8, false)]));
    let column: ArrayRef = Arc::new(StringArray::from_iter_values(values));
    Ok(RecordBatch::try_new(schema, vec![column])?)
}

/// `DESCRIBE`: a row per column with its type, nullability, key roles and comment.
pub(crate) fn describe_batch(schema: &TableSchema) -> Result<RecordBatch> {
    let out = Arc::new(Schema::new(vec![
        Field::new("column_name", ArrowType::Utf8, false),
        Field::new("data_type", ArrowType::Utf8, false),
        Field::new("nullable", ArrowType::Boolean, false),
        Field::new("primary_key", ArrowType::Boolean, false),
        Field::new("partition_key", ArrowType::Boolean, false),
        Field::new("comment", ArrowType::Utf8, true),
    ]));
    let fields = &schema.fields;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            fields.iter().map(|f| f.name.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            fields.iter().map(|f| sql_type(&f.data_type)),
        )),
        Arc::new(BooleanArray::from_iter(
            fields.iter().map(|f| Some(f.data_type.is_nullable())),
        )),
        Arc::new(BooleanArray::from_iter(
            fields
                .iter()
                .map(|f| Some(schema.primary_keys.contains(&f.name))),
        )),
        Arc::new(BooleanArray::from_iter(
            fields
                .iter()
                .map(|f| Some(schema.partition_keys.contains(&f.name))),
        )),
        Arc::new(StringArray::from_iter(
            fields.iter().map(|f| f.description.as_deref()),
        )),
    ];
    Ok(RecordBatch::try_new(out, columns)?)
}

/// `SHOW CREATE TABLE`: a statement that creates the same table.
pub(crate) fn create_statement(database: &str, table: &str, schema: &TableSchema) -> String {
    let mut lines: Vec<String> = schema
        .fields
        .iter()
        .map(|f| {
            let mut line = format!(
                "  {} {}",
                quote_identifier(&f.name),
                sql_type_with_null(&f.data_type)
            );
            if let Some(c) = &f.description {
                line.push_str(&format!(" COMMENT {}", quote_string(c)));
            }
            line
        })
        .collect();
    if !schema.primary_keys.is_empty() {
        let keys: Vec<String> = schema
            .primary_keys
            .iter()
            .map(|k| quote_identifier(k))
            .collect();
        lines.push(format!("  PRIMARY KEY ({}) NOT ENFORCED", keys.join(", ")));
    }
    // A watermark prints as the clause that declares it, not as options.
    let mut options = schema.options.clone();
    if let (Some(column), Some(expr)) = (
        options.get(watermark::ROWTIME_KEY).cloned(),
        options.get(watermark::EXPR_KEY).cloned(),
    ) {
        lines.push(format!(
            "  WATERMARK FOR {} AS {expr}",
            quote_identifier(&column)
        ));
        for key in [
            watermark::ROWTIME_KEY,
            watermark::EXPR_KEY,
            watermark::DATA_TYPE_KEY,
        ] {
            options.remove(key);
        }
    }
    let mut sql = format!(
        "CREATE TABLE {}.{} (\n{}\n)",
        quote_identifier(database),
        quote_identifier(table),
        lines.join(",\n")
    );
    if let Some(c) = &schema.comment {
        sql.push_str(&format!("\nCOMMENT {}", quote_string(c)));
    }
    if !schema.partition_keys.is_empty() {
        let keys: Vec<String> = schema
            .partition_keys
            .iter()
            .map(|k| quote_identifier(k))
            .collect();
        sql.push_str(&format!("\nPARTITIONED BY ({})", keys.join(", ")));
    }
    if !options.is_empty() {
        let options: Vec<String> = options
            .iter()
            .map(|(k, v)| format!("  {} = {}", quote_string(k), quote_string(v)))
            .collect();
        sql.push_str(&format!("\nWITH (\n{}\n)", options.join(",\n")));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelake_engine::DataField;

    #[test]
    fn types_print_in_create_table_spelling() {
        let int = DataType::new(DataTypeKind::Int, false);
        let map = DataType::new(
            DataTypeKind::Map(
                Box::new(DataType::string().with_nullable(false)),
                Box::new(int.clone()),
            ),
            true,
        );
        assert_eq!(sql_type(&map), "MAP<STRING NOT NULL, INT NOT NULL>");
        let row = DataType::new(
            DataTypeKind::Row(vec![DataField {
                id: 1,
                name: "X y".into(),
                data_type: int,
                description: None,
            }]),
            true,
        );
        assert_eq!(sql_type(&row), "ROW<\"X y\" INT NOT NULL>");
        assert_eq!(
            sql_type(&DataType::new(DataTypeKind::VarChar(10), true)),
            "VARCHAR(10)"
        );
        assert_eq!(
            sql_type(&DataType::new(DataTypeKind::TimestampLtz(3), true)),
            "TIMESTAMP_LTZ(3)"
        );
    }

    #[test]
    fn create_statement_round_trips_names_and_options() {
        let schema = TableSchema {
            version: 3,
            id: 0,
            fields: vec![
                DataField {
                    id: 0,
                    name: "id".into(),
                    data_type: DataType::new(DataTypeKind::BigInt, false),
                    description: None,
                },
                DataField {
                    id: 1,
                    name: "Dt".into(),
                    data_type: DataType::string().with_nullable(false),
                    description: Some("it's a day".into()),
                },
            ],
            highest_field_id: 1,
            partition_keys: vec!["Dt".into()],
            primary_keys: vec!["id".into(), "Dt".into()],
            options: [("bucket".to_string(), "2".to_string())]
                .into_iter()
                .collect(),
            comment: None,
            time_millis: 0,
        };
        assert_eq!(
            create_statement("default", "t", &schema),
            "CREATE TABLE \"default\".t (\n  id BIGINT NOT NULL,\n  \"Dt\" STRING NOT NULL COMMENT 'it''s a day',\n  PRIMARY KEY (id, \"Dt\") NOT ENFORCED\n)\nPARTITIONED BY (\"Dt\")\nWITH (\n  'bucket' = '2'\n)"
        );
        let described = describe_batch(&schema).unwrap();
        assert_eq!(described.num_rows(), 2);
        assert_eq!(described.num_columns(), 6);
    }
}
