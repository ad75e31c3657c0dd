//! What a search derives from a snapshot before it measures anything: the
//! scan plan (splits, live files, deletion vectors), the index segments of
//! the snapshot's index manifest, which segment covers which live file, and
//! per segment the rows that are not deleted. All of it follows from the
//! snapshot's files, which are immutable, so it is derived once per
//! snapshot and kept: a search then only checks which snapshot is the
//! latest (or reads the one it was asked for).
//!
//! The key holds the snapshot's id and the names of its manifest lists and
//! index manifest (a rollback may write `snapshot-N` again with other
//! files, which have other names), the table's location and schema, and
//! the index the segments were decoded for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tidelake_engine::{ScanPlan, Split, Table};
use tidelake_format::manifest::DataFileMeta;
use tidelake_format::snapshot::Snapshot;

use crate::error::Result;
use crate::flat::RowSet;
use crate::layout::Segment;
use crate::spec::VectorIndexSpec;
use tidelake_engine::WeightedLru;

/// Bytes of contexts kept (estimated: their row sets and file lists).
const CACHED_CONTEXT_BYTES: usize = 128 * 1024 * 1024;

fn cache() -> &'static WeightedLru<String, Arc<SearchContext>> {
    static CACHE: OnceLock<WeightedLru<String, Arc<SearchContext>>> = OnceLock::new();
    CACHE.get_or_init(|| WeightedLru::with_largest(CACHED_CONTEXT_BYTES, CACHED_CONTEXT_BYTES / 4))
}

/// A snapshot as searches see it.
pub(crate) struct SearchContext {
    pub plan: ScanPlan,
    /// Segments of the searched index in the snapshot's index manifest.
    pub segments: Vec<Segment>,
    /// Per split of `plan`, which segments cover its files.
    pub coverage: Vec<Coverage>,
    /// Per segment, its rows that no deletion vector marks (kept once
    /// asked for; only for searches without a row filter).
    live: Mutex<HashMap<usize, Arc<RowSet>>>,
}

/// The segments of one split that match its live files.
#[derive(Default)]
pub(crate) struct Coverage {
    /// Indexes into `segments` of the segments whose source files are all
    /// live at the segment's level.
    pub active: Vec<usize>,
    /// File name -> (position in `active`, the file's first row id in the
    /// segment).
    pub covered: HashMap<String, (usize, i64)>,
}

impl SearchContext {
    /// The rows of segment `segment` that no deletion vector marks, from
    /// `build` the first time.
    pub(crate) fn live_rows(&self, segment: usize, build: impl FnOnce() -> RowSet) -> Arc<RowSet> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.entry(segment)
            .or_insert_with(|| Arc::new(build()))
            .clone()
    }
}

/// The context of the snapshot a search reads: `snapshot`, or the latest.
pub(crate) async fn context(
    table: &Table,
    snapshot: Option<i64>,
    index: Option<&VectorIndexSpec>,
) -> Result<Arc<SearchContext>> {
    let snap = match snapshot {
        Some(id) => table.snapshots().snapshot(id).await?,
        // One or two small reads when the table did not change.
        None => table.fresh_latest_snapshot().await?,
    };
    let key = snap.as_ref().map(|s| key_of(table, s, index));
    if let Some(hit) = key.as_ref().and_then(|k| cache().get(k)) {
        return Ok(hit);
    }
    // Planned for the snapshot just read (an absent one fails as before).
    let plan = table
        .scan()
        .with_snapshot(snapshot.or(snap.as_ref().map(|s| s.id)))
        .plan()
        .await?;
    let segments: Vec<Segment> = match index {
        Some(spec) => table
            .index_manifest_entries(plan.snapshot())
            .await?
            .iter()
            .filter_map(|e| Segment::decode(e, &spec.index_type, spec.field_id))
            .collect(),
        None => Vec::new(),
    };
    let coverage = plan
        .splits()
        .iter()
        .map(|split| {
            if plan.merges(split) {
                Coverage::default()
            } else {
                coverage(split, &segments)
            }
        })
        .collect();
    let context = Arc::new(SearchContext {
        plan,
        segments,
        coverage,
        live: Mutex::new(HashMap::new()),
    });
    // Keyed by the snapshot the plan read (the same, but for a race with
    // a rollback in between).
    if let Some(s) = context.plan.snapshot() {
        let weight = weight(&context);
        cache().insert(key_of(table, s, index), context.clone(), weight);
    }
    Ok(context)
}

fn key_of(table: &Table, s: &Snapshot, index: Option<&VectorIndexSpec>) -> String {
    format!(
        "{}|schema {}|snapshot {} {} {} {}|{}",
        // The branch's snapshots: another branch is another key.
        table.paths().snapshot_dir(),
        table.schema().id,
        s.id,
        s.base_manifest_list,
        s.delta_manifest_list,
        s.index_manifest.as_deref().unwrap_or(""),
        index.map_or(String::new(), |i| format!(
            "{} {}",
            i.index_type, i.field_id
        )),
    )
}

/// An estimate of the bytes a context holds (its row sets are added as
/// they are built, not counted here; they are bounded by the segments'
/// rows, a bit each).
fn weight(c: &SearchContext) -> usize {
    let files: usize = c.plan.splits().iter().map(|s| s.files.len()).sum();
    let rows: i64 = c.segments.iter().map(|s| s.source.rows()).sum();
    4096 + files * 512 + c.segments.len() * 1024 + usize::try_from(rows / 8).unwrap_or(0)
}

fn coverage(split: &Split, segments: &[Segment]) -> Coverage {
    let live: HashMap<&str, &DataFileMeta> = split
        .files_to_read()
        .map(|f| (f.file_name.as_str(), f))
        .collect();
    let mut out = Coverage::default();
    for (i, s) in segments.iter().enumerate() {
        if s.entry.partition != split.partition || s.entry.bucket != split.bucket {
            continue;
        }
        let matches = s.source.files.iter().all(|src| {
            live.get(src.name.as_str())
                .is_some_and(|f| f.row_count == src.row_count && f.level == s.source.level)
        });
        let already = s
            .source
            .files
            .iter()
            .any(|f| out.covered.contains_key(&f.name));
        if !matches || already {
            continue;
        }
        let mut offset = 0;
        for src in &s.source.files {
            out.covered
                .insert(src.name.clone(), (out.active.len(), offset));
            offset += src.row_count;
        }
        out.active.push(i);
    }
    out
}
