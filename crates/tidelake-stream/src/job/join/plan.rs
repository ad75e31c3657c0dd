//! Checks a join of two streams against its tables: both are primary-key
//! tables, the condition equates columns of the two, and the sink's primary
//! key identifies each output row, so that a row of the output can be
//! replaced or deleted by key when the rows it came from change.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Join, LogicalPlan, Operator};
use datafusion::sql::sqlparser::ast::Statement;
use tidelake_engine::options::MergeEngine;
use tidelake_engine::{Catalog, Table};

use super::analyze::{non_equi, StreamJoin, StreamJoinKind};
use crate::context::JobContext;
use crate::job::analyze::{refuse, ParsedJob};
use crate::job::exec::SinkMapping;
use crate::job::plan::{identifier, reference, sink_mapping, walk, PlanFacts};
use tidelake_sql::TidelakeTable;
use tidelake_sql::{Result, SqlError};

/// One of the two joined tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// A join of two streams, checked.
pub(crate) struct JoinPlan {
    pub left: Table,
    pub right: Table,
    pub sink: Table,
    pub context: JobContext,
    pub left_ref: TableReference,
    pub right_ref: TableReference,
    pub kind: StreamJoinKind,
    /// The equated columns: (left column, right column).
    pub pairs: Vec<(String, String)>,
    /// The user's SELECT, run as written over pinned versions of the tables.
    pub query: Statement,
    pub mapping: SinkMapping,
    /// Positions of the sink's primary-key columns in its schema.
    pub sink_key: Vec<usize>,
    pub shape: String,
}

impl JoinPlan {
    /// The side whose rows the output is local to: every output row comes
    /// from one row of it (the preserved side of an outer join).
    pub fn driver(&self) -> Side {
        match self.kind {
            StreamJoinKind::Right => Side::Right,
            StreamJoinKind::Inner | StreamJoinKind::Left => Side::Left,
        }
    }

    pub fn table(&self, side: Side) -> &Table {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    /// The equated columns of `side`, in the order of `pairs`.
    pub fn join_columns(&self, side: Side) -> Vec<String> {
        self.pairs
            .iter()
            .map(|(l, r)| match side {
                Side::Left => l.clone(),
                Side::Right => r.clone(),
            })
            .collect()
    }
}

fn find_join(plan: &LogicalPlan) -> Option<&Join> {
    if let LogicalPlan::Join(j) = plan {
        return Some(j);
    }
    plan.inputs().into_iter().find_map(find_join)
}

fn plain_column(expr: &Expr) -> Option<&Column> {
    match expr {
        Expr::Column(c) => Some(c),
        Expr::Alias(a) => plain_column(&a.expr),
        Expr::Cast(c) => plain_column(&c.expr),
        Expr::TryCast(c) => plain_column(&c.expr),
        _ => None,
    }
}

fn side_of(join: &Join, column: &Column) -> Option<Side> {
    if join.left.schema().has_column(column) {
        Some(Side::Left)
    } else if join.right.schema().has_column(column) {
        Some(Side::Right)
    } else {
        None
    }
}

/// The equalities between a column of each side, as (left, right) names.
fn equated_columns(join: &Join) -> Vec<(String, String)> {
    let mut candidates: Vec<(&Expr, &Expr)> = join.on.iter().map(|(l, r)| (l, r)).collect();
    if let Some(filter) = &join.filter {
        for conjunct in split_conjunction(filter) {
            if let Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) = conjunct
            {
                candidates.push((left, right));
            }
        }
    }
    let mut pairs = Vec::new();
    for (a, b) in candidates {
        let (Some(a), Some(b)) = (plain_column(a), plain_column(b)) else {
            continue;
        };
        match (side_of(join, a), side_of(join, b)) {
            (Some(Side::Left), Some(Side::Right)) => pairs.push((a.name.clone(), b.name.clone())),
            (Some(Side::Right), Some(Side::Left)) => pairs.push((b.name.clone(), a.name.clone())),
            _ => {}
        }
    }
    pairs
}

