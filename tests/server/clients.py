"""Client libraries against a running `tidelake serve` (driven by the Rust
test crates/tidelake/tests/it/serve_clients.rs): SQLAlchemy 2 (inspection,
pandas.read_sql round-tripping every common type, all through psycopg) and
a replay of the statements pgjdbc and DBeaver send at startup
(tests/server/fixtures/jdbc_startup.sql).

Usage: clients.py PG_PORT. Prints one `ok NAME` line per check and exits
non-zero (with a traceback) at the first failing one.
"""

import datetime
import decimal
import json
import pathlib
import sys

import pandas as pd
import psycopg
import sqlalchemy as sa

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "jdbc_startup.sql"

# Every common type: (column, Tidelake type, SQL literal, the value pandas reads).
TYPES = [
    ("b", "BOOLEAN", "true", True),
    ("ti", "TINYINT", "CAST(-7 AS TINYINT)", -7),
    ("si", "SMALLINT", "CAST(300 AS SMALLINT)", 300),
    ("i", "INT", "70000", 70000),
    ("bi", "BIGINT", "9000000000", 9000000000),
    ("f", "FLOAT", "CAST(1.5 AS FLOAT)", 1.5),
    ("d", "DOUBLE", "CAST(2.25 AS DOUBLE)", 2.25),
    ("n", "DECIMAL(12, 3)", "123456789.125", decimal.Decimal("123456789.125")),
    ("s", "STRING", "'naïve ''q'''", "naïve 'q'"),
    ("v", "VARCHAR(10)", "'short'", "short"),
    ("by", "BYTES", "X'00ff10'", b"\x00\xff\x10"),
    ("dt", "DATE", "DATE '2026-02-28'", datetime.date(2026, 2, 28)),
    ("ts", "TIMESTAMP(6)", "TIMESTAMP '2026-11-01 10:00:00.123456'",
     datetime.datetime(2026, 11, 1, 10, 0, 0, 123456)),
    ("arr", "ARRAY<INT>", "ARRAY[1, 2, 3]", [1, 2, 3]),
]


def ok(name):
    print("ok", name, flush=True)


def engine(port, user="tester"):
    return sa.create_engine(f"postgresql+psycopg://{user}@127.0.0.1:{port}/default")


def sqlalchemy_inspection(port):
    eng = engine(port)
    columns = ", ".join(f"{c} {t}" for c, t, _, _ in TYPES)
    values = ", ".join(lit for _, _, lit, _ in TYPES)
    with eng.connect() as conn:
        conn.execute(sa.text(f"CREATE TABLE all_types (id BIGINT NOT NULL, {columns})"))
        conn.execute(sa.text(f"INSERT INTO all_types VALUES (1, {values})"))
        nulls = ", ".join("NULL" for _ in TYPES)
        conn.execute(sa.text(f"INSERT INTO all_types VALUES (2, {nulls})"))
        conn.commit()
    insp = sa.inspect(eng)
    names = insp.get_table_names()
    assert "all_types" in names, names
    assert insp.has_table("all_types") and not insp.has_table("nothing")
    cols = insp.get_columns("all_types")
    got = [(c["name"], type(c["type"]).__name__, c["nullable"]) for c in cols]
    assert got[0] == ("id", "BIGINT", False), got
    by_name = {c["name"]: c for c in cols}
    assert [c["name"] for c in cols] == ["id"] + [c for c, _, _, _ in TYPES], got
    expected_types = {
        "b": "BOOLEAN", "ti": "SMALLINT", "si": "SMALLINT", "i": "INTEGER",
        "bi": "BIGINT", "f": "REAL", "d": "DOUBLE_PRECISION", "n": "NUMERIC",
        "s": "TEXT", "by": "BYTEA", "dt": "DATE", "ts": "TIMESTAMP",
    }
    for name, kind in expected_types.items():
        assert type(by_name[name]["type"]).__name__ == kind, (name, by_name[name])
    assert by_name["n"]["type"].precision == 12 and by_name["n"]["type"].scale == 3
    assert all(c["nullable"] for c in cols[1:]), got
    ok("sqlalchemy_inspection")


def pandas_round_trip(port):
    eng = engine(port)
    # coerce_float=False keeps DECIMAL as Decimal, digit for digit.
    df = pd.read_sql("SELECT * FROM all_types ORDER BY id", eng, coerce_float=False)
    assert list(df.columns) == ["id"] + [c for c, _, _, _ in TYPES], list(df.columns)
    row = df.iloc[0]
    for column, _, _, expected in TYPES:
        value = row[column]
        if isinstance(expected, datetime.datetime):
            value = value.to_pydatetime()
        elif isinstance(expected, list):
            value = list(value)
        elif isinstance(expected, bytes):
            value = bytes(value)
        elif hasattr(value, "item"):
            value = value.item()
        assert value == expected, (column, value, expected)
    nulls = df.iloc[1]
    for column, _, _, _ in TYPES:
        assert pd.isna(nulls[column]) or nulls[column] is None, (column, nulls[column])
    # A parameterised query through SQLAlchemy, read into pandas.
    df = pd.read_sql(sa.text("SELECT id, s FROM all_types WHERE id = :id"), eng,
                     params={"id": 1})
    assert df.to_dict("records") == [{"id": 1, "s": "naïve 'q'"}], df
    ok("pandas_round_trip")


def blocks():
    """The fixture's statements with their annotations."""
    text = FIXTURE.read_text()
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        meta, sql = {}, []
        for line in lines:
            if line.startswith("-- ") and ":" in line and not sql:
                key, _, value = line[3:].partition(":")
                meta[key.strip()] = value.strip()
            elif not line.startswith("--"):
                sql.append(line)
        if sql and "expect" in meta:
            yield meta, "\n".join(sql)


def jdbc_replay(port):
    with psycopg.connect(host="127.0.0.1", port=port, user="jdbc", dbname="default",
                         autocommit=True) as conn:
        conn.execute("CREATE TABLE clients_t (id BIGINT NOT NULL, name STRING, amount DECIMAL(10, 2))")
        conn.execute("INSERT INTO clients_t VALUES (1, 'ada', 12.50)")
        bindings = {}
        rows = conn.execute("SELECT oid, nspname FROM pg_catalog.pg_namespace").fetchall()
        bindings["$namespace"] = next(o for o, n in rows if n == "default")
        rows = conn.execute(
            "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = 'clients_t'").fetchall()
        bindings["$table"] = rows[0][0]
        count = 0
        for meta, sql in blocks():
            params = [bindings.get(p, p) for p in json.loads(meta.get("params", "[]"))]
            expect = json.loads(meta["expect"])
            try:
                cur = conn.execute(sql, params or None)
                got = cur.fetchall() if cur.description else []
            except Exception as e:
                raise AssertionError(f"{meta.get('source')}: {sql}\n{e!r}") from e
            texts = [[str(v) for v in row] for row in got]
            if "rows" in expect:
                assert len(got) >= expect["rows"], (meta, sql, got)
            if "contains" in expect:
                assert any(all(v in row for v in expect["contains"]) for row in texts), (
                    meta.get("source"), sql, texts)
            count += 1
        assert count >= 15, count
    ok("jdbc_replay")


def main():
    port = int(sys.argv[1])
    sqlalchemy_inspection(port)
    pandas_round_trip(port)
    jdbc_replay(port)


if __name__ == "__main__":
    main()
