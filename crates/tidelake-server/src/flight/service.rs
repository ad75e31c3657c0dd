//! The Flight SQL service: statements and prepared statements (with
//! parameters bound by DoPut), the metadata commands, updates and bulk
//! ingest through DoPut, cancel, and the Handshake.
//!
//! How a statement runs:
//! - a query (a statement that changes nothing: SELECT, WITH, VALUES, SHOW,
//!   DESCRIBE, EXPLAIN) is planned at GetFlightInfo, which answers its
//!   schema and a ticket carrying the SQL. The plan is kept in this process
//!   for a while, so a DoGet here streams it; a DoGet at another process
//!   runs the ticket's SQL again (and refuses if the schema has changed).
//! - any other statement runs to completion at GetFlightInfo (exactly
//!   once): its row count is the FlightInfo's `total_records`, and rows it
//!   returns (CALL) travel in the ticket.
//!
//! Every call opens a fresh session (on the database of the `database`
//! call header, or the default one) for its caller, authenticated by the
//! call's bearer token (see [`super::auth`]): Flight SQL calls share no
//! state, which is what lets any process serve any call. Every statement
//! runs through `Connection::run`, which checks the caller's role and
//! databases first (42501, PERMISSION_DENIED); bulk ingest checks them
//! itself before it reads a batch.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo,
    CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{Auth, Principal};
use super::handle::{Prepared, Ticket};
use super::status::status;
use super::{ingest, metadata, params};
use crate::pg::connection::{keywords, Batches, Connection, Outcome};
use crate::telemetry::StatementRecord;
use crate::{Shared, StatementError};

/// How long a planned query waits for its DoGet in this process.
const PLANNED_LIFETIME: Duration = Duration::from_secs(120);
/// Planned queries kept at most (the oldest are dropped; their DoGet
/// plans again).
const MAX_PLANNED: usize = 256;
/// Cancelled ticket ids remembered, so that their DoGet fails.
const MAX_CANCELLED: usize = 4096;

type DoGetStream = <FlightSql as FlightService>::DoGetStream;

/// A query planned at GetFlightInfo, waiting for its DoGet.
struct Planned {
    at: Instant,
    conn: Arc<Connection>,
    batches: Batches,
}

#[derive(Default)]
struct Queries {
    planned: HashMap<String, Planned>,
    running: HashMap<String, Weak<Connection>>,
    cancelled: VecDeque<String>,
    /// Parameters bound to a prepared statement by its id, for clients
    /// that keep using the handle they were first given.
    bound: HashMap<String, (Instant, Vec<Vec<String>>)>,
}

/// The Flight SQL service of one server process.
pub struct FlightSql {
    shared: Arc<Shared>,
    auth: Auth,
    queries: Mutex<Queries>,
}

/// Whether a statement only reads (so running it again changes nothing).
pub fn is_read_only(sql: &str) -> bool {
    let words = keywords(sql, 2);
    match words.first().map(String::as_str) {
        Some("select" | "with" | "values" | "table" | "show" | "describe" | "desc") => true,
        Some("explain") => words.get(1).is_none_or(|w| w != "analyze"),
        _ => false,
    }
}

fn ticket_bytes(ticket: &Ticket) -> Vec<u8> {
    TicketStatementQuery {
        statement_handle: ticket.encode().into(),
    }
    .as_any()
    .encode_to_vec()
}

fn info(schema: &Schema, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    FlightInfo::new()
        .try_with_schema(schema)
        .map(|i| i.with_descriptor(descriptor))
        .map_err(|e| Status::internal(format!("cannot encode the schema: {e}")))
}

/// A FlightInfo whose one endpoint's ticket is `cmd` itself.
fn command_info(
    schema: &Schema,
    cmd: impl ProstMessageExt,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint =
        FlightEndpoint::new().with_ticket(arrow_flight::Ticket::new(cmd.as_any().encode_to_vec()));
    Ok(Response::new(
        info(schema, descriptor)?.with_endpoint(endpoint),
    ))
}

