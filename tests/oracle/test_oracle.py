"""Self-tests of the oracle: the canonical encoding, and pypaimon-written
tables of every kind read back by pypaimon and pypaimon-rust.

Run: `.venv/bin/python -m unittest discover -s tests/oracle -v`
(or `.venv/bin/python tests/oracle/test_oracle.py`).
"""

import datetime
import decimal
import io
import json
import os
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import canonical  # noqa: E402
import oracle  # noqa: E402
from canonical import canonical_row, canonical_value, parse_type  # noqa: E402


def canon(type_text, value):
    return canonical_value(parse_type(type_text), value)


class TypeParsingTest(unittest.TestCase):
    def test_atomic_types_and_nullability(self):
        bigint = parse_type("BIGINT NOT NULL")
        self.assertEqual((bigint.kind, bigint.nullable), ("BIGINT", False))
        decimal_type = parse_type("DECIMAL(38, 10)")
        self.assertEqual((decimal_type.precision, decimal_type.scale, decimal_type.nullable), (38, 10, True))
        self.assertEqual(parse_type("DECIMAL").precision, 10)
        self.assertEqual(parse_type("INTEGER").kind, "INT")
        self.assertEqual(parse_type("STRING").kind, "VARCHAR")
        self.assertEqual(parse_type("VARCHAR(2147483647)").length, canonical.MAX_VARCHAR_LENGTH)
        self.assertEqual(parse_type("BYTES").kind, "VARBINARY")
        self.assertEqual(parse_type("TIMESTAMP").precision, 6)

    def test_local_zone_spellings(self):
        for text in ("TIMESTAMP_LTZ(3)", "TIMESTAMP(3) WITH LOCAL TIME ZONE", "timestamp(3) with local time zone"):
            parsed = parse_type(text + " NOT NULL")
            self.assertEqual((parsed.kind, parsed.precision, parsed.nullable), ("TIMESTAMP_LTZ", 3, False), text)
        self.assertEqual(parse_type("TIMESTAMP(3) WITH LOCAL TIME ZONE").spelling, "TIMESTAMP(3) WITH LOCAL TIME ZONE")
        self.assertEqual(parse_type("TIMESTAMP_LTZ(6)").spelling, "TIMESTAMP_LTZ(6)")

    def test_nested_type_strings(self):
        parsed = parse_type("MAP<STRING NOT NULL, ARRAY<ROW<a INT, `b c` DECIMAL(20, 4) NOT NULL>>> NOT NULL")
        self.assertEqual(parsed.kind, "MAP")
        self.assertFalse(parsed.nullable)
        self.assertFalse(parsed.key.nullable)
        row = parsed.value.element
        self.assertEqual([name for name, _ in row.fields], ["a", "b c"])
        self.assertEqual(row.fields[1][1].scale, 4)
        self.assertFalse(row.fields[1][1].nullable)

    def test_schema_json_types(self):
        parsed = parse_type(
            {
                "type": "ROW NOT NULL",
                "fields": [
                    {"id": 5, "name": "x", "type": {"type": "ARRAY", "element": "INT NOT NULL"}},
                    {"id": 6, "name": "m", "type": {"type": "MAP", "key": "STRING NOT NULL", "value": "BIGINT"}},
                ],
            }
        )
        self.assertFalse(parsed.nullable)
        self.assertEqual(parsed.fields[0][1].element.kind, "INT")
        self.assertEqual(parsed.fields[1][1].value.kind, "BIGINT")

    def test_bad_types_are_rejected(self):
        for text in ("NUMBER", "DECIMAL(10, 2", "ARRAY<INT", "INT INT", "BOOLEAN(3)"):
            with self.assertRaises(canonical.TypeError_, msg=text):
                parse_type(text)


