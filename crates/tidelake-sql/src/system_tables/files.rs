//! System tables over a snapshot's live data files: `$files` (one row per
//! file), `$partitions` and `$buckets` (the files summed up).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use tidelake_engine::introspect::{
    data_file_uri, decode_row, value_text, DataFileMeta, Snapshot, ValueText,
};
use tidelake_engine::stats::decode_stats;
use tidelake_engine::{DataType, Datum, ScanPlan, Table, TableSchema};

use super::metadata::{
    longs, opt_longs, opt_strings, partition_types, strings, times, timestamp_type,
};
use crate::catalog::{resolve_travel, TimeTravel};
use crate::error::Result;

/// The snapshot a system table shows: the latest, or the one `travel` names.
pub(super) async fn travel_snapshot(
    table: &Table,
    travel: Option<&TimeTravel>,
) -> Result<Option<Snapshot>> {
    let Some(travel) = travel else {
        return Ok(table.snapshots().latest_snapshot().await?);
    };
    let resolved = resolve_travel(table, travel).await?;
    Ok(match resolved.tag {
        Some(tag) => table.tag(&tag).await?,
        None => table.snapshots().snapshot(resolved.snapshot_id).await?,
    })
}

/// The live files of the snapshot, grouped by partition and bucket.
async fn plan(table: &Table, travel: Option<&TimeTravel>) -> Result<ScanPlan> {
    let mut builder = table.scan().with_projection(Some(Vec::new()));
    if let Some(travel) = travel {
        let resolved = resolve_travel(table, travel).await?;
        builder = builder.with_snapshot(Some(resolved.snapshot_id));
        if let Some(tag) = resolved.tag {
            builder = builder.with_tag(tag);
        }
    }
    Ok(builder.plan().await?)
}

/// A serialized row as Paimon's `CAST(row AS STRING)`: `{v1, v2}`; None
/// when it does not decode.
pub(super) fn row_string(bytes: &[u8], types: &[DataType]) -> Option<String> {
    let values = decode_row(bytes, types).ok()?;
    let parts: Vec<String> = values
        .iter()
        .zip(types)
        .map(|(v, t)| value_text(v, t, ValueText::Sql).unwrap_or_else(|| "null".to_string()))
        .collect();
    Some(format!("{{{}}}", parts.join(", ")))
}

/// Schemas by id, read once each (files carry the id they were written with).
struct Schemas<'a> {
    table: &'a Table,
    cache: HashMap<i64, Arc<TableSchema>>,
}

impl Schemas<'_> {
    async fn get(&mut self, id: i64) -> Result<Arc<TableSchema>> {
        if let Some(s) = self.cache.get(&id) {
            return Ok(s.clone());
        }
        let schema = if id == self.table.schema().id {
            Arc::new(self.table.schema().clone())
        } else {
            Arc::new(self.table.snapshots().schema(id).await?)
        };
        self.cache.insert(id, schema.clone());
        Ok(schema)
    }
}

fn types_of(schema: &TableSchema, names: &[String]) -> Option<Vec<DataType>> {
    names
        .iter()
        .map(|n| schema.field(n).map(|f| f.data_type.clone()))
        .collect()
}

/// `[k1, k2]` as Java's `Arrays.toString` of the key's internal values.
fn key_string(bytes: &[u8], schema: &TableSchema) -> Option<String> {
    let keys = schema.trimmed_primary_keys();
    if schema.primary_keys.is_empty() || keys.is_empty() {
        return None;
    }
    let types = types_of(schema, &keys)?;
    let values = decode_row(bytes, &types).ok()?;
    let parts: Vec<String> = values
        .iter()
        .zip(&types)
        .map(|(v, t)| value_text(v, t, ValueText::Internal).unwrap_or_else(|| "null".into()))
        .collect();
    Some(format!("[{}]", parts.join(", ")))
}

