//! Tumbling and hopping event-time windows in continuous jobs, written as
//! Flink's windowing table-valued functions:
//!
//! ```sql
//! INSERT INTO db.per_minute
//! SELECT window_start, window_end, page, count(*), sum(bytes)
//! FROM TABLE(TUMBLE(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
//! GROUP BY window_start, window_end, page
//! -- HOP(TABLE db.clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '1' MINUTE): slide, size
//! ```
//!
//! Semantics, independent of how the job batches snapshots or restarts:
//! - The watermark after source snapshot `s` is `W(s)` = the largest event
//!   time of the rows added in snapshots up to `s`, minus the source's
//!   watermark delay (it never decreases).
//! - A window `[start, end)` closes at the first snapshot `s` with
//!   `W(s) >= end`; it is then computed once, in batch, from the source as
//!   of `s` (time travel), and its rows are inserted into the sink. Rows
//!   committed later with an event time in a closed window are late and
//!   never counted; windows without rows produce nothing.
//! - Windows are aligned to the epoch: a tumbling window starts at
//!   `floor(ts / size) * size`; hopping windows start at every multiple of
//!   the slide, and a row belongs to each one with `start <= ts < start + size`.
//!
//! The job keeps no state between steps but the watermark, which it records
//! in the same sink commit as its progress (`tidelake.progress.job.<job>.watermark`,
//! microseconds since the epoch), so a restarted job resumes from both.
//! When the watermark crosses window ends at snapshot `s`, the closing
//! windows' rows are read from the source as of `s` (filtered by event
//! time), each row is repeated once per closing window holding it with
//! `window_start`/`window_end` columns added, and the user's aggregate runs
//! over that relation, registered in place of the `TABLE(TUMBLE(...))` item.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int8Array, RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    ObjectName, Select, TableAlias, TableFactor,
};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use tidelake_engine::RowKind;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{cast as cast_expr, lit, Expr};
use datafusion::prelude::ident;

use super::dialect::JobDialect;
use super::plan::{JobPlan, WindowPlan};
use super::Pending;
use tidelake_sql::watermark::interval_micros;
use tidelake_sql::{Result, SqlError, TidelakeTable};

/// The columns a window adds to its source's rows.
pub(crate) const WINDOW_START: &str = "window_start";
pub(crate) const WINDOW_END: &str = "window_end";

/// The windowing table functions Flink has; only TUMBLE and HOP run here.
const TABLE_FUNCTIONS: &[&str] = &["tumble", "hop", "cumulate", "session"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowKind {
    Tumble,
    Hop,
}

/// A window as the statement declares it; times in microseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WindowSpec {
    pub kind: WindowKind,
    /// The event-time column in DESCRIPTOR(...).
    pub time_column: String,
    pub size: i64,
    /// Equal to `size` for a tumbling window.
    pub slide: i64,
}

/// `a.div_euclid(b)` for a positive `b`: rounds towards negative infinity.
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

impl WindowSpec {
    /// The starts of the windows holding event time `t`, latest first.
    pub fn starts(&self, t: i64) -> impl Iterator<Item = i64> + '_ {
        let last = floor_div(t, self.slide).saturating_mul(self.slide);
        let count = self.size / self.slide;
        (0..count).map(move |i| last.saturating_sub(i.saturating_mul(self.slide)))
    }

    /// Whether a window ends in `(after, upto]` (window ends are multiples
    /// of the slide, since the size is).
    pub fn closes_any(&self, after: Option<i64>, upto: i64) -> bool {
        match after {
            None => true,
            Some(after) => floor_div(upto, self.slide) > floor_div(after, self.slide),
        }
    }

    /// The event times `[low, high)` that can fall in a window ending in
    /// `(after, upto]` (`low` is `None`: no bound).
    pub fn row_range(&self, after: Option<i64>, upto: i64) -> (Option<i64>, i64) {
        (after.map(|a| a.saturating_sub(self.size)), upto)
    }

    pub fn describe(&self) -> String {
        match self.kind {
            WindowKind::Tumble => "tumbling window aggregate".into(),
            WindowKind::Hop => "hopping window aggregate".into(),
        }
    }
}

