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

from common import BENCH_DIR, DATA_ROOT, LOOKUP_BUDGET_ENV, PREREQUISITES, SYSTEMS, TPCH_QUERY_DIR, ScaleDir
from gen_data import add_scale_arguments, scale_from_args

# Workloads as the driver runs them; `compact` brings its scans along.
RUN_ORDER = ["ingest", "upsert", "scan", "lookup", "compact", "scan_compacted", "tpch", "stream_job"]
MEASUREMENTS = {
    "scan": ["scan_full", "scan_projection", "scan_filter"],
    "scan_compacted": ["scan_full_compacted", "scan_projection_compacted", "scan_filter_compacted"],
}
# Workloads whose results later ones build on.
STATEFUL = {"ingest", "upsert"}
# Seconds per (workload, system) process. A full run stays near 30 minutes on
# 2 cores only because the slowest peers' upserts are cut short: the record
# then says how many commits finished and at what speed.
DEFAULT_TIMEOUT = {
    "full": {"ingest": 600, "upsert": 300, "tpch": 600, "*": 300},
    "issue": {"ingest": 900, "upsert": 600, "tpch": 600, "*": 600},
    "quick": {"*": 180},
    "tiny": {"*": 120},
}
# Seconds of point lookups per system (all keys, or fewer when the budget runs out).
LOOKUP_BUDGET = {"full": 60, "issue": 120, "quick": 30, "tiny": 30}
# The continuous job: the 10,000 changes per second in 10 source
# commits per second, for this many seconds of writing.
STREAM_JOB_RATE = 10_000
STREAM_JOB_SECONDS = {"full": 60, "issue": 60, "quick": 15, "tiny": 5}


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


def reads_earlier_state(workload: str) -> bool:
    """Whether a workload reads the table earlier workloads left (so it is
    skipped on a system whose ingest or upsert failed); TPC-H and the
    continuous job make their own tables."""
    if workload in STATEFUL:
        return False
    return bool(PREREQUISITES.get(workload.replace("scan_compacted", "compact"), ["ingest"]))


def stage_file(data: ScaleDir, system: str) -> Path:
    return data.work_dir(system) / "stages.json"


def completed_stages(data: ScaleDir, system: str) -> set[str]:
    try:
        return set(json.loads(stage_file(data, system).read_text()))
    except (OSError, ValueError):
        return set()


def mark_stage(data: ScaleDir, system: str, workload: str) -> None:
    stages = set() if workload == "ingest" else completed_stages(data, system)
    stages.add(workload)
    path = stage_file(data, system)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(stages)))


