//! Warehouse metadata of the services that work on tables: job
//! declarations and leases. Both live beside the databases, in folders no
//! engine of Paimon reads (`_jobs/`, `_leases/`: database folders end in
//! `.db`), and both are written only with the store's create-if-absent, so
//! that they work alike on local disk and object stores and never in one
//! process's memory.
//!
//! - **Job declarations**: `_jobs/<name>/v-<N>.json`, one immutable file
//!   per version (N from 1). A change (suspend, resume, drop) writes version
//!   N+1 if absent: of two sessions changing a job at once, one wins and
//!   the other reads the new version and tries again or reports it. The
//!   newest version is the declaration; a dropped job's newest version says
//!   `dropped`.
//! - **Leases**: `_leases/<kind>/<name>/epoch-<E>.json`. Taking, renewing
//!   and releasing a lease each create the next epoch if absent, so of two
//!   workers racing for one lease exactly one creates epoch E+1. What a
//!   record means (who holds it, until when) is decided by the lease
//!   protocol above this layer (`tidelake-worker`); here are the records and
//!   their files. Old epochs are pruned by the holder.
//!
//! A record written by a newer Tidelake (a higher `format`) is reported as
//! such, never rewritten.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tidelake_store::{PutOutcome, StoreError, WarehouseStore};

use crate::error::{EngineError, Result};

/// The folder of job declarations.
pub const JOBS_DIR: &str = "_jobs";
/// The folder of leases.
pub const LEASES_DIR: &str = "_leases";
/// The format of the records this version writes and fully understands.
pub const SERVICE_FORMAT: u32 = 1;

/// What a declared job should be doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeclaredState {
    Running,
    Suspended,
    Dropped,
}

impl DeclaredState {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeclaredState::Running => "RUNNING",
            DeclaredState::Suspended => "SUSPENDED",
            DeclaredState::Dropped => "DROPPED",
        }
    }
}

/// One version of a job's declaration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDeclaration {
    pub format: u32,
    pub name: String,
    /// What runs it: `sql` (a continuous `INSERT INTO ... SELECT`).
    pub kind: String,
    /// The statement, as written.
    pub statement: String,
    /// The database unqualified names in the statement refer to.
    pub database: String,
    pub state: DeclaredState,
    /// The version (N of `v-N.json`); set when read.
    #[serde(default)]
    pub version: u64,
    /// When this version was written (epoch millis, the writer's clock).
    pub written_at_ms: i64,
}

/// Job declarations of a warehouse.
#[derive(Clone)]
pub struct JobCatalog {
    store: WarehouseStore,
}

fn version_name(version: u64) -> String {
    format!("v-{version:020}.json")
}

fn parse_numbered(path: &str, prefix: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?;
    name.strip_prefix(prefix)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

fn newer_format(path: &str, format: u32) -> EngineError {
    EngineError::Unsupported(format!(
        "'{path}' was written by a newer Tidelake (record format {format}; this one reads up to {SERVICE_FORMAT}): upgrade this process before it changes that record"
    ))
}

/// Lists `dir` one level down; a missing folder is empty.
async fn list_level(store: &WarehouseStore, dir: &str) -> Result<(Vec<String>, Vec<String>)> {
    match store.list_dir(dir).await {
        Ok((dirs, files)) => Ok((dirs, files.into_iter().map(|f| f.path).collect())),
        Err(StoreError::NotFound { .. }) => Ok((Vec::new(), Vec::new())),
        Err(e) => Err(e.into()),
    }
}

fn last_segment(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .to_string()
}

impl JobCatalog {
    pub fn new(store: WarehouseStore) -> Self {
        JobCatalog { store }
    }

    fn dir(name: &str) -> String {
        format!("{JOBS_DIR}/{name}")
    }

    /// The names of every job ever declared (dropped ones included), sorted.
    pub async fn names(&self) -> Result<Vec<String>> {
        let (dirs, _) = list_level(&self.store, JOBS_DIR).await?;
        let mut names: Vec<String> = dirs.iter().map(|d| last_segment(d)).collect();
        names.sort();
        Ok(names)
    }

    /// The newest version of `name`'s declaration, if it was ever declared.
    pub async fn get(&self, name: &str) -> Result<Option<JobDeclaration>> {
        let (_, files) = list_level(&self.store, &Self::dir(name)).await?;
        let Some((version, path)) = files
            .iter()
            .filter_map(|p| parse_numbered(p, "v-").map(|v| (v, p)))
            .max_by_key(|(v, _)| *v)
        else {
            return Ok(None);
        };
        let bytes = self.store.get(path).await?;
        let format = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("format").and_then(|f| f.as_u64()));
        if let Some(format) = format.filter(|f| *f > u64::from(SERVICE_FORMAT)) {
            return Err(newer_format(path, format as u32));
        }
        let mut declaration: JobDeclaration =
            serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
                path: path.clone(),
                message: format!("not a job declaration: {e}"),
            })?;
        declaration.version = version;
        Ok(Some(declaration))
    }

    /// Every job's newest declaration, dropped ones left out, by name. A
    /// job whose declaration cannot be read is returned as its error.
    pub async fn list(&self) -> Result<Vec<(String, Result<JobDeclaration>)>> {
        let mut jobs = Vec::new();
        for name in self.names().await? {
            match self.get(&name).await {
                Ok(Some(d)) if d.state == DeclaredState::Dropped => {}
                Ok(Some(d)) => jobs.push((name, Ok(d))),
                Ok(None) => {}
                Err(e) => jobs.push((name, Err(e))),
            }
        }
        Ok(jobs)
    }

    /// Writes `declaration` as the version after `after` (0: the first).
    /// `Ok(false)` when that version exists already: someone else changed
    /// the job meanwhile.
    pub async fn write_version(&self, declaration: &JobDeclaration, after: u64) -> Result<bool> {
        let version = after + 1;
        let mut record = declaration.clone();
        record.version = version;
        record.format = SERVICE_FORMAT;
        let path = format!("{}/{}", Self::dir(&record.name), version_name(version));
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| EngineError::Internal(format!("cannot write the job declaration: {e}")))?;
        Ok(self
            .store
            .create_if_absent(&path, Bytes::from(json))
            .await?
            == PutOutcome::Created)
    }
}

