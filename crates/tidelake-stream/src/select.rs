//! Streaming a table's changes through a `SELECT`: the engine's
//! [`ChangeReader`] hands out each snapshot's changes, and the query's
//! projection and filter are applied to them with DataFusion, one batch at a
//! time, with an `_op` column first (`+I`, `-U`, `+U`, `-D`).
//!
//! Only per-row queries make sense over a changelog: `SELECT exprs FROM t
//! [WHERE ...]`. Aggregations, joins, ordering, `DISTINCT` and `LIMIT`
//! would be evaluated per batch, not over the stream, so they are refused.
//!
//! Read options come from the table's options, overlaid by the caller's and
//! then by a Flink-style hint in the statement:
//! `SELECT * FROM t /*+ OPTIONS('scan.mode'='latest', 'consumer-id'='job') */`.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Ident, ObjectNamePart, SelectItem, SetExpr, Statement, TableFactor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tidelake_engine::{ChangeReader, Identifier, StreamOptions};
use tidelake_sql::{Session, SqlError, CATALOG_NAME};

use crate::context::JobContext;
use crate::error::{Result, StreamError};
use crate::row_kinds::row_kinds;
use crate::statement_text::{extract_options_hint, normalize};

/// The change-kind column of streamed rows.
pub const OP_COLUMN: &str = "_op";

/// The changes of one snapshot, after the query's projection and filter.
pub struct ChangeSet {
    pub snapshot_id: i64,
    /// `APPEND`, `COMPACT`, `OVERWRITE` or `ANALYZE`.
    pub commit_kind: String,
    /// `true` for the initial full read of the `-full` modes.
    pub full: bool,
    /// `true` when the snapshot carries no changes for this reader (a
    /// compaction without changelog, an overwrite not read).
    pub skipped: bool,
    pub batches: BoxStream<'static, Result<RecordBatch>>,
}

impl ChangeSet {
    /// Every batch of the snapshot.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        self.batches.try_collect().await
    }
}

/// A running streaming query; see the module documentation.
pub struct ChangeStream {
    reader: ChangeReader,
    context: JobContext,
    table_ref: TableReference,
    input_schema: SchemaRef,
    /// The statement as DataFusion runs it (hint removed, `_op` selected).
    sql: String,
    schema: SchemaRef,
}

impl ChangeStream {
    /// Starts streaming the changes of the table a `SELECT` reads (names
    /// resolve in `session`'s current database). `options` are Paimon read
    /// options (`scan.mode`, `scan.snapshot-id`, `consumer-id`, ...),
    /// overlaid by a hint in the statement.
    pub async fn open(
        session: &Session,
        sql: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<ChangeStream> {
        let (sql, hint_options) = extract_options_hint(sql)?;
        let (statement, name) = rewrite_query(&sql)?;
        let user_sql = sql;
        let database = name
            .database
            .clone()
            .unwrap_or_else(|| session.current_database());
        if name.catalog.as_deref().is_some_and(|c| c != CATALOG_NAME) {
            return Err(SqlError::UndefinedTable(format!(
                "{}.{database}.{}",
                name.catalog.unwrap_or_default(),
                name.table
            ))
            .into());
        }
        let table = session
            .catalog()
            .load_table(&Identifier::new(&database, &name.table))
            .await?;
        let mut merged = table.schema().options.clone();
        merged.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged.extend(hint_options);
        let stream_options = StreamOptions::from_options(&merged)?;

        let mut input_fields = vec![Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false))];
        input_fields.extend(table.arrow_schema().fields().iter().cloned());
        let input_schema = Arc::new(Schema::new(input_fields));

