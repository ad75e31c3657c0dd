//! `tidelake serve`: the PostgreSQL and HTTP server over the warehouse,
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
use tidelake_server::{Server, ServerConfig, SessionFactory};
use tidelake_sql::{QueryHandler, Session, SqlError, StatementResult, StreamingResult};
use tidelake_stream::JobOptions;
use tidelake_worker::{Gauges, Worker, WorkerConfig};

pub const SERVE_HELP: &str = "\
Connect with psql (no password; the server listens on loopback only until
users exist):
  psql -h 127.0.0.1 -p 5433 -U me -d default -c 'SELECT count(*) FROM t'
or with HTTP:
  curl -s localhost:8080/v1/statements -d 'SELECT * FROM t'
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
--idle-exit 5min stops a server with no session and no work for that long.";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The PostgreSQL wire protocol listener
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5433")]
    pg: SocketAddr,
    /// The HTTP listener
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// The longest a statement may run (e.g. 30s, 500ms, 5min; 0: no limit);
    /// SET statement_timeout changes it per connection
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = parse_timeout)]
    statement_timeout: Timeout,
    /// PostgreSQL connections served at once; more are refused (SQLSTATE 53300)
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_connections: usize,
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
    open: Arc<AtomicUsize>,
}

#[async_trait]
impl SessionFactory for Sessions {
    async fn open(&self) -> Result<Arc<dyn QueryHandler>, SqlError> {
        let session =
            Session::with_extensions(self.template.catalog().clone(), crate::extensions()).await?;
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

pub async fn run_serve(warehouse: &str, args: ServeArgs) -> ExitCode {
    let template = match crate::open_session(warehouse).await {
        Ok(s) => s,
        Err(e) => {
            crate::report(&e);
            return ExitCode::FAILURE;
        }
    };
    let config = ServerConfig {
        pg: Some(args.pg),
        http: Some(args.http),
        statement_timeout: args.statement_timeout.0,
        max_connections: args.max_connections,
    };
    let slots = args
        .worker_slots
        .unwrap_or_else(|| WorkerConfig::default().slots);
    let worker =
        (slots > 0).then(|| Worker::new(template.catalog().clone(), worker_config(&args, slots)));
    let gauges = worker.as_ref().map(Worker::gauges);
    let open = Arc::new(AtomicUsize::new(0));
    let sessions = Sessions {
        template,
        open: open.clone(),
    };
    let server = match Server::bind(config, Arc::new(sessions)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = server.pg_addr() {
        println!("PostgreSQL: listening on {addr}");
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
