//! `tidelake serve`: the PostgreSQL, Arrow Flight SQL and HTTP server over the warehouse,
//! composed here from `tidelake-server` and `tidelake-sql` sessions, and a
//! worker of the warehouse (`tidelake-worker`): it runs its share of the
//! declared jobs and of the maintenance of `write-only` tables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tidelake_engine::{CacheConfig, MetadataCache};
use tidelake_server::flight::auth::Tokens;
use tidelake_server::users::{read_token_secret, Users};
use tidelake_server::{PgAuth, Server, ServerConfig, SessionFactory, TlsFiles};
use tidelake_sql::{
    PreparedPoint, QueryHandler, Session, SessionOptions, SqlError, StatementResult,
    StreamingResult,
};
use tidelake_stream::JobOptions;
use tidelake_worker::{Gauges, Worker, WorkerConfig};

pub const SERVE_HELP: &str = "\
Without --users every client is trusted and the server listens on loopback
only. With users (tidelake user add NAME --role admin|writer|reader --users users.toml):
  tidelake serve --users users.toml --pg 0.0.0.0:5433 --http 0.0.0.0:8080
  PGPASSWORD=... psql -h host -p 5433 -U ada -d default -c 'SELECT count(*) FROM t'
  curl -s -u ada:... host:8080/v1/statements -d 'SELECT * FROM t'
  curl -s host:8080/metrics          (Prometheus metrics)
With --flight, Arrow Flight SQL (Python: pip install adbc-driver-flightsql):
  adbc_driver_flightsql.dbapi.connect('grpc://127.0.0.1:50051',
      db_kwargs={'username': 'ada', 'password': '...'})
Flight SQL clients log in once (Basic auth in the Handshake) and get a
signed bearer token that every server sharing the token secret accepts: the
users file's [server] token-secret (written by `tidelake user add`), or
--token-secret-file FILE.
Each PostgreSQL connection is a session of its own (USE db, SET search_path,
SET statement_timeout). Port 0 picks a free port; the ports in use are
printed on stdout. SIGINT/SIGTERM stop the server.

Every server is also a worker of the warehouse: it runs its share of the
jobs declared with CREATE JOB (see docs/jobs.md) and compacts and expires
tables with 'write-only' = 'true'. Workers share the work through leases in
the warehouse; start as many as you like, on one machine or many:
  tidelake serve --pg 127.0.0.1:5433 --http 127.0.0.1:8080 &
  tidelake serve --pg 127.0.0.1:5434 --http 127.0.0.1:8081 &
A worker that dies has its jobs running elsewhere within --lease-ttl.
--idle-exit 5min stops a server with no session and no work for that long.

With --tls-cert FILE --tls-key FILE (PEM) every port requires TLS:
  psql 'host=lake.example port=5433 sslmode=require ...', https://, grpc+tls://
