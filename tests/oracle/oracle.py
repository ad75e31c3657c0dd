#!/usr/bin/env python3
"""Reads and writes Paimon tables with Paimon's own implementations, printing
rows in the canonical encoding of `canonical.py`, for Tidelake's interop tests.

  oracle.py read  --warehouse DIR --table db.t --impl pypaimon|pypaimon-rust [--snapshot N]
  oracle.py write --warehouse DIR --spec FILE.json
  oracle.py canon (--schema FILE.json | --warehouse DIR --table db.t [--snapshot N]) < rows.jsonl
  oracle.py files --warehouse DIR --table db.t [--snapshot N]
  oracle.py batch < jobs.json

`read` and `canon` print one canonical row per line, sorted. `batch` runs a
JSON list of jobs in one interpreter (importing pypaimon is slow) and prints
one JSON result per job, {"ok": true, ...} or {"ok": false, "error": "..."};
it exits 1 if any job failed, after running them all. Jobs:

  {"op": "read", "warehouse", "table", "impl", "snapshot"?}     -> "rows"
  {"op": "write", "warehouse", "spec"}                          -> "commits"
  {"op": "canon", "fields" | "schema" | "warehouse"+"table", "lines"} -> "rows"
  {"op": "files", "warehouse", "table", "snapshot"?}            -> "files"
  {"op": "check", "label", "fields", "expected": [rows], "actual": <read or
   canon job>, "primary_keys"?, "partition_keys"?, "options"?}
     passes when the actual rows equal the expected rows exactly (as a
     multiset, canonically encoded); for a read, the table's schema must also
     have exactly `fields` (names, order, types, nullability) and the given
     keys and options. With "expect_error": TEXT the read must instead fail
     with an error containing TEXT: a known limitation of an implementation,
     proven so that the check fails (and says so) once it is lifted.

`files` lists the live data files of a snapshot as pypaimon's scan plans
them (level 0 included, even where batch reads skip it), one per line: partition values (JSON list), bucket, level, row count
and file name, tab-separated and sorted; the interop tests use it to prove
that compaction left files above level 0.

Write spec: {"database", "table", "fields": [{"name", "type"}], "primary_keys",
"partition_keys", "options", "commits": [[{"kind": "+I", "row": {...}}, ...]]}.
Each inner list is one pypaimon commit. pypaimon 2.1 takes a row's kind only
from the column named by the table option 'rowkind.field'; a spec with any
kind other than +I must declare that STRING column, and the writer fills it
with each entry's kind.

pypaimon's `*.native.enabled` options are forced off, so pypaimon never
delegates to paimon-rust and the two stay independent oracles.
"""

import argparse
import json
import os
import sys
import traceback
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import canonical  # noqa: E402
from canonical import DataType, canonical_row, parse_json_exact, python_value  # noqa: E402

IMPLEMENTATIONS = ("pypaimon", "pypaimon-rust")
ROW_KINDS = ("+I", "-U", "+U", "-D")
PYPAIMON_PURE_PYTHON = {
    "read.native.enabled": "false",
    "scan.native-plan.enabled": "false",
    "write.native.enabled": "false",
    "commit.native.enabled": "false",
}


class OracleError(Exception):
    """A failure the caller should see as one clear message."""


# ------------------------------------------------------------ table files


def local_path(warehouse: str) -> str:
    """The warehouse as an absolute local path (pypaimon-rust needs one)."""
    path = warehouse[len("file://") :] if warehouse.startswith("file://") else warehouse
    return os.path.abspath(path)


def split_identifier(identifier: str) -> Tuple[str, str]:
    database, dot, table = identifier.partition(".")
    if not dot or not database or not table:
        raise OracleError("table must be given as database.table, got {!r}".format(identifier))
    return database, table


def table_path(warehouse: str, identifier: str) -> str:
    """The folder of a table's snapshots and schemas: for `db.t$branch_b`,
    the branch's folder `t/branch/branch-b` (Paimon's layout)."""
    database, table = split_identifier(identifier)
    table, _, branch = table.partition("$branch_")
    root = os.path.join(local_path(warehouse), database + ".db", table)
    return os.path.join(root, "branch", "branch-" + branch) if branch else root


def _read_json_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise OracleError("cannot read {}: {}".format(path, error)) from None
    except ValueError as error:
        raise OracleError("{} is not valid JSON: {}".format(path, error)) from None