/// One lease record: epoch E of a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub format: u32,
    /// The worker that wrote it (and holds the lease, unless `released`).
    pub holder: String,
    pub epoch: u64,
    /// How long the holder claims the lease from the moment it wrote this.
    pub ttl_ms: u64,
    /// The holder's wall clock when it wrote this (for people; the
    /// protocol never compares clocks of two workers).
    pub written_at_ms: i64,
    /// The holder gave the lease up: anyone may take it at once.
    #[serde(default)]
    pub released: bool,
    /// What the holder reports about the work (a job's last error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The newest epoch of a lease, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseEntry {
    /// No epoch was ever written.
    Absent,
    Record(LeaseRecord),
    /// Epoch `epoch` exists but cannot be read as a record.
    Corrupt {
        epoch: u64,
        message: String,
    },
    /// Epoch `epoch` was written by a newer Tidelake.
    Newer {
        epoch: u64,
        format: u32,
    },
}

impl LeaseEntry {
    /// The newest epoch (0 when absent).
    pub fn epoch(&self) -> u64 {
        match self {
            LeaseEntry::Absent => 0,
            LeaseEntry::Record(r) => r.epoch,
            LeaseEntry::Corrupt { epoch, .. } | LeaseEntry::Newer { epoch, .. } => *epoch,
        }
    }
}

/// Lease records of a warehouse.
#[derive(Clone)]
pub struct LeaseStore {
    store: WarehouseStore,
}

impl LeaseStore {
    pub fn new(store: WarehouseStore) -> Self {
        LeaseStore { store }
    }

    fn dir(kind: &str, name: &str) -> String {
        format!("{LEASES_DIR}/{kind}/{name}")
    }

    fn path(kind: &str, name: &str, epoch: u64) -> String {
        format!("{}/epoch-{epoch:020}.json", Self::dir(kind, name))
    }

    /// The names of the leases of `kind` that have a folder, sorted.
    pub async fn names(&self, kind: &str) -> Result<Vec<String>> {
        let (dirs, _) = list_level(&self.store, &format!("{LEASES_DIR}/{kind}")).await?;
        let mut names: Vec<String> = dirs.iter().map(|d| last_segment(d)).collect();
        names.sort();
        Ok(names)
    }

