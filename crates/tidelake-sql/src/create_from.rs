//! Tables made from other things: `CREATE TABLE ... AS <query>` (columns
//! from the query, rows from it in one commit) and `CREATE TABLE ... LIKE`
//! (another table's columns, keys, partitioning, options and comment), and
//! `ALTER TABLE ... RENAME TO`.
//!
//! A failed CTAS leaves nothing behind: the query is planned and the table
//! checked before anything is written, and a table whose INSERT then fails
//! is dropped again.

use datafusion::arrow::datatypes::{DataType as ArrowType, Field};
use datafusion::sql::sqlparser::tokenizer::Token;
use tidelake_engine::{is_valid_name, DataType, EngineError, Identifier};

use crate::ddl::{ColumnDef, CreateTable, TableName};
use crate::describe::quote_identifier;
use crate::error::{Result, SqlError};
use crate::lexer::{split_statements, RawStatement};
use crate::session::{CommandStatus, Session, StreamingResult};

/// `CREATE TABLE ... AS <query>` or `CREATE TABLE ... LIKE <source>`.
pub(crate) async fn create_table_from(
    session: &Session,
    mut create: CreateTable,
) -> Result<CommandStatus> {
    let id = session.identifier(&create.name);
    if create.if_not_exists && table_exists(session, &id).await? {
        return Ok(CommandStatus {
            command: if create.query.is_some() {
                "SELECT"
            } else {
                "CREATE TABLE"
            },
            rows: create.query.is_some().then_some(0),
        });
    }
    if let Some(source) = create.like.take() {
        like(session, &mut create, &source).await?;
        session.create_table(create).await?;
        return Ok(CommandStatus {
            command: "CREATE TABLE",
            rows: None,
        });
    }
    let Some(query) = create.query.take() else {
        return Err(SqlError::Internal(
            "CREATE TABLE without columns, query or source".into(),
        ));
    };
    if table_exists(session, &id).await? {
        return Err(SqlError::DuplicateTable(id.to_string()));
    }
    create.columns = query_columns(session, &query).await?;
    session.create_table(create).await?;
    let rows = match insert_rows(session, &id, &query).await {
        Ok(rows) => rows,
        Err(e) => {
            // The table is new and nobody else has a reason to write it yet:
            // dropping it undoes the statement.
            if let Err(drop) = session.catalog().drop_table(&id, true).await {
                tracing::error!(table = %id, "could not drop the table of a failed CREATE TABLE AS: {drop}");
            }
            return Err(e);
        }
    };
    Ok(CommandStatus {
        command: "SELECT",
        rows: Some(rows),
    })
}

async fn table_exists(session: &Session, id: &Identifier) -> Result<bool> {
    match session.catalog().load_table(id).await {
        Ok(_) => Ok(true),
        Err(EngineError::TableNotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Copies everything but the rows of `source` into `create`.
async fn like(session: &Session, create: &mut CreateTable, source: &TableName) -> Result<()> {
    let source_id = session.identifier(source);
    let table = match session.catalog().load_table(&source_id).await {
        Ok(t) => t,
        Err(EngineError::TableNotFound(_)) => {
            return Err(SqlError::UndefinedTable(source_id.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    let schema = table.schema();
    create.columns = schema
        .fields
        .iter()
        .map(|f| ColumnDef {
            name: f.name.clone(),
            data_type: f.data_type.clone(),
            comment: f.description.clone(),
            primary_key: false,
        })
        .collect();
    create.primary_key = schema.primary_keys.clone();
    create.partition_keys = schema.partition_keys.clone();
    create.options = schema.options.clone();
    create.comment = schema.comment.clone();
    Ok(())
}

/// The one statement of a CTAS query, which must be a query.
fn query_statement(query: &str) -> Result<RawStatement> {
    let mut statements = split_statements(query)?;
    if statements.len() != 1 {
        return Err(SqlError::syntax(
            "CREATE TABLE ... AS takes exactly one query",
            None,
        ));
    }
    let statement = statements.remove(0);
    let is_query = match statement.tokens.first().map(|t| &t.token) {
        Some(Token::Word(w)) if w.quote_style.is_none() => ["SELECT", "WITH", "VALUES"]
            .iter()
            .any(|kw| w.value.eq_ignore_ascii_case(kw)),
        Some(Token::LParen) => true,
        _ => false,
    };
    if !is_query {
        return Err(SqlError::syntax(
            "CREATE TABLE ... AS needs a query (SELECT, WITH or VALUES) after AS",
            None,
        ));
    }
    Ok(statement)
}

/// The columns of the query's result as Paimon columns: every column
/// nullable (as Spark's CTAS makes them; key columns become NOT NULL when
/// the table is created), types mapped from Arrow.
async fn query_columns(session: &Session, query: &str) -> Result<Vec<ColumnDef>> {
    let statement = query_statement(query)?;
    // Planned exactly as the session plans a query; the rows are not read.
    let schema = match session.run_datafusion(&statement).await? {
        StreamingResult::Rows(rows) => rows.schema,
        StreamingResult::Status(_) => {
            return Err(SqlError::Internal(
                "the query of a CREATE TABLE AS ran as a statement".into(),
            ))
        }
    };
    schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name();
            if !is_valid_name(name) {
                return Err(SqlError::InvalidParameter(format!(
                    "the query's column '{name}' cannot name a Paimon column (no '/', '\\', '$', control characters or leading '.'): give it a name with AS"
                )));
            }
            Ok(ColumnDef {
                name: name.clone(),
                data_type: column_type(field)?,
                comment: None,
                primary_key: false,
            })
        })
        .collect()
}

fn column_type(field: &Field) -> Result<DataType> {
    DataType::from_arrow(field.data_type(), true).map_err(|e| {
        let hint = if field.data_type() == &ArrowType::Null {
            " (a bare NULL has no type: write CAST(NULL AS <type>))".to_string()
        } else {
            format!(": {e}; CAST it to a type Paimon has")
        };
        SqlError::Unsupported(format!(
            "column '{}' of the query has type {}, which a Paimon table cannot store{hint}",
            field.name(),
            field.data_type()
        ))
    })
}

/// Writes the query's rows into the new table with one INSERT (one commit).
async fn insert_rows(session: &Session, id: &Identifier, query: &str) -> Result<u64> {
    // A derived table takes every query form (WITH, VALUES, parentheses).
    let text = format!(
        "INSERT INTO {}.{} SELECT * FROM (\n{query}\n) AS ctas_query",
        quote_identifier(&id.database),
        quote_identifier(&id.table)
    );
    let mut statements = split_statements(&text)?;
    if statements.len() != 1 {
        return Err(SqlError::Internal(
            "the INSERT of a CREATE TABLE AS split into several statements".into(),
        ));
    }
    match session.run_datafusion(&statements.remove(0)).await? {
        StreamingResult::Status(status) => Ok(status.rows.unwrap_or(0)),
        StreamingResult::Rows(_) => Err(SqlError::Internal(
            "the INSERT of a CREATE TABLE AS returned rows".into(),
        )),
    }
}

/// `ALTER TABLE from RENAME TO to`.
pub(crate) async fn rename_table(
    session: &Session,
    from: &TableName,
    to: &TableName,
) -> Result<()> {
    let from = session.identifier(from);
    let to = session.identifier(to);
    session.catalog().rename_table(&from, &to).await?;
    Ok(())
}

#[cfg(test)]
#[path = "create_from_tests.rs"]
mod tests;
