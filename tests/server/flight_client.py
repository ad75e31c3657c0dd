"""The ADBC Flight SQL driver against a running `tidelake serve --flight`
(driven by the Rust test crates/tidelake/tests/it/flight.rs): queries read
as Arrow tables, parameters (ADBC always prepares), adbc_get_objects,
adbc_get_table_schema, adbc_ingest, SQLSTATEs in errors and refused
credentials.

Usage: flight_client.py PORT [users]. With `users`, the server has a users
file with ada (admin, ada-pw), wes (writer, wes-pw) and rita (reader,
rita-pw): wrong passwords, a reader refused writes and ingest, a writer's
ingest. Prints one `ok NAME` line per check and exits non-zero (with a
traceback) at the first failing one.
"""

import decimal
import sys

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa
from adbc_driver_flightsql import DatabaseOptions
from adbc_driver_manager import AdbcStatusCode, dbapi


def connect(port, **db_kwargs):
    if not db_kwargs:
        db_kwargs = {"username": "tester", "password": "anything"}
    return flight_sql.connect(
        f"grpc://127.0.0.1:{port}", db_kwargs=db_kwargs, autocommit=True)


def ok(name):
    print("ok", name, flush=True)


def execute_and_fetch(conn):
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE items (id BIGINT NOT NULL, name STRING, amount DECIMAL(10, 2), "
            "at TIMESTAMP(6), PRIMARY KEY (id) NOT ENFORCED) WITH ('bucket' = '1')")
        cur.execute(
            "INSERT INTO items VALUES (1, 'a', 12.50, TIMESTAMP '2026-11-01 10:00:00'), "
            "(2, 'b', -0.05, NULL), (3, NULL, NULL, NULL)")
        cur.execute("SELECT id, name, amount, at FROM items ORDER BY id")
        table = cur.fetch_arrow_table()
        assert table.column("id").to_pylist() == [1, 2, 3], table
        assert table.column("name").to_pylist() == ["a", "b", None], table
        assert table.column("amount").to_pylist() == [
            decimal.Decimal("12.50"), decimal.Decimal("-0.05"), None], table
        assert table.schema.field("amount").type == pa.decimal128(10, 2), table.schema
        assert table.schema.field("id").type == pa.int64(), table.schema
        assert str(table.column("at")[0]) == "2026-11-01 10:00:00", table
    ok("execute_and_fetch")


