//! `MERGE INTO target USING source ON cond WHEN [NOT] MATCHED [AND cond]
//! THEN UPDATE SET ... | DELETE | INSERT [(cols)] VALUES (...)`, as Spark
//! and Paimon's MergeIntoAction run it: the WHEN clauses are tried in order
//! and the first whose condition holds acts on the row; rows no clause
//! takes stay as they are. The whole statement is one commit, or nothing.
//!
//! DataFusion parses and resolves the statement (the ON condition and every
//! clause against the target's and the source's columns); it is run here as
//! a LEFT JOIN of the source to the target, projected to the action each
//! row takes and the target row it produces:
//! - on a primary-key table the result is written by key, updates and
//!   inserts as `+I`, deletes as `-D`, in one APPEND commit;
//! - on an append table the files are rewritten (as DELETE and UPDATE do):
//!   each batch of each file is joined with the (materialized) source, its
//!   matched rows updated or removed; source rows that matched no target row
//!   anywhere then go through the NOT MATCHED clauses, and the new rows and
//!   rewritten files make one commit (OVERWRITE when files were replaced).
//!
//! A NOT MATCHED row whose key is in the table already (the ON condition
//! asked for more than the key) replaces that row: a primary-key table has
//! one row per key, and an insert is an upsert (as in Paimon).
//!
//! Refused: changing a primary-key or partition column (the row would move
//! to another key or partition: Paimon refuses too), a target row matched by
//! more than one source row (the SQL standard's cardinality violation, SQLSTATE
//! 21000: which update would win is undefined), matched actions on merge
//! engines that combine rows instead of replacing them, and `WHEN NOT
//! MATCHED BY SOURCE`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, UInt64Array, UInt64Builder,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::{
    MergeIntoAction, MergeIntoClause, MergeIntoClauseKind, MergeIntoOp,
};
use datafusion::logical_expr::{
    case, cast, lit, when, DmlStatement, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, WriteOp,
};
use datafusion::physical_plan::{collect, execute_stream};
use futures::StreamExt;
use tidelake_engine::introspect::CommitKind;
use tidelake_engine::options::MergeEngine;
use tidelake_engine::{EngineError, RowKind, Table};

use crate::error::{Result, SqlError};
use crate::provider::check_not_null;

/// Marks joined rows that have a target row (NULL when the source row
/// matched none).
const TARGET_MARK: &str = "__tidelake_merge_target";
/// The index of the WHEN clause that acts on the row, -1 for none.
const ACTION: &str = "__tidelake_merge_action";
/// A target row's position in its batch (append tables).
const TARGET_POS: &str = "__tidelake_merge_target_pos";
/// A source row's position in the materialized source (append tables).
const SOURCE_POS: &str = "__tidelake_merge_source_pos";

/// Runs a planned MERGE; returns the number of rows inserted, updated or
/// deleted.
pub(crate) async fn execute_merge(state: &SessionState, dml: &DmlStatement) -> Result<u64> {
    let WriteOp::MergeInto(op) = &dml.op else {
        return Err(SqlError::Internal(format!("{} is not a MERGE", dml.op)));
    };
    let table = crate::dml::writable_table(dml)?;
    check_clauses(&table, &op.clauses)?;
    let merge = Merge {
        state,
        op,
        table: &table,
        table_ref: &dml.table_name,
    };
    if table.is_primary_key_table() {
        let target =
            LogicalPlanBuilder::scan(dml.table_name.clone(), dml.target.clone(), None)?.build()?;
        merge.by_key(target, dml.input.as_ref().clone()).await
    } else {
        merge.rewrite_append(dml.input.as_ref().clone()).await
    }
}

fn has_matched(clauses: &[MergeIntoClause]) -> bool {
    clauses
        .iter()
        .any(|c| c.kind == MergeIntoClauseKind::Matched)
}

