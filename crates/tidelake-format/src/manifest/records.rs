//! The Avro schemas of Paimon's metadata records and the encoding and
//! decoding of [`ManifestEntry`], [`ManifestFileMeta`] and
//! [`IndexManifestEntry`] against them.

use super::avro::{
    put_array, put_bytes, put_int, put_long, put_optional, put_str, put_str_array, read_bytes,
    read_int, read_list, read_long, read_record, read_string, read_string_list, required, skip,
    Decoded, Decoder, Node,
};
use super::{
    DataFileMeta, DeletionVectorRange, FileKind, GlobalIndexMeta, IndexFileMeta,
    IndexManifestEntry, ManifestEntry, ManifestFileMeta, SimpleStats,
};

/// `_VERSION` written by Paimon's `ManifestEntrySerializer`.
pub(super) const MANIFEST_ENTRY_VERSION: i32 = 2;
/// `_VERSION` written by Paimon's `ManifestFileMetaSerializer`.
pub(super) const MANIFEST_FILE_META_VERSION: i32 = 2;
/// `_VERSION` written by Paimon's `IndexManifestEntrySerializer`.
pub(super) const INDEX_MANIFEST_ENTRY_VERSION: i32 = 1;

// ---------------------------------------------------------------------------
// Avro schemas we write, as Paimon Java's AvroSchemaConverter renders them.

macro_rules! stats_record {
    ($name:literal) => {
        concat!(
            r#"{"type":"record","name":""#,
            $name,
            r#"","fields":["#,
            r#"{"name":"_MIN_VALUES","type":"bytes"},"#,
            r#"{"name":"_MAX_VALUES","type":"bytes"},"#,
            r#"{"name":"_NULL_COUNTS","type":["null",{"type":"array","items":["null","long"]}],"default":null}]}"#
        )
    };
}

pub(super) const MANIFEST_ENTRY_SCHEMA: &str = concat!(
    r#"{"type":"record","name":"record","namespace":"org.apache.paimon.avro.generated","fields":["#,
    r#"{"name":"_VERSION","type":"int"},"#,
    r#"{"name":"_KIND","type":"int"},"#,
    r#"{"name":"_PARTITION","type":"bytes"},"#,
    r#"{"name":"_BUCKET","type":"int"},"#,
    r#"{"name":"_TOTAL_BUCKETS","type":"int"},"#,
    r#"{"name":"_FILE","type":{"type":"record","name":"record__FILE","fields":["#,
    r#"{"name":"_FILE_NAME","type":"string"},"#,
    r#"{"name":"_FILE_SIZE","type":"long"},"#,
    r#"{"name":"_ROW_COUNT","type":"long"},"#,
    r#"{"name":"_MIN_KEY","type":"bytes"},"#,
    r#"{"name":"_MAX_KEY","type":"bytes"},"#,
    r#"{"name":"_KEY_STATS","type":"#,
    stats_record!("record__FILE__KEY_STATS"),
    r#"},{"name":"_VALUE_STATS","type":"#,
    stats_record!("record__FILE__VALUE_STATS"),
    r#"},{"name":"_MIN_SEQUENCE_NUMBER","type":"long"},"#,
    r#"{"name":"_MAX_SEQUENCE_NUMBER","type":"long"},"#,
    r#"{"name":"_SCHEMA_ID","type":"long"},"#,
    r#"{"name":"_LEVEL","type":"int"},"#,
    r#"{"name":"_EXTRA_FILES","type":{"type":"array","items":"string"}},"#,
    r#"{"name":"_CREATION_TIME","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},"#,
    r#"{"name":"_DELETE_ROW_COUNT","type":["null","long"],"default":null},"#,
    r#"{"name":"_EMBEDDED_FILE_INDEX","type":["null","bytes"],"default":null},"#,
    r#"{"name":"_FILE_SOURCE","type":["null","int"],"default":null},"#,
    r#"{"name":"_VALUE_STATS_COLS","type":["null",{"type":"array","items":"string"}],"default":null},"#,
    r#"{"name":"_EXTERNAL_PATH","type":["null","string"],"default":null},"#,
    r#"{"name":"_FIRST_ROW_ID","type":["null","long"],"default":null},"#,
    r#"{"name":"_WRITE_COLS","type":["null",{"type":"array","items":"string"}],"default":null}"#,
    r#"]}}]}"#
);

