"""psycopg 3 against a running `tidelake serve` (driven by the Rust test
crates/tidelake/tests/it/serve.rs): binary parameters, type OIDs in
cursor.description, a server-side cursor, sessions of their own per
connection, cancel and statement_timeout.

Usage: psycopg_client.py PORT. Prints one `ok NAME` line per check and
exits non-zero (with a traceback) at the first failing one.
"""

import datetime
import decimal
import sys
import threading
import time

import psycopg
from psycopg import errors

# OIDs of PostgreSQL's types, as clients see them in cursor.description.
INT2, INT4, INT8, TEXT, NUMERIC, BOOL, FLOAT8, TIMESTAMP, DATE = (
    21, 23, 20, 25, 1700, 16, 701, 1114, 1082)

SLOW = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000000000) SELECT count(*) FROM r"


def connect(port, **kwargs):
    return psycopg.connect(
        host="127.0.0.1", port=port, user="tester", dbname="default",
        connect_timeout=10, **kwargs)


def ok(name):
    print("ok", name, flush=True)


def binary_parameters(port):
    with connect(port, autocommit=True) as conn:
        cur = conn.cursor(binary=True)
        cur.execute(
            "SELECT id, name, amount, flag FROM py.items WHERE id >= %s AND (name IS NULL OR name <> %s) ORDER BY id",
            (2, "nobody"), binary=True)
        rows = cur.fetchall()
        assert rows == [
            (2, "b", decimal.Decimal("-0.05"), False),
            (3, None, None, None),
        ], rows
        oids = [d.type_code for d in cur.description]
        assert oids == [INT8, TEXT, NUMERIC, BOOL], oids
        # Parameters of every common type, bound in binary.
        cur.execute(
            "SELECT %s::BIGINT + 1, %s, %s, %s",
            (41, decimal.Decimal("12.50"), "it's", None), binary=True)
        assert cur.fetchone() == (42, decimal.Decimal("12.50"), "it's", None)
    ok("binary_parameters")


def description_oids(port):
    with connect(port, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT CAST(1 AS TINYINT) AS t, CAST(2 AS SMALLINT) AS s, CAST(3 AS INT) AS i, "
            "CAST(1.5 AS DOUBLE) AS d, CAST(12.5 AS DECIMAL(10, 2)) AS n, "
            "TIMESTAMP '2026-11-01 10:00:00.25' AS ts, DATE '2026-11-01' AS dt")
        oids = [d.type_code for d in cur.description]
        assert oids == [INT2, INT2, INT4, FLOAT8, NUMERIC, TIMESTAMP, DATE], oids
        row = cur.fetchone()
        assert row[0] == 1 and row[4] == decimal.Decimal("12.50"), row
        assert str(row[5]) == "2026-11-01 10:00:00.250000", row
        assert str(row[6]) == "2026-11-01", row
    ok("description_oids")


def types_round_trip(port):
    """Every common type reads back the same in text and binary format."""
    query = (
        "SELECT TIMESTAMP '2026-11-01 10:00:00.25' AS ts, DATE '1999-12-31' AS d, "
        "CAST(-123456789.123456789 AS DECIMAL(38, 9)) AS n, CAST(1.5 AS REAL) AS r, "
        "X'0102' AS b, [1, 2] AS l, named_struct('a', 1) AS s, true AS t, "
        "CAST(5 AS TINYINT) AS ti")
    expected = (
        datetime.datetime(2026, 11, 1, 10, 0, 0, 250000), datetime.date(1999, 12, 31),
        decimal.Decimal("-123456789.123456789"), 1.5, b"\x01\x02", [1, 2], {"a": 1},
        True, 5)
    with connect(port, autocommit=True) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            cur.execute(query)
            assert cur.fetchone() == expected, (binary, cur.fetchone())
            oids = [d.type_code for d in cur.description]
            assert oids == [TIMESTAMP, DATE, NUMERIC, 700, 17, 114, 114, BOOL, INT2], oids
        cur = conn.cursor(binary=True)
        cur.execute(
            "SELECT %s, %s", (datetime.date(2020, 2, 29), datetime.datetime(2020, 2, 29, 1, 2, 3, 4)),
            binary=True)
        assert cur.fetchone() == (
            datetime.date(2020, 2, 29), datetime.datetime(2020, 2, 29, 1, 2, 3, 4))
    ok("types_round_trip")


