//! The HTTP front end.
//!
//! - `POST /v1/statements`: the body is SQL text, or JSON `{"sql": "...",
//!   "id"?, "database"?, "max_rows"?}`; the statements run in order in a
//!   fresh session (with the server's `statement_timeout`; `database` is
//!   `USE`d first) and the answer is the last one's result:
//!   `{"id", "columns": [{"name", "type"}], "rows": [[...]], "status":
//!   "SELECT 2"}`, with `"truncated": true` when `max_rows` cut the rows
//!   short. Values are JSON: NULL as `null`, integers and decimals as
//!   numbers with their exact digits, timestamps as ISO-8601 strings,
//!   nested values as arrays and objects. An error answers `{"error":
//!   {"code": SQLSTATE, "message"}}` with status 400 (the statement), 409
//!   (a commit conflict), 503 (resources, a timeout, a cancel) or 500 (the
//!   server).
//! - `DELETE /v1/statements/{id}`: cancels the running statement with that
//!   id (the client picks it: the JSON `id` or the `X-Statement-Id`
//!   header; otherwise the server makes one up and answers it).
//! - `GET /v1/status`: the server's counters (connections, statements,
//!   commits) and whether clients must log in, as JSON.
//! - `GET /healthz`: the process serves. `GET /readyz`: a session over the
//!   warehouse can be opened. `GET /metrics`: Prometheus metrics (see
//!   [`crate::telemetry`]). These three need no password.
//!
//! With a users file, `/v1/statements` needs HTTP Basic authentication
//! (`Authorization: Basic base64(user:password)`) of a user of that file,
//! or `Authorization: Bearer <token>` with a token of `POST /v1/login`
//! (Basic in, `{"token", "token_type", "expires_in", "user", "role"}`
//! out; the same tokens as Flight SQL's, so a token of one server works at
//! every server sharing the token secret): 401 with `WWW-Authenticate`
//! otherwise; each statement is checked against the user's role (403 with
//! SQLSTATE 42501). A token spares each request the password check, which
//! costs thousands of HMACs on purpose.
//! - `GET /` and `/console/...`: the web console (see [`crate::console`]).

use std::fmt::Write;
use std::sync::{Arc, Weak};

use arrow::datatypes::{DataType, SchemaRef};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use tidelake_sql::{Session, SqlError};
use tokio::net::TcpListener;

use crate::flight::auth::Auth;
use crate::pg::connection::{command_tag, Connection, Outcome};
use crate::users::Principal;
use crate::values::json_value;
use crate::{console, ServerError, Shared, StatementError};

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    auth: Auth,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), ServerError> {
    let app = Router::new()
        .route("/v1/login", post(login))
        .route("/v1/statements", post(statements))
        .route("/v1/statements/{id}", delete(cancel))
        .route("/v1/status", get(status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(console::routes())
        .route("/metrics", get(metrics))
        .layer(Extension(auth))
        .with_state(shared);
    match tls {
        Some(acceptor) => {
            let listener = crate::net::TlsListener::new(listener, "http", acceptor)
                .map_err(ServerError::Http)?;
            axum::serve(listener, app).await.map_err(ServerError::Http)
        }
        None => {
            let listener = crate::net::CountedListener::new(listener, "http");
            axum::serve(listener, app).await.map_err(ServerError::Http)
        }
    }
}

async fn healthz() -> Response {
    json(StatusCode::OK, r#"{"status":"ok"}"#.to_string())
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.factory.open().await {
        Ok(_) => json(StatusCode::OK, r#"{"status":"ready"}"#.to_string()),
        Err(e) => failure(&StatementError::Sql(e)),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render(&shared),
    )
        .into_response()
}

/// The header the web console sends with its requests.
const CONSOLE_HEADER: &str = "x-tidelake-console";

/// A 401 answer (counted), with a `WWW-Authenticate` challenge unless the
/// web console asked (it asks for the password itself: no browser prompt).
fn unauthorized(headers: &HeaderMap, message: String) -> Response {
    crate::telemetry::refused("http", "auth");
    let body = serde_json::json!({
        "error": {"code": "28P01", "message": message},
        "status": "error",
    });
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if !headers.contains_key(CONSOLE_HEADER) {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tidelake\", charset=\"UTF-8\""),
        );
    }
    response
}

/// The request's `Authorization` header, if readable.
fn authorization(headers: &HeaderMap) -> Result<Option<&str>, Box<Response>> {
    match headers.get(header::AUTHORIZATION) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| {
            Box::new(unauthorized(
                headers,
                "malformed authorization header: not ASCII".into(),
            ))
        }),
    }
}