pub(super) const MANIFEST_FILE_META_SCHEMA: &str = concat!(
    r#"{"type":"record","name":"record","namespace":"org.apache.paimon.avro.generated","fields":["#,
    r#"{"name":"_VERSION","type":"int"},"#,
    r#"{"name":"_FILE_NAME","type":"string"},"#,
    r#"{"name":"_FILE_SIZE","type":"long"},"#,
    r#"{"name":"_NUM_ADDED_FILES","type":"long"},"#,
    r#"{"name":"_NUM_DELETED_FILES","type":"long"},"#,
    r#"{"name":"_PARTITION_STATS","type":"#,
    stats_record!("record__PARTITION_STATS"),
    r#"},{"name":"_SCHEMA_ID","type":"long"},"#,
    r#"{"name":"_MIN_BUCKET","type":["null","int"],"default":null},"#,
    r#"{"name":"_MAX_BUCKET","type":["null","int"],"default":null},"#,
    r#"{"name":"_MIN_LEVEL","type":["null","int"],"default":null},"#,
    r#"{"name":"_MAX_LEVEL","type":["null","int"],"default":null},"#,
    r#"{"name":"_MIN_ROW_ID","type":["null","long"],"default":null},"#,
    r#"{"name":"_MAX_ROW_ID","type":["null","long"],"default":null}"#,
    r#"]}"#
);

pub(super) const INDEX_MANIFEST_ENTRY_SCHEMA: &str = concat!(
    r#"{"type":"record","name":"record","namespace":"org.apache.paimon.avro.generated","fields":["#,
    r#"{"name":"_VERSION","type":"int"},"#,
    r#"{"name":"_KIND","type":"int"},"#,
    r#"{"name":"_PARTITION","type":"bytes"},"#,
    r#"{"name":"_BUCKET","type":"int"},"#,
    r#"{"name":"_INDEX_TYPE","type":"string"},"#,
    r#"{"name":"_FILE_NAME","type":"string"},"#,
    r#"{"name":"_FILE_SIZE","type":"long"},"#,
    r#"{"name":"_ROW_COUNT","type":"long"},"#,
    r#"{"name":"_DELETIONS_VECTORS_RANGES","type":["null",{"type":"array","items":["null","#,
    r#"{"type":"record","name":"record__DELETIONS_VECTORS_RANGES","fields":["#,
    r#"{"name":"f0","type":"string"},"#,
    r#"{"name":"f1","type":"int"},"#,
    r#"{"name":"f2","type":"int"},"#,
    r#"{"name":"_CARDINALITY","type":["null","long"],"default":null}]}]}],"default":null},"#,
    r#"{"name":"_EXTERNAL_PATH","type":["null","string"],"default":null},"#,
    r#"{"name":"_GLOBAL_INDEX","type":["null","#,
    r#"{"type":"record","name":"record__GLOBAL_INDEX","fields":["#,
    r#"{"name":"_ROW_RANGE_START","type":"long"},"#,
    r#"{"name":"_ROW_RANGE_END","type":"long"},"#,
    r#"{"name":"_INDEX_FIELD_ID","type":"int"},"#,
    r#"{"name":"_EXTRA_FIELD_IDS","type":["null",{"type":"array","items":"int"}],"default":null},"#,
    r#"{"name":"_INDEX_META","type":["null","bytes"],"default":null},"#,
    r#"{"name":"_SOURCE_META","type":["null","bytes"],"default":null}]}],"default":null}"#,
    r#"]}"#
);

// ---------------------------------------------------------------------------
// Encoding records. The field order here is the order of the schemas above.

pub(super) fn encode_manifest_entry(
    buf: &mut Vec<u8>,
    entry: &ManifestEntry,
    file_source: Option<i8>,
) {
    let file = &entry.file;
    put_int(buf, MANIFEST_ENTRY_VERSION);
    put_int(buf, entry.kind.to_byte().into());
    put_bytes(buf, &entry.partition);
    put_int(buf, entry.bucket);
    put_int(buf, entry.total_buckets);
    put_str(buf, &file.file_name);
    put_long(buf, file.file_size);
    put_long(buf, file.row_count);
    put_bytes(buf, &file.min_key);
    put_bytes(buf, &file.max_key);
    put_stats(buf, &file.key_stats);
    put_stats(buf, &file.value_stats);
    put_long(buf, file.min_sequence_number);
    put_long(buf, file.max_sequence_number);
    put_long(buf, file.schema_id);
    put_int(buf, file.level);
    put_array(buf, &file.extra_files, |buf, name| put_str(buf, name));
    put_optional(buf, file.creation_time, put_long);
    put_optional(buf, file.delete_row_count, put_long);
    put_optional(buf, file.embedded_index.as_deref(), put_bytes);
    put_optional(buf, file_source, |buf, source| put_int(buf, source.into()));
    put_optional(buf, file.value_stats_cols.as_deref(), put_str_array);
    put_optional(buf, file.external_path.as_deref(), put_str);
    put_optional(buf, file.first_row_id, put_long);
    put_optional(buf, file.write_cols.as_deref(), put_str_array);
}

pub(super) fn encode_manifest_file_meta(buf: &mut Vec<u8>, meta: &ManifestFileMeta) {
    put_int(buf, MANIFEST_FILE_META_VERSION);
    put_str(buf, &meta.file_name);
    put_long(buf, meta.file_size);
    put_long(buf, meta.num_added_files);
    put_long(buf, meta.num_deleted_files);
    put_stats(buf, &meta.partition_stats);
    put_long(buf, meta.schema_id);
    put_optional(buf, meta.min_bucket, put_int);
    put_optional(buf, meta.max_bucket, put_int);
    put_optional(buf, meta.min_level, put_int);
    put_optional(buf, meta.max_level, put_int);
    put_optional(buf, meta.min_row_id, put_long);
    put_optional(buf, meta.max_row_id, put_long);
}

