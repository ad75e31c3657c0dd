"""The cdc workload: `tidelake cdc postgres` and `tidelake cdc mysql` (the
release binary) syncing a table of the local PostgreSQL, then of the local
MariaDB, into a Tidelake warehouse. Prints one JSON line per measurement,
`cdc_<source>_<phase>` (bench/README.md, "cdc"):

- snapshot: the initial sync of `--rows` rows (10 columns), from the start
  of the process to the commit of the copy; `reference_rows_per_s` is the
  same table read into /dev/null by the server's own client (`COPY (SELECT
  ...) TO STDOUT` with psql; `mariadb --quick`), timed in the same run, and
  `ratio_to_copy` Tidelake's rows/s over it.
- stream: `--rate` changes per second (60% updates, 30% inserts, 10%
  deletes) in `--txns-per-s` source transactions per second for `--seconds`;
  the delay runs from each source COMMIT returning to the commit time of the
  first Tidelake snapshot whose recorded position includes the transaction
  (p50, p99, max; and the p50 of the first and last third of the run, to show
  whether the lag stays flat). `check` compares the final table with the
  source, row by row (count and a digest of every row's values).
- large_txn: one UPDATE of every row in one source transaction: seconds
  from its COMMIT to the snapshot holding it, and the largest RSS of the
  process sampled meanwhile.

`peak_rss_bytes` is the process's VmHWM (peak RSS) when the phase ended.

    python cdc.py --tidelake target/release/tidelake [--rows 200000] [--rate 2000] [--seconds 60]
        [--sources postgres,mariadb]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt_module
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import psycopg

SOURCE_DB = "tl_bench_cdc"
COLUMNS = ["id", "customer_id", "status", "amount", "discount", "qty", "comment", "flag", "created_at", "updated_at"]
STATUSES = ["PENDING", "PAID", "PACKED", "SHIPPED", "DELIVERED"]


def log(message: str) -> None:
    sys.stderr.write(f"[cdc {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


class Postgres:
    """The local PostgreSQL (trust authentication for user postgres)."""

    name = "postgres"
    conninfo = "host=127.0.0.1 user=postgres"
    stream_marker = "cdc: streaming from slot"

    def cdc_args(self) -> list[str]:
        return ["cdc", "postgres", "--source", f"{self.conninfo} dbname={SOURCE_DB}"]

    def connect(self, database: str = SOURCE_DB, autocommit: bool = False):
        return psycopg.connect(f"{self.conninfo} dbname={database}", autocommit=autocommit)

    def drop(self) -> None:
        with self.connect("postgres", autocommit=True) as conn:
            for _ in range(100):
                conn.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = %s AND active",
                    (SOURCE_DB,),
                )
                try:
                    conn.execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = %s",
                        (SOURCE_DB,),
                    )
                    break
                except psycopg.Error:
                    time.sleep(0.1)
            conn.execute(f"DROP DATABASE IF EXISTS {SOURCE_DB} WITH (FORCE)")

    def create(self, rows: int) -> None:
        self.drop()
        with self.connect("postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {SOURCE_DB}")
        with self.connect(autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, "
                "amount numeric(12,2) NOT NULL, discount double precision NOT NULL, qty int NOT NULL, "
                "comment text NOT NULL, flag boolean NOT NULL, created_at timestamp NOT NULL, "
                "updated_at timestamp NOT NULL)"
            )
            conn.execute(
                "INSERT INTO orders SELECT i, (i * 7919) %% 100000, "
                "(ARRAY['PENDING','PAID','PACKED','SHIPPED','DELIVERED'])[1 + i %% 5], "
                "((i * 37) %% 100000) / 100.0, (i %% 100) / 100.0, 1 + i %% 9, 'comment ' || md5(i::text), "
                "i %% 3 = 0, timestamp '2024-03-01' + i * interval '1 second', "
                "timestamp '2024-03-01' + i * interval '1 second' FROM generate_series(1::bigint, %s::bigint) i",
                (rows,),
            )
            conn.execute("VACUUM ANALYZE orders")

    def reference_command(self) -> list[str]:
        return ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", SOURCE_DB, "-qAtX", "-v", "ON_ERROR_STOP=1",
                "-c", f"COPY (SELECT {', '.join(COLUMNS)} FROM orders) TO STDOUT"]

    def write(self, cur, status: str, updated: list[int], new: list[int], deleted: list[int]) -> None:
        cur.execute(
            "UPDATE orders SET amount = amount + 1, qty = qty + 1, status = %s, "
            "updated_at = localtimestamp WHERE id = ANY(%s)",
            (status, updated),
        )
        cur.execute(
            "INSERT INTO orders SELECT i, i %% 100000, 'PENDING', (i %% 1000) / 10.0, 0.25, 1, "
            "'new ' || md5(i::text), false, localtimestamp, localtimestamp FROM unnest(%s::bigint[]) i",
            (new,),
        )
        cur.execute("DELETE FROM orders WHERE id = ANY(%s)", (deleted,))

    def update_all(self, cur) -> int:
        cur.execute("UPDATE orders SET qty = qty + 1, updated_at = localtimestamp")
        return cur.rowcount

    def commit(self, conn) -> int:
        """Commits; a number that a recorded position reaches once the sink
        holds the transaction: an LSN below the commit record's end and above
        every earlier transaction's (one writer in this database)."""
        with conn.cursor() as cur:
            text = cur.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        conn.commit()
        high, low = text.split("/")
        return (int(high, 16) << 32) | int(low, 16)

    def position(self, recorded: str) -> int:
        return int(recorded, 16)

    def rows(self):
        with self.connect() as conn, conn.cursor() as cur:
            text = []
            with cur.copy(f"COPY (SELECT {', '.join(COLUMNS)} FROM orders) TO STDOUT (FORMAT csv)") as copy:
                for chunk in copy:
                    text.append(bytes(chunk).decode())
        yield from csv.reader("".join(text).splitlines())


