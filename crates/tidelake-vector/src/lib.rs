//! Vector search on Tidelake tables, in Apache Paimon's layout for
//! primary-key vector indexes.
//!
//! Owns: a table's vector index definition (`spec`, Paimon's
//! `pk-vector.*` options), the index records Paimon writes
//! (`layout`: `GlobalIndexMeta` with source meta), index segments built with
//! Paimon's vector index library at compaction (`build`, through the
//! engine's [`tidelake_engine::TableHooks`]), searches that are exact about
//! a snapshot's rows (`search`), hybrid vector + keyword search fused by
//! reciprocal rank (`hybrid`), and the SQL surface (`sql`: functions, the
//! `vector_search` and `hybrid_search` table functions, the optimizer rule, procedures).
//!
//! Must not know: the engine's internals (it uses the engine's public
//! scans, file reads and hooks only), wire protocols, the CLI.

mod build;
mod columns;
mod context;
pub mod error;
mod flat;
pub mod hybrid;
pub mod layout;
mod payload;
pub mod search;
pub mod spec;
pub mod sql;
mod train;
mod vectors;

pub use build::{build_payload, VectorHooks};
pub use error::{Result, VectorError};
pub use hybrid::{hybrid_search, HybridRequest};
pub use search::{
    search, RowFilter, SearchMode, SearchOutcome, SearchRequest, SearchStats, DISTANCE_COLUMN,
};
pub use spec::{Metric, VectorIndexSpec};
pub use sql::VectorExtension;

/// Opens the warehouse at `uri` with vector indexes on its tables (the
/// catalog the binary's sessions use).
pub async fn open_catalog(uri: &str) -> tidelake_engine::Result<tidelake_engine::Catalog> {
    Ok(tidelake_engine::Catalog::open(uri)
        .await?
        .with_table_hooks(vec![VectorHooks::shared()]))
}