pub(super) fn encode_index_manifest_entry(buf: &mut Vec<u8>, entry: &IndexManifestEntry) {
    let file = &entry.index_file;
    put_int(buf, INDEX_MANIFEST_ENTRY_VERSION);
    put_int(buf, entry.kind.to_byte().into());
    put_bytes(buf, &entry.partition);
    put_int(buf, entry.bucket);
    put_str(buf, &file.index_type);
    put_str(buf, &file.file_name);
    put_long(buf, file.file_size);
    put_long(buf, file.row_count);
    put_optional(
        buf,
        file.deletion_vector_ranges.as_deref(),
        |buf, ranges| {
            put_array(buf, ranges, |buf, range| {
                put_long(buf, 1); // the array's items are ["null", record]
                put_str(buf, &range.data_file_name);
                put_int(buf, range.offset);
                put_int(buf, range.length);
                put_optional(buf, range.cardinality, put_long);
            })
        },
    );
    put_optional(buf, file.external_path.as_deref(), put_str);
    put_optional(buf, file.global_index.as_ref(), |buf, global| {
        put_long(buf, global.row_range_start);
        put_long(buf, global.row_range_end);
        put_int(buf, global.index_field_id);
        put_optional(buf, global.extra_field_ids.as_deref(), |buf, ids| {
            put_array(buf, ids, |buf, id| put_int(buf, *id))
        });
        put_optional(buf, global.index_meta.as_deref(), put_bytes);
        put_optional(buf, global.source_meta.as_deref(), put_bytes);
    });
}

fn put_stats(buf: &mut Vec<u8>, stats: &SimpleStats) {
    put_bytes(buf, &stats.min_values);
    put_bytes(buf, &stats.max_values);
    put_optional(buf, stats.null_counts.as_deref(), |buf, counts| {
        put_array(buf, counts, |buf, count| {
            put_optional(buf, *count, put_long)
        })
    });
}

// ---------------------------------------------------------------------------
// Decoding records, by field name.

/// The fields we know, by name, across all record kinds; the decoders skip
/// any other field, and known fields that do not belong to their record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Version,
    Kind,
    Partition,
    Bucket,
    TotalBuckets,
    File,
    FileName,
    FileSize,
    RowCount,
    MinKey,
    MaxKey,
    KeyStats,
    ValueStats,
    MinSequenceNumber,
    MaxSequenceNumber,
    SchemaId,
    Level,
    ExtraFiles,
    CreationTime,
    DeleteRowCount,
    EmbeddedFileIndex,
    FileSource,
    ValueStatsCols,
    ExternalPath,
    FirstRowId,
    WriteCols,
    MinValues,
    MaxValues,
    NullCounts,
    NumAddedFiles,
    NumDeletedFiles,
    PartitionStats,
    MinBucket,
    MaxBucket,
    MinLevel,
    MaxLevel,
    MinRowId,
    MaxRowId,
    IndexType,
    DeletionVectorRanges,
    DataFileName,
    Offset,
    Length,
    Cardinality,
    GlobalIndex,
    RowRangeStart,
    RowRangeEnd,
    IndexFieldId,
    ExtraFieldIds,
    IndexMeta,
    SourceMeta,
}

