//! DELETE and UPDATE.
//!
//! On a primary-key table both are writes by key: DELETE runs its WHERE as a
//! query and writes the matching rows as `-D`; UPDATE runs the query that
//! DataFusion planned for it (the new value of every column, for the
//! matching rows) and writes the result as upserts. Key and partition
//! columns cannot change, since that would move the row to another key.
//!
//! An append table has no keys, so its files are rewritten: the engine reads
//! every file that may hold a matching row and this module decides, batch by
//! batch, which rows go (DELETE) or what they become (UPDATE).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{
    cast_with_options, filter_record_batch, not, prep_null_mask_filter, CastOptions,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::DFSchemaRef;
use datafusion::datasource::source_as_provider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, WriteOp};
use datafusion::physical_plan::PhysicalExpr;
use tidelake_engine::options::MergeEngine;
use tidelake_engine::{EngineError, RowKind, Table};

use crate::error::{Result, SqlError};
use crate::predicate::to_predicate;
use crate::provider::TidelakeTable;

/// Which DML statement runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DmlKind {
    Delete,
    Update,
}

/// Runs a planned DELETE or UPDATE; returns the number of rows changed.
pub(crate) async fn execute_dml(state: &SessionState, dml: &DmlStatement) -> Result<u64> {
    let kind = match dml.op {
        WriteOp::Delete => DmlKind::Delete,
        WriteOp::Update => DmlKind::Update,
        WriteOp::Truncate => {
            let table = writable_table(dml)?;
            let properties = crate::retry::commit_properties(state.config());
            table.truncate(properties).await?;
            return Ok(0);
        }
        ref other => {
            return Err(SqlError::Internal(format!(
                "{other} is not a DELETE or UPDATE"
            )))
        }
    };
    let table = writable_table(dml)?;
    if kind == DmlKind::Update {
        refuse_key_changes(&table, &dml.input)?;
    }
    if table.is_primary_key_table() {
        if table.options().merge_engine != MergeEngine::Deduplicate {
            return Err(SqlError::Unsupported(format!(
                "{} on table '{}' needs the 'deduplicate' merge engine (rows of other merge engines are combined, not replaced)",
                if kind == DmlKind::Delete { "DELETE" } else { "UPDATE" },
                table.identifier()
            )));
        }
        write_by_key(state, &table, &dml.input, kind).await
    } else {
        // Rewrites read the files they replace: no commit of this process
        // comes between (see `crate::group`).
        let _turn = table.write_turn().await;
        rewrite_append(state, &table, &dml.input, kind).await
    }
}

/// The table a DML statement changes: one of ours, at its latest snapshot.
pub(crate) fn writable_table(dml: &DmlStatement) -> Result<Table> {
    let provider = source_as_provider(&dml.target)?;
    let Some(ours) = provider.downcast_ref::<TidelakeTable>() else {
        return Err(SqlError::Unsupported(format!(
            "table '{}' cannot be changed",
            dml.table_name
        )));
    };
    if let Some(snapshot) = ours.snapshot() {
        return Err(SqlError::Unsupported(format!(
            "table '{}' as of snapshot {snapshot} is read-only",
            ours.table().identifier()
        )));
    }
    Ok(ours.table().clone())
}

/// The columns an UPDATE assigns: its projection is `expr AS column` for
/// every column, `column AS column` for those left alone.
fn assigned_columns(input: &LogicalPlan) -> Vec<(String, Expr)> {
    let LogicalPlan::Projection(projection) = input else {
        return Vec::new();
    };
    projection
        .expr
        .iter()
        .filter_map(|e| match e {
            Expr::Alias(alias) => match alias.expr.as_ref() {
                Expr::Column(c) if c.name == alias.name => None,
                inner => Some((alias.name.clone(), inner.clone())),
            },
            _ => None,
        })
        .collect()
}

fn refuse_key_changes(table: &Table, input: &LogicalPlan) -> Result<()> {
    for (column, _) in assigned_columns(input) {
        let role = if table.primary_keys().contains(&column) {
            "primary key"
        } else if table.partition_keys().contains(&column) {
            "partition"
        } else {
            continue;
        };
        return Err(SqlError::Unsupported(format!(
            "UPDATE cannot change {role} column '{column}' of table '{}': delete the row and insert it with the new key instead",
            table.identifier()
        )));
    }
    Ok(())
}

