//! `hybrid_search('db.t', 'emb', [0.1, ...], 'body', 'lake house', k
//! [, 'rrf_k=60, candidates=100, nprobe=32'])`: the k rows best by
//! reciprocal rank fusion of a vector search and a BM25 keyword search
//! (see [`crate::hybrid`]), with `_score`, `_vector_rank`, `_keyword_rank`
//! and `_distance` columns. A `WHERE` on the table's columns restricts
//! both lists (partition columns prune partitions first), as for
//! `vector_search`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use datafusion::catalog::{
    Session as DfSession, TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{plan_err, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};
use tidelake_engine::{Catalog, Identifier, Table};

use crate::error::VectorError;
use crate::hybrid::{check_request, hybrid_schema, hybrid_search, HybridRequest, DEFAULT_RRF_K};
use crate::search::SearchRequest;
use crate::sql::table_fn::{
    apply_options, block_on, df, row_filter, split_filters, text, vector_literal,
};

const USAGE: &str = "hybrid_search takes ('db.table', 'vector column', [query vector], \
    'text column', 'keyword query', k [, 'options'])";

/// The registered `hybrid_search` function.
pub struct HybridSearchFunction {
    pub catalog: Catalog,
}

impl fmt::Debug for HybridSearchFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("hybrid_search")
    }
}

fn bad(message: String) -> DataFusionError {
    df(VectorError::BadSearch(format!("hybrid_search: {message}")))
}

/// A text literal argument, or an error naming it.
fn text_arg(args: &[Expr], at: usize, what: &str) -> DfResult<String> {
    text(&args[at]).ok_or_else(|| {
        bad(format!(
            "argument {} ({what}) must be a text literal",
            at + 1
        ))
    })
}

/// `rrf_k` and `candidates`; the other options go to the vector search.
fn apply_hybrid_options(req: &mut HybridRequest, options: &str) -> DfResult<()> {
    let mut rest = Vec::new();
    for part in options.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
            .unwrap_or_default();
        match k.as_str() {
            "rrf_k" => {
                req.rrf_k = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| bad(format!("option rrf_k needs a number >= 0, not '{v}'")))?
            }
            "candidates" => {
                req.candidates =
                    Some(v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!(
                            "option candidates needs a positive integer, not '{v}'"
                        ))
                    })?)
            }
            _ => rest.push(part),
        }
    }
    apply_options(&mut req.vector, &rest.join(",")).map_err(|e| {
        bad(format!(
            "argument 7 (options): {e}; hybrid_search also takes rrf_k and candidates"
        ))
    })
}

impl TableFunctionImpl for HybridSearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(6..=7).contains(&exprs.len()) {
            return plan_err!("{USAGE}");
        }
        let name = text_arg(exprs, 0, "table")?;
        let column = text_arg(exprs, 1, "vector column")?;
        let Some(query) = vector_literal(&exprs[2]) else {
            return Err(bad(
                "argument 3 (query vector) must be an array of numbers, e.g. [0.1, 0.2]".into(),
            ));
        };
        let text_column = text_arg(exprs, 3, "text column")?;
        let text_query = text_arg(exprs, 4, "keyword query")?;
        let k = match &exprs[5] {
            Expr::Literal(v, _) => v.clone().cast_to(&ArrowType::Int64).ok(),
            _ => None,
        };
        let k = match k {
            Some(ScalarValue::Int64(Some(k))) if k > 0 => k as usize,
            _ => return Err(bad("argument 6 (k) must be a positive integer".into())),
        };
        let mut req = HybridRequest {
            vector: SearchRequest::new(column, query, k),
            text_column,
            text_query,
            k,
            rrf_k: DEFAULT_RRF_K,
            candidates: None,
        };
        if exprs.len() == 7 {
            let options = text_arg(exprs, 6, "options")?;
            apply_hybrid_options(&mut req, &options)?;
        }
        let id = match name.split_once('.') {
            Some((db, t)) => Identifier::new(db, t),
            None => Identifier::new(tidelake_engine::DEFAULT_DATABASE, name.clone()),
        };
        let catalog = self.catalog.clone();
        let table = block_on(async move { catalog.load_table(&id).await })?.map_err(df)?;
        check_request(&table, &req).map_err(df)?;
        Ok(Arc::new(HybridSearchTable {
            schema: hybrid_schema(&table),
            table,
            request: req,
        }))
    }
}

/// A hybrid search as a table.
#[derive(Clone)]
pub struct HybridSearchTable {
    table: Table,
    request: HybridRequest,
    schema: SchemaRef,
}

impl fmt::Debug for HybridSearchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HybridSearchTable({}, k={})",
            self.table.identifier(),
            self.request.k
        )
    }
}

#[async_trait]
impl TableProvider for HybridSearchTable {
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
        request.vector.partition_filter = row_filter(&self.table, &partition)?;
        request.vector.filter = row_filter(&self.table, &rows)?;
        let output = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(output.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(HybridSearchExec {
            table: self.table.clone(),
            request,
            schema: output,
            projection: projection.cloned(),
            properties,
        }))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let table = self.table.arrow_schema();
        Ok(filters
            .iter()
            .map(|f| {
                if f.column_refs()
                    .iter()
                    .all(|c| table.index_of(&c.name).is_ok())
                {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }
}

/// Runs one hybrid search when executed.
pub struct HybridSearchExec {
    table: Table,
    request: HybridRequest,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for HybridSearchExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HybridSearchExec({})", self.table.identifier())
    }
}

impl DisplayAs for HybridSearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let r = &self.request;
        write!(
            f,
            "HybridSearch: table={}, vector={}, text={}, k={}, rrf_k={}",
            self.table.identifier(),
            r.vector.column,
            r.text_column,
            r.k,
            r.rrf_k
        )?;
        if let Some(filter) = &r.vector.partition_filter {
            write!(f, ", partitions pruned by {}", filter.columns.join(", "))?;
        }
        if let Some(filter) = &r.vector.filter {
            write!(f, ", allow-list on {}", filter.columns.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for HybridSearchExec {
    fn name(&self) -> &str {
        "HybridSearch"
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
                "HybridSearch has no children".into(),
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
        let projection = self.projection.clone();
        let out_schema = schema.clone();
        let run = async move {
            let found = hybrid_search(&table, &request).await.map_err(df)?;
            let columns = match &projection {
                Some(p) => p.iter().map(|i| found.column(*i).clone()).collect(),
                None => found.columns().to_vec(),
            };
            let options = RecordBatchOptions::new().with_row_count(Some(found.num_rows()));
            Ok::<RecordBatch, DataFusionError>(RecordBatch::try_new_with_options(
                out_schema, columns, &options,
            )?)
        };
        let stream = futures::stream::once(run);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
