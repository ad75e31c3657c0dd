//! Top-k search over a table's current (or a past) snapshot.
//!
//! A search is exact about the rows a `SELECT` of that snapshot returns:
//! - buckets whose files a read merges (tables without deletion vectors,
//!   or files holding retractions) are read merged, every row measured;
//! - other buckets (deletion vectors: level-0 files are not visible, the
//!   others hold one live row per key) are read file by file: a level
//!   whose segment lists exactly its live files is searched through the
//!   segment with an allow-list of the rows that are neither deleted nor
//!   filtered out; every other file is measured row by row.
//!
//! Conditions on partition columns only are judged first, once per
//! partition on its values: the buckets of failing partitions are skipped
//! without opening a file. The rest of the filter is evaluated before the
//! search, so it restricts the allow-list, never the results; when few
//! rows pass (or the index returns fewer than k of them), those rows are
//! measured exactly, so k rows come back whenever k rows match. Candidates from quantized indexes are re-measured from the
//! rows' own vectors; IVF-FLAT measures the rows' own vectors already (in
//! `f32`), and its winners are re-measured (in `f64`) when the vector column
//! is among the returned columns, which reads it anyway (or the metric is
//! not L2). An L2 search that does not return the vector column therefore
//! reads only the returned columns of its k winners, a few pages each.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, Float64Array, RecordBatch};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use roaring::RoaringTreemap;
use tidelake_engine::read::deletion::BucketVectors;
use tidelake_engine::{ScanPlan, Split, Table};
use tidelake_format::binary_row::{datums_to_arrow, Datum};
use tidelake_format::deletion_vector::DeletionVector;
use tidelake_format::manifest::DataFileMeta;

use crate::columns::{self, FileRef};
use crate::context::{context, SearchContext};
use crate::error::{Result, VectorError};
use crate::flat::RowSet;
use crate::payload::{ann_search, open, Allowed, AnnParams};
use crate::spec::{dimension_key, Metric, VectorIndexSpec};
use crate::vectors::{check_query, Cell, Vectors};

/// Name of the distance column a search adds.
pub const DISTANCE_COLUMN: &str = "_distance";

/// Below this many allowed rows a segment is searched exactly.
const EXACT_BELOW: u64 = 2048;
/// An exact search of an IVF-FLAT segment measures the allowed rows in the
/// index (all lists probed, so every vector of the segment is visited)
/// rather than reading each row's page from the data files when more than
/// one row in this many is allowed. Measured (128 dimensions, 200k rows):
/// a row read from its page costs about 600 times a vector visited in the
/// index.
const INDEX_VISITS_PER_ROW_READ: u64 = 512;

/// A row filter evaluated before the search: `eval` gets a batch of the
/// table's `columns` (in that order) and says which rows pass.
#[derive(Clone)]
pub struct RowFilter {
    pub columns: Vec<String>,
    #[allow(clippy::type_complexity)]
    pub eval: Arc<dyn Fn(&RecordBatch) -> Result<BooleanArray> + Send + Sync>,
}

impl std::fmt::Debug for RowFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowFilter({})", self.columns.join(", "))
    }
}

/// How a search uses the index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchMode {
    /// Segments where they match their level, exact search elsewhere.
    #[default]
    Auto,
    /// Every row measured (brute force).
    Exact,
}

/// One search.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub column: String,
    pub query: Vec<f32>,
    pub k: usize,
    /// The metric; by default the index's (L2 without an index).
    pub metric: Option<Metric>,
    /// Time travel: this snapshot instead of the latest.
    pub snapshot: Option<i64>,
    pub filter: Option<RowFilter>,
    /// A filter on partition columns only, evaluated once per partition on
    /// its values: partitions that fail it are skipped before any of their
    /// files is opened (and before `filter` builds an allow-list).
    pub partition_filter: Option<RowFilter>,
    /// Columns to return (by name); all by default.
    pub projection: Option<Vec<String>>,
    pub mode: SearchMode,
    /// IVF lists probed (`nprobe`), or DiskANN's search list size.
    pub width: Option<usize>,
}

impl SearchRequest {
    pub fn new(column: impl Into<String>, query: Vec<f32>, k: usize) -> Self {
        SearchRequest {
            column: column.into(),
            query,
            k,
            metric: None,
            snapshot: None,
            filter: None,
            partition_filter: None,
            projection: None,
            mode: SearchMode::Auto,
            width: None,
        }
    }
}

