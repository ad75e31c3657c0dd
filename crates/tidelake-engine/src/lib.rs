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
//!
//! ## Layers
//!
//! Top to bottom:
//!
//! ```text
//!   catalog                          opens and creates tables, changes schemas
//!   views | services                 view definitions; job declarations
//!                                    and leases kept in the warehouse
//!   orchestrate                      a commit and what follows it (expiration,
//!                                    inline and background compaction)
//!   lifecycle                        expiration, tags, branches, rollback,
//!                                    consumers
//!   write                            TableWriter: route, buffer, sort, flush
//!   compact                          plan and rewrite buckets (commits nothing)
//!   read                             scans, merge-on-read, streaming reads
//!   commit                           the commit protocol
//!   files | index | introspect       data-file writing, index files, metadata
//!   table                            the handle: store, paths, layout, snapshots
//!   progress | queue                 fenced progress in snapshot properties;
//!                                    per-table commit queues (group commit)
//!   manifests | snapshots | mergefn  manifest and snapshot files, merge engines
//!   lsm | layout                     sorted runs, level overlap, sections, keys
//!   kv | options | stats | cache     column names, RowKind, paths; options;
//!                                    caches of immutable metadata
//!   error | counters                 errors; process-wide counters (metrics)
//! ```
//!
//! Each module uses only modules of lower layers (never its own layer, never
//! a higher one), so the module graph has no cycle. Operations that span
//! layers are `impl Table` / `impl TableWriter` blocks in the higher module
//! (e.g. `Table::scan` in `read`, `Table::compact` and `TableWriter::commit` in
//! `orchestrate`): the edge points from the higher module to the handle.
//! `layers_test.rs` checks this from the sources, and a new module must be
//! given a layer there:
//! `cargo nextest run --workspace -E 'test(/layers_test/)'`.

mod cache;
mod catalog;
pub mod commit;
mod compact;
pub mod counters;
mod error;
mod evolution;
mod files;
mod index;
pub mod introspect;
mod kv;
mod layout;
mod lifecycle;
mod lsm;
pub mod manifests;
mod mergefn;
pub mod options;
mod orchestrate;
pub mod progress;
mod queue;
pub mod read;
pub mod services;
pub mod snapshots;
pub mod stats;
mod table;
pub mod views;
mod write;

#[cfg(test)]
mod layers_test;

pub use cache::{CacheConfig, MetadataCache, WeightedLru};
pub use catalog::{
    is_valid_name, Catalog, ColumnPosition, ColumnSpec, Identifier, SchemaChange, TableSpec,
    DEFAULT_DATABASE,
};
pub use commit::ManifestCompaction;
pub use compact::{CompactOptions, CompactOutcome, CompactionHandle};
pub use error::{EngineError, Result};
pub use kv::RowKind;
pub use lifecycle::{
    validate_branch_name, BranchInfo, ExpireOptions, ExpireOutcome, OrphanOptions, MAIN_BRANCH,
};
pub use orchestrate::{
    parse_partition_time, BackgroundCompactor, BackgroundSummary, ExpireStrategy,
    PartitionExpireOptions, PartitionInfo, WriteTurn, GROUP_SIZE_PROPERTY, MAX_GROUP_BYTES,
    RETRIES_PROPERTY,
};
pub use progress::{newest_recorded, read_progress, OwnerProgress, ProgressOwner, PROGRESS_PREFIX};
pub use queue::{GroupOutcome, StatementRows};
pub use read::lookup::LookupOptions;
pub use read::predicate::{CompareOp, Predicate};
pub use read::scan::{ScanBuilder, ScanPlan, ScanStats, Split};
pub use read::stream::{
    ChangeReader, ChangeSource, SnapshotChanges, SnapshotRef, StartMode, StreamOptions,
    ROW_KIND_COLUMN,
};
pub use table::{CompactedBucket, Table, TableHooks};
pub use tidelake_format::binary_row::Datum;
pub use tidelake_format::schema::TableSchema;
pub use tidelake_format::types::{DataField, DataType, DataTypeKind};
pub use tidelake_store::StoreError;
pub use write::{BatchChange, OverwriteScope, PreparedAppendRewrite, RewriteOutcome, TableWriter};
