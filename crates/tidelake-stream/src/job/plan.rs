//! Checks a job statement against its tables and plans it: what the source's
//! changes are (insert-only, complete with retractions, or upserts), what
//! the sink can apply, and how query output maps onto the sink's columns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, TableReference};
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use datafusion::sql::sqlparser::ast::Statement;
use tidelake_engine::options::{ChangelogProducer, MergeEngine};
use tidelake_engine::{Catalog, Identifier, Table};

use super::analyze::{parse_job, Output, ParsedJob, TableName};
use super::exec::{input_schema, SinkMapping};
use super::join::plan::{plan_stream_join, JoinPlan};
use super::window::{check_resolution, windowed_schema, WindowSpec};
use crate::context::JobContext;
use tidelake_sql::watermark::{check_event_time_type, watermark_of, WatermarkSpec};
use tidelake_sql::TidelakeTable;
use tidelake_sql::CATALOG_NAME;
use tidelake_sql::{Result, SqlError};

/// What the changes of a source look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceChanges {
    /// Only `+I` (an append table; a first-row table with a changelog).
    InsertOnly,
    /// A complete changelog: updates as `-U`/`+U` with the old values,
    /// deletes as `-D` (a `lookup` or `full-compaction` producer).
    Retracting,
    /// What writers wrote, by key: an update is the new row alone (`+I`/
    /// `+U`), a delete `-D` (no producer, or `input`).
    Upserts,
}

/// Classifies a source, or says why its changes are no changelog at all.
pub(crate) fn source_changes(table: &Table) -> std::result::Result<SourceChanges, String> {
    if !table.is_primary_key_table() {
        return Ok(SourceChanges::InsertOnly);
    }
    let options = table.options();
    let engine = options.merge_engine;
    Ok(match (engine, options.changelog_producer) {
        (MergeEngine::FirstRow, ChangelogProducer::Lookup) => SourceChanges::InsertOnly,
        (_, ChangelogProducer::Lookup | ChangelogProducer::FullCompaction) => {
            SourceChanges::Retracting
        }
        (MergeEngine::Deduplicate, _) => SourceChanges::Upserts,
        (engine, _) => {
            return Err(format!(
                "source '{}' uses the {} merge engine without a 'lookup' or 'full-compaction' changelog producer, so its changes are partial rows rather than a changelog; set 'changelog-producer' = 'lookup' on it",
                table.identifier(),
                match engine {
                    MergeEngine::PartialUpdate => "partial-update",
                    MergeEngine::Aggregation => "aggregation",
                    MergeEngine::FirstRow => "first-row",
                    MergeEngine::Deduplicate => "deduplicate",
                }
            ))
        }
    })
}

fn upsert_advice(source: &Table) -> String {
    format!(
        "source '{}' is a primary-key table without a 'lookup' or 'full-compaction' changelog producer: an update reaches the job as the new row only, without the row it replaces; set 'changelog-producer' = 'lookup' on it for a complete changelog",
        source.identifier()
    )
}

/// A job, checked and planned.
pub(crate) struct JobPlan {
    pub source: Table,
    pub sink: Table,
    pub context: JobContext,
    pub source_ref: TableReference,
    /// The source's columns, then the hidden kind, sign and position.
    pub input_schema: datafusion::arrow::datatypes::SchemaRef,
    /// The query run over each batch of changes.
    pub exec: Statement,
    pub aggregate: bool,
    /// A min or max call, which must never meet a retraction.
    pub min_max: Option<String>,
    pub mapping: SinkMapping,
    /// Read options of the source from the statement's hint.
    pub hint_options: BTreeMap<String, String>,
    /// "aggregate", "per-row", "lookup join"...
    pub shape: String,
    /// `Some` for a window aggregate: `exec` then runs over the rows of the
    /// closing windows, registered as the source.
    pub window: Option<WindowPlan>,
}

/// How a window aggregate reads its source.
pub(crate) struct WindowPlan {
    pub spec: WindowSpec,
    pub watermark: WatermarkSpec,
    /// The event-time column's type (also that of window_start/window_end).
    pub time_type: datafusion::arrow::datatypes::DataType,
    /// The source's columns, then window_start and window_end.
    pub schema: datafusion::arrow::datatypes::SchemaRef,
}

