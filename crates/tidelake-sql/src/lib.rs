//! # tidelake-sql
//!
//! SQL over Tidelake tables with Apache DataFusion. It owns *what SQL
//! means*: Paimon-shaped DDL (`CREATE TABLE ... PARTITIONED BY (...) WITH
//! (...)`, watermarks included), `INSERT`/`INSERT OVERWRITE` (static and
//! dynamic partitions), `UPDATE`, `DELETE`, `MERGE` and `TRUNCATE` on
//! primary-key and append tables, `SHOW PARTITIONS` and `ALTER TABLE ...
//! DROP PARTITION`, queries with everything
//! DataFusion offers, time travel (`t VERSION AS OF 3` or `t$snapshot_3`;
//! `t$snapshots` lists the snapshots), procedures, and errors with
//! SQLSTATE-like codes. A query that pins every primary-key column to a
//! literal (`SELECT ... FROM t WHERE id = 5`, prepared statements included)
//! is answered by the engine's key lookup without a DataFusion physical
//! plan (`lookup`; `EXPLAIN` shows `PrimaryKeyLookup`).
//!
//! Streaming (continuous jobs, streaming `SELECT`) lives in
//! `tidelake-stream`, above this crate: this crate must not know about it.
//! What that crate builds on is a small public surface: the session's
//! [`catalog`](Session::catalog) and [`current database`](Session::current_database),
//! [`sql_config`] (DataFusion contexts that speak the session's SQL),
//! [`TidelakeTable`] (a table, at a snapshot, as a DataFusion provider),
//! [`watermark`] (what a table's declared watermark means) and [`SqlError`].
//!
//! It reads and writes tables only through `tidelake-engine` (Arrow batches,
//! predicates, writers): it must not know the file formats, object stores or
//! layout of the warehouse. Files *outside* the warehouse (`read_parquet`,
//! `FROM 'path'`, `COPY`) are DataFusion's formats over object stores that
//! the warehouse's store configures (`files`, `file_scans`, `copy`). Protocol servers and the command line use
//! it through [`QueryHandler`] and [`Session`]; servers read the engine's
//! counters for their metrics through [`engine_counters`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), tidelake_sql::SqlError> {
//! let session = tidelake_sql::Session::open("./warehouse").await?;
//! session.execute("CREATE TABLE t (id BIGINT, v STRING, PRIMARY KEY (id))").await?;
//! session.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await?;
//! let results = session.execute("SELECT count(*) FROM t").await?;
//! # Ok(()) }
//! ```

mod builtins;
mod catalog;
mod copy;
mod create_from;
mod ddl;
mod describe;
mod dml;
mod error;
pub mod extension;
mod file_scans;
mod files;
mod group;
mod hints;
mod insert;
mod lexer;
mod lookup;
mod merge;
mod partitions;
mod predicate;
mod procedures;
mod progress;
mod provider;
mod result;
mod retry;
mod session;
mod system_tables;
mod views;
pub mod watermark;

pub use catalog::{TidelakeCatalog, TidelakeDatabase, SNAPSHOT_SUFFIX};
pub use datafusion::scalar::ScalarValue;
pub use error::{Position, Result, SqlError};
pub use extension::SessionExtension;
pub use lexer::statement_is_complete;
pub use lookup::PreparedPoint;
pub use progress::StatementProgress;
pub use provider::TidelakeTable;
pub use retry::RETRIES_PROPERTY;
pub use session::{
    sql_config, CommandStatus, QueryHandler, QueryStream, Session, SessionOptions, StatementResult,
    StreamingResult, CATALOG_NAME,
};
pub use system_tables::SNAPSHOTS_SUFFIX;
/// The engine's process-wide counters (commits, conflicts, rows and bytes
/// read from data files), for servers' metrics: they know no engine.
pub use tidelake_engine::counters::{engine_counters, EngineCounters};
