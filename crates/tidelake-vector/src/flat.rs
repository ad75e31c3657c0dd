//! IVF-FLAT payloads decoded once into memory, and searched here.
//!
//! The library's reader copies every probed list out of the payload and
//! decodes its row ids again at each search (about 0.5 MB per list at 128
//! dimensions), which costs more than measuring the list. An L2 segment is
//! therefore decoded once, through the library's own reader (the file stays
//! what Paimon writes and reads), into one contiguous block of vectors with
//! its row ids, and searched by the loop below: the same probes (the
//! `nprobe` centroids closest in L2) and the same distances (squared L2 in
//! `f32`) as the library's search.

use std::io;

use datafusion::arrow::buffer::BooleanBuffer;
use paimon_vindex_core::autotune::infer_ivf_nprobe;
use paimon_vindex_core::distance::MetricType;
use paimon_vindex_core::io::SeekRead;
use paimon_vindex_core::ivfflat_io::IVFFlatIndexReader;

/// A decoded L2 IVF-FLAT segment.
pub(crate) struct FlatIndex {
    dimension: usize,
    nlist: usize,
    centroids: Vec<f32>,
    /// List `l` holds rows `starts[l]..starts[l + 1]` of `ids` and `vectors`.
    starts: Vec<usize>,
    ids: Vec<i64>,
    vectors: Vec<f32>,
    /// `vectors` in half precision, where the CPU converts it (F16C): the
    /// scans read these (half the memory traffic, which bounds them) and
    /// re-measure their best candidates from `vectors`.
    halves: Option<Vec<u16>>,
    /// Row id -> index into `ids` (`u32::MAX`: no vector), where the ids
    /// are dense enough: a search of every list with an allow-list then
    /// measures the allowed rows directly.
    rows_by_id: Option<Vec<u32>>,
}

/// Candidates a half-precision scan keeps per result wanted, re-measured in
/// `f32` for the final order. Half precision keeps 11 significant bits, so
/// only near-ties can swap, and those lie well inside this margin.
const RERANK_PER_RESULT: usize = 2;
/// ... plus this many.
const RERANK_EXTRA: usize = 16;

/// Row ids of a segment a search may return: a dense bitmap over
/// `[0, rows)`, as testing a bit costs far less than a roaring lookup in
/// the scan's inner loop.
#[derive(Clone, Debug)]
pub(crate) struct RowSet {
    words: Vec<u64>,
    len: u64,
}

impl RowSet {
    /// No row of `[0, rows)`.
    pub(crate) fn empty(rows: u64) -> RowSet {
        RowSet {
            words: vec![0; rows.div_ceil(64) as usize],
            len: 0,
        }
    }

    /// Rows `range` added (the range must lie inside the set's rows).
    pub(crate) fn insert_range(&mut self, range: std::ops::Range<u64>) {
        let (mut at, end) = (range.start, range.end);
        while at < end {
            let word = (at / 64) as usize;
            let bit = at % 64;
            let span = (64 - bit).min(end - at);
            let mask = if span == 64 {
                u64::MAX
            } else {
                ((1u64 << span) - 1) << bit
            };
            self.len += u64::from((mask & !self.words[word]).count_ones());
            self.words[word] |= mask;
            at += span;
        }
    }

    /// Rows `offset + i` added for every bit `i` set in `bits` (which must
    /// lie inside the set's rows), a word at a time.
    pub(crate) fn insert_bits(&mut self, offset: u64, bits: &BooleanBuffer) {
        let shift = (offset % 64) as u32;
        let first = (offset / 64) as usize;
        let chunks = bits.bit_chunks();
        let words = chunks
            .iter()
            .chain(std::iter::once(chunks.remainder_bits()));
        for (j, chunk) in words.enumerate() {
            if chunk == 0 {
                continue;
            }
            let at = first + j;
            if let Some(w) = self.words.get_mut(at) {
                *w |= chunk << shift;
            }
            if shift > 0 {
                if let Some(w) = self.words.get_mut(at + 1) {
                    *w |= chunk >> (64 - shift);
                }
            }
        }
        self.len = self.words.iter().map(|w| u64::from(w.count_ones())).sum();
    }

