//! One Paimon table a pipeline writes: how its columns come from the source
//! table's (source, computed, metadata, or NULL for a column dropped in the
//! source), the changes of the uncommitted group, and the resolution of
//! unchanged (TOAST) values from the table's current rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{new_null_array, ArrayRef, StringArray};
use arrow::datatypes::DataType as ArrowType;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use tidelake_engine::options::{ChangelogProducer, MergeEngine};
use tidelake_engine::{Datum, EngineError, OwnerProgress, Predicate, RowKind, Table, TableWriter};
use tidelake_format::types::{DataType, DataTypeKind};

use super::computed::ComputedColumn;
use super::config::MetadataColumn;
use super::spill::ImageStore;
use crate::error::{CdcError, Result};
use crate::event::{CdcValue, ChangeKind, RowChange, SourcePosition, SourceTableId};
use crate::rows::rows_of;
use crate::values::{coerce_owned, from_arrow, to_arrow};

/// Where a Paimon column's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Slot {
    /// The source column at this index.
    Source(usize),
    /// A computed column over the source column at the index (if any).
    Computed(ComputedColumn, Option<usize>),
    Meta(MetadataColumn),
    /// No longer in the source (dropped or renamed): NULL from now on.
    Missing,
}

/// The table a pipeline writes, with the group of changes not committed.
pub(crate) struct TableSink {
    pub source: SourceTableId,
    pub table: Table,
    pub slots: Vec<Slot>,
    /// Per slot, whether it is the last to read its source column: its
    /// value is then moved out of the change instead of cloned.
    moves: Vec<bool>,
    /// Indices of the primary-key columns among the table's.
    key_columns: Vec<usize>,
    /// Whether an old image (`-U`) the source did not send in full may be
    /// left out rather than looked up; see [`old_images_optional`].
    before_optional: bool,
    /// Changes in table layout, not yet handed to the writer, and whether
    /// their image is kept for later unchanged values (not for rows of an
    /// initial copy, which is always committed on its own).
    pending: Vec<(RowKind, Vec<CdcValue>, bool)>,
    /// The latest image of every key the uncommitted group wrote (`None`:
    /// deleted), for unchanged values of later changes; spilled to a
    /// temporary file past a limit.
    images: ImageStore,
    writer: Option<TableWriter>,
    /// What the fenced commit starts from.
    pub progress: OwnerProgress,
    /// The position the table's latest commit recorded.
    pub recorded: Option<SourcePosition>,
    pub last_commit: Instant,
    /// Why the table stopped (an incompatible schema change), if it did.
    pub stopped: Option<String>,
    /// Rows handed to the table since the pipeline started.
    pub rows: u64,
    /// Images that went to the spill file since the pipeline started.
    pub spilled_images: u64,
}

impl TableSink {
    pub fn new(
        source: SourceTableId,
        table: Table,
        slots: Vec<Slot>,
        progress: OwnerProgress,
        recorded: Option<SourcePosition>,
        images: ImageStore,
    ) -> TableSink {
        let key_columns = key_columns(&table);
        let before_optional = old_images_optional(&table);
        TableSink {
            source,
            table,
            moves: last_reads(&slots),
            slots,
            key_columns,
            before_optional,
            pending: Vec::new(),
            images,
            writer: None,
            progress,
            recorded,
            last_commit: Instant::now(),
            stopped: None,
            rows: 0,
            spilled_images: 0,
        }
    }

    /// Whether the group holds changes for this table.
    pub fn has_changes(&self) -> bool {
        !self.pending.is_empty() || self.writer.is_some()
    }

    /// Whether rows were already handed to a writer (of the current schema).
    pub fn has_writer(&self) -> bool {
        self.writer.is_some()
    }

    /// The table after a schema change: new slots over the reloaded table.
    /// Pending rows (never handed to a writer) follow the new columns.
    pub fn replace_table(&mut self, table: Table, slots: Vec<Slot>) -> Result<()> {
        let old: Vec<String> = self
            .table
            .schema()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let new: Vec<String> = table
            .schema()
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let position: Vec<Option<usize>> = new
            .iter()
            .map(|n| old.iter().position(|o| o == n))
            .collect();
        let remap = |row: &[CdcValue]| -> Vec<CdcValue> {
            position
                .iter()
                .map(|p| p.map_or(CdcValue::Null, |i| row[i].clone()))
                .collect()
        };
        if old != new {
            for (_, row, _) in self.pending.iter_mut() {
                *row = remap(row);
            }
            self.images.remap(remap)?;
        }
        self.key_columns = key_columns(&table);
        self.before_optional = old_images_optional(&table);
        self.table = table;
        self.moves = last_reads(&slots);
        self.slots = slots;
        Ok(())
    }

