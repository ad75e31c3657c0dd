//! `tidelake serve`: the PostgreSQL and HTTP server over the warehouse,
//! composed here from `tidelake-server` and `tidelake-sql` sessions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tidelake_server::users::Users;
use tidelake_server::{PgAuth, Server, ServerConfig, SessionFactory};
use tidelake_sql::{QueryHandler, Session, SessionOptions, SqlError};

pub const SERVE_HELP: &str = "\
Without --users every client is trusted and the server listens on loopback
only. With users (tidelake user add NAME --role admin|writer|reader --users users.toml):
  tidelake serve --users users.toml --pg 0.0.0.0:5433 --http 0.0.0.0:8080
  PGPASSWORD=... psql -h host -p 5433 -U ada -d default -c 'SELECT count(*) FROM t'
  curl -s -u ada:... host:8080/v1/statements -d 'SELECT * FROM t'
  curl -s host:8080/metrics          (Prometheus metrics)
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

/// A statement timeout, `None` for no limit.
#[derive(Clone, Copy, Debug)]
struct Timeout(Option<Duration>);

fn parse_timeout(text: &str) -> Result<Timeout, String> {
    tidelake_server::parse_duration(text).map(Timeout)
}

/// Sessions over one opened warehouse.
struct Sessions {
    template: Session,
    memory_limit: Option<usize>,
}

#[async_trait]
impl SessionFactory for Sessions {
    async fn open(&self) -> Result<Arc<dyn QueryHandler>, SqlError> {
        let options = SessionOptions {
            memory_limit: self.memory_limit,
            ..SessionOptions::default()
        };
        let session = Session::with_options(self.template.catalog().clone(), options).await?;
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
    let config = ServerConfig {
        pg: Some(args.pg),
        http: Some(args.http),
        statement_timeout: args.statement_timeout.0,
        max_connections: args.max_connections,
        users,
        pg_auth: args.pg_auth,
        max_concurrent_queries: (args.max_concurrent_queries > 0)
            .then_some(args.max_concurrent_queries),
    };
    let sessions = Sessions {
        template,
        memory_limit: (args.query_memory > 0).then_some(args.query_memory),
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
