"""Tests of the suite's own machinery (generator, aggregates, driver, report).

    bench/.venv/bin/python -m unittest discover -s bench -p 'test_*.py'
"""

from __future__ import annotations

import json
import sys
import tempfile
import unittest
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
import suite  # noqa: E402
from common import ScaleDir, Scale, ScanAggregate, check_result, peak_rss_bytes, percentile, string_bytes  # noqa: E402
from gen_data import decimal_from_cents, generate_orders  # noqa: E402

MICRO = Scale(rows=3_000, upserts=1_000, commits=4, lookups=30, tpch_sf=0.01, chunk_rows=1_000, seed=7)


def generate(root: Path, scale: Scale = MICRO) -> ScaleDir:
    data = ScaleDir(root / scale.name)
    generate_orders(scale, data, log=lambda _: None)
    return data


class GeneratorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = generate(Path(cls.tmp.name))
        cls.expected = cls.data.expected()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_same_seed_same_bytes(self):
        with tempfile.TemporaryDirectory() as other:
            again = generate(Path(other))
            for a, b in zip(self.data.ingest_files() + self.data.upsert_files(), again.ingest_files() + again.upsert_files()):
                self.assertEqual(pq.read_table(a), pq.read_table(b), a.name)
            changed = generate(Path(other), Scale(**{**MICRO.to_json(), "seed": 8}))
            self.assertNotEqual(pq.read_table(changed.ingest_files()[0]), pq.read_table(self.data.ingest_files()[0]))

    def test_input_shape(self):
        self.assertEqual(len(self.data.ingest_files()), 3)
        ingest = pa.concat_tables(pq.read_table(f) for f in self.data.ingest_files())
        self.assertEqual(ingest.num_rows, MICRO.rows)
        self.assertEqual(ingest.column("order_id").to_pylist(), list(range(1, MICRO.rows + 1)))
        self.assertEqual(len(pc.unique(ingest.column("dt"))), MICRO.days)
        mean_comment = pc.mean(pc.binary_length(ingest.column("comment"))).as_py()
        self.assertTrue(50 <= mean_comment <= 70, mean_comment)
        commits = [pq.read_table(f) for f in self.data.upsert_files()]
        self.assertEqual(len(commits), MICRO.commits)
        for commit in commits:
            ops = commit.column("op").to_pylist()
            self.assertEqual(ops.count(0), MICRO.updates_per_commit)
            self.assertEqual(ops.count(1), MICRO.deletes_per_commit)
            # A key appears once per commit, so MERGE-style upserts are well defined.
            self.assertEqual(len(pc.unique(commit.column("order_id"))), commit.num_rows)

    def test_final_state_matches_expected_figures(self):
        final = ds.dataset(self.data.final_dir, partitioning="hive").to_table()
        full = self.expected["scan_full"]
        self.assertEqual(final.num_rows, full["rows"])
        self.assertEqual(final.num_rows, MICRO.rows - MICRO.commits * MICRO.deletes_per_commit)
        got = ScanAggregate().add_all(final.to_batches()).checked()
        self.assertEqual(check_result(got, full), {"check": "ok"})

    def test_final_state_is_replaying_the_commits(self):
        state = {r["order_id"]: r for r in pa.concat_tables(pq.read_table(f) for f in self.data.ingest_files()).to_pylist()}
        for path in self.data.upsert_files():
            for row in pq.read_table(path).to_pylist():
                op = row.pop("op")
                if op == 1:
                    del state[row["order_id"]]
                else:
                    self.assertIn(row["order_id"], state, "updates only touch live keys")
                    state[row["order_id"]] = row
        final = ds.dataset(self.data.final_dir, partitioning="hive").to_table().to_pylist()
        self.assertEqual(len(final), len(state))
        for row in final[:200]:
            self.assertEqual(row["amount"], state[row["order_id"]]["amount"])
            self.assertEqual(row["comment"], state[row["order_id"]]["comment"])
        flt = self.expected["scan_filter"]
        matches = [r for r in state.values() if r["dt"] == flt["dt"] and flt["order_id_min"] <= r["order_id"] <= flt["order_id_max"]]
        self.assertEqual(len(matches), flt["rows"])
        hits = sum(1 for _, key in self.expected["lookup"]["keys"] if key in state)
        self.assertEqual(hits, self.expected["lookup"]["found"])


