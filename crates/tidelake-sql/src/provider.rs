//! A DataFusion `TableProvider` over one engine table: scans with
//! projection, filter and limit pushdown (one DataFusion partition per
//! engine split, so splits are read in parallel), and `INSERT` that writes
//! the input through one engine writer and commits once at the end.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt64Array};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    execute_stream, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr,
    PlanProperties, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};
use tidelake_engine::{Predicate, RowKind, ScanPlan, Table, TableWriter};

use crate::error::SqlError;
use crate::predicate::{conjunction, to_predicate};

pub(crate) fn to_df(e: impl Into<SqlError>) -> DataFusionError {
    e.into().into_datafusion()
}

/// One table of the warehouse as DataFusion sees it; `snapshot` pins a
/// past snapshot (time travel), which makes the provider read-only.
#[derive(Clone)]
pub struct TidelakeTable {
    table: Table,
    snapshot: Option<i64>,
    /// A tag pinning the snapshot: read through the tag, which outlives it.
    tag: Option<String>,
    schema: SchemaRef,
}

impl fmt::Debug for TidelakeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TidelakeTable")
            .field("table", &self.table.identifier().to_string())
            .field("snapshot", &self.snapshot)
            .finish()
    }
}

impl TidelakeTable {
    pub fn new(table: Table, snapshot: Option<i64>) -> Self {
        let schema = table.arrow_schema();
        TidelakeTable {
            table,
            snapshot,
            tag: None,
            schema,
        }
    }

    /// Reads the snapshot of a tag (set `snapshot` to its id too, which
    /// makes the provider read-only).
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn snapshot(&self) -> Option<i64> {
        self.snapshot
    }

    /// The tag this provider reads through, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    fn read_only_error(&self, what: &str) -> DataFusionError {
        to_df(SqlError::Unsupported(format!(
            "{what} is not possible on table '{}' as of snapshot {}: past snapshots are read-only",
            self.table.identifier(),
            self.snapshot.unwrap_or_default()
        )))
    }

    /// Plans an engine scan; the DataFusion side is built by `ScanExec`.
    pub(crate) async fn plan_scan(
        &self,
        projection: Option<Vec<usize>>,
        predicate: Option<Predicate>,
        limit: Option<usize>,
    ) -> Result<ScanPlan, SqlError> {
        let mut builder = self
            .table
            .scan()
            .with_projection(projection)
            .with_snapshot(self.snapshot)
            .with_limit(limit);
        if let Some(tag) = &self.tag {
            builder = builder.with_tag(tag.clone());
        }
        if let Some(p) = predicate {
            builder = builder.with_predicate(p);
        }
        Ok(builder.plan().await?)
    }
}

#[async_trait]
impl TableProvider for TidelakeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let predicate = conjunction(filters, self.table.schema());
        let output_schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        // COUNT(*) asks for no column: the engine's batches then carry only
        // their row count.
        let plan = self
            .plan_scan(projection.cloned(), predicate.clone(), limit)
            .await
            .map_err(to_df)?;
        Ok(Arc::new(ScanExec::new(
            self.table.identifier().to_string(),
            Arc::new(plan),
            output_schema,
            limit,
            predicate,
        )))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match to_predicate(f, self.table.schema()) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn insert_into(
        &self,
        _state: &dyn DfSession,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.snapshot.is_some() {
            return Err(self.read_only_error("INSERT"));
        }
        let overwrite = match insert_op {
            InsertOp::Append => false,
            InsertOp::Overwrite => true,
            InsertOp::Replace => {
                return Err(to_df(SqlError::Unsupported(
                    "REPLACE INTO is not supported; INSERT INTO a primary-key table upserts".into(),
                )))
            }
        };
        Ok(Arc::new(InsertExec::new(
            self.table.clone(),
            input,
            overwrite,
        )))
    }
}

