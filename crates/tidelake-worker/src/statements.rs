//! The job statements, as a session extension:
//!
//! ```sql
//! CREATE JOB [IF NOT EXISTS] name AS INSERT INTO db.sink SELECT ... ;
//! SHOW JOBS;   DESCRIBE JOB name;   SELECT * FROM sys.jobs;
//! ALTER JOB name SUSPEND | RESUME;   DROP JOB [IF EXISTS] name;
//! ```
//!
//! A job is declared in the warehouse (`tidelake_engine::services`), never
//! in the session: whichever worker holds its lease runs it. `CREATE JOB`
//! plans the statement with the continuous runner first and refuses it
//! with the runner's own message when it cannot run.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::{MemTable, TableProvider};
use tidelake_engine::services::{DeclaredState, JobCatalog, JobDeclaration, SERVICE_FORMAT};
use tidelake_engine::Catalog;
use tidelake_sql::extension::StatementContext;
use tidelake_sql::{CommandStatus, SessionExtension, SqlError, StatementResult};
use tidelake_stream::{check_job_name, JobOptions, StreamingJob};

use crate::status::{job_rows, rows_batch, JobRow};

/// The database of system tables this extension serves (`sys.jobs`).
pub const SYS_DATABASE: &str = "sys";

/// A job statement, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStatement {
    Create {
        name: String,
        if_not_exists: bool,
        statement: String,
    },
    Show,
    Describe {
        name: String,
    },
    Alter {
        name: String,
        state: DeclaredState,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
}

/// The words of `sql` with their byte offsets.
fn words(sql: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in sql.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &sql[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &sql[s..]));
    }
    out
}

fn is(word: Option<&(usize, &str)>, keyword: &str) -> bool {
    word.is_some_and(|(_, w)| w.eq_ignore_ascii_case(keyword))
}

fn job_name(word: Option<&(usize, &str)>, after: &str) -> Result<String, SqlError> {
    let Some((_, word)) = word else {
        return Err(SqlError::syntax(
            format!("expected a job name after {after}"),
            None,
        ));
    };
    let name = word.trim_matches('"').to_string();
    check_job_name(&name)?;
    Ok(name)
}

/// Parses a job statement; `None` when `sql` is not one.
pub fn parse(sql: &str) -> Option<Result<JobStatement, SqlError>> {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let w = words(sql);
    let first = w.first().map(|(_, w)| w.to_ascii_uppercase());
    let second = w.get(1).map(|(_, w)| w.to_ascii_uppercase());
    let statement = match (first.as_deref(), second.as_deref()) {
        (Some("CREATE"), Some("JOB")) => parse_create(sql, &w),
        (Some("SHOW"), Some("JOBS")) if w.len() == 2 => Ok(JobStatement::Show),
        (Some("DESCRIBE" | "DESC"), Some("JOB")) if w.len() == 3 => {
            job_name(w.get(2), "DESCRIBE JOB").map(|name| JobStatement::Describe { name })
        }
        (Some("ALTER"), Some("JOB")) => parse_alter(&w),
        (Some("DROP"), Some("JOB")) => {
            let if_exists = is(w.get(2), "IF") && is(w.get(3), "EXISTS");
            let at = if if_exists { 4 } else { 2 };
            match job_name(w.get(at), "DROP JOB") {
                Ok(name) if w.len() == at + 1 => Ok(JobStatement::Drop { name, if_exists }),
                Ok(_) => Err(SqlError::syntax("DROP JOB takes one job name", None)),
                Err(e) => Err(e),
            }
        }
        _ => return None,
    };
    Some(statement)
}

fn parse_create(sql: &str, w: &[(usize, &str)]) -> Result<JobStatement, SqlError> {
    let if_not_exists = is(w.get(2), "IF") && is(w.get(3), "NOT") && is(w.get(4), "EXISTS");
    let at = if if_not_exists { 5 } else { 2 };
    let name = job_name(w.get(at), "CREATE JOB")?;
    if !is(w.get(at + 1), "AS") {
        return Err(SqlError::syntax(
            format!("expected AS after CREATE JOB {name} (CREATE JOB {name} AS INSERT INTO db.sink SELECT ...)"),
            None,
        ));
    }
    let Some(&(offset, _)) = w.get(at + 2) else {
        return Err(SqlError::syntax(
            format!("CREATE JOB {name} AS: the job's INSERT INTO ... SELECT ... is missing"),
            None,
        ));
    };
    Ok(JobStatement::Create {
        name,
        if_not_exists,
        statement: sql[offset..].to_string(),
    })
}

