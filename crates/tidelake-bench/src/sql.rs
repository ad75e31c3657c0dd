//! The one place the benchmark talks to tidelake-sql: open a session on a
//! catalog, run a query to completion and count its rows.

use tidelake_engine::Catalog;
use tidelake_sql::Session;

use crate::error::{BenchError, Result};

pub async fn open_session(catalog: Catalog) -> Result<Session> {
    Session::with_catalog(catalog)
        .await
        .map_err(|e| BenchError::Sql(e.to_string()))
}

/// Runs one statement and returns how many rows it produced (every batch is
/// materialized, as the peers' drivers do).
pub async fn run_query(session: &Session, sql: &str) -> Result<usize> {
    let results = session
        .execute(sql)
        .await
        .map_err(|e| BenchError::Sql(e.to_string()))?;
    Ok(results.iter().map(|r| r.row_count()).sum())
}