/// Null counts, minimums and maximums by column name, as Java prints a
/// `TreeMap`: `{a=1, b=x}`.
fn value_stats(file: &DataFileMeta, schema: &TableSchema) -> [Option<String>; 3] {
    let names: Vec<String> = match &file.value_stats_cols {
        Some(cols) => cols.clone(),
        None => schema.fields.iter().map(|f| f.name.clone()).collect(),
    };
    let Some(types) = types_of(schema, &names) else {
        return [None, None, None];
    };
    let Some(stats) = decode_stats(&file.value_stats, &types) else {
        return [None, None, None];
    };
    let mut nulls = BTreeMap::new();
    let mut mins = BTreeMap::new();
    let mut maxs = BTreeMap::new();
    for ((name, ty), s) in names.iter().zip(&types).zip(&stats) {
        let text =
            |v: &Datum| value_text(v, ty, ValueText::Internal).unwrap_or_else(|| "null".into());
        let count = if s.null_count < 0 {
            "null".to_string()
        } else {
            s.null_count.to_string()
        };
        nulls.insert(name.as_str(), count);
        mins.insert(name.as_str(), text(&s.min));
        maxs.insert(name.as_str(), text(&s.max));
    }
    let render = |m: BTreeMap<&str, String>| {
        let parts: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        Some(format!("{{{}}}", parts.join(", ")))
    };
    [render(nulls), render(mins), render(maxs)]
}

/// One row of `$files`.
struct FileRow {
    partition: Option<String>,
    bucket: i32,
    path: String,
    format: String,
    file: DataFileMeta,
    min_key: Option<String>,
    max_key: Option<String>,
    stats: [Option<String>; 3],
}

/// `table$files`: every live data file of the snapshot.
pub(super) async fn files(table: &Table, travel: Option<&TimeTravel>) -> Result<RecordBatch> {
    let plan = plan(table, travel).await?;
    let partition_types = partition_types(table);
    let mut schemas = Schemas {
        table,
        cache: HashMap::new(),
    };
    let mut rows = Vec::new();
    for split in plan.splits() {
        let partition = row_string(&split.partition, &partition_types);
        for file in &split.files {
            let schema = schemas.get(file.schema_id).await?;
            rows.push(FileRow {
                partition: partition.clone(),
                bucket: split.bucket,
                path: data_file_uri(table, &split.partition_path, split.bucket, file),
                format: file
                    .file_name
                    .rsplit_once('.')
                    .map(|(_, ext)| ext.to_string())
                    .unwrap_or_default(),
                min_key: key_string(&file.min_key, &schema),
                max_key: key_string(&file.max_key, &schema),
                stats: value_stats(file, &schema),
                file: file.clone(),
            });
        }
    }
    let r = &rows;
    let fields = vec![
        Field::new("partition", ArrowType::Utf8, true),
        Field::new("bucket", ArrowType::Int32, false),
        Field::new("file_path", ArrowType::Utf8, false),
        Field::new("file_format", ArrowType::Utf8, false),
        Field::new("schema_id", ArrowType::Int64, false),
        Field::new("level", ArrowType::Int32, false),
        Field::new("record_count", ArrowType::Int64, false),
        Field::new("file_size_in_bytes", ArrowType::Int64, false),
        Field::new("min_key", ArrowType::Utf8, true),
        Field::new("max_key", ArrowType::Utf8, true),
        Field::new("null_value_counts", ArrowType::Utf8, true),
        Field::new("min_value_stats", ArrowType::Utf8, true),
        Field::new("max_value_stats", ArrowType::Utf8, true),
        Field::new("min_sequence_number", ArrowType::Int64, true),
        Field::new("max_sequence_number", ArrowType::Int64, true),
        Field::new("creation_time", timestamp_type(), true),
        // Paimon's own spelling.
        Field::new("deleteRowCount", ArrowType::Int64, true),
        Field::new("file_source", ArrowType::Utf8, true),
        Field::new("first_row_id", ArrowType::Int64, true),
    ];
    let ints = |f: &dyn Fn(&FileRow) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(r.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        opt_strings(r.iter().map(|x| x.partition.clone())),
        ints(&|x| x.bucket),
        strings(r.iter().map(|x| x.path.as_str())),
        strings(r.iter().map(|x| x.format.as_str())),
        longs(r.iter().map(|x| x.file.schema_id)),
        ints(&|x| x.file.level),
        longs(r.iter().map(|x| x.file.row_count)),
        longs(r.iter().map(|x| x.file.file_size)),
        opt_strings(r.iter().map(|x| x.min_key.clone())),
        opt_strings(r.iter().map(|x| x.max_key.clone())),
        opt_strings(r.iter().map(|x| x.stats[0].clone())),
        opt_strings(r.iter().map(|x| x.stats[1].clone())),
        opt_strings(r.iter().map(|x| x.stats[2].clone())),
        opt_longs(r.iter().map(|x| Some(x.file.min_sequence_number))),
        opt_longs(r.iter().map(|x| Some(x.file.max_sequence_number))),
        times(r.iter().map(|x| x.file.creation_time)),
        opt_longs(r.iter().map(|x| x.file.delete_row_count)),
        opt_strings(r.iter().map(|x| x.file.file_source.map(file_source))),
        opt_longs(r.iter().map(|x| x.file.first_row_id)),
    ];
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Paimon's `FileSource` enum by its stored byte.
fn file_source(code: i32) -> String {
    match code {
        0 => "APPEND".to_string(),
        1 => "COMPACT".to_string(),
        other => other.to_string(),
    }
}

/// Record count, size, file count and newest file time of some files.
#[derive(Default)]
struct Totals {
    records: i64,
    bytes: i64,
    files: i64,
    last_update: Option<i64>,
}

impl Totals {
    fn add(&mut self, files: &[DataFileMeta]) {
        for f in files {
            self.records += f.row_count;
            self.bytes += f.file_size;
            self.files += 1;
            if let Some(t) = f.creation_time {
                self.last_update = Some(self.last_update.map_or(t, |l: i64| l.max(t)));
            }
        }
    }
}

fn totals_fields() -> Vec<Field> {
    vec![
        Field::new("record_count", ArrowType::Int64, false),
        Field::new("file_size_in_bytes", ArrowType::Int64, false),
        Field::new("file_count", ArrowType::Int64, false),
        Field::new("last_update_time", timestamp_type(), true),
    ]
}

fn totals_columns<'a>(totals: impl Iterator<Item = &'a Totals> + Clone) -> Vec<ArrayRef> {
    vec![
        longs(totals.clone().map(|t| t.records)),
        longs(totals.clone().map(|t| t.bytes)),
        longs(totals.clone().map(|t| t.files)),
        times(totals.map(|t| t.last_update)),
    ]
}

