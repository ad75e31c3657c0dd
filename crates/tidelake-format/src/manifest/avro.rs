//! Just enough Avro for Paimon's metadata files: the binary encoding, the
//! object container format (header, blocks, sync markers, codecs) and a
//! decoder driven by the writer's schema, which is compiled once per file so
//! that records are decoded straight into our structs.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use apache_avro::schema::{InnerDecimalSchema, Name, ResolvedSchema, UuidSchema};
use apache_avro::{Codec, DeflateSettings, Schema as AvroSchema, ZstandardSettings};

use super::records::Field;
use super::ManifestCodec;
use crate::error::{FormatError, Result};

// ---------------------------------------------------------------------------
// The binary encoding.

/// Avro `long`/`int`: zig-zag, then base-128 varint.
pub(super) fn put_long(buf: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        buf.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    buf.push(zigzag as u8);
}

pub(super) fn put_int(buf: &mut Vec<u8>, value: i32) {
    put_long(buf, value.into());
}

pub(super) fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_long(buf, bytes.len() as i64);
    buf.extend_from_slice(bytes);
}

pub(super) fn put_str(buf: &mut Vec<u8>, text: &str) {
    put_bytes(buf, text.as_bytes());
}

pub(super) fn put_str_array(buf: &mut Vec<u8>, items: &[String]) {
    put_array(buf, items, |buf, item| put_str(buf, item));
}

/// A value of a `["null", T]` union: branch 0 is null, branch 1 the value.
pub(super) fn put_optional<T>(
    buf: &mut Vec<u8>,
    value: Option<T>,
    put: impl FnOnce(&mut Vec<u8>, T),
) {
    match value {
        None => put_long(buf, 0),
        Some(value) => {
            put_long(buf, 1);
            put(buf, value);
        }
    }
}

/// An Avro array as a single block followed by the empty end block.
pub(super) fn put_array<T>(buf: &mut Vec<u8>, items: &[T], mut put: impl FnMut(&mut Vec<u8>, &T)) {
    if !items.is_empty() {
        put_long(buf, items.len() as i64);
        for item in items {
            put(buf, item);
        }
    }
    put_long(buf, 0);
}

// ---------------------------------------------------------------------------
// Avro object container files.

const AVRO_MAGIC: &[u8; 4] = b"Obj\x01";
pub(super) const SYNC_SIZE: usize = 16;
/// Uncompressed bytes per block, as Avro Java's default sync interval.
const BLOCK_SIZE: usize = 64_000;

pub(super) struct ContainerWriter {
    out: Vec<u8>,
    block: Vec<u8>,
    block_records: i64,
    sync: [u8; SYNC_SIZE],
    codec: ManifestCodec,
}

impl ContainerWriter {
    pub(super) fn new(schema_json: &str, codec: ManifestCodec) -> ContainerWriter {
        let sync = random_sync_marker();
        let mut out = Vec::with_capacity(schema_json.len() + 64);
        out.extend_from_slice(AVRO_MAGIC);
        put_long(&mut out, 2); // one metadata map block of two entries
        put_str(&mut out, "avro.schema");
        put_str(&mut out, schema_json);
        put_str(&mut out, "avro.codec");
        put_str(&mut out, codec.avro_name());
        put_long(&mut out, 0);
        out.extend_from_slice(&sync);
        ContainerWriter {
            out,
            block: Vec::with_capacity(BLOCK_SIZE + 1024),
            block_records: 0,
            sync,
            codec,
        }
    }

    pub(super) fn append(
        &mut self,
        what: &'static str,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<()> {
        encode(&mut self.block);
        self.block_records += 1;
        if self.block.len() >= BLOCK_SIZE {
            self.flush_block(what)?;
        }
        Ok(())
    }

    fn flush_block(&mut self, what: &'static str) -> Result<()> {
        if self.block_records == 0 {
            return Ok(());
        }
        let mut data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE + 1024));
        self.codec
            .to_avro()
            .compress(&mut data)
            .map_err(|e| FormatError::Avro {
                what,
                message: format!("{} compression failed: {e}", self.codec.avro_name()),
            })?;
        put_long(&mut self.out, self.block_records);
        put_bytes(&mut self.out, &data);
        self.out.extend_from_slice(&self.sync);
        self.block_records = 0;
        Ok(())
    }

    pub(super) fn finish(mut self, what: &'static str) -> Result<Vec<u8>> {
        self.flush_block(what)?;
        Ok(self.out)
    }
}

