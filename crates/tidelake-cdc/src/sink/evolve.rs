//! From a source table's schema to a Paimon table: the columns a new table
//! gets, and how an existing table follows the source, with the rules of
//! Paimon's CDC actions: a new column is added; a widened type is applied;
//! a narrowed one is ignored (the column keeps its wider type); a column the
//! source no longer has stays, NULL from then on (a rename is a new column);
//! any other type change stops the table.

use tidelake_engine::{ColumnSpec, SchemaChange, Table, TableSpec};
use tidelake_format::types::{DataType, DataTypeKind};

use super::config::SinkConfig;
use super::table::Slot;
use crate::error::{CdcError, IncompatibleChange, Result};
use crate::event::{SourceSchema, SourceTableId};

/// A column the Paimon table should have, and where its value comes from.
#[derive(Clone, Debug)]
pub(crate) struct WantedColumn {
    pub name: String,
    pub data_type: DataType,
    pub comment: Option<String>,
    pub slot: Slot,
}

/// The primary key a table gets: `--primary-keys` or the source's.
pub(crate) fn primary_key(config: &SinkConfig, schema: &SourceSchema) -> Vec<String> {
    if config.primary_keys.is_empty() {
        schema.primary_key.clone()
    } else {
        config.primary_keys.clone()
    }
}

