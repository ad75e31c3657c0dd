"""Regenerates the deletion-vector index fixtures used by `deletion_vector.rs` tests.

Run with the venv's python (pypaimon 2.1, pyroaring):
    .venv/bin/python crates/tidelake-format/tests/oracle/generate_deletion_vectors.py

Writes into crates/tidelake-format/tests/data/deletion_vectors/:

  pypaimon-dv-index        an index file laid out exactly as pypaimon's
                           `TableDelete._write_deletion_vector_index` does: version byte 1,
                           then `BitmapDeletionVector.serialize()` of each data file's vector,
                           data files in sorted order. Tidelake must decode it and encode the
                           same vectors to identical bytes.
  pyroaring-dv-index-runs  the same vectors after `run_optimize()`, as Paimon Java writes them
                           (its RoaringBitmap32 run-optimizes before serializing): run
                           containers that Tidelake must decode.
  pyroaring-dv-index-64    Paimon Java's 64-bit vectors (`Bitmap64DeletionVector`, which
                           pypaimon cannot read): big-endian length, little-endian magic
                           1681511377, the portable 64-bit roaring format (pyroaring's
                           BitMap64), big-endian CRC32 of magic + bitmap; the range length
                           covers the whole record. Tidelake decodes it when every position
                           fits a 32-bit vector and reports it unsupported otherwise.
  dv-fixtures.json         for each file: its ranges as the index manifest would list them
                           and the deleted positions, as [start, stop, step] Python ranges.

Nothing here is random: rerunning the script must reproduce the committed bytes.
"""
import json
import os
import struct
import zlib

from pyroaring import BitMap, BitMap64
from pypaimon.deletionvectors import BitmapDeletionVector
from pypaimon.utils.roaring_bitmap import RoaringBitmap

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "deletion_vectors")

DV_INDEX_VERSION = 1
MAGIC_64 = 1681511377

# Data file name -> deleted positions as Python ranges. They cover an empty vector, array
# containers, a bitmap container (> 4096 values in one 65536 block), many containers and the
# largest position a 32-bit vector may hold.
VECTORS = {
    "data-a.parquet": [[0, 1, 1], [3, 4, 1], [7, 8, 1], [100, 101, 1]],
    "data-b.parquet": [],
    "data-c.parquet": [[0, 10000, 2], [70000, 70010, 1]],
    "data-d.parquet": [[65535, 65537, 1], [2147418112, 2147418113, 1], [2147483647, 2147483648, 1]],
    "data-e.parquet": [[200000, 300000, 1], [1000000, 1000001, 1]],
}

# 64-bit vectors: one that fits a 32-bit vector, one with a position past 2^32.
VECTORS_64 = {
    "data-f.parquet": [[5, 6, 1], [131072, 131172, 1]],
    "data-g.parquet": [[1, 2, 1], [4294967301, 4294967302, 1]],
}


def positions(spec):
    for start, stop, step in spec:
        yield from range(start, stop, step)


def pypaimon_vector(spec):
    dv = BitmapDeletionVector(RoaringBitmap())
    for pos in positions(spec):
        dv.delete(pos)
    return dv


def lay_out(records):
    """records: (name, serialized bytes, range length, cardinality) in file order."""
    chunks = [bytes([DV_INDEX_VERSION])]
    position = 1
    ranges = []
    for name, serialized, length, cardinality in records:
        ranges.append({"data_file_name": name, "offset": position, "length": length,
                       "cardinality": cardinality})
        chunks.append(serialized)
        position += len(serialized)
    return b"".join(chunks), ranges


def pypaimon_index():
    records = []
    for name in sorted(VECTORS):
        dv = pypaimon_vector(VECTORS[name])
        serialized = dv.serialize()
        records.append((name, serialized, int.from_bytes(serialized[:4], "big"),
                        dv.get_cardinality()))
    return lay_out(records)


def run_optimized_index():
    records = []
    for name in sorted(VECTORS):
        dv = pypaimon_vector(VECTORS[name])
        dv.bit_map()._data.run_optimize()
        serialized = dv.serialize()
        records.append((name, serialized, int.from_bytes(serialized[:4], "big"),
                        dv.get_cardinality()))
    return lay_out(records)


def bitmap64_index():
    records = []
    for name in sorted(VECTORS_64):
        bitmap = BitMap64(positions(VECTORS_64[name]))
        bitmap.run_optimize()
        data = struct.pack("<i", MAGIC_64) + bitmap.serialize()
        serialized = struct.pack(">i", len(data)) + data + struct.pack(">I", zlib.crc32(data))
        records.append((name, serialized, len(serialized), len(bitmap)))
    return lay_out(records)


def main():
    os.makedirs(OUT, exist_ok=True)
    fixtures = {}
    for file_name, (data, ranges), specs in [
        ("pypaimon-dv-index", pypaimon_index(), VECTORS),
        ("pyroaring-dv-index-runs", run_optimized_index(), VECTORS),
        ("pyroaring-dv-index-64", bitmap64_index(), VECTORS_64),
    ]:
        with open(os.path.join(OUT, file_name), "wb") as f:
            f.write(data)
        for r in ranges:
            r["positions"] = specs[r["data_file_name"]]
        fixtures[file_name] = ranges
    with open(os.path.join(OUT, "dv-fixtures.json"), "w") as f:
        json.dump(fixtures, f, indent=1)
        f.write("\n")
    # Sanity: pypaimon reads back its own layout through its reader's rules.
    data, ranges = pypaimon_index()
    for r in ranges:
        offset = r["offset"]
        length = int.from_bytes(data[offset:offset + 4], "big")
        assert length == r["length"], r
        dv = BitmapDeletionVector.deserialize_from_bytes(data[offset + 8:offset + 4 + length])
        assert sorted(dv.bit_map()) == list(positions(VECTORS[r["data_file_name"]])), r


if __name__ == "__main__":
    main()
