//! The primary-key fast path: `SELECT cols FROM t WHERE k1 = v1 AND ...`
//! with every primary-key column pinned to a literal (parameters arrive
//! as literals, so prepared statements of every protocol take it too) is
//! answered by the engine's `Table::lookup`, without optimizing the plan,
//! building a physical plan or running DataFusion operators.
//!
//! It is recognised on the *unoptimized* logical plan, after DataFusion
//! resolved names, `*`, aliases and the table (so views, system tables,
//! branches and tags never match): a projection of plain columns over a
//! filter that is a conjunction of `column = literal`, one per key column
//! and nothing else, over a Tidelake primary-key table; `ORDER BY` columns
//! and `LIMIT n` (n > 0) may wrap it, since a key has at most one row.
//! Literals must convert to the column's type exactly (as for pushdown);
//! anything else takes the normal path, which returns the same rows.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{
    BinaryExpr, ExplainFormat, Expr, FetchType, LogicalPlan, Operator, SkipType,
};
use futures::StreamExt;
use tidelake_engine::{DataTypeKind, Datum, LookupOptions, Table};

use crate::error::Result;
use crate::predicate::datum_for;
use crate::provider::TidelakeTable;
use crate::session::{QueryStream, StreamingResult};

/// A query the fast path answers.
pub(crate) struct PointQuery {
    table: Table,
    snapshot: Option<i64>,
    /// One value per primary-key column, in key order.
    key: Vec<Datum>,
    /// Table column indexes of the output columns.
    projection: Vec<usize>,
    schema: SchemaRef,
}

impl PointQuery {
    /// The query `plan` is, when the fast path can answer it exactly.
    pub(crate) fn recognise(plan: &LogicalPlan) -> Option<PointQuery> {
        let mut plan = plan;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        loop {
            match plan {
                LogicalPlan::Limit(limit) => {
                    let skip = limit.get_skip_type().ok()?;
                    let fetch = limit.get_fetch_type().ok()?;
                    if !matches!(skip, SkipType::Literal(0))
                        || !matches!(fetch, FetchType::Literal(None | Some(1..)))
                    {
                        return None;
                    }
                    plan = &limit.input;
                }
                LogicalPlan::Sort(sort) => {
                    let plain = sort.expr.iter().all(|s| matches!(s.expr, Expr::Column(_)));
                    if !plain || sort.fetch == Some(0) {
                        return None;
                    }
                    plan = &sort.input;
                }
                _ => break,
            }
        }
        let LogicalPlan::Projection(projection) = plan else {
            return None;
        };
        let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
            return None;
        };
        let mut input = filter.input.as_ref();
        while let LogicalPlan::SubqueryAlias(alias) = input {
            input = alias.input.as_ref();
        }
        let LogicalPlan::TableScan(scan) = input else {
            return None;
        };
        if !scan.filters.is_empty() || scan.fetch.is_some() || scan.projection.is_some() {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        let provider = provider.downcast_ref::<TidelakeTable>()?;
        if provider.tag().is_some() {
            // A tag outlives its snapshot: the normal path reads through it.
            return None;
        }
        let table = provider.table().clone();
        if !table.is_primary_key_table() {
            return None;
        }
        let fields = &table.schema().fields;
        let column_index = |name: &str| fields.iter().position(|f| f.name == name);
        let mut columns = Vec::with_capacity(projection.expr.len());
        for e in &projection.expr {
            let e = match e {
                Expr::Alias(alias) => alias.expr.as_ref(),
                e => e,
            };
            let Expr::Column(c) = e else { return None };
            columns.push(column_index(&c.name)?);
        }
        let key = pinned_key(&table, &filter.predicate)?;
        // The output must be the table's columns as they are.
        let arrow = table.arrow_schema();
        let same = schema.fields().len() == columns.len()
            && schema
                .fields()
                .iter()
                .zip(&columns)
                .all(|(f, &i)| f.data_type() == arrow.field(i).data_type());
        if !same {
            return None;
        }
        Some(PointQuery {
            table,
            snapshot: provider.snapshot(),
            key,
            projection: columns,
            schema,
        })
    }

    /// Looks the key up.
    pub(crate) async fn run(self) -> Result<StreamingResult> {
        let options = LookupOptions {
            projection: Some(self.projection),
            snapshot: self.snapshot,
        };
        let found = self.table.lookup_keys(&[self.key], &options).await?;
        let batch = RecordBatch::try_new(self.schema.clone(), found.columns().to_vec())?;
        Ok(StreamingResult::Rows(QueryStream {
            schema: self.schema,
            stream: futures::stream::iter(vec![Ok(batch)]).boxed(),
        }))
    }

