//! Reading one data file into batches of the columns a reader asks for,
//! mapping the file's columns to the current schema by field id (so that
//! renamed, added or retyped columns read correctly from old files).

use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::FutureExt;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use tidelake_format::deletion_vector::DeletionVector;
use tidelake_format::manifest::DataFileMeta;
use tidelake_format::types::DataField;
use tidelake_store::WarehouseStore;

use super::key::KeyFilter;
use crate::error::{EngineError, Result};
use crate::kv::{KEY_PREFIX, SEQUENCE_COLUMN, VALUE_KIND_COLUMN};
use crate::table::Table;

/// A column to read from a data file.
#[derive(Clone, Debug)]
pub(crate) enum ReadColumn {
    /// A table column (current schema).
    Value(DataField),
    /// The primary-key copy of a table column (`_KEY_<name>`); thin files
    /// without key columns fall back to the value column.
    Key(DataField),
    Sequence,
    ValueKind,
}

impl ReadColumn {
    pub fn output_field(&self) -> Field {
        match self {
            ReadColumn::Value(f) => {
                Field::new(&f.name, f.data_type.to_arrow(), f.data_type.is_nullable())
            }
            ReadColumn::Key(f) => Field::new(
                format!("{KEY_PREFIX}{}", f.name),
                f.data_type.to_arrow(),
                false,
            ),
            ReadColumn::Sequence => {
                Field::new(SEQUENCE_COLUMN, arrow_schema::DataType::Int64, false)
            }
            ReadColumn::ValueKind => {
                Field::new(VALUE_KIND_COLUMN, arrow_schema::DataType::Int8, false)
            }
        }
    }
}

/// The key columns (`_KEY_*`) of a primary-key table, in key order.
pub(crate) fn key_columns(table: &Table) -> Vec<ReadColumn> {
    let layout = &table.layout;
    layout
        .key_indices
        .iter()
        .map(|&i| ReadColumn::Key(layout.schema.fields[i].clone()))
        .collect()
}

pub(crate) fn output_schema(columns: &[ReadColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(ReadColumn::output_field)
            .collect::<Vec<_>>(),
    ))
}

/// Streams the requested columns of one file.
pub(crate) async fn read_data_file(
    table: &Table,
    path: &str,
    file: &DataFileMeta,
    columns: &[ReadColumn],
    batch_size: usize,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    open_data_file(table, path, file, columns, batch_size, FileRows::All).await
}

/// Streams the requested columns of one file without the rows its deletion
/// vector (if any) marks deleted; with a `key`, only the rows of that key
/// (which `columns` must hold as `ReadColumn::Key`).
pub(crate) async fn read_live_file(
    table: &Table,
    path: &str,
    file: &DataFileMeta,
    columns: &[ReadColumn],
    batch_size: usize,
    deleted: Option<Arc<DeletionVector>>,
    key: Option<&Arc<KeyFilter>>,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    let positions = key.and_then(|k| key_positions(k, columns).map(|p| (k.clone(), p)));
    let batches = match &positions {
        // A key read selects rows by position (pages, deletion vector), so
        // the vector is applied as a selection, not afterwards.
        Some((key, p)) => {
            let rows = FileRows::Key(key.clone(), p.clone(), deleted);
            open_data_file(table, path, file, columns, batch_size, rows).await?
        }
        None => {
            let batches =
                open_data_file(table, path, file, columns, batch_size, FileRows::All).await?;
            super::deletion::without_deleted(batches, deleted)
        }
    };
    Ok(match positions {
        Some((key, p)) => batches
            .and_then(move |b| futures::future::ready(key.filter(b, &p)))
            .try_filter(|b| futures::future::ready(b.num_rows() > 0))
            .boxed(),
        None => batches,
    })
}

