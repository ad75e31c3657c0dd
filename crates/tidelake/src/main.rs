//! The `tidelake` command: a SQL shell and script runner over a warehouse
//! of Apache Paimon tables.
//!
//! It owns the command line (arguments, the interactive shell, output
//! formats) and talks to tables only through `tidelake-sql`'s `Session`, and
//! to streaming through `tidelake-stream` (streaming queries, jobs and their
//! supervisor): it must not know engine internals (files, snapshots,
//! writers).

mod complete;
mod output;
mod progress;
mod serve;
mod shell;
mod stream;
mod user;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use tidelake_sql::{Session, SqlError};

use crate::output::{print_result, Format};

const EXAMPLES: &str = "\
Examples:
  tidelake sql -e \"CREATE TABLE t (id BIGINT, v STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '2')\"
  tidelake sql -e \"INSERT INTO t VALUES (1, 'a'), (2, 'b')\" -e \"SELECT * FROM t\"
  tidelake --warehouse s3://bucket/lake sql -f load.sql --format csv > out.csv
  echo \"SELECT count(*) FROM t;\" | tidelake sql --format json
  tidelake sql                       (interactive shell)
  tidelake stream -e \"SELECT * FROM t\" --mode latest   (print changes as they are committed)
  tidelake serve --pg 127.0.0.1:5433   (PostgreSQL and HTTP clients; psql -h 127.0.0.1 -p 5433 -d default)
  tidelake stream --job totals -e \"INSERT INTO totals SELECT k, sum(v) FROM t GROUP BY k\"   (a continuous job)";

/// A streaming lakehouse on Apache Paimon tables.
#[derive(Debug, Parser)]
#[command(name = "tidelake", version, about, after_help = EXAMPLES)]
struct Cli {
    /// The warehouse: a directory, file:// or s3:// URI [default: ./warehouse]
    #[arg(long, global = true, env = "TIDELAKE_WAREHOUSE", value_name = "URI")]
    warehouse: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run SQL: the statements of -e and -f (in the order given), else
    /// statements read from stdin, else an interactive shell on a terminal.
    #[command(after_help = SQL_HELP)]
    Sql(SqlArgs),
    /// Compact a table as a dedicated job (writers may run with
    /// 'write-only' = 'true' meanwhile); the same as
    /// CALL sys.compact(table => 'db.t', ...).
    Compact(CompactArgs),
    /// Print a table's changes as they are committed (a streaming SELECT),
    /// with an _op column: +I, -U, +U, -D; or, with --job NAME, run
    /// INSERT INTO sink SELECT ... continuously, exactly-once.
    #[command(after_help = stream::STREAM_HELP)]
    Stream(stream::StreamArgs),
    /// Serve the warehouse to PostgreSQL clients (psql, psycopg, JDBC...)
    /// and over HTTP (POST /v1/statements), one session per connection.
    #[command(after_help = serve::SERVE_HELP)]
    Serve(serve::ServeArgs),
    /// Manage the users of `tidelake serve --users FILE`
    #[command(subcommand, after_help = user::USER_HELP)]
    User(user::UserCommand),
}

