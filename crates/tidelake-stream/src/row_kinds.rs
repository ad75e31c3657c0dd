//! The row kinds of a change batch, as the engine's reader hands them out:
//! its first column, `_row_kind`, one byte per row.

use datafusion::arrow::array::{Array, Int8Array, RecordBatch};
use tidelake_engine::{RowKind, ROW_KIND_COLUMN};
use tidelake_sql::{Result, SqlError};

/// The row-kind column of a change batch.
pub(crate) fn kind_column(change: &RecordBatch) -> Result<&Int8Array> {
    change
        .column_by_name(ROW_KIND_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<Int8Array>())
        .ok_or_else(|| SqlError::Internal("change batch without a row-kind column".into()))
}

/// Every row's kind, in order.
pub(crate) fn row_kinds(
    change: &RecordBatch,
) -> Result<impl Iterator<Item = Result<RowKind>> + '_> {
    Ok(kind_column(change)?.values().iter().map(|k| {
        RowKind::from_byte(*k)
            .ok_or_else(|| SqlError::Corrupt(format!("unknown row kind {k} in a change file")))
    }))
}