/// 16 unpredictable bytes; std's `RandomState` is randomly seeded per process
/// and advances per instance, which is all a sync marker needs.
fn random_sync_marker() -> [u8; SYNC_SIZE] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut marker = [0u8; SYNC_SIZE];
    for chunk in marker.chunks_mut(8) {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    marker
}

/// Error message of the decoding internals; the public functions wrap it
/// into [`FormatError::Avro`] naming the kind of file.
pub(super) type Decoded<T> = std::result::Result<T, String>;

/// Reads every record of an Avro container file with `decode`.
pub(super) fn read_container<T>(
    bytes: &[u8],
    what: &'static str,
    decode: fn(&mut Decoder<'_>, &Node) -> Decoded<T>,
) -> Result<Vec<T>> {
    read_container_inner(bytes, decode).map_err(|message| FormatError::Avro { what, message })
}

fn read_container_inner<T>(
    bytes: &[u8],
    decode: fn(&mut Decoder<'_>, &Node) -> Decoded<T>,
) -> Decoded<Vec<T>> {
    if bytes.get(..AVRO_MAGIC.len()) != Some(AVRO_MAGIC.as_slice()) {
        return Err("not an Avro object container file (bad magic bytes)".to_owned());
    }
    let mut input = Decoder::new(&bytes[AVRO_MAGIC.len()..]);
    let mut schema_json = None;
    let mut codec_name = None;
    read_blocks(&mut input, |input| {
        let key = input.bytes()?;
        let value = input.bytes()?;
        match key {
            b"avro.schema" => schema_json = Some(value),
            b"avro.codec" => codec_name = Some(value),
            _ => {}
        }
        Ok(())
    })
    .map_err(|e| format!("header metadata: {e}"))?;
    let sync = input
        .take(SYNC_SIZE)
        .map_err(|e| format!("header sync marker: {e}"))?;

    let schema_json = schema_json.ok_or("header has no avro.schema")?;
    let schema_json =
        std::str::from_utf8(schema_json).map_err(|e| format!("avro.schema is not UTF-8: {e}"))?;
    let schema =
        AvroSchema::parse_str(schema_json).map_err(|e| format!("invalid avro.schema: {e}"))?;
    let root = compile_schema(&schema)?;
    let codec = match codec_name {
        None | Some(b"null") => None,
        Some(b"deflate") => Some(Codec::Deflate(DeflateSettings::default())),
        Some(b"snappy") => Some(Codec::Snappy),
        Some(b"zstandard") => Some(Codec::Zstandard(ZstandardSettings::default())),
        Some(other) => {
            return Err(format!(
                "unsupported Avro codec '{}'",
                String::from_utf8_lossy(other)
            ));
        }
    };

    let mut records = Vec::new();
    let mut block_index = 0usize;
    while input.remaining() > 0 {
        let block_error = |e: String| format!("block {block_index}: {e}");
        let count = input.long().map_err(block_error)?;
        let data = input.bytes().map_err(block_error)?;
        if input.take(SYNC_SIZE).map_err(block_error)? != sync {
            return Err(block_error(
                "sync marker does not match the header's".to_owned(),
            ));
        }
        let decompressed;
        let data = match codec {
            None => data,
            Some(codec) => {
                let mut buffer = data.to_vec();
                codec
                    .decompress(&mut buffer)
                    .map_err(|e| block_error(format!("cannot decompress: {e}")))?;
                decompressed = buffer;
                &decompressed[..]
            }
        };
        let mut block = Decoder::new(data);
        if count < 0 || count as u64 > data.len() as u64 {
            return Err(block_error(format!(
                "invalid record count {count} for {} bytes",
                data.len()
            )));
        }
        for _ in 0..count {
            let record =
                decode(&mut block, &root).map_err(|e| format!("record {}: {e}", records.len()))?;
            records.push(record);
        }
        if block.remaining() > 0 {
            return Err(block_error(format!(
                "{} bytes left after its {count} records",
                block.remaining()
            )));
        }
        block_index += 1;
    }
    Ok(records)
}

/// Reads Avro blocks (of an array, a map or the header metadata), calling
/// `item` once per item, until the empty block that ends them.
fn read_blocks<'a>(
    input: &mut Decoder<'a>,
    mut item: impl FnMut(&mut Decoder<'a>) -> Decoded<()>,
) -> Decoded<()> {
    loop {
        let count = input.long()?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            input.long()?; // byte size of the block, only useful to skip it
        }
        let count = count.unsigned_abs();
        // Every item we accept takes at least one byte: this bounds the work
        // a corrupt count can cause.
        if count > input.remaining() as u64 {
            return Err(format!(
                "block of {count} items but only {} bytes left",
                input.remaining()
            ));
        }
        for _ in 0..count {
            item(input)?;
        }
    }
}

/// A cursor over Avro binary data.
pub(super) struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(data: &'a [u8]) -> Decoder<'a> {
        Decoder { data, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(super) fn take(&mut self, len: usize) -> Decoded<&'a [u8]> {
        if len > self.remaining() {
            return Err(format!(
                "unexpected end of data: {len} bytes needed, {} left",
                self.remaining()
            ));
        }
        let slice = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(slice)
    }

    pub(super) fn long(&mut self) -> Decoded<i64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .data
                .get(self.pos)
                .ok_or("unexpected end of data inside a number")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err("number longer than 10 bytes".to_owned())
    }

    pub(super) fn bytes(&mut self) -> Decoded<&'a [u8]> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        self.take(len)
    }
}

