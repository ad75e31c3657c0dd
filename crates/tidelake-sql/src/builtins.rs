//! What DataFusion offers besides tables, kept working over our catalog:
//! table functions (`generate_series`, `range`, the file functions) and
//! `information_schema`.
//!
//! Table functions: DataFusion resolves every name in FROM against the
//! catalog before planning, table functions included, and takes "no such
//! table" from `SchemaProvider::table` as `None`. Our databases answer
//! `None` for a missing table (not an error), so the planner reaches the
//! table function; a missing table then fails in the planner as
//! "table 'tidelake.db.t' not found", which [`explain_missing_table`] turns
//! back into our precise error (the database or the table is missing).
//!
//! `information_schema` lists names from the catalog's cached listings
//! (DataFusion asks for them synchronously), so a statement that reads it
//! refreshes every listing first.

use datafusion::execution::context::SessionState;
use datafusion::sql::parser::Statement as DfStatement;
use tidelake_engine::Catalog;

use crate::catalog::TidelakeCatalog;
use crate::error::{Result, SqlError};
use crate::session::CATALOG_NAME;

const INFORMATION_SCHEMA: &str = "information_schema";

/// Refreshes the catalog's listings when `statement` reads `information_schema`.
pub(crate) async fn refresh_for_introspection(
    tidelake: &TidelakeCatalog,
    state: &SessionState,
    statement: &DfStatement,
) -> Result<()> {
    let references = state.resolve_table_references(statement)?;
    let introspects = references
        .iter()
        .any(|r| r.schema() == Some(INFORMATION_SCHEMA));
    if !introspects {
        return Ok(());
    }
    for database in tidelake.refresh().await? {
        tidelake.database(&database).refresh().await?;
    }
    Ok(())
}

/// Turns the planner's "table 'tidelake.db.t' not found" into the error a
/// lookup of `db.t` gives (database or table missing, bad time travel...).
pub(crate) async fn explain_missing_table(catalog: &Catalog, error: SqlError) -> SqlError {
    let SqlError::UndefinedTable(name) = &error else {
        return error;
    };
    let Some(rest) = name
        .strip_prefix(CATALOG_NAME)
        .and_then(|r| r.strip_prefix('.'))
    else {
        return error;
    };
    let Some((database, table)) = rest.split_once('.') else {
        return error;
    };
    match crate::catalog::load_any(catalog, database, table).await {
        Err(precise) => precise,
        // It exists now (created meanwhile): say what was missing then.
        Ok(_) => SqlError::UndefinedTable(rest.to_string()),
    }
}