/// Batches as a DoGet stream announcing `schema` first.
fn flight_stream<S>(schema: SchemaRef, batches: S) -> Response<DoGetStream>
where
    S: Stream<Item = Result<RecordBatch, StatementError>> + Send + 'static,
{
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_dictionary_handling(DictionaryHandling::Resend)
        .build(batches.map_err(|e| FlightError::Tonic(Box::new(status(&e)))))
        .map_err(Status::from);
    Response::new(Box::pin(encoded))
}

fn one_batch(batch: Result<RecordBatch, StatementError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch?;
    Ok(flight_stream(
        batch.schema(),
        futures::stream::iter([Ok(batch)]),
    ))
}

/// The batches a DoPut sends (parameters, ingested rows). A message with
/// no IPC header (only the descriptor, as arrow-flight's client sends to
/// run a prepared update without parameters) carries no batch.
async fn put_batches(stream: PeekableFlightDataStream) -> Result<Vec<RecordBatch>, Status> {
    FlightRecordBatchStream::new_from_flight_data(
        stream
            .try_filter(|data| futures::future::ready(!data.data_header.is_empty()))
            .map_err(|s| FlightError::Tonic(Box::new(s))),
    )
    .try_collect()
    .await
    .map_err(|e| Status::invalid_argument(format!("cannot read the batches: {e}")))
}

