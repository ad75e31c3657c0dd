//! The aggregate the scan workloads compute over what Tidelake returns: the
//! same figures `ScanAggregate` in bench/common.py computes for the peers.
//! The full scan touches every column, so the reader cannot skip one; rows,
//! the sum of amounts (in cents) and the bytes of comments are checked
//! exactly against the generator's figures.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::kernels::aggregate::{max, max_string, max_string_view, min, sum};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type, TimestampMicrosecondType};
use serde_json::{json, Map, Value};

use crate::error::{BenchError, Result};

/// The scale of `amount` (DECIMAL(12, 2)): sums are kept in cents.
const AMOUNT_SCALE: i8 = 2;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScanAggregate {
    pub rows: u64,
    pub amount_cents: i128,
    pub comment_bytes: u64,
    pub discount_sum: f64,
    pub max_customer_id: Option<i64>,
    pub max_updated_at: Option<i64>,
    pub min_order_id: Option<i64>,
    pub max_status: Option<String>,
    pub max_dt: Option<String>,
}

fn larger<T: PartialOrd>(current: Option<T>, candidate: Option<T>) -> Option<T> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(if b > a { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn smaller<T: PartialOrd>(current: Option<T>, candidate: Option<T>) -> Option<T> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(if b < a { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Sum of the byte lengths of a string column's non-null values.
fn string_bytes(column: &dyn Array) -> Result<u64> {
    let total: usize = match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::len)
            .sum(),
        DataType::LargeUtf8 => column
            .as_string::<i64>()
            .iter()
            .flatten()
            .map(str::len)
            .sum(),
        DataType::Utf8View => column.as_string_view().iter().flatten().map(str::len).sum(),
        other => {
            return Err(BenchError::input(format!(
                "expected a string column, found {other}"
            )))
        }
    };
    Ok(total as u64)
}

fn max_text(column: &dyn Array) -> Result<Option<String>> {
    Ok(match column.data_type() {
        DataType::Utf8 => max_string(column.as_string::<i32>()).map(str::to_string),
        DataType::LargeUtf8 => max_string(column.as_string::<i64>()).map(str::to_string),
        DataType::Utf8View => max_string_view(column.as_string_view()).map(str::to_string),
        other => {
            return Err(BenchError::input(format!(
                "expected a string column, found {other}"
            )))
        }
    })
}

fn int64_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<Option<&'a arrow::array::Int64Array>> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(c) => c.as_primitive_opt::<Int64Type>().map(Some).ok_or_else(|| {
            BenchError::input(format!(
                "column '{name}' is {}, expected BIGINT",
                c.data_type()
            ))
        }),
    }
}