/// The refusals that do not depend on the data.
fn check_clauses(table: &Table, clauses: &[MergeIntoClause]) -> Result<()> {
    for clause in clauses {
        if clause.kind == MergeIntoClauseKind::NotMatchedBySource {
            return Err(SqlError::Unsupported(
                "WHEN NOT MATCHED BY SOURCE is not supported in MERGE: use WHEN MATCHED and WHEN NOT MATCHED clauses (or DELETE for target rows without a source row)".into(),
            ));
        }
        let MergeIntoAction::Update(assignments) = &clause.action else {
            continue;
        };
        for (column, _) in assignments {
            let role = if table.primary_keys().contains(column) {
                "primary key"
            } else if table.partition_keys().contains(column) {
                "partition"
            } else {
                continue;
            };
            return Err(SqlError::Unsupported(format!(
                "MERGE cannot update {role} column '{column}' of table '{}': the row would move to another {}; delete it and insert it instead",
                table.identifier(),
                if role == "partition" { "partition" } else { "key" },
            )));
        }
    }
    if table.is_primary_key_table()
        && has_matched(clauses)
        && table.options().merge_engine != MergeEngine::Deduplicate
    {
        return Err(SqlError::Unsupported(format!(
            "MERGE with WHEN MATCHED clauses on table '{}' needs the 'deduplicate' merge engine: its '{:?}' merge engine combines rows with the same key instead of replacing them, so an update or delete would not mean what it says (WHEN NOT MATCHED ... INSERT alone is allowed)",
            table.identifier(),
            table.options().merge_engine
        )));
    }
    Ok(())
}

/// One MERGE statement being run.
struct Merge<'a> {
    state: &'a SessionState,
    op: &'a MergeIntoOp,
    table: &'a Table,
    table_ref: &'a TableReference,
}

