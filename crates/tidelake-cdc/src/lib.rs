//! # tidelake-cdc
//!
//! Change data capture into Tidelake tables: whole databases of PostgreSQL
//! (logical replication, pgoutput), MySQL/MariaDB (row-based binlog) and
//! message queues (NATS JetStream carrying Debezium, Canal or Maxwell JSON)
//! synced into Paimon primary-key tables, exactly-once, with the schema
//! changes Paimon's CDC actions apply.
//!
//! It owns *sources* (each turns its protocol into [`event::SourceEvent`]s:
//! table schemas, row changes, transaction ends with a resumable position)
//! and the *sink* that maps source tables to Paimon tables and commits each
//! source transaction's rows with its position as fenced progress
//! (`tidelake.progress.cdc.<pipeline>.*`) in the same snapshot.
//!
//! It must not know SQL, wire protocols of its own clients, or the command
//! line: the `tidelake` binary parses `tidelake cdc ...` and hands it a
//! configuration. Sources must not know Paimon tables; the sink must not
//! know any source protocol.

pub mod error;
pub mod event;
pub mod postgres;
pub mod rows;
pub mod sink;
pub mod values;

pub use error::{CdcError, IncompatibleChange, Result};
pub use event::{ChangeSource, Resume, SourceEvent};
pub use sink::config::{MetadataColumn, SinkConfig, TableFilter, TypeMapping};
pub use sink::{Pipeline, RunEnd, SinkStats};
pub use tidelake_engine::Catalog;
pub mod mysql;
pub mod nats;
