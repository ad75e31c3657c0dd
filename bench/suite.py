"""The benchmark driver behind `bench/run`: generates the input, runs every
(workload, system) pair in its own process with a timeout, collects the JSON
lines, and (on a full run) writes bench/RESULTS.md.

    python suite.py [--preset quick] [--only scan] [--systems tidelake,duckdb] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt_module
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import table_shape
import table_state
from common import BENCH_DIR, DATA_ROOT, LOOKUP_BUDGET_ENV, SYSTEMS, TPCH_QUERY_DIR, VECTOR_SYSTEMS, ScaleDir
from gen_data import add_scale_arguments, scale_from_args
from vector_data import VectorDir, add_vector_arguments, vector_dir, vector_scale_from_args

# Workloads as the driver runs them; `compact` brings its scans along.
# `stream_job`, `cdc`, `workers` and `doctor` are Tidelake's alone (peers report n/a);
# `serve` measures its own peers (PostgreSQL, DuckDB) in Tidelake's process.
RUN_ORDER = [
    "ingest", "upsert", "scan", "lookup", "serve", "compact", "scan_compacted", "tpch", "stream_job", "cdc", "workers", "vector",
    "doctor",
]
MEASUREMENTS = {
    "scan": ["scan_full", "scan_projection", "scan_filter"],
    "scan_compacted": ["scan_full_compacted", "scan_projection_compacted", "scan_filter_compacted"],
    "cdc": [f"cdc_{source}_{phase}" for source in ("postgres", "mariadb") for phase in ("snapshot", "stream", "large_txn")],
    "vector": ["vector_build", "vector_search", "vector_filter", "vector_churn"],
    "workers": [f"workers_scale_{n}" for n in (1, 2, 3)]
    + ["workers_takeover", "workers_cold_start", "workers_idle_rss"],
    "serve": ["serve_lookup", "serve_mixed", "serve_idle", "serve_analytic"],
}
# Seconds per (workload, system) process. A full run stays near 30 minutes on
# 2 cores only because the slowest peers' upserts are cut short: the record
# then says how many commits finished and at what speed.
DEFAULT_TIMEOUT = {
    "full": {"ingest": 600, "upsert": 300, "tpch": 600, "cdc": 900, "vector": 900, "workers": 900, "serve": 900, "*": 300},
    "issue": {
        "ingest": 900, "upsert": 600, "tpch": 600, "cdc": 1800, "vector": 900, "workers": 1200, "serve": 1500, "*": 600,
    },
    "quick": {"vector": 300, "workers": 400, "serve": 400, "*": 180},
    "tiny": {"serve": 240, "*": 120},
}
# Seconds of point lookups per system (all keys, or fewer when the budget runs out).
LOOKUP_BUDGET = {"full": 60, "issue": 120, "quick": 30, "tiny": 30}
# The continuous job: the 10,000 changes per second in 10 source
# commits per second, for this many seconds of writing.
STREAM_JOB_RATE = 10_000
STREAM_JOB_SECONDS = {"full": 60, "issue": 60, "quick": 15, "tiny": 5}
# The cdc workload (bench/cdc.py, PostgreSQL then MariaDB): rows of the initial sync,
# changes per second and seconds of streaming. The sizes are 1 M rows
# and 10,000 changes/s for 120 s; the default takes a few minutes on 2 cores.
CDC_SIZES = {
    "full": {"rows": 200_000, "rate": 2_000, "seconds": 60},
    "issue": {"rows": 1_000_000, "rate": 10_000, "seconds": 120},
    "quick": {"rows": 100_000, "rate": 1_000, "seconds": 20},
    "tiny": {"rows": 20_000, "rate": 500, "seconds": 5},
}
# The workers workload (bench/workers.py): jobs (one source table each),
# changes per second per source and seconds per configuration (the issue's:
# ten jobs at 1,000 changes/s each).
WORKERS_SIZES = {
    "full": {"jobs": 10, "rate": 1_000, "seconds": 30},
    "issue": {"jobs": 10, "rate": 1_000, "seconds": 60},
    "quick": {"jobs": 10, "rate": 200, "seconds": 10},
    "tiny": {"jobs": 4, "rate": 100, "seconds": 5},
}
# The serve workload (bench/serve.py): seconds of point lookups (16 clients), of
# the mixed load (64 clients) and of the analytic query (one client), and the
# idle connections held open (the issue's: 64 clients for 60 s, 1,000 idle).
SERVE_SIZES = {
    "full": {"lookup-seconds": 30, "mixed-seconds": 60, "analytic-seconds": 20, "idle-connections": 1000, "warmup": 5},
    "issue": {"lookup-seconds": 60, "mixed-seconds": 60, "analytic-seconds": 30, "idle-connections": 1000, "warmup": 5},
    "quick": {"lookup-seconds": 10, "mixed-seconds": 15, "analytic-seconds": 5, "idle-connections": 1000, "warmup": 3},
    "tiny": {"lookup-seconds": 5, "mixed-seconds": 5, "analytic-seconds": 3, "idle-connections": 100, "warmup": 1},
}
# Workloads only Tidelake runs: the peers have no such command.
TIDELAKE_ONLY = {
    "cdc": "needs Flink CDC or Debezium and a Flink/Spark job; not a library call",
    "workers": "the peers are libraries with no job service",
}
# Workloads whose peers are servers measured in Tidelake's own process (the
# serve workload: PostgreSQL, and DuckDB for the analytic query): the suite's
# peers (libraries) run nothing and report nothing for them.
PEERS_IN_TIDELAKE_RUN = ("serve",)
# Workloads that drive the `tidelake` command built next to tidelake-bench.
NEEDS_TIDELAKE_COMMAND = ("cdc", "workers", "serve")


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def expand_only(only: list[str]) -> list[str]:
    chosen = set()
    for name in only:
        if name == "compact":
            chosen.update(["compact", "scan_compacted"])
        elif name in RUN_ORDER:
            chosen.add(name)
        else:
            raise SystemExit(f"unknown workload '{name}' (one of {', '.join(RUN_ORDER)})")
    return [w for w in RUN_ORDER if w in chosen]


def cdc_command(data: ScaleDir, tidelake_bin: Path, sizes: dict) -> list[str]:
    """bench/cdc.py driving the `tidelake` binary built next to tidelake-bench."""
    return [
        sys.executable, str(BENCH_DIR / "cdc.py"), "--tidelake", str(tidelake_bin.parent / "tidelake"),
        "--work", str(data.root / "work" / "cdc"), "--rows", str(sizes["rows"]), "--rate", str(sizes["rate"]),
        "--seconds", str(sizes["seconds"]),
    ]


def vector_command(system: str, vdata: VectorDir, vector_bin: Path) -> list[str]:
    if system == "tidelake":
        return [str(vector_bin), "--data", str(vdata.root)]
    return [sys.executable, str(BENCH_DIR / "vector_peers.py"), "--data", str(vdata.root), "--system", system]


def command_for(
    system: str, workload: str, data: ScaleDir, tidelake_bin: Path, preset: str = "full", cdc: dict | None = None
) -> list[str]:
    if workload == "cdc":
        return cdc_command(data, tidelake_bin, cdc or CDC_SIZES.get(preset, CDC_SIZES["full"]))
    if workload == "workers":
        sizes = WORKERS_SIZES.get(preset, WORKERS_SIZES["full"])
        return [
            sys.executable, str(BENCH_DIR / "workers.py"), "--tidelake", str(tidelake_bin.parent / "tidelake"),
            "--work", str(data.root / "work" / "workers"),
            *(arg for key in ("jobs", "rate", "seconds") for arg in (f"--{key}", str(sizes[key]))),
        ]
    if workload == "serve":
        sizes = SERVE_SIZES.get(preset, SERVE_SIZES["full"])
        return [
            sys.executable, str(BENCH_DIR / "serve.py"), "--tidelake", str(tidelake_bin.parent / "tidelake"),
            "--data", str(data.root), *(arg for key, value in sizes.items() for arg in (f"--{key}", str(value))),
        ]
    if system == "tidelake":
        cmd = [str(tidelake_bin), "--data", str(data.root), "--workload", workload.replace("_", "-")]
        if workload == "tpch":
            cmd += ["--tpch-dir", str(data.tpch_dir(data.scale().tpch_sf)), "--queries", str(TPCH_QUERY_DIR)]
        if workload == "stream_job":
            seconds = STREAM_JOB_SECONDS.get(preset, STREAM_JOB_SECONDS["full"])
            cmd += ["--rate", str(STREAM_JOB_RATE), "--seconds", str(seconds)]
        return cmd
    return [sys.executable, str(BENCH_DIR / "peers.py"), "--data", str(data.root), "--system", system, "--workload", workload]


def run_one(
    system: str,
    workload: str,
    data: ScaleDir,
    tidelake_bin: Path,
    timeout: float,
    preset: str = "full",
    cdc: dict | None = None,
) -> list[dict]:
    """Runs one (workload, system) in a fresh process; always returns records."""
    names = MEASUREMENTS.get(workload, [workload])
    if workload in PEERS_IN_TIDELAKE_RUN and system != "tidelake":
        return []
    if workload in TIDELAKE_ONLY and system != "tidelake":
        return [{"workload": n, "system": system, "status": "n/a", "reason": TIDELAKE_ONLY[workload]} for n in names]
    if system == "tidelake" and not tidelake_bin.exists():
        reason = f"the {tidelake_bin.name} binary was not built ({tidelake_bin} is missing)"
        return [{"workload": n, "system": system, "status": "error", "reason": reason} for n in names]
    if workload in NEEDS_TIDELAKE_COMMAND and not (tidelake_bin.parent / "tidelake").exists():
        reason = f"the tidelake binary was not built ({tidelake_bin.parent / 'tidelake'} is missing)"
        return [{"workload": n, "system": system, "status": "error", "reason": reason} for n in names]
    return run_command(system, names, command_for(system, workload, data, tidelake_bin, preset, cdc), timeout)


def run_command(system: str, names: list[str], cmd: list[str], timeout: float) -> list[dict]:
    """Runs one measurement process; `names` are the measurements it prints."""
    started = time.perf_counter()
    # A session of its own, so that a timeout kills the process and its children.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        records = parse_records(out)
        done = {r["workload"] for r in records}
        reason = f"killed after the {timeout:.0f} s timeout"
        progress = last_progress(err)
        partial = {}
        if progress and progress.get("seconds"):
            # What finished before the timeout, and how fast it went.
            partial = {
                "rows": progress["rows"],
                "seconds": progress["seconds"],
                "rows_per_s": round(progress["rows"] / progress["seconds"], 1),
                "commits_done": progress["commits"],
            }
            reason += f" after {progress['commits']} of {progress['of']} commits; rows/s is over those"
        return records + [
            {"workload": n, "system": system, "status": "timeout", "seconds": timeout, "reason": reason, **partial}
            for n in names
            if n not in done
        ]
    records = parse_records(out)
    if not records:
        tail = " | ".join(line for line in err.strip().splitlines()[-3:])
        reason = f"exit code {proc.returncode} and no result after {time.perf_counter() - started:.1f} s: {tail[:400]}"
        records = [{"workload": n, "system": system, "status": "error", "reason": reason} for n in names]
    elif proc.returncode != 0 and err.strip():
        log(f"{system}/{' '.join(cmd[-2:])} stderr: {err.strip().splitlines()[-1][:300]}")
    return records


def last_progress(err: str) -> dict | None:
    """The last `progress: {...}` line a workload wrote on stderr."""
    for line in reversed(err.splitlines()):
        if line.startswith("progress: "):
            try:
                return json.loads(line[len("progress: ") :])
            except ValueError:
                return None
    return None


def parse_records(out: str) -> list[dict]:
    records = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def summary_line(r: dict) -> str:
    if r.get("status") in ("ok", "incomplete"):
        extra = ""
        if "p99_ms" in r:
            extra = f" p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms"
            if "errors" in r:
                extra += f" {r['clients']} client(s), {r['errors']} error(s)"
        elif "bytes_per_connection" in r:
            extra = f" {r['connections']} idle connections, {r['bytes_per_connection'] / 1024:.0f} KiB each"
        elif "delay_p99_ms" in r:
            extra = f" delay p50 {r['delay_p50_ms']} ms p99 {r['delay_p99_ms']} ms"
        elif "ratio_to_copy" in r:
            extra = f" {r['ratio_to_copy']}x of the server client's read ({r['reference_rows_per_s']:.0f} rows/s)"
        elif "rss_max_bytes" in r:
            extra = f" RSS max {r['rss_max_bytes'] / 2**20:.0f} MiB while it was applied"
        elif "lag_p50_snapshots" in r:
            extra = (
                f" {r['workers']} worker(s): lag p50 {r['lag_p50_snapshots']} max {r['lag_max_snapshots']} snapshots,"
                f" drained in {r['drain_seconds']} s"
            )
        elif "caught_up_seconds" in r:
            extra = f" {r['jobs_moved']} jobs moved (lease TTL {r['lease_ttl']}), caught up after {r['caught_up_seconds']} s"
        elif "job_seconds" in r:
            extra = f" first job commit after {r['job_seconds']} s"
        elif "recall_at_10" in r:
            extra = f" {r.get('width_name')}={r.get('width')} recall@10 {r['recall_at_10']:.4f}"
            if "selectivity" in r:
                extra += f" selectivity {r['selectivity']:g}"
            if "stale_rows" in r:
                extra += f" stale rows {r['stale_rows']}"
        check = r.get("check", "")
        return (
            f"{r['workload']:<26} {r['system']:<14} {r['rows']:>10} rows {r['seconds']:>9.3f} s "
            f"{(r.get('rows_per_s') or 0):>12.0f} rows/s {(r.get('peak_rss_bytes') or 0) / 2**20:>7.0f} MiB{extra} {check}"
        ).rstrip()
    return f"{r['workload']:<26} {r['system']:<14} {r.get('status')}: {r.get('reason', '')}"


class Runner:
    """Runs workloads on systems, each on the state of the orders table it
    reads (see table_state.py): a workload whose state the table does not
    hold gets it restored from a saved copy or rebuilt by running the
    workloads that make it first (their results are recorded too). Each
    record of a workload on the orders table carries the table's shape."""

    def __init__(
        self,
        data: ScaleDir,
        tidelake_bin: Path,
        timeouts: dict,
        preset: str,
        record: Callable[[dict], None],
        cdc: dict | None = None,
        vector: tuple[VectorDir, Path] | None = None,
    ):
        self.cdc = cdc
        self.data = data
        self.vector = vector  # the vector workload's data and tidelake-vector-bench
        self.tidelake_bin = tidelake_bin
        self.timeouts = timeouts  # seconds per workload, "*" for the rest
        self.preset = preset
        self.record = record
        self.failed: dict[str, str] = {}  # system -> the workload that changed its table and failed this run

    def run(self, system: str, workload: str) -> None:
        if workload == "vector":
            self.run_vector(system)
            return
        if workload in PEERS_IN_TIDELAKE_RUN and system != "tidelake":
            return  # no table of theirs to prepare, nothing to run
        needed = table_state.READS.get(workload)
        if needed is not None and self.skip_reason(system, workload) is None:
            saved = table_state.saved_states(self.data, system)
            restore, steps = table_state.plan(needed, table_state.live_state(self.data, system), set(saved))
            if restore is not None:
                log(f"{system}: restoring its {table_state.state_name(restore)} table from {saved[restore]}")
                table_state.restore(self.data, system, restore)
            for step in steps:
                self.step(system, step)
        self.step(system, workload)

    def run_vector(self, system: str) -> None:
        """The vector workload: its own data and systems, no table state."""
        if self.vector is None:
            return
        vdata, vector_bin = self.vector
        names = MEASUREMENTS["vector"]
        log(f"vector on {system}")
        if system == "tidelake" and not vector_bin.exists():
            reason = f"the tidelake-vector-bench binary was not built ({vector_bin} is missing)"
            records = [{"workload": n, "system": system, "status": "error", "reason": reason} for n in names]
        else:
            timeout = self.timeouts.get("vector", self.timeouts["*"])
            records = run_command(system, names, vector_command(system, vdata, vector_bin), timeout)
        self.emit_all(records, {})

    def skip_reason(self, system: str, workload: str) -> str | None:
        """Why a workload cannot run: a workload that built the table it reads failed."""
        failed = self.failed.get(system)
        if failed is not None and failed in table_state.READS.get(workload, ()):
            return f"{failed} failed"
        return None

    def step(self, system: str, step: str) -> None:
        reason = self.skip_reason(system, step)
        if reason is not None:
            records = [{"workload": n, "system": system, "status": "skipped", "reason": reason} for n in MEASUREMENTS.get(step, [step])]
            self.emit_all(records, {})
            return
        shapes = {}
        if step in table_state.READS:
            shapes["table_read"] = self.shape(system, step, reading=True)
        if step in table_state.CHANGES:
            copy = table_state.before_change(self.data, system, step)
            if copy is not None:
                log(f"{system}: saved its {copy.name} table to {copy} before {step} changes it")
        log(f"{step} on {system}")
        timeout = self.timeouts.get(step, self.timeouts["*"])
        records = run_one(system, step, self.data, self.tidelake_bin, timeout, self.preset, self.cdc)
        ok = all(r.get("status") in ("ok", "n/a", "incomplete") for r in records)
        if step in table_state.CHANGES:
            if ok:
                table_state.after_change(self.data, system, step)
                shapes["table_written"] = self.shape(system, step, reading=False)
            else:
                self.failed.setdefault(system, step)
        self.emit_all(records, shapes, system)

    def shape(self, system: str, step: str, reading: bool) -> dict | None:
        shape = table_shape.describe(self.data, system, reading)
        if shape is not None and shape["path"].startswith("work/"):
            state = table_state.live_state(self.data, system)
            shape["stages"] = list(state) if state is not None else None
        return shape

    def emit_all(self, records: list[dict], shapes: dict, system: str = "") -> None:
        for record in records:
            # Only measurements that read or wrote the table carry its shape
            # (not the serve workload's peers, which hold their own copy).
            if record.get("status") in ("ok", "incomplete") and (not system or record.get("system") == system):
                record.update({k: v for k, v in shapes.items() if v is not None})
            self.record(record)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scale_arguments(parser)
    add_vector_arguments(parser)
    parser.add_argument("--only", action="append", default=[], help="workload(s) to run, comma-separated")
    parser.add_argument("--systems", help=f"comma-separated, of: {','.join(SYSTEMS)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object per measurement on stdout")
    parser.add_argument("--timeout", type=float, help="seconds per (workload, system) process")
    parser.add_argument("--lookup-budget", type=float, help="seconds of point lookups per system")
    parser.add_argument("--tidelake-bin", type=Path, default=None)
    parser.add_argument("--tidelake-vector-bin", type=Path, default=None)
    parser.add_argument("--report", action="store_true", help="write bench/RESULTS.md even for a partial run")
    parser.add_argument("--command", default=None, help="the command line to record in the report")
    parser.add_argument("--cdc-rows", type=int, help="cdc: rows of the initial sync")
    parser.add_argument("--cdc-rate", type=int, help="cdc: changes per second while streaming")
    parser.add_argument("--cdc-seconds", type=float, help="cdc: seconds of streaming")
    args = parser.parse_args()

    scale = scale_from_args(args)
    data = ScaleDir(DATA_ROOT / scale.name)
    systems = args.systems.split(",") if args.systems else list(dict.fromkeys(SYSTEMS + VECTOR_SYSTEMS))
    known = list(dict.fromkeys(SYSTEMS + VECTOR_SYSTEMS))
    unknown = [s for s in systems if s not in known]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown} (of {', '.join(known)})")
    only = [w for part in args.only for w in part.split(",") if w]
    workloads = expand_only(only) if only else list(RUN_ORDER)
    timeouts = {"*": args.timeout} if args.timeout else DEFAULT_TIMEOUT.get(args.preset, DEFAULT_TIMEOUT["full"])
    os.environ[LOOKUP_BUDGET_ENV] = str(args.lookup_budget or LOOKUP_BUDGET.get(args.preset, 60))
    tidelake_bin = args.tidelake_bin or Path(
        os.environ.get("TIDELAKE_BENCH_BIN", Path.home() / ".cache/tidelake-target/release/tidelake-bench")
    )

    vector_bin = args.tidelake_vector_bin or tidelake_bin.with_name("tidelake-vector-bench")
    vscale = vector_scale_from_args(args)
    vdata = vector_dir(vscale)

    started = time.time()
    # In a process of its own: the generator holds the whole table in memory,
    # and the driver should stay small while it runs the measurements.
    # The cdc and workers workloads make their own tables, the vector workload its own data.
    if set(workloads) - set(TIDELAKE_ONLY) - {"vector"}:
        generate = [sys.executable, str(BENCH_DIR / "gen_data.py"), "--scale-json", json.dumps(scale.to_json())]
        if "tpch" not in workloads:
            generate.append("--skip-tpch")
        subprocess.run(generate, check=True, stdout=subprocess.DEVNULL)
    if "vector" in workloads:
        generate = [sys.executable, str(BENCH_DIR / "vector_data.py"), "--scale-json", json.dumps(vscale.to_json())]
        subprocess.run(generate, check=True, stdout=subprocess.DEVNULL)
    cdc = dict(CDC_SIZES.get(args.preset, CDC_SIZES["full"]))
    for key, value in (("rows", args.cdc_rows), ("rate", args.cdc_rate), ("seconds", args.cdc_seconds)):
        if value is not None:
            cdc[key] = value

    results_dir = data.root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt_module.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_path = results_dir / f"{stamp}.jsonl"
    all_records = []
    with results_path.open("w") as sink:

        def record(r: dict) -> None:
            r["scale"] = vscale.name if str(r.get("workload", "")).startswith("vector") else scale.name
            sink.write(json.dumps(r) + "\n")
            sink.flush()
            all_records.append(r)
            if args.json:
                print(json.dumps(r), flush=True)
            else:
                log(summary_line(r))

        runner = Runner(data, tidelake_bin, timeouts, args.preset, record, cdc, (vdata, vector_bin))
        for workload in workloads:
            for system in systems:
                if system in (VECTOR_SYSTEMS if workload == "vector" else SYSTEMS):
                    runner.run(system, workload)
    log(f"done in {time.time() - started:.0f} s; results in {results_path}")
    full_run = args.preset in ("full", "issue") and not only and not args.systems
    command = args.command or "bench/run " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = BENCH_DIR / "RESULTS.md"
    if full_run or (args.report and workloads != ["vector"]):
        import report

        out.write_text(report.render(all_records, scale, command, time.time() - started, vscale))
        log(f"wrote {out}")
    elif workloads == ["vector"] and (args.report or (args.preset in ("full", "issue") and not args.systems)):
        import report

        # Only the vector section changes; the other workloads' results stay.
        section = report.render_vector(all_records, vscale, command, time.time() - started)
        existing = out.read_text() if out.exists() else "# Benchmark results\n"
        out.write_text(report.splice_vector(existing, section))
        log(f"wrote the vector section of {out}")
    if not args.json:
        print("\n".join(summary_line(r) for r in all_records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