impl Merge<'_> {
    /// The source LEFT JOIN the target (which carries [`TARGET_MARK`]),
    /// projected to the table's columns as each row's action makes them,
    /// then [`ACTION`], [`TARGET_MARK`] and the `carried` columns; rows that
    /// match no target row and take no action are left out.
    fn plan(
        &self,
        target: LogicalPlan,
        source: LogicalPlan,
        carried: &[&str],
    ) -> Result<LogicalPlan> {
        let mut target_columns: Vec<Expr> = target
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        target_columns.push(lit(true).alias(TARGET_MARK));
        let target = LogicalPlanBuilder::from(target)
            .project(target_columns)?
            .build()?;
        let joined = LogicalPlanBuilder::from(source)
            .join_on(target, JoinType::Left, vec![self.op.on.clone()])?
            .build()?;
        let present = Expr::Column(Column::from_name(TARGET_MARK)).is_not_null();
        let mut action = None::<datafusion::logical_expr::conditional_expressions::CaseBuilder>;
        for (i, clause) in self.op.clauses.iter().enumerate() {
            let side = match clause.kind {
                MergeIntoClauseKind::Matched => present.clone(),
                _ => Expr::Column(Column::from_name(TARGET_MARK)).is_null(),
            };
            let condition = match &clause.predicate {
                Some(p) => side.and(p.clone()),
                None => side,
            };
            let then = lit(i as i32);
            action = Some(match action {
                None => when(condition, then),
                Some(mut builder) => builder.when(condition, then),
            });
        }
        let action = match action {
            Some(mut builder) => builder.otherwise(lit(-1i32))?,
            None => lit(-1i32),
        };
        let mut exprs: Vec<Expr> = joined
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        exprs.push(action.alias(ACTION));
        let with_action = LogicalPlanBuilder::from(joined).project(exprs)?.build()?;
        let mut outputs = self.row_values()?;
        for name in [ACTION, TARGET_MARK].iter().chain(carried) {
            outputs.push(Expr::Column(Column::from_name(*name)));
        }
        let keep = Expr::Column(Column::from_name(ACTION))
            .gt_eq(lit(0i32))
            .or(present);
        Ok(LogicalPlanBuilder::from(with_action)
            .project(outputs)?
            .filter(keep)?
            .build()?)
    }

    /// Each table column, as the acting clause makes it: an UPDATE's value
    /// or the target's, an INSERT's value or NULL, the target's otherwise.
    fn row_values(&self) -> Result<Vec<Expr>> {
        let schema = self.table.arrow_schema();
        let mut exprs = Vec::with_capacity(schema.fields().len());
        for (index, field) in schema.fields().iter().enumerate() {
            let current = Expr::Column(Column::new(Some(self.table_ref.clone()), field.name()));
            let mut branches =
                None::<datafusion::logical_expr::conditional_expressions::CaseBuilder>;
            for (i, clause) in self.op.clauses.iter().enumerate() {
                let value = match &clause.action {
                    MergeIntoAction::Update(assignments) => {
                        match assignments.iter().find(|(c, _)| c == field.name()) {
                            Some((_, v)) => v.clone(),
                            None => continue,
                        }
                    }
                    MergeIntoAction::Insert { columns, values } => {
                        let position = if columns.is_empty() {
                            Some(index)
                        } else {
                            columns.iter().position(|c| c == field.name())
                        };
                        match position.and_then(|p| values.get(p)) {
                            Some(v) => v.clone(),
                            None => lit(datafusion::common::ScalarValue::Null),
                        }
                    }
                    MergeIntoAction::Delete => continue,
                };
                let value = cast(value, field.data_type().clone());
                let on = lit(i as i32);
                branches = Some(match branches {
                    None => case(Expr::Column(Column::from_name(ACTION))).when(on, value),
                    Some(mut b) => b.when(on, value),
                });
            }
            let expr = match branches {
                Some(mut b) => b.otherwise(current)?,
                None => current,
            };
            exprs.push(expr.alias(field.name()));
        }
        Ok(exprs)
    }

    fn row_kind(&self, action: i32) -> Option<RowKind> {
        let clause = self.op.clauses.get(usize::try_from(action).ok()?)?;
        Some(match clause.action {
            MergeIntoAction::Delete => RowKind::Delete,
            _ => RowKind::Insert,
        })
    }

    fn cardinality_error(&self) -> SqlError {
        SqlError::CardinalityViolation(format!(
            "MERGE matched a row of table '{}' with more than one source row: which change would win is undefined, so nothing was changed (make the ON condition match each target row at most once)",
            self.table.identifier()
        ))
    }

    /// Primary-key table: the result written by key, one commit.
    async fn by_key(&self, target: LogicalPlan, source: LogicalPlan) -> Result<u64> {
        let plan = self.plan(target, source, &[])?;
        let physical = self.state.create_physical_plan(&plan).await?;
        let mut matched = has_matched(&self.op.clauses).then(|| MatchedKeys::new(self.table));
        let mut writer = self.table.writer();
        let written: Result<u64> = async {
            let mut stream = execute_stream(physical, self.state.task_ctx())?;
            let mut rows = 0u64;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                if let Some(matched) = &mut matched {
                    if !matched.add(&batch)? {
                        return Err(self.cardinality_error());
                    }
                }
                let Some((values, kinds)) = self.changes(&batch)? else {
                    continue;
                };
                rows += values.num_rows() as u64;
                crate::progress::count_rows_written(self.state.config(), values.num_rows());
                writer.write_with_kinds(values, &kinds).await?;
            }
            Ok(rows)
        }
        .await;
        match written {
            Ok(rows) => {
                let properties = crate::retry::commit_properties(self.state.config());
                writer.commit_with(CommitKind::Append, properties).await?;
                Ok(rows)
            }
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        }
    }

    /// The rows a result batch writes to a primary-key table and their
    /// kinds (upserts checked for NULLs in NOT NULL columns); `None` when
    /// no row of it takes an action.
    fn changes(&self, batch: &RecordBatch) -> Result<Option<(RecordBatch, Vec<RowKind>)>> {
        let columns = self.table.arrow_schema().fields().len();
        let (actions, _) = action_columns(batch, columns)?;
        let chosen: Vec<u64> = (0..batch.num_rows())
            .filter(|r| actions.value(*r) >= 0)
            .map(|r| r as u64)
            .collect();
        if chosen.is_empty() {
            return Ok(None);
        }
        let kinds: Vec<RowKind> = chosen
            .iter()
            .filter_map(|r| self.row_kind(actions.value(*r as usize)))
            .collect();
        let values =
            take_record_batch(&table_columns(batch, columns)?, &UInt64Array::from(chosen))?;
        let upserts: BooleanArray = kinds.iter().map(|k| Some(*k == RowKind::Insert)).collect();
        check_not_null(self.table, &filter_record_batch(&values, &upserts)?)?;
        Ok(Some((values, kinds)))
    }

    /// Append table: matched rows rewritten in their files, unmatched source
    /// rows inserted, one commit.
    async fn rewrite_append(&self, source: LogicalPlan) -> Result<u64> {
        let source = Materialized::new(self.state, source).await?;
        let context = Arc::new(AppendContext {
            state: self.state.clone(),
            op: self.op.clone(),
            table: self.table.clone(),
            table_ref: self.table_ref.clone(),
            matched: Mutex::new(vec![false; source.rows()]),
            source,
            failure: Mutex::new(None),
        });
        let per_batch = context.clone();
        let prepared = self
            .table
            .prepare_append_rewrite(None, move |batch| {
                let context = per_batch.clone();
                Box::pin(async move { context.change_batch_or_record(batch).await })
            })
            .await;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                let ours = context.failure.lock().ok().and_then(|mut f| f.take());
                return Err(ours.unwrap_or_else(|| e.into()));
            }
        };
        let inserts = match context.inserts().await {
            Ok(i) => i,
            Err(e) => {
                prepared.discard(self.table).await;
                return Err(e);
            }
        };
        let properties = crate::retry::commit_properties(self.state.config());
        let outcome = self
            .table
            .commit_append_rewrite(prepared, inserts, properties)
            .await?;
        Ok(outcome.rows_changed)
    }
}