// ---------------------------------------------------------------------------
// The writer's schema, compiled once per file into what decoding needs.

/// The binary layout of a writer schema node; logical types are reduced to
/// the primitive they are encoded as.
#[derive(Debug)]
pub(super) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum,
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    Record(Vec<FieldNode>),
}

#[derive(Debug)]
pub(super) struct FieldNode {
    name: String,
    field: Option<Field>,
    node: Node,
}

impl Node {
    fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Boolean => "boolean",
            Node::Int => "int",
            Node::Long => "long",
            Node::Float => "float",
            Node::Double => "double",
            Node::Bytes => "bytes",
            Node::String => "string",
            Node::Fixed(_) => "fixed",
            Node::Enum => "enum",
            Node::Array(_) => "array",
            Node::Map(_) => "map",
            Node::Union(_) => "union",
            Node::Record(_) => "record",
        }
    }
}

/// Nesting beyond this is either absurd or a recursive schema, which no
/// Paimon metadata file uses.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Named types referenced many times are expanded each time; this bounds
/// what a hostile schema can make us build (Paimon's need a few dozen).
const MAX_SCHEMA_NODES: usize = 10_000;

fn compile_schema(schema: &AvroSchema) -> Decoded<Node> {
    let resolved =
        ResolvedSchema::try_from(schema).map_err(|e| format!("invalid avro.schema: {e}"))?;
    let mut nodes_left = MAX_SCHEMA_NODES;
    compile_node(schema, resolved.get_names(), 0, &mut nodes_left)
}

fn compile_node(
    schema: &AvroSchema,
    names: &HashMap<Name, &AvroSchema>,
    depth: usize,
    nodes_left: &mut usize,
) -> Decoded<Node> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(format!(
            "avro.schema nests deeper than {MAX_SCHEMA_DEPTH} levels (recursive?)"
        ));
    }
    *nodes_left = nodes_left
        .checked_sub(1)
        .ok_or_else(|| format!("avro.schema expands to more than {MAX_SCHEMA_NODES} types"))?;
    let mut compile = |inner: &AvroSchema| compile_node(inner, names, depth + 1, nodes_left);
    Ok(match schema {
        AvroSchema::Null => Node::Null,
        AvroSchema::Boolean => Node::Boolean,
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => Node::Int,
        AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => Node::Long,
        AvroSchema::Float => Node::Float,
        AvroSchema::Double => Node::Double,
        AvroSchema::Bytes | AvroSchema::BigDecimal => Node::Bytes,
        AvroSchema::String => Node::String,
        AvroSchema::Decimal(decimal) => match &decimal.inner {
            InnerDecimalSchema::Bytes => Node::Bytes,
            InnerDecimalSchema::Fixed(fixed) => Node::Fixed(fixed.size),
        },
        AvroSchema::Uuid(uuid) => match uuid {
            UuidSchema::String => Node::String,
            UuidSchema::Bytes => Node::Bytes,
            UuidSchema::Fixed(fixed) => Node::Fixed(fixed.size),
        },
        AvroSchema::Fixed(fixed) | AvroSchema::Duration(fixed) => Node::Fixed(fixed.size),
        AvroSchema::Enum(_) => Node::Enum,
        AvroSchema::Array(array) => Node::Array(Box::new(compile(&array.items)?)),
        AvroSchema::Map(map) => Node::Map(Box::new(compile(&map.types)?)),
        AvroSchema::Union(union) => Node::Union(
            union
                .variants()
                .iter()
                .map(&mut compile)
                .collect::<Decoded<_>>()?,
        ),
        AvroSchema::Record(record) => Node::Record(
            record
                .fields
                .iter()
                .map(|field| {
                    Ok(FieldNode {
                        name: field.name.clone(),
                        field: Field::from_name(&field.name),
                        node: compile(&field.schema)?,
                    })
                })
                .collect::<Decoded<_>>()?,
        ),
        AvroSchema::Ref { name } => {
            let target = names
                .get(name)
                .ok_or_else(|| format!("avro.schema refers to unknown type {name}"))?;
            compile(target)?
        }
    })
}

