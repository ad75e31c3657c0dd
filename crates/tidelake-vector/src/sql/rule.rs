//! The optimizer rule that turns `ORDER BY l2_distance(emb, [...]) LIMIT k`
//! (also `cosine_distance`, and `inner_product(...) DESC`) over a table
//! into a vector search: the table's scan becomes a [`VectorSearchTable`]
//! returning the k closest rows (filters below the sort become its
//! allow-list); the sort and limit above stay and order those k rows by
//! the same expression. `EXPLAIN` shows `VectorSearch` in place of the
//! table's scan.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::Result as DfResult;
use datafusion::datasource::default_table_source::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{Expr, LogicalPlan, TableScan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use tidelake_sql::TidelakeTable;

use crate::search::SearchRequest;
use crate::spec::Metric;
use crate::sql::functions::metric_of;
use crate::sql::table_fn::{vector_literal, VectorSearchTable};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct VectorSearchRule;

/// What the sort asks for.
struct Wanted {
    column: String,
    query: Vec<f32>,
    metric: Metric,
    k: usize,
}

/// `f(column, literal)` or `f(literal, column)` of a distance function,
/// ordered the way that puts the closest first.
fn distance_call(e: &Expr, ascending: bool) -> Option<(String, Vec<f32>, Metric)> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    let (metric, lower_is_closer) = metric_of(f.func.name())?;
    if ascending != lower_is_closer {
        return None;
    }
    let [a, b] = f.args.as_slice() else {
        return None;
    };
    let (column, literal) = match (a, b) {
        (Expr::Column(c), l) | (l, Expr::Column(c)) => (c, l),
        _ => return None,
    };
    Some((column.name.clone(), vector_literal(literal)?, metric))
}

/// Resolves a sort expression through the projections below it.
fn resolve(e: &Expr, plan: &LogicalPlan) -> Expr {
    let (Expr::Column(c), LogicalPlan::Projection(p)) = (e, plan) else {
        return e.clone();
    };
    for pe in &p.expr {
        match pe {
            Expr::Alias(a) if a.name == c.name => return resolve(&a.expr, &p.input),
            _ => {}
        }
    }
    e.clone()
}

/// Rebuilds `plan` with its table scan replaced by a search; `None` when
/// the path down is not projections and filters over a Tidelake table.
fn replace_scan(
    plan: &LogicalPlan,
    wanted: &Wanted,
    filters: &mut Vec<Expr>,
) -> Option<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(p) => {
            let input = replace_scan(&p.input, wanted, filters)?;
            plan.with_new_exprs(plan.expressions(), vec![input]).ok()
        }
        LogicalPlan::Filter(f) => {
            filters.push(f.predicate.clone());
            let input = replace_scan(&f.input, wanted, filters)?;
            plan.with_new_exprs(plan.expressions(), vec![input]).ok()
        }
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let tidelake = provider.downcast_ref::<TidelakeTable>()?;
            let table = tidelake.table().clone();
            if table
                .schema()
                .fields
                .iter()
                .all(|f| f.name != wanted.column)
            {
                return None;
            }
            let mut request =
                SearchRequest::new(wanted.column.clone(), wanted.query.clone(), wanted.k);
            request.metric = Some(wanted.metric);
            request.snapshot = tidelake.snapshot();
            let search = VectorSearchTable::new(table, request, false);
            let mut all_filters = scan.filters.clone();
            all_filters.extend(filters.iter().cloned());
            Some(LogicalPlan::TableScan(TableScan {
                source: provider_as_source(Arc::new(search)),
                filters: all_filters,
                fetch: None,
                ..scan.clone()
            }))
        }
        _ => None,
    }
}

impl OptimizerRule for VectorSearchRule {
    fn name(&self) -> &str {
        "vector_search"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Sort(sort) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let (Some(k), Some(first)) = (sort.fetch, sort.expr.first()) else {
            return Ok(Transformed::no(plan));
        };
        let expr = resolve(&first.expr, &sort.input);
        let Some((column, query, metric)) = distance_call(&expr, first.asc) else {
            return Ok(Transformed::no(plan));
        };
        let wanted = Wanted {
            column,
            query,
            metric,
            k,
        };
        let Some(input) = replace_scan(&sort.input, &wanted, &mut Vec::new()) else {
            return Ok(Transformed::no(plan));
        };
        let rebuilt = plan.with_new_exprs(plan.expressions(), vec![input])?;
        Ok(Transformed::yes(rebuilt))
    }
}
