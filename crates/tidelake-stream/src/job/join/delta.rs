//! One step of a join of two streams, computed from pinned versions of the
//! two tables: which keys changed, the rows of a version with those keys,
//! and the difference of two query results as sink rows.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::logical_expr::{ident, JoinType};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use tidelake_engine::{ChangeReader, ChangeSource, RowKind, StartMode, StreamOptions, Table};

use crate::job::exec::SinkMapping;
use tidelake_sql::TidelakeTable;
use tidelake_sql::{Result, SqlError};

/// The keys a run of snapshots touched.
pub(crate) struct Touched {
    /// Key columns named `__k0..`, one row per written row (repeats kept).
    pub keys: Option<RecordBatch>,
    /// The next snapshot to read after them.
    pub next: i64,
    /// Snapshots that carried changes.
    pub snapshots: u64,
    pub rows: u64,
}

fn key_name(i: usize) -> String {
    format!("__tidelake_k{i}")
}

/// Batches of `columns` of `batch`, renamed `__k0..` and cast to `types`.
fn key_batch(batch: &RecordBatch, columns: &[String], types: &[DataType]) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, (column, ty)) in columns.iter().zip(types).enumerate() {
        let array = batch.column_by_name(column).ok_or_else(|| {
            SqlError::Internal(format!("column '{column}' missing from a batch of changes"))
        })?;
        let array = if array.data_type() == ty {
            array.clone()
        } else {
            cast(array, ty)?
        };
        fields.push(Field::new(key_name(i), ty.clone(), true));
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

fn concat(schema: Option<SchemaRef>, batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
    let Some(schema) = schema.or_else(|| batches.first().map(|b| b.schema())) else {
        return Ok(None);
    };
    let all = concat_batches(&schema, batches)?;
    Ok((all.num_rows() > 0).then_some(all))
}

/// Types of `columns` in `table`.
pub(crate) fn column_types(table: &Table, columns: &[String]) -> Result<Vec<DataType>> {
    let schema = table.arrow_schema();
    columns
        .iter()
        .map(|c| {
            schema
                .field_with_name(c)
                .map(|f| f.data_type().clone())
                .map_err(|_| {
                    SqlError::Internal(format!(
                        "table '{}' has no column '{c}'",
                        table.identifier()
                    ))
                })
        })
        .collect()
}

/// Reads the changes of `table` from snapshot `from` on (at most `max_wait`
/// of reading) and keeps their primary keys. The files each snapshot added
/// are read, not a changelog: every written key shows in its own snapshot.
pub(crate) async fn touched_keys(table: &Table, from: i64, max_wait: Duration) -> Result<Touched> {
    let options = StreamOptions {
        mode: StartMode::FromSnapshot(from),
        read_overwrite: true,
        ..StreamOptions::default()
    };
    let mut reader = ChangeReader::open(table.clone(), options)
        .await?
        .reading_data_files();
    let keys = table.primary_keys().to_vec();
    let types = column_types(table, &keys)?;
    let started = Instant::now();
    let mut batches = Vec::new();
    let mut snapshots = 0;
    let mut rows = 0;
    while let Some(changes) = reader.next_changes().await? {
        if changes.source != ChangeSource::Skipped {
            snapshots += 1;
        }
        let mut stream = changes.batches;
        while let Some(batch) = stream.try_next().await? {
            if batch.num_rows() > 0 {
                rows += batch.num_rows() as u64;
                batches.push(key_batch(&batch, &keys, &types)?);
            }
        }
        if started.elapsed() >= max_wait {
            break;
        }
    }
    Ok(Touched {
        keys: concat(None, &batches)?,
        next: reader.position(),
        snapshots,
        rows,
    })
}

/// `table` as of snapshot `id`; before its first snapshot (`id` < 1) it is
/// empty. A snapshot that is gone is an error naming it: the job's output
/// would be wrong without it.
pub(crate) async fn table_at(
    table: &Table,
    id: i64,
    job: &str,
    consumer: &str,
) -> Result<Arc<dyn TableProvider>> {
    if id < 1 {
        return Ok(Arc::new(MemTable::try_new(
            table.arrow_schema(),
            vec![Vec::new()],
        )?));
    }
    if table.snapshots().snapshot(id).await?.is_none() {
        let earliest = table.snapshots().earliest_snapshot_id().await?;
        return Err(SqlError::InvalidParameter(format!(
            "job '{job}' needs snapshot {id} of '{}' (the version its sink reflects), which no longer exists (earliest: {}); it was expired although consumer '{consumer}' should have kept it: rebuild the sink (truncate it and remove the job's progress by recreating it) and restart the job",
            table.identifier(),
            earliest.map_or("none".to_string(), |e| e.to_string())
        )));
    }
    Ok(Arc::new(TidelakeTable::new(table.clone(), Some(id))))
}

/// The rows of `version` whose `columns` equal a row of `keys` (columns
/// `__k0..` of the same types), collected into a memory table.
pub(crate) async fn rows_matching(
    ctx: &SessionContext,
    version: Arc<dyn TableProvider>,
    columns: &[String],
    keys: &RecordBatch,
) -> Result<Arc<dyn TableProvider>> {
    let rows = ctx.read_table(version)?;
    let schema: SchemaRef = Arc::new(rows.schema().as_arrow().clone());
    let keys = ctx.read_batch(keys.clone())?;
    let on: Vec<_> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| ident(c).eq(ident(key_name(i))))
        .collect();
    let matched: DataFrame = rows.join_on(keys, JoinType::LeftSemi, on)?;
    let batches = matched.collect().await?;
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// The join columns of both versions of the other side's changed rows, as
/// key batches (`__k0..`) typed like the driver's join columns.
pub(crate) async fn join_values(
    ctx: &SessionContext,
    versions: [Arc<dyn TableProvider>; 2],
    columns: &[String],
    types: &[DataType],
) -> Result<Option<RecordBatch>> {
    let mut batches = Vec::new();
    for version in versions {
        for batch in ctx.read_table(version)?.collect().await? {
            if batch.num_rows() > 0 {
                batches.push(key_batch(&batch, columns, types)?);
            }
        }
    }
    concat(None, &batches)
}

/// Sink rows and kinds that turn the `old` result of the query into the
/// `new` one: `-D` for each old row whose sink key is not in the new
/// result, then `+I` for each new row that is not exactly an old row. A
/// sink key identifies one output row (checked at planning), and the
/// writer's sequence order makes a later row of a key win.
pub(crate) fn difference(
    mapping: &SinkMapping,
    sink_key: &[usize],
    old: &[RecordBatch],
    new: &[RecordBatch],
) -> Result<Option<(RecordBatch, Vec<RowKind>)>> {
    let to_sink = |batches: &[RecordBatch]| -> Result<Option<RecordBatch>> {
        let mapped = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| mapping.sink_batch(b, 0))
            .collect::<Result<Vec<_>>>()?;
        concat(None, &mapped)
    };
    let old = to_sink(old)?;
    let new = to_sink(new)?;
    let Some(reference) = new.as_ref().or(old.as_ref()) else {
        return Ok(None);
    };
    let types: Vec<DataType> = reference
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let all: Vec<usize> = (0..types.len()).collect();
    let rows_of = |batch: &RecordBatch, columns: &[usize]| -> Result<Vec<Vec<u8>>> {
        let converter = RowConverter::new(
            columns
                .iter()
                .map(|i| SortField::new(types[*i].clone()))
                .collect(),
        )?;
        let arrays = columns
            .iter()
            .map(|i| {
                let a = batch.column(*i);
                if a.data_type() == &types[*i] {
                    Ok(a.clone())
                } else {
                    Ok(cast(a, &types[*i])?)
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let rows = converter.convert_columns(&arrays)?;
        Ok(rows.iter().map(|r| r.as_ref().to_vec()).collect())
    };
    let new_keys: HashSet<Vec<u8>> = match &new {
        Some(n) => rows_of(n, sink_key)?.into_iter().collect(),
        None => HashSet::new(),
    };
    let old_rows: HashSet<Vec<u8>> = match &old {
        Some(o) => rows_of(o, &all)?.into_iter().collect(),
        None => HashSet::new(),
    };
    let mut parts = Vec::new();
    let mut kinds = Vec::new();
    if let Some(old) = &old {
        let gone: datafusion::arrow::array::BooleanArray = rows_of(old, sink_key)?
            .iter()
            .map(|k| Some(!new_keys.contains(k)))
            .collect();
        let deletes = filter_record_batch(old, &gone)?;
        kinds.extend(std::iter::repeat_n(RowKind::Delete, deletes.num_rows()));
        parts.push(deletes);
    }
    if let Some(new) = &new {
        let changed: datafusion::arrow::array::BooleanArray = rows_of(new, &all)?
            .iter()
            .map(|r| Some(!old_rows.contains(r)))
            .collect();
        let upserts = filter_record_batch(new, &changed)?;
        kinds.extend(std::iter::repeat_n(RowKind::Insert, upserts.num_rows()));
        parts.push(upserts);
    }
    let parts: Vec<RecordBatch> = parts
        .into_iter()
        .map(|p| align(p, reference.schema()))
        .collect::<Result<_>>()?;
    Ok(concat(Some(reference.schema()), &parts)?.map(|batch| (batch, kinds)))
}

/// `batch` with `schema`'s types (old and new results differ at most in
/// how a type was inferred for an empty input).
fn align(batch: RecordBatch, schema: SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == schema {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                Ok(cast(c, f.data_type())?)
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    fn output(ids: &[i64], names: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_difference_deletes_vanished_keys_and_upserts_changed_rows() {
        let mapping = SinkMapping {
            columns: vec![Some(0), Some(1)],
            sink_schema: output(&[], &[]).schema(),
        };
        let old = output(&[1, 2, 3], &[Some("a"), Some("b"), None]);
        let new = output(&[2, 3, 4], &[Some("b"), Some("c"), Some("d")]);
        let (rows, kinds) = difference(&mapping, &[0], std::slice::from_ref(&old), &[new])
            .unwrap()
            .unwrap();
        let ids = rows
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        // 1 vanished; 2 is unchanged; 3 changed; 4 is new.
        assert_eq!(ids.values(), &[1, 3, 4]);
        assert_eq!(
            kinds,
            vec![RowKind::Delete, RowKind::Insert, RowKind::Insert]
        );
        let (rows, kinds) = difference(&mapping, &[0], &[old], &[]).unwrap().unwrap();
        assert_eq!(rows.num_rows(), 3);
        assert!(kinds.iter().all(|k| *k == RowKind::Delete));
        assert!(difference(&mapping, &[0], &[], &[]).unwrap().is_none());
    }
}