def command_for(system: str, workload: str, data: ScaleDir, tidelake_bin: Path, preset: str = "full") -> list[str]:
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
    system: str, workload: str, data: ScaleDir, tidelake_bin: Path, timeout: float, preset: str = "full"
) -> list[dict]:
    """Runs one (workload, system) in a fresh process; always returns records."""
    names = MEASUREMENTS.get(workload, [workload])
    if system == "tidelake" and not tidelake_bin.exists():
        reason = f"the tidelake-bench binary was not built ({tidelake_bin} is missing)"
        return [{"workload": n, "system": system, "status": "error", "reason": reason} for n in names]
    cmd = command_for(system, workload, data, tidelake_bin, preset)
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
        log(f"{system}/{workload} stderr: {err.strip().splitlines()[-1][:300]}")
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
        elif "delay_p99_ms" in r:
            extra = f" delay p50 {r['delay_p50_ms']} ms p99 {r['delay_p99_ms']} ms"
        check = r.get("check", "")
        return (
            f"{r['workload']:<26} {r['system']:<14} {r['rows']:>10} rows {r['seconds']:>9.3f} s "
            f"{(r.get('rows_per_s') or 0):>12.0f} rows/s {r.get('peak_rss_bytes', 0) / 2**20:>7.0f} MiB{extra} {check}"
        ).rstrip()
    return f"{r['workload']:<26} {r['system']:<14} {r.get('status')}: {r.get('reason', '')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scale_arguments(parser)
    parser.add_argument("--only", action="append", default=[], help="workload(s) to run, comma-separated")
    parser.add_argument("--systems", help=f"comma-separated, of: {','.join(SYSTEMS)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object per measurement on stdout")
    parser.add_argument("--timeout", type=float, help="seconds per (workload, system) process")
    parser.add_argument("--lookup-budget", type=float, help="seconds of point lookups per system")
    parser.add_argument("--tidelake-bin", type=Path, default=None)
    parser.add_argument("--report", action="store_true", help="write bench/RESULTS.md even for a partial run")
    parser.add_argument("--command", default=None, help="the command line to record in the report")
    args = parser.parse_args()

    scale = scale_from_args(args)
    data = ScaleDir(DATA_ROOT / scale.name)
    systems = args.systems.split(",") if args.systems else list(SYSTEMS)
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown} (of {', '.join(SYSTEMS)})")
    only = [w for part in args.only for w in part.split(",") if w]
    workloads = expand_only(only) if only else list(RUN_ORDER)
    timeouts = DEFAULT_TIMEOUT.get(args.preset, DEFAULT_TIMEOUT["full"])
    os.environ[LOOKUP_BUDGET_ENV] = str(args.lookup_budget or LOOKUP_BUDGET.get(args.preset, 60))
    tidelake_bin = args.tidelake_bin or Path(
        os.environ.get("TIDELAKE_BENCH_BIN", Path.home() / ".cache/tidelake-target/release/tidelake-bench")
    )

    started = time.time()
    # In a process of its own: the generator holds the whole table in memory,
    # and the driver should stay small while it runs the measurements.
    generate = [sys.executable, str(BENCH_DIR / "gen_data.py"), "--scale-json", json.dumps(scale.to_json())]
    if "tpch" not in workloads:
        generate.append("--skip-tpch")
    subprocess.run(generate, check=True, stdout=subprocess.DEVNULL)

    results_dir = data.root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt_module.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_path = results_dir / f"{stamp}.jsonl"
    failed: dict[str, str] = {}  # system -> the stateful workload that failed this run
    all_records = []
    with results_path.open("w") as sink:
        for workload in workloads:
            for system in systems:
                todo = [workload]
                if only:
                    # Run missing prerequisites first (their results are recorded too).
                    have = completed_stages(data, system)
                    todo = [p for p in PREREQUISITES.get(workload.replace("scan_compacted", "compact"), []) if p not in have]
                    todo = [p for p in todo if p not in workloads] + [workload]
                for step in todo:
                    if system in failed and reads_earlier_state(step):
                        records = [
                            {"workload": n, "system": system, "status": "skipped", "reason": f"{failed[system]} failed"}
                            for n in MEASUREMENTS.get(step, [step])
                        ]
                    else:
                        log(f"{step} on {system}")
                        timeout = args.timeout or timeouts.get(step, timeouts["*"])
                        records = run_one(system, step, data, tidelake_bin, timeout, args.preset)
                    ok = all(r.get("status") in ("ok", "n/a", "incomplete") for r in records)
                    if step in STATEFUL:
                        if ok:
                            mark_stage(data, system, step)
                        else:
                            failed.setdefault(system, step)
                    for record in records:
                        record["scale"] = scale.name
                        sink.write(json.dumps(record) + "\n")
                        sink.flush()
                        all_records.append(record)
                        if args.json:
                            print(json.dumps(record), flush=True)
                        else:
                            log(summary_line(record))
    log(f"done in {time.time() - started:.0f} s; results in {results_path}")
    full_run = args.preset in ("full", "issue") and not only and not args.systems
    if full_run or args.report:
        import report

        command = args.command or "bench/run " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        out = BENCH_DIR / "RESULTS.md"
        out.write_text(report.render(all_records, scale, command, time.time() - started))
        log(f"wrote {out}")
    if not args.json:
        print("\n".join(summary_line(r) for r in all_records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