impl Field {
    pub(super) fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "_VERSION" => Field::Version,
            "_KIND" => Field::Kind,
            "_PARTITION" => Field::Partition,
            "_BUCKET" => Field::Bucket,
            "_TOTAL_BUCKETS" => Field::TotalBuckets,
            "_FILE" => Field::File,
            "_FILE_NAME" => Field::FileName,
            "_FILE_SIZE" => Field::FileSize,
            "_ROW_COUNT" => Field::RowCount,
            "_MIN_KEY" => Field::MinKey,
            "_MAX_KEY" => Field::MaxKey,
            "_KEY_STATS" => Field::KeyStats,
            "_VALUE_STATS" => Field::ValueStats,
            "_MIN_SEQUENCE_NUMBER" => Field::MinSequenceNumber,
            "_MAX_SEQUENCE_NUMBER" => Field::MaxSequenceNumber,
            "_SCHEMA_ID" => Field::SchemaId,
            "_LEVEL" => Field::Level,
            "_EXTRA_FILES" => Field::ExtraFiles,
            "_CREATION_TIME" => Field::CreationTime,
            "_DELETE_ROW_COUNT" => Field::DeleteRowCount,
            "_EMBEDDED_FILE_INDEX" => Field::EmbeddedFileIndex,
            "_FILE_SOURCE" => Field::FileSource,
            "_VALUE_STATS_COLS" => Field::ValueStatsCols,
            "_EXTERNAL_PATH" => Field::ExternalPath,
            "_FIRST_ROW_ID" => Field::FirstRowId,
            "_WRITE_COLS" => Field::WriteCols,
            "_MIN_VALUES" => Field::MinValues,
            "_MAX_VALUES" => Field::MaxValues,
            "_NULL_COUNTS" => Field::NullCounts,
            "_NUM_ADDED_FILES" => Field::NumAddedFiles,
            "_NUM_DELETED_FILES" => Field::NumDeletedFiles,
            "_PARTITION_STATS" => Field::PartitionStats,
            "_MIN_BUCKET" => Field::MinBucket,
            "_MAX_BUCKET" => Field::MaxBucket,
            "_MIN_LEVEL" => Field::MinLevel,
            "_MAX_LEVEL" => Field::MaxLevel,
            "_MIN_ROW_ID" => Field::MinRowId,
            "_MAX_ROW_ID" => Field::MaxRowId,
            "_INDEX_TYPE" => Field::IndexType,
            "_DELETIONS_VECTORS_RANGES" => Field::DeletionVectorRanges,
            "f0" => Field::DataFileName,
            "f1" => Field::Offset,
            "f2" => Field::Length,
            "_CARDINALITY" => Field::Cardinality,
            "_GLOBAL_INDEX" => Field::GlobalIndex,
            "_ROW_RANGE_START" => Field::RowRangeStart,
            "_ROW_RANGE_END" => Field::RowRangeEnd,
            "_INDEX_FIELD_ID" => Field::IndexFieldId,
            "_EXTRA_FIELD_IDS" => Field::ExtraFieldIds,
            "_INDEX_META" => Field::IndexMeta,
            "_SOURCE_META" => Field::SourceMeta,
            _ => return None,
        })
    }
}

fn check_version(version: Option<i32>, expected: i32) -> Decoded<()> {
    match version {
        Some(v) if v == expected => Ok(()),
        Some(v) => Err(format!(
            "unsupported _VERSION {v}, Paimon's current version is {expected}"
        )),
        None => Err("required field _VERSION is missing or null".to_owned()),
    }
}

fn read_kind(input: &mut Decoder<'_>, node: &Node) -> Decoded<Option<FileKind>> {
    read_long(input, node)?
        .map(|kind| FileKind::from_byte(kind).map_err(|e| e.to_string()))
        .transpose()
}

fn read_stats(input: &mut Decoder<'_>, node: &Node) -> Decoded<Option<SimpleStats>> {
    let (mut min_values, mut max_values, mut null_counts) = (None, None, None);
    let present = read_record(input, node, |input, field, node| {
        match field {
            Field::MinValues => min_values = read_bytes(input, node)?,
            Field::MaxValues => max_values = read_bytes(input, node)?,
            Field::NullCounts => null_counts = read_list(input, node, read_long)?,
            _ => skip(input, node)?,
        }
        Ok(())
    })?;
    if !present {
        return Ok(None);
    }
    Ok(Some(SimpleStats {
        min_values: required(min_values, "_MIN_VALUES")?,
        max_values: required(max_values, "_MAX_VALUES")?,
        null_counts,
    }))
}

/// A placeholder for stats that are required and set before use; unlike
/// [`SimpleStats::empty`] it allocates nothing.
fn unset_stats() -> SimpleStats {
    SimpleStats {
        min_values: Vec::new(),
        max_values: Vec::new(),
        null_counts: None,
    }
}

pub(super) fn decode_manifest_entry(
    input: &mut Decoder<'_>,
    root: &Node,
) -> Decoded<ManifestEntry> {
    let (mut version, mut kind, mut partition, mut bucket, mut total_buckets, mut file) =
        (None, None, None, None, None, None);
    let present = read_record(input, root, |input, field, node| {
        match field {
            Field::Version => version = read_int(input, node)?,
            Field::Kind => kind = read_kind(input, node)?,
            Field::Partition => partition = read_bytes(input, node)?,
            Field::Bucket => bucket = read_int(input, node)?,
            Field::TotalBuckets => total_buckets = read_int(input, node)?,
            Field::File => file = decode_data_file(input, node)?,
            _ => skip(input, node)?,
        }
        Ok(())
    })?;
    if !present {
        return Err("null record".to_owned());
    }
    check_version(version, MANIFEST_ENTRY_VERSION)?;
    Ok(ManifestEntry {
        kind: required(kind, "_KIND")?,
        partition: required(partition, "_PARTITION")?,
        bucket: required(bucket, "_BUCKET")?,
        total_buckets: required(total_buckets, "_TOTAL_BUCKETS")?,
        file: required(file, "_FILE")?,
    })
}

