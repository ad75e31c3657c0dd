//! # tidelake-server
//!
//! Tidelake's network front ends over SQL sessions: the PostgreSQL wire
//! protocol ([`pgwire`]: simple and extended query protocol, text and
//! binary formats, portals with `max_rows`, SQL cursors, `SET`/`SHOW`,
//! `statement_timeout`, CancelRequest, the catalog queries psql sends),
//! Arrow Flight SQL ([`flight`]: statements, prepared statements with
//! parameters, metadata, DoPut updates, bulk ingest, cancel, Handshake
//! then bearer tokens, self-contained tickets) and an HTTP API (`POST
//! /v1/statements`, `DELETE /v1/statements/{id}`, `/v1/status`, `/metrics`,
//! `/healthz`, `/readyz`) with the web console's assets (`/`, `/console/...`,
//! built into the binary).
//!
//! It owns *how clients talk to Tidelake*: listening, connections and
//! their limits, protocol messages, the mapping of Arrow types to
//! PostgreSQL types (see [`pg::types`]) and of values to JSON, and turning
//! every [`SqlError`] into its SQLSTATE on the wire. Each PostgreSQL
//! connection has its own session (its current database, `USE` and
//! `search_path`), each HTTP request a fresh one.
//!
//! It must not know engine internals (tables, files, snapshots, the
//! warehouse's layout): it reaches SQL only through
//! [`tidelake_sql::QueryHandler`], with sessions from a [`SessionFactory`]
//! that the composition root (the `tidelake` command) provides.
//!
//! Users ([`users`]): with a users file every client authenticates
//! (SCRAM-SHA-256 on PostgreSQL, Basic on HTTP, Basic in the Handshake then
//! signed bearer tokens on Flight SQL, see [`flight::auth`]) and each
//! statement, DoPut and bulk ingest is checked against the user's role
//! before it runs (42501, PERMISSION_DENIED on Flight); without one every
//! client is trusted, so the server refuses to listen on anything but a
//! loopback address. An admission queue bounds the statements running at
//! once; `/metrics` serves Prometheus metrics ([`telemetry`]): the server's
//! own, the engine's counters (through `tidelake_sql::engine_counters`) and
//! whatever [`telemetry::MetricsSource`]s the composition root adds with
//! [`Server::with_metrics`] (a worker's gauges).
//! TLS (`tls.rs`, rustls with the ring provider): given a certificate, every
//! port requires it (PostgreSQL after the client's SSLRequest, HTTP and
//! Flight SQL from the first byte), and a client without it is refused
//! with a message saying so. Concurrent sessions' small writes to one table
//! share snapshots through the engine's group commit (nothing to do here:
//! each statement's result comes back once its shared snapshot is
//! committed).
//! The engine's metadata caches (manifests, Parquet footers) are shared
//! by every session through the catalog the [`SessionFactory`] opens
//! sessions over; `/metrics` shows their hits and misses and the
//! primary-key lookups that point queries take.

mod console;
mod error;
pub mod flight;
mod http;
mod net;
pub mod pg;
mod stats;
pub mod telemetry;
mod tls;
pub mod users;
mod values;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use pgwire::messages::startup::SecretKey;
use tidelake_sql::{QueryHandler, SqlError};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use error::{ServerError, StatementError};
pub use pg::settings::parse_duration;
pub use tls::TlsFiles;
use users::Users;

/// Opens sessions over the warehouse the server serves.
#[async_trait]
pub trait SessionFactory: Send + Sync + 'static {
    /// A new session, on the default database.
    async fn open(&self) -> Result<Arc<dyn QueryHandler>, SqlError>;
}