fn parse_alter(w: &[(usize, &str)]) -> Result<JobStatement, SqlError> {
    let name = job_name(w.get(2), "ALTER JOB")?;
    let state = match w.get(3).map(|(_, a)| a.to_ascii_uppercase()).as_deref() {
        Some("SUSPEND") if w.len() == 4 => DeclaredState::Suspended,
        Some("RESUME") if w.len() == 4 => DeclaredState::Running,
        _ => {
            return Err(SqlError::syntax(
                format!("expected ALTER JOB {name} SUSPEND or ALTER JOB {name} RESUME"),
                None,
            ))
        }
    };
    Ok(JobStatement::Alter { name, state })
}

/// The job statements and `sys.jobs`, for every session.
#[derive(Debug, Default)]
pub struct JobsExtension;

#[async_trait]
impl SessionExtension for JobsExtension {
    async fn table(
        &self,
        catalog: &Catalog,
        database: &str,
        name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, SqlError> {
        if database != SYS_DATABASE || name != "jobs" {
            return Ok(None);
        }
        let batch = rows_batch(&job_rows_apart(catalog).await?)?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    async fn statement(
        &self,
        session: &StatementContext<'_>,
        sql: &str,
    ) -> Option<Result<StatementResult, SqlError>> {
        let parsed = parse(sql)?;
        Some(match parsed {
            Ok(statement) => run(session, statement).await,
            Err(e) => Err(e),
        })
    }
}

/// Runs `work` as a task of its own: planning a job inside a statement (or
/// inside DataFusion's planning of a query of `sys.jobs`) nests deep
/// enough to overflow a worker thread's stack in debug builds.
async fn apart<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, SqlError>> + Send + 'static,
) -> Result<T, SqlError> {
    tokio::spawn(work)
        .await
        .map_err(|e| SqlError::Internal(format!("a job statement's task failed: {e}")))?
}

async fn job_rows_apart(catalog: &Catalog) -> Result<Vec<JobRow>, SqlError> {
    let catalog = catalog.clone();
    apart(async move { job_rows(&catalog).await }).await
}

fn not_found(name: &str) -> SqlError {
    SqlError::InvalidParameter(format!(
        "job '{name}' does not exist (SHOW JOBS lists them)"
    ))
}

fn raced(name: &str) -> SqlError {
    SqlError::CommitConflict(format!(
        "job '{name}' was changed by another session meanwhile; nothing was changed, run the statement again"
    ))
}

/// The newest declaration of a job that exists (is not dropped).
async fn live(jobs: &JobCatalog, name: &str) -> Result<Option<JobDeclaration>, SqlError> {
    Ok(jobs
        .get(name)
        .await?
        .filter(|d| d.state != DeclaredState::Dropped))
}

/// Runs one job statement.
pub async fn run(
    session: &StatementContext<'_>,
    statement: JobStatement,
) -> Result<StatementResult, SqlError> {
    let jobs = JobCatalog::new(session.catalog.store().clone());
    match statement {
        JobStatement::Create {
            name,
            if_not_exists,
            statement,
        } => {
            let current = jobs.get(&name).await?;
            if let Some(existing) = current
                .as_ref()
                .filter(|d| d.state != DeclaredState::Dropped)
            {
                if if_not_exists {
                    return Ok(StatementResult::Status(CommandStatus::new("CREATE JOB")));
                }
                return Err(SqlError::InvalidParameter(format!(
                    "job '{name}' already exists ({}; DROP JOB {name} first to declare it again)",
                    existing.state.as_str()
                )));
            }
            // The continuous runner plans it now: what it cannot run is
            // refused here, with its message, not left failing on a worker.
            let (catalog, database) = (session.catalog.clone(), session.database.clone());
            let (job, sql) = (name.clone(), statement.clone());
            apart(async move {
                StreamingJob::prepare_in(&catalog, &database, &job, &sql, JobOptions::default())
                    .await
                    .map(|_| ())
                    .map_err(|e| SqlError::from(crate::error::WorkerError::from(e)))
            })
            .await?;
            let declaration = JobDeclaration {
                format: SERVICE_FORMAT,
                name: name.clone(),
                kind: "sql".into(),
                statement,
                database: session.database.clone(),
                state: DeclaredState::Running,
                version: 0,
                written_at_ms: chrono::Utc::now().timestamp_millis(),
            };
            let after = current.map_or(0, |d| d.version);
            if !jobs.write_version(&declaration, after).await? {
                return Err(raced(&name));
            }
            Ok(StatementResult::Status(CommandStatus::new("CREATE JOB")))
        }
        JobStatement::Alter { name, state } => {
            let Some(mut declaration) = live(&jobs, &name).await? else {
                return Err(not_found(&name));
            };
            if declaration.state != state {
                let after = declaration.version;
                declaration.state = state;
                declaration.written_at_ms = chrono::Utc::now().timestamp_millis();
                if !jobs.write_version(&declaration, after).await? {
                    return Err(raced(&name));
                }
            }
            Ok(StatementResult::Status(CommandStatus::new("ALTER JOB")))
        }
        JobStatement::Drop { name, if_exists } => {
            match live(&jobs, &name).await? {
                Some(mut declaration) => {
                    let after = declaration.version;
                    declaration.state = DeclaredState::Dropped;
                    declaration.written_at_ms = chrono::Utc::now().timestamp_millis();
                    if !jobs.write_version(&declaration, after).await? {
                        return Err(raced(&name));
                    }
                }
                None if if_exists => {}
                None => return Err(not_found(&name)),
            }
            Ok(StatementResult::Status(CommandStatus::new("DROP JOB")))
        }
        JobStatement::Show => {
            let batch = rows_batch(&job_rows_apart(session.catalog).await?)?;
            Ok(StatementResult::Rows {
                schema: batch.schema(),
                batches: vec![batch],
            })
        }
        JobStatement::Describe { name } => {
            let rows = job_rows_apart(session.catalog).await?;
            let Some(row) = rows.into_iter().find(|r| r.name == name) else {
                return Err(not_found(&name));
            };
            describe(&row)
        }
    }
}

/// One job as (property, value) rows.
fn describe(row: &JobRow) -> Result<StatementResult, SqlError> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let pairs: Vec<(&str, String)> = vec![
        ("name", row.name.clone()),
        ("kind", row.kind.clone()),
        ("state", row.state.clone()),
        ("owner", text(&row.owner)),
        ("lag", row.lag.map(|l| l.to_string()).unwrap_or_default()),
        (
            "last_commit",
            row.last_commit_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        ),
        (
            "last_commit_snapshot",
            row.last_commit_snapshot
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
        ("last_error", text(&row.last_error)),
        ("statement", row.statement.clone()),
        ("database", row.database.clone()),
        ("version", row.version.to_string()),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("property", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ]));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(pairs.iter().map(|p| p.0)));
    let values: ArrayRef = Arc::new(StringArray::from_iter_values(
        pairs.iter().map(|p| p.1.as_str()),
    ));
    let batch = RecordBatch::try_new(schema.clone(), vec![names, values])?;
    Ok(StatementResult::Rows {
        schema,
        batches: vec![batch],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_statements_parse() {
        let create = "CREATE JOB daily AS INSERT INTO shop.daily\n SELECT dt, count(*) FROM shop.p GROUP BY dt;";
        assert_eq!(
            parse(create).unwrap().unwrap(),
            JobStatement::Create {
                name: "daily".into(),
                if_not_exists: false,
                statement: "INSERT INTO shop.daily\n SELECT dt, count(*) FROM shop.p GROUP BY dt"
                    .into()
            }
        );
        assert!(matches!(
            parse("create job if not exists \"d\" as insert into s select * from t"),
            Some(Ok(JobStatement::Create {
                if_not_exists: true,
                ..
            }))
        ));
        assert_eq!(parse("show jobs").unwrap().unwrap(), JobStatement::Show);
        assert_eq!(
            parse("ALTER JOB d suspend").unwrap().unwrap(),
            JobStatement::Alter {
                name: "d".into(),
                state: DeclaredState::Suspended
            }
        );
        assert_eq!(
            parse("drop job if exists d").unwrap().unwrap(),
            JobStatement::Drop {
                name: "d".into(),
                if_exists: true
            }
        );
        assert_eq!(
            parse("DESC JOB d").unwrap().unwrap(),
            JobStatement::Describe { name: "d".into() }
        );
        for bad in [
            "CREATE JOB d INSERT INTO s SELECT 1",
            "CREATE JOB d AS",
            "CREATE JOB 'd;x' AS INSERT INTO s SELECT 1",
            "ALTER JOB d STOP",
            "DROP JOB",
        ] {
            assert!(matches!(parse(bad), Some(Err(_))), "{bad}");
        }
        assert!(parse("SELECT 1").is_none());
        assert!(parse("CREATE TABLE jobs (a INT)").is_none());
    }
}
