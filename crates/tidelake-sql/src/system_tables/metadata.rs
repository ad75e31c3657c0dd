//! System tables read from metadata files: `$snapshots`, `$schemas`,
//! `$options`, `$tags`, `$branches`, `$consumers` and `$manifests`.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
use tidelake_engine::introspect::{list_tag_infos, manifest_store, schema_json, Snapshot};
use tidelake_engine::Table;

use super::files::{row_string, travel_snapshot};
use crate::catalog::TimeTravel;
use crate::error::Result;

pub(super) fn timestamp_type() -> ArrowType {
    ArrowType::Timestamp(TimeUnit::Millisecond, None)
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

pub(super) fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

pub(super) fn opt_strings(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

pub(super) fn longs(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

pub(super) fn opt_longs(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(values))
}

pub(super) fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter(values))
}

/// `table$snapshots`: one row per snapshot still present, oldest first.
pub(super) async fn snapshots(table: &Table) -> Result<RecordBatch> {
    let reader = table.snapshots();
    let mut snapshots: Vec<Snapshot> = Vec::new();
    for id in reader.list_snapshot_ids().await? {
        // A snapshot may expire between listing and reading.
        if let Some(s) = reader.snapshot(id).await? {
            snapshots.push(s);
        }
    }
    let s = &snapshots;
    batch(
        vec![
            Field::new("snapshot_id", ArrowType::Int64, false),
            Field::new("schema_id", ArrowType::Int64, false),
            Field::new("commit_user", ArrowType::Utf8, false),
            Field::new("commit_identifier", ArrowType::Int64, false),
            Field::new("commit_kind", ArrowType::Utf8, false),
            Field::new("commit_time", timestamp_type(), false),
            Field::new("base_manifest_list", ArrowType::Utf8, false),
            Field::new("delta_manifest_list", ArrowType::Utf8, false),
            Field::new("changelog_manifest_list", ArrowType::Utf8, true),
            Field::new("total_record_count", ArrowType::Int64, true),
            Field::new("delta_record_count", ArrowType::Int64, true),
            Field::new("changelog_record_count", ArrowType::Int64, true),
            Field::new("watermark", ArrowType::Int64, true),
            Field::new("next_row_id", ArrowType::Int64, true),
            // Not in Paimon's table: the snapshot's properties as a JSON
            // object (jobs' progress, statement retries), NULL when none.
            Field::new("properties", ArrowType::Utf8, true),
        ],
        vec![
            longs(s.iter().map(|s| s.id)),
            longs(s.iter().map(|s| s.schema_id)),
            strings(s.iter().map(|s| s.commit_user.as_str())),
            longs(s.iter().map(|s| s.commit_identifier)),
            opt_strings(s.iter().map(|s| Some(commit_kind(s)))),
            times(s.iter().map(|s| Some(s.time_millis))),
            strings(s.iter().map(|s| s.base_manifest_list.as_str())),
            strings(s.iter().map(|s| s.delta_manifest_list.as_str())),
            opt_strings(s.iter().map(|s| s.changelog_manifest_list.clone())),
            opt_longs(s.iter().map(|s| s.total_record_count)),
            opt_longs(s.iter().map(|s| s.delta_record_count)),
            opt_longs(s.iter().map(|s| s.changelog_record_count)),
            opt_longs(s.iter().map(|s| s.watermark)),
            opt_longs(s.iter().map(|s| s.next_row_id)),
            opt_strings(s.iter().map(|s| {
                s.properties
                    .as_ref()
                    .and_then(|p| serde_json::to_string(p).ok())
            })),
        ],
    )
}

/// `APPEND`, `COMPACT`, ... as Java's enum names.
fn commit_kind(s: &Snapshot) -> String {
    format!("{:?}", s.commit_kind).to_uppercase()
}

/// `table$schemas`: every schema version, oldest first.
pub(super) async fn schemas(table: &Table) -> Result<RecordBatch> {
    let reader = table.snapshots();
    let mut schemas = Vec::new();
    for id in reader.list_schema_ids().await? {
        schemas.push(reader.schema(id).await?);
    }
    let json: Vec<_> = schemas.iter().map(schema_json).collect();
    batch(
        vec![
            Field::new("schema_id", ArrowType::Int64, false),
            Field::new("fields", ArrowType::Utf8, false),
            Field::new("partition_keys", ArrowType::Utf8, false),
            Field::new("primary_keys", ArrowType::Utf8, false),
            Field::new("options", ArrowType::Utf8, false),
            Field::new("comment", ArrowType::Utf8, true),
            Field::new("update_time", timestamp_type(), false),
        ],
        vec![
            longs(schemas.iter().map(|s| s.id)),
            strings(json.iter().map(|j| j.fields.as_str())),
            strings(json.iter().map(|j| j.partition_keys.as_str())),
            strings(json.iter().map(|j| j.primary_keys.as_str())),
            strings(json.iter().map(|j| j.options.as_str())),
            opt_strings(schemas.iter().map(|s| s.comment.clone())),
            times(schemas.iter().map(|s| Some(s.time_millis))),
        ],
    )
}

