//! `tidelake cdc <source>`: syncs a database into Paimon tables of the
//! warehouse (tidelake-cdc). The options every source shares (table
//! naming, filters, keys, types, computed and metadata columns, commit
//! interval) are [`SinkArgs`]; each source adds its own connection options.
//! SIGINT and SIGTERM stop the sync after its current commit.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tidelake_cdc::postgres::{self, ConnectConfig, Mode, PostgresConfig, PostgresSource};
use tidelake_cdc::sink::computed::ComputedColumn;
use tidelake_cdc::sink::status::table_status;
use tidelake_cdc::{
    Catalog, CdcError, MetadataColumn, Pipeline, RunEnd, SinkConfig, SinkStats, TableFilter,
    TypeMapping,
};

pub const CDC_HELP: &str = "\
Option names follow Apache Paimon's CDC actions (postgres_sync_database,
mysql_sync_database): every matching source table with a primary key becomes a
Paimon primary-key table in --database (created when missing; tables without a
key are listed and skipped); schema changes are followed with Paimon's rules.
Each commit records the source position in the tables it writes (snapshot
property tidelake.progress.cdc.PIPELINE.position), so a restart resumes where
it stopped, and a second instance of the pipeline is refused. See docs/cdc.md.

Examples:
  tidelake cdc postgres --source 'host=127.0.0.1 user=postgres dbname=shop' --database ods
  tidelake cdc postgres --source 'host=127.0.0.1 user=postgres dbname=shop' --database ods \\
      --including-tables 'orders|customers' --table-prefix pg_ \\
      --computed-column 'dt=date_format(created_at,yyyy-MM-dd)' --metadata-column op_ts \\
      --table-conf bucket=4 --table-conf changelog-producer=input
  tidelake cdc postgres --source '...' --database ods --status";

#[derive(Debug, clap::Args)]
pub struct CdcArgs {
    #[command(subcommand)]
    pub source: CdcSource,
}

#[derive(Debug, clap::Subcommand)]
pub enum CdcSource {
    /// Sync a PostgreSQL database (logical replication with pgoutput; the
    /// server needs wal_level = logical).
    #[command(after_help = CDC_HELP)]
    Postgres(PostgresArgs),
    /// Sync a MySQL/MariaDB database (initial snapshot, then the row-based
    /// binlog; the server needs log-bin, binlog_format=ROW,
    /// binlog_row_image=FULL, binlog_row_metadata=FULL).
    #[command(after_help = crate::cdc_sources::MYSQL_HELP)]
    Mysql(crate::cdc_sources::MysqlArgs),
    /// Sync change messages (Debezium, Canal or Maxwell JSON) from a NATS
    /// JetStream stream.
    #[command(after_help = crate::cdc_sources::NATS_HELP)]
    Nats(crate::cdc_sources::NatsArgs),
}