/// The primary keys of the target rows matched so far (for the
/// cardinality check of a primary-key table).
struct MatchedKeys {
    key_indices: Vec<usize>,
    columns: usize,
    converter: Option<RowConverter>,
    seen: HashSet<OwnedRow>,
}

impl MatchedKeys {
    fn new(table: &Table) -> MatchedKeys {
        let schema = table.arrow_schema();
        MatchedKeys {
            key_indices: table
                .primary_keys()
                .iter()
                .filter_map(|k| schema.index_of(k).ok())
                .collect(),
            columns: schema.fields().len(),
            converter: None,
            seen: HashSet::new(),
        }
    }

    /// Adds the keys of the batch's matched rows; `false` when one was
    /// matched before (by another source row).
    fn add(&mut self, batch: &RecordBatch) -> Result<bool> {
        let (_, present) = action_columns(batch, self.columns)?;
        let converter = match &mut self.converter {
            Some(c) => c,
            None => self.converter.insert(RowConverter::new(
                self.key_indices
                    .iter()
                    .map(|i| SortField::new(batch.schema().field(*i).data_type().clone()))
                    .collect(),
            )?),
        };
        let keys: Vec<ArrayRef> = self
            .key_indices
            .iter()
            .map(|i| batch.column(*i).clone())
            .collect();
        let keys = converter.convert_columns(&keys)?;
        for row in 0..batch.num_rows() {
            if present.is_valid(row) && !self.seen.insert(keys.row(row).owned()) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The ACTION and TARGET_MARK columns, after the `columns` table columns.
fn action_columns(batch: &RecordBatch, columns: usize) -> Result<(Int32Array, BooleanArray)> {
    let actions = batch
        .column(columns)
        .as_any()
        .downcast_ref::<Int32Array>()
        .cloned()
        .ok_or_else(|| SqlError::Internal("MERGE action column is not INT".into()))?;
    let present = batch
        .column(columns + 1)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| SqlError::Internal("MERGE target mark is not BOOLEAN".into()))?;
    Ok((actions, present))
}

/// The first `columns` columns of a result: the table's row.
fn table_columns(batch: &RecordBatch, columns: usize) -> Result<RecordBatch> {
    Ok(batch.project(&(0..columns).collect::<Vec<_>>())?)
}

/// A batch as a plan scanned under `name`, with its rows' positions.
fn batch_plan(name: &TableReference, batch: &RecordBatch, position: &str) -> Result<LogicalPlan> {
    let positions: ArrayRef = Arc::new(UInt64Array::from_iter_values(0..batch.num_rows() as u64));
    mem_plan(name, batch, positions, position)
}

/// A batch with a `position` column added, as a plan scanned under `name`.
fn mem_plan(
    name: &TableReference,
    batch: &RecordBatch,
    positions: ArrayRef,
    position: &str,
) -> Result<LogicalPlan> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(position, ArrowType::UInt64, false));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let mut columns = batch.columns().to_vec();
    columns.push(positions);
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let table = MemTable::try_new(schema, vec![vec![batch]])?;
    Ok(
        LogicalPlanBuilder::scan(name.clone(), provider_as_source(Arc::new(table)), None)?
            .build()?,
    )
}

