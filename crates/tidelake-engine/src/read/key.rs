//! The one primary key a lookup reads ([`Table::lookup`](crate::Table)):
//! rows of other keys are dropped as each file is read, before merging, and
//! the row groups and pages of a file that cannot hold the key (by their
//! statistics, page index and bloom filters, where the file has them) are
//! not read at all.
//!
//! Why filtering before the merge is exact: every merge engine combines the
//! versions of *one* key, and a key's versions all carry its key columns,
//! so the versions of the looked-up key reach the merge unchanged while
//! nothing else does.

use std::hash::Hasher;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, Scalar};
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowSelection, RowSelector};
use parquet::bloom_filter::Sbbf;
use tidelake_format::binary_row::{datums_to_arrow, Datum};

use super::predicate::{CompareOp, Predicate};
use crate::error::{EngineError, Result};
use crate::table::Table;

/// One key column: its field id (current schema), value as a one-row
/// array of the column's Arrow type, and value as a datum.
#[derive(Debug)]
struct KeyColumn {
    field_id: i32,
    value: ArrayRef,
    datum: Datum,
}

/// The trimmed key (primary key minus partition columns) a lookup reads;
/// partition columns are pinned exactly by the scan's partition filter.
pub(crate) struct KeyFilter {
    columns: Vec<KeyColumn>,
    /// The key's hash for the files' key indexes, with its hasher; `None`
    /// when the key's types cannot be hashed (no index is used).
    hashed: Option<(KeyHasher, u32)>,
}

impl std::fmt::Debug for KeyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFilter")
            .field("columns", &self.columns)
            .field("hash", &self.hashed.as_ref().map(|h| h.1))
            .finish()
    }
}

impl KeyFilter {
    /// The filter and the scan predicate for `key`: one value per primary-key
    /// column, in the order of the table's primary key.
    pub(crate) fn new(table: &Table, key: &[Datum]) -> Result<(KeyFilter, Predicate)> {
        let layout = &table.layout;
        let names = &layout.schema.primary_keys;
        if !layout.is_primary_key() {
            return Err(EngineError::invalid(format!(
                "table '{}' has no primary key to look up",
                table.id
            )));
        }
        if key.len() != names.len() {
            return Err(EngineError::invalid(format!(
                "a key of table '{}' has {} values ({}), not {}",
                table.id,
                names.len(),
                names.join(", "),
                key.len()
            )));
        }
        let mut compares = Vec::with_capacity(key.len());
        for (name, value) in names.iter().zip(key) {
            if *value == Datum::Null {
                return Err(EngineError::invalid(format!(
                    "key column '{name}' of table '{}' cannot be NULL",
                    table.id
                )));
            }
            compares.push(Predicate::Compare {
                column: name.clone(),
                op: CompareOp::Eq,
                value: value.clone(),
            });
        }
        let mut columns = Vec::with_capacity(layout.key_indices.len());
        let mut types = Vec::with_capacity(layout.key_indices.len());
        for &i in &layout.key_indices {
            let field = &layout.schema.fields[i];
            let at = names.iter().position(|n| *n == field.name).ok_or_else(|| {
                EngineError::internal(format!("key column '{}' not in the key", field.name))
            })?;
            let datum = key[at].clone();
            let value = datums_to_arrow(std::slice::from_ref(&datum), &field.data_type)
                .map_err(|e| EngineError::format(format!("key column '{}'", field.name), e))?;
            // The type key columns are read as (`ReadColumn::Key`), which
            // the key indexes are built from.
            types.push(field.data_type.to_arrow());
            columns.push(KeyColumn {
                field_id: field.id,
                value,
                datum,
            });
        }
        let hashed = KeyHasher::new(types).and_then(|hasher| {
            let values: Vec<ArrayRef> = columns.iter().map(|c| c.value.clone()).collect();
            let hash = hasher.hashes(&values).ok()?.first().copied()?;
            Some((hasher, hash))
        });
        Ok((KeyFilter { columns, hashed }, Predicate::And(compares)))
    }