/// DataFileMeta fields while decoding: the required ones until checked for
/// presence, the optional ones directly in place.
struct DataFileFields {
    file_name: Option<String>,
    file_size: Option<i64>,
    row_count: Option<i64>,
    min_key: Option<Vec<u8>>,
    max_key: Option<Vec<u8>>,
    key_stats: Option<SimpleStats>,
    value_stats: Option<SimpleStats>,
    min_sequence_number: Option<i64>,
    max_sequence_number: Option<i64>,
    schema_id: Option<i64>,
    level: Option<i32>,
    extra_files: Option<Vec<String>>,
    optional: DataFileMeta,
}

fn decode_data_file(input: &mut Decoder<'_>, node: &Node) -> Decoded<Option<DataFileMeta>> {
    let mut f = DataFileFields {
        file_name: None,
        file_size: None,
        row_count: None,
        min_key: None,
        max_key: None,
        key_stats: None,
        value_stats: None,
        min_sequence_number: None,
        max_sequence_number: None,
        schema_id: None,
        level: None,
        extra_files: None,
        optional: DataFileMeta {
            file_name: String::new(),
            file_size: 0,
            row_count: 0,
            min_key: Vec::new(),
            max_key: Vec::new(),
            key_stats: unset_stats(),
            value_stats: unset_stats(),
            min_sequence_number: 0,
            max_sequence_number: 0,
            schema_id: 0,
            level: 0,
            extra_files: Vec::new(),
            creation_time: None,
            delete_row_count: None,
            embedded_index: None,
            file_source: None,
            value_stats_cols: None,
            external_path: None,
            first_row_id: None,
            write_cols: None,
        },
    };
    let present = read_record(input, node, |input, field, node| {
        let o = &mut f.optional;
        match field {
            Field::FileName => f.file_name = read_string(input, node)?,
            Field::FileSize => f.file_size = read_long(input, node)?,
            Field::RowCount => f.row_count = read_long(input, node)?,
            Field::MinKey => f.min_key = read_bytes(input, node)?,
            Field::MaxKey => f.max_key = read_bytes(input, node)?,
            Field::KeyStats => f.key_stats = read_stats(input, node)?,
            Field::ValueStats => f.value_stats = read_stats(input, node)?,
            Field::MinSequenceNumber => f.min_sequence_number = read_long(input, node)?,
            Field::MaxSequenceNumber => f.max_sequence_number = read_long(input, node)?,
            Field::SchemaId => f.schema_id = read_long(input, node)?,
            Field::Level => f.level = read_int(input, node)?,
            Field::ExtraFiles => f.extra_files = read_string_list(input, node)?,
            Field::CreationTime => o.creation_time = read_long(input, node)?,
            Field::DeleteRowCount => o.delete_row_count = read_long(input, node)?,
            Field::EmbeddedFileIndex => o.embedded_index = read_bytes(input, node)?,
            Field::FileSource => o.file_source = read_int(input, node)?,
            Field::ValueStatsCols => o.value_stats_cols = read_string_list(input, node)?,
            Field::ExternalPath => o.external_path = read_string(input, node)?,
            Field::FirstRowId => o.first_row_id = read_long(input, node)?,
            Field::WriteCols => o.write_cols = read_string_list(input, node)?,
            _ => skip(input, node)?,
        }
        Ok(())
    })?;
    if !present {
        return Ok(None);
    }
    Ok(Some(DataFileMeta {
        file_name: required(f.file_name, "_FILE_NAME")?,
        file_size: required(f.file_size, "_FILE_SIZE")?,
        row_count: required(f.row_count, "_ROW_COUNT")?,
        min_key: required(f.min_key, "_MIN_KEY")?,
        max_key: required(f.max_key, "_MAX_KEY")?,
        key_stats: required(f.key_stats, "_KEY_STATS")?,
        value_stats: required(f.value_stats, "_VALUE_STATS")?,
        min_sequence_number: required(f.min_sequence_number, "_MIN_SEQUENCE_NUMBER")?,
        max_sequence_number: required(f.max_sequence_number, "_MAX_SEQUENCE_NUMBER")?,
        schema_id: required(f.schema_id, "_SCHEMA_ID")?,
        level: required(f.level, "_LEVEL")?,
        extra_files: required(f.extra_files, "_EXTRA_FILES")?,
        ..f.optional
    }))
}

