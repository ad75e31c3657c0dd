"""Tests that every measurement reads the table state it claims: the
driver's state ledger, saved copies and plans (table_state.py) and the table
shapes it records (table_shape.py).

    bench/.venv/bin/python -m unittest discover -s bench -p 'test_*.py'
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import suite  # noqa: E402
import table_shape  # noqa: E402
import table_state  # noqa: E402
from common import ScaleDir  # noqa: E402

# Stands in for a system's process (peers.py, tidelake-bench): keeps a
# Delta-style log under <work>/orders, where ingest adds one file, upsert
# three (one per commit) and compact replaces them all with one; reading
# workloads print how many live files they read. FAKE_FAIL=<workload> makes
# that workload change the table and then fail, as a crash or timeout would.
FAKE_SYSTEM = r'''
import json, os, shutil, sys
from pathlib import Path

work, workload = Path(sys.argv[1]), sys.argv[2]
table = work / "orders"
log = table / "_delta_log"

def live():
    files = {}
    for path in sorted(log.glob("*.json")):
        for line in path.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files[action["add"]["path"]] = True
            if "remove" in action:
                files.pop(action["remove"]["path"], None)
    return sorted(files)

def commit(adds, removes=()):
    version = len(list(log.glob("*.json")))
    actions = [{"remove": {"path": p}} for p in removes]
    for name in adds:
        path = f"dt=1/part-{version}-{name}.parquet"
        (table / path).parent.mkdir(parents=True, exist_ok=True)
        (table / path).write_bytes(b"PAR1")
        actions.append({"add": {"path": path}})
    (log / f"{version:020d}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))

def record(name, **extra):
    print(json.dumps({"workload": name, "system": "deltalake", "status": "ok", "rows": 1, "seconds": 1.0, **extra}))

if workload == "ingest":
    shutil.rmtree(work, ignore_errors=True)
    log.mkdir(parents=True)
    commit(["a"])
elif workload == "upsert":
    for n in range(3):
        commit([f"u{n}"])
elif workload == "compact":
    commit(["merged"], removes=live())
elif workload in ("scan", "scan_compacted"):
    suffix = "_compacted" if workload == "scan_compacted" else ""
    for name in ("scan_full", "scan_projection", "scan_filter"):
        record(name + suffix, files_read=len(live()))
elif workload == "lookup":
    record("lookup", files_read=len(live()))
else:
    print(json.dumps({"workload": workload, "system": "deltalake", "status": "n/a", "reason": "not in this test"}))
if os.environ.get("FAKE_FAIL") == workload:
    sys.exit(1)
if workload in ("ingest", "upsert", "compact"):
    record(workload)
'''

SYSTEM = "deltalake"  # the fake keeps a Delta log, so the recorded shape is real


class DriverStateTest(unittest.TestCase):
    """The real driver (suite.Runner, table_state) with a fake system process."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        self.data = ScaleDir(root / "scale")
        script = root / "fake_system.py"
        script.write_text(FAKE_SYSTEM)
        self.original_command_for, self.original_log = suite.command_for, suite.log
        suite.log = lambda message: None
        suite.command_for = lambda system, workload, data, *rest: [
            sys.executable, str(script), str(data.work_dir(system)), workload
        ]

    def tearDown(self):
        suite.command_for, suite.log = self.original_command_for, self.original_log
        os.environ.pop("FAKE_FAIL", None)
        self.tmp.cleanup()

    def run_suite(self, only: list[str] | None = None, fail: str | None = None) -> list[dict]:
        """One `bench/run [--only ...]` on the fake system; its records."""
        if fail:
            os.environ["FAKE_FAIL"] = fail
        records = []
        runner = suite.Runner(self.data, Path(sys.executable), {"*": 60}, "tiny", records.append)
        for workload in suite.expand_only(only) if only else suite.RUN_ORDER:
            runner.run(SYSTEM, workload)
        os.environ.pop("FAKE_FAIL", None)
        return records

    @staticmethod
    def by_workload(records: list[dict]) -> dict[str, dict]:
        return {r["workload"]: r for r in records}

    def test_only_scan_after_a_full_run_reads_the_merge_on_read_table(self):
        full = self.by_workload(self.run_suite())
        self.assertEqual(full["scan_full"]["files_read"], 4)
        self.assertEqual(full["lookup"]["files_read"], 4)
        self.assertEqual(full["compact"]["table_read"]["data_files"], 4)
        self.assertEqual(full["compact"]["table_written"]["data_files"], 1)
        self.assertEqual(full["scan_full_compacted"]["files_read"], 1)
        self.assertEqual(table_state.live_state(self.data, SYSTEM), ("ingest", "upsert", "compact"))

        again = self.run_suite(["scan"])
        # Restored from the copy saved before compaction: nothing rebuilt.
        self.assertEqual([r["workload"] for r in again], ["scan_full", "scan_projection", "scan_filter"])
        for record in again:
            self.assertEqual(record["files_read"], 4, record)
            shape = record["table_read"]
            self.assertEqual((shape["stages"], shape["data_files"], shape["format"]), (["ingest", "upsert"], 4, "delta"))
            self.assertEqual(shape["path"], "work/deltalake/orders")

    def test_only_compact_then_only_lookup_each_get_their_state(self):
        self.run_suite()
        compacted = self.by_workload(self.run_suite(["compact"]))
        self.assertEqual(list(compacted), ["compact", "scan_full_compacted", "scan_projection_compacted", "scan_filter_compacted"])
        self.assertEqual(compacted["compact"]["table_read"]["data_files"], 4)
        self.assertEqual(compacted["scan_full_compacted"]["files_read"], 1)
        self.assertEqual(compacted["scan_full_compacted"]["table_read"]["stages"], ["ingest", "upsert", "compact"])
        lookup = self.by_workload(self.run_suite(["lookup"]))
        self.assertEqual(lookup["lookup"]["files_read"], 4)

    def test_only_upsert_rebuilds_from_ingest_and_drops_the_stale_copy(self):
        self.run_suite()
        self.assertIn(("ingest", "upsert"), table_state.saved_states(self.data, SYSTEM))
        rerun = self.run_suite(["upsert"])
        self.assertEqual([r["workload"] for r in rerun], ["ingest", "upsert"])
        self.assertEqual(rerun[1]["table_read"]["data_files"], 1)
        self.assertEqual(rerun[1]["table_written"]["data_files"], 4)
        # The copy came from the earlier ingest, so it is gone; the live table serves the scan.
        self.assertEqual(table_state.saved_states(self.data, SYSTEM), {})
        scan = self.by_workload(self.run_suite(["scan"]))
        self.assertEqual(scan["scan_full"]["files_read"], 4)

    def test_a_compaction_that_fails_midway_leaves_the_merge_on_read_state_restorable(self):
        full = self.by_workload(self.run_suite(fail="compact"))
        self.assertEqual(full["scan_full_compacted"]["status"], "skipped")
        self.assertEqual(full["scan_full_compacted"]["reason"], "compact failed")
        self.assertIsNone(table_state.live_state(self.data, SYSTEM))
        scan = self.by_workload(self.run_suite(["scan"]))
        self.assertEqual(scan["scan_full"]["files_read"], 4)

    def test_a_failed_upsert_skips_what_reads_its_table_and_is_redone_next_time(self):
        full = self.by_workload(self.run_suite(fail="upsert"))
        for name in ["scan_full", "lookup", "compact", "scan_full_compacted"]:
            self.assertEqual((full[name]["status"], full[name]["reason"]), ("skipped", "upsert failed"), name)
        self.assertEqual(full["tpch"]["status"], "n/a")  # makes its own tables: it ran
        self.assertNotIn("table_read", full["scan_full"])
        again = self.run_suite(["scan"])
        self.assertEqual([r["workload"] for r in again][:2], ["ingest", "upsert"])
        self.assertEqual(self.by_workload(again)["scan_full"]["files_read"], 4)

    def test_saved_copies_link_data_files_and_keep_other_work(self):
        self.run_suite(["upsert"])
        (self.data.work_dir(SYSTEM) / "tpch").mkdir()
        self.run_suite(["compact"])
        saved = table_state.saved_states(self.data, SYSTEM)[("ingest", "upsert")]
        data_file = next(saved.rglob("*.parquet"))
        self.assertGreater(data_file.stat().st_nlink, 1)
        self.assertFalse((saved / "tpch").exists())
        self.run_suite(["scan"])
        self.assertTrue((self.data.work_dir(SYSTEM) / "tpch").is_dir())