/// Streams the requested columns of the rows at `positions` (ascending; a
/// key index's answer, deleted rows already left out) of one file that
/// hold `key` (`columns` must hold its columns as `ReadColumn::Key`): only
/// the pages holding those rows are read.
pub(crate) async fn read_indexed_rows(
    table: &Table,
    path: &str,
    file: &DataFileMeta,
    columns: &[ReadColumn],
    key: &Arc<KeyFilter>,
    positions: &[u64],
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    let Some(at) = key_positions(key, columns) else {
        return Err(EngineError::internal("a key read without the key columns"));
    };
    if positions.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    let key = key.clone();
    // A hash collision may have selected another key's row: filter.
    Ok(
        read_file_rows(table, path, file, columns, positions.len(), positions)
            .await?
            .and_then(move |b| futures::future::ready(key.filter(b, &at)))
            .try_filter(|b| futures::future::ready(b.num_rows() > 0))
            .boxed(),
    )
}

/// Where each key column is among `columns` (as `ReadColumn::Key`); `None`
/// when one is missing.
pub(crate) fn key_positions(key: &KeyFilter, columns: &[ReadColumn]) -> Option<Vec<usize>> {
    key.field_ids()
        .map(|id| {
            columns
                .iter()
                .position(|c| matches!(c, ReadColumn::Key(f) if f.id == id))
        })
        .collect()
}

/// Which rows of a file to read.
enum FileRows {
    All,
    /// Row ranges (ascending, disjoint).
    Ranges(Vec<std::ops::Range<usize>>),
    /// The row groups and pages that may hold a key, whose columns are at
    /// these positions of the columns read (rows are not filtered here),
    /// without the rows the deletion vector (if any) marks deleted.
    Key(Arc<KeyFilter>, Vec<usize>, Option<Arc<DeletionVector>>),
}

/// Streams the requested columns of the rows at `positions` (ascending row
/// numbers) of one file, in position order; row groups holding none of
/// them are not read.
pub(crate) async fn read_file_rows(
    table: &Table,
    path: &str,
    file: &DataFileMeta,
    columns: &[ReadColumn],
    batch_size: usize,
    positions: &[u64],
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    for &p in positions {
        let p = usize::try_from(p).map_err(|_| {
            EngineError::invalid(format!("row position {p} of '{path}' is out of range"))
        })?;
        match ranges.last_mut() {
            Some(last) if last.end == p => last.end = p + 1,
            Some(last) if last.end > p => {
                return Err(EngineError::internal(format!(
                    "row positions of '{path}' are not ascending"
                )))
            }
            _ => ranges.push(p..p + 1),
        }
    }
    open_data_file(
        table,
        path,
        file,
        columns,
        batch_size,
        FileRows::Ranges(ranges),
    )
    .await
}

