//! The PostgreSQL protocol handlers of one connection: startup with
//! authentication (SCRAM-SHA-256, or a cleartext password when configured,
//! against the users file; none without one, on loopback only), the simple
//! and the extended query protocol, and CancelRequest.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    ServerParameterProvider, StartupHandler,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{MemPortalStore, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type,
    METADATA_APPLICATION_NAME, METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::{Authentication, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion};
use tidelake_sql::{PreparedPoint, ScalarValue, Session, SqlError};

use super::connection::{command_tag, keywords, returns_rows, Connection, Outcome};
use super::params::{self, Param};
use super::settings::SERVER_VERSION;
use super::types::{encode_batch, fields};
use crate::users::{AuthError, Principal, ScramExchange, SCRAM_MECHANISM};
use crate::{PgAuth, StatementError};

/// A statement of the extended protocol: its text and parameter count,
/// or the cursor a portal of that name stands for.
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    sql: String,
    params: usize,
    cursor: Option<String>,
    /// The statement planned as a point query, decided at an Execute:
    /// `None` undecided, `Some(None)` not one. Forgotten when it declines
    /// (the table's schema changed, say), so the next Execute decides again.
    point: Arc<Mutex<Option<Option<Arc<PreparedPoint>>>>>,
}

/// The handlers of one connection.
#[derive(Clone)]
pub struct Handler {
    pub(crate) conn: Arc<Connection>,
}

impl PgWireServerHandlers for Handler {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(self.clone())
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(self.clone())
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(self.clone())
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(self.clone())
    }
}

fn error_info(e: &StatementError) -> ErrorInfo {
    ErrorInfo::new("ERROR".into(), e.code().into(), e.to_string())
}

