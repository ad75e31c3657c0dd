//! The doctor's workload: a warehouse of 100 append tables (10 buckets,
//! 10 commits each: 10,000 files and 1,000 snapshots in total), one
//! `doctor` run over all of it (the measurement's seconds), then each of
//! five faults injected into a table of its own and the time until `doctor`
//! on that table reports it (`detection_ms`), and one more run over the
//! whole warehouse, faults included, that must report all of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use serde_json::{json, Map, Value};
use tidelake_doctor::Target;
use tidelake_engine::{
    Catalog, ColumnSpec, DataType, DataTypeKind, Identifier, RowKind, SchemaChange, TableSpec,
};

use crate::error::{BenchError, Result};
use crate::measure::Measurement;

const TABLES: usize = 100;
const COMMITS: i64 = 10;
const BUCKETS: i64 = 10;

/// A rule, the options of a table that shows it, and how many commits do.
type Fault = (&'static str, &'static [(&'static str, &'static str)], i64);

pub struct Doctor {
    pub warehouse: PathBuf,
}

fn spec(options: &[(&str, &str)]) -> TableSpec {
    let column = |name: &str, kind| ColumnSpec {
        name: name.into(),
        data_type: DataType::new(kind, false),
        comment: None,
    };
    TableSpec {
        columns: vec![
            column("p", DataTypeKind::Int),
            column("id", DataTypeKind::BigInt),
            column("name", DataTypeKind::VarChar(i32::MAX as u32)),
        ],
        primary_keys: Vec::new(),
        partition_keys: Vec::new(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        comment: None,
    }
}

/// One commit of `rows` ids starting at `first` (one file per bucket touched).
async fn commit(catalog: &Catalog, id: &Identifier, first: i64, rows: i64) -> Result<()> {
    let table = catalog.load_table(id).await?;
    let ids: Vec<i64> = (first..first + rows).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![0; ids.len()])),
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("row-{i}")),
        )),
    ];
    let batch = RecordBatch::try_new(table.arrow_schema(), columns)?;
    let mut writer = table.writer();
    writer.write(batch, RowKind::Insert).await?;
    writer.commit().await?;
    Ok(())
}

fn millis_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

impl Doctor {
    pub async fn run(&self) -> Result<Value> {
        if self.warehouse.exists() {
            std::fs::remove_dir_all(&self.warehouse)
                .map_err(|e| BenchError::io(self.warehouse.display().to_string(), e))?;
        }
        let catalog = Catalog::open(&self.warehouse.to_string_lossy()).await?;
        let buckets = BUCKETS.to_string();
        let options = [("bucket", buckets.as_str()), ("bucket-key", "id")];
        for t in 0..TABLES {
            let id = Identifier::new("default", format!("t{t:03}"));
            catalog.create_table(&id, spec(&options), false).await?;
            for c in 0..COMMITS {
                commit(&catalog, &id, c * 1_000, 200).await?;
            }
        }
        let now = now_millis();
        let start = Instant::now();
        let report = tidelake_doctor::diagnose(&catalog, &Target::Warehouse, now)
            .await
            .map_err(|e| BenchError::Input(e.to_string()))?;
        let seconds = start.elapsed().as_secs_f64();
        let files: usize = report.tables.iter().map(|t| t.files).sum();
        let snapshots: usize = report.tables.iter().map(|t| t.snapshots).sum();
        let detection = self.detection(&catalog).await?;
        Ok(Measurement::new("doctor", files as u64, seconds)
            .with("tables", json!(report.tables.len()))
            .with("files", json!(files))
            .with("snapshots", json!(snapshots))
            .with("findings", json!(report.findings().len()))
            .with("detection_ms", Value::Object(detection))
            .to_json())
    }

    /// Per fault: milliseconds from the end of its injection until a
    /// `doctor` run on the table reports its rule; then one run over the
    /// whole warehouse (the 100 tables and the faulty ones), which must
    /// report every fault: its seconds are `detection_warehouse_s`.
    async fn detection(&self, catalog: &Catalog) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        let faults: [Fault; 5] = [
            ("small-files", &[], 12),
            (
                "write-only-uncompacted",
                &[("write-only", "true"), ("bucket", "1")],
                6,
            ),
            (
                "snapshot-backlog",
                &[
                    ("write-only", "true"),
                    ("snapshot.num-retained.min", "1"),
                    ("snapshot.num-retained.max", "2"),
                    ("snapshot.expire.limit", "2"),
                ],
                8,
            ),
            ("orphan-files", &[], 2),
            (
                "manifest-fragmented",
                &[("manifest.merge-min-count", "100")],
                8,
            ),
        ];
        catalog.create_database("faults", true).await?;
        for (rule, options, commits) in faults {
            let id = Identifier::new("faults", rule.replace('-', "_"));
            let mut spec = spec(options);
            if rule == "write-only-uncompacted" {
                spec.primary_keys = vec!["id".into()];
            }
            catalog.create_table(&id, spec, false).await?;
            for c in 0..commits {
                commit(catalog, &id, c * 10, 2).await?;
            }
            match rule {
                "orphan-files" => self.plant_orphan(catalog, &id).await?,
                // Manifests written while writers did not merge them, then
                // the option that makes them too many.
                "manifest-fragmented" => {
                    catalog
                        .alter_table(
                            &id,
                            vec![SchemaChange::SetOption {
                                key: "manifest.merge-min-count".into(),
                                value: "4".into(),
                            }],
                        )
                        .await?
                }
                _ => {}
            }
            let start = Instant::now();
            let report = tidelake_doctor::diagnose_table(catalog, &id, now_millis())
                .await
                .map_err(|e| BenchError::Input(e.to_string()))?;
            let found = report.findings.iter().any(|f| f.rule == rule);
            out.insert(
                rule.to_string(),
                if found {
                    json!(millis_since(start))
                } else {
                    json!("not reported")
                },
            );
        }
        let start = Instant::now();
        let report = tidelake_doctor::diagnose(catalog, &Target::Warehouse, now_millis())
            .await
            .map_err(|e| BenchError::Input(e.to_string()))?;
        let seconds = start.elapsed().as_secs_f64();
        let missed: Vec<&str> = faults
            .iter()
            .map(|f| f.0)
            .filter(|rule| {
                let table = format!("faults.{}", rule.replace('-', "_"));
                !report
                    .findings()
                    .iter()
                    .any(|f| f.rule == *rule && f.table == table)
            })
            .collect();
        out.insert(
            "warehouse_run_s".to_string(),
            json!((seconds * 1e3).round() / 1e3),
        );
        out.insert("warehouse_run_missed".to_string(), json!(missed));
        Ok(out)
    }

    /// An unreferenced data file in the table's bucket folder, last
    /// modified in 2020 (past the doctor's one-day margin).
    async fn plant_orphan(&self, catalog: &Catalog, id: &Identifier) -> Result<()> {
        let table = catalog.load_table(id).await?;
        let dir = self.warehouse.join(&table.paths().root).join("bucket-0");
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(dir.display().to_string(), e))?;
        let path = dir.join("data-orphan-0.parquet");
        let io = |e| BenchError::io(path.display().to_string(), e);
        std::fs::write(&path, b"not referenced").map_err(io)?;
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(io)?;
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
        file.set_modified(old).map_err(io)?;
        Ok(())
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