/// `table$options`: the options of the current schema, by key.
pub(super) fn options(table: &Table) -> Result<RecordBatch> {
    let options = &table.schema().options;
    batch(
        vec![
            Field::new("key", ArrowType::Utf8, false),
            Field::new("value", ArrowType::Utf8, false),
        ],
        vec![
            strings(options.keys().map(String::as_str)),
            strings(options.values().map(String::as_str)),
        ],
    )
}

/// `table$tags`: every tag, by snapshot id then name.
pub(super) async fn tags(table: &Table) -> Result<RecordBatch> {
    let tags = list_tag_infos(table).await?;
    batch(
        vec![
            Field::new("tag_name", ArrowType::Utf8, false),
            Field::new("snapshot_id", ArrowType::Int64, false),
            Field::new("schema_id", ArrowType::Int64, false),
            Field::new("commit_time", timestamp_type(), false),
            Field::new("record_count", ArrowType::Int64, true),
            Field::new("create_time", timestamp_type(), true),
            Field::new("time_retained", ArrowType::Utf8, true),
        ],
        vec![
            strings(tags.iter().map(|t| t.name.as_str())),
            longs(tags.iter().map(|t| t.snapshot.id)),
            longs(tags.iter().map(|t| t.snapshot.schema_id)),
            times(tags.iter().map(|t| Some(t.snapshot.time_millis))),
            opt_longs(tags.iter().map(|t| t.snapshot.total_record_count)),
            times(tags.iter().map(|t| t.create_time_millis)),
            opt_strings(tags.iter().map(|t| t.time_retained.clone())),
        ],
    )
}

/// `table$consumers`: streaming readers' progress, by consumer id.
pub(super) async fn consumers(table: &Table) -> Result<RecordBatch> {
    let consumers = table.list_consumers().await?;
    batch(
        vec![
            Field::new("consumer_id", ArrowType::Utf8, false),
            Field::new("next_snapshot_id", ArrowType::Int64, false),
        ],
        vec![
            strings(consumers.iter().map(|c| c.0.as_str())),
            longs(consumers.iter().map(|c| c.1)),
        ],
    )
}

/// `table$branches`: the table's branches (main is not one), by name.
pub(super) async fn branches(table: &Table) -> Result<RecordBatch> {
    let branches = table.list_branches().await?;
    batch(
        vec![
            Field::new("branch_name", ArrowType::Utf8, false),
            Field::new("create_time", timestamp_type(), true),
        ],
        vec![
            strings(branches.iter().map(|b| b.name.as_str())),
            times(branches.iter().map(|b| b.create_time_millis)),
        ],
    )
}

/// `table$manifests`: the manifests of a snapshot (base, delta, then
/// changelog), with their partition statistics as `{v1, v2}`.
pub(super) async fn manifests(table: &Table, travel: Option<&TimeTravel>) -> Result<RecordBatch> {
    let mut metas = Vec::new();
    if let Some(snapshot) = travel_snapshot(table, travel).await? {
        let store = manifest_store(table)?;
        metas = store.data_manifests(&snapshot).await?;
        if let Some(changelog) = &snapshot.changelog_manifest_list {
            metas.extend(store.read_list(changelog).await?);
        }
    }
    let types: Vec<_> = partition_types(table);
    let stats = |min: bool| {
        metas
            .iter()
            .map(|m| {
                let bytes = if min {
                    &m.partition_stats.min_values
                } else {
                    &m.partition_stats.max_values
                };
                row_string(bytes, &types)
            })
            .collect::<Vec<_>>()
    };
    let (mins, maxs) = (stats(true), stats(false));
    batch(
        vec![
            Field::new("file_name", ArrowType::Utf8, false),
            Field::new("file_size", ArrowType::Int64, false),
            Field::new("num_added_files", ArrowType::Int64, false),
            Field::new("num_deleted_files", ArrowType::Int64, false),
            Field::new("schema_id", ArrowType::Int64, false),
            Field::new("min_partition_stats", ArrowType::Utf8, true),
            Field::new("max_partition_stats", ArrowType::Utf8, true),
            Field::new("min_row_id", ArrowType::Int64, true),
            Field::new("max_row_id", ArrowType::Int64, true),
        ],
        vec![
            strings(metas.iter().map(|m| m.file_name.as_str())),
            longs(metas.iter().map(|m| m.file_size)),
            longs(metas.iter().map(|m| m.num_added_files)),
            longs(metas.iter().map(|m| m.num_deleted_files)),
            longs(metas.iter().map(|m| m.schema_id)),
            opt_strings(mins.into_iter()),
            opt_strings(maxs.into_iter()),
            opt_longs(metas.iter().map(|m| m.min_row_id)),
            opt_longs(metas.iter().map(|m| m.max_row_id)),
        ],
    )
}

/// The types of the table's partition columns, in key order.
pub(super) fn partition_types(table: &Table) -> Vec<tidelake_engine::DataType> {
    let schema = table.schema();
    schema
        .partition_keys
        .iter()
        .filter_map(|k| schema.field(k).map(|f| f.data_type.clone()))
        .collect()
}