/// What walking the user's plan found.
#[derive(Default)]
pub(crate) struct PlanFacts {
    /// Filter predicates with the schema they are evaluated against.
    filters: Vec<(Expr, Arc<DFSchema>)>,
    joins: Vec<JoinType>,
    aggregates: usize,
}

fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::OuterReferenceColumn(..)
        ))
    })
    .unwrap_or(true)
}

fn refuse(what: impl std::fmt::Display) -> SqlError {
    SqlError::Unsupported(format!("a job cannot run {what}"))
}

/// Only projections, filters, lookup joins and one aggregate.
pub(crate) fn walk(plan: &LogicalPlan, facts: &mut PlanFacts) -> Result<()> {
    if plan.expressions().iter().any(has_subquery) {
        return Err(refuse("subqueries"));
    }
    match plan {
        LogicalPlan::Projection(_) | LogicalPlan::TableScan(_) | LogicalPlan::SubqueryAlias(_) => {}
        LogicalPlan::Filter(f) => {
            if matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)) {
                return Err(refuse("HAVING"));
            }
            facts
                .filters
                .push((f.predicate.clone(), f.input.schema().clone()));
        }
        LogicalPlan::Aggregate(a) => {
            if facts.aggregates > 0 {
                return Err(refuse("nested aggregates"));
            }
            if a.group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)))
            {
                return Err(refuse("GROUPING SETS / ROLLUP / CUBE"));
            }
            facts.aggregates += 1;
        }
        LogicalPlan::Join(j) => {
            // RIGHT: a join of two streams (a lookup join's RIGHT JOIN is
            // refused when the statement is read).
            if !matches!(
                j.join_type,
                JoinType::Inner | JoinType::Left | JoinType::Right
            ) {
                return Err(refuse(format!(
                    "a {} join (a lookup join keeps the stream on the left)",
                    j.join_type
                )));
            }
            facts.joins.push(j.join_type);
        }
        LogicalPlan::Window(_) => {
            return Err(refuse(
                "window functions (... OVER ...), which need every row seen so far; for event-time windows use FROM TABLE(TUMBLE(...)) or TABLE(HOP(...))",
            ))
        }
        LogicalPlan::Sort(_) => return Err(refuse("ORDER BY")),
        LogicalPlan::Limit(_) => return Err(refuse("LIMIT")),
        LogicalPlan::Distinct(_) => return Err(refuse("DISTINCT")),
        LogicalPlan::Union(_) => return Err(refuse("UNION")),
        LogicalPlan::Values(_) => return Err(refuse("VALUES")),
        LogicalPlan::EmptyRelation(_) => return Err(refuse("a SELECT without a source table")),
        LogicalPlan::Subquery(_) => return Err(refuse("subqueries")),
        other => {
            let name = other.display().to_string();
            let name = name.split([':', ' ']).next().unwrap_or("this").to_string();
            return Err(refuse(format!("a query with a {name} step")));
        }
    }
    for input in plan.inputs() {
        walk(input, facts)?;
    }
    Ok(())
}

pub(crate) fn identifier(name: &TableName, database: &str) -> Identifier {
    Identifier::new(
        name.database
            .clone()
            .unwrap_or_else(|| database.to_string()),
        name.table.clone(),
    )
}

pub(crate) fn reference(id: &Identifier) -> TableReference {
    TableReference::full(CATALOG_NAME, id.database.clone(), id.table.clone())
}

/// The sink field's aggregate function, as the aggregation engine reads it.
fn field_function(sink: &Table, field: &str) -> String {
    let options = &sink.schema().options;
    options
        .get(&format!("fields.{field}.aggregate-function"))
        .or_else(|| options.get("fields.default-aggregate-function"))
        .map(|f| f.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "last_non_null_value".to_string())
}

