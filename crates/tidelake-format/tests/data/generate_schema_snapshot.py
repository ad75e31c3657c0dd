# Regenerates pypaimon-schema-0.json and pypaimon-snapshot-1.json (pypaimon 2.1):
#   .venv/bin/python crates/tidelake-format/tests/data/generate_schema_snapshot.py
# then copy {wh}/db.db/t/schema/schema-0 and snapshot/snapshot-1 here. Times, uuids and
# manifest sizes change on every run: update the asserts in schema.rs/snapshot.rs.
import pyarrow as pa, shutil, os, sys
from pypaimon import CatalogFactory, Schema
wh = "/tmp/fmt_types/wh"
shutil.rmtree(wh, ignore_errors=True)
cat = CatalogFactory.create({"warehouse": wh})
cat.create_database("db", False)
pa_schema = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("dt", pa.string(), nullable=False),
    pa.field("b", pa.bool_()),
    pa.field("i8", pa.int8()), pa.field("i16", pa.int16()), pa.field("i32", pa.int32()),
    pa.field("f32", pa.float32()), pa.field("f64", pa.float64()),
    pa.field("dec", pa.decimal128(10, 2)),
    pa.field("bin", pa.binary()),
    pa.field("d", pa.date32()),
    pa.field("t", pa.time32('ms')),
    pa.field("ts", pa.timestamp('us')),
    pa.field("ts3", pa.timestamp('ms')),
    pa.field("ltz", pa.timestamp('us', tz='UTC')),
    pa.field("arr", pa.list_(pa.int32())),
    pa.field("m", pa.map_(pa.string(), pa.int64())),
    pa.field("r", pa.struct([pa.field("x", pa.int32(), nullable=False), pa.field("y", pa.string())]), metadata={b"description": b"a nested row"}),
])
schema = Schema.from_pyarrow_schema(pa_schema, partition_keys=["dt"], primary_keys=["dt", "id"], options={"bucket": "2"}, comment="reference table")
cat.create_table("db.t", schema, False)
t = cat.get_table("db.t")
wb = t.new_batch_write_builder()
w = wb.new_write(); c = wb.new_commit()
import datetime, decimal
data = pa.Table.from_pylist([
  {"id": 1, "dt": "2024-01-01", "b": True, "i8": 1, "i16": 2, "i32": 3, "f32": 1.5, "f64": 2.5, "dec": decimal.Decimal("1.25"), "bin": b"ab", "d": datetime.date(2024,1,1), "t": datetime.time(1,2,3), "ts": datetime.datetime(2024,1,1,1,2,3), "ts3": datetime.datetime(2024,1,1), "ltz": datetime.datetime(2024,1,1, tzinfo=datetime.timezone.utc), "arr": [1,2], "m": [("k", 1)], "r": {"x": 1, "y": "z"}},
], schema=pa_schema)
w.write_arrow(data)
c.commit(w.prepare_commit()); w.close(); c.close()