/// The options of the sink, shared by every source.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// The Paimon database the tables go to (created if missing)
    #[arg(long, value_name = "DB")]
    pub database: String,
    /// The pipeline's name: its progress owner (cdc.NAME) and the default
    /// name of its slot; one instance per name [default: derived from the
    /// source and --database]
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Prefix of the Paimon table names
    #[arg(long, value_name = "P", default_value = "")]
    pub table_prefix: String,
    /// Suffix of the Paimon table names
    #[arg(long, value_name = "S", default_value = "")]
    pub table_suffix: String,
    /// Tables to sync: a Java-style regex matched against the whole table
    /// name (or schema.table), e.g. 'orders|customers'
    #[arg(long, value_name = "REGEX")]
    pub including_tables: Option<String>,
    /// Tables to leave out (wins over --including-tables)
    #[arg(long, value_name = "REGEX")]
    pub excluding_tables: Option<String>,
    /// Primary key of the created tables instead of the source's: a,b
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub primary_keys: Vec<String>,
    /// Partition keys of the created tables (for tables that have them): a,b
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub partition_keys: Vec<String>,
    /// to-nullable, to-string, char-to-string (comma-separated)
    #[arg(long, value_name = "OPTIONS", default_value = "")]
    pub type_mapping: String,
    /// name=function(args): year, month, day, hour, minute, second,
    /// date_format, substring, upper, lower, cast; repeatable
    #[arg(long, value_name = "EXPR")]
    pub computed_column: Vec<String>,
    /// table_name, database_name, op_ts (comma-separated)
    #[arg(long, value_name = "COLS", default_value = "")]
    pub metadata_column: String,
    /// key=value option of the created tables; repeatable
    #[arg(long, value_name = "K=V")]
    pub table_conf: Vec<String>,
    /// Time between commits (a commit never splits a source transaction)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub commit_interval: Duration,
    /// Skip incompatible column type changes instead of stopping the table
    #[arg(long)]
    pub ignore_incompatible: bool,
    /// Print each table's recorded position and the source's lag, then exit
    #[arg(long)]
    pub status: bool,
    /// Keys per table whose latest image stays in memory while a source
    /// transaction is open (to complete unchanged TOAST values); the images
    /// of further keys go to a temporary file
    #[arg(long, value_name = "KEYS", default_value_t = 50_000)]
    pub spill_after: usize,
    /// Directory of that temporary file [default: the OS temporary directory]
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PostgresArgs {
    /// Connection: 'host=... port=... user=... password=... dbname=...' or
    /// a postgres:// URL
    #[arg(long, value_name = "CONN")]
    pub source: String,
    #[command(flatten)]
    pub sink: SinkArgs,
    /// Replication slot [default: tidelake_<pipeline>]
    #[arg(long, value_name = "NAME")]
    pub slot: Option<String>,
    /// Publication (created for the selected tables if missing)
    /// [default: tidelake_<pipeline>]
    #[arg(long, value_name = "NAME")]
    pub publication: Option<String>,
    /// Copy the tables, then exit (no slot)
    #[arg(long, conflicts_with = "stream_only")]
    pub snapshot_only: bool,
    /// Stream changes only, without the initial copy
    #[arg(long)]
    pub stream_only: bool,
    /// Tables copied at once during the initial copy
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub parallelism: usize,
    /// A table of at least twice this size is copied in ranges of pages of
    /// about this size, read in parallel with other tables and ranges
    /// (0: tables are copied whole)
    #[arg(long, value_name = "MB", default_value_t = 8)]
    pub copy_range_mb: u64,
}

/// `500ms`, `1s`, `2m` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (e.g. 500ms, 1s, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("'{text}': use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

impl SinkArgs {
    /// The sink configuration; `default_pipeline` when --pipeline is absent.
    pub fn config(&self, default_pipeline: &str) -> Result<SinkConfig, CdcError> {
        let pipeline = self
            .pipeline
            .clone()
            .unwrap_or_else(|| default_pipeline.to_string());
        let mut config = SinkConfig::new(pipeline, self.database.clone());
        config.table_prefix = self.table_prefix.clone();
        config.table_suffix = self.table_suffix.clone();
        config.filter = TableFilter::new(
            self.including_tables.as_deref(),
            self.excluding_tables.as_deref(),
        )?;
        config.primary_keys = self.primary_keys.clone();
        config.partition_keys = self.partition_keys.clone();
        config.type_mapping = TypeMapping::parse(&self.type_mapping)?;
        config.computed_columns = self
            .computed_column
            .iter()
            .map(|c| ComputedColumn::parse(c))
            .collect::<Result<_, _>>()?;
        config.metadata_columns = MetadataColumn::parse(&self.metadata_column)?;
        config.table_conf = SinkConfig::parse_table_conf(&self.table_conf)?;
        config.commit_interval = self.commit_interval;
        config.idle_progress_interval = (self.commit_interval * 10).max(Duration::from_secs(5));
        config.ignore_incompatible = self.ignore_incompatible;
        config.images_in_memory = self.spill_after;
        config.spill_dir = self.spill_dir.clone();
        Ok(config)
    }
}

/// A pipeline name from parts (letters, digits and `_` only).
pub fn pipeline_name(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}

