//! Reading the row-based binlog as a replica and turning it into events.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use mysql_common::binlog::events::{
    Event, EventData, OptionalMetaExtractor, RowsEventData, TableMapEvent,
};
use mysql_common::binlog::row::BinlogRow;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{GnoInterval, Sid, Tag};

use super::position::{Gtid, GtidSet, MysqlGtid, TransactionGtid};
use super::row_image::{ImageColumns, ImageLayout};
use super::schema::{read_tables, MysqlTable};
use super::types::from_binlog;
use super::{connect, emit, source_err, table_err, BinlogPosition, Events, Flavor, MysqlConfig};
use crate::error::Result;
use crate::event::{CdcValue, ChangeKind, RowChange, SourceEvent, SourceTableId};

// Event types the binlog carries, by number (MariaDB's own are unknown to
// mysql_common).
const QUERY: u8 = 2;
const ROTATE: u8 = 4;
const XID: u8 = 16;
const MYSQL_GTID: u8 = 33;
const MYSQL_ANONYMOUS_GTID: u8 = 34;
const MYSQL_PREVIOUS_GTIDS: u8 = 35;
const MYSQL_PARTIAL_UPDATE_ROWS: u8 = 39;
const MYSQL_GTID_TAGGED: u8 = 42;
const MARIADB_ANNOTATE_ROWS: u8 = 160;
const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
const MARIADB_GTID: u8 = 162;
const MARIADB_GTID_LIST: u8 = 163;
const MARIADB_START_ENCRYPTION: u8 = 164;
const MARIADB_QUERY_COMPRESSED: u8 = 165;
const MARIADB_ROWS_COMPRESSED: std::ops::RangeInclusive<u8> = 166..=171;
/// MariaDB GTID flag: a transaction without BEGIN/COMMIT (DDL).
const FL_STANDALONE: u8 = 1;

/// How long the stream may say nothing for us before a heartbeat.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// A MariaDB GTID event's body: sequence (8 bytes), domain (4), flags (1).
pub fn parse_mariadb_gtid(data: &[u8], server: u32) -> Option<(Gtid, u8)> {
    let sequence = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    let flags = *data.get(12)?;
    Some((
        Gtid {
            domain,
            server,
            sequence,
        },
        flags,
    ))
}

/// The file a ROTATE event names. The fake ROTATE that opens a dump comes
/// before the FORMAT_DESCRIPTION event, so the reader does not know yet
/// that events carry a CRC32 and leaves it on the name: strip it when the
/// last four bytes are the event's checksum.
fn rotate_file_name(event: &Event, name: &[u8]) -> String {
    let header = event.header();
    let mut raw = Vec::with_capacity(19 + event.data().len());
    raw.extend(header.timestamp().to_le_bytes());
    raw.push(header.event_type_raw());
    raw.extend(header.server_id().to_le_bytes());
    raw.extend(header.event_size().to_le_bytes());
    raw.extend(header.log_pos().to_le_bytes());
    raw.extend(header.flags_raw().to_le_bytes());
    raw.extend(event.data());
    let name = if raw.len() >= 23 && name.len() > 4 {
        let (body, crc) = raw.split_at(raw.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let cut = &name[..name.len() - 4];
        if crc32fast::hash(body) == stored
            || looks_like_binlog_name(cut) && !looks_like_binlog_name(name)
        {
            cut
        } else {
            name
        }
    } else {
        name
    };
    String::from_utf8_lossy(name).into_owned()
}

/// `basename.000123`: a dot, then digits to the end.
fn looks_like_binlog_name(name: &[u8]) -> bool {
    match name.iter().rposition(|b| *b == b'.') {
        Some(dot) => dot + 1 < name.len() && name[dot + 1..].iter().all(u8::is_ascii_digit),
        None => false,
    }
}

struct Reader<'a> {
    config: &'a MysqlConfig,
    /// A second connection for information_schema while the first streams.
    meta: Conn,
    tables: HashMap<SourceTableId, MysqlTable>,
    /// Tables whose schema this source has sent (a table's schema precedes
    /// its first change).
    announced: HashSet<SourceTableId>,
    position: BinlogPosition,
    /// The GTID of the transaction being read.
    pending_gtid: Option<TransactionGtid>,
    /// MySQL with GTIDs, resuming from a position recorded without a GTID
    /// set: the stream starts at its file's beginning, whose
    /// PREVIOUS_GTIDS event gives the set that the file's transactions are
    /// then added to (those before the recorded offset are skipped as
    /// committed by their file and offset).
    learn_gtid_set: bool,
    /// Where the transaction being read starts (binlog file, offset).
    txn_start: Option<(String, u64)>,
    /// Per table, the position a sink recorded: its changes up to there
    /// are committed already and skipped.
    skip: HashMap<SourceTableId, BinlogPosition>,
    /// Whether the current transaction produced events for the sink.
    changed: bool,
    last_emit: Instant,
    tx: Events<'a>,
}

