"""Renders bench/RESULTS.md from the JSON lines of a run: a table per
workload, Tidelake against each peer as a ratio, the machine and the command.

    python report.py bench/data/<scale>/results/<stamp>.jsonl > RESULTS.md
"""

from __future__ import annotations

import datetime as dt_module
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

from common import SYSTEMS, Scale

SECTIONS = [
    ("Ingest", ["ingest"], "Rows written into an empty primary-key table (4 buckets, partitioned by day) and committed once."),
    ("Upsert", ["upsert"], "Updates to random existing keys plus 5% deletes, committed in batches; seconds add up the commits."),
    (
        "Scans after upserts (merge-on-read, no compaction)",
        ["scan_full", "scan_projection", "scan_filter"],
        "Full scan of every column with an aggregate; a 2-column projection (order_id, amount); "
        "a selective filter on one partition and 0.1% of the key range.",
    ),
    ("Point lookups by primary key", ["lookup"], "One query per key on the merge-on-read state; rows/s is lookups per second."),
    (
        "Full compaction, then the same scans",
        ["compact", "scan_full_compacted", "scan_projection_compacted", "scan_filter_compacted"],
        "Compaction rewrites the table into merged files; the plain-Parquet references rescan their (already compact) files.",
    ),
    ("TPC-H", ["tpch"], "The 22 queries over append tables; rows/s is lineitem rows per second of total query time."),
    (
        "Continuous job (filter + aggregate)",
        ["stream_job"],
        "`INSERT INTO per_k SELECT k, count(*), sum(v) FROM events WHERE v % 10 <> 0 GROUP BY k` running as a "
        "continuous job while a writer commits 10,000 changes per second to `events` in 10 commits per second; "
        "rows/s is the changes written per second, all of which the job applied; the delay runs from each source "
        "commit to the sink snapshot that holds its output.",
    ),
    (
        "Change data capture (`tidelake cdc`)",
        [f"cdc_{source}_{phase}" for source in ("postgres", "mariadb") for phase in ("snapshot", "stream", "large_txn")],
        "The release `tidelake cdc postgres|mysql` syncing a 10-column table of the local PostgreSQL and MariaDB: "
        "the initial sync (against the server's own client reading the table into /dev/null), changes streamed at "
        "a fixed rate (60% updates, 30% inserts, 10% deletes; delay from each source COMMIT to the Tidelake snapshot "
        "holding it), and one UPDATE of every row in a single transaction. The peers have no such command.",
    ),
]
PACKAGES = ["pypaimon", "pypaimon-rust", "deltalake", "pyiceberg", "duckdb", "pyarrow", "tpchgen-cli"]


def machine() -> dict:
    info = {"cores": None, "memory": None, "cpu": None}
    try:
        import os

        info["cores"] = os.cpu_count()
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory"] = f"{int(line.split()[1]) / 2**20:.1f} GiB"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = platform.python_version()
    return info


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def human_rate(value) -> str:
    if value is None:
        return "—"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.1f}"


def human_bytes(value) -> str:
    if not value:
        return "—"
    return f"{value / 2**20:.0f} MiB"


def ratio(tidelake: dict | None, peer: dict) -> str:
    """Tidelake's speed over the peer's: above 1 means Tidelake is faster."""
    usable = ("ok", "timeout")
    if not tidelake or tidelake.get("status") not in usable or peer.get("status") not in usable:
        return "—"
    a, b = tidelake.get("rows_per_s"), peer.get("rows_per_s")
    if not a or not b:
        return "—"
    partial = " (partial)" if "timeout" in (tidelake.get("status"), peer.get("status")) else ""
    return f"{a / b:.2f}×{partial}"


def shape_note(shape: dict, verb: str) -> str:
    """What the table a measurement read (or left) held, from its JSON line."""
    if "shape_error" in shape:
        return f"{verb} a table of unknown shape ({shape['shape_error'][:80]})".replace("|", "/")
    note = f"{verb} {shape.get('data_files', 0):,} files"
    if "sorted_runs_per_bucket_max" in shape:
        runs = shape["sorted_runs_per_bucket_max"]
        note += f", up to {runs} sorted run{'' if runs == 1 else 's'} per bucket"
    if shape.get("delete_files"):
        note += f", {shape['delete_files']:,} delete files"
    return note