    /// Adds one source change, in table layout.
    pub fn add(&mut self, mut change: RowChange) -> Result<()> {
        let fields = &self.table.schema().fields;
        let mut row = Vec::with_capacity(self.slots.len());
        for ((slot, field), moves) in self.slots.iter().zip(fields).zip(&self.moves) {
            let value = match slot {
                Slot::Source(i) if *moves => take_value(&mut change, *i)?,
                Slot::Source(i) => source_value(&change, *i)?,
                Slot::Computed(c, input) => match input.map(|i| source_value(&change, i)) {
                    Some(Ok(CdcValue::Unchanged)) => CdcValue::Unchanged,
                    Some(Ok(v)) => c.eval(&v),
                    Some(Err(e)) => return Err(e),
                    None => c.eval(&CdcValue::Null),
                },
                Slot::Meta(MetadataColumn::TableName) => {
                    CdcValue::String(change.table.table.clone())
                }
                Slot::Meta(MetadataColumn::DatabaseName) => {
                    CdcValue::String(change.table.database.clone())
                }
                Slot::Meta(MetadataColumn::OpTs) => change
                    .op_ts_micros
                    .map_or(CdcValue::Null, CdcValue::TimestampUtc),
                Slot::Missing => CdcValue::Null,
            };
            row.push(match value {
                CdcValue::Unchanged => CdcValue::Unchanged,
                v => coerce_owned(v, &field.data_type).unwrap_or(CdcValue::Null),
            });
        }
        let kind = match change.kind {
            ChangeKind::Insert => RowKind::Insert,
            ChangeKind::UpdateBefore => RowKind::UpdateBefore,
            ChangeKind::UpdateAfter => RowKind::UpdateAfter,
            ChangeKind::Delete => RowKind::Delete,
        };
        self.pending
            .push((kind, row, change.op_ts_micros.is_some()));
        Ok(())
    }

