//! One PostgreSQL connection: its Tidelake session, settings, cursors and
//! the statement that runs now (which a CancelRequest or the statement
//! timeout ends). Statements the server answers itself (`SET`, `SHOW`,
//! transactions, cursors, catalog queries) are recognised here; everything
//! else goes to the session.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::{Future, StreamExt};
use pgwire::api::portal::Portal;
use tidelake_sql::{PreparedPoint, QueryHandler, ScalarValue, SqlError, StreamingResult};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::catalog::{self, Oids};
use super::settings::{version_text, Settings};
use crate::telemetry::{self, StatementRecord};
use crate::users::{classify, Principal, Role, StatementClass};
use crate::{Shared, StatementError};

/// Rows still to be read.
pub type Batches = BoxStream<'static, Result<RecordBatch, StatementError>>;

/// What a statement produced.
pub enum Outcome {
    Rows {
        schema: SchemaRef,
        batches: Batches,
        tag: &'static str,
    },
    /// A command tag (`CREATE TABLE`, `INSERT 0 3`) and its row count.
    Status {
        command: String,
        rows: Option<u64>,
    },
    Begin,
    /// COMMIT or ROLLBACK.
    End(&'static str),
    /// A cursor was declared (the protocol may describe it as a portal).
    Declared(String),
    /// Cursors were closed.
    Closed(Vec<String>),
}

impl Outcome {
    fn status(command: &str) -> Outcome {
        Outcome::Status {
            command: command.to_string(),
            rows: None,
        }
    }

    /// Rows held in memory.
    pub fn rows(schema: SchemaRef, batches: Vec<RecordBatch>, tag: &'static str) -> Outcome {
        Outcome::Rows {
            schema,
            batches: futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
            tag,
        }
    }

    /// The same outcome with its rows read into memory.
    pub async fn buffered(self) -> Result<Outcome, StatementError> {
        match self {
            Outcome::Rows {
                schema,
                batches,
                tag,
            } => {
                let all: Vec<RecordBatch> = futures::TryStreamExt::try_collect(batches).await?;
                Ok(Outcome::rows(schema, all, tag))
            }
            other => Ok(other),
        }
    }
}

/// The command tag PostgreSQL reports for a statement (`INSERT 0 3`).
pub fn command_tag(command: &str, rows: Option<u64>) -> String {
    match (command, rows) {
        // The INSERT tag carries an (always zero) OID.
        ("INSERT", Some(n)) => format!("INSERT 0 {n}"),
        (c, Some(n)) => format!("{c} {n}"),
        (c, None) => c.to_string(),
    }
}

/// A cursor declared with `DECLARE name CURSOR FOR query`.
struct Cursor {
    schema: SchemaRef,
    batches: Batches,
    buffered: VecDeque<RecordBatch>,
}

/// The state of one connection.
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
    session: OnceLock<Arc<dyn QueryHandler>>,
    pub(crate) settings: Mutex<Settings>,
    current: Mutex<CancellationToken>,
    cursors: tokio::sync::Mutex<HashMap<String, Cursor>>,
    oids: Oids,
    pub(crate) user: Mutex<String>,
    /// Who is connected, as authenticated (or trusted without users).
    principal: Mutex<Principal>,
    /// Where authentication is (PostgreSQL startup).
    pub(crate) auth: Mutex<Option<super::handler::AuthStep>>,
    /// `pg` or `http`, for the metrics.
    protocol: &'static str,
    /// What a Describe of a portal ran, for the Execute that follows
    /// (keyed by the portal's identity, so a new Bind never sees it).
    stashed: Mutex<Option<(usize, Outcome)>>,
}

fn portal_key<S>(portal: &Portal<S>) -> usize {
    Arc::as_ptr(&portal.state) as usize
}

