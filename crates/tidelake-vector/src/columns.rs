//! Columns of data files as searches read them: the returned columns of
//! the k winners and the columns a filter reads. Reading a few rows of a
//! Parquet file decodes a whole page per row (the pages of a 1M-row file
//! hold thousands of values each), which cost more than the index search
//! itself; so a column that is not nested (ids, categories, text) is
//! decoded whole once and kept, and later searches take their rows from
//! memory. Vector columns (lists) are read from their pages as before:
//! decoded, they weigh as much as the index.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    new_empty_array, Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt64Array,
};
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::{DataType, Schema};
use tidelake_engine::Table;
use tidelake_format::manifest::DataFileMeta;

use crate::error::{Result, VectorError};
use tidelake_engine::WeightedLru;

/// Bytes of decoded columns kept (a column of more than a quarter of this
/// is not kept).
const CACHED_COLUMN_BYTES: usize = 256 * 1024 * 1024;

fn cache() -> &'static WeightedLru<String, ArrayRef> {
    static CACHE: OnceLock<WeightedLru<String, ArrayRef>> = OnceLock::new();
    CACHE.get_or_init(|| WeightedLru::with_largest(CACHED_COLUMN_BYTES, CACHED_COLUMN_BYTES / 4))
}

/// One data file of a bucket.
pub(crate) struct FileRef<'a> {
    pub partition_path: &'a str,
    pub bucket: i32,
    pub file: &'a DataFileMeta,
}

/// Table columns `columns` (by name) of a data file: every row, or the rows
/// at `positions` (ascending), as one batch.
pub(crate) async fn read(
    table: &Table,
    at: &FileRef<'_>,
    columns: &[String],
    positions: Option<&[u64]>,
) -> Result<RecordBatch> {
    let arrow = table.arrow_schema();
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<Option<ArrayRef>> = vec![None; columns.len()];
    let mut from_pages = Vec::new();
    for (i, name) in columns.iter().enumerate() {
        let field = arrow.field_with_name(name).map_err(|_| {
            VectorError::BadSearch(format!(
                "table '{}' has no column '{name}'",
                table.identifier()
            ))
        })?;
        fields.push(field.clone());
        match whole_column(table, at, name, field.data_type()).await? {
            Some(whole) => {
                arrays[i] = Some(match positions {
                    None => whole,
                    Some(p) => take(&whole, &UInt64Array::from(p.to_vec()), None)?,
                });
            }
            None => from_pages.push(i),
        }
    }
    if !from_pages.is_empty() {
        let names: Vec<String> = from_pages.iter().map(|i| columns[*i].clone()).collect();
        let batches = table
            .read_file_columns(at.partition_path, at.bucket, at.file, &names, positions)
            .await?;
        for (j, i) in from_pages.iter().enumerate() {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(j).as_ref()).collect();
            arrays[*i] = Some(match parts.len() {
                0 => new_empty_array(fields[*i].data_type()),
                1 => batches[0].column(j).clone(),
                _ => concat(&parts)?,
            });
        }
    }
    let arrays = arrays
        .into_iter()
        .map(|a| a.ok_or_else(|| VectorError::Internal("a column was not read".into())))
        .collect::<Result<Vec<_>>>()?;
    // No column (a filter on none): the rows' count alone.
    let rows = positions.map_or(
        usize::try_from(at.file.row_count).unwrap_or(0),
        <[u64]>::len,
    );
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &options,
    )?)
}

/// The whole column `name` of a file, from the cache or decoded and kept
/// (`None`: a nested column, or one too large to keep).
async fn whole_column(
    table: &Table,
    at: &FileRef<'_>,
    name: &str,
    data_type: &DataType,
) -> Result<Option<ArrayRef>> {
    // Variable-width values are guessed at 32 bytes.
    let width = data_type.primitive_width().unwrap_or(32);
    let rows = usize::try_from(at.file.row_count).unwrap_or(usize::MAX);
    if data_type.is_nested() || rows.saturating_mul(width) > CACHED_COLUMN_BYTES / 4 {
        return Ok(None);
    }
    let field_id = table
        .schema()
        .fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.id)
        .ok_or_else(|| VectorError::Internal(format!("column '{name}' vanished")))?;
    // Data file names hold a uuid; the field id, not the name, says which
    // column of the file is read (a column dropped and added again under
    // the same name is another column).
    let key = format!(
        "{}#{field_id}",
        table
            .paths()
            .data_file(at.partition_path, at.bucket, &at.file.file_name)
    );
    if let Some(hit) = cache().get(&key) {
        return Ok(Some(hit));
    }
    let batches = table
        .read_file_columns(
            at.partition_path,
            at.bucket,
            at.file,
            &[name.to_string()],
            None,
        )
        .await?;
    let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
    let whole = match parts.len() {
        0 => new_empty_array(data_type),
        1 => batches[0].column(0).clone(),
        _ => concat(&parts)?,
    };
    let weight = whole.get_array_memory_size() + key.len() + 64;
    cache().insert(key, whole.clone(), weight);
    Ok(Some(whole))
}