/// What and how the server serves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The PostgreSQL listener (`None`: off).
    pub pg: Option<SocketAddr>,
    /// The HTTP listener (`None`: off).
    pub http: Option<SocketAddr>,
    /// The Arrow Flight SQL listener (`None`: off).
    pub flight: Option<SocketAddr>,
    /// The default `statement_timeout` (`None`: no limit).
    pub statement_timeout: Option<Duration>,
    /// Connections served at once (PostgreSQL); more are refused with 53300.
    pub max_connections: usize,
    /// The users who may connect (`None`: everyone, loopback only).
    pub users: Option<Arc<Users>>,
    /// How PostgreSQL clients prove their password.
    pub pg_auth: PgAuth,
    /// Statements run at once (`None`: no limit); more wait in line.
    pub max_concurrent_queries: Option<usize>,
    /// How Flight SQL bearer tokens are signed and how long they last
    /// (`None`: a random key of this process, whose tokens no other
    /// process accepts, and the default lifetime).
    pub flight_tokens: Option<flight::auth::Tokens>,
    /// The certificate and key of TLS, required on every port when given
    /// (`None`: plain TCP).
    pub tls: Option<TlsFiles>,
}

/// The PostgreSQL authentication method (with a users file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PgAuth {
    /// SCRAM-SHA-256: the password never crosses the wire.
    #[default]
    ScramSha256,
    /// The password in clear (for clients without SCRAM; use with care).
    Password,
}

/// A connection's (pid, secret key), as a CancelRequest names it.
type CancelKey = (i32, Vec<u8>);

/// State all connections share.
pub(crate) struct Shared {
    factory: Arc<dyn SessionFactory>,
    statement_timeout: Option<Duration>,
    next_pid: AtomicI32,
    /// Running connections by (pid, secret key), for CancelRequest.
    connections: Mutex<HashMap<CancelKey, Weak<pg::connection::Connection>>>,
    /// Running HTTP statements by their id, for `DELETE /v1/statements/{id}`.
    running: Mutex<HashMap<String, Weak<pg::connection::Connection>>>,
    stats: Arc<stats::Stats>,
    pub(crate) users: Option<Arc<Users>>,
    pub(crate) pg_auth: PgAuth,
    /// Admission slots of the statements that may run at once.
    pub(crate) admission: Option<Arc<Semaphore>>,
    /// More metrics for `/metrics`, from outside the server (a worker's).
    pub(crate) metrics_sources: Mutex<Vec<Arc<dyn telemetry::MetricsSource>>>,
}

impl Shared {
    fn next_pid(&self) -> i32 {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }

    fn register(&self, pid: i32, secret: &SecretKey, conn: &Arc<pg::connection::Connection>) {
        let mut map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, c| c.strong_count() > 0);
        map.insert((pid, secret.to_bytes().to_vec()), Arc::downgrade(conn));
    }

    fn cancel(&self, pid: i32, secret: &SecretKey) {
        let map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        match map
            .get(&(pid, secret.to_bytes().to_vec()))
            .and_then(Weak::upgrade)
        {
            Some(conn) => {
                tracing::info!(pid, "cancel request: cancelling the running statement");
                conn.cancel();
            }
            // PostgreSQL ignores a request with a wrong key silently too.
            None => tracing::info!(pid, "cancel request for no running connection"),
        }
    }
}

/// A server bound to its addresses, not yet serving.
pub struct Server {
    pg: Option<TcpListener>,
    http: Option<TcpListener>,
    flight: Option<TcpListener>,
    authenticator: Arc<dyn flight::auth::Authenticator>,
    tokens: flight::auth::Tokens,
    shared: Arc<Shared>,
    max_connections: usize,
    tls: Option<tls::Tls>,
}