/// The request's user: trusted without a users file, else from HTTP Basic
/// (checked off the async threads) or a bearer token of `POST /v1/login`
/// (or of Flight SQL's Handshake).
async fn authenticate(
    shared: &Shared,
    auth: &Auth,
    headers: &HeaderMap,
) -> Result<Principal, Box<Response>> {
    if shared.users.is_none() {
        return Ok(Principal::trusted("tidelake"));
    }
    match auth.caller(authorization(headers)?).await {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => Err(Box::new(unauthorized(
            headers,
            "authentication required: HTTP Basic with a user of the users file, or a bearer token from POST /v1/login".into(),
        ))),
        Err(e) => Err(Box::new(unauthorized(headers, e.0))),
    }
}

/// `POST /v1/login`: HTTP Basic credentials (or a valid token) in, a bearer
/// token out, accepted by HTTP and Flight SQL on every server sharing the
/// token secret, until it expires or the user's password or rights change.
async fn login(
    State(shared): State<Arc<Shared>>,
    Extension(auth): Extension<Auth>,
    headers: HeaderMap,
) -> Response {
    shared.stats.http_request();
    let header = match authorization(&headers) {
        Ok(h) => h,
        Err(response) => return *response,
    };
    match auth.login(header).await {
        Ok((principal, token)) => {
            let body = serde_json::json!({
                "token": token,
                "token_type": "Bearer",
                "expires_in": auth.token_lifetime().as_secs(),
                "user": principal.name,
                "role": principal.role.name(),
            });
            json(StatusCode::OK, body.to_string())
        }
        Err(e) => unauthorized(&headers, e.0),
    }
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What `POST /v1/statements` asks for.
#[derive(serde::Deserialize)]
struct Request {
    sql: String,
    /// The statement's id, for `DELETE /v1/statements/{id}`.
    #[serde(default)]
    id: Option<String>,
    /// The database to `USE` before the statements.
    #[serde(default)]
    database: Option<String>,
    /// At most this many rows in the answer (the rest is not read).
    #[serde(default)]
    max_rows: Option<usize>,
}

/// The longest statement id a client may choose.
const MAX_ID_LEN: usize = 64;

/// The request of a body: JSON `{"sql": ...}` or the SQL text itself (its
/// id then from the `X-Statement-Id` header).
fn request_of(headers: &HeaderMap, body: &[u8]) -> Result<Request, StatementError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let mut request = if is_json {
        serde_json::from_slice(body).map_err(|e| {
            StatementError::refused(
                "22P02",
                format!("the body is not JSON {{\"sql\": \"...\"}}: {e}"),
            )
        })?
    } else {
        let sql = String::from_utf8(body.to_vec())
            .map_err(|_| StatementError::refused("22021", "the body is not UTF-8 text"))?;
        Request {
            sql,
            id: None,
            database: None,
            max_rows: None,
        }
    };
    if request.id.is_none() {
        request.id = headers
            .get("x-statement-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
    }
    if let Some(id) = &request.id {
        let fits = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !fits {
            return Err(StatementError::refused(
                "22023",
                format!("statement id {id:?} is not 1 to {MAX_ID_LEN} letters, digits, '-' or '_'"),
            ));
        }
    }
    Ok(request)
}

async fn statements(
    State(shared): State<Arc<Shared>>,
    Extension(auth): Extension<Auth>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.stats.http_request();
    let principal = match authenticate(&shared, &auth, &headers).await {
        Ok(p) => p,
        Err(response) => return *response,
    };
    match run(shared, principal, &headers, &body).await {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => failure(&e),
    }
}

/// A running statement's entry in [`Shared::running`], removed on drop.
struct Registered {
    shared: Arc<Shared>,
    id: String,
}

impl Registered {
    fn new(shared: Arc<Shared>, id: &str, conn: &Arc<Connection>) -> Result<Self, StatementError> {
        let mut running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, c| c.strong_count() > 0);
        if running.contains_key(id) {
            return Err(StatementError::refused(
                "42710",
                format!("a statement with id {id:?} is already running"),
            ));
        }
        running.insert(id.to_string(), Arc::downgrade(conn));
        drop(running);
        Ok(Registered {
            shared,
            id: id.to_string(),
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        running.remove(&self.id);
    }
}

async fn run(
    shared: Arc<Shared>,
    principal: Principal,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, StatementError> {
    let request = request_of(headers, body)?;
    let statements = Session::split(&request.sql)?;
    if statements.is_empty() {
        return Err(SqlError::syntax("no statement was given", None).into());
    }
    let id = request
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let session = shared.factory.open().await?;
    let conn = Arc::new(Connection::new(shared.clone(), "http"));
    conn.set_session(session);
    let _registered = Registered::new(shared, &id, &conn)?;
    if let Some(database) = principal.databases.first() {
        // A user limited to some databases starts in the first of them.
        if !principal.may_use(&conn.session()?.current_database()) {
            let use_db = format!("USE \"{}\"", database.replace('"', "\"\""));
            conn.session()?.execute_stream(&use_db).await?;
        }
    }
    conn.set_principal(principal);
    if let Some(database) = &request.database {
        let guard = conn.begin_statement();
        let using = format!("USE \"{}\"", database.replace('"', "\"\""));
        conn.run(&using, &guard).await?;
    }
    let mut last = None;
    for (i, statement) in statements.iter().enumerate() {
        let guard = conn.begin_statement();
        let outcome = conn.run(statement, &guard).await?;
        if i + 1 < statements.len() {
            // Only the last statement's rows are answered; the others run to the end.
            outcome.buffered().await?;
        } else {
            last = Some(outcome);
        }
    }
    match last {
        Some(outcome) => Ok(answer(&id, outcome, request.max_rows).await?),
        None => Err(SqlError::syntax("no statement was given", None).into()),
    }
}

/// `DELETE /v1/statements/{id}`: cancels that running statement.
async fn cancel(
    State(shared): State<Arc<Shared>>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    shared.stats.http_request();
    if let Err(response) = authenticate(&shared, &auth, &headers).await {
        return *response;
    }
    let conn = {
        let running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(&id).and_then(Weak::upgrade)
    };
    match conn {
        Some(conn) => {
            tracing::info!(id, "HTTP cancel: cancelling the running statement");
            conn.cancel();
            json(
                StatusCode::OK,
                serde_json::json!({"id": id, "cancelled": true}).to_string(),
            )
        }
        None => {
            let body = serde_json::json!({
                "error": {"code": "42704", "message": format!("no statement with id {id:?} is running")},
                "status": "error",
            });
            json(StatusCode::NOT_FOUND, body.to_string())
        }
    }
}

/// `GET /v1/status`: the counters and whether clients log in.
async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let mut body = shared.stats.json();
    body["version"] = env!("CARGO_PKG_VERSION").into();
    body["auth"] = if shared.users.is_some() {
        serde_json::json!({"required": true, "reason": "the server has users: log in"})
    } else {
        serde_json::json!({
            "required": false,
            "reason": "no users exist: the server trusts every client and listens on loopback only",
        })
    };
    json(StatusCode::OK, body.to_string())
}

/// The JSON answer of a statement's outcome, with at most `max_rows` rows.
async fn answer(
    id: &str,
    outcome: Outcome,
    max_rows: Option<usize>,
) -> Result<String, StatementError> {
    let id_json = serde_json::Value::from(id).to_string();
    let empty = |status: &str| {
        serde_json::json!({"id": id, "columns": [], "rows": [], "status": status}).to_string()
    };
    let (schema, mut batches, tag) = match outcome {
        Outcome::Rows {
            schema,
            batches,
            tag,
        } => (schema, batches, tag),
        Outcome::Status { command, rows } => return Ok(empty(&command_tag(&command, rows))),
        Outcome::Begin => return Ok(empty("BEGIN")),
        Outcome::End(c) => return Ok(empty(c)),
        Outcome::Declared(_) | Outcome::Closed(_) => {
            return Err(StatementError::refused(
                "0A000",
                "cursors need a connection: use the PostgreSQL protocol",
            ))
        }
    };
    let limit = max_rows.unwrap_or(usize::MAX);
    let mut out = format!(
        "{{\"id\":{id_json},\"columns\":{},\"rows\":[",
        columns(&schema)
    );
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = futures::StreamExt::next(&mut batches).await {
        let batch = batch?;
        for row in 0..batch.num_rows() {
            if rows == limit {
                truncated = true;
                break;
            }
            if rows > 0 {
                out.push(',');
            }
            rows += 1;
            out.push('[');
            for (i, column) in batch.columns().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_value(column, row, &mut out);
            }
            out.push(']');
        }
        if truncated {
            break;
        }
    }
    let _ = write!(out, "],\"status\":\"{tag} {rows}\"");
    if truncated {
        out.push_str(",\"truncated\":true");
    }
    out.push('}');
    Ok(out)
}

fn columns(schema: &SchemaRef) -> String {
    let list: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": sql_type(f.data_type())}))
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// A column's type as Tidelake's SQL writes it.
fn sql_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH LOCAL TIME ZONE".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("ARRAY<{}>", sql_type(f.data_type()))
        }
        DataType::Map(..) => "MAP".into(),
        DataType::Struct(_) => "ROW".into(),
        other => other.to_string(),
    }
}

fn failure(e: &StatementError) -> Response {
    let code = e.code();
    let status = match &code[..2] {
        "40" => StatusCode::CONFLICT,
        "42" if code == "42501" => StatusCode::FORBIDDEN,
        "53" | "57" => StatusCode::SERVICE_UNAVAILABLE,
        "XX" | "58" | "08" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = serde_json::json!({
        "error": {"code": code, "message": e.to_string()},
        "status": "error",
    });
    json(status, body.to_string())
}
