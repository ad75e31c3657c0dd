"""Tests of the serve workload's pure parts: the pgbench scripts, pgbench's
output and per-transaction log, percentiles, memory figures, the startup
messages of idle connections, the driver's wiring and the report.

    bench/.venv/bin/python -m unittest discover -s bench -p 'test_serve.py'
"""

from __future__ import annotations

import struct
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
import serve  # noqa: E402
import suite  # noqa: E402
import table_state  # noqa: E402
from common import ScaleDir  # noqa: E402


def evaluate(expression: str, k: int) -> int:
    """pgbench's meaning of the CASE trees key_expression writes."""
    tokens = expression.replace("(", " ").replace(")", " ").split()

    def parse(i: int) -> tuple[int, int]:
        if tokens[i] != "case":
            return int(tokens[i]), i + 1
        assert tokens[i + 1 : i + 4] == ["when", ":k", "<"], tokens[i : i + 4]
        bound = int(tokens[i + 4])
        assert tokens[i + 5] == "then"
        left, i = parse(i + 6)
        assert tokens[i] == "else"
        right, i = parse(i + 1)
        assert tokens[i] == "end"
        return (left if k < bound else right), i + 1

    value, end = parse(0)
    assert end == len(tokens)
    return value


class ScriptTest(unittest.TestCase):
    def test_the_key_tree_maps_every_index_to_its_key(self):
        for n in (1, 2, 3, 7, 64, 1000):
            keys = [10 * i + 3 for i in range(n)]
            expression = serve.key_expression(keys)
            self.assertEqual([evaluate(expression, k) for k in range(n)], keys)
        # A balanced tree: depth log2(n), so pgbench spends ~10 comparisons per key.
        self.assertEqual(serve.key_expression(list(range(1024))).count("case"), 1023)
        with self.assertRaises(ValueError):
            serve.key_expression([])

    def test_scripts_pin_the_whole_key_with_variables(self):
        script = serve.lookup_script(3, [5, 9, 12])
        lines = script.splitlines()
        self.assertEqual(lines[0], "\\set k random(0, 2)")
        self.assertTrue(lines[1].startswith("\\set id case when :k < 1 then 5 else"))
        self.assertEqual(
            lines[2],
            "SELECT order_id, customer_id, status, amount, discount, comment, updated_at FROM orders "
            "WHERE dt = :day3 AND order_id = :id;",
        )
        self.assertEqual(
            serve.aggregate_script(0), "SELECT status, count(*), sum(amount) FROM orders WHERE dt = :day0 GROUP BY status;\n"
        )
        self.assertEqual(serve.day_defines(["2024-03-01", "2024-03-02"]), ["-D", "day0=2024-03-01", "-D", "day1=2024-03-02"])


STDOUT = """pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: multiple scripts
scaling factor: 1
query mode: prepared
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 51234
number of failed transactions: 0 (0.000%)
latency average = 3.121 ms
initial connection time = 41.212 ms
tps = 5125.361912 (without initial connection time)
"""
STDERR_ABORTED = """pgbench: error: client 3 script 1 aborted in command 2 query 0: ERROR:  canceling statement due to statement timeout
pgbench: error: client 7 script 0 aborted in command 2 query 0: ERROR:  canceling statement due to statement timeout
pgbench: error: Run was aborted; the above results are incomplete.
"""


