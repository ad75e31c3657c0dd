//! The MySQL/MariaDB source: an initial snapshot under a consistent read
//! view, then the row-based binlog from exactly that view's position.
//!
//! - **Snapshot.** `START TRANSACTION WITH CONSISTENT SNAPSHOT` and, on
//!   MariaDB, `SHOW STATUS LIKE 'binlog_snapshot_%'`: the binlog file and
//!   offset the read view corresponds to, without a lock. MySQL reports no
//!   position for a read view, so a brief `FLUSH TABLES WITH READ LOCK`
//!   holds commits while the view opens and the binlog status (file,
//!   offset, `Executed_Gtid_Set`) is read (see snapshot.rs for why not
//!   `performance_schema.log_status`). Every table is read under that view
//!   as inserts, and one commit carries the position.
//! - **Binlog.** Read as a replica. On MariaDB we set
//!   `@mariadb_slave_capability=4` so GTID events arrive as such (event 162,
//!   parsed here: mysql_common has no MariaDB event types) and resume with
//!   `@slave_connect_state` from the recorded GTID state. On MySQL with
//!   gtid_mode=ON we resume with `COM_BINLOG_DUMP_GTID` from the recorded
//!   GTID set (the server sends every transaction not in it) and add each
//!   transaction's GTID event to that set. Both survive binlog rotation and
//!   purged files; without GTIDs (MySQL gtid_mode=OFF) the stream resumes
//!   by binlog file and offset. Each source transaction (GTID .. XID, or a
//!   standalone DDL) ends in one [`SourceEvent::Commit`].
//! - **Schemas** come from information_schema (it knows TINYINT(1), ENUM
//!   members, precisions that the binlog's TABLE_MAP does not). They are
//!   re-read after each DDL statement in the binlog and whenever a
//!   TABLE_MAP's column names (binlog_row_metadata=FULL) differ from what we
//!   hold; binlog values are matched to columns by those names.

mod binlog;
pub mod gtid_set;
pub mod position;
mod row_image;
mod schema;
mod snapshot;
pub mod types;

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::sync::mpsc;

use crate::error::{CdcError, Result};
use std::cmp::Ordering;
use std::collections::HashMap;

use crate::event::{ChangeSource, Resume, SourceEvent, SourcePosition, SourceTableId};
pub use position::BinlogPosition;
pub use schema::MysqlTable;

pub(crate) fn source_err(message: impl Into<String>) -> CdcError {
    CdcError::Source {
        source_kind: "mysql",
        message: message.into(),
    }
}

pub(crate) fn table_err(table: &SourceTableId, message: impl Into<String>) -> CdcError {
    CdcError::Table {
        table: table.to_string(),
        message: message.into(),
    }
}

/// Which tables a source reads (besides their database).
pub type TablePredicate = Arc<dyn Fn(&SourceTableId) -> bool + Send + Sync>;

/// Where a source starts.
#[derive(Clone, Debug, PartialEq)]
pub enum StartMode {
    /// The initial snapshot, then the binlog from the snapshot's position.
    SnapshotThenStream,
    /// Only the initial snapshot: the source ends after its commit.
    SnapshotOnly,
    /// The binlog from the server's current position, no snapshot.
    StreamOnly,
    /// The binlog from the positions a sink recorded: from the smallest,
    /// each table's changes only after its own.
    Resume(Resume),
}

#[derive(Clone)]
pub struct MysqlConfig {
    /// `mysql://user:password@host:port/database`.
    pub url: String,
    /// The databases to capture; empty: the URL's database.
    pub databases: Vec<String>,
    /// The replica server id we register with (unique among the server's
    /// replicas).
    pub server_id: u32,
    pub start: StartMode,
    pub table_filter: Option<TablePredicate>,
    /// Events buffered between the reader task and the sink.
    pub buffer: usize,
    /// Tables without a primary key get one from the sink (`--primary-keys`):
    /// they are synced, so copied again at a restart if never committed.
    pub keyless_tables_have_keys: bool,
}