fn database_header<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get("database")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl FlightSql {
    pub fn new(shared: Arc<Shared>, auth: Auth) -> FlightSql {
        FlightSql {
            shared,
            auth,
            queries: Mutex::new(Queries::default()),
        }
    }

    fn queries(&self) -> MutexGuard<'_, Queries> {
        self.queries.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        self.auth.principal(request.metadata()).await
    }

    /// A connection of `caller` (whose rights every statement on it is
    /// checked against) with a fresh session on `database`: the one asked
    /// for, which the caller must be allowed, or the session's default,
    /// or, for a caller limited to other databases, the first of theirs.
    async fn connection(
        &self,
        caller: &Principal,
        database: Option<&str>,
    ) -> Result<Arc<Connection>, StatementError> {
        if let Some(db) = database {
            caller.check_database(db)?;
        }
        let session = self.shared.factory.open().await?;
        let current = session.current_database();
        let target = match database {
            Some(db) => Some(db),
            None if !caller.may_use(&current) => caller.databases.first().map(String::as_str),
            None => None,
        };
        if let Some(db) = target.filter(|db| *db != current) {
            let use_db = format!("USE {}", crate::pg::catalog::quote_ident(db));
            session.execute_stream(&use_db).await?;
        }
        let conn = Arc::new(Connection::new(self.shared.clone(), "flight"));
        conn.set_session(session);
        conn.set_principal(caller.clone());
        Ok(conn)
    }

    /// Plans a query, or runs any other statement, for GetFlightInfo.
    async fn flight_info(
        &self,
        caller: &Principal,
        sql: &str,
        database: Option<String>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let conn = self.connection(caller, database.as_deref()).await?;
        let guard = conn.begin_statement();
        let outcome = conn.run(sql, &guard).await?;
        match outcome {
            Outcome::Rows {
                schema, batches, ..
            } if is_read_only(sql) => {
                let ticket = Ticket::query(sql.to_string(), database, &schema)?;
                self.keep_planned(&ticket.id, conn, batches);
                let endpoint = FlightEndpoint::new()
                    .with_ticket(arrow_flight::Ticket::new(ticket_bytes(&ticket)));
                Ok(info(&schema, descriptor)?
                    .with_endpoint(endpoint)
                    .with_total_records(-1))
            }
            other => finished(other.buffered().await?, descriptor).await,
        }
    }

    fn keep_planned(&self, id: &str, conn: Arc<Connection>, batches: Batches) {
        let mut q = self.queries();
        let now = Instant::now();
        q.planned
            .retain(|_, p| now.duration_since(p.at) < PLANNED_LIFETIME);
        if q.planned.len() >= MAX_PLANNED {
            if let Some(oldest) = q
                .planned
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| k.clone())
            {
                q.planned.remove(&oldest);
            }
        }
        q.planned.insert(
            id.to_string(),
            Planned {
                at: now,
                conn,
                batches,
            },
        );
    }

    /// The rows of a ticket: its carried result, the plan kept here, or
    /// the query run again.
    async fn read_ticket(
        &self,
        caller: &Principal,
        ticket: Ticket,
    ) -> Result<Response<DoGetStream>, Status> {
        if let Some((schema, batches)) = ticket.result()? {
            return Ok(flight_stream(
                schema,
                futures::stream::iter(batches.into_iter().map(Ok)),
            ));
        }
        let announced = ticket.schema()?;
        let planned = {
            let mut q = self.queries();
            if q.cancelled.contains(&ticket.id) {
                return Err(status(&StatementError::user_cancel()));
            }
            q.planned.remove(&ticket.id)
        };
        let (conn, batches) = match planned {
            Some(p) => (p.conn, p.batches),
            None => {
                if !is_read_only(&ticket.sql) {
                    return Err(Status::invalid_argument(
                        "a ticket's statement must be a query",
                    ));
                }
                let conn = self.connection(caller, ticket.database.as_deref()).await?;
                let guard = conn.begin_statement();
                match conn.run(&ticket.sql, &guard).await? {
                    Outcome::Rows {
                        schema, batches, ..
                    } => {
                        if schema.fields() != announced.fields() {
                            return Err(Status::failed_precondition(
                                "the query's columns changed since GetFlightInfo: ask for a new FlightInfo",
                            ));
                        }
                        (conn, batches)
                    }
                    _ => return Err(Status::internal("the query returned no rows")),
                }
            }
        };
        {
            let mut q = self.queries();
            q.running.retain(|_, c| c.strong_count() > 0);
            q.running.insert(ticket.id.clone(), Arc::downgrade(&conn));
        }
        // The connection lives as long as its rows are read (so a cancel
        // reaches it).
        let rows = batches.map(move |b| {
            let _alive = &conn;
            b
        });
        Ok(flight_stream(announced, rows))
    }

    /// Cancels the queries of a FlightInfo's tickets.
    fn cancel(&self, info: &FlightInfo) -> CancelStatus {
        let mut outcome = CancelStatus::NotCancellable;
        for endpoint in &info.endpoint {
            let Some(ticket) = endpoint.ticket.as_ref() else {
                continue;
            };
            let Ok(any) = Any::decode(ticket.ticket.clone()) else {
                continue;
            };
            let Ok(Some(query)) = any.unpack::<TicketStatementQuery>() else {
                continue;
            };
            let Ok(ticket) = Ticket::decode(&query.statement_handle) else {
                continue;
            };
            if ticket.result().ok().flatten().is_some() {
                continue; // it ran already
            }
            let mut q = self.queries();
            if let Some(p) = q.planned.remove(&ticket.id) {
                p.conn.cancel();
            }
            if let Some(conn) = q.running.remove(&ticket.id).and_then(|w| w.upgrade()) {
                conn.cancel();
            }
            if q.cancelled.len() >= MAX_CANCELLED {
                q.cancelled.pop_front();
            }
            q.cancelled.push_back(ticket.id);
            outcome = CancelStatus::Cancelled;
        }
        tracing::info!(?outcome, "Flight SQL cancel");
        outcome
    }

    /// Parameter rows for a prepared statement: bound in its handle, or
    /// earlier in this process.
    fn bound(&self, handle: &Prepared) -> Option<Vec<Vec<String>>> {
        if handle.params.is_some() {
            return handle.params.clone();
        }
        self.queries().bound.get(&handle.id).map(|(_, p)| p.clone())
    }

    /// Runs a statement once per parameter row; the rows it changed.
    async fn update(
        &self,
        caller: &Principal,
        handle: &Prepared,
        rows: Option<Vec<Vec<String>>>,
    ) -> Result<i64, Status> {
        let conn = self.connection(caller, handle.database.as_deref()).await?;
        let statements = match rows {
            Some(rows) if !rows.is_empty() => rows
                .iter()
                .map(|r| params::bind(&handle.sql, r))
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![params::bind(&handle.sql, &[])?],
        };
        let mut total = 0i64;
        for sql in statements {
            let guard = conn.begin_statement();
            match conn.run(&sql, &guard).await?.buffered().await? {
                Outcome::Status { rows: Some(n), .. } => total += n as i64,
                Outcome::Rows { batches, .. } => {
                    let _ = batches.count().await;
                }
                _ => {}
            }
        }
        Ok(total)
    }
}