pub(super) fn decode_manifest_file_meta(
    input: &mut Decoder<'_>,
    root: &Node,
) -> Decoded<ManifestFileMeta> {
    let mut version = None;
    let (mut file_name, mut file_size, mut num_added_files, mut num_deleted_files) =
        (None, None, None, None);
    let (mut partition_stats, mut schema_id) = (None, None);
    let mut meta = ManifestFileMeta {
        file_name: String::new(),
        file_size: 0,
        num_added_files: 0,
        num_deleted_files: 0,
        partition_stats: unset_stats(),
        schema_id: 0,
        min_bucket: None,
        max_bucket: None,
        min_level: None,
        max_level: None,
        min_row_id: None,
        max_row_id: None,
    };
    let present = read_record(input, root, |input, field, node| {
        match field {
            Field::Version => version = read_int(input, node)?,
            Field::FileName => file_name = read_string(input, node)?,
            Field::FileSize => file_size = read_long(input, node)?,
            Field::NumAddedFiles => num_added_files = read_long(input, node)?,
            Field::NumDeletedFiles => num_deleted_files = read_long(input, node)?,
            Field::PartitionStats => partition_stats = read_stats(input, node)?,
            Field::SchemaId => schema_id = read_long(input, node)?,
            Field::MinBucket => meta.min_bucket = read_int(input, node)?,
            Field::MaxBucket => meta.max_bucket = read_int(input, node)?,
            Field::MinLevel => meta.min_level = read_int(input, node)?,
            Field::MaxLevel => meta.max_level = read_int(input, node)?,
            Field::MinRowId => meta.min_row_id = read_long(input, node)?,
            Field::MaxRowId => meta.max_row_id = read_long(input, node)?,
            _ => skip(input, node)?,
        }
        Ok(())
    })?;
    if !present {
        return Err("null record".to_owned());
    }
    check_version(version, MANIFEST_FILE_META_VERSION)?;
    Ok(ManifestFileMeta {
        file_name: required(file_name, "_FILE_NAME")?,
        file_size: required(file_size, "_FILE_SIZE")?,
        num_added_files: required(num_added_files, "_NUM_ADDED_FILES")?,
        num_deleted_files: required(num_deleted_files, "_NUM_DELETED_FILES")?,
        partition_stats: required(partition_stats, "_PARTITION_STATS")?,
        schema_id: required(schema_id, "_SCHEMA_ID")?,
        ..meta
    })
}

pub(super) fn decode_index_manifest_entry(
    input: &mut Decoder<'_>,
    root: &Node,
) -> Decoded<IndexManifestEntry> {
    let (mut version, mut kind, mut partition, mut bucket) = (None, None, None, None);
    let (mut index_type, mut file_name, mut file_size, mut row_count) = (None, None, None, None);
    let mut file = IndexFileMeta::default();
    let present = read_record(input, root, |input, field, node| {
        match field {
            Field::Version => version = read_int(input, node)?,
            Field::Kind => kind = read_kind(input, node)?,
            Field::Partition => partition = read_bytes(input, node)?,
            Field::Bucket => bucket = read_int(input, node)?,
            Field::IndexType => index_type = read_string(input, node)?,
            Field::FileName => file_name = read_string(input, node)?,
            Field::FileSize => file_size = read_long(input, node)?,
            Field::RowCount => row_count = read_long(input, node)?,
            Field::DeletionVectorRanges => {
                file.deletion_vector_ranges = read_list(input, node, |input, node| {
                    required(read_deletion_vector_range(input, node)?, "array element")
                })?
            }
            Field::ExternalPath => file.external_path = read_string(input, node)?,
            Field::GlobalIndex => file.global_index = read_global_index(input, node)?,
            _ => skip(input, node)?,
        }
        Ok(())
    })?;
    if !present {
        return Err("null record".to_owned());
    }
    check_version(version, INDEX_MANIFEST_ENTRY_VERSION)?;
    Ok(IndexManifestEntry {
        kind: required(kind, "_KIND")?,
        partition: required(partition, "_PARTITION")?,
        bucket: required(bucket, "_BUCKET")?,
        index_file: IndexFileMeta {
            index_type: required(index_type, "_INDEX_TYPE")?,
            file_name: required(file_name, "_FILE_NAME")?,
            file_size: required(file_size, "_FILE_SIZE")?,
            row_count: required(row_count, "_ROW_COUNT")?,
            ..file
        },
    })
}

fn read_deletion_vector_range(
    input: &mut Decoder<'_>,
    node: &Node,
) -> Decoded<Option<DeletionVectorRange>> {
    let (mut data_file_name, mut offset, mut length, mut cardinality) = (None, None, None, None);
    let present = read_record(input, node, |input, field, node| {
        match field {
            Field::DataFileName => data_file_name = read_string(input, node)?,
            Field::Offset => offset = read_int(input, node)?,
            Field::Length => length = read_int(input, node)?,
            Field::Cardinality => cardinality = read_long(input, node)?,
            _ => skip(input, node)?,
        }
        Ok(())
    })?;
    if !present {
        return Ok(None);
    }
    Ok(Some(DeletionVectorRange {
        data_file_name: required(data_file_name, "f0")?,
        offset: required(offset, "f1")?,
        length: required(length, "f2")?,
        cardinality,
    }))
}

