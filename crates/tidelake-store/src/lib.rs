//! # tidelake-store
//!
//! Warehouse storage for Tidelake: one small type, [`WarehouseStore`], with a
//! written contract (on the type's docs) that holds on every backend: local
//! disk, memory and S3-compatible object stores, all through `object_store`.
//!
//! **This crate owns** warehouse URIs and how they open a backend; the
//! relative-path rules; reads, listings and folder semantics that behave the
//! same everywhere; overwrite (`put`) that never exposes partial objects; the
//! commit primitive `put_if_absent` (atomic create-if-absent) and the check
//! that a backend really provides it; the mapping of backend errors to
//! [`StoreError`]; and seeded fault injection ([`FaultPlan`]) for simulation
//! tests of the layers above.
//!
//! **It must not know** Apache Paimon, tables, snapshots, manifests, file
//! formats or SQL: paths are opaque strings to it, and it never decides what a
//! file means or whether a commit is valid. Those belong to `tidelake-format`
//! and `tidelake-engine`.
//!
//! The conformance suite in `tests/it/conformance.rs` runs one set of checks
//! against memory, a local folder and a real S3-compatible server (moto).

mod error;
mod faults;
mod local;
mod path;
mod store;
mod uri;

pub use error::{Result, StoreError};
pub use faults::{FaultPlan, FaultStats};
pub use path::DIR_MARKER;
pub use store::{
    ObjectEntry, OpenOptions, PutOutcome, WarehouseStore, ALLOW_UNSAFE_COMMITS_ENV,
    DEFAULT_WAREHOUSE,
};
