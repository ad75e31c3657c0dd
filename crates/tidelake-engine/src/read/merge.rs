//! Merge-on-read: a k-way merge of sorted runs over Arrow batches.
//!
//! Every run yields batches sorted by key with unique keys (a level-0 file,
//! or the files of one level). The merge compares keys in Arrow's row format
//! (one memcmp per comparison), picks the winning version of each key as the
//! merge engine says (or, for partial-update and aggregation, combines the
//! versions with the table's merge function, see `crate::mergefn`), and
//! assembles output batches with `interleave`, so no row is ever
//! materialised on its own.

use arrow_array::{Array, ArrayRef, Int64Array, Int8Array, RecordBatch};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::SchemaRef;
use futures::stream::BoxStream;
use futures::StreamExt;

use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::kv::{additions_mask, is_addition};
use crate::layout::TableLayout;
use crate::mergefn::{MergeFunction, MergedRows, Version, VersionColumns};
use crate::options::MergeEngine;

/// How the versions of one key combine.
#[derive(Clone, Debug)]
pub(crate) enum Pick {
    /// The version with the highest order wins (deduplicate).
    Last,
    /// The first inserted version wins (first-row).
    First,
    /// The versions are combined by a merge function (partial-update,
    /// aggregation).
    Merge(Arc<MergeSpec>),
}

/// A merge function and where its fields are in the input batches.
#[derive(Debug)]
pub(crate) struct MergeSpec {
    pub function: MergeFunction,
    /// Input column of each table field, in table order (all fields are
    /// needed: sequence groups read fields a projection may leave out).
    pub value_columns: Vec<usize>,
}

impl Pick {
    /// How the table's merge engine combines versions; `value_columns` is
    /// the input column of each table field (used by merge functions only).
    pub(crate) fn for_table(layout: &TableLayout, value_columns: Vec<usize>) -> Result<Pick> {
        Ok(match MergeFunction::for_table(layout)? {
            Some(function) => {
                if value_columns.len() != function.num_fields() {
                    return Err(EngineError::internal(format!(
                        "merging needs all {} fields, got {}",
                        function.num_fields(),
                        value_columns.len()
                    )));
                }
                Pick::Merge(Arc::new(MergeSpec {
                    function,
                    value_columns,
                }))
            }
            None if layout.options.merge_engine == MergeEngine::FirstRow => Pick::First,
            None => Pick::Last,
        })
    }
}

/// The merger's batches seen through a merge function's field numbering.
struct SlotColumns<'a> {
    slots: &'a [RecordBatch],
    value_columns: &'a [usize],
}

impl VersionColumns for SlotColumns<'_> {
    fn column(&self, slot: usize, field: usize) -> &dyn Array {
        self.slots[slot].column(self.value_columns[field]).as_ref()
    }
}

/// Column layout of the batches being merged.
#[derive(Clone)]
pub(crate) struct MergeLayout {
    /// Key columns (indices into input batches).
    pub key_columns: Vec<usize>,
    /// User sequence columns (`sequence.field`), compared before `_SEQUENCE_NUMBER`.
    pub sequence_field_columns: Vec<usize>,
    pub sequence_column: usize,
    pub kind_column: usize,
    /// Input columns copied to the output, in order.
    pub output_columns: Vec<usize>,
    pub output_schema: SchemaRef,
    pub pick: Pick,
    /// Emit retracting rows (-U/-D) instead of dropping them.
    pub keep_retracts: bool,
    pub batch_size: usize,
}

struct Cursor {
    stream: BoxStream<'static, Result<RecordBatch>>,
    slot: usize,
    keys: Rows,
    order: Option<Rows>,
    seq: Int64Array,
    kinds: Int8Array,
    pos: usize,
    len: usize,
}

struct Merger {
    layout: MergeLayout,
    key_converter: RowConverter,
    order_converter: Option<RowConverter>,
    cursors: Vec<Option<Cursor>>,
    heap: Vec<usize>,
    slots: Vec<RecordBatch>,
    picked: Vec<(usize, usize)>,
    /// Keys combined by a merge function, waiting for `emit`.
    merged: MergedRows,
    versions: Vec<Version>,
    current_key: Vec<u8>,
}

