//! `vector_search('db.t', 'emb', [0.1, ...], k [, 'nprobe=32,...'])`: the
//! k rows closest to the query, with a `_distance` column; a `WHERE` on
//! the table's columns becomes the search's allow-list. Also the scan the
//! optimizer rule puts in place of a table (`ORDER BY l2_distance(...)
//! LIMIT k`), which returns the table's columns only.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{
    Session as DfSession, TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    plan_err, Column, DFSchema, DataFusionError, Result as DfResult, ScalarValue,
};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::execution_props::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{create_physical_expr, EquivalenceProperties};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};
use tidelake_engine::{Catalog, Identifier, Table};

use crate::error::VectorError;
use crate::search::{search, RowFilter, SearchMode, SearchRequest, DISTANCE_COLUMN};
use crate::spec::Metric;

pub(crate) fn df(e: impl Into<VectorError>) -> DataFusionError {
    let e: VectorError = e.into();
    tidelake_sql::SqlError::from(e).into_datafusion()
}

/// Runs `f` to completion from synchronous planning code.
pub(crate) fn block_on<F>(f: F) -> DfResult<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            return Ok(tokio::task::block_in_place(|| handle.block_on(f)));
        }
    }
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f))
    })
    .join()
    .map_err(|_| DataFusionError::Internal("vector_search: planning thread panicked".into()))?
    .map_err(|e| DataFusionError::Execution(format!("vector_search: {e}")))
}

/// The registered `vector_search` function.
pub struct VectorSearchFunction {
    pub catalog: Catalog,
}

impl fmt::Debug for VectorSearchFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("vector_search")
    }
}

/// A literal text argument.
pub(crate) fn text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    }
}

/// A literal vector: an array literal, or a text of comma-separated numbers.
pub(crate) fn vector_literal(e: &Expr) -> Option<Vec<f32>> {
    if let Some(s) = text(e) {
        let s = s.trim().trim_start_matches('[').trim_end_matches(']');
        return s.split(',').map(|x| x.trim().parse::<f32>().ok()).collect();
    }
    let Expr::Literal(value, _) = e else {
        return None;
    };
    let array = match value {
        ScalarValue::List(a) => a.value(0),
        ScalarValue::LargeList(a) => a.value(0),
        ScalarValue::FixedSizeList(a) => a.value(0),
        _ => return None,
    };
    let casted =
        datafusion::arrow::compute::cast(&array, &datafusion::arrow::datatypes::DataType::Float32)
            .ok()?;
    let floats = casted
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Float32Array>()?;
    (floats.null_count() == 0).then(|| floats.values().to_vec())
}

/// `nprobe=32, mode=exact, metric=l2, snapshot=3`.
pub(crate) fn apply_options(req: &mut SearchRequest, text: &str) -> Result<(), VectorError> {
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            VectorError::BadSearch(format!("search option '{part}' is not key=value"))
        })?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        let number = || {
            v.parse::<usize>().map_err(|_| {
                VectorError::BadSearch(format!(
                    "search option '{k}' needs a positive integer, not '{v}'"
                ))
            })
        };
        match k.as_str() {
            "nprobe" | "ivf.nprobe" | "l_search" | "diskann.l-search" => {
                req.width = Some(number()?)
            }
            "mode" if v.eq_ignore_ascii_case("exact") => req.mode = SearchMode::Exact,
            "mode" if v.eq_ignore_ascii_case("auto") => req.mode = SearchMode::Auto,
            "metric" => {
                req.metric = Some(Metric::parse(v).ok_or_else(|| {
                    VectorError::BadSearch(format!(
                        "unknown metric '{v}' (l2, cosine, inner_product)"
                    ))
                })?)
            }
            "snapshot" => req.snapshot = Some(number()? as i64),
            _ => {
                return Err(VectorError::BadSearch(format!(
                    "unknown search option '{part}' (nprobe, mode=exact|auto, metric, snapshot)"
                )))
            }
        }
    }
    Ok(())
}

impl TableFunctionImpl for VectorSearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(4..=5).contains(&exprs.len()) {
            return plan_err!(
                "vector_search takes ('db.table', 'column', [query vector], k [, 'options'])"
            );
        }
        let (Some(name), Some(column)) = (text(&exprs[0]), text(&exprs[1])) else {
            return plan_err!("vector_search: the table and column are text literals");
        };
        let Some(query) = vector_literal(&exprs[2]) else {
            return plan_err!("vector_search: the query is an array of numbers, e.g. [0.1, 0.2]");
        };
        let k = match &exprs[3] {
            Expr::Literal(v, _) => v
                .clone()
                .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                .ok(),
            _ => None,
        };
        let k = match k {
            Some(ScalarValue::Int64(Some(k))) if k > 0 => k as usize,
            _ => return plan_err!("vector_search: k is a positive integer"),
        };
        let mut req = SearchRequest::new(column, query, k);
        if let Some(options) = exprs.get(4) {
            let Some(options) = text(options) else {
                return plan_err!("vector_search: options are a text literal");
            };
            apply_options(&mut req, &options).map_err(df)?;
        }
        let id = match name.split_once('.') {
            Some((db, t)) => Identifier::new(db, t),
            None => Identifier::new(tidelake_engine::DEFAULT_DATABASE, name.clone()),
        };
        let catalog = self.catalog.clone();
        let table = block_on(async move { catalog.load_table(&id).await })?.map_err(df)?;
        Ok(Arc::new(VectorSearchTable::new(table, req, true)))
    }
}

