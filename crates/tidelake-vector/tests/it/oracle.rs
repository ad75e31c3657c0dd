//! The index payloads we write, read by Paimon's own reader: the
//! `paimon-vindex` Python package (tests/oracle/requirements.txt).

use std::process::Command;

use datafusion::arrow::array::{Array, Float32Array, ListArray};
use tidelake_vector::layout::{Segment, SourceMeta};
use tidelake_vector::Metric;

use crate::common::*;

const READ_PAYLOAD: &str = r#"
import json, sys
import numpy as np
from paimon_vindex import VectorIndexReader, SearchParams

class Input:
    def __init__(self, data):
        self.data = data
    def pread_many(self, ranges):
        return [self.data[o:o + n] for (o, n) in ranges]

path, query, k = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
with open(path, "rb") as f:
    reader = VectorIndexReader(Input(f.read()))
meta = reader.metadata()
ids, distances = reader.search(np.array(query, dtype=np.float32), SearchParams.ivf(k, meta.nlist))
print(json.dumps({"index_type": meta.index_type, "dimension": meta.dimension,
                  "metric": meta.metric, "total_vectors": meta.total_vectors,
                  "nlist": meta.nlist, "ids": [int(i) for i in ids]}))
"#;

#[tokio::test]
async fn paimon_vindex_reads_our_payload_and_finds_the_same_rows() {
    let python = tidelake_testkit::python::find()
        .unwrap_or_else(|why| panic!("the oracle needs Python with paimon-vindex: {why}"));
    let (catalog, id, dir) = table_with(&index_options("l2", 8, 1)).await;
    let table = catalog.load_table(&id).await.unwrap();
    insert(&table, 0..2000, &vectors(101, 2000)).await;
    let snapshot = table.snapshots().latest_snapshot().await.unwrap();
    let entries = table
        .index_manifest_entries(snapshot.as_ref())
        .await
        .unwrap();
    let segment = entries
        .iter()
        .find_map(|e| Segment::decode(e, "ivf-flat", table.schema().fields[2].id))
        .expect("a segment of the vector column");
    let meta = segment.entry.index_file.global_index.clone().unwrap();
    assert_eq!(meta.index_meta.as_deref(), Some(&b"{}"[..]));
    assert_eq!(meta.row_range_start, 0);
    let source = SourceMeta::decode(meta.source_meta.as_deref().unwrap()).unwrap();
    assert_eq!(meta.row_range_end, source.rows() - 1);
    // Every vector of the source files, by row id (files concatenated).
    let plan = table.scan().plan().await.unwrap();
    let split = &plan.splits()[0];
    let mut by_row_id: Vec<Vec<f32>> = Vec::new();
    for src in &source.files {
        let file = split
            .files
            .iter()
            .find(|f| f.file_name == src.name)
            .unwrap();
        for b in table
            .read_file_columns(
                &split.partition_path,
                split.bucket,
                file,
                &["emb".to_string()],
                None,
            )
            .await
            .unwrap()
        {
            let list = b.column(0).as_any().downcast_ref::<ListArray>().unwrap();
            for i in 0..list.len() {
                let v = list.value(i);
                by_row_id.push(
                    v.as_any()
                        .downcast_ref::<Float32Array>()
                        .unwrap()
                        .values()
                        .to_vec(),
                );
            }
        }
    }
    assert_eq!(by_row_id.len() as i64, source.rows());
    let query = vectors(102, 1).remove(0);
    let mut exact: Vec<(usize, f64)> = by_row_id
        .iter()
        .enumerate()
        .map(|(i, v)| (i, Metric::L2.distance(&query, v)))
        .collect();
    exact.sort_by(|a, b| a.1.total_cmp(&b.1));
    let want: Vec<i64> = exact.iter().take(5).map(|(i, _)| *i as i64).collect();

    let path = dir
        .path()
        .join("default.db/t/index")
        .join(&segment.entry.index_file.file_name);
    let out = Command::new(python)
        .args(["-c", READ_PAYLOAD])
        .arg(&path)
        .arg(serde_json::to_string(&query).unwrap())
        .arg("5")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "paimon-vindex failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["index_type"], "ivf_flat", "{read}");
    assert_eq!(read["dimension"], DIM as u64, "{read}");
    assert_eq!(read["metric"], "l2", "{read}");
    assert_eq!(
        read["total_vectors"], segment.entry.index_file.row_count,
        "{read}"
    );
    let ids: Vec<i64> = read["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids, want, "{read}");
}