class Mariadb:
    """The local MariaDB (root without a password, log-bin, binlog ROW)."""

    name = "mariadb"
    stream_marker = "cdc: streaming the binlog"

    def cdc_args(self) -> list[str]:
        return ["cdc", "mysql", "--source", f"mysql://root@127.0.0.1:3306/{SOURCE_DB}"]

    def connect(self, database: str | None = SOURCE_DB, autocommit: bool = False, streaming: bool = False):
        import pymysql
        import pymysql.cursors

        return pymysql.connect(
            host="127.0.0.1", port=3306, user="root", database=database, autocommit=autocommit,
            cursorclass=pymysql.cursors.SSCursor if streaming else pymysql.cursors.Cursor,
        )

    def drop(self) -> None:
        conn = self.connect(None, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SOURCE_DB}")
        conn.close()

    def create(self, rows: int) -> None:
        self.drop()
        conn = self.connect(None, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {SOURCE_DB}")
            cur.execute(f"USE {SOURCE_DB}")
            cur.execute(
                "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, status VARCHAR(16) NOT NULL, "
                "amount DECIMAL(12,2) NOT NULL, discount DOUBLE NOT NULL, qty INT NOT NULL, "
                "comment VARCHAR(64) NOT NULL, flag BOOLEAN NOT NULL, created_at DATETIME(6) NOT NULL, "
                "updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
            )
            cur.execute(
                "INSERT INTO orders SELECT seq, (seq * 7919) %% 100000, "
                "ELT(1 + seq %% 5, 'PENDING','PAID','PACKED','SHIPPED','DELIVERED'), "
                "((seq * 37) %% 100000) / 100.0, (seq %% 100) / 100.0, 1 + seq %% 9, CONCAT('comment ', MD5(seq)), "
                "seq %% 3 = 0, TIMESTAMP'2024-03-01 00:00:00' + INTERVAL seq SECOND, "
                "TIMESTAMP'2024-03-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_%s",
                (rows,),
            )
        conn.close()

    def reference_command(self) -> list[str]:
        return ["mariadb", "-h", "127.0.0.1", "-P", "3306", "-uroot", "--quick", "--batch", "--skip-column-names",
                SOURCE_DB, "-e", f"SELECT {', '.join(COLUMNS)} FROM orders"]

    def write(self, cur, status: str, updated: list[int], new: list[int], deleted: list[int]) -> None:
        if updated:
            cur.execute(
                "UPDATE orders SET amount = amount + 1, qty = qty + 1, status = %s, updated_at = NOW(6) "
                f"WHERE id IN ({', '.join(map(str, updated))})",
                (status,),
            )
        if new:
            values = ", ".join(
                f"({i}, {i % 100000}, 'PENDING', {(i % 1000) / 10.0}, 0.25, 1, CONCAT('new ', MD5({i})), false, "
                "NOW(6), NOW(6))"
                for i in new
            )
            cur.execute(f"INSERT INTO orders VALUES {values}")
        if deleted:
            cur.execute(f"DELETE FROM orders WHERE id IN ({', '.join(map(str, deleted))})")

    def update_all(self, cur) -> int:
        return cur.execute("UPDATE orders SET qty = qty + 1, updated_at = NOW(6)")

    def commit(self, conn) -> int:
        """Commits; the transaction's GTID sequence (domain 0): the binlog is
        ordered by it, so a recorded position at or past it holds it."""
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SELECT @@last_gtid")
            gtid = cur.fetchone()[0]
        return int(gtid.split("-")[2])

    def position(self, recorded: str) -> int:
        for part in recorded.split(";"):
            if part.startswith("gtid="):
                for gtid in part[len("gtid="):].split(","):
                    domain, _, sequence = gtid.split("-")
                    if domain == "0":
                        return int(sequence)
        return -1

    def rows(self):
        conn = self.connect(streaming=True)
        with conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM orders")
            for row in cur:
                yield [repr(v) if isinstance(v, float) else str(v) for v in row]
        conn.close()


SOURCES = {"postgres": Postgres, "mariadb": Mariadb}


def copy_reference(source) -> float:
    """Seconds of reading the table into /dev/null with the server's own client."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        subprocess.run(source.reference_command(), stdout=devnull, check=True)
    return time.perf_counter() - started


class Process:
    """`tidelake cdc <source>` with its stderr collected line by line."""

    def __init__(self, binary: str, warehouse: Path, source):
        self.lines: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.started = time.time()
        self.proc = subprocess.Popen(
            [binary, "--warehouse", str(warehouse), *source.cdc_args(), "--database", "ods",
             "--commit-interval", "200ms"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self.lock:
                self.lines.append((time.time(), line.rstrip("\n")))

    def wait_for(self, needle: str, timeout: float) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for at, line in self.lines:
                    if needle in line:
                        return at
            if self.proc.poll() is not None:
                raise SystemExit(f"tidelake cdc exited ({self.proc.returncode}): {self.tail()}")
            time.sleep(0.01)
        raise SystemExit(f"tidelake cdc printed no {needle!r} within {timeout} s: {self.tail()}")

    def tail(self) -> str:
        with self.lock:
            return " | ".join(line for _, line in self.lines[-5:])

    def status(self, field: str) -> int:
        """A VmHWM/VmRSS figure of /proc/<pid>/status, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def snapshots(warehouse: Path, source) -> list[tuple[int, int, int]]:
    """(id, commit time in ms, recorded position) of each snapshot of ods.orders."""
    out = []
    folder = warehouse / "ods.db" / "orders" / "snapshot"
    for path in folder.glob("snapshot-*"):
        try:
            snapshot = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        position = next(
            (v for k, v in (snapshot.get("properties") or {}).items()
             if k.startswith("tidelake.progress.cdc.") and k.endswith(".position")),
            None,
        )
        if position is not None:
            out.append((snapshot["id"], snapshot["timeMillis"], source.position(position)))
    out.sort()
    return out


def visible_at(snaps: list[tuple[int, int, int]], mark: int) -> int | None:
    """Commit time (ms) of the first snapshot recording a position at or past `mark`."""
    for _, millis, position in snaps:
        if position >= mark:
            return millis
    return None


def wait_visible(warehouse: Path, source, mark: int, timeout: float, proc: Process, sample=None) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        millis = visible_at(snapshots(warehouse, source), mark)
        if millis is not None:
            return millis
        if proc.proc.poll() is not None:
            raise SystemExit(f"tidelake cdc exited ({proc.proc.returncode}): {proc.tail()}")
        if sample is not None:
            sample()
        time.sleep(0.05)
    raise SystemExit(f"position {mark} not visible within {timeout} s: {proc.tail()}")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Writer:
    """One source connection committing transactions of updates and
    deletes of random live keys and inserts of new ones."""

    def __init__(self, source, rows: int, seed: int):
        self.source = source
        self.rng = random.Random(seed)
        self.live = list(range(1, rows + 1))
        self.index = {k: i for i, k in enumerate(self.live)}
        self.next_id = rows + 1
        self.conn = source.connect()

    def _remove(self, key: int) -> None:
        i = self.index.pop(key)
        last = self.live.pop()
        if last != key:
            self.live[i] = last
            self.index[last] = i

    def transaction(self, changes: int) -> tuple[int, float]:
        """Commits one transaction of `changes` changes (60% updates, 30%
        inserts, 10% deletes); its visibility mark and the time COMMIT returned."""
        updates = round(changes * 0.6)
        deletes = round(changes * 0.1)
        inserts = changes - updates - deletes
        touched = self.rng.sample(self.live, min(len(self.live), updates + deletes))
        updated, deleted = touched[:updates], touched[updates:]
        for key in deleted:
            self._remove(key)
        new = list(range(self.next_id, self.next_id + inserts))
        self.next_id += inserts
        for key in new:
            self.index[key] = len(self.live)
            self.live.append(key)
        with self.conn.cursor() as cur:
            self.source.write(cur, self.rng.choice(STATUSES), updated, new, deleted)
        mark = self.source.commit(self.conn)
        return mark, time.time()


def normalize(row: list[str]) -> bytes:
    """A row's values in one spelling, whichever side printed them."""
    (id_, customer, status, amount, discount, qty, comment, flag, created, updated) = row
    stamp = lambda t: dt_module.datetime.fromisoformat(t.replace("T", " ")).isoformat()  # noqa: E731
    values = [
        str(int(id_)), str(int(customer)), status, str(Decimal(amount).quantize(Decimal("0.01"))),
        repr(float(discount)), str(int(qty)), comment, "1" if flag in ("t", "true", "True", "1") else "0",
        stamp(created), stamp(updated),
    ]
    return "\x1f".join(values).encode()


def digest(rows) -> tuple[int, int]:
    """(rows, sum of the rows' hashes mod 2^64): equal for equal row sets."""
    count, total = 0, 0
    for row in rows:
        if not row:
            continue
        count += 1
        total = (total + int.from_bytes(hashlib.md5(normalize(row)).digest()[:8], "little")) % 2**64
    return count, total


def lake_digest(binary: str, warehouse: Path) -> tuple[int, int]:
    out = subprocess.run(
        [binary, "--warehouse", str(warehouse), "sql", "--format", "csv", "-e",
         f"SELECT {', '.join(COLUMNS)} FROM ods.orders"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    return digest(csv.reader(out[1:]))


def check(source, binary: str, warehouse: Path) -> str:
    expected, lake = digest(source.rows()), lake_digest(binary, warehouse)
    if expected == lake:
        return "ok"
    return f"mismatch: source {expected[0]} rows (digest {expected[1]:x}), table {lake[0]} rows (digest {lake[1]:x})"


def emit(record: dict) -> None:
    record.setdefault("system", "tidelake")
    record.setdefault("status", "ok")
    print(json.dumps(record), flush=True)


def run(source, args) -> None:
    work = args.work / source.name
    warehouse = work / "warehouse"
    shutil.rmtree(work, ignore_errors=True)
    warehouse.mkdir(parents=True)
    log(f"{source.name}: {args.rows} rows")
    source.create(args.rows)
    copy_seconds = copy_reference(source)
    rows = args.rows
    log(f"{source.name}: read into /dev/null by its client: {rows} rows in {copy_seconds:.2f} s")
    prefix = f"cdc_{source.name}"

    # 1. The initial sync.
    proc = Process(args.tidelake, warehouse, source)
    try:
        copied_at = proc.wait_for("cdc: committed the copy of", timeout=1800)
        seconds = copied_at - proc.started
        rate = rows / seconds
        reference = rows / copy_seconds
        emit({
            "workload": f"{prefix}_snapshot", "rows": rows, "seconds": round(seconds, 3),
            "rows_per_s": round(rate, 1), "reference_rows_per_s": round(reference, 1),
            "ratio_to_copy": round(rate / reference, 3), "peak_rss_bytes": proc.status("VmHWM"),
        })
        proc.wait_for(source.stream_marker, timeout=60)

        # 2. Streaming at a fixed rate.
        writer = Writer(source, rows, args.seed)
        per_txn = max(1, args.rate // args.txns_per_s)
        interval = 1 / args.txns_per_s
        commits: list[tuple[int, float]] = []
        started = time.time()
        n = 0
        while started + n * interval - started < args.seconds:
            wait = started + n * interval - time.time()
            if wait > 0:
                time.sleep(wait)
            commits.append(writer.transaction(per_txn))
            n += 1
        wrote = time.time() - started
        changes = n * per_txn
        log(f"{source.name}: wrote {changes} changes in {n} transactions in {wrote:.1f} s; waiting for the last")
        wait_visible(warehouse, source, commits[-1][0], 600, proc)
        snaps = snapshots(warehouse, source)
        delays = [visible_at(snaps, mark) - committed * 1000 for mark, committed in commits]
        third = max(1, len(delays) // 3)
        emit({
            "workload": f"{prefix}_stream", "rows": changes, "seconds": round(wrote, 3),
            "rows_per_s": round(changes / wrote, 1), "transactions": n,
            "delay_p50_ms": round(percentile(delays, 50)), "delay_p99_ms": round(percentile(delays, 99)),
            "delay_max_ms": round(max(delays)),
            "delay_p50_first_third_ms": round(percentile(delays[:third], 50)),
            "delay_p50_last_third_ms": round(percentile(delays[-third:], 50)),
            "peak_rss_bytes": proc.status("VmHWM"), "check": check(source, args.tidelake, warehouse),
        })

        # 3. One transaction updating every row.
        rss = [proc.status("VmRSS")]
        with writer.conn.cursor() as cur:
            updated = source.update_all(cur)
        mark = source.commit(writer.conn)
        committed = time.time()
        visible = wait_visible(warehouse, source, mark, 1800, proc, sample=lambda: rss.append(proc.status("VmRSS")))
        seconds = visible / 1000 - committed
        emit({
            "workload": f"{prefix}_large_txn", "rows": updated, "seconds": round(seconds, 3),
            "rows_per_s": round(updated / max(seconds, 0.001), 1), "rss_max_bytes": max(rss),
            "peak_rss_bytes": proc.status("VmHWM"), "check": check(source, args.tidelake, warehouse),
        })
        writer.conn.close()
    finally:
        code = proc.stop()
        if code != 0:
            log(f"tidelake cdc exited with {code}: {proc.tail()}")
        source.drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tidelake", required=True, help="the release tidelake binary")
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "data" / "cdc")
    parser.add_argument("--sources", default="postgres,mariadb", help="comma-separated: postgres, mariadb")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=2_000, help="changes per second")
    parser.add_argument("--txns-per-s", type=int, default=20, help="source transactions per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=20240301)
    args = parser.parse_args()
    for name in args.sources.split(","):
        if name not in SOURCES:
            raise SystemExit(f"unknown source {name!r} (of {', '.join(SOURCES)})")
        run(SOURCES[name](), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
