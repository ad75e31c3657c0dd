//! The background task of the PostgreSQL source: the initial copy, then the
//! replication stream (pgoutput) turned into source events, standby status
//! updates with the acknowledged LSN, and new tables picked up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::catalog::{discover, ensure_publication, PgTable};
use super::copy::{copy_tables, Events};
use super::pgoutput::{
    format_lsn, parse_frame, parse_message, status_update, Frame, Message, RelationColumn,
    TupleValue, PG_EPOCH_MICROS,
};
use super::types::{paimon_type, parse_value};
use super::wire::{error_frame_text, literal, source_error, Connection, Result};
use super::{lsn_of, position, Mode, PostgresConfig};
use crate::error::CdcError;
use crate::event::{
    CdcValue, ChangeKind, Resume, RowChange, SourceColumn, SourceEvent, SourceSchema, SourceTableId,
};

/// A relation as the stream announced it.
struct Relation {
    table: SourceTableId,
    columns: Vec<RelationColumn>,
    schema: SourceSchema,
}

pub(crate) struct StreamState {
    config: PostgresConfig,
    publication: String,
    slot: String,
    resume: Resume,
    /// The catalog's view of the selected tables, by id.
    tables: BTreeMap<SourceTableId, PgTable>,
    relations: HashMap<u32, Relation>,
    /// The last schema sent per table.
    sent_schema: HashMap<SourceTableId, SourceSchema>,
    /// Where the stream starts, then the last position sent.
    last: u64,
    received: u64,
    acked: u64,
    in_transaction: bool,
    /// The transaction's commit LSN and time (epoch micros).
    final_lsn: u64,
    commit_ts: i64,
    /// Changes not sent yet: a transaction's changes go to the sink in
    /// batches; any other event sends them first, with itself.
    batch: Vec<SourceEvent>,
}

/// Changes per batch sent while streaming.
const STREAM_BATCH: usize = 256;

impl StreamState {
    pub fn new(
        config: PostgresConfig,
        publication: String,
        slot: String,
        resume: Resume,
        tables: Vec<PgTable>,
        start: u64,
    ) -> StreamState {
        StreamState {
            config,
            publication,
            slot,
            resume,
            tables: tables.into_iter().map(|t| (t.id.clone(), t)).collect(),
            relations: HashMap::new(),
            sent_schema: HashMap::new(),
            last: start,
            received: start,
            acked: 0,
            in_transaction: false,
            final_lsn: 0,
            commit_ts: 0,
            batch: Vec::new(),
        }
    }

    async fn send(&mut self, events: &Events, event: SourceEvent) -> Result<()> {
        if let SourceEvent::Schema { table, schema } = &event {
            if self.sent_schema.get(table) == Some(schema) {
                return Ok(());
            }
            self.sent_schema.insert(table.clone(), schema.clone());
        }
        // Only changes wait: a transaction always ends with a commit event,
        // which sends them, so nothing waits past the next event.
        let change = matches!(event, SourceEvent::Change(_));
        self.batch.push(event);
        if change && self.batch.len() < STREAM_BATCH {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(STREAM_BATCH));
        events
            .send(Ok(batch))
            .await
            .map_err(|_| source_error("the pipeline stopped"))
    }