fn pg_error(e: StatementError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

/// The parameters announced at startup.
struct Parameters {
    application_name: String,
    user: String,
    database: String,
}

impl ServerParameterProvider for Parameters {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        let pairs = [
            ("server_version", SERVER_VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("is_superuser", "on"),
            ("in_hot_standby", "off"),
            ("default_transaction_read_only", "off"),
            ("application_name", &self.application_name),
            ("session_authorization", &self.user),
            ("search_path", &self.database),
        ];
        Some(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

fn random_i32() -> i32 {
    uuid::Uuid::new_v4().as_u128() as i32
}

/// Where a connection's authentication is.
pub(crate) enum AuthStep {
    /// Waiting for the SASLInitialResponse (SCRAM-SHA-256 offered).
    ScramInitial,
    /// Waiting for the SCRAM client-final message.
    ScramFinal(Box<ScramExchange>),
    /// Waiting for a cleartext password.
    Password,
}

fn auth_failure(user: &str, e: AuthError) -> PgWireError {
    tracing::warn!(user, "authentication failed: {e}");
    crate::telemetry::refused("pg", "auth");
    fatal(e.code(), e.to_string())
}

async fn send_auth<C>(client: &mut C, message: Authentication) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    client.set_state(PgWireConnectionState::AuthenticationInProgress);
    client
        .send(PgWireBackendMessage::Authentication(message))
        .await?;
    Ok(())
}

#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let users = self.conn.shared.users.clone();
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let user = client.metadata().get(METADATA_USER).cloned();
                let Some(users) = users else {
                    let user = user.unwrap_or_else(|| "tidelake".into());
                    return self.complete(client, Principal::trusted(&user)).await;
                };
                if user.is_none() || users.is_empty() {
                    return Err(fatal("28000", "no user name was given".into()));
                }
                match self.conn.shared.pg_auth {
                    PgAuth::ScramSha256 => {
                        *self.auth() = Some(AuthStep::ScramInitial);
                        let offer = vec![SCRAM_MECHANISM.to_string()];
                        send_auth(client, Authentication::SASL(offer)).await
                    }
                    PgAuth::Password => {
                        *self.auth() = Some(AuthStep::Password);
                        send_auth(client, Authentication::CleartextPassword).await
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let (Some(users), Some(step)) = (users, self.auth().take()) else {
                    return Err(fatal("08P01", "unexpected password message".into()));
                };
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                match step {
                    AuthStep::ScramInitial => {
                        let initial = message.into_sasl_initial_response()?;
                        let data = initial.data.unwrap_or_default();
                        let (exchange, first) =
                            ScramExchange::start(&users, &user, &initial.auth_method, &data)
                                .map_err(|e| auth_failure(&user, e))?;
                        *self.auth() = Some(AuthStep::ScramFinal(Box::new(exchange)));
                        send_auth(client, Authentication::SASLContinue(first.into())).await
                    }
                    AuthStep::ScramFinal(exchange) => {
                        let response = message.into_sasl_response()?;
                        let (principal, last) = exchange
                            .finish(&response.data)
                            .map_err(|e| auth_failure(&user, e))?;
                        send_auth(client, Authentication::SASLFinal(last.into())).await?;
                        self.complete(client, principal).await
                    }
                    AuthStep::Password => {
                        let password = message.into_password()?;
                        let principal = users
                            .verify_password(&user, &password.password)
                            .map_err(|e| auth_failure(&user, e))?;
                        self.complete(client, principal).await
                    }
                }
            }
            _ => Ok(()),
        }
    }
}

impl Handler {
    fn auth(&self) -> std::sync::MutexGuard<'_, Option<AuthStep>> {
        self.conn.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the authenticated user's session on the database asked for
    /// and finishes the startup.
    async fn complete<C>(&self, client: &mut C, principal: Principal) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let metadata = client.metadata();
        let user = principal.name.clone();
        let database = metadata
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.clone());
        let application_name = metadata
            .get(METADATA_APPLICATION_NAME)
            .cloned()
            .unwrap_or_default();
        if let Err(denied) = principal.check_database(&database) {
            crate::telemetry::refused("pg", "auth");
            return Err(fatal(denied.code(), denied.to_string()));
        }
        let session = self
            .conn
            .shared
            .factory
            .open()
            .await
            .map_err(|e| fatal(e.code(), format!("cannot open a session: {e}")))?;
        if session.current_database() != database {
            let use_db = format!("USE \"{}\"", database.replace('"', "\"\""));
            if let Err(e) = session.execute_stream(&use_db).await {
                let message = match e {
                    SqlError::UndefinedDatabase(_) => {
                        format!("database \"{database}\" does not exist")
                    }
                    other => other.to_string(),
                };
                return Err(fatal("3D000", message));
            }
        }
        self.conn.set_session(session);
        self.conn.set_principal(principal);
        if !application_name.is_empty() {
            let mut settings = self.conn.settings.lock().unwrap_or_else(|e| e.into_inner());
            let _ = settings.set("application_name", &application_name);
        }
        let pid = self.conn.shared.next_pid();
        let secret = match client.protocol_version() {
            ProtocolVersion::PROTOCOL3_0 => SecretKey::I32(random_i32()),
            _ => SecretKey::Bytes(uuid::Uuid::new_v4().as_bytes().to_vec().into()),
        };
        self.conn.shared.register(pid, &secret, &self.conn);
        client.set_pid_and_secret_key(pid, secret);
        let parameters = Parameters {
            application_name,
            user,
            database,
        };
        finish_authentication(client, &parameters).await
    }
}

#[async_trait]
impl CancelHandler for Handler {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.conn.shared.cancel(request.pid, &request.secret_key);
    }
}