/// What a search looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Index segments searched.
    pub segments: usize,
    /// Rows measured one by one.
    pub exact_rows: u64,
    /// Buckets (splits) skipped because their partition fails the
    /// partition filter.
    pub splits_pruned: usize,
}

/// The k closest rows, closest first, with [`DISTANCE_COLUMN`].
#[derive(Clone, Debug)]
pub struct SearchOutcome {
    pub batch: RecordBatch,
    pub stats: SearchStats,
}

/// Where a candidate row lives.
#[derive(Clone, Debug)]
pub(crate) enum RowRef {
    /// Position `pos` of file `file` of split `split`.
    File {
        split: usize,
        file: String,
        pos: u64,
    },
    /// A row read merged: its own one-row batch (all table columns).
    Merged(RecordBatch),
}

#[derive(Clone, Debug)]
struct Candidate {
    distance: f64,
    row: RowRef,
}

/// Keeps the k smallest distances.
struct TopK {
    k: usize,
    items: Vec<Candidate>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::new(),
        }
    }

    /// The distance a candidate must beat once k are held.
    fn bound(&self) -> f64 {
        if self.items.len() < self.k {
            f64::INFINITY
        } else {
            self.items.last().map_or(f64::INFINITY, |c| c.distance)
        }
    }

    fn push(&mut self, c: Candidate) {
        if c.distance.is_nan() || c.distance >= self.bound() {
            return;
        }
        let at = self
            .items
            .partition_point(|x| x.distance.total_cmp(&c.distance) != Ordering::Greater);
        self.items.insert(at, c);
        self.items.truncate(self.k);
    }
}

/// What the search needs to know of the table.
struct Target<'a> {
    table: &'a Table,
    dimension: usize,
    metric: Metric,
    /// The index, when it can serve this search (same column and metric).
    index: Option<VectorIndexSpec>,
    req: &'a SearchRequest,
}

/// Runs a search.
pub async fn search(table: &Table, req: &SearchRequest) -> Result<SearchOutcome> {
    if req.k == 0 {
        return Err(VectorError::BadSearch("k must be at least 1".into()));
    }
    let spec = VectorIndexSpec::from_schema(&table.identifier().to_string(), table.schema())?;
    let field = table
        .schema()
        .fields
        .iter()
        .find(|f| f.name == req.column)
        .ok_or_else(|| {
            VectorError::BadSearch(format!(
                "table '{}' has no column '{}'",
                table.identifier(),
                req.column
            ))
        })?;
    let indexed = spec.filter(|s| s.column == field.name);
    let dimension = match &indexed {
        Some(s) => s.dimension,
        None => table
            .schema()
            .options
            .get(&dimension_key(&field.name))
            .and_then(|d| d.parse().ok())
            .unwrap_or(req.query.len()),
    };
    check_query(&req.query, dimension)?;
    let metric = req
        .metric
        .or(indexed.as_ref().map(|s| s.metric))
        .unwrap_or(Metric::L2);
    let index = indexed.filter(|s| s.metric == metric && req.mode == SearchMode::Auto);
    let target = Target {
        table,
        dimension,
        metric,
        index,
        req,
    };
    let ctx = context(table, req.snapshot, target.index.as_ref()).await?;
    let plan = &ctx.plan;
    let mut top = TopK::new(req.k);
    let mut stats = SearchStats::default();
    let keep = kept_splits(table, plan, req.partition_filter.as_ref())?;
    stats.splits_pruned = keep.iter().filter(|k| !**k).count();
    for (i, split) in plan.splits().iter().enumerate() {
        if !keep[i] {
            continue;
        }
        if plan.merges(split) {
            search_merged(&target, plan, i, &mut top, &mut stats).await?;
        } else {
            search_split(&target, &ctx, i, split, &mut top, &mut stats).await?;
        }
    }
    let batch = materialize(&target, plan, top.items).await?;
    Ok(SearchOutcome { batch, stats })
}