fn properties(schema: SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// Reads an engine scan plan; partition `i` is split `i`.
pub(crate) struct ScanExec {
    table_name: String,
    plan: Arc<ScanPlan>,
    schema: SchemaRef,
    limit: Option<usize>,
    predicate: Option<Predicate>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ScanExec {
    /// The engine's plan this node reads.
    pub(crate) fn plan(&self) -> &ScanPlan {
        &self.plan
    }

    fn new(
        table_name: String,
        plan: Arc<ScanPlan>,
        schema: SchemaRef,
        limit: Option<usize>,
        predicate: Option<Predicate>,
    ) -> Self {
        // An empty table still needs one (empty) partition.
        let partitions = plan.splits().len().max(1);
        let properties = properties(schema.clone(), partitions);
        ScanExec {
            table_name,
            plan,
            schema,
            limit,
            predicate,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Records what planning skipped (once, with partition 0) and what
    /// reading `partition`'s split opens and merges, for `EXPLAIN ANALYZE`.
    fn record_split_metrics(&self, partition: usize) {
        let counter =
            |name: &'static str| MetricBuilder::new(&self.metrics).counter(name, partition);
        if partition == 0 {
            let stats = self.plan.stats();
            counter("manifests_pruned").add(stats.manifests_pruned);
            counter("files_pruned").add(stats.files_pruned);
        }
        let Some(split) = self.plan.splits().get(partition) else {
            return;
        };
        counter("files_read").add(split.files_to_read().count());
        if self.plan.merges(split) {
            counter("splits_merged").add(1);
            counter("sorted_runs_merged").add(split.sorted_runs());
        }
    }
}

impl fmt::Debug for ScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanExec")
            .field("table", &self.table_name)
            .field("splits", &self.plan.splits().len())
            .finish()
    }
}

impl DisplayAs for ScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "TidelakeScan: table={}, splits={}",
            self.table_name,
            self.plan.splits().len()
        )?;
        if let Some(s) = self.plan.snapshot() {
            write!(f, ", snapshot={}", s.id)?;
        }
        if let Some(p) = &self.predicate {
            write!(f, ", predicate={p:?}")?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ScanExec {
    fn name(&self) -> &str {
        "TidelakeScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "TidelakeScan has no children".into(),
            ))
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let schema = self.schema.clone();
        self.record_split_metrics(partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        if self.plan.splits().is_empty() {
            let empty = futures::stream::empty::<DfResult<RecordBatch>>();
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, empty)));
        }
        if partition >= self.plan.splits().len() {
            return Err(DataFusionError::Internal(format!(
                "TidelakeScan of {} has no partition {partition}",
                self.table_name
            )));
        }
        let conform_schema = schema.clone();
        let batches = self
            .plan
            .read_split(partition)
            .map_err(to_df)
            .and_then(move |b| {
                // The engine projects the same Arrow schema; re-label so that
                // nullability and metadata match what DataFusion planned with.
                let options = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
                output_rows.add(b.num_rows());
                futures::future::ready(
                    RecordBatch::try_new_with_options(
                        conform_schema.clone(),
                        b.columns().to_vec(),
                        &options,
                    )
                    .map_err(DataFusionError::from),
                )
            });
        let stream: futures::stream::BoxStream<'static, DfResult<RecordBatch>> = match self.limit {
            None => batches.boxed(),
            Some(limit) => batches
                .scan(limit, |left, item| {
                    // Stop reading once `limit` rows went out.
                    let next = match item {
                        Ok(_) if *left == 0 => None,
                        Ok(b) => {
                            let n = b.num_rows().min(*left);
                            *left -= n;
                            Some(Ok(b.slice(0, n)))
                        }
                        Err(e) => Some(Err(e)),
                    };
                    futures::future::ready(next)
                })
                .boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The schema of a DML result: one row with the number of rows changed.
pub(crate) fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        ArrowType::UInt64,
        false,
    )]))
}

pub(crate) fn count_batch(count: u64) -> DfResult<RecordBatch> {
    let column: ArrayRef = Arc::new(UInt64Array::from(vec![count]));
    Ok(RecordBatch::try_new(count_schema(), vec![column])?)
}