class LookupBudgetTest(unittest.TestCase):
    def test_lookups_stop_at_the_budget_and_are_still_checked(self):
        import contextlib
        import io
        import os
        import time

        import peers
        from common import LOOKUP_BUDGET_ENV

        with tempfile.TemporaryDirectory() as tmp:
            data = generate(Path(tmp))
            expected = data.expected()
            live = {key for (_, key), hit in zip(expected["lookup"]["keys"], expected["lookup"]["hits"]) if hit}

            class SlowPeer(peers.Peer):
                name = "slow"

                def lookup(self, dt, order_id):
                    time.sleep(0.02)
                    return 1 if order_id in live else 0

            out = io.StringIO()
            os.environ[LOOKUP_BUDGET_ENV] = "0.1"
            try:
                with contextlib.redirect_stdout(out):
                    peers.run_lookups(SlowPeer(data), data)
            finally:
                del os.environ[LOOKUP_BUDGET_ENV]
        record = json.loads(out.getvalue())
        self.assertLess(record["rows"], MICRO.lookups)
        self.assertGreaterEqual(record["rows"], 4)
        self.assertEqual(record["lookups_planned"], MICRO.lookups)
        self.assertEqual(record["check"], "ok")


class HelpersTest(unittest.TestCase):
    def test_decimals_are_exact(self):
        values = decimal_from_cents([0, 1, -250, 9_999_999_999])
        self.assertEqual(values.type, pa.decimal128(12, 2))
        self.assertEqual([str(v) for v in values.to_pylist()], ["0.00", "0.01", "-2.50", "99999999.99"])

    def test_percentile_is_nearest_rank(self):
        values = [float(v) for v in range(1, 101)]
        self.assertEqual(percentile(values, 50), 50.0)
        self.assertEqual(percentile(values, 99), 99.0)
        self.assertEqual(percentile([3.0, 7.0], 51), 7.0)

    def test_string_bytes_of_views_and_plain_strings(self):
        strings = pa.array(["a longer string than twelve bytes", None, "ab"])
        self.assertEqual(string_bytes(strings), 35)
        self.assertEqual(string_bytes(strings.cast(pa.string_view())), 35)
        self.assertEqual(string_bytes(strings.cast(pa.string_view()).slice(1)), 2)

    def test_peak_rss_is_this_process(self):
        self.assertGreater(peak_rss_bytes(), 10 * 2**20)

    def test_checks_name_what_differs(self):
        self.assertEqual(check_result({"rows": 3}, {"rows": 3, "other": 1}), {"check": "ok"})
        wrong = check_result({"rows": 2}, {"rows": 3})
        self.assertEqual(wrong["check"], "mismatch")
        self.assertEqual(wrong["check_diff"]["rows"], {"expected": 3, "got": 2})


