//! Searching index payloads. Opened payloads are kept per file (index
//! files are immutable and their names unique), so repeated searches do not
//! read them again: L2 IVF-FLAT payloads decoded for [`crate::flat`],
//! every other payload as the library's reader.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use paimon_vindex_core::index::{IndexType, VectorIndexReader, VectorSearchParams};
use roaring::RoaringTreemap;
use tidelake_engine::{EngineError, Table};

use crate::error::{Result, VectorError};
use crate::flat::{FlatIndex, RowSet};
use crate::layout::Segment;
use crate::spec::VectorIndexSpec;

type Reader = VectorIndexReader<Cursor<Bytes>>;

/// An opened payload.
pub(crate) enum Payload {
    /// An L2 IVF-FLAT payload, decoded.
    Flat(FlatIndex),
    /// Any other: the library's reader over the file's bytes (boxed: the
    /// readers are large).
    Library(Box<Mutex<Reader>>),
}

impl Payload {
    fn dimension(&self) -> Result<usize> {
        match self {
            Payload::Flat(f) => Ok(f.dimension()),
            Payload::Library(r) => Ok(r
                .lock()
                .map_err(|_| VectorError::Internal("index reader poisoned".into()))?
                .dimension()),
        }
    }
}

/// Opened payloads at most kept.
const CACHED_PAYLOADS: usize = 256;

fn cache() -> &'static Mutex<HashMap<String, Arc<Payload>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Payload>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The opened payload of a segment.
pub(crate) async fn open(table: &Table, segment: &Segment) -> Result<Arc<Payload>> {
    let path = table.paths().index(&segment.entry.index_file.file_name);
    // Index file names hold a fresh uuid: unique across warehouses too.
    let key = path.clone();
    if let Some(r) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(r);
    }
    let bytes = table.store().get(&path).await.map_err(EngineError::from)?;
    let payload = tokio::task::spawn_blocking(move || {
        let reader = Reader::open(Cursor::new(bytes))?;
        match reader {
            VectorIndexReader::IvfFlat(mut flat) => match FlatIndex::decode(&mut flat)? {
                Some(decoded) => Ok(Payload::Flat(decoded)),
                None => Ok(Payload::Library(Box::new(Mutex::new(
                    VectorIndexReader::IvfFlat(flat),
                )))),
            },
            other => Ok::<_, std::io::Error>(Payload::Library(Box::new(Mutex::new(other)))),
        }
    })
    .await
    .map_err(|e| VectorError::Internal(format!("opening an index failed: {e}")))?
    .map_err(|e| VectorError::payload(&path, e))?;
    let payload = Arc::new(payload);
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CACHED_PAYLOADS {
            c.clear();
        }
        c.insert(key, payload.clone());
    }
    Ok(payload)
}

/// The rows a search may return. Searches pass a [`RowSet`] to L2
/// IVF-FLAT segments (decoded) and a roaring allow-list to the others; the
/// other form is converted.
pub(crate) enum Allowed<'a> {
    All,
    Rows(&'a RowSet),
    Roaring(&'a RoaringTreemap),
}

/// The row ids of `roaring` below `rows` as a row set.
fn row_set(roaring: &RoaringTreemap, rows: u64) -> RowSet {
    let mut set = RowSet::empty(rows);
    for id in roaring.iter().take_while(|id| *id < rows) {
        set.insert(id);
    }
    set
}

/// What to ask of a payload.
pub struct AnnParams<'a> {
    pub k: usize,
    /// `nprobe` (IVF) or the search list size (DiskANN); automatic if unset.
    pub width: Option<usize>,
    pub(crate) allowed: Allowed<'a>,
}

/// The row ids the index finds closest (possibly fewer than k), with the
/// library's distances (squared for L2).
pub(crate) fn ann_search(
    payload: &Payload,
    segment: &Segment,
    spec: &VectorIndexSpec,
    query: &[f32],
    params: &AnnParams<'_>,
) -> Result<Vec<(i64, f32)>> {
    let path = segment.entry.index_file.file_name.as_str();
    let dimension = payload.dimension()?;
    if dimension != spec.dimension {
        return Err(VectorError::payload(
            path,
            format!("has dimension {dimension}, the column {}", spec.dimension),
        ));
    }
    let reader = match payload {
        Payload::Flat(flat) => {
            let converted;
            let allowed = match params.allowed {
                Allowed::All => None,
                Allowed::Rows(rows) => Some(rows),
                Allowed::Roaring(roaring) => {
                    converted = row_set(roaring, flat.rows());
                    Some(&converted)
                }
            };
            return flat
                .search(query, params.k, params.width, allowed)
                .map_err(|e| VectorError::payload(path, e));
        }
        Payload::Library(reader) => reader,
    };
    let mut reader = reader
        .lock()
        .map_err(|_| VectorError::Internal("index reader poisoned".into()))?;
    let search = match (params.width, reader.index_type()) {
        (Some(w), IndexType::DiskAnn) => VectorSearchParams::with_l_search(params.k, w.max(1)),
        (Some(w), _) => VectorSearchParams::new(params.k, w.max(1)),
        (None, _) => VectorSearchParams::automatic(params.k),
    };
    let found = match params.allowed {
        Allowed::All => reader.search(query, search),
        Allowed::Roaring(filter) => {
            let mut bytes = Vec::with_capacity(filter.serialized_size());
            filter
                .serialize_into(&mut bytes)
                .map_err(|e| VectorError::Internal(format!("allow-list: {e}")))?;
            reader.search_with_roaring_filter(query, search, &bytes)
        }
        Allowed::Rows(rows) => {
            let filter: RoaringTreemap = rows.iter().collect();
            let mut bytes = Vec::with_capacity(filter.serialized_size());
            filter
                .serialize_into(&mut bytes)
                .map_err(|e| VectorError::Internal(format!("allow-list: {e}")))?;
            reader.search_with_roaring_filter(query, search, &bytes)
        }
    };
    let (ids, distances) = found.map_err(|e| VectorError::payload(path, e))?;
    Ok(ids.into_iter().zip(distances).collect())
}
