//! TPC-H on Tidelake: the generator's Parquet tables loaded into append
//! tables (timed apart as `load_seconds`), then the 22 queries of
//! bench/tpch/ through tidelake-sql. Result row counts are checked against
//! DuckDB's (bench/data/tpch/sf*/expected_rows.json).

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType as ArrowType;
use serde_json::{json, Map, Value};
use tidelake_engine::{
    Catalog, ColumnSpec, DataType, DataTypeKind, Identifier, RowKind, TableSpec, DEFAULT_DATABASE,
};

use crate::error::{BenchError, Result};
use crate::input::read_parquet;
use crate::measure::Measurement;

pub const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// The Paimon type of a column tpchgen writes.
pub fn paimon_type(arrow: &ArrowType, nullable: bool) -> Result<DataType> {
    let kind = match arrow {
        ArrowType::Int64 => DataTypeKind::BigInt,
        ArrowType::Int32 => DataTypeKind::Int,
        ArrowType::Float64 => DataTypeKind::Double,
        ArrowType::Decimal128(p, s) if *s >= 0 => DataTypeKind::Decimal {
            precision: u32::from(*p),
            scale: *s as u32,
        },
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => {
            DataTypeKind::VarChar(i32::MAX as u32)
        }
        ArrowType::Date32 => DataTypeKind::Date,
        other => {
            return Err(BenchError::input(format!(
                "TPC-H column type {other} is not mapped to a Paimon type"
            )))
        }
    };
    Ok(DataType::new(kind, nullable))
}