/// Which splits of `plan` belong to partitions passing `filter` (all when
/// there is none); each partition is judged once, on its values.
pub(crate) fn kept_splits(
    table: &Table,
    plan: &ScanPlan,
    filter: Option<&RowFilter>,
) -> Result<Vec<bool>> {
    let Some(filter) = filter else {
        return Ok(vec![true; plan.splits().len()]);
    };
    let mut judged: HashMap<&[u8], bool> = HashMap::new();
    let mut keep = Vec::with_capacity(plan.splits().len());
    for split in plan.splits() {
        let pass = match judged.get(split.partition.as_slice()) {
            Some(p) => *p,
            None => {
                let p = partition_passes(table, split, filter)?;
                judged.insert(split.partition.as_slice(), p);
                p
            }
        };
        keep.push(pass);
    }
    Ok(keep)
}

/// Evaluates a partition filter on a one-row batch of a split's partition
/// values.
fn partition_passes(table: &Table, split: &Split, filter: &RowFilter) -> Result<bool> {
    let schema = table.schema();
    let arrow = table.arrow_schema();
    let mut fields = Vec::with_capacity(filter.columns.len());
    let mut columns = Vec::with_capacity(filter.columns.len());
    for name in &filter.columns {
        let not_partition =
            || VectorError::Internal(format!("partition filter on '{name}', not a partition key"));
        let at = schema
            .partition_keys
            .iter()
            .position(|k| k == name)
            .ok_or_else(not_partition)?;
        let field = schema
            .fields
            .iter()
            .find(|f| f.name == *name)
            .ok_or_else(not_partition)?;
        let value = split
            .partition_values
            .get(at)
            .cloned()
            .unwrap_or(Datum::Null);
        let array = datums_to_arrow(&[value], &field.data_type)
            .map_err(|e| VectorError::Internal(format!("partition value of '{name}': {e}")))?;
        // The filter was planned against the table's Arrow types.
        let wanted = arrow.field_with_name(name)?.data_type().clone();
        let array = datafusion::arrow::compute::cast(&array, &wanted)?;
        fields.push(Field::new(name, wanted, true));
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let mask = Some((filter.eval)(&batch)?);
    Ok(passed(&mask, 0))
}

/// The rows of a filter's columns that pass it (all when there is none).
pub(crate) fn passes(
    filter: Option<&RowFilter>,
    batch: &RecordBatch,
) -> Result<Option<BooleanArray>> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    let mut columns = Vec::with_capacity(filter.columns.len());
    let mut fields = Vec::with_capacity(filter.columns.len());
    for name in &filter.columns {
        let i = batch.schema().index_of(name)?;
        columns.push(batch.column(i).clone());
        fields.push(batch.schema().field(i).clone());
    }
    let projected = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Some((filter.eval)(&projected)?))
}

pub(crate) fn passed(mask: &Option<BooleanArray>, row: usize) -> bool {
    mask.as_ref()
        .is_none_or(|m| m.is_valid(row) && m.value(row))
}

/// A merged split: every row read and measured.
async fn search_merged(
    t: &Target<'_>,
    plan: &ScanPlan,
    split: usize,
    top: &mut TopK,
    stats: &mut SearchStats,
) -> Result<()> {
    let mut stream = plan.read_split(split);
    while let Some(batch) = stream.try_next().await? {
        let vi = batch.schema().index_of(&t.req.column)?;
        let vectors = Vectors::new(batch.column(vi), t.dimension)?;
        let mask = passes(t.req.filter.as_ref(), &batch)?;
        for row in 0..batch.num_rows() {
            if !passed(&mask, row) {
                continue;
            }
            if let Cell::Vector(v) = vectors.get(row) {
                stats.exact_rows += 1;
                let distance = t.metric.distance(&t.req.query, v);
                if distance < top.bound() {
                    top.push(Candidate {
                        distance,
                        row: RowRef::Merged(batch.slice(row, 1)),
                    });
                }
            }
        }
    }
    Ok(())
}

/// A split read file by file.
async fn search_split(
    t: &Target<'_>,
    ctx: &SearchContext,
    split_index: usize,
    split: &Split,
    top: &mut TopK,
    stats: &mut SearchStats,
) -> Result<()> {
    let cover = &ctx.coverage[split_index];
    let dvs = split.deletion_vectors.as_deref();
    for file in split.files_to_read() {
        if !cover.covered.contains_key(&file.file_name) {
            let all = allowed_positions(t.table, t.req.filter.as_ref(), split, file, dvs).await?;
            measure(t, split_index, split, file, &all, top, stats).await?;
        }
    }
    for &segment in &cover.active {
        search_segment(t, ctx, split_index, split, segment, dvs, top, stats).await?;
    }
    Ok(())
}