impl Handler {
    /// The protocol response to an outcome, with columns in `format`.
    async fn respond<C>(&self, client: &C, outcome: Outcome, format: &Format) -> Response
    where
        C: ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        match outcome {
            Outcome::Rows {
                schema,
                batches,
                tag,
            } => {
                let fields = Arc::new(fields(&schema, format));
                let encode_fields = fields.clone();
                let rows = batches
                    .map(move |batch| match batch {
                        Ok(batch) => futures::stream::iter(
                            encode_batch(&batch, &encode_fields).into_iter().map(Ok),
                        )
                        .left_stream(),
                        Err(e) => futures::stream::iter(vec![Err(pg_error(e))]).right_stream(),
                    })
                    .flatten();
                let mut response = QueryResponse::new(fields, rows);
                response.set_command_tag(tag);
                Response::Query(response)
            }
            Outcome::Status { command, rows } => {
                Response::Execution(Tag::new(&command_tag(&command, rows)))
            }
            Outcome::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Outcome::End(command) => {
                for name in self.conn.close_cursors().await {
                    remove_portal(client.portal_store(), &name);
                }
                Response::TransactionEnd(Tag::new(command))
            }
            Outcome::Declared(name) => {
                add_cursor_portal(client.portal_store(), &name);
                Response::Execution(Tag::new("DECLARE CURSOR"))
            }
            Outcome::Closed(names) => {
                for name in names {
                    remove_portal(client.portal_store(), &name);
                }
                Response::Execution(Tag::new("CLOSE CURSOR"))
            }
        }
    }

    /// Runs a bound portal's statement.
    async fn execute_portal(&self, portal: &Portal<Prepared>) -> Result<Outcome, StatementError> {
        let guard = self.conn.begin_statement();
        if let Some((point, params)) = self.point_of(portal).await {
            let sql = &portal.statement.statement.sql;
            let forget = || {
                let state = &portal.statement.statement.point;
                *state.lock().unwrap_or_else(|p| p.into_inner()) = None;
            };
            return self
                .conn
                .run_point(sql, &point, &params, || bind(portal), forget, &guard)
                .await;
        }
        let sql = bind(portal)?;
        self.conn.run(&sql, &guard).await
    }

    /// The portal's statement as a prepared point query, with its
    /// parameters' values, when it is one and every value is a key value.
    async fn point_of(
        &self,
        portal: &Portal<Prepared>,
    ) -> Option<(Arc<PreparedPoint>, Vec<ScalarValue>)> {
        let stmt = &portal.statement.statement;
        if stmt.params == 0 || stmt.cursor.is_some() {
            return None;
        }
        let decided = stmt.point.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let point = match decided {
            Some(point) => point?,
            None => {
                // Decided once per statement (not per Execute): catalog
                // queries are the server's own, never point queries.
                let point = match super::catalog::is_catalog_query(&stmt.sql) {
                    true => None,
                    false => self.conn.session().ok()?.prepare_point(&stmt.sql).await,
                };
                *stmt.point.lock().unwrap_or_else(|p| p.into_inner()) = Some(point.clone());
                point?
            }
        };
        let params = parameters(portal)
            .map(|p| params::scalar(&p))
            .collect::<Option<Vec<_>>>()?;
        Some((point, params))
    }
}

/// The portal's bound parameters, each with its format and declared type.
fn parameters(portal: &Portal<Prepared>) -> impl Iterator<Item = Param<'_>> {
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, value)| Param {
            value: value.as_deref(),
            binary: portal.parameter_format.is_binary(i),
            pg_type: portal
                .statement
                .parameter_types
                .get(i)
                .and_then(|t| t.as_ref()),
        })
}

/// A portal's statement with its parameters in place.
fn bind(portal: &Portal<Prepared>) -> Result<String, StatementError> {
    let stmt = &portal.statement;
    let literals = parameters(portal)
        .map(|p| params::literal(&p))
        .collect::<Result<Vec<_>, _>>()?;
    if literals.len() < stmt.statement.params {
        return Err(StatementError::refused(
            "08P01",
            format!(
                "bind message supplies {} parameters, but the statement requires {}",
                literals.len(),
                stmt.statement.params
            ),
        ));
    }
    Ok(params::substitute(&stmt.statement.sql, &literals)?)
}

fn store_of<S: PortalStore + ?Sized>(store: &S) -> Option<&MemPortalStore<Prepared>> {
    store.as_any().downcast_ref::<MemPortalStore<Prepared>>()
}

/// A portal named like a declared cursor, so that Describe finds it.
fn add_cursor_portal<S: PortalStore + ?Sized>(store: &S, name: &str) {
    if let Some(store) = store_of(store) {
        let statement = Prepared {
            cursor: Some(name.to_string()),
            ..Prepared::default()
        };
        let stored = Arc::new(StoredStatement::new(name.to_string(), statement, vec![]));
        store.put_portal(Arc::new(Portal::new_cursor(name.to_string(), stored)));
    }
}