    /// The key's hash for key indexes, with its hasher.
    pub(crate) fn hashed(&self) -> Option<(&KeyHasher, u32)> {
        self.hashed.as_ref().map(|(h, v)| (h, *v))
    }

    /// The field ids (current schema) of the key columns, in key order.
    pub(crate) fn field_ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.columns.iter().map(|k| k.field_id)
    }

    /// The rows of `batch` whose columns at `positions` hold the key.
    pub(crate) fn filter(&self, batch: RecordBatch, positions: &[usize]) -> Result<RecordBatch> {
        let mut keep: Option<BooleanArray> = None;
        for (key, &p) in self.columns.iter().zip(positions) {
            let column = batch.column(p);
            let value = same_type(&key.value, column.data_type())?;
            let eq = arrow_ord::cmp::eq(column, &Scalar::new(value))?;
            keep = Some(match keep {
                Some(k) => arrow::compute::and(&k, &eq)?,
                None => eq,
            });
        }
        match keep {
            Some(mask) => Ok(arrow_select::filter::filter_record_batch(&batch, &mask)?),
            None => Ok(batch),
        }
    }

    /// The row groups of a file that may hold the key by their statistics:
    /// `file_columns[i]` is the name of key column `i` in the file's Arrow
    /// schema. Statistics that are missing or of another type keep a group.
    pub(crate) fn row_groups(
        &self,
        metadata: &ArrowReaderMetadata,
        file_columns: &[String],
    ) -> Vec<usize> {
        let pq = metadata.metadata();
        let mut groups: Vec<usize> = (0..pq.num_row_groups()).collect();
        for (key, name) in self.columns.iter().zip(file_columns) {
            let Some(conv) = converter(metadata, name) else {
                continue;
            };
            if let (Ok(mins), Ok(maxes)) = (
                conv.row_group_mins(pq.row_groups().iter()),
                conv.row_group_maxes(pq.row_groups().iter()),
            ) {
                if let Some(may) = may_hold(&key.value, &mins, &maxes) {
                    groups.retain(|&g| may.get(g).copied().unwrap_or(true));
                }
            }
        }
        groups
    }

    /// The rows of `groups` (read in this order) whose pages may hold the
    /// key by the page index, intersected over the key columns; `None`
    /// when the file has no page index.
    pub(crate) fn pages(
        &self,
        metadata: &ArrowReaderMetadata,
        file_columns: &[String],
        groups: &[usize],
    ) -> Option<RowSelection> {
        let pq = metadata.metadata();
        let (Some(column_index), Some(offset_index)) = (pq.column_index(), pq.offset_index())
        else {
            return None;
        };
        let mut selection: Option<RowSelection> = None;
        for (key, name) in self.columns.iter().zip(file_columns) {
            let Some(conv) = converter(metadata, name) else {
                continue;
            };
            let mut selectors = Vec::new();
            for &g in groups {
                let rows = usize::try_from(pq.row_group(g).num_rows()).unwrap_or(0);
                let pages = (
                    conv.data_page_mins(column_index, offset_index, [&g]),
                    conv.data_page_maxes(column_index, offset_index, [&g]),
                    conv.data_page_row_counts(offset_index, pq.row_groups(), [&g]),
                );
                let (Ok(mins), Ok(maxes), Ok(Some(counts))) = pages else {
                    selectors.push(RowSelector::select(rows));
                    continue;
                };
                match may_hold(&key.value, &mins, &maxes) {
                    Some(may) if counts.len() == may.len() && counts.null_count() == 0 => {
                        for (i, m) in may.iter().enumerate() {
                            let n = usize::try_from(counts.value(i)).unwrap_or(0);
                            selectors.push(if *m {
                                RowSelector::select(n)
                            } else {
                                RowSelector::skip(n)
                            });
                        }
                    }
                    _ => selectors.push(RowSelector::select(rows)),
                }
            }
            let this = RowSelection::from(selectors);
            selection = Some(match selection {
                Some(s) => s.intersection(&this),
                None => this,
            });
        }
        selection
    }

    /// Whether the bloom filter of key column `i` rules the key out.
    pub(crate) fn excluded_by(&self, i: usize, bloom: &Sbbf) -> bool {
        match &self.columns[i].datum {
            Datum::TinyInt(v) => !bloom.check(&i32::from(*v)),
            Datum::SmallInt(v) => !bloom.check(&i32::from(*v)),
            Datum::Int(v) | Datum::Date(v) => !bloom.check(v),
            Datum::BigInt(v) => !bloom.check(v),
            Datum::String(s) => !bloom.check(s.as_str()),
            Datum::Bytes(b) => !bloom.check(b.as_slice()),
            // Other types' physical encodings are not worth the risk of a
            // false "absent": read the row group.
            _ => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.columns.len()
    }
}