/// Rows of a file that are not deleted and pass the filter.
pub(crate) enum Positions {
    /// Every row of the file (`n` rows).
    All(u64),
    /// Every row of the file (`rows`) but those its deletion vector marks:
    /// kept as the vector, as listing a large file's live rows at every
    /// search costs more than the search.
    Live {
        rows: u64,
        deleted: Arc<DeletionVector>,
    },
    /// These rows, ascending.
    Some(Vec<u64>),
    /// The rows whose bit is set (those a filter passed), but those the
    /// deletion vector marks: kept as the bitmap, which becomes a search's
    /// row set word by word.
    Passing {
        mask: BooleanBuffer,
        deleted: Option<Arc<DeletionVector>>,
    },
}

impl Positions {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Positions::All(n) => *n,
            Positions::Live { rows, deleted } => {
                let rows = *rows;
                rows - deleted.iter().take_while(|p| *p < rows).count() as u64
            }
            Positions::Some(p) => p.len() as u64,
            Positions::Passing { mask, deleted } => {
                let gone = deleted.as_ref().map_or(0, |d| {
                    d.iter()
                        .take_while(|p| *p < mask.len() as u64)
                        .filter(|p| mask.value(*p as usize))
                        .count()
                });
                (mask.count_set_bits() - gone) as u64
            }
        }
    }

    /// The passing rows of a `Passing`, ascending.
    fn passing(mask: &BooleanBuffer, deleted: Option<&DeletionVector>) -> Vec<u64> {
        let mut deleted_rows = deleted.into_iter().flat_map(|d| d.iter()).peekable();
        let mut out = Vec::with_capacity(mask.count_set_bits());
        for pos in mask.set_indices() {
            let pos = pos as u64;
            while deleted_rows.next_if(|d| *d < pos).is_some() {}
            if deleted_rows.next_if_eq(&pos).is_none() {
                out.push(pos);
            }
        }
        out
    }

    /// Adds the rows, shifted by `offset`, to an allow-list.
    fn add_to(&self, allowed: &mut RoaringTreemap, offset: u64) {
        match self {
            Positions::All(n) => {
                allowed.insert_range(offset..offset + n);
            }
            Positions::Live { rows, deleted } => {
                let rows = *rows;
                allowed.insert_range(offset..offset + rows);
                for p in deleted.iter().take_while(|p| *p < rows) {
                    allowed.remove(offset + p);
                }
            }
            Positions::Some(p) => allowed.extend(p.iter().map(|x| offset + x)),
            Positions::Passing { mask, deleted } => allowed.extend(
                Positions::passing(mask, deleted.as_deref())
                    .into_iter()
                    .map(|x| offset + x),
            ),
        }
    }

    /// Adds the rows, shifted by `offset`, to a row set.
    fn add_to_rows(&self, allowed: &mut RowSet, offset: u64) {
        match self {
            Positions::All(n) => allowed.insert_range(offset..offset + n),
            Positions::Live { rows, deleted } => {
                let rows = *rows;
                allowed.insert_range(offset..offset + rows);
                for p in deleted.iter().take_while(|p| *p < rows) {
                    allowed.remove(offset + p);
                }
            }
            Positions::Some(p) => p.iter().for_each(|x| allowed.insert(offset + x)),
            Positions::Passing { mask, deleted } => {
                allowed.insert_bits(offset, mask);
                let rows = mask.len() as u64;
                for p in deleted
                    .iter()
                    .flat_map(|d| d.iter())
                    .take_while(|p| *p < rows)
                {
                    allowed.remove(offset + p);
                }
            }
        }
    }

    /// The rows as a list (`None`: every row of the file).
    pub(crate) fn listed(&self) -> Option<std::borrow::Cow<'_, [u64]>> {
        match self {
            Positions::All(_) => None,
            Positions::Live { rows, deleted } => Some(std::borrow::Cow::Owned(
                (0..*rows).filter(|p| !deleted.is_deleted(*p)).collect(),
            )),
            Positions::Some(p) => Some(std::borrow::Cow::Borrowed(p.as_slice())),
            Positions::Passing { mask, deleted } => Some(std::borrow::Cow::Owned(
                Positions::passing(mask, deleted.as_deref()),
            )),
        }
    }
}

