//! Writing one Parquet data file and describing it as a `DataFileMeta`:
//! the writer's flushes and compaction's rewrites both write through here.
//!
//! Primary-key files carry the key-value layout of [`crate::kv`]. Append
//! files carry the table columns only.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, Int8Array, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use tidelake_format::binary_row::{datum_from_arrow, serialize_binary_row, Datum};
use tidelake_format::manifest::{DataFileMeta, SimpleStats};

use crate::error::{EngineError, Result};
use crate::kv::{
    is_retraction, KEY_FIELD_ID_OFFSET, KEY_PREFIX, SEQUENCE_COLUMN, SEQUENCE_FIELD_ID,
    VALUE_KIND_COLUMN, VALUE_KIND_FIELD_ID,
};
use crate::layout::TableLayout;
use crate::stats::{column_stats, encode_stats};
use crate::table::Table;

const FIELD_ID_KEY: &str = "PARQUET:field_id";

fn with_id(field: Field, id: i32) -> Field {
    let mut md = HashMap::new();
    md.insert(FIELD_ID_KEY.to_string(), id.to_string());
    field.with_metadata(md)
}

/// The Arrow schema of a primary-key data file of this layout.
pub(crate) fn kv_file_schema(layout: &TableLayout) -> SchemaRef {
    let mut fields = Vec::new();
    for &i in &layout.key_indices {
        let f = &layout.schema.fields[i];
        fields.push(with_id(
            Field::new(
                format!("{KEY_PREFIX}{}", f.name),
                f.data_type.to_arrow(),
                false,
            ),
            f.id + KEY_FIELD_ID_OFFSET,
        ));
    }
    fields.push(with_id(
        Field::new(SEQUENCE_COLUMN, arrow_schema::DataType::Int64, false),
        SEQUENCE_FIELD_ID,
    ));
    fields.push(with_id(
        Field::new(VALUE_KIND_COLUMN, arrow_schema::DataType::Int8, false),
        VALUE_KIND_FIELD_ID,
    ));
    fields.extend(value_fields_with_ids(layout));
    Arc::new(Schema::new(fields))
}

/// The table's columns as stored in data files: with Paimon's field ids, so
/// that other readers can map columns by id after renames.
fn value_fields_with_ids(layout: &TableLayout) -> Vec<Field> {
    layout
        .arrow_schema
        .fields()
        .iter()
        .zip(&layout.schema.fields)
        .map(|(f, df)| with_id(f.as_ref().clone(), df.id))
        .collect()
}

/// The Arrow schema of an append-table data file.
fn append_file_schema(layout: &TableLayout) -> SchemaRef {
    Arc::new(Schema::new(value_fields_with_ids(layout)))
}

fn writer_properties(layout: &TableLayout) -> Result<WriterProperties> {
    let o = &layout.options;
    let compression = match o.file_compression.as_str() {
        "zstd" => Compression::ZSTD(ZstdLevel::try_new(o.file_compression_zstd_level).map_err(
            |e| EngineError::invalid(format!("option 'file.compression.zstd-level': {e}")),
        )?),
        "snappy" => Compression::SNAPPY,
        "lz4" => Compression::LZ4_RAW,
        "none" | "uncompressed" => Compression::UNCOMPRESSED,
        other => {
            return Err(EngineError::invalid(format!(
                "option 'file.compression': '{other}' is not one of zstd, snappy, lz4, none"
            )))
        }
    };
    let builder = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_size_limit(o.parquet.page_size)
        .set_dictionary_page_size_limit(o.parquet.dictionary_page_size)
        .set_dictionary_enabled(o.parquet.enable_dictionary);
    Ok(with_bloom_filters(builder, &layout.schema.options)?.build())
}

const BLOOM_OPTION: &str = "parquet.bloom.filter.enabled";

/// Parquet bloom filters as Paimon's Parquet options ask for them:
/// `parquet.bloom.filter.enabled` for every column, or
/// `parquet.bloom.filter.enabled#<column>` for one (a table column's name
/// covers its `_KEY_` copy too). Key lookups skip row groups by them.
fn with_bloom_filters(
    mut builder: WriterPropertiesBuilder,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<WriterPropertiesBuilder> {
    let flag = |key: &str, value: &str| match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(EngineError::invalid(format!(
            "option '{key}': '{value}' is not true or false"
        ))),
    };
    for (key, value) in options {
        if key == BLOOM_OPTION {
            builder = builder.set_bloom_filter_enabled(flag(key, value)?);
        } else if let Some(column) = key.strip_prefix(&format!("{BLOOM_OPTION}#")) {
            let on = flag(key, value)?;
            for name in [
                column.to_string(),
                format!("{}{column}", crate::kv::KEY_PREFIX),
            ] {
                builder = builder.set_column_bloom_filter_enabled(ColumnPath::from(name), on);
            }
        }
    }
    Ok(builder)
}

