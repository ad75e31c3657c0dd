//! Exact distance functions: `l2_distance(a, b)` (Euclidean),
//! `cosine_distance(a, b)` (`1 - cos`) and `inner_product(a, b)` (the dot
//! product; higher is closer). Arguments are float arrays of one length;
//! NULL in, NULL out.

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Float64Builder, ListArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

use crate::spec::Metric;

/// A distance function and the metric whose order it gives.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistanceFunction {
    name: &'static str,
    metric: Metric,
    signature: Signature,
}

/// The three functions.
pub fn all() -> Vec<ScalarUDF> {
    [
        ("l2_distance", Metric::L2),
        ("cosine_distance", Metric::Cosine),
        ("inner_product", Metric::InnerProduct),
    ]
    .into_iter()
    .map(|(name, metric)| {
        ScalarUDF::new_from_impl(DistanceFunction {
            name,
            metric,
            signature: Signature::any(2, Volatility::Immutable),
        })
    })
    .collect()
}

/// The metric a function's name orders by, and whether lower is closer
/// (`inner_product` is closer when higher).
pub fn metric_of(name: &str) -> Option<(Metric, bool)> {
    match name {
        "l2_distance" => Some((Metric::L2, true)),
        "cosine_distance" => Some((Metric::Cosine, true)),
        "inner_product" => Some((Metric::InnerProduct, false)),
        _ => None,
    }
}

/// A float array argument as a list of f64 lists.
fn as_f64_lists(a: &ArrayRef, name: &str) -> DfResult<ListArray> {
    let target = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    let casted = match a.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            cast(a, &target)?
        }
        other => return exec_err!("{name} takes two float arrays, not {other}"),
    };
    match casted.as_any().downcast_ref::<ListArray>() {
        Some(l) => Ok(l.clone()),
        None => exec_err!("{name} takes two float arrays"),
    }
}

impl ScalarUDFImpl for DistanceFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let [a, b] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.name);
        };
        let (a, b) = (a.to_array(n)?, b.to_array(n)?);
        if a.data_type() == &DataType::Null || b.data_type() == &DataType::Null {
            return Ok(ColumnarValue::Array(Arc::new(Float64Array::new_null(n))));
        }
        let a = as_f64_lists(&a, self.name)?;
        let b = as_f64_lists(&b, self.name)?;
        let mut out = Float64Builder::with_capacity(n);
        for row in 0..n {
            if a.is_null(row) || b.is_null(row) {
                out.append_null();
                continue;
            }
            let (x, y) = (a.value(row), b.value(row));
            let x = x.as_any().downcast_ref::<Float64Array>();
            let y = y.as_any().downcast_ref::<Float64Array>();
            let (Some(x), Some(y)) = (x, y) else {
                return exec_err!("{} takes two float arrays", self.name);
            };
            if x.len() != y.len() {
                return exec_err!(
                    "{}: the vectors have {} and {} elements",
                    self.name,
                    x.len(),
                    y.len()
                );
            }
            if x.null_count() > 0 || y.null_count() > 0 {
                out.append_null();
                continue;
            }
            let (x, y) = (x.values(), y.values());
            let d = match self.metric {
                Metric::L2 => x
                    .iter()
                    .zip(y)
                    .map(|(p, q)| (p - q) * (p - q))
                    .sum::<f64>()
                    .sqrt(),
                Metric::Cosine => {
                    let dot: f64 = x.iter().zip(y).map(|(p, q)| p * q).sum();
                    let nx: f64 = x.iter().map(|p| p * p).sum::<f64>().sqrt();
                    let ny: f64 = y.iter().map(|q| q * q).sum::<f64>().sqrt();
                    if nx == 0.0 || ny == 0.0 {
                        1.0
                    } else {
                        1.0 - dot / (nx * ny)
                    }
                }
                Metric::InnerProduct => x.iter().zip(y).map(|(p, q)| p * q).sum(),
            };
            out.append_value(d);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