/// Streams the requested columns of one file, of all its rows or of the
/// given row ranges.
async fn open_data_file(
    table: &Table,
    path: &str,
    file: &DataFileMeta,
    columns: &[ReadColumn],
    batch_size: usize,
    rows: FileRows,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    let file_schema = table.schema_by_id(file.schema_id).await?;
    let name_in_file = |f: &DataField| -> Option<String> {
        file_schema
            .fields
            .iter()
            .find(|ff| ff.id == f.id)
            .map(|ff| ff.name.clone())
    };
    let pq_err = |e| EngineError::Parquet {
        path: path.to_string(),
        source: e,
    };
    crate::counters::opened_file();
    let mut reader =
        StoreFileReader::new(table.store.clone(), path.to_string(), file.file_size as u64);
    let metadata = footer(table, &mut reader, path).await.map_err(pq_err)?;
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata.clone());
    let file_arrow = builder.schema().clone();
    let position = |name: &str| file_arrow.fields().iter().position(|f| f.name() == name);
    // For each requested column: its index in the file, if present.
    let sources: Vec<Option<usize>> = columns
        .iter()
        .map(|c| match c {
            ReadColumn::Value(f) => name_in_file(f).and_then(|n| position(&n)),
            ReadColumn::Key(f) => name_in_file(f)
                .and_then(|n| position(&format!("{KEY_PREFIX}{n}")).or_else(|| position(&n))),
            ReadColumn::Sequence => position(SEQUENCE_COLUMN),
            ReadColumn::ValueKind => position(VALUE_KIND_COLUMN),
        })
        .collect();
    for (c, s) in columns.iter().zip(&sources) {
        if s.is_none()
            && matches!(
                c,
                ReadColumn::Key(_) | ReadColumn::Sequence | ReadColumn::ValueKind
            )
        {
            return Err(EngineError::Corrupt {
                path: path.to_string(),
                message: format!(
                    "primary-key data file lacks column {}",
                    c.output_field().name()
                ),
            });
        }
    }
    let mut roots: Vec<usize> = sources.iter().flatten().copied().collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let mut builder = builder.with_projection(mask).with_batch_size(batch_size);
    if let FileRows::Key(key, positions, deleted) = &rows {
        let names: Vec<String> = positions
            .iter()
            .filter_map(|&p| sources[p].map(|s| file_arrow.field(s).name().clone()))
            .collect();
        // Statistics are used only from files of the current schema, as
        // everywhere else (older files may hold other types).
        let usable = file.schema_id == table.layout.schema.id && names.len() == positions.len();
        let key = usable.then_some((key.as_ref(), names.as_slice()));
        match restrict_to_key(builder, &metadata, key, deleted.as_deref()).await? {
            Some(restricted) => builder = restricted,
            None => return Ok(futures::stream::empty::<Result<RecordBatch>>().boxed()),
        }
    }
    if let FileRows::Ranges(ranges) = rows {
        let total = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        if let Some(bad) = ranges.iter().find(|r| r.end > total) {
            return Err(EngineError::Corrupt {
                path: path.to_string(),
                message: format!(
                    "row {} asked for, but the file has {total} rows",
                    bad.end - 1
                ),
            });
        }
        builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(
            ranges.into_iter(),
            total,
        ));
    }
    let stream = builder.build().map_err(pq_err)?;
    let out_schema = output_schema(columns);
    // Index of each requested column within the projected batch.
    let projected: Vec<Option<usize>> = sources
        .iter()
        .map(|s| s.and_then(|s| roots.iter().position(|r| *r == s)))
        .collect();
    let path_owned = path.to_string();
    Ok(stream
        .map_err(move |e| EngineError::Parquet {
            path: path_owned.clone(),
            source: e,
        })
        .and_then(move |batch| {
            crate::counters::scanned_rows(batch.num_rows());
            let out = conform_batch(&batch, &projected, &out_schema);
            futures::future::ready(out)
        })
        .boxed())
}

/// A data file's footer (with its page index, where written: key reads
/// select pages by it), from the catalog's cache or read and cached.
async fn footer(
    table: &Table,
    reader: &mut StoreFileReader,
    path: &str,
) -> parquet::errors::Result<ArrowReaderMetadata> {
    if let Some(metadata) = table.cache.footer(path) {
        return Ok(metadata);
    }
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let metadata = ArrowReaderMetadata::load_async(reader, options).await?;
    table.cache.put_footer(path, metadata.clone());
    Ok(metadata)
}

type Builder = ParquetRecordBatchStreamBuilder<StoreFileReader>;

/// The reader restricted to the rows of a file that may hold a key (`key`:
/// the filter and its columns' names in the file; `None` when statistics
/// cannot be used) and that `deleted` does not mark; `None` when no row
/// may.
async fn restrict_to_key(
    mut builder: Builder,
    metadata: &ArrowReaderMetadata,
    key: Option<(&KeyFilter, &[String])>,
    deleted: Option<&DeletionVector>,
) -> Result<Option<Builder>> {
    let pruned = match key {
        Some((key, names)) => match prune_for_key(&mut builder, metadata, key, names).await? {
            Some(pruned) => pruned,
            None => return Ok(None),
        },
        None => KeyRows::Everything,
    };
    let Some(dv) = deleted else {
        if let KeyRows::Groups(kept, pages) = pruned {
            builder = builder.with_row_groups(kept);
            if let Some(pages) = pages {
                builder = builder.with_row_selection(pages);
            }
        }
        return Ok(Some(builder));
    };
    // Positions count every row of the file: select over all of its row
    // groups, the kept ones' pages minus the deleted rows.
    let total = usize::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut selection = live_rows(dv, total);
    if let (KeyRows::Groups(kept, _), Some((key, names))) = (pruned, key) {
        selection = selection.intersection(&key_rows_in_file(metadata, key, names, &kept));
    }
    if !selection.selects_any() {
        return Ok(None);
    }
    Ok(Some(builder.with_row_selection(selection)))
}