/// Checks the table's NOT NULL columns before the engine sees the batch,
/// so that the error names the column and says why.
pub(crate) fn check_not_null(table: &Table, batch: &RecordBatch) -> Result<(), SqlError> {
    let schema = table.arrow_schema();
    for (i, field) in schema.fields().iter().enumerate() {
        if field.is_nullable() {
            continue;
        }
        if let Some(column) = batch.columns().get(i) {
            if column.null_count() > 0 {
                let hint = if table.primary_keys().iter().any(|k| k == field.name()) {
                    " (primary key columns always need a value)".to_string()
                } else {
                    String::new()
                };
                return Err(SqlError::NotNull {
                    table: table.identifier().to_string(),
                    column: field.name().clone(),
                    hint,
                });
            }
        }
    }
    Ok(())
}

/// Writes every row of its input into the table and commits once.
pub(crate) struct InsertExec {
    table: Table,
    input: Arc<dyn ExecutionPlan>,
    overwrite: bool,
    properties: Arc<PlanProperties>,
}

impl InsertExec {
    fn new(table: Table, input: Arc<dyn ExecutionPlan>, overwrite: bool) -> Self {
        InsertExec {
            table,
            input,
            overwrite,
            properties: properties(count_schema(), 1),
        }
    }
}

impl fmt::Debug for InsertExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertExec")
            .field("table", &self.table.identifier().to_string())
            .field("overwrite", &self.overwrite)
            .finish()
    }
}

impl DisplayAs for InsertExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "TidelakeInsert: table={}, overwrite={}",
            self.table.identifier(),
            self.overwrite
        )
    }
}

impl ExecutionPlan for InsertExec {
    fn name(&self) -> &str {
        "TidelakeInsert"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(InsertExec::new(
                self.table.clone(),
                input,
                self.overwrite,
            ))),
            Err(_) => Err(DataFusionError::Internal(
                "TidelakeInsert takes exactly one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "TidelakeInsert has no partition {partition}"
            )));
        }
        let table = self.table.clone();
        let input = self.input.clone();
        let overwrite = self.overwrite;
        let result = futures::stream::once(async move {
            let rows = write_all(table, input, overwrite, context)
                .await
                .map_err(to_df)?;
            count_batch(rows)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            result,
        )))
    }
}

async fn write_all(
    table: Table,
    input: Arc<dyn ExecutionPlan>,
    overwrite: bool,
    context: Arc<TaskContext>,
) -> Result<u64, SqlError> {
    let properties = crate::retry::commit_properties(context.session_config());
    // An overwrite replaces what others write, and an INSERT that reads its
    // own table computed its rows from it: both commit alone, as before.
    if overwrite || !crate::group::snapshots_read(&input, &table).is_empty() {
        let mut writer = table.writer();
        writer.set_overwrite(overwrite);
        return write_rows(&table, writer, input, context, RowKind::Insert, properties).await;
    }
    crate::group::insert_grouped(&table, input, context, properties).await
}

/// Writes every row of `input` with `kind` through `writer` and commits
/// once (APPEND; the writer's overwrite settings make it an OVERWRITE); on
/// failure nothing is committed. Returns the rows written (counted in the
/// session's statement progress as they go).
pub(crate) async fn write_rows(
    table: &Table,
    writer: TableWriter,
    input: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    kind: RowKind,
    properties: std::collections::BTreeMap<String, String>,
) -> Result<u64, SqlError> {
    let config = context.session_config().clone();
    let stream = match execute_stream(input, context) {
        Ok(stream) => stream,
        Err(e) => {
            writer.abort().await;
            return Err(e.into());
        }
    };
    let rows = crate::group::InputRows {
        batches: Vec::new(),
        rows: 0,
        rest: Some(stream),
    };
    crate::group::write_stream(table, writer, rows, kind, properties, &config).await
}
