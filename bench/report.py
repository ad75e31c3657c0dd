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

from common import SYSTEMS, VECTOR_SYSTEMS, Scale

SERVE_MEASUREMENTS = ["serve_lookup", "serve_mixed", "serve_idle", "serve_analytic"]
SERVE_SYSTEMS = ["tidelake", "postgres", "duckdb"]
# The goal for point lookups over the wire (16 clients).
SERVE_LOOKUP_GOAL = {"rows_per_s": 5000, "p99_ms": 10}
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
        "Server (`tidelake serve` over the PostgreSQL wire)",
        SERVE_MEASUREMENTS,
        "A query-only `tidelake serve` over the merge-on-read orders table of the upsert workload, against "
        "PostgreSQL on this machine holding the same rows (primary key `(dt, order_id)`), both driven by the same "
        "client, `pgbench` with custom scripts; DuckDB in-process over the generator's Parquet files for the "
        "analytic query. `lookup`: point lookups by the full primary key (keys drawn from the live rows); `mixed`: "
        "80% lookups and 20% `SELECT status, count(*), sum(amount) FROM orders WHERE dt = $1 GROUP BY status`; "
        "`idle`: connections through their startup, then held open; `analytic`: that aggregate alone, one client. "
        "Latencies come from pgbench's per-transaction log; each run follows an unmeasured warm-up. Client and "
        "servers share this machine's cores. `Tidelake ÷ peer`: throughput (above 1 Tidelake is faster) and p99 "
        "(below 1 Tidelake is faster); for idle connections, memory per connection (below 1 Tidelake uses less).",
    ),
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
    (
        "Workers (`tidelake serve` sharing continuous jobs)",
        [f"workers_scale_{n}" for n in (1, 2, 3)] + ["workers_takeover", "workers_cold_start", "workers_idle_rss"],
        "Ten filter/aggregate jobs (one source table each) declared with `CREATE JOB`, run by 1, 2 and 3 release "
        "`tidelake serve` workers on one local warehouse while a writer commits 1,000 changes/s to each source "
        "over the PostgreSQL wire; a SIGKILL of the busiest of two workers; a cold start; an idle worker. All "
        "processes share this machine's 2 cores, so more workers add no CPU here. The peers have no job service.",
    ),
    (
        "Operations doctor",
        ["doctor"],
        "`doctor` over a warehouse of 100 append tables (10 buckets, 10 commits each: 10,000 files and 1,000 "
        "snapshots); seconds are the whole run (goal: under 2 s), rows are live files, rows/s files per second. "
        "Then five faults, each injected into a table of its own: the milliseconds from the end of the injection "
        "until `doctor` on that table reports the fault's rule, and one more run over the whole warehouse, which "
        "must report all five.",
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
    if r.get("workload") == "doctor" and "tables" in r:
        parts.append(f"{r['tables']} tables, {r.get('files', 0):,} files, {r.get('snapshots', 0):,} snapshots, {r.get('findings', 0)} findings")
        detection = dict(r.get("detection_ms") or {})
        whole = detection.pop("warehouse_run_s", None)
        missed = detection.pop("warehouse_run_missed", None)
        if detection:
            parts.append(
                "injection to report: "
                + ", ".join(f"{rule} {ms:.0f} ms" if isinstance(ms, (int, float)) else f"{rule} {ms}" for rule, ms in detection.items())
            )
        if whole is not None:
            note = f"whole warehouse with the faults: {whole:.3f} s"
            note += f", **missed {', '.join(missed)}**" if missed else ", all reported"
            parts.append(note)
    if "lag_p50_snapshots" in r:
        parts.append(
            f"{r['workers']} worker(s), {r['jobs']} jobs at {r['rate_per_job']:,} changes/s each: lag p50 "
            f"{r['lag_p50_snapshots']} max {r['lag_max_snapshots']} source snapshots in the last third "
            f"(p50 {r['lag_first_third_p50']} in the first), drained {r['drain_seconds']:.1f} s after the writers stopped"
        )
    if "caught_up_seconds" in r:
        parts.append(
            f"seconds from the SIGKILL until the victim's {r['jobs_moved']} jobs ran on the survivor (lease TTL "
            f"{r['lease_ttl']}); their lag back to its level before the kill after {r['caught_up_seconds']} s"
        )
    if "job_seconds" in r:
        parts.append(f"seconds from the spawn to a query's result; a new worker's first job commit after {r['job_seconds']:.2f} s")
    if r.get("workload") == "workers_idle_rss" and "rss_bytes" in r:
        parts.append(f"RSS {human_bytes(r['rss_bytes'])} after 5 s with nothing to do")
    if "writer_errors" in r and r["writer_errors"]:
        parts.append("writer errors: " + "; ".join(r["writer_errors"]).replace("|", "/"))
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
    workloads = [w for _, names, _ in SECTIONS for w in names if w not in SERVE_MEASUREMENTS]
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


def human_kib(value) -> str:
    return "—" if value is None else f"{value / 1024:,.0f} KiB"


def times(x: float) -> str:
    """A ratio, with enough digits to tell small ones apart (0.0025×, not 0.00×)."""
    return f"{x:.2f}×" if x >= 0.1 else f"{x:.2g}×"


def serve_ratio(tidelake: dict | None, peer: dict) -> str:
    """Tidelake against a peer in the same serve measurement: throughput and
    p99 latency, or memory per idle connection."""
    if not tidelake or tidelake.get("status") != "ok" or peer.get("status") != "ok":
        return "—"
    if tidelake.get("workload") == "serve_idle":
        a, b = tidelake.get("bytes_per_connection"), peer.get("bytes_per_connection")
        return f"memory {times(a / b)}" if a and b and a > 0 and b > 0 else "—"
    parts = []
    a, b = tidelake.get("rows_per_s"), peer.get("rows_per_s")
    if a and b:
        parts.append(times(a / b))
    a, b = tidelake.get("p99_ms"), peer.get("p99_ms")
    if a and b:
        parts.append(f"p99 {times(a / b)}")
    return ", ".join(parts) or "—"


def serve_notes(r: dict) -> str:
    parts = []
    workload = r.get("workload")
    if workload == "serve_lookup" and r.get("system") == "tidelake" and "p99_ms" in r:
        goal = SERVE_LOOKUP_GOAL
        met = (r.get("rows_per_s") or 0) >= goal["rows_per_s"] and r["p99_ms"] <= goal["p99_ms"]
        parts.append(f"goal ≥ {goal['rows_per_s']:,}/s and p99 ≤ {goal['p99_ms']} ms: {'met' if met else '**not met**'}")
    for kind in ("lookup", "aggregate"):
        if f"{kind}_p99_ms" in r and workload == "serve_mixed":
            parts.append(f"{r.get(kind + 's', 0):,} {kind}s: p50 {r[kind + '_p50_ms']:.2f} ms, p99 {r[kind + '_p99_ms']:.2f} ms")
    if workload == "serve_idle":
        if "rss_after_bytes" in r:
            parts.append(f"VmRSS {human_bytes(r['rss_before_bytes'])} before, {human_bytes(r['rss_after_bytes'])} with them open")
        if "pss_sum_bytes" in r:
            parts.append(
                f"the new backends' PSS {human_bytes(r['pss_sum_bytes'])} (RSS {human_bytes(r.get('rss_sum_bytes'))}), "
                f"{r.get('backends_measured', 0):,} backends measured"
            )
        parts.append(f"opened in {r['seconds']:.1f} s")
        if r.get("server"):
            parts.append(f"PostgreSQL: {r['server']}")
    if r.get("aborted_clients"):
        parts.append(f"{r['aborted_clients']} client(s) aborted")
    if r.get("first_error"):
        parts.append(f"first error: {r['first_error']}")
    if r.get("protocol"):
        parts.append(f"pgbench -M {r['protocol']}" if r["protocol"] in ("prepared", "extended", "simple") else r["protocol"])
    if r.get("table_read"):
        parts.append(shape_note(r["table_read"], "read"))
    if r.get("pg_load_seconds") and r.get("system") == "postgres":
        parts.append(f"rows loaded in {r['pg_load_seconds']:.1f} s (not timed)")
    if str(r.get("check", "")).startswith("mismatch"):
        parts.append(f"**wrong result**: {r['check']}")
    elif r.get("check") == "ok":
        parts.append("result checked against the peer")
    return "; ".join(parts).replace("|", "/")


def serve_table(records: list[dict]) -> list[str]:
    rows = [r for r in records if r.get("workload") in SERVE_MEASUREMENTS]
    if not rows:
        return []
    lines = [
        "| measurement | system | clients | ops/s | p50 ms | p99 ms | errors | memory | Tidelake ÷ peer | notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for workload in SERVE_MEASUREMENTS:
        by_system = {r["system"]: r for r in rows if r["workload"] == workload}
        tidelake = by_system.get("tidelake")
        for system in SERVE_SYSTEMS + sorted(set(by_system) - set(SERVE_SYSTEMS)):
            r = by_system.get(system)
            if r is None:
                continue
            name = workload.removeprefix("serve_")
            if r.get("status") != "ok":
                reason = str(r.get("reason", "")).replace("|", "/")
                lines.append(f"| {name} | {system} | | | | | | | | {r.get('status')}: {reason} |")
                continue
            if workload == "serve_idle":
                memory = f"{human_kib(r.get('bytes_per_connection'))} / connection"
                clients, rate = f"{r.get('connections', r['rows']):,}", "—"
            else:
                peak = r.get("peak_rss_bytes") or r.get("peak_pss_bytes")
                memory = human_bytes(peak) + (" PSS" if "peak_pss_bytes" in r and "peak_rss_bytes" not in r else "")
                clients, rate = str(r.get("clients", "")), human_rate(r.get("rows_per_s"))
            p50 = f"{r['p50_ms']:.2f}" if "p50_ms" in r else "—"
            p99 = f"{r['p99_ms']:.2f}" if "p99_ms" in r else "—"
            errors = str(r.get("errors", "—"))
            versus = "" if system == "tidelake" else serve_ratio(tidelake, r)
            lines.append(
                f"| {name} | {system} | {clients} | {rate} | {p50} | {p99} | {errors} | {memory} | {versus} | {serve_notes(r)} |"
            )
    lines += [
        "",
        "Memory: Tidelake's peak RSS (VmHWM) of the server process; PostgreSQL's largest sum of the PSS of its "
        "postmaster and every backend, sampled twice a second; DuckDB's process peak RSS. Idle connections: "
        "Tidelake's VmRSS growth per connection; PostgreSQL's PSS of the new backends per connection.",
        "",
    ]
    return lines


VECTOR_BEGIN = "<!-- vector:begin -->"
VECTOR_END = "<!-- vector:end -->"
VECTOR_PACKAGES = ["faiss-cpu", "lancedb", "numpy"]
RECALL_TARGETS = (0.90, 0.95, 0.99)


def vector_records(records: list[dict], workload: str, system: str | None = None) -> list[dict]:
    return [
        r
        for r in records
        if r.get("workload") == workload and r.get("status") == "ok" and (system is None or r.get("system") == system)
    ]


def qps_at_recall(records: list[dict], system: str, target: float) -> dict | None:
    """The fastest point of a system's recall/QPS curve whose recall@10 reached the target."""
    good = [r for r in vector_records(records, "vector_search", system) if r.get("recall_at_10", 0) >= target]
    return max(good, key=lambda r: r.get("rows_per_s") or 0) if good else None


def qps_ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def render_vector(records: list[dict], vscale, command: str, elapsed: float) -> str:
    """The vector workload's section of RESULTS.md, between markers so that a
    vector-only run can replace it alone (splice_vector)."""
    m = machine()
    v = {}
    for name in VECTOR_PACKAGES:
        try:
            v[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            v[name] = "not installed"
    systems = [s for s in VECTOR_SYSTEMS if any(r.get("system") == s and str(r.get("workload", "")).startswith("vector") for r in records)]
    peers = [s for s in systems if s != "tidelake"]
    out = [
        VECTOR_BEGIN,
        "## Vector search",
        "",
        f"Made by `{command}` on {dt_module.date.today().isoformat()} in {elapsed / 60:.1f} minutes; "
        f"{m['cores']} cores, {m['memory']} of memory, CPU `{m['cpu']}`, {m['os']}, Python {m['python']}; "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + ".",
        "",
        f"- Data: {vscale.rows:,} × {vscale.dim} float32 vectors, L2; a Gaussian mixture of {vscale.clusters} clusters "
        f"in {vscale.intrinsic_dim} intrinsic dimensions projected to {vscale.dim}, plus noise; {vscale.queries:,} queries "
        f"drawn from the same mixture; exact top-100 ground truth by brute force (float64). Seed {vscale.seed}.",
        f"- Every IVF index has nlist = {vscale.nlist}. Queries run one at a time on one thread (faiss: "
        "`omp_set_num_threads(1)`; Tidelake: the index library's scans in a one-thread pool; LanceDB: its own runtime, "
        "one query at a time). Builds use every core.",
        "- `QPS @ recall ≥ x` is the fastest point of the system's curve whose recall@10 reached x; "
        "`Tidelake ÷ system` divides Tidelake's by the system's (above 1 Tidelake is faster at equal recall).",
        "- Filtered and churn searches run at each system's operating point: its fastest width with recall@10 ≥ 0.95 "
        "(or its most accurate).",
        "",
    ]
    header = "| system | index | build s | load s | peak RSS | " + " | ".join(f"QPS @ recall ≥ {t:.2f}" for t in RECALL_TARGETS)
    out += [header + " | Tidelake ÷ system @ 0.95 |", "| --- | --- | ---: | ---: | ---: |" + " ---: |" * (len(RECALL_TARGETS) + 1)]
    tidelake_95 = qps_at_recall(records, "tidelake", 0.95)
    for system in systems:
        build = next(iter(vector_records(records, "vector_build", system)), None)
        cells = []
        for t in RECALL_TARGETS:
            p = qps_at_recall(records, system, t)
            cells.append(f"{human_rate(p['rows_per_s'])} ({p.get('width_name')}={p.get('width')})" if p else "not reached")
        mine = qps_at_recall(records, system, 0.95)
        ratio_cell = "" if system == "tidelake" else qps_ratio(tidelake_95 and tidelake_95["rows_per_s"], mine and mine["rows_per_s"])
        if build is None:
            out.append(f"| {system} | | | | | " + " | ".join(cells) + f" | {ratio_cell} |")
            continue
        out.append(
            f"| {system} | {build.get('index', '')} | {build['seconds']:.1f} | {build.get('load_seconds', 0):.1f} | "
            f"{human_bytes(build.get('peak_rss_bytes'))} | " + " | ".join(cells) + f" | {ratio_cell} |"
        )
    out += ["", "Peak RSS is the process's high-water mark after the build. faiss and LanceDB build from the input vectors, which their processes hold; Tidelake's bench writes its table from them a chunk at a time and its build reads the vectors from the table, so its figure holds no input arrays.", ""]

    out += ["### Recall/QPS curve", "", "| system | width | recall@10 | QPS |", "| --- | --- | ---: | ---: |"]
    for system in systems:
        for r in vector_records(records, "vector_search", system):
            out.append(f"| {system} | {r.get('width_name')}={r.get('width')} | {r['recall_at_10']:.4f} | {human_rate(r['rows_per_s'])} |")
    out.append("")

    filtered = vector_records(records, "vector_filter")
    if filtered:
        out += [
            "### Filtered search",
            "",
            "A predicate on another column (`cat < n`) selects the share of rows given; every system applies it "
            "before or during the search (faiss: an ID-selector bitmap built once per selectivity; Tidelake and "
            "LanceDB: the predicate evaluated on the table at every query).",
            "",
            "| selectivity | system | width | recall@10 | QPS | Tidelake ÷ system |",
            "| ---: | --- | --- | ---: | ---: | ---: |",
        ]
        for sel in sorted({r["selectivity"] for r in filtered}, reverse=True):
            by = {r["system"]: r for r in filtered if r["selectivity"] == sel}
            mine = by.get("tidelake")
            for system in systems:
                r = by.get(system)
                if r is None:
                    continue
                ratio_cell = "" if system == "tidelake" else qps_ratio(mine and mine["rows_per_s"], r["rows_per_s"])
                out.append(
                    f"| {sel:.1%} | {system} | {r.get('width_name')}={r.get('width')} | {r['recall_at_10']:.4f} | "
                    f"{human_rate(r['rows_per_s'])} | {ratio_cell} |"
                )
        out.append("")

    churn = [r for r in records if r.get("workload") == "vector_churn"]
    if churn:
        out += [
            "### After upserts and deletes",
            "",
            "10% of the rows get a new vector and another 5% are deleted through each system's own write path "
            "(Tidelake: one commit on the primary-key table; faiss IVF: `remove_ids` + `add_with_ids`; LanceDB: "
            "`merge_insert` + `delete`). Recall is against the table's new contents; a stale row is a deleted row, "
            "or a row returned with the distance of an old version of its vector.",
            "",
            "| system | upserted | deleted | write s | recall@10 | stale rows returned | QPS | Tidelake ÷ system | notes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        mine = next((r for r in churn if r["system"] == "tidelake" and r.get("status") == "ok"), None)
        for system in systems:
            r = next((r for r in churn if r["system"] == system), None)
            if r is None:
                continue
            if r.get("status") != "ok":
                out.append(f"| {system} | | | | | | | | {r.get('status')}: {str(r.get('reason', '')).replace('|', '/')} |")
                continue
            notes = []
            if "exact_rows_per_query" in r:
                notes.append(f"{r['exact_rows_per_query']:,.0f} rows measured exactly per query")
            ratio_cell = "" if system == "tidelake" else qps_ratio(mine and mine["rows_per_s"], r["rows_per_s"])
            out.append(
                f"| {system} | {r['upserted']:,} | {r['deleted']:,} | {r['write_seconds']:.1f} | {r['recall_at_10']:.4f} | "
                f"{r['stale_rows']} | {human_rate(r['rows_per_s'])} | {ratio_cell} | {'; '.join(notes)} |"
            )
        out.append("")

    failed = [r for r in records if str(r.get("workload", "")).startswith("vector") and r.get("status") not in ("ok", "n/a")]
    if failed:
        out += ["Failures:", ""]
        out += [f"- {r['system']} {r['workload']}: {r.get('status')}: {str(r.get('reason', ''))[:300]}" for r in failed]
        out.append("")
    out.append(VECTOR_END)
    return "\n".join(out) + "\n"


def splice_vector(existing: str, section: str) -> str:
    """`existing` with its vector section replaced by `section` (appended if it has none)."""
    start, end = existing.find(VECTOR_BEGIN), existing.find(VECTOR_END)
    if start >= 0 and end > start:
        return existing[:start] + section.rstrip("\n") + existing[end + len(VECTOR_END) :]
    return existing.rstrip("\n") + "\n\n" + section


def render(records: list[dict], scale: Scale, command: str, elapsed: float, vscale=None) -> str:
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
        if workloads is SERVE_MEASUREMENTS:
            body = serve_table(records)
        else:
            body = [line for w in workloads for line in table_for(w, records)]
        if not body:
            continue
        out += [f"## {title}", "", blurb, ""] + body
        if "tpch" in workloads:
            out += tpch_queries_table(records)
    text = "\n".join(out) + "\n"
    if vscale is not None and any(str(r.get("workload", "")).startswith("vector") for r in records):
        text += "\n" + render_vector(records, vscale, command, elapsed)
    return text


def main() -> int:
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    records = [json.loads(line) for p in sys.argv[1:] for line in Path(p).read_text().splitlines() if line.strip()]
    command = "bench/report.py " + " ".join(sys.argv[1:])
    data = Path(__file__).resolve().parent / "data"
    vector = [r for r in records if str(r.get("workload", "")).startswith("vector")]
    others = [r for r in records if r not in vector]
    vscale = None
    if vector:
        from vector_data import VectorDir

        vscale = VectorDir(data / "vector" / vector[0].get("scale", "")).scale()
    if not others:
        sys.stdout.write(render_vector(vector, vscale, command, 0.0))
        return 0
    expected = data / others[0].get("scale", "") / "expected.json"
    scale = Scale.from_json(json.loads(expected.read_text())["scale"])
    sys.stdout.write(render(records, scale, command, 0.0, vscale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
