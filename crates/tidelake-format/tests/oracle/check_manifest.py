"""Checks that pypaimon 2.1 reads the manifests Tidelake writes.

Usage: python check_manifest.py DIR

DIR holds, written by the Rust test `manifest::tests::pypaimon_reads_what_we_write`:
  manifest-tidelake-0, manifest-list-tidelake-0, index-manifest-tidelake-0
  expected.json   the values pypaimon must decode from them

The files are placed in the manifest folder of a pypaimon table whose schema
matches the BinaryRows in them (partition `dt STRING`, primary key
`(dt, id BIGINT)`), then read with pypaimon's own manifest readers. Exits
non-zero with a list of differences if anything disagrees.
"""
import io
import json
import os
import shutil
import sys
import tempfile

import fastavro
import pyarrow as pa
from pypaimon import CatalogFactory, Schema
from pypaimon.manifest.index_manifest_file import IndexManifestFile
from pypaimon.manifest import manifest_file_manager
from pypaimon.manifest.manifest_file_manager import ManifestFileManager
from pypaimon.manifest.manifest_list_manager import ManifestListManager

MANIFEST = "manifest-tidelake-0"
MANIFEST_LIST = "manifest-list-tidelake-0"
INDEX_MANIFEST = "index-manifest-tidelake-0"

problems = []


def check(what, actual, expected):
    if actual != expected:
        problems.append(f"{what}: pypaimon read {actual!r}, expected {expected!r}")


def as_bytes_list(value):
    return None if value is None else list(value)


def row_values(row):
    return [row.get_field(i) for i in range(len(row))]


def make_table(warehouse):
    catalog = CatalogFactory.create({"warehouse": warehouse})
    catalog.create_database("db", False)
    row_type = pa.schema([pa.field("dt", pa.string(), nullable=False),
                          pa.field("id", pa.int64(), nullable=False),
                          ("name", pa.string())])
    catalog.create_table(
        "db.t",
        Schema.from_pyarrow_schema(row_type, partition_keys=["dt"], primary_keys=["dt", "id"],
                                   options={"bucket": "-1"}),
        False)
    return catalog.get_table("db.t")


def check_writer_schema(path):
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        schema = reader.writer_schema
    # Java writes a plain record (no union with null) named like this.
    check(f"{os.path.basename(path)} top-level type", schema.get("type") if isinstance(schema, dict) else schema,
          "record")
    check(f"{os.path.basename(path)} record name", schema.get("name"), "org.apache.paimon.avro.generated.record")


def check_manifest(table, expected):
    entries = ManifestFileManager(table).read(MANIFEST, drop_stats=False)
    check("manifest entry count", len(entries), len(expected["entries"]))
    for i, (entry, want) in enumerate(zip(entries, expected["entries"])):
        file = entry.file
        at = f"entry {i}"
        check(f"{at} kind", entry.kind, want["kind"])
        check(f"{at} partition", list(entry.partition.values), expected["partition"])
        check(f"{at} bucket", entry.bucket, want["bucket"])
        check(f"{at} total_buckets", entry.total_buckets, want["total_buckets"])
        check(f"{at} file_name", file.file_name, want["file_name"])
        check(f"{at} file_size", file.file_size, want["file_size"])
        check(f"{at} row_count", file.row_count, want["row_count"])
        check(f"{at} min_key", list(file.min_key.values), want["min_key"])
        check(f"{at} max_key", list(file.max_key.values), want["max_key"])
        check(f"{at} key null counts", file.key_stats.null_counts, want["key_null_counts"])
        check(f"{at} value null counts", file.value_stats.null_counts, want["value_null_counts"])
        if want["value_stats_cols"]:
            check(f"{at} value stats min", row_values(file.value_stats.min_values), [1])
            check(f"{at} value stats max", row_values(file.value_stats.max_values), [2])
        check(f"{at} min_sequence_number", file.min_sequence_number, want["min_sequence_number"])
        check(f"{at} max_sequence_number", file.max_sequence_number, want["max_sequence_number"])
        check(f"{at} schema_id", file.schema_id, want["schema_id"])
        check(f"{at} level", file.level, want["level"])
        check(f"{at} extra_files", list(file.extra_files), want["extra_files"])
        created = file.creation_time.get_millisecond() if file.creation_time is not None else None
        check(f"{at} creation_time", created, want["creation_time"])
        check(f"{at} delete_row_count", file.delete_row_count, want["delete_row_count"])
        check(f"{at} embedded_index", as_bytes_list(file.embedded_index), want["embedded_index"])
        check(f"{at} file_source", file.file_source, want["file_source"])
        check(f"{at} value_stats_cols", file.value_stats_cols, want["value_stats_cols"])
        check(f"{at} external_path", file.external_path, want["external_path"])
        check(f"{at} first_row_id", file.first_row_id, want["first_row_id"])
        check(f"{at} write_cols", file.write_cols, want["write_cols"])


