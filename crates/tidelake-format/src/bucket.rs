//! Fixed-bucket assignment as Paimon does it: MurmurHash3 (x86, 32-bit) over
//! the 4-byte little-endian words of the bucket key's BinaryRow (no arity
//! prefix), seed 42, with the byte length mixed in before the final
//! avalanche (Java `MurmurHashUtils.hashBytesByWords`, used by
//! `BinaryRow.hashCode`); the bucket is `Math.abs(hash % numBuckets)`.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int32Type, Int64Type};
use arrow_array::Array;
use arrow_schema::DataType as ArrowType;

use crate::binary_row::{
    encode_arrow_row_into, inline_slot, normalize, value_ref_at, wide_chunk_len, ValueRef,
};
use crate::error::{FormatError, Result};
use crate::types::{DataType, DataTypeKind};

const SEED: u32 = 42;
const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline]
fn mix_k1(k1: u32) -> u32 {
    k1.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline]
fn mix_h1(h1: u32, k1: u32) -> u32 {
    (h1 ^ k1)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline]
fn finish(h1: u32, length: u32) -> u32 {
    let mut h = h1 ^ length;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Paimon's hash of a BinaryRow: MurmurHash3 x86_32 over 4-byte words, seed
/// 42, then `fmix(h ^ length)`. The input is `encode_binary_row` output,
/// whose length is always a multiple of 8; trailing bytes of a length that is
/// not a multiple of 4 are ignored, as Java would never see them.
pub fn hash_binary_row(row_bytes: &[u8]) -> i32 {
    let h1 = row_bytes.chunks_exact(4).fold(SEED, |h1, word| {
        mix_h1(
            h1,
            mix_k1(u32::from_le_bytes([word[0], word[1], word[2], word[3]])),
        )
    });
    finish(h1, row_bytes.len() as u32) as i32
}

/// Java's `Math.abs(hash % n)`. A non-positive `num_buckets` has no fixed
/// bucket; it yields 0 rather than failing (callers validate the count).
pub fn bucket_of(hash: i32, num_buckets: i32) -> i32 {
    if num_buckets <= 0 {
        return 0;
    }
    (hash % num_buckets).abs()
}

/// Bucket of every row of the given bucket-key columns (in key order, read
/// as the given Paimon types).
///
/// Single fixed-width keys hash their 16-byte row straight from the slot
/// value; other keys encode each row into one reused buffer, so no path
/// allocates per row.
pub fn compute_buckets(
    columns: &[&dyn Array],
    types: &[DataType],
    num_buckets: i32,
) -> Result<Vec<i32>> {
    if num_buckets <= 0 {
        return Err(FormatError::Invalid(format!(
            "fixed-bucket hashing needs a positive bucket count, got {num_buckets}"
        )));
    }
    let Some(first) = columns.first() else {
        return Err(FormatError::Invalid(
            "a bucket key needs at least one column".to_string(),
        ));
    };
    if columns.len() != types.len() {
        return Err(FormatError::Invalid(format!(
            "{} bucket-key columns given with {} types",
            columns.len(),
            types.len()
        )));
    }
    let rows = first.len();
    if let Some(column) = columns.iter().find(|c| c.len() != rows) {
        return Err(FormatError::Invalid(format!(
            "bucket-key columns differ in length: {rows} and {}",
            column.len()
        )));
    }
    if let ([column], [ty]) = (columns, types) {
        if let Some(buckets) = single_fixed_width_buckets(*column, ty, num_buckets)? {
            return Ok(buckets);
        }
    }
    let mut row_bytes = Vec::with_capacity(64);
    let mut buckets = Vec::with_capacity(rows);
    for row in 0..rows {
        encode_arrow_row_into(columns, types, row, &mut row_bytes)?;
        buckets.push(bucket_of(hash_binary_row(&row_bytes), num_buckets));
    }
    Ok(buckets)
}

/// Hash of a one-field row whose value lives entirely in its slot: words are
/// the null-bitset word (row kind 0, null bit 8), a zero word, and the slot.
#[inline]
fn hash_single_slot(slot: u64, is_null: bool) -> i32 {
    let header = if is_null { 1u32 << 8 } else { 0 };
    let mut h1 = mix_h1(SEED, mix_k1(header));
    h1 = mix_h1(h1, mix_k1(0));
    h1 = mix_h1(h1, mix_k1(slot as u32));
    h1 = mix_h1(h1, mix_k1((slot >> 32) as u32));
    finish(h1, 16) as i32
}

/// Buckets of a single-column key of a fixed-width type, or None when the
/// type needs the general path (strings, bytes, wide decimals/timestamps).
fn single_fixed_width_buckets(
    column: &dyn Array,
    ty: &DataType,
    num_buckets: i32,
) -> Result<Option<Vec<i32>>> {
    use DataTypeKind as K;
    let variable_width = matches!(
        ty.kind,
        K::Char(_) | K::VarChar(_) | K::Binary(_) | K::VarBinary(_)
    ) || wide_chunk_len(ty).is_some();
    if variable_width {
        return Ok(None);
    }
    // The commonest keys skip per-row type dispatch altogether.
    let fast = match (column.data_type(), &ty.kind) {
        (ArrowType::Int32, K::Int) => column
            .as_primitive_opt::<Int32Type>()
            .map(|a| primitive_buckets(column, a.values(), |v| u64::from(v as u32), num_buckets)),
        (ArrowType::Date32, K::Date) => column
            .as_primitive_opt::<Date32Type>()
            .map(|a| primitive_buckets(column, a.values(), |v| u64::from(v as u32), num_buckets)),
        (ArrowType::Int64, K::BigInt) => column
            .as_primitive_opt::<Int64Type>()
            .map(|a| primitive_buckets(column, a.values(), |v| v as u64, num_buckets)),
        _ => None,
    };
    if fast.is_some() {
        return Ok(fast);
    }
    let mut buckets = Vec::with_capacity(column.len());
    for row in 0..column.len() {
        let value = normalize(value_ref_at(column, row)?, ty)?;
        let slot = inline_slot(value, ty);
        if slot.is_none() && value != ValueRef::Null {
            return Ok(None);
        }
        buckets.push(bucket_of(
            hash_single_slot(slot.unwrap_or(0), slot.is_none()),
            num_buckets,
        ));
    }
    Ok(Some(buckets))
}

/// Buckets of a primitive column whose Arrow values map straight to slots.
fn primitive_buckets<T: Copy>(
    column: &dyn Array,
    values: &[T],
    to_slot: impl Fn(T) -> u64,
    num_buckets: i32,
) -> Vec<i32> {
    values
        .iter()
        .enumerate()
        .map(|(row, value)| {
            let is_null = column.is_null(row);
            let slot = if is_null { 0 } else { to_slot(*value) };
            bucket_of(hash_single_slot(slot, is_null), num_buckets)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary_row::{encode_binary_row, Datum};
    use crate::types::MAX_LENGTH;
    use arrow_array::{
        BooleanArray, Date32Array, Decimal128Array, Float64Array, Int16Array, Int32Array,
        Int64Array, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    };
    use proptest::prelude::*;

    use DataTypeKind as K;

    fn t(kind: DataTypeKind) -> DataType {
        DataType::new(kind, false)
    }

    fn buckets_of(column: &dyn Array, kind: DataTypeKind, num_buckets: i32) -> Vec<i32> {
        compute_buckets(&[column], &[t(kind)], num_buckets).unwrap()
    }

    /// Buckets pypaimon 2.1 assigned when writing these keys to fixed-bucket tables.
    #[test]
    fn matches_pypaimon_bucket_assignment() {
        let ints = Int32Array::from(vec![0, 1, -1, 42, i32::MAX, i32::MIN, 123456, 7, 99, 1000]);
        assert_eq!(buckets_of(&ints, K::Int, 7), [1, 5, 6, 1, 5, 0, 3, 3, 3, 2]);
        let longs = Int64Array::from(vec![
            0,
            1,
            -1,
            42,
            i64::MAX,
            i64::MIN,
            1234567890123,
            5,
            77,
            100000,
        ]);
        assert_eq!(
            buckets_of(&longs, K::BigInt, 16),
            [11, 14, 0, 5, 7, 7, 12, 4, 9, 3]
        );
        let long_x = "x".repeat(100);
        let strings = StringArray::from(vec![
            "",
            "a",
            "abc",
            "abcdefg",
            "abcdefgh",
            "hello world, longer string",
            "héllo",
            &long_x,
            "key-17",
            "zz",
        ]);
        assert_eq!(
            buckets_of(&strings, K::VarChar(MAX_LENGTH), 5),
            [4, 1, 4, 3, 3, 2, 4, 4, 0, 1]
        );
        let a = Int32Array::from(vec![1, 1, 2, 2, 3, 100, -5, 0]);
        let b = StringArray::from(vec![
            "a",
            "long string value here",
            "a",
            "bb",
            "",
            "k",
            "kkkkkkkkk",
            "z",
        ]);
        let types = [t(K::Int), t(K::VarChar(MAX_LENGTH))];
        assert_eq!(
            compute_buckets(&[&a, &b], &types, 10).unwrap(),
            [2, 6, 0, 7, 8, 3, 2, 0]
        );
        let dates = Date32Array::from(vec![19723, 0, 10956, 22080]);
        assert_eq!(buckets_of(&dates, K::Date, 3), [1, 0, 1, 2]);
        let decimals = Decimal128Array::from(vec![123, -4560, 0, 9999999999])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(
            buckets_of(
                &decimals,
                K::Decimal {
                    precision: 10,
                    scale: 2
                },
                4
            ),
            [3, 0, 3, 0]
        );
        let wide = Decimal128Array::from(vec![123, -4560, 1234567890123456789012])
            .with_precision_and_scale(38, 2)
            .unwrap();
        assert_eq!(
            buckets_of(
                &wide,
                K::Decimal {
                    precision: 38,
                    scale: 2
                },
                4
            ),
            [0, 1, 0]
        );
        let micros = TimestampMicrosecondArray::from(vec![1704110400123456, 0, 1000000000000000]);
        assert_eq!(buckets_of(&micros, K::Timestamp(6), 6), [4, 2, 3]);
        let doubles = Float64Array::from(vec![0.0, 1.5, -2.25, std::f64::consts::PI]);
        assert_eq!(buckets_of(&doubles, K::Double, 5), [4, 3, 1, 2]);
    }

    /// Hashes pypaimon's `_hash_bytes_by_words` gives for these rows (arity prefix dropped).
    #[test]
    fn matches_pypaimon_row_hashes() {
        let hex = |text: &str| -> Vec<u8> {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect()
        };
        let cases = [
            ("00000000000000002a00000000000000", 907821237),
            ("00000000000000001a0000001000000068656c6c6f20776f726c642c206c6f6e67657220737472696e67000000000000", -37335392),
            ("000000000000000001000000000000006100000000000081", -948407462),
            ("00010000000000000000000000000000", -1748325344),
            ("00000000000000000200000010000000ff800000000000000000000000000000", 1511938562),
            ("000100000000000000000000000000000100000000000000", -2146858737),
        ];
        for (row, hash) in cases {
            assert_eq!(hash_binary_row(&hex(row)), hash, "{row}");
        }
    }

    #[test]
    fn bucket_follows_java_remainder() {
        assert_eq!(bucket_of(-7, 3), 1);
        assert_eq!(bucket_of(7, 3), 1);
        assert_eq!(bucket_of(i32::MIN, 7), 2);
        assert_eq!(bucket_of(i32::MAX, 1), 0);
        assert_eq!(bucket_of(5, 0), 0);
    }

    #[test]
    fn rejects_bad_arguments() {
        let ints = Int32Array::from(vec![1, 2]);
        let short = Int32Array::from(vec![1]);
        assert!(compute_buckets(&[&ints], &[t(K::Int)], 0).is_err());
        assert!(compute_buckets(&[], &[], 4).is_err());
        assert!(compute_buckets(&[&ints], &[], 4).is_err());
        assert!(compute_buckets(&[&ints, &short], &[t(K::Int), t(K::Int)], 4).is_err());
        let strings = StringArray::from(vec!["x", "y"]);
        assert!(compute_buckets(&[&strings], &[t(K::Int)], 4).is_err());
    }

    /// The bucket the general path (encode the row, hash it) gives.
    fn reference_buckets(column: &dyn Array, ty: &DataType, num_buckets: i32) -> Vec<i32> {
        (0..column.len())
            .map(|row| {
                let datum = crate::binary_row::datum_from_arrow(column, row, ty).unwrap();
                let bytes = encode_binary_row(&[datum], std::slice::from_ref(ty)).unwrap();
                bucket_of(hash_binary_row(&bytes), num_buckets)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn fast_paths_agree_with_encoding(
            values in proptest::collection::vec(proptest::option::weighted(0.9, any::<i64>()), 0..40),
            num_buckets in 1..300i32,
        ) {
            let narrow = |v: &Option<i64>| v.map(|x| x as i32);
            let columns: Vec<(Box<dyn Array>, DataTypeKind)> = vec![
                (Box::new(Int32Array::from(values.iter().map(narrow).collect::<Vec<_>>())), K::Int),
                (Box::new(Date32Array::from(values.iter().map(narrow).collect::<Vec<_>>())), K::Date),
                (Box::new(Int64Array::from(values.clone())), K::BigInt),
                (Box::new(Int16Array::from(values.iter().map(|v| v.map(|x| x as i16)).collect::<Vec<_>>())), K::SmallInt),
                (Box::new(Int32Array::from(values.iter().map(narrow).collect::<Vec<_>>())), K::BigInt),
                (Box::new(BooleanArray::from(values.iter().map(|v| v.map(|x| x % 2 == 0)).collect::<Vec<_>>())), K::Boolean),
                (Box::new(Float64Array::from(values.iter().map(|v| v.map(|x| x as f64 / 7.0)).collect::<Vec<_>>())), K::Double),
                (Box::new(TimestampMillisecondArray::from(values.clone())), K::Timestamp(3)),
                (Box::new(Decimal128Array::from(values.iter().map(|v| v.map(|x| i128::from(x % 1_000_000_000_000))).collect::<Vec<_>>())
                    .with_precision_and_scale(15, 3).unwrap()), K::Decimal { precision: 18, scale: 3 }),
            ];
            for (column, kind) in columns {
                let ty = t(kind);
                let fast = compute_buckets(&[column.as_ref()], std::slice::from_ref(&ty), num_buckets).unwrap();
                prop_assert_eq!(fast, reference_buckets(column.as_ref(), &ty, num_buckets), "{:?}", ty);
            }
        }

        #[test]
        fn composite_keys_agree_with_encoding(
            rows in proptest::collection::vec((any::<Option<i32>>(), proptest::option::of(".{0,12}")), 0..30),
        ) {
            let a = Int32Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
            let b = StringArray::from(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>());
            let types = [t(K::Int), t(K::VarChar(MAX_LENGTH))];
            let buckets = compute_buckets(&[&a, &b], &types, 13).unwrap();
            for (row, (x, y)) in rows.iter().enumerate() {
                let values = [x.map_or(Datum::Null, Datum::Int), y.clone().map_or(Datum::Null, Datum::String)];
                let bytes = encode_binary_row(&values, &types).unwrap();
                prop_assert_eq!(buckets[row], bucket_of(hash_binary_row(&bytes), 13));
            }
        }
    }
}
