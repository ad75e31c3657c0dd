//! A table's vector index definition, read from its options in Paimon's
//! layout for primary-key vector indexes:
//!
//! - `pk-vector.index.columns` = the indexed column (exactly one);
//! - `fields.<c>.pk-vector.index.type` = `ivf-flat`, `ivf-sq`, `ivf-pq`,
//!   `ivf-rq` or `diskann` (Paimon's `paimon-vector` identifiers);
//! - `fields.<c>.pk-vector.distance.metric` = `l2`, `cosine` or
//!   `inner_product` (Paimon's default);
//! - `fields.<c>.pk-vector.index.options` = a JSON object of build options
//!   for the index library (`nlist`, `pq.m`, ...);
//! - the dimension: `fields.<c>.dimension` (as pypaimon reads it for
//!   `ARRAY<FLOAT>` columns) or the column comment `__VECTOR_FIELD;<n>`
//!   (Paimon's Flink and Spark directive).

use std::collections::{BTreeMap, HashMap};

use paimon_vindex_core::index::VectorIndexConfig;
use tidelake_engine::{DataTypeKind, TableSchema};

use crate::error::{Result, VectorError};

/// Option naming the indexed column.
pub const INDEX_COLUMNS: &str = "pk-vector.index.columns";

/// The index types Paimon's vector library provides.
pub const INDEX_TYPES: &[&str] = &["ivf-flat", "ivf-sq", "ivf-pq", "ivf-rq", "diskann"];

/// How distances are measured; lower is closer for all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Euclidean distance.
    L2,
    /// `1 - cos(a, b)`.
    Cosine,
    /// The negated dot product (so that lower is closer).
    InnerProduct,
}

impl Metric {
    pub fn parse(text: &str) -> Option<Metric> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "l2" => Some(Metric::L2),
            "cosine" => Some(Metric::Cosine),
            "inner_product" => Some(Metric::InnerProduct),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "inner_product",
        }
    }

    /// The distance of `v` from `q` (same length), lower is closer.
    pub fn distance(self, q: &[f32], v: &[f32]) -> f64 {
        match self {
            Metric::L2 => q
                .iter()
                .zip(v)
                .map(|(a, b)| {
                    let d = f64::from(*a) - f64::from(*b);
                    d * d
                })
                .sum::<f64>()
                .sqrt(),
            Metric::Cosine => {
                let (mut dot, mut nq, mut nv) = (0f64, 0f64, 0f64);
                for (a, b) in q.iter().zip(v) {
                    let (a, b) = (f64::from(*a), f64::from(*b));
                    dot += a * b;
                    nq += a * a;
                    nv += b * b;
                }
                if nq == 0.0 || nv == 0.0 {
                    1.0
                } else {
                    1.0 - dot / (nq.sqrt() * nv.sqrt())
                }
            }
            Metric::InnerProduct => -q
                .iter()
                .zip(v)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>(),
        }
    }
}

/// The vector index of one table.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorIndexSpec {
    pub column: String,
    pub field_id: i32,
    pub dimension: usize,
    /// Paimon's identifier, e.g. `ivf-flat` (the index manifest's type).
    pub index_type: String,
    pub metric: Metric,
    /// Build options for the library, from the JSON option.
    pub build_options: BTreeMap<String, String>,
}

/// The option keys of column `c`.
pub fn type_key(c: &str) -> String {
    format!("fields.{c}.pk-vector.index.type")
}
pub fn metric_key(c: &str) -> String {
    format!("fields.{c}.pk-vector.distance.metric")
}
pub fn options_key(c: &str) -> String {
    format!("fields.{c}.pk-vector.index.options")
}
pub fn dimension_key(c: &str) -> String {
    format!("fields.{c}.dimension")
}

/// The dimension a column comment declares (`__VECTOR_FIELD;<n>`).
fn comment_dimension(comment: Option<&str>) -> Option<&str> {
    comment?
        .trim()
        .strip_prefix("__VECTOR_FIELD;")
        .map(str::trim)
}