/// A session's result as an outcome; a query's admission slot (if any) is
/// held until its last row is read (or the rows dropped).
fn session_outcome(result: StreamingResult, admitted: Option<Admitted>, guard: &Guard) -> Outcome {
    match result {
        StreamingResult::Rows(q) => Outcome::Rows {
            schema: q.schema,
            batches: guard.stream(
                q.stream
                    .map(move |r| {
                        let _slot = &admitted;
                        r.map_err(StatementError::from)
                    })
                    .boxed(),
            ),
            tag: "SELECT",
        },
        StreamingResult::Status(s) => Outcome::Status {
            command: s.command.to_string(),
            rows: s.rows,
        },
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    pub fn new(shared: Arc<Shared>, protocol: &'static str) -> Connection {
        let timeout = shared.statement_timeout;
        Connection {
            shared,
            session: OnceLock::new(),
            settings: Mutex::new(Settings::new(timeout)),
            current: Mutex::new(CancellationToken::new()),
            cursors: tokio::sync::Mutex::new(HashMap::new()),
            oids: Oids::default(),
            user: Mutex::new("tidelake".into()),
            principal: Mutex::new(Principal::trusted("tidelake")),
            protocol,
            auth: Mutex::new(None),
            stashed: Mutex::new(None),
        }
    }

    /// The connection's user, authenticated.
    pub fn set_principal(&self, principal: Principal) {
        *lock(&self.user) = principal.name.clone();
        *lock(&self.principal) = principal;
    }

    pub fn principal(&self) -> Principal {
        lock(&self.principal).clone()
    }

    pub fn set_session(&self, session: Arc<dyn QueryHandler>) {
        let _ = self.session.set(session);
    }

    pub fn session(&self) -> Result<&Arc<dyn QueryHandler>, StatementError> {
        self.session
            .get()
            .ok_or_else(|| StatementError::refused("08P01", "the connection has no session yet"))
    }

    /// Keeps what a Describe ran for the portal's Execute.
    pub fn stash<S>(&self, portal: &Portal<S>, outcome: Outcome) {
        *lock(&self.stashed) = Some((portal_key(portal), outcome));
    }

    /// What a Describe of this very portal ran, if anything.
    pub fn take_stashed<S>(&self, portal: &Portal<S>) -> Option<Outcome> {
        let mut stashed = lock(&self.stashed);
        match stashed.take() {
            Some((key, outcome)) if key == portal_key(portal) => Some(outcome),
            _ => None,
        }
    }

    /// Cancels the statement running now (from a CancelRequest).
    pub fn cancel(&self) {
        lock(&self.current).cancel();
    }

    /// A fresh guard for the next statement: its cancel token and deadline.
    pub fn begin_statement(&self) -> Guard {
        let token = CancellationToken::new();
        *lock(&self.current) = token.clone();
        let timeout = lock(&self.settings).statement_timeout;
        Guard {
            token,
            deadline: timeout.map(|t| Instant::now() + t),
        }
    }

    /// Runs one statement under `guard`, if the connection's user may:
    /// recorded in the metrics and the server's stats from its start to its
    /// last row.
    pub async fn run(&self, sql: &str, guard: &Guard) -> Result<Outcome, StatementError> {
        self.run_recorded(sql, self.dispatch(sql, guard)).await
    }

    /// Runs a prepared point query (`sql`, with `$n` parameters) with
    /// `params` as a key lookup, as [`Connection::run`] runs a statement;
    /// when the point query declines, `declined` is called and the
    /// statement `bind` gives (the parameters in place) runs the normal way.
    pub async fn run_point(
        &self,
        sql: &str,
        point: &PreparedPoint,
        params: &[ScalarValue],
        bind: impl FnOnce() -> Result<String, StatementError>,
        declined: impl FnOnce(),
        guard: &Guard,
    ) -> Result<Outcome, StatementError> {
        let work = async {
            let session = self.session()?.clone();
            let database = session.current_database();
            let admitted = self.admit(guard).await?;
            let answered = guard
                .run(async { Ok(point.execute(&database, params).await?) })
                .await?;
            match answered {
                Some(result) => {
                    metrics::counter!(telemetry::PREPARED_POINT_QUERIES).increment(1);
                    Ok(session_outcome(result, admitted, guard))
                }
                None => {
                    drop(admitted);
                    declined();
                    let sql = bind()?;
                    self.dispatch(&sql, guard).await
                }
            }
        };
        self.run_recorded(sql, work).await
    }

    /// Runs `work` (the statement `sql`) if the connection's user may run
    /// `sql`: recorded in the metrics and the server's stats from its start
    /// to its last row.
    async fn run_recorded(
        &self,
        sql: &str,
        work: impl Future<Output = Result<Outcome, StatementError>>,
    ) -> Result<Outcome, StatementError> {
        let write = classify(sql) == StatementClass::Write;
        let mut record = StatementRecord::start(self.protocol, write);
        let mut running = self.shared.stats.statement();
        let outcome = match self.authorize(sql).await {
            Ok(()) => work.await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Outcome::Rows {
                schema,
                batches,
                tag,
            }) => {
                // Running (and maybe failing) until its rows are read.
                let batches = recorded(batches, record)
                    .inspect(move |batch| {
                        if batch.is_err() {
                            running.failed();
                        }
                    })
                    .boxed();
                Ok(Outcome::Rows {
                    schema,
                    batches,
                    tag,
                })
            }
            Ok(other) => {
                if let Outcome::Status { command, .. } = &other {
                    running.committed_if_write(command);
                }
                record.finish();
                Ok(other)
            }
            Err(e) => {
                record.fail(&e);
                running.failed();
                Err(e)
            }
        }
    }

    /// Refuses what the user's role or databases do not allow (42501).
    async fn authorize(&self, sql: &str) -> Result<(), StatementError> {
        let principal = self.principal();
        if principal.role == Role::Admin && principal.databases.is_empty() {
            return Ok(());
        }
        let databases = if principal.databases.is_empty() {
            Vec::new()
        } else {
            self.database_names().await?
        };
        principal.authorize(sql, &databases).map_err(|denied| {
            tracing::info!(user = %principal.name, "refused: {denied}");
            StatementError::from(denied)
        })
    }

    async fn database_names(&self) -> Result<Vec<String>, StatementError> {
        let result = self
            .session()?
            .execute_stream("SHOW DATABASES")
            .await?
            .collect()
            .await?;
        let mut names = Vec::new();
        if let tidelake_sql::StatementResult::Rows { batches, .. } = result {
            for batch in batches {
                if let Some(column) = batch.columns().first() {
                    names.extend((0..batch.num_rows()).map(|i| crate::values::pg_text(column, i)));
                }
            }
        }
        Ok(names)
    }

    /// Waits for an admission slot (a cancel or the timeout ends the wait).
    async fn admit(&self, guard: &Guard) -> Result<Option<Admitted>, StatementError> {
        let Some(slots) = self.shared.admission.clone() else {
            return Ok(None);
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics::gauge!(telemetry::QUERIES_QUEUED).increment(1.0);
                let waited = guard
                    .run(async move {
                        slots.acquire_owned().await.map_err(|_| {
                            StatementError::refused("57P01", "the server is shutting down")
                        })
                    })
                    .await;
                metrics::gauge!(telemetry::QUERIES_QUEUED).decrement(1.0);
                waited?
            }
        };
        metrics::gauge!(telemetry::QUERIES_RUNNING).increment(1.0);
        Ok(Some(Admitted(permit)))
    }

    async fn dispatch(&self, sql: &str, guard: &Guard) -> Result<Outcome, StatementError> {
        let words = keywords(sql, 3);
        let first = words.first().map(String::as_str).unwrap_or("");
        tracing::debug!(sql, "statement");
        match first {
            "set" => self.set(sql).await,
            "reset" => {
                let name = words.get(1).cloned().unwrap_or_default();
                lock(&self.settings).reset(&name);
                Ok(Outcome::status("RESET"))
            }
            "show" if !is_tidelake_show(&words) => self.show(&words),
            "begin" | "start" => Ok(Outcome::Begin),
            "commit" | "end" => Ok(Outcome::End("COMMIT")),
            "rollback" | "abort" => Ok(Outcome::End("ROLLBACK")),
            "discard" | "deallocate" | "savepoint" | "release" | "listen" | "unlisten" => {
                Ok(Outcome::status(&first.to_ascii_uppercase()))
            }
            "declare" => self.declare(sql, guard).await,
            "fetch" | "move" => self.fetch(sql, first == "move", guard).await,
            "close" => self.close(sql).await,
            _ => self.run_query(sql, guard).await,
        }
    }

    /// A query or a statement of the session's SQL (not the server's own).
    async fn run_query(&self, sql: &str, guard: &Guard) -> Result<Outcome, StatementError> {
        if !catalog::is_catalog_query(sql) {
            return self.run_in_session(sql, guard).await;
        }
        let session = self.session()?;
        let user = lock(&self.user).clone();
        let cx = catalog::Context {
            session,
            oids: &self.oids,
            user: &user,
            version: &version_text(),
        };
        let batch = guard
            .run(async { Ok(catalog::answer(sql, &cx).await?) })
            .await?;
        Ok(Outcome::rows(batch.schema(), vec![batch], "SELECT"))
    }

    async fn run_in_session(&self, sql: &str, guard: &Guard) -> Result<Outcome, StatementError> {
        let session = self.session()?.clone();
        let admitted = self.admit(guard).await?;
        let result = guard
            .run(async move { Ok(session.execute_stream(sql).await?) })
            .await?;
        Ok(session_outcome(result, admitted, guard))
    }

    /// `SET name TO value`, `SET search_path = db`, `SET TIME ZONE 'UTC'`.
    async fn set(&self, sql: &str) -> Result<Outcome, StatementError> {
        let body = sql.trim().trim_end_matches(';').trim();
        let rest = strip_word(body, "set");
        let rest = strip_word(strip_word(rest, "session"), "local");
        let (name, value) = if let Some(v) = strip_word_opt(rest, "time") {
            ("timezone".to_string(), strip_word(v, "zone").to_string())
        } else {
            let split = rest
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(rest.len());
            let (name, value) = rest.split_at(split);
            let value = value.trim_start();
            let value = value
                .strip_prefix('=')
                .or_else(|| strip_word_opt(value, "to"))
                .unwrap_or(value);
            (
                name.trim_matches('"').to_ascii_lowercase(),
                value.trim().to_string(),
            )
        };
        if name.is_empty() || value.is_empty() {
            return Err(StatementError::Sql(SqlError::syntax(
                "SET needs a parameter and a value: SET name TO value",
                None,
            )));
        }
        if name == "search_path" {
            self.set_search_path(&value).await?;
            return Ok(Outcome::status("SET"));
        }
        let value = unquote(&value);
        if value.eq_ignore_ascii_case("default") {
            lock(&self.settings).reset(&name);
        } else {
            lock(&self.settings).set(&name, &value)?;
        }
        Ok(Outcome::status("SET"))
    }

    /// The first database of the path that exists becomes the current one;
    /// as in PostgreSQL, names that do not exist (`"$user"`, `public`) are
    /// passed over without an error.
    async fn set_search_path(&self, value: &str) -> Result<(), StatementError> {
        if value.eq_ignore_ascii_case("default") {
            return Ok(());
        }
        let session = self.session()?;
        for entry in value.split(',') {
            let database = entry.trim().trim_matches('\'').trim_matches('"');
            if database.is_empty() || database == "$user" || database == "pg_catalog" {
                continue;
            }
            // As PostgreSQL passes over schemas the user may not use.
            if !self.principal().may_use(database) {
                continue;
            }
            match session
                .execute_stream(&format!("USE {}", quote_ident(database)))
                .await
            {
                Ok(_) => return Ok(()),
                Err(SqlError::UndefinedDatabase(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn show(&self, words: &[String]) -> Result<Outcome, StatementError> {
        let mut name = words.get(1).cloned().unwrap_or_default();
        // SHOW TRANSACTION ISOLATION LEVEL (pgjdbc) is transaction_isolation.
        if name == "transaction" && words.get(2).is_some_and(|w| w == "isolation") {
            name = "transaction_isolation".into();
        }
        let settings = lock(&self.settings);
        let (schema, column): (SchemaRef, StringArray) = if name == "all" {
            let all = settings.all();
            let schema = Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]);
            let names = StringArray::from_iter_values(all.iter().map(|(k, _)| k.clone()));
            let values = StringArray::from_iter_values(all.iter().map(|(_, v)| v.clone()));
            let batch =
                RecordBatch::try_new(Arc::new(schema), vec![Arc::new(names), Arc::new(values)])
                    .map_err(SqlError::from)?;
            return Ok(Outcome::rows(batch.schema(), vec![batch], "SHOW"));
        } else if name == "search_path" {
            let database = self.session()?.current_database();
            (
                Arc::new(Schema::new(vec![Field::new(&name, DataType::Utf8, false)])),
                StringArray::from(vec![database]),
            )
        } else {
            let value = settings.get(&name).ok_or_else(|| {
                StatementError::refused(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                )
            })?;
            (
                Arc::new(Schema::new(vec![Field::new(&name, DataType::Utf8, false)])),
                StringArray::from(vec![value]),
            )
        };
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).map_err(SqlError::from)?;
        Ok(Outcome::rows(schema, vec![batch], "SHOW"))
    }

    /// `DECLARE name [BINARY] [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`.
    async fn declare(&self, sql: &str, guard: &Guard) -> Result<Outcome, StatementError> {
        let lower = sql.to_ascii_lowercase();
        let body = strip_word(sql.trim(), "declare");
        let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let name = unquote_ident(&body[..name_end]);
        let Some(for_at) = find_word(&lower, "for") else {
            return Err(SqlError::syntax("DECLARE name CURSOR FOR query", None).into());
        };
        let query = &sql[for_at + 3..];
        let (schema, batches) = match self.run_query(query, guard).await? {
            Outcome::Rows {
                schema, batches, ..
            } => (schema, batches),
            _ => {
                return Err(StatementError::refused(
                    "42P11",
                    "a cursor can only be declared for a statement that returns rows",
                ))
            }
        };
        let mut cursors = self.cursors.lock().await;
        if cursors.contains_key(&name) {
            return Err(StatementError::refused(
                "42P03",
                format!("cursor \"{name}\" already exists"),
            ));
        }
        cursors.insert(
            name.clone(),
            Cursor {
                schema,
                batches,
                buffered: VecDeque::new(),
            },
        );
        Ok(Outcome::Declared(name))
    }

    /// The columns of a declared cursor.
    pub async fn cursor_schema(&self, name: &str) -> Option<SchemaRef> {
        self.cursors
            .lock()
            .await
            .get(name)
            .map(|c| c.schema.clone())
    }

    /// `FETCH [FORWARD] [n | ALL | NEXT] [FROM | IN] name` (or MOVE).
    async fn fetch(&self, sql: &str, skip: bool, guard: &Guard) -> Result<Outcome, StatementError> {
        let words: Vec<String> = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect();
        let mut count: Option<usize> = Some(1);
        let mut name = None;
        for w in &words {
            let lw = w.to_ascii_lowercase();
            match lw.as_str() {
                "forward" | "from" | "in" | "next" => {}
                "all" => count = None,
                _ if lw.parse::<usize>().is_ok() => count = lw.parse().ok(),
                _ => name = Some(unquote_ident(w)),
            }
        }
        let Some(name) = name else {
            return Err(SqlError::syntax("FETCH needs a cursor name", None).into());
        };
        let mut cursors = self.cursors.lock().await;
        let cursor = cursors.get_mut(&name).ok_or_else(|| {
            StatementError::refused("34000", format!("cursor \"{name}\" does not exist"))
        })?;
        let rows = guard.run(take_rows(cursor, count)).await?;
        let n: usize = rows.iter().map(|b| b.num_rows()).sum();
        if skip {
            return Ok(Outcome::Status {
                command: "MOVE".into(),
                rows: Some(n as u64),
            });
        }
        Ok(Outcome::rows(cursor.schema.clone(), rows, "FETCH"))
    }

    async fn close(&self, sql: &str) -> Result<Outcome, StatementError> {
        let rest = strip_word(sql.trim(), "close").trim_end_matches(';').trim();
        let mut cursors = self.cursors.lock().await;
        if rest.eq_ignore_ascii_case("all") {
            return Ok(Outcome::Closed(cursors.drain().map(|(k, _)| k).collect()));
        }
        if rest.is_empty() {
            return Err(SqlError::syntax("CLOSE needs a cursor name or ALL", None).into());
        }
        let name = unquote_ident(rest);
        match cursors.remove(&name) {
            Some(_) => Ok(Outcome::Closed(vec![name])),
            None => Err(StatementError::refused(
                "34000",
                format!("cursor \"{name}\" does not exist"),
            )),
        }
    }

    /// Closes every cursor (the transaction they belong to ended).
    pub async fn close_cursors(&self) -> Vec<String> {
        self.cursors.lock().await.drain().map(|(k, _)| k).collect()
    }
}

/// An admission slot, counted as running while held.
struct Admitted(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl Drop for Admitted {
    fn drop(&mut self) {
        metrics::gauge!(telemetry::QUERIES_RUNNING).decrement(1.0);
    }
}

/// The rows of `batches`, counted into `record` as they pass; the record
/// ends with the stream (finished, failed, or dropped unread).
fn recorded(batches: Batches, record: StatementRecord) -> Batches {
    futures::stream::unfold((batches, record), |(mut batches, mut record)| async move {
        match batches.next().await {
            Some(Ok(batch)) => {
                record.rows(batch.num_rows());
                Some((Ok(batch), (batches, record)))
            }
            Some(Err(e)) => {
                record.fail(&e);
                Some((Err(e), (batches, record)))
            }
            None => {
                record.finish();
                None
            }
        }
    })
    .boxed()
}

/// Up to `count` rows of a cursor (all with `None`).
async fn take_rows(
    cursor: &mut Cursor,
    count: Option<usize>,
) -> Result<Vec<RecordBatch>, StatementError> {
    let mut out = Vec::new();
    let mut wanted = count.unwrap_or(usize::MAX);
    while wanted > 0 {
        let batch = match cursor.buffered.pop_front() {
            Some(b) => b,
            None => match cursor.batches.next().await {
                Some(b) => b?,
                None => break,
            },
        };
        if batch.num_rows() > wanted {
            out.push(batch.slice(0, wanted));
            cursor
                .buffered
                .push_front(batch.slice(wanted, batch.num_rows() - wanted));
            wanted = 0;
        } else {
            wanted -= batch.num_rows();
            out.push(batch);
        }
    }
    Ok(out)
}

/// How long a statement may run and what cancels it.
pub struct Guard {
    token: CancellationToken,
    deadline: Option<Instant>,
}

impl Guard {
    /// Runs `work` unless the statement is cancelled or times out first.
    pub async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, StatementError>>,
    ) -> Result<T, StatementError> {
        let deadline = self.deadline;
        let expired = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            result = work => result,
            _ = self.token.cancelled() => Err(StatementError::user_cancel()),
            _ = expired => Err(StatementError::timeout()),
        }
    }

    /// The rows of `batches`, ending with an error if the statement is
    /// cancelled or times out while they are read.
    pub fn stream(&self, batches: Batches) -> Batches {
        let token = self.token.clone();
        let deadline = self.deadline;
        futures::stream::unfold(Some(batches), move |state| {
            let token = token.clone();
            async move {
                let mut batches = state?;
                let expired = async move {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => futures::future::pending().await,
                    }
                };
                tokio::select! {
                    next = batches.next() => next.map(|item| (item, Some(batches))),
                    _ = token.cancelled() => Some((Err(StatementError::user_cancel()), None)),
                    _ = expired => Some((Err(StatementError::timeout()), None)),
                }
            }
        })
        .boxed()
    }
}

