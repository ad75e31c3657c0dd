//! Paimon's schema evolution rules, applied to a schema in memory: renaming,
//! dropping, retyping and moving columns, their comments and nullability.
//! (`catalog::alter_table` writes the result as the next `schema-N`.)
//!
//! Field ids stay stable: a rename and a type change keep the id, a drop
//! removes the field (its id is never reused), so readers map old data files
//! to the new schema by id and cast changed columns to their new type.
//!
//! The rules are Paimon's `SchemaManager` rules: partition columns are never
//! renamed, dropped or retyped; primary-key columns are never dropped or
//! retyped (they may be renamed); a nullable column becomes NOT NULL only when
//! `alter-column-null-to-not-null.disabled` is `false`. Type changes are a
//! subset of what Paimon accepts by default: those whose old values read back
//! exactly as the new type (see [`type_change_refusal`]); Paimon would also
//! accept narrowing and reinterpreting casts, which change old rows silently.

use tidelake_format::schema::TableSchema;
use tidelake_format::types::{DataType, DataTypeKind, MAX_LENGTH};

use crate::error::{EngineError, Result};

/// Where a column goes (`FIRST`, `AFTER col`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnPosition {
    First,
    After(String),
}

/// Paimon's option: when `true`, only implicit (widening) casts are allowed.
const DISABLE_EXPLICIT_CASTING: &str = "disable-explicit-type-casting";
/// Paimon's option (default `true`): refuse nullable -> NOT NULL.
const DISABLE_NULL_TO_NOT_NULL: &str = "alter-column-null-to-not-null.disabled";
/// The column a Flink-style watermark is declared on.
const WATERMARK_ROWTIME: &str = "schema.watermark.0.rowtime";
/// Options whose value is a comma-separated list of column names.
const COLUMN_LIST_OPTIONS: &[&str] = &["bucket-key", "sequence.field", "rowkind.field"];
/// Per-column options: `fields.<columns>.<suffix>`.
const FIELDS_PREFIX: &str = "fields.";
/// Per-column options whose value also names columns.
const COLUMN_VALUED_SUFFIXES: &[&str] = &["sequence-group", "nested-key"];

fn index_of(schema: &TableSchema, name: &str, table: &str) -> Result<usize> {
    schema
        .fields
        .iter()
        .position(|f| f.name == name)
        .ok_or_else(|| EngineError::ColumnNotFound {
            table: table.to_string(),
            column: name.to_string(),
        })
}

fn role(schema: &TableSchema, name: &str) -> Option<&'static str> {
    if schema.partition_keys.iter().any(|k| k == name) {
        Some("a partition column")
    } else if schema.primary_keys.iter().any(|k| k == name) {
        Some("a primary-key column")
    } else {
        None
    }
}

fn split_names(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty())
}

/// `fields.a,b.sequence-group` -> (`a,b`, `sequence-group`); None for other
/// keys and for `fields.<option>` keys that name no column.
fn split_fields_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(FIELDS_PREFIX)?;
    let (columns, suffix) = rest.rsplit_once('.')?;
    (!columns.is_empty()).then_some((columns, suffix))
}

/// The first option that names column `name`, if any.
fn option_naming(schema: &TableSchema, name: &str) -> Option<String> {
    schema.options.iter().find_map(|(key, value)| {
        let in_value = || split_names(value).any(|n| n == name);
        let names_it = if COLUMN_LIST_OPTIONS.contains(&key.as_str()) || key == WATERMARK_ROWTIME {
            in_value()
        } else if let Some((columns, suffix)) = split_fields_key(key) {
            split_names(columns).any(|n| n == name)
                || (COLUMN_VALUED_SUFFIXES.contains(&suffix) && in_value())
        } else {
            false
        };
        names_it.then(|| key.clone())
    })
}

fn rename_in_list(list: &str, from: &str, to: &str) -> String {
    split_names(list)
        .map(|n| if n == from { to } else { n })
        .collect::<Vec<_>>()
        .join(",")
}