fn refuse(what: impl std::fmt::Display) -> SqlError {
    SqlError::Unsupported(format!("a job cannot run {what}"))
}

/// sqlparser cannot read `TABLE name` as a function argument, so the
/// `TABLE` keyword right after `TUMBLE(` or `HOP(` is dropped before the
/// statement is parsed (the outer `TABLE(...)` is a table function item it
/// reads). Statements without such a call are returned unchanged.
pub(crate) fn strip_table_arguments(sql: &str) -> String {
    let dialect = JobDialect::default();
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        // The parser reports the error on the original text.
        return sql.to_string();
    };
    let significant = |i: usize| -> Option<usize> {
        (i..tokens.len()).find(|&j| !matches!(tokens[j], Token::Whitespace(_)))
    };
    let mut drop = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Token::Word(w) = token else { continue };
        if w.quote_style.is_some() || !TABLE_FUNCTIONS.contains(&w.value.to_lowercase().as_str()) {
            continue;
        }
        let Some(paren) = significant(i + 1) else {
            continue;
        };
        if tokens[paren] != Token::LParen {
            continue;
        }
        if let Some(table) = significant(paren + 1) {
            if matches!(&tokens[table], Token::Word(t) if t.quote_style.is_none() && t.value.eq_ignore_ascii_case("table"))
            {
                drop.push(table);
            }
        }
    }
    if drop.is_empty() {
        return sql.to_string();
    }
    tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, t)| t.to_string())
        .collect()
}

/// A window table function in FROM, read.
#[derive(Clone, Debug)]
pub(crate) struct WindowCall {
    pub spec: WindowSpec,
    /// The windowed table.
    pub source: ObjectName,
}

fn arguments(call: &datafusion::sql::sqlparser::ast::Function) -> Result<Vec<&SqlExpr>> {
    let FunctionArguments::List(list) = &call.args else {
        return Err(refuse(format!("{call}: a window needs its arguments")));
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            _ => Err(refuse(format!(
                "{call}: write the arguments by position (TABLE t, DESCRIPTOR(ts), INTERVAL ...)"
            ))),
        })
        .collect()
}

fn object_name(expr: &SqlExpr, call: &str) -> Result<ObjectName> {
    match expr {
        SqlExpr::Identifier(i) => Ok(ObjectName::from(vec![i.clone()])),
        SqlExpr::CompoundIdentifier(parts) => Ok(ObjectName::from(parts.clone())),
        _ => Err(refuse(format!(
            "{call}: the first argument of a window is TABLE db.table"
        ))),
    }
}

fn descriptor_column(expr: &SqlExpr, call: &str) -> Result<String> {
    let bad = || {
        refuse(format!(
            "{call}: the second argument of a window is DESCRIPTOR(time_column)"
        ))
    };
    let SqlExpr::Function(f) = expr else {
        return Err(bad());
    };
    if !f.name.to_string().eq_ignore_ascii_case("descriptor") {
        return Err(bad());
    }
    match arguments(f)?.as_slice() {
        [SqlExpr::Identifier(i)] => Ok(crate::statement_text::normalize(i)),
        _ => Err(bad()),
    }
}