Clients without TLS are refused with a message saying so.";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The PostgreSQL wire protocol listener
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5433")]
    pg: SocketAddr,
    /// The HTTP listener
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// The Arrow Flight SQL listener (off unless given; --flight alone
    /// listens on 127.0.0.1:50051)
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:50051")]
    flight: Option<SocketAddr>,
    /// The longest a statement may run (e.g. 30s, 500ms, 5min; 0: no limit);
    /// SET statement_timeout changes it per connection
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = parse_timeout)]
    statement_timeout: Timeout,
    /// PostgreSQL connections served at once; more are refused (SQLSTATE 53300)
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_connections: usize,
    /// The users file (written by `tidelake user add`); without it every
    /// client is trusted and only loopback addresses are allowed
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// The key material Flight SQL bearer tokens are signed with (at
    /// least 32 bytes; default: the users file's [server] token-secret).
    /// Servers with the same secret accept each other's tokens
    #[arg(long, value_name = "FILE")]
    token_secret_file: Option<PathBuf>,
    /// How long a Flight SQL bearer token is valid after its login
    #[arg(long, value_name = "DUR", default_value = "12h", value_parser = parse_positive)]
    token_lifetime: Duration,
    /// How PostgreSQL clients authenticate (with --users): scram-sha-256, or
    /// password (cleartext, for clients without SCRAM)
    #[arg(long, value_name = "METHOD", default_value = "scram-sha-256", value_parser = parse_pg_auth)]
    pg_auth: PgAuth,
    /// Statements run at once; more wait in line (cancel and
    /// statement_timeout apply while they wait). 0: no limit
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_concurrent_queries: usize,
    /// The memory one query may use (e.g. 512MB, 2GiB); sorts and
    /// aggregates spill to disk beyond it, others fail with SQLSTATE 53200.
    /// 0: no limit
    #[arg(long, value_name = "BYTES", default_value = "0", value_parser = parse_bytes)]
    query_memory: usize,
    /// Memory for the decoded rows of data files that primary-key lookups
    /// keep meeting (e.g. 512MiB): a lookup in such a file decodes nothing.
    /// Best sized to the uncompressed size of the tables served by key;
    /// 0: lookups always decode the pages holding their rows
    #[arg(long, value_name = "BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    lookup_cache: usize,
    /// Jobs and maintenance tasks this server runs at once as a worker of
    /// the warehouse (default: twice the cores); 0 serves queries only
    #[arg(long, value_name = "N")]
    worker_slots: Option<usize>,
    /// This worker's name in the warehouse's leases (default: host, pid
    /// and a random suffix)
    #[arg(long, value_name = "NAME")]
    worker_id: Option<String>,
    /// How long a worker's lease holds without renewal: a worker that dies
    /// has its work taken over after this
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_positive)]
    lease_ttl: Duration,
    /// Stop once no session is open and no work held for this long
    /// (scale to zero); 0: never
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = parse_timeout)]
    idle_exit: Timeout,
    /// How often each 'write-only' table is compacted and expired
    #[arg(long, value_name = "DUR", default_value = "5min", value_parser = parse_positive)]
    maintenance_interval: Duration,
    /// How often the worker's jobs look for new source snapshots
    #[arg(long, value_name = "DUR", default_value = "200ms", value_parser = parse_positive)]
    job_poll_interval: Duration,
    /// A PEM certificate chain: TLS on every port, required (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Tests: append every lease claim to this file
    #[arg(long, value_name = "PATH", hide = true)]
    lease_journal: Option<PathBuf>,
    /// Tests: pretend this worker's wall clock is off by this much
    #[arg(
        long,
        value_name = "MS",
        hide = true,
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    clock_skew_ms: i64,
}

fn parse_pg_auth(text: &str) -> Result<PgAuth, String> {
    match text.to_ascii_lowercase().as_str() {
        "scram-sha-256" | "scram" => Ok(PgAuth::ScramSha256),
        "password" | "cleartext" => Ok(PgAuth::Password),
        "md5" => Err("md5 needs an MD5 hash of each password on the server; the users file keeps SCRAM-SHA-256 verifiers only (use scram-sha-256, or password)".into()),
        other => Err(format!("unknown method {other:?}: scram-sha-256 or password")),
    }
}

/// `1048576`, `64MB`, `512MiB`, `2G`: a number of bytes.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 536870912, 512MB, 2GiB)"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?}: B, KB, MB, GB or TB")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_positive(text: &str) -> Result<Duration, String> {
    tidelake_server::parse_duration(text)?.ok_or_else(|| format!("'{text}' must be more than 0"))
}

/// A statement timeout, `None` for no limit.
#[derive(Clone, Copy, Debug)]
struct Timeout(Option<Duration>);

fn parse_timeout(text: &str) -> Result<Timeout, String> {
    tidelake_server::parse_duration(text).map(Timeout)
}

/// Sessions over one opened warehouse, counted (an idle server has none).
struct Sessions {
    template: Session,
    memory_limit: Option<usize>,
    open: Arc<AtomicUsize>,
}