/// A statement's first words, lowercased, comments skipped.
pub fn keywords(sql: &str, n: usize) -> Vec<String> {
    let mut text = sql.trim_start();
    loop {
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    text.trim_start_matches('(')
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .take(n)
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

/// Whether a statement returns rows (so Describe must say which).
pub fn returns_rows(sql: &str) -> bool {
    let words = keywords(sql, 3);
    matches!(
        words.first().map(String::as_str),
        Some(
            "select"
                | "with"
                | "values"
                | "table"
                | "show"
                | "describe"
                | "desc"
                | "explain"
                | "call"
                | "fetch"
        )
    )
}

/// `SHOW DATABASES`, `SHOW TABLES`, `SHOW CREATE TABLE`, `SHOW JOBS` are Tidelake's.
fn is_tidelake_show(words: &[String]) -> bool {
    matches!(
        words.get(1).map(String::as_str),
        Some("databases" | "tables" | "create" | "jobs")
    )
}

fn strip_word<'a>(text: &'a str, word: &str) -> &'a str {
    strip_word_opt(text, word).unwrap_or(text)
}

fn strip_word_opt<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let t = text.trim_start();
    let head = t.get(..word.len())?;
    let next = t[word.len()..].chars().next();
    (head.eq_ignore_ascii_case(word) && next.is_none_or(|c| c.is_whitespace() || c == '='))
        .then(|| t[word.len()..].trim_start())
}

