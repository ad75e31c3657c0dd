//! Helpers shared by the engine's benchmarks: the order-like table they
//! write, a seeded row generator and the process's peak memory.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use tidelake_engine::{ColumnSpec, DataType, DataTypeKind};

/// The process's peak resident set (`VmHWM`), in MiB; NaN where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// xorshift: deterministic and dependency-free.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn col(name: &str, kind: DataTypeKind, nullable: bool) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        data_type: DataType::new(kind, nullable),
        comment: None,
    }
}

/// The 8 order-like columns of the benchmark tables; `id` is the key.
pub fn order_columns() -> Vec<ColumnSpec> {
    vec![
        col("id", DataTypeKind::BigInt, false),
        col("customer", DataTypeKind::BigInt, true),
        col("status", DataTypeKind::VarChar(i32::MAX as u32), true),
        col("amount", DataTypeKind::Double, true),
        col("discount", DataTypeKind::Double, true),
        col("comment", DataTypeKind::VarChar(i32::MAX as u32), true),
        col("ts", DataTypeKind::Timestamp(6), true),
        col("qty", DataTypeKind::BigInt, true),
    ]
}

/// One batch of `order_columns()` rows with the given keys, other values
/// drawn from `rng`.
pub fn make_batch(schema: arrow_schema::SchemaRef, keys: &[i64], rng: &mut Rng) -> RecordBatch {
    let n = keys.len();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(keys.to_vec())),
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|_| (rng.next() % 100_000) as i64),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|_| format!("status-{}", rng.next() % 5)),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|_| (rng.next() % 1_000_000) as f64 / 100.0),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|_| (rng.next() % 1000) as f64 / 10.0),
        )),
        Arc::new(StringArray::from_iter_values((0..n).map(|_| {
            format!(
                "comment {:016x} lorem ipsum dolor sit amet {:08x}",
                rng.next(),
                rng.next() % 99999
            )
        }))),
        Arc::new(TimestampMicrosecondArray::from_iter_values((0..n).map(
            |_| 1_700_000_000_000_000 + (rng.next() % 1_000_000_000) as i64,
        ))),
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|_| (rng.next() % 1000) as i64),
        )),
    ];
    RecordBatch::try_new(schema, cols).expect("generated columns match the table schema")
}