/// The columns of the Paimon table for a source schema: the source's (typed
/// by `--type-mapping`), then computed columns, then metadata columns.
pub(crate) fn wanted_columns(
    config: &SinkConfig,
    table: &SourceTableId,
    schema: &SourceSchema,
    key: &[String],
) -> Result<Vec<WantedColumn>> {
    let mut columns = Vec::new();
    for (i, c) in schema.columns.iter().enumerate() {
        let is_key = key.contains(&c.name);
        let mut data_type = config.type_mapping.apply(&c.data_type, is_key);
        if is_key {
            data_type = data_type.with_nullable(false);
        }
        columns.push(WantedColumn {
            name: c.name.clone(),
            data_type,
            comment: c.comment.clone(),
            slot: Slot::Source(i),
        });
    }
    for computed in &config.computed_columns {
        let input = match &computed.column {
            Some(name) => match schema.columns.iter().position(|c| &c.name == name) {
                Some(i) => Some(i),
                // Paimon applies computed columns to the tables that have
                // their input column.
                None => continue,
            },
            None => None,
        };
        let input_type = input.map(|i| &schema.columns[i].data_type);
        let data_type = computed
            .data_type(input_type)
            .map_err(|e| CdcError::table(table, e.to_string()))?;
        columns.push(WantedColumn {
            name: computed.name.clone(),
            data_type,
            comment: None,
            slot: Slot::Computed(computed.clone(), input),
        });
    }
    for meta in &config.metadata_columns {
        columns.push(WantedColumn {
            name: meta.name().to_string(),
            data_type: meta.data_type(),
            comment: None,
            slot: Slot::Meta(*meta),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for c in &columns {
        if !seen.insert(c.name.to_ascii_lowercase()) {
            return Err(CdcError::table(
                table,
                format!(
                    "column '{}' is both a source column and a computed or metadata column",
                    c.name
                ),
            ));
        }
    }
    Ok(columns)
}

/// The spec of a table created for a source table.
pub(crate) fn table_spec(
    config: &SinkConfig,
    columns: &[WantedColumn],
    key: &[String],
) -> TableSpec {
    let has = |name: &String| columns.iter().any(|c| &c.name == name);
    let partition_keys: Vec<String> = config
        .partition_keys
        .iter()
        .filter(|k| has(k))
        .cloned()
        .collect();
    let mut primary_keys = key.to_vec();
    // Paimon's primary key holds the partition columns.
    for p in &partition_keys {
        if !primary_keys.contains(p) {
            primary_keys.push(p.clone());
        }
    }
    TableSpec {
        columns: columns
            .iter()
            .map(|c| ColumnSpec {
                name: c.name.clone(),
                data_type: if primary_keys.contains(&c.name) {
                    c.data_type.with_nullable(false)
                } else {
                    c.data_type.clone()
                },
                comment: c.comment.clone(),
            })
            .collect(),
        primary_keys,
        partition_keys,
        options: config.table_conf.clone(),
        comment: None,
    }
}

/// What following a source schema takes: schema changes to apply, the
/// slots of the table's columns afterwards (in table order, columns added
/// at the end), and the incompatible changes found.
pub(crate) struct Evolution {
    pub changes: Vec<SchemaChange>,
    pub slots: Vec<Slot>,
    pub incompatible: Vec<CdcError>,
}

pub(crate) fn evolve(table: &Table, source: &SourceTableId, wanted: &[WantedColumn]) -> Evolution {
    let fields = &table.schema().fields;
    let mut changes = Vec::new();
    let mut incompatible = Vec::new();
    let mut slots: Vec<Slot> = fields
        .iter()
        .map(|f| {
            wanted
                .iter()
                .find(|w| w.name.eq_ignore_ascii_case(&f.name))
                .map_or(Slot::Missing, |w| w.slot.clone())
        })
        .collect();
    for w in wanted {
        let Some(field) = fields.iter().find(|f| f.name.eq_ignore_ascii_case(&w.name)) else {
            changes.push(SchemaChange::AddColumn {
                name: w.name.clone(),
                data_type: w.data_type.with_nullable(true),
                comment: w.comment.clone(),
            });
            slots.push(w.slot.clone());
            continue;
        };
        match compare(&field.data_type, &w.data_type) {
            TypeChange::Same | TypeChange::Narrower => {}
            TypeChange::Wider => changes.push(SchemaChange::UpdateColumnType {
                name: field.name.clone(),
                data_type: w.data_type.with_nullable(field.data_type.is_nullable()),
                keep_nullability: true,
            }),
            TypeChange::Incompatible(reason) => {
                incompatible.push(CdcError::Incompatible(Box::new(IncompatibleChange {
                    table: source.to_string(),
                    column: w.name.clone(),
                    from: field.data_type.to_string(),
                    to: w.data_type.to_string(),
                    reason,
                })))
            }
        }
    }
    Evolution {
        changes,
        slots,
        incompatible,
    }
}

#[derive(Debug, PartialEq)]
enum TypeChange {
    Same,
    Wider,
    /// Paimon ignores it: the column keeps the wider type.
    Narrower,
    Incompatible(String),
}

fn integer_rank(kind: &DataTypeKind) -> Option<u8> {
    match kind {
        DataTypeKind::TinyInt => Some(1),
        DataTypeKind::SmallInt => Some(2),
        DataTypeKind::Int => Some(3),
        DataTypeKind::BigInt => Some(4),
        _ => None,
    }
}

/// Paimon's CDC rule for a column of type `from` whose source is now `to`.
fn compare(from: &DataType, to: &DataType) -> TypeChange {
    use DataTypeKind as K;
    let order = |wider: bool, narrower: bool| {
        if wider {
            TypeChange::Wider
        } else if narrower {
            TypeChange::Narrower
        } else {
            TypeChange::Same
        }
    };
    match (&from.kind, &to.kind) {
        (a, b) if a == b => TypeChange::Same,
        (a, b) if integer_rank(a).is_some() && integer_rank(b).is_some() => order(
            integer_rank(b) > integer_rank(a),
            integer_rank(b) < integer_rank(a),
        ),
        (K::Float, K::Double) => TypeChange::Wider,
        (K::Double, K::Float) => TypeChange::Narrower,
        (
            K::Decimal {
                precision: p1,
                scale: s1,
            },
            K::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => {
            let wider = s2 >= s1 && p2 - s2 >= p1 - s1;
            let narrower = s2 <= s1 && p2 - s2 <= p1 - s1;
            if wider {
                TypeChange::Wider
            } else if narrower {
                TypeChange::Narrower
            } else {
                TypeChange::Incompatible(
                    "the new DECIMAL has fewer integer or fraction digits".into(),
                )
            }
        }
        (K::Char(n) | K::VarChar(n), K::VarChar(m)) => order(m > n, m < n),
        (K::VarChar(n), K::Char(m)) => order(false, m <= n),
        (K::Binary(n) | K::VarBinary(n), K::VarBinary(m)) => order(m > n, m < n),
        (K::Timestamp(p), K::Timestamp(q)) | (K::TimestampLtz(p), K::TimestampLtz(q)) => {
            order(q > p, q < p)
        }
        (K::Time(p), K::Time(q)) => order(q > p, q < p),
        _ => TypeChange::Incompatible("Paimon only widens within a type family".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sql: &str) -> DataType {
        DataType::parse_sql(sql).unwrap()
    }

    #[test]
    fn type_changes_follow_paimon_cdc() {
        assert_eq!(compare(&t("INT"), &t("BIGINT")), TypeChange::Wider);
        assert_eq!(compare(&t("BIGINT"), &t("INT")), TypeChange::Narrower);
        assert_eq!(compare(&t("FLOAT"), &t("DOUBLE")), TypeChange::Wider);
        assert_eq!(
            compare(&t("VARCHAR(10)"), &t("VARCHAR(20)")),
            TypeChange::Wider
        );
        assert_eq!(compare(&t("VARCHAR(10)"), &t("STRING")), TypeChange::Wider);
        assert_eq!(
            compare(&t("DECIMAL(10, 2)"), &t("DECIMAL(12, 4)")),
            TypeChange::Wider
        );
        assert_eq!(
            compare(&t("TIMESTAMP(3)"), &t("TIMESTAMP(6)")),
            TypeChange::Wider
        );
        assert!(matches!(
            compare(&t("INT"), &t("STRING")),
            TypeChange::Incompatible(_)
        ));
        assert!(matches!(
            compare(&t("DECIMAL(10, 2)"), &t("DECIMAL(12, 1)")),
            TypeChange::Incompatible(_)
        ));
    }
}