/// The FlightInfo of a statement that ran at GetFlightInfo.
async fn finished(outcome: Outcome, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    match outcome {
        Outcome::Rows {
            schema, batches, ..
        } => {
            let batches: Vec<RecordBatch> = batches.try_collect().await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let ticket = Ticket::carrying(&schema, &batches)?;
            let endpoint =
                FlightEndpoint::new().with_ticket(arrow_flight::Ticket::new(ticket_bytes(&ticket)));
            Ok(info(&schema, descriptor)?
                .with_endpoint(endpoint)
                .with_total_records(rows as i64))
        }
        Outcome::Status { rows, .. } => {
            Ok(info(&Schema::empty(), descriptor)?
                .with_total_records(rows.map_or(-1, |n| n as i64)))
        }
        _ => Ok(info(&Schema::empty(), descriptor)?.with_total_records(-1)),
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let (principal, token) = self.auth.handshake(request.metadata()).await?;
        tracing::debug!(user = %principal.name, "Flight SQL handshake");
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter([Ok::<_, Status>(reply)])));
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("cannot encode the token"))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        let database = database_header(&request);
        let sql = params::bind(&query.query, &[])?;
        let info = self
            .flight_info(&caller, &sql, database, request.into_inner())
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        let handle = Prepared::decode(&cmd.prepared_statement_handle)?;
        let rows = self.bound(&handle);
        let descriptor = request.into_inner();
        let row_count = rows.as_ref().map_or(0, Vec::len);
        if row_count > 1 {
            if is_read_only(&handle.sql) {
                return Err(Status::invalid_argument(
                    "a query binds one row of parameters",
                ));
            }
            let n = self.update(&caller, &handle, rows).await?;
            return Ok(Response::new(
                info(&Schema::empty(), descriptor)?.with_total_records(n),
            ));
        }
        let first = rows.and_then(|r| r.into_iter().next()).unwrap_or_default();
        let sql = params::bind(&handle.sql, &first)?;
        let info = self
            .flight_info(&caller, &sql, handle.database.clone(), descriptor)
            .await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(&metadata::catalogs_schema(), query, request.into_inner())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(&metadata::db_schemas_schema(), query, request.into_inner())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = metadata::tables_schema(query.include_schema);
        command_info(&schema, query, request.into_inner())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(&metadata::table_types_schema(), query, request.into_inner())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(&metadata::sql_info().schema(), query, request.into_inner())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        command_info(
            &metadata::primary_keys_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        query: TicketStatementQuery,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let ticket = Ticket::decode(&query.statement_handle)?;
        self.read_ticket(&caller, ticket).await
    }

    async fn do_get_catalogs(
        &self,
        _query: CommandGetCatalogs,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        one_batch(metadata::catalogs())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let conn = self.connection(&caller, None).await?;
        one_batch(metadata::db_schemas(conn.session()?, &caller, query).await)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let conn = self.connection(&caller, None).await?;
        one_batch(metadata::tables(conn.session()?, &caller, query).await)
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        one_batch(metadata::table_types())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        let batch = metadata::sql_info()
            .record_batch(query.info)
            .map_err(|e| Status::internal(e.to_string()))?;
        one_batch(Ok(batch))
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let conn = self
            .connection(&caller, database_header(&request).as_deref())
            .await?;
        one_batch(metadata::primary_keys(conn.session()?, &caller, query).await)
    }

    async fn do_put_statement_update(
        &self,
        cmd: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request).await?;
        let handle = Prepared::new(cmd.query, database_header(&request));
        self.update(&caller, &handle, None).await
    }

    async fn do_put_statement_ingest(
        &self,
        cmd: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request).await?;
        let database = database_header(&request);
        let mut record = StatementRecord::start("flight", true);
        let ingested = async {
            let conn = self.connection(&caller, database.as_deref()).await?;
            let session = conn.session()?.clone();
            ingest::ingest(&session, &caller, &cmd, request.into_inner()).await
        }
        .await;
        match ingested {
            Ok(n) => {
                record.finish();
                tracing::info!(table = %cmd.table, rows = n, user = %caller.name, "Flight SQL ingest committed");
                Ok(n)
            }
            Err(e) => {
                record.fail(&e);
                if e.code() == "42501" {
                    tracing::info!(user = %caller.name, "refused: {e}");
                }
                Err(e.into())
            }
        }
    }

    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.caller(&request).await?;
        let mut handle = Prepared::decode(&cmd.prepared_statement_handle)?;
        let batches = put_batches(request.into_inner()).await?;
        let rows = params::rows(&batches)?;
        {
            let mut q = self.queries();
            let now = Instant::now();
            q.bound
                .retain(|_, (at, _)| now.duration_since(*at) < PLANNED_LIFETIME);
            q.bound.insert(handle.id.clone(), (now, rows.clone()));
        }
        handle.params = Some(rows);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode().into()),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        cmd: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request).await?;
        let handle = Prepared::decode(&cmd.prepared_statement_handle)?;
        let batches = put_batches(request.into_inner()).await?;
        let rows = if batches.is_empty() {
            self.bound(&handle)
        } else {
            Some(params::rows(&batches)?)
        };
        self.update(&caller, &handle, rows).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.caller(&request).await?;
        if query.transaction_id.is_some() {
            return Err(Status::unimplemented("transactions are not supported"));
        }
        let handle = Prepared::new(query.query, database_header(&request));
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode().into(),
            dataset_schema: Default::default(),
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.caller(&request).await?;
        if let Ok(handle) = Prepared::decode(&query.prepared_statement_handle) {
            self.queries().bound.remove(&handle.id);
        }
        Ok(())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        self.caller(&request).await?;
        let info = FlightInfo::decode(query.info)
            .map_err(|_| Status::invalid_argument("the request carries no FlightInfo"))?;
        // CancelResult: 1 cancelled, 3 not cancellable.
        let result = match self.cancel(&info) {
            CancelStatus::Cancelled => 1,
            _ => 3,
        };
        Ok(ActionCancelQueryResult { result })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        self.caller(&request).await?;
        let action = request.into_inner();
        if action.r#type != "CancelFlightInfo" {
            return Err(Status::invalid_argument(format!(
                "unknown action '{}'",
                action.r#type
            )));
        }
        let cancel = CancelFlightInfoRequest::decode(action.body)
            .map_err(|_| Status::invalid_argument("malformed CancelFlightInfoRequest"))?;
        let info = cancel
            .info
            .ok_or_else(|| Status::invalid_argument("the request carries no FlightInfo"))?;
        let result = CancelFlightInfoResult {
            status: self.cancel(&info) as i32,
        };
        let body = arrow_flight::Result {
            body: result.encode_to_vec().into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok::<
            _,
            Status,
        >(
            body
        )]))))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_told_from_statements_that_change_things() {
        assert!(is_read_only("  select 1"));
        assert!(is_read_only("WITH x AS (SELECT 1) SELECT * FROM x"));
        assert!(is_read_only("EXPLAIN SELECT 1"));
        assert!(!is_read_only("EXPLAIN ANALYZE SELECT 1"));
        assert!(!is_read_only("INSERT INTO t VALUES (1)"));
        assert!(!is_read_only("CALL sys.compact('t')"));
    }
}