async fn listen(addr: SocketAddr, trusted: bool) -> Result<TcpListener, ServerError> {
    if trusted && !addr.ip().is_loopback() {
        return Err(ServerError::NotLoopback { addr });
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

impl Server {
    /// Binds the listeners (port 0 picks a free port; see [`Server::pg_addr`]).
    pub async fn bind(
        config: ServerConfig,
        factory: Arc<dyn SessionFactory>,
    ) -> Result<Server, ServerError> {
        let trusted = config.users.is_none();
        let tls = config.tls.as_ref().map(tls::Tls::load).transpose()?;
        let pg = match config.pg {
            Some(addr) => Some(listen(addr, trusted).await?),
            None => None,
        };
        let http = match config.http {
            Some(addr) => Some(listen(addr, trusted).await?),
            None => None,
        };
        telemetry::install();
        let flight = match config.flight {
            Some(addr) => Some(listen(addr, trusted).await?),
            None => None,
        };
        // Flight SQL checks the same users as PostgreSQL and HTTP, and
        // trusts everyone when they do.
        let authenticator: Arc<dyn flight::auth::Authenticator> = match &config.users {
            Some(users) => Arc::new(flight::auth::UsersAuthenticator(users.clone())),
            None => Arc::new(flight::auth::AnyUser),
        };
        let tokens = config
            .flight_tokens
            .clone()
            .unwrap_or_else(|| flight::auth::Tokens::random(flight::auth::DEFAULT_TOKEN_LIFETIME));
        Ok(Server {
            pg,
            http,
            flight,
            authenticator,
            tokens,
            shared: Arc::new(Shared {
                factory,
                statement_timeout: config.statement_timeout,
                next_pid: AtomicI32::new(1000),
                connections: Mutex::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
                stats: Arc::new(stats::Stats::new()),
                users: config.users,
                pg_auth: config.pg_auth,
                admission: config
                    .max_concurrent_queries
                    .map(|n| Arc::new(Semaphore::new(n.max(1)))),
                metrics_sources: Mutex::new(Vec::new()),
            }),
            max_connections: config.max_connections.max(1),
            tls,
        })
    }

    /// Whether clients must use TLS (a certificate was given).
    pub fn requires_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address the PostgreSQL listener is bound to.
    pub fn pg_addr(&self) -> Option<SocketAddr> {
        self.pg.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address the HTTP listener is bound to.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address the Flight SQL listener is bound to.
    pub fn flight_addr(&self) -> Option<SocketAddr> {
        self.flight.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Checks Flight SQL's users and passwords with `authenticator`
    /// instead of the users of the configuration.
    pub fn with_authenticator(
        mut self,
        authenticator: Box<dyn flight::auth::Authenticator>,
    ) -> Server {
        self.authenticator = Arc::from(authenticator);
        self
    }

    /// Adds `source`'s metrics to those `/metrics` serves (the composition
    /// root adds a worker's gauges this way: the server knows no worker).
    pub fn with_metrics(self, source: Arc<dyn telemetry::MetricsSource>) -> Server {
        self.shared
            .metrics_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
        self
    }

    /// Serves until `shutdown` completes (or a listener fails).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        if self.shared.users.is_none() {
            tracing::warn!(
                "no users file: every client is trusted, so the server listens on loopback only"
            );
        }
        let pg = match self.pg {
            Some(listener) => {
                let shared = self.shared.clone();
                let max = self.max_connections;
                let tls = self.tls.as_ref().map(|t| t.acceptor(&[]));
                tokio::spawn(pg::serve(listener, shared, max, tls))
            }
            None => tokio::spawn(futures::future::pending()),
        };
        // Flight SQL and HTTP check the same passwords and tokens.
        let auth = flight::auth::Auth::new(self.authenticator, self.tokens);
        let http = match self.http {
            Some(listener) => tokio::spawn(http::serve(
                listener,
                self.shared.clone(),
                auth.clone(),
                self.tls.as_ref().map(|t| t.acceptor(&[b"http/1.1"])),
            )),
            None => tokio::spawn(futures::future::pending()),
        };
        let flight = match self.flight {
            Some(listener) => tokio::spawn(flight::serve(
                listener,
                self.shared.clone(),
                auth,
                self.tls.as_ref().map(|t| t.acceptor(&[b"h2"])),
            )),
            None => tokio::spawn(futures::future::pending()),
        };
        tokio::select! {
            _ = shutdown => Ok(()),
            r = flight => match r {
                Ok(r) => r,
                Err(e) => Err(ServerError::Flight(e.to_string())),
            },
            r = http => match r {
                Ok(r) => r,
                Err(e) => Err(ServerError::Http(std::io::Error::other(e))),
            },
            r = pg => match r {
                Ok(()) => Ok(()),
                Err(e) => Err(ServerError::Http(std::io::Error::other(e))),
            },
        }
    }
}
