"""The state of each system's orders table, so that every measurement reads
the state it claims to: which workloads built the table in
`bench/data/<scale>/work/<system>/`, a saved copy of a state that one
workload changes while others still read it, and the plan that brings the
table to the state a workload reads.

Compaction changes the table in place: after a full run the table is
compacted, and a later `--only scan` must not scan that as the merge-on-read
state. The driver therefore saves the merge-on-read table before `compact`
runs and restores it for any workload that reads it afterwards.

The saved copy hard-links the Parquet data files (every table format here
writes a data file once and never changes it in place; a format's cleanup
unlinks it, which leaves the other link) and copies everything else
(snapshots, logs, hints, the sqlite catalog), so saving and restoring cost
little time and disk.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

from common import ScaleDir

# The state of the orders table each workload reads: the workloads that built
# it, in order. Ingest starts from nothing; TPC-H and the continuous job make
# tables of their own.
READS: dict[str, tuple[str, ...]] = {
    "upsert": ("ingest",),
    "scan": ("ingest", "upsert"),
    "lookup": ("ingest", "upsert"),
    "serve": ("ingest", "upsert"),
    "compact": ("ingest", "upsert"),
    "scan_compacted": ("ingest", "upsert", "compact"),
}
# Workloads that change the orders table; each leaves the state it read plus itself.
CHANGES = ("ingest", "upsert", "compact")
# Where a system's work folder records its table's state; absent means unknown
# (nothing built yet, or a workload that changes the table did not finish).
LEDGER = "table-state.json"
# The ledger of earlier versions of the suite, which did not notice compaction.
OLD_LEDGER = "stages.json"
# Folders of work/<system>/ that are not the orders table: the tables the
# workloads of the same names make for themselves.
OWN_TABLES = {"tpch", "stream_job", "doctor"}

State = tuple[str, ...]


def state_name(state: State) -> str:
    return "+".join(state)


def state_after(workload: str) -> State:
    """The state a workload that changes the table leaves behind."""
    return READS.get(workload, ()) + (workload,)


def read_ledger(folder: Path) -> Optional[State]:
    try:
        return tuple(json.loads((folder / LEDGER).read_text())["stages"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_ledger(folder: Path, state: Optional[State]) -> None:
    path = folder / LEDGER
    if state is None:
        path.unlink(missing_ok=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stages": list(state)}))


def live_state(data: ScaleDir, system: str) -> Optional[State]:
    return read_ledger(data.work_dir(system))


def saved_states(data: ScaleDir, system: str) -> dict[State, Path]:
    """The saved copies of a system's table, by state. A copy whose ledger is
    missing was not finished and does not count."""
    out = {}
    root = data.saved_dir(system)
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        state = read_ledger(folder)
        if state is not None:
            out[state] = folder
    return out


def plan(needed: State, live: Optional[State], saved: set[State]) -> tuple[Optional[State], list[str]]:
    """How to bring the table to `needed`: the saved state to restore first
    (or None to build on the live table) and the workloads to run after it.
    It starts from the longest beginning of `needed` that the live table or a
    saved copy already holds; from nothing, the list starts with ingest."""
    for length in range(len(needed), 0, -1):
        start = needed[:length]
        if live == start:
            return None, list(needed[length:])
        if start in saved:
            return start, list(needed[length:])
    return None, list(needed)


def orders_entries(folder: Path) -> list[Path]:
    """What in a work or saved folder belongs to the orders table."""
    if not folder.is_dir():
        return []
    skip = OWN_TABLES | {LEDGER, OLD_LEDGER}
    return [p for p in sorted(folder.iterdir()) if p.name not in skip]


def link_or_copy(src: str, dst: str) -> None:
    if src.endswith(".parquet"):
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or no hard links: copy it
    shutil.copy2(src, dst)


def copy_orders_table(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for entry in orders_entries(src):
        if entry.is_dir():
            shutil.copytree(entry, dst / entry.name, copy_function=link_or_copy)
        else:
            link_or_copy(str(entry), str(dst / entry.name))


def remove_orders_table(folder: Path) -> None:
    for entry in orders_entries(folder):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def save(data: ScaleDir, system: str, state: State) -> Path:
    """Copies the live table, which holds `state`; the ledger goes last, so a
    copy cut short is never taken for a state."""
    target = data.saved_dir(system) / state_name(state)
    if target.exists():
        shutil.rmtree(target)
    copy_orders_table(data.work_dir(system), target)
    write_ledger(target, state)
    return target


def restore(data: ScaleDir, system: str, state: State) -> None:
    """Replaces the live table with the saved copy of `state`."""
    source = saved_states(data, system)[state]
    work = data.work_dir(system)
    write_ledger(work, None)
    remove_orders_table(work)
    copy_orders_table(source, work)
    write_ledger(work, state)


def before_change(data: ScaleDir, system: str, workload: str) -> Optional[Path]:
    """Called before a workload changes the table. Copies made by an earlier
    run of this workload are dropped (they no longer describe what this run
    builds on); the live state is saved when another workload reads it; the
    live ledger is cleared until the workload finishes. Returns the copy made."""
    for state, folder in saved_states(data, system).items():
        if workload in state:
            shutil.rmtree(folder)
    live = live_state(data, system)
    others_read_it = any(w != workload and s == live for w, s in READS.items())
    copy = None
    if live is not None and live == READS.get(workload) and others_read_it and live not in saved_states(data, system):
        copy = save(data, system, live)
    work = data.work_dir(system)
    write_ledger(work, None)
    (work / OLD_LEDGER).unlink(missing_ok=True)
    return copy


def after_change(data: ScaleDir, system: str, workload: str) -> None:
    """Called when a workload that changes the table finished."""
    write_ledger(data.work_dir(system), state_after(workload))