fn find_word(lower: &str, word: &str) -> Option<usize> {
    lower.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = lower[..i].chars().last();
        let after = lower[i + word.len()..].chars().next();
        before.is_some_and(char::is_whitespace) && after.is_some_and(char::is_whitespace)
    })
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        v[1..v.len() - 1].replace("''", "'")
    } else {
        v.to_string()
    }
}

/// A cursor or database name: quoted names keep their case.
fn unquote_ident(name: &str) -> String {
    let n = name.trim().trim_end_matches(';');
    if n.len() >= 2 && n.starts_with('"') && n.ends_with('"') {
        n[1..n.len() - 1].replace("\"\"", "\"")
    } else {
        n.to_ascii_lowercase()
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_skip_comments() {
        assert_eq!(keywords("-- x\n/* y */ SELECT 1", 2), ["select", "1"]);
        assert!(returns_rows("  with x as (select 1) select * from x"));
        assert!(!returns_rows("INSERT INTO t VALUES (1)"));
    }

    #[test]
    fn set_words() {
        assert_eq!(strip_word_opt("TO 5", "to"), Some("5"));
        assert_eq!(strip_word_opt("tomato", "to"), None);
        assert_eq!(unquote_ident("\"My Cur\""), "My Cur");
        assert_eq!(unquote("'a''b'"), "a'b");
    }
}
