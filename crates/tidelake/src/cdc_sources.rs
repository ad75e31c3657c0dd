//! `tidelake cdc mysql` and `tidelake cdc nats`: the MySQL/MariaDB and NATS
//! JetStream sources' options; the sink's options are [`SinkArgs`] (shared
//! with `tidelake cdc postgres`). `--print-events` prints what the source
//! yields, one event a line, instead of writing tables (a dry run).

use clap::Args;
use tidelake_cdc::mysql::{MysqlConfig, MysqlSource, StartMode};
use tidelake_cdc::nats::{MessageFormat, NatsConfig, NatsSource};
use tidelake_cdc::{Catalog, CdcError, ChangeSource, Pipeline, Resume};

use crate::cdc::{pipeline_name, print_status, run_pipeline, SinkArgs};

pub const MYSQL_HELP: &str = "\
Examples:
  tidelake cdc mysql --source 'mysql://root@127.0.0.1:3306/shop' --database ods
  tidelake cdc mysql --source 'mysql://root@127.0.0.1:3306/shop' --database ods \\
      --including-tables 'orders|customers' --table-conf changelog-producer=input
  tidelake cdc mysql --source 'mysql://root@127.0.0.1:3306/shop' --database ods --print-events

The server needs log-bin, binlog_format=ROW, binlog_row_image=FULL,
binlog_row_metadata=FULL and a server_id; tidelake refuses one without them.
See docs/cdc.md.";

pub const NATS_HELP: &str = "\
Examples:
  tidelake cdc nats --server 127.0.0.1:4222 --stream cdc --format canal-json --database ods
  tidelake cdc nats --stream cdc --format debezium-json --database ods --primary-keys id

The position is the stream sequence; a restart resumes after the last
committed one. See docs/cdc.md.";

#[derive(Debug, Args)]
pub struct MysqlArgs {
    /// The source: mysql://user[:password]@host[:port]/database
    #[arg(long, value_name = "URL")]
    pub source: String,
    #[command(flatten)]
    pub sink: SinkArgs,
    /// Further source databases to capture besides the URL's
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
    #[command(flatten)]
    pub sink: SinkArgs,
    /// Stop at the end of the stream instead of waiting for more
    #[arg(long)]
    pub stop_at_end: bool,
    /// Print the source's events instead of writing tables
    #[arg(long)]
    pub print_events: bool,
}

pub fn mysql_config(args: &MysqlArgs, resume: Resume) -> MysqlConfig {
    let mut config = MysqlConfig::new(&args.source);
    config.databases = args.source_databases.clone();
    if let Some(id) = args.server_id {
        config.server_id = id;
    }
    config.keyless_tables_have_keys = !args.sink.primary_keys.is_empty();
    config.start = if !resume.tables.is_empty() {
        StartMode::Resume(resume)
    } else if args.snapshot_only {
        StartMode::SnapshotOnly
    } else if args.stream_only {
        StartMode::StreamOnly
    } else {
        StartMode::SnapshotThenStream
    };
    config
}

pub async fn run_mysql(warehouse: &str, args: MysqlArgs) -> Result<(), CdcError> {
    let name = tidelake_cdc::mysql::url_database(&args.source).unwrap_or_default();
    let sink = args
        .sink
        .config(&pipeline_name(&["mysql", &name, &args.sink.database]))?;
    if args.print_events {
        let mut source = MysqlSource::start(mysql_config(&args, Resume::default())).await?;
        return print_events(&mut source).await;
    }
    let catalog = Catalog::open(warehouse).await?;
    if args.sink.status {
        return print_status(&catalog, &sink).await;
    }
    let mut config = mysql_config(&args, Resume::default());
    let filter = sink.filter.clone();
    let mut pipeline = Pipeline::open(catalog, sink).await?;
    config = MysqlConfig {
        start: mysql_config(&args, pipeline.resume()).start,
        table_filter: Some(std::sync::Arc::new(
            move |t: &tidelake_cdc::event::SourceTableId| filter.accepts(t),
        )),
        ..config
    };
    let mut source = MysqlSource::start(config).await?;
    run_pipeline(&mut pipeline, &mut source).await
}

pub fn nats_config(args: &NatsArgs, resume: Resume) -> NatsConfig {
    let mut config = NatsConfig::new(&args.server, &args.stream, args.format);
    config.subject = args.subject.clone();
    config.primary_keys = args.sink.primary_keys.clone();
    config.resume = resume;
    config.stop_at_end = args.stop_at_end;
    config
}

pub async fn run_nats(warehouse: &str, args: NatsArgs) -> Result<(), CdcError> {
    let sink = args
        .sink
        .config(&pipeline_name(&["nats", &args.stream, &args.sink.database]))?;
    if args.print_events {
        let mut source = NatsSource::start(nats_config(&args, Resume::default())).await?;
        return print_events(&mut source).await;
    }
    let catalog = Catalog::open(warehouse).await?;
    if args.sink.status {
        return print_status(&catalog, &sink).await;
    }
    let mut pipeline = Pipeline::open(catalog, sink).await?;
    let mut source = NatsSource::start(nats_config(&args, pipeline.resume())).await?;
    run_pipeline(&mut pipeline, &mut source).await
}

async fn print_events(source: &mut dyn ChangeSource) -> Result<(), CdcError> {
    while let Some(event) = source.next_event().await? {
        println!("{event:?}");
    }
    Ok(())
}