def _numbered_files(directory: str, prefix: str) -> List[int]:
    try:
        names = os.listdir(directory)
    except OSError as error:
        raise OracleError("cannot list {}: {}".format(directory, error)) from None
    return sorted(int(n[len(prefix) :]) for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit())


def table_schema_json(warehouse: str, identifier: str, snapshot: Optional[int] = None) -> Dict[str, Any]:
    """The schema JSON a read sees: the snapshot's schema for time travel,
    else the table's newest schema."""
    root = table_path(warehouse, identifier)
    if snapshot is not None:
        snapshot_json = _read_json_file(os.path.join(root, "snapshot", "snapshot-{}".format(snapshot)))
        schema_id = snapshot_json.get("schemaId")
        if not isinstance(schema_id, int):
            raise OracleError("snapshot {} of {} has no schemaId".format(snapshot, identifier))
    else:
        ids = _numbered_files(os.path.join(root, "schema"), "schema-")
        if not ids:
            raise OracleError("table {} has no schema files under {}".format(identifier, root))
        schema_id = ids[-1]
    return _read_json_file(os.path.join(root, "schema", "schema-{}".format(schema_id)))


def fields_of(field_specs: List[Dict[str, Any]]) -> List[Tuple[str, DataType]]:
    """[(name, type)] from a schema's or a spec's field list."""
    fields = []
    for spec in field_specs:
        if "name" not in spec or "type" not in spec:
            raise OracleError("a field needs 'name' and 'type': {!r}".format(spec))
        fields.append((spec["name"], canonical.parse_type(spec["type"])))
    return fields


# ------------------------------------------------------------------ reads


def _arrow_rows(arrow_table) -> List[Dict[str, Any]]:
    return arrow_table.to_pylist()


def _read_pypaimon(warehouse: str, identifier: str, snapshot: Optional[int]):
    from pypaimon import CatalogFactory

    catalog = CatalogFactory.create({"warehouse": local_path(warehouse)})
    table = catalog.get_table(identifier)
    options = dict(PYPAIMON_PURE_PYTHON)
    if snapshot is not None:
        options["scan.snapshot-id"] = str(snapshot)
    table = table.copy(options)
    read_builder = table.new_read_builder()
    splits = read_builder.new_scan().plan().splits()
    return read_builder.new_read().to_arrow(splits)


def _read_pypaimon_rust(warehouse: str, identifier: str, snapshot: Optional[int]):
    import pyarrow
    from pypaimon_rust.datafusion import PaimonCatalog

    catalog = PaimonCatalog({"warehouse": local_path(warehouse)})
    table = catalog.get_table(identifier)
    options = {"scan.snapshot-id": str(snapshot)} if snapshot is not None else None
    read_builder = table.new_read_builder(options)
    plan = read_builder.new_scan().plan()
    if snapshot is not None and plan.snapshot_id() != snapshot:
        raise OracleError("pypaimon-rust planned snapshot {} instead of {}".format(plan.snapshot_id(), snapshot))
    batches = read_builder.new_read().read(plan.splits())
    if not batches:
        return None
    return pyarrow.Table.from_batches(batches)


def live_files(warehouse: str, identifier: str, snapshot: Optional[int] = None) -> List[Dict[str, Any]]:
    """The data files pypaimon plans for a full batch read of the snapshot
    (the latest without one): partition, bucket, level, rows, file name."""
    from pypaimon import CatalogFactory

    catalog = CatalogFactory.create({"warehouse": local_path(warehouse)})
    options = dict(PYPAIMON_PURE_PYTHON)
    # Batch reads of first-row and deletion-vector tables skip level 0
    # (Java's batchScanSkipLevel0); these two options keep it in the listing.
    options["merge-engine"] = "deduplicate"
    options["deletion-vectors.enabled"] = "false"
    if snapshot is not None:
        options["scan.snapshot-id"] = str(snapshot)
    table = catalog.get_table(identifier).copy(options)
    files = []
    for split in table.new_read_builder().new_scan().plan().splits():
        partition = [
            v if v is None or isinstance(v, (str, int, float, bool)) else str(v)
            for v in getattr(split.partition, "values", [])
        ]
        for meta in split.files:
            files.append(
                {
                    "partition": partition,
                    "bucket": split.bucket,
                    "level": meta.level,
                    "rows": meta.row_count,
                    "file": meta.file_name,
                }
            )
    return sorted(files, key=lambda f: (json.dumps(f["partition"]), f["bucket"], f["level"], f["file"]))


