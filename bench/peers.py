"""Runs one workload for one peer system and prints its measurements as JSON
lines. Meant to run in a fresh process per (workload, system), so that the
peak RSS it reports belongs to that system alone.

    python peers.py --data DIR --system deltalake --workload upsert

Input is read and decoded from the scale's Parquet files BEFORE the clock
starts, for every system alike; the clock covers the system's own work (write
and commit; plan, read and aggregate).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Iterator, Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common import (
    BUCKETS,
    OP_COLUMN,
    OP_DELETE,
    ORDER_COLUMNS,
    PARTITION_KEY,
    PRIMARY_KEY,
    PROJECTION_COLUMNS,
    TPCH_QUERY_DIR,
    ScaleDir,
    ScanAggregate,
    check_result,
    emit,
    failure,
    lookup_budget_seconds,
    measurement,
    not_applicable,
    orders_schema,
    percentile,
)

TPCH_TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]
PAIMON_ROW_KIND = "row_kind"


class NotSupported(Exception):
    """The system cannot do this workload; the message says why."""


class Filter:
    """The selective filter of the scan workload: one partition and a key range."""

    def __init__(self, dt: str, low: int, high: int):
        self.dt, self.low, self.high = dt, low, high


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def to_pyarrow_batches(stream) -> Iterator[pa.RecordBatch]:
    """Batches from any Arrow C stream (arro3, pyarrow)."""
    yield from pa.RecordBatchReader.from_stream(stream)


# --------------------------------------------------------------------------
# Peers


class Peer:
    name = ""

    def __init__(self, data: ScaleDir):
        self.data = data
        self.work = data.work_dir(self.name)

    # Each method either does the work or raises NotSupported.
    def create(self) -> None:
        """Creates the empty table (not timed)."""

    def ingest(self, table: pa.Table) -> None:
        raise NotSupported("no write path")

    def upsert_commit(self, updates: pa.Table, deletes: pa.Table) -> None:
        raise NotSupported("no upsert")

    def open(self) -> None:
        """Loads table handles before a read workload (not timed)."""

    def scan(self, columns: Optional[list[str]], where: Optional[Filter]) -> Iterator[pa.RecordBatch]:
        raise NotSupported("no scan")

    def lookup(self, dt: str, order_id: int) -> int:
        raise NotSupported("no point lookup")

    # Why the system cannot compact, if it cannot (then its compacted scans are n/a too).
    no_compaction: Optional[str] = None

    def compact(self) -> None:
        raise NotSupported(self.no_compaction or "no compaction")

    def tpch_load(self, tables: dict[str, pa.Table]) -> None:
        raise NotSupported("no SQL engine")

    def tpch_open(self) -> None:
        """Registers the loaded tables with the query engine (not timed)."""

    def tpch_query(self, sql: str) -> int:
        raise NotSupported("no SQL engine")

    def table_bytes(self) -> int:
        return dir_bytes(self.work)


class PypaimonPeer(Peer):
    """pypaimon 2.1, pure Python (its *.native.enabled options stay off).
    Deletes go through Paimon's `rowkind.field` option, its only way to write
    -D rows; the table therefore has a ninth column holding '+I' or '-D'."""

    name = "pypaimon"
    catalog_options: dict

    def __init__(self, data: ScaleDir):
        super().__init__(data)
        self.catalog_options = {"warehouse": str(self.work / "warehouse")}
        self.table = None

    def _catalog(self):
        from pypaimon import CatalogFactory

        return CatalogFactory.create(self.catalog_options)

    def create(self) -> None:
        from pypaimon import Schema

        catalog = self._catalog()
        catalog.create_database("bench", True)
        schema = orders_schema().append(pa.field(PAIMON_ROW_KIND, pa.string()))
        options = {
            "bucket": str(BUCKETS),
            "file.compression": "zstd",
            "rowkind.field": PAIMON_ROW_KIND,
        }
        catalog.create_table(
            "bench.orders",
            Schema.from_pyarrow_schema(schema, partition_keys=[PARTITION_KEY], primary_keys=PRIMARY_KEY, options=options),
            False,
        )

    def open(self) -> None:
        self.table = self._catalog().get_table("bench.orders")

    @staticmethod
    def with_kind(table: pa.Table, kind: str) -> pa.Table:
        return table.append_column(PAIMON_ROW_KIND, pa.array([kind] * table.num_rows, pa.string()))

    def _write(self, table: pa.Table) -> None:
        builder = self.table.new_batch_write_builder()
        writer = builder.new_write()
        writer.write_arrow(table)
        messages = writer.prepare_commit()
        commit = builder.new_commit()
        commit.commit(messages)
        writer.close()
        commit.close()

    def ingest(self, table: pa.Table) -> None:
        self.open()
        self._write(self.with_kind(table, "+I"))

    def upsert_commit(self, updates: pa.Table, deletes: pa.Table) -> None:
        self._write(pa.concat_tables([self.with_kind(updates, "+I"), self.with_kind(deletes, "-D")]))

    def scan(self, columns, where):
        builder = self.table.new_read_builder().with_projection(columns or ORDER_COLUMNS)
        if where is not None:
            p = builder.new_predicate_builder()
            builder = builder.with_filter(
                p.and_predicates([p.equal("dt", where.dt), p.between("order_id", where.low, where.high)])
            )
        splits = builder.new_scan().plan().splits()
        yield from builder.new_read().to_arrow_batch_reader(splits)

    def lookup(self, dt: str, order_id: int) -> int:
        builder = self.table.new_read_builder().with_projection(ORDER_COLUMNS)
        p = builder.new_predicate_builder()
        builder = builder.with_filter(p.and_predicates([p.equal("dt", dt), p.equal("order_id", order_id)]))
        splits = builder.new_scan().plan().splits()
        return builder.new_read().to_arrow(splits).num_rows

    no_compaction = "pypaimon 2.1 has no compaction (its writers only add level-0 files)"

    def tpch_load(self, tables):
        raise NotSupported(
            "pure-Python pypaimon has no SQL engine (its SQL extra runs on pypaimon-rust's DataFusion, measured as pypaimon_rust)"
        )


class PypaimonRustPeer(PypaimonPeer):
    """pypaimon-rust 0.4 (paimon-rust's Python binding). The table's schema
    file is created with pypaimon's catalog (metadata only, not timed); every
    write, commit and read goes through paimon-rust."""

    name = "pypaimon_rust"

    def open(self) -> None:
        from pypaimon_rust.datafusion import PaimonCatalog

        self.table = PaimonCatalog(self.catalog_options).get_table("bench.orders")

    def _write(self, table: pa.Table) -> None:
        builder = self.table.new_batch_write_builder()
        writer = builder.new_write()
        for batch in table.to_batches():
            writer.write_arrow(batch)
        messages = writer.prepare_commit()
        builder.new_commit().commit(messages)
        writer.close()

    def scan(self, columns, where):
        builder = self.table.new_read_builder().with_projection(columns or ORDER_COLUMNS)
        if where is not None:
            builder = builder.with_filter(
                {
                    "method": "and",
                    "children": [
                        {"method": "equal", "field": "dt", "literals": [where.dt]},
                        {"method": "between", "field": "order_id", "literals": [where.low, where.high]},
                    ],
                }
            )
        splits = builder.new_scan().plan().splits()
        yield from builder.new_read().read_arrow(splits)

    def lookup(self, dt: str, order_id: int) -> int:
        builder = (
            self.table.new_read_builder()
            .with_projection(ORDER_COLUMNS)
            .with_filter(
                {
                    "method": "and",
                    "children": [
                        {"method": "equal", "field": "dt", "literals": [dt]},
                        {"method": "equal", "field": "order_id", "literals": [order_id]},
                    ],
                }
            )
        )
        splits = builder.new_scan().plan().splits()
        return sum(b.num_rows for b in builder.new_read().read_arrow(splits))

    no_compaction = "pypaimon-rust 0.4 has no compaction (its writers only add level-0 files)"

    def tpch_load(self, tables):
        from pypaimon import CatalogFactory, Schema

        # A warehouse of its own under work/<system>/tpch, which each run starts afresh.
        self.catalog_options = {"warehouse": str(self.work / "tpch" / "warehouse")}
        catalog = CatalogFactory.create(self.catalog_options)
        catalog.create_database("tpch", True)
        for name, table in tables.items():
            catalog.create_table(
                f"tpch.{name}", Schema.from_pyarrow_schema(table.schema, options={"file.compression": "zstd"}), False
            )
        from pypaimon_rust.datafusion import PaimonCatalog

        native = PaimonCatalog(self.catalog_options)
        for name, table in tables.items():
            handle = native.get_table(f"tpch.{name}")
            builder = handle.new_batch_write_builder()
            writer = builder.new_write()
            for batch in table.to_batches():
                writer.write_arrow(batch)
            builder.new_commit().commit(writer.prepare_commit())
            writer.close()

    def tpch_open(self) -> None:
        from pypaimon_rust.datafusion import SQLContext

        self.catalog_options = {"warehouse": str(self.work / "tpch" / "warehouse")}
        self.sql = SQLContext()
        self.sql.register_catalog("paimon", self.catalog_options, default_database="tpch")
        self.sql.set_current_catalog("paimon")
        self.sql.set_current_database("tpch")

    def tpch_query(self, sql: str) -> int:
        return sum(b.num_rows for b in self.sql.sql(sql))


class DeltaPeer(Peer):
    """delta-rs through the `deltalake` package: write_deltalake, MERGE for
    upserts and deletes (one MERGE per commit), scans and queries through its
    DataFusion QueryBuilder. Delta has no buckets: partitioned by dt only."""

    name = "deltalake"

    def __init__(self, data: ScaleDir):
        super().__init__(data)
        self.uri = str(self.work / "orders")

    @staticmethod
    def writer_properties():
        from deltalake import WriterProperties

        return WriterProperties(compression="ZSTD")

    def ingest(self, table: pa.Table) -> None:
        from deltalake import write_deltalake

        write_deltalake(
            self.uri, table, partition_by=[PARTITION_KEY], mode="error", writer_properties=self.writer_properties()
        )

    def open(self) -> None:
        from deltalake import DeltaTable, QueryBuilder

        self.table = DeltaTable(self.uri)
        self.query = QueryBuilder().register("orders", self.table)

    def upsert_commit(self, updates: pa.Table, deletes: pa.Table) -> None:
        from deltalake import DeltaTable

        ops = pa.array([0] * updates.num_rows + [1] * deletes.num_rows, pa.int8())
        source = pa.concat_tables([updates, deletes]).append_column(OP_COLUMN, ops)
        (
            DeltaTable(self.uri)
            .merge(
                source,
                predicate="t.dt = s.dt AND t.order_id = s.order_id",
                source_alias="s",
                target_alias="t",
                writer_properties=self.writer_properties(),
            )
            .when_matched_delete(predicate=f"s.{OP_COLUMN} = {OP_DELETE}")
            .when_matched_update_all(except_cols=[OP_COLUMN])
            .when_not_matched_insert_all(predicate=f"s.{OP_COLUMN} <> {OP_DELETE}", except_cols=[OP_COLUMN])
            .execute()
        )

    @staticmethod
    def select(columns, where) -> str:
        sql = f"SELECT {', '.join(columns or ORDER_COLUMNS)} FROM orders"
        if where is not None:
            sql += f" WHERE dt = '{where.dt}' AND order_id BETWEEN {where.low} AND {where.high}"
        return sql

    def scan(self, columns, where):
        yield from to_pyarrow_batches(self.query.execute(self.select(columns, where)))

    def lookup(self, dt: str, order_id: int) -> int:
        reader = self.query.execute(f"SELECT * FROM orders WHERE dt = '{dt}' AND order_id = {order_id}")
        return sum(b.num_rows for b in to_pyarrow_batches(reader))

    def compact(self) -> None:
        from deltalake import DeltaTable

        DeltaTable(self.uri).optimize.compact(writer_properties=self.writer_properties())

    def tpch_load(self, tables):
        from deltalake import write_deltalake

        for name, table in tables.items():
            write_deltalake(
                str(self.work / "tpch" / name), table, mode="error", writer_properties=self.writer_properties()
            )

    def tpch_open(self) -> None:
        from deltalake import DeltaTable, QueryBuilder

        self.query = QueryBuilder()
        for name in TPCH_TABLES:
            self.query.register(name, DeltaTable(str(self.work / "tpch" / name)))

    def tpch_query(self, sql: str) -> int:
        return sum(b.num_rows for b in to_pyarrow_batches(self.query.execute(sql)))


class IcebergPeer(Peer):
    """pyiceberg with a SQL catalog on sqlite, partitioned by identity(dt).
    Its upsert joins on order_id alone (unique in the table): with two join
    columns pyiceberg builds one OR term per key, which does not finish."""

    name = "pyiceberg"

    def _catalog(self):
        from pyiceberg.catalog.sql import SqlCatalog

        warehouse = self.work / "warehouse"
        warehouse.mkdir(parents=True, exist_ok=True)
        return SqlCatalog("bench", uri=f"sqlite:///{self.work / 'catalog.db'}", warehouse=f"file://{warehouse}")

    def create(self) -> None:
        catalog = self._catalog()
        catalog.create_namespace_if_not_exists("bench")
        table = catalog.create_table(
            "bench.orders", schema=orders_schema(), properties={"write.parquet.compression-codec": "zstd"}
        )
        with table.update_spec() as spec:
            spec.add_identity(PARTITION_KEY)

    def open(self) -> None:
        self.table = self._catalog().load_table("bench.orders")

    def ingest(self, table: pa.Table) -> None:
        self.open()
        self.table.append(table)

    def upsert_commit(self, updates: pa.Table, deletes: pa.Table) -> None:
        from pyiceberg.expressions import And, In

        with self.table.transaction() as tx:
            tx.upsert(updates, join_cols=["order_id"])
            if deletes.num_rows:
                dts = pc.unique(deletes.column("dt")).to_pylist()
                tx.delete(And(In("dt", dts), In("order_id", deletes.column("order_id").to_pylist())))

    def scan(self, columns, where):
        from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThanOrEqual

        row_filter = (
            And(
                EqualTo("dt", where.dt),
                And(GreaterThanOrEqual("order_id", where.low), LessThanOrEqual("order_id", where.high)),
            )
            if where is not None
            else None
        )
        kwargs = {"selected_fields": tuple(columns or ORDER_COLUMNS)}
        if row_filter is not None:
            kwargs["row_filter"] = row_filter
        yield from self.table.scan(**kwargs).to_arrow_batch_reader()

    def lookup(self, dt: str, order_id: int) -> int:
        from pyiceberg.expressions import And, EqualTo

        return self.table.scan(row_filter=And(EqualTo("dt", dt), EqualTo("order_id", order_id))).to_arrow().num_rows

    no_compaction = (
        "pyiceberg 0.12 cannot rewrite data files; its upserts and deletes are copy-on-write, "
        "so its scans after upserts already read merged files"
    )

    def tpch_load(self, tables):
        raise NotSupported("pyiceberg has no SQL engine")


class DuckdbPeer(Peer):
    """DuckDB over plain Parquet: the table's final state (written by the
    generator, hive-partitioned, zstd) and the TPC-H files."""

    name = "duckdb"

    def ingest(self, table):
        raise NotSupported("measured as a query engine over plain Parquet; writing Parquet is the 'parquet' reference")

    def upsert_commit(self, updates, deletes):
        raise NotSupported("plain Parquet has no keys: DuckDB scans the final state the generator wrote")

    def open(self) -> None:
        import duckdb

        self.con = duckdb.connect()
        glob = self.data.final_dir / "*" / "*.parquet"
        self.con.execute(
            f"CREATE VIEW orders AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, hive_types = {{'dt': VARCHAR}})"
        )

    def aggregate(self, columns, where) -> dict:
        if columns == PROJECTION_COLUMNS:
            sql = "SELECT count(order_id), sum(amount), NULL FROM orders"
        else:
            sql = (
                "SELECT count(*), sum(amount), sum(strlen(comment)), sum(discount), max(customer_id), "
                "max(status), max(updated_at), min(order_id), max(dt) FROM orders"
            )
        params = []
        if where is not None:
            sql += " WHERE dt = ? AND order_id BETWEEN ? AND ?"
            params = [where.dt, where.low, where.high]
        row = self.con.execute(sql, params).fetchone()
        out = {"rows": row[0], "sum_amount_cents": int(row[1].scaleb(2)) if row[1] is not None else 0}
        if row[2] is not None:
            out["comment_bytes"] = int(row[2])
        return out

    def lookup(self, dt: str, order_id: int) -> int:
        return len(self.con.execute("SELECT * FROM orders WHERE dt = ? AND order_id = ?", [dt, order_id]).fetchall())

    def compact(self) -> None:
        raise NotSupported("plain Parquet files: nothing to compact (the final state is already one file per partition)")

    def tpch_load(self, tables):
        pass  # queries read the generated Parquet files in place

    def tpch_open(self) -> None:
        import duckdb

        self.con = duckdb.connect()
        for name in TPCH_TABLES:
            path = self.data.tpch_dir(self.scale.tpch_sf) / f"{name}.parquet"
            self.con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")

    def tpch_query(self, sql: str) -> int:
        return len(self.con.execute(sql).fetchall())


class ParquetPeer(Peer):
    """The physical reference: pyarrow writing and scanning the same rows as
    plain hive-partitioned Parquet (zstd), with no table format on top."""

    name = "parquet"

    def ingest(self, table: pa.Table) -> None:
        import pyarrow.dataset as ds

        ds.write_dataset(
            table,
            self.work / "orders",
            format="parquet",
            partitioning=ds.partitioning(pa.schema([pa.field(PARTITION_KEY, pa.string())]), flavor="hive"),
            file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
            max_rows_per_group=128 * 1024,
            existing_data_behavior="error",
        )

    def upsert_commit(self, updates, deletes):
        raise NotSupported("plain Parquet has no keys or deletes: the generator writes the final state instead")

    def open(self) -> None:
        import pyarrow.dataset as ds

        self.dataset = ds.dataset(
            self.data.final_dir,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([pa.field(PARTITION_KEY, pa.string())]), flavor="hive"),
        )

    def scan(self, columns, where):
        import pyarrow.dataset as ds

        expr = None
        if where is not None:
            expr = (
                (ds.field("dt") == where.dt)
                & (ds.field("order_id") >= where.low)
                & (ds.field("order_id") <= where.high)
            )
        yield from self.dataset.to_batches(columns=columns or ORDER_COLUMNS, filter=expr)

    def lookup(self, dt: str, order_id: int) -> int:
        import pyarrow.dataset as ds

        return self.dataset.to_table(filter=(ds.field("dt") == dt) & (ds.field("order_id") == order_id)).num_rows

    def compact(self) -> None:
        raise NotSupported("plain Parquet files: nothing to compact (the final state is already one file per partition)")

    def tpch_load(self, tables):
        raise NotSupported("no query engine: DuckDB over the same Parquet files is the reference")


PEERS = {p.name: p for p in [PypaimonPeer, PypaimonRustPeer, DeltaPeer, IcebergPeer, DuckdbPeer, ParquetPeer]}


# --------------------------------------------------------------------------
# Workloads


def read_tables(paths) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in paths])


def run_ingest(peer: Peer, data: ScaleDir) -> None:
    table = read_tables(data.ingest_files())  # decoded before the clock, for every system
    if table.num_rows == 0:
        raise RuntimeError(f"no ingest input under {data.ingest_dir}")
    if peer.work.exists():
        shutil.rmtree(peer.work)
    peer.work.mkdir(parents=True)
    peer.create()
    started = time.perf_counter()
    peer.ingest(table)
    seconds = time.perf_counter() - started
    emit(measurement("ingest", peer.name, table.num_rows, seconds, table_bytes=peer.table_bytes()))


def report_progress(**figures) -> None:
    """A line on stderr after each commit, so that a run stopped by its
    timeout still tells how far it got and how fast."""
    sys.stderr.write("progress: " + json.dumps(figures) + "\n")
    sys.stderr.flush()


def run_upsert(peer: Peer, data: ScaleDir) -> None:
    commits = []
    for path in data.upsert_files():
        table = pq.read_table(path)
        is_delete = pc.equal(table.column(OP_COLUMN), OP_DELETE)
        rows = table.drop_columns([OP_COLUMN])
        commits.append((rows.filter(pc.invert(is_delete)), rows.filter(is_delete)))
    peer.open()
    seconds = 0.0
    done_rows = 0
    for index, (updates, deletes) in enumerate(commits):
        started = time.perf_counter()
        peer.upsert_commit(updates, deletes)
        seconds += time.perf_counter() - started
        done_rows += updates.num_rows + deletes.num_rows
        report_progress(commits=index + 1, of=len(commits), rows=done_rows, seconds=seconds)
    rows = sum(u.num_rows + d.num_rows for u, d in commits)
    emit(
        measurement(
            "upsert",
            peer.name,
            rows,
            seconds,
            commits=len(commits),
            deletes=sum(d.num_rows for _, d in commits),
            table_bytes=peer.table_bytes(),
        )
    )


def scan_figures(peer: Peer, columns, where) -> dict:
    if isinstance(peer, DuckdbPeer):
        return peer.aggregate(columns, where)
    return ScanAggregate().add_all(peer.scan(columns, where)).checked()


def run_scans(peer: Peer, data: ScaleDir, suffix: str = "") -> None:
    expected = data.expected()
    flt = expected["scan_filter"]
    cases = [
        ("scan_full", None, None),
        ("scan_projection", PROJECTION_COLUMNS, None),
        ("scan_filter", None, Filter(flt["dt"], flt["order_id_min"], flt["order_id_max"])),
    ]
    peer.open()
    for name, columns, where in cases:
        started = time.perf_counter()
        got = scan_figures(peer, columns, where)
        seconds = time.perf_counter() - started
        want = {k: v for k, v in expected[name].items() if k in ("rows", "sum_amount_cents", "comment_bytes")}
        emit(measurement(name + suffix, peer.name, got["rows"], seconds, **check_result(got, want)))


def run_lookups(peer: Peer, data: ScaleDir) -> None:
    expected = data.expected()["lookup"]
    peer.open()
    budget = lookup_budget_seconds()
    latencies = []
    found = 0
    total = 0.0
    for dt, order_id in expected["keys"]:
        if total >= budget:
            break
        started = time.perf_counter()
        n = peer.lookup(dt, order_id)
        latencies.append(time.perf_counter() - started)
        total += latencies[-1]
        found += 1 if n > 0 else 0
    latencies.sort()
    emit(
        measurement(
            "lookup",
            peer.name,
            len(latencies),
            total,
            p50_ms=round(percentile(latencies, 50) * 1000, 3),
            p99_ms=round(percentile(latencies, 99) * 1000, 3),
            lookups_planned=len(expected["keys"]),
            **check_result({"found": found}, {"found": sum(expected["hits"][: len(latencies)])}),
        )
    )


def run_compact(peer: Peer, data: ScaleDir) -> None:
    peer.open()
    started = time.perf_counter()
    peer.compact()
    seconds = time.perf_counter() - started
    rows = data.expected()["scan_full"]["rows"]
    emit(measurement("compact", peer.name, rows, seconds, table_bytes=peer.table_bytes()))


def run_compacted_scans(peer: Peer, data: ScaleDir) -> None:
    # Plain Parquet references have nothing to compact: they rescan as the bar to meet.
    if peer.no_compaction:
        raise NotSupported(f"no compaction: {peer.no_compaction}")
    run_scans(peer, data, suffix="_compacted")


# Why no peer runs the continuous job: each needs an engine this suite does not run.
STREAM_JOB_UNSUPPORTED = {
    "pypaimon": "no continuous SQL jobs: Paimon's streaming jobs run in Flink (a JVM cluster)",
    "pypaimon_rust": "no continuous SQL jobs: Paimon's streaming jobs run in Flink (a JVM cluster)",
    "deltalake": "no continuous SQL jobs: Delta's streaming jobs run in Spark Structured Streaming (a JVM cluster)",
    "pyiceberg": "no continuous SQL jobs: Iceberg's streaming jobs run in Flink or Spark (a JVM cluster)",
    "duckdb": "no change streams over plain Parquet files",
    "parquet": "no change streams over plain Parquet files",
}


def run_stream_job(peer: Peer, data: ScaleDir) -> None:
    raise NotSupported(STREAM_JOB_UNSUPPORTED.get(peer.name, "no continuous SQL jobs"))


# Why no peer runs the doctor: none ships a diagnosis of its tables.
DOCTOR_UNSUPPORTED = {
    "pypaimon": "no operations doctor: pypaimon reads and writes tables, it does not diagnose them",
    "pypaimon_rust": "no operations doctor: pypaimon-rust reads and writes tables, it does not diagnose them",
    "deltalake": "no operations doctor: delta-rs offers maintenance commands (optimize, vacuum), no diagnosis",
    "pyiceberg": "no operations doctor: pyiceberg offers maintenance calls, no diagnosis",
    "duckdb": "plain Parquet files: no table metadata to diagnose",
    "parquet": "plain Parquet files: no table metadata to diagnose",
}


def run_doctor(peer: Peer, data: ScaleDir) -> None:
    raise NotSupported(DOCTOR_UNSUPPORTED.get(peer.name, "no operations doctor"))


def tpch_queries() -> list[tuple[str, str]]:
    return [(p.stem, p.read_text()) for p in sorted(TPCH_QUERY_DIR.glob("q*.sql"))]


def tpch_expected_rows(data: ScaleDir, sf: float) -> dict:
    path = data.tpch_dir(sf) / "expected_rows.json"
    return json.loads(path.read_text()) if path.exists() else {}


def run_tpch(peer: Peer, data: ScaleDir) -> None:
    sf = data.scale().tpch_sf
    peer.scale = data.scale()
    tpch_dir = data.tpch_dir(sf)
    tables = {name: pq.read_table(tpch_dir / f"{name}.parquet") for name in TPCH_TABLES}
    lineitem_rows = tables["lineitem"].num_rows
    target = peer.work / "tpch"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    started = time.perf_counter()
    peer.tpch_load(tables)
    load_seconds = time.perf_counter() - started
    del tables
    peer.tpch_open()
    expected_rows = tpch_expected_rows(data, sf)
    timings, result_rows, errors = {}, {}, {}
    for name, sql in tpch_queries():
        started = time.perf_counter()
        try:
            result_rows[name] = peer.tpch_query(sql)
            timings[name] = round(time.perf_counter() - started, 6)
        except Exception as e:  # one failing query must not hide the others
            errors[name] = f"{type(e).__name__}: {str(e)[:300]}"
    wrong = {q: {"expected": n, "got": result_rows.get(q)} for q, n in expected_rows.items() if q in result_rows and result_rows[q] != n}
    total = sum(timings.values())
    record = measurement(
        "tpch",
        peer.name,
        lineitem_rows,
        total,
        scale_factor=sf,
        load_seconds=round(load_seconds, 3),
        queries=timings,
        result_rows=result_rows,
    )
    record.update(check_result({}, {}) if not wrong else {"check": "mismatch", "check_diff": wrong})
    if errors:
        record["status"] = "incomplete"
        record["errors"] = errors
        record["reason"] = f"{len(errors)} of 22 queries failed; seconds cover the others"
    emit(record)


RUNNERS = {
    "ingest": [("ingest", run_ingest)],
    "upsert": [("upsert", run_upsert)],
    "scan": [("scan_full", run_scans)],
    "lookup": [("lookup", run_lookups)],
    "compact": [("compact", run_compact)],
    "scan_compacted": [("scan_full_compacted", run_compacted_scans)],
    "tpch": [("tpch", run_tpch)],
    "stream_job": [("stream_job", run_stream_job)],
    "doctor": [("doctor", run_doctor)],
}
# The measurements each workload prints, to name them in n/a lines.
MEASUREMENTS = {
    "scan": ["scan_full", "scan_projection", "scan_filter"],
    "scan_compacted": ["scan_full_compacted", "scan_projection_compacted", "scan_filter_compacted"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the scale's data directory")
    parser.add_argument("--system", required=True, choices=sorted(PEERS))
    parser.add_argument("--workload", required=True, choices=sorted(RUNNERS))
    args = parser.parse_args()
    data = ScaleDir(Path(args.data).resolve())
    peer = PEERS[args.system](data)
    for _, runner in RUNNERS[args.workload]:
        try:
            runner(peer, data)
        except NotSupported as e:
            for name in MEASUREMENTS.get(args.workload, [args.workload]):
                emit(not_applicable(name, peer.name, str(e)))
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            emit(failure(args.workload, peer.name, "error", f"{type(e).__name__}: {str(e)[:500]}"))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