def parameters(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM items WHERE id = ?", parameters=(2,))
        assert cur.fetchall() == [("b",)]
        cur.execute("SELECT name FROM items WHERE id = $1", parameters=(1,))
        assert cur.fetchall() == [("a",)]
        cur.execute(
            "INSERT INTO items VALUES (?, ?, ?, NULL)",
            parameters=(4, "it's; DROP TABLE items", decimal.Decimal("1.25")))
        cur.executemany(
            "INSERT INTO items VALUES (?, ?, NULL, NULL)", [(5, "e"), (6, "f")])
        cur.execute("SELECT id, name, amount FROM items WHERE id >= ? ORDER BY id",
                    parameters=(4,))
        rows = cur.fetchall()
        assert rows == [
            (4, "it's; DROP TABLE items", decimal.Decimal("1.25")),
            (5, "e", None),
            (6, "f", None),
        ], rows
    ok("parameters")


def get_objects(conn):
    info = conn.adbc_get_info()
    assert info.get("vendor_name") == "Tidelake", info
    objects = conn.adbc_get_objects(depth="all", table_name_filter="items").read_all()
    catalogs = objects.to_pylist()
    assert [c["catalog_name"] for c in catalogs] == ["tidelake"], catalogs
    schemas = {s["db_schema_name"]: s for s in catalogs[0]["catalog_db_schemas"]}
    assert "default" in schemas, schemas.keys()
    tables = schemas["default"]["db_schema_tables"]
    assert [t["table_name"] for t in tables] == ["items"], tables
    assert tables[0]["table_type"] == "TABLE"
    columns = [c["column_name"] for c in tables[0]["table_columns"]]
    assert columns == ["id", "name", "amount", "at"], columns
    listed = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
    names = [s["db_schema_name"] for s in listed[0]["catalog_db_schemas"]]
    assert "default" in names, names
    assert conn.adbc_get_table_types() == ["TABLE"]
    ok("get_objects")


def get_table_schema(conn):
    schema = conn.adbc_get_table_schema("items", db_schema_filter="default")
    assert schema.names == ["id", "name", "amount", "at"], schema
    assert schema.field("amount").type == pa.decimal128(10, 2), schema
    assert not schema.field("id").nullable, schema
    ok("get_table_schema")


def ingest(conn):
    data = pa.table({
        "k": pa.array([1, 2, 3], pa.int64()),
        "v": pa.array(["x", None, "z"]),
        "f": pa.array([1.5, 2.5, None]),
    })
    with conn.cursor() as cur:
        assert cur.adbc_ingest("ingested", data, mode="create") == 3
        assert cur.adbc_ingest(
            "ingested", data, mode="append", db_schema_name="default") == 3
        cur.execute("SELECT count(*), count(v), sum(k), sum(f) FROM ingested")
        assert cur.fetchone() == (6, 4, 12, 8.0)
        try:
            cur.adbc_ingest("ingested", data, mode="create")
        except dbapi.Error as e:
            assert "already exists" in str(e), e
        else:
            raise AssertionError("creating an existing table must fail")
        try:
            cur.adbc_ingest("missing", data, mode="append")
        except dbapi.Error as e:
            assert "does not exist" in str(e), e
        else:
            raise AssertionError("appending to a missing table must fail")
        # A value that does not fit the column fails the whole ingest.
        bad = pa.table({"k": pa.array([7], pa.int64()), "v": pa.array(["y"]),
                        "f": pa.array(["not a number"])})
        try:
            cur.adbc_ingest("ingested", bad, mode="append")
        except dbapi.Error:
            pass
        else:
            raise AssertionError("a value of the wrong type must fail the ingest")
        cur.execute("SELECT count(*) FROM ingested")
        assert cur.fetchone() == (6,)
    ok("ingest")


def errors_carry_sqlstate(conn):
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT * FROM nothing")
            cur.fetchall()
        except dbapi.Error as e:
            assert "42P01" in str(e), e
            assert e.status_code == AdbcStatusCode.NOT_FOUND, e.status_code
        else:
            raise AssertionError("an unknown table must fail")
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [(1,)]
    ok("errors_carry_sqlstate")


def bad_credentials(port):
    for header in ["Bearer made-up-token", "Garbage"]:
        try:
            with connect(port, **{DatabaseOptions.AUTHORIZATION_HEADER.value: header}) as conn:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchall()
        except dbapi.Error as e:
            assert e.status_code == AdbcStatusCode.UNAUTHENTICATED, (header, e)
        else:
            raise AssertionError(f"authorization {header!r} must be refused")
    ok("bad_credentials")


def expect_error(status, action, *needles):
    """Runs `action`; it must fail with ADBC status `status` and a message
    holding every needle."""
    try:
        action()
    except dbapi.Error as e:
        assert e.status_code == status, (e.status_code, e)
        for needle in needles:
            assert needle in str(e), (needle, e)
    else:
        raise AssertionError(f"expected {status}")


def wrong_password(port):
    def attempt(user, password):
        def run():
            with connect(port, username=user, password=password) as conn:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchall()
        return run
    for user, password in [("ada", "wrong"), ("nobody", "ada-pw")]:
        expect_error(AdbcStatusCode.UNAUTHENTICATED, attempt(user, password))
    ok("wrong_password")


def reader_refused(port):
    with connect(port, username="ada", password="ada-pw") as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id BIGINT, v STRING)")
            cur.execute("INSERT INTO t VALUES (1, 'a')")
    data = pa.table({"id": pa.array([7], pa.int64()), "v": pa.array(["r"])})
    with connect(port, username="rita", password="rita-pw") as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM t")
            assert cur.fetchone() == (1,)

            def insert():
                cur.execute("INSERT INTO t VALUES (?, ?)", parameters=(2, "b"))

            expect_error(AdbcStatusCode.UNAUTHORIZED, insert, "42501", "role reader")
            expect_error(AdbcStatusCode.UNAUTHORIZED,
                         lambda: cur.adbc_ingest("t", data, mode="append"), "42501")
            expect_error(AdbcStatusCode.UNAUTHORIZED,
                         lambda: cur.adbc_ingest("made", data, mode="create"), "42501")
            cur.execute("SELECT count(*) FROM t")
            assert cur.fetchone() == (1,)
    ok("reader_refused")


def writer_ingests(port):
    data = pa.table({"id": pa.array([8, 9], pa.int64()), "v": pa.array(["w", None])})
    with connect(port, username="wes", password="wes-pw") as conn:
        with conn.cursor() as cur:
            assert cur.adbc_ingest("t", data, mode="append") == 2
            cur.execute("SELECT count(*), max(id) FROM t")
            assert cur.fetchone() == (3, 9)
    ok("writer_ingests")


def main():
    port = int(sys.argv[1])
    if sys.argv[2:] == ["users"]:
        # A server with the users ada (admin), wes (writer), rita (reader).
        wrong_password(port)
        reader_refused(port)
        writer_ingests(port)
        return
    with connect(port) as conn:
        execute_and_fetch(conn)
        parameters(conn)
        get_objects(conn)
        get_table_schema(conn)
        ingest(conn)
        errors_carry_sqlstate(conn)
    bad_credentials(port)


if __name__ == "__main__":
    main()