/// Runs the DML input query and writes its rows with `kind`'s row kind.
async fn write_by_key(
    state: &SessionState,
    table: &Table,
    input: &LogicalPlan,
    kind: DmlKind,
) -> Result<u64> {
    let row_kind = match kind {
        DmlKind::Delete => RowKind::Delete,
        DmlKind::Update => RowKind::Insert,
    };
    // The turn before the read (planning reads the snapshot): see
    // `crate::group`.
    let turn = table.write_turn().await;
    let physical = state.create_physical_plan(input).await?;
    let properties = crate::retry::commit_properties(state.config());
    crate::group::write_under_turn(
        table,
        turn,
        physical,
        state.task_ctx(),
        row_kind,
        properties,
    )
    .await
}

/// The parts of a DML plan over a single table: its WHERE, its assignments
/// (column index, new value) and the schema they are written against.
struct SimpleDml {
    predicate: Option<Expr>,
    assignments: Vec<(usize, Expr)>,
    schema: DFSchemaRef,
}

fn simple_dml(table: &Table, input: &LogicalPlan, kind: DmlKind) -> Result<SimpleDml> {
    let unsupported = |what: &str| {
        SqlError::Unsupported(format!(
            "{what} in {} on table '{}' (it has no primary key, so its files are rewritten row by row)",
            if kind == DmlKind::Delete { "DELETE" } else { "UPDATE" },
            table.identifier()
        ))
    };
    let (source, assignments) = match (kind, input) {
        (DmlKind::Update, LogicalPlan::Projection(p)) => {
            (p.input.as_ref(), assigned_columns(input))
        }
        (DmlKind::Update, _) => return Err(unsupported("this form of UPDATE is not supported")),
        (DmlKind::Delete, plan) => (plan, Vec::new()),
    };
    let (predicate, scan) = match source {
        LogicalPlan::Filter(f) => (Some(f.predicate.clone()), f.input.as_ref()),
        other => (None, other),
    };
    let LogicalPlan::TableScan(scan) = scan else {
        return Err(unsupported("LIMIT, FROM and joins are not supported"));
    };
    let has_subquery = |e: &Expr| {
        e.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ))
        })
        .unwrap_or(true)
    };
    if predicate.as_ref().is_some_and(has_subquery)
        || assignments.iter().any(|(_, e)| has_subquery(e))
    {
        return Err(unsupported("subqueries are not supported"));
    }
    let schema = scan.projected_schema.clone();
    let assignments = assignments
        .into_iter()
        .map(|(name, expr)| {
            table
                .schema()
                .fields
                .iter()
                .position(|f| f.name == name)
                .map(|i| (i, expr))
                .ok_or_else(|| {
                    SqlError::UndefinedColumn(format!(
                        "column '{name}' does not exist in table '{}'",
                        table.identifier()
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SimpleDml {
        predicate,
        assignments,
        schema,
    })
}

type PhysicalAssignments = Vec<(usize, Arc<dyn PhysicalExpr>)>;

async fn rewrite_append(
    state: &SessionState,
    table: &Table,
    input: &LogicalPlan,
    kind: DmlKind,
) -> Result<u64> {
    let dml = simple_dml(table, input, kind)?;
    let candidates = dml
        .predicate
        .as_ref()
        .and_then(|p| to_predicate(p, table.schema()));
    let predicate = dml
        .predicate
        .map(|p| state.create_physical_expr(p, &dml.schema))
        .transpose()?;
    let assignments: PhysicalAssignments = dml
        .assignments
        .into_iter()
        .map(|(i, e)| Ok((i, state.create_physical_expr(e, &dml.schema)?)))
        .collect::<Result<_>>()?;
    let table_schema = table.arrow_schema();
    let table_name = table.identifier().to_string();
    let mut failure: Option<SqlError> = None;
    let outcome = table
        .rewrite_append_files(candidates, |batch| {
            change_batch(
                batch,
                predicate.as_ref(),
                &assignments,
                &table_schema,
                &table_name,
                kind,
            )
            .map_err(|e| {
                let message = e.to_string();
                failure = Some(e);
                EngineError::invalid(message)
            })
        })
        .await;
    match outcome {
        Ok(o) => Ok(o.rows_changed),
        Err(e) => Err(failure.take().unwrap_or_else(|| e.into())),
    }
}

/// The change to one batch of an append table, or `None` when no row of it
/// matches.
fn change_batch(
    batch: &RecordBatch,
    predicate: Option<&Arc<dyn PhysicalExpr>>,
    assignments: &PhysicalAssignments,
    table_schema: &SchemaRef,
    table_name: &str,
    kind: DmlKind,
) -> Result<Option<(RecordBatch, u64)>> {
    let rows = batch.num_rows();
    let selected = match predicate {
        Some(p) => {
            let value = p.evaluate(batch)?.into_array(rows)?;
            let Some(mask) = value.as_any().downcast_ref::<BooleanArray>() else {
                return Err(SqlError::DatatypeMismatch(format!(
                    "the WHERE clause must be a boolean expression, not {}",
                    value.data_type()
                )));
            };
            // Rows where the condition is NULL do not match.
            if mask.null_count() > 0 {
                prep_null_mask_filter(mask)
            } else {
                mask.clone()
            }
        }
        None => BooleanArray::from(vec![true; rows]),
    };
    let changed = selected.true_count() as u64;
    if changed == 0 {
        return Ok(None);
    }
    match kind {
        DmlKind::Delete => {
            let keep = not(&selected)?;
            Ok(Some((filter_record_batch(batch, &keep)?, changed)))
        }
        DmlKind::Update => {
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            for (index, expr) in assignments {
                let field = table_schema.field(*index);
                let mut value = expr.evaluate(batch)?.into_array(rows)?;
                if value.data_type() != field.data_type() {
                    let options = CastOptions {
                        safe: false,
                        ..Default::default()
                    };
                    value = cast_with_options(&value, field.data_type(), &options)?;
                }
                let merged = zip(&selected, &value, &columns[*index])?;
                if !field.is_nullable() && merged.null_count() > 0 {
                    return Err(SqlError::NotNull {
                        table: table_name.to_string(),
                        column: field.name().clone(),
                        hint: String::new(),
                    });
                }
                columns[*index] = merged;
            }
            Ok(Some((
                RecordBatch::try_new(table_schema.clone(), columns)?,
                changed,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema};
    use datafusion::common::DFSchema;
    use datafusion::logical_expr::{col, lit};
    use datafusion::prelude::SessionContext;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", ArrowType::Int64, false),
            Field::new("name", ArrowType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap()
    }

    fn physical(expr: Expr, schema: &SchemaRef) -> Arc<dyn PhysicalExpr> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).unwrap();
        SessionContext::new()
            .state()
            .create_physical_expr(expr, &df_schema)
            .unwrap()
    }

    #[test]
    fn delete_keeps_rows_that_do_not_match_or_are_unknown() {
        let b = batch();
        let schema = b.schema();
        let pred = physical(col("name").not_eq(lit("a")), &schema);
        let (kept, changed) = change_batch(&b, Some(&pred), &vec![], &schema, "t", DmlKind::Delete)
            .unwrap()
            .unwrap();
        assert_eq!(changed, 1);
        let ids: &Int64Array = kept.column(0).as_any().downcast_ref().unwrap();
        assert_eq!(ids.values(), &[1, 2]);
        let none = physical(col("id").gt(lit(10i64)), &schema);
        assert!(
            change_batch(&b, Some(&none), &vec![], &schema, "t", DmlKind::Delete)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn update_changes_only_matching_rows() {
        let b = batch();
        let schema = b.schema();
        let pred = physical(col("id").gt_eq(lit(2i64)), &schema);
        let set: PhysicalAssignments = vec![(0, physical(col("id") * lit(10i64), &schema))];
        let (out, changed) = change_batch(&b, Some(&pred), &set, &schema, "t", DmlKind::Update)
            .unwrap()
            .unwrap();
        assert_eq!(changed, 2);
        let ids: &Int64Array = out.column(0).as_any().downcast_ref().unwrap();
        assert_eq!(ids.values(), &[1, 20, 30]);
        let to_null: PhysicalAssignments = vec![(
            0,
            physical(lit(datafusion::common::ScalarValue::Int64(None)), &schema),
        )];
        let err =
            change_batch(&b, Some(&pred), &to_null, &schema, "t", DmlKind::Update).unwrap_err();
        assert_eq!(err.code(), "23502");
    }
}