class CanonicalValueTest(unittest.TestCase):
    def test_integers_and_booleans(self):
        self.assertEqual(canon("TINYINT", -128), -128)
        self.assertEqual(canon("BIGINT", "9223372036854775807"), 9223372036854775807)
        self.assertIs(canon("BOOLEAN", True), True)
        with self.assertRaises(canonical.TypeError_):
            canon("TINYINT", 128)
        with self.assertRaises(canonical.TypeError_):
            canon("INT", True)
        with self.assertRaises(canonical.TypeError_):
            canon("BOOLEAN", 1)

    def test_float_is_shortest_32_bit_decimal(self):
        widened = 1.100000023841858  # what Arrow's float32 1.1 becomes in Python
        self.assertEqual(canon("FLOAT", widened), 1.1)
        self.assertEqual(canon("FLOAT", decimal.Decimal("1.1")), 1.1)
        self.assertEqual(canon("FLOAT", 3.4028234663852886e38), 3.4028235e38)
        self.assertEqual(canon("DOUBLE", 1.1), 1.1)
        self.assertEqual(canon("DOUBLE", decimal.Decimal("0.1")), 0.1)
        self.assertEqual(canon("DOUBLE", float("nan")), "NaN")
        self.assertEqual(canon("FLOAT", "-inf"), "-Infinity")
        self.assertEqual(canon("DOUBLE", "Infinity"), "Infinity")

    def test_decimal_keeps_scale_and_never_rounds(self):
        self.assertEqual(canon("DECIMAL(10, 2)", decimal.Decimal("12.3")), "12.30")
        self.assertEqual(canon("DECIMAL(10, 2)", decimal.Decimal("12.30")), "12.30")
        self.assertEqual(canon("DECIMAL(10, 2)", "-0.00"), "0.00")
        self.assertEqual(canon("DECIMAL(10, 2)", 7), "7.00")
        self.assertEqual(canon("DECIMAL(10, 0)", decimal.Decimal("1E+3")), "1000")
        self.assertEqual(canon("DECIMAL(10, 2)", decimal.Decimal("12.345")), "12.345")
        big = "1234567890123456789012345678.0123456789"
        self.assertEqual(canon("DECIMAL(38, 10)", decimal.Decimal(big)), big)
        with self.assertRaises(canonical.TypeError_):
            canon("DECIMAL(10, 2)", 12.3)

    def test_strings_bytes_dates_times(self):
        self.assertEqual(canon("STRING", "héllo"), "héllo")
        self.assertEqual(canon("BYTES", b"\x00\xff"), "00ff")
        self.assertEqual(canon("BYTES", "00FF"), "00ff")
        self.assertEqual(canon("DATE", datetime.date(2024, 2, 29)), "2024-02-29")
        self.assertEqual(canon("DATE", 19782), "2024-02-29")
        self.assertEqual(canon("TIME", datetime.time(1, 2, 3, 4000)), "01:02:03.004000")
        with self.assertRaises(canonical.TypeError_):
            canon("BYTES", "xyz")
        with self.assertRaises(canonical.TypeError_):
            canon("DATE", datetime.datetime(2024, 1, 1))

    def test_timestamps(self):
        moment = datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)
        self.assertEqual(canon("TIMESTAMP(3)", moment), "2024-01-02T03:04:05.123000")
        self.assertEqual(canon("TIMESTAMP(6)", "2024-01-02 03:04:05.1"), "2024-01-02T03:04:05.100000")
        self.assertEqual(canon("TIMESTAMP(6)", "2024-01-02T03:04:05"), "2024-01-02T03:04:05.000000")
        self.assertEqual(canon("TIMESTAMP(9)", "2024-01-02T03:04:05.123456789"), "2024-01-02T03:04:05.123456789")
        aware = datetime.datetime(2024, 1, 2, 5, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
        self.assertEqual(canon("TIMESTAMP_LTZ(6)", aware), "2024-01-02T03:04:05.000000")
        self.assertEqual(canon("TIMESTAMP_LTZ(3)", "2024-01-02T03:04:05.5Z"), "2024-01-02T03:04:05.500000")
        self.assertEqual(canon("TIMESTAMP_LTZ(3)", "2024-01-02T01:04:05.5-02:00"), "2024-01-02T03:04:05.500000")

    def test_nested_values(self):
        self.assertEqual(canon("ARRAY<DECIMAL(5, 1)>", [decimal.Decimal("1"), None]), ["1.0", None])
        self.assertEqual(canon("MAP<STRING, INT>", {"b": 2, "a": 1}), [["a", 1], ["b", 2]])
        self.assertEqual(canon("MAP<INT, STRING>", [(10, "x"), (9, "y")]), [[9, "y"], [10, "x"]])
        self.assertEqual(canon("MAP<INT, STRING>", {"10": "x", "9": "y"}), [[9, "y"], [10, "x"]])
        self.assertEqual(
            canon("MAP<STRING, INT>", [{"key": "k", "value": None}]),
            [["k", None]],
        )
        self.assertEqual(canon("ROW<a INT, b BYTES>", {"a": 1}), {"a": 1, "b": None})
        self.assertEqual(canon("ROW<a INT, b BYTES>", [1, b"\x01"]), {"a": 1, "b": "01"})

    def test_rows_and_lines(self):
        fields = [("id", parse_type("BIGINT NOT NULL")), ("v", parse_type("DECIMAL(4, 2)"))]
        row = canonical_row(fields, {"v": decimal.Decimal("1.5"), "id": 3})
        self.assertEqual(canonical.row_line(row), '{"id":3,"v":"1.50"}')
        self.assertEqual(canonical_row(fields, {"id": 1}), {"id": 1, "v": None})
        with self.assertRaises(canonical.TypeError_):
            canonical_row(fields, {"id": 1, "w": 2})

    def test_python_values_round_trip(self):
        cases = [
            ("DECIMAL(10, 2)", "12.30"),
            ("BYTES", "00ff"),
            ("DATE", "2024-02-29"),
            ("TIMESTAMP(6)", "2024-01-02T03:04:05.123456"),
            ("TIMESTAMP_LTZ(3)", "2024-01-02T03:04:05.123000"),
            ("FLOAT", 1.1),
            ("MAP<STRING, ARRAY<INT>>", [["a", [1, None]], ["b", None]]),
            ("ROW<a INT, b DATE>", {"a": 1, "b": "2024-01-01"}),
        ]
        for type_text, value in cases:
            data_type = parse_type(type_text)
            self.assertEqual(canonical_value(data_type, canonical.python_value(data_type, value)), value, type_text)


class CanonCommandTest(unittest.TestCase):
    def test_arrow_json_style_lines(self):
        # Arrow's JSON writer: decimals as bare numbers, binary as hex,
        # timestamps as ISO text, nulls omitted, maps as objects.
        fields = oracle.fields_of(
            [
                {"name": "id", "type": "BIGINT NOT NULL"},
                {"name": "d", "type": "DECIMAL(20, 4)"},
                {"name": "f", "type": "FLOAT"},
                {"name": "b", "type": "BYTES"},
                {"name": "ts", "type": "TIMESTAMP_LTZ(6)"},
                {"name": "m", "type": "MAP<STRING, BIGINT>"},
            ]
        )
        lines = [
            '{"id":2,"d":12345678901234.5678,"f":1.1,"b":"0a0b","ts":"2024-01-02T03:04:05.123456Z","m":{"z":1,"a":2}}',
            '{"id":1}',
            "",
        ]
        rows = oracle.canon_rows(lines, fields)
        self.assertEqual(
            canonical.sorted_lines(rows),
            [
                '{"b":"0a0b","d":"12345678901234.5678","f":1.1,"id":2,"m":[["a",2],["z",1]],'
                '"ts":"2024-01-02T03:04:05.123456"}',
                '{"b":null,"d":null,"f":null,"id":1,"m":null,"ts":null}',
            ],
        )

    def test_bad_line_is_reported_with_its_number(self):
        fields = oracle.fields_of([{"name": "id", "type": "INT"}])
        with self.assertRaisesRegex(oracle.OracleError, "line 2"):
            oracle.canon_rows(['{"id":1}', "{oops"], fields)


# ------------------------------------------------- tables written by pypaimon

ALL_TYPES = [
    ("b", "BOOLEAN"),
    ("ti", "TINYINT"),
    ("si", "SMALLINT"),
    ("i", "INT"),
    ("bi", "BIGINT"),
    ("f", "FLOAT"),
    ("d", "DOUBLE"),
    ("dec", "DECIMAL(10, 2)"),
    ("dec19", "DECIMAL(19, 0)"),
    ("dec38", "DECIMAL(38, 10)"),
    ("s", "STRING"),
    ("vc", "VARCHAR(20)"),
    ("by", "BYTES"),
    ("da", "DATE"),
    ("ts3", "TIMESTAMP(3)"),
    ("ts6", "TIMESTAMP(6)"),
    ("ltz3", "TIMESTAMP_LTZ(3)"),
    ("ltz6", "TIMESTAMP(6) WITH LOCAL TIME ZONE"),
]


def all_type_values(key, version):
    """Deterministic values for every ALL_TYPES column; the column at position
    (key + version) % len is NULL, so each column sees NULLs."""
    n = key * 7 + version
    values = {
        "b": n % 2 == 0,
        "ti": (n % 256) - 128,
        "si": -32768 + n * 3,
        "i": 2147483647 - n,
        "bi": -9223372036854775808 + n,
        "f": [1.1, -0.5, 3.4028235e38, 1e-30][n % 4],
        "d": [0.1, -2.5e300, 1.0 / 3.0, 5e-324][n % 4],
        "dec": "{}.{:02d}".format(n * 10 - 500, n % 100),
        "dec19": str(9999999999999999999 - n),
        "dec38": "-{}.{:010d}".format(1234567890123456789012345678 - n, n),
        "s": "str-{}-v{} ünï".format(key, version) + ("x" * (n % 3) * 5),
        "vc": "v{}".format(n),
        "by": bytes([n % 256, 0, 255, 7] * (1 + n % 3)).hex(),
        "da": (datetime.date(1969, 12, 25) + datetime.timedelta(days=n * 37)).isoformat(),
        "ts3": "2024-0{}-1{}T0{}:04:05.{:03d}000".format(1 + n % 9, n % 10, n % 10, n % 1000),
        "ts6": "1969-12-31T23:59:5{}.{:06d}".format(n % 10, n * 1001 % 1000000),
        "ltz3": "2030-06-1{}T12:00:00.{:03d}000".format(n % 10, n % 1000),
        "ltz6": "2001-02-03T04:05:06.{:06d}".format(n * 7 % 1000000),
    }
    values[ALL_TYPES[(key + version) % len(ALL_TYPES)][0]] = None
    return values


class Model:
    """The rows a table must hold after a series of commits."""

    def __init__(self, fields, primary_keys):
        self.fields = fields
        self.primary_keys = primary_keys
        self.rows = {}
        self.appended = []

    def apply(self, commit):
        for entry in commit:
            row = canonical_row(self.fields, entry["row"])
            if not self.primary_keys:
                self.appended.append(row)
                continue
            key = tuple(row[name] for name in self.primary_keys)
            if entry["kind"] in ("+I", "+U"):
                self.rows[key] = row
            else:
                self.rows.pop(key, None)

    def lines(self):
        return canonical.sorted_lines(self.appended + list(self.rows.values()))


class PypaimonWrittenTablesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.warehouse = tempfile.mkdtemp(prefix="oracle-selftest-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.warehouse, ignore_errors=True)

    def write_and_check(self, spec):
        """Writes `spec`, then checks both implementations against the model
        at every snapshot."""
        oracle.write_table(self.warehouse, spec)
        fields = oracle.fields_of(spec["fields"])
        model = Model(fields, spec.get("primary_keys", []))
        identifier = "{}.{}".format(spec["database"], spec["table"])
        commits = spec["commits"]
        for snapshot, commit in enumerate(commits, 1):
            model.apply(commit)
            latest = None if snapshot == len(commits) else snapshot
            for impl in oracle.IMPLEMENTATIONS:
                with self.subTest(table=identifier, impl=impl, snapshot=snapshot):
                    rows = oracle.read_rows(self.warehouse, identifier, impl, latest)
                    self.assertEqual(canonical.sorted_lines(rows), model.lines())
        return model

    def all_types_spec(self, table, primary_keys, partition_keys, options, with_deletes):
        fields = [{"name": "id", "type": "BIGINT NOT NULL"}, {"name": "dt", "type": "STRING NOT NULL"}]
        fields += [{"name": name, "type": type_text} for name, type_text in ALL_TYPES]
        if with_deletes:
            fields.append({"name": "_kind", "type": "STRING"})
            options = dict(options, **{"rowkind.field": "_kind"})

        def entry(kind, key, version):
            row = dict(all_type_values(key, version), id=key, dt="p{}".format(key % 3))
            if with_deletes:
                row["_kind"] = kind
            return {"kind": kind, "row": row}

        if with_deletes:
            commits = [
                [entry("+I", k, 0) for k in range(12)],
                [entry("+I", k, 1) for k in range(0, 12, 2)] + [entry("-D", 3, 1), entry("-D", 100, 1)],
                [entry("-D", 0, 2), entry("+I", 3, 2), entry("+I", 20, 2), entry("+U", 4, 2), entry("-D", 20, 2)],
                [entry("+I", 0, 3), entry("+I", 0, 4), entry("-D", 5, 3), entry("+I", 5, 4)],
            ]
        else:
            commits = [
                [entry("+I", k, 0) for k in range(10)],
                [entry("+I", k, 1) for k in range(5, 15)],
                [entry("+I", k, 2) for k in range(0, 15, 4)],
            ]
        return {
            "database": "selftest",
            "table": table,
            "fields": fields,
            "primary_keys": primary_keys,
            "partition_keys": partition_keys,
            "options": options,
            "commits": commits,
        }

    def test_append_unaware_bucket(self):
        model = self.write_and_check(self.all_types_spec("append_unaware", [], [], {}, False))
        self.assertEqual(len(model.lines()), 24)

    def test_append_unaware_bucket_partitioned(self):
        self.write_and_check(self.all_types_spec("append_unaware_part", [], ["dt"], {}, False))

    def test_append_fixed_bucket_with_bucket_key(self):
        spec = self.all_types_spec("append_fixed", [], ["dt"], {"bucket": "3", "bucket-key": "id"}, False)
        self.write_and_check(spec)

    def test_primary_key_fixed_bucket_partitioned(self):
        model = self.write_and_check(self.all_types_spec("pk_fixed_part", ["id", "dt"], ["dt"], {"bucket": "2"}, True))
        self.assertEqual(len(model.lines()), 12)

    def test_primary_key_fixed_bucket_unpartitioned(self):
        self.write_and_check(self.all_types_spec("pk_fixed", ["id"], [], {"bucket": "2"}, True))

    def test_primary_key_dynamic_bucket(self):
        self.write_and_check(self.all_types_spec("pk_dynamic", ["id"], [], {"bucket": "-1"}, True))

    def test_primary_key_dynamic_bucket_partitioned(self):
        self.write_and_check(self.all_types_spec("pk_dynamic_part", ["id", "dt"], ["dt"], {"bucket": "-1"}, True))

    def test_primary_key_upserts_without_deletes(self):
        self.write_and_check(self.all_types_spec("pk_upsert", ["id"], [], {"bucket": "1"}, False))

    def test_composite_typed_key_and_date_partition(self):
        fields = [
            {"name": "day", "type": "DATE NOT NULL"},
            {"name": "k_dec", "type": "DECIMAL(20, 4) NOT NULL"},
            {"name": "k_ts", "type": "TIMESTAMP(6) NOT NULL"},
            {"name": "k_s", "type": "STRING NOT NULL"},
            {"name": "v", "type": "INT"},
            {"name": "_kind", "type": "STRING"},
        ]

        def entry(kind, n, v):
            row = {
                "day": "2024-03-0{}".format(1 + n % 2),
                "k_dec": "{}.{:04d}".format(10**15 + n, n),
                "k_ts": "2024-01-01T00:00:0{}.{:06d}".format(n % 10, n),
                "k_s": "key-with-a-long-tail-{}".format(n),
                "v": v,
                "_kind": kind,
            }
            return {"kind": kind, "row": row}

        spec = {
            "database": "selftest",
            "table": "typed_key",
            "fields": fields,
            "primary_keys": ["day", "k_dec", "k_ts", "k_s"],
            "partition_keys": ["day"],
            "options": {"bucket": "2", "rowkind.field": "_kind"},
            "commits": [
                [entry("+I", n, n) for n in range(6)],
                [entry("+I", 1, 100), entry("-D", 2, None), entry("+I", 7, None)],
            ],
        }
        model = self.write_and_check(spec)
        self.assertEqual(len(model.lines()), 6)

    def test_nested_and_rarer_types(self):
        fields = [
            {"name": "id", "type": "INT NOT NULL"},
            {"name": "a", "type": "ARRAY<DECIMAL(10, 2)>"},
            {"name": "m", "type": "MAP<INT, ARRAY<STRING>>"},
            {"name": "r", "type": "ROW<x INT, y ROW<z DATE NOT NULL>>"},
            {"name": "c", "type": "CHAR(5)"},
            {"name": "bn", "type": "BINARY(4)"},
            {"name": "vb", "type": "VARBINARY(10)"},
            {"name": "t", "type": "TIME"},
            {"name": "t3", "type": "TIME(3)"},
            {"name": "ts0", "type": "TIMESTAMP(0)"},
            {"name": "ts9", "type": "TIMESTAMP(9)"},
            {"name": "ltz0", "type": "TIMESTAMP_LTZ(0)"},
        ]
        full = {
            "id": 1,
            "a": ["1.50", None, "-0.01"],
            "m": [[2, None], [1, ["x", None]]],
            "r": {"x": 7, "y": {"z": "1900-01-01"}},
            "c": "abcde",
            "bn": "01020304",
            "vb": "ff",
            "t": "23:59:59",
            "t3": "01:02:03.123",
            "ts0": "1950-01-01T00:00:01",
            "ts9": "2024-01-01T00:00:01.123456",
            "ltz0": "2038-01-19T03:14:08",
        }
        spec = {
            "database": "selftest",
            "table": "nested",
            "fields": fields,
            "primary_keys": ["id"],
            "partition_keys": [],
            "options": {"bucket": "1"},
            "commits": [
                [{"kind": "+I", "row": full}, {"kind": "+I", "row": {"id": 2, "a": [], "m": []}}],
                [{"kind": "+I", "row": {"id": 3, "r": {"x": None, "y": None}}}],
            ],
        }
        model = self.write_and_check(spec)
        self.assertIn('"m":[[1,["x",null]],[2,null]]', model.lines()[0])

    def test_null_and_escaped_partition_values(self):
        spec = {
            "database": "selftest",
            "table": "odd_partitions",
            "fields": [
                {"name": "id", "type": "INT NOT NULL"},
                {"name": "p", "type": "STRING"},
                {"name": "q", "type": "INT"},
                {"name": "ts9", "type": "TIMESTAMP(9)"},
            ],
            "primary_keys": [],
            "partition_keys": ["p", "q"],
            "options": {},
            "commits": [
                [
                    {"kind": "+I", "row": {"id": 1, "p": None, "q": None, "ts9": "2024-01-01T00:00:01.123456789"}},
                    {"kind": "+I", "row": {"id": 2, "p": "a/b c=d%#", "q": -1, "ts9": "1969-12-31T23:59:59.999999999"}},
                    {"kind": "+I", "row": {"id": 3, "p": "", "q": 0}},
                ]
            ],
        }
        self.write_and_check(spec)

    def test_merge_engines(self):
        base = {
            "database": "selftest",
            "fields": [
                {"name": "id", "type": "INT NOT NULL"},
                {"name": "a", "type": "INT"},
                {"name": "b", "type": "STRING"},
            ],
            "primary_keys": ["id"],
            "partition_keys": [],
        }
        commits = [
            [{"kind": "+I", "row": {"id": 1, "a": 1, "b": "x"}}],
            [{"kind": "+I", "row": {"id": 1, "a": 5, "b": None}}, {"kind": "+I", "row": {"id": 2, "a": 2}}],
        ]
        cases = [
            (
                "partial_update",
                {"merge-engine": "partial-update"},
                ['{"a":2,"b":null,"id":2}', '{"a":5,"b":"x","id":1}'],
            ),
            (
                "aggregation",
                {"merge-engine": "aggregation", "fields.a.aggregate-function": "sum"},
                ['{"a":2,"b":null,"id":2}', '{"a":6,"b":"x","id":1}'],
            ),
            ("sequence_field", {"sequence.field": "a"}, ['{"a":2,"b":null,"id":2}', '{"a":5,"b":null,"id":1}']),
        ]
        for table, options, expected in cases:
            spec = dict(base, table=table, options=dict(options, bucket="1"), commits=commits)
            oracle.write_table(self.warehouse, spec)
            for impl in oracle.IMPLEMENTATIONS:
                with self.subTest(table=table, impl=impl):
                    rows = oracle.read_rows(self.warehouse, "selftest." + table, impl)
                    self.assertEqual(canonical.sorted_lines(rows), expected)

    def test_known_pypaimon_limitations(self):
        # Without compaction, pypaimon's level-0 files stay invisible to batch
        # reads of first-row and deletion-vector tables, and it cannot write
        # cross-partition primary keys (dynamic bucket, key without the
        # partition). Interop tests must not ask pypaimon to write these.
        fields = [{"name": "id", "type": "INT NOT NULL"}, {"name": "p", "type": "STRING NOT NULL"}]
        one_row = [[{"kind": "+I", "row": {"id": 1, "p": "a"}}]]
        for table, options in (
            ("first_row", {"merge-engine": "first-row"}),
            ("dv", {"deletion-vectors.enabled": "true"}),
        ):
            spec = {
                "database": "selftest",
                "table": table,
                "fields": fields,
                "primary_keys": ["id"],
                "partition_keys": [],
                "options": dict(options, bucket="1"),
                "commits": one_row,
            }
            oracle.write_table(self.warehouse, spec)
            for impl in oracle.IMPLEMENTATIONS:
                with self.subTest(table=table, impl=impl):
                    self.assertEqual(oracle.read_rows(self.warehouse, "selftest." + table, impl), [])
        # pypaimon's merge of overlapping primary-key files cuts TIMESTAMP(9)
        # to microseconds; pypaimon-rust keeps the nanoseconds.
        nanos = [{"name": "id", "type": "INT NOT NULL"}, {"name": "ts9", "type": "TIMESTAMP(9)"}]
        spec = {
            "database": "selftest",
            "table": "nanos_merged",
            "fields": nanos,
            "primary_keys": ["id"],
            "partition_keys": [],
            "options": {"bucket": "1"},
            "commits": [[{"kind": "+I", "row": {"id": 1, "ts9": "2024-01-01T00:00:01.123456789"}}]] * 2,
        }
        oracle.write_table(self.warehouse, spec)
        merged = {
            impl: oracle.read_rows(self.warehouse, "selftest.nanos_merged", impl) for impl in oracle.IMPLEMENTATIONS
        }
        self.assertEqual(merged["pypaimon"], [{"id": 1, "ts9": "2024-01-01T00:00:01.123456"}])
        self.assertEqual(merged["pypaimon-rust"], [{"id": 1, "ts9": "2024-01-01T00:00:01.123456789"}])
        cross = {
            "database": "selftest",
            "table": "cross",
            "fields": fields,
            "primary_keys": ["id"],
            "partition_keys": ["p"],
            "options": {"bucket": "-1"},
            "commits": one_row,
        }
        with self.assertRaisesRegex(Exception, "CROSS_PARTITION"):
            oracle.write_table(self.warehouse, cross)

    def test_deletes_need_the_row_kind_column(self):
        spec = self.all_types_spec("pk_no_kind", ["id"], [], {"bucket": "1"}, False)
        spec["commits"] = [[{"kind": "-D", "row": {"id": 1, "dt": "x"}}]]
        with self.assertRaisesRegex(oracle.OracleError, "rowkind.field"):
            oracle.write_table(self.warehouse, spec)

    def test_batch_and_cli(self):
        spec = self.all_types_spec("batch_cli", ["id"], [], {"bucket": "2"}, True)
        spec_path = os.path.join(self.warehouse, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as handle:
            json.dump(spec, handle)
        self.assertEqual(oracle.main(["write", "--warehouse", self.warehouse, "--spec", spec_path]), 0)
        output = io.StringIO()
        with redirect_stdout(output):
            code = oracle.main(
                ["read", "--warehouse", self.warehouse, "--table", "selftest.batch_cli", "--impl", "pypaimon"]
            )
        self.assertEqual(code, 0)
        printed = output.getvalue().splitlines()
        model = Model(oracle.fields_of(spec["fields"]), ["id"])
        for commit in spec["commits"]:
            model.apply(commit)
        self.assertEqual(printed, model.lines())

        results = [
            oracle.run_job(
                {
                    "op": "read",
                    "warehouse": self.warehouse,
                    "table": "selftest.batch_cli",
                    "impl": "pypaimon-rust",
                    "snapshot": 1,
                }
            ),
            oracle.run_job({"op": "read", "warehouse": self.warehouse, "table": "selftest.nope", "impl": "pypaimon"}),
            oracle.run_job(
                {"op": "canon", "warehouse": self.warehouse, "table": "selftest.batch_cli", "lines": printed}
            ),
        ]
        self.assertTrue(results[0]["ok"], results[0])
        self.assertEqual(len(results[0]["rows"]), 12)
        self.assertFalse(results[1]["ok"])
        self.assertIn("nope", results[1]["error"])
        self.assertTrue(results[2]["ok"], results[2])
        self.assertEqual([canonical.row_line(r) for r in results[2]["rows"]], model.lines())


class CheckJobTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.warehouse = tempfile.mkdtemp(prefix="oracle-check-")
        cls.fields = [
            {"name": "id", "type": "BIGINT NOT NULL"},
            {"name": "v", "type": "DECIMAL(10, 2)"},
            {"name": "_kind", "type": "STRING"},
        ]
        oracle.write_table(
            cls.warehouse,
            {
                "database": "db",
                "table": "t",
                "fields": cls.fields,
                "primary_keys": ["id"],
                "partition_keys": [],
                "options": {"bucket": "2", "rowkind.field": "_kind"},
                "commits": [
                    [{"kind": "+I", "row": {"id": 1, "v": "1.5"}}, {"kind": "+I", "row": {"id": 2, "v": None}}],
                    [{"kind": "-D", "row": {"id": 2}}],
                ],
            },
        )

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.warehouse, ignore_errors=True)

    def read_check(self, expected, **overrides):
        job = {
            "op": "check",
            "label": "t",
            "fields": self.fields,
            "expected": expected,
            "primary_keys": ["id"],
            "options": {"bucket": "2"},
            "actual": {"op": "read", "warehouse": self.warehouse, "table": "db.t", "impl": "pypaimon-rust"},
        }
        job.update(overrides)
        return oracle.run_job(job)

    def test_matching_rows_pass(self):
        result = self.read_check([{"id": 1, "v": "1.50", "_kind": "+I"}])
        self.assertTrue(result["ok"], result)
        earlier = dict({"op": "read", "warehouse": self.warehouse, "table": "db.t", "impl": "pypaimon"}, snapshot=1)
        result = self.read_check([{"id": 1, "v": "1.5", "_kind": "+I"}, {"id": 2, "_kind": "+I"}], actual=earlier)
        self.assertTrue(result["ok"], result)

    def test_differences_are_listed(self):
        result = self.read_check([{"id": 1, "v": "1.51", "_kind": "+I"}, {"id": 3, "_kind": "+I"}])
        self.assertFalse(result["ok"])
        self.assertIn('missing    {"_kind":"+I","id":1,"v":"1.51"}', result["error"])
        self.assertIn('missing    {"_kind":"+I","id":3,"v":null}', result["error"])
        self.assertIn('unexpected {"_kind":"+I","id":1,"v":"1.50"}', result["error"])

    def test_duplicates_count(self):
        result = self.read_check([{"id": 1, "v": "1.50", "_kind": "+I"}] * 2)
        self.assertFalse(result["ok"])
        self.assertIn("2 rows expected, 1 read", result["error"])

    def test_schema_is_checked(self):
        wrong_type = [dict(f) for f in self.fields]
        wrong_type[1]["type"] = "DECIMAL(10, 3)"
        result = self.read_check([{"id": 1, "v": "1.50", "_kind": "+I"}], fields=wrong_type)
        self.assertFalse(result["ok"])
        self.assertIn("column v has type DECIMAL(10, 2) but DECIMAL(10, 3) was declared", result["error"])
        result = self.read_check([{"id": 1, "v": "1.50", "_kind": "+I"}], primary_keys=["v"], options={"bucket": "3"})
        self.assertIn("primaryKeys are ['id']", result["error"])
        self.assertIn("option 'bucket' is '2', expected '3'", result["error"])

    def test_files_lists_levels_per_bucket(self):
        files = oracle.live_files(self.warehouse, "db.t")
        # pypaimon's batch writes are not compacted: every file at level 0.
        self.assertTrue(files)
        self.assertEqual({f["level"] for f in files}, {0})
        self.assertEqual(sum(f["rows"] for f in files), 3)
        self.assertTrue(all(f["partition"] == [] and f["bucket"] in (0, 1) for f in files))
        first = oracle.live_files(self.warehouse, "db.t", 1)
        self.assertEqual(sum(f["rows"] for f in first), 2)
        self.assertTrue(all(f in files for f in first), "the second commit only adds a file")
        result = oracle.run_job({"op": "files", "warehouse": self.warehouse, "table": "db.t"})
        self.assertEqual(result, {"ok": True, "files": files})
        line = oracle.file_line(files[0]).split("\t")
        self.assertEqual(line[:4], ["[]", str(files[0]["bucket"]), "0", str(files[0]["rows"])])

    def test_expected_errors_must_happen(self):
        missing = {"op": "read", "warehouse": self.warehouse, "table": "db.absent", "impl": "pypaimon"}
        result = self.read_check([], expect_error="absent", actual=missing)
        self.assertTrue(result["ok"], result)
        result = self.read_check([], expect_error="another message", actual=missing)
        self.assertFalse(result["ok"])
        self.assertIn("expected an error with 'another message'", result["error"])
        result = self.read_check([], expect_error="absent")
        self.assertFalse(result["ok"])
        self.assertIn("the known limitation is lifted: pypaimon-rust read 1 rows", result["error"])

    def test_canon_check_and_batch_exit_code(self):
        canon_job = {"op": "canon", "lines": ['{"id":1,"v":1.50,"_kind":"+I"}']}
        passing = {
            "op": "check",
            "fields": self.fields,
            "expected": [{"id": 1, "v": "1.50", "_kind": "+I"}],
            "actual": canon_job,
        }
        failing = dict(passing, label="wrong", expected=[])
        output, errors = io.StringIO(), io.StringIO()
        from contextlib import redirect_stderr

        with redirect_stdout(output), redirect_stderr(errors):
            self.assertTrue(oracle.run_batch([passing]))
            self.assertFalse(oracle.run_batch([failing, passing]))
        results = [json.loads(line) for line in output.getvalue().splitlines()]
        self.assertEqual([r["ok"] for r in results], [True, False, True])
        self.assertIn("FAILED wrong: 0 rows expected, 1 read", errors.getvalue())


if __name__ == "__main__":
    unittest.main()
