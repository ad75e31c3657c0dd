//! Deletion vectors: which rows of a data file are deleted, and the index
//! files that store them.
//!
//! A deletion-vector index file (type `DELETION_VECTORS` in the index
//! manifest) is one version byte (1) followed by one record per data file.
//! Paimon has two record layouts, told apart by their magic number:
//!
//! - 32-bit (`BitmapDeletionVector`, what Tidelake and pypaimon write):
//!   `[size: i32 BE][magic 1581511376: i32 BE][portable RoaringBitmap][CRC32 BE]`
//!   where `size = 4 + bitmap bytes` and the CRC covers magic + bitmap. The
//!   index manifest's range has `length = size`.
//! - 64-bit (`Bitmap64DeletionVector`, written by Paimon Java when
//!   `deletion-vectors.bitmap64` is set): the same frame, but the magic
//!   1681511377 is little-endian, the bitmap is the portable 64-bit roaring
//!   format, and the range's `length` covers the whole record (`size + 8`).
//!   Tidelake reads it when every position fits a 32-bit vector (always true
//!   for files under 2^31 rows) and never writes it: pypaimon cannot read it.
//!
//! Positions are row numbers within the data file, limited to `i32::MAX` as
//! Paimon's 32-bit vector is.

use std::ops::RangeInclusive;

use arrow_array::builder::BooleanBufferBuilder;
use arrow_array::BooleanArray;
use roaring::RoaringBitmap;

use crate::error::{FormatError, Result};
use crate::manifest::DeletionVectorRange;

/// The version byte at the start of every deletion-vector index file.
pub const DV_INDEX_VERSION: u8 = 1;
/// Magic number of a 32-bit record, stored big-endian.
pub const BITMAP32_MAGIC: i32 = 1_581_511_376;
/// Magic number of a 64-bit record, stored little-endian.
pub const BITMAP64_MAGIC: i32 = 1_681_511_377;
/// The largest row position a deletion vector may hold.
pub const MAX_POSITION: u64 = i32::MAX as u64;

/// Bytes of the frame around a record's payload: the size int and the CRC.
const FRAME_BYTES: usize = 8;

/// The deleted rows of one data file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeletionVector {
    /// Invariant: every value is at most [`MAX_POSITION`].
    bitmap: RoaringBitmap,
}

impl DeletionVector {
    /// An empty vector: nothing deleted.
    pub fn new() -> Self {
        Self::default()
    }

    /// A vector of the given positions.
    pub fn from_positions(positions: impl IntoIterator<Item = u64>) -> Result<Self> {
        let mut dv = Self::new();
        for pos in positions {
            dv.delete(pos)?;
        }
        Ok(dv)
    }

    /// Wraps a bitmap, checking that its positions fit Paimon's 32-bit vector.
    pub fn from_bitmap(bitmap: RoaringBitmap) -> Result<Self> {
        match bitmap.max() {
            Some(max) if u64::from(max) > MAX_POSITION => Err(FormatError::Invalid(format!(
                "deletion vector position {max} is beyond the largest supported row position {MAX_POSITION}"
            ))),
            _ => Ok(Self { bitmap }),
        }
    }

    /// Marks the row at `pos` deleted; returns whether it was not deleted yet.
    /// Fails for positions beyond [`MAX_POSITION`].
    pub fn delete(&mut self, pos: u64) -> Result<bool> {
        if pos > MAX_POSITION {
            return Err(FormatError::Invalid(format!(
                "cannot delete row position {pos}: deletion vectors hold positions up to {MAX_POSITION}"
            )));
        }
        // In range by the check above.
        Ok(self.bitmap.insert(pos as u32))
    }

    /// Whether the row at `pos` is deleted.
    pub fn is_deleted(&self, pos: u64) -> bool {
        u32::try_from(pos).is_ok_and(|pos| self.bitmap.contains(pos))
    }

    /// Number of deleted rows.
    pub fn cardinality(&self) -> u64 {
        self.bitmap.len()
    }

    /// Whether no row is deleted.
    pub fn is_empty(&self) -> bool {
        self.bitmap.is_empty()
    }

    /// Adds the deletions of `other` to this vector.
    pub fn merge(&mut self, other: &DeletionVector) {
        self.bitmap |= &other.bitmap;
    }