fn read_global_index(input: &mut Decoder<'_>, node: &Node) -> Decoded<Option<GlobalIndexMeta>> {
    let (mut row_range_start, mut row_range_end, mut index_field_id) = (None, None, None);
    let (mut extra_field_ids, mut index_meta, mut source_meta) = (None, None, None);
    let present = read_record(input, node, |input, field, node| {
        match field {
            Field::RowRangeStart => row_range_start = read_long(input, node)?,
            Field::RowRangeEnd => row_range_end = read_long(input, node)?,
            Field::IndexFieldId => index_field_id = read_int(input, node)?,
            Field::ExtraFieldIds => {
                extra_field_ids = read_list(input, node, |input, node| {
                    required(read_int(input, node)?, "array element")
                })?
            }
            Field::IndexMeta => index_meta = read_bytes(input, node)?,
            Field::SourceMeta => source_meta = read_bytes(input, node)?,
            _ => skip(input, node)?,
        }
        Ok(())
    })?;
    if !present {
        return Ok(None);
    }
    Ok(Some(GlobalIndexMeta {
        row_range_start: required(row_range_start, "_ROW_RANGE_START")?,
        row_range_end: required(row_range_end, "_ROW_RANGE_END")?,
        index_field_id: required(index_field_id, "_INDEX_FIELD_ID")?,
        extra_field_ids,
        index_meta,
        source_meta,
    }))
}

#[cfg(test)]
mod tests {
    use crate::error::Result;
    use crate::manifest::tests::{sample_entries, sample_index_entries, sample_manifest_metas};
    use crate::manifest::{
        read_index_manifest, read_manifest_entries, read_manifest_list, ManifestCodec,
    };
    use crate::manifest::{write_index_manifest, write_manifest_entries, write_manifest_list};
    use apache_avro::types::Value;
    use apache_avro::{Codec, Schema as AvroSchema};

    /// A compact rendering of a parsed Avro schema: full record names, union
    /// branches, logical types and `=null` defaults.
    fn describe(schema: &AvroSchema) -> String {
        match schema {
            AvroSchema::Record(record) => {
                let fields: Vec<String> = record
                    .fields
                    .iter()
                    .map(|field| {
                        let default = match &field.default {
                            Some(serde_json::Value::Null) => "=null",
                            Some(_) => "=?",
                            None => "",
                        };
                        format!("{}:{}{default}", field.name, describe(&field.schema))
                    })
                    .collect();
                format!("{}{{{}}}", record.name.fullname(None), fields.join(","))
            }
            AvroSchema::Union(union) => {
                let branches: Vec<String> = union.variants().iter().map(describe).collect();
                format!("[{}]", branches.join("|"))
            }
            AvroSchema::Array(array) => format!("array<{}>", describe(&array.items)),
            AvroSchema::Null => "null".to_owned(),
            AvroSchema::Int => "int".to_owned(),
            AvroSchema::Long => "long".to_owned(),
            AvroSchema::Bytes => "bytes".to_owned(),
            AvroSchema::String => "string".to_owned(),
            AvroSchema::TimestampMillis => "timestamp-millis".to_owned(),
            other => format!("{other:?}"),
        }
    }

    fn header_schema(bytes: &[u8]) -> AvroSchema {
        apache_avro::Reader::new(bytes)
            .unwrap()
            .writer_schema()
            .clone()
    }

    const NS: &str = "org.apache.paimon.avro.generated.";

    fn stats(name: &str) -> String {
        format!("{NS}{name}{{_MIN_VALUES:bytes,_MAX_VALUES:bytes,_NULL_COUNTS:[null|array<[null|long]>]=null}}")
    }