def file_line(entry: Dict[str, Any]) -> str:
    return "\t".join(
        [json.dumps(entry["partition"], ensure_ascii=False), str(entry["bucket"]), str(entry["level"]), str(entry["rows"]), entry["file"]]
    )


def read_rows(warehouse: str, identifier: str, impl: str, snapshot: Optional[int] = None) -> List[Dict[str, Any]]:
    """Every live row of the table (all splits, primary keys merged) as read
    by `impl`, canonically encoded."""
    if impl == "pypaimon":
        arrow_table = _read_pypaimon(warehouse, identifier, snapshot)
    elif impl == "pypaimon-rust":
        arrow_table = _read_pypaimon_rust(warehouse, identifier, snapshot)
    else:
        raise OracleError("unknown implementation {!r}; expected one of {}".format(impl, IMPLEMENTATIONS))
    if arrow_table is None:
        return []
    types = dict(fields_of(table_schema_json(warehouse, identifier, snapshot)["fields"]))
    missing = [name for name in arrow_table.column_names if name not in types]
    if missing:
        raise OracleError("{} returned columns {} that the schema of {} lacks".format(impl, missing, identifier))
    fields = [(name, types[name]) for name in arrow_table.column_names]
    return [
        canonical_row(fields, row, "{} row {}".format(identifier, i)) for i, row in enumerate(_arrow_rows(arrow_table))
    ]


# ----------------------------------------------------------------- writes


def _pypaimon_type(data_type: DataType, next_id):
    from pypaimon.schema.data_types import ArrayType, AtomicType, DataField, MapType, MultisetType, RowType

    if data_type.kind == "ARRAY":
        return ArrayType(data_type.nullable, _pypaimon_type(data_type.element, next_id))
    if data_type.kind == "MULTISET":
        return MultisetType(data_type.nullable, _pypaimon_type(data_type.element, next_id))
    if data_type.kind == "MAP":
        return MapType(
            data_type.nullable, _pypaimon_type(data_type.key, next_id), _pypaimon_type(data_type.value, next_id)
        )
    if data_type.kind == "ROW":
        nested = []
        for name, field_type in data_type.fields:
            field_id = next_id()
            nested.append(DataField(field_id, name, _pypaimon_type(field_type, next_id)))
        return RowType(data_type.nullable, nested)
    return AtomicType(data_type.spelling, data_type.nullable)


def _pypaimon_schema(spec: Dict[str, Any]):
    from pypaimon import Schema
    from pypaimon.schema.data_types import DataField

    counter = [-1]

    def next_id() -> int:
        counter[0] += 1
        return counter[0]

    fields = []
    for name, data_type in fields_of(spec.get("fields", [])):
        field_id = next_id()
        fields.append(DataField(field_id, name, _pypaimon_type(data_type, next_id)))
    return Schema(
        fields,
        list(spec.get("partition_keys", [])),
        list(spec.get("primary_keys", [])),
        {str(k): str(v) for k, v in spec.get("options", {}).items()},
    )


def _commit_rows(
    commit: List[Dict[str, Any]],
    fields: List[Tuple[str, DataType]],
    row_kind_field: Optional[str],
    primary_key_table: bool,
    where: str,
) -> List[Dict[str, Any]]:
    names = {name for name, _ in fields}
    rows = []
    for index, entry in enumerate(commit):
        at = "{} entry {}".format(where, index)
        if not isinstance(entry, dict) or "row" not in entry:
            raise OracleError('{}: expected {{"kind", "row"}}, got {!r}'.format(at, entry))
        kind = entry.get("kind", "+I")
        if kind not in ROW_KINDS:
            raise OracleError("{}: row kind must be one of {}, got {!r}".format(at, ROW_KINDS, kind))
        row = dict(entry["row"])
        unknown = sorted(set(row) - names)
        if unknown:
            raise OracleError("{}: unknown column(s) {}".format(at, unknown))
        if kind != "+I" or row_kind_field is not None:
            if not primary_key_table:
                raise OracleError("{}: row kind {} needs a primary-key table".format(at, kind))
            if row_kind_field is None:
                raise OracleError(
                    "{}: pypaimon 2.1 takes row kinds only from the column named by the option "
                    "'rowkind.field'; declare a STRING column and set that option".format(at)
                )
            row[row_kind_field] = kind
        rows.append({name: python_value(data_type, row.get(name), at + "." + name) for name, data_type in fields})
    return rows