    /// The deleted positions, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.bitmap.iter().map(u64::from)
    }

    /// The underlying bitmap.
    pub fn bitmap(&self) -> &RoaringBitmap {
        &self.bitmap
    }

    /// Number of deleted rows among `[start, start + len)`.
    pub fn deleted_in(&self, start: u64, len: usize) -> u64 {
        clamp_rows(start, len).map_or(0, |rows| self.bitmap.range_cardinality(rows))
    }

    /// The rows of a batch covering file positions `[start, start + len)` to
    /// keep: `true` for live rows, `false` for deleted ones, ready for Arrow's
    /// `filter`. `None` when no row of the range is deleted, so that readers
    /// pass such batches through untouched.
    ///
    /// Costs one step per *deleted* row of the range, not per row.
    pub fn keep_mask(&self, start: u64, len: usize) -> Option<BooleanArray> {
        let rows = clamp_rows(start, len)?;
        let first_row = *rows.start();
        let mut deleted = self.bitmap.range(rows).peekable();
        deleted.peek()?;
        let mut mask = BooleanBufferBuilder::new(len);
        mask.append_n(len, true);
        for pos in deleted {
            // pos lies in [start, start + len), so the index is below len.
            mask.set_bit((pos - first_row) as usize, false);
        }
        Some(BooleanArray::new(mask.finish(), None))
    }

    /// Appends this vector's 32-bit record to `out`; returns the record's
    /// `size` field, which is also its range length in the index manifest.
    fn write_record(&self, out: &mut Vec<u8>) -> Result<i32> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&BITMAP32_MAGIC.to_be_bytes());
        self.bitmap
            .serialize_into(&mut *out)
            .map_err(|e| FormatError::Invalid(format!("cannot serialize deletion vector: {e}")))?;
        let size = i32::try_from(out.len() - start - 4).map_err(|_| {
            FormatError::Invalid("deletion vector exceeds 2 GiB when serialized".to_owned())
        })?;
        out[start..start + 4].copy_from_slice(&size.to_be_bytes());
        let crc = crc32fast::hash(&out[start + 4..]);
        out.extend_from_slice(&crc.to_be_bytes());
        Ok(size)
    }
}

/// `[start, start + len)` as the inclusive `u32` range of positions a vector
/// can hold, or `None` when that is empty.
fn clamp_rows(start: u64, len: usize) -> Option<RangeInclusive<u32>> {
    if len == 0 || start > MAX_POSITION {
        return None;
    }
    let last = start.saturating_add(len as u64 - 1).min(MAX_POSITION);
    // Both at most MAX_POSITION here.
    Some(start as u32..=last as u32)
}

/// Encodes the vectors of several data files, in the order given, into one
/// index file; returns its bytes and the ranges the index manifest lists.
/// The layout is byte for byte what pypaimon writes for the same vectors.
pub fn encode_index_file<S: AsRef<str>>(
    vectors: &[(S, &DeletionVector)],
) -> Result<(Vec<u8>, Vec<DeletionVectorRange>)> {
    let mut out = vec![DV_INDEX_VERSION];
    let mut ranges = Vec::with_capacity(vectors.len());
    for (name, dv) in vectors {
        let name = name.as_ref();
        let offset = i32::try_from(out.len()).map_err(|_| {
            FormatError::Invalid(format!(
                "deletion-vector index file exceeds 2 GiB before the vector of data file {name}"
            ))
        })?;
        let length = dv.write_record(&mut out)?;
        ranges.push(DeletionVectorRange {
            data_file_name: name.to_owned(),
            offset,
            length,
            cardinality: Some(dv.cardinality() as i64),
        });
    }
    if i32::try_from(out.len()).is_err() {
        return Err(FormatError::Invalid(
            "deletion-vector index file exceeds 2 GiB".to_owned(),
        ));
    }
    Ok((out, ranges))
}

/// Decodes the vector of one data file from a whole index file.
pub fn decode_vector(file_bytes: &[u8], range: &DeletionVectorRange) -> Result<DeletionVector> {
    check_version(file_bytes, &range.data_file_name)?;
    let offset = usize::try_from(range.offset)
        .ok()
        .filter(|offset| *offset >= 1)
        .ok_or_else(|| {
            invalid(
                range,
                format!("offset {} is not inside the file", range.offset),
            )
        })?;
    let record = file_bytes.get(offset..).ok_or_else(|| {
        invalid(
            range,
            format!(
                "offset {offset} is past the end of the {}-byte index file",
                file_bytes.len()
            ),
        )
    })?;
    decode_record(record, range)
}