        let context = JobContext::new(&database);
        let table_ref = TableReference::full(CATALOG_NAME, database.clone(), name.table.clone());
        // Plans the query once over no rows: checks it and fixes its schema.
        // The user's own query is checked first: with `_op` added, an
        // aggregate would fail on `_op` before the check could name it.
        context.set_source(&table_ref, input_schema.clone(), Vec::new())?;
        let ctx = context.session();
        check_per_row(ctx.sql(&user_sql).await?.logical_plan())?;
        let sql = statement.to_string();
        let frame = ctx.sql(&sql).await?;
        check_per_row(frame.logical_plan())?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());

        let reader = ChangeReader::open(table, stream_options).await?;
        tracing::debug!(%sql, position = reader.position(), "streaming changes");
        Ok(ChangeStream {
            reader,
            context,
            table_ref,
            input_schema,
            sql,
            schema,
        })
    }
}

impl ChangeStream {
    /// The schema of every batch: `_op`, then the query's columns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The first snapshot not yet handed out.
    pub fn position(&self) -> i64 {
        self.reader.position()
    }

    /// A bounded read (`incremental`) that has read everything.
    pub fn is_finished(&self) -> bool {
        self.reader.is_finished()
    }

    /// Records the position for the consumer id, if the read has one. Call
    /// it once the changes handed out so far are fully processed.
    pub async fn record_consumer(&self) -> Result<()> {
        Ok(self.reader.record_consumer().await?)
    }

    /// The changes of the next snapshot, or `None` when it is not committed
    /// yet (or a bounded read is finished).
    pub async fn next_changes(&mut self) -> Result<Option<ChangeSet>> {
        let Some(changes) = self.reader.next_changes().await? else {
            return Ok(None);
        };
        let context = self.context.clone();
        let table_ref = self.table_ref.clone();
        let input_schema = self.input_schema.clone();
        let sql = self.sql.clone();
        let batches = changes
            .batches
            .map_err(SqlError::from)
            .and_then(move |batch| {
                let context = context.clone();
                let table_ref = table_ref.clone();
                let input_schema = input_schema.clone();
                let sql = sql.clone();
                async move {
                    let input = with_op_column(&input_schema, &batch)?;
                    run_on_batch(&context, &table_ref, &input_schema, &sql, input).await
                }
            })
            .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok::<_, SqlError>)))
            .try_flatten()
            .map_err(StreamError::from)
            .try_filter(|b| futures::future::ready(b.num_rows() > 0))
            .boxed();
        let commit_kind = format!("{:?}", changes.commit_kind).to_ascii_uppercase();
        Ok(Some(ChangeSet {
            snapshot_id: changes.snapshot_id,
            commit_kind,
            full: changes.source == tidelake_engine::ChangeSource::Full,
            skipped: changes.source == tidelake_engine::ChangeSource::Skipped,
            batches,
        }))
    }
}

async fn run_on_batch(
    context: &JobContext,
    table_ref: &TableReference,
    schema: &SchemaRef,
    sql: &str,
    batch: RecordBatch,
) -> tidelake_sql::Result<Vec<RecordBatch>> {
    context.set_source(table_ref, schema.clone(), vec![batch])?;
    Ok(context.session().sql(sql).await?.collect().await?)
}

