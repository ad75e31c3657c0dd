//! `INSERT ... SELECT` whose query holds a VALUES list below its top:
//! `INSERT INTO t SELECT v FROM (VALUES (1), (2)) AS g(v)`, or
//! `... WHERE k IN (SELECT column1 FROM (VALUES (1)) AS v)`.
//!
//! DataFusion 55 plans the whole source of an INSERT with the target's
//! schema in its planner context, so every VALUES list inside the source is
//! checked against the target's columns, and such statements fail with
//! "Inconsistent data length across values list". Here the source query is
//! planned on its own, and the insert around it is built as DataFusion
//! builds it: the target's columns in order (or the listed ones), each from
//! the source column at its position cast to the column's type, NULL for
//! columns the list leaves out. Every other INSERT goes through DataFusion's
//! planner unchanged.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{cast, lit, DmlStatement, Expr, LogicalPlan, Projection, WriteOp};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    Insert, Query, SetExpr, Statement as SqlStatement, TableObject, Visit, Visitor,
};

use crate::error::{Result, SqlError};

/// Plans `statement` if it is an INSERT whose source holds a VALUES list
/// below its top; `None` for every other statement.
pub(crate) async fn plan_insert_around_nested_values(
    ctx: &SessionContext,
    state: &SessionState,
    statement: &DfStatement,
) -> Result<Option<LogicalPlan>> {
    let DfStatement::Statement(inner) = statement else {
        return Ok(None);
    };
    let SqlStatement::Insert(insert) = inner.as_ref() else {
        return Ok(None);
    };
    let Some(source) = &insert.source else {
        return Ok(None);
    };
    if matches!(source.body.as_ref(), SetExpr::Values(_)) || !holds_values(source) {
        return Ok(None);
    }
    plan(ctx, state, insert, source).await.map(Some)
}

async fn plan(
    ctx: &SessionContext,
    state: &SessionState,
    insert: &Insert,
    source: &Query,
) -> Result<LogicalPlan> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(SqlError::Unsupported(
            "INSERT into a table function is not supported".into(),
        ));
    };
    let table_ref = object_name_to_table_reference(name.clone(), true)?;
    let provider = ctx.table_provider(table_ref.clone()).await.map_err(|e| {
        match SqlError::from(e) {
            // Named as the planner names it, for `builtins::explain_missing_table`.
            SqlError::Plan(m) if m.starts_with("No table named") => {
                let defaults = &state.config_options().catalog;
                let resolved = table_ref
                    .clone()
                    .resolve(&defaults.default_catalog, &defaults.default_schema);
                SqlError::UndefinedTable(resolved.to_string())
            }
            other => other,
        }
    })?;
    let target = provider.schema();
    let query = DfStatement::Statement(Box::new(SqlStatement::Query(Box::new(source.clone()))));
    let source_plan = state.statement_to_plan(query).await?;
    let positions = target_positions(insert, &target)?;
    let source_schema = source_plan.schema().clone();
    if source_schema.fields().len() != positions.len() {
        return Err(SqlError::syntax(
            format!(
                "the number of values does not match the number of columns: the query gives {} columns, the INSERT fills {}",
                source_schema.fields().len(),
                positions.len()
            ),
            None,
        ));
    }
    let projection = onto_target(&target, &positions, &[], source_plan)?;
    let op = if insert.overwrite {
        InsertOp::Overwrite
    } else {
        InsertOp::Append
    };
    Ok(LogicalPlan::Dml(DmlStatement::new(
        table_ref,
        provider_as_source(provider),
        WriteOp::Insert(op),
        Arc::new(projection),
    )))
}

/// The rows of `source` as the target's columns, in the target's order:
/// column `positions[j]` from the source's column `j`, the `fixed` ones from
/// their value, the others NULL; each cast to the column's type (as
/// DataFusion builds an INSERT).
pub(crate) fn onto_target(
    target: &datafusion::arrow::datatypes::Schema,
    positions: &[usize],
    fixed: &[(usize, Expr)],
    source: LogicalPlan,
) -> Result<LogicalPlan> {
    let source_schema = source.schema().clone();
    let exprs: Vec<Expr> = target
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let value = match (
                positions.iter().position(|p| *p == index),
                fixed.iter().find(|(i, _)| *i == index),
            ) {
                (_, Some((_, value))) => value.clone(),
                (Some(j), None) => Expr::Column(Column::from(source_schema.qualified_field(j))),
                (None, None) => lit(ScalarValue::Null),
            };
            cast(value, field.data_type().clone()).alias(field.name())
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(source),
    )?))
}

/// The target column index each source column fills, in order.
fn target_positions(
    insert: &Insert,
    target: &datafusion::arrow::datatypes::Schema,
) -> Result<Vec<usize>> {
    if insert.columns.is_empty() {
        return Ok((0..target.fields().len()).collect());
    }
    let mut positions = Vec::with_capacity(insert.columns.len());
    for column in &insert.columns {
        let name = column
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map(|ident| match ident.quote_style {
                Some(_) => ident.value.clone(),
                None => ident.value.to_lowercase(),
            })
            .unwrap_or_else(|| column.to_string());
        let index = target
            .fields()
            .iter()
            .position(|f| f.name() == &name)
            .ok_or_else(|| SqlError::UndefinedColumn(format!("column '{name}' does not exist")))?;
        if positions.contains(&index) {
            return Err(SqlError::DuplicateColumn(format!(
                "column '{name}' is listed twice in the INSERT"
            )));
        }
        positions.push(index);
    }
    Ok(positions)
}

/// Whether a VALUES list stands anywhere in the query.
fn holds_values(query: &Query) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if set_expr_holds_values(&query.body) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    query.visit(&mut Finder).is_break()
}

fn set_expr_holds_values(body: &SetExpr) -> bool {
    match body {
        SetExpr::Values(_) => true,
        SetExpr::SetOperation { left, right, .. } => {
            set_expr_holds_values(left) || set_expr_holds_values(right)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn source(sql: &str) -> Box<Query> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let SqlStatement::Insert(insert) = statement else {
            panic!("not an insert: {sql}");
        };
        insert.source.unwrap()
    }

    #[test]
    fn values_below_the_top_are_found() {
        for sql in [
            "INSERT INTO t SELECT column1 FROM (VALUES (1), (2)) AS g",
            "INSERT INTO t SELECT k FROM s WHERE k IN (SELECT column1 FROM (VALUES (1)) v)",
            "INSERT INTO t SELECT 1 UNION ALL VALUES (2)",
        ] {
            assert!(holds_values(&source(sql)), "{sql}");
        }
        assert!(!holds_values(&source("INSERT INTO t SELECT * FROM s")));
    }
}