/// What a key read of one file may read.
enum KeyRows {
    /// Statistics could not be used: every row.
    Everything,
    /// These row groups (in order), and within them these rows (by the
    /// page index; `None`: all their rows).
    Groups(Vec<usize>, Option<RowSelection>),
}

/// The row groups (bloom filters consulted) and pages of a file that may
/// hold `key`; `None` when none may.
async fn prune_for_key(
    builder: &mut Builder,
    metadata: &ArrowReaderMetadata,
    key: &KeyFilter,
    names: &[String],
) -> Result<Option<KeyRows>> {
    let mut groups = key.row_groups(metadata, names);
    let total = builder.metadata().num_row_groups();
    // Bloom filters, where the writer wrote them for a key column.
    let mut kept = Vec::with_capacity(groups.len());
    for g in groups.drain(..) {
        let mut excluded = false;
        for (i, name) in names.iter().enumerate().take(key.len()) {
            let Some(column) = parquet_column(builder, name) else {
                continue;
            };
            if builder
                .metadata()
                .row_group(g)
                .column(column)
                .bloom_filter_offset()
                .is_none()
            {
                continue;
            }
            if let Ok(Some(bloom)) = builder.get_row_group_column_bloom_filter(g, column).await {
                if key.excluded_by(i, &bloom) {
                    excluded = true;
                    break;
                }
            }
        }
        if !excluded {
            kept.push(g);
        }
    }
    crate::counters::pruned_row_groups(total - kept.len());
    if kept.is_empty() {
        return Ok(None);
    }
    let pages = key.pages(metadata, names, &kept);
    if pages.as_ref().is_some_and(|p| !p.selects_any()) {
        return Ok(None);
    }
    Ok(Some(KeyRows::Groups(kept, pages)))
}

/// The rows of the whole file (every row group, in order) that the kept
/// row groups' pages may hold the key in.
fn key_rows_in_file(
    metadata: &ArrowReaderMetadata,
    key: &KeyFilter,
    names: &[String],
    kept: &[usize],
) -> RowSelection {
    let pq = metadata.metadata();
    let mut selectors = Vec::new();
    for g in 0..pq.num_row_groups() {
        let rows = usize::try_from(pq.row_group(g).num_rows()).unwrap_or(0);
        if !kept.contains(&g) {
            selectors.push(RowSelector::skip(rows));
            continue;
        }
        match key.pages(metadata, names, &[g]) {
            Some(pages) => selectors.extend(pages.iter().copied()),
            None => selectors.push(RowSelector::select(rows)),
        }
    }
    RowSelection::from(selectors)
}

/// The rows of a file of `total` rows that `dv` does not mark deleted.
fn live_rows(dv: &DeletionVector, total: usize) -> RowSelection {
    let mut selectors = Vec::new();
    let mut at = 0usize;
    for position in dv.iter() {
        let Ok(position) = usize::try_from(position) else {
            break;
        };
        if position >= total {
            break;
        }
        if position > at {
            selectors.push(RowSelector::select(position - at));
        }
        selectors.push(RowSelector::skip(1));
        at = position + 1;
    }
    if at < total {
        selectors.push(RowSelector::select(total - at));
    }
    RowSelection::from(selectors)
}

/// The leaf column index of a top-level Arrow column of the file.
fn parquet_column(builder: &Builder, name: &str) -> Option<usize> {
    parquet::arrow::parquet_column(builder.parquet_schema(), builder.schema(), name).map(|(i, _)| i)
}