def check_manifest_fast_path(table, path):
    """pypaimon decodes manifests whose schema has Java's exact field layout
    with a faster positional reader; make sure ours takes and passes it."""
    if manifest_file_manager._read_record is None:
        return
    with open(path, "rb") as f:
        records = list(manifest_file_manager._read_manifest_records(
            io.BytesIO(f.read()), lambda bucket, total_buckets: True, None, table.partition_keys_fields))
    check("records decoded by pypaimon's positional fast path",
          [fast for _, _, fast in records], [True] * len(records))
    filtered = ManifestFileManager(table).read(
        MANIFEST, drop_stats=False, early_entry_filter=lambda bucket, total_buckets: bucket == 3)
    check("entries kept by an early bucket filter", [e.bucket for e in filtered], [3])


def check_manifest_list(table, expected):
    metas = ManifestListManager(table).read(MANIFEST_LIST)
    check("manifest list length", len(metas), len(expected["manifest_list"]))
    for i, (meta, want) in enumerate(zip(metas, expected["manifest_list"])):
        at = f"manifest list entry {i}"
        for name in ["file_name", "file_size", "num_added_files", "num_deleted_files", "schema_id",
                     "min_bucket", "max_bucket", "min_level", "max_level", "min_row_id", "max_row_id"]:
            check(f"{at} {name}", getattr(meta, name), want[name])
        check(f"{at} partition null counts", meta.partition_stats.null_counts, want["partition_null_counts"])
    if metas:
        check("manifest list partition min", row_values(metas[0].partition_stats.min_values),
              expected["partition"])


def check_index_manifest(table, expected):
    entries = IndexManifestFile(table).read(INDEX_MANIFEST)
    check("index entry count", len(entries), len(expected["index_entries"]))
    for i, (entry, want) in enumerate(zip(entries, expected["index_entries"])):
        file = entry.index_file
        at = f"index entry {i}"
        check(f"{at} kind", entry.kind, want["kind"])
        check(f"{at} partition", list(entry.partition.values), expected["partition"])
        check(f"{at} bucket", entry.bucket, want["bucket"])
        for name in ["index_type", "file_name", "file_size", "row_count", "external_path"]:
            check(f"{at} {name}", getattr(file, name), want[name])
        ranges = None
        if file.dv_ranges:
            ranges = [[r.data_file_name, r.offset, r.length, r.cardinality] for r in file.dv_ranges.values()]
        check(f"{at} deletion vector ranges", ranges, want["dv_ranges"])
        global_index = None
        if file.global_index_meta is not None:
            g = file.global_index_meta
            global_index = [g.row_range_start, g.row_range_end, g.index_field_id,
                            None if g.extra_field_ids is None else list(g.extra_field_ids),
                            as_bytes_list(g.index_meta), as_bytes_list(g.source_meta)]
        check(f"{at} global index", global_index, want["global_index"])


def main():
    source = sys.argv[1]
    with open(os.path.join(source, "expected.json")) as f:
        expected = json.load(f)
    warehouse = tempfile.mkdtemp(prefix="tidelake-oracle-")
    try:
        table = make_table(warehouse)
        manifest_dir = os.path.join(table.table_path, "manifest")
        os.makedirs(manifest_dir, exist_ok=True)
        for name in [MANIFEST, MANIFEST_LIST, INDEX_MANIFEST]:
            shutil.copyfile(os.path.join(source, name), os.path.join(manifest_dir, name))
            check_writer_schema(os.path.join(manifest_dir, name))
        check_manifest(table, expected)
        check_manifest_fast_path(table, os.path.join(manifest_dir, MANIFEST))
        check_manifest_list(table, expected)
        check_index_manifest(table, expected)
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("pypaimon read every manifest as expected")


if __name__ == "__main__":
    main()
