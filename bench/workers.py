"""The workers workload (issue 15): `tidelake serve` processes sharing the
continuous jobs of one warehouse. Tidelake only; prints one JSON line per
measurement (bench/README.md, "workers"):

- workers_scale_<n>: `--jobs` filter/aggregate jobs (one source table each)
  while a writer commits `--rate` changes per second to every source (10
  commits per second each, through a query-only `tidelake serve` on the
  PostgreSQL wire), run by n workers for `--seconds`. The lag is the jobs'
  `sys.jobs.lag` (source snapshots not yet applied), sampled every second:
  p50 and max over the last third of the run, and the p50 of the first
  third (a lag that keeps up stays flat). `drain_seconds`: from the writers'
  stop until every job has applied everything. `check`: every sink equals
  its query run in batch.
- workers_takeover: two workers run the jobs under load; the one holding
  the most jobs is SIGKILLed. `seconds` runs from the kill until every job
  runs on the survivor (the lease TTL, `--lease-ttl`, is most of it), and
  `caught_up_seconds` until the moved jobs' lag is back to its level before
  the kill; then the sinks are checked as above (nothing lost or counted
  twice).
- workers_cold_start: a new `tidelake serve` on the warehouse, from the
  spawn to the first query's result over the PostgreSQL wire; and
  `job_seconds`, a new worker from its spawn to its first job commit of
  rows that arrived while no worker ran.
- workers_idle_rss: the RSS of a worker with nothing to do, 5 s after its
  start (`peak_rss_bytes` is its VmHWM).

All processes share this machine's cores: more workers add no CPU here, so
the scaling rows show each worker's overhead and the lease spreading, not a
cluster's throughput.

    python workers.py --tidelake target/release/tidelake --work /tmp/w
        [--jobs 10] [--rate 1000] [--seconds 30] [--workers 1,2,3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

COMMITS_PER_S = 10


def log(message: str) -> None:
    sys.stderr.write(f"[workers {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def emit(record: dict) -> None:
    record.setdefault("system", "tidelake")
    record.setdefault("status", "ok")
    print(json.dumps(record), flush=True)


def rss(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Serve:
    """A `tidelake serve` child; its PostgreSQL port read from its stdout."""

    def __init__(self, binary: Path, warehouse: Path, name: str, slots: int, lease_ttl: str, log_dir: Path,
                 extra: list[str] | None = None):
        self.name = name
        self.started = time.perf_counter()
        cmd = [str(binary), "--warehouse", str(warehouse), "serve", "--pg", "127.0.0.1:0", "--http", "127.0.0.1:0",
               "--worker-slots", str(slots), "--worker-id", name, "--lease-ttl", lease_ttl, *(extra or [])]
        self.stderr = open(log_dir / f"{name}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     start_new_session=True)
        self.port: int | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("PostgreSQL: listening on "):
                self.port = int(line.rsplit(":", 1)[1])
                self.ready.set()

    def wait_port(self, timeout: float = 60) -> int:
        if not self.ready.wait(timeout) or self.port is None:
            raise RuntimeError(f"{self.name} did not start listening within {timeout} s")
        return self.port

    def connect(self):
        return psycopg.connect(f"host=127.0.0.1 port={self.wait_port()} user=tidelake dbname=db", autocommit=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.stderr.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class Writers:
    """One thread per source table, `rate` rows a second in 10 commits."""

    def __init__(self, port: int, jobs: int, rate: int, seed: int):
        self.port, self.jobs, self.rate = port, jobs, rate
        self.stop_flag = threading.Event()
        self.rows = [0] * jobs
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i, seed + i), daemon=True) for i in range(jobs)]
        self.next_id = [i * 1_000_000_000 for i in range(jobs)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _run(self, i: int, seed: int) -> None:
        rng = random.Random(seed)
        per_commit = max(1, self.rate // COMMITS_PER_S)
        try:
            with psycopg.connect(f"host=127.0.0.1 port={self.port} user=tidelake dbname=db", autocommit=True) as conn:
                due = time.perf_counter()
                while not self.stop_flag.is_set():
                    values = []
                    for _ in range(per_commit):
                        self.next_id[i] += 1
                        values.append(f"({self.next_id[i]}, 'k{rng.randrange(50)}', {rng.randrange(1000)})")
                    conn.execute(f"INSERT INTO db.src{i} VALUES {', '.join(values)}")
                    self.rows[i] += per_commit
                    due += 1 / COMMITS_PER_S
                    time.sleep(max(0.0, due - time.perf_counter()))
        except Exception as e:  # a writer's failure is reported, not hidden
            self.errors.append(f"src{i}: {e}")

    def stop(self) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)


def tidelake_sql(binary: Path, warehouse: Path, statements: list[str]) -> None:
    cmd = [str(binary), "--warehouse", str(warehouse), "sql"]
    for s in statements:
        cmd += ["-e", s]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def create(binary: Path, warehouse: Path, jobs: int) -> None:
    statements = ["CREATE DATABASE db"]
    for i in range(jobs):
        statements.append(f"CREATE TABLE db.src{i} (id BIGINT, k STRING, v BIGINT)")
        statements.append(
            f"CREATE TABLE db.agg{i} (k STRING NOT NULL, n BIGINT, s BIGINT, PRIMARY KEY (k) NOT ENFORCED) "
            "WITH ('bucket' = '1', 'merge-engine' = 'aggregation', "
            "'fields.n.aggregate-function' = 'sum', 'fields.s.aggregate-function' = 'sum')"
        )
        statements.append(
            f"CREATE JOB agg{i} AS INSERT INTO db.agg{i} "
            f"SELECT k, count(*), sum(v) FROM db.src{i} WHERE v % 10 <> 0 GROUP BY k"
        )
    tidelake_sql(binary, warehouse, statements)


def job_rows(conn) -> list[tuple]:
    return conn.execute("SELECT name, state, owner, lag FROM sys.jobs ORDER BY name").fetchall()


def lag_of(row) -> int:
    return int(row[3]) if row[3] not in (None, "") else 0


def sinks_match(conn, jobs: int) -> str:
    for i in range(jobs):
        diff = conn.execute(
            f"SELECT count(*) FROM ((SELECT k, n, s FROM db.agg{i} EXCEPT "
            f"SELECT k, count(*), sum(v) FROM db.src{i} WHERE v % 10 <> 0 GROUP BY k) UNION ALL "
            f"(SELECT k, count(*), sum(v) FROM db.src{i} WHERE v % 10 <> 0 GROUP BY k EXCEPT "
            f"SELECT k, n, s FROM db.agg{i})) d"
        ).fetchone()[0]
        if diff:
            return f"mismatch: agg{i} differs from its batch query in {diff} rows"
    return "ok"


def wait_drained(conn, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        rows = job_rows(conn)
        if rows and all(r[1] == "RUNNING" and lag_of(r) == 0 for r in rows):
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"the jobs did not drain within {timeout} s: {job_rows(conn)}")


class Bench:
    def __init__(self, args):
        self.args = args
        self.binary = args.tidelake

    def fresh(self, name: str) -> Path:
        root = self.args.work / name
        shutil.rmtree(root, ignore_errors=True)
        (root / "logs").mkdir(parents=True)
        create(self.binary, root / "warehouse", self.args.jobs)
        return root

    def serve(self, root: Path, name: str, slots: int) -> Serve:
        return Serve(self.binary, root / "warehouse", name, slots, self.args.lease_ttl, root / "logs")

    def start_all_running(self, front: Serve, workers: list[Serve]) -> psycopg.Connection:
        conn = front.connect()
        for w in workers:
            w.wait_port()
        deadline = time.perf_counter() + 60
        while not all(r[1] == "RUNNING" for r in job_rows(conn)):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"jobs not all running: {job_rows(conn)}")
            time.sleep(0.2)
        return conn

    def scale(self, n: int) -> None:
        args = self.args
        root = self.fresh(f"scale-{n}")
        front = self.serve(root, "front", 0)
        workers = [self.serve(root, f"w{i}", args.jobs) for i in range(n)]
        try:
            conn = self.start_all_running(front, workers)
            writers = Writers(front.wait_port(), args.jobs, args.rate, args.seed)
            started = time.perf_counter()
            writers.start()
            samples: list[tuple[float, list[int]]] = []
            while time.perf_counter() - started < args.seconds:
                time.sleep(1)
                samples.append((time.perf_counter() - started, [lag_of(r) for r in job_rows(conn)]))
            writers.stop()
            seconds = time.perf_counter() - started
            drain = wait_drained(conn, 600)
            check = sinks_match(conn, args.jobs)
            owners = sorted({r[2] for r in job_rows(conn)})
            third = max(1, len(samples) // 3)
            first = [lag for _, lags in samples[:third] for lag in lags]
            last = [lag for _, lags in samples[-third:] for lag in lags]
            rows = sum(writers.rows)
            emit({
                "workload": f"workers_scale_{n}", "rows": rows, "seconds": round(seconds, 3),
                "rows_per_s": round(rows / (seconds + drain), 1), "workers": n, "jobs": args.jobs,
                "rate_per_job": args.rate, "lag_p50_snapshots": statistics.median(last) if last else None,
                "lag_max_snapshots": max(last) if last else None,
                "lag_first_third_p50": statistics.median(first) if first else None,
                "drain_seconds": round(drain, 3), "owners": owners,
                "peak_rss_bytes": max(rss(w.proc.pid, "VmHWM") for w in workers),
                "writer_errors": writers.errors[:3], "check": check,
            })
        finally:
            for p in [front, *workers]:
                p.stop()

    def takeover(self) -> None:
        args = self.args
        root = self.fresh("takeover")
        front = self.serve(root, "front", 0)
        workers = {f"w{i}": self.serve(root, f"w{i}", args.jobs) for i in range(2)}
        try:
            conn = self.start_all_running(front, list(workers.values()))
            writers = Writers(front.wait_port(), args.jobs, args.rate, args.seed)
            writers.start()
            time.sleep(min(10, args.seconds / 2))
            before = job_rows(conn)
            counts: dict[str, int] = {}
            for r in before:
                counts[r[2]] = counts.get(r[2], 0) + 1
            victim = max(counts, key=lambda k: counts[k])
            moved = [r[0] for r in before if r[2] == victim]
            lag_before = max([lag_of(r) for r in before] + [1])
            killed = time.perf_counter()
            workers[victim].kill()
            seconds = caught_up = None
            while time.perf_counter() - killed < 120:
                rows = {r[0]: r for r in job_rows(conn)}
                on_survivor = all(rows[j][1] == "RUNNING" and rows[j][2] != victim for j in moved)
                if on_survivor and seconds is None:
                    seconds = time.perf_counter() - killed
                if seconds is not None and all(lag_of(rows[j]) <= lag_before for j in moved):
                    caught_up = time.perf_counter() - killed
                    break
                time.sleep(0.1)
            writers.stop()
            if seconds is None:
                raise RuntimeError(f"the jobs of {victim} did not move within 120 s: {job_rows(conn)}")
            wait_drained(conn, 600)
            emit({
                "workload": "workers_takeover", "rows": len(moved), "seconds": round(seconds, 3),
                "rows_per_s": None, "jobs_moved": len(moved), "lease_ttl": args.lease_ttl,
                "caught_up_seconds": round(caught_up, 3) if caught_up is not None else None,
                "writer_errors": writers.errors[:3], "check": sinks_match(conn, args.jobs),
            })
        finally:
            for p in [front, *workers.values()]:
                p.stop()

    def cold_start(self) -> None:
        root = self.fresh("cold")
        # Rows that arrive while no worker runs.
        tidelake_sql(self.binary, root / "warehouse", [
            f"INSERT INTO db.src{i} VALUES (1, 'a', 1), (2, 'b', 2)" for i in range(self.args.jobs)
        ])
        front = self.serve(root, "front", 0)
        try:
            conn = None
            while conn is None:
                try:
                    conn = psycopg.connect(
                        f"host=127.0.0.1 port={front.wait_port()} user=tidelake dbname=db", autocommit=True)
                except psycopg.OperationalError:
                    time.sleep(0.005)
            count = conn.execute("SELECT count(*) FROM db.src0").fetchone()[0]
            query_seconds = time.perf_counter() - front.started
            assert count == 2, count
            worker = self.serve(root, "w0", self.args.jobs)
            try:
                while conn.execute("SELECT count(*) FROM db.agg0").fetchone()[0] < 2:
                    if time.perf_counter() - worker.started > 120:
                        raise RuntimeError("the new worker did not commit its first job within 120 s")
                    time.sleep(0.01)
                job_seconds = time.perf_counter() - worker.started
            finally:
                worker.stop()
            emit({
                "workload": "workers_cold_start", "rows": 1, "seconds": round(query_seconds, 3), "rows_per_s": None,
                "job_seconds": round(job_seconds, 3), "peak_rss_bytes": rss(front.proc.pid, "VmHWM"),
            })
        finally:
            front.stop()

    def idle_rss(self) -> None:
        root = self.args.work / "idle"
        shutil.rmtree(root, ignore_errors=True)
        (root / "logs").mkdir(parents=True)
        worker = self.serve(root, "idle", 4)
        try:
            worker.wait_port()
            time.sleep(5)
            emit({
                "workload": "workers_idle_rss", "rows": 0, "seconds": 5.0, "rows_per_s": None,
                "rss_bytes": rss(worker.proc.pid), "peak_rss_bytes": rss(worker.proc.pid, "VmHWM"),
            })
        finally:
            worker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tidelake", type=Path, required=True, help="the release tidelake binary")
    parser.add_argument("--work", type=Path, default=Path("bench/data/work/workers"))
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000, help="changes per second per source table")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--lease-ttl", default="10s")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    bench = Bench(args)
    steps = [(f"workers_scale_{n}", lambda n=int(n): bench.scale(n)) for n in args.workers.split(",")]
    steps += [("workers_takeover", bench.takeover), ("workers_cold_start", bench.cold_start),
              ("workers_idle_rss", bench.idle_rss)]
    failed = 0
    for name, step in steps:
        log(name)
        try:
            step()
        except Exception as e:  # one step's failure is its record; the others still run
            failed += 1
            emit({"workload": name, "status": "error", "reason": str(e)[:400]})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