fn conform_batch(
    batch: &RecordBatch,
    projected: &[Option<usize>],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let cols: Vec<ArrayRef> = projected
        .iter()
        .zip(schema.fields())
        .map(|(p, field)| match p {
            Some(i) => {
                let col = batch.column(*i);
                if col.data_type() == field.data_type() {
                    Ok(col.clone())
                } else {
                    Ok(arrow::compute::cast(col, field.data_type())?)
                }
            }
            None => Ok(new_null_array(field.data_type(), n)),
        })
        .collect::<Result<_>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &options,
    )?)
}

/// Parquet's async reader over the warehouse store: byte ranges come from
/// `WarehouseStore::get_range`, so every backend (and the fault-injecting
/// store of the simulation tests) serves data files the same way.
struct StoreFileReader {
    store: WarehouseStore,
    path: String,
    /// From the manifest, which saves a HEAD request per file.
    size: u64,
    /// The whole file, when it is small enough to take in one request.
    whole: Option<Bytes>,
}

/// Bytes read with the footer of larger files.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// Files up to this size are read in one request: Parquet's reader would
/// otherwise ask for the footer and then each column chunk separately, and
/// every request costs a round trip (a thread hop on local disk, a GET on an
/// object store) that dwarfs the bytes of a small level-0 file.
const WHOLE_FILE_LIMIT: u64 = 2 * 1024 * 1024;

/// Gaps between byte ranges up to this size are read rather than paid for
/// with another request, on object stores.
const COALESCE_GAP: u64 = 256 * 1024;

/// `ranges` (by index) grouped into clusters to read in one request each:
/// in order of start, a range joins the cluster before it when the gap
/// between them is at most `gap` and the cluster then spans at most `span`
/// bytes. Empty and overlapping ranges are fine.
fn nearby_ranges(ranges: &[std::ops::Range<u64>], gap: u64, span: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| (ranges[i].start, ranges[i].end));
    let mut clusters: Vec<(u64, u64, Vec<usize>)> = Vec::new();
    for i in order {
        let r = &ranges[i];
        match clusters.last_mut() {
            Some((start, end, members))
                if r.start <= end.saturating_add(gap) && r.end.max(*end) - *start <= span =>
            {
                *end = (*end).max(r.end);
                members.push(i);
            }
            _ => clusters.push((r.start, r.end, vec![i])),
        }
    }
    clusters
        .into_iter()
        .map(|(_, _, members)| members)
        .collect()
}

impl StoreFileReader {
    fn new(store: WarehouseStore, path: String, size: u64) -> StoreFileReader {
        StoreFileReader {
            store,
            path,
            size,
            whole: None,
        }
    }
}

impl AsyncFileReader for StoreFileReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            if let Some(whole) = &self.whole {
                let len = whole.len() as u64;
                if range.start <= range.end && range.end <= len {
                    return Ok(whole.slice(range.start as usize..range.end as usize));
                }
                return Err(ParquetError::General(format!(
                    "'{}': bytes {}..{} asked for, but the file has {len}",
                    self.path, range.start, range.end
                )));
            }
            let bytes = self
                .store
                .get_range(&self.path, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            crate::counters::scanned_bytes(bytes.len());
            Ok(bytes)
        }
        .boxed()
    }

    /// Ranges close together (the pages or column chunks of one row group)
    /// are read in one request where each request costs a round trip (an
    /// object store); on local disk each range is read alone, since
    /// spanning the gaps would copy bytes nobody asked for.
    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            if self.whole.is_some() || self.store.reads_cheaply() || ranges.len() < 2 {
                let mut out = Vec::with_capacity(ranges.len());
                for range in ranges {
                    out.push(self.get_bytes(range).await?);
                }
                return Ok(out);
            }
            let mut out = vec![Bytes::new(); ranges.len()];
            for cluster in nearby_ranges(&ranges, COALESCE_GAP, WHOLE_FILE_LIMIT) {
                let start = ranges[cluster[0]].start;
                let end = cluster
                    .iter()
                    .map(|&i| ranges[i].end)
                    .max()
                    .unwrap_or(start);
                let span = self.get_bytes(start..end).await?;
                for i in cluster {
                    let r = &ranges[i];
                    out[i] = span.slice((r.start - start) as usize..(r.end - start) as usize);
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            if size <= WHOLE_FILE_LIMIT && self.whole.is_none() {
                let whole = self
                    .store
                    .get(&self.path)
                    .await
                    .map_err(|e| ParquetError::External(Box::new(e)))?;
                crate::counters::scanned_bytes(whole.len());
                // The manifest's size is what the footer is found by; a
                // file of another size is read as it is and fails there.
                self.size = whole.len() as u64;
                self.whole = Some(whole);
            }
            let size = self.size;
            let (column_index, offset_index) = options
                .map_or((PageIndexPolicy::Skip, PageIndexPolicy::Skip), |o| {
                    (o.column_index_policy(), o.offset_index_policy())
                });
            let mut reader = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .with_column_index_policy(column_index)
                .with_offset_index_policy(offset_index);
            reader.try_load(&mut *self, size).await?;
            Ok(Arc::new(reader.finish()?))
        }
        .boxed()
    }
}