    async fn epochs(&self, kind: &str, name: &str) -> Result<Vec<u64>> {
        let (_, files) = list_level(&self.store, &Self::dir(kind, name)).await?;
        let mut epochs: Vec<u64> = files
            .iter()
            .filter_map(|p| parse_numbered(p, "epoch-"))
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// The newest epoch of a lease.
    pub async fn read(&self, kind: &str, name: &str) -> Result<LeaseEntry> {
        let Some(&epoch) = self.epochs(kind, name).await?.last() else {
            return Ok(LeaseEntry::Absent);
        };
        let bytes = match self.store.get(&Self::path(kind, name, epoch)).await {
            Ok(bytes) => bytes,
            // Pruned between the listing and the read: a newer one exists.
            Err(StoreError::NotFound { .. }) => return Box::pin(self.read(kind, name)).await,
            Err(e) => return Err(e.into()),
        };
        Ok(parse_lease(epoch, &bytes))
    }

    /// Creates epoch `record.epoch` if absent; `Ok(false)` when it exists
    /// (another worker wrote it first).
    pub async fn write(&self, kind: &str, name: &str, record: &LeaseRecord) -> Result<bool> {
        let json = serde_json::to_vec(record)
            .map_err(|e| EngineError::Internal(format!("cannot write a lease record: {e}")))?;
        let path = Self::path(kind, name, record.epoch);
        Ok(self
            .store
            .create_if_absent(&path, Bytes::from(json))
            .await?
            == PutOutcome::Created)
    }

    /// Deletes the epochs of a lease older than `keep_from` (best effort:
    /// they are history, never read once a newer one exists).
    pub async fn prune(&self, kind: &str, name: &str, keep_from: u64) -> Result<()> {
        for epoch in self.epochs(kind, name).await? {
            if epoch >= keep_from {
                break;
            }
            match self.store.delete(&Self::path(kind, name, epoch)).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes a lease's whole folder (a worker's membership when it leaves).
    pub async fn remove(&self, kind: &str, name: &str) -> Result<()> {
        match self.store.delete_dir(&Self::dir(kind, name)).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads one epoch's bytes: a record, a newer format, or corrupt.
pub fn parse_lease(epoch: u64, bytes: &[u8]) -> LeaseEntry {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return LeaseEntry::Corrupt {
                epoch,
                message: format!("not JSON: {e}"),
            }
        }
    };
    if let Some(format) = value.get("format").and_then(|f| f.as_u64()) {
        if format > u64::from(SERVICE_FORMAT) {
            return LeaseEntry::Newer {
                epoch,
                format: u32::try_from(format).unwrap_or(u32::MAX),
            };
        }
    }
    match serde_json::from_value::<LeaseRecord>(value) {
        Ok(record) if record.epoch == epoch => LeaseEntry::Record(record),
        Ok(record) => LeaseEntry::Corrupt {
            epoch,
            message: format!("the file of epoch {epoch} says epoch {}", record.epoch),
        },
        Err(e) => LeaseEntry::Corrupt {
            epoch,
            message: format!("not a lease record: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, epoch: u64) -> LeaseRecord {
        LeaseRecord {
            format: SERVICE_FORMAT,
            holder: holder.into(),
            epoch,
            ttl_ms: 10_000,
            written_at_ms: 1,
            released: false,
            note: None,
        }
    }

    #[tokio::test]
    async fn one_of_two_racing_writers_creates_an_epoch() {
        let leases = LeaseStore::new(WarehouseStore::open("memory://").await.unwrap());
        assert_eq!(leases.read("job", "a").await.unwrap(), LeaseEntry::Absent);
        let (first, second) = (record("w1", 1), record("w2", 1));
        let (a, b) = tokio::join!(
            leases.write("job", "a", &first),
            leases.write("job", "a", &second)
        );
        assert!(a.unwrap() ^ b.unwrap());
        assert!(leases.write("job", "a", &record("w1", 2)).await.unwrap());
        leases.prune("job", "a", 2).await.unwrap();
        assert_eq!(leases.epochs("job", "a").await.unwrap(), [2]);
        assert_eq!(
            leases.read("job", "a").await.unwrap(),
            LeaseEntry::Record(record("w1", 2))
        );
        assert_eq!(leases.names("job").await.unwrap(), ["a"]);
    }

    #[test]
    fn corrupt_and_newer_records_are_told_apart() {
        assert!(matches!(
            parse_lease(3, b"{not json"),
            LeaseEntry::Corrupt { epoch: 3, .. }
        ));
        assert!(matches!(
            parse_lease(3, br#"{"format": 1}"#),
            LeaseEntry::Corrupt { epoch: 3, .. }
        ));
        assert_eq!(
            parse_lease(3, br#"{"format": 7, "whatever": true}"#),
            LeaseEntry::Newer {
                epoch: 3,
                format: 7
            }
        );
        let json = serde_json::to_vec(&record("w", 4)).unwrap();
        assert!(matches!(parse_lease(3, &json), LeaseEntry::Corrupt { .. }));
    }

    #[tokio::test]
    async fn declarations_are_versioned_and_changes_race_safely() {
        let jobs = JobCatalog::new(WarehouseStore::open("memory://").await.unwrap());
        let mut d = JobDeclaration {
            format: SERVICE_FORMAT,
            name: "daily".into(),
            kind: "sql".into(),
            statement: "INSERT INTO s SELECT * FROM t".into(),
            database: "default".into(),
            state: DeclaredState::Running,
            version: 0,
            written_at_ms: 0,
        };
        assert!(jobs.write_version(&d, 0).await.unwrap());
        // Another session's version 1 (the same bytes would be this one's).
        let mut other = d.clone();
        other.written_at_ms = 1;
        assert!(!jobs.write_version(&other, 0).await.unwrap());
        d.state = DeclaredState::Suspended;
        assert!(jobs.write_version(&d, 1).await.unwrap());
        let got = jobs.get("daily").await.unwrap().unwrap();
        assert_eq!((got.version, got.state), (2, DeclaredState::Suspended));
        d.state = DeclaredState::Dropped;
        assert!(jobs.write_version(&d, 2).await.unwrap());
        assert!(jobs.list().await.unwrap().is_empty());
        assert_eq!(jobs.names().await.unwrap(), ["daily"]);
    }
}
