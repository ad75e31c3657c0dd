//! What a job statement asks for, read from its syntax: the sink, the
//! streamed source, lookup tables, whether it aggregates, and the query that
//! runs over each batch of changes. Everything that cannot be maintained
//! from a stream of changes is refused here with a message naming it; the
//! checks that need the tables (sink keys, merge functions, the source's
//! changelog) are in `plan.rs`.
//!
//! Shapes accepted:
//! - per-row: `SELECT exprs FROM src [WHERE ...]`: each change row becomes
//!   a sink row of the same kind (`+I`, `-U`, `+U`, `-D`);
//! - lookup joins: `FROM src [AS s] [LEFT] JOIN dim FOR SYSTEM_TIME AS OF
//!   <any expr> [AS d] ON ...` (Flink's syntax): the dimension is read at its
//!   latest snapshot whenever a batch of changes is processed;
//! - joins of two streams: a plain `[INNER | LEFT | RIGHT] JOIN` of two
//!   tables (read in `join/analyze.rs`, run by `join/`);
//! - aggregates: `SELECT keys, sum(x), count(*), count(x), min(x), max(x)
//!   FROM src [WHERE ...] GROUP BY keys`: each batch of changes is folded
//!   into one row per group holding its *change* (sum/count of retracted
//!   rows count negatively), which the sink's aggregation merge engine adds;
//! - window aggregates: `SELECT window_start, window_end, keys, <any
//!   aggregates> FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), size)) [WHERE
//!   ...] GROUP BY window_start, window_end, keys` (or HOP): the window item
//!   is replaced by the source table, which the job fills with the rows of
//!   the windows that close (see `window.rs`).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, DuplicateTreatment, ExcludeSelectItem, Expr as SqlExpr, Function,
    FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, GroupByExpr, Ident,
    JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, TableObject, TableVersion,
    WildcardAdditionalOptions,
};
use datafusion::sql::sqlparser::parser::Parser;

use super::dialect::JobDialect;
use super::join::analyze::{read_stream_join, StreamJoin};
use super::window::{self, WindowCall};
use crate::statement_text::{extract_options_hint, normalize};
use tidelake_sql::CATALOG_NAME;
use tidelake_sql::{Result, SqlError};

/// Hidden columns of the changes a job's query reads: the row kind byte,
/// its sign (+1 adds, -1 retracts) and the row's position in the batch.
pub(crate) const KIND_COLUMN: &str = "__tidelake_kind";
pub(crate) const SIGN_COLUMN: &str = "__tidelake_sign";
pub(crate) const SEQ_COLUMN: &str = "__tidelake_seq";

pub(crate) const LATER: &str = "planned for a later change";
/// How to write a window instead of Flink's older group-window syntax.
const WINDOW_SYNTAX: &str = "write windows as FROM TABLE(TUMBLE(TABLE db.src, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) (or HOP(TABLE db.src, DESCRIPTOR(ts), slide, size)) and GROUP BY window_start, window_end, ...";

/// A table as the statement names it (identifiers normalized).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableName {
    pub database: Option<String>,
    pub table: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.database {
            Some(db) => write!(f, "{db}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// The aggregate functions a job maintains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggKind {
    Sum,
    Count,
    Min,
    Max,
}

impl AggKind {
    /// The sink field's `aggregate-function` that combines its changes.
    pub fn sink_function(self) -> &'static str {
        match self {
            AggKind::Sum | AggKind::Count => "sum",
            AggKind::Min => "min",
            AggKind::Max => "max",
        }
    }

    /// Whether a retracted row can be taken back out of it.
    pub fn retractable(self) -> bool {
        matches!(self, AggKind::Sum | AggKind::Count)
    }
}

/// What an output column of an aggregate job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// A group key (or an expression of the keys).
    Key,
    /// A maintained aggregate; `text` is the call as written.
    Agg { kind: AggKind, text: String },
}

/// How a lookup join keeps stream rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LookupKind {
    Inner,
    Left,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lookup {
    pub table: TableName,
    pub kind: LookupKind,
}

