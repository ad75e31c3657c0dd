//! The engine hooks of vector-indexed tables ([`VectorHooks`]): refuse bad
//! definitions and bad vectors, and build one index segment per level ≥ 1
//! of each bucket a compaction leaves, committed with the compaction.
//!
//! A level whose files are exactly those an existing segment lists keeps
//! that segment; any other level gets a new one, built with Paimon's
//! vector index library from the level's vectors (rows with a NULL vector
//! are left out). Deleted and superseded rows stay in a segment: the
//! searches filter them with the snapshot's deletion vectors.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use paimon_vindex_core::index::{VectorIndexTrainer, VectorIndexWriter};
use paimon_vindex_core::io::PosWriter;
use paimon_vindex_core::ivfflat::IVFFlatIndex;
use paimon_vindex_core::ivfflat_io::write_ivfflat_index;
use tidelake_engine::{
    CompactedBucket, EngineError, Identifier, RowKind, Table, TableHooks, TableSchema,
};
use tidelake_format::manifest::{DataFileMeta, IndexManifestEntry};

use crate::error::{Result, VectorError};
use crate::layout::{Segment, SourceFile, SourceMeta};
use crate::spec::VectorIndexSpec;
use crate::train;
use crate::vectors::{check_written, Cell, Vectors};

/// The hooks to give `Catalog::with_table_hooks`.
#[derive(Debug, Default)]
pub struct VectorHooks;

impl VectorHooks {
    pub fn shared() -> Arc<dyn TableHooks> {
        Arc::new(VectorHooks)
    }
}

impl TableHooks for VectorHooks {
    fn check_schema(
        &self,
        table: &Identifier,
        schema: &TableSchema,
    ) -> tidelake_engine::Result<()> {
        VectorIndexSpec::from_schema(&table.to_string(), schema)?;
        Ok(())
    }

    fn check_rows(
        &self,
        table: &Table,
        batch: &datafusion::arrow::array::RecordBatch,
        kinds: &[RowKind],
    ) -> tidelake_engine::Result<()> {
        let name = table.identifier().to_string();
        let Some(spec) = VectorIndexSpec::from_schema(&name, table.schema())? else {
            return Ok(());
        };
        let Some(index) = table
            .schema()
            .fields
            .iter()
            .position(|f| f.name == spec.column)
        else {
            return Ok(());
        };
        let vectors = Vectors::new(batch.column(index), spec.dimension)?;
        for (row, kind) in kinds.iter().enumerate() {
            if kind.is_retract() {
                continue;
            }
            check_written(vectors.get(row), &spec.column, &name, row)?;
        }
        Ok(())
    }

    fn index_compacted_bucket<'a>(
        &'a self,
        table: &'a Table,
        bucket: &'a CompactedBucket,
    ) -> BoxFuture<'a, tidelake_engine::Result<Option<Vec<IndexManifestEntry>>>> {
        Box::pin(async move { index_bucket(table, bucket).await.map_err(EngineError::from) })
    }
}