#[derive(Debug, clap::Args)]
struct CompactArgs {
    /// The table, as db.table (or a table of the default database)
    table: String,
    /// Only these partitions: k=v[,k2=v2]; repeatable
    #[arg(long, value_name = "SPEC")]
    partition: Vec<String>,
    /// Rewrite every sorted run into one (otherwise: only what the
    /// universal compaction strategy picks)
    #[arg(long)]
    full: bool,
    /// How to print the outcome
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Quotes a value as a SQL string literal.
fn sql_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

async fn run_compact(warehouse: &str, args: CompactArgs) -> ExitCode {
    let session = match Session::open(warehouse).await {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return ExitCode::FAILURE;
        }
    };
    let mut call = format!("CALL sys.compact(table => {}", sql_string(&args.table));
    if !args.partition.is_empty() {
        call.push_str(&format!(
            ", partitions => {}",
            sql_string(&args.partition.join(";"))
        ));
    }
    let strategy = if args.full { "full" } else { "minor" };
    call.push_str(&format!(", compact_strategy => '{strategy}')"));
    match run_script(&session, &call, args.format).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

const SQL_HELP: &str = "\
Statements are separated by ';'. Besides queries (anything Apache DataFusion runs):
  CREATE DATABASE [IF NOT EXISTS] db; DROP DATABASE [IF EXISTS] db [CASCADE]; USE db;
  SHOW DATABASES; SHOW TABLES [IN db]; DESCRIBE t; SHOW CREATE TABLE t;
  CREATE TABLE [IF NOT EXISTS] db.t (id BIGINT NOT NULL, dt STRING, amount DECIMAL(10, 2),
      PRIMARY KEY (id, dt) NOT ENFORCED) [COMMENT '...'] PARTITIONED BY (dt) WITH ('bucket' = '2');
  DROP TABLE [IF EXISTS] t; ALTER TABLE t ADD (c INT, d STRING); ALTER TABLE t SET ('k' = 'v');
  ALTER TABLE t RESET ('k'); INSERT INTO t [(cols)] VALUES ... | SELECT ...; INSERT OVERWRITE t SELECT ...;
  UPDATE t SET c = ... WHERE ...; DELETE FROM t WHERE ...;
  SELECT * FROM t VERSION AS OF 3;   (or t$snapshot_3: the table as of snapshot 3)

On the first failing statement, -e/-f/stdin runs stop with exit status 1 and
one line on stderr: error[SQLSTATE]: message. In the shell, end statements
with ';', leave with \\q or exit; history is kept in ~/.tidelake_history.

Output formats: table (default; statuses such as 'INSERT 0 3' on stdout),
csv (RFC 4180, header row, NULL as an empty field) and json (one object per
row, NULL as null, decimals as JSON numbers with exact digits, timestamps as
ISO-8601 strings); with csv and json, statuses go to stderr.

Logging goes to stderr, filtered by RUST_LOG (e.g. RUST_LOG=tidelake_sql=debug).";

#[derive(Debug, clap::Args)]
struct SqlArgs {
    /// A statement (or several, ';'-separated) to run; repeatable
    #[arg(short = 'e', long = "execute", value_name = "SQL")]
    execute: Vec<String>,
    /// A file of ';'-separated statements to run; repeatable
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Vec<PathBuf>,
    /// How to print query results
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// One source of statements, in command-line order.
enum Script {
    Inline(String),
    File(PathBuf),
}

/// The -e and -f arguments in the order they were given.
fn scripts_in_order(args: &SqlArgs, matches: &ArgMatches) -> Vec<Script> {
    let mut indexed: Vec<(usize, Script)> = Vec::new();
    let indices = |id: &str| {
        matches
            .indices_of(id)
            .map(|i| i.collect::<Vec<_>>())
            .unwrap_or_default()
    };
    for (index, sql) in indices("execute").into_iter().zip(&args.execute) {
        indexed.push((index, Script::Inline(sql.clone())));
    }
    for (index, path) in indices("file").into_iter().zip(&args.file) {
        indexed.push((index, Script::File(path.clone())));
    }
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, s)| s).collect()
}

/// Prints an error as one line: `error[CODE]: message`.
fn report(error: &SqlError) {
    print_error(error.code(), error);
}

/// Prints `error[CODE]: message` on stderr, the message on one line.
fn print_error(code: &str, message: &dyn std::fmt::Display) {
    let message = message
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("error[{code}]: {message}");
}

/// Runs statements, printing each result as it completes.
async fn run_script(session: &Session, sql: &str, format: Format) -> Result<(), SqlError> {
    let progress = progress::ProgressLine::start(session.progress());
    let mut print = |result: tidelake_sql::StatementResult| {
        progress.between_statements(|| {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let (mut out, mut err) = (stdout.lock(), stderr.lock());
            if let Err(e) = print_result(&result, format, &mut out, &mut err) {
                tracing::warn!("could not print a result: {e}");
            }
            let _ = out.flush();
        });
    };
    session.execute_each(sql, &mut print).await.map(|_| ())
}

async fn run_sql(warehouse: &str, args: SqlArgs, matches: &ArgMatches) -> ExitCode {
    let session = match Session::open(warehouse).await {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return ExitCode::FAILURE;
        }
    };
    let scripts = scripts_in_order(&args, matches);
    if !scripts.is_empty() {
        for script in scripts {
            let sql = match script {
                Script::Inline(sql) => sql,
                Script::File(path) => match std::fs::read_to_string(&path) {
                    Ok(sql) => sql,
                    Err(e) => {
                        eprintln!("error: cannot read '{}': {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                },
            };
            if let Err(e) = run_script(&session, &sql, args.format).await {
                report(&e);
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    if std::io::stdin().is_terminal() {
        return shell::run(&session, args.format).await;
    }
    let mut sql = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut sql) {
        eprintln!("error: cannot read statements from stdin: {e}");
        return ExitCode::FAILURE;
    }
    match run_script(&session, &sql, args.format).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let warehouse = cli
        .warehouse
        .clone()
        .unwrap_or_else(|| "./warehouse".to_string());
    match cli.command {
        Command::Sql(args) => {
            let sub = matches
                .subcommand_matches("sql")
                .cloned()
                .unwrap_or_default();
            runtime.block_on(run_sql(&warehouse, args, &sub))
        }
        Command::Compact(args) => runtime.block_on(run_compact(&warehouse, args)),
        Command::Stream(args) => runtime.block_on(stream::run_stream(&warehouse, args)),
        Command::Serve(args) => runtime.block_on(serve::run_serve(&warehouse, args)),
        Command::User(command) => user::run_user(command),
    }
}