/// A job statement, read.
#[derive(Clone, Debug)]
pub(crate) struct ParsedJob {
    /// Read options of the source from a `/*+ OPTIONS(...) */` hint.
    pub hint_options: BTreeMap<String, String>,
    pub sink: TableName,
    /// `INSERT INTO sink (a, b) ...`: the columns written, in order.
    pub insert_columns: Option<Vec<String>>,
    pub source: TableName,
    /// The name the query gives the source's columns: its alias, or its name.
    pub source_qualifier: String,
    pub lookups: Vec<Lookup>,
    /// The statement as written without its `FOR SYSTEM_TIME AS OF`
    /// clauses: planned once to check it against the tables.
    pub insert: Statement,
    /// Its SELECT.
    pub query: Query,
    /// `Some` for an aggregate: what each output column is.
    pub aggregate: Option<Vec<Output>>,
    /// The SELECT run over each batch of changes: per-row jobs select the
    /// hidden kind and position first; aggregates sum signed values; window
    /// aggregates run as written over the rows of the closing windows.
    pub exec_query: Query,
    /// `Some` for a window aggregate (`aggregate` is then `None`).
    pub window: Option<WindowCall>,
    /// `Some` for a join of two streams (`source` is its left table); the
    /// query then runs as written (see `join/`).
    pub stream_join: Option<StreamJoin>,
}

pub(crate) fn refuse(what: impl std::fmt::Display) -> SqlError {
    SqlError::Unsupported(format!("a job cannot run {what}"))
}

/// `db.t`, `t` or `tidelake.db.t`.
pub(crate) fn table_name(name: &ObjectName) -> Result<TableName> {
    let parts = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(normalize(i)),
            ObjectNamePart::Function(_) => Err(refuse("a computed table name")),
        })
        .collect::<Result<Vec<_>>>()?;
    match parts.as_slice() {
        [table] => Ok(TableName {
            database: None,
            table: table.clone(),
        }),
        [db, table] => Ok(TableName {
            database: Some(db.clone()),
            table: table.clone(),
        }),
        [catalog, db, table] if catalog == CATALOG_NAME => Ok(TableName {
            database: Some(db.clone()),
            table: table.clone(),
        }),
        [catalog, _, _] => Err(SqlError::UndefinedTable(format!(
            "{name} (catalog '{catalog}' is not '{CATALOG_NAME}')"
        ))),
        _ => Err(SqlError::Plan(format!("'{name}' is not a table name"))),
    }
}

/// The function name of a call, lowercased (`None` when qualified).
fn function_name(f: &Function) -> Option<String> {
    match f.name.0.as_slice() {
        [ObjectNamePart::Identifier(i)] => Some(normalize(i)),
        _ => None,
    }
}

const WINDOW_FUNCTIONS: &[&str] = &["tumble", "hop", "session", "cumulate"];