pub async fn run_cdc(warehouse: &str, args: CdcArgs) -> ExitCode {
    let result = match args.source {
        CdcSource::Postgres(args) => run_postgres(warehouse, args).await,
        CdcSource::Mysql(args) => crate::cdc_sources::run_mysql(warehouse, args).await,
        CdcSource::Nats(args) => crate::cdc_sources::run_nats(warehouse, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_postgres(warehouse: &str, args: PostgresArgs) -> Result<(), CdcError> {
    let connect = ConnectConfig::parse(&args.source)?;
    let sink = args.sink.config(&pipeline_name(&[
        "postgres",
        &connect.dbname,
        &args.sink.database,
    ]))?;
    let mut config = PostgresConfig::new(connect, sink.pipeline.clone());
    config.slot = args.slot.clone();
    config.publication = args.publication.clone();
    config.filter = sink.filter.clone();
    config.copy_parallelism = args.parallelism;
    config.copy_range_bytes = args.copy_range_mb << 20;
    config.mode = if args.snapshot_only {
        Mode::SnapshotOnly
    } else if args.stream_only {
        Mode::StreamOnly
    } else {
        Mode::SnapshotAndStream
    };
    let catalog = Catalog::open(warehouse).await?;
    if args.sink.status {
        print_status(&catalog, &sink).await?;
        if let Some((confirmed, lag)) = postgres::slot_status(&config).await? {
            println!(
                "slot {}: confirmed {confirmed}, {lag} bytes of WAL behind the server",
                config.slot_name()
            );
        } else {
            println!("slot {}: does not exist", config.slot_name());
        }
        return Ok(());
    }
    let mut pipeline = Pipeline::open(catalog, sink).await?;
    let mut source = PostgresSource::start(config, pipeline.resume()).await?;
    run_pipeline(&mut pipeline, &mut source).await
}

/// Runs a pipeline until the source ends or a signal arrives, printing
/// progress on stderr (the other sources' commands use it too).
pub async fn run_pipeline(
    pipeline: &mut Pipeline,
    source: &mut dyn tidelake_cdc::ChangeSource,
) -> Result<(), CdcError> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tidelake_stream::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let started = Instant::now();
    let mut last_print = Instant::now() - Duration::from_secs(60);
    pipeline.on_commit(move |stats: &SinkStats| {
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!("{}", progress_line(stats, started));
        }
    });
    let end = pipeline.run(source, stopped).await?;
    eprintln!("{}", progress_line(pipeline.stats(), started));
    match end {
        RunEnd::SourceEnded => eprintln!("cdc: the source ended"),
        RunEnd::Stopped => eprintln!("cdc: stopped"),
    }
    Ok(())
}

fn progress_line(stats: &SinkStats, started: Instant) -> String {
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    let lag = stats.last_op_ts_micros.map_or(String::from("-"), |ts| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        format!("{:.1} s", (now - ts).max(0) as f64 / 1e6)
    });
    format!(
        "cdc: {} tables, {} rows ({:.0} rows/s), {} commits, position {}, lag {lag}{}{}",
        stats.tables,
        stats.rows,
        stats.rows as f64 / seconds,
        stats.commits,
        stats
            .position
            .as_ref()
            .map_or("-".into(), |p| p.to_string()),
        if stats.stopped.is_empty() {
            String::new()
        } else {
            format!(", {} tables stopped", stats.stopped.len())
        },
        if stats.spilled_images == 0 {
            String::new()
        } else {
            format!(", {} images spilled", stats.spilled_images)
        }
    )
}

/// Prints each table of the target database the pipeline recorded.
pub async fn print_status(catalog: &Catalog, sink: &SinkConfig) -> Result<(), CdcError> {
    println!("pipeline {} -> database {}", sink.pipeline, sink.database);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for t in table_status(catalog, sink).await? {
        println!(
            "{}  source {}  position {}  snapshot {}  committed {:.1} s ago",
            t.table,
            t.source,
            t.position,
            t.snapshot,
            (now - t.committed_millis) as f64 / 1000.0
        );
    }
    Ok(())
}