class PgbenchOutputTest(unittest.TestCase):
    def test_summary_and_aborted_clients(self):
        ok = serve.parse_pgbench_output(STDOUT, "")
        self.assertEqual((ok.processed, ok.failed, ok.tps, ok.aborted_clients, ok.first_error), (51234, 0, 5125.361912, 0, None))
        bad = serve.parse_pgbench_output(STDOUT, STDERR_ABORTED)
        self.assertEqual(bad.aborted_clients, 2)
        self.assertEqual(bad.first_error, "canceling statement due to statement timeout")

    def test_log_lines_with_failures_and_skips(self):
        lines = [
            "0 1 441 0 1796449047 427861",
            "0 2 37 1 1796449047 999999",
            "1 1 failed 0 1796449048 000012",
            "1 2 skipped 0 1796449048 000013 250",
            "2 1 500 1 1796449048 000100 12 0",
            "garbage",
            "",
        ]
        got = serve.parse_pgbench_log(lines)
        self.assertEqual([(t.client, t.script, t.latency_us) for t in got], [(0, 0, 441), (0, 1, 37), (1, 0, None), (2, 1, 500)])
        self.assertEqual(got[1].end_epoch_us, 1796449047_999999)

    def test_figures_split_by_kind_of_script(self):
        transactions = [serve.Transaction(0, i % 5 == 0, 1000 * (i + 1), 0) for i in range(100)]
        transactions = [serve.Transaction(t.client, int(t.script), t.latency_us, 0) for t in transactions]
        transactions.append(serve.Transaction(1, 0, None, 0))
        summary = serve.PgbenchSummary(processed=100, failed=1, tps=50.0)
        got = serve.run_figures(transactions, summary, 2.0, {"lookup": {0}, "aggregate": {1}})
        self.assertEqual(got["rows"], 100)
        self.assertEqual(got["rows_per_s"], 50.0)
        self.assertEqual(got["seconds"], 2.0)
        self.assertEqual(got["errors"], 1)
        self.assertEqual((got["p50_ms"], got["p99_ms"], got["max_ms"]), (50.0, 99.0, 100.0))
        self.assertEqual((got["lookups"], got["aggregates"]), (80, 20))
        # The aggregates are transactions 0, 5, ..., 95: 1, 6, ..., 96 ms.
        self.assertEqual((got["aggregate_p50_ms"], got["aggregate_p99_ms"]), (46.0, 96.0))
        # One kind of script: no split.
        one = serve.run_figures(transactions, summary, 2.0, {"lookup": {0, 1}})
        self.assertNotIn("lookups", one)

    def test_aborted_clients_are_errors(self):
        summary = serve.parse_pgbench_output(STDOUT, STDERR_ABORTED)
        got = serve.run_figures([serve.Transaction(0, 0, 10, 0)], summary, 1.0, {"lookup": {0}})
        self.assertEqual((got["errors"], got["aborted_clients"]), (2, 2))
        self.assertIn("statement timeout", got["first_error"])

    def test_latency_figures_are_nearest_rank(self):
        self.assertEqual(serve.latency_figures([]), {})
        got = serve.latency_figures([3000, 1000, 2000], "x_")
        self.assertEqual(got, {"x_p50_ms": 2.0, "x_p99_ms": 3.0, "x_max_ms": 3.0})


class MemoryAndProtocolTest(unittest.TestCase):
    def test_smaps_rollup_fields_in_bytes(self):
        text = (
            "55d5c0a2b000-7ffd4b9f5000 ---p 00000000 00:00 0                          [rollup]\n"
            "Rss:                8884 kB\nPss:                1187 kB\nPss_Anon:            712 kB\nShared_Clean:        7000 kB\n"
        )
        got = serve.parse_smaps_rollup(text)
        self.assertEqual((got["Rss"], got["Pss"], got["Pss_Anon"]), (8884 * 1024, 1187 * 1024, 712 * 1024))

    def test_this_process_is_measured(self):
        import os

        self.assertGreater(serve.status_bytes(os.getpid()), 0)
        self.assertEqual(serve.status_bytes(-1), 0)

    def test_startup_message_and_backend_messages(self):
        message = serve.startup_message("postgres", "db", "app")
        length, version = struct.unpack("!ii", message[:8])
        self.assertEqual((length, version), (len(message), 196608))
        self.assertEqual(message[8:], b"user\0postgres\0database\0db\0application_name\0app\0\0")

        def backend(kind: str, payload: bytes) -> bytes:
            return kind.encode() + struct.pack("!i", len(payload) + 4) + payload

        stream = (
            backend("R", struct.pack("!i", 0))
            + backend("S", b"server_version\x0015\x00")
            + backend("K", struct.pack("!ii", 4242, 7))
            + backend("Z", b"I")
        )
        # Split anywhere, the messages come out whole and in order.
        for cut in range(len(stream)):
            first, rest = serve.split_messages(stream[:cut])
            second, left = serve.split_messages(rest + stream[cut:])
            self.assertEqual(left, b"")
            self.assertEqual([k for k, _ in first + second], ["R", "S", "K", "Z"])
        messages, _ = serve.split_messages(stream)
        self.assertEqual(struct.unpack("!i", messages[2][1][:4])[0], 4242)
        self.assertEqual(serve.error_text(b"SFATAL\0C53300\0Msorry, too many clients already\0\0"),
                         "53300 sorry, too many clients already")
        with self.assertRaises(ValueError):
            serve.split_messages(b"Z\0\0\0\1")