    pub async fn run(
        mut self,
        mut ctl: Connection,
        mut repl: Connection,
        snapshot: Option<String>,
        mut acks: watch::Receiver<u64>,
        events: &Events,
    ) -> Result<()> {
        // Every selected table's schema first: the sink lists tables
        // without a key and knows every table before its changes.
        let all: Vec<PgTable> = self.tables.values().cloned().collect();
        for table in &all {
            self.send(events, schema_event(table)).await?;
        }
        if self.config.mode != Mode::StreamOnly {
            let to_copy: Vec<PgTable> = all
                .into_iter()
                .filter(|t| t.replicable() && self.resume.position(&t.id).is_none())
                .collect();
            if !to_copy.is_empty() {
                let names: Vec<String> = to_copy.iter().map(|t| t.id.to_string()).collect();
                eprintln!("cdc: copying {} tables: {}", names.len(), names.join(", "));
                let copied: Vec<SourceTableId> = to_copy.iter().map(|t| t.id.clone()).collect();
                // A new slot's snapshot is at the stream's start; at a
                // restart, a temporary slot gives one at a known position.
                let (snapshot, at, holder) = match snapshot {
                    Some(snapshot) => (snapshot, self.last, None),
                    None => {
                        let (holder, snapshot, at) = self.temporary_snapshot().await?;
                        (snapshot, at, Some(holder))
                    }
                };
                self.copy_at(to_copy, snapshot, events).await?;
                if let Some(holder) = holder {
                    holder.terminate().await;
                }
                for id in &copied {
                    self.resume.tables.insert(id.clone(), position(at));
                }
                self.send(
                    events,
                    SourceEvent::CopyEnd {
                        position: position(at),
                        tables: copied,
                    },
                )
                .await?;
            }
        }
        let start = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (\"proto_version\" '1', \"publication_names\" {})",
            super::wire::ident(&self.slot),
            format_lsn(self.last),
            literal(&super::wire::ident(&self.publication))
        );
        // A previous instance's connection may still be closing: the slot
        // stays active for a moment. A running instance keeps it active.
        let mut attempts = 0;
        while let Err(e) = repl.start_copy_both(&start).await {
            attempts += 1;
            if !e.to_string().contains("55006") || attempts >= 20 {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        eprintln!(
            "cdc: streaming from slot '{}' at {}",
            self.slot,
            format_lsn(self.last)
        );
        let mut status_due = Instant::now() + Duration::from_secs(10);
        let mut poll_due = Instant::now() + self.config.new_table_poll;
        loop {
            tokio::select! {
                frame = repl.read_frame() => {
                    let (tag, body) = frame?;
                    match tag {
                        b'd' => {
                            let frame = parse_frame(body).map_err(source_error)?;
                            if let Some(reply) = self.on_frame(frame, events).await? {
                                if reply {
                                    self.send_status(&mut repl).await?;
                                }
                            }
                        }
                        b'E' => return Err(source_error(format!(
                            "replication stopped: {}", error_frame_text(&body)
                        ))),
                        b'c' => return Err(source_error("the server ended the replication stream")),
                        _ => {}
                    }
                }
                changed = acks.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    self.acked = *acks.borrow();
                    self.send_status(&mut repl).await?;
                }
                _ = tokio::time::sleep_until(status_due.min(poll_due).into()) => {}
            }
            let now = Instant::now();
            if now >= status_due {
                self.send_status(&mut repl).await?;
                status_due = now + Duration::from_secs(10);
            }
            if now >= poll_due && !self.in_transaction {
                self.pick_up_new_tables(&mut ctl, events).await?;
                poll_due = Instant::now() + self.config.new_table_poll;
            }
        }
    }

    /// A snapshot exported at a known position: a temporary slot's, whose
    /// consistent point splits the transactions exactly (those committed
    /// before it are in the snapshot, the others are not). The returned
    /// connection holds the snapshot: it must stay open and idle until the
    /// copy is done, and its end drops the slot.
    /// Copies tables found while streaming, at an exported snapshot.
    async fn copy_at(
        &self,
        tables: Vec<PgTable>,
        snapshot: String,
        events: &Events,
    ) -> Result<u64> {
        copy_tables(
            &self.config.connect,
            tables,
            Some(snapshot),
            self.config.copy_parallelism,
            self.config.copy_range_bytes,
            events,
        )
        .await
    }

    async fn temporary_snapshot(&self) -> Result<(Connection, String, u64)> {
        let mut conn = Connection::connect(&self.config.connect, true).await?;
        let base: String = self.slot.chars().take(40).collect();
        let name = format!("{base}_copy_{}", std::process::id());
        let (at, snapshot) = super::create_slot(
            &mut conn,
            &name,
            "TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT",
        )
        .await?;
        let snapshot = snapshot.ok_or_else(|| {
            source_error("CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT exported no snapshot")
        })?;
        Ok((conn, snapshot, at))
    }

    async fn send_status(&mut self, repl: &mut Connection) -> Result<()> {
        let now = chrono::Utc::now().timestamp_micros();
        repl.send_copy_data(&status_update(self.received, self.acked, now))
            .await
    }

    /// Handles a frame; `Some(true)`: the server asked for a reply.
    async fn on_frame(&mut self, frame: Frame, events: &Events) -> Result<Option<bool>> {
        match frame {
            Frame::Keepalive { wal_end, reply } => {
                self.received = self.received.max(wal_end);
                if !self.in_transaction && wal_end > self.last {
                    self.last = wal_end;
                    self.send(
                        events,
                        SourceEvent::Heartbeat {
                            position: position(wal_end),
                        },
                    )
                    .await?;
                }
                Ok(Some(reply))
            }
            Frame::XLogData { start, data } => {
                self.received = self.received.max(start);
                let message = parse_message(data)
                    .map_err(|e| source_error(format!("at {}: {e}", format_lsn(start))))?;
                self.on_message(message, events).await?;
                Ok(None)
            }
        }
    }

    async fn on_message(&mut self, message: Message, events: &Events) -> Result<()> {
        match message {
            Message::Begin {
                final_lsn,
                timestamp,
            } => {
                self.in_transaction = true;
                self.final_lsn = final_lsn;
                self.commit_ts = timestamp + PG_EPOCH_MICROS;
            }
            Message::Commit { end_lsn } => {
                self.in_transaction = false;
                self.last = self.last.max(end_lsn);
                self.send(
                    events,
                    SourceEvent::Commit {
                        position: position(end_lsn),
                    },
                )
                .await?;
            }
            Message::Relation {
                id,
                namespace,
                name,
                columns,
            } => {
                let table = SourceTableId::new(namespace, name);
                let schema = self.relation_schema(&table, &columns);
                if self.config.filter.accepts(&table) {
                    self.send(
                        events,
                        SourceEvent::Schema {
                            table: table.clone(),
                            schema: schema.clone(),
                        },
                    )
                    .await?;
                }
                self.relations.insert(
                    id,
                    Relation {
                        table,
                        columns,
                        schema,
                    },
                );
            }
            Message::Insert { relation, new } => {
                self.change(events, relation, ChangeKind::Insert, &new, false)
                    .await?;
            }
            Message::Update { relation, old, new } => {
                match old {
                    Some((b'O', old)) => {
                        self.change(events, relation, ChangeKind::UpdateBefore, &old, false)
                            .await?;
                    }
                    // The key changed: the old key's row goes.
                    Some((_, key)) => {
                        self.change(events, relation, ChangeKind::Delete, &key, true)
                            .await?;
                    }
                    // Only the new row: the sink looks the old one up.
                    None => {
                        self.change(events, relation, ChangeKind::UpdateBefore, &new, true)
                            .await?;
                    }
                }
                self.change(events, relation, ChangeKind::UpdateAfter, &new, false)
                    .await?;
            }
            Message::Delete { relation, old } => {
                let key_only = old.0 == b'K';
                self.change(events, relation, ChangeKind::Delete, &old.1, key_only)
                    .await?;
            }
            Message::Truncate { relations } => {
                for r in relations {
                    if let Some(rel) = self.relations.get(&r) {
                        tracing::warn!(table = %rel.table, "TRUNCATE is not replicated into the Paimon table");
                        eprintln!("cdc: TRUNCATE of {} ignored (not replicated)", rel.table);
                    }
                }
            }
            Message::Other => {}
        }
        Ok(())
    }

    /// A relation's schema: its columns as the stream says, NOT NULL and
    /// the primary key from the catalog (read again when the columns
    /// differ from what the catalog said before).
    fn relation_schema(&self, table: &SourceTableId, columns: &[RelationColumn]) -> SourceSchema {
        let known = self.tables.get(table);
        let key_from_flags: Vec<String> = columns
            .iter()
            .filter(|c| c.key)
            .map(|c| c.name.clone())
            .collect();
        let primary_key = match known {
            Some(t) if !t.schema.primary_key.is_empty() => t.schema.primary_key.clone(),
            Some(t) if t.replica_identity == 'f' => Vec::new(),
            _ => key_from_flags,
        };
        SourceSchema {
            columns: columns
                .iter()
                .map(|c| {
                    let catalog =
                        known.and_then(|t| t.schema.columns.iter().find(|k| k.name == c.name));
                    let data_type = paimon_type(c.type_oid, c.modifier);
                    let not_null = catalog.is_some_and(|k| !k.data_type.is_nullable())
                        || primary_key.contains(&c.name);
                    SourceColumn {
                        name: c.name.clone(),
                        data_type: data_type.with_nullable(!not_null),
                        source_type: catalog
                            .map(|k| k.source_type.clone())
                            .unwrap_or_else(|| format!("type oid {}", c.type_oid)),
                        comment: catalog.and_then(|k| k.comment.clone()),
                    }
                })
                .collect(),
            primary_key,
        }
    }

    /// Sends one change of `relation` (`key_only`: the tuple holds the key;
    /// other columns are unchanged, for the sink to look up).
    async fn change(
        &mut self,
        events: &Events,
        relation: u32,
        kind: ChangeKind,
        tuple: &[TupleValue],
        key_only: bool,
    ) -> Result<()> {
        let Some(rel) = self.relations.get(&relation) else {
            return Err(source_error(format!(
                "a change of relation {relation} before its Relation message"
            )));
        };
        if !self.config.filter.accepts(&rel.table) {
            return Ok(());
        }
        let done = self
            .resume
            .position(&rel.table)
            .and_then(lsn_of)
            .is_some_and(|recorded| self.final_lsn < recorded);
        if done {
            return Ok(());
        }
        let mut values = Vec::with_capacity(rel.columns.len());
        for (i, (column, value)) in rel.columns.iter().zip(tuple).enumerate() {
            let is_key = rel.schema.primary_key.contains(&column.name);
            values.push(match value {
                _ if key_only && !is_key => CdcValue::Unchanged,
                TupleValue::Null => CdcValue::Null,
                TupleValue::Unchanged => CdcValue::Unchanged,
                TupleValue::Text(text) => parse_value(text, &rel.schema.columns[i].data_type)
                    .map_err(|e| CdcError::Table {
                        table: rel.table.to_string(),
                        message: format!(
                            "column '{}' at {}: {e}",
                            column.name,
                            format_lsn(self.final_lsn)
                        ),
                    })?,
            });
        }
        let change = RowChange {
            table: rel.table.clone(),
            kind,
            values,
            op_ts_micros: Some(self.commit_ts),
        };
        self.send(events, SourceEvent::Change(change)).await
    }

    /// Tables created since the start (or since the last poll): published,
    /// then copied under a temporary slot's snapshot and committed at its
    /// consistent point; the stream's changes of them after that point
    /// follow, those before it are skipped (they are in the copy).
    async fn pick_up_new_tables(&mut self, ctl: &mut Connection, events: &Events) -> Result<()> {
        let found = discover(ctl, &self.config.filter).await?;
        let new: Vec<PgTable> = found
            .into_iter()
            .filter(|t| !self.tables.contains_key(&t.id))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let replicable: Vec<&PgTable> = new.iter().filter(|t| t.replicable()).collect();
        ensure_publication(ctl, &self.publication, &replicable).await?;
        let names: Vec<String> = new.iter().map(|t| t.id.to_string()).collect();
        eprintln!("cdc: new tables: {}", names.join(", "));
        let copied: BTreeSet<SourceTableId> = replicable.iter().map(|t| t.id.clone()).collect();
        // The snapshot before the schemas: creating the slot waits for the
        // transactions running on the server, and a table the sink knows
        // but that has no rows yet could meanwhile get an idle commit of the
        // stream's position, which its copy (at the slot's point) is ahead of.
        let snapshot = if copied.is_empty() {
            None
        } else {
            Some(self.temporary_snapshot().await?)
        };
        for table in &new {
            self.send(events, schema_event(table)).await?;
        }
        for table in new {
            self.tables.insert(table.id.clone(), table);
        }
        let Some((holder, snapshot, at)) = snapshot else {
            return Ok(());
        };
        let to_copy: Vec<PgTable> = copied
            .iter()
            .filter_map(|id| self.tables.get(id).cloned())
            .collect();
        self.copy_at(to_copy, snapshot, events).await?;
        holder.terminate().await;
        for id in &copied {
            self.resume.tables.insert(id.clone(), position(at));
        }
        self.send(
            events,
            SourceEvent::CopyEnd {
                position: position(at),
                tables: copied.into_iter().collect(),
            },
        )
        .await
    }
}

fn schema_event(table: &PgTable) -> SourceEvent {
    SourceEvent::Schema {
        table: table.id.clone(),
        schema: table.schema.clone(),
    }
}

/// `--snapshot-only`: the tables copied in one REPEATABLE READ snapshot
/// (exported to the other connections), committed at the WAL position of
/// that snapshot; then the source ends.
pub(crate) async fn snapshot_only(
    config: &PostgresConfig,
    mut ctl: Connection,
    tables: Vec<PgTable>,
    events: &Events,
) -> Result<()> {
    for table in &tables {
        events
            .send(Ok(vec![schema_event(table)]))
            .await
            .map_err(|_| source_error("the pipeline stopped"))?;
    }
    ctl.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let rows = ctl
        .query("SELECT pg_export_snapshot(), pg_current_wal_lsn()::text")
        .await?;
    let get = |i: usize| rows.first().and_then(|r| r.get(i).cloned().flatten());
    let snapshot = get(0);
    let lsn = get(1)
        .and_then(|l| super::pgoutput::parse_lsn(&l))
        .unwrap_or(0);
    let to_copy: Vec<PgTable> = tables.into_iter().filter(|t| t.replicable()).collect();
    let copied: Vec<SourceTableId> = to_copy.iter().map(|t| t.id.clone()).collect();
    copy_tables(
        &config.connect,
        to_copy,
        snapshot,
        config.copy_parallelism,
        config.copy_range_bytes,
        events,
    )
    .await?;
    ctl.query("COMMIT").await?;
    events
        .send(Ok(vec![SourceEvent::CopyEnd {
            position: position(lsn),
            tables: copied,
        }]))
        .await
        .map_err(|_| source_error("the pipeline stopped"))?;
    ctl.terminate().await;
    Ok(())
}