/// Reads `TUMBLE(t, DESCRIPTOR(ts), size)` or `HOP(t, DESCRIPTOR(ts),
/// slide, size)`; refuses the other windows by name.
pub(crate) fn parse_window_call(expr: &SqlExpr) -> Result<WindowCall> {
    let SqlExpr::Function(call) = expr else {
        return Err(refuse(format!(
            "TABLE({expr}): only the window functions TUMBLE and HOP are supported as table functions"
        )));
    };
    let name = call.name.to_string().to_lowercase();
    let text = call.to_string();
    let args = arguments(call)?;
    let kind = match name.as_str() {
        "tumble" => WindowKind::Tumble,
        "hop" => WindowKind::Hop,
        "cumulate" => {
            return Err(refuse(format!(
                "CUMULATE windows ({text}); only TUMBLE and HOP windows are supported"
            )))
        }
        "session" => {
            return Err(refuse(format!(
                "SESSION windows ({text}); only TUMBLE and HOP windows are supported"
            )))
        }
        _ => {
            return Err(refuse(format!(
                "the table function {text}; only the window functions TUMBLE and HOP are supported"
            )))
        }
    };
    let expected = match kind {
        WindowKind::Tumble => 3,
        WindowKind::Hop => 4,
    };
    if args.len() > expected {
        return Err(refuse(format!(
            "{text}: window offsets (windows are aligned to the epoch)"
        )));
    }
    if args.len() < expected {
        return Err(SqlError::Plan(format!(
            "{text}: {} takes {expected} arguments: {}",
            name.to_uppercase(),
            match kind {
                WindowKind::Tumble => "TABLE t, DESCRIPTOR(ts), size",
                WindowKind::Hop => "TABLE t, DESCRIPTOR(ts), slide, size",
            }
        )));
    }
    let source = object_name(args[0], &text)?;
    let time_column = descriptor_column(args[1], &text)?;
    let positive = |e: &SqlExpr| -> Result<i64> {
        let micros = interval_micros(e)?;
        if micros <= 0 {
            return Err(SqlError::InvalidParameter(format!(
                "{text}: {e} is not a positive interval"
            )));
        }
        Ok(micros)
    };
    let (size, slide) = match kind {
        WindowKind::Tumble => {
            let size = positive(args[2])?;
            (size, size)
        }
        WindowKind::Hop => (positive(args[3])?, positive(args[2])?),
    };
    if size % slide != 0 {
        return Err(refuse(format!(
            "{text}: a window size that is not a multiple of its slide"
        )));
    }
    Ok(WindowCall {
        spec: WindowSpec {
            kind,
            time_column,
            size,
            slide,
        },
        source,
    })
}

/// The plain table item that replaces the window function in FROM.
pub(crate) fn source_item(call: &WindowCall, alias: &Option<TableAlias>) -> Result<TableFactor> {
    let alias_text = match alias {
        Some(a) if !a.columns.is_empty() => {
            return Err(refuse(format!(
                "a window aliased with column names ({a}); alias the columns in the SELECT"
            )))
        }
        Some(a) => format!(" AS {}", a.name),
        None => String::new(),
    };
    let text = format!("{}{alias_text}", call.source);
    Ok(Parser::new(&JobDialect::default())
        .try_with_sql(&text)?
        .parse_table_factor()?)
}

fn last_ident(expr: &SqlExpr) -> Option<&Ident> {
    match expr {
        SqlExpr::Identifier(i) => Some(i),
        SqlExpr::CompoundIdentifier(parts) => parts.last(),
        _ => None,
    }
}

/// A window query aggregates per window: GROUP BY names both window columns.
pub(crate) fn check_window_grouping(select: &Select, call: &WindowCall) -> Result<()> {
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return Err(refuse("GROUP BY ALL over a window; name the group columns"));
    };
    if exprs.is_empty() {
        return Err(refuse(format!(
            "a window query without an aggregate ({}): group by window_start, window_end (and other columns) and aggregate",
            call.spec.describe()
        )));
    }
    for column in [WINDOW_START, WINDOW_END] {
        let named = exprs
            .iter()
            .any(|e| last_ident(e).is_some_and(|i| crate::statement_text::normalize(i) == column));
        if !named {
            return Err(refuse(format!(
                "a window aggregate that does not GROUP BY {WINDOW_START}, {WINDOW_END}: each window is computed once, so its groups must be per window"
            )));
        }
    }
    Ok(())
}

/// The source's columns followed by `window_start` and `window_end`, of the
/// event-time column's type.
pub(crate) fn windowed_schema(source: &Schema, time_type: &ArrowType) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = source.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(WINDOW_START, time_type.clone(), false)));
    fields.push(Arc::new(Field::new(WINDOW_END, time_type.clone(), false)));
    Arc::new(Schema::new(fields))
}