    pub(crate) fn insert(&mut self, row: u64) {
        let (word, bit) = ((row / 64) as usize, row % 64);
        if let Some(w) = self.words.get_mut(word) {
            if *w & (1 << bit) == 0 {
                *w |= 1 << bit;
                self.len += 1;
            }
        }
    }

    pub(crate) fn remove(&mut self, row: u64) {
        let (word, bit) = ((row / 64) as usize, row % 64);
        if let Some(w) = self.words.get_mut(word) {
            if *w & (1 << bit) != 0 {
                *w &= !(1 << bit);
                self.len -= 1;
            }
        }
    }

    #[inline]
    pub(crate) fn contains(&self, row: i64) -> bool {
        let Ok(row) = u64::try_from(row) else {
            return false;
        };
        self.words
            .get((row / 64) as usize)
            .is_some_and(|w| w & (1 << (row % 64)) != 0)
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The rows held, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, w)| {
            let mut w = *w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = u64::from(w.trailing_zeros());
                w &= w - 1;
                Some(i as u64 * 64 + bit)
            })
        })
    }
}

impl FlatIndex {
    /// Decodes an L2 IVF-FLAT payload (`None`: another metric, searched by
    /// the library).
    pub(crate) fn decode<R: SeekRead>(
        reader: &mut IVFFlatIndexReader<R>,
    ) -> io::Result<Option<FlatIndex>> {
        if reader.metric != MetricType::L2 {
            return Ok(None);
        }
        reader.ensure_loaded()?;
        let (dimension, nlist) = (reader.d, reader.nlist);
        let total = usize::try_from(reader.total_vectors)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative vector count"))?;
        let mut starts = Vec::with_capacity(nlist + 1);
        let mut ids = Vec::with_capacity(total);
        let mut vectors = Vec::with_capacity(total * dimension);
        starts.push(0);
        for list in 0..nlist {
            let (list_ids, list_vectors) = reader.read_inverted_list(list)?;
            if list_vectors.len() != list_ids.len() * dimension {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("IVF-FLAT list {list} holds a partial vector"),
                ));
            }
            ids.extend_from_slice(&list_ids);
            vectors.extend_from_slice(&list_vectors);
            starts.push(ids.len());
        }
        if reader.quantizer_centroids.len() != nlist * dimension {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "IVF-FLAT centroids do not match nlist x dimension",
            ));
        }
        let halves = half::encode(&vectors, dimension);
        let rows_by_id = index_by_id(&ids);
        Ok(Some(FlatIndex {
            dimension,
            nlist,
            centroids: reader.quantizer_centroids.clone(),
            starts,
            ids,
            vectors,
            halves,
            rows_by_id,
        }))
    }

    pub(crate) fn dimension(&self) -> usize {
        self.dimension
    }

    /// Rows the row ids may address: one past the largest.
    pub(crate) fn rows(&self) -> u64 {
        self.ids
            .iter()
            .max()
            .map_or(0, |m| u64::try_from(*m).map_or(0, |m| m + 1))
    }

    /// The `k` closest rows (row id, squared L2 distance), closest first,
    /// among `allowed` (all when `None`), probing the `nprobe` lists whose
    /// centroids are closest; `nprobe` unset: the library's automatic
    /// width, doubled while fewer than `k` allowed rows were found.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        nprobe: Option<usize>,
        allowed: Option<&RowSet>,
    ) -> io::Result<Vec<(i64, f32)>> {
        if query.len() != self.dimension {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "query length {} does not match index dimension {}",
                    query.len(),
                    self.dimension
                ),
            ));
        }
        if k == 0 || self.ids.is_empty() {
            return Ok(Vec::new());
        }
        // Every list with an allow-list: an exact search, of the allowed
        // rows alone.
        if let (Some(allowed), Some(rows_by_id)) = (allowed, &self.rows_by_id) {
            if nprobe.is_some_and(|n| n >= self.nlist) {
                return Ok(self.measure_allowed(query, k, allowed, rows_by_id));
            }
        }
        let available = allowed.map_or(self.ids.len() as u64, RowSet::len) as usize;
        let (mut width, auto) = match nprobe {
            Some(n) => (n.clamp(1, self.nlist), false),
            None => {
                let matching = allowed.map(|a| a.len() as usize);
                (
                    infer_ivf_nprobe(self.nlist, self.ids.len(), k, matching)?.clamp(1, self.nlist),
                    true,
                )
            }
        };
        // A fixed width needs only its lists in order; an automatic one may
        // widen up to all of them.
        let order = self.probe_order(query, if auto { self.nlist } else { width });
        loop {
            let top = self.scan_lists(query, k, &order[..width], allowed);
            let found = top.items.len();
            if !auto || width >= self.nlist || found >= k.min(available) {
                return Ok(top.items);
            }
            width = (width * 2).min(self.nlist);
        }
    }

    /// The k closest of the allowed rows, each measured where it lies.
    fn measure_allowed(
        &self,
        query: &[f32],
        k: usize,
        allowed: &RowSet,
        rows_by_id: &[u32],
    ) -> Vec<(i64, f32)> {
        let d = self.dimension;
        let mut top = TopK::new(k);
        for id in allowed.iter() {
            let Some(&row) = rows_by_id.get(id as usize) else {
                break;
            };
            if row == u32::MAX {
                continue;
            }
            let row = row as usize;
            let distance = l2_squared(query, &self.vectors[row * d..(row + 1) * d]);
            if distance < top.bound() {
                top.push(self.ids[row], distance);
            }
        }
        top.items
    }

    /// The k closest allowed rows of `lists` (row id, squared L2).
    fn scan_lists(
        &self,
        query: &[f32],
        k: usize,
        lists: &[usize],
        allowed: Option<&RowSet>,
    ) -> TopK {
        let d = self.dimension;
        let mut top = TopK::new(k);
        // A search of every list is an exact search: measured in f32 only.
        let halves = self.halves.as_ref().filter(|_| lists.len() < self.nlist);
        let Some(halves) = halves else {
            for &list in lists {
                let (start, end) = (self.starts[list], self.starts[list + 1]);
                scan(
                    query,
                    &self.ids[start..end],
                    &self.vectors[start * d..end * d],
                    allowed,
                    &mut top,
                );
            }
            return top;
        };
        // Candidates by row index (not id), re-measured in f32.
        let mut pool = TopK::new(k * RERANK_PER_RESULT + RERANK_EXTRA);
        for &list in lists {
            let (start, end) = (self.starts[list], self.starts[list + 1]);
            half::scan(
                query,
                start,
                &self.ids[start..end],
                &halves[start * d..end * d],
                allowed,
                &mut pool,
            );
        }
        for (row, _) in pool.items {
            let row = row as usize;
            let distance = l2_squared(query, &self.vectors[row * d..(row + 1) * d]);
            if distance < top.bound() {
                top.push(self.ids[row], distance);
            }
        }
        top
    }

    /// The `width` lists whose centroids are closest to `query` in L2,
    /// closest first.
    fn probe_order(&self, query: &[f32], width: usize) -> Vec<usize> {
        let d = self.dimension;
        let mut by_distance: Vec<(f32, usize)> = (0..self.nlist)
            .map(|l| (l2_squared(query, &self.centroids[l * d..(l + 1) * d]), l))
            .collect();
        let order = |a: &(f32, usize), b: &(f32, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        let width = width.clamp(1, self.nlist);
        if width < by_distance.len() {
            by_distance.select_nth_unstable_by(width - 1, order);
            by_distance.truncate(width);
        }
        by_distance.sort_unstable_by(order);
        by_distance.into_iter().map(|(_, l)| l).collect()
    }
}