class DriverTest(unittest.TestCase):
    def test_serve_drives_the_tidelake_binary_with_the_preset_sizes(self):
        data = ScaleDir(Path("/d/quick"))
        cmd = suite.command_for("tidelake", "serve", data, Path("/t/release/tidelake-bench"), "quick")
        self.assertEqual(cmd[1:6], [str(suite.BENCH_DIR / "serve.py"), "--tidelake", "/t/release/tidelake", "--data", "/d/quick"])
        self.assertEqual(cmd[cmd.index("--mixed-seconds") + 1], "15")
        self.assertEqual(cmd[cmd.index("--idle-connections") + 1], "1000")
        full = suite.command_for("tidelake", "serve", data, Path("/t/tidelake-bench"), "full")
        self.assertEqual(full[full.index("--mixed-seconds") + 1], "60")
        self.assertIn("serve", suite.NEEDS_TIDELAKE_COMMAND)
        self.assertEqual(suite.MEASUREMENTS["serve"], ["serve_lookup", "serve_mixed", "serve_idle", "serve_analytic"])
        # It reads the merge-on-read table, so a full run has it before compaction.
        self.assertEqual(table_state.READS["serve"], ("ingest", "upsert"))
        self.assertLess(suite.RUN_ORDER.index("serve"), suite.RUN_ORDER.index("compact"))

    def test_the_suites_peers_run_nothing_for_it(self):
        self.assertEqual(suite.run_one("pypaimon", "serve", ScaleDir(Path("/nonexistent")), Path("/x"), 1), [])
        records = []
        runner = suite.Runner(ScaleDir(Path("/nonexistent")), Path("/x"), {"*": 1}, "tiny", records.append)
        runner.run("duckdb", "serve")  # would rebuild its table if it planned a state
        self.assertEqual(records, [])

    def test_peer_records_do_not_carry_tidelakes_table_shape(self):
        records = []
        runner = suite.Runner(ScaleDir(Path("/nonexistent")), Path("/x"), {"*": 1}, "tiny", records.append)
        shape = {"table_read": {"data_files": 3}}
        runner.emit_all([{"system": "tidelake", "status": "ok"}, {"system": "postgres", "status": "ok"}], shape, "tidelake")
        self.assertEqual([("table_read" in r) for r in records], [True, False])


def record(workload: str, system: str, **extra) -> dict:
    return {"workload": workload, "system": system, "status": "ok", "rows": 1000, "seconds": 1.0, **extra}