/// The source of an append-table MERGE, run once: its rows (columns named
/// `c0`, `c1`, ... so that equal names from different relations fit one
/// batch) and the qualified names the statement refers to them by.
struct Materialized {
    batch: RecordBatch,
    names: Vec<(Option<TableReference>, String)>,
    /// [`Materialized::plan`] of every row, joined with each target batch.
    all: Option<LogicalPlan>,
}

const SOURCE_NAME: &str = "__tidelake_merge_source";

impl Materialized {
    async fn new(state: &SessionState, plan: LogicalPlan) -> Result<Materialized> {
        let names: Vec<(Option<TableReference>, String)> = plan
            .schema()
            .iter()
            .map(|(q, f)| (q.cloned(), f.name().clone()))
            .collect();
        let physical = state.create_physical_plan(&plan).await?;
        let schema = physical.schema();
        let batches = collect(physical, state.task_ctx()).await?;
        let batch = concat_batches(&schema, &batches)?;
        let renamed = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(renamed, batch.columns().to_vec())?;
        let mut source = Materialized {
            batch,
            names,
            all: None,
        };
        source.all = Some(source.plan(None)?);
        Ok(source)
    }

    fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The rows `keep` selects, as the plan the statement's expressions
    /// resolve against, with [`SOURCE_POS`] (positions in the whole source).
    fn plan(&self, keep: Option<&[bool]>) -> Result<LogicalPlan> {
        let mut positions = UInt64Builder::new();
        for i in 0..self.rows() {
            if keep.is_none_or(|k| k[i]) {
                positions.append_value(i as u64);
            }
        }
        let positions = positions.finish();
        let rows = take_record_batch(&self.batch, &positions)?;
        let name = TableReference::bare(SOURCE_NAME);
        let scan = mem_plan(&name, &rows, Arc::new(positions), SOURCE_POS)?;
        let mut exprs: Vec<Expr> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, (qualifier, field))| {
                Expr::Column(Column::new(Some(name.clone()), format!("c{i}")))
                    .alias_qualified(qualifier.clone(), field.clone())
            })
            .collect();
        exprs.push(Expr::Column(Column::new(Some(name), SOURCE_POS)).alias(SOURCE_POS));
        Ok(LogicalPlanBuilder::from(scan).project(exprs)?.build()?)
    }
}

/// What the per-batch work of an append-table MERGE needs ('static).
struct AppendContext {
    state: SessionState,
    op: MergeIntoOp,
    table: Table,
    table_ref: TableReference,
    source: Materialized,
    /// Which source rows matched a target row, in any batch so far.
    matched: Mutex<Vec<bool>>,
    /// The error that stopped the rewrite (the engine only carries its text).
    failure: Mutex<Option<SqlError>>,
}