/// The segments of one compacted bucket: kept where a level is unchanged,
/// new elsewhere. On error, the new payloads are deleted.
async fn index_bucket(
    table: &Table,
    bucket: &CompactedBucket,
) -> Result<Option<Vec<IndexManifestEntry>>> {
    let Some(spec) = VectorIndexSpec::from_schema(&table.identifier().to_string(), table.schema())?
    else {
        return Ok(None);
    };
    let existing: Vec<Segment> = bucket
        .index_entries
        .iter()
        .filter_map(|e| Segment::decode(e, &spec.index_type, spec.field_id))
        .collect();
    let mut levels: BTreeMap<i32, Vec<&DataFileMeta>> = BTreeMap::new();
    for f in bucket.files.iter().filter(|f| f.level > 0) {
        levels.entry(f.level).or_default().push(f);
    }
    let mut entries = Vec::new();
    let mut written: Vec<String> = Vec::new();
    for (level, mut files) in levels {
        files.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        let source = SourceMeta {
            level,
            files: files
                .iter()
                .map(|f| SourceFile {
                    name: f.file_name.clone(),
                    row_count: f.row_count,
                })
                .collect(),
        };
        if let Some(kept) = existing.iter().find(|s| s.source == source) {
            entries.push(kept.entry.clone());
            continue;
        }
        match build_segment(table, bucket, &spec, &files, &source).await {
            Ok(Some(entry)) => {
                written.push(entry.index_file.file_name.clone());
                entries.push(entry);
            }
            Ok(None) => {}
            Err(e) => {
                for name in written {
                    let path = table.paths().index(&name);
                    if let Err(e) = table.store().delete(&path).await {
                        tracing::warn!("could not delete unused index file {path}: {e}");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(Some(entries))
}

/// Builds and writes the payload of one level (`None`: no vectors there).
async fn build_segment(
    table: &Table,
    bucket: &CompactedBucket,
    spec: &VectorIndexSpec,
    files: &[&DataFileMeta],
    source: &SourceMeta,
) -> Result<Option<IndexManifestEntry>> {
    let name = format!("index-{}-0", uuid::Uuid::new_v4());
    let path = table.paths().index(&name);
    let rows: i64 = files.iter().map(|f| f.row_count).sum();
    let config = spec
        .library_config(usize::try_from(rows).unwrap_or(usize::MAX))
        .map_err(|e| VectorError::payload(&path, e))?;
    let built = match train::FlatPlan::of(&config) {
        Some(plan) => build_flat(table, bucket, spec, files, plan, &path).await?,
        None => build_in_memory(table, bucket, spec, files, &path).await?,
    };
    let Some((bytes, count)) = built else {
        return Ok(None);
    };
    let size = bytes.len() as i64;
    table
        .store()
        .put(&path, Bytes::from(bytes))
        .await
        .map_err(EngineError::from)?;
    tracing::debug!(
        "built {} segment {name} of {count} vectors for level {} of bucket {}",
        spec.index_type,
        source.level,
        bucket.bucket
    );
    Ok(Some(Segment::entry(
        &bucket.partition,
        bucket.bucket,
        &spec.index_type,
        name,
        size,
        count as i64,
        spec.field_id,
        source,
    )))
}

/// The payload of a level built by the library from all its vectors at
/// once (every index type but IVF-FLAT): the bytes and the vector count.
async fn build_in_memory(
    table: &Table,
    bucket: &CompactedBucket,
    spec: &VectorIndexSpec,
    files: &[&DataFileMeta],
    path: &str,
) -> Result<Option<(Vec<u8>, usize)>> {
    let mut ids: Vec<i64> = Vec::new();
    let mut data: Vec<f32> = Vec::new();
    let mut offset = 0i64;
    let columns = [spec.column.clone()];
    for f in files {
        let batches = table
            .read_file_columns(&bucket.partition_path, bucket.bucket, f, &columns, None)
            .await?;
        let mut position = 0i64;
        for batch in &batches {
            let vectors = Vectors::new(batch.column(0), spec.dimension)?;
            for row in 0..vectors.len() {
                if let Cell::Vector(v) = vectors.get(row) {
                    ids.push(offset + position);
                    data.extend_from_slice(v);
                }
                position += 1;
            }
        }
        offset += f.row_count;
    }
    if ids.is_empty() {
        return Ok(None);
    }
    let built_spec = spec.clone();
    let count = ids.len();
    let bytes = tokio::task::spawn_blocking(move || build_payload(&built_spec, &ids, &data))
        .await
        .map_err(|e| VectorError::Internal(format!("index build task failed: {e}")))?
        .map_err(|e| VectorError::payload(path, e))?;
    Ok(Some((bytes, count)))
}

/// The row ids and vectors of a level's files, a batch at a time (rows
/// with a NULL vector left out), read from the files' vector column as a
/// stream.
struct LevelVectors<'a> {
    table: &'a Table,
    bucket: &'a CompactedBucket,
    spec: &'a VectorIndexSpec,
    files: &'a [&'a DataFileMeta],
    /// The next file to open.
    next_file: usize,
    /// Row id of the next row read.
    position: i64,
    stream: Option<BoxStream<'static, tidelake_engine::Result<RecordBatch>>>,
}

impl<'a> LevelVectors<'a> {
    fn new(
        table: &'a Table,
        bucket: &'a CompactedBucket,
        spec: &'a VectorIndexSpec,
        files: &'a [&'a DataFileMeta],
    ) -> Self {
        LevelVectors {
            table,
            bucket,
            spec,
            files,
            next_file: 0,
            position: 0,
            stream: None,
        }
    }

    async fn next(&mut self) -> Result<Option<(Vec<i64>, Vec<f32>)>> {
        loop {
            if let Some(stream) = self.stream.as_mut() {
                if let Some(batch) = stream.try_next().await? {
                    let vectors = Vectors::new(batch.column(0), self.spec.dimension)?;
                    let mut ids = Vec::with_capacity(vectors.len());
                    let mut data = Vec::with_capacity(vectors.len() * self.spec.dimension);
                    for row in 0..vectors.len() {
                        if let Cell::Vector(v) = vectors.get(row) {
                            ids.push(self.position);
                            data.extend_from_slice(v);
                        }
                        self.position += 1;
                    }
                    return Ok(Some((ids, data)));
                }
                self.stream = None;
            }
            let Some(file) = self.files.get(self.next_file) else {
                return Ok(None);
            };
            // A file's row ids start after the rows of the files before it,
            // whatever its batches held.
            self.position = self.files[..self.next_file]
                .iter()
                .map(|f| f.row_count)
                .sum();
            self.next_file += 1;
            let columns = [self.spec.column.clone()];
            self.stream = Some(
                self.table
                    .stream_file_columns(
                        &self.bucket.partition_path,
                        self.bucket.bucket,
                        file,
                        &columns,
                        None,
                    )
                    .await?,
            );
        }
    }
}

/// An IVF-FLAT payload built in two passes over the level's files: a
/// sample trains the centroids, then the vectors are added a chunk at a
/// time, so the build holds the lists and the sample but never all the
/// level's vectors a second time.
async fn build_flat(
    table: &Table,
    bucket: &CompactedBucket,
    spec: &VectorIndexSpec,
    files: &[&DataFileMeta],
    plan: train::FlatPlan,
    path: &str,
) -> Result<Option<(Vec<u8>, usize)>> {
    let mut sample = train::Reservoir::new(spec.dimension, plan.sample_size(spec.dimension));
    let mut level = LevelVectors::new(table, bucket, spec, files);
    while let Some((_, data)) = level.next().await? {
        sample.offer_all(&data);
    }
    if sample.seen() == 0 {
        return Ok(None);
    }
    // `nlist` is capped at the vectors found (rows with a NULL vector have
    // none).
    let config = spec
        .library_config(sample.seen())
        .map_err(|e| VectorError::payload(path, e))?;
    let plan = train::FlatPlan::of(&config).unwrap_or(plan);
    let centroids = tokio::task::spawn_blocking(move || plan.centroids(sample))
        .await
        .map_err(|e| VectorError::Internal(format!("index training task failed: {e}")))?;
    let mut index = IVFFlatIndex::new(spec.dimension, plan.nlist, plan.metric);
    index.set_quantizer_centroids(centroids);
    // Vectors are assigned to lists this many at a time (one matrix
    // product each).
    const CHUNK_ROWS: usize = 32 * 1024;
    let add = |mut index: IVFFlatIndex, ids: Vec<i64>, data: Vec<f32>| async move {
        tokio::task::spawn_blocking(move || {
            index.add(&data, &ids, ids.len());
            index
        })
        .await
        .map_err(|e| VectorError::Internal(format!("index build task failed: {e}")))
    };
    let (mut ids, mut data) = (Vec::new(), Vec::new());
    let mut level = LevelVectors::new(table, bucket, spec, files);
    while let Some((batch_ids, batch_data)) = level.next().await? {
        ids.extend_from_slice(&batch_ids);
        data.extend_from_slice(&batch_data);
        if ids.len() >= CHUNK_ROWS {
            index = add(index, std::mem::take(&mut ids), std::mem::take(&mut data)).await?;
        }
    }
    if !ids.is_empty() {
        index = add(index, ids, data).await?;
    }
    let count = index.total_vectors();
    let bytes = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        write_ivfflat_index(&index, &mut PosWriter::new(&mut bytes))?;
        Ok::<_, std::io::Error>(bytes)
    })
    .await
    .map_err(|e| VectorError::Internal(format!("index build task failed: {e}")))?
    .map_err(|e| VectorError::payload(path, e))?;
    Ok(Some((bytes, count)))
}

/// Trains, fills and serializes one payload.
pub fn build_payload(spec: &VectorIndexSpec, ids: &[i64], data: &[f32]) -> Result<Vec<u8>, String> {
    let n = ids.len();
    let config = spec.library_config(n)?;
    if let Some(plan) = train::FlatPlan::of(&config) {
        let mut sample = train::Reservoir::new(spec.dimension, plan.sample_size(spec.dimension));
        sample.offer_all(data);
        let mut index = IVFFlatIndex::new(spec.dimension, plan.nlist, plan.metric);
        index.set_quantizer_centroids(plan.centroids(sample));
        index.add(data, ids, n);
        let mut bytes = Vec::new();
        write_ivfflat_index(&index, &mut PosWriter::new(&mut bytes)).map_err(|e| e.to_string())?;
        return Ok(bytes);
    }
    let training = VectorIndexTrainer::train(config, data, n).map_err(|e| e.to_string())?;
    let mut writer = VectorIndexWriter::new(training);
    writer
        .add_vectors(ids, data, n)
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let mut out = PosWriter::new(&mut bytes);
    writer.write(&mut out).map_err(|e| e.to_string())?;
    Ok(bytes)
}