/// Microseconds in one tick of a timestamp unit (`None`: finer, nanoseconds).
fn unit_tick_micros(unit: &TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => Some(1_000_000),
        TimeUnit::Millisecond => Some(1_000),
        TimeUnit::Microsecond => Some(1),
        TimeUnit::Nanosecond => None,
    }
}

/// Checks that window bounds are whole ticks of the event-time column.
pub(crate) fn check_resolution(spec: &WindowSpec, time_type: &ArrowType) -> Result<()> {
    let ArrowType::Timestamp(unit, _) = time_type else {
        return Err(SqlError::Internal(
            "the event-time column is no timestamp".into(),
        ));
    };
    if let Some(tick) = unit_tick_micros(unit) {
        if spec.size % tick != 0 || spec.slide % tick != 0 {
            return Err(SqlError::InvalidParameter(format!(
                "window size and slide must be whole units of column '{}' ({time_type})",
                spec.time_column
            )));
        }
    }
    Ok(())
}

/// Event times of a timestamp column in microseconds (nanoseconds round
/// down, which keeps every comparison with a whole-microsecond bound).
pub(crate) fn event_micros(column: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let ArrowType::Timestamp(unit, _) = column.data_type() else {
        return Err(SqlError::Internal(format!(
            "the event-time column is {}, not a timestamp",
            column.data_type()
        )));
    };
    fn collect<T: datafusion::arrow::datatypes::ArrowPrimitiveType<Native = i64>>(
        column: &ArrayRef,
        to_micros: impl Fn(i64) -> i64,
    ) -> Vec<Option<i64>> {
        column
            .as_primitive::<T>()
            .iter()
            .map(|v| v.map(&to_micros))
            .collect()
    }
    Ok(match unit {
        TimeUnit::Second => collect::<TimestampSecondType>(column, |v| v.saturating_mul(1_000_000)),
        TimeUnit::Millisecond => {
            collect::<TimestampMillisecondType>(column, |v| v.saturating_mul(1_000))
        }
        TimeUnit::Microsecond => collect::<TimestampMicrosecondType>(column, |v| v),
        TimeUnit::Nanosecond => collect::<TimestampNanosecondType>(column, |v| v.div_euclid(1_000)),
    })
}

/// The largest event time among the rows a change batch adds (`+I`, `+U`):
/// retractions take nothing away from a watermark.
pub(crate) fn max_added_event_time(
    change: &RecordBatch,
    kind_column: &str,
    time_column: &str,
) -> Result<Option<i64>> {
    let times = change.column_by_name(time_column).ok_or_else(|| {
        SqlError::Internal(format!("change batch without column '{time_column}'"))
    })?;
    let kinds = change
        .column_by_name(kind_column)
        .and_then(|c| c.as_any().downcast_ref::<Int8Array>())
        .ok_or_else(|| SqlError::Internal("change batch without a row-kind column".into()))?;
    let times = event_micros(times)?;
    let mut max: Option<i64> = None;
    for (t, kind) in times.iter().zip(kinds.values()) {
        let adds = RowKind::from_byte(*kind).is_some_and(|k| !k.is_retract());
        if let (Some(t), true) = (t, adds) {
            max = Some(max.map_or(*t, |m| m.max(*t)));
        }
    }
    Ok(max)
}