/// Row id -> index into `ids`, when the ids are non-negative, fit `u32`,
/// and span at most four times as many ids as there are rows.
fn index_by_id(ids: &[i64]) -> Option<Vec<u32>> {
    let max = *ids.iter().max()?;
    let span = usize::try_from(max).ok()?.checked_add(1)?;
    if ids.iter().any(|i| *i < 0) || span > ids.len().saturating_mul(4) || span > u32::MAX as usize
    {
        return None;
    }
    let mut rows = vec![u32::MAX; span];
    for (row, id) in ids.iter().enumerate() {
        rows[*id as usize] = row as u32;
    }
    Some(rows)
}

/// The k smallest distances seen, sorted.
struct TopK {
    k: usize,
    items: Vec<(i64, f32)>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    #[inline]
    fn bound(&self) -> f32 {
        if self.items.len() < self.k {
            f32::INFINITY
        } else {
            self.items[self.k - 1].1
        }
    }

    fn push(&mut self, id: i64, distance: f32) {
        let at = self.items.partition_point(|x| x.1 <= distance);
        self.items.insert(at, (id, distance));
        self.items.truncate(self.k);
    }
}

/// Measures the rows of one list.
fn scan(query: &[f32], ids: &[i64], vectors: &[f32], allowed: Option<&RowSet>, top: &mut TopK) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { scan_avx2(query, ids, vectors, allowed, top) };
        return;
    }
    scan_rows::<false>(query, ids, vectors, allowed, top);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_avx2(
    query: &[f32],
    ids: &[i64],
    vectors: &[f32],
    allowed: Option<&RowSet>,
    top: &mut TopK,
) {
    scan_rows::<true>(query, ids, vectors, allowed, top);
}

