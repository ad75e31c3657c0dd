//! The order workloads on Tidelake: ingest, upsert, scans and point lookups
//! on a primary-key table (dt, order_id), partitioned by dt, 4 buckets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{AsArray, BooleanArray, Int64Array, RecordBatch, Scalar, StringArray};
use arrow::compute::kernels::cmp::{eq, gt_eq, lt_eq};
use arrow::compute::{and, filter_record_batch};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tidelake_engine::{
    Catalog, ColumnSpec, CompactOptions, CompareOp, DataType, DataTypeKind, Datum, Identifier,
    Predicate, RowKind, Table, TableSpec,
};

use crate::aggregate::ScanAggregate;
use crate::error::{BenchError, Result};
use crate::input::{read_all, read_parquet, split_upsert_batch, DataDir};
use crate::measure::{check_result, percentile, Measurement};

pub const DATABASE: &str = "bench";
pub const TABLE: &str = "orders";
pub const BUCKETS: u32 = 4;
pub const PROJECTION: [&str; 2] = ["order_id", "amount"];
/// STRING in Paimon: VARCHAR of the largest length.
const STRING: DataTypeKind = DataTypeKind::VarChar(i32::MAX as u32);

pub fn orders_id() -> Identifier {
    Identifier::new(DATABASE, TABLE)
}

fn column(name: &str, kind: DataTypeKind, nullable: bool) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        data_type: DataType::new(kind, nullable),
        comment: None,
    }
}

/// The same 8 columns every peer's table has (bench/common.py `orders_schema`).
pub fn orders_spec() -> TableSpec {
    let mut options = BTreeMap::new();
    options.insert("bucket".to_string(), BUCKETS.to_string());
    options.insert("file.compression".to_string(), "zstd".to_string());
    // No inline compaction while writing: the scans after the upserts measure
    // merge-on-read over every sorted run, as they do for the Paimon peers
    // (which never compact); the compact workload then compacts on its own.
    options.insert("write-only".to_string(), "true".to_string());
    TableSpec {
        columns: vec![
            column("order_id", DataTypeKind::BigInt, false),
            column("customer_id", DataTypeKind::BigInt, true),
            column("dt", STRING, false),
            column("status", STRING, true),
            column(
                "amount",
                DataTypeKind::Decimal {
                    precision: 12,
                    scale: 2,
                },
                true,
            ),
            column("discount", DataTypeKind::Double, true),
            column("comment", STRING, true),
            column("updated_at", DataTypeKind::Timestamp(6), true),
        ],
        primary_keys: vec!["dt".into(), "order_id".into()],
        partition_keys: vec!["dt".into()],
        options,
        comment: None,
    }
}

/// Bytes of every file under a directory (the table's size on disk).
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

pub struct Orders {
    pub data: DataDir,
    pub warehouse: PathBuf,
}

impl Orders {
    async fn catalog(&self) -> Result<Catalog> {
        let uri = self.warehouse.to_str().ok_or_else(|| {
            BenchError::input(format!(
                "the warehouse path '{}' is not UTF-8",
                self.warehouse.display()
            ))
        })?;
        Ok(Catalog::open(uri).await?)
    }

    async fn table(&self) -> Result<Table> {
        Ok(self.catalog().await?.load_table(&orders_id()).await?)
    }