fn list(columns: &BTreeSet<String>) -> String {
    columns.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Plans `INSERT INTO sink SELECT ... FROM left JOIN right ON ...`.
pub(crate) async fn plan_stream_join(
    catalog: &Catalog,
    database: &str,
    context: JobContext,
    parsed: &ParsedJob,
    join: &StreamJoin,
) -> Result<JoinPlan> {
    let sink_id = identifier(&parsed.sink, database);
    let left_id = identifier(&parsed.source, database);
    let right_id = identifier(&join.right, database);
    if left_id == right_id {
        return Err(refuse(format!(
            "a join of '{left_id}' with itself (the two streams must be different tables)"
        )));
    }
    for id in [&left_id, &right_id] {
        if *id == sink_id {
            return Err(refuse(format!(
                "into its own source '{id}' (every commit would feed the job again)"
            )));
        }
    }
    let sink = catalog.load_table(&sink_id).await?;
    let left = catalog.load_table(&left_id).await?;
    let right = catalog.load_table(&right_id).await?;
    for table in [&left, &right] {
        if !table.is_primary_key_table() {
            return Err(SqlError::Unsupported(format!(
                "a join of two streams reads both tables by primary key, and '{}' has none; give it a primary key, or stream '{left_id}' alone and make this a lookup join: FROM {left_id} JOIN {right_id} FOR SYSTEM_TIME AS OF PROCTIME() ON ...",
                table.identifier(),
            )));
        }
    }
    let left_ref = reference(&left_id);
    let right_ref = reference(&right_id);
    context.register(
        left_ref.clone(),
        Arc::new(TidelakeTable::new(left.clone(), None)),
    )?;
    context.register(
        right_ref.clone(),
        Arc::new(TidelakeTable::new(right.clone(), None)),
    )?;
    context.register(
        reference(&sink_id),
        Arc::new(TidelakeTable::new(sink.clone(), None)),
    )?;
    // Every name, type and column count checked as a batch INSERT would be.
    context.plan(&parsed.insert).await?;
    let query = Statement::Query(Box::new(parsed.query.clone()));
    let user_plan = context.plan(&query).await?;
    let mut facts = PlanFacts::default();
    walk(&user_plan, &mut facts)?;
    let Some(join_node) = find_join(&user_plan) else {
        return Err(SqlError::Internal(
            "the job's plan has no join of its two streams".into(),
        ));
    };
    let pairs = equated_columns(join_node);
    if pairs.is_empty() {
        let on = join_node
            .filter
            .as_ref()
            .map_or_else(|| "no condition".to_string(), |f| f.to_string());
        return Err(non_equi(&parsed.source, &join.right, on));
    }
    let sink_name = sink.identifier();
    if !sink.is_primary_key_table() || sink.options().merge_engine != MergeEngine::Deduplicate {
        return Err(SqlError::Unsupported(format!(
            "a join of two streams replaces and deletes output rows by key, so sink '{sink_name}' must be a primary-key table with the 'deduplicate' merge engine"
        )));
    }
    let outputs = user_plan.schema().fields().len();
    let (mapping, _) = sink_mapping(&sink, &parsed.insert_columns, outputs)?;
    let LogicalPlan::Projection(projection) = &user_plan else {
        return Err(SqlError::Internal(
            "the job's SELECT is not a projection".into(),
        ));
    };
    let sink_fields = &sink.schema().fields;
    let mut sink_key = Vec::new();
    let mut written: [BTreeSet<&str>; 2] = [BTreeSet::new(), BTreeSet::new()];
    for key in sink.primary_keys() {
        let Some(position) = sink_fields.iter().position(|f| &f.name == key) else {
            return Err(SqlError::Corrupt(format!(
                "sink '{sink_name}' has key column '{key}' but no such field"
            )));
        };
        sink_key.push(position);
        let Some(output) = mapping.columns[position] else {
            return Err(SqlError::Unsupported(format!(
                "key column '{key}' of sink '{sink_name}' is not written by the job"
            )));
        };
        let column = projection.expr.get(output).and_then(|e| match e {
            Expr::Alias(a) => match a.expr.as_ref() {
                Expr::Column(c) => Some(c),
                _ => None,
            },
            Expr::Column(c) => Some(c),
            _ => None,
        });
        if let Some(c) = column {
            match side_of(join_node, c) {
                Some(Side::Left) => written[0].insert(c.name.as_str()),
                Some(Side::Right) => written[1].insert(c.name.as_str()),
                None => false,
            };
        }
    }
    let tables = [&left, &right];
    let on_columns: [BTreeSet<&str>; 2] = [
        pairs.iter().map(|(l, _)| l.as_str()).collect(),
        pairs.iter().map(|(_, r)| r.as_str()).collect(),
    ];
    // Per side: its key columns missing from ON, and from the sink's key.
    let missing = |i: usize, among: &BTreeSet<&str>| -> BTreeSet<String> {
        tables[i]
            .primary_keys()
            .iter()
            .filter(|k| !among.contains(k.as_str()))
            .cloned()
            .collect()
    };
    let name = |i: usize| tables[i].identifier().to_string();
    let at_most_one = |i: usize| missing(i, &on_columns[i]).is_empty();
    let key_in_sink = |i: usize| missing(i, &written[i]).is_empty();
    let preserved = match join.kind {
        StreamJoinKind::Inner => None,
        StreamJoinKind::Left => Some(0),
        StreamJoinKind::Right => Some(1),
    };
    if let Some(p) = preserved {
        let n = 1 - p;
        if !at_most_one(n) {
            return Err(SqlError::Unsupported(format!(
                "in a {} the {} table '{}' must match at most one row: equate its whole primary key to columns of '{}' in ON (missing: {}); or swap the tables",
                join.kind,
                if n == 1 { "right" } else { "left" },
                name(n),
                name(p),
                list(&missing(n, &on_columns[n]))
            )));
        }
        if !key_in_sink(p) {
            return Err(SqlError::Unsupported(format!(
                "in a {} every row of '{}' is kept, so the primary key of sink '{sink_name}' must include its key columns selected as they are (missing: {})",
                join.kind,
                name(p),
                list(&missing(p, &written[p]))
            )));
        }
    } else {
        for i in [0, 1] {
            if !at_most_one(i) && !key_in_sink(i) {
                return Err(SqlError::Unsupported(format!(
                    "the primary key of sink '{sink_name}' must identify each output row: '{}' can match several rows of '{}', so either equate its whole key in ON (missing: {}) or write its key columns, selected as they are, into the sink's primary key (missing: {})",
                    name(i),
                    name(1 - i),
                    list(&missing(i, &on_columns[i])),
                    list(&missing(i, &written[i]))
                )));
            }
        }
    }
    let shape = format!("{} of two streams", join.kind);
    Ok(JoinPlan {
        left,
        right,
        sink,
        context,
        left_ref,
        right_ref,
        kind: join.kind,
        pairs,
        query,
        mapping,
        sink_key,
        shape,
    })
}
