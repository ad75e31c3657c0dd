//! Deletion-vector index files written by other Paimon implementations.
//! The fixtures in `tests/data/deletion_vectors/` and the positions they hold
//! (`dv-fixtures.json`) come from `tests/oracle/generate_deletion_vectors.py`
//! (pypaimon 2.1 and pyroaring); rerunning it reproduces the same bytes.

use serde_json::Value;
use tidelake_format::deletion_vector::{
    decode_index_file, decode_vector, encode_index_file, DeletionVector,
};
use tidelake_format::manifest::DeletionVectorRange;
use tidelake_format::FormatError;

fn data_dir() -> String {
    format!("{}/tests/data/deletion_vectors", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/{name}", data_dir());
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
}

/// One fixture file's vectors: their ranges and deleted positions.
struct Expected {
    ranges: Vec<DeletionVectorRange>,
    positions: Vec<Vec<u64>>,
}

fn expected(file: &str) -> Expected {
    let text = String::from_utf8(fixture("dv-fixtures.json")).expect("UTF-8 JSON");
    let all: Value = serde_json::from_str(&text).expect("valid JSON");
    let entries = all[file].as_array().expect("a list per fixture file");
    let int = |v: &Value| v.as_i64().expect("an integer");
    let mut ranges = Vec::new();
    let mut positions = Vec::new();
    for e in entries {
        ranges.push(DeletionVectorRange {
            data_file_name: e["data_file_name"].as_str().expect("a name").to_owned(),
            offset: int(&e["offset"]) as i32,
            length: int(&e["length"]) as i32,
            cardinality: Some(int(&e["cardinality"])),
        });
        let mut p = Vec::new();
        for spec in e["positions"].as_array().expect("a list of ranges") {
            let [start, stop, step] = [0, 1, 2].map(|i| int(&spec[i]) as u64);
            p.extend((start..stop).step_by(step as usize));
        }
        positions.push(p);
    }
    Expected { ranges, positions }
}

fn vectors(expected: &Expected) -> Vec<DeletionVector> {
    expected
        .positions
        .iter()
        .map(|p| DeletionVector::from_positions(p.iter().copied()).expect("valid positions"))
        .collect()
}

#[test]
fn decodes_pypaimon_index_file() {
    let bytes = fixture("pypaimon-dv-index");
    let want = expected("pypaimon-dv-index");
    let decoded = decode_index_file(&bytes, &want.ranges).expect("decodes");
    assert_eq!(decoded.len(), want.ranges.len());
    for ((name, dv), (range, positions)) in
        decoded.iter().zip(want.ranges.iter().zip(&want.positions))
    {
        assert_eq!(name, &range.data_file_name);
        assert_eq!(&dv.iter().collect::<Vec<_>>(), positions, "{name}");
        assert_eq!(Some(dv.cardinality() as i64), range.cardinality, "{name}");
    }
}

#[test]
fn encodes_the_same_bytes_as_pypaimon() {
    let want = expected("pypaimon-dv-index");
    let vectors = vectors(&want);
    let named: Vec<(&str, &DeletionVector)> = want
        .ranges
        .iter()
        .map(|r| r.data_file_name.as_str())
        .zip(vectors.iter())
        .collect();
    let (bytes, ranges) = encode_index_file(&named).expect("encodes");
    assert_eq!(ranges, want.ranges);
    assert!(
        bytes == fixture("pypaimon-dv-index"),
        "index file bytes differ from pypaimon's"
    );
}

/// Paimon Java run-optimizes its bitmaps before writing them.
#[test]
fn decodes_run_containers() {
    let bytes = fixture("pyroaring-dv-index-runs");
    let want = expected("pyroaring-dv-index-runs");
    let decoded = decode_index_file(&bytes, &want.ranges).expect("decodes");
    for ((name, dv), positions) in decoded.iter().zip(&want.positions) {
        assert_eq!(&dv.iter().collect::<Vec<_>>(), positions, "{name}");
    }
    // Run containers survive a decode: re-encoding gives back the same bytes.
    let named: Vec<(&str, &DeletionVector)> =
        decoded.iter().map(|(n, dv)| (n.as_str(), dv)).collect();
    let (again, ranges) = encode_index_file(&named).expect("encodes");
    assert_eq!(ranges, want.ranges);
    assert!(again == bytes, "re-encoded run containers differ");
    // The same sets as the pypaimon file, whose layout has no runs.
    let plain = expected("pypaimon-dv-index");
    assert_eq!(want.positions, plain.positions);
    assert!(
        want.ranges[4].length < plain.ranges[4].length,
        "runs are smaller"
    );
}

#[test]
fn decodes_paimon_java_64_bit_vectors() {
    let bytes = fixture("pyroaring-dv-index-64");
    let want = expected("pyroaring-dv-index-64");
    let (fits, too_far) = (&want.ranges[0], &want.ranges[1]);
    let dv = decode_vector(&bytes, fits).expect("a 64-bit vector of small positions decodes");
    assert_eq!(dv.iter().collect::<Vec<_>>(), want.positions[0]);
    match decode_vector(&bytes, too_far) {
        Err(FormatError::Unsupported(message)) => {
            assert!(message.contains(&too_far.data_file_name), "{message}");
            assert!(message.contains("4294967301"), "{message}");
        }
        other => panic!("expected unsupported, got {other:?}"),
    }
    let err = decode_index_file(&bytes, &want.ranges).unwrap_err();
    assert!(err.to_string().contains("data-g.parquet"), "{err}");
}