    pub async fn ingest(&self) -> Result<Value> {
        let batches = read_all(&self.data.ingest_files()?)?; // decoded before the clock
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Err(BenchError::input(format!(
                "no ingest rows under '{}'",
                self.data.root.display()
            )));
        }
        if self.warehouse.exists() {
            std::fs::remove_dir_all(&self.warehouse)
                .map_err(|e| BenchError::io(self.warehouse.display().to_string(), e))?;
        }
        std::fs::create_dir_all(&self.warehouse)
            .map_err(|e| BenchError::io(self.warehouse.display().to_string(), e))?;
        let catalog = self.catalog().await?;
        catalog.create_database(DATABASE, true).await?;
        catalog
            .create_table(&orders_id(), with_extra_options(orders_spec())?, false)
            .await?;
        let table = catalog.load_table(&orders_id()).await?;
        let started = Instant::now();
        let mut writer = table.writer();
        for batch in batches {
            writer.write(batch, RowKind::Insert).await?;
        }
        writer.commit().await?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(Measurement::new("ingest", rows as u64, seconds)
            .with("table_bytes", json!(dir_bytes(&self.warehouse)))
            .to_json())
    }

    pub async fn upsert(&self) -> Result<Value> {
        let mut commits = Vec::new();
        for path in self.data.upsert_files()? {
            let mut upserts = Vec::new();
            let mut deletes = Vec::new();
            for batch in read_parquet(&path)? {
                let (u, d) = split_upsert_batch(&batch)?;
                upserts.push(u);
                deletes.push(d);
            }
            commits.push((upserts, deletes));
        }
        let table = self.table().await?;
        let mut seconds = 0.0;
        let mut rows = 0usize;
        let mut deleted = 0usize;
        let count = commits.len();
        for (index, (upserts, deletes)) in commits.into_iter().enumerate() {
            rows += upserts
                .iter()
                .chain(&deletes)
                .map(RecordBatch::num_rows)
                .sum::<usize>();
            deleted += deletes.iter().map(RecordBatch::num_rows).sum::<usize>();
            let started = Instant::now();
            let mut writer = table.writer();
            for batch in upserts {
                writer.write(batch, RowKind::Insert).await?;
            }
            for batch in deletes {
                writer.write(batch, RowKind::Delete).await?;
            }
            writer.commit().await?;
            seconds += started.elapsed().as_secs_f64();
            // So that a run stopped by the suite's timeout still tells how far it got.
            eprintln!(
                "progress: {}",
                json!({"commits": index + 1, "of": count, "rows": rows, "seconds": seconds})
            );
        }
        Ok(Measurement::new("upsert", rows as u64, seconds)
            .with("commits", json!(count))
            .with("deletes", json!(deleted))
            .with("table_bytes", json!(dir_bytes(&self.warehouse)))
            .to_json())
    }

    /// A full compaction: every bucket rewritten into one sorted run.
    pub async fn compact(&self) -> Result<Value> {
        let rows = self.data.expected()?["scan_full"]["rows"]
            .as_u64()
            .ok_or_else(|| BenchError::input("expected.json has no scan_full rows"))?;
        let table = self.table().await?;
        let started = Instant::now();
        let outcome = table
            .compact(CompactOptions {
                full: true,
                ..CompactOptions::default()
            })
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(Measurement::new("compact", rows, seconds)
            .with("files_in", json!(outcome.files_in))
            .with("files_out", json!(outcome.files_out))
            .with("bytes_in", json!(outcome.bytes_in))
            .with("bytes_out", json!(outcome.bytes_out))
            .with("table_bytes", json!(dir_bytes(&self.warehouse)))
            .to_json())
    }

    /// The three scans; `suffix` names the compacted variant.
    pub async fn scans(&self, suffix: &str) -> Result<Vec<Value>> {
        let expected = self.data.expected()?;
        let filter = KeyRange::from_expected(&expected["scan_filter"])?;
        let table = self.table().await?;
        let names: Vec<String> = table
            .schema()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let projection = PROJECTION
            .iter()
            .map(|c| {
                names
                    .iter()
                    .position(|n| n == c)
                    .ok_or_else(|| BenchError::input(format!("no column {c}")))
            })
            .collect::<Result<Vec<usize>>>()?;
        let cases = [
            ("scan_full", None, None),
            ("scan_projection", Some(projection), None),
            ("scan_filter", None, Some(&filter)),
        ];
        let mut out = Vec::new();
        for (name, projection, range) in cases {
            let started = Instant::now();
            let aggregate = scan_aggregate(&table, projection, range).await?;
            let seconds = started.elapsed().as_secs_f64();
            let want = checked_subset(&expected[name]);
            out.push(
                Measurement::new(&format!("{name}{suffix}"), aggregate.rows, seconds)
                    .with_all(check_result(&aggregate.checked(), &want))
                    .to_json(),
            );
        }
        Ok(out)
    }

    pub async fn lookups(&self) -> Result<Value> {
        let expected = self.data.expected()?;
        let section = &expected["lookup"];
        let keys = section["keys"]
            .as_array()
            .ok_or_else(|| BenchError::input("expected.json has no lookup keys"))?
            .iter()
            .map(|k| match (k[0].as_str(), k[1].as_i64()) {
                (Some(dt), Some(id)) => Ok((dt.to_string(), id)),
                _ => Err(BenchError::input(format!(
                    "lookup key {k} is not [dt, order_id]"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        let hits = section["hits"]
            .as_array()
            .ok_or_else(|| BenchError::input("expected.json has no lookup hits"))?
            .iter()
            .map(|h| h.as_u64().unwrap_or(0))
            .collect::<Vec<u64>>();
        let budget = lookup_budget_seconds();
        let table = self.table().await?;
        let mut latencies = Vec::with_capacity(keys.len());
        let mut found = 0u64;
        let mut total = 0.0;
        for (dt, order_id) in &keys {
            if total >= budget {
                break;
            }
            let started = Instant::now();
            let rows = point_lookup(&table, dt, *order_id).await?;
            let seconds = started.elapsed().as_secs_f64();
            latencies.push(seconds);
            total += seconds;
            if rows > 0 {
                found += 1;
            }
        }
        let done = latencies.len();
        latencies.sort_by(f64::total_cmp);
        let mut got = Map::new();
        got.insert("found".into(), json!(found));
        let mut want = Map::new();
        want.insert("found".into(), json!(hits.iter().take(done).sum::<u64>()));
        Ok(Measurement::new("lookup", done as u64, total)
            .with(
                "p50_ms",
                json!((percentile(&latencies, 50.0) * 1e6).round() / 1e3),
            )
            .with(
                "p99_ms",
                json!((percentile(&latencies, 99.0) * 1e6).round() / 1e3),
            )
            .with("lookups_planned", json!(keys.len()))
            .with_all(check_result(&got, &want))
            .to_json())
    }
}

/// Extra table options for experiments (`key=value,key=value`), such as
/// Parquet page sizes; the suite never sets it, so its figures are of the
/// defaults.
pub const TABLE_OPTIONS_ENV: &str = "BENCH_TABLE_OPTIONS";

/// `spec` with the options of [`TABLE_OPTIONS_ENV`] added.
fn with_extra_options(mut spec: TableSpec) -> Result<TableSpec> {
    let Ok(extra) = std::env::var(TABLE_OPTIONS_ENV) else {
        return Ok(spec);
    };
    for pair in extra.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            BenchError::Input(format!("{TABLE_OPTIONS_ENV}: '{pair}' is not key=value"))
        })?;
        spec.options
            .insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(spec)
}

/// Seconds of lookups after which the workload stops (bench/common.py sets
/// the same budget for every system through this variable).
pub const LOOKUP_BUDGET_ENV: &str = "BENCH_LOOKUP_BUDGET_S";

fn lookup_budget_seconds() -> f64 {
    std::env::var(LOOKUP_BUDGET_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::INFINITY)
}

/// The figures of an expected.json section that scans are checked on.
fn checked_subset(section: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for key in ["rows", "sum_amount_cents", "comment_bytes"] {
        if let Some(v) = section.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    out
}

/// One partition and an inclusive range of order ids.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRange {
    pub dt: String,
    pub low: i64,
    pub high: i64,
}

impl KeyRange {
    pub fn from_expected(section: &Value) -> Result<KeyRange> {
        match (
            section["dt"].as_str(),
            section["order_id_min"].as_i64(),
            section["order_id_max"].as_i64(),
        ) {
            (Some(dt), Some(low), Some(high)) => Ok(KeyRange {
                dt: dt.to_string(),
                low,
                high,
            }),
            _ => Err(BenchError::input(format!(
                "the scan filter {section} lacks dt/order_id_min/order_id_max"
            ))),
        }
    }

    /// For the engine: it prunes partitions and files with it, conservatively.
    pub fn predicate(&self) -> Predicate {
        let compare = |column: &str, op, value| Predicate::Compare {
            column: column.into(),
            op,
            value,
        };
        let dt = compare("dt", CompareOp::Eq, Datum::String(self.dt.clone()));
        if self.low == self.high {
            // A point lookup: the engine then reads only the key's bucket.
            return Predicate::And(vec![
                dt,
                compare("order_id", CompareOp::Eq, Datum::BigInt(self.low)),
            ]);
        }
        Predicate::And(vec![
            dt,
            compare("order_id", CompareOp::GtEq, Datum::BigInt(self.low)),
            compare("order_id", CompareOp::LtEq, Datum::BigInt(self.high)),
        ])
    }

    /// The exact filter (the engine's predicate may let extra rows through).
    pub fn mask(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| BenchError::input(format!("the scan returned no '{name}' column")))
        };
        let dt = column("dt")?;
        let ids = column("order_id")?;
        let dt_match = match dt.data_type() {
            arrow::datatypes::DataType::Utf8View => eq(
                dt.as_string_view(),
                &Scalar::new(arrow::array::StringViewArray::from(vec![self.dt.as_str()])),
            )?,
            _ => eq(dt, &Scalar::new(StringArray::from(vec![self.dt.as_str()])))?,
        };
        let low = gt_eq(ids, &Scalar::new(Int64Array::from(vec![self.low])))?;
        let high = lt_eq(ids, &Scalar::new(Int64Array::from(vec![self.high])))?;
        Ok(and(&and(&dt_match, &low)?, &high)?)
    }
}