impl VectorIndexSpec {
    /// The table's vector index (`None`: the table has none). Checks the
    /// definition as Paimon does: a primary-key table with a fixed bucket
    /// and deletion vectors, an `ARRAY<FLOAT>` column, a known dimension,
    /// a known index type and metric, build options the library accepts.
    pub fn from_schema(table: &str, schema: &TableSchema) -> Result<Option<VectorIndexSpec>> {
        let Some(columns) = schema.options.get(INDEX_COLUMNS) else {
            return Ok(None);
        };
        let bad = |m: String| VectorError::definition(table, m);
        let names: Vec<&str> = columns
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let [column] = names.as_slice() else {
            return Err(bad(format!(
                "'{INDEX_COLUMNS}' must name exactly one column, but is '{columns}'"
            )));
        };
        let field = schema
            .fields
            .iter()
            .find(|f| f.name == *column)
            .ok_or_else(|| {
                bad(format!(
                    "'{INDEX_COLUMNS}' names column '{column}', which the table does not have"
                ))
            })?;
        match &field.data_type.kind {
            DataTypeKind::Array(e) if matches!(e.kind, DataTypeKind::Float) => {}
            other => {
                return Err(bad(format!(
                    "column '{column}' is {other:?}, but a vector index needs ARRAY<FLOAT>"
                )))
            }
        }
        if schema.primary_keys.is_empty() {
            return Err(bad("a vector index needs a primary-key table".into()));
        }
        let option = |k: &str| schema.options.get(k).map(String::as_str);
        if option("deletion-vectors.enabled") != Some("true") {
            return Err(bad(
                "a vector index needs 'deletion-vectors.enabled' = 'true'".into(),
            ));
        }
        match option("bucket").map(str::parse::<i32>) {
            Some(Ok(b)) if b > 0 => {}
            _ => {
                return Err(bad(
                    "a vector index needs a fixed number of buckets ('bucket' > 0)".into(),
                ))
            }
        }
        let index_type = option(&type_key(column))
            .ok_or_else(|| bad(format!("option '{}' is missing", type_key(column))))?
            .trim()
            .to_ascii_lowercase();
        if !INDEX_TYPES.contains(&index_type.as_str()) {
            return Err(bad(format!(
                "unknown index type '{index_type}' (supported: {})",
                INDEX_TYPES.join(", ")
            )));
        }
        let metric_text = option(&metric_key(column)).unwrap_or("inner_product");
        let metric = Metric::parse(metric_text).ok_or_else(|| {
            bad(format!(
                "unknown metric '{metric_text}' (supported: l2, cosine, inner_product)"
            ))
        })?;
        let dimension_text = option(&dimension_key(column))
            .or_else(|| comment_dimension(field.description.as_deref()))
            .ok_or_else(|| {
                bad(format!(
                    "the dimension of column '{column}' is unknown: set '{}'",
                    dimension_key(column)
                ))
            })?;
        let dimension = match dimension_text.parse::<usize>() {
            Ok(d) if d > 0 => d,
            _ => {
                return Err(bad(format!(
                    "the dimension of column '{column}' must be a positive integer, not '{dimension_text}'"
                )))
            }
        };
        let build_options = match option(&options_key(column)) {
            None => BTreeMap::new(),
            Some(json) => parse_build_options(json).map_err(bad)?,
        };
        let spec = VectorIndexSpec {
            column: column.to_string(),
            field_id: field.id,
            dimension,
            index_type,
            metric,
            build_options,
        };
        spec.library_config(1_000_000)
            .map_err(|e| bad(format!("the index library refuses the options: {e}")))?;
        Ok(Some(spec))
    }

    /// The library's configuration for an index of `vectors` vectors:
    /// `nlist` is at most the number of vectors (k-means needs as many).
    pub fn library_config(&self, vectors: usize) -> Result<VectorIndexConfig, String> {
        let mut options: HashMap<String, String> = self
            .build_options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        options.insert("index.type".into(), self.index_type.replace('-', "_"));
        options.insert("dimension".into(), self.dimension.to_string());
        options.insert("metric".into(), self.metric.name().into());
        let vectors = vectors.max(1);
        if self.index_type != "diskann" {
            match options.get("nlist").map(|n| n.trim().parse::<usize>()) {
                Some(Ok(n)) => {
                    options.insert("nlist".into(), n.clamp(1, vectors).to_string());
                }
                Some(Err(_)) if options.get("nlist").map(String::as_str) != Some("auto") => {
                    return Err("option 'nlist' must be a positive integer or 'auto'".into())
                }
                _ => {
                    options.remove("nlist");
                    options
                        .entry("expected-vector-count".into())
                        .or_insert_with(|| vectors.to_string());
                }
            }
        }
        VectorIndexConfig::from_options(&options).map_err(|e| e.to_string())
    }
}

/// The JSON object of build options (`{"nlist":"256"}`; numbers allowed).
fn parse_build_options(json: &str) -> Result<BTreeMap<String, String>, String> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("index options are not a JSON object: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(format!("index options must be a JSON object, not {json}"));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(format!(
                "index option '{k}' has an unsupported value {other}"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_measure_as_documented() {
        let (a, b) = ([3.0f32, 0.0], [0.0f32, 4.0]);
        assert_eq!(Metric::L2.distance(&a, &b), 5.0);
        assert_eq!(Metric::Cosine.distance(&a, &b), 1.0);
        assert_eq!(Metric::InnerProduct.distance(&a, &[2.0, 1.0]), -6.0);
        assert_eq!(Metric::parse("INNER-PRODUCT"), Some(Metric::InnerProduct));
        assert_eq!(Metric::parse("hamming"), None);
    }

    #[test]
    fn build_options_are_a_json_object() {
        let parsed = parse_build_options(r#"{"nlist":"16","pq.m":8}"#).unwrap();
        assert_eq!(parsed["nlist"], "16");
        assert_eq!(parsed["pq.m"], "8");
        assert!(parse_build_options("[1]").is_err());
    }
}
