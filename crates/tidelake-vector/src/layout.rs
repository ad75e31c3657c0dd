//! The records Paimon keeps for a primary-key vector index segment, as
//! `paimon-core`'s `PkVectorAnnSegmentFile` writes them:
//!
//! - one index manifest entry per (partition, bucket, level) segment, of
//!   the index type (`ivf-flat`, ...), file `index/index-{uuid}-0`, whose
//!   row count is the number of vectors in the payload;
//! - its `GlobalIndexMeta`: row range `[0, rows of the source files - 1]`,
//!   the vector column's field id, index meta `{}` (the library's meta
//!   JSON) and source meta (`PrimaryKeyIndexSourceMeta`);
//! - source meta, Java `DataOutput` big-endian: version `1` (int), the
//!   data level (int), the number of source files (int), then per file its
//!   name (`writeUTF`: u16 length, modified UTF-8) and row count (long);
//! - the payload's row ids: the source files concatenated in source-meta
//!   order, a row's id being the rows of the files before it plus its
//!   position in its file.

use tidelake_format::manifest::{FileKind, GlobalIndexMeta, IndexFileMeta, IndexManifestEntry};

/// Version of the source meta record.
const SOURCE_META_VERSION: i32 = 1;

/// A data file an index segment covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub row_count: i64,
}

/// What an index segment covers: the files of one level of one bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceMeta {
    pub level: i32,
    pub files: Vec<SourceFile>,
}

impl SourceMeta {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.files.len() * 64);
        out.extend_from_slice(&SOURCE_META_VERSION.to_be_bytes());
        out.extend_from_slice(&self.level.to_be_bytes());
        out.extend_from_slice(&(self.files.len() as i32).to_be_bytes());
        for f in &self.files {
            let name = modified_utf8(&f.name);
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(&name);
            out.extend_from_slice(&f.row_count.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SourceMeta, String> {
        let mut input = Input { bytes, at: 0 };
        let version = input.int()?;
        if version != SOURCE_META_VERSION {
            return Err(format!("unsupported index source version {version}"));
        }
        let level = input.int()?;
        let count = input.int()?;
        if level <= 0 || count <= 0 {
            return Err(format!("bad source meta: level {level}, {count} files"));
        }
        let mut files = Vec::new();
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes(input.take::<2>()?));
            let name = input.slice(len)?;
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| "a source file name is not UTF-8".to_string())?;
            let row_count = i64::from_be_bytes(input.take::<8>()?);
            files.push(SourceFile { name, row_count });
        }
        if input.at != bytes.len() {
            return Err("trailing bytes in index source meta".into());
        }
        Ok(SourceMeta { level, files })
    }

    /// Rows of the source files (the row range is `[0, rows - 1]`).
    pub fn rows(&self) -> i64 {
        self.files.iter().map(|f| f.row_count).sum()
    }
}

/// Java's modified UTF-8 (`DataOutput.writeUTF`): NUL as two bytes,
/// supplementary characters as two three-byte surrogates.
fn modified_utf8(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007f => out.push(unit as u8),
            0x0000 | 0x0080..=0x07ff => {
                out.push(0xc0 | ((unit >> 6) as u8 & 0x1f));
                out.push(0x80 | (unit as u8 & 0x3f));
            }
            _ => {
                out.push(0xe0 | ((unit >> 12) as u8 & 0x0f));
                out.push(0x80 | ((unit >> 6) as u8 & 0x3f));
                out.push(0x80 | (unit as u8 & 0x3f));
            }
        }
    }
    out
}

struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn slice(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| "index source meta is truncated".to_string())?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.slice(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn int(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take::<4>()?))
    }
}

/// A segment of a snapshot's index manifest, decoded.
#[derive(Clone, Debug)]
pub struct Segment {
    pub entry: IndexManifestEntry,
    pub source: SourceMeta,
}

impl Segment {
    /// The manifest entry of a new segment.
    #[allow(clippy::too_many_arguments)]
    pub fn entry(
        partition: &[u8],
        bucket: i32,
        index_type: &str,
        file_name: String,
        file_size: i64,
        vectors: i64,
        field_id: i32,
        source: &SourceMeta,
    ) -> IndexManifestEntry {
        IndexManifestEntry {
            kind: FileKind::Add,
            partition: partition.to_vec(),
            bucket,
            index_file: IndexFileMeta {
                index_type: index_type.to_string(),
                file_name,
                file_size,
                row_count: vectors,
                deletion_vector_ranges: None,
                external_path: None,
                global_index: Some(GlobalIndexMeta {
                    row_range_start: 0,
                    row_range_end: source.rows() - 1,
                    index_field_id: field_id,
                    extra_field_ids: None,
                    index_meta: Some(b"{}".to_vec()),
                    source_meta: Some(source.encode()),
                }),
            },
        }
    }

    /// The entry as a segment of `index_type` over field `field_id`
    /// (`None`: another index, or source meta that does not decode).
    pub fn decode(entry: &IndexManifestEntry, index_type: &str, field_id: i32) -> Option<Segment> {
        let file = &entry.index_file;
        let global = file.global_index.as_ref()?;
        if file.index_type != index_type || global.index_field_id != field_id {
            return None;
        }
        match SourceMeta::decode(global.source_meta.as_deref()?) {
            Ok(source) => Some(Segment {
                entry: entry.clone(),
                source,
            }),
            Err(e) => {
                tracing::warn!(
                    "index file {} has source meta that does not decode ({e}); its files are searched exactly",
                    file.file_name
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_meta_is_java_data_output() {
        let meta = SourceMeta {
            level: 3,
            files: vec![SourceFile {
                name: "data-a.parquet".into(),
                row_count: 7,
            }],
        };
        let bytes = meta.encode();
        let mut expected = vec![0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 14];
        expected.extend_from_slice(b"data-a.parquet");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(bytes, expected);
        assert_eq!(SourceMeta::decode(&bytes).unwrap(), meta);
        assert!(SourceMeta::decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(modified_utf8("\0"), vec![0xc0, 0x80]);
    }
}