// ---------------------------------------------------------------------------
// Decoding values, tolerant of unions with null and Avro's type promotions.

/// Reads union branch indexes until a non-union node.
pub(super) fn branch<'n>(input: &mut Decoder<'_>, mut node: &'n Node) -> Decoded<&'n Node> {
    while let Node::Union(branches) = node {
        let index = input.long()?;
        node = usize::try_from(index)
            .ok()
            .and_then(|i| branches.get(i))
            .ok_or_else(|| {
                format!(
                    "union branch {index} out of range (union of {})",
                    branches.len()
                )
            })?;
    }
    Ok(node)
}

fn mismatch(expected: &str, found: &Node) -> String {
    format!("expected {expected}, file has {}", found.type_name())
}

pub(super) fn read_long(input: &mut Decoder<'_>, node: &Node) -> Decoded<Option<i64>> {
    match branch(input, node)? {
        Node::Null => Ok(None),
        Node::Int | Node::Long => input.long().map(Some),
        other => Err(mismatch("long", other)),
    }
}

pub(super) fn read_int(input: &mut Decoder<'_>, node: &Node) -> Decoded<Option<i32>> {
    match read_long(input, node)? {
        None => Ok(None),
        Some(value) => i32::try_from(value)
            .map(Some)
            .map_err(|_| format!("{value} does not fit an int")),
    }
}

pub(super) fn read_bytes(input: &mut Decoder<'_>, node: &Node) -> Decoded<Option<Vec<u8>>> {
    match branch(input, node)? {
        Node::Null => Ok(None),
        Node::Bytes | Node::String => Ok(Some(input.bytes()?.to_vec())),
        Node::Fixed(size) => Ok(Some(input.take(*size)?.to_vec())),
        other => Err(mismatch("bytes", other)),
    }
}

pub(super) fn read_string(input: &mut Decoder<'_>, node: &Node) -> Decoded<Option<String>> {
    match branch(input, node)? {
        Node::Null => Ok(None),
        Node::String | Node::Bytes => {
            let bytes = input.bytes()?;
            let text =
                std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8 string: {e}"))?;
            Ok(Some(text.to_owned()))
        }
        other => Err(mismatch("string", other)),
    }
}

pub(super) fn read_list<'a, T>(
    input: &mut Decoder<'a>,
    node: &Node,
    mut item: impl FnMut(&mut Decoder<'a>, &Node) -> Decoded<T>,
) -> Decoded<Option<Vec<T>>> {
    match branch(input, node)? {
        Node::Null => Ok(None),
        Node::Array(item_node) => {
            let mut items = Vec::new();
            read_blocks(input, |input| {
                items.push(item(input, item_node)?);
                Ok(())
            })?;
            Ok(Some(items))
        }
        other => Err(mismatch("array", other)),
    }
}

pub(super) fn read_string_list(
    input: &mut Decoder<'_>,
    node: &Node,
) -> Decoded<Option<Vec<String>>> {
    read_list(input, node, |input, node| {
        required(read_string(input, node)?, "array element")
    })
}

