//! # tidelake-format
//!
//! The Apache Paimon table format as bytes and documents: data types and table
//! schemas (JSON), snapshots (JSON), manifests and manifest lists (Avro),
//! `BinaryRow` (partitions, keys, statistics), bucket hashing and the warehouse
//! path layout.
//!
//! This crate owns *what the files say*. It must not know where files live or
//! how they are read and written (no I/O, no object store, no async), nor
//! anything about query engines. Every encoder here is checked against files
//! written by Paimon's own implementations.

pub mod binary_row;
pub mod bucket;
pub mod deletion_vector;
pub mod error;
pub mod manifest;
pub mod path;
pub mod schema;
pub mod snapshot;
pub mod types;

pub use error::{FormatError, Result};
