"""Shared definitions of the benchmark suite: scales, paths, the orders
schema, the scan aggregates every Python peer computes alike, and the JSON
line each measurement prints."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
from pathlib import Path
from typing import Iterable, Optional

BENCH_DIR = Path(__file__).resolve().parent
DATA_ROOT = BENCH_DIR / "data"
TPCH_QUERY_DIR = BENCH_DIR / "tpch"

SYSTEMS = ["tidelake", "pypaimon", "pypaimon_rust", "deltalake", "pyiceberg", "duckdb", "parquet"]
# The vector workload's systems (bench/vector_peers.py; Tidelake's is tidelake-vector-bench).
VECTOR_SYSTEMS = ["tidelake", "faiss_ivf_flat", "faiss_hnsw", "lancedb"]

PRIMARY_KEY = ["dt", "order_id"]
PARTITION_KEY = "dt"
BUCKETS = 4
STATUSES = ["PENDING", "PAID", "PACKED", "SHIPPED", "DELIVERED", "CANCELLED", "RETURNED"]
FIRST_DAY = "2024-03-01"


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much data one run uses. Every field feeds the generator, so two
    runs with equal scales read byte-identical input."""

    rows: int
    upserts: int
    commits: int
    lookups: int
    tpch_sf: float
    days: int = 10
    delete_fraction: float = 0.05
    chunk_rows: int = 1_000_000
    seed: int = 20240301

    @property
    def name(self) -> str:
        sf = f"{self.tpch_sf:g}".replace(".", "_")
        return f"r{self.rows}-u{self.upserts}x{self.commits}-l{self.lookups}-sf{sf}-s{self.seed}"

    @property
    def deletes_per_commit(self) -> int:
        return round(self.updates_per_commit * self.delete_fraction)

    @property
    def updates_per_commit(self) -> int:
        return self.upserts // self.commits

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(value: dict) -> "Scale":
        return Scale(**value)


PRESETS = {
    # The default, sized so that a whole run stays near 30 minutes on 2 cores
    # (extrapolated from quick runs: the pure-Python and copy-on-write peers
    # dominate, and their time grows with the table).
    "full": Scale(rows=2_000_000, upserts=1_000_000, commits=50, lookups=1_000, tpch_sf=1.0),
    # The sizes the benchmark issue names; about 40 minutes by extrapolation,
    # with the slowest peers cut short by their timeouts.
    "issue": Scale(rows=10_000_000, upserts=5_000_000, commits=50, lookups=1_000, tpch_sf=1.0),
    # A few minutes, small data.
    "quick": Scale(rows=200_000, upserts=100_000, commits=10, lookups=200, tpch_sf=0.01),
    # Seconds: for developing the suite itself.
    "tiny": Scale(rows=20_000, upserts=10_000, commits=5, lookups=50, tpch_sf=0.01, chunk_rows=8_000),
}


class ScaleDir:
    """The files of one scale under `bench/data/<scale>/`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def ingest_dir(self) -> Path:
        return self.root / "input" / "ingest"

    @property
    def upsert_dir(self) -> Path:
        return self.root / "input" / "upserts"

    @property
    def final_dir(self) -> Path:
        """The state after all upserts, as plain hive-partitioned Parquet."""
        return self.root / "final"

    @property
    def expected_path(self) -> Path:
        return self.root / "expected.json"

    def tpch_dir(self, sf: float) -> Path:
        return self.root.parent / "tpch" / f"sf{sf:g}"

    def work_dir(self, system: str) -> Path:
        return self.root / "work" / system

    def saved_dir(self, system: str) -> Path:
        """Saved copies of a system's orders table, one folder per state (see table_state.py)."""
        return self.root / "saved" / system

    def ingest_files(self) -> list[Path]:
        return sorted(self.ingest_dir.glob("chunk-*.parquet"))

    def upsert_files(self) -> list[Path]:
        return sorted(self.upsert_dir.glob("commit-*.parquet"))

    def expected(self) -> dict:
        return json.loads(self.expected_path.read_text())

    def scale(self) -> Scale:
        return Scale.from_json(self.expected()["scale"])


def orders_schema():
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("order_id", pa.int64(), nullable=False),
            pa.field("customer_id", pa.int64()),
            pa.field("dt", pa.string(), nullable=False),
            pa.field("status", pa.string()),
            pa.field("amount", pa.decimal128(12, 2)),
            pa.field("discount", pa.float64()),
            pa.field("comment", pa.string()),
            pa.field("updated_at", pa.timestamp("us")),
        ]
    )