/// `ALTER TABLE t RENAME COLUMN from TO to`: the field keeps its id; the
/// primary key and the options that name the column follow it, as in Paimon.
pub(crate) fn rename_column(
    schema: &mut TableSchema,
    from: &str,
    to: &str,
    table: &str,
) -> Result<()> {
    let i = index_of(schema, from, table)?;
    if schema.partition_keys.iter().any(|k| k == from) {
        return Err(EngineError::Unsupported(format!(
            "cannot rename column '{from}' of table '{table}': it is a partition column, and Paimon never renames partition columns (partition folders and the manifests' partition statistics are keyed by them)"
        )));
    }
    if let Some(other) = schema
        .fields
        .iter()
        .enumerate()
        .find(|(j, f)| *j != i && f.name.eq_ignore_ascii_case(to))
    {
        return Err(EngineError::invalid(format!(
            "cannot rename column '{from}' to '{to}': column '{}' already exists in table '{table}'",
            other.1.name
        )));
    }
    if schema.options.get(WATERMARK_ROWTIME).map(String::as_str) == Some(from) {
        return Err(watermark_refusal("rename", from, table));
    }
    schema.fields[i].name = to.to_string();
    for key in schema
        .primary_keys
        .iter_mut()
        .filter(|k| k.as_str() == from)
    {
        *key = to.to_string();
    }
    let mut renamed = std::collections::BTreeMap::new();
    for (key, value) in std::mem::take(&mut schema.options) {
        let (key, value) = if COLUMN_LIST_OPTIONS.contains(&key.as_str()) {
            let value = rename_in_list(&value, from, to);
            (key, value)
        } else if let Some((columns, suffix)) = split_fields_key(&key) {
            let new_key = format!(
                "{FIELDS_PREFIX}{}.{suffix}",
                rename_in_list(columns, from, to)
            );
            let value = if COLUMN_VALUED_SUFFIXES.contains(&suffix) {
                rename_in_list(&value, from, to)
            } else {
                value
            };
            (new_key, value)
        } else {
            (key, value)
        };
        renamed.insert(key, value);
    }
    schema.options = renamed;
    Ok(())
}

fn watermark_refusal(what: &str, column: &str, table: &str) -> EngineError {
    EngineError::Unsupported(format!(
        "cannot {what} column '{column}' of table '{table}': the table's WATERMARK is declared on it (its expression names the column); RESET the 'schema.watermark.0.*' options first"
    ))
}

/// `ALTER TABLE t DROP COLUMN name`.
pub(crate) fn drop_column(schema: &mut TableSchema, name: &str, table: &str) -> Result<()> {
    let i = index_of(schema, name, table)?;
    if let Some(role) = role(schema, name) {
        return Err(EngineError::Unsupported(format!(
            "cannot drop column '{name}' of table '{table}': it is {role}, and Paimon never drops partition or primary-key columns (every data file, bucket and partition is keyed by them)"
        )));
    }
    if schema.fields.len() == 1 {
        return Err(EngineError::invalid(format!(
            "cannot drop column '{name}': it is the only column of table '{table}' (a table needs at least one)"
        )));
    }
    if let Some(key) = option_naming(schema, name) {
        return Err(EngineError::invalid(format!(
            "cannot drop column '{name}' of table '{table}': option '{key}' names it; change or RESET that option first"
        )));
    }
    schema.fields.remove(i);
    Ok(())
}

/// `ALTER COLUMN name COMMENT '...'` (None removes the comment).
pub(crate) fn set_comment(
    schema: &mut TableSchema,
    name: &str,
    comment: Option<&str>,
    table: &str,
) -> Result<()> {
    let i = index_of(schema, name, table)?;
    schema.fields[i].description = comment.map(str::to_string);
    Ok(())
}

/// `ALTER COLUMN name FIRST | AFTER other` (Paimon's move; ids unchanged).
pub(crate) fn move_column(
    schema: &mut TableSchema,
    name: &str,
    position: &ColumnPosition,
    table: &str,
) -> Result<()> {
    let from = index_of(schema, name, table)?;
    let field = schema.fields.remove(from);
    let to = match position {
        ColumnPosition::First => 0,
        ColumnPosition::After(other) if other == name => {
            schema.fields.insert(from, field);
            return Err(EngineError::invalid(format!(
                "cannot move column '{name}' of table '{table}' after itself"
            )));
        }
        ColumnPosition::After(other) => match index_of(schema, other, table) {
            Ok(j) => j + 1,
            Err(e) => {
                schema.fields.insert(from, field);
                return Err(e);
            }
        },
    };
    schema.fields.insert(to, field);
    Ok(())
}

