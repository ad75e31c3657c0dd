//! The DataFusion context a streaming query or a job runs its SQL in.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use tidelake_sql::{sql_config, Result, CATALOG_NAME};

/// A DataFusion context of one streaming query or job: the streamed
/// source is a memory table of the changes at hand, replaced for each run.
#[derive(Clone)]
pub(crate) struct JobContext {
    ctx: SessionContext,
}

impl JobContext {
    /// A context whose SQL is the session's, with `database` current.
    pub fn new(database: &str) -> JobContext {
        JobContext {
            ctx: SessionContext::new_with_config(sql_config(database)),
        }
    }

    /// Registers a table under `catalog.db.table`, replacing any before.
    pub fn register(&self, reference: TableReference, table: Arc<dyn TableProvider>) -> Result<()> {
        if let (Some(catalog), Some(schema)) = (
            self.ctx.catalog(CATALOG_NAME),
            reference.schema().map(str::to_string),
        ) {
            if catalog.schema(&schema).is_none() {
                catalog.register_schema(&schema, Arc::new(MemorySchemaProvider::new()))?;
            }
        }
        self.ctx.deregister_table(reference.clone())?;
        self.ctx.register_table(reference, table)?;
        Ok(())
    }

    /// Makes the source read these batches (of `schema`).
    pub fn set_source(
        &self,
        reference: &TableReference,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        self.register(
            reference.clone(),
            Arc::new(MemTable::try_new(schema, vec![batches])?),
        )
    }

    pub async fn plan(&self, statement: &Statement) -> Result<LogicalPlan> {
        Ok(self
            .ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
            .await?)
    }

    pub async fn run(&self, statement: &Statement) -> Result<Vec<RecordBatch>> {
        let plan = self.plan(statement).await?;
        Ok(DataFrame::new(self.ctx.state(), plan).collect().await?)
    }

    /// Reads a table through DataFusion, rows passing `filter` (which may
    /// be used to skip files only loosely: callers filter exactly).
    pub async fn scan(
        &self,
        table: Arc<dyn TableProvider>,
        filter: datafusion::logical_expr::Expr,
    ) -> Result<Vec<RecordBatch>> {
        Ok(self
            .ctx
            .read_table(table)?
            .filter(filter)?
            .collect()
            .await?)
    }

    /// The DataFusion context, for plans built without SQL.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Whether `name` is an aggregate function here.
    pub fn is_aggregate(&self, name: &str) -> bool {
        self.ctx.state().aggregate_functions().contains_key(name)
    }
}
