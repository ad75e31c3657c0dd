//! What `sys.jobs` and `SHOW JOBS` say about each declared job, read from
//! the warehouse alone (declarations, leases, the sink's progress), so any
//! session on any process answers the same.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use tidelake_engine::services::{
    DeclaredState, JobCatalog, JobDeclaration, LeaseEntry, LeaseStore,
};
use tidelake_engine::Catalog;
use tidelake_sql::SqlError;
use tidelake_stream::{JobOptions, StreamingJob};

/// The lease kind of jobs.
pub const JOB_LEASE: &str = "job";

/// One row of `sys.jobs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    pub name: String,
    pub kind: String,
    /// RUNNING, PENDING (no worker holds it yet), FAILING (its worker
    /// reports an error and retries), SUSPENDED.
    pub state: String,
    /// The worker holding its lease.
    pub owner: Option<String>,
    /// Source snapshots committed and not yet in the sink.
    pub lag: Option<i64>,
    pub last_commit_ms: Option<i64>,
    pub last_commit_snapshot: Option<i64>,
    pub last_error: Option<String>,
    pub statement: String,
    pub database: String,
    pub version: u64,
}

/// Who holds a lease, judged by the reader's wall clock (for display
/// only: workers never decide by wall clocks).
fn lease_owner(entry: &LeaseEntry, now_ms: i64) -> (Option<String>, Option<String>) {
    match entry {
        LeaseEntry::Record(r) if !r.released => {
            let ttl = i64::try_from(r.ttl_ms).unwrap_or(i64::MAX);
            if r.written_at_ms.saturating_add(ttl) >= now_ms {
                (Some(r.holder.clone()), r.note.clone())
            } else {
                (None, None)
            }
        }
        LeaseEntry::Newer { format, .. } => (
            Some(format!("(a newer Tidelake, lease format {format})")),
            None,
        ),
        LeaseEntry::Corrupt { message, .. } => {
            (None, Some(format!("corrupt lease record: {message}")))
        }
        _ => (None, None),
    }
}

async fn row(catalog: &Catalog, leases: &LeaseStore, d: JobDeclaration, now_ms: i64) -> JobRow {
    let (owner, note) = match leases.read(JOB_LEASE, &d.name).await {
        Ok(entry) => lease_owner(&entry, now_ms),
        Err(e) => (None, Some(format!("cannot read its lease: {e}"))),
    };
    let state = match (d.state, &owner, &note) {
        (DeclaredState::Suspended, ..) => "SUSPENDED",
        (DeclaredState::Dropped, ..) => "DROPPED",
        (DeclaredState::Running, Some(_), Some(_)) => "FAILING",
        (DeclaredState::Running, Some(_), None) => "RUNNING",
        (DeclaredState::Running, None, _) => "PENDING",
    };
    let mut row = JobRow {
        name: d.name.clone(),
        kind: d.kind.clone(),
        state: state.into(),
        owner,
        lag: None,
        last_commit_ms: None,
        last_commit_snapshot: None,
        last_error: note,
        statement: d.statement.clone(),
        database: d.database.clone(),
        version: d.version,
    };
    let position = async {
        let job = StreamingJob::prepare_in(
            catalog,
            &d.database,
            &d.name,
            &d.statement,
            JobOptions::default(),
        )
        .await?;
        job.position().await
    };
    match position.await {
        Ok(p) => {
            row.lag = Some(p.lag());
            row.last_commit_snapshot = p.last_commit.map(|c| c.0);
            row.last_commit_ms = p.last_commit.map(|c| c.1);
        }
        Err(e) => {
            row.last_error.get_or_insert_with(|| e.to_string());
        }
    }
    row
}

/// Every declared job that is not dropped, by name.
pub async fn job_rows(catalog: &Catalog) -> Result<Vec<JobRow>, SqlError> {
    let jobs = JobCatalog::new(catalog.store().clone());
    let leases = LeaseStore::new(catalog.store().clone());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut rows = Vec::new();
    for (name, declared) in jobs.list().await? {
        match declared {
            Ok(d) => rows.push(row(catalog, &leases, d, now_ms).await),
            Err(e) => rows.push(JobRow {
                name,
                kind: String::new(),
                state: "UNREADABLE".into(),
                owner: None,
                lag: None,
                last_commit_ms: None,
                last_commit_snapshot: None,
                last_error: Some(e.to_string()),
                statement: String::new(),
                database: String::new(),
                version: 0,
            }),
        }
    }
    Ok(rows)
}

/// The rows as one batch of `sys.jobs`.
pub fn rows_batch(rows: &[JobRow]) -> Result<RecordBatch, SqlError> {
    let text = |f: fn(&JobRow) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("owner", DataType::Utf8, true),
        Field::new("lag", DataType::Int64, true),
        Field::new(
            "last_commit",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("last_commit_snapshot", DataType::Int64, true),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("statement", DataType::Utf8, false),
        Field::new("database", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        text(|r| Some(r.name.as_str())),
        text(|r| Some(r.kind.as_str())),
        text(|r| Some(r.state.as_str())),
        text(|r| r.owner.as_deref()),
        Arc::new(rows.iter().map(|r| r.lag).collect::<Int64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.last_commit_ms)
                .collect::<TimestampMillisecondArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.last_commit_snapshot)
                .collect::<Int64Array>(),
        ),
        text(|r| r.last_error.as_deref()),
        text(|r| Some(r.statement.as_str())),
        text(|r| Some(r.database.as_str())),
        Arc::new(
            rows.iter()
                .map(|r| Some(i64::try_from(r.version).unwrap_or(i64::MAX)))
                .collect::<Int64Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