class PlanTest(unittest.TestCase):
    MOR = ("ingest", "upsert")

    def test_plans_start_from_the_longest_state_at_hand(self):
        plan = table_state.plan
        self.assertEqual(plan(self.MOR, self.MOR, set()), (None, []))
        self.assertEqual(plan(self.MOR, ("ingest",), set()), (None, ["upsert"]))
        self.assertEqual(plan(self.MOR, self.MOR + ("compact",), {self.MOR}), (self.MOR, []))
        self.assertEqual(plan(self.MOR, self.MOR + ("compact",), set()), (None, ["ingest", "upsert"]))
        self.assertEqual(plan(self.MOR + ("compact",), None, {self.MOR}), (self.MOR, ["compact"]))
        self.assertEqual(plan(("ingest",), self.MOR, {self.MOR}), (None, ["ingest"]))

    def test_every_read_state_is_built_by_the_workloads_that_change_the_table(self):
        for workload, state in table_state.READS.items():
            self.assertTrue(set(state) <= set(table_state.CHANGES), workload)
            for i, stage in enumerate(state):
                self.assertEqual(table_state.READS.get(stage, ()), state[:i], workload)


try:
    import fastavro
except ImportError:
    fastavro = None


@unittest.skipIf(fastavro is None, "fastavro (installed with pypaimon) reads Paimon's manifests")
class PaimonShapeTest(unittest.TestCase):
    ENTRY = {
        "type": "record",
        "name": "record",
        "fields": [
            {"name": "_KIND", "type": "int"},
            {"name": "_PARTITION", "type": "bytes"},
            {"name": "_BUCKET", "type": "int"},
            {
                "name": "_FILE",
                "type": {
                    "type": "record",
                    "name": "record__FILE",
                    "fields": [{"name": "_FILE_NAME", "type": "string"}, {"name": "_LEVEL", "type": "int"}],
                },
            },
        ],
    }
    LIST = {"type": "record", "name": "record", "fields": [{"name": "_FILE_NAME", "type": "string"}]}

    def write(self, path: Path, schema: dict, records: list[dict]) -> None:
        with path.open("wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), records)

    def entry(self, kind: int, partition: bytes, bucket: int, name: str, level: int) -> dict:
        return {"_KIND": kind, "_PARTITION": partition, "_BUCKET": bucket, "_FILE": {"_FILE_NAME": name, "_LEVEL": level}}

    def test_sorted_runs_count_each_level0_file_and_each_higher_level(self):
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp)
            (table / "snapshot").mkdir()
            (table / "manifest").mkdir()
            base = [self.entry(0, b"p1", 0, f"l0-{i}", 0) for i in range(3)]
            base += [self.entry(0, b"p1", 0, "l5-a", 5), self.entry(0, b"p1", 0, "l5-b", 5), self.entry(0, b"p2", 1, "old", 0)]
            # The latest commit compacted bucket 1 of p2: one file out, one in at level 5.
            delta = [self.entry(1, b"p2", 1, "old", 0), self.entry(0, b"p2", 1, "new", 5)]
            self.write(table / "manifest" / "m-base", self.ENTRY, base)
            self.write(table / "manifest" / "m-delta", self.ENTRY, delta)
            self.write(table / "manifest" / "list-base", self.LIST, [{"_FILE_NAME": "m-base"}])
            self.write(table / "manifest" / "list-delta", self.LIST, [{"_FILE_NAME": "m-delta"}])
            latest = {"id": 12, "baseManifestList": "list-base", "deltaManifestList": "list-delta"}
            (table / "snapshot" / "snapshot-12").write_text(json.dumps(latest))
            (table / "snapshot" / "snapshot-9").write_text(json.dumps({"baseManifestList": "gone", "deltaManifestList": "gone"}))
            (table / "snapshot" / "LATEST").write_text("9")
            shape = table_shape.paimon_shape(table)
        self.assertEqual(shape["snapshot_id"], 12)
        self.assertEqual(shape["data_files"], 6)
        self.assertEqual(shape["buckets_with_files"], 2)
        self.assertEqual(shape["data_files_per_bucket_max"], 5)
        self.assertEqual((shape["sorted_runs_per_bucket_min"], shape["sorted_runs_per_bucket_max"]), (1, 4))
        self.assertEqual(shape["sorted_runs_per_bucket_mean"], 2.5)


class ParquetShapeTest(unittest.TestCase):
    def test_the_final_state_is_what_plain_parquet_readers_scan(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = ScaleDir(Path(tmp))
            for day in ("dt=1", "dt=2"):
                (data.final_dir / day).mkdir(parents=True)
                (data.final_dir / day / "part-0.parquet").write_bytes(b"PAR1")
            shape = table_shape.describe(data, "duckdb", reading=True)
            broken = table_shape.describe(data, "pyiceberg", reading=True)
        self.assertEqual(shape, {"path": "final", "format": "parquet", "data_files": 2, "partitions": 2, "data_files_per_partition_max": 1})
        self.assertEqual(broken["format"], "iceberg")
        self.assertIn("shape_error", broken)


if __name__ == "__main__":
    unittest.main()