    /// What `EXPLAIN` shows for it.
    pub(crate) fn describe(&self) -> String {
        let schema = self.table.schema();
        let key: Vec<String> = schema
            .primary_keys
            .iter()
            .zip(&self.key)
            .map(|(k, v)| format!("{k} = {}", show(v)))
            .collect();
        let columns: Vec<&str> = self
            .projection
            .iter()
            .map(|&i| schema.fields[i].name.as_str())
            .collect();
        let snapshot = match self.snapshot {
            Some(id) => format!(", snapshot={id}"),
            None => String::new(),
        };
        format!(
            "PrimaryKeyLookup: table={}, key=[{}], projection=[{}]{snapshot}",
            self.table.identifier(),
            key.join(", "),
            columns.join(", ")
        )
    }
}

/// `EXPLAIN` (plain text, not verbose, not ANALYZE) of a point query.
pub(crate) fn explain(plan: &LogicalPlan) -> Option<Result<StreamingResult>> {
    let LogicalPlan::Explain(explain) = plan else {
        return None;
    };
    if explain.verbose || !matches!(explain.explain_format, ExplainFormat::Indent) {
        return None;
    }
    let query = PointQuery::recognise(&explain.plan)?;
    let line = query.describe();
    let schema: SchemaRef = Arc::new(explain.schema.as_arrow().clone());
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["logical_plan", "physical_plan"])),
            Arc::new(StringArray::from(vec![line.clone(), line])),
        ],
    );
    Some(batch.map_err(Into::into).map(|batch| {
        StreamingResult::Rows(QueryStream {
            schema,
            stream: futures::stream::iter(vec![Ok(batch)]).boxed(),
        })
    }))
}

/// The value of each primary-key column when `predicate` is exactly a
/// conjunction pinning each of them once.
fn pinned_key(table: &Table, predicate: &Expr) -> Option<Vec<Datum>> {
    let mut parts = Vec::new();
    conjuncts(predicate, &mut parts);
    let keys = table.primary_keys();
    if parts.len() != keys.len() {
        return None;
    }
    let mut values: Vec<Option<Datum>> = vec![None; keys.len()];
    for part in parts {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = part
        else {
            return None;
        };
        let (column, literal) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), other) | (other, Expr::Column(c)) => (c, literal_value(other)?),
            _ => return None,
        };
        let at = keys.iter().position(|k| *k == column.name)?;
        let field = table
            .schema()
            .fields
            .iter()
            .find(|f| f.name == column.name)?;
        if !exact_equality(&field.data_type.kind) || values[at].is_some() {
            return None;
        }
        let literal = text_as_integer(literal, &field.data_type.kind)?;
        values[at] = Some(datum_for(&literal, &field.data_type)?);
    }
    values.into_iter().collect()
}

fn conjuncts<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        other => out.push(other),
    }
}

/// A literal, or a cast of one (how parameters arrive), as its value.
fn literal_value(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Cast(cast) => literal_value(&cast.expr)?
            .cast_to(cast.field.data_type())
            .ok(),
        _ => None,
    }
}

/// A text literal against an integer key column, as the parameters of
/// clients that leave their types to the server arrive (`'42'`: pgbench,
/// libpq's PQexecParams without types): DataFusion compares the two by
/// casting the text to the column's type, and so does this. Text that does
/// not cast is left to the normal path, which reports the error.
fn text_as_integer(value: ScalarValue, kind: &DataTypeKind) -> Option<ScalarValue> {
    use datafusion::arrow::datatypes::DataType as Arrow;
    use DataTypeKind as K;
    let target = match kind {
        K::TinyInt => Arrow::Int8,
        K::SmallInt => Arrow::Int16,
        K::Int => Arrow::Int32,
        K::BigInt => Arrow::Int64,
        _ => return Some(value),
    };
    match value {
        ScalarValue::Utf8(_) | ScalarValue::LargeUtf8(_) | ScalarValue::Utf8View(_) => {
            value.cast_to(&target).ok()
        }
        other => Some(other),
    }
}

/// Key types whose SQL equality is the equality of their stored values
/// (floats are left to the normal path: -0.0, NaN).
fn exact_equality(kind: &DataTypeKind) -> bool {
    use DataTypeKind as K;
    matches!(
        kind,
        K::Boolean
            | K::TinyInt
            | K::SmallInt
            | K::Int
            | K::BigInt
            | K::Decimal { .. }
            | K::Char(_)
            | K::VarChar(_)
            | K::Binary(_)
            | K::VarBinary(_)
            | K::Date
            | K::Timestamp(_)
    )
}

fn show(value: &Datum) -> String {
    match value {
        Datum::String(s) => format!("'{}'", s.replace('\'', "''")),
        Datum::TinyInt(v) => v.to_string(),
        Datum::SmallInt(v) => v.to_string(),
        Datum::Int(v) => v.to_string(),
        Datum::BigInt(v) => v.to_string(),
        Datum::Boolean(v) => v.to_string(),
        other => format!("{other:?}"),
    }
}