/// Reads a job statement; `is_aggregate` says whether a (lowercase)
/// function name is an aggregate function.
pub(crate) fn parse_job(sql: &str, is_aggregate: &dyn Fn(&str) -> bool) -> Result<ParsedJob> {
    let (sql, hint_options) = extract_options_hint(sql)?;
    let sql = window::strip_table_arguments(&sql);
    let mut statements = Parser::parse_sql(&JobDialect::default(), &sql)?;
    if statements.len() != 1 {
        return Err(SqlError::Plan(format!(
            "a job is exactly one INSERT INTO ... SELECT statement, not {}",
            statements.len()
        )));
    }
    let mut statement = statements.remove(0);
    let Statement::Insert(insert) = &mut statement else {
        return Err(SqlError::Unsupported(
            "a job is INSERT INTO db.sink SELECT ... FROM db.source ...; to print the changes of a SELECT, run `tidelake stream` without --job".into(),
        ));
    };
    if insert.overwrite {
        return Err(refuse(
            "INSERT OVERWRITE (it would replace the sink at every commit); use INSERT INTO",
        ));
    }
    if insert.on.is_some() || insert.returning.is_some() || insert.partitioned.is_some() {
        return Err(refuse(
            "INSERT with ON CONFLICT, RETURNING or PARTITION clauses",
        ));
    }
    if insert.replace_into || insert.or.is_some() || !insert.assignments.is_empty() {
        return Err(refuse("this form of INSERT"));
    }
    let TableObject::TableName(sink_name) = &insert.table else {
        return Err(refuse("an INSERT into a table function"));
    };
    let sink = table_name(sink_name)?;
    let insert_columns = if insert.columns.is_empty() {
        None
    } else {
        Some(
            insert
                .columns
                .iter()
                .map(|c| match c.0.as_slice() {
                    [ObjectNamePart::Identifier(i)] => Ok(normalize(i)),
                    _ => Err(SqlError::Plan(format!("'{c}' is not a column name"))),
                })
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let Some(query) = insert.source.as_mut() else {
        return Err(SqlError::Plan(
            "a job's INSERT needs a SELECT over its source".into(),
        ));
    };
    let read = read_query(query, is_aggregate)?;
    let query = (**query).clone();
    let exec_query = match (&read.window, &read.aggregate) {
        (Some(_), _) => query.clone(),
        (None, Some(outputs)) => aggregate_exec_query(&query, outputs, &read.source_qualifier)?,
        (None, None) => per_row_exec_query(&query, &read.source_qualifier)?,
    };
    Ok(ParsedJob {
        hint_options,
        sink,
        insert_columns,
        source: read.source,
        source_qualifier: read.source_qualifier.to_string(),
        lookups: read.lookups,
        query,
        insert: statement,
        aggregate: read.aggregate,
        exec_query,
        window: read.window,
        stream_join: read.stream_join,
    })
}

struct ReadQuery {
    source: TableName,
    source_qualifier: ObjectName,
    lookups: Vec<Lookup>,
    aggregate: Option<Vec<Output>>,
    window: Option<WindowCall>,
    stream_join: Option<StreamJoin>,
}

/// Checks the SELECT and removes its `FOR SYSTEM_TIME AS OF` clauses.
fn read_query(query: &mut Query, is_aggregate: &dyn Fn(&str) -> bool) -> Result<ReadQuery> {
    if query.with.is_some() {
        return Err(refuse("a WITH clause; write the query without it"));
    }
    if query.order_by.is_some() {
        return Err(refuse(
            "ORDER BY (a stream has no end to sort; the sink's key orders it)",
        ));
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return Err(refuse("LIMIT / OFFSET / FETCH (a stream has no end)"));
    }
    if !query.locks.is_empty()
        || query.for_clause.is_some()
        || query.settings.is_some()
        || query.format_clause.is_some()
        || !query.pipe_operators.is_empty()
    {
        return Err(refuse("this query clause"));
    }
    let select = match query.body.as_mut() {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { op, .. } => {
            return Err(refuse(format!(
                "a set operation ({op}); run one job per SELECT into the same sink"
            )))
        }
        SetExpr::Values(_) => {
            return Err(refuse(
                "INSERT ... VALUES (a job reads a source table); use tidelake sql",
            ))
        }
        _ => return Err(refuse("this kind of query (a job is INSERT ... SELECT)")),
    };
    if select.distinct.is_some() {
        return Err(refuse(
            "DISTINCT (it needs every row seen so far); give the sink a primary key instead",
        ));
    }
    if select.having.is_some() {
        return Err(refuse(
            "HAVING (a group's condition changes as its aggregates do); filter when reading the sink",
        ));
    }
    if select.qualify.is_some() || !select.named_window.is_empty() {
        return Err(refuse(format!(
            "window clauses (QUALIFY, WINDOW); for event-time windows, {WINDOW_SYNTAX}"
        )));
    }
    if select.top.is_some()
        || select.into.is_some()
        || !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.connect_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || select.value_table_mode.is_some()
        || select.exclude.is_some()
    {
        return Err(refuse("this SELECT clause"));
    }
    let from = match select.from.as_mut_slice() {
        [from] => from,
        [] => return Err(refuse("a SELECT without FROM (a job reads a source table)")),
        _ => {
            return Err(refuse(
                "a query over several tables in FROM; write a join of two streams as FROM a [LEFT] JOIN b ON a.x = b.y, or a lookup join as JOIN dim FOR SYSTEM_TIME AS OF PROCTIME() ON ..."
            ))
        }
    };
    // A window item reads as its table; the job fills that with the
    // windows' rows.
    let mut window = None;
    if let TableFactor::TableFunction { expr, alias } = &from.relation {
        let call = window::parse_window_call(expr)?;
        if !from.joins.is_empty() {
            return Err(refuse(format!(
                "a window over a join ({}): aggregate the windows of one table",
                call.spec.describe()
            )));
        }
        from.relation = window::source_item(&call, alias)?;
        window = Some(call);
    }
    let (source, source_qualifier) = match &from.relation {
        TableFactor::Table {
            name,
            alias,
            args: None,
            version: None,
            ..
        } => (
            table_name(name)?,
            match alias {
                Some(a) => ObjectName::from(vec![a.name.clone()]),
                None => name.clone(),
            },
        ),
        TableFactor::Table {
            version: Some(_), ..
        } => {
            return Err(refuse(
                "a versioned stream (FOR SYSTEM_TIME AS OF / VERSION AS OF belongs to the looked-up table of a join, not to the streamed one)",
            ))
        }
        TableFactor::Table { name, .. } => {
            let fname = name.to_string().to_lowercase();
            if WINDOW_FUNCTIONS.iter().any(|w| fname.ends_with(w)) {
                return Err(refuse(format!("{name}(...) as a table: {WINDOW_SYNTAX}")));
            }
            return Err(refuse(format!("a table function ({name}) as its source")));
        }
        TableFactor::Derived { .. } => {
            return Err(refuse(
                "a subquery in FROM; stream the table itself and put the conditions in WHERE",
            ))
        }
        _ => return Err(refuse("this kind of FROM item (a job streams one table)")),
    };
    let mut lookups = Vec::new();
    let stream_join = read_stream_join(&from.joins, &source)?;
    for join in &mut from.joins {
        if stream_join.is_some() {
            break;
        }
        let constraint = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => (LookupKind::Inner, c),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (LookupKind::Left, c),
            other => {
                let kind = match other {
                    JoinOperator::Right(_) | JoinOperator::RightOuter(_) => "RIGHT JOIN",
                    JoinOperator::FullOuter(_) => "FULL JOIN",
                    JoinOperator::CrossJoin(_) => "CROSS JOIN",
                    JoinOperator::Semi(_)
                    | JoinOperator::LeftSemi(_)
                    | JoinOperator::RightSemi(_) => "SEMI JOIN",
                    JoinOperator::Anti(_)
                    | JoinOperator::LeftAnti(_)
                    | JoinOperator::RightAnti(_) => "ANTI JOIN",
                    _ => "this join",
                };
                return Err(refuse(format!(
                    "a {kind}: a lookup join is [LEFT] JOIN dim FOR SYSTEM_TIME AS OF PROCTIME() ON ..., with the stream on the left"
                )));
            }
        };
        let (kind, constraint) = constraint;
        if matches!(constraint, JoinConstraint::Natural | JoinConstraint::None) {
            return Err(refuse(
                "a join without ON or USING (a lookup join matches on a condition)",
            ));
        }
        let TableFactor::Table {
            name,
            args: None,
            version,
            ..
        } = &mut join.relation
        else {
            return Err(refuse(
                "a join with a subquery or table function; join a table FOR SYSTEM_TIME AS OF PROCTIME()",
            ));
        };
        match version.take() {
            Some(TableVersion::ForSystemTimeAsOf(_)) => {}
            None => {
                return Err(refuse(format!(
                    "a join of two streams ({source} with {name}): {LATER}; for a lookup join against the current version of {name}, write JOIN {name} FOR SYSTEM_TIME AS OF PROCTIME() ..."
                )))
            }
            Some(_) => {
                return Err(refuse(format!(
                    "time travel on {name}: a lookup join reads the latest version (FOR SYSTEM_TIME AS OF PROCTIME())"
                )))
            }
        }
        lookups.push(Lookup {
            table: table_name(name)?,
            kind,
        });
    }
    check_expressions(query, is_aggregate)?;
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(SqlError::Internal("the job's SELECT changed shape".into()));
    };
    let grouped = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(refuse("GROUP BY ... WITH ROLLUP / CUBE / TOTALS"));
            }
            for e in exprs {
                if matches!(
                    e,
                    SqlExpr::Rollup(_) | SqlExpr::Cube(_) | SqlExpr::GroupingSets(_)
                ) {
                    return Err(refuse("GROUPING SETS / ROLLUP / CUBE"));
                }
            }
            !exprs.is_empty()
        }
        GroupByExpr::All(_) => return Err(refuse("GROUP BY ALL; name the group columns")),
    };
    let has_aggregate = select.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            contains_aggregate(e, is_aggregate)
        }
        _ => false,
    });
    if let Some(call) = &window {
        window::check_window_grouping(select, call)?;
        return Ok(ReadQuery {
            source,
            source_qualifier,
            lookups,
            aggregate: None,
            window,
            stream_join: None,
        });
    }
    let aggregate = if grouped || has_aggregate {
        if !grouped {
            return Err(refuse(
                "an aggregate without GROUP BY: the sink needs a key per group; group by a column (or by a constant column you select)",
            ));
        }
        let mut outputs = Vec::new();
        for (i, item) in select.projection.iter().enumerate() {
            let expr = match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => {
                    return Err(refuse(
                        "SELECT * in an aggregate; name the group columns and aggregates",
                    ))
                }
            };
            outputs.push(classify_output(i + 1, expr, is_aggregate)?);
        }
        Some(outputs)
    } else {
        None
    };
    if aggregate.is_some() {
        if let Some(join) = &stream_join {
            return Err(refuse(format!(
                "aggregates over a join of two streams ({source} with {}); write the join into a table with a job, and aggregate that table with another",
                join.right
            )));
        }
    }
    Ok(ReadQuery {
        source,
        source_qualifier,
        lookups,
        aggregate,
        window: None,
        stream_join,
    })
}