fn remove_portal<S: PortalStore + ?Sized>(store: &S, name: &str) {
    if let Some(store) = store_of(store) {
        store.rm_portal(name);
    }
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = Session::split(query).map_err(|e| pg_error(e.into()))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        let last = statements.len() - 1;
        for (i, sql) in statements.iter().enumerate() {
            let guard = self.conn.begin_statement();
            let mut outcome = self.conn.run(sql, &guard).await;
            if i < last {
                // The next statement must not run before this one's rows are read.
                outcome = match outcome {
                    Ok(o) => o.buffered().await,
                    e => e,
                };
            }
            match outcome {
                Ok(o) => responses.push(self.respond(client, o, &Format::UnifiedText).await),
                Err(e) => {
                    tracing::debug!(code = e.code(), "statement failed: {e}");
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Parses Parse messages: one statement, `$n` parameters counted.
#[derive(Debug)]
pub struct Parser;

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = Session::split(sql).map_err(|e| pg_error(e.into()))?;
        match statements.len() {
            0 => Ok(None),
            1 => Ok(Some(Prepared {
                params: params::count(&statements[0]),
                sql: statements[0].clone(),
                ..Prepared::default()
            })),
            _ => Err(pg_error(StatementError::refused(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ))),
        }
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(vec![Type::TEXT; stmt.params])
    }

    fn get_result_schema(
        &self,
        _stmt: &Prepared,
        _format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser)
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        let types: Vec<Type> = (0..stmt.params)
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        // Only a statement without side effects may run to learn its
        // columns (a CALL would change tables, a FETCH move its cursor).
        let first = keywords(&stmt.sql, 1);
        let side_effects = matches!(first.first().map(String::as_str), Some("call" | "fetch"));
        if !returns_rows(&stmt.sql) || side_effects {
            return Ok(DescribeStatementResponse::new(types, vec![]));
        }
        // The columns of a query with every parameter NULL (of its type).
        let nulls: Vec<String> = types
            .iter()
            .map(|t| {
                params::literal(&Param {
                    value: None,
                    binary: false,
                    pg_type: Some(t),
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|e| pg_error(e.into()))?;
        let sql = params::substitute(&stmt.sql, &nulls).map_err(|e| pg_error(e.into()))?;
        let guard = self.conn.begin_statement();
        let outcome = self.conn.run(&sql, &guard).await.map_err(pg_error)?;
        let columns = match outcome {
            Outcome::Rows { schema, .. } => fields(&schema, &Format::UnifiedText),
            _ => vec![],
        };
        Ok(DescribeStatementResponse::new(types, columns))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(cursor) = &portal.statement.statement.cursor {
            let schema = self.conn.cursor_schema(cursor).await;
            let columns = schema
                .map(|s| fields(&s, &portal.result_column_format))
                .unwrap_or_default();
            return Ok(DescribePortalResponse::new(columns));
        }
        if !returns_rows(&portal.statement.statement.sql) {
            return Ok(DescribePortalResponse::new(vec![]));
        }
        // The rows are needed to know their columns: run the statement now
        // and let Execute send what it produced.
        let outcome = self.execute_portal(portal).await.map_err(pg_error)?;
        let columns = match &outcome {
            Outcome::Rows { schema, .. } => fields(schema, &portal.result_column_format),
            _ => vec![],
        };
        self.conn.stash(portal, outcome);
        Ok(DescribePortalResponse::new(columns))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if portal.statement.statement.cursor.is_some() {
            return Err(pg_error(StatementError::refused(
                "0A000",
                "a cursor's portal is read with FETCH",
            )));
        }
        let outcome = match self.conn.take_stashed(portal) {
            Some(outcome) => Ok(outcome),
            None => self.execute_portal(portal).await,
        };
        match outcome {
            Ok(outcome) => Ok(self
                .respond(client, outcome, &portal.result_column_format)
                .await),
            Err(e) => {
                let first = keywords(&portal.statement.statement.sql, 1);
                tracing::debug!(code = e.code(), statement = ?first, "statement failed: {e}");
                Err(pg_error(e))
            }
        }
    }
}
