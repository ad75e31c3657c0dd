//! Searching index payloads with Paimon's vector index library. Opened
//! payloads are kept per file (index files are immutable and their names
//! unique), so repeated searches do not read them again.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use paimon_vindex_core::index::{IndexType, VectorIndexReader, VectorSearchParams};
use roaring::RoaringTreemap;
use tidelake_engine::{EngineError, Table};

use crate::error::{Result, VectorError};
use crate::layout::Segment;
use crate::spec::VectorIndexSpec;

type Reader = VectorIndexReader<Cursor<Bytes>>;

/// Opened payloads at most kept.
const CACHED_PAYLOADS: usize = 256;

fn cache() -> &'static Mutex<HashMap<String, Arc<Mutex<Reader>>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Mutex<Reader>>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The opened payload of a segment.
async fn open(table: &Table, segment: &Segment) -> Result<Arc<Mutex<Reader>>> {
    let path = table.paths().index(&segment.entry.index_file.file_name);
    // Index file names hold a fresh uuid: unique across warehouses too.
    let key = path.clone();
    if let Some(r) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(r);
    }
    let bytes = table.store().get(&path).await.map_err(EngineError::from)?;
    let reader = tokio::task::spawn_blocking(move || Reader::open(Cursor::new(bytes)))
        .await
        .map_err(|e| VectorError::Internal(format!("opening an index failed: {e}")))?
        .map_err(|e| VectorError::payload(&path, e))?;
    let reader = Arc::new(Mutex::new(reader));
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CACHED_PAYLOADS {
            c.clear();
        }
        c.insert(key, reader.clone());
    }
    Ok(reader)
}

/// What to ask of a payload.
pub struct AnnParams<'a> {
    pub k: usize,
    /// `nprobe` (IVF) or the search list size (DiskANN); automatic if unset.
    pub width: Option<usize>,
    /// Only these row ids (all when unset).
    pub filter: Option<&'a RoaringTreemap>,
}

/// The row ids the index finds closest (possibly fewer than k), with the
/// library's distances (squared for L2).
pub async fn ann_search(
    table: &Table,
    segment: &Segment,
    spec: &VectorIndexSpec,
    query: &[f32],
    params: &AnnParams<'_>,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let reader = open(table, segment).await?;
    let path = segment.entry.index_file.file_name.clone();
    let mut reader = reader
        .lock()
        .map_err(|_| VectorError::Internal("index reader poisoned".into()))?;
    if reader.dimension() != spec.dimension {
        return Err(VectorError::payload(
            path,
            format!(
                "has dimension {}, the column {}",
                reader.dimension(),
                spec.dimension
            ),
        ));
    }
    let search = match (params.width, reader.index_type()) {
        (Some(w), IndexType::DiskAnn) => VectorSearchParams::with_l_search(params.k, w.max(1)),
        (Some(w), _) => VectorSearchParams::new(params.k, w.max(1)),
        (None, _) => VectorSearchParams::automatic(params.k),
    };
    let found = match params.filter {
        None => reader.search(query, search),
        Some(filter) => {
            let mut bytes = Vec::with_capacity(filter.serialized_size());
            filter
                .serialize_into(&mut bytes)
                .map_err(|e| VectorError::Internal(format!("allow-list: {e}")))?;
            reader.search_with_roaring_filter(query, search, &bytes)
        }
    };
    found.map_err(|e| VectorError::payload(path, e))
}