/// `table$partitions`: one row per partition with live files, by its
/// `k1=v1/k2=v2` name (NULL values as `partition.default-name`).
pub(super) async fn partitions(table: &Table, travel: Option<&TimeTravel>) -> Result<RecordBatch> {
    let plan = plan(table, travel).await?;
    let keys = &table.schema().partition_keys;
    let types = partition_types(table);
    let default_name = &table.options().partition_default_name;
    let mut by_partition: BTreeMap<String, Totals> = BTreeMap::new();
    for split in plan.splits() {
        let name = keys
            .iter()
            .zip(&split.partition_values)
            .zip(&types)
            .map(|((k, v), t)| {
                let text = value_text(v, t, ValueText::Sql);
                format!("{k}={}", text.as_deref().unwrap_or(default_name))
            })
            .collect::<Vec<_>>()
            .join("/");
        by_partition.entry(name).or_default().add(&split.files);
    }
    let mut fields = vec![Field::new("partition", ArrowType::Utf8, true)];
    fields.extend(totals_fields());
    let mut columns = vec![strings(by_partition.keys().map(String::as_str))];
    columns.extend(totals_columns(by_partition.values()));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// `table$buckets`: one row per bucket with live files, by partition
/// (`{v1, v2}`) then bucket.
pub(super) async fn buckets(table: &Table, travel: Option<&TimeTravel>) -> Result<RecordBatch> {
    let plan = plan(table, travel).await?;
    let types = partition_types(table);
    let mut by_bucket: BTreeMap<(Option<String>, i32), Totals> = BTreeMap::new();
    for split in plan.splits() {
        let partition = row_string(&split.partition, &types);
        by_bucket
            .entry((partition, split.bucket))
            .or_default()
            .add(&split.files);
    }
    let mut fields = vec![
        Field::new("partition", ArrowType::Utf8, true),
        Field::new("bucket", ArrowType::Int32, false),
    ];
    fields.extend(totals_fields());
    let mut columns: Vec<ArrayRef> = vec![
        opt_strings(by_bucket.keys().map(|k| k.0.clone())),
        Arc::new(Int32Array::from_iter_values(by_bucket.keys().map(|k| k.1))),
    ];
    columns.extend(totals_columns(by_bucket.values()));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