#[inline(always)]
fn scan_rows<const FMA: bool>(
    query: &[f32],
    ids: &[i64],
    vectors: &[f32],
    allowed: Option<&RowSet>,
    top: &mut TopK,
) {
    let d = query.len();
    let mut bound = top.bound();
    for (row, vector) in vectors.chunks_exact(d).enumerate() {
        let id = ids[row];
        if allowed.is_some_and(|a| !a.contains(id)) {
            continue;
        }
        let distance = l2_body::<FMA>(query, vector);
        if distance < bound {
            top.push(id, distance);
            bound = top.bound();
        }
    }
}

/// Squared L2 distance in `f32`.
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { l2_avx2(a, b) };
    }
    l2_body::<false>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
    l2_body::<true>(a, b)
}

/// Sixteen independent partial sums, so the compiler keeps them in vector
/// registers (two AVX2 registers) instead of one serial chain.
#[inline(always)]
fn l2_body<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (a_blocks, a_rest) = a.as_chunks::<LANES>();
    let (b_blocks, b_rest) = b.as_chunks::<LANES>();
    for (x, y) in a_blocks.iter().zip(b_blocks) {
        for i in 0..LANES {
            let diff = x[i] - y[i];
            acc[i] = if FMA {
                diff.mul_add(diff, acc[i])
            } else {
                acc[i] + diff * diff
            };
        }
    }
    let mut sum = 0f32;
    for (x, y) in a_rest.iter().zip(b_rest) {
        let diff = x - y;
        sum += diff * diff;
    }
    // Pairwise, as the lanes were kept.
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + sum
}

/// Vectors in half precision (IEEE binary16) and their scan, with the
/// CPU's conversion instructions (F16C), which also round as IEEE does.
mod half {
    use super::{RowSet, TopK};

    /// The largest magnitude half precision holds; a larger value would
    /// become infinite and its row unreachable by the scan.
    const HALF_MAX: f32 = 65504.0;

    /// `vectors` (rows of `dimension` values) in half precision (`None`:
    /// no F16C, a dimension that is not a multiple of 8, or a value beyond
    /// half precision's range, NaN included).
    pub(super) fn encode(vectors: &[f32], dimension: usize) -> Option<Vec<u16>> {
        let in_range = vectors.iter().all(|x| x.abs() <= HALF_MAX);
        #[cfg(target_arch = "x86_64")]
        if dimension.is_multiple_of(8) && in_range && supported() {
            let mut out = vec![0u16; vectors.len()];
            // SAFETY: the CPU has AVX2, FMA and F16C (checked just above);
            // both slices hold a multiple of 8 values.
            unsafe { x86::encode(vectors, &mut out) };
            return Some(out);
        }
        let _ = (vectors, dimension, in_range);
        None
    }