/// Reads a record (possibly inside a union), handing each known field to
/// `on_field` and skipping the others. Returns false if the value is null.
pub(super) fn read_record<'a>(
    input: &mut Decoder<'a>,
    node: &Node,
    mut on_field: impl FnMut(&mut Decoder<'a>, Field, &Node) -> Decoded<()>,
) -> Decoded<bool> {
    match branch(input, node)? {
        Node::Null => Ok(false),
        Node::Record(fields) => {
            for field in fields {
                match field.field {
                    Some(known) => on_field(input, known, &field.node),
                    None => skip(input, &field.node),
                }
                .map_err(|e| format!("{}: {e}", field.name))?;
            }
            Ok(true)
        }
        other => Err(mismatch("record", other)),
    }
}

pub(super) fn skip(input: &mut Decoder<'_>, node: &Node) -> Decoded<()> {
    match node {
        Node::Null => {}
        Node::Boolean => {
            input.take(1)?;
        }
        Node::Int | Node::Long | Node::Enum => {
            input.long()?;
        }
        Node::Float => {
            input.take(4)?;
        }
        Node::Double => {
            input.take(8)?;
        }
        Node::Bytes | Node::String => {
            input.bytes()?;
        }
        Node::Fixed(size) => {
            input.take(*size)?;
        }
        Node::Array(item) => read_blocks(input, |input| skip(input, item))?,
        Node::Map(value) => read_blocks(input, |input| {
            input.bytes()?;
            skip(input, value)
        })?,
        Node::Union(_) => {
            let chosen = branch(input, node)?;
            skip(input, chosen)?;
        }
        Node::Record(fields) => {
            for field in fields {
                skip(input, &field.node)?;
            }
        }
    }
    Ok(())
}

