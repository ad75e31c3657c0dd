//! The generator's files (bench/gen_data.py): ingest chunks, upsert commits,
//! expected figures. Everything is decoded before any clock starts.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::array::{Int8Array, Scalar};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cmp::eq;
use arrow::datatypes::Int8Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::error::{BenchError, Result};

/// Rows per decoded batch: large enough that per-batch overheads vanish.
pub const INPUT_BATCH_ROWS: usize = 64 * 1024;
/// The upsert files' extra column: 0 upserts the row, 1 deletes its key.
pub const OP_COLUMN: &str = "op";
pub const OP_DELETE: i8 = 1;

/// The files of one scale under `bench/data/<scale>/`.
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn ingest_files(&self) -> Result<Vec<PathBuf>> {
        files_with_prefix(&self.root.join("input").join("ingest"), "chunk-")
    }

    pub fn upsert_files(&self) -> Result<Vec<PathBuf>> {
        files_with_prefix(&self.root.join("input").join("upserts"), "commit-")
    }

    pub fn expected(&self) -> Result<Value> {
        let path = self.root.join("expected.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(path.display().to_string(), e))?;
        serde_json::from_str(&text)
            .map_err(|e| BenchError::input(format!("'{}' is not valid JSON: {e}", path.display())))
    }
}

/// `{dir}/{prefix}*.parquet`, sorted by name (the generator numbers them).
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    files_with_suffix(dir, prefix, ".parquet")
}

/// `{dir}/{prefix}*{suffix}`, sorted by name.
pub fn files_with_suffix(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| BenchError::io(dir.display().to_string(), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| BenchError::io(dir.display().to_string(), e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(prefix) && name.ends_with(suffix) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| BenchError::io(shown.clone(), e))?;
    let parquet_error = |source| BenchError::Parquet {
        path: shown.clone(),
        source,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_error)?
        .with_batch_size(INPUT_BATCH_ROWS)
        .build()
        .map_err(parquet_error)?;
    reader
        .map(|batch| {
            batch.map_err(|e| BenchError::Parquet {
                path: shown.clone(),
                source: e.into(),
            })
        })
        .collect()
}

pub fn read_all(paths: &[PathBuf]) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for path in paths {
        batches.extend(read_parquet(path)?);
    }
    Ok(batches)
}

/// Splits a batch of an upsert file into (rows to upsert, keys to delete),
/// both without the `op` column.
pub fn split_upsert_batch(batch: &RecordBatch) -> Result<(RecordBatch, RecordBatch)> {
    let index = batch
        .schema()
        .index_of(OP_COLUMN)
        .map_err(|_| BenchError::input(format!("an upsert file has no '{OP_COLUMN}' column")))?;
    let ops = batch
        .column(index)
        .as_primitive_opt::<Int8Type>()
        .ok_or_else(|| BenchError::input(format!("column '{OP_COLUMN}' is not TINYINT")))?;
    let is_delete = eq(ops, &Scalar::new(Int8Array::from(vec![OP_DELETE])))?;
    let is_upsert = arrow::compute::not(&is_delete)?;
    let columns: Vec<usize> = (0..batch.num_columns()).filter(|i| *i != index).collect();
    let rows = batch.project(&columns)?;
    Ok((
        filter_record_batch(&rows, &is_upsert)?,
        filter_record_batch(&rows, &is_delete)?,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;

    fn upsert_batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Int64, false),
            Field::new("comment", DataType::Utf8, true),
            Field::new(OP_COLUMN, DataType::Int8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("d"),
                ])),
                Arc::new(Int8Array::from(vec![0, 0, 1, 0])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn upserts_and_deletes_are_separated() {
        let (upserts, deletes) = split_upsert_batch(&upsert_batch()).unwrap();
        assert_eq!(upserts.num_columns(), 2);
        assert_eq!(upserts.schema().field(1).name(), "comment");
        let ids = |b: &RecordBatch| {
            b.column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        };
        assert_eq!(ids(&upserts), vec![1, 2, 4]);
        assert_eq!(ids(&deletes), vec![3]);
    }

    #[test]
    fn a_batch_without_op_is_refused() {
        let batch = upsert_batch().project(&[0, 1]).unwrap();
        let err = split_upsert_batch(&batch).unwrap_err().to_string();
        assert!(err.contains("'op'"), "{err}");
    }

    #[test]
    fn files_are_listed_in_order_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "chunk-00001.parquet",
            "chunk-00000.parquet",
            "other.parquet",
            "chunk-00002.tmp",
        ] {
            let file = File::create(dir.path().join(name)).unwrap();
            let batch = upsert_batch();
            let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
        }
        let files = files_with_prefix(dir.path(), "chunk-").unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec!["chunk-00000.parquet", "chunk-00001.parquet"]);
        let batches = read_all(&files).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 8);
        assert!(files_with_prefix(&dir.path().join("missing"), "chunk-").is_err());
    }
}