impl MysqlConfig {
    pub fn new(url: impl Into<String>) -> Self {
        MysqlConfig {
            url: url.into(),
            databases: Vec::new(),
            server_id: default_server_id(),
            start: StartMode::SnapshotThenStream,
            table_filter: None,
            buffer: 4096,
            keyless_tables_have_keys: false,
        }
    }

    fn captures(&self, table: &SourceTableId) -> bool {
        self.databases.contains(&table.database)
            && self.table_filter.as_ref().is_none_or(|f| f(table))
    }
}

/// The database a `mysql://` URL names, if any.
pub fn url_database(url: &str) -> Option<String> {
    Opts::from_url(url).ok()?.db_name().map(str::to_string)
}

/// A replica id unlikely to clash: derived from the process id and clock.
fn default_server_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    100_000 + (std::process::id().wrapping_mul(7919) ^ nanos) % 1_000_000_000
}

/// The source: a task reads the server and hands events over a channel.
pub struct MysqlSource {
    events: mpsc::Receiver<Result<SourceEvent>>,
    task: tokio::task::JoinHandle<()>,
}

impl MysqlSource {
    /// Connects, checks the server's binlog settings, and starts reading.
    pub async fn start(mut config: MysqlConfig) -> Result<MysqlSource> {
        let opts = Opts::from_url(&config.url)
            .map_err(|e| CdcError::Config(format!("bad MySQL URL {:?}: {e}", config.url)))?;
        if let Some(db) = opts.db_name() {
            if !config.databases.iter().any(|d| d == db) {
                config.databases.insert(0, db.to_string());
            }
        }
        if config.databases.is_empty() {
            return Err(CdcError::Config(format!(
                "MySQL URL {:?} names no database",
                config.url
            )));
        }
        let mut conn = connect(&opts).await?;
        schema::check_server(&mut conn).await?;
        let (tx, rx) = mpsc::channel(config.buffer.max(1));
        let task = tokio::spawn(async move {
            if let Err(err) = run(opts, config, conn, &tx).await {
                let _ = tx.send(Err(err)).await;
            }
        });
        Ok(MysqlSource { events: rx, task })
    }
}

impl Drop for MysqlSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait::async_trait]
impl ChangeSource for MysqlSource {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>> {
        self.events.recv().await.transpose()
    }

    /// The binlog keeps no per-replica state: nothing to release.
    async fn acknowledge(&mut self, _position: &SourcePosition) -> Result<()> {
        Ok(())
    }

    fn compare_positions(&self, a: &SourcePosition, b: &SourcePosition) -> Ordering {
        match (BinlogPosition::parse(a), BinlogPosition::parse(b)) {
            (Ok(a), Ok(b)) => a.compare(&b),
            _ => a.0.cmp(&b.0),
        }
    }

    /// Row images in the binlog are full (binlog_row_image=FULL).
    fn may_send_unchanged(&self) -> bool {
        false
    }
}

pub(crate) async fn connect(opts: &Opts) -> Result<Conn> {
    Conn::new(opts.clone()).await.map_err(|e| {
        source_err(format!(
            "cannot connect to {}:{} as {}: {e}",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.user().unwrap_or("(no user)")
        ))
    })
}

/// Which server, and so which GTIDs its binlog carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// MariaDB: `domain-server-sequence` GTIDs, always on.
    Mariadb,
    /// MySQL; `gtids` when gtid_mode=ON (GTID sets), else positions are a
    /// binlog file and offset only.
    Mysql { gtids: bool },
}

impl Flavor {
    pub(crate) fn is_mariadb(self) -> bool {
        self == Flavor::Mariadb
    }

    /// The GTID set position of MySQL with gtid_mode=ON.
    pub(crate) fn mysql_gtids(self) -> bool {
        self == Flavor::Mysql { gtids: true }
    }
}