def write_table(warehouse: str, spec: Dict[str, Any]) -> int:
    """Creates the spec's table if absent, then makes one pypaimon commit per
    list in `commits`. Returns the number of commits made."""
    import pyarrow
    from pypaimon import CatalogFactory
    from pypaimon.schema.data_types import PyarrowFieldParser

    for key in ("database", "table"):
        if not isinstance(spec.get(key), str):
            raise OracleError("the write spec needs a string {!r}".format(key))
    identifier = "{}.{}".format(spec["database"], spec["table"])
    catalog = CatalogFactory.create({"warehouse": local_path(warehouse)})
    catalog.create_database(spec["database"], True)
    if not os.path.isdir(os.path.join(table_path(warehouse, identifier), "schema")):
        catalog.create_table(identifier, _pypaimon_schema(spec), False)
    table = catalog.get_table(identifier).copy(dict(PYPAIMON_PURE_PYTHON))
    schema_json = table_schema_json(warehouse, identifier)
    fields = fields_of(schema_json["fields"])
    row_kind_field = schema_json.get("options", {}).get("rowkind.field")
    primary_key_table = bool(schema_json.get("primaryKeys"))
    arrow_schema = PyarrowFieldParser.from_paimon_schema(table.table_schema.fields)
    commits = spec.get("commits", [])
    for number, commit in enumerate(commits):
        rows = _commit_rows(commit, fields, row_kind_field, primary_key_table, "commit {}".format(number))
        write_builder = table.new_batch_write_builder()
        table_write = write_builder.new_write()
        table_commit = write_builder.new_commit()
        try:
            if rows:
                table_write.write_arrow(pyarrow.Table.from_pylist(rows, schema=arrow_schema))
            table_commit.commit(table_write.prepare_commit())
        finally:
            table_write.close()
            table_commit.close()
    return len(commits)


# ------------------------------------------------------------ canon input


def canon_rows(lines: List[str], fields: List[Tuple[str, DataType]]) -> List[Dict[str, Any]]:
    """Canonical rows from JSON lines (one object or positional list each),
    e.g. what `tidelake sql --format json` prints."""
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = parse_json_exact(line)
        except ValueError as error:
            raise OracleError("line {} is not JSON: {}: {!r}".format(number, error, line[:200])) from None
        rows.append(canonical_row(fields, value, "line {}".format(number)))
    return rows


def schema_fields(
    schema_file: Optional[str], warehouse: Optional[str], identifier: Optional[str], snapshot: Optional[int]
) -> List[Tuple[str, DataType]]:
    if schema_file is not None:
        return fields_of(_read_json_file(schema_file).get("fields", []))
    if warehouse is None or identifier is None:
        raise OracleError("canon needs --schema FILE, or --warehouse and --table")
    return fields_of(table_schema_json(warehouse, identifier, snapshot)["fields"])


# ------------------------------------------------------------------ check


def same_type(left: DataType, right: DataType) -> bool:
    """Type equality that ignores spelling (STRING = VARCHAR(2147483647),
    TIMESTAMP_LTZ(3) = TIMESTAMP(3) WITH LOCAL TIME ZONE)."""
    if (left.kind, left.nullable, left.precision, left.scale, left.length) != (
        right.kind,
        right.nullable,
        right.precision,
        right.scale,
        right.length,
    ):
        return False
    for a, b in ((left.element, right.element), (left.key, right.key), (left.value, right.value)):
        if (a is None) != (b is None) or (a is not None and not same_type(a, b)):
            return False
    if len(left.fields) != len(right.fields):
        return False
    return all(na == nb and same_type(ta, tb) for (na, ta), (nb, tb) in zip(left.fields, right.fields))