def details(r: dict) -> str:
    parts = []
    if "p50_ms" in r:
        parts.append(f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    if "ratio_to_copy" in r:
        parts.append(
            f"{r['ratio_to_copy']:.2f}× the server's client reading the table into /dev/null "
            f"({human_rate(r.get('reference_rows_per_s'))} rows/s)"
        )
    if "delay_p99_ms" in r and "transactions" in r:
        parts.append(
            f"source-commit-to-visible p50 {r['delay_p50_ms']:.0f} ms, p99 {r['delay_p99_ms']:.0f} ms, "
            f"max {r['delay_max_ms']:.0f} ms (p50 {r['delay_p50_first_third_ms']:.0f} ms in the first third of "
            f"the run, {r['delay_p50_last_third_ms']:.0f} ms in the last); {r['transactions']:,} source transactions"
        )
    elif "delay_p99_ms" in r:
        parts.append(
            f"source-to-sink delay p50 {r['delay_p50_ms']:.0f} ms, p99 {r['delay_p99_ms']:.0f} ms, "
            f"max {r['delay_max_ms']:.0f} ms; {r.get('sink_commits')} sink commits for {r.get('source_commits')} source commits"
        )
    if "load_seconds" in r:
        parts.append(f"load {r['load_seconds']:.1f} s")
    for key, verb in (("table_read", "read"), ("table_written", "left")):
        if r.get(key):
            parts.append(shape_note(r[key], verb))
    if r.get("table_bytes"):
        parts.append(f"on disk {human_bytes(r['table_bytes'])}")
    if "rss_max_bytes" in r:
        parts.append(f"RSS at most {human_bytes(r['rss_max_bytes'])} while it was applied; seconds from COMMIT to visible")
    if str(r.get("check", "")).startswith("mismatch:"):
        parts.append(f"**wrong result**: {r['check']}".replace("|", "/"))
    elif r.get("check") == "mismatch":
        parts.append(f"**wrong result**: {json.dumps(r.get('check_diff'))[:200]}")
    elif r.get("check") == "ok":
        parts.append("result checked")
    if r.get("status") in ("incomplete", "timeout"):
        parts.append(f"{r['status']}: " + str(r.get("reason", "")).replace("|", "/"))
    return "; ".join(parts)


def table_for(workload: str, records: list[dict]) -> list[str]:
    by_system = {r["system"]: r for r in records if r.get("workload") == workload}
    if not by_system:
        return []
    lines = [
        f"**{workload}**",
        "",
        "| system | rows | seconds | rows/s | peak RSS | Tidelake ÷ system | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    tidelake = by_system.get("tidelake")
    for system in SYSTEMS:
        r = by_system.get(system)
        if r is None:
            continue
        if r.get("status") in ("ok", "incomplete") or (r.get("status") == "timeout" and r.get("rows")):
            lines.append(
                f"| {system} | {r['rows']:,} | {r['seconds']:.3f} | {human_rate(r.get('rows_per_s'))} | "
                f"{human_bytes(r.get('peak_rss_bytes'))} | {ratio(tidelake, r) if system != 'tidelake' else ''} | {details(r)} |"
            )
        else:
            reason = str(r.get("reason", "")).replace("|", "/")
            lines.append(f"| {system} | | | | | | {r.get('status')}: {reason} |")
    lines.append("")
    return lines


def tpch_queries_table(records: list[dict]) -> list[str]:
    runs = [r for r in records if r.get("workload") == "tpch" and r.get("queries")]
    if not runs:
        return []
    names = sorted({q for r in runs for q in r["queries"]} | {q for r in runs for q in r.get("errors", {})})
    header = "| query | " + " | ".join(r["system"] for r in runs) + " |"
    lines = ["Seconds per query:", "", header, "| --- |" + " ---: |" * len(runs)]
    for q in names:
        cells = []
        for r in runs:
            if q in r["queries"]:
                cells.append(f"{r['queries'][q]:.3f}")
            elif q in r.get("errors", {}):
                cells.append("failed")
            else:
                cells.append("—")
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def summary_table(records: list[dict]) -> list[str]:
    """One line per measurement, one column per peer: Tidelake's speed over theirs."""
    workloads = [w for _, names, _ in SECTIONS for w in names]
    peers = [s for s in SYSTEMS if s != "tidelake" and any(r["system"] == s for r in records)]
    lines = [
        "## Summary: Tidelake ÷ peer (rows/s; above 1 Tidelake is faster)",
        "",
        "| measurement | " + " | ".join(peers) + " |",
        "| --- |" + " ---: |" * len(peers),
    ]
    found = False
    for w in workloads:
        by_system = {r["system"]: r for r in records if r.get("workload") == w}
        if not by_system:
            continue
        found = True
        cells = []
        for p in peers:
            r = by_system.get(p)
            cells.append("n/a" if r is None or r.get("status") == "n/a" else ratio(by_system.get("tidelake"), r))
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return lines + [""] if found else []


def render(records: list[dict], scale: Scale, command: str, elapsed: float) -> str:
    m = machine()
    v = versions()
    out = [
        "# Benchmark results",
        "",
        f"Made by `{command}` on {dt_module.date.today().isoformat()} in {elapsed / 60:.1f} minutes "
        "(see [bench/README.md](README.md) for what is measured and how).",
        "",
        f"- Machine: {m['cores']} cores, {m['memory']} of memory, CPU `{m['cpu']}`, {m['os']}, Python {m['python']}.",
        "- Peers: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"- Scale `{scale.name}`: {scale.rows:,} ingest rows in {scale.days} daily partitions; "
        f"{scale.upserts:,} updates + {scale.delete_fraction:.0%} deletes in {scale.commits} commits; "
        f"{scale.lookups:,} lookups; TPC-H SF {scale.tpch_sf:g}. Seed {scale.seed}.",
        "- Input is decoded from the generator's Parquet files before each clock starts, for every system alike. "
        "Each (workload, system) ran in its own process; peak RSS is that process's.",
        "- `Tidelake ÷ system` is Tidelake's rows/s over the system's: above 1 Tidelake is faster.",
        "",
    ]
    out += summary_table(records)
    for title, workloads, blurb in SECTIONS:
        body = [line for w in workloads for line in table_for(w, records)]
        if not body:
            continue
        out += [f"## {title}", "", blurb, ""] + body
        if "tpch" in workloads:
            out += tpch_queries_table(records)
    return "\n".join(out) + "\n"


def main() -> int:
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    records = [json.loads(line) for p in sys.argv[1:] for line in Path(p).read_text().splitlines() if line.strip()]
    scale_name = records[0].get("scale", "") if records else ""
    expected = Path(__file__).resolve().parent / "data" / scale_name / "expected.json"
    scale = Scale.from_json(json.loads(expected.read_text())["scale"])
    sys.stdout.write(render(records, scale, "bench/report.py " + " ".join(sys.argv[1:]), 0.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
