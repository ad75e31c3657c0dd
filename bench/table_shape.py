"""What a system's orders table looks like on disk, recorded in the JSON
lines so that a reader sees what a measurement read or wrote: the live data
files of the table's current version and, for Paimon's LSM tables (Tidelake,
pypaimon, pypaimon-rust), the sorted runs per bucket a merge-on-read scan
merges. Files of older versions that are still on disk do not count.

Computed from the table folder by the driver, the same way for every system;
Paimon's manifests are Avro and need fastavro (installed with pypaimon).
"""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Optional

from common import ScaleDir

PAIMON_SYSTEMS = {"tidelake", "pypaimon", "pypaimon_rust"}
# Systems whose scans and lookups read the generator's final state, not a table of their own.
FINAL_STATE_READERS = {"duckdb", "parquet"}
PAIMON_ADD = 0


def orders_table(data: ScaleDir, system: str, reading: bool) -> Optional[tuple[str, Path]]:
    """(format, folder) of the orders table a system's workload reads or writes."""
    work = data.work_dir(system)
    if reading and system in FINAL_STATE_READERS:
        return "parquet", data.final_dir
    if system in PAIMON_SYSTEMS:
        return "paimon", work / "warehouse" / "bench.db" / "orders"
    return {
        "deltalake": ("delta", work / "orders"),
        "pyiceberg": ("iceberg", work),
        "parquet": ("parquet", work / "orders"),
    }.get(system)


def describe(data: ScaleDir, system: str, reading: bool) -> Optional[dict]:
    """The shape of the orders table a workload reads (or wrote); a failure
    to read the table's metadata is reported in `shape_error`."""
    found = orders_table(data, system, reading)
    if found is None:
        return None
    kind, folder = found
    try:
        shape = {"paimon": paimon_shape, "delta": delta_shape, "iceberg": iceberg_shape, "parquet": parquet_shape}[kind](
            folder
        )
    except Exception as e:  # the measurement stands without its shape
        shape = {"format": kind, "shape_error": f"{type(e).__name__}: {str(e)[:200]}"}
    return {"path": str(folder.relative_to(data.root)), **shape}


def read_avro(path: Path) -> list[dict]:
    import fastavro

    with path.open("rb") as f:
        return list(fastavro.reader(f))


def paimon_shape(table: Path) -> dict:
    """Live files of the latest snapshot (its base and delta manifest lists:
    files added minus files deleted) and the sorted runs of each bucket: a
    level-0 file is a run of its own, each higher level holding files is one."""
    numbered = re.compile(r"snapshot-(\d+)")
    ids = [int(m.group(1)) for p in (table / "snapshot").iterdir() if (m := numbered.fullmatch(p.name))]
    if not ids:
        return {"format": "paimon", "snapshot_id": None, "data_files": 0, "buckets_with_files": 0}
    snapshot = json.loads((table / "snapshot" / f"snapshot-{max(ids)}").read_text())
    live: dict[tuple, int] = {}  # (partition, bucket, file) -> level
    for manifest_list in (snapshot["baseManifestList"], snapshot["deltaManifestList"]):
        for manifest in read_avro(table / "manifest" / manifest_list):
            for entry in read_avro(table / "manifest" / manifest["_FILE_NAME"]):
                key = (entry["_PARTITION"], entry["_BUCKET"], entry["_FILE"]["_FILE_NAME"])
                if entry["_KIND"] == PAIMON_ADD:
                    live[key] = entry["_FILE"]["_LEVEL"]
                else:
                    live.pop(key, None)
    levels: dict[tuple, list[int]] = defaultdict(list)
    for (partition, bucket, _), level in live.items():
        levels[(partition, bucket)].append(level)
    runs = [sum(1 for lv in lvs if lv == 0) + len({lv for lv in lvs if lv > 0}) for lvs in levels.values()]
    files = [len(lvs) for lvs in levels.values()]
    return {
        "format": "paimon",
        "snapshot_id": max(ids),
        "data_files": len(live),
        "buckets_with_files": len(levels),
        "data_files_per_bucket_max": max(files, default=0),
        "sorted_runs_per_bucket_min": min(runs, default=0),
        "sorted_runs_per_bucket_mean": round(statistics.fmean(runs), 2) if runs else 0,
        "sorted_runs_per_bucket_max": max(runs, default=0),
    }


def delta_shape(table: Path) -> dict:
    """Live files of the latest version: the last checkpoint's adds, then the
    commits after it (adds minus removes)."""
    log = table / "_delta_log"
    live: dict[str, str] = {}  # file -> its partition folder
    first = 0
    pointer = log / "_last_checkpoint"
    if pointer.exists():
        checkpoint = json.loads(pointer.read_text())
        if checkpoint.get("parts"):
            raise ValueError("multi-part Delta checkpoints are not read")
        import pyarrow.parquet as pq

        adds = pq.read_table(log / f"{checkpoint['version']:020d}.checkpoint.parquet", columns=["add"])
        for add in adds.column("add").to_pylist():
            if add:
                live[add["path"]] = add["path"].rpartition("/")[0]
        first = checkpoint["version"] + 1
    versions = sorted(int(p.stem) for p in log.glob("*.json") if p.stem.isdigit() and int(p.stem) >= first)
    for version in versions:
        for line in (log / f"{version:020d}.json").read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            if "add" in action:
                live[action["add"]["path"]] = action["add"]["path"].rpartition("/")[0]
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    per_partition = defaultdict(int)
    for partition in live.values():
        per_partition[partition] += 1
    return {
        "format": "delta",
        "version": max(versions, default=first - 1),
        "data_files": len(live),
        "partitions": len(per_partition),
        "data_files_per_partition_max": max(per_partition.values(), default=0),
    }


def iceberg_shape(work: Path) -> dict:
    """The current snapshot's totals, from the metadata file the sqlite catalog points at."""
    with sqlite3.connect(work / "catalog.db") as catalog:
        row = catalog.execute(
            "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = 'bench' AND table_name = 'orders'"
        ).fetchone()
    if row is None:
        raise ValueError("the catalog has no bench.orders")
    metadata = json.loads(Path(row[0].removeprefix("file://")).read_text())
    current = metadata.get("current-snapshot-id")
    snapshot = next((s for s in metadata.get("snapshots", []) if s["snapshot-id"] == current), None)
    summary = snapshot["summary"] if snapshot else {}
    return {
        "format": "iceberg",
        "snapshot_id": current,
        "data_files": int(summary.get("total-data-files", 0)),
        "delete_files": int(summary.get("total-delete-files", 0)),
    }


def parquet_shape(folder: Path) -> dict:
    files = list(folder.rglob("*.parquet"))
    per_partition = defaultdict(int)
    for f in files:
        per_partition[f.parent] += 1
    return {
        "format": "parquet",
        "data_files": len(files),
        "partitions": len(per_partition),
        "data_files_per_partition_max": max(per_partition.values(), default=0),
    }
