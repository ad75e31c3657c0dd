"""Many PostgreSQL sessions writing one table at once, against a running
`tidelake serve` (driven by crates/tidelake/tests/it/serve_group_commit.rs).

Usage: group_commit.py MODE PORT SESSIONS [ROUNDS]

Every session opens its own connection (autocommit), all wait at a barrier,
then run their statements at once. Prints one JSON object: for each session
the list of its statements' outcomes, `{"rows": N}` or
`{"error": SQLSTATE, "message": ...}`.

Modes:
  insert   session s inserts keys 3s, 3s+1, 3s+2 (value s) into g in one
           statement.
  update   session s runs ROUNDS times: UPDATE c SET v = v + 1 WHERE k = s + 1
           (a key of its own), then UPDATE c SET v = v + 1 WHERE k = 0 (a key
           every session updates).
  bad      like insert, but sessions 5, 11 and 17 send bad input: a NULL key,
           text into a BIGINT column, too many values.
"""

import json
import sys
import threading

import psycopg


def statements(mode, s, rounds):
    if mode == "insert":
        return [f"INSERT INTO g VALUES ({3 * s}, {s}), ({3 * s + 1}, {s}), ({3 * s + 2}, {s})"]
    if mode == "update":
        out = []
        for _ in range(rounds):
            out.append(f"UPDATE c SET v = v + 1 WHERE k = {s + 1}")
            out.append("UPDATE c SET v = v + 1 WHERE k = 0")
        return out
    if mode == "bad":
        if s == 5:
            return ["INSERT INTO g VALUES (NULL, 5)"]
        if s == 11:
            return ["INSERT INTO g VALUES (33, 'eleven')"]
        if s == 17:
            return ["INSERT INTO g VALUES (51, 17, 17)"]
        return statements("insert", s, rounds)
    raise SystemExit(f"unknown mode {mode}")


def session(port, mode, s, rounds, barrier, results):
    outcomes = []
    with psycopg.connect(
        f"host=127.0.0.1 port={port} user=tester dbname=default connect_timeout=30",
        autocommit=True,
    ) as conn:
        barrier.wait(timeout=120)
        for sql in statements(mode, s, rounds):
            try:
                cur = conn.execute(sql)
                outcomes.append({"rows": cur.rowcount})
            except psycopg.Error as e:
                outcomes.append({"error": e.sqlstate, "message": str(e)})
    results[s] = outcomes


def main():
    mode, port, sessions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    barrier = threading.Barrier(sessions)
    results = [None] * sessions
    threads = [
        threading.Thread(target=session, args=(port, mode, s, rounds, barrier, results))
        for s in range(sessions)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(results))
    # A session that died (connection refused, barrier broken) left None.
    if any(r is None for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
