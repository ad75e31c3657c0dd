//! `--status`: what each table of a pipeline recorded.

use tidelake_engine::{read_progress, Catalog, Identifier};

use super::config::SinkConfig;
use super::{pipeline_owner, POSITION_SLOT, SOURCE_SLOT};
use crate::error::Result;

/// One table's recorded progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStatus {
    pub table: String,
    pub source: String,
    pub position: String,
    pub snapshot: i64,
    /// When that snapshot was committed (epoch millis).
    pub committed_millis: i64,
}

/// The tables of `config.database` the pipeline recorded positions in.
pub async fn table_status(catalog: &Catalog, config: &SinkConfig) -> Result<Vec<TableStatus>> {
    let owner = pipeline_owner(&config.pipeline)?;
    let mut out = Vec::new();
    if !catalog.database_exists(&config.database).await? {
        return Ok(out);
    }
    for name in catalog.list_tables(&config.database).await? {
        let table = catalog
            .load_table(&Identifier::new(config.database.clone(), name.clone()))
            .await?;
        let progress = read_progress(table.snapshots(), &owner).await?;
        let Some(position) = progress.positions.get(POSITION_SLOT) else {
            continue;
        };
        let snapshot = progress.recorded_in.unwrap_or(0);
        let committed_millis = match table.snapshots().snapshot(snapshot).await? {
            Some(s) => s.time_millis,
            None => 0,
        };
        out.push(TableStatus {
            table: format!("{}.{name}", config.database),
            source: progress
                .positions
                .get(SOURCE_SLOT)
                .cloned()
                .unwrap_or_default(),
            position: position.clone(),
            snapshot,
            committed_millis,
        });
    }
    Ok(out)
}