impl AppendContext {
    fn merge(&self) -> Merge<'_> {
        Merge {
            state: &self.state,
            op: &self.op,
            table: &self.table,
            table_ref: &self.table_ref,
        }
    }

    async fn run(&self, target: LogicalPlan, source: LogicalPlan) -> Result<Vec<RecordBatch>> {
        let plan = self
            .merge()
            .plan(target, source, &[TARGET_POS, SOURCE_POS])?;
        let physical = self.state.create_physical_plan(&plan).await?;
        Ok(collect(physical, self.state.task_ctx()).await?)
    }

    /// One batch of a target file: its matched rows updated or removed, the
    /// source rows that matched recorded in `matched`.
    /// [`AppendContext::change_batch`], its error kept for the statement.
    async fn change_batch_or_record(
        &self,
        batch: RecordBatch,
    ) -> tidelake_engine::Result<Option<(RecordBatch, u64)>> {
        self.change_batch(batch).await.map_err(|e| {
            let message = e.to_string();
            if let Ok(mut slot) = self.failure.lock() {
                *slot = Some(e);
            }
            EngineError::invalid(message)
        })
    }

    async fn change_batch(&self, batch: RecordBatch) -> Result<Option<(RecordBatch, u64)>> {
        let source = &self.source;
        let columns = self.table.arrow_schema().fields().len();
        let target = batch_plan(&self.table_ref, &batch, TARGET_POS)?;
        let all = match &source.all {
            Some(plan) => plan.clone(),
            None => source.plan(None)?,
        };
        let results = self.run(target, all).await?;
        let merge = self.merge();
        let mut changed_rows: HashSet<u64> = HashSet::new();
        let mut touched: HashSet<u64> = HashSet::new();
        let mut updated: Vec<RecordBatch> = Vec::new();
        for result in &results {
            let (actions, present) = action_columns(result, columns)?;
            let target_pos = u64_column(result, columns + 2)?;
            let source_pos = u64_column(result, columns + 3)?;
            let mut updates = Vec::new();
            for row in 0..result.num_rows() {
                if !present.is_valid(row) {
                    continue;
                }
                let pos = target_pos.value(row);
                if has_matched(&self.op.clauses) && !touched.insert(pos) {
                    return Err(merge.cardinality_error());
                }
                if let Ok(mut m) = self.matched.lock() {
                    if let Some(slot) = m.get_mut(source_pos.value(row) as usize) {
                        *slot = true;
                    }
                }
                match merge.row_kind(actions.value(row)) {
                    Some(RowKind::Delete) => {
                        changed_rows.insert(pos);
                    }
                    Some(_) => {
                        changed_rows.insert(pos);
                        updates.push(row as u64);
                    }
                    None => {}
                }
            }
            if !updates.is_empty() {
                let values = table_columns(result, columns)?;
                updated.push(take_record_batch(&values, &UInt64Array::from(updates))?);
            }
        }
        if changed_rows.is_empty() {
            return Ok(None);
        }
        let out = self.replace_rows(&batch, &changed_rows, updated)?;
        Ok(Some((out, changed_rows.len() as u64)))
    }

    /// The batch without its `changed` rows (by position), with the
    /// `updated` rows added.
    fn replace_rows(
        &self,
        batch: &RecordBatch,
        changed: &HashSet<u64>,
        updated: Vec<RecordBatch>,
    ) -> Result<RecordBatch> {
        let keep: BooleanArray = (0..batch.num_rows() as u64)
            .map(|p| Some(!changed.contains(&p)))
            .collect();
        let mut parts = vec![filter_record_batch(batch, &keep)?];
        for u in updated {
            check_not_null(&self.table, &u)?;
            parts.push(conform(&self.table, &u)?);
        }
        Ok(concat_batches(&self.table.arrow_schema(), &parts)?)
    }

    /// The rows the NOT MATCHED clauses insert for the source rows that
    /// matched no target row.
    async fn inserts(&self) -> Result<Vec<RecordBatch>> {
        let unmatched: Vec<bool> = match self.matched.lock() {
            Ok(m) => m.iter().map(|m| !m).collect(),
            Err(_) => return Err(SqlError::Internal("a MERGE worker panicked".into())),
        };
        let (source, unmatched) = (&self.source, unmatched.as_slice());
        let inserts_any = self
            .op
            .clauses
            .iter()
            .any(|c| c.kind != MergeIntoClauseKind::Matched);
        if !inserts_any || !unmatched.iter().any(|u| *u) {
            return Ok(Vec::new());
        }
        let columns = self.table.arrow_schema().fields().len();
        let empty = RecordBatch::new_empty(self.table.arrow_schema());
        let target = batch_plan(&self.table_ref, &empty, TARGET_POS)?;
        let results = self.run(target, source.plan(Some(unmatched))?).await?;
        let mut out = Vec::new();
        for result in &results {
            let (actions, _) = action_columns(result, columns)?;
            let chosen: Vec<u64> = (0..result.num_rows())
                .filter(|r| actions.value(*r) >= 0)
                .map(|r| r as u64)
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let values =
                take_record_batch(&table_columns(result, columns)?, &UInt64Array::from(chosen))?;
            check_not_null(&self.table, &values)?;
            out.push(conform(&self.table, &values)?);
        }
        Ok(out)
    }
}

fn u64_column(batch: &RecordBatch, index: usize) -> Result<UInt64Array> {
    batch
        .column(index)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .cloned()
        .ok_or_else(|| SqlError::Internal("MERGE position column is not UBIGINT".into()))
}

/// A result batch relabelled with the table's schema (names, nullability).
fn conform(table: &Table, batch: &RecordBatch) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        table.arrow_schema(),
        batch.columns().to_vec(),
    )?)
}
