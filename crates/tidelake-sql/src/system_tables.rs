//! Read-only views of a table's metadata, named like Paimon's system
//! tables: `orders$snapshots` lists the snapshots (what `VERSION AS OF`
//! can read).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use tidelake_engine::Table;

use crate::error::Result;

/// The suffix that names a table's snapshot list.
pub const SNAPSHOTS_SUFFIX: &str = "$snapshots";

/// `table$snapshots`: one row per snapshot still present, oldest first.
pub(crate) async fn snapshots_table(table: &Table) -> Result<MemTable> {
    let reader = table.snapshots();
    let mut snapshots = Vec::new();
    for id in reader.list_snapshot_ids().await? {
        // A snapshot may expire between listing and reading.
        if let Some(s) = reader.snapshot(id).await? {
            snapshots.push(s);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("snapshot_id", ArrowType::Int64, false),
        Field::new("schema_id", ArrowType::Int64, false),
        Field::new("commit_kind", ArrowType::Utf8, false),
        Field::new(
            "commit_time",
            ArrowType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("total_record_count", ArrowType::Int64, true),
        Field::new("delta_record_count", ArrowType::Int64, true),
        Field::new("commit_user", ArrowType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(snapshots.iter().map(|s| s.id))),
        Arc::new(Int64Array::from_iter_values(
            snapshots.iter().map(|s| s.schema_id),
        )),
        Arc::new(StringArray::from_iter_values(
            snapshots
                .iter()
                .map(|s| format!("{:?}", s.commit_kind).to_uppercase()),
        )),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            snapshots.iter().map(|s| s.time_millis),
        )),
        Arc::new(Int64Array::from_iter(
            snapshots.iter().map(|s| s.total_record_count),
        )),
        Arc::new(Int64Array::from_iter(
            snapshots.iter().map(|s| s.delta_record_count),
        )),
        Arc::new(StringArray::from_iter_values(
            snapshots.iter().map(|s| s.commit_user.as_str()),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}
