//! Hybrid search: a vector search and a keyword search over the same
//! snapshot, fused by reciprocal rank fusion (RRF).
//!
//! - The vector list is [`search`]'s top `candidates` rows by distance.
//! - The keyword list ranks the live rows whose text column holds at least
//!   one query term by BM25 (k1 = 1.2, b = 0.75), over the live rows that
//!   pass the same filters (document count, average length and document
//!   frequencies are taken over those rows). Text is tokenized by
//!   lowercasing and splitting on anything not alphanumeric. Rows are read
//!   as the exact search reads them: merged buckets merged, the others file
//!   by file without their deleted rows, so deleted and superseded rows are
//!   never seen.
//! - A row's score is the sum, over the lists it is in, of
//!   `1 / (rrf_k + rank)` with ranks from 1. Rows are matched between the
//!   lists by primary key. Ties keep the better vector rank first, then
//!   the better keyword rank.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray,
};
use datafusion::arrow::compute::{concat_batches, interleave};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use futures::TryStreamExt;
use tidelake_engine::{ScanPlan, Table};

use crate::error::{Result, VectorError};
use crate::search::{allowed_positions, kept_splits, passed, passes, search, SearchRequest};
use crate::search::{fetch_file_rows, RowRef};
use crate::search::{RowFilter, DISTANCE_COLUMN};

/// Name of the fused score column.
pub const SCORE_COLUMN: &str = "_score";
/// Name of the vector rank column (NULL: not in the vector list).
pub const VECTOR_RANK_COLUMN: &str = "_vector_rank";
/// Name of the keyword rank column (NULL: not in the keyword list).
pub const KEYWORD_RANK_COLUMN: &str = "_keyword_rank";

/// The RRF constant Milvus and Paimon use by default.
pub const DEFAULT_RRF_K: f64 = 60.0;

const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;

/// One hybrid search.
#[derive(Clone, Debug)]
pub struct HybridRequest {
    /// The vector side (its `k` is ignored: `candidates` rows are asked
    /// for); its filters restrict the keyword side too.
    pub vector: SearchRequest,
    pub text_column: String,
    pub text_query: String,
    /// Rows returned.
    pub k: usize,
    pub rrf_k: f64,
    /// Rows in each list; `max(k, 100)` by default.
    pub candidates: Option<usize>,
}

/// Lowercase terms: runs of alphanumeric characters.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The output schema: the table's columns, then the fused columns.
pub fn hybrid_schema(table: &Table) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(SCORE_COLUMN, ArrowType::Float64, false));
    fields.push(Field::new(VECTOR_RANK_COLUMN, ArrowType::Int64, true));
    fields.push(Field::new(KEYWORD_RANK_COLUMN, ArrowType::Int64, true));
    fields.push(Field::new(DISTANCE_COLUMN, ArrowType::Float64, true));
    Arc::new(Schema::new(fields))
}

/// Checks a request against the table before anything is read.
pub fn check_request(table: &Table, req: &HybridRequest) -> Result<Vec<String>> {
    if req.k == 0 {
        return Err(VectorError::BadSearch(
            "hybrid_search: k must be at least 1".into(),
        ));
    }
    if req.candidates == Some(0) {
        return Err(VectorError::BadSearch(
            "hybrid_search: candidates must be at least 1".into(),
        ));
    }
    if !(req.rrf_k.is_finite() && req.rrf_k >= 0.0) {
        return Err(VectorError::BadSearch(format!(
            "hybrid_search: rrf_k must be a number >= 0, not {}",
            req.rrf_k
        )));
    }
    if table.schema().primary_keys.is_empty() {
        return Err(VectorError::BadSearch(format!(
            "hybrid_search: table '{}' has no primary key (rows of the two lists are matched by key)",
            table.identifier()
        )));
    }
    let arrow = table.arrow_schema();
    if arrow.field_with_name(&req.vector.column).is_err() {
        return Err(VectorError::BadSearch(format!(
            "hybrid_search: vector column '{}' is not a column of table '{}'",
            req.vector.column,
            table.identifier()
        )));
    }
    let field = arrow.field_with_name(&req.text_column).map_err(|_| {
        VectorError::BadSearch(format!(
            "hybrid_search: text column '{}' is not a column of table '{}'",
            req.text_column,
            table.identifier()
        ))
    })?;
    if !matches!(
        field.data_type(),
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
    ) {
        return Err(VectorError::BadSearch(format!(
            "hybrid_search: text column '{}' is {}, not a string",
            req.text_column,
            field.data_type()
        )));
    }
    let mut terms = tokenize(&req.text_query);
    terms.sort();
    terms.dedup();
    if terms.is_empty() {
        return Err(VectorError::BadSearch(format!(
            "hybrid_search: the keyword query '{}' has no terms",
            req.text_query
        )));
    }
    Ok(terms)
}