pub(crate) async fn allowed_positions(
    table: &Table,
    filter: Option<&RowFilter>,
    split: &Split,
    file: &DataFileMeta,
    dvs: Option<&BucketVectors>,
) -> Result<Positions> {
    let deleted = dvs.and_then(|d| d.get(&file.file_name));
    let rows = u64::try_from(file.row_count).unwrap_or(0);
    let Some(filter) = filter else {
        return Ok(match deleted {
            None => Positions::All(rows),
            Some(d) => Positions::Live {
                rows,
                deleted: d.clone(),
            },
        });
    };
    let at = FileRef {
        partition_path: &split.partition_path,
        bucket: split.bucket,
        file,
    };
    let batch = columns::read(table, &at, &filter.columns, None).await?;
    let mask = (filter.eval)(&batch)?;
    // A NULL is not a pass.
    let mask = match mask.nulls() {
        Some(nulls) => mask.values() & nulls.inner(),
        None => mask.values().clone(),
    };
    Ok(Positions::Passing {
        mask,
        deleted: deleted.cloned(),
    })
}

/// Measures the rows at `positions` of one file.
async fn measure(
    t: &Target<'_>,
    split_index: usize,
    split: &Split,
    file: &DataFileMeta,
    positions: &Positions,
    top: &mut TopK,
    stats: &mut SearchStats,
) -> Result<()> {
    if positions.len() == 0 {
        return Ok(());
    }
    let listed = positions.listed();
    let listed = listed.as_deref();
    let batches = t
        .table
        .read_file_columns(
            &split.partition_path,
            split.bucket,
            file,
            std::slice::from_ref(&t.req.column),
            listed,
        )
        .await?;
    let mut at = 0usize;
    for batch in &batches {
        let vectors = Vectors::new(batch.column(0), t.dimension)?;
        for row in 0..vectors.len() {
            let pos = match listed {
                None => at as u64,
                Some(p) => p.get(at).copied().unwrap_or(u64::MAX),
            };
            at += 1;
            if let Cell::Vector(v) = vectors.get(row) {
                stats.exact_rows += 1;
                let distance = t.metric.distance(&t.req.query, v);
                if distance < top.bound() {
                    top.push(Candidate {
                        distance,
                        row: RowRef::File {
                            split: split_index,
                            file: file.file_name.clone(),
                            pos,
                        },
                    });
                }
            }
        }
    }
    Ok(())
}

/// The rows a segment search may return, in the form its payload takes.
enum AllowList {
    Rows(Arc<RowSet>),
    Roaring(RoaringTreemap),
}

impl AllowList {
    fn len(&self) -> u64 {
        match self {
            AllowList::Rows(r) => r.len(),
            AllowList::Roaring(r) => r.len(),
        }
    }

    fn contains(&self, id: i64) -> bool {
        match self {
            AllowList::Rows(r) => r.contains(id),
            AllowList::Roaring(r) => u64::try_from(id).is_ok_and(|id| r.contains(id)),
        }
    }
}

