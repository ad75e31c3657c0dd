//! `tidelake serve`: the PostgreSQL, Arrow Flight SQL and HTTP server over the warehouse,
//! composed here from `tidelake-server` and `tidelake-sql` sessions.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tidelake_server::{Server, ServerConfig, SessionFactory};
use tidelake_sql::{QueryHandler, Session, SqlError};

pub const SERVE_HELP: &str = "\
Connect with psql (no password; the server listens on loopback only until
users exist):
  psql -h 127.0.0.1 -p 5433 -U me -d default -c 'SELECT count(*) FROM t'
or with HTTP:
  curl -s localhost:8080/v1/statements -d 'SELECT * FROM t'
or, with --flight, Arrow Flight SQL (Python: pip install adbc-driver-flightsql):
  adbc_driver_flightsql.dbapi.connect('grpc://127.0.0.1:50051')
Each PostgreSQL connection is a session of its own (USE db, SET search_path,
SET statement_timeout). Port 0 picks a free port; the ports in use are
printed on stdout. SIGINT/SIGTERM stop the server.";

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
}

/// A statement timeout, `None` for no limit.
#[derive(Clone, Copy, Debug)]
struct Timeout(Option<Duration>);

fn parse_timeout(text: &str) -> Result<Timeout, String> {
    tidelake_server::parse_duration(text).map(Timeout)
}

/// Sessions over one opened warehouse.
struct Sessions {
    template: Session,
}

#[async_trait]
impl SessionFactory for Sessions {
    async fn open(&self) -> Result<Arc<dyn QueryHandler>, SqlError> {
        let session = Session::with_catalog(self.template.catalog().clone()).await?;
        Ok(Arc::new(session))
    }
}

pub async fn run_serve(warehouse: &str, args: ServeArgs) -> ExitCode {
    let template = match Session::open(warehouse).await {
        Ok(s) => s,
        Err(e) => {
            crate::report(&e);
            return ExitCode::FAILURE;
        }
    };
    let config = ServerConfig {
        pg: Some(args.pg),
        http: Some(args.http),
        flight: args.flight,
        statement_timeout: args.statement_timeout.0,
        max_connections: args.max_connections,
    };
    let server = match Server::bind(config, Arc::new(Sessions { template })).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = server.pg_addr() {
        println!("PostgreSQL: listening on {addr}");
    }
    if let Some(addr) = server.flight_addr() {
        println!("Flight SQL: listening on {addr}");
    }
    if let Some(addr) = server.http_addr() {
        println!("HTTP: listening on {addr}");
    }
    match server.run(stop_signal()).await {
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