    fn supported() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Measures the rows of one list (rows `first..` of the index), keeping
    /// candidates by row index.
    pub(super) fn scan(
        query: &[f32],
        first: usize,
        ids: &[i64],
        halves: &[u16],
        allowed: Option<&RowSet>,
        pool: &mut TopK,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: half vectors exist only where `encode` found AVX2,
            // FMA and F16C; rows hold a multiple of 8 values.
            unsafe { x86::scan(query, first, ids, halves, allowed, pool) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (query, first, ids, halves, allowed, pool);
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        use super::super::{RowSet, TopK};

        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) unsafe fn encode(from: &[f32], to: &mut [u16]) {
            for (f, t) in from.chunks_exact(8).zip(to.chunks_exact_mut(8)) {
                let packed =
                    _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(f.as_ptr()));
                _mm_storeu_si128(t.as_mut_ptr().cast(), packed);
            }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) unsafe fn scan(
            query: &[f32],
            first: usize,
            ids: &[i64],
            halves: &[u16],
            allowed: Option<&RowSet>,
            pool: &mut TopK,
        ) {
            let d = query.len();
            let mut bound = pool.bound();
            for (row, v) in halves.chunks_exact(d).enumerate() {
                if allowed.is_some_and(|a| !a.contains(ids[row])) {
                    continue;
                }
                let distance = l2(query, v);
                if distance < bound {
                    pool.push((first + row) as i64, distance);
                    bound = pool.bound();
                }
            }
        }

