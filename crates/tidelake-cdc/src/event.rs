//! The contract between sources and the sink.
//!
//! A source (PostgreSQL, MySQL/MariaDB, NATS) reads its protocol and yields
//! [`SourceEvent`]s in source order. The sink knows nothing of protocols:
//! it sees tables with columns in Paimon types, row changes with typed
//! values, and transaction ends that carry the position to resume from.
//!
//! Ordering rules every source keeps:
//! - a table's [`SourceEvent::Schema`] comes before its first change, and
//!   again whenever its columns change (the full new column list);
//! - the changes of one source transaction are followed by one
//!   [`SourceEvent::Commit`] whose position resumes *after* it; the sink
//!   never commits a source transaction in two snapshots;
//! - the rows of an initial copy (inserts without a commit time, as
//!   changes or as [`SourceEvent::Rows`] batches) are followed by one [`SourceEvent::CopyEnd`] naming the copied tables and
//!   the position their copy holds the source up to, which may be ahead of
//!   the stream: only those tables record it;
//! - [`SourceEvent::Heartbeat`] says the source advanced with nothing for
//!   us (idle tables, other databases): the sink may record the position so
//!   that the source can release what it keeps (a PostgreSQL slot's WAL).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use tidelake_format::types::DataType;

use crate::error::CdcError;

/// A table in the source: `database` is the MySQL database or the
/// PostgreSQL schema (`public`), or what a queue message names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceTableId {
    pub database: String,
    pub table: String,
}

impl SourceTableId {
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        SourceTableId {
            database: database.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for SourceTableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// A source column, its type already mapped to Paimon's (the source's own
/// type name is kept for messages and for `--type-mapping` decisions).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceColumn {
    pub name: String,
    pub data_type: DataType,
    /// The type as the source spells it, e.g. `varchar(20)`, `tinyint(1)`.
    pub source_type: String,
    pub comment: Option<String>,
}

/// A source table's columns in source order and its primary key (empty:
/// the table has none and is skipped by whole-database sync).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSchema {
    pub columns: Vec<SourceColumn>,
    pub primary_key: Vec<String>,
}

/// One value of a row change, typed as its column's [`DataType`].
#[derive(Clone, Debug, PartialEq)]
pub enum CdcValue {
    Null,
    Boolean(bool),
    /// Every integer type (TINYINT .. BIGINT).
    Int(i64),
    Float(f32),
    Double(f64),
    /// Unscaled value and scale: `123.45` is `(12345, 2)`.
    Decimal(i128, u32),
    String(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds of the day.
    Time(i64),
    /// Microseconds since the epoch, no time zone (TIMESTAMP).
    Timestamp(i64),
    /// Microseconds since the epoch, UTC (TIMESTAMP WITH LOCAL TIME ZONE).
    TimestampUtc(i64),
    Array(Vec<CdcValue>),
    /// The source did not send this column's value because it did not
    /// change (PostgreSQL's unchanged TOAST): the sink keeps the value the
    /// table holds for the key, never writes a placeholder.
    Unchanged,
}

/// Paimon's row kinds, as the sink writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    UpdateBefore,
    UpdateAfter,
    Delete,
}

/// One row change of one table. `values` follow the columns of the table's
/// latest [`SourceEvent::Schema`], one per column.
#[derive(Clone, Debug, PartialEq)]
pub struct RowChange {
    pub table: SourceTableId,
    pub kind: ChangeKind,
    pub values: Vec<CdcValue>,
    /// When the source committed it (microseconds since the epoch, UTC),
    /// for the `op_ts` metadata column; `None` during an initial snapshot.
    pub op_ts_micros: Option<i64>,
}

/// A resumable source position, opaque to the sink: each source encodes
/// and parses its own (an LSN, a binlog file and offset or a GTID set, a
/// stream sequence). Stored as a snapshot property, so printable text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePosition(pub String);

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a source yields, in source order.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceEvent {
    /// A table appears or its columns change: the complete new schema.
    Schema {
        table: SourceTableId,
        schema: SourceSchema,
    },
    /// A row change inside the current transaction (or initial snapshot).
    Change(RowChange),
    /// Rows of an initial copy: inserts without a commit time, the
    /// batch's columns those of the table's latest [`SourceEvent::Schema`]
    /// in its Paimon types (see [`crate::rows::RowsBuilder`]). The same as
    /// one [`SourceEvent::Change`] per row, at a fraction of the cost.
    Rows {
        table: SourceTableId,
        batch: arrow::record_batch::RecordBatch,
    },
    /// The end of a source transaction (or of an initial snapshot's rows):
    /// everything since the previous commit is one unit, and `position`
    /// resumes right after it.
    Commit { position: SourcePosition },
    /// The end of an initial copy of `tables` (empty ones too): their rows
    /// since the previous commit are their contents as of `position`, which
    /// has every source transaction before it and none after. The sink
    /// commits these tables alone, recording `position`: the stream may
    /// still be behind it (a table copied at a restart, or found new while
    /// streaming), and the source skips each copied table's transactions
    /// before it.
    CopyEnd {
        position: SourcePosition,
        tables: Vec<SourceTableId>,
    },
    /// The source moved on with nothing for the sink.
    Heartbeat { position: SourcePosition },
}

/// Where a source resumes: the position each sink table recorded (the
/// sink commits tables one by one, so they may differ after a crash).
/// A source starts at the smallest of them and must not emit a table's
/// changes at or before that table's own position (they are committed
/// already); a table absent from `tables` (never committed) needs all of
/// them, including its initial copy when the source makes one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    pub tables: BTreeMap<SourceTableId, SourcePosition>,
}

impl Resume {
    /// The position of `table`, if the sink recorded one.
    pub fn position(&self, table: &SourceTableId) -> Option<&SourcePosition> {
        self.tables.get(table)
    }

    /// The smallest recorded position by `order` (`None`: nothing recorded).
    pub fn min_by(
        &self,
        order: impl Fn(&SourcePosition, &SourcePosition) -> Ordering,
    ) -> Option<&SourcePosition> {
        self.tables.values().min_by(|a, b| order(a, b))
    }
}

/// A source of change events. Sources are resumed from a position the
/// sink recorded (given to their constructors, see [`Resume`]), and told
/// what is durable.
#[async_trait::async_trait]
pub trait ChangeSource: Send {
    /// The next event; `None` once the source has ended (a snapshot-only
    /// run, a stream that was closed).
    async fn next_event(&mut self) -> Result<Option<SourceEvent>, CdcError>;

    /// Everything up to and including `position` is committed in the
    /// warehouse: the source may release it (acknowledge a PostgreSQL slot,
    /// a JetStream message). Never called with a position not yet durable.
    async fn acknowledge(&mut self, position: &SourcePosition) -> Result<(), CdcError>;

    /// The order of two positions of this source (the sink acknowledges
    /// the smallest position all its tables recorded). The default compares
    /// the text, which suits positions encoded with fixed-width numbers.
    fn compare_positions(&self, a: &SourcePosition, b: &SourcePosition) -> Ordering {
        a.0.cmp(&b.0)
    }

    /// Whether changes may hold [`CdcValue::Unchanged`]: if not, the sink
    /// keeps no images of the keys a group wrote (a large transaction then
    /// costs no memory beyond the rows waiting for the writer).
    fn may_send_unchanged(&self) -> bool {
        true
    }
}