def schema_mismatches(schema_json: Dict[str, Any], job: Dict[str, Any]) -> List[str]:
    """How a table's schema JSON differs from what a check job declares."""
    problems = []
    declared = fields_of(job["fields"])
    stored = fields_of(schema_json.get("fields", []))
    if [n for n, _ in declared] != [n for n, _ in stored]:
        problems.append("columns are {} but {} were declared".format([n for n, _ in stored], [n for n, _ in declared]))
    else:
        for (name, want), (_, have) in zip(declared, stored):
            if not same_type(want, have):
                problems.append("column {} has type {} but {} was declared".format(name, have.sql(), want.sql()))
    for key, json_key in (("primary_keys", "primaryKeys"), ("partition_keys", "partitionKeys")):
        if key in job and list(job[key]) != list(schema_json.get(json_key, [])):
            problems.append("{} are {} but {} were declared".format(json_key, schema_json.get(json_key), job[key]))
    stored_options = schema_json.get("options", {})
    for option, value in job.get("options", {}).items():
        if stored_options.get(option) != str(value):
            problems.append("option {!r} is {!r}, expected {!r}".format(option, stored_options.get(option), value))
    return problems


def row_differences(expected: List[str], actual: List[str]) -> List[str]:
    """Lines missing from and unexpected in `actual`, as a multiset."""
    from collections import Counter

    missing = Counter(expected) - Counter(actual)
    unexpected = Counter(actual) - Counter(expected)
    lines = ["  missing    {}".format(line) for line in sorted(missing.elements())]
    lines += ["  unexpected {}".format(line) for line in sorted(unexpected.elements())]
    return lines


def check(job: Dict[str, Any]) -> Dict[str, Any]:
    fields = fields_of(job["fields"])
    expected = canonical.sorted_lines(
        [canonical_row(fields, row, "expected row {}".format(i)) for i, row in enumerate(job["expected"])]
    )
    actual_job = job["actual"]
    problems = []
    if "expect_error" in job:
        return expect_error(job)
    if actual_job.get("op") == "read":
        schema_json = table_schema_json(actual_job["warehouse"], actual_job["table"], actual_job.get("snapshot"))
        problems += schema_mismatches(schema_json, job)
        rows = read_rows(actual_job["warehouse"], actual_job["table"], actual_job["impl"], actual_job.get("snapshot"))
    elif actual_job.get("op") == "canon":
        rows = canon_rows(actual_job.get("lines", []), fields)
    else:
        raise OracleError("a check's actual job must be a read or a canon, got {!r}".format(actual_job.get("op")))
    differences = row_differences(expected, canonical.sorted_lines(rows))
    if differences:
        problems.append(
            "{} rows expected, {} read; differences:\n{}".format(len(expected), len(rows), "\n".join(differences))
        )
    if problems:
        return {"ok": False, "label": job.get("label", ""), "error": "\n".join(problems)}
    return {"ok": True, "label": job.get("label", ""), "rows": len(rows)}


def expect_error(job: Dict[str, Any]) -> Dict[str, Any]:
    """A check of a known limitation: the read must fail with the text."""
    actual_job, text = job["actual"], str(job["expect_error"])
    label = job.get("label", "")
    if actual_job.get("op") != "read":
        raise OracleError("expect_error needs a read job, got {!r}".format(actual_job.get("op")))
    try:
        rows = read_rows(actual_job["warehouse"], actual_job["table"], actual_job["impl"], actual_job.get("snapshot"))
    except Exception as error:  # the implementations raise many kinds
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        if text in detail:
            return {"ok": True, "label": label, "error_seen": detail[:300]}
        return {"ok": False, "label": label, "error": "expected an error with {!r}, got: {}".format(text, detail)}
    return {
        "ok": False,
        "label": label,
        "error": "the known limitation is lifted: {} read {} rows instead of failing with {!r}; "
        "check its rows instead".format(actual_job.get("impl"), len(rows), text),
    }


def create_branch(job: Dict[str, Any]) -> Dict[str, Any]:
    """pypaimon creates branch `branch` of `table`, from `tag` when given."""
    from pypaimon import CatalogFactory

    catalog = CatalogFactory.create({"warehouse": local_path(job["warehouse"])})
    catalog.create_branch(job["table"], job["branch"], job.get("tag"))
    return {"ok": True, "label": job.get("label", "")}