def server_side_cursor(port):
    with connect(port) as conn:
        with conn.cursor(name="big") as cur:
            cur.itersize = 7
            cur.execute("SELECT id FROM py.many ORDER BY id")
            assert [d.type_code for d in cur.description] == [INT8]
            first = cur.fetchmany(5)
            assert first == [(i,) for i in range(5)], first
            rest = cur.fetchall()
            assert rest == [(i,) for i in range(5, 50)], rest[:3]
        conn.commit()
    ok("server_side_cursor")


def sessions_are_separate(port):
    with connect(port, autocommit=True) as a, connect(port, autocommit=True) as b:
        a.execute("USE py")
        assert a.execute("SELECT count(*) FROM items").fetchone() == (3,)
        assert a.execute("SHOW search_path").fetchone() == ("py",)
        assert b.execute("SHOW search_path").fetchone() == ("default",)
        try:
            b.execute("SELECT count(*) FROM items")
            raise AssertionError("the other connection must not see USE py")
        except errors.UndefinedTable:
            pass
        b.execute("SET search_path = py")
        assert b.execute("SELECT count(*) FROM items").fetchone() == (3,)
    ok("sessions_are_separate")


def errors_carry_sqlstate(port):
    with connect(port, autocommit=True) as conn:
        try:
            conn.execute("SELECT * FROM no_such_table")
            raise AssertionError("expected an error")
        except errors.UndefinedTable as e:
            assert e.sqlstate == "42P01", e.sqlstate
        try:
            conn.execute("SELECT 1/0")
            raise AssertionError("expected an error")
        except errors.DivisionByZero as e:
            assert e.sqlstate == "22012", e.sqlstate
        # The connection still works after errors.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    ok("errors_carry_sqlstate")


def expect_canceled(conn, reason):
    """Runs the slow query; it must end with 57014 for `reason`, soon."""
    started = time.monotonic()
    try:
        conn.execute(SLOW)
        raise AssertionError("expected the query to be cancelled")
    except errors.QueryCanceled as e:
        assert e.sqlstate == "57014", e.sqlstate
        assert reason in str(e), str(e)
    assert time.monotonic() - started < 30


def statement_timeout(port):
    with connect(port, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '200ms'")
        expect_canceled(conn, "statement timeout")
        conn.execute("SET statement_timeout = 0")
        assert conn.execute("SELECT 2").fetchone() == (2,)
    ok("statement_timeout")


def cancel(port):
    with connect(port, autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        try:
            expect_canceled(conn, "user request")
        finally:
            timer.cancel()
        assert conn.execute("SELECT 3").fetchone() == (3,)
    ok("cancel")


def main():
    port = int(sys.argv[1])
    with connect(port, autocommit=True) as conn:
        conn.execute("CREATE DATABASE py")
        conn.execute(
            "CREATE TABLE py.items (id BIGINT NOT NULL, name STRING, amount DECIMAL(10, 2), "
            "flag BOOLEAN, PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '1')")
        cur = conn.execute(
            "INSERT INTO py.items VALUES (1, 'a', 12.50, true), (2, 'b', -0.05, false), "
            "(3, NULL, NULL, NULL)")
        assert cur.rowcount == 3, cur.rowcount
        conn.execute("CREATE TABLE py.many (id BIGINT)")
        conn.execute("INSERT INTO py.many SELECT unnest(range(0, 50))")
    binary_parameters(port)
    description_oids(port)
    types_round_trip(port)
    server_side_cursor(port)
    sessions_are_separate(port)
    errors_carry_sqlstate(port)
    statement_timeout(port)
    cancel(port)


if __name__ == "__main__":
    main()