pub async fn stream(
    opts: &Opts,
    config: &MysqlConfig,
    flavor: Flavor,
    position: BinlogPosition,
    snapshot_tables: Option<Vec<MysqlTable>>,
    skip: HashMap<SourceTableId, BinlogPosition>,
    tx: Events<'_>,
) -> Result<()> {
    let mut conn = connect(opts).await?;
    let mut meta = connect(opts).await?;
    // After a snapshot its schemas were sent; otherwise the current ones
    // are the baseline DDL is compared with, sent before a table's first
    // change.
    let announced: HashSet<SourceTableId> = snapshot_tables
        .iter()
        .flatten()
        .map(|t| t.id.clone())
        .collect();
    let tables = match snapshot_tables {
        Some(tables) => tables,
        None => {
            let mut tables = Vec::new();
            for database in &config.databases {
                tables.extend(read_tables(&mut meta, database, None).await?);
            }
            tables
        }
    };
    let mut position = position;
    let use_gtid = match flavor {
        Flavor::Mariadb => !position.gtids.is_empty(),
        Flavor::Mysql { gtids } => gtids && !position.gtid_set.is_empty(),
    };
    let learn_gtid_set = flavor.mysql_gtids() && position.gtid_set.is_empty();
    let mut setup = Vec::new();
    if flavor.is_mariadb() {
        setup.push("SET @mariadb_slave_capability = 4".to_string());
        if use_gtid {
            setup.push(format!(
                "SET @slave_connect_state = '{}'",
                position.gtid_state()
            ));
            setup.push("SET @slave_gtid_strict_mode = 0".into());
            setup.push("SET @slave_gtid_ignore_duplicates = 0".into());
        }
    }
    for sql in &setup {
        conn.query_drop(sql)
            .await
            .map_err(|e| source_err(format!("{sql}: {e}")))?;
    }
    if use_gtid && !flavor.is_mariadb() {
        check_not_purged(&mut conn, &position.gtid_set).await?;
    }
    if learn_gtid_set {
        // From the file's start: its PREVIOUS_GTIDS event comes first.
        position.offset = 4;
    }
    let file = position.file.clone().into_bytes();
    let mut request = BinlogStreamRequest::new(config.server_id);
    if !use_gtid {
        request = request.with_filename(&file).with_pos(position.offset);
    } else if !flavor.is_mariadb() {
        // COM_BINLOG_DUMP_GTID: the server sends what the set lacks.
        request = request.with_gtid().with_gtid_set(sids(&position.gtid_set)?);
    }
    tracing::info!(position = %position.to_source(), use_gtid, "mysql binlog stream starting");
    eprintln!("cdc: streaming the binlog from {}", position.to_source());
    let mut stream = conn.get_binlog_stream(request).await.map_err(|e| {
        source_err(format!(
            "requesting the binlog from {}: {e}",
            position.to_source()
        ))
    })?;
    let mut reader = Reader {
        config,
        meta,
        tables: tables.into_iter().map(|t| (t.id.clone(), t)).collect(),
        announced,
        position,
        pending_gtid: None,
        learn_gtid_set,
        txn_start: None,
        skip,
        changed: false,
        last_emit: Instant::now(),
        tx,
    };
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| {
            source_err(format!(
                "reading the binlog after {}: {e}",
                reader.position.to_source()
            ))
        })?;
        // The rows event's TABLE_MAP, owned: the stream is not held across
        // the awaits of `handle`.
        let tme = match event.read_data() {
            Ok(Some(EventData::RowsEvent(rows))) => stream.get_tme(rows.table_id()).cloned(),
            _ => None,
        };
        if !reader.handle(tme.as_ref(), &event).await? {
            return Ok(());
        }
    }
    Err(source_err(format!(
        "the server ended the binlog stream after {}",
        reader.position.to_source()
    )))
}