/// Decodes the vector of one data file from the bytes of its record alone:
/// `record` starts at `range.offset` of the index file and may run past the
/// record's end. A reader can fetch just
/// `[offset, offset + length + 8)` of the file (cut at the file's end) and
/// decode it with this, whichever record layout it holds.
pub fn decode_record(record: &[u8], range: &DeletionVectorRange) -> Result<DeletionVector> {
    let header = record.get(..8).ok_or_else(|| {
        invalid(
            range,
            format!(
                "truncated: {} bytes left where a record needs at least 12",
                record.len()
            ),
        )
    })?;
    let size = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let magic_bytes = [header[4], header[5], header[6], header[7]];
    if size < 4 {
        return Err(invalid(range, format!("record size {size} is below 4")));
    }
    // size >= 4 here.
    let payload_end = 4 + size as usize;
    let is_64 = if i32::from_be_bytes(magic_bytes) == BITMAP32_MAGIC {
        if size != range.length {
            return Err(invalid(
                range,
                format!(
                    "record size {size} does not match the range length {}",
                    range.length
                ),
            ));
        }
        false
    } else if i32::from_le_bytes(magic_bytes) == BITMAP64_MAGIC {
        if i64::from(size) + FRAME_BYTES as i64 != i64::from(range.length) {
            return Err(invalid(
                range,
                format!(
                    "64-bit record size {size} does not match the range length {} (size + 8)",
                    range.length
                ),
            ));
        }
        true
    } else {
        return Err(invalid(
            range,
            format!(
                "bad magic number {} (expected {BITMAP32_MAGIC} big-endian or {BITMAP64_MAGIC} little-endian)",
                i32::from_be_bytes(magic_bytes)
            ),
        ));
    };
    let crc_bytes = record.get(payload_end..payload_end + 4).ok_or_else(|| {
        invalid(
            range,
            format!(
                "truncated: the record needs {} bytes, {} are left",
                payload_end + 4,
                record.len()
            ),
        )
    })?;
    let stored_crc = u32::from_be_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    let computed_crc = crc32fast::hash(&record[4..payload_end]);
    if stored_crc != computed_crc {
        return Err(invalid(
            range,
            format!("CRC mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"),
        ));
    }
    let bitmap_bytes = &record[8..payload_end];
    let bitmap = if is_64 {
        read_bitmap64(bitmap_bytes, range)?
    } else {
        read_bitmap32(bitmap_bytes, range)?
    };
    DeletionVector::from_bitmap(bitmap).map_err(|e| invalid(range, e.to_string()))
}

/// Decodes every vector of an index file listed in `ranges`, in their order.
pub fn decode_index_file(
    bytes: &[u8],
    ranges: &[DeletionVectorRange],
) -> Result<Vec<(String, DeletionVector)>> {
    ranges
        .iter()
        .map(|range| Ok((range.data_file_name.clone(), decode_vector(bytes, range)?)))
        .collect()
}

fn check_version(file_bytes: &[u8], data_file: &str) -> Result<()> {
    match file_bytes.first() {
        Some(&DV_INDEX_VERSION) => Ok(()),
        Some(&version) => Err(FormatError::Unsupported(format!(
            "deletion-vector index file version {version} (expected {DV_INDEX_VERSION}), \
             reading the vector of data file {data_file}"
        ))),
        None => Err(FormatError::Invalid(format!(
            "deletion-vector index file is empty, reading the vector of data file {data_file}"
        ))),
    }
}

/// A whole portable 32-bit roaring bitmap: trailing bytes are an error.
fn read_bitmap32(mut bytes: &[u8], range: &DeletionVectorRange) -> Result<RoaringBitmap> {
    let bitmap = RoaringBitmap::deserialize_from(&mut bytes)
        .map_err(|e| invalid(range, format!("invalid roaring bitmap: {e}")))?;
    if !bytes.is_empty() {
        return Err(invalid(
            range,
            format!("{} bytes left after the roaring bitmap", bytes.len()),
        ));
    }
    Ok(bitmap)
}