impl ScanAggregate {
    /// Adds a batch; columns it does not have are skipped (projections).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some(amount) = batch.column_by_name("amount") {
            let DataType::Decimal128(_, scale) = amount.data_type() else {
                return Err(BenchError::input(format!(
                    "column 'amount' is {}, expected DECIMAL",
                    amount.data_type()
                )));
            };
            if *scale != AMOUNT_SCALE {
                return Err(BenchError::input(format!(
                    "column 'amount' has scale {scale}, expected {AMOUNT_SCALE}"
                )));
            }
            self.amount_cents += sum(amount.as_primitive::<Decimal128Type>()).unwrap_or(0);
        }
        if let Some(comment) = batch.column_by_name("comment") {
            self.comment_bytes += string_bytes(comment.as_ref())?;
        }
        if let Some(discount) = batch.column_by_name("discount") {
            let values = discount
                .as_primitive_opt::<arrow::datatypes::Float64Type>()
                .ok_or_else(|| {
                    BenchError::input(format!("column 'discount' is {}", discount.data_type()))
                })?;
            self.discount_sum += sum(values).unwrap_or(0.0);
        }
        if let Some(ids) = int64_column(batch, "order_id")? {
            self.min_order_id = smaller(self.min_order_id, min(ids));
        }
        if let Some(customers) = int64_column(batch, "customer_id")? {
            self.max_customer_id = larger(self.max_customer_id, max(customers));
        }
        if let Some(stamps) = batch.column_by_name("updated_at") {
            let stamps = stamps
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| {
                    BenchError::input(format!("column 'updated_at' is {}", stamps.data_type()))
                })?;
            self.max_updated_at = larger(self.max_updated_at, max(stamps));
        }
        if let Some(status) = batch.column_by_name("status") {
            self.max_status = larger(self.max_status.take(), max_text(status.as_ref())?);
        }
        if let Some(dt) = batch.column_by_name("dt") {
            self.max_dt = larger(self.max_dt.take(), max_text(dt.as_ref())?);
        }
        Ok(())
    }

    /// Combines the aggregates of two disjoint sets of rows.
    pub fn merge(&mut self, other: ScanAggregate) {
        self.rows += other.rows;
        self.amount_cents += other.amount_cents;
        self.comment_bytes += other.comment_bytes;
        self.discount_sum += other.discount_sum;
        self.min_order_id = smaller(self.min_order_id, other.min_order_id);
        self.max_customer_id = larger(self.max_customer_id, other.max_customer_id);
        self.max_updated_at = larger(self.max_updated_at, other.max_updated_at);
        self.max_status = larger(self.max_status.take(), other.max_status);
        self.max_dt = larger(self.max_dt.take(), other.max_dt);
    }

    /// The figures checked against the generator's (as bench/common.py names them).
    pub fn checked(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("rows".into(), json!(self.rows));
        // Sums of cents fit i64 by far at any scale the suite runs.
        out.insert("sum_amount_cents".into(), json!(self.amount_cents as i64));
        if self.comment_bytes > 0 {
            out.insert("comment_bytes".into(), json!(self.comment_bytes));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Decimal128Array, Float64Array, Int64Array, StringArray, StringViewArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Schema};
    use proptest::prelude::*;

    use super::*;

    fn orders(ids: &[i64], cents: &[Option<i128>], comments: &[Option<&str>]) -> RecordBatch {
        let n = ids.len();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("order_id", Arc::new(Int64Array::from(ids.to_vec()))),
            (
                "customer_id",
                Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i * 10))),
            ),
            (
                "dt",
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|i| format!("2024-03-0{}", i % 9 + 1)),
                )),
            ),
            (
                "status",
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|i| ["PAID", "SHIPPED"][(i % 2) as usize]),
                )),
            ),
            (
                "amount",
                Arc::new(
                    Decimal128Array::from(cents.to_vec())
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
            ),
            (
                "discount",
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| i as f64 * 0.5),
                )),
            ),
            ("comment", Arc::new(StringArray::from(comments.to_vec()))),
            (
                "updated_at",
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    ids.iter().map(|i| i * 1000),
                )),
            ),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, c)| Field::new(*name, c.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, c)| c).collect(),
        )
        .unwrap()
    }

    #[test]
    fn full_rows_give_every_figure() {
        let batch = orders(
            &[5, 3, 9],
            &[Some(150), None, Some(1)],
            &[Some("abc"), None, Some("hello")],
        );
        let mut agg = ScanAggregate::default();
        agg.add(&batch).unwrap();
        assert_eq!(agg.rows, 3);
        assert_eq!(agg.amount_cents, 151);
        assert_eq!(agg.comment_bytes, 8);
        assert_eq!(agg.min_order_id, Some(3));
        assert_eq!(agg.max_customer_id, Some(90));
        assert_eq!(agg.max_updated_at, Some(9000));
        assert_eq!(agg.max_status.as_deref(), Some("SHIPPED"));
        assert_eq!(agg.max_dt.as_deref(), Some("2024-03-06"));
        assert_eq!(agg.discount_sum, 1.5);
        let checked = agg.checked();
        assert_eq!(checked["rows"], 3);
        assert_eq!(checked["sum_amount_cents"], 151);
        assert_eq!(checked["comment_bytes"], 8);
    }

    #[test]
    fn projections_count_what_they_have() {
        let batch = orders(&[1, 2], &[Some(10), Some(20)], &[Some("x"), Some("y")]);
        let projected = batch.project(&[0, 4]).unwrap();
        let mut agg = ScanAggregate::default();
        agg.add(&projected).unwrap();
        assert_eq!((agg.rows, agg.amount_cents, agg.comment_bytes), (2, 30, 0));
        assert!(!agg.checked().contains_key("comment_bytes"));
    }

    #[test]
    fn string_views_and_wrong_types() {
        let views = StringViewArray::from(vec![
            Some("a longer string than twelve bytes"),
            None,
            Some("ab"),
        ]);
        assert_eq!(string_bytes(&views).unwrap(), 35);
        assert_eq!(max_text(&views).unwrap().as_deref(), Some("ab"));
        assert!(string_bytes(&Int64Array::from(vec![1])).is_err());
        let schema = Arc::new(Schema::new(vec![Field::new(
            "amount",
            arrow::datatypes::DataType::Int64,
            true,
        )]));
        let bad = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        assert!(ScanAggregate::default().add(&bad).is_err());
    }

    proptest! {
        #[test]
        fn merging_partials_equals_one_pass(
            rows in proptest::collection::vec((0i64..1_000_000, proptest::option::of(0i128..10_000_000), "[a-z]{0,20}"), 1..60),
            split in 0usize..60,
        ) {
            let split = split.min(rows.len());
            let build = |part: &[(i64, Option<i128>, String)]| {
                let ids: Vec<i64> = part.iter().map(|r| r.0).collect();
                let cents: Vec<Option<i128>> = part.iter().map(|r| r.1).collect();
                let comments: Vec<Option<&str>> = part.iter().map(|r| Some(r.2.as_str())).collect();
                orders(&ids, &cents, &comments)
            };
            let mut whole = ScanAggregate::default();
            whole.add(&build(&rows)).unwrap();
            let mut left = ScanAggregate::default();
            left.add(&build(&rows[..split])).unwrap();
            let mut right = ScanAggregate::default();
            right.add(&build(&rows[split..])).unwrap();
            left.merge(right);
            prop_assert_eq!(left.checked(), whole.checked());
            prop_assert_eq!(left.min_order_id, whole.min_order_id);
            prop_assert_eq!(left.max_status, whole.max_status);
            prop_assert_eq!(left.max_updated_at, whole.max_updated_at);
        }
    }
}