pub(crate) async fn flavor(conn: &mut Conn) -> Result<Flavor> {
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| source_err(format!("reading the server version: {e}")))?;
    if version.unwrap_or_default().contains("MariaDB") {
        return Ok(Flavor::Mariadb);
    }
    let mode: Option<String> = conn
        .query_first("SELECT @@GLOBAL.gtid_mode")
        .await
        .map_err(|e| source_err(format!("reading gtid_mode: {e}")))?;
    let mode = mode.unwrap_or_default();
    let gtids = mode.eq_ignore_ascii_case("ON");
    if !gtids {
        tracing::warn!(gtid_mode = %mode, "MySQL without GTIDs: positions are binlog file and offset");
        eprintln!(
            "cdc: the MySQL server runs gtid_mode={mode}: positions are binlog file and offset, \
             lost once that file is purged; set gtid_mode=ON and enforce_gtid_consistency=ON \
             to resume by GTID set"
        );
    }
    Ok(Flavor::Mysql { gtids })
}

/// Refuses a recorded position the server cannot resume from, naming what
/// to set: a GTID of the other flavour, or a MySQL GTID set on a server
/// whose gtid_mode is no longer ON.
fn check_recorded(table: &SourceTableId, position: &BinlogPosition, flavor: Flavor) -> Result<()> {
    let problem = if !position.gtid_set.is_empty() && !flavor.mysql_gtids() {
        if flavor.is_mariadb() {
            "it is a MySQL GTID set, but the server is MariaDB"
        } else {
            "it is a MySQL GTID set, but the server runs without GTIDs: \
             set gtid_mode=ON and enforce_gtid_consistency=ON"
        }
    } else if !position.gtids.is_empty() && !flavor.is_mariadb() {
        "it is a MariaDB GTID, but the server is MySQL"
    } else {
        return Ok(());
    };
    Err(table_err(
        table,
        format!(
            "cannot resume from the recorded position {}: {problem}",
            position.to_source()
        ),
    ))
}

type Events<'a> = &'a mpsc::Sender<Result<SourceEvent>>;

/// Sends an event; `false` once the source was dropped.
pub(crate) async fn emit(tx: Events<'_>, event: SourceEvent) -> bool {
    tx.send(Ok(event)).await.is_ok()
}

async fn run(opts: Opts, config: MysqlConfig, mut conn: Conn, tx: Events<'_>) -> Result<()> {
    let flavor = flavor(&mut conn).await?;
    let (position, tables) = match &config.start {
        StartMode::SnapshotThenStream | StartMode::SnapshotOnly => {
            match snapshot::run(&mut conn, &config, flavor, tx, |_| true).await? {
                Some((position, tables)) => (position, Some(tables)),
                None => return Ok(()),
            }
        }
        StartMode::StreamOnly => (snapshot::current_position(&mut conn, flavor).await?, None),
        StartMode::Resume(resume) => {
            let mut skip = HashMap::new();
            for (table, position) in &resume.tables {
                let parsed = BinlogPosition::parse(position)
                    .map_err(|e| table_err(table, format!("recorded position: {e}")))?;
                check_recorded(table, &parsed, flavor)?;
                skip.insert(table.clone(), parsed);
            }
            let start = BinlogPosition::resume_start(skip.values())
                .ok_or_else(|| CdcError::Config("resuming without any recorded position".into()))?;
            // Tables the sink never committed (a crash during the initial
            // copy, or before an empty table's first commit) are copied
            // again under a fresh read view; the stream then skips their
            // transactions up to that view's position.
            let missing = |t: &MysqlTable| {
                !resume.tables.contains_key(&t.id)
                    && (!t.primary_key.is_empty() || config.keyless_tables_have_keys)
            };
            let mut missing_any = false;
            for database in &config.databases {
                missing_any |= schema::read_tables(&mut conn, database, None)
                    .await?
                    .iter()
                    .any(|t| config.captures(&t.id) && missing(t));
            }
            if missing_any {
                match snapshot::run(&mut conn, &config, flavor, tx, missing).await? {
                    Some((at, copied)) => {
                        for table in copied {
                            skip.insert(table.id, at.clone());
                        }
                    }
                    None => return Ok(()),
                }
            }
            drop(conn);
            return binlog::stream(&opts, &config, flavor, start, None, skip, tx).await;
        }
    };
    if config.start == StartMode::SnapshotOnly {
        return Ok(());
    }
    drop(conn);
    binlog::stream(&opts, &config, flavor, position, tables, HashMap::new(), tx).await
}