/// One segment: an allow-list of its live, passing rows, then the index
/// (or exact measurement when few rows pass or the index falls short).
#[allow(clippy::too_many_arguments)]
async fn search_segment(
    t: &Target<'_>,
    ctx: &SearchContext,
    split_index: usize,
    split: &Split,
    segment_index: usize,
    dvs: Option<&BucketVectors>,
    top: &mut TopK,
    stats: &mut SearchStats,
) -> Result<()> {
    let segment = &ctx.segments[segment_index];
    let spec = t
        .index
        .as_ref()
        .ok_or_else(|| VectorError::Internal("segment search without an index".into()))?;
    let files: BTreeMap<&str, &DataFileMeta> = split
        .files_to_read()
        .map(|f| (f.file_name.as_str(), f))
        .collect();
    let mut sources: Vec<(&DataFileMeta, i64, Positions)> = Vec::new();
    let mut offset = 0i64;
    for src in &segment.source.files {
        let file = files.get(src.name.as_str()).ok_or_else(|| {
            VectorError::Internal(format!("segment source {} vanished", src.name))
        })?;
        let positions = allowed_positions(t.table, t.req.filter.as_ref(), split, file, dvs).await?;
        sources.push((file, offset, positions));
        offset += src.row_count;
    }
    let rows = offset as u64;
    let unfiltered = sources
        .iter()
        .all(|(_, _, p)| matches!(p, Positions::All(_)));
    // Decoded L2 IVF-FLAT segments take a row set (see `payload`).
    let allowed = if spec.index_type == "ivf-flat" && spec.metric == Metric::L2 {
        let build = || {
            let mut set = RowSet::empty(rows);
            for (_, offset, positions) in &sources {
                positions.add_to_rows(&mut set, *offset as u64);
            }
            set
        };
        // Without a filter the allowed rows are the live ones, the same
        // for every search of this snapshot.
        AllowList::Rows(if t.req.filter.is_none() {
            ctx.live_rows(segment_index, build)
        } else {
            Arc::new(build())
        })
    } else {
        let mut set = RoaringTreemap::new();
        for (_, offset, positions) in &sources {
            positions.add_to(&mut set, *offset as u64);
        }
        AllowList::Roaring(set)
    };
    let wanted = (t.req.k as u64).min(allowed.len());
    if wanted == 0 {
        return Ok(());
    }
    // Few allowed rows are measured exactly. An IVF-FLAT payload holds
    // every vector as it is, so probing all its lists with the allow-list
    // measures each allowed row exactly, without decoding the pages that
    // hold them in the data files (a page per row when they are scattered).
    let flat = spec.index_type == "ivf-flat";
    let exact = allowed.len() < EXACT_BELOW;
    // A decoded segment (`AllowList::Rows`) measures allowed rows where
    // they lie in memory, cheaper than any page read.
    let decoded = matches!(allowed, AllowList::Rows(_));
    let in_index = flat && (decoded || allowed.len() * INDEX_VISITS_PER_ROW_READ >= rows);
    if exact && !in_index {
        for (file, _, positions) in sources {
            measure(t, split_index, split, file, &positions, top, stats).await?;
        }
        return Ok(());
    }
    let params = AnnParams {
        k: t.req.k,
        // Every list: the library probes at most all of them.
        width: if exact { Some(usize::MAX) } else { t.req.width },
        allowed: match &allowed {
            _ if unfiltered => Allowed::All,
            AllowList::Rows(r) => Allowed::Rows(r),
            AllowList::Roaring(r) => Allowed::Roaring(r),
        },
    };
    if exact {
        stats.exact_rows += allowed.len();
    }
    let payload = open(t.table, segment).await?;
    let found = ann_search(&payload, segment, spec, &t.req.query, &params)?;
    stats.segments += 1;
    let hits: Vec<(i64, f32)> = found
        .into_iter()
        .filter(|(id, d)| *id >= 0 && d.is_finite() && allowed.contains(*id))
        .collect();
    if (hits.len() as u64) < wanted {
        // The index fell short of k passing rows: measure them all.
        for (file, _, positions) in sources {
            measure(t, split_index, split, file, &positions, top, stats).await?;
        }
        return Ok(());
    }
    let locate = |id: i64| {
        let at = sources.partition_point(|(_, o, _)| *o <= id) - 1;
        (at, (id - sources[at].1) as u64)
    };
    if flat {
        // IVF-FLAT measures exactly (L2 squared): candidates as they are;
        // the winners are re-measured from their rows when read.
        for (id, d) in hits {
            let (at, pos) = locate(id);
            let d = f64::from(d);
            top.push(Candidate {
                distance: if t.metric == Metric::L2 {
                    d.max(0.0).sqrt()
                } else {
                    d
                },
                row: RowRef::File {
                    split: split_index,
                    file: sources[at].0.file_name.clone(),
                    pos,
                },
            });
        }
        return Ok(());
    }
    // Quantized indexes: re-measure the hits from their rows' vectors.
    let mut by_file: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for (id, _) in hits {
        let (at, pos) = locate(id);
        by_file.entry(at).or_default().push(pos);
    }
    for (at, mut positions) in by_file {
        positions.sort_unstable();
        positions.dedup();
        let before = stats.exact_rows;
        let positions = Positions::Some(positions);
        measure(t, split_index, split, sources[at].0, &positions, top, stats).await?;
        stats.exact_rows = before;
    }
    Ok(())
}

/// A row of a file, by split index, file name and position.
pub(crate) type FileRowKey = (usize, String, u64);