class ReportTest(unittest.TestCase):
    RECORDS = [
        record("serve_lookup", "tidelake", rows_per_s=6000.0, p50_ms=2.0, p99_ms=8.0, errors=0, clients=16,
               peak_rss_bytes=200 * 2**20, check="ok", protocol="prepared"),
        record("serve_lookup", "postgres", rows_per_s=12000.0, p50_ms=1.0, p99_ms=4.0, errors=0, clients=16,
               peak_pss_bytes=300 * 2**20, check="ok", protocol="prepared"),
        record("serve_mixed", "tidelake", rows_per_s=900.0, p50_ms=20.0, p99_ms=150.0, errors=3, clients=64,
               lookups=800, lookup_p50_ms=5.0, lookup_p99_ms=40.0, aggregates=200, aggregate_p50_ms=90.0,
               aggregate_p99_ms=300.0, first_error="boom | bang", aborted_clients=3),
        record("serve_mixed", "postgres", rows_per_s=1800.0, p50_ms=10.0, p99_ms=60.0, errors=0, clients=64),
        record("serve_idle", "tidelake", connections=1000, bytes_per_connection=51200, rss_before_bytes=50 * 2**20,
               rss_after_bytes=100 * 2**20),
        record("serve_idle", "postgres", connections=1000, bytes_per_connection=512000, pss_sum_bytes=500 * 2**20,
               rss_sum_bytes=9000 * 2**20, backends_measured=1000, server="a private cluster"),
        record("serve_analytic", "tidelake", rows_per_s=40.0, p50_ms=25.0, p99_ms=30.0, errors=0, clients=1, check="ok"),
        record("serve_analytic", "duckdb", rows_per_s=80.0, p50_ms=12.0, p99_ms=14.0, errors=0, clients=1),
        {"workload": "serve_analytic", "system": "postgres", "status": "error", "reason": "no | server"},
    ]

    def lines(self) -> dict[tuple[str, str], str]:
        out = {}
        for line in report.serve_table(self.RECORDS):
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 3 and cells[1] in ("lookup", "mixed", "idle", "analytic"):
                out[(cells[1], cells[2])] = line
        return out

    def test_ratios_to_the_peer_of_the_same_run(self):
        lines = self.lines()
        self.assertIn("| 0.50×, p99 2.00× |", lines[("lookup", "postgres")])
        self.assertIn("| 0.50×, p99 2.50× |", lines[("mixed", "postgres")])
        self.assertIn("| memory 0.10× |", lines[("idle", "postgres")])
        self.assertIn("| 0.50×, p99 2.14× |", lines[("analytic", "duckdb")])
        self.assertIn("error: no / server", lines[("analytic", "postgres")])
        self.assertEqual(report.times(66.7 / 26876.4), "0.0025×")

    def test_notes_show_goal_errors_and_memory(self):
        lines = self.lines()
        self.assertIn("goal ≥ 5,000/s and p99 ≤ 10 ms: met", lines[("lookup", "tidelake")])
        self.assertIn("| 200 MiB |", lines[("lookup", "tidelake")])
        self.assertIn("| 300 MiB PSS |", lines[("lookup", "postgres")])
        mixed = lines[("mixed", "tidelake")]
        self.assertIn("| 3 |", mixed)
        self.assertIn("200 aggregates: p50 90.00 ms, p99 300.00 ms", mixed)
        self.assertIn("first error: boom / bang", mixed)
        self.assertIn("50 KiB / connection", lines[("idle", "tidelake")])
        self.assertIn("PostgreSQL: a private cluster", lines[("idle", "postgres")])
        slow = [dict(r) for r in self.RECORDS]
        slow[0]["p99_ms"] = 12.0
        self.assertIn("**not met**", "\n".join(report.serve_table(slow)))

    def test_the_section_is_rendered_and_kept_out_of_the_summary(self):
        from common import PRESETS

        text = report.render(self.RECORDS + [record("lookup", "tidelake", rows_per_s=10.0)], PRESETS["tiny"], "bench/run", 1.0)
        self.assertIn("## Server (`tidelake serve` over the PostgreSQL wire)", text)
        summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
        self.assertNotIn("serve_", summary)
        self.assertIn("| lookup |", summary)


if __name__ == "__main__":
    unittest.main()