/// Runs a hybrid search: the k best rows by fused score, best first, in
/// [`hybrid_schema`].
pub async fn hybrid_search(table: &Table, req: &HybridRequest) -> Result<RecordBatch> {
    let terms = check_request(table, req)?;
    let candidates = req.candidates.unwrap_or(req.k.max(100));
    let plan = table
        .scan()
        .with_snapshot(req.vector.snapshot)
        .plan()
        .await?;
    // Both lists read the snapshot the plan resolved.
    let mut vreq = req.vector.clone();
    vreq.k = candidates;
    vreq.projection = None;
    vreq.snapshot = plan.snapshot().map(|s| s.id).or(vreq.snapshot);
    let by_vector = search(table, &vreq).await?.batch;
    let by_keyword = keyword_list(table, &plan, req, &terms, candidates).await?;
    fuse(table, req, &by_vector, &by_keyword)
}

/// A live row holding a query term.
struct Doc {
    row: RowRef,
    /// Occurrences of each query term.
    tf: Vec<u32>,
    length: usize,
}

/// Counts over the live, passing rows, for BM25.
#[derive(Default)]
struct Corpus {
    rows: u64,
    tokens: u64,
    docs: Vec<Doc>,
}

impl Corpus {
    /// Adds one row's text; keeps the row when it holds a query term.
    fn add(&mut self, text: Option<&str>, terms: &[String], row: impl FnOnce() -> RowRef) {
        self.rows += 1;
        let Some(text) = text else {
            return;
        };
        let tokens = tokenize(text);
        self.tokens += tokens.len() as u64;
        let tf: Vec<u32> = terms
            .iter()
            .map(|t| tokens.iter().filter(|x| *x == t).count() as u32)
            .collect();
        if tf.iter().any(|n| *n > 0) {
            self.docs.push(Doc {
                row: row(),
                tf,
                length: tokens.len(),
            });
        }
    }

    /// BM25 scores of the kept rows.
    fn scores(&self, terms: usize) -> Vec<f64> {
        let n = self.rows as f64;
        let avg = if self.rows == 0 {
            1.0
        } else {
            (self.tokens as f64 / n).max(f64::MIN_POSITIVE)
        };
        let idf: Vec<f64> = (0..terms)
            .map(|t| {
                let df = self.docs.iter().filter(|d| d.tf[t] > 0).count() as f64;
                (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
            })
            .collect();
        self.docs
            .iter()
            .map(|d| {
                let norm = BM25_K1 * (1.0 - BM25_B + BM25_B * d.length as f64 / avg);
                d.tf.iter()
                    .zip(&idf)
                    .map(|(tf, idf)| {
                        let tf = f64::from(*tf);
                        idf * tf * (BM25_K1 + 1.0) / (tf + norm)
                    })
                    .sum()
            })
            .collect()
    }
}

/// The text values of one column (NULLs as `None`).
fn texts(column: &ArrayRef) -> Result<Vec<Option<&str>>> {
    let a = column.as_any();
    let out = if let Some(s) = a.downcast_ref::<StringArray>() {
        s.iter().collect()
    } else if let Some(s) = a.downcast_ref::<LargeStringArray>() {
        s.iter().collect()
    } else if let Some(s) = a.downcast_ref::<StringViewArray>() {
        s.iter().collect()
    } else {
        return Err(VectorError::BadSearch(format!(
            "hybrid_search: text column is {}, not a string",
            column.data_type()
        )));
    };
    Ok(out)
}

/// The top `candidates` rows by BM25, best first, all table columns.
async fn keyword_list(
    table: &Table,
    plan: &ScanPlan,
    req: &HybridRequest,
    terms: &[String],
    candidates: usize,
) -> Result<RecordBatch> {
    let filter = req.vector.filter.as_ref();
    let keep = kept_splits(table, plan, req.vector.partition_filter.as_ref())?;
    let mut corpus = Corpus::default();
    for (i, split) in plan.splits().iter().enumerate() {
        if !keep[i] {
            continue;
        }
        if plan.merges(split) {
            read_merged(plan, i, &req.text_column, filter, terms, &mut corpus).await?;
            continue;
        }
        let dvs = split.deletion_vectors.as_deref();
        for file in split.files_to_read() {
            let positions = allowed_positions(table, filter, split, file, dvs).await?;
            if positions.len() == 0 {
                continue;
            }
            let listed = positions.listed();
            let listed = listed.as_deref();
            let batches = table
                .read_file_columns(
                    &split.partition_path,
                    split.bucket,
                    file,
                    std::slice::from_ref(&req.text_column),
                    listed,
                )
                .await?;
            let mut at = 0usize;
            for batch in &batches {
                for text in texts(batch.column(0))? {
                    let pos = listed.map_or(at as u64, |p| p.get(at).copied().unwrap_or(u64::MAX));
                    at += 1;
                    corpus.add(text, terms, || RowRef::File {
                        split: i,
                        file: file.file_name.clone(),
                        pos,
                    });
                }
            }
        }
    }
    let scores = corpus.scores(terms.len());
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable: equal scores keep the read order.
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    order.truncate(candidates);
    let mut docs: Vec<Option<Doc>> = corpus.docs.into_iter().map(Some).collect();
    let rows: Vec<RowRef> = order
        .into_iter()
        .filter_map(|i| docs[i].take().map(|d| d.row))
        .collect();
    read_rows(table, plan, rows).await
}

/// A merged split: every row read merged, its passing rows counted.
async fn read_merged(
    plan: &ScanPlan,
    split: usize,
    column: &str,
    filter: Option<&RowFilter>,
    terms: &[String],
    corpus: &mut Corpus,
) -> Result<()> {
    let mut stream = plan.read_split(split);
    while let Some(batch) = stream.try_next().await? {
        let mask = passes(filter, &batch)?;
        let column = batch.column(batch.schema().index_of(column)?).clone();
        for (row, text) in texts(&column)?.into_iter().enumerate() {
            if passed(&mask, row) {
                corpus.add(text, terms, || RowRef::Merged(batch.slice(row, 1)));
            }
        }
    }
    Ok(())
}

/// The rows, in order, with all table columns.
async fn read_rows(table: &Table, plan: &ScanPlan, rows: Vec<RowRef>) -> Result<RecordBatch> {
    let schema = table.arrow_schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let fetched = fetch_file_rows(table, plan, rows.iter(), &names).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let batch = match r {
            RowRef::File { split, file, pos } => fetched
                .get(&(*split, file.clone(), *pos))
                .cloned()
                .ok_or_else(|| VectorError::Internal("a keyword row was not read".into()))?,
            RowRef::Merged(b) => b.clone(),
        };
        out.push(RecordBatch::try_new(
            schema.clone(),
            batch.columns().to_vec(),
        )?);
    }
    Ok(concat_batches(&schema, &out)?)
}