/// The engine's row-kind byte as `_op` text.
fn with_op_column(schema: &SchemaRef, batch: &RecordBatch) -> tidelake_sql::Result<RecordBatch> {
    let ops: StringArray = row_kinds(batch)?
        .map(|kind| kind.map(|k| Some(k.short_name())))
        .collect::<tidelake_sql::Result<_>>()?;
    let mut columns: Vec<ArrayRef> = vec![Arc::new(ops)];
    columns.extend(batch.columns().iter().skip(1).cloned());
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The table a streaming query reads, as written (identifiers normalized as
/// DataFusion does: unquoted ones lowercased).
#[derive(Debug, PartialEq, Eq)]
struct StreamTableName {
    catalog: Option<String>,
    database: Option<String>,
    table: String,
}

/// Parses a single `SELECT ... FROM table [WHERE ...]`, returns it with `_op`
/// selected first (unless a wildcard already brings it) and its table.
fn rewrite_query(sql: &str) -> tidelake_sql::Result<(Statement, StreamTableName)> {
    let not_streamable = |what: &str| {
        SqlError::Unsupported(format!(
            "a streaming query is SELECT columns FROM one table [WHERE ...]; {what} cannot apply to a stream of changes"
        ))
    };
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)?;
    if statements.len() != 1 {
        return Err(SqlError::Plan(format!(
            "a streaming query is exactly one SELECT statement, not {}",
            statements.len()
        )));
    }
    let mut statement = statements.remove(0);
    let Statement::Query(query) = &mut statement else {
        return Err(not_streamable("a statement other than SELECT"));
    };
    if query.with.is_some() {
        return Err(not_streamable("WITH"));
    }
    if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return Err(not_streamable("ORDER BY / LIMIT"));
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(not_streamable("a set operation (UNION, VALUES, ...)"));
    };
    if select.distinct.is_some() {
        return Err(not_streamable("DISTINCT"));
    }
    let [from] = select.from.as_slice() else {
        return Err(not_streamable("a query over several tables"));
    };
    if !from.joins.is_empty() {
        return Err(not_streamable("a join"));
    }
    let TableFactor::Table {
        name, args: None, ..
    } = &from.relation
    else {
        return Err(not_streamable("a derived table or table function"));
    };
    let mut parts = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(normalize(i)),
            ObjectNamePart::Function(_) => Err(not_streamable("a computed table name")),
        })
        .collect::<tidelake_sql::Result<Vec<_>>>()?;
    let table = parts.pop().unwrap_or_default();
    let name = match parts.as_slice() {
        [] => StreamTableName {
            catalog: None,
            database: None,
            table,
        },
        [db] => StreamTableName {
            catalog: None,
            database: Some(db.clone()),
            table,
        },
        [catalog, db] => StreamTableName {
            catalog: Some(catalog.clone()),
            database: Some(db.clone()),
            table,
        },
        _ => return Err(SqlError::Plan(format!("'{name}' is not a table name"))),
    };
    let has_wildcard = select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    if !has_wildcard {
        select.projection.insert(
            0,
            SelectItem::UnnamedExpr(SqlExpr::Identifier(Ident::new(OP_COLUMN))),
        );
    }
    Ok((statement, name))
}

/// Only projections and filters over the table may run batch by batch.
fn check_per_row(plan: &LogicalPlan) -> tidelake_sql::Result<()> {
    match plan {
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::TableScan(_)
        | LogicalPlan::SubqueryAlias(_) => {
            for input in plan.inputs() {
                check_per_row(input)?;
            }
            Ok(())
        }
        other => Err(SqlError::Unsupported(format!(
            "a streaming query is SELECT columns FROM one table [WHERE ...]; its plan has a {} step, which cannot apply to a stream of changes",
            other.display().to_string().split([':', ' ']).next().unwrap_or("complex")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_gain_the_op_column_and_name_their_table() {
        let (statement, name) = rewrite_query("SELECT id, v FROM Db.\"T\" WHERE id > 1").unwrap();
        assert_eq!(
            statement.to_string(),
            "SELECT _op, id, v FROM Db.\"T\" WHERE id > 1"
        );
        assert_eq!(
            name,
            StreamTableName {
                catalog: None,
                database: Some("db".into()),
                table: "T".into()
            }
        );
        let (statement, _) = rewrite_query("SELECT * FROM t").unwrap();
        assert_eq!(statement.to_string(), "SELECT * FROM t");
        for bad in [
            "SELECT * FROM a JOIN b ON a.id = b.id",
            "SELECT * FROM t ORDER BY id",
            "SELECT * FROM t LIMIT 3",
            "SELECT DISTINCT id FROM t",
            "SELECT 1 UNION SELECT 2",
            "INSERT INTO t VALUES (1)",
            "SELECT 1; SELECT 2",
            "SELECT * FROM (SELECT * FROM t) s",
        ] {
            assert!(rewrite_query(bad).is_err(), "{bad}");
        }
    }
}