/// A GTID set as the `COM_BINLOG_DUMP_GTID` request carries it.
fn sids<'a>(set: &GtidSet) -> Result<Vec<Sid<'a>>> {
    let mut sids = Vec::new();
    for (uuid, tag, intervals) in set.iter() {
        let bytes = parse_uuid(uuid)
            .ok_or_else(|| source_err(format!("bad server UUID {uuid:?} in {set}")))?;
        let intervals = intervals
            .iter()
            .map(|&(first, last)| GnoInterval::new(first, last.saturating_add(1)))
            .collect();
        let mut sid = Sid::new(bytes).with_intervals(intervals);
        if !tag.is_empty() {
            let tag = Tag::new(tag.to_string())
                .map_err(|e| source_err(format!("bad GTID tag {tag:?} in {set}: {e}")))?;
            sid = sid.with_tag(tag);
        }
        sids.push(sid);
    }
    Ok(sids)
}

fn parse_uuid(uuid: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = uuid.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        bytes[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

/// Refuses a resume whose GTID set lacks transactions the server purged:
/// the server would refuse it too, with a less helpful message.
async fn check_not_purged(conn: &mut Conn, set: &GtidSet) -> Result<()> {
    let text = set.to_string();
    let row: Option<(i64, String)> = conn
        .exec_first(
            "SELECT GTID_SUBSET(@@GLOBAL.gtid_purged, ?), @@GLOBAL.gtid_purged",
            (&text,),
        )
        .await
        .map_err(|e| source_err(format!("checking gtid_purged: {e}")))?;
    match row {
        Some((1, _)) => Ok(()),
        Some((_, purged)) => Err(source_err(format!(
            "cannot resume from GTID set {text}: the server purged binlogs with transactions \
             not in it (gtid_purged = {purged}); their changes are lost to this stream, so the \
             tables must be copied anew"
        ))),
        None => Err(source_err("checking gtid_purged: no answer")),
    }
}

impl Reader<'_> {
    fn at(&self) -> String {
        self.position.to_source().0
    }

    /// Handles one event; `false` once the source was dropped.
    async fn handle(
        &mut self,
        tme: Option<&TableMapEvent<'static>>,
        event: &Event,
    ) -> Result<bool> {
        let header = event.header();
        let kind = header.event_type_raw();
        match kind {
            ROTATE => {
                if let Ok(Some(EventData::RotateEvent(rotate))) = event.read_data() {
                    self.position.file = rotate_file_name(event, rotate.name_raw());
                    self.position.offset = rotate.position();
                }
                return Ok(true);
            }
            MARIADB_GTID => {
                let (gtid, flags) = parse_mariadb_gtid(event.data(), header.server_id())
                    .ok_or_else(|| source_err(format!("a truncated GTID event after {}", self.at())))?;
                self.begin_transaction(event, Some(TransactionGtid::Mariadb(gtid)));
                if flags & FL_STANDALONE != 0 {
                    tracing::debug!(gtid = %gtid, "standalone transaction (DDL)");
                }
            }
            MYSQL_GTID | MYSQL_GTID_TAGGED => {
                let Ok(Some(EventData::GtidEvent(gtid))) = event.read_data() else {
                    return Err(source_err(format!(
                        "an unreadable GTID event after {}",
                        self.at()
                    )));
                };
                let gtid = MysqlGtid::from_sid(
                    gtid.sid(),
                    gtid.tag().map(|t| t.as_str()),
                    gtid.gno(),
                );
                self.begin_transaction(event, Some(TransactionGtid::Mysql(gtid)));
            }
            MYSQL_ANONYMOUS_GTID => self.begin_transaction(event, None),
            MYSQL_PREVIOUS_GTIDS => {
                if self.learn_gtid_set {
                    if let Ok(Some(EventData::PreviousGtidsEvent(previous))) = event.read_data() {
                        for sid in previous.sids() {
                            let uuid = MysqlGtid::from_sid(sid.uuid(), None, 0).uuid;
                            let tag = sid.tag().map(|t| t.as_str()).unwrap_or_default();
                            for interval in sid.intervals() {
                                // GnoInterval ends are exclusive.
                                self.position.gtid_set.add_interval(
                                    &uuid,
                                    tag,
                                    interval.start(),
                                    interval.end().saturating_sub(1),
                                );
                            }
                        }
                    }
                    self.learn_gtid_set = false;
                }
            }
            MYSQL_PARTIAL_UPDATE_ROWS => {
                return Err(source_err(format!(
                    "partial JSON updates in the binlog after {} are not supported: \
                     set binlog_row_value_options='' (the default)",
                    self.at()
                )))
            }
            MARIADB_ANNOTATE_ROWS | MARIADB_BINLOG_CHECKPOINT | MARIADB_GTID_LIST => {}
            MARIADB_START_ENCRYPTION | MARIADB_QUERY_COMPRESSED => {
                return Err(source_err(format!(
                    "binlog event type {kind} after {} is not supported: set encrypt_binlog=OFF and log_bin_compress=OFF",
                    self.at()
                )))
            }
            k if MARIADB_ROWS_COMPRESSED.contains(&k) => {
                return Err(source_err(format!(
                    "compressed row events (type {k}) after {} are not supported: set log_bin_compress=OFF",
                    self.at()
                )))
            }
            XID => return self.commit(header.log_pos()).await,
            QUERY => return self.query(event).await,
            _ => {
                if let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() {
                    let op_ts = header.timestamp() as i64 * 1_000_000;
                    return self.rows(tme, &rows, op_ts).await;
                }
            }
        }
        Ok(true)
    }

    /// A GTID event (or MySQL's anonymous one) opens a transaction.
    fn begin_transaction(&mut self, event: &Event, gtid: Option<TransactionGtid>) {
        self.pending_gtid = gtid;
        self.changed = false;
        let header = event.header();
        let start = (header.log_pos() as u64).saturating_sub(header.event_size() as u64);
        self.txn_start = Some((self.position.file.clone(), start));
    }

    /// The end of a transaction at binlog offset `end`.
    async fn commit(&mut self, end: u32) -> Result<bool> {
        if let Some(gtid) = self.pending_gtid.take() {
            self.position.add_gtid(&gtid);
        }
        self.txn_start = None;
        if end > 0 {
            self.position.offset = end as u64;
        }
        let position = self.position.to_source();
        let event = if self.changed {
            SourceEvent::Commit { position }
        } else if self.last_emit.elapsed() >= HEARTBEAT_EVERY {
            SourceEvent::Heartbeat { position }
        } else {
            return Ok(true);
        };
        self.changed = false;
        self.last_emit = Instant::now();
        Ok(emit(self.tx, event).await)
    }

    async fn query(&mut self, event: &Event) -> Result<bool> {
        let Ok(Some(EventData::QueryEvent(query))) = event.read_data() else {
            return Err(source_err(format!(
                "an unreadable query event after {}",
                self.at()
            )));
        };
        let sql = query.query().trim().to_string();
        let upper = sql.to_ascii_uppercase();
        if upper == "BEGIN" || upper.starts_with("XA START") || upper.starts_with("SAVEPOINT") {
            if self.txn_start.is_none() {
                let header = event.header();
                let start = (header.log_pos() as u64).saturating_sub(header.event_size() as u64);
                self.txn_start = Some((self.position.file.clone(), start));
            }
            return Ok(true);
        }
        if upper == "COMMIT" || upper.starts_with("XA COMMIT") {
            // a transaction on non-transactional tables ends in a COMMIT query
            return self.commit(event.header().log_pos()).await;
        }
        // A DDL statement (its own transaction): re-read the schemas.
        tracing::info!(sql = %sql, at = %self.at(), "mysql DDL in the binlog");
        if upper.starts_with("TRUNCATE") {
            tracing::warn!(sql = %sql, "TRUNCATE is not replicated as row deletes: the sink keeps the rows");
        }
        if !self.refresh_schemas().await? {
            return Ok(false);
        }
        self.commit(event.header().log_pos()).await
    }

    /// Re-reads every captured database's tables and emits the schemas
    /// that are new or changed.
    async fn refresh_schemas(&mut self) -> Result<bool> {
        for database in &self.config.databases {
            for table in read_tables(&mut self.meta, database, None).await? {
                if !self.config.captures(&table.id) || self.tables.get(&table.id) == Some(&table) {
                    continue;
                }
                if !self.announce(table).await {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    async fn announce(&mut self, table: MysqlTable) -> bool {
        let event = SourceEvent::Schema {
            table: table.id.clone(),
            schema: table.schema(),
        };
        self.announced.insert(table.id.clone());
        self.tables.insert(table.id.clone(), table);
        self.changed = true;
        emit(self.tx, event).await
    }

    async fn rows(
        &mut self,
        tme: Option<&TableMapEvent<'static>>,
        rows: &RowsEventData<'_>,
        op_ts: i64,
    ) -> Result<bool> {
        let Some(tme) = tme else {
            return Err(source_err(format!(
                "a rows event without its TABLE_MAP after {}",
                self.at()
            )));
        };
        let id = SourceTableId::new(tme.database_name(), tme.table_name());
        if !self.config.captures(&id) {
            return Ok(true);
        }
        if let Some(recorded) = self.skip.get(&id) {
            if recorded.covers(self.pending_gtid.as_ref(), self.txn_start.as_ref()) {
                return Ok(true);
            }
            self.skip.remove(&id);
        }
        // Column names from the TABLE_MAP (binlog_row_metadata=FULL).
        let extractor = OptionalMetaExtractor::new(tme.iter_optional_meta())
            .map_err(|e| table_err(&id, format!("reading TABLE_MAP metadata: {e}")))?;
        let names: Vec<String> = extractor
            .iter_column_name()
            .map(|n| n.map(|n| n.name().into_owned()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| table_err(&id, format!("reading TABLE_MAP column names: {e}")))?;
        if names.is_empty() {
            return Err(table_err(
                &id,
                "the binlog's TABLE_MAP has no column names: set binlog_row_metadata=FULL",
            ));
        }
        let known = self.tables.get(&id).is_some_and(|t| {
            names.len() == t.columns.len()
                && names
                    .iter()
                    .zip(&t.columns)
                    .all(|(n, c)| n.eq_ignore_ascii_case(&c.name))
        });
        if !known {
            let fresh = read_tables(&mut self.meta, &id.database, Some(&id.table)).await?;
            match fresh.into_iter().next() {
                Some(table) if self.tables.get(&id) != Some(&table) => {
                    if !self.announce(table).await {
                        return Ok(false);
                    }
                }
                Some(_) => {}
                None => {
                    tracing::warn!(table = %id, at = %self.at(), "rows of a table that no longer exists: skipped");
                    return Ok(true);
                }
            }
        }
        if !self.announced.contains(&id) {
            if let Some(table) = self.tables.get(&id).cloned() {
                if !self.announce(table).await {
                    return Ok(false);
                }
            }
        }
        let Some(table) = self.tables.get(&id) else {
            return Ok(true);
        };
        let slots: Vec<Option<usize>> = names.iter().map(|n| table.column_index(n)).collect();
        let images = match rows {
            // Its after images start with JSON diff options: mysql_common
            // reads those (and a diff is refused by from_binlog).
            RowsEventData::PartialUpdateRowsEvent(_) => {
                images_of_partial_update(table, &slots, tme, rows)
            }
            _ => row_images(table, &slots, tme, &extractor, rows),
        }
        .map_err(|e| table_err(&id, format!("decoding a row after {}: {e}", self.at())))?;
        let mut changes = Vec::with_capacity(images.len() * 2);
        for (before, after) in images {
            let mut push = |kind, values| {
                changes.push(RowChange {
                    table: id.clone(),
                    kind,
                    values,
                    op_ts_micros: Some(op_ts),
                })
            };
            match (before, after) {
                (None, Some(after)) => push(ChangeKind::Insert, after),
                (Some(before), None) => push(ChangeKind::Delete, before),
                (Some(before), Some(after)) => {
                    push(ChangeKind::UpdateBefore, before);
                    push(ChangeKind::UpdateAfter, after);
                }
                (None, None) => {}
            }
        }
        self.changed |= !changes.is_empty();
        for change in changes {
            if !emit(self.tx, SourceEvent::Change(change)).await {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A row's before and after image as values of the table's columns.
type Images = (Option<Vec<CdcValue>>, Option<Vec<CdcValue>>);

/// The row images of a rows event as values of the table's columns
/// (columns an image lacks are NULL; binlog columns the table no longer
/// has are dropped). `slots` maps binlog columns to the table's.
fn row_images(
    table: &MysqlTable,
    slots: &[Option<usize>],
    tme: &TableMapEvent<'_>,
    extractor: &OptionalMetaExtractor<'_>,
    rows: &RowsEventData<'_>,
) -> std::result::Result<Vec<Images>, String> {
    let layout = ImageLayout::new(tme, extractor)?;
    let before = rows
        .columns_before_image()
        .map(|b| ImageColumns::new(b.iter().by_vals()));
    let after = rows
        .columns_after_image()
        .map(|b| ImageColumns::new(b.iter().by_vals()));
    let mut buf = ParseBuf(rows.rows_data());
    let mut images = Vec::new();
    while !buf.is_empty() {
        let before = match &before {
            Some(image) => Some(read_image(table, slots, &layout, &mut buf, image)?),
            None => None,
        };
        let after = match &after {
            Some(image) => Some(read_image(table, slots, &layout, &mut buf, image)?),
            None => None,
        };
        images.push((before, after));
    }
    Ok(images)
}

/// One row image of the columns `image` marks, as values of the table's
/// columns.
fn read_image<'b>(
    table: &MysqlTable,
    slots: &[Option<usize>],
    layout: &ImageLayout<'b>,
    buf: &mut ParseBuf<'b>,
    image: &ImageColumns,
) -> std::result::Result<Vec<CdcValue>, String> {
    let mut values = vec![CdcValue::Null; table.columns.len()];
    layout.read(buf, image, |i, value| {
        let Some(slot) = slots.get(i).copied().flatten() else {
            return Ok(());
        };
        let column = &table.columns[slot];
        values[slot] =
            from_binlog(&column.kind, value).map_err(|e| format!("column {}: {e}", column.name))?;
        Ok(())
    })?;
    Ok(values)
}

/// [`row_images`] of a MySQL PARTIAL_UPDATE_ROWS event, through
/// mysql_common's `BinlogRow`.
fn images_of_partial_update(
    table: &MysqlTable,
    slots: &[Option<usize>],
    tme: &TableMapEvent<'_>,
    rows: &RowsEventData<'_>,
) -> std::result::Result<Vec<Images>, String> {
    let image = |row: Option<BinlogRow>| -> std::result::Result<Option<Vec<CdcValue>>, String> {
        let Some(mut row) = row else {
            return Ok(None);
        };
        let mut values = vec![CdcValue::Null; table.columns.len()];
        for (binlog_index, slot) in slots.iter().enumerate() {
            let Some(slot) = *slot else { continue };
            let Some(value) = row.take(binlog_index) else {
                continue;
            };
            let column = &table.columns[slot];
            values[slot] = from_binlog(&column.kind, value)
                .map_err(|e| format!("column {}: {e}", column.name))?;
        }
        Ok(Some(values))
    };
    rows.rows(tme)
        .map(|row| {
            let (before, after) = row.map_err(|e| e.to_string())?;
            Ok((image(before)?, image(after)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_names_are_recognised() {
        assert!(looks_like_binlog_name(b"mysql-bin.000013"));
        assert!(!looks_like_binlog_name(b"mysql-bin.000013r^\xff\x01"));
        assert!(!looks_like_binlog_name(b"mysql-bin"));
    }

    #[test]
    fn mariadb_gtid_events_parse() {
        let mut data = 42u64.to_le_bytes().to_vec();
        data.extend(3u32.to_le_bytes());
        data.push(FL_STANDALONE);
        data.extend([0u8; 6]);
        let (gtid, flags) = parse_mariadb_gtid(&data, 7).unwrap();
        assert_eq!(gtid.to_string(), "3-7-42");
        assert_eq!(flags, FL_STANDALONE);
        assert!(parse_mariadb_gtid(&data[..10], 7).is_none());
    }
}
