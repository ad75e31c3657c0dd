//! Read-only views of a table's metadata and changes, named and shaped like
//! Paimon's system tables (`orders$snapshots`, `orders$files`, ...): the
//! same column names and meanings, values rendered as Paimon renders them.
//! Times are shown in UTC (Paimon uses the JVM's zone).
//!
//! `metadata` holds the tables read from snapshot, schema, tag and consumer
//! files; `files` those planned from a snapshot's live data files;
//! `audit_log` the table's rows with their row kind.

mod audit_log;
mod files;
mod metadata;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use tidelake_engine::Table;

use crate::catalog::TimeTravel;
use crate::error::Result;

/// The suffix that names a table's snapshot list.
pub const SNAPSHOTS_SUFFIX: &str = "$snapshots";

/// The system tables of a table, by their `$` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemTable {
    Snapshots,
    Schemas,
    Options,
    Files,
    Manifests,
    Partitions,
    Buckets,
    Tags,
    Branches,
    Consumers,
    AuditLog,
}

impl SystemTable {
    const ALL: [SystemTable; 11] = [
        SystemTable::Snapshots,
        SystemTable::Schemas,
        SystemTable::Options,
        SystemTable::Files,
        SystemTable::Manifests,
        SystemTable::Partitions,
        SystemTable::Buckets,
        SystemTable::Tags,
        SystemTable::Branches,
        SystemTable::Consumers,
        SystemTable::AuditLog,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SystemTable::Snapshots => "snapshots",
            SystemTable::Schemas => "schemas",
            SystemTable::Options => "options",
            SystemTable::Files => "files",
            SystemTable::Manifests => "manifests",
            SystemTable::Partitions => "partitions",
            SystemTable::Buckets => "buckets",
            SystemTable::Tags => "tags",
            SystemTable::Branches => "branches",
            SystemTable::Consumers => "consumers",
            SystemTable::AuditLog => "audit_log",
        }
    }

    /// Paimon's names are case-insensitive (`t$FILES`).
    pub fn from_name(name: &str) -> Option<SystemTable> {
        SystemTable::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// `$snapshots, $schemas, ...` for error messages.
    pub fn supported_list() -> String {
        SystemTable::ALL
            .iter()
            .map(|s| format!("${}", s.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Tables that show one snapshot can show a past one.
    pub fn supports_time_travel(self) -> bool {
        matches!(
            self,
            SystemTable::Files
                | SystemTable::Manifests
                | SystemTable::Partitions
                | SystemTable::Buckets
                | SystemTable::AuditLog
        )
    }
}

/// The provider of one system table of `table`, as of a snapshot when
/// `travel` says so.
pub(crate) async fn load_system_table(
    table: Table,
    system: SystemTable,
    travel: Option<&TimeTravel>,
) -> Result<Arc<dyn TableProvider>> {
    tracing::debug!(table = %table.identifier(), system = system.name(), "loading system table");
    let batch = match system {
        SystemTable::Snapshots => metadata::snapshots(&table).await?,
        SystemTable::Schemas => metadata::schemas(&table).await?,
        SystemTable::Options => metadata::options(&table)?,
        SystemTable::Tags => metadata::tags(&table).await?,
        SystemTable::Branches => metadata::branches(&table).await?,
        SystemTable::Consumers => metadata::consumers(&table).await?,
        SystemTable::Manifests => metadata::manifests(&table, travel).await?,
        SystemTable::Files => files::files(&table, travel).await?,
        SystemTable::Partitions => files::partitions(&table, travel).await?,
        SystemTable::Buckets => files::buckets(&table, travel).await?,
        SystemTable::AuditLog => return audit_log::audit_log(table, travel).await,
    };
    Ok(Arc::new(mem_table(batch)?))
}

fn mem_table(batch: RecordBatch) -> Result<MemTable> {
    let schema: SchemaRef = batch.schema();
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_listed() {
        for s in SystemTable::ALL {
            assert_eq!(SystemTable::from_name(s.name()), Some(s));
            assert!(SystemTable::supported_list().contains(&format!("${}", s.name())));
        }
        assert_eq!(SystemTable::from_name("FILES"), Some(SystemTable::Files));
        assert_eq!(SystemTable::from_name("snapshot"), None);
    }
}
