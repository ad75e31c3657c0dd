"""Regenerates the pypaimon-written manifest fixtures used by manifest.rs tests.

Run with the venv's python (pypaimon 2.1):
    .venv/bin/python crates/tidelake-format/tests/data/manifest/generate.py

It writes two small tables into a temporary warehouse and copies their Avro
metadata files here under stable names. The files hold random UUIDs and
creation times, so the Rust tests assert the values found in the copies
committed to the repository; rerunning this script means updating them.
"""
import json
import os
import shutil
import tempfile

import fastavro
import pyarrow as pa
from pypaimon import CatalogFactory, Schema

HERE = os.path.dirname(os.path.abspath(__file__))


def write(table, batch, overwrite=False):
    builder = table.new_batch_write_builder()
    if overwrite:
        builder = builder.overwrite()
    writer = builder.new_write()
    commit = builder.new_commit()
    writer.write_arrow(batch)
    commit.commit(writer.prepare_commit())
    writer.close()
    commit.close()


def latest_snapshot(table_path):
    with open(os.path.join(table_path, "snapshot", "LATEST")) as f:
        snapshot_id = f.read().strip()
    with open(os.path.join(table_path, "snapshot", "snapshot-" + snapshot_id)) as f:
        return json.load(f)


def delta_manifest(table_path, snapshot):
    """The first manifest listed in the snapshot's delta manifest list."""
    path = os.path.join(table_path, "manifest", snapshot["deltaManifestList"])
    with open(path, "rb") as f:
        return next(iter(fastavro.reader(f)))["_FILE_NAME"]


def copy(table_path, name, target):
    shutil.copyfile(os.path.join(table_path, "manifest", name), os.path.join(HERE, target))
    print(target, "<-", name)


def main():
    warehouse = tempfile.mkdtemp(prefix="tidelake-manifest-fixtures-")
    catalog = CatalogFactory.create({"warehouse": warehouse})
    catalog.create_database("db", False)

    # Append table, partitioned, two commits then an overwrite of one
    # partition (which records DELETE entries).
    append_type = pa.schema([("dt", pa.string()), ("id", pa.int64()), ("name", pa.string())])
    catalog.create_table(
        "db.events",
        Schema.from_pyarrow_schema(append_type, partition_keys=["dt"],
                                   options={"manifest.compression": "zstd",
                                            "row-tracking.enabled": "true"}),
        False)
    events = catalog.get_table("db.events")
    write(events, pa.table({"dt": ["2024-01-01", "2024-01-01", "2024-01-02"],
                            "id": [1, 2, 3], "name": ["a", None, "c"]}, schema=append_type))
    write(events, pa.table({"dt": ["2024-01-01"], "id": [4], "name": ["d"]},
                           schema=append_type), overwrite=True)

    # Dynamic-bucket primary-key table: writes a HASH index per bucket.
    pk_type = pa.schema([pa.field("region", pa.string(), nullable=False),
                         pa.field("id", pa.int64(), nullable=False),
                         ("amount", pa.float64())])
    catalog.create_table(
        "db.accounts",
        Schema.from_pyarrow_schema(pk_type, partition_keys=["region"], primary_keys=["region", "id"],
                                   options={"bucket": "-1", "manifest.compression": "snappy"}),
        False)
    accounts = catalog.get_table("db.accounts")
    write(accounts, pa.table({"region": ["eu", "eu", "us"], "id": [10, 11, 12],
                              "amount": [1.5, None, 3.0]}, schema=pk_type))

    events_path = os.path.join(warehouse, "db.db", "events")
    accounts_path = os.path.join(warehouse, "db.db", "accounts")
    events_snapshot = latest_snapshot(events_path)
    copy(events_path, events_snapshot["deltaManifestList"], "pypaimon-append-manifest-list")
    copy(events_path, delta_manifest(events_path, events_snapshot), "pypaimon-append-manifest")
    accounts_snapshot = latest_snapshot(accounts_path)
    copy(accounts_path, accounts_snapshot["deltaManifestList"], "pypaimon-pk-manifest-list")
    copy(accounts_path, delta_manifest(accounts_path, accounts_snapshot), "pypaimon-pk-manifest")
    copy(accounts_path, accounts_snapshot["indexManifest"], "pypaimon-pk-index-manifest")
    shutil.rmtree(warehouse)


if __name__ == "__main__":
    main()