/// The primary key of each row, as text (rows of one snapshot have
/// distinct keys).
fn keys(table: &Table, batch: &RecordBatch) -> Result<Vec<String>> {
    let columns = table
        .schema()
        .primary_keys
        .iter()
        .map(|k| Ok(batch.column(batch.schema().index_of(k)?).clone()))
        .collect::<Result<Vec<_>>>()?;
    (0..batch.num_rows())
        .map(|row| {
            let parts = columns
                .iter()
                .map(|c| array_value_to_string(c, row))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(parts.join("\u{1f}"))
        })
        .collect()
}

/// A fused row.
struct Fused {
    /// (0: vector list, 1: keyword list; row in it).
    source: (usize, usize),
    vector_rank: Option<usize>,
    keyword_rank: Option<usize>,
    distance: Option<f64>,
    score: f64,
}

fn fuse(
    table: &Table,
    req: &HybridRequest,
    by_vector: &RecordBatch,
    by_keyword: &RecordBatch,
) -> Result<RecordBatch> {
    let width = table.arrow_schema().fields().len();
    let vector_rows = by_vector.project(&(0..width).collect::<Vec<_>>())?;
    let distances = by_vector
        .column(width)
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| VectorError::Internal("distances are not f64".into()))?;
    let rrf = |rank: usize| 1.0 / (req.rrf_k + rank as f64);
    let mut fused: Vec<Fused> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (row, key) in keys(table, &vector_rows)?.into_iter().enumerate() {
        by_key.insert(key, fused.len());
        fused.push(Fused {
            source: (0, row),
            vector_rank: Some(row + 1),
            keyword_rank: None,
            distance: Some(distances.value(row)),
            score: rrf(row + 1),
        });
    }
    for (row, key) in keys(table, by_keyword)?.into_iter().enumerate() {
        match by_key.get(&key) {
            Some(at) => {
                fused[*at].keyword_rank = Some(row + 1);
                fused[*at].score += rrf(row + 1);
            }
            None => fused.push(Fused {
                source: (1, row),
                vector_rank: None,
                keyword_rank: Some(row + 1),
                distance: None,
                score: rrf(row + 1),
            }),
        }
    }
    let rank = |r: Option<usize>| r.unwrap_or(usize::MAX);
    fused.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(rank(a.vector_rank).cmp(&rank(b.vector_rank)))
            .then(rank(a.keyword_rank).cmp(&rank(b.keyword_rank)))
    });
    fused.truncate(req.k);
    let indices: Vec<(usize, usize)> = fused.iter().map(|f| f.source).collect();
    let mut columns = Vec::with_capacity(width + 4);
    for c in 0..width {
        let sources = [
            vector_rows.column(c).as_ref(),
            by_keyword.column(c).as_ref(),
        ];
        columns.push(interleave(&sources, &indices)?);
    }
    let as_i64 = |r: Option<usize>| r.map(|r| r as i64);
    columns.push(Arc::new(Float64Array::from_iter_values(
        fused.iter().map(|f| f.score),
    )));
    columns.push(Arc::new(Int64Array::from_iter(
        fused.iter().map(|f| as_i64(f.vector_rank)),
    )));
    columns.push(Arc::new(Int64Array::from_iter(
        fused.iter().map(|f| as_i64(f.keyword_rank)),
    )));
    columns.push(Arc::new(Float64Array::from_iter(
        fused.iter().map(|f| f.distance),
    )));
    Ok(RecordBatch::try_new(hybrid_schema(table), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lowercase_alphanumeric_runs() {
        assert_eq!(
            tokenize("Lake-house, LAKE_2 été!"),
            vec!["lake", "house", "lake", "2", "été"]
        );
        assert!(tokenize(" -- ,, ").is_empty());
    }
}