/// `ALTER COLUMN name SET NOT NULL | DROP NOT NULL`. A column becomes NOT
/// NULL only as Paimon allows it (option `alter-column-null-to-not-null.disabled`
/// set to `false`), and only while the table has no rows: old rows may hold
/// NULL, which readers of a NOT NULL column cannot return.
pub(crate) fn set_nullable(
    schema: &mut TableSchema,
    name: &str,
    nullable: bool,
    has_rows: bool,
    table: &str,
) -> Result<()> {
    let i = index_of(schema, name, table)?;
    let current = schema.fields[i].data_type.is_nullable();
    if current == nullable {
        return Ok(());
    }
    if nullable {
        if schema.primary_keys.iter().any(|k| k == name) {
            return Err(EngineError::Unsupported(format!(
                "cannot make column '{name}' of table '{table}' nullable: it is a primary-key column, and Paimon keeps primary-key columns NOT NULL"
            )));
        }
    } else {
        let disabled = schema
            .options
            .get(DISABLE_NULL_TO_NOT_NULL)
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        if disabled {
            return Err(EngineError::Unsupported(format!(
                "cannot make column '{name}' of table '{table}' NOT NULL: Paimon refuses changing a nullable column to NOT NULL unless the table option '{DISABLE_NULL_TO_NOT_NULL}' is 'false'"
            )));
        }
        if has_rows {
            return Err(EngineError::Unsupported(format!(
                "cannot make column '{name}' of table '{table}' NOT NULL: the table has rows, and rows written before may hold NULL in it (only an empty table can change this)"
            )));
        }
    }
    let field = &mut schema.fields[i];
    field.data_type = field.data_type.with_nullable(nullable);
    Ok(())
}

/// `ALTER COLUMN name TYPE new` (`keep_nullability`: Spark's form, which
/// changes only the type) or Flink's `MODIFY name new [NOT NULL]`.
pub(crate) fn set_type(
    schema: &mut TableSchema,
    name: &str,
    new: &DataType,
    keep_nullability: bool,
    has_rows: bool,
    table: &str,
) -> Result<()> {
    let i = index_of(schema, name, table)?;
    let current = schema.fields[i].data_type.clone();
    if current.kind != new.kind {
        if let Some(role) = role(schema, name) {
            return Err(EngineError::Unsupported(format!(
                "cannot change the type of column '{name}' of table '{table}': it is {role}, and Paimon never changes the type of partition or primary-key columns (partition folders, bucket hashes and key order are computed from their values)"
            )));
        }
        if schema.bucket_keys().iter().any(|k| k == name) {
            return Err(EngineError::Unsupported(format!(
                "cannot change the type of column '{name}' of table '{table}': it is a bucket-key column, and new rows would hash to other buckets than old rows of the same value"
            )));
        }
        if schema.options.get(WATERMARK_ROWTIME).map(String::as_str) == Some(name) {
            return Err(watermark_refusal("change the type of", name, table));
        }
        let explicit = schema
            .options
            .get(DISABLE_EXPLICIT_CASTING)
            .is_none_or(|v| !v.eq_ignore_ascii_case("true"));
        if let Some(reason) = type_change_refusal(&current, new, explicit) {
            return Err(EngineError::Unsupported(format!(
                "cannot change column '{name}' of table '{table}' from {} to {}: {reason}",
                current.with_nullable(true),
                new.with_nullable(true)
            )));
        }
        schema.fields[i].data_type = new.with_nullable(current.is_nullable());
    }
    // Primary-key columns are NOT NULL whatever the statement says (as in
    // CREATE TABLE), so `MODIFY id BIGINT` does not try to relax them.
    let is_key = schema.primary_keys.iter().any(|k| k == name);
    let relaxes_key = is_key && new.is_nullable();
    if !keep_nullability && !relaxes_key {
        set_nullable(schema, name, new.is_nullable(), has_rows, table)?;
    }
    Ok(())
}