    /// Adds the rows of a copy (inserts in the source's columns). When every
    /// table column is a source column of the same type, NULL or a name,
    /// the batch goes to the writer as it is, after the rows pending before
    /// it (the writer numbers rows in arrival order); otherwise row by row,
    /// as [`TableSink::add`] takes them.
    pub async fn add_rows(&mut self, batch: RecordBatch, limit: usize) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let Some(columns) = self.direct_columns(&batch) else {
            for values in rows_of(&batch) {
                self.add(RowChange {
                    table: self.source.clone(),
                    kind: ChangeKind::Insert,
                    values,
                    op_ts_micros: None,
                })?;
            }
            return self.spill_if_over(limit).await;
        };
        self.drain().await?;
        let batch = RecordBatch::try_new(self.table.arrow_schema(), columns)
            .map_err(|e| CdcError::table(&self.source, e.to_string()))?;
        self.rows += rows as u64;
        let writer = self.writer.get_or_insert_with(|| self.table.writer());
        writer
            .write_with_kinds(batch, &vec![RowKind::Insert; rows])
            .await?;
        Ok(())
    }

    /// The table's columns taken from a copy's batch as they are, `None`
    /// when one needs a conversion or a computation.
    fn direct_columns(&self, batch: &RecordBatch) -> Option<Vec<ArrayRef>> {
        let schema = self.table.arrow_schema();
        let rows = batch.num_rows();
        let text = |value: &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                value, rows,
            )))
        };
        self.slots
            .iter()
            .zip(schema.fields())
            .map(|(slot, field)| match slot {
                Slot::Source(i) => batch
                    .columns()
                    .get(*i)
                    .filter(|c| c.data_type() == field.data_type())
                    .cloned(),
                // A copy's rows have no commit time.
                Slot::Missing | Slot::Meta(MetadataColumn::OpTs) => {
                    Some(new_null_array(field.data_type(), rows))
                }
                Slot::Meta(MetadataColumn::TableName) if field.data_type() == &ArrowType::Utf8 => {
                    Some(text(&self.source.table))
                }
                Slot::Meta(MetadataColumn::DatabaseName)
                    if field.data_type() == &ArrowType::Utf8 =>
                {
                    Some(text(&self.source.database))
                }
                _ => None,
            })
            .collect()
    }

    /// Pending rows beyond `limit` are handed to the writer (which writes
    /// uncommitted files past its buffer size): memory stays bounded.
    pub async fn spill_if_over(&mut self, limit: usize) -> Result<()> {
        if self.pending.len() >= limit {
            self.drain().await?;
        }
        Ok(())
    }

    /// Resolves unchanged values and hands the pending rows to the writer.
    pub async fn drain(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        if self.before_optional {
            pending.retain(|(kind, row, _)| {
                !(matches!(kind, RowKind::UpdateBefore) && row.contains(&CdcValue::Unchanged))
            });
            // Such a table deletes by key alone: the values PostgreSQL did
            // not send with a delete are not looked up (as Debezium, which
            // sends NULLs there); NOT NULL columns get a zero of their type.
            let fields = &self.table.schema().fields;
            for (kind, row, _) in pending.iter_mut() {
                if matches!(kind, RowKind::Delete) {
                    for (value, field) in row.iter_mut().zip(fields) {
                        if *value == CdcValue::Unchanged {
                            *value = placeholder(&field.data_type);
                        }
                    }
                }
            }
        }
        let base = self.lookup_missing_images(&pending).await?;
        let mut kinds = Vec::with_capacity(pending.len());
        let mut rows = Vec::with_capacity(pending.len());
        for (kind, mut row, remember) in pending {
            let unchanged = row.contains(&CdcValue::Unchanged);
            // The key text is only needed for images (never in a copy).
            let key = if unchanged || remember {
                self.key_of(&row)
            } else {
                String::new()
            };
            if unchanged {
                let written = self.images.get(&key)?;
                let prior = match &written {
                    Some(image) => image.as_ref(),
                    None => base.get(&key),
                };
                match prior {
                    Some(prior) => {
                        for (value, old) in row.iter_mut().zip(prior) {
                            if *value == CdcValue::Unchanged {
                                *value = old.clone();
                            }
                        }
                    }
                    // Nothing to delete or retract: the key is not there.
                    None if matches!(kind, RowKind::Delete | RowKind::UpdateBefore) => continue,
                    None => {
                        tracing::warn!(table = %self.source, key = %key, "an unchanged value of a row the table does not hold: written as NULL");
                        for value in row.iter_mut().filter(|v| **v == CdcValue::Unchanged) {
                            *value = CdcValue::Null;
                        }
                    }
                }
            }
            match kind {
                _ if !remember => {}
                RowKind::Insert | RowKind::UpdateAfter => {
                    self.images.insert(key, Some(row.clone()))?;
                }
                RowKind::Delete => {
                    self.images.insert(key, None)?;
                }
                RowKind::UpdateBefore => {}
            }
            kinds.push(kind);
            rows.push(row);
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.rows += rows.len() as u64;
        let batch = self.to_batch(rows)?;
        let writer = self.writer.get_or_insert_with(|| self.table.writer());
        writer.write_with_kinds(batch, &kinds).await?;
        Ok(())
    }

    fn to_batch(&self, mut rows: Vec<Vec<CdcValue>>) -> Result<RecordBatch> {
        let schema = self.table.arrow_schema();
        let mut columns = Vec::with_capacity(schema.fields().len());
        let fields = &self.table.schema().fields;
        // Rows taken before a widening hold the narrower values.
        for row in &mut rows {
            for (value, field) in row.iter_mut().zip(fields) {
                let taken = std::mem::replace(value, CdcValue::Null);
                *value = coerce_owned(taken, &field.data_type).unwrap_or(CdcValue::Null);
            }
        }
        for (i, field) in schema.fields().iter().enumerate() {
            let values: Vec<&CdcValue> = rows.iter().map(|r| &r[i]).collect();
            let array = to_arrow(&values, field.data_type()).map_err(|e| {
                CdcError::table(&self.source, format!("column '{}': {e}", field.name()))
            })?;
            columns.push(array);
        }
        RecordBatch::try_new(schema, columns)
            .map_err(|e| CdcError::table(&self.source, e.to_string()))
    }

    /// The committed rows of the keys whose changes have unchanged values
    /// and that the group has not written yet.
    async fn lookup_missing_images(
        &mut self,
        pending: &[(RowKind, Vec<CdcValue>, bool)],
    ) -> Result<HashMap<String, Vec<CdcValue>>> {
        let mut wanted: HashMap<String, Vec<CdcValue>> = HashMap::new();
        for (_, row, _) in pending {
            if row.contains(&CdcValue::Unchanged) {
                let key = self.key_of(row);
                if !wanted.contains_key(&key) && !self.images.contains(&key)? {
                    let values = self.key_columns.iter().map(|&i| row[i].clone()).collect();
                    wanted.insert(key, values);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let mut scan = self.table.scan();
        let predicate = (wanted.len() <= 1_000)
            .then(|| self.key_predicate(wanted.values()))
            .flatten();
        if let Some(predicate) = predicate {
            scan = scan.with_predicate(predicate);
        }
        let plan = scan.plan().await?;
        // Batch by batch, keeping the wanted rows only: without a predicate
        // this reads the whole table, which must not be held in memory.
        let mut batches = plan.read_all();
        let mut found = HashMap::new();
        while let Some(batch) = batches.try_next().await? {
            for r in 0..batch.num_rows() {
                let key: Vec<CdcValue> = self
                    .key_columns
                    .iter()
                    .map(|&c| from_arrow(batch.column(c).as_ref(), r))
                    .collect();
                let key = key_string(&key);
                if wanted.contains_key(&key) {
                    let row: Vec<CdcValue> = (0..batch.num_columns())
                        .map(|c| from_arrow(batch.column(c).as_ref(), r))
                        .collect();
                    found.insert(key, row);
                }
            }
        }
        Ok(found)
    }

    /// A predicate that prunes files to the given keys (exact filtering is
    /// done on the rows); `None` when the key cannot be expressed.
    fn key_predicate<'a>(
        &self,
        keys: impl Iterator<Item = &'a Vec<CdcValue>>,
    ) -> Option<Predicate> {
        let fields = &self.table.schema().fields;
        let mut per_key = Vec::new();
        for key in keys {
            let mut parts = Vec::new();
            for (&c, value) in self.key_columns.iter().zip(key) {
                parts.push(Predicate::Compare {
                    column: fields[c].name.clone(),
                    op: tidelake_engine::CompareOp::Eq,
                    value: datum(value, &fields[c].data_type)?,
                });
            }
            per_key.push(Predicate::And(parts));
        }
        Some(Predicate::Or(per_key))
    }

    fn key_of(&self, row: &[CdcValue]) -> String {
        // Debug of references prints as of the values: as `key_string`.
        let key: Vec<&CdcValue> = self.key_columns.iter().map(|&i| &row[i]).collect();
        format!("{key:?}")
    }

    /// Commits the group recording `position` (fenced), returns the
    /// snapshot id. A table with nothing to write records the position only.
    pub async fn commit(&mut self, owner_slot_values: &BTreeMap<String, String>) -> Result<i64> {
        self.drain().await?;
        let mut writer = self.writer.take().unwrap_or_else(|| self.table.writer());
        let committed = writer
            .commit_progress(
                tidelake_format::snapshot::CommitKind::Append,
                &self.progress,
                owner_slot_values,
                BTreeMap::new(),
            )
            .await;
        self.spilled_images += self.images.spilled() as u64;
        self.images.clear();
        match committed {
            Ok(Some(id)) => {
                self.progress.read_at = Some(id);
                self.progress.recorded_in = Some(id);
                self.progress.positions = owner_slot_values.clone();
                self.last_commit = Instant::now();
                Ok(id)
            }
            Ok(None) => Err(CdcError::table(
                &self.source,
                "a fenced commit created no snapshot",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the uncommitted group (the source sends it again on restart).
    pub async fn abort(&mut self) {
        self.spilled_images += self.images.spilled() as u64;
        self.pending.clear();
        self.images.clear();
        if let Some(writer) = self.writer.take() {
            writer.abort().await;
        }
    }
}

/// What a deleted row holds in a column whose value the source did not
/// send: NULL, or a zero of the type for a NOT NULL column.
fn placeholder(data_type: &DataType) -> CdcValue {
    use DataTypeKind as K;
    if data_type.is_nullable() {
        return CdcValue::Null;
    }
    match &data_type.kind {
        K::Boolean => CdcValue::Boolean(false),
        K::TinyInt | K::SmallInt | K::Int | K::BigInt => CdcValue::Int(0),
        K::Float => CdcValue::Float(0.0),
        K::Double => CdcValue::Double(0.0),
        K::Decimal { scale, .. } => CdcValue::Decimal(0, *scale),
        K::Char(_) | K::VarChar(_) => CdcValue::String(String::new()),
        K::Binary(_) | K::VarBinary(_) => CdcValue::Bytes(Vec::new()),
        K::Date => CdcValue::Date(0),
        K::Time(_) => CdcValue::Time(0),
        K::Timestamp(_) => CdcValue::Timestamp(0),
        K::TimestampLtz(_) => CdcValue::TimestampUtc(0),
        K::Array(_) | K::Multiset(_) => CdcValue::Array(Vec::new()),
        K::Map(..) | K::Row(_) => CdcValue::Null,
    }
}

/// A key's values as one string (the images' and lookups' map key).
fn key_string(key: &[CdcValue]) -> String {
    format!("{key:?}")
}

/// Whether a table does without the old image of an update or a delete: a
/// deduplicating table keeps the `+U` that follows either way and deletes by
/// key, and without `changelog-producer = input` no reader sees the values of
/// a `-U` or `-D`. PostgreSQL sends no old row for an update and only the key
/// of a deleted row under REPLICA IDENTITY DEFAULT; not looking them up saves
/// a read of the table per commit.
fn old_images_optional(table: &Table) -> bool {
    let options = table.options();
    options.merge_engine == MergeEngine::Deduplicate
        && options.changelog_producer != ChangelogProducer::Input
        && options.sequence_fields.is_empty()
}

fn key_columns(table: &Table) -> Vec<usize> {
    let fields = &table.schema().fields;
    table
        .primary_keys()
        .iter()
        .filter_map(|k| fields.iter().position(|f| &f.name == k))
        .collect()
}

/// For each slot, whether no later slot reads its source column.
fn last_reads(slots: &[Slot]) -> Vec<bool> {
    slots
        .iter()
        .enumerate()
        .map(|(j, slot)| match slot {
            Slot::Source(i) => !slots[j + 1..].iter().any(
                |later| matches!(later, Slot::Source(k) | Slot::Computed(_, Some(k)) if k == i),
            ),
            _ => false,
        })
        .collect()
}

/// The value of source column `i`, moved out of the change.
fn take_value(change: &mut RowChange, i: usize) -> Result<CdcValue> {
    match change.values.get_mut(i) {
        Some(value) => Ok(std::mem::replace(value, CdcValue::Null)),
        None => source_value(change, i),
    }
}

fn source_value(change: &RowChange, i: usize) -> Result<CdcValue> {
    change.values.get(i).cloned().ok_or_else(|| {
        CdcError::table(
            &change.table,
            format!(
                "a change has {} values but the table has more columns",
                change.values.len()
            ),
        )
    })
}

/// A key value as the engine's predicates take it.
fn datum(value: &CdcValue, data_type: &DataType) -> Option<Datum> {
    use DataTypeKind as K;
    Some(match (&data_type.kind, value) {
        (K::TinyInt, CdcValue::Int(i)) => Datum::TinyInt(i8::try_from(*i).ok()?),
        (K::SmallInt, CdcValue::Int(i)) => Datum::SmallInt(i16::try_from(*i).ok()?),
        (K::Int, CdcValue::Int(i)) => Datum::Int(i32::try_from(*i).ok()?),
        (K::BigInt, CdcValue::Int(i)) => Datum::BigInt(*i),
        (K::Boolean, CdcValue::Boolean(b)) => Datum::Boolean(*b),
        (K::Char(_) | K::VarChar(_), CdcValue::String(s)) => Datum::String(s.clone()),
        (K::Date, CdcValue::Date(d)) => Datum::Date(*d),
        (K::Decimal { precision, scale }, CdcValue::Decimal(u, s)) if s == scale => {
            Datum::Decimal {
                unscaled: *u,
                precision: *precision,
                scale: *scale,
            }
        }
        (
            K::Timestamp(_) | K::TimestampLtz(_),
            CdcValue::Timestamp(m) | CdcValue::TimestampUtc(m),
        ) => Datum::Timestamp {
            millis: m.div_euclid(1_000),
            nanos_of_milli: (m.rem_euclid(1_000) * 1_000) as i32,
        },
        _ => return None,
    })
}

/// Whether a conflict is the fence: another instance recorded positions.
pub(crate) fn is_conflict(e: &CdcError) -> bool {
    matches!(e, CdcError::Engine(EngineError::CommitConflict { .. }))
}