class DriverTest(unittest.TestCase):
    def test_only_expands_compaction_and_rejects_unknown(self):
        self.assertEqual(suite.expand_only(["tpch", "compact"]), ["compact", "scan_compacted", "tpch"])
        with self.assertRaises(SystemExit):
            suite.expand_only(["nope"])

    def test_progress_and_records_are_parsed(self):
        err = 'noise\nprogress: {"commits": 1, "of": 4, "rows": 10, "seconds": 1.0}\nprogress: {"commits": 2, "of": 4, "rows": 20, "seconds": 2.5}\n'
        self.assertEqual(suite.last_progress(err)["commits"], 2)
        self.assertIsNone(suite.last_progress("nothing"))
        out = 'warning\n{"workload": "ingest", "system": "x", "status": "ok"}\n{broken\n'
        self.assertEqual([r["workload"] for r in suite.parse_records(out)], ["ingest"])

    def test_a_timeout_keeps_partial_progress(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "slow.py"
            script.write_text(
                "import sys, time\n"
                "sys.stderr.write('progress: {\"commits\": 3, \"of\": 9, \"rows\": 300, \"seconds\": 1.5}\\n')\n"
                "sys.stderr.flush()\n"
                "time.sleep(30)\n"
            )
            original = suite.command_for
            suite.command_for = lambda *args: [sys.executable, str(script)]
            try:
                records = suite.run_one("pyiceberg", "upsert", ScaleDir(Path(tmp)), Path("/none"), timeout=2)
            finally:
                suite.command_for = original
        self.assertEqual(len(records), 1)
        self.assertEqual(records[0]["status"], "timeout")
        self.assertEqual(records[0]["commits_done"], 3)
        self.assertEqual(records[0]["rows_per_s"], 200.0)

    def test_cdc_runs_the_tidelake_binary_and_is_not_applicable_to_peers(self):
        data = ScaleDir(Path("/d"))
        cmd = suite.command_for("tidelake", "cdc", data, Path("/t/release/tidelake-bench"), "issue")
        self.assertTrue(cmd[1].endswith("cdc.py"))
        self.assertEqual(cmd[cmd.index("--tidelake") + 1], "/t/release/tidelake")
        self.assertEqual(cmd[cmd.index("--rows") + 1], "1000000")
        self.assertEqual(cmd[cmd.index("--rate") + 1], "10000")
        custom = suite.command_for("tidelake", "cdc", data, Path("/t/tb"), "full", {"rows": 7, "rate": 8, "seconds": 9})
        self.assertEqual(custom[custom.index("--seconds") + 1], "9")
        records = suite.run_one("duckdb", "cdc", data, Path("/none"), timeout=1)
        self.assertEqual({r["status"] for r in records}, {"n/a"})
        self.assertEqual(len(records), 6)

    def test_workers_drive_the_tidelake_binary_at_the_issue_rate_and_are_not_applicable_to_peers(self):
        data = ScaleDir(Path("/d"))
        cmd = suite.command_for("tidelake", "workers", data, Path("/t/release/tidelake-bench"), "full")
        self.assertTrue(cmd[1].endswith("workers.py"))
        self.assertEqual(cmd[cmd.index("--tidelake") + 1], "/t/release/tidelake")
        self.assertEqual(cmd[cmd.index("--jobs") + 1], "10")
        self.assertEqual(cmd[cmd.index("--rate") + 1], "1000")
        records = suite.run_one("duckdb", "workers", data, Path("/none"), timeout=1)
        self.assertEqual({r["status"] for r in records}, {"n/a"})
        self.assertEqual(len(records), 6)
        missing = suite.run_one("tidelake", "workers", data, Path("/none/tidelake-bench"), timeout=1)
        self.assertEqual({r["status"] for r in missing}, {"error"})

    def test_the_stream_job_runs_at_the_issue_rate_for_the_preset(self):
        data = ScaleDir(Path("/d"))
        quick = suite.command_for("tidelake", "stream_job", data, Path("/bin/tb"), "quick")
        self.assertEqual(quick[quick.index("--workload") + 1], "stream-job")
        self.assertEqual(quick[quick.index("--rate") + 1], "10000")
        full = suite.command_for("tidelake", "stream_job", data, Path("/bin/tb"), "full")
        self.assertGreater(int(full[full.index("--seconds") + 1]), int(quick[quick.index("--seconds") + 1]))
        self.assertNotIn("--rate", suite.command_for("tidelake", "scan", data, Path("/bin/tb"), "quick"))
        self.assertIn("stream_job", suite.RUN_ORDER)

    def test_the_doctor_is_a_workload_of_its_own(self):
        data = ScaleDir(Path("/d"))
        cmd = suite.command_for("tidelake", "doctor", data, Path("/bin/tb"), "full")
        self.assertEqual(cmd[cmd.index("--workload") + 1], "doctor")
        self.assertEqual(suite.expand_only(["doctor"]), ["doctor"])
        self.assertEqual(suite.RUN_ORDER[-1], "doctor")

    def test_a_missing_tidelake_binary_is_reported(self):
        records = suite.run_one("tidelake", "scan", ScaleDir(Path("/nonexistent")), Path("/nonexistent/bin"), 5)
        self.assertEqual([r["workload"] for r in records], ["scan_full", "scan_projection", "scan_filter"])
        self.assertTrue(all(r["status"] == "error" and "not built" in r["reason"] for r in records))


class ReportTest(unittest.TestCase):
    def test_tables_compare_tidelake_with_each_peer(self):
        records = [
            {"workload": "ingest", "system": "tidelake", "status": "ok", "rows": 100, "seconds": 1.0, "rows_per_s": 100.0, "peak_rss_bytes": 2**20},
            {"workload": "ingest", "system": "deltalake", "status": "ok", "rows": 100, "seconds": 2.0, "rows_per_s": 50.0, "peak_rss_bytes": 2**21},
            {"workload": "ingest", "system": "duckdb", "status": "n/a", "reason": "not a writer"},
            {"workload": "upsert", "system": "pyiceberg", "status": "timeout", "rows": 10, "seconds": 5.0, "rows_per_s": 2.0, "reason": "killed"},
            {"workload": "scan_full", "system": "parquet", "status": "ok", "rows": 5, "seconds": 1.0, "rows_per_s": 5.0, "check": "mismatch", "check_diff": {"rows": {"expected": 6, "got": 5}}},
        ]
        text = report.render(records, MICRO, "bench/run --test", 60.0)
        self.assertIn("bench/run --test", text)
        self.assertIn("cores", text)
        self.assertIn("| deltalake | 100 | 2.000 | 50.0 | 2 MiB | 2.00× |", text)
        self.assertIn("| duckdb | | | | | | n/a: not a writer |", text)
        self.assertIn("timeout", text)
        self.assertIn("**wrong result**", text)
        self.assertNotIn("## TPC-H", text)

    def test_notes_tell_the_shape_of_the_table_read_and_left(self):
        shape = {"path": "work/tidelake/warehouse/bench.db/orders", "format": "paimon", "data_files": 440,
                 "sorted_runs_per_bucket_max": 11, "stages": ["ingest", "upsert"]}
        compacted = {**shape, "data_files": 40, "sorted_runs_per_bucket_max": 1}
        records = [
            {"workload": "scan_full", "system": "tidelake", "status": "ok", "rows": 5, "seconds": 1.0, "rows_per_s": 5.0, "table_read": shape},
            {"workload": "compact", "system": "tidelake", "status": "ok", "rows": 5, "seconds": 1.0, "rows_per_s": 5.0,
             "table_read": shape, "table_written": compacted},
            {"workload": "scan_full", "system": "pyiceberg", "status": "ok", "rows": 5, "seconds": 1.0, "rows_per_s": 5.0,
             "table_read": {"path": "work/pyiceberg", "format": "iceberg", "shape_error": "OSError: gone"}},
        ]
        text = report.render(records, MICRO, "bench/run", 1.0)
        self.assertIn("read 440 files, up to 11 sorted runs per bucket |", text)
        self.assertIn("read 440 files, up to 11 sorted runs per bucket; left 40 files, up to 1 sorted run per bucket", text)
        self.assertIn("read a table of unknown shape (OSError: gone)", text)

    def test_the_stream_job_shows_its_delays_and_why_peers_cannot_run_it(self):
        records = [
            {"workload": "stream_job", "system": "tidelake", "status": "ok", "rows": 300000, "seconds": 30.0,
             "rows_per_s": 10000.0, "peak_rss_bytes": 2**26, "delay_p50_ms": 41.0, "delay_p99_ms": 95.0,
             "delay_max_ms": 180.0, "sink_commits": 250, "source_commits": 300, "check": "ok"},
            {"workload": "stream_job", "system": "deltalake", "status": "n/a", "reason": "no continuous SQL jobs"},
        ]
        text = report.render(records, MICRO, "bench/run", 1.0)
        self.assertIn("## Continuous job (filter + aggregate)", text)
        self.assertIn("p50 41 ms, p99 95 ms, max 180 ms; 250 sink commits for 300 source commits", text)
        self.assertIn("| deltalake | | | | | | n/a: no continuous SQL jobs |", text)
        self.assertIn("| stream_job | n/a |", text)

    def test_the_doctor_shows_its_warehouse_and_detection_times(self):
        records = [
            {"workload": "doctor", "system": "tidelake", "status": "ok", "rows": 10000, "seconds": 1.25,
             "rows_per_s": 8000.0, "peak_rss_bytes": 2**26, "tables": 100, "files": 10000, "snapshots": 1000,
             "findings": 0, "detection_ms": {"small-files": 12.5, "orphan-files": "not reported",
                                             "warehouse_run_s": 1.5, "warehouse_run_missed": ["orphan-files"]}},
            {"workload": "doctor", "system": "duckdb", "status": "n/a", "reason": "no table metadata"},
        ]
        text = report.render(records, MICRO, "bench/run --only doctor", 1.0)
        self.assertIn("## Operations doctor", text)
        self.assertIn("100 tables, 10,000 files, 1,000 snapshots, 0 findings", text)
        self.assertIn("injection to report: small-files 12 ms, orphan-files not reported", text)
        self.assertIn("whole warehouse with the faults: 1.500 s, **missed orphan-files**", text)
        self.assertIn("| duckdb | | | | | | n/a: no table metadata |", text)


if __name__ == "__main__":
    unittest.main()