# -------------------------------------------------------------------- CLI


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    """Runs one batch job; failures become {"ok": false, "error": ...}."""
    try:
        op = job.get("op")
        if op == "read":
            rows = read_rows(job["warehouse"], job["table"], job["impl"], job.get("snapshot"))
            return {"ok": True, "rows": sorted(rows, key=canonical.row_line)}
        if op == "write":
            spec = job["spec"] if "spec" in job else _read_json_file(job["spec_file"])
            return {"ok": True, "commits": write_table(job["warehouse"], spec)}
        if op == "canon":
            fields = (
                fields_of(job["fields"])
                if "fields" in job
                else schema_fields(job.get("schema"), job.get("warehouse"), job.get("table"), job.get("snapshot"))
            )
            rows = canon_rows(job.get("lines", []), fields)
            return {"ok": True, "rows": sorted(rows, key=canonical.row_line)}
        if op == "files":
            return {"ok": True, "files": live_files(job["warehouse"], job["table"], job.get("snapshot"))}
        if op == "check":
            return check(job)
        if op == "branch":
            return create_branch(job)
        raise OracleError("unknown op {!r}; expected read, write, canon, files, check or branch".format(op))
    except KeyError as error:
        return {"ok": False, "label": job.get("label", ""), "error": "job {!r} lacks {}".format(job.get("op"), error)}
    except Exception as error:  # one failing job must not hide the others' results
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return {"ok": False, "label": job.get("label", ""), "error": detail}


def run_batch(jobs: Any) -> bool:
    """Runs every job, printing each result as a JSON line and each failure
    readably on stderr. True when all passed."""
    if not isinstance(jobs, list):
        raise OracleError("batch expects a JSON list of jobs on stdin")
    all_ok = True
    for number, job in enumerate(jobs):
        result = run_job(job) if isinstance(job, dict) else {"ok": False, "error": "a job must be an object"}
        print(json.dumps(result, ensure_ascii=False, sort_keys=True), flush=True)
        if not result["ok"]:
            all_ok = False
            label = result.get("label") or "job {} ({})".format(number, job.get("op") if isinstance(job, dict) else "?")
            print("FAILED {}: {}".format(label, result["error"]), file=sys.stderr, flush=True)
    return all_ok


def _print_rows(rows: List[Dict[str, Any]]) -> None:
    for line in canonical.sorted_lines(rows):
        print(line)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    read = commands.add_parser("read", help="print a table's rows canonically")
    read.add_argument("--warehouse", required=True)
    read.add_argument("--table", required=True, help="database.table")
    read.add_argument("--impl", required=True, choices=IMPLEMENTATIONS)
    read.add_argument("--snapshot", type=int)

    write = commands.add_parser("write", help="create and write a table with pypaimon")
    write.add_argument("--warehouse", required=True)
    write.add_argument("--spec", required=True, help="JSON spec file")

    canon = commands.add_parser("canon", help="canonicalize JSON rows from stdin")
    canon.add_argument("--schema", help="JSON file with 'fields': [{name, type}]")
    canon.add_argument("--warehouse")
    canon.add_argument("--table")
    canon.add_argument("--snapshot", type=int)

    files = commands.add_parser("files", help="list the live data files with their levels")
    files.add_argument("--warehouse", required=True)
    files.add_argument("--table", required=True, help="database.table")
    files.add_argument("--snapshot", type=int)

    commands.add_parser("batch", help="run a JSON list of jobs from stdin")

    args = parser.parse_args(argv)
    try:
        if args.command == "read":
            _print_rows(read_rows(args.warehouse, args.table, args.impl, args.snapshot))
        elif args.command == "write":
            write_table(args.warehouse, _read_json_file(args.spec))
        elif args.command == "canon":
            fields = schema_fields(args.schema, args.warehouse, args.table, args.snapshot)
            _print_rows(canon_rows(sys.stdin.read().splitlines(), fields))
        elif args.command == "files":
            for entry in live_files(args.warehouse, args.table, args.snapshot):
                print(file_line(entry))
        else:
            try:
                jobs = json.loads(sys.stdin.read())
            except ValueError as error:
                raise OracleError("stdin is not JSON: {}".format(error)) from None
            if not run_batch(jobs):
                return 1
    except Exception as error:  # the implementations raise many kinds; one line says enough
        if os.environ.get("ORACLE_DEBUG"):
            traceback.print_exc()
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        print("oracle.py {}: {}".format(args.command, detail), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