/// The rows of `batch` in the windows ending in `(after, upto]`, each once
/// per such window, with `window_start`/`window_end` appended (`schema`:
/// [`windowed_schema`]).
pub(crate) fn assign_windows(
    batch: &RecordBatch,
    spec: &WindowSpec,
    after: Option<i64>,
    upto: i64,
    schema: &SchemaRef,
) -> Result<Option<RecordBatch>> {
    let times = batch.column_by_name(&spec.time_column).ok_or_else(|| {
        SqlError::Internal(format!(
            "source batch without column '{}'",
            spec.time_column
        ))
    })?;
    let time_type = times.data_type().clone();
    let ArrowType::Timestamp(_, zone) = &time_type else {
        return Err(SqlError::Internal(
            "the event-time column is no timestamp".into(),
        ));
    };
    let mut rows: Vec<u32> = Vec::new();
    let mut starts: Vec<i64> = Vec::new();
    for (row, t) in event_micros(times)?.into_iter().enumerate() {
        let Some(t) = t else { continue };
        for start in spec.starts(t) {
            let end = start.saturating_add(spec.size);
            if end <= upto && after.is_none_or(|a| end > a) {
                rows.push(row as u32);
                starts.push(start);
            }
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let picked = take_record_batch(batch, &UInt32Array::from(rows))?;
    let bound = |values: Vec<i64>| -> Result<ArrayRef> {
        let micros: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(zone.clone()));
        Ok(cast(&micros, &time_type)?)
    };
    let ends = starts.iter().map(|s| s.saturating_add(spec.size)).collect();
    let mut columns: Vec<ArrayRef> = picked.columns().to_vec();
    columns.push(bound(starts)?);
    columns.push(bound(ends)?);
    Ok(Some(RecordBatch::try_new(schema.clone(), columns)?))
}

/// The sink snapshot property that records a job's watermark: a position
/// of the job's progress owner, fenced and carried like its source's.
pub(crate) fn watermark_key(owner: &tidelake_engine::ProgressOwner) -> String {
    owner.key("watermark")
}

/// Reads a recorded watermark.
pub(crate) fn parse_recorded_watermark(key: &str, value: &str) -> Result<i64> {
    value.trim().parse::<i64>().map_err(|_| {
        SqlError::Corrupt(format!(
            "sink property '{key}' = '{value}' is not a watermark (microseconds since the epoch)"
        ))
    })
}

/// A watermark move at one source snapshot that closes windows: those
/// ending in `(after, upto]`, computed from the source as of `snapshot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClosingStep {
    pub snapshot: i64,
    pub after: Option<i64>,
    pub upto: i64,
}

/// After all changes of source snapshot `snapshot` are read: moves the
/// watermark and notes the windows it closes.
pub(crate) fn advance_watermark(plan: &WindowPlan, pending: &mut Pending, snapshot: i64) {
    let Some(max) = pending.snapshot_max_event.take() else {
        return;
    };
    let candidate = max.saturating_sub(plan.watermark.delay_micros);
    let before = pending.watermark;
    if before.is_some_and(|w| w >= candidate) {
        return;
    }
    pending.watermark = Some(candidate);
    if plan.spec.closes_any(before, candidate) {
        tracing::debug!(snapshot, after = ?before, upto = candidate, "watermark closes windows");
        pending.closing.push(ClosingStep {
            snapshot,
            after: before,
            upto: candidate,
        });
    }
}

/// A timestamp bound as a literal of the event-time column's type.
fn bound_literal(micros: i64, time_type: &ArrowType) -> Expr {
    let zone = match time_type {
        ArrowType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    };
    cast_expr(
        lit(ScalarValue::TimestampMicrosecond(Some(micros), zone)),
        time_type.clone(),
    )
}