/// The portable 64-bit roaring format: a `u64` LE count of 32-bit bitmaps,
/// each preceded by its `u32` LE key (the high 32 bits of its positions),
/// keys ascending. Only key 0 can hold positions Tidelake supports; other
/// keys may be present but must be empty.
fn read_bitmap64(mut bytes: &[u8], range: &DeletionVectorRange) -> Result<RoaringBitmap> {
    let count = take_array::<8>(&mut bytes, range)?;
    let count = u64::from_le_bytes(count);
    let mut result = RoaringBitmap::new();
    let mut last_key = None;
    // Each bitmap takes at least 12 bytes, so a corrupt count ends the loop
    // at the first missing byte rather than running long.
    for _ in 0..count {
        let key = u32::from_le_bytes(take_array::<4>(&mut bytes, range)?);
        if last_key.is_some_and(|last| key <= last) {
            return Err(invalid(
                range,
                format!("64-bit bitmap keys are not ascending at key {key}"),
            ));
        }
        last_key = Some(key);
        let bitmap = RoaringBitmap::deserialize_from(&mut bytes)
            .map_err(|e| invalid(range, format!("invalid roaring bitmap for key {key}: {e}")))?;
        match (key, bitmap.min()) {
            (0, _) => result = bitmap,
            (_, None) => {}
            (_, Some(low)) => {
                return Err(FormatError::Unsupported(format!(
                    "deletion vector of data file {}: position {} is beyond the largest supported row position {MAX_POSITION}",
                    range.data_file_name,
                    (u64::from(key) << 32) | u64::from(low)
                )))
            }
        }
    }
    if !bytes.is_empty() {
        return Err(invalid(
            range,
            format!("{} bytes left after the 64-bit roaring bitmap", bytes.len()),
        ));
    }
    Ok(result)
}

