//! The engine's integration tests, one binary (each file under `tests/`
//! would link a binary of its own): one module per area. Shared fixtures
//! come from `tidelake-testkit`.

mod aggregate_collections;
mod ambiguous_commit;
mod changelog;
mod compaction;
mod deletion_vectors;
mod fencing;
mod lifecycle;
mod lookup;
mod manifest_compaction;
mod merge_engines;
mod model;
mod s3;
mod streaming;
mod table_ops;