pub(super) fn required<T>(value: Option<T>, field: &str) -> Decoded<T> {
    value.ok_or_else(|| format!("required field {field} is missing or null"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::{error_of, sample_entries};
    use crate::manifest::{read_manifest_entries, write_manifest_entries};
    use apache_avro::types::Value;

    #[test]
    fn corrupt_files_fail_cleanly() {
        assert!(error_of(read_manifest_entries(b"")).contains("bad magic"));
        assert!(error_of(read_manifest_entries(b"PAR1....")).contains("bad magic"));

        let bytes = write_manifest_entries(&sample_entries(), ManifestCodec::Null).unwrap();
        let header_len = write_manifest_entries(&[], ManifestCodec::Null)
            .unwrap()
            .len();
        for len in 0..bytes.len() {
            let result = read_manifest_entries(&bytes[..len]);
            if len == header_len {
                assert_eq!(result.unwrap(), vec![]);
            } else {
                assert!(result.is_err(), "a {len}-byte prefix was accepted");
            }
        }

        let mut bad_sync = bytes.clone();
        let last = bad_sync.len() - 1;
        bad_sync[last] ^= 0xff;
        assert!(error_of(read_manifest_entries(&bad_sync)).contains("sync marker"));

        let mut unknown_codec = bytes.clone();
        let at = bytes
            .windows(15)
            .position(|w| w == b"avro.codec\x08null")
            .unwrap()
            + 11;
        unknown_codec[at..at + 4].copy_from_slice(b"lz4x");
        assert!(error_of(read_manifest_entries(&unknown_codec))
            .contains("unsupported Avro codec 'lz4x'"));

        // A block claiming more records than it holds.
        let mut too_many = bytes[..header_len].to_vec();
        put_long(&mut too_many, 3);
        put_bytes(&mut too_many, &[0, 0]);
        too_many.extend_from_slice(&bytes[header_len - SYNC_SIZE..header_len]);
        assert!(error_of(read_manifest_entries(&too_many)).contains("block 0"));
    }

    #[test]
    fn numbers_use_avro_zigzag_varints() {
        for (value, encoded) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 1]),
        ] {
            let mut buf = Vec::new();
            put_long(&mut buf, value);
            assert_eq!(buf, encoded, "{value}");
            assert_eq!(Decoder::new(&buf).long().unwrap(), value);
        }
        for value in [i64::MIN, i64::MAX, i32::MIN.into(), 1 << 40] {
            let mut buf = Vec::new();
            put_long(&mut buf, value);
            assert_eq!(Decoder::new(&buf).long().unwrap(), value);
        }
        assert!(Decoder::new(&[0xff; 11]).long().is_err());
        assert!(Decoder::new(&[0x80]).long().is_err());
    }

    #[test]
    fn skips_every_avro_type_an_unknown_field_may_have() {
        let schema = AvroSchema::parse_str(
            r#"{"type":"record","name":"all","fields":[
              {"name":"n","type":"null"},
              {"name":"b","type":"boolean"},
              {"name":"i","type":"int"},
              {"name":"l","type":"long"},
              {"name":"f","type":"float"},
              {"name":"d","type":"double"},
              {"name":"bytes","type":"bytes"},
              {"name":"s","type":"string"},
              {"name":"fx","type":{"type":"fixed","name":"fx","size":3}},
              {"name":"e","type":{"type":"enum","name":"e","symbols":["X","Y"]}},
              {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
              {"name":"decf","type":{"type":"fixed","name":"decf","size":4,"logicalType":"decimal","precision":9}},
              {"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
              {"name":"date","type":{"type":"int","logicalType":"date"}},
              {"name":"tmicros","type":{"type":"long","logicalType":"time-micros"}},
              {"name":"tsmicros","type":{"type":"long","logicalType":"timestamp-micros"}},
              {"name":"local","type":{"type":"long","logicalType":"local-timestamp-millis"}},
              {"name":"arr","type":{"type":"array","items":["null","long"]}},
              {"name":"map","type":{"type":"map","values":"e"}},
              {"name":"u","type":["null","string","long"]}]}"#,
        )
        .unwrap();
        let value = Value::Record(vec![
            ("n".to_owned(), Value::Null),
            ("b".to_owned(), Value::Boolean(true)),
            ("i".to_owned(), Value::Int(-7)),
            ("l".to_owned(), Value::Long(1 << 50)),
            ("f".to_owned(), Value::Float(1.5)),
            ("d".to_owned(), Value::Double(-2.5)),
            ("bytes".to_owned(), Value::Bytes(vec![1, 2, 3])),
            ("s".to_owned(), Value::String("héllo".to_owned())),
            ("fx".to_owned(), Value::Fixed(3, vec![9, 9, 9])),
            ("e".to_owned(), Value::Enum(1, "Y".to_owned())),
            ("dec".to_owned(), Value::Decimal(vec![0x01, 0x02].into())),
            (
                "decf".to_owned(),
                Value::Decimal(vec![0, 0, 0x01, 0x02].into()),
            ),
            ("uuid".to_owned(), Value::Uuid(apache_avro::Uuid::nil())),
            ("date".to_owned(), Value::Date(19_000)),
            ("tmicros".to_owned(), Value::TimeMicros(5)),
            ("tsmicros".to_owned(), Value::TimestampMicros(6)),
            ("local".to_owned(), Value::LocalTimestampMillis(7)),
            (
                "arr".to_owned(),
                Value::Array(vec![
                    Value::Union(1, Box::new(Value::Long(3))),
                    Value::Union(0, Box::new(Value::Null)),
                ]),
            ),
            (
                "map".to_owned(),
                Value::Map(
                    [("k".to_owned(), Value::Enum(0, "X".to_owned()))]
                        .into_iter()
                        .collect(),
                ),
            ),
            ("u".to_owned(), Value::Union(2, Box::new(Value::Long(-1)))),
        ]);
        let mut datum = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        datum.push(0xAA); // a sentinel that skipping must stop in front of
        let node = compile_schema(&schema).unwrap();
        let mut input = Decoder::new(&datum);
        skip(&mut input, &node).unwrap();
        assert_eq!(input.take(1).unwrap(), [0xAA]);
    }

    #[test]
    fn recursive_and_explosive_schemas_are_refused() {
        let linked_list = AvroSchema::parse_str(
            r#"{"type":"record","name":"node","fields":[{"name":"next","type":["null","node"]}]}"#,
        )
        .unwrap();
        let message = compile_schema(&linked_list).unwrap_err();
        assert!(message.contains("recursive"), "{message}");

        // Each level holds two fields of the level below: 2^20 nodes once expanded.
        let mut json =
            r#"{"type":"record","name":"r0","fields":[{"name":"x","type":"int"}]}"#.to_owned();
        for level in 1..=20 {
            let below = format!("r{}", level - 1);
            json = format!(
                r#"{{"type":"record","name":"r{level}","fields":[{{"name":"a","type":{json}}},{{"name":"b","type":"{below}"}}]}}"#
            );
        }
        let message = compile_schema(&AvroSchema::parse_str(&json).unwrap()).unwrap_err();
        assert!(message.contains("more than 10000 types"), "{message}");
    }
}