/// Reads a scan and aggregates it, one task per split, as many at a time as
/// there are cores (the peers' readers use every core too).
pub async fn scan_aggregate(
    table: &Table,
    projection: Option<Vec<usize>>,
    range: Option<&KeyRange>,
) -> Result<ScanAggregate> {
    let mut builder = table.scan().with_projection(projection);
    if let Some(range) = range {
        builder = builder.with_predicate(range.predicate());
    }
    let plan = builder.plan().await?;
    let parallel = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let tasks = (0..plan.splits().len()).map(|i| {
        let mut stream = plan.read_split(i);
        let range = range.cloned();
        tokio::spawn(async move {
            let mut aggregate = ScanAggregate::default();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let batch = match &range {
                    Some(r) => filter_record_batch(&batch, &r.mask(&batch)?)?,
                    None => batch,
                };
                aggregate.add(&batch)?;
            }
            Ok::<_, BenchError>(aggregate)
        })
    });
    let mut partials = futures::stream::iter(tasks).buffer_unordered(parallel);
    let mut total = ScanAggregate::default();
    while let Some(joined) = partials.next().await {
        total.merge(joined.map_err(|e| BenchError::Task(e.to_string()))??);
    }
    Ok(total)
}

/// Rows with this key: the engine prunes by the key's statistics, the exact
/// match is checked here.
/// Rows of one key through the engine's primary-key lookup (what
/// `SELECT ... WHERE dt = ? AND order_id = ?` runs): the key's bucket,
/// files by key range, cached metadata.
pub async fn point_lookup(table: &Table, dt: &str, order_id: i64) -> Result<usize> {
    let key = [Datum::String(dt.to_string()), Datum::BigInt(order_id)];
    Ok(table.lookup(&key).await?.map_or(0, |b| b.num_rows()))
}