/// Refuses window functions, subqueries and window table functions anywhere.
fn check_expressions(query: &Query, is_aggregate: &dyn Fn(&str) -> bool) -> Result<()> {
    let flow = visit_expressions(query, |e| {
        let problem = match e {
            SqlExpr::Function(f) if f.over.is_some() => Some(format!(
                "window functions ({}(...) OVER ...), which need every row seen so far; for event-time windows, {WINDOW_SYNTAX}",
                f.name
            )),
            SqlExpr::Function(f)
                if function_name(f).is_some_and(|n| WINDOW_FUNCTIONS.contains(&n.as_str())) =>
            {
                Some(format!(
                    "the group window {}(...): {WINDOW_SYNTAX}",
                    f.name
                ))
            }
            SqlExpr::Function(f)
                if function_name(f).is_some_and(|n| is_aggregate(&n))
                    && (!f.within_group.is_empty() || f.null_treatment.is_some()) =>
            {
                Some(format!("{}(...) WITHIN GROUP / IGNORE NULLS", f.name))
            }
            SqlExpr::Subquery(_) | SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. } => Some(
                "subqueries (they would be evaluated per batch of changes, not over the tables)"
                    .to_string(),
            ),
            _ => None,
        };
        match problem {
            Some(p) => ControlFlow::Break(refuse(p)),
            None => ControlFlow::Continue(()),
        }
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn contains_aggregate(expr: &SqlExpr, is_aggregate: &dyn Fn(&str) -> bool) -> bool {
    visit_expressions(expr, |e| match e {
        SqlExpr::Function(f) if function_name(f).is_some_and(|n| is_aggregate(&n)) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// The single argument of an aggregate call.
fn single_arg(f: &Function) -> Option<&FunctionArgExpr> {
    match &f.args {
        FunctionArguments::List(FunctionArgumentList { args, clauses, .. })
            if clauses.is_empty() =>
        {
            match args.as_slice() {
                [FunctionArg::Unnamed(arg)] => Some(arg),
                _ => None,
            }
        }
        _ => None,
    }
}

fn classify_output(
    position: usize,
    expr: &SqlExpr,
    is_aggregate: &dyn Fn(&str) -> bool,
) -> Result<Output> {
    let mut inner = expr;
    while let SqlExpr::Nested(e) = inner {
        inner = e;
    }
    if let SqlExpr::Function(f) = inner {
        if let Some(name) = function_name(f).filter(|n| is_aggregate(n)) {
            let kind = match name.as_str() {
                "sum" => AggKind::Sum,
                "count" => AggKind::Count,
                "min" => AggKind::Min,
                "max" => AggKind::Max,
                "avg" | "mean" => {
                    return Err(refuse(format!(
                        "{f}: an average cannot be maintained in one sink column; write sum(...) and count(...) into two 'sum' columns and divide when reading"
                    )))
                }
                _ => {
                    return Err(refuse(format!(
                        "{f}: only sum, count, min and max can be maintained from a stream of changes"
                    )))
                }
            };
            if let FunctionArguments::List(list) = &f.args {
                if list.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
                    return Err(refuse(format!(
                        "{f}: DISTINCT aggregates need every value seen so far"
                    )));
                }
            }
            let arg = single_arg(f)
                .ok_or_else(|| refuse(format!("{f}: a maintained aggregate takes one argument")))?;
            if kind != AggKind::Count && !matches!(arg, FunctionArgExpr::Expr(_)) {
                return Err(SqlError::Plan(format!("{f} needs a column or expression")));
            }
            return Ok(Output::Agg {
                kind,
                text: f.to_string(),
            });
        }
    }
    if contains_aggregate(expr, is_aggregate) {
        return Err(refuse(format!(
            "output column {position} ({expr}): an expression over aggregates cannot be maintained; select the aggregate itself (the sink column's type applies) and compute the rest when reading"
        )));
    }
    Ok(Output::Key)
}

fn parse_expr(text: &str) -> Result<SqlExpr> {
    Ok(Parser::new(&JobDialect::default())
        .try_with_sql(text)?
        .parse_expr()?)
}

fn hidden(qualifier: &ObjectName, column: &str) -> SqlExpr {
    let mut parts: Vec<Ident> = qualifier
        .0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.clone()),
            ObjectNamePart::Function(_) => None,
        })
        .collect();
    parts.push(Ident::new(column));
    SqlExpr::CompoundIdentifier(parts)
}

fn select_mut(query: &mut Query) -> Result<&mut datafusion::sql::sqlparser::ast::Select> {
    match query.body.as_mut() {
        SetExpr::Select(s) => Ok(s),
        _ => Err(SqlError::Internal("a job's query is not a SELECT".into())),
    }
}

/// Leaves the hidden columns out of a wildcard over the stream.
fn exclude_hidden(options: &mut WildcardAdditionalOptions) {
    let mut names: Vec<ObjectName> = match options.opt_exclude.take() {
        Some(ExcludeSelectItem::Single(n)) => vec![n],
        Some(ExcludeSelectItem::Multiple(ns)) => ns,
        None => Vec::new(),
    };
    for column in [KIND_COLUMN, SIGN_COLUMN, SEQ_COLUMN] {
        names.push(ObjectName::from(vec![Ident::new(column)]));
    }
    options.opt_exclude = Some(ExcludeSelectItem::Multiple(names));
}

/// `SELECT kind, seq, <the user's items> ...`, wildcards without hidden columns.
fn per_row_exec_query(query: &Query, qualifier: &ObjectName) -> Result<Query> {
    let mut exec = query.clone();
    let select = select_mut(&mut exec)?;
    for item in &mut select.projection {
        match item {
            SelectItem::Wildcard(options) => exclude_hidden(options),
            SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(n),
                options,
            ) if n == qualifier => exclude_hidden(options),
            _ => {}
        }
    }
    select
        .projection
        .insert(0, SelectItem::UnnamedExpr(hidden(qualifier, SEQ_COLUMN)));
    select
        .projection
        .insert(0, SelectItem::UnnamedExpr(hidden(qualifier, KIND_COLUMN)));
    Ok(exec)
}

