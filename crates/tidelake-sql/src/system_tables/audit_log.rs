//! `table$audit_log`: the table's rows with a leading `rowkind` column
//! (`+I`, `-U`, `+U`, `-D`), as Paimon's `AuditLogTable`. A batch read sees
//! the merged rows of a snapshot, which are all inserts (`+I`); projection,
//! filters on the table's columns and limits go to the table's own scan.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::{Column, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::expressions::{Column as ColumnExpr, Literal};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use tidelake_engine::Table;

use crate::catalog::{travel_provider, TimeTravel};
use crate::error::{Result, SqlError};
use crate::provider::TidelakeTable;

/// The name of the row-kind column.
const ROW_KIND: &str = "rowkind";
/// What a merged row is.
const INSERT: &str = "+I";

pub(super) async fn audit_log(
    table: Table,
    travel: Option<&TimeTravel>,
) -> Result<Arc<dyn TableProvider>> {
    if table.schema().field(ROW_KIND).is_some() {
        return Err(SqlError::Unsupported(format!(
            "table '{}' has a column named '{ROW_KIND}': its $audit_log could not name the row kind",
            table.identifier()
        )));
    }
    let inner = travel_provider(table, travel).await?;
    let inner_schema = inner.schema();
    let mut fields = vec![Arc::new(Field::new(ROW_KIND, ArrowType::Utf8, false))];
    fields.extend(inner_schema.fields().iter().cloned());
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        inner_schema.metadata().clone(),
    ));
    Ok(Arc::new(AuditLog { inner, schema }))
}

#[derive(Debug)]
struct AuditLog {
    inner: TidelakeTable,
    schema: SchemaRef,
}

/// Whether an expression mentions the row-kind column.
fn mentions_row_kind(expr: &Expr) -> bool {
    expr.column_refs()
        .iter()
        .any(|c: &&Column| c.name == ROW_KIND)
}

#[async_trait]
impl TableProvider for AuditLog {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        // Column i > 0 of ours is column i - 1 of the table.
        let inner_projection: Vec<usize> =
            wanted.iter().filter(|&&i| i > 0).map(|&i| i - 1).collect();
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| !mentions_row_kind(f))
            .cloned()
            .collect();
        let input = self
            .inner
            .scan(state, Some(&inner_projection), &pushed, limit)
            .await?;
        let input_schema = input.schema();
        let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::with_capacity(wanted.len());
        let mut next_inner = 0usize;
        for &i in &wanted {
            if i == 0 {
                let kind = ScalarValue::Utf8(Some(INSERT.to_string()));
                exprs.push((Arc::new(Literal::new(kind)), ROW_KIND.to_string()));
            } else {
                let name = input_schema.field(next_inner).name().clone();
                exprs.push((Arc::new(ColumnExpr::new(&name, next_inner)), name));
                next_inner += 1;
            }
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let ours: Vec<&Expr> = filters
            .iter()
            .copied()
            .filter(|f| !mentions_row_kind(f))
            .collect();
        let mut inner = self.inner.supports_filters_pushdown(&ours)?.into_iter();
        Ok(filters
            .iter()
            .map(|f| {
                if mentions_row_kind(f) {
                    TableProviderFilterPushDown::Unsupported
                } else {
                    inner
                        .next()
                        .unwrap_or(TableProviderFilterPushDown::Unsupported)
                }
            })
            .collect())
    }
}
