//! # tidelake-engine
//!
//! Tidelake's storage engine for Apache Paimon tables: the filesystem
//! catalog, the LSM write path (routing rows to partitions and buckets,
//! sorting, sequence numbers, level-0 files), the commit protocol (numbered
//! snapshots created if absent, conflict checks, retries) and merge-on-read
//! scans with partition pruning and statistics-based file skipping.
//!
//! It owns *how tables change and are read*. It knows the format (through
//! `tidelake-format`) and storage (through `tidelake-store`), and must not
//! know SQL, query planning, wire protocols or the command line: callers hand
//! it Arrow batches and predicates, and get Arrow batches back.

pub mod catalog;
pub mod commit;
pub mod compact;
pub mod error;
mod files;
mod index;
pub mod introspect;
mod kv;
mod layout;
pub mod lifecycle;
mod lsm;
pub mod manifests;
mod mergefn;
pub mod options;
mod orchestrate;
pub mod read;
pub mod snapshots;
pub mod stats;
pub mod table;
pub mod write;

#[cfg(test)]
mod layers_test;

pub use catalog::{Catalog, ColumnSpec, Identifier, SchemaChange, TableSpec, DEFAULT_DATABASE};
pub use compact::{CompactOptions, CompactOutcome, CompactionHandle};
pub use error::{EngineError, Result};
pub use kv::RowKind;
pub use lifecycle::{ExpireOptions, ExpireOutcome, OrphanOptions};
pub use orchestrate::{BackgroundCompactor, BackgroundSummary};
pub use read::predicate::{CompareOp, Predicate};
pub use read::scan::{ScanBuilder, ScanPlan, Split};
pub use read::stream::{
    ChangeReader, ChangeSource, SnapshotChanges, SnapshotRef, StartMode, StreamOptions,
    ROW_KIND_COLUMN,
};
pub use table::Table;
pub use tidelake_format::binary_row::Datum;
pub use tidelake_format::schema::TableSchema;
pub use tidelake_format::types::{DataField, DataType, DataTypeKind};
pub use write::TableWriter;