/// What the writer knows about the rows of a file beyond the rows themselves.
pub(crate) struct FileContent {
    /// Key-value layout (with `_KEY_`, sequence and kind columns) or plain.
    pub batch: RecordBatch,
    /// For append files: the first and last sequence number of the rows.
    pub sequence_range: Option<(i64, i64)>,
}

fn first_last_key(layout: &TableLayout, batch: &RecordBatch) -> Result<(Vec<u8>, Vec<u8>)> {
    let n = batch.num_rows();
    let row = |r: usize| -> Result<Vec<u8>> {
        let datums = (0..layout.key_indices.len())
            .map(|k| datum_from_arrow(batch.column(k).as_ref(), r, &layout.key_types[k]))
            .collect::<Result<Vec<Datum>, _>>()?;
        Ok(serialize_binary_row(&datums, &layout.key_types)?)
    };
    Ok((row(0)?, row(n - 1)?))
}

/// Encodes `content` as Parquet, stores it under `dir` and describes it.
pub(crate) async fn write_data_file(
    table: &Table,
    dir: &str,
    content: FileContent,
) -> Result<DataFileMeta> {
    write_file(table, dir, content, &table.layout.options.data_file_prefix).await
}

/// Writes changelog rows (key-value layout, sorted by key) as a changelog
/// file under `dir`: the same layout as a data file, named with
/// `changelog-file.prefix`.
pub(crate) async fn write_changelog_file(
    table: &Table,
    dir: &str,
    batch: RecordBatch,
) -> Result<DataFileMeta> {
    let content = FileContent {
        batch,
        sequence_range: None,
    };
    write_file(
        table,
        dir,
        content,
        &table.layout.options.changelog_file_prefix,
    )
    .await
}

async fn write_file(
    table: &Table,
    dir: &str,
    content: FileContent,
    prefix: &str,
) -> Result<DataFileMeta> {
    let layout = &table.layout;
    let batch = &content.batch;
    if batch.num_rows() == 0 {
        return Err(EngineError::internal("empty data file"));
    }
    let batch = if layout.is_primary_key() {
        batch.clone()
    } else {
        RecordBatch::try_new(append_file_schema(layout), batch.columns().to_vec())?
    };
    let batch = &batch;
    let name = format!("{prefix}{}-0.parquet", uuid::Uuid::new_v4());
    let path = format!("{dir}/{name}");
    let mut buf = Vec::with_capacity(1 << 20);
    encode_parquet(batch, writer_properties(layout)?, &mut buf).map_err(|e| {
        EngineError::Parquet {
            path: path.clone(),
            source: e,
        }
    })?;
    let file_size = buf.len() as i64;
    let truncate = layout.options.stats_truncate_length;
    let value_offset = batch.num_columns() - layout.schema.fields.len();
    let value_types: Vec<_> = layout
        .schema
        .fields
        .iter()
        .map(|f| f.data_type.clone())
        .collect();
    let value_stats = value_types
        .iter()
        .enumerate()
        .map(|(i, ty)| column_stats(batch.column(value_offset + i), ty, truncate))
        .collect::<Result<Vec<_>>>()?;
    let value_stats = encode_stats(&value_stats, &value_types)?;

    let (min_key, max_key, key_stats, min_seq, max_seq, delete_rows) = if layout.is_primary_key() {
        let (min_key, max_key) = first_last_key(layout, batch)?;
        let key_stats = layout
            .key_types
            .iter()
            .enumerate()
            .map(|(k, ty)| column_stats(batch.column(k), ty, truncate))
            .collect::<Result<Vec<_>>>()?;
        let key_stats = encode_stats(&key_stats, &layout.key_types)?;
        let nk = layout.key_indices.len();
        let seq = batch
            .column(nk)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| EngineError::internal("sequence column is not BIGINT"))?;
        let kinds = batch
            .column(nk + 1)
            .as_any()
            .downcast_ref::<Int8Array>()
            .ok_or_else(|| EngineError::internal("value kind column is not TINYINT"))?;
        let min_seq = arrow::compute::min(seq).unwrap_or(0);
        let max_seq = arrow::compute::max(seq).unwrap_or(0);
        let deletes = kinds.values().iter().filter(|k| is_retraction(**k)).count() as i64;
        (min_key, max_key, key_stats, min_seq, max_seq, deletes)
    } else {
        let empty = serialize_binary_row(&[], &[])?;
        let (a, b) = content.sequence_range.unwrap_or((0, 0));
        (empty.clone(), empty, SimpleStats::empty(), a, b, 0)
    };
    table
        .store
        .put(
            &format!("{}/{}", table.paths().root, path),
            Bytes::from(buf),
        )
        .await?;
    Ok(DataFileMeta {
        file_name: name,
        file_size,
        row_count: batch.num_rows() as i64,
        min_key,
        max_key,
        key_stats,
        value_stats,
        min_sequence_number: min_seq,
        max_sequence_number: max_seq,
        schema_id: layout.schema.id,
        level: 0,
        extra_files: Vec::new(),
        creation_time: Some(chrono::Utc::now().timestamp_millis()),
        delete_row_count: Some(delete_rows),
        embedded_index: None,
        file_source: Some(0),
        value_stats_cols: None,
        external_path: None,
        first_row_id: None,
        write_cols: None,
    })
}

