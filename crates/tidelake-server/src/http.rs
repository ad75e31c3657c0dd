//! The HTTP front end.
//!
//! - `POST /v1/statements`: the body is SQL text, or JSON `{"sql": "..."}`;
//!   the statements run in order in a fresh session (with the server's
//!   `statement_timeout`) and the answer is the last one's result:
//!   `{"columns": [{"name", "type"}], "rows": [[...]], "status": "SELECT 2"}`.
//!   Values are JSON: NULL as `null`, integers and decimals as numbers with
//!   their exact digits, timestamps as ISO-8601 strings, nested values as
//!   arrays and objects. An error answers `{"error": {"code": SQLSTATE,
//!   "message"}}` with status 400 (the statement), 409 (a commit conflict),
//!   503 (resources, a timeout) or 500 (the server).
//! - `GET /healthz`: the process serves. `GET /readyz`: a session over the
//!   warehouse can be opened. `GET /metrics`: Prometheus metrics (see
//!   [`crate::telemetry`]). These three need no password.
//!
//! With a users file, `/v1/statements` needs HTTP Basic authentication
//! (`Authorization: Basic base64(user:password)`) of a user of that file:
//! 401 with `WWW-Authenticate` otherwise; each statement is checked
//! against the user's role (403 with SQLSTATE 42501).

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tidelake_sql::{Session, SqlError};
use tokio::net::TcpListener;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::pg::connection::{command_tag, Connection, Outcome};
use crate::users::Principal;
use crate::values::json_value;
use crate::{ServerError, Shared, StatementError};

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) -> Result<(), ServerError> {
    let app = Router::new()
        .route("/v1/statements", post(statements))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared);
    axum::serve(listener, app).await.map_err(ServerError::Http)
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

async fn metrics() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render(),
    )
        .into_response()
}

/// The request's user: trusted without a users file, else from Basic auth.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Principal, Box<Response>> {
    let Some(users) = &shared.users else {
        return Ok(Principal::trusted("tidelake"));
    };
    let unauthorized = |message: String| {
        crate::telemetry::refused("http", "auth");
        let body = serde_json::json!({
            "error": {"code": "28P01", "message": message},
            "status": "error",
        });
        Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::WWW_AUTHENTICATE,
                        "Basic realm=\"tidelake\", charset=\"UTF-8\"",
                    ),
                ],
                body.to_string(),
            )
                .into_response(),
        )
    };
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| BASE64.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some(credentials) = credentials else {
        return Err(unauthorized(
            "authentication required: HTTP Basic with a user of the users file".into(),
        ));
    };
    let (user, password) = credentials.split_once(':').unwrap_or((&credentials, ""));
    users.verify_password(user, password).map_err(|e| {
        tracing::warn!(user, "HTTP authentication failed: {e}");
        unauthorized(e.to_string())
    })
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(serde::Deserialize)]
struct Request {
    sql: String,
}

/// The SQL of a request body: JSON `{"sql": ...}` or the text itself.
fn sql_of(headers: &HeaderMap, body: &[u8]) -> Result<String, StatementError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if is_json {
        let request: Request = serde_json::from_slice(body).map_err(|e| {
            StatementError::refused(
                "22P02",
                format!("the body is not JSON {{\"sql\": \"...\"}}: {e}"),
            )
        })?;
        Ok(request.sql)
    } else {
        String::from_utf8(body.to_vec())
            .map_err(|_| StatementError::refused("22021", "the body is not UTF-8 text"))
    }
}

async fn statements(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match authenticate(&shared, &headers) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    match run(shared, principal, &headers, &body).await {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => failure(&e),
    }
}

async fn run(
    shared: Arc<Shared>,
    principal: Principal,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, StatementError> {
    let sql = sql_of(headers, body)?;
    let statements = Session::split(&sql)?;
    if statements.is_empty() {
        return Err(SqlError::syntax("no statement was given", None).into());
    }
    let session = shared.factory.open().await?;
    let conn = Connection::new(shared, "http");
    conn.set_session(session);
    if let Some(database) = principal.databases.first() {
        // A user limited to some databases starts in the first of them.
        if !principal.may_use(&conn.session()?.current_database()) {
            let use_db = format!("USE \"{}\"", database.replace('"', "\"\""));
            conn.session()?.execute_stream(&use_db).await?;
        }
    }
    conn.set_principal(principal);
    let mut last = None;
    for statement in &statements {
        let guard = conn.begin_statement();
        let outcome = conn.run(statement, &guard).await?.buffered().await?;
        last = Some(outcome);
    }
    match last {
        Some(outcome) => Ok(answer(outcome).await?),
        None => Err(SqlError::syntax("no statement was given", None).into()),
    }
}

async fn answer(outcome: Outcome) -> Result<String, StatementError> {
    let mut out = String::new();
    match outcome {
        Outcome::Rows {
            schema,
            batches,
            tag,
        } => {
            let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(batches).await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            out.push_str("{\"columns\":");
            out.push_str(&columns(&schema));
            out.push_str(",\"rows\":[");
            let mut first = true;
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push('[');
                    for (i, column) in batch.columns().iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        json_value(column, row, &mut out);
                    }
                    out.push(']');
                }
            }
            let _ = write!(out, "],\"status\":\"{tag} {rows}\"}}");
        }
        Outcome::Status { command, rows } => {
            let status = command_tag(&command, rows);
            out = serde_json::json!({"columns": [], "rows": [], "status": status}).to_string();
        }
        Outcome::Begin => out = r#"{"columns":[],"rows":[],"status":"BEGIN"}"#.into(),
        Outcome::End(c) => out = format!(r#"{{"columns":[],"rows":[],"status":"{c}"}}"#),
        Outcome::Declared(_) | Outcome::Closed(_) => {
            return Err(StatementError::refused(
                "0A000",
                "cursors need a connection: use the PostgreSQL protocol",
            ))
        }
    }
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