impl Merger {
    fn compare(&self, a: usize, b: usize) -> std::cmp::Ordering {
        let (Some(ca), Some(cb)) = (&self.cursors[a], &self.cursors[b]) else {
            return std::cmp::Ordering::Equal;
        };
        ca.keys
            .row(ca.pos)
            .cmp(&cb.keys.row(cb.pos))
            .then_with(|| match (&ca.order, &cb.order) {
                (Some(oa), Some(ob)) => oa.row(ca.pos).cmp(&ob.row(cb.pos)),
                _ => std::cmp::Ordering::Equal,
            })
            .then_with(|| ca.seq.value(ca.pos).cmp(&cb.seq.value(cb.pos)))
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                return;
            }
            let r = l + 1;
            let mut m = l;
            if r < n && self.compare(self.heap[r], self.heap[l]).is_lt() {
                m = r;
            }
            if self.compare(self.heap[m], self.heap[i]).is_lt() {
                self.heap.swap(m, i);
                i = m;
            } else {
                return;
            }
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            if self.compare(self.heap[i], self.heap[p]).is_lt() {
                self.heap.swap(i, p);
                i = p;
            } else {
                return;
            }
        }
    }

    /// Loads the next non-empty batch of run `run` (or marks it exhausted).
    async fn load(
        &mut self,
        run: usize,
        mut stream: BoxStream<'static, Result<RecordBatch>>,
    ) -> Result<()> {
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let key_cols: Vec<ArrayRef> = self
                .layout
                .key_columns
                .iter()
                .map(|&i| batch.column(i).clone())
                .collect();
            let keys = self.key_converter.convert_columns(&key_cols)?;
            let order = match &self.order_converter {
                Some(c) => {
                    let cols: Vec<ArrayRef> = self
                        .layout
                        .sequence_field_columns
                        .iter()
                        .map(|&i| batch.column(i).clone())
                        .collect();
                    Some(c.convert_columns(&cols)?)
                }
                None => None,
            };
            let seq = downcast::<Int64Array>(&batch, self.layout.sequence_column)?.clone();
            let kinds = downcast::<Int8Array>(&batch, self.layout.kind_column)?.clone();
            let len = batch.num_rows();
            self.slots.push(batch);
            self.cursors[run] = Some(Cursor {
                stream,
                slot: self.slots.len() - 1,
                keys,
                order,
                seq,
                kinds,
                pos: 0,
                len,
            });
            return Ok(());
        }
        self.cursors[run] = None;
        Ok(())
    }

    /// Advances run `run` by one row; returns false when the run is exhausted.
    async fn advance(&mut self, run: usize) -> Result<bool> {
        let Some(c) = self.cursors[run].as_mut() else {
            return Ok(false);
        };
        c.pos += 1;
        if c.pos < c.len {
            return Ok(true);
        }
        let Some(c) = self.cursors[run].take() else {
            return Ok(false);
        };
        self.load(run, c.stream).await?;
        Ok(self.cursors[run].is_some())
    }

    fn pending(&self) -> usize {
        self.picked.len() + self.merged.len()
    }

    fn emit(&mut self) -> Result<RecordBatch> {
        let mut columns = Vec::with_capacity(self.layout.output_columns.len());
        let mut keep: Option<arrow_array::BooleanArray> = None;
        if let Pick::Merge(spec) = &self.layout.pick {
            for &c in &self.layout.output_columns {
                let arrays: Vec<&dyn Array> =
                    self.slots.iter().map(|b| b.column(c).as_ref()).collect();
                columns.push(if c == self.layout.kind_column {
                    Arc::new(Int8Array::from(self.merged.kinds().to_vec())) as ArrayRef
                } else if let Some(f) = spec.value_columns.iter().position(|&v| v == c) {
                    self.merged.build_column(&spec.function, f, &arrays)?
                } else {
                    // Keys and sequence number: those of the newest version.
                    arrow_select::interleave::interleave(&arrays, &self.merged.newest)?
                });
            }
            // A merged retraction still carries state later merges continue
            // from (e.g. an amount to subtract), so when rows are rewritten
            // into files (the output has `_VALUE_KIND`) it is kept; only a
            // final read drops it.
            let rewrites_files = self
                .layout
                .output_columns
                .contains(&self.layout.kind_column);
            if !self.layout.keep_retracts && !rewrites_files {
                keep = additions_mask(self.merged.kinds());
            }
            let rows = self.merged.len();
            self.merged.clear();
            self.picked.clear();
            let batch = RecordBatch::try_new_with_options(
                self.layout.output_schema.clone(),
                columns,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
            )?;
            self.renumber_slots();
            return Ok(match keep {
                Some(mask) => arrow_select::filter::filter_record_batch(&batch, &mask)?,
                None => batch,
            });
        }
        for &c in &self.layout.output_columns {
            let arrays: Vec<&dyn Array> = self.slots.iter().map(|b| b.column(c).as_ref()).collect();
            columns.push(arrow_select::interleave::interleave(&arrays, &self.picked)?);
        }
        let rows = self.picked.len();
        self.picked.clear();
        self.renumber_slots();
        // With no output column (COUNT(*)) the batch still carries its rows.
        Ok(RecordBatch::try_new_with_options(
            self.layout.output_schema.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }

    fn renumber_slots(&mut self) {
        // Keep only the batches cursors still point into, renumbered.
        let mut kept = Vec::new();
        for c in self.cursors.iter_mut().flatten() {
            kept.push(self.slots[c.slot].clone());
            c.slot = kept.len() - 1;
        }
        self.slots = kept;
    }

    /// Produces the next output batch, or `None` at the end.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while let Some(&first) = self.heap.first() {
            // The smallest key, copied: its batch may be released while the
            // cursors advance over its versions.
            {
                let mut current = std::mem::take(&mut self.current_key);
                let c = self.cursor(first)?;
                current.clear();
                current.extend_from_slice(c.keys.row(c.pos).as_ref());
                self.current_key = current;
            }
            let mut winner: Option<(usize, usize, i8)> = None;
            self.versions.clear();
            while let Some(&top) = self.heap.first() {
                let c = self.cursor(top)?;
                if c.keys.row(c.pos).as_ref() != self.current_key.as_slice() {
                    break;
                }
                let kind = c.kinds.value(c.pos);
                let candidate = (c.slot, c.pos, kind);
                winner = match (&self.layout.pick, winner) {
                    (Pick::Last, _) => Some(candidate),
                    (Pick::First, None) if is_addition(kind) => Some(candidate),
                    (Pick::First, w) => w,
                    (Pick::Merge(_), _) => {
                        self.versions.push(Version {
                            slot: c.slot,
                            row: c.pos,
                            kind,
                        });
                        None
                    }
                };
                if self.advance(top).await? {
                    self.sift_down(0);
                } else {
                    let last = self.heap.len() - 1;
                    self.heap.swap(0, last);
                    self.heap.pop();
                    self.sift_down(0);
                }
            }
            if let Some((slot, pos, kind)) = winner {
                if self.layout.keep_retracts || is_addition(kind) {
                    self.picked.push((slot, pos));
                }
            }
            if let Pick::Merge(spec) = &self.layout.pick {
                let cols = SlotColumns {
                    slots: &self.slots,
                    value_columns: &spec.value_columns,
                };
                spec.function
                    .merge_key(&self.versions, &cols, &mut self.merged)?;
            }
            if self.pending() >= self.layout.batch_size {
                return Ok(Some(self.emit()?));
            }
        }
        if self.pending() == 0 {
            Ok(None)
        } else {
            Ok(Some(self.emit()?))
        }
    }

    fn cursor(&self, run: usize) -> Result<&Cursor> {
        self.cursors[run]
            .as_ref()
            .ok_or_else(|| EngineError::internal("empty merge cursor"))
    }
}