        /// Squared L2 between a query and a half vector of the same length
        /// (a multiple of 8).
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn l2(query: &[f32], v: &[u16]) -> f32 {
            let d = query.len();
            let (q, h) = (query.as_ptr(), v.as_ptr());
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut i = 0;
            while i + 16 <= d {
                let x0 = _mm256_cvtph_ps(_mm_loadu_si128(h.add(i).cast()));
                let x1 = _mm256_cvtph_ps(_mm_loadu_si128(h.add(i + 8).cast()));
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(q.add(i)), x0);
                let d1 = _mm256_sub_ps(_mm256_loadu_ps(q.add(i + 8)), x1);
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                i += 16;
            }
            if i < d {
                let x0 = _mm256_cvtph_ps(_mm_loadu_si128(h.add(i).cast()));
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(q.add(i)), x0);
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            }
            let acc = _mm256_add_ps(acc0, acc1);
            let sum4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
            let sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
            let sum1 = _mm_add_ss(sum2, _mm_shuffle_ps::<0b01>(sum2, sum2));
            _mm_cvtss_f32(sum1)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use paimon_vindex_core::io::PosWriter;
    use paimon_vindex_core::ivfflat::IVFFlatIndex;
    use paimon_vindex_core::ivfflat_io::write_ivfflat_index;

    use super::*;

    #[test]
    fn vectors_beyond_half_precision_are_scanned_in_full_precision() {
        let mut vectors = values(64, 7);
        vectors[13] = 70_000.0;
        assert!(half::encode(&vectors, 8).is_none());
        vectors[13] = f32::NAN;
        assert!(half::encode(&vectors, 8).is_none());
    }

    /// Deterministic pseudo-random values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn q0(queries: &[f32], d: usize) -> &[f32] {
        &queries[..d]
    }

    #[test]
    fn decoded_search_matches_the_library_reader() {
        let (d, n, nlist) = (24usize, 3000usize, 16usize);
        let data = values(n * d, 7);
        let ids: Vec<i64> = (0..n as i64).map(|i| i * 3).collect();
        let mut index = IVFFlatIndex::new(d, nlist, MetricType::L2);
        index.train(&data, n);
        index.add(&data, &ids, n);
        let mut bytes = Vec::new();
        write_ivfflat_index(&index, &mut PosWriter::new(&mut bytes)).unwrap();
        let mut reader = IVFFlatIndexReader::open(Cursor::new(bytes)).unwrap();
        let flat = FlatIndex::decode(&mut reader).unwrap().unwrap();
        assert_eq!(flat.rows(), 3 * (n as u64 - 1) + 1);
        let mut allowed = RowSet::empty(flat.rows());
        for id in ids.iter().filter(|id| *id % 2 == 0) {
            allowed.insert(*id as u64);
        }
        let allowed_ids: std::collections::HashSet<i64> =
            allowed.iter().map(|i| i as i64).collect();
        let queries = values(20 * d, 11);
        for q in queries.chunks_exact(d) {
            for nprobe in [1, 3, nlist] {
                let (want_ids, want_d) = reader.search(q, 10, nprobe).unwrap();
                let got = flat.search(q, 10, Some(nprobe), None).unwrap();
                let got_ids: Vec<i64> = got.iter().map(|(i, _)| *i).collect();
                assert_eq!(got_ids, want_ids, "nprobe {nprobe}");
                for ((_, g), w) in got.iter().zip(&want_d) {
                    assert!((g - w).abs() <= 1e-4 * w.max(1.0));
                }
                let (want_ids, _) = reader
                    .search_with_filter(q, 10, nprobe, Some(&allowed_ids))
                    .unwrap();
                let got = flat.search(q, 10, Some(nprobe), Some(&allowed)).unwrap();
                let got_ids: Vec<i64> = got.iter().map(|(i, _)| *i).collect();
                let want_ids: Vec<i64> = want_ids.into_iter().filter(|i| *i >= 0).collect();
                assert_eq!(got_ids, want_ids, "filtered, nprobe {nprobe}");
            }
        }
        // Every list with an allow-list: the allowed rows measured directly,
        // as a scan of every list finds them.
        let every = flat
            .search(q0(&queries, d), 10, Some(nlist), Some(&allowed))
            .unwrap();
        let mut scanned = TopK::new(10);
        for list in 0..nlist {
            let (start, end) = (flat.starts[list], flat.starts[list + 1]);
            scan(
                q0(&queries, d),
                &flat.ids[start..end],
                &flat.vectors[start * d..end * d],
                Some(&allowed),
                &mut scanned,
            );
        }
        assert_eq!(every, scanned.items);
        // Automatic width: k rows of the allowed ones whenever there are k.
        let mut few = RowSet::empty(flat.rows());
        for id in [0u64, 3, 8997] {
            few.insert(id);
        }
        let got = flat.search(&queries[..d], 10, None, Some(&few)).unwrap();
        let mut got_ids: Vec<i64> = got.iter().map(|(i, _)| *i).collect();
        got_ids.sort_unstable();
        assert_eq!(got_ids, vec![0, 3, 8997]);
    }

    #[test]
    fn l2_matches_a_plain_sum() {
        for d in [1usize, 3, 16, 17, 128, 131] {
            let a: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..d).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(x - y) * f64::from(x - y))
                .sum();
            assert!((f64::from(l2_squared(&a, &b)) - plain).abs() < 1e-4 * plain.max(1.0));
            assert!((f64::from(l2_body::<false>(&a, &b)) - plain).abs() < 1e-4 * plain.max(1.0));
        }
    }

    #[test]
    fn row_set_counts_ranges_and_bits() {
        let mut s = RowSet::empty(200);
        s.insert_range(3..130);
        assert_eq!(s.len(), 127);
        assert!(s.contains(3) && s.contains(129) && !s.contains(130) && !s.contains(2));
        s.insert_range(100..140);
        assert_eq!(s.len(), 137);
        s.remove(64);
        s.remove(64);
        s.insert(199);
        s.insert(500);
        assert_eq!(s.len(), 137);
        assert!(!s.contains(64) && s.contains(199) && !s.contains(-1) && !s.contains(500));
        let mut bits = RowSet::empty(300);
        let mask = BooleanBuffer::from_iter((0..130).map(|i| i % 3 == 0 || i == 129));
        bits.insert_bits(70, &mask);
        let want: Vec<u64> = (0..130u64)
            .filter(|i| i % 3 == 0 || *i == 129)
            .map(|i| i + 70)
            .collect();
        assert_eq!(bits.iter().collect::<Vec<_>>(), want);
        assert_eq!(bits.len(), want.len() as u64);
        let mut aligned = RowSet::empty(300);
        aligned.insert_bits(128, &mask);
        assert_eq!(aligned.len(), want.len() as u64);
        assert!(aligned.contains(128) && aligned.contains(257) && !aligned.contains(129));
        let listed: Vec<u64> = s.iter().collect();
        assert_eq!(listed.len(), 137);
        assert_eq!(listed[..3], [3, 4, 5]);
        assert!(!listed.contains(&64) && listed.last() == Some(&199));
    }

    #[test]
    fn top_k_keeps_the_smallest_in_order() {
        let mut top = TopK::new(3);
        for (id, d) in [(1, 5.0), (2, 1.0), (3, 4.0), (4, 0.5), (5, 9.0)] {
            if d < top.bound() {
                top.push(id, d);
            }
        }
        assert_eq!(top.items, vec![(4, 0.5), (2, 1.0), (3, 4.0)]);
    }
}
