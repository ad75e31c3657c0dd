"""psycopg 3 against a running `tidelake serve` with limits (driven by the
Rust tests in crates/tidelake/tests/it/serve_access.rs).

Usage: limits_client.py PG_PORT HTTP_PORT CHECK, CHECK one of:
  admission  the server runs with --max-concurrent-queries 1: a statement
             waits while another holds the slot, runs once it is free, and
             a CancelRequest ends it while it waits;
  memory     the server runs with --query-memory 24MB: a join whose build
             side cannot spill fails with 53200 while another client's
             queries go on, and a sort over the limit spills and succeeds.
Prints `ok CHECK` and exits non-zero (with a traceback) when a check fails.
No timing assertions: every wait is for a state, bounded.
"""

import sys
import threading
import time
import urllib.request

import psycopg
from psycopg import errors

SLOW = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
        "WHERE n < 1000000000) SELECT count(*) FROM r")
WAIT = 60


def connect(port):
    return psycopg.connect(host="127.0.0.1", port=port, user="tester",
                           dbname="default", connect_timeout=10, autocommit=True)


def gauge(http, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for(what, condition):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Run(threading.Thread):
    """Runs one statement on its own connection; keeps the rows or the error."""

    def __init__(self, conn, sql):
        super().__init__(daemon=True)
        self.conn, self.sql, self.rows, self.error = conn, sql, None, None

    def run(self):
        try:
            self.rows = self.conn.execute(self.sql).fetchall()
        except Exception as e:  # the test inspects it
            self.error = e

    def result(self):
        self.join(WAIT)
        assert not self.is_alive(), f"{self.sql} did not end"
        return self.rows, self.error


def admission(pg, http):
    holder, waiter = connect(pg), connect(pg)
    slow = Run(holder, SLOW)
    slow.start()
    wait_for("the slow query to hold the slot",
             lambda: gauge(http, "tidelake_queries_running") == 1)
    # Cancel while queued: the statement never ran.
    queued = Run(waiter, "SELECT 1")
    queued.start()
    wait_for("a statement in line", lambda: gauge(http, "tidelake_queries_queued") == 1)
    waiter.cancel()
    rows, error = queued.result()
    assert isinstance(error, errors.QueryCanceled), (rows, error)
    assert gauge(http, "tidelake_queries_queued") == 0
    # A statement in line runs once the slot is free.
    queued = Run(waiter, "SELECT 2")
    queued.start()
    wait_for("a statement in line", lambda: gauge(http, "tidelake_queries_queued") == 1)
    holder.cancel()
    _, error = slow.result()
    assert isinstance(error, errors.QueryCanceled), error
    rows, error = queued.result()
    assert error is None and rows == [(2,)], (rows, error)
    # Many statements through one slot: all of them run, in turn.
    conns = [connect(pg) for _ in range(4)]
    runs = [Run(c, f"SELECT {i} + count(*) FROM generate_series(1, 1000)") for i, c in enumerate(conns)]
    for r in runs:
        r.start()
    for i, r in enumerate(runs):
        rows, error = r.result()
        assert error is None and rows == [(i + 1000,)], (rows, error)
    for c in conns + [holder, waiter]:
        c.close()
    print("ok admission", flush=True)


def memory(pg, http):
    hog, other = connect(pg), connect(pg)
    join = ("SELECT count(*) FROM generate_series(1, 4000000) AS a(x) "
            "JOIN generate_series(1, 4000000) AS b(y) ON a.x = b.y")
    runaway = Run(hog, join)
    runaway.start()
    # Another client's queries go on meanwhile, and after.
    answers = []
    while runaway.is_alive() or len(answers) < 3:
        answers.append(other.execute(
            "SELECT sum(x) FROM generate_series(1, 1000) AS g(x)").fetchone()[0])
        if len(answers) > 10000:
            break
    assert set(answers) == {500500}, answers
    rows, error = runaway.result()
    assert isinstance(error, errors.OutOfMemory), (rows, error)
    assert error.sqlstate == "53200", error.sqlstate
    assert "memory" in str(error), str(error)
    # The session that failed still works.
    assert hog.execute("SELECT 1").fetchone() == (1,)
    # A sort over the limit spills to disk and answers.
    rows = other.execute(
        "SELECT x FROM generate_series(1, 4000000) AS g(x) ORDER BY x DESC OFFSET 3999998"
    ).fetchall()
    assert rows == [(2,), (1,)], rows
    hog.close()
    other.close()
    print("ok memory", flush=True)


def main():
    pg, http, check = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    {"admission": admission, "memory": memory}[check](pg, http)


if __name__ == "__main__":
    main()