fn ignores_retract(sink: &Table, field: &str) -> bool {
    sink.schema()
        .options
        .get(&format!("fields.{field}.ignore-retract"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Which sink column each query output goes to.
pub(crate) fn sink_mapping(
    sink: &Table,
    insert_columns: &Option<Vec<String>>,
    outputs: usize,
) -> Result<(SinkMapping, Vec<String>)> {
    let fields: Vec<String> = sink
        .schema()
        .fields
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let targets: Vec<String> = match insert_columns {
        Some(columns) => {
            let mut seen = BTreeSet::new();
            for c in columns {
                if !fields.contains(c) {
                    return Err(SqlError::UndefinedColumn(format!(
                        "column '{c}' does not exist in sink '{}'",
                        sink.identifier()
                    )));
                }
                if !seen.insert(c) {
                    return Err(SqlError::Plan(format!("column '{c}' is written twice")));
                }
            }
            columns.clone()
        }
        None => fields.clone(),
    };
    if targets.len() != outputs {
        return Err(SqlError::Plan(format!(
            "the job's SELECT has {outputs} columns but writes {} columns of sink '{}'",
            targets.len(),
            sink.identifier()
        )));
    }
    let columns = fields
        .iter()
        .map(|f| targets.iter().position(|t| t == f))
        .collect();
    Ok((
        SinkMapping {
            columns,
            sink_schema: sink.arrow_schema(),
        },
        targets,
    ))
}

/// A job of one streamed source, or a join of two.
pub(crate) enum PlannedJob {
    Single(JobPlan),
    Join(JoinPlan),
}

/// Reads, checks and plans a job statement.
pub(crate) async fn plan_job(catalog: &Catalog, database: &str, sql: &str) -> Result<PlannedJob> {
    let context = JobContext::new(database);
    let parsed: ParsedJob = parse_job(sql, &|name| context.is_aggregate(name))?;
    if let Some(join) = &parsed.stream_join {
        let plan = plan_stream_join(catalog, database, context, &parsed, join).await?;
        return Ok(PlannedJob::Join(plan));
    }
    plan_single(catalog, database, context, parsed)
        .await
        .map(PlannedJob::Single)
}

async fn plan_single(
    catalog: &Catalog,
    database: &str,
    context: JobContext,
    parsed: ParsedJob,
) -> Result<JobPlan> {
    let sink_id = identifier(&parsed.sink, database);
    let source_id = identifier(&parsed.source, database);
    if sink_id == source_id {
        return Err(refuse(format!(
            "into its own source '{source_id}' (every commit would feed the job again)"
        )));
    }
    let sink = catalog.load_table(&sink_id).await?;
    let source = catalog.load_table(&source_id).await?;
    let mut lookups = Vec::new();
    for lookup in &parsed.lookups {
        let id = identifier(&lookup.table, database);
        if id == source_id {
            return Err(refuse(format!(
                "a lookup join of '{id}' with itself: {}",
                "join the table with a copy of itself"
            )));
        }
        let table = catalog.load_table(&id).await?;
        context.register(reference(&id), Arc::new(TidelakeTable::new(table, None)))?;
        lookups.push(lookup.kind);
    }
    context.register(
        reference(&sink_id),
        Arc::new(TidelakeTable::new(sink.clone(), None)),
    )?;
    let source_ref = reference(&source_id);
    if parsed.window.is_some() {
        return plan_window(parsed, source, sink, context, source_ref).await;
    }
    // The statement as written, over a source of its plain columns: every
    // name, type and column count is checked as a batch INSERT would be.
    context.set_source(&source_ref, source.arrow_schema(), Vec::new())?;
    context.plan(&parsed.insert).await?;
    let user_plan = context
        .plan(&Statement::Query(Box::new(parsed.query.clone())))
        .await?;
    let mut facts = PlanFacts::default();
    walk(&user_plan, &mut facts)?;
    let outputs = user_plan.schema().fields().len();
    let (mapping, targets) = sink_mapping(&sink, &parsed.insert_columns, outputs)?;
    let changes = source_changes(&source).map_err(SqlError::Unsupported)?;
    let is_source = |q: &TableReference| {
        q.table() == qualifier_table(&parsed.source_qualifier)
            && q.schema().is_none_or(|s| s == source_id.database)
    };
    let mut min_max = None;
    let shape;
    match &parsed.aggregate {
        Some(roles) => {
            if roles.len() != outputs {
                return Err(SqlError::Internal(format!(
                    "{} output roles for {outputs} outputs",
                    roles.len()
                )));
            }
            min_max = check_aggregate(
                &source,
                &sink,
                changes,
                roles,
                &targets,
                !lookups.is_empty(),
            )?;
            shape = if lookups.is_empty() {
                "aggregate".to_string()
            } else {
                "aggregate over a lookup join".to_string()
            };
        }
        None => {
            check_per_row(
                &source, &sink, changes, &user_plan, &facts, &mapping, &is_source,
            )?;
            shape = if lookups.is_empty() {
                "projection/filter".to_string()
            } else {
                "lookup join".to_string()
            };
        }
    }
    // The query that runs: over the source's columns and the hidden ones.
    let input_schema = input_schema(&source.arrow_schema());
    context.set_source(&source_ref, input_schema.clone(), Vec::new())?;
    let exec = Statement::Query(Box::new(parsed.exec_query.clone()));
    let exec_plan = context.plan(&exec).await?;
    let offset = if parsed.aggregate.is_some() { 0 } else { 2 };
    if exec_plan.schema().fields().len() != outputs + offset {
        return Err(SqlError::Internal(format!(
            "the job's query has {} columns, expected {}",
            exec_plan.schema().fields().len(),
            outputs + offset
        )));
    }
    Ok(JobPlan {
        source,
        sink,
        context,
        source_ref,
        input_schema,
        exec,
        aggregate: parsed.aggregate.is_some(),
        min_max,
        mapping,
        hint_options: parsed.hint_options,
        shape,
        window: None,
    })
}

/// A window aggregate: the source needs a watermark on the window's time
/// column; the query runs as written over the windows' rows.
async fn plan_window(
    parsed: ParsedJob,
    source: Table,
    sink: Table,
    context: JobContext,
    source_ref: TableReference,
) -> Result<JobPlan> {
    let Some(call) = parsed.window.clone() else {
        return Err(SqlError::Internal("not a window job".into()));
    };
    let spec = call.spec;
    let source_name = source.identifier().to_string();
    let source_schema = source.arrow_schema();
    let time_field = source_schema
        .field_with_name(&spec.time_column)
        .map_err(|_| {
            SqlError::UndefinedColumn(format!(
                "DESCRIPTOR({}): source '{source_name}' has no column '{}'",
                spec.time_column, spec.time_column
            ))
        })?;
    let time_type = time_field.data_type().clone();
    check_event_time_type(
        &time_type,
        &time_type.to_string(),
        &spec.time_column,
        &source_name,
    )?;
    check_resolution(&spec, &time_type)?;
    let mut options = source.schema().options.clone();
    options.extend(parsed.hint_options.clone());
    let watermark = watermark_of(&options, &source_schema, &source_name)?.ok_or_else(|| {
        SqlError::Unsupported(format!(
            "a job cannot run a window without a watermark: source '{source_name}' declares none; create it with WATERMARK FOR {col} AS {col} - INTERVAL '5' SECOND, or set its options 'schema.watermark.0.rowtime' = '{col}' and 'schema.watermark.0.strategy.expr' = '{col} - INTERVAL ''5'' SECOND'",
            col = spec.time_column
        ))
    })?;
    if watermark.column != spec.time_column {
        return Err(SqlError::Unsupported(format!(
            "a job cannot run a window on column '{}' of source '{source_name}', whose watermark is on column '{}': window on the watermark's column",
            spec.time_column, watermark.column
        )));
    }
    let schema = windowed_schema(&source_schema, &time_type);
    context.set_source(&source_ref, schema.clone(), Vec::new())?;
    context.plan(&parsed.insert).await?;
    let exec = Statement::Query(Box::new(parsed.exec_query.clone()));
    let user_plan = context.plan(&exec).await?;
    let mut facts = PlanFacts::default();
    walk(&user_plan, &mut facts)?;
    if facts.aggregates == 0 {
        return Err(refuse(format!(
            "a window query without an aggregate ({}); aggregate per window_start, window_end",
            spec.describe()
        )));
    }
    let outputs = user_plan.schema().fields().len();
    let (mapping, _) = sink_mapping(&sink, &parsed.insert_columns, outputs)?;
    Ok(JobPlan {
        input_schema: input_schema(&source_schema),
        source,
        sink,
        context,
        source_ref,
        exec,
        aggregate: true,
        min_max: None,
        mapping,
        hint_options: parsed.hint_options,
        shape: spec.describe(),
        window: Some(WindowPlan {
            spec,
            watermark,
            time_type,
            schema,
        }),
    })
}

/// The last part of the source's qualifier, as DataFusion resolves it.
fn qualifier_table(qualifier: &str) -> String {
    TableReference::parse_str(qualifier).table().to_string()
}

/// Aggregates: the sink adds up each group's changes by key.
fn check_aggregate(
    source: &Table,
    sink: &Table,
    changes: SourceChanges,
    roles: &[Output],
    targets: &[String],
    joined: bool,
) -> Result<Option<String>> {
    if changes == SourceChanges::Upserts {
        return Err(SqlError::Unsupported(format!(
            "an aggregate job cannot take updates out of its groups: {}",
            upsert_advice(source)
        )));
    }
    if joined && changes != SourceChanges::InsertOnly {
        return Err(refuse(format!(
            "an aggregate over a lookup join of source '{}', which has updates and deletes: a retraction would be joined with the current version of the looked-up table, not the one its row was added with; aggregate over a lookup join needs an insert-only source",
            source.identifier()
        )));
    }
    let sink_name = sink.identifier();
    let setup = "create it with a primary key of the group columns and WITH ('merge-engine' = 'aggregation', 'fields.<column>.aggregate-function' = 'sum', ...)";
    if !sink.is_primary_key_table() || sink.options().merge_engine != MergeEngine::Aggregation {
        return Err(SqlError::Unsupported(format!(
            "an aggregate job writes the change of each group per commit, which sink '{sink_name}' must add up: {setup}"
        )));
    }
    let keys: BTreeSet<&str> = roles
        .iter()
        .zip(targets)
        .filter(|(r, _)| **r == Output::Key)
        .map(|(_, t)| t.as_str())
        .collect();
    let primary: BTreeSet<&str> = sink.primary_keys().iter().map(String::as_str).collect();
    if keys != primary {
        return Err(SqlError::Unsupported(format!(
            "the primary key of sink '{sink_name}' ({}) must be exactly the group columns the job writes ({}), so that each group is one row",
            primary.iter().copied().collect::<Vec<_>>().join(", "),
            keys.iter().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    let mut min_max = None;
    for (role, target) in roles.iter().zip(targets) {
        let Output::Agg { kind, text } = role else {
            continue;
        };
        if !kind.retractable() {
            if changes != SourceChanges::InsertOnly {
                return Err(SqlError::Unsupported(format!(
                    "{text} cannot take back a retracted row, and source '{}' has updates and deletes (-U/-D); min and max need an insert-only source (an append table, or a first-row table with 'changelog-producer' = 'lookup'); sum and count work over any changelog",
                    source.identifier()
                )));
            }
            min_max.get_or_insert_with(|| text.clone());
        }
        let function = field_function(sink, target);
        if function != kind.sink_function() {
            return Err(SqlError::Unsupported(format!(
                "column '{target}' of sink '{sink_name}' receives {text}, whose changes it must combine with '{}', but its aggregate function is '{function}': set 'fields.{target}.aggregate-function' = '{}'",
                kind.sink_function(),
                kind.sink_function()
            )));
        }
    }
    Ok(min_max)
}

/// Per-row jobs (with or without lookup joins): each change row's kind
/// passes to the sink, which must be able to apply it.
fn check_per_row(
    source: &Table,
    sink: &Table,
    changes: SourceChanges,
    plan: &LogicalPlan,
    facts: &PlanFacts,
    mapping: &SinkMapping,
    is_source: &dyn Fn(&TableReference) -> bool,
) -> Result<()> {
    if changes == SourceChanges::InsertOnly {
        return Ok(());
    }
    let sink_name = sink.identifier();
    if !sink.is_primary_key_table() {
        return Err(SqlError::Unsupported(format!(
            "source '{}' has updates and deletes, which sink '{sink_name}' cannot apply without a primary key; give the sink a primary key",
            source.identifier()
        )));
    }
    match sink.options().merge_engine {
        MergeEngine::Deduplicate => {}
        MergeEngine::Aggregation if changes == SourceChanges::Retracting => {
            for field in &sink.schema().fields {
                if sink.primary_keys().contains(&field.name) {
                    continue;
                }
                let f = field_function(sink, &field.name);
                let retracts = matches!(
                    f.as_str(),
                    "sum" | "product" | "last_value" | "last_non_null_value"
                );
                if !retracts && !ignores_retract(sink, &field.name) {
                    return Err(SqlError::Unsupported(format!(
                        "source '{}' has retractions (-U/-D), which column '{}' of sink '{sink_name}' cannot apply with aggregate function '{f}'",
                        source.identifier(),
                        field.name
                    )));
                }
            }
        }
        _ => {
            return Err(SqlError::Unsupported(format!(
                "sink '{sink_name}' cannot apply the updates and deletes of source '{}' with its merge engine; use 'deduplicate' (or 'aggregation' for a changelog with retractions)",
                source.identifier()
            )))
        }
    }
    if changes == SourceChanges::Retracting {
        return Ok(());
    }
    // Upserts: rows can only be passed on by the source's own key.
    let advice = upsert_advice(source);
    if sink.options().merge_engine != MergeEngine::Deduplicate {
        return Err(SqlError::Unsupported(advice));
    }
    if facts.joins.iter().any(|j| *j != JoinType::Left) {
        return Err(SqlError::Unsupported(format!(
            "an inner lookup join could drop a row's new version and leave its old one in the sink; use LEFT JOIN, or: {advice}"
        )));
    }
    let source_keys: BTreeSet<&str> = source.primary_keys().iter().map(String::as_str).collect();
    for (predicate, schema) in &facts.filters {
        for column in predicate.column_refs() {
            let on_key = schema
                .qualified_field_from_column(column)
                .ok()
                .is_some_and(|(q, f)| {
                    q.is_some_and(is_source) && source_keys.contains(f.name().as_str())
                });
            if !on_key {
                return Err(SqlError::Unsupported(format!(
                    "the WHERE clause reads '{}', which an update may change, so an update could leave the row's old version in the sink; filter on the key columns only, or: {advice}",
                    column.name
                )));
            }
        }
    }
    let LogicalPlan::Projection(projection) = plan else {
        return Err(SqlError::Unsupported(advice));
    };
    let input_schema = projection.input.schema();
    let sink_fields = sink.schema().fields.clone();
    let mut passed = BTreeSet::new();
    for key in sink.primary_keys() {
        let from_key = sink_fields
            .iter()
            .position(|f| &f.name == key)
            .and_then(|i| mapping.columns[i])
            .and_then(|output| projection.expr.get(output))
            .and_then(|expr| source_key(expr, input_schema, is_source, &source_keys));
        match from_key {
            Some(k) => {
                passed.insert(k);
            }
            None => {
                return Err(SqlError::Unsupported(format!(
                    "key column '{key}' of sink '{sink_name}' must be a key column of the source selected as it is, so that an update replaces its row; {advice}"
                )))
            }
        }
    }
    if passed != source_keys.iter().map(|k| k.to_string()).collect() {
        return Err(SqlError::Unsupported(format!(
            "the primary key of sink '{sink_name}' must be the source's whole key ({}), so that an update replaces its row; {advice}",
            source_keys.iter().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

/// The source key column an output expression selects as it is.
fn source_key(
    expr: &Expr,
    schema: &DFSchema,
    is_source: &dyn Fn(&TableReference) -> bool,
    keys: &BTreeSet<&str>,
) -> Option<String> {
    let mut e = expr;
    while let Expr::Alias(a) = e {
        e = &a.expr;
    }
    let Expr::Column(c) = e else {
        return None;
    };
    let (q, field) = schema.qualified_field_from_column(c).ok()?;
    (q.is_some_and(is_source) && keys.contains(field.name().as_str())).then(|| field.name().clone())
}