    /// The expected shapes are transcribed from Paimon Java 2.0's row types
    /// (`DataFileMeta.SCHEMA`, `ManifestFileMeta.SCHEMA`, ...) through the
    /// rules of `AvroSchemaConverter`, independently of the JSON we embed.
    #[test]
    fn written_schemas_match_paimon_java() {
        let entries = write_manifest_entries(&sample_entries(), ManifestCodec::Zstd).unwrap();
        let file = [
            "_FILE_NAME:string,_FILE_SIZE:long,_ROW_COUNT:long,_MIN_KEY:bytes,_MAX_KEY:bytes"
                .to_owned(),
            format!("_KEY_STATS:{}", stats("record__FILE__KEY_STATS")),
            format!("_VALUE_STATS:{}", stats("record__FILE__VALUE_STATS")),
            "_MIN_SEQUENCE_NUMBER:long,_MAX_SEQUENCE_NUMBER:long,_SCHEMA_ID:long,_LEVEL:int"
                .to_owned(),
            "_EXTRA_FILES:array<string>,_CREATION_TIME:[null|timestamp-millis]=null".to_owned(),
            "_DELETE_ROW_COUNT:[null|long]=null,_EMBEDDED_FILE_INDEX:[null|bytes]=null".to_owned(),
            "_FILE_SOURCE:[null|int]=null,_VALUE_STATS_COLS:[null|array<string>]=null".to_owned(),
            "_EXTERNAL_PATH:[null|string]=null,_FIRST_ROW_ID:[null|long]=null".to_owned(),
            "_WRITE_COLS:[null|array<string>]=null".to_owned(),
        ]
        .join(",");
        assert_eq!(
            describe(&header_schema(&entries)),
            format!(
                "{NS}record{{_VERSION:int,_KIND:int,_PARTITION:bytes,_BUCKET:int,_TOTAL_BUCKETS:int,\
                 _FILE:{NS}record__FILE{{{file}}}}}"
            )
        );

        let list = write_manifest_list(&sample_manifest_metas(), ManifestCodec::Zstd).unwrap();
        assert_eq!(
            describe(&header_schema(&list)),
            format!(
                "{NS}record{{_VERSION:int,_FILE_NAME:string,_FILE_SIZE:long,_NUM_ADDED_FILES:long,\
                 _NUM_DELETED_FILES:long,_PARTITION_STATS:{},_SCHEMA_ID:long,\
                 _MIN_BUCKET:[null|int]=null,_MAX_BUCKET:[null|int]=null,\
                 _MIN_LEVEL:[null|int]=null,_MAX_LEVEL:[null|int]=null,\
                 _MIN_ROW_ID:[null|long]=null,_MAX_ROW_ID:[null|long]=null}}",
                stats("record__PARTITION_STATS")
            )
        );

        let index = write_index_manifest(&sample_index_entries(), ManifestCodec::Zstd).unwrap();
        assert_eq!(
            describe(&header_schema(&index)),
            format!(
                "{NS}record{{_VERSION:int,_KIND:int,_PARTITION:bytes,_BUCKET:int,_INDEX_TYPE:string,\
                 _FILE_NAME:string,_FILE_SIZE:long,_ROW_COUNT:long,\
                 _DELETIONS_VECTORS_RANGES:[null|array<[null|{NS}record__DELETIONS_VECTORS_RANGES{{\
                 f0:string,f1:int,f2:int,_CARDINALITY:[null|long]=null}}]>]=null,\
                 _EXTERNAL_PATH:[null|string]=null,\
                 _GLOBAL_INDEX:[null|{NS}record__GLOBAL_INDEX{{_ROW_RANGE_START:long,_ROW_RANGE_END:long,\
                 _INDEX_FIELD_ID:int,_EXTRA_FIELD_IDS:[null|array<int>]=null,\
                 _INDEX_META:[null|bytes]=null,_SOURCE_META:[null|bytes]=null}}]=null}}"
            )
        );
    }

    fn write_with_apache_avro(schema_json: &str, records: Vec<Value>) -> Vec<u8> {
        let schema = AvroSchema::parse_str(schema_json).unwrap();
        let mut writer =
            apache_avro::Writer::with_codec(&schema, Vec::new(), Codec::Snappy).unwrap();
        for record in records {
            writer.append_value(record).unwrap();
        }
        writer.into_inner().unwrap()
    }

    fn error_of<T: std::fmt::Debug>(result: Result<T>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn rejects_what_paimon_rejects_with_clear_errors() {
        let schema = r#"{"type":"record","name":"r","fields":[{"name":"_VERSION","type":"int"},
            {"name":"_KIND","type":"int"},{"name":"_PARTITION","type":"bytes"},{"name":"_BUCKET","type":"int"}]}"#;
        let record = |version: i32, kind: i32| {
            Value::Record(vec![
                ("_VERSION".to_owned(), Value::Int(version)),
                ("_KIND".to_owned(), Value::Int(kind)),
                ("_PARTITION".to_owned(), Value::Bytes(vec![])),
                ("_BUCKET".to_owned(), Value::Int(0)),
            ])
        };
        let old_version = write_with_apache_avro(schema, vec![record(1, 0)]);
        let message = error_of(read_manifest_entries(&old_version));
        assert!(
            message.contains("manifest") && message.contains("unsupported _VERSION 1"),
            "{message}"
        );
        let bad_kind = write_with_apache_avro(schema, vec![record(2, 5)]);
        let message = error_of(read_manifest_entries(&bad_kind));
        assert!(
            message.contains("record 0: _KIND: invalid file kind 5"),
            "{message}"
        );
        let message = error_of(read_manifest_entries(&write_with_apache_avro(
            schema,
            vec![record(2, 1)],
        )));
        assert!(message.contains("_TOTAL_BUCKETS is missing"), "{message}");
        let message = error_of(read_index_manifest(&write_with_apache_avro(
            schema,
            vec![record(1, 1)],
        )));
        assert!(
            message.contains("index manifest") && message.contains("_INDEX_TYPE is missing"),
            "{message}"
        );

        let wrong_type = r#"{"type":"record","name":"r","fields":[{"name":"_VERSION","type":"int"},
            {"name":"_FILE_NAME","type":"long"}]}"#;
        let bytes = write_with_apache_avro(
            wrong_type,
            vec![Value::Record(vec![
                ("_VERSION".to_owned(), Value::Int(2)),
                ("_FILE_NAME".to_owned(), Value::Long(1)),
            ])],
        );
        let message = error_of(read_manifest_list(&bytes));
        assert!(
            message.contains("_FILE_NAME: expected string, file has long"),
            "{message}"
        );
    }
}