fn take_array<const N: usize>(bytes: &mut &[u8], range: &DeletionVectorRange) -> Result<[u8; N]> {
    let (head, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or_else(|| invalid(range, "truncated 64-bit roaring bitmap".to_owned()))?;
    *bytes = rest;
    Ok(*head)
}

fn invalid(range: &DeletionVectorRange, message: String) -> FormatError {
    FormatError::Invalid(format!(
        "deletion vector of data file {} (offset {}, length {}): {message}",
        range.data_file_name, range.offset, range.length
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn dv(positions: &[u64]) -> DeletionVector {
        DeletionVector::from_positions(positions.iter().copied()).expect("valid positions")
    }

    fn naive_mask(set: &BTreeSet<u64>, start: u64, len: usize) -> Option<Vec<bool>> {
        let mask: Vec<bool> = (0..len as u64)
            .map(|i| !set.contains(&(start + i)))
            .collect();
        mask.contains(&false).then_some(mask)
    }

    fn mask_vec(mask: Option<BooleanArray>) -> Option<Vec<bool>> {
        mask.map(|m| m.values().iter().collect())
    }

    fn encode(vectors: &[(&str, &DeletionVector)]) -> (Vec<u8>, Vec<DeletionVectorRange>) {
        encode_index_file(vectors).expect("encodable")
    }

    /// Re-frames a 32-bit record with the given bitmap bytes and a valid CRC.
    fn record32(bitmap: &[u8]) -> Vec<u8> {
        let mut data = BITMAP32_MAGIC.to_be_bytes().to_vec();
        data.extend_from_slice(bitmap);
        let mut file = vec![DV_INDEX_VERSION];
        file.extend_from_slice(&(data.len() as i32).to_be_bytes());
        file.extend_from_slice(&data);
        file.extend_from_slice(&crc32fast::hash(&data).to_be_bytes());
        file
    }

    fn range_of(name: &str, offset: i32, length: i32) -> DeletionVectorRange {
        DeletionVectorRange {
            data_file_name: name.to_owned(),
            offset,
            length,
            cardinality: None,
        }
    }

    fn err_text(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn basic_operations() {
        let mut v = DeletionVector::new();
        assert!(v.is_empty());
        assert!(v.delete(5).unwrap());
        assert!(!v.delete(5).unwrap());
        assert!(v.delete(MAX_POSITION).unwrap());
        assert!(v.delete(MAX_POSITION + 1).is_err());
        assert!(v.is_deleted(5));
        assert!(!v.is_deleted(6));
        assert!(!v.is_deleted(u64::MAX));
        assert_eq!(v.cardinality(), 2);
        let mut w = dv(&[1, 5, 9]);
        w.merge(&v);
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![1, 5, 9, MAX_POSITION]);
        assert_eq!(w.deleted_in(2, 10), 2);
        assert_eq!(w.deleted_in(MAX_POSITION, usize::MAX), 1);
        assert!(DeletionVector::from_bitmap([1u32 << 31].into_iter().collect()).is_err());
    }

    #[test]
    fn keep_mask_edges() {
        let v = dv(&[0, 3, 4, MAX_POSITION]);
        assert_eq!(
            mask_vec(v.keep_mask(0, 6)),
            Some(vec![false, true, true, false, false, true])
        );
        assert_eq!(mask_vec(v.keep_mask(1, 2)), None);
        assert_eq!(mask_vec(v.keep_mask(4, 0)), None);
        assert_eq!(mask_vec(v.keep_mask(MAX_POSITION + 1, 10)), None);
        assert_eq!(mask_vec(v.keep_mask(u64::MAX, 10)), None);
        assert_eq!(
            mask_vec(v.keep_mask(MAX_POSITION - 1, 4)),
            Some(vec![true, false, true, true])
        );
        assert_eq!(mask_vec(DeletionVector::new().keep_mask(0, 100)), None);
    }

    #[test]
    fn round_trips_several_files() {
        let a = dv(&[0, 1, 2, 100_000]);
        let b = DeletionVector::new();
        let c = DeletionVector::from_positions(0..10_000).unwrap();
        let (bytes, ranges) = encode(&[("a", &a), ("b", &b), ("c", &c)]);
        assert_eq!(bytes[0], DV_INDEX_VERSION);
        assert_eq!(ranges[0].offset, 1);
        assert_eq!(ranges[1].offset, 1 + ranges[0].length + 8);
        assert_eq!(ranges[2].offset, ranges[1].offset + ranges[1].length + 8);
        assert_eq!(bytes.len() as i32, ranges[2].offset + ranges[2].length + 8);
        assert_eq!(
            ranges.iter().map(|r| r.cardinality).collect::<Vec<_>>(),
            vec![Some(4), Some(0), Some(10_000)]
        );
        let decoded = decode_index_file(&bytes, &ranges).unwrap();
        assert_eq!(
            decoded,
            vec![
                ("a".to_owned(), a),
                ("b".to_owned(), b),
                ("c".to_owned(), c.clone())
            ]
        );
        // A reader that fetched only the record's bytes.
        let r = &ranges[2];
        let start = r.offset as usize;
        let record = &bytes[start..start + r.length as usize + 8];
        assert_eq!(decode_record(record, r).unwrap(), c);
    }

    #[test]
    fn rejects_bad_version_and_empty_file() {
        let (mut bytes, ranges) = encode(&[("data-1.parquet", &dv(&[1]))]);
        bytes[0] = 2;
        let e = decode_vector(&bytes, &ranges[0]).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("version 2"), "{e}");
        assert!(e.to_string().contains("data-1.parquet"), "{e}");
        assert!(err_text(decode_vector(&[], &ranges[0])).contains("empty"));
    }

    #[test]
    fn rejects_bad_magic() {
        let (mut bytes, ranges) = encode(&[("data-1.parquet", &dv(&[1]))]);
        bytes[5] ^= 0xff;
        let e = err_text(decode_vector(&bytes, &ranges[0]));
        assert!(
            e.contains("bad magic") && e.contains("data-1.parquet"),
            "{e}"
        );
    }

    #[test]
    fn rejects_crc_mismatch() {
        let (mut bytes, ranges) = encode(&[("data-1.parquet", &dv(&[1, 2, 3]))]);
        let last_bitmap_byte = bytes.len() - 5;
        bytes[last_bitmap_byte] ^= 0x01;
        let e = err_text(decode_vector(&bytes, &ranges[0]));
        assert!(
            e.contains("CRC mismatch") && e.contains("data-1.parquet"),
            "{e}"
        );
    }

    #[test]
    fn rejects_size_mismatch_with_range() {
        let (bytes, mut ranges) = encode(&[("data-1.parquet", &dv(&[1]))]);
        ranges[0].length += 1;
        let e = err_text(decode_vector(&bytes, &ranges[0]));
        assert!(e.contains("does not match the range length"), "{e}");
    }

    #[test]
    fn rejects_bad_offsets() {
        let (bytes, ranges) = encode(&[("data-1.parquet", &dv(&[1]))]);
        for offset in [0, -1, bytes.len() as i32 + 5, i32::MAX] {
            let mut r = ranges[0].clone();
            r.offset = offset;
            let e = err_text(decode_vector(&bytes, &r));
            assert!(e.contains("data-1.parquet"), "{e}");
        }
    }

    #[test]
    fn rejects_every_truncation() {
        let (bytes, ranges) = encode(&[("data-1.parquet", &dv(&[1, 70_000, 5_000_000]))]);
        for cut in 0..bytes.len() {
            let e = err_text(decode_vector(&bytes[..cut], &ranges[0]));
            assert!(e.contains("data-1.parquet"), "cut at {cut}: {e}");
        }
    }

    #[test]
    fn rejects_positions_beyond_i32() {
        let mut bitmap = Vec::new();
        RoaringBitmap::from_iter([7u32, 1 << 31])
            .serialize_into(&mut bitmap)
            .unwrap();
        let file = record32(&bitmap);
        let range = range_of("data-9.parquet", 1, 4 + bitmap.len() as i32);
        let e = err_text(decode_vector(&file, &range));
        assert!(
            e.contains("2147483648") && e.contains("data-9.parquet"),
            "{e}"
        );
    }

    #[test]
    fn rejects_trailing_bytes_inside_the_record() {
        let mut bitmap = Vec::new();
        RoaringBitmap::from_iter([7u32])
            .serialize_into(&mut bitmap)
            .unwrap();
        bitmap.push(0);
        let file = record32(&bitmap);
        let range = range_of("data-9.parquet", 1, 4 + bitmap.len() as i32);
        assert!(err_text(decode_vector(&file, &range)).contains("bytes left"));
    }

    /// A 64-bit record as Paimon Java frames it around `bitmap64`.
    fn record64(bitmap64: &[u8]) -> (Vec<u8>, DeletionVectorRange) {
        let mut data = BITMAP64_MAGIC.to_le_bytes().to_vec();
        data.extend_from_slice(bitmap64);
        let mut file = vec![DV_INDEX_VERSION];
        file.extend_from_slice(&(data.len() as i32).to_be_bytes());
        file.extend_from_slice(&data);
        file.extend_from_slice(&crc32fast::hash(&data).to_be_bytes());
        let length = file.len() as i32 - 1;
        (file, range_of("data-64.parquet", 1, length))
    }

    fn bitmap64(parts: &[(u32, &[u32])]) -> Vec<u8> {
        let mut out = (parts.len() as u64).to_le_bytes().to_vec();
        for (key, values) in parts {
            out.extend_from_slice(&key.to_le_bytes());
            RoaringBitmap::from_iter(values.iter().copied())
                .serialize_into(&mut out)
                .unwrap();
        }
        out
    }

    #[test]
    fn reads_64_bit_records() {
        let (file, range) = record64(&bitmap64(&[(0, &[1, 2, 99]), (3, &[])]));
        assert_eq!(decode_vector(&file, &range).unwrap(), dv(&[1, 2, 99]));
        let (file, range) = record64(&bitmap64(&[]));
        assert_eq!(decode_vector(&file, &range).unwrap(), DeletionVector::new());
        // Only higher keys, the low one absent: nothing below 2^32 deleted.
        let (file, range) = record64(&bitmap64(&[(2, &[])]));
        assert!(decode_vector(&file, &range).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_64_bit_records() {
        let (file, range) = record64(&bitmap64(&[(0, &[1]), (1, &[5])]));
        let e = decode_vector(&file, &range).unwrap_err();
        assert!(matches!(e, FormatError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("4294967301"), "{e}");
        let (file, range) = record64(&bitmap64(&[(1, &[]), (0, &[1])]));
        assert!(err_text(decode_vector(&file, &range)).contains("not ascending"));
        let (file, mut range) = record64(&bitmap64(&[(0, &[1])]));
        range.length -= 8;
        assert!(err_text(decode_vector(&file, &range)).contains("size + 8"));
        let mut bad_count = bitmap64(&[(0, &[1])]);
        bad_count[0] = 200;
        let (file, range) = record64(&bad_count);
        assert!(err_text(decode_vector(&file, &range)).contains("truncated 64-bit"));
        let (file, range) = record64(&bitmap64(&[(0, &[0, 1 << 31])]));
        assert!(err_text(decode_vector(&file, &range)).contains("2147483648"));
    }

    /// Positions that exercise array, bitmap and multi-container layouts.
    fn positions() -> impl Strategy<Value = BTreeSet<u64>> {
        prop_oneof![
            prop::collection::btree_set(0..=MAX_POSITION, 0..200),
            prop::collection::btree_set(0u64..70_000, 0..9_000),
            (0u64..1_000, 0usize..20_000)
                .prop_map(|(start, len)| (start..start + len as u64).collect()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip(sets in prop::collection::vec(positions(), 1..4)) {
            let vectors: Vec<DeletionVector> = sets
                .iter()
                .map(|s| DeletionVector::from_positions(s.iter().copied()).unwrap())
                .collect();
            let named: Vec<(String, &DeletionVector)> =
                vectors.iter().enumerate().map(|(i, v)| (format!("f{i}"), v)).collect();
            let (bytes, ranges) = encode_index_file(&named).unwrap();
            let decoded = decode_index_file(&bytes, &ranges).unwrap();
            for ((set, (_, v)), range) in sets.iter().zip(&decoded).zip(&ranges) {
                prop_assert_eq!(v.iter().collect::<BTreeSet<_>>(), set.clone());
                prop_assert_eq!(range.cardinality, Some(set.len() as i64));
            }
        }

        #[test]
        fn keep_mask_matches_naive(
            set in positions(),
            start in prop_oneof![0u64..80_000, (MAX_POSITION - 100)..=(MAX_POSITION + 10)],
            len in 0usize..5_000,
        ) {
            let v = DeletionVector::from_positions(set.iter().copied()).unwrap();
            prop_assert_eq!(mask_vec(v.keep_mask(start, len)), naive_mask(&set, start, len));
            let naive_deleted = (start..start + len as u64).filter(|p| set.contains(p)).count();
            prop_assert_eq!(v.deleted_in(start, len), naive_deleted as u64);
        }

        #[test]
        fn merge_is_union(a in positions(), b in positions()) {
            let mut v = DeletionVector::from_positions(a.iter().copied()).unwrap();
            v.merge(&DeletionVector::from_positions(b.iter().copied()).unwrap());
            prop_assert_eq!(v.iter().collect::<BTreeSet<_>>(), a.union(&b).copied().collect());
        }

        /// A corrupt burst of up to 4 bytes anywhere in the file, or a wrong
        /// range length, is an error: CRC32 catches every burst of at most 32
        /// bits in the payload, and the frame's fields are all checked.
        #[test]
        fn corrupt_input_is_an_error(
            set in positions(),
            at in any::<prop::sample::Index>(),
            masks in prop::collection::vec(1u8..=255, 1..=4),
            length_delta in -2i32..=2,
        ) {
            let v = DeletionVector::from_positions(set.iter().copied()).unwrap();
            let (mut bytes, mut ranges) = encode_index_file(&[("f", &v)]).unwrap();
            let first = at.index(bytes.len() - masks.len() + 1);
            for (i, mask) in masks.iter().enumerate() {
                bytes[first + i] ^= mask;
            }
            ranges[0].length += length_delta;
            prop_assert!(decode_vector(&bytes, &ranges[0]).is_err());
        }

        /// Arbitrary bytes and ranges never make the decoder panic.
        #[test]
        fn arbitrary_input_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
            offset in -2i32..70,
            length in -2i32..70,
        ) {
            let mut file = vec![DV_INDEX_VERSION];
            file.extend_from_slice(&bytes);
            let _ = decode_vector(&file, &range_of("f", offset, length));
            let _ = decode_record(&bytes, &range_of("f", offset, length));
            // Random bitmaps inside valid frames reach the roaring decoders.
            let framed = record32(&bytes);
            let _ = decode_vector(&framed, &range_of("f", 1, 4 + bytes.len() as i32));
            let (framed, range) = record64(&bytes);
            let _ = decode_vector(&framed, &range);
        }
    }
}