impl Table {
    /// Table columns `columns` (by name, current schema) of one data file
    /// of the bucket at `partition_path`/`bucket`: every row in file order,
    /// rows its deletion vector marks included, or only the rows at
    /// `positions` (ascending). For crates that address rows by position
    /// (index builders and searches).
    pub async fn read_file_columns(
        &self,
        partition_path: &str,
        bucket: i32,
        file: &DataFileMeta,
        columns: &[String],
        positions: Option<&[u64]>,
    ) -> Result<Vec<RecordBatch>> {
        self.stream_file_columns(partition_path, bucket, file, columns, positions)
            .await?
            .try_collect()
            .await
    }

    /// [`Table::read_file_columns`] as a stream of batches, for readers of
    /// large files that need not hold a whole column at once (index builds).
    pub async fn stream_file_columns(
        &self,
        partition_path: &str,
        bucket: i32,
        file: &DataFileMeta,
        columns: &[String],
        positions: Option<&[u64]>,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let mut read = Vec::with_capacity(columns.len());
        for name in columns {
            let field = self
                .layout
                .schema
                .fields
                .iter()
                .find(|f| &f.name == name)
                .ok_or_else(|| EngineError::ColumnNotFound {
                    table: self.id.to_string(),
                    column: name.clone(),
                })?;
            read.push(ReadColumn::Value(field.clone()));
        }
        let path = self
            .paths()
            .data_file(partition_path, bucket, &file.file_name);
        match positions {
            Some(p) => read_file_rows(self, &path, file, &read, 8192, p).await,
            None => read_data_file(self, &path, file, &read, 8192).await,
        }
    }

    /// The live entries of a snapshot's index manifest (none without one).
    pub async fn index_manifest_entries(
        &self,
        snapshot: Option<&tidelake_format::snapshot::Snapshot>,
    ) -> Result<Vec<tidelake_format::manifest::IndexManifestEntry>> {
        crate::index::index_entries(self, snapshot).await
    }
}

#[cfg(test)]
mod tests {
    use super::nearby_ranges;

    #[test]
    fn nearby_ranges_share_a_request_within_gap_and_span() {
        let ranges = vec![100..200, 0..10, 15..20, 1_000..1_100, 205..300];
        // Gap 10: 0..10 and 15..20 join; 100..200 and 205..300 join.
        assert_eq!(
            nearby_ranges(&ranges, 10, 1 << 20),
            vec![vec![1, 2], vec![0, 4], vec![3]]
        );
        // A span limit of 150 splits 100..200 from 205..300.
        assert_eq!(
            nearby_ranges(&ranges, 10, 150),
            vec![vec![1, 2], vec![0], vec![4], vec![3]]
        );
        // Overlapping and nested ranges fall in one cluster.
        let nested = vec![0..100, 10..20, 50..150];
        assert_eq!(nearby_ranges(&nested, 0, 1 << 20), vec![vec![0, 1, 2]]);
        assert!(nearby_ranges(&[], 10, 10).is_empty());
    }
}