ORDER_COLUMNS = ["order_id", "customer_id", "dt", "status", "amount", "discount", "comment", "updated_at"]
PROJECTION_COLUMNS = ["order_id", "amount"]
# Upsert input files carry this extra column: 0 = upsert the row, 1 = delete its key.
OP_COLUMN = "op"
OP_UPSERT = 0
OP_DELETE = 1


def peak_rss_bytes() -> int:
    """Peak resident memory of this process. VmHWM (as tidelake-bench reads
    it) belongs to this process's own address space; ru_maxrss is only the
    fallback, because Linux carries it over from the parent across fork and
    exec, so a child would report its parent's peak if that was higher."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def emit(record: dict) -> None:
    """Prints one measurement as a JSON line on stdout (the suite collects it)."""
    sys.stdout.write(json.dumps(record, sort_keys=False) + "\n")
    sys.stdout.flush()


def measurement(workload: str, system: str, rows: int, seconds: float, **extra) -> dict:
    record = {
        "workload": workload,
        "system": system,
        "status": "ok",
        "rows": int(rows),
        "seconds": round(seconds, 6),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    record.update(extra)
    return record


def not_applicable(workload: str, system: str, reason: str) -> dict:
    return {"workload": workload, "system": system, "status": "n/a", "reason": reason}


def failure(workload: str, system: str, status: str, reason: str, **extra) -> dict:
    record = {"workload": workload, "system": system, "status": status, "reason": reason}
    record.update(extra)
    return record


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def plain_strings(array):
    """pyarrow 19 has no min/max kernels for string_view (delta-rs returns it)."""
    import pyarrow as pa

    if array.type == pa.string_view():
        return array.cast(pa.string())
    return array


def string_bytes(array) -> int:
    """Total bytes of a string column's non-null values, without copying."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if array.type != pa.string_view():
        return int(pc.sum(pc.binary_length(array)).as_py() or 0)
    # A view is 16 bytes whose first 4 hold the length.
    views = np.frombuffer(array.buffers()[1], dtype=np.int32).reshape(-1, 4)
    lengths = views[array.offset : array.offset + len(array), 0].astype(np.int64)
    if array.null_count:
        lengths = lengths[array.is_valid().to_numpy(zero_copy_only=False)]
    return int(lengths.sum())


class ScanAggregate:
    """The aggregate the scan workloads compute over what a system returns.
    The full scan touches every column, so no reader can skip one; the checked
    figures (rows, sum of amount in cents, bytes of comment) are exact."""

    def __init__(self):
        self.rows = 0
        self.amount_cents = 0
        self.comment_bytes = 0
        self.discount_sum = 0.0
        self.max_values: dict = {}
        self.min_order_id: Optional[int] = None

    def add(self, batch) -> None:
        import pyarrow.compute as pc

        self.rows += batch.num_rows
        if batch.num_rows == 0:
            return
        names = batch.schema.names
        if "amount" in names:
            total = pc.sum(batch.column("amount")).as_py()
            if total is not None:
                self.amount_cents += int(total.scaleb(2))
        if "comment" in names:
            self.comment_bytes += string_bytes(batch.column("comment"))
        if "discount" in names:
            self.discount_sum += float(pc.sum(batch.column("discount")).as_py() or 0.0)
        if "order_id" in names:
            low = pc.min(batch.column("order_id")).as_py()
            if low is not None and (self.min_order_id is None or low < self.min_order_id):
                self.min_order_id = low
        for name in ("customer_id", "status", "updated_at", "dt"):
            if name in names:
                high = pc.max(plain_strings(batch.column(name))).as_py()
                current = self.max_values.get(name)
                if high is not None and (current is None or high > current):
                    self.max_values[name] = high

    def add_all(self, batches: Iterable) -> "ScanAggregate":
        for batch in batches:
            self.add(batch)
        return self

    def checked(self) -> dict:
        out = {"rows": self.rows, "sum_amount_cents": self.amount_cents}
        if self.comment_bytes:
            out["comment_bytes"] = self.comment_bytes
        return out


def check_result(got: dict, expected: dict) -> dict:
    """Compares the figures both sides have; returns the fields a measurement
    carries: `check` is "ok" or "mismatch" (with what differed)."""
    diffs = {k: {"expected": v, "got": got.get(k)} for k, v in expected.items() if k in got and got[k] != v}
    if diffs:
        return {"check": "mismatch", "check_diff": diffs}
    return {"check": "ok"}


# Point lookups stop after this many seconds of lookups (or when all keys are
# done): the suite sets it per preset, the same for every system.
LOOKUP_BUDGET_ENV = "BENCH_LOOKUP_BUDGET_S"


def lookup_budget_seconds() -> float:
    value = os.environ.get(LOOKUP_BUDGET_ENV)
    return float(value) if value else float("inf")