/// A search as a table.
#[derive(Clone)]
pub struct VectorSearchTable {
    table: Table,
    request: SearchRequest,
    schema: SchemaRef,
    with_distance: bool,
}

impl fmt::Debug for VectorSearchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VectorSearchTable({}, k={})",
            self.table.identifier(),
            self.request.k
        )
    }
}

impl VectorSearchTable {
    pub fn new(table: Table, request: SearchRequest, with_distance: bool) -> Self {
        let mut fields: Vec<Field> = table
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if with_distance {
            fields.push(Field::new(
                DISTANCE_COLUMN,
                datafusion::arrow::datatypes::DataType::Float64,
                false,
            ));
        }
        VectorSearchTable {
            table,
            request,
            schema: Arc::new(Schema::new(fields)),
            with_distance,
        }
    }

    /// Whether `filter` names table columns only (it can be an allow-list).
    fn filters_rows(&self, filter: &Expr) -> bool {
        let table = self.table.arrow_schema();
        filter
            .column_refs()
            .iter()
            .all(|c| c.name != DISTANCE_COLUMN && table.index_of(&c.name).is_ok())
    }
}

/// The filters naming partition columns only (they prune partitions), and
/// the others (they build the allow-list).
pub(crate) fn split_filters(table: &Table, filters: &[Expr]) -> (Vec<Expr>, Vec<Expr>) {
    let keys = &table.schema().partition_keys;
    filters.iter().cloned().partition(|f| {
        let refs = f.column_refs();
        !refs.is_empty() && refs.iter().all(|c| keys.contains(&c.name))
    })
}

/// The filters as a row filter over the columns they name.
pub(crate) fn row_filter(table: &Table, filters: &[Expr]) -> DfResult<Option<RowFilter>> {
    let Some(expr) = conjunction(filters.to_vec()) else {
        return Ok(None);
    };
    let expr = expr
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                c.name,
            )))),
            other => Ok(Transformed::no(other)),
        })?
        .data;
    let mut names: Vec<String> = expr.column_refs().iter().map(|c| c.name.clone()).collect();
    names.sort();
    names.dedup();
    let table_schema = table.arrow_schema();
    let fields = names
        .iter()
        .map(|n| Ok(table_schema.field(table_schema.index_of(n)?).clone()))
        .collect::<DfResult<Vec<_>>>()?;
    let schema = Schema::new(fields);
    let df_schema = DFSchema::try_from(schema)?;
    let physical: Arc<dyn PhysicalExpr> = create_physical_expr(
        &expr,
        &df_schema,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )?;
    let eval = move |batch: &RecordBatch| -> crate::error::Result<BooleanArray> {
        let value = physical
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| VectorError::BadSearch(format!("filter: {e}")))?;
        value
            .as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| VectorError::BadSearch("a filter must be a boolean condition".into()))
    };
    Ok(Some(RowFilter {
        columns: names,
        eval: Arc::new(eval),
    }))
}

#[async_trait]
impl TableProvider for VectorSearchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut request = self.request.clone();
        let (partition, rows) = split_filters(&self.table, filters);
        request.partition_filter = row_filter(&self.table, &partition)?;
        request.filter = row_filter(&self.table, &rows)?;
        let output = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        Ok(Arc::new(VectorSearchExec::new(
            self.table.clone(),
            request,
            output,
            projection.cloned(),
            self.with_distance,
        )))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.filters_rows(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }
}

/// Runs one search when executed.
pub struct VectorSearchExec {
    table: Table,
    request: SearchRequest,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    with_distance: bool,
    properties: Arc<PlanProperties>,
}

impl VectorSearchExec {
    fn new(
        table: Table,
        request: SearchRequest,
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
        with_distance: bool,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        VectorSearchExec {
            table,
            request,
            schema,
            projection,
            with_distance,
            properties,
        }
    }
}

impl fmt::Debug for VectorSearchExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VectorSearchExec({})", self.table.identifier())
    }
}

impl DisplayAs for VectorSearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let r = &self.request;
        write!(
            f,
            "VectorSearch: table={}, column={}, k={}, metric={}, mode={}",
            self.table.identifier(),
            r.column,
            r.k,
            r.metric.map_or("index", |m| m.name()),
            if r.mode == SearchMode::Exact {
                "exact"
            } else {
                "index"
            }
        )?;
        if let Some(w) = r.width {
            write!(f, ", width={w}")?;
        }
        if let Some(filter) = &r.partition_filter {
            write!(f, ", partitions pruned by {}", filter.columns.join(", "))?;
        }
        if let Some(filter) = &r.filter {
            write!(f, ", allow-list on {}", filter.columns.join(", "))?;
        }
        if let Some(s) = r.snapshot {
            write!(f, ", snapshot={s}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for VectorSearchExec {
    fn name(&self) -> &str {
        "VectorSearch"
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
                "VectorSearch has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let (table, request, schema) = (
            self.table.clone(),
            self.request.clone(),
            self.schema.clone(),
        );
        let (projection, with_distance) = (self.projection.clone(), self.with_distance);
        let out_schema = schema.clone();
        let run = async move {
            let found = search(&table, &request).await.map_err(df)?.batch;
            let mut columns = found.columns().to_vec();
            if !with_distance {
                columns.pop();
            }
            let columns = match &projection {
                Some(p) => p.iter().map(|i| columns[*i].clone()).collect(),
                None => columns,
            };
            let options = datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(found.num_rows()));
            Ok::<RecordBatch, DataFusionError>(RecordBatch::try_new_with_options(
                out_schema, columns, &options,
            )?)
        };
        let stream = futures::stream::once(run);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