/// Hashes of key rows: the key columns (in key order, of the types the
/// current schema gives them) encoded by the Arrow row format, so that a
/// looked-up key and a file's rows hash alike exactly when they are equal.
pub(crate) struct KeyHasher {
    converter: RowConverter,
    types: Vec<DataType>,
}

impl KeyHasher {
    /// A hasher for key columns of these types; `None` when the row format
    /// cannot encode one of them (lookups then read files without index).
    pub(crate) fn new(types: Vec<DataType>) -> Option<KeyHasher> {
        let fields: Vec<SortField> = types.iter().cloned().map(SortField::new).collect();
        if !RowConverter::supports_fields(&fields) {
            return None;
        }
        let converter = RowConverter::new(fields).ok()?;
        Some(KeyHasher { converter, types })
    }

    /// The hash of every row of `columns` (one array per key column).
    pub(crate) fn hashes(&self, columns: &[ArrayRef]) -> Result<Vec<u32>> {
        let mut cast = Vec::with_capacity(columns.len());
        for (c, t) in columns.iter().zip(&self.types) {
            cast.push(if c.data_type() == t {
                c.clone()
            } else {
                arrow::compute::cast(c, t)?
            });
        }
        let rows = self.converter.convert_columns(&cast)?;
        Ok(rows.iter().map(|r| hash_bytes(r.as_ref())).collect())
    }
}

/// A stable hash (the same for the same bytes, in every run).
fn hash_bytes(bytes: &[u8]) -> u32 {
    // SipHash with fixed keys: `DefaultHasher::new` is not randomized.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    let x = h.finish();
    (x ^ (x >> 32)) as u32
}

fn converter<'a>(metadata: &'a ArrowReaderMetadata, name: &str) -> Option<StatisticsConverter<'a>> {
    StatisticsConverter::try_new(
        name,
        metadata.schema(),
        metadata.metadata().file_metadata().schema_descr(),
    )
    .ok()
}

/// `value` as an array of `data_type` (casting only when they differ).
fn same_type(value: &ArrayRef, data_type: &arrow_schema::DataType) -> Result<ArrayRef> {
    if value.data_type() == data_type {
        return Ok(value.clone());
    }
    Ok(arrow::compute::cast(value, data_type)?)
}

/// For each (min, max) pair: whether `value` may lie between them (unknown
/// statistics: yes). `None` when the types cannot be compared.
fn may_hold(value: &ArrayRef, mins: &ArrayRef, maxes: &ArrayRef) -> Option<Vec<bool>> {
    let value = same_type(value, mins.data_type()).ok()?;
    let scalar = Scalar::new(value);
    let above = arrow_ord::cmp::gt(mins, &scalar).ok()?;
    let below = arrow_ord::cmp::lt(maxes, &scalar).ok()?;
    Some(
        (0..mins.len())
            .map(|i| {
                let out =
                    (above.is_valid(i) && above.value(i)) || (below.is_valid(i) && below.value(i));
                !out
            })
            .collect(),
    )
}
