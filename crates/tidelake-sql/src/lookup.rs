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
use tidelake_engine::{Catalog, DataField, DataTypeKind, Datum, LookupOptions, Table};

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

/// One primary-key column's value in a point query's filter.
#[derive(Clone, Debug)]
enum KeyPart {
    Value(Datum),
    /// Parameter `$n` (0-based `n - 1`) of a prepared statement.
    Param(usize),
}

/// A point query's shape, with its key values or parameter slots.
struct PointShape {
    table: Table,
    snapshot: Option<i64>,
    key: Vec<KeyPart>,
    projection: Vec<usize>,
    schema: SchemaRef,
}

impl PointQuery {
    /// The query `plan` is, when the fast path can answer it exactly.
    pub(crate) fn recognise(plan: &LogicalPlan) -> Option<PointQuery> {
        let shape = PointShape::recognise(plan)?;
        let key = shape
            .key
            .iter()
            .map(|part| match part {
                KeyPart::Value(v) => Some(v.clone()),
                KeyPart::Param(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(PointQuery {
            table: shape.table,
            snapshot: shape.snapshot,
            key,
            projection: shape.projection,
            schema: shape.schema,
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

/// A point query prepared with parameters (`... WHERE k = $1`, a prepared
/// statement of a wire protocol): planned once, then run for each set of
/// parameter values as a key lookup, without parsing or planning again.
///
/// Why this is exact: it holds the table's schema as planned, and each run
/// loads the table (cheap: the catalog reuses a schema still the latest)
/// and declines when the schema differs (an ALTER, a drop and re-create),
/// when the session's database is another (name resolution could differ),
/// or when a value does not convert exactly to its key column's type (as
/// a literal would not); the caller then runs the statement the normal
/// way, which answers or reports the error as it always does.
pub struct PreparedPoint {
    catalog: Catalog,
    database: String,
    shape: PointShape,
}

impl std::fmt::Debug for PreparedPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPoint")
            .field("table", self.shape.table.identifier())
            .field("key", &self.shape.key)
            .finish()
    }
}

impl PreparedPoint {
    /// The prepared point query `plan` (planned with its `$n` parameters)
    /// is, in `database`; `None` when it is not one or has no parameter.
    pub(crate) fn recognise(
        plan: &LogicalPlan,
        catalog: &Catalog,
        database: &str,
    ) -> Option<PreparedPoint> {
        let shape = PointShape::recognise(plan)?;
        let parameters = shape.key.iter().any(|k| matches!(k, KeyPart::Param(_)));
        // Branches are loaded differently (and rarely served by key).
        if !parameters || shape.table.paths().branch.is_some() {
            return None;
        }
        Some(PreparedPoint {
            catalog: catalog.clone(),
            database: database.to_string(),
            shape,
        })
    }

    /// Runs the query with `params` (`$1` first) in a session whose
    /// current database is `database`; `None` when it declines (see the
    /// type's doc) and the statement must run the normal way.
    pub async fn execute(
        &self,
        database: &str,
        params: &[ScalarValue],
    ) -> Result<Option<StreamingResult>> {
        if database != self.database {
            return Ok(None);
        }
        let planned = &self.shape.table;
        let Ok(table) = self.catalog.load_table(planned.identifier()).await else {
            return Ok(None);
        };
        if table.schema() != planned.schema() {
            return Ok(None);
        }
        let schema = table.schema();
        let mut key = Vec::with_capacity(self.shape.key.len());
        for (part, name) in self.shape.key.iter().zip(&schema.primary_keys) {
            let datum = match part {
                KeyPart::Value(v) => Some(v.clone()),
                KeyPart::Param(i) => {
                    let field = schema.fields.iter().find(|f| f.name == *name);
                    match (params.get(*i), field) {
                        (Some(value), Some(field)) => key_datum(value.clone(), field),
                        _ => None,
                    }
                }
            };
            match datum {
                Some(d) => key.push(d),
                None => return Ok(None),
            }
        }
        let query = PointQuery {
            table,
            snapshot: self.shape.snapshot,
            key,
            projection: self.shape.projection.clone(),
            schema: self.shape.schema.clone(),
        };
        query.run().await.map(Some)
    }
}

impl PointShape {
    /// The shape of `plan` (see the module doc), parameters allowed.
    fn recognise(plan: &LogicalPlan) -> Option<PointShape> {
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
        Some(PointShape {
            table,
            snapshot: provider.snapshot(),
            key,
            projection: columns,
            schema,
        })
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

/// The value (or parameter) of each primary-key column when `predicate`
/// is exactly a conjunction pinning each of them once.
fn pinned_key(table: &Table, predicate: &Expr) -> Option<Vec<KeyPart>> {
    let mut parts = Vec::new();
    conjuncts(predicate, &mut parts);
    let keys = table.primary_keys();
    if parts.len() != keys.len() {
        return None;
    }
    let mut values: Vec<Option<KeyPart>> = vec![None; keys.len()];
    for part in parts {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = part
        else {
            return None;
        };
        let (column, other) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), other) | (other, Expr::Column(c)) => (c, other),
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
        values[at] = Some(match other {
            Expr::Placeholder(p) => KeyPart::Param(placeholder_index(&p.id)?),
            other => KeyPart::Value(key_datum(literal_value(other)?, field)?),
        });
    }
    values.into_iter().collect()
}

/// A key column's value from a literal (or a parameter's value), when it
/// converts to the column's type exactly.
fn key_datum(literal: ScalarValue, field: &DataField) -> Option<Datum> {
    if literal.is_null() {
        return None;
    }
    let literal = text_as_integer(literal, &field.data_type.kind)?;
    datum_for(&literal, &field.data_type)
}

/// `$n` as the 0-based parameter index `n - 1`.
fn placeholder_index(id: &str) -> Option<usize> {
    id.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)
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