/// Rows of a key range through a scan filtered on it (what the point
/// lookups are checked against).
#[cfg(test)]
pub async fn lookup(table: &Table, key: &KeyRange) -> Result<usize> {
    use futures::TryStreamExt;
    let plan = table.scan().with_predicate(key.predicate()).plan().await?;
    let batches: Vec<RecordBatch> = plan.read_all().try_collect().await?;
    let mut rows = 0;
    for batch in &batches {
        rows += key.mask(batch)?.true_count();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::ArrayRef;
    use arrow::datatypes::{DataType as ArrowType, Field, Schema};

    use super::*;

    #[test]
    fn the_spec_matches_the_peers_schema() {
        let spec = orders_spec();
        let names: Vec<&str> = spec.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "order_id",
                "customer_id",
                "dt",
                "status",
                "amount",
                "discount",
                "comment",
                "updated_at"
            ]
        );
        assert_eq!(spec.primary_keys, ["dt", "order_id"]);
        assert_eq!(spec.partition_keys, ["dt"]);
        assert_eq!(spec.options["bucket"], "4");
        assert!(Catalog::schema_from_spec(spec).is_ok());
    }

    #[test]
    fn key_ranges_filter_exactly() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_id", ArrowType::Int64, false),
            Field::new("dt", ArrowType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![9, 10, 11, 12, 10])),
            Arc::new(StringArray::from(vec!["d1", "d1", "d1", "d1", "d2"])),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let range = KeyRange {
            dt: "d1".into(),
            low: 10,
            high: 11,
        };
        let mask = range.mask(&batch).unwrap();
        assert_eq!(
            mask.iter().map(|v| v.unwrap()).collect::<Vec<_>>(),
            [false, true, true, false, false]
        );
        assert!(range.mask(&batch.project(&[0]).unwrap()).is_err());
        let Predicate::And(parts) = range.predicate() else {
            panic!("a conjunction")
        };
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn key_ranges_come_from_expected_json() {
        let section = json!({"dt": "2024-03-06", "order_id_min": 5, "order_id_max": 7, "rows": 3});
        assert_eq!(
            KeyRange::from_expected(&section).unwrap(),
            KeyRange {
                dt: "2024-03-06".into(),
                low: 5,
                high: 7
            }
        );
        assert!(KeyRange::from_expected(&json!({"dt": "x"})).is_err());
        let subset = checked_subset(&section);
        assert_eq!(subset.keys().collect::<Vec<_>>(), ["rows"]);
    }

    #[test]
    fn dir_bytes_adds_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("x"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("a/b/y"), [0u8; 5]).unwrap();
        assert_eq!(dir_bytes(dir.path()), 15);
        assert_eq!(dir_bytes(&dir.path().join("missing")), 0);
    }

    /// The whole path on a small table: ingest, upsert with deletes, scans and
    /// lookups agree with what was written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workloads_round_trip_on_a_small_table() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path().to_str().unwrap()).await.unwrap();
        catalog.create_database(DATABASE, true).await.unwrap();
        catalog
            .create_table(&orders_id(), orders_spec(), false)
            .await
            .unwrap();
        let table = catalog.load_table(&orders_id()).await.unwrap();
        let batch = |ids: Vec<i64>, cents: i128| {
            let n = ids.len();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(Int64Array::from(vec![Some(1); n])),
                Arc::new(StringArray::from(
                    ids.iter()
                        .map(|i| if *i < 50 { "d1" } else { "d2" })
                        .collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(vec![Some("PAID"); n])),
                Arc::new(
                    arrow::array::Decimal128Array::from(vec![Some(cents); n])
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
                Arc::new(arrow::array::Float64Array::from(vec![Some(0.5); n])),
                Arc::new(StringArray::from(vec![Some("hello"); n])),
                Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![
                    Some(1);
                    n
                ])),
            ];
            RecordBatch::try_new(table.arrow_schema(), columns).unwrap()
        };
        let mut writer = table.writer();
        writer
            .write(batch((0..100).collect(), 100), RowKind::Insert)
            .await
            .unwrap();
        writer.commit().await.unwrap();
        let mut writer = table.writer();
        writer
            .write(batch(vec![10, 60], 300), RowKind::Insert)
            .await
            .unwrap();
        writer
            .write(batch(vec![20], 0), RowKind::Delete)
            .await
            .unwrap();
        writer.commit().await.unwrap();

        let all = scan_aggregate(&table, None, None).await.unwrap();
        assert_eq!(all.rows, 99);
        assert_eq!(all.amount_cents, 97 * 100 + 2 * 300);
        assert_eq!(all.comment_bytes, 99 * 5);
        let range = KeyRange {
            dt: "d1".into(),
            low: 5,
            high: 24,
        };
        let filtered = scan_aggregate(&table, None, Some(&range)).await.unwrap();
        assert_eq!(filtered.rows, 19);
        assert_eq!(filtered.amount_cents, 18 * 100 + 300);
        let projected = scan_aggregate(&table, Some(vec![0, 4]), None)
            .await
            .unwrap();
        assert_eq!(
            (
                projected.rows,
                projected.amount_cents,
                projected.comment_bytes
            ),
            (99, 97 * 100 + 600, 0)
        );
        assert_eq!(
            lookup(
                &table,
                &KeyRange {
                    dt: "d2".into(),
                    low: 60,
                    high: 60
                }
            )
            .await
            .unwrap(),
            1
        );
        assert_eq!(
            lookup(
                &table,
                &KeyRange {
                    dt: "d1".into(),
                    low: 20,
                    high: 20
                }
            )
            .await
            .unwrap(),
            0
        );
        assert_eq!(
            lookup(
                &table,
                &KeyRange {
                    dt: "d2".into(),
                    low: 20,
                    high: 20
                }
            )
            .await
            .unwrap(),
            0
        );
        // The lookup workload's fast path agrees with the filtered scans.
        for (dt, id, rows) in [("d2", 60, 1), ("d1", 20, 0), ("d2", 20, 0)] {
            assert_eq!(
                point_lookup(&table, dt, id).await.unwrap(),
                rows,
                "{dt}/{id}"
            );
        }

        // A full compaction leaves the same rows, in fewer files.
        let outcome = table
            .compact(CompactOptions {
                full: true,
                ..CompactOptions::default()
            })
            .await
            .unwrap();
        assert!(outcome.snapshot_id.is_some());
        assert!(outcome.files_out < outcome.files_in, "{outcome:?}");
        let table = catalog.load_table(&orders_id()).await.unwrap();
        let compacted = scan_aggregate(&table, None, None).await.unwrap();
        assert_eq!(compacted.checked(), all.checked());
    }
}