/// Rows per row group of the files written.
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Encodes `batch` as one Parquet file into `buf`. The row groups of a file
/// of several are encoded on up to one thread per core (their column
/// chunks are independent) and appended in order: the same file one writer
/// makes, without a large flush (an initial copy's, a big transaction's)
/// leaving the other cores idle.
fn encode_parquet(
    batch: &RecordBatch,
    properties: WriterProperties,
    buf: &mut Vec<u8>,
) -> parquet::errors::Result<()> {
    let rows = batch.num_rows();
    let mut writer = ArrowWriter::try_new(&mut *buf, batch.schema(), Some(properties))?;
    let groups = rows.div_ceil(ROW_GROUP_ROWS);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(groups);
    if threads <= 1 {
        writer.write(batch)?;
        writer.close()?;
        return Ok(());
    }
    let (mut file, factory) = writer.into_serialized_writer()?;
    let schema = batch.schema();
    let encode = |group: usize| -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
        let start = group * ROW_GROUP_ROWS;
        let part = batch.slice(start, ROW_GROUP_ROWS.min(rows - start));
        let mut writers = factory.create_column_writers(group)?;
        let mut next = writers.iter_mut();
        for (field, column) in schema.fields().iter().zip(part.columns()) {
            for leaf in compute_leaves(field, column)? {
                next.next()
                    .ok_or_else(|| {
                        parquet::errors::ParquetError::General("a column without a writer".into())
                    })?
                    .write(&leaf)?;
            }
        }
        writers.into_iter().map(|w| w.close()).collect()
    };
    // Waves of `threads` row groups, each encoded in parallel and then
    // appended in order: at most one wave's encoded chunks are held at a
    // time besides the file.
    for wave in (0..groups).step_by(threads) {
        let wave: Vec<usize> = (wave..groups.min(wave + threads)).collect();
        let encoded: Vec<parquet::errors::Result<Vec<ArrowColumnChunk>>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = wave
                    .iter()
                    .map(|&group| scope.spawn(move || encode(group)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(parquet::errors::ParquetError::General(
                                "a row group's encoder panicked".into(),
                            ))
                        })
                    })
                    .collect()
            });
        for chunks in encoded {
            let mut row_group = file.next_row_group()?;
            for chunk in chunks? {
                chunk.append_to_row_group(&mut row_group)?;
            }
            row_group.close()?;
        }
    }
    file.close()?;
    Ok(())
}

/// Builds the key-value layout from sorted table rows plus sequence and kind.
pub(crate) fn kv_batch(
    layout: &TableLayout,
    schema: &SchemaRef,
    values: &[ArrayRef],
    seq: ArrayRef,
    kinds: ArrayRef,
) -> Result<RecordBatch> {
    let mut cols: Vec<ArrayRef> = layout
        .key_indices
        .iter()
        .map(|&i| values[i].clone())
        .collect();
    cols.push(seq);
    cols.push(kinds);
    cols.extend(values.iter().cloned());
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    /// Row groups encoded in parallel make the file one writer makes.
    #[test]
    fn parallel_row_groups_make_the_same_file() {
        let rows = 2 * ROW_GROUP_ROWS + 1_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", arrow_schema::DataType::Int64, false),
            Field::new("s", arrow_schema::DataType::Utf8, true),
        ]));
        let keys = Int64Array::from_iter_values(0..rows as i64);
        let text = StringArray::from_iter(
            (0..rows).map(|i| (i % 7 != 0).then(|| format!("value {}", i % 1_000))),
        );
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(keys), Arc::new(text)]).unwrap();
        let properties = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .build()
        };
        let mut parallel = Vec::new();
        encode_parquet(&batch, properties(), &mut parallel).unwrap();
        let mut serial = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut serial, schema, Some(properties())).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        assert_eq!(parallel, serial);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            Bytes::from(parallel),
        )
        .unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
        let read: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let read = arrow_select::concat::concat_batches(&batch.schema(), &read).unwrap();
        assert_eq!(read, batch);
    }
}
