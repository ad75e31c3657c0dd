//! `tidelake cdc mysql` and `tidelake cdc nats`: the command-line options of
//! the MySQL/MariaDB and NATS JetStream sources. Until the shared sink is
//! wired in, `--print-events` prints what the source yields, one event a
//! line (a dry run of the source alone).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use tidelake_cdc::event::SourcePosition;
use tidelake_cdc::mysql::{MysqlConfig, MysqlSource, StartMode};
use tidelake_cdc::nats::{MessageFormat, NatsConfig, NatsSource};
use tidelake_cdc::ChangeSource;

pub const CDC_HELP: &str = "\
Examples:
  tidelake cdc mysql --source 'mysql://root@127.0.0.1:3306/shop' --database ods --print-events
  tidelake cdc nats --server 127.0.0.1:4222 --stream cdc --format canal-json --database ods --print-events

The MySQL/MariaDB server needs log-bin, binlog_format=ROW, binlog_row_image=FULL,
binlog_row_metadata=FULL and a server_id; tidelake refuses a server without them.";

#[derive(Debug, Args)]
pub struct CdcArgs {
    #[command(subcommand)]
    pub source: CdcSource,
}

#[derive(Debug, Subcommand)]
pub enum CdcSource {
    /// Sync a MySQL/MariaDB database: an initial snapshot, then the binlog.
    Mysql(MysqlArgs),
    /// Sync change messages (Debezium, Canal or Maxwell JSON) from a NATS
    /// JetStream stream.
    Nats(NatsArgs),
}

#[derive(Debug, Args)]
pub struct MysqlArgs {
    /// The source: mysql://user[:password]@host[:port]/database
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The Tidelake database the tables are synced into
    #[arg(long, value_name = "NAME")]
    pub database: String,
    /// Further source databases to capture (default: the URL's)
    #[arg(long = "source-database", value_name = "NAME")]
    pub source_databases: Vec<String>,
    /// The replica server id to register with (unique among replicas)
    #[arg(long, value_name = "ID")]
    pub server_id: Option<u32>,
    /// Only the initial snapshot, then stop
    #[arg(long, conflicts_with = "stream_only")]
    pub snapshot_only: bool,
    /// No snapshot: the binlog from the server's current position
    #[arg(long)]
    pub stream_only: bool,
    /// Start the binlog at this position (gtid=...;file=...;pos=...)
    #[arg(long, value_name = "POSITION", conflicts_with_all = ["snapshot_only", "stream_only"])]
    pub start_position: Option<String>,
    /// Print the source's events instead of writing tables
    #[arg(long)]
    pub print_events: bool,
}

#[derive(Debug, Args)]
pub struct NatsArgs {
    /// The NATS server, host:port or nats://host:port
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4222")]
    pub server: String,
    /// The JetStream stream holding the change messages
    #[arg(long, value_name = "NAME")]
    pub stream: String,
    /// Only messages on this subject (wildcards allowed)
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// The message format: debezium-json, canal-json or maxwell-json
    #[arg(long, value_name = "FORMAT")]
    pub format: MessageFormat,
    /// The Tidelake database the tables are synced into
    #[arg(long, value_name = "NAME")]
    pub database: String,
    /// Primary keys for tables whose messages name none (Debezium)
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub primary_keys: Vec<String>,
    /// Start after this stream sequence (seq=N)
    #[arg(long, value_name = "POSITION")]
    pub start_position: Option<String>,
    /// Stop at the end of the stream instead of waiting for more
    #[arg(long)]
    pub stop_at_end: bool,
    /// Print the source's events instead of writing tables
    #[arg(long)]
    pub print_events: bool,
}

pub async fn run_cdc(_warehouse: &str, args: CdcArgs) -> ExitCode {
    let result = match args.source {
        CdcSource::Mysql(args) => run_mysql(args).await,
        CdcSource::Nats(args) => run_nats(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

pub fn mysql_config(args: &MysqlArgs) -> MysqlConfig {
    let mut config = MysqlConfig::new(&args.source);
    config.databases = args.source_databases.clone();
    if let Some(id) = args.server_id {
        config.server_id = id;
    }
    config.start = match (&args.start_position, args.snapshot_only, args.stream_only) {
        (Some(position), _, _) => StartMode::Resume(SourcePosition(position.clone())),
        (None, true, _) => StartMode::SnapshotOnly,
        (None, _, true) => StartMode::StreamOnly,
        _ => StartMode::SnapshotThenStream,
    };
    config
}

pub fn nats_config(args: &NatsArgs) -> NatsConfig {
    let mut config = NatsConfig::new(&args.server, &args.stream, args.format);
    config.subject = args.subject.clone();
    config.primary_keys = args.primary_keys.clone();
    config.resume = args.start_position.clone().map(SourcePosition);
    config.stop_at_end = args.stop_at_end;
    config
}

async fn run_mysql(args: MysqlArgs) -> Result<(), String> {
    if !args.print_events {
        return Err("writing tables needs the CDC sink; run with --print-events".into());
    }
    let mut source = MysqlSource::start(mysql_config(&args)).await.map_err(|e| e.to_string())?;
    print_events(&mut source).await
}

async fn run_nats(args: NatsArgs) -> Result<(), String> {
    if !args.print_events {
        return Err("writing tables needs the CDC sink; run with --print-events".into());
    }
    let mut source = NatsSource::start(nats_config(&args)).await.map_err(|e| e.to_string())?;
    print_events(&mut source).await
}

async fn print_events(source: &mut dyn ChangeSource) -> Result<(), String> {
    while let Some(event) = source.next_event().await.map_err(|e| e.to_string())? {
        println!("{event:?}");
    }
    Ok(())
}
