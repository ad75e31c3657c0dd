"""The serve workload (issue 14): `tidelake serve` answering many PostgreSQL
clients over the merge-on-read orders table of the upsert workload, against
PostgreSQL itself holding the same rows and, for the analytic query, DuckDB
in-process over the generator's Parquet files. Prints one JSON line per
(measurement, system) (bench/README.md, "serve"):

- serve_lookup: point lookups by the full primary key (`WHERE dt = :day AND
  order_id = :id`, keys drawn from the live rows), `--lookup-clients`
  pgbench clients for `--lookup-seconds`: lookups/s, p50/p99 from pgbench's
  per-transaction log, errors.
- serve_mixed: `--mixed-clients` clients, 80% lookups and 20% aggregates
  (`SELECT status, count(*), sum(amount) FROM orders WHERE dt = :day GROUP BY
  status`) for `--mixed-seconds`: throughput, p50/p99 (all, lookups,
  aggregates), errors, and the server's peak memory.
- serve_idle: `--idle-connections` connections that finished their startup
  and then do nothing: the memory each adds to the server (Tidelake: the
  process's VmRSS before and after; PostgreSQL: the PSS of the new backends).
- serve_analytic: the aggregate alone, one client: Tidelake and PostgreSQL
  over the wire, DuckDB in-process over the Parquet files; queries/s.

Both servers are driven by the same client, `pgbench` (`-n`, `-M prepared`
by default, custom scripts), and the same key sample. Each measurement gets a
fresh `tidelake serve` and a warm-up that is not measured.

    python serve.py --tidelake target/release/tidelake --data bench/data/<scale>
        [--lookup-seconds 30] [--mixed-seconds 60] [--idle-connections 1000]
        [--steps lookup,mixed,idle,analytic] [--protocol prepared|extended]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import ScaleDir, percentile

# The orders table as the generator wrote it; PostgreSQL gets the same types.
PG_COLUMNS = [
    ("order_id", "bigint NOT NULL"),
    ("customer_id", "bigint"),
    ("dt", "text NOT NULL"),
    ("status", "text"),
    ("amount", "numeric(12,2)"),
    ("discount", "double precision"),
    ("comment", "text"),
    ("updated_at", "timestamp"),
]
PG_DATABASE = "tl_bench_serve"
TIDELAKE_DATABASE = "bench"  # tidelake-bench's database (crates/tidelake-bench/src/orders.rs)
LOOKUP_COLUMNS = "order_id, customer_id, status, amount, discount, comment, updated_at"
AGGREGATE = "SELECT status, count(*), sum(amount) FROM orders WHERE dt = {day} GROUP BY status"
# Keys per day in a lookup script: the pgbench expression that maps a random
# index to one of them is a balanced tree of CASEs (10 levels for 1,000 keys).
KEYS_PER_DAY = 2_000
PROTOCOL_VERSION = 196608  # 3.0


def log(message: str) -> None:
    sys.stderr.write(f"[serve {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def emit(record: dict) -> None:
    record.setdefault("status", "ok")
    print(json.dumps(record), flush=True)


# ---------------------------------------------------------------- pgbench scripts


def key_expression(keys: list[int], var: str = "k") -> str:
    """A pgbench expression that is keys[:var] (var in 0..len-1): pgbench
    has no arrays, so a binary tree of CASEs picks the key in log2(n) steps."""
    if not keys:
        raise ValueError("no keys")

    def tree(lo: int, hi: int) -> str:
        if hi - lo == 1:
            return str(keys[lo])
        mid = (lo + hi) // 2
        return f"case when :{var} < {mid} then {tree(lo, mid)} else {tree(mid, hi)} end"

    return tree(0, len(keys))


def day_var(index: int) -> str:
    return f"day{index}"


def lookup_script(day_index: int, keys: list[int]) -> str:
    """One lookup of a random key among `keys`, all in day `day_index`.
    The day is a `-D` variable, so that `-M prepared` sends it as a parameter
    like the key."""
    return (
        f"\\set k random(0, {len(keys) - 1})\n"
        f"\\set id {key_expression(keys)}\n"
        f"SELECT {LOOKUP_COLUMNS} FROM orders WHERE dt = :{day_var(day_index)} AND order_id = :id;\n"
    )


def aggregate_script(day_index: int) -> str:
    return AGGREGATE.format(day=f":{day_var(day_index)}") + ";\n"


def day_defines(days: list[str]) -> list[str]:
    return [arg for i, day in enumerate(days) for arg in ("-D", f"{day_var(i)}={day}")]


# ---------------------------------------------------------------- pgbench output


@dataclass
class Transaction:
    client: int
    script: int
    latency_us: int | None  # None: failed
    end_epoch_us: int


def parse_pgbench_log(lines) -> list[Transaction]:
    """pgbench's per-transaction log (`-l`, no aggregation): `client_id
    transaction_no time script_no time_epoch time_us [schedule_lag]
    [retries]`, where `time` is the latency in microseconds or `failed`
    (`serialization`, `deadlock` with --failures-detailed)."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) < 6:
            continue
        try:
            latency = int(parts[2])
        except ValueError:
            if parts[2] == "skipped":
                continue
            latency = None
        out.append(Transaction(int(parts[0]), int(parts[3]), latency, int(parts[4]) * 1_000_000 + int(parts[5])))
    return out


@dataclass
class PgbenchSummary:
    processed: int = 0
    failed: int = 0
    tps: float | None = None
    aborted_clients: int = 0
    first_error: str | None = None


def parse_pgbench_output(stdout: str, stderr: str) -> PgbenchSummary:
    summary = PgbenchSummary()
    for line in stdout.splitlines():
        if line.startswith("number of transactions actually processed:"):
            summary.processed = int(line.split(":")[1].split("/")[0])
        elif line.startswith("number of failed transactions:"):
            summary.failed = int(line.split(":")[1].split()[0])
        elif line.startswith("tps = "):
            summary.tps = float(line.split()[2])
    for line in stderr.splitlines():
        if " aborted in command " in line:
            summary.aborted_clients += 1
        if summary.first_error is None and "ERROR:" in line:
            summary.first_error = line.split("ERROR:", 1)[1].strip()[:300]
    if summary.first_error is None and summary.aborted_clients:
        summary.first_error = next(line for line in stderr.splitlines() if " aborted in command " in line)[:300]
    return summary


def latency_figures(latencies_us: list[int], prefix: str = "") -> dict:
    """p50, p99 and max in milliseconds (nearest rank)."""
    values = sorted(latencies_us)
    if not values:
        return {}
    return {
        f"{prefix}p50_ms": round(percentile(values, 50) / 1000, 3),
        f"{prefix}p99_ms": round(percentile(values, 99) / 1000, 3),
        f"{prefix}max_ms": round(values[-1] / 1000, 3),
    }


def run_figures(transactions: list[Transaction], summary: PgbenchSummary, seconds: float, scripts: dict[str, set[int]]) -> dict:
    """The figures of one measured pgbench run: throughput (pgbench's tps,
    which leaves out the connection time), latencies overall and per kind of
    script, errors (failed transactions and aborted clients)."""
    done = [t for t in transactions if t.latency_us is not None]
    failed = len(transactions) - len(done)
    rows = len(done)
    tps = summary.tps if summary.tps is not None else (rows / seconds if seconds else None)
    out = {
        "rows": rows,
        "seconds": round(rows / tps, 3) if tps else round(seconds, 3),
        "rows_per_s": round(tps, 1) if tps is not None else None,
        **latency_figures([t.latency_us for t in done]),
        "errors": max(failed, summary.failed) + summary.aborted_clients,
    }
    if summary.aborted_clients:
        out["aborted_clients"] = summary.aborted_clients
    if summary.first_error:
        out["first_error"] = summary.first_error
    if len(scripts) > 1:
        for kind, numbers in scripts.items():
            mine = [t.latency_us for t in done if t.script in numbers]
            out[f"{kind}s"] = len(mine)
            out.update(latency_figures(mine, f"{kind}_"))
    return out


# ---------------------------------------------------------------- memory


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """Bytes by field of /proc/<pid>/smaps_rollup (`Rss`, `Pss`, ...)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].endswith(":") and parts[2] == "kB":
            out[parts[0][:-1]] = int(parts[1]) * 1024
    return out


def smaps(pid: int) -> dict[str, int]:
    try:
        return parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
    except OSError:
        return {}


def status_bytes(pid: int, field_name: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(parent: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            out.append(int(entry.name))
    return out


class MemorySampler:
    """Samples a memory figure every `interval` s in a thread and keeps the
    largest: for PostgreSQL the PSS of the postmaster and all its children
    (a cluster is many processes); for Tidelake its VmRSS (VmHWM is read
    too, at the end)."""

    def __init__(self, measure, interval: float = 0.5):
        self.measure, self.interval = measure, interval
        self.peak = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, self.measure())
            self.stop_flag.wait(self.interval)

    def __exit__(self, *exc) -> None:
        self.stop_flag.set()
        self.thread.join()
        self.peak = max(self.peak, self.measure())


def cluster_pss(postmaster: int) -> int:
    return sum(smaps(pid).get("Pss", 0) for pid in [postmaster, *children(postmaster)])


# ---------------------------------------------------------------- idle connections (raw protocol)


def startup_message(user: str, database: str, application: str) -> bytes:
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in
                      (("user", user), ("database", database), ("application_name", application)))
    body = struct.pack("!i", PROTOCOL_VERSION) + params + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def split_messages(buffer: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """Whole backend messages (type, payload) at the start of `buffer`, and what is left."""
    out = []
    while len(buffer) >= 5:
        length = struct.unpack("!i", buffer[1:5])[0]
        if length < 4:
            raise ValueError(f"bad message length {length}")
        if len(buffer) < 1 + length:
            break
        out.append((chr(buffer[0]), buffer[5 : 1 + length]))
        buffer = buffer[1 + length :]
    return out, buffer


def error_text(payload: bytes) -> str:
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return f"{fields.get('C', '?')} {fields.get('M', '')}"


def open_idle(host: str, port: int, user: str, database: str, timeout: float = 30) -> tuple[socket.socket, int | None]:
    """A connection through its startup to ReadyForQuery (trust: no
    password); returns it and the backend process id of its BackendKeyData."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.sendall(startup_message(user, database, "tidelake-bench-idle"))
        buffer, pid = b"", None
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection during startup")
            messages, buffer = split_messages(buffer + chunk)
            for kind, payload in messages:
                if kind == "E":
                    raise ConnectionError(error_text(payload))
                if kind == "R" and struct.unpack("!i", payload[:4])[0] != 0:
                    raise ConnectionError("the server asks for a password (the bench expects trust)")
                if kind == "K":
                    pid = struct.unpack("!i", payload[:4])[0]
                if kind == "Z":
                    sock.settimeout(None)
                    return sock, pid
    except BaseException:
        sock.close()
        raise


def close_idle(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        try:
            sock.sendall(b"X\0\0\0\4")
        except OSError:
            pass
        sock.close()


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Endpoint:
    system: str
    host: str
    port: int
    user: str
    dbname: str
    pid: int | None = None  # Tidelake's process; PostgreSQL's postmaster

    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    def memory(self) -> int:
        """What the memory sampler watches (see MemorySampler)."""
        if self.pid is None:
            return 0
        return cluster_pss(self.pid) if self.system == "postgres" else status_bytes(self.pid)


class TidelakeServer:
    """A fresh query-only `tidelake serve` on the warehouse."""

    def __init__(self, binary: Path, warehouse: Path, log_dir: Path, name: str, max_connections: int):
        from workers import Serve

        extra = ["--max-connections", str(max_connections)]
        self.serve = Serve(binary, warehouse, name, 0, "10s", log_dir, extra=extra)

    def __enter__(self) -> Endpoint:
        port = self.serve.wait_port(120)
        return Endpoint("tidelake", "127.0.0.1", port, "tidelake", TIDELAKE_DATABASE, self.serve.proc.pid)

    def __exit__(self, *exc) -> None:
        self.serve.stop()


def pg_connect(conninfo: str, **kwargs):
    import psycopg

    return psycopg.connect(conninfo, autocommit=True, **kwargs)


class Postgres:
    """The local PostgreSQL (trust for user postgres) and the bench's copy of
    the orders rows in database tl_bench_serve."""

    def __init__(self, host: str, port: int, user: str):
        self.host, self.port, self.user = host, port, user

    def admin(self):
        return pg_connect(f"host={self.host} port={self.port} user={self.user} dbname=postgres")

    def endpoint(self) -> Endpoint:
        with self.admin() as conn:
            directory = conn.execute("SHOW data_directory").fetchone()[0]
        try:
            postmaster = int(Path(directory, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            postmaster = None  # another user's cluster: no memory figures
        return Endpoint("postgres", self.host, self.port, self.user, PG_DATABASE, postmaster)

    def setting(self, name: str) -> str:
        with self.admin() as conn:
            return conn.execute(f"SHOW {name}").fetchone()[0]

    def load(self, data: ScaleDir, scale_name: str) -> float | None:
        """Loads the final rows (the merge-on-read table's contents) unless
        the database already holds this scale's. Returns the seconds spent,
        None when it was already loaded."""
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        with self.admin() as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone():
                conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        want_rows = data.expected()["scan_full"]["rows"]
        with pg_connect(self.endpoint().conninfo()) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_loaded (scale text, rows bigint)")
            if conn.execute("SELECT 1 FROM bench_loaded WHERE scale = %s AND rows = %s", (scale_name, want_rows)).fetchone():
                return None
            started = time.perf_counter()
            columns = ", ".join(f"{name} {kind}" for name, kind in PG_COLUMNS)
            conn.execute("DROP TABLE IF EXISTS orders")
            conn.execute("DELETE FROM bench_loaded")
            conn.execute(f"CREATE TABLE orders ({columns}, PRIMARY KEY (dt, order_id))")
            names = [name for name, _ in PG_COLUMNS]
            loaded = 0
            with conn.cursor() as cur:
                with cur.copy(f"COPY orders ({', '.join(names)}) FROM STDIN (FORMAT csv)") as copy:
                    for part in sorted(data.final_dir.glob("dt=*/*.parquet")):
                        day = part.parent.name.split("=", 1)[1]
                        table = pq.ParquetFile(part).read()  # the file alone: no dt from its path
                        table = table.append_column("dt", pa.array([day] * table.num_rows, pa.string())).select(names)
                        sink = pa.BufferOutputStream()
                        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
                        copy.write(sink.getvalue().to_pybytes())
                        loaded += table.num_rows
            if loaded != want_rows:
                raise RuntimeError(f"loaded {loaded} rows into PostgreSQL, the final state has {want_rows}")
            conn.execute("VACUUM ANALYZE orders")
            conn.execute("INSERT INTO bench_loaded VALUES (%s, %s)", (scale_name, want_rows))
            return time.perf_counter() - started


class PrivateCluster:
    """A throwaway PostgreSQL cluster of the same server binaries, for idle
    connections beyond the local server's max_connections: raising that
    needs a restart of a server others use. Default settings but
    max_connections and shared_buffers (the local server's)."""

    def __init__(self, version_num: int, max_connections: int, shared_buffers: str):
        self.bindir = Path(f"/usr/lib/postgresql/{version_num // 10000}/bin")
        if not (self.bindir / "initdb").exists():
            found = shutil.which("initdb")
            if found is None:
                raise RuntimeError("no initdb for a private PostgreSQL cluster")
            self.bindir = Path(found).parent
        self.max_connections, self.shared_buffers = max_connections, shared_buffers
        # In the temp folder: the socket's path must stay under 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="tl-bench-pg-"))
        self.port = free_port()

    def run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        proc = subprocess.run(prefix + list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            log_tail = ""
            if (self.dir / "log").exists():
                log_tail = " | " + " ".join((self.dir / "log").read_text().splitlines()[-3:])
            raise RuntimeError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}{log_tail}")

    def __enter__(self) -> Postgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = str(self.dir / "data")
        self.run(str(self.bindir / "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections={self.max_connections} "
                   f"-c shared_buffers={self.shared_buffers}")
        self.run(str(self.bindir / "pg_ctl"), "-D", data, "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        return Postgres("127.0.0.1", self.port, "postgres")

    def __exit__(self, *exc) -> None:
        try:
            self.run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- the workload


@dataclass
class Keys:
    days: list[str]
    per_day: list[list[int]] = field(default_factory=list)

    @staticmethod
    def sample(data: ScaleDir, per_day: int, seed: int) -> "Keys":
        """Up to `per_day` live order ids of every day, drawn from the final
        state (the rows both servers hold)."""
        import pyarrow.parquet as pq

        rng = random.Random(seed)
        parts = sorted(data.final_dir.glob("dt=*/*.parquet"))
        keys = Keys(days=[p.parent.name.split("=", 1)[1] for p in parts])
        for part in parts:
            ids = pq.ParquetFile(part).read(columns=["order_id"]).column("order_id").to_pylist()
            keys.per_day.append(sorted(rng.sample(ids, min(per_day, len(ids)))))
        return keys


class Bench:
    def __init__(self, args):
        self.args = args
        self.data = ScaleDir(args.data)
        self.warehouse = args.warehouse or self.data.work_dir("tidelake") / "warehouse"
        self.work = args.work
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.scripts_dir = self.work / "scripts"
        self.scripts_dir.mkdir()
        self.keys = Keys.sample(self.data, args.keys_per_day, args.seed)
        self.lookup_files = []
        self.aggregate_files = []
        for i, keys in enumerate(self.keys.per_day):
            path = self.scripts_dir / f"lookup-{i}.sql"
            path.write_text(lookup_script(i, keys))
            self.lookup_files.append(path)
            path = self.scripts_dir / f"aggregate-{i}.sql"
            path.write_text(aggregate_script(i))
            self.aggregate_files.append(path)
        self.pg = Postgres(args.pg_host, args.pg_port, args.pg_user)
        self.base = {"scale": self.data.root.name, "protocol": args.protocol}
        self.failures = 0  # measurements that failed (their records say why)

    def tidelake(self, name: str, max_connections: int = 200) -> TidelakeServer:
        return TidelakeServer(self.args.tidelake, self.warehouse, self.work, name, max_connections)

    def pgbench(self, target: Endpoint, scripts: list[tuple[Path, int]], clients: int, seconds: float, name: str,
                logged: bool = True) -> tuple[list[Transaction], PgbenchSummary]:
        prefix = self.work / "logs" / f"{name}-{target.system}"
        prefix.parent.mkdir(exist_ok=True)
        for old in prefix.parent.glob(prefix.name + ".*"):
            old.unlink()
        cmd = [self.args.pgbench, "-n", "-h", target.host, "-p", str(target.port), "-U", target.user,
               "-M", self.args.protocol, "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
               "-T", str(max(1, round(seconds))), *day_defines(self.keys.days)]
        cmd += [arg for path, weight in scripts for arg in ("-f", f"{path}@{weight}")]
        if logged:
            cmd += ["-l", f"--log-prefix={prefix}"]
        cmd.append(target.dbname)
        env = {**os.environ, "PGAPPNAME": "tidelake-bench-serve"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 300)
        summary = parse_pgbench_output(proc.stdout, proc.stderr)
        if proc.returncode not in (0, 2) or (summary.processed == 0 and summary.tps is None):
            raise RuntimeError(f"pgbench exited with {proc.returncode}: {proc.stderr.strip()[-400:]}")
        transactions: list[Transaction] = []
        for path in sorted(prefix.parent.glob(prefix.name + ".*")):
            with path.open() as f:
                transactions += parse_pgbench_log(f)
        return transactions, summary

    def measure(self, workload: str, target: Endpoint, scripts: list[tuple[Path, int]], clients: int, seconds: float,
                kinds: dict[str, set[int]], warmup: float) -> dict:
        """A warm-up (not measured), then the measured run with its memory sampled."""
        if warmup > 0:
            self.pgbench(target, scripts, clients, warmup, f"{workload}-warmup", logged=False)
        with MemorySampler(target.memory) as sampler:
            transactions, summary = self.pgbench(target, scripts, clients, seconds, workload)
        record = {"workload": workload, "system": target.system, **self.base, "clients": clients,
                  **run_figures(transactions, summary, seconds, kinds)}
        if target.system == "tidelake" and target.pid:
            record["peak_rss_bytes"] = max(sampler.peak, status_bytes(target.pid, "VmHWM"))
        elif sampler.peak:
            record["peak_pss_bytes"] = sampler.peak
        return record

    # -- checks: both servers return the same rows

    def check_lookups(self, tidelake: Endpoint, postgres: Endpoint) -> str:
        query = f"SELECT {LOOKUP_COLUMNS} FROM orders WHERE dt = %s AND order_id = %s"
        rng = random.Random(self.args.seed + 1)
        with pg_connect(tidelake.conninfo()) as a, pg_connect(postgres.conninfo()) as b:
            for _ in range(20):
                day = rng.randrange(len(self.keys.days))
                key = (self.keys.days[day], rng.choice(self.keys.per_day[day]))
                ours, theirs = a.execute(query, key).fetchall(), b.execute(query, key).fetchall()
                if len(ours) != 1 or ours != theirs:
                    return f"mismatch: key {key}: tidelake {ours!r:.200} postgres {theirs!r:.200}"
        return "ok"

    def aggregate_rows(self, endpoint: Endpoint, day: str) -> list[tuple]:
        with pg_connect(endpoint.conninfo()) as conn:
            rows = conn.execute(AGGREGATE.format(day="%s"), (day,)).fetchall()
        return sorted((str(s), int(n), str(v)) for s, n, v in rows)

    # -- steps

    def guarded(self, workload: str, system: str, measure) -> None:
        """One system's measurement: its record, or an error record of its
        own (the other system's measurement still runs)."""
        try:
            emit(measure())
        except Exception as e:
            self.failures += 1
            emit({"workload": workload, "system": system, "status": "error", "reason": f"{type(e).__name__}: {e}"[:400]})

    def lookup(self) -> None:
        a = self.args
        scripts = [(p, 1) for p in self.lookup_files]
        kinds = {"lookup": set(range(len(scripts)))}
        pg = self.pg.endpoint()
        with self.tidelake("lookup") as tl:
            check = self.check_lookups(tl, pg)
            for target in (tl, pg):
                def run(target=target) -> dict:
                    record = self.measure("serve_lookup", target, scripts, a.lookup_clients, a.lookup_seconds, kinds,
                                          a.warmup)
                    record["check"] = check
                    if target.system == "tidelake":
                        record["goal_met"] = (record.get("rows_per_s") or 0) >= 5000 and record.get("p99_ms", 1e9) <= 10
                    return record

                self.guarded("serve_lookup", target.system, run)

    def mixed(self) -> None:
        a = self.args
        scripts = [(p, 8) for p in self.lookup_files] + [(p, 2) for p in self.aggregate_files]
        n = len(self.lookup_files)
        kinds = {"lookup": set(range(n)), "aggregate": set(range(n, 2 * n))}
        pg = self.pg.endpoint()
        with self.tidelake("mixed") as tl:
            for target in (tl, pg):
                self.guarded("serve_mixed", target.system, lambda target=target: self.measure(
                    "serve_mixed", target, scripts, a.mixed_clients, a.mixed_seconds, kinds, a.warmup))

    def analytic(self) -> None:
        a = self.args
        scripts = [(p, 1) for p in self.aggregate_files]
        kinds = {"aggregate": set(range(len(scripts)))}
        pg = self.pg.endpoint()
        day = self.keys.days[len(self.keys.days) // 2]
        duck = self.duckdb(a.analytic_seconds, day)
        expected = duck.pop("result")
        with self.tidelake("analytic") as tl:
            for target in (tl, pg):
                def run(target=target) -> dict:
                    record = self.measure("serve_analytic", target, scripts, 1, a.analytic_seconds, kinds, min(a.warmup, 2))
                    got = self.aggregate_rows(target, day)
                    record["check"] = "ok" if got == expected else f"mismatch: {day}: {got} against DuckDB's {expected}"
                    return record

                self.guarded("serve_analytic", target.system, run)
        emit(duck)

    def duckdb(self, seconds: float, check_day: str) -> dict:
        """The aggregate in-process over the generator's Parquet files
        (partition pruning on the hive column), one query at a time."""
        import duckdb

        con = duckdb.connect()
        files = str(self.data.final_dir / "dt=*" / "*.parquet")
        con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{files}', hive_partitioning = true, "
                    "hive_types = {'dt': VARCHAR})")
        query = AGGREGATE.format(day="$1")
        rng = random.Random(self.args.seed + 2)
        days = self.keys.days
        warm_until = time.perf_counter() + min(self.args.warmup, 2)
        while time.perf_counter() < warm_until:
            con.execute(query, [rng.choice(days)]).fetchall()
        latencies = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            con.execute(query, [rng.choice(days)]).fetchall()
            latencies.append(int((time.perf_counter() - t0) * 1e6))
        elapsed = time.perf_counter() - started
        rows = con.execute(query, [check_day]).fetchall()
        result = sorted((str(s), int(n), str(v)) for s, n, v in rows)
        from common import peak_rss_bytes

        return {"workload": "serve_analytic", "system": "duckdb", **self.base, "protocol": "in-process", "clients": 1,
                "rows": len(latencies), "seconds": round(elapsed, 3), "rows_per_s": round(len(latencies) / elapsed, 1),
                **latency_figures(latencies), "errors": 0, "peak_rss_bytes": peak_rss_bytes(), "result": result}

    def idle(self) -> None:
        n = self.args.idle_connections
        with self.tidelake("idle", max_connections=n + 50) as tl:
            self.guarded("serve_idle", "tidelake", lambda: self.idle_on(tl, n))
        self.guarded("serve_idle", "postgres", lambda: self.idle_postgres(n))

    def idle_postgres(self, n: int) -> dict:
        pg_limit = int(self.pg.setting("max_connections"))
        with self.pg.admin() as conn:
            in_use = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()[0]
        if pg_limit - in_use - 5 >= n:
            return self.idle_on(self.pg.endpoint(), n, PG_DATABASE)
        version = int(self.pg.setting("server_version_num"))
        log(f"PostgreSQL allows {pg_limit} connections: idle connections go to a private cluster of the same server")
        with PrivateCluster(version, n + 20, self.pg.setting("shared_buffers")) as private:
            record = self.idle_on(private.endpoint(), n, "postgres")
            record["server"] = (f"a private cluster of the same binaries (max_connections {n + 20}, shared_buffers "
                                f"{private.setting('shared_buffers')}); the local server allows {pg_limit}")
            return record

    def idle_on(self, target: Endpoint, n: int, dbname: str | None = None) -> dict:
        """Opens `n` connections, each through its startup, and holds them:
        Tidelake's VmRSS growth, PostgreSQL's new backends' PSS (their RSS
        counts the shared buffers each touched)."""
        dbname = dbname or target.dbname
        # A few connections first, so that what a server sets up once is not counted.
        close_idle([open_idle(target.host, target.port, target.user, dbname)[0] for _ in range(5)])
        time.sleep(1)
        before = status_bytes(target.pid) if target.system == "tidelake" else 0
        sockets, pids = [], []
        started = time.perf_counter()
        try:
            for _ in range(n):
                sock, pid = open_idle(target.host, target.port, target.user, dbname)
                sockets.append(sock)
                pids.append(pid)
            opened = time.perf_counter() - started
            time.sleep(2)
            record = {"workload": "serve_idle", "system": target.system, **self.base, "protocol": "startup only",
                      "rows": n, "seconds": round(opened, 3), "rows_per_s": round(n / opened, 1), "connections": n}
            if target.system == "tidelake":
                after = status_bytes(target.pid)
                record.update({"rss_before_bytes": before, "rss_after_bytes": after,
                               "bytes_per_connection": round((after - before) / n),
                               "peak_rss_bytes": status_bytes(target.pid, "VmHWM")})
            else:
                figures = [smaps(pid) for pid in pids if pid]
                pss = sum(f.get("Pss", 0) for f in figures)
                record.update({"backends_measured": len([f for f in figures if f]), "pss_sum_bytes": pss,
                               "rss_sum_bytes": sum(f.get("Rss", 0) for f in figures),
                               "private_sum_bytes": sum(f.get("Private_Clean", 0) + f.get("Private_Dirty", 0) for f in figures),
                               "bytes_per_connection": round(pss / n)})
            return record
        finally:
            close_idle(sockets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tidelake", type=Path, required=True, help="the tidelake binary")
    parser.add_argument("--data", type=Path, required=True, help="bench/data/<scale> (its final/ and work/tidelake/)")
    parser.add_argument("--warehouse", type=Path, help="default: <data>/work/tidelake/warehouse")
    parser.add_argument("--work", type=Path, help="default: <data>/work/serve")
    parser.add_argument("--steps", default="lookup,mixed,idle,analytic")
    parser.add_argument("--lookup-clients", type=int, default=16)
    parser.add_argument("--lookup-seconds", type=float, default=30)
    parser.add_argument("--mixed-clients", type=int, default=64)
    parser.add_argument("--mixed-seconds", type=float, default=60)
    parser.add_argument("--analytic-seconds", type=float, default=20)
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument("--warmup", type=float, default=5, help="seconds of unmeasured load before each run")
    parser.add_argument("--keys-per-day", type=int, default=KEYS_PER_DAY)
    # Not `simple`: pgbench puts a variable's text into the query unquoted, and the day is a string.
    parser.add_argument("--protocol", default="prepared", choices=["prepared", "extended"])
    parser.add_argument("--pgbench", default=shutil.which("pgbench") or "pgbench")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    args.work = args.work or args.data / "work" / "serve"
    steps = [s for s in args.steps.split(",") if s]
    names = {"lookup": "serve_lookup", "mixed": "serve_mixed", "idle": "serve_idle", "analytic": "serve_analytic"}
    unknown = [s for s in steps if s not in names]
    if unknown:
        raise SystemExit(f"unknown step(s) {unknown} (of {', '.join(names)})")
    try:
        if shutil.which(args.pgbench) is None:
            raise RuntimeError(f"{args.pgbench} is not installed (Debian: apt-get install postgresql-client)")
        bench = Bench(args)
        loaded = bench.pg.load(bench.data, bench.data.root.name)
        if loaded is not None:
            log(f"loaded the orders rows into PostgreSQL ({PG_DATABASE}) in {loaded:.1f} s")
            bench.base["pg_load_seconds"] = round(loaded, 1)
    except Exception as e:  # no data or no PostgreSQL: every measurement says why
        for step in steps:
            emit({"workload": names[step], "system": "tidelake", "status": "error", "reason": str(e)[:400]})
        return 1
    failed = 0
    for step in steps:
        log(names[step])
        try:
            getattr(bench, step)()
        except Exception as e:  # one step's failure is its record; the others still run
            failed += 1
            emit({"workload": names[step], "system": "tidelake", "status": "error", "reason": f"{type(e).__name__}: {e}"[:400]})
    return 1 if failed or bench.failures else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