fn downcast<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| EngineError::internal(format!("column {i} has an unexpected type")))
}

/// Merges sorted runs into one stream of batches sorted by key.
pub(crate) fn merge_runs(
    runs: Vec<BoxStream<'static, Result<RecordBatch>>>,
    key_types: Vec<arrow_schema::DataType>,
    order_types: Vec<arrow_schema::DataType>,
    layout: MergeLayout,
) -> BoxStream<'static, Result<RecordBatch>> {
    let init = async move {
        let key_converter = RowConverter::new(key_types.into_iter().map(SortField::new).collect())?;
        let order_converter = if order_types.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                order_types.into_iter().map(SortField::new).collect(),
            )?)
        };
        let n = runs.len();
        let mut m = Merger {
            layout,
            key_converter,
            order_converter,
            cursors: (0..n).map(|_| None).collect(),
            heap: Vec::with_capacity(n),
            slots: Vec::new(),
            picked: Vec::new(),
            merged: MergedRows::default(),
            versions: Vec::new(),
            current_key: Vec::new(),
        };
        for (i, run) in runs.into_iter().enumerate() {
            m.load(i, run).await?;
            if m.cursors[i].is_some() {
                m.heap.push(i);
                let last = m.heap.len() - 1;
                m.sift_up(last);
            }
        }
        Ok::<_, EngineError>(m)
    };
    let stream = futures::stream::once(init).flat_map(|m| match m {
        Ok(m) => futures::stream::unfold(Some(m), |state| async move {
            let mut m = state?;
            match m.next_batch().await {
                Ok(Some(b)) => Some((Ok(b), Some(m))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed(),
        Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
    });
    stream.boxed()
}