/// The sink rows of the windows one step closes: the source as of the
/// step's snapshot, rows of those windows only, through the user's query.
pub(crate) async fn close_windows(
    job: &JobPlan,
    plan: &WindowPlan,
    step: &ClosingStep,
) -> Result<Vec<RecordBatch>> {
    let (low, high) = plan.spec.row_range(step.after, step.upto);
    // Loose by a second on both sides: a cast to a coarser unit rounds,
    // and the exact test is `assign_windows`.
    let time = ident(plan.spec.time_column.as_str());
    let mut filter = time.clone().lt(bound_literal(
        high.saturating_add(1_000_000),
        &plan.time_type,
    ));
    if let Some(low) = low {
        filter = filter.and(time.gt_eq(bound_literal(
            low.saturating_sub(1_000_000),
            &plan.time_type,
        )));
    }
    let as_of = Arc::new(TidelakeTable::new(job.source.clone(), Some(step.snapshot)));
    let rows = job.context.scan(as_of, filter).await?;
    let mut windowed = Vec::new();
    for batch in &rows {
        if let Some(b) = assign_windows(batch, &plan.spec, step.after, step.upto, &plan.schema)? {
            windowed.push(b);
        }
    }
    drop(rows);
    if windowed.is_empty() {
        return Ok(Vec::new());
    }
    let rows_in: usize = windowed.iter().map(|b| b.num_rows()).sum();
    job.context
        .set_source(&job.source_ref, plan.schema.clone(), windowed)?;
    let output = job.context.run(&job.exec).await;
    // The memory table holds the rows until replaced: drop them now.
    job.context
        .set_source(&job.source_ref, plan.schema.clone(), Vec::new())?;
    let mut sink_rows = Vec::new();
    for batch in output?.iter().filter(|b| b.num_rows() > 0) {
        sink_rows.push(job.mapping.sink_batch(batch, 0)?);
    }
    tracing::debug!(
        snapshot = step.snapshot,
        rows_in,
        outputs = sink_rows.iter().map(|b| b.num_rows()).sum::<usize>(),
        "windows closed"
    );
    Ok(sink_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use proptest::prelude::*;

    const S: i64 = 1_000_000;

    fn tumble(size: i64) -> WindowSpec {
        WindowSpec {
            kind: WindowKind::Tumble,
            time_column: "ts".into(),
            size,
            slide: size,
        }
    }

    fn hop(slide: i64, size: i64) -> WindowSpec {
        WindowSpec {
            kind: WindowKind::Hop,
            time_column: "ts".into(),
            size,
            slide,
        }
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch_on_both_sides_of_it() {
        let w = tumble(60 * S);
        assert_eq!(w.starts(0).collect::<Vec<_>>(), [0]);
        assert_eq!(w.starts(59 * S).collect::<Vec<_>>(), [0]);
        assert_eq!(w.starts(60 * S).collect::<Vec<_>>(), [60 * S]);
        assert_eq!(w.starts(-1).collect::<Vec<_>>(), [-60 * S]);
        assert_eq!(w.starts(-60 * S).collect::<Vec<_>>(), [-60 * S]);
        assert_eq!(w.starts(-60 * S - 1).collect::<Vec<_>>(), [-120 * S]);
    }

    #[test]
    fn hopping_windows_hold_a_row_once_per_slide_of_their_size() {
        let w = hop(10 * S, 30 * S);
        assert_eq!(w.starts(25 * S).collect::<Vec<_>>(), [20 * S, 10 * S, 0]);
        assert_eq!(
            w.starts(30 * S).collect::<Vec<_>>(),
            [30 * S, 20 * S, 10 * S]
        );
        assert_eq!(
            w.starts(-1).collect::<Vec<_>>(),
            [-10 * S, -20 * S, -30 * S]
        );
        assert!(w.closes_any(None, 0));
        assert!(!w.closes_any(Some(31 * S), 39 * S));
        assert!(w.closes_any(Some(39 * S), 40 * S));
        assert!(w.closes_any(Some(-11 * S), -10 * S));
    }

    proptest! {
        /// Every start is a multiple of the slide, holds `t`, and every
        /// window holding `t` is among them, exactly once.
        #[test]
        fn assignment_is_exactly_the_windows_holding_the_time(
            t in -1_000_000i64..1_000_000,
            slide in 1i64..50,
            factor in 1i64..6,
        ) {
            let w = hop(slide, slide * factor);
            let starts: Vec<i64> = w.starts(t).collect();
            let expected: Vec<i64> = ((t - w.size - slide)..=t)
                .rev()
                .filter(|s| s.rem_euclid(slide) == 0 && *s <= t && t < s + w.size)
                .collect();
            prop_assert_eq!(starts, expected);
        }
    }

    #[test]
    fn table_arguments_are_unwrapped_for_the_parser() {
        assert_eq!(
            strip_table_arguments(
                "SELECT 1 FROM TABLE(TUMBLE(TABLE db.c, DESCRIPTOR(ts), INTERVAL '1' MINUTE))"
            ),
            "SELECT 1 FROM TABLE(TUMBLE( db.c, DESCRIPTOR(ts), INTERVAL '1' MINUTE))"
        );
        assert_eq!(
            strip_table_arguments("select hop ( table t , descriptor(ts))"),
            "select hop (  t , descriptor(ts))"
        );
        let plain = "SELECT \"table\" FROM t -- TUMBLE(TABLE x)";
        assert_eq!(strip_table_arguments(plain), plain);
    }

    fn call(sql: &str) -> Result<WindowCall> {
        let sql = strip_table_arguments(sql);
        let expr = Parser::new(&JobDialect::default())
            .try_with_sql(&sql)
            .unwrap()
            .parse_expr()
            .unwrap();
        parse_window_call(&expr)
    }

    #[test]
    fn window_calls_are_read_and_refused_by_name() {
        let t = call("TUMBLE(TABLE db.clicks, DESCRIPTOR(Ts), INTERVAL '1' MINUTE)").unwrap();
        assert_eq!(t.source.to_string(), "db.clicks");
        assert_eq!(t.spec, tumble(60 * S));
        let h =
            call("HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '1' MINUTE)")
                .unwrap();
        assert_eq!(h.spec, hop(10 * S, 60 * S));
        for (sql, needle) in [
            (
                "SESSION(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)",
                "SESSION windows",
            ),
            (
                "CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' HOUR)",
                "CUMULATE windows",
            ),
            (
                "HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '7' SECOND, INTERVAL '1' MINUTE)",
                "not a multiple of its slide",
            ),
            (
                "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '5' SECOND)",
                "offsets",
            ),
            ("TUMBLE(TABLE t, DESCRIPTOR(ts))", "takes 3 arguments"),
            (
                "TUMBLE(TABLE t, ts, INTERVAL '1' MINUTE)",
                "DESCRIPTOR(time_column)",
            ),
            (
                "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '0' MINUTE)",
                "not a positive",
            ),
            (
                "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MONTH)",
                "no fixed length",
            ),
            ("GENERATE_SERIES(1, 3)", "only the window functions"),
        ] {
            let message = call(sql).unwrap_err().to_string();
            assert!(message.contains(needle), "{sql}: {message}");
        }
    }

    fn batch(times: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                ArrowType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("v", ArrowType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(times.to_vec())),
                Arc::new(Int64Array::from_iter_values(0..times.len() as i64)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_are_repeated_per_closing_window_only() {
        let input = batch(&[Some(5_000), Some(25_000), None, Some(45_000)]);
        let spec = hop(10 * S, 20 * S);
        let time_type = ArrowType::Timestamp(TimeUnit::Millisecond, None);
        let schema = windowed_schema(&input.schema(), &time_type);
        // Windows ending in (20 s, 40 s]: [10, 30) and [20, 40).
        let out = assign_windows(&input, &spec, Some(20 * S), 40 * S, &schema)
            .unwrap()
            .unwrap();
        let v: Vec<i64> = out
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        let starts: Vec<i64> = out
            .column(2)
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec();
        let ends: Vec<i64> = out
            .column(3)
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec();
        assert_eq!(v, [1, 1]);
        assert_eq!(starts, [20_000, 10_000]);
        assert_eq!(ends, [40_000, 30_000]);
        assert!(assign_windows(&input, &spec, Some(40 * S), 45 * S, &schema)
            .unwrap()
            .is_none());
        assert_eq!(spec.row_range(Some(20 * S), 40 * S), (Some(0), 40 * S));
    }

    #[test]
    fn the_watermark_ignores_retractions() {
        let input = batch(&[Some(5_000), Some(99_000), Some(7_000)]);
        let kinds = Int8Array::from(vec![
            RowKind::Insert.to_byte(),
            RowKind::Delete.to_byte(),
            RowKind::UpdateAfter.to_byte(),
        ]);
        let mut columns = input.columns().to_vec();
        columns.push(Arc::new(kinds));
        let mut fields: Vec<Arc<Field>> = input.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("k", ArrowType::Int8, false)));
        let change = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        assert_eq!(
            max_added_event_time(&change, "k", "ts").unwrap(),
            Some(7_000_000)
        );
        let owner = tidelake_engine::ProgressOwner::new("job.j").unwrap();
        assert_eq!(watermark_key(&owner), "tidelake.progress.job.j.watermark");
        assert!(parse_recorded_watermark("k", "x").is_err());
    }
}