/// `columns` of the rows of `rows` that live in files (rows read merged
/// carry their own batch), each as a one-row batch: read per file, all its
/// positions at once.
pub(crate) async fn fetch_file_rows<'r>(
    table: &Table,
    plan: &ScanPlan,
    rows: impl Iterator<Item = &'r RowRef>,
    columns: &[String],
) -> Result<HashMap<FileRowKey, RecordBatch>> {
    let mut wanted: BTreeMap<(usize, String), Vec<u64>> = BTreeMap::new();
    for r in rows {
        if let RowRef::File { split, file, pos } = r {
            wanted.entry((*split, file.clone())).or_default().push(*pos);
        }
    }
    let mut fetched = HashMap::new();
    for ((split_index, name), mut positions) in wanted {
        positions.sort_unstable();
        positions.dedup();
        let split = &plan.splits()[split_index];
        let file = split
            .files
            .iter()
            .find(|f| f.file_name == name)
            .ok_or_else(|| VectorError::Internal(format!("file {name} vanished")))?;
        let at = FileRef {
            partition_path: &split.partition_path,
            bucket: split.bucket,
            file,
        };
        let batch = columns::read(table, &at, columns, Some(&positions)).await?;
        for (row, pos) in positions.iter().enumerate().take(batch.num_rows()) {
            fetched.insert((split_index, name.clone(), *pos), batch.slice(row, 1));
        }
    }
    Ok(fetched)
}

/// The output rows of the winners, closest first, with their distances.
async fn materialize(
    t: &Target<'_>,
    plan: &ScanPlan,
    winners: Vec<Candidate>,
) -> Result<RecordBatch> {
    let table_schema = t.table.arrow_schema();
    let names: Vec<String> = match &t.req.projection {
        Some(p) => p.clone(),
        None => table_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
    };
    let mut fields = Vec::with_capacity(names.len() + 1);
    for n in &names {
        let i = table_schema.index_of(n).map_err(|_| {
            VectorError::BadSearch(format!(
                "table '{}' has no column '{n}'",
                t.table.identifier()
            ))
        })?;
        fields.push(table_schema.field(i).clone());
    }
    fields.push(Field::new(DISTANCE_COLUMN, ArrowType::Float64, false));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    // The vector column is read (and the winners re-measured in f64) when it
    // is returned anyway, or when the index's distances may follow another
    // convention than ours (only L2 is known to be ours, squared).
    let vectors_returned = names.contains(&t.req.column) || t.metric != Metric::L2;
    let mut columns = names.clone();
    if vectors_returned {
        columns.push(t.req.column.clone());
    }
    let mut fetched =
        fetch_file_rows(t.table, plan, winners.iter().map(|c| &c.row), &columns).await?;
    // Every winner's distance from its row's own vector.
    let mut winners = winners;
    for c in winners.iter_mut().filter(|_| vectors_returned) {
        if let RowRef::File { split, file, pos } = &c.row {
            if let Some(b) = fetched.get(&(*split, file.clone(), *pos)) {
                let vectors = Vectors::new(b.column(names.len()), t.dimension)?;
                if let Cell::Vector(v) = vectors.get(0) {
                    c.distance = t.metric.distance(&t.req.query, v);
                }
            }
        }
    }
    winners.sort_by(|a, b| a.distance.total_cmp(&b.distance));
    let mut rows = Vec::with_capacity(winners.len());
    let mut distances = Vec::with_capacity(winners.len());
    for c in winners {
        let row = match c.row {
            RowRef::File { split, file, pos } => {
                let b = fetched
                    .remove(&(split, file, pos))
                    .ok_or_else(|| VectorError::Internal("a winning row was not read".into()))?;
                b.project(&(0..names.len()).collect::<Vec<_>>())?
            }
            RowRef::Merged(batch) => {
                let columns = names
                    .iter()
                    .map(|n| Ok(batch.column(batch.schema().index_of(n)?).clone()))
                    .collect::<Result<Vec<_>>>()?;
                RecordBatch::try_new(
                    Arc::new(Schema::new(schema.fields()[..names.len()].to_vec())),
                    columns,
                )?
            }
        };
        rows.push(row);
        distances.push(c.distance);
    }
    let without = Arc::new(Schema::new(schema.fields()[..names.len()].to_vec()));
    let values = concat_batches(&without, &rows)?;
    let mut columns = values.columns().to_vec();
    columns.push(Arc::new(Float64Array::from(distances)));
    Ok(RecordBatch::try_new(schema, columns)?)
}
