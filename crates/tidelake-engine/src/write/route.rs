//! Routing rows to their partition and bucket.

use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use std::collections::HashMap;
use tidelake_format::binary_row::{
    datum_from_arrow, encode_arrow_row_into, serialize_binary_row, Datum,
};
use tidelake_format::bucket::{compute_buckets, hash_binary_row};
use tidelake_format::path::partition_path_with_legacy_name;

use crate::error::{EngineError, Result};
use crate::table::Table;

/// Rows of one batch that go to one bucket.
pub(crate) struct RouteGroup {
    pub partition: Vec<u8>,
    pub partition_path: String,
    pub bucket: i32,
    pub indices: UInt32Array,
}

/// Checks a batch against the table's columns (count, types, NOT NULL) and
/// returns it with the table's Arrow schema. Types are cast where Arrow can
/// do so without loss of meaning; anything else is a clear error.
pub(crate) fn conform(table: &Table, batch: RecordBatch) -> Result<RecordBatch> {
    let schema = table.arrow_schema();
    if batch.num_columns() != schema.fields().len() {
        return Err(EngineError::ColumnCountMismatch {
            table: table.id.to_string(),
            expected: schema.fields().len(),
            given: batch.num_columns(),
        });
    }
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        let col = if col.data_type() == field.data_type() {
            col.clone()
        } else {
            let options = arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            arrow::compute::cast_with_options(col, field.data_type(), &options).map_err(|e| {
                EngineError::TypeMismatch {
                    table: table.id.to_string(),
                    column: field.name().clone(),
                    expected: field.data_type().to_string(),
                    given: col.data_type().to_string(),
                    detail: e.to_string(),
                }
            })?
        };
        if !field.is_nullable() && col.null_count() > 0 {
            return Err(EngineError::invalid(format!(
                "column '{}' of table '{}' is NOT NULL, but a row has NULL there",
                field.name(),
                table.id
            )));
        }
        cols.push(col);
    }
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// Splits a conformed batch into groups by (partition, bucket).
pub(crate) fn route(table: &Table, batch: &RecordBatch) -> Result<Routing> {
    let layout = &table.layout;
    let n = batch.num_rows();
    // Partition of every row, as a small group number.
    let (partition_of_row, partitions) = if layout.partition_indices.is_empty() {
        (
            vec![0u32; n],
            vec![(serialize_binary_row(&[], &[])?, String::new())],
        )
    } else {
        let cols: Vec<ArrayRef> = layout
            .partition_indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let converter = RowConverter::new(
            cols.iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(&cols)?;
        let mut ids: HashMap<&[u8], u32> = HashMap::new();
        let mut firsts = Vec::new();
        let mut of_row = Vec::with_capacity(n);
        for r in 0..n {
            let next = ids.len() as u32;
            let id = *ids.entry(rows.row(r).data()).or_insert_with(|| {
                firsts.push(r);
                next
            });
            of_row.push(id);
        }
        let names = &layout.schema.partition_keys;
        let mut parts = Vec::with_capacity(firsts.len());
        for r in firsts {
            let datums = cols
                .iter()
                .zip(&layout.partition_types)
                .map(|(c, ty)| datum_from_arrow(c.as_ref(), r, ty))
                .collect::<Result<Vec<Datum>, _>>()?;
            let path = partition_path_with_legacy_name(
                names,
                &datums,
                &layout.partition_types,
                &layout.options.partition_default_name,
                layout.options.partition_legacy_name,
            )?;
            parts.push((
                serialize_binary_row(&datums, &layout.partition_types)?,
                path,
            ));
        }
        (of_row, parts)
    };
    let (buckets, key_hashes) = if layout.options.bucket > 0 {
        let cols: Vec<&dyn Array> = layout
            .bucket_key_indices
            .iter()
            .map(|&i| batch.column(i).as_ref())
            .collect();
        (
            compute_buckets(&cols, &layout.bucket_key_types, layout.options.bucket)?,
            None,
        )
    } else if layout.is_primary_key() {
        (vec![0; n], Some(key_hashes(table, batch)?))
    } else {
        (vec![0; n], None)
    };
    Ok(Routing {
        partitions,
        partition_of_row,
        buckets,
        key_hashes,
    })
}

/// Where each row of a batch goes; `buckets` is final unless `key_hashes`
/// is set (dynamic buckets), in which case the writer assigns them.
pub(crate) struct Routing {
    pub partitions: Vec<(Vec<u8>, String)>,
    pub partition_of_row: Vec<u32>,
    pub buckets: Vec<i32>,
    pub key_hashes: Option<Vec<i32>>,
}

/// Hash of each row's trimmed primary key, as Paimon computes it.
fn key_hashes(table: &Table, batch: &RecordBatch) -> Result<Vec<i32>> {
    let layout = &table.layout;
    let cols: Vec<&dyn Array> = layout
        .key_indices
        .iter()
        .map(|&i| batch.column(i).as_ref())
        .collect();
    // One buffer for every row's key: no allocation per row.
    let mut row_bytes = Vec::with_capacity(64);
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        encode_arrow_row_into(&cols, &layout.key_types, r, &mut row_bytes)?;
        out.push(hash_binary_row(&row_bytes));
    }
    Ok(out)
}

/// Groups rows by (partition, bucket).
pub(crate) fn group(routing: &Routing) -> Vec<RouteGroup> {
    let partition_of_row = &routing.partition_of_row;
    let buckets = &routing.buckets;
    let partitions = &routing.partitions;
    let n = partition_of_row.len();
    let mut groups: HashMap<(u32, i32), Vec<u32>> = HashMap::new();
    for r in 0..n {
        groups
            .entry((partition_of_row[r], buckets[r]))
            .or_default()
            .push(r as u32);
    }
    let mut out: Vec<RouteGroup> = groups
        .into_iter()
        .map(|((p, bucket), idx)| RouteGroup {
            partition: partitions[p as usize].0.clone(),
            partition_path: partitions[p as usize].1.clone(),
            bucket,
            indices: UInt32Array::from(idx),
        })
        .collect();
    out.sort_by(|a, b| (&a.partition, a.bucket).cmp(&(&b.partition, b.bucket)));
    out
}