pub fn table_spec(batch_schema: &arrow::datatypes::Schema) -> Result<TableSpec> {
    let columns = batch_schema
        .fields()
        .iter()
        .map(|f| {
            Ok(ColumnSpec {
                name: f.name().clone(),
                data_type: paimon_type(f.data_type(), f.is_nullable())?,
                comment: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut options = std::collections::BTreeMap::new();
    options.insert("file.compression".to_string(), "zstd".to_string());
    Ok(TableSpec {
        columns,
        options,
        ..TableSpec::default()
    })
}

/// The queries, as (name, text), ordered by name.
pub fn queries(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for path in crate::input::files_with_suffix(dir, "q", ".sql")? {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(path.display().to_string(), e))?;
        out.push((name, text));
    }
    if out.is_empty() {
        return Err(BenchError::input(format!(
            "no TPC-H queries (q*.sql) in '{}'",
            dir.display()
        )));
    }
    Ok(out)
}

pub struct Tpch {
    pub tpch_dir: PathBuf,
    pub queries_dir: PathBuf,
    pub warehouse: PathBuf,
}

impl Tpch {
    pub async fn run(&self) -> Result<Value> {
        let mut tables: Vec<(&str, Vec<RecordBatch>)> = Vec::new();
        for name in TABLES {
            tables.push((
                name,
                read_parquet(&self.tpch_dir.join(format!("{name}.parquet")))?,
            ));
        }
        let lineitem_rows: usize = tables
            .iter()
            .find(|(n, _)| *n == "lineitem")
            .map(|(_, b)| b.iter().map(RecordBatch::num_rows).sum())
            .unwrap_or(0);
        if self.warehouse.exists() {
            std::fs::remove_dir_all(&self.warehouse)
                .map_err(|e| BenchError::io(self.warehouse.display().to_string(), e))?;
        }
        std::fs::create_dir_all(&self.warehouse)
            .map_err(|e| BenchError::io(self.warehouse.display().to_string(), e))?;
        let uri = self
            .warehouse
            .to_str()
            .ok_or_else(|| BenchError::input("the warehouse path is not UTF-8"))?;
        let catalog = Catalog::open(uri).await?;

        let started = Instant::now();
        for (name, batches) in tables {
            let Some(first) = batches.first() else {
                continue;
            };
            let id = Identifier::new(DEFAULT_DATABASE, name);
            catalog
                .create_table(&id, table_spec(&first.schema())?, false)
                .await?;
            let table = catalog.load_table(&id).await?;
            let mut writer = table.writer();
            for batch in batches {
                writer.write(batch, RowKind::Insert).await?;
            }
            writer.commit().await?;
        }
        let load_seconds = started.elapsed().as_secs_f64();

        let expected = expected_rows(&self.tpch_dir);
        let session = crate::sql::open_session(catalog).await?;
        let mut timings = Map::new();
        let mut result_rows = Map::new();
        let mut errors = Map::new();
        let mut total = 0.0;
        for (name, text) in queries(&self.queries_dir)? {
            let started = Instant::now();
            match crate::sql::run_query(&session, &text).await {
                Ok(rows) => {
                    let seconds = started.elapsed().as_secs_f64();
                    total += seconds;
                    timings.insert(name.clone(), json!((seconds * 1e6).round() / 1e6));
                    result_rows.insert(name, json!(rows));
                }
                Err(e) => {
                    errors.insert(
                        name,
                        json!(e.to_string().chars().take(300).collect::<String>()),
                    );
                }
            }
        }
        let mut wrong = Map::new();
        for (name, rows) in &result_rows {
            if let Some(want) = expected.get(name) {
                if want != rows {
                    wrong.insert(name.clone(), json!({"expected": want, "got": rows}));
                }
            }
        }
        let failed = errors.len();
        let mut record = Measurement::new("tpch", lineitem_rows as u64, total)
            .with("load_seconds", json!((load_seconds * 1e3).round() / 1e3))
            .with("queries", Value::Object(timings))
            .with("result_rows", Value::Object(result_rows))
            .with(
                "check",
                json!(if wrong.is_empty() { "ok" } else { "mismatch" }),
            );
        if !wrong.is_empty() {
            record = record.with("check_diff", Value::Object(wrong));
        }
        if failed > 0 {
            record = record
                .with("status", json!("incomplete"))
                .with("errors", Value::Object(errors))
                .with(
                    "reason",
                    json!(format!(
                        "{failed} of 22 queries failed; seconds cover the others"
                    )),
                );
        }
        Ok(record.to_json())
    }
}

fn expected_rows(tpch_dir: &Path) -> Map<String, Value> {
    std::fs::read_to_string(tpch_dir.join("expected_rows.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn tpch_types_map_to_paimon() {
        let schema = Schema::new(vec![
            Field::new("l_orderkey", ArrowType::Int64, false),
            Field::new("l_linenumber", ArrowType::Int32, false),
            Field::new("l_quantity", ArrowType::Decimal128(15, 2), false),
            Field::new("l_comment", ArrowType::Utf8View, true),
            Field::new("l_shipdate", ArrowType::Date32, false),
        ]);
        let spec = table_spec(&schema).unwrap();
        let kinds: Vec<_> = spec.columns.iter().map(|c| c.data_type.clone()).collect();
        assert_eq!(kinds[0], DataType::new(DataTypeKind::BigInt, false));
        assert_eq!(
            kinds[2],
            DataType::new(
                DataTypeKind::Decimal {
                    precision: 15,
                    scale: 2
                },
                false
            )
        );
        assert_eq!(
            kinds[3],
            DataType::new(DataTypeKind::VarChar(i32::MAX as u32), true)
        );
        assert_eq!(kinds[4], DataType::new(DataTypeKind::Date, false));
        assert!(spec.primary_keys.is_empty() && spec.partition_keys.is_empty());
        assert!(paimon_type(&ArrowType::Boolean, true).is_err());
        assert!(Catalog::schema_from_spec(spec).is_ok());
    }

    #[test]
    fn the_suite_has_22_queries() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/tpch");
        let all = queries(&dir).unwrap();
        assert_eq!(all.len(), 22);
        assert_eq!(all[0].0, "q01");
        assert!(all[21].1.to_lowercase().contains("cntrycode"));
        assert!(queries(&dir.join("missing")).is_err());
    }
}