/// Each maintained aggregate over signed values: `sum(x)` adds `-x` for a
/// retracted row, `count` becomes a sum of signs. Rewritten outputs get a
/// name of their own (two counts would otherwise both be `sum(sign)`).
fn aggregate_exec_query(
    query: &Query,
    outputs: &[Output],
    qualifier: &ObjectName,
) -> Result<Query> {
    let mut exec = query.clone();
    let sign = hidden(qualifier, SIGN_COLUMN).to_string();
    let select = select_mut(&mut exec)?;
    for (i, (item, output)) in select.projection.iter_mut().zip(outputs).enumerate() {
        let Output::Agg { kind, .. } = output else {
            continue;
        };
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e.clone(), Ident::new(format!("__tidelake_out_{i}"))),
            SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), alias.clone()),
            _ => continue,
        };
        let expr = signed_aggregate(expr, *kind, &sign)?;
        *item = SelectItem::ExprWithAlias { expr, alias };
    }
    Ok(exec)
}

fn signed_aggregate(mut expr: SqlExpr, kind: AggKind, sign: &str) -> Result<SqlExpr> {
    while let SqlExpr::Nested(inner) = expr {
        expr = *inner;
    }
    let SqlExpr::Function(mut f) = expr else {
        return Err(SqlError::Internal(format!(
            "{expr} is not an aggregate call"
        )));
    };
    let arg = match single_arg(&f) {
        Some(FunctionArgExpr::Expr(e)) => Some(e.to_string()),
        _ => None,
    };
    let new_arg = match (kind, arg) {
        (AggKind::Sum, Some(x)) => format!("CASE WHEN {sign} < 0 THEN -({x}) ELSE {x} END"),
        (AggKind::Count, Some(x)) => format!("CASE WHEN ({x}) IS NULL THEN 0 ELSE {sign} END"),
        (AggKind::Count, None) => sign.to_string(),
        // min and max run on insert-only changes as they are.
        _ => return Ok(SqlExpr::Function(f)),
    };
    f.name = ObjectName::from(vec![Ident::new("sum")]);
    if let FunctionArguments::List(list) = &mut f.args {
        list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(parse_expr(
            &new_arg,
        )?))];
    }
    Ok(SqlExpr::Function(f))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn is_aggregate(name: &str) -> bool {
        [
            "sum",
            "count",
            "min",
            "max",
            "avg",
            "mean",
            "median",
            "array_agg",
        ]
        .contains(&name)
    }

    /// Reads a job statement with a fixed list of aggregate functions.
    pub(crate) fn parse(sql: &str) -> Result<ParsedJob> {
        parse_job(sql, &is_aggregate)
    }

    /// Asserts that a statement is refused with every needle in its message.
    pub(crate) fn refused(sql: &str, needles: &[&str]) {
        let message = match parse(sql) {
            Ok(_) => panic!("accepted: {sql}"),
            Err(e) => e.to_string(),
        };
        for needle in needles {
            assert!(
                message.contains(needle),
                "{sql}\n  gave: {message}\n  missing: {needle}"
            );
        }
    }

    #[test]
    fn per_row_jobs_select_the_hidden_kind_and_position_first() {
        let job =
            parse("INSERT INTO db.big (id, v2) SELECT id, v * 2 FROM db.src WHERE v > 1").unwrap();
        assert_eq!(job.sink.to_string(), "db.big");
        assert_eq!(job.source.to_string(), "db.src");
        assert_eq!(job.insert_columns, Some(vec!["id".into(), "v2".into()]));
        assert!(job.aggregate.is_none() && job.lookups.is_empty());
        assert_eq!(
            job.exec_query.to_string(),
            "SELECT db.src.__tidelake_kind, db.src.__tidelake_seq, id, v * 2 FROM db.src WHERE v > 1"
        );
        let star = parse("INSERT INTO s SELECT * FROM Src").unwrap();
        assert_eq!(star.source.table, "src");
        assert_eq!(
            star.exec_query.to_string(),
            "SELECT Src.__tidelake_kind, Src.__tidelake_seq, * EXCLUDE (__tidelake_kind, __tidelake_sign, __tidelake_seq) FROM Src"
        );
    }

    #[test]
    fn lookup_joins_are_marked_for_system_time_and_read_unversioned() {
        let job = parse(
            "INSERT INTO db.enriched SELECT o.id, c.name FROM db.orders AS o \
             LEFT JOIN db.customers FOR SYSTEM_TIME AS OF PROCTIME() AS c ON o.cid = c.id \
             JOIN db.regions FOR SYSTEM_TIME AS OF o.ts r ON c.region = r.id",
        )
        .unwrap();
        assert_eq!(job.source_qualifier, "o");
        assert_eq!(
            job.lookups,
            vec![
                Lookup {
                    table: TableName {
                        database: Some("db".into()),
                        table: "customers".into()
                    },
                    kind: LookupKind::Left
                },
                Lookup {
                    table: TableName {
                        database: Some("db".into()),
                        table: "regions".into()
                    },
                    kind: LookupKind::Inner
                },
            ]
        );
        let text = job.insert.to_string();
        assert!(!text.contains("SYSTEM_TIME"), "{text}");
        assert!(job
            .exec_query
            .to_string()
            .starts_with("SELECT o.__tidelake_kind, o.__tidelake_seq, o.id"));
    }

    #[test]
    fn aggregates_sum_signed_values() {
        let job = parse(
            "INSERT INTO db.per_k /*+ OPTIONS('scan.mode'='latest') */ SELECT k, sum(v), count(*), count(v) AS n, max(v) \
             FROM db.src WHERE v > 0 GROUP BY k",
        )
        .unwrap();
        assert_eq!(job.hint_options["scan.mode"], "latest");
        let kinds: Vec<Option<AggKind>> = job
            .aggregate
            .as_ref()
            .unwrap()
            .iter()
            .map(|o| match o {
                Output::Key => None,
                Output::Agg { kind, .. } => Some(*kind),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                None,
                Some(AggKind::Sum),
                Some(AggKind::Count),
                Some(AggKind::Count),
                Some(AggKind::Max)
            ]
        );
        assert_eq!(
            job.exec_query.to_string(),
            "SELECT k, \
             sum(CASE WHEN db.src.__tidelake_sign < 0 THEN -(v) ELSE v END) AS __tidelake_out_1, \
             sum(db.src.__tidelake_sign) AS __tidelake_out_2, \
             sum(CASE WHEN (v) IS NULL THEN 0 ELSE db.src.__tidelake_sign END) AS n, \
             max(v) AS __tidelake_out_4 \
             FROM db.src WHERE v > 0 GROUP BY k"
        );
        assert_eq!(AggKind::Count.sink_function(), "sum");
        assert!(!AggKind::Min.retractable());
    }

    #[test]
    fn window_items_read_as_their_table_and_keep_any_aggregate() {
        let job = parse(
            "INSERT INTO db.per_min SELECT window_start, window_end, page, avg(bytes) \
             FROM TABLE(TUMBLE(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) AS w \
             GROUP BY window_start, window_end, page",
        )
        .unwrap();
        assert_eq!(job.source.to_string(), "db.clicks");
        assert_eq!(job.source_qualifier, "w");
        assert!(job.aggregate.is_none());
        assert_eq!(job.window.as_ref().unwrap().spec.size, 60_000_000);
        assert_eq!(
            job.exec_query.to_string(),
            "SELECT window_start, window_end, page, avg(bytes) FROM db.clicks AS w \
             GROUP BY window_start, window_end, page"
        );
        refused(
            "INSERT INTO s SELECT window_start, window_end, count(*) \
             FROM TABLE(HOP(TABLE src, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '90' SECOND)) \
             GROUP BY window_start, window_end",
            &["not a multiple of its slide"],
        );
        refused(
            "INSERT INTO s SELECT * FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' MINUTE))",
            &["without an aggregate"],
        );
    }

    #[test]
    fn what_cannot_be_maintained_is_refused_by_name() {
        refused("SELECT * FROM db.src", &["without --job"]);
        refused(
            "INSERT INTO s SELECT 1; INSERT INTO s SELECT 2",
            &["exactly one"],
        );
        refused(
            "INSERT OVERWRITE s SELECT * FROM src",
            &["INSERT OVERWRITE"],
        );
        refused("INSERT INTO s VALUES (1)", &["VALUES"]);
        refused(
            "INSERT INTO s SELECT * FROM a, b",
            &["several tables", "FOR SYSTEM_TIME AS OF"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a RIGHT JOIN b FOR SYSTEM_TIME AS OF PROCTIME() ON a.id = b.id",
            &["RIGHT JOIN"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a JOIN b VERSION AS OF 3 ON a.id = b.id",
            &["time travel"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a FOR SYSTEM_TIME AS OF PROCTIME()",
            &["versioned stream"],
        );
        refused(
            "INSERT INTO s SELECT id, row_number() OVER (PARTITION BY k ORDER BY id) FROM src",
            &["window functions", "TUMBLE"],
        );
        refused(
            "INSERT INTO s SELECT k, count(*) FROM src GROUP BY k, TUMBLE(ts, INTERVAL '1' MINUTE)",
            &["group window", "FROM TABLE(TUMBLE(TABLE"],
        );
        refused("INSERT INTO s SELECT * FROM src ORDER BY id", &["ORDER BY"]);
        refused("INSERT INTO s SELECT * FROM src LIMIT 3", &["LIMIT"]);
        refused("INSERT INTO s SELECT DISTINCT k FROM src", &["DISTINCT"]);
        refused(
            "INSERT INTO s SELECT k, count(*) FROM src GROUP BY k HAVING count(*) > 1",
            &["HAVING"],
        );
        refused(
            "INSERT INTO s SELECT * FROM a UNION ALL SELECT * FROM b",
            &["set operation"],
        );
        refused(
            "INSERT INTO s WITH x AS (SELECT * FROM src) SELECT * FROM x",
            &["WITH"],
        );
        refused(
            "INSERT INTO s SELECT * FROM (SELECT * FROM src) t",
            &["subquery in FROM"],
        );
        refused(
            "INSERT INTO s SELECT * FROM src WHERE k IN (SELECT k FROM other)",
            &["subqueries"],
        );
        refused(
            "INSERT INTO s SELECT k, avg(v) FROM src GROUP BY k",
            &["avg(v)", "sum(...) and count(...)"],
        );
        refused(
            "INSERT INTO s SELECT k, median(v) FROM src GROUP BY k",
            &["median(v)", "only sum, count, min and max"],
        );
        refused(
            "INSERT INTO s SELECT k, count(DISTINCT v) FROM src GROUP BY k",
            &["count(DISTINCT v)", "DISTINCT aggregates"],
        );
        refused(
            "INSERT INTO s SELECT k, sum(v) + 1 FROM src GROUP BY k",
            &["output column 2", "expression over aggregates"],
        );
        refused(
            "INSERT INTO s SELECT count(*) FROM src",
            &["without GROUP BY"],
        );
        refused(
            "INSERT INTO s SELECT k, count(*) FROM src GROUP BY ROLLUP (k)",
            &["ROLLUP"],
        );
        refused(
            "INSERT INTO s SELECT * , count(*) FROM src GROUP BY k",
            &["SELECT * in an aggregate"],
        );
        refused(
            "INSERT INTO other.db.s SELECT * FROM src",
            &["catalog 'other'"],
        );
    }
}