/// Decimal digits of the integer types (to fit them into a DECIMAL).
fn integer_digits(kind: &DataTypeKind) -> Option<u32> {
    match kind {
        DataTypeKind::TinyInt => Some(3),
        DataTypeKind::SmallInt => Some(5),
        DataTypeKind::Int => Some(10),
        DataTypeKind::BigInt => Some(19),
        _ => None,
    }
}

/// The allowed type changes, as the refusal message lists them.
pub const ALLOWED_TYPE_CHANGES: &str = "TINYINT to SMALLINT to INT to BIGINT; an integer to FLOAT, DOUBLE or a DECIMAL with enough integer digits; FLOAT to DOUBLE; DECIMAL(p, s) to a DECIMAL with at least as many integer and fraction digits; CHAR(n) or VARCHAR(n) to a VARCHAR at least as long or STRING; BINARY(n) or VARBINARY(n) to a VARBINARY at least as long or BYTES; TIMESTAMP(p) (and TIMESTAMP_LTZ) to a higher precision up to 6, or within 7 to 9; and BOOLEAN, integers, DECIMAL and DATE to STRING";

/// Why a column of type `from` cannot become `to` (nullability aside), or
/// None when it can. Allowed are the changes Paimon accepts whose old
/// values read back exactly (the same value, or for STRING the same text
/// Paimon's own casts give): see [`ALLOWED_TYPE_CHANGES`]. The casts to
/// STRING are explicit casts in Paimon, refused when `explicit` is false
/// (option `disable-explicit-type-casting`).
pub fn type_change_refusal(from: &DataType, to: &DataType, explicit: bool) -> Option<String> {
    use DataTypeKind as K;
    let widening = match (&from.kind, &to.kind) {
        (a, b) if a == b => true,
        (a, b) if integer_digits(a).is_some() && integer_digits(b).is_some() => {
            integer_digits(b) > integer_digits(a)
        }
        (a, K::Float | K::Double) if integer_digits(a).is_some() => true,
        (K::Float, K::Double) => true,
        (a, K::Decimal { precision, scale }) if integer_digits(a).is_some() => {
            integer_digits(a).is_some_and(|d| precision - scale >= d)
        }
        (
            K::Decimal {
                precision: p1,
                scale: s1,
            },
            K::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && p2 - s2 >= p1 - s1,
        (K::Char(n) | K::VarChar(n), K::VarChar(m)) => m >= n,
        (K::Binary(n) | K::VarBinary(n), K::VarBinary(m)) => m >= n,
        (K::Timestamp(p), K::Timestamp(q)) | (K::TimestampLtz(p), K::TimestampLtz(q)) => {
            // Up to 6 digits, or within nanoseconds: wider units could not
            // hold every old value (nanoseconds end in 2262).
            q >= p && (*q <= 6 || *p > 6)
        }
        _ => false,
    };
    if widening {
        return None;
    }
    let to_string = to.kind == K::VarChar(MAX_LENGTH)
        && (integer_digits(&from.kind).is_some()
            || matches!(from.kind, K::Boolean | K::Decimal { .. } | K::Date));
    if to_string {
        return (!explicit).then(|| {
            format!("it is an explicit cast, which the table option '{DISABLE_EXPLICIT_CASTING}' = 'true' forbids (Paimon's rule)")
        });
    }
    Some(format!(
        "only changes that keep every old value exactly are allowed ({ALLOWED_TYPE_CHANGES}); Paimon's other casts (narrowing, string to number, ...) would silently change or lose old rows"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelake_format::types::DataField;

    fn t(sql: &str) -> DataType {
        DataType::parse_sql(sql).unwrap()
    }

    fn schema() -> TableSchema {
        TableSchema {
            version: 3,
            id: 0,
            fields: vec![
                DataField::new(0, "id", t("BIGINT NOT NULL")),
                DataField::new(1, "dt", t("STRING NOT NULL")),
                DataField::new(2, "v", t("INT")),
                DataField::new(3, "s", t("BIGINT")),
            ],
            highest_field_id: 3,
            partition_keys: vec!["dt".into()],
            primary_keys: vec!["id".into(), "dt".into()],
            options: [
                ("sequence.field".to_string(), "s".to_string()),
                ("fields.v.aggregate-function".to_string(), "sum".to_string()),
                ("fields.s.sequence-group".to_string(), "v".to_string()),
            ]
            .into_iter()
            .collect(),
            comment: None,
            time_millis: 0,
        }
    }

    #[test]
    fn widening_is_allowed_and_narrowing_is_not() {
        let ok = |a: &str, b: &str| type_change_refusal(&t(a), &t(b), true).is_none();
        assert!(ok("INT", "BIGINT"));
        assert!(ok("TINYINT", "INT"));
        assert!(ok("INT", "DOUBLE"));
        assert!(ok("FLOAT", "DOUBLE"));
        assert!(ok("INT", "DECIMAL(10, 0)"));
        assert!(!ok("INT", "DECIMAL(10, 1)"));
        assert!(ok("DECIMAL(5, 2)", "DECIMAL(10, 3)"));
        assert!(!ok("DECIMAL(5, 2)", "DECIMAL(5, 3)"));
        assert!(ok("VARCHAR(5)", "STRING"));
        assert!(!ok("VARCHAR(5)", "VARCHAR(4)"));
        assert!(ok("TIMESTAMP(3)", "TIMESTAMP(6)"));
        assert!(!ok("TIMESTAMP(3)", "TIMESTAMP(9)"));
        assert!(!ok("BIGINT", "INT"));
        assert!(!ok("DOUBLE", "FLOAT"));
        assert!(!ok("STRING", "INT"));
        assert!(!ok("DOUBLE", "STRING"));
        assert!(ok("INT", "STRING"));
        assert!(ok("DATE", "STRING"));
        assert!(type_change_refusal(&t("INT"), &t("STRING"), false)
            .is_some_and(|r| r.contains(DISABLE_EXPLICIT_CASTING)));
    }

    #[test]
    fn renames_follow_keys_and_options() {
        let mut s = schema();
        rename_column(&mut s, "s", "seq", "t").unwrap();
        rename_column(&mut s, "v", "val", "t").unwrap();
        rename_column(&mut s, "id", "key", "t").unwrap();
        assert_eq!(s.fields[3].id, 3);
        assert_eq!(s.primary_keys, vec!["key", "dt"]);
        assert_eq!(s.options["sequence.field"], "seq");
        assert_eq!(s.options["fields.val.aggregate-function"], "sum");
        assert_eq!(s.options["fields.seq.sequence-group"], "val");
        assert!(rename_column(&mut s, "dt", "day", "t").is_err());
        assert!(rename_column(&mut s, "val", "KEY", "t").is_err());
    }

    #[test]
    fn drops_refuse_keys_and_named_columns() {
        let mut s = schema();
        assert!(drop_column(&mut s, "id", "t").is_err());
        assert!(drop_column(&mut s, "dt", "t").is_err());
        let e = drop_column(&mut s, "v", "t").unwrap_err().to_string();
        assert!(e.contains("option 'fields."), "{e}");
        s.options.clear();
        drop_column(&mut s, "v", "t").unwrap();
        assert_eq!(s.fields.len(), 3);
        assert_eq!(s.highest_field_id, 3);
    }

    #[test]
    fn moves_and_nullability() {
        let mut s = schema();
        move_column(&mut s, "s", &ColumnPosition::First, "t").unwrap();
        assert_eq!(s.fields[0].name, "s");
        move_column(&mut s, "s", &ColumnPosition::After("v".into()), "t").unwrap();
        let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["id", "dt", "v", "s"]);
        assert!(move_column(&mut s, "s", &ColumnPosition::After("nope".into()), "t").is_err());
        assert_eq!(s.fields.len(), 4);
        assert!(set_nullable(&mut s, "v", false, false, "t").is_err());
        s.options
            .insert(DISABLE_NULL_TO_NOT_NULL.into(), "false".into());
        assert!(set_nullable(&mut s, "v", false, true, "t").is_err());
        set_nullable(&mut s, "v", false, false, "t").unwrap();
        assert!(set_nullable(&mut s, "id", true, false, "t").is_err());
    }
}