#[async_trait]
impl SessionFactory for Sessions {
    async fn open(&self) -> Result<Arc<dyn QueryHandler>, SqlError> {
        let options = SessionOptions {
            memory_limit: self.memory_limit,
            extensions: crate::extensions(),
        };
        let session = Session::with_options(self.template.catalog().clone(), options).await?;
        self.open.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(Counted {
            session,
            open: self.open.clone(),
        }))
    }
}

/// A session that counts itself among the open ones while it lives.
struct Counted {
    session: Session,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl QueryHandler for Counted {
    async fn execute(&self, sql: &str) -> Result<Vec<StatementResult>, SqlError> {
        QueryHandler::execute(&self.session, sql).await
    }

    async fn execute_stream(&self, sql: &str) -> Result<StreamingResult, SqlError> {
        QueryHandler::execute_stream(&self.session, sql).await
    }

    fn current_database(&self) -> String {
        QueryHandler::current_database(&self.session)
    }

    async fn prepare_point(&self, sql: &str) -> Option<Arc<PreparedPoint>> {
        QueryHandler::prepare_point(&self.session, sql).await
    }
}

/// Completes once no session was open and the worker held no work for
/// `after` without a break.
async fn idle_for(after: Duration, open: Arc<AtomicUsize>, gauges: Option<Gauges>) {
    let step = (after / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut idle_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(step).await;
        let idle = open.load(Ordering::SeqCst) == 0 && gauges.as_ref().is_none_or(Gauges::is_idle);
        match (idle, idle_since) {
            (false, _) => idle_since = None,
            (true, None) => idle_since = Some(Instant::now()),
            (true, Some(since)) if since.elapsed() >= after => return,
            (true, Some(_)) => {}
        }
    }
}

fn worker_config(args: &ServeArgs, slots: usize) -> WorkerConfig {
    WorkerConfig {
        id: args.worker_id.clone(),
        slots,
        lease_ttl: args.lease_ttl,
        maintenance_interval: args.maintenance_interval,
        job_options: JobOptions {
            poll_interval: args.job_poll_interval,
            ..JobOptions::default()
        },
        clock_skew_ms: args.clock_skew_ms,
        lease_journal: args.lease_journal.clone(),
    }
}

/// The session every connection's is made from, on a catalog whose cache
/// keeps up to `lookup_cache` bytes of decoded rows for key lookups.
async fn open_serving_session(warehouse: &str, lookup_cache: usize) -> Result<Session, SqlError> {
    let catalog = tidelake_vector::open_catalog(warehouse).await?;
    let config = CacheConfig {
        lookup_rows_bytes: lookup_cache,
        ..catalog.metadata_cache().config()
    };
    Session::with_extensions(catalog.with_cache_config(config), crate::extensions()).await
}

/// The bytes each of the catalog's caches holds, as Prometheus gauges.
fn cache_gauges(cache: &MetadataCache) -> String {
    let name = "tidelake_engine_cache_bytes";
    format!(
        "# HELP {name} Bytes held by the in-memory caches (estimated)\n# TYPE {name} gauge\n\
         {name}{{cache=\"manifest\"}} {}\n{name}{{cache=\"footer\"}} {}\n\
         {name}{{cache=\"key_index\"}} {}\n{name}{{cache=\"lookup_rows\"}} {}\n",
        cache.manifest_bytes_held(),
        cache.footer_bytes_held(),
        cache.key_index_bytes_held(),
        cache.lookup_rows_bytes_held(),
    )
}

pub async fn run_serve(warehouse: &str, args: ServeArgs) -> ExitCode {
    let template = match open_serving_session(warehouse, args.lookup_cache).await {
        Ok(s) => s,
        Err(e) => {
            crate::report(&e);
            return ExitCode::FAILURE;
        }
    };
    let users = match &args.users {
        Some(path) => match Users::load(path) {
            Ok(users) if users.is_empty() => {
                eprintln!(
                    "error: the users file {} has no users: add one with `tidelake user add`",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            Ok(users) => Some(Arc::new(users)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    if users.is_none() {
        eprintln!(
            "note: no --users file: every client is trusted, so the server listens on loopback only"
        );
    }
    let flight_tokens = match flight_tokens(&args, users.as_deref()) {
        Ok(tokens) => tokens,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = ServerConfig {
        pg: Some(args.pg),
        http: Some(args.http),
        flight: args.flight,
        statement_timeout: args.statement_timeout.0,
        max_connections: args.max_connections,
        users,
        pg_auth: args.pg_auth,
        max_concurrent_queries: (args.max_concurrent_queries > 0)
            .then_some(args.max_concurrent_queries),
        flight_tokens: Some(flight_tokens),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
    };
    let slots = args
        .worker_slots
        .unwrap_or_else(|| WorkerConfig::default().slots);
    let worker =
        (slots > 0).then(|| Worker::new(template.catalog().clone(), worker_config(&args, slots)));
    let gauges = worker.as_ref().map(Worker::gauges);
    let open = Arc::new(AtomicUsize::new(0));
    let sessions_cache = template.catalog().metadata_cache().clone();
    let sessions = Sessions {
        template,
        memory_limit: (args.query_memory > 0).then_some(args.query_memory),
        open: open.clone(),
    };
    let server = match Server::bind(config, Arc::new(sessions)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The worker's gauges (pending work, lag, slots) on /metrics, for an
    // autoscaler: the server knows no worker, only a source of metrics.
    let server = match worker.as_ref().map(Worker::gauges) {
        Some(worker_gauges) => server.with_metrics(Arc::new(move || worker_gauges.render())),
        None => server,
    };
    let cache = sessions_cache;
    let server = server.with_metrics(Arc::new(move || cache_gauges(&cache)));
    if server.requires_tls() {
        println!("TLS: required on every port");
    }
    if let Some(addr) = server.pg_addr() {
        println!("PostgreSQL: listening on {addr}");
    }
    if let Some(addr) = server.flight_addr() {
        println!("Flight SQL: listening on {addr}");
    }
    if let Some(addr) = server.http_addr() {
        println!("HTTP: listening on {addr}");
    }
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    let worker_task = worker.map(|worker| {
        println!("worker: {} ({slots} slots)", worker.id());
        let mut stopped = worker_stopped;
        tokio::spawn(worker.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    });
    let idle_exit = args.idle_exit.0;
    let shutdown = async move {
        match idle_exit {
            Some(after) => tokio::select! {
                () = stop_signal() => {}
                () = idle_for(after, open, gauges) => {
                    println!("idle for {after:?}: exiting");
                }
            },
            None => stop_signal().await,
        }
    };
    let served = server.run(shutdown).await;
    // The worker stops its jobs after their current commit and releases
    // its leases, so that other workers take over at once.
    stop_worker.send_replace(true);
    if let Some(task) = worker_task {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("error: worker: {e}"),
            Err(e) => eprintln!("error: worker task: {e}"),
        }
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How Flight SQL bearer tokens are signed: with `--token-secret-file`,
/// else the users file's secret, else a random key of this process (its
/// tokens then work on this process only, which is said once).
fn flight_tokens(args: &ServeArgs, users: Option<&Users>) -> Result<Tokens, String> {
    let lifetime = args.token_lifetime;
    if let Some(path) = &args.token_secret_file {
        let secret = read_token_secret(path).map_err(|e| e.to_string())?;
        return Ok(Tokens::new(&secret, lifetime));
    }
    match users.and_then(Users::token_secret) {
        Some(secret) => Ok(Tokens::new(secret, lifetime)),
        None => {
            if args.flight.is_some() && users.is_some() {
                eprintln!(
                    "note: the users file has no [server] token-secret and no --token-secret-file \
                     was given: Flight SQL tokens are valid on this server process only \
                     (`tidelake user rotate-token-secret` adds a secret)"
                );
            }
            Ok(Tokens::random(lifetime))
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_methods() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("64MB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 << 30));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("MB").is_err());
        assert_eq!(parse_pg_auth("SCRAM-SHA-256"), Ok(PgAuth::ScramSha256));
        assert!(parse_pg_auth("md5").unwrap_err().contains("SCRAM"));
    }
}
