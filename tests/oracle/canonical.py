"""Paimon data types and the one canonical JSON encoding of their values.

Every reader in the interop tests (pypaimon, pypaimon-rust, Tidelake's own
`--format json` output) is turned into this encoding, so rows compare as plain
JSON values:

  BOOLEAN                     JSON bool
  TINYINT..BIGINT             JSON integer
  FLOAT                       JSON number: the shortest decimal that rounds to
                              the same 32-bit float (1.1, not 1.100000023841858)
  DOUBLE                      JSON number (Python repr)
  non-finite FLOAT/DOUBLE     "NaN", "Infinity", "-Infinity"
  DECIMAL(p, s)               string with exactly s fraction digits ("12.30");
                              a value with more digits keeps them all, so a
                              reader bug is never rounded away
  CHAR/VARCHAR/STRING         string
  BINARY/VARBINARY/BYTES      lowercase hex string
  DATE                        "YYYY-MM-DD"
  TIME(p)                     "HH:MM:SS.ffffff"
  TIMESTAMP(p)                "YYYY-MM-DDTHH:MM:SS.ffffff" (9 fraction digits
                              when the value has sub-microsecond digits)
  TIMESTAMP_LTZ(p)            the same, as UTC wall time, no zone suffix
  NULL                        null (a missing object member counts as null)
  ARRAY / MULTISET            list
  MAP                         list of [key, value] pairs sorted by key
  ROW                         object keyed by field name

A row is an object keyed by column name; rows are printed as compact JSON with
sorted keys, one per line, and sorted by that text.
"""

import datetime
import decimal
import json
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

MAX_VARCHAR_LENGTH = 2147483647


class TypeError_(ValueError):
    """A type string or value that does not fit the Paimon type system."""


@dataclass
class DataType:
    """One Paimon type. `kind` is the root name (e.g. DECIMAL, TIMESTAMP_LTZ)."""

    kind: str
    nullable: bool = True
    precision: Optional[int] = None  # DECIMAL, TIME, TIMESTAMP*
    scale: Optional[int] = None  # DECIMAL
    length: Optional[int] = None  # CHAR, VARCHAR, BINARY, VARBINARY
    element: Optional["DataType"] = None  # ARRAY, MULTISET
    key: Optional["DataType"] = None  # MAP
    value: Optional["DataType"] = None  # MAP
    fields: List[Tuple[str, "DataType"]] = field(default_factory=list)  # ROW
    spelling: str = ""  # atomic type as written, without nullability

    def sql(self) -> str:
        """The type as a Paimon SQL type string."""
        if self.kind == "ARRAY":
            base = "ARRAY<{}>".format(self.element.sql())
        elif self.kind == "MULTISET":
            base = "MULTISET<{}>".format(self.element.sql())
        elif self.kind == "MAP":
            base = "MAP<{}, {}>".format(self.key.sql(), self.value.sql())
        elif self.kind == "ROW":
            base = "ROW<{}>".format(", ".join("`{}` {}".format(name, t.sql()) for name, t in self.fields))
        else:
            base = self.spelling
        return base if self.nullable else base + " NOT NULL"


_INTEGER_KINDS = {"TINYINT": 8, "SMALLINT": 16, "INT": 32, "BIGINT": 64}
_ATOMIC_ALIASES = {"INTEGER": "INT", "NUMERIC": "DECIMAL", "DEC": "DECIMAL"}
_ATOMIC_KINDS = {
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INT",
    "BIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "CHAR",
    "VARCHAR",
    "STRING",
    "BINARY",
    "VARBINARY",
    "BYTES",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP_LTZ",
}


class _TypeParser:
    """Recursive-descent parser for Paimon SQL type strings such as
    `MAP<STRING, ARRAY<DECIMAL(38, 10) NOT NULL>> NOT NULL`."""

    _TOKEN = re.compile(r"\s*(`(?:[^`]|``)*`|[A-Za-z_][A-Za-z0-9_]*|\d+|'(?:[^']|'')*'|[<>(),])")

    def __init__(self, text: str):
        self.text = text
        self.tokens: List[str] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = self._TOKEN.match(text, position)
            if match is None:
                raise TypeError_("unexpected character at {} in type {!r}".format(position, text))
            self.tokens.append(match.group(1))
            position = match.end()
        self.index = 0

    def peek(self, offset: int = 0) -> Optional[str]:
        at = self.index + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise TypeError_("type {!r} ends too early".format(self.text))
        self.index += 1
        return token

    def expect(self, wanted: str) -> None:
        token = self.take()
        if token.upper() != wanted:
            raise TypeError_("expected {!r} but found {!r} in type {!r}".format(wanted, token, self.text))

    def keyword_is(self, word: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.upper() == word

    def parse_complete(self) -> DataType:
        data_type = self.parse_type()
        if self.peek() is not None:
            raise TypeError_("unexpected {!r} after the type in {!r}".format(self.peek(), self.text))
        return data_type

    def parse_type(self) -> DataType:
        name = self.take().upper()
        name = _ATOMIC_ALIASES.get(name, name)
        if name in ("ARRAY", "MULTISET"):
            self.expect("<")
            element = self.parse_type()
            self.expect(">")
            data_type = DataType(name, element=element)
        elif name == "MAP":
            self.expect("<")
            key = self.parse_type()
            self.expect(",")
            value = self.parse_type()
            self.expect(">")
            data_type = DataType("MAP", key=key, value=value)
        elif name == "ROW":
            data_type = DataType("ROW", fields=self.parse_row_fields())
        elif name in _ATOMIC_KINDS:
            data_type = self.parse_atomic(name)
        else:
            raise TypeError_("unknown type {!r} in {!r}".format(name, self.text))
        data_type.nullable = self.parse_nullability()
        return data_type

    def parse_row_fields(self) -> List[Tuple[str, DataType]]:
        self.expect("<")
        fields = []
        while True:
            raw_name = self.take()
            name = raw_name[1:-1].replace("``", "`") if raw_name.startswith("`") else raw_name
            field_type = self.parse_type()
            if self.peek() is not None and self.peek().startswith("'"):
                self.take()  # a field comment: not part of the type
            fields.append((name, field_type))
            if self.peek() == ",":
                self.take()
                continue
            self.expect(">")
            return fields

    def parse_arguments(self) -> List[int]:
        if self.peek() != "(":
            return []
        self.take()
        arguments = [int(self.take())]
        while self.peek() == ",":
            self.take()
            arguments.append(int(self.take()))
        self.expect(")")
        return arguments

    def parse_atomic(self, name: str) -> DataType:
        arguments = self.parse_arguments()
        zone_words = False
        if name == "TIMESTAMP" and self.keyword_is("WITH") and self.keyword_is("LOCAL", 1):
            for word in ("WITH", "LOCAL", "TIME", "ZONE"):
                self.expect(word)
            name, zone_words = "TIMESTAMP_LTZ", True
        data_type = DataType(name)
        if name == "DECIMAL":
            data_type.precision = arguments[0] if arguments else 10
            data_type.scale = arguments[1] if len(arguments) > 1 else 0
            data_type.spelling = "DECIMAL({}, {})".format(data_type.precision, data_type.scale)
        elif name in ("TIME", "TIMESTAMP", "TIMESTAMP_LTZ"):
            default = 0 if name == "TIME" else 6
            data_type.precision = arguments[0] if arguments else default
            data_type.spelling = (
                "TIMESTAMP({}) WITH LOCAL TIME ZONE".format(data_type.precision)
                if zone_words
                else "{}({})".format(name, data_type.precision)
            )
        elif name in ("CHAR", "BINARY"):
            data_type.length = arguments[0] if arguments else 1
            data_type.spelling = "{}({})".format(name, data_type.length)
        elif name in ("VARCHAR", "VARBINARY"):
            data_type.length = arguments[0] if arguments else 1
            data_type.spelling = "{}({})".format(name, data_type.length)
        elif name == "STRING":
            data_type.kind, data_type.length = "VARCHAR", MAX_VARCHAR_LENGTH
            data_type.spelling = "STRING"
        elif name == "BYTES":
            data_type.kind, data_type.length = "VARBINARY", MAX_VARCHAR_LENGTH
            data_type.spelling = "BYTES"
        else:
            if arguments:
                raise TypeError_("type {} takes no arguments in {!r}".format(name, self.text))
            data_type.spelling = name
        return data_type

    def parse_nullability(self) -> bool:
        if self.keyword_is("NOT") and self.keyword_is("NULL", 1):
            self.index += 2
            return False
        if self.keyword_is("NULL"):
            self.index += 1
        return True


def parse_type(spec: Any) -> DataType:
    """Parses a type given as a Paimon SQL string or as Paimon's schema JSON
    (atomic types are strings; ARRAY/MAP/ROW/MULTISET are objects)."""
    if isinstance(spec, str):
        return _TypeParser(spec).parse_complete()
    if isinstance(spec, dict):
        root = spec.get("type")
        if not isinstance(root, str):
            raise TypeError_("type object without a string 'type': {!r}".format(spec))
        nullable = not root.rstrip().upper().endswith("NOT NULL")
        name = root.split()[0].upper() if root.split() else ""
        if name in ("ARRAY", "MULTISET"):
            data_type = DataType(name, element=parse_type(spec.get("element")))
        elif name == "MAP":
            data_type = DataType("MAP", key=parse_type(spec.get("key")), value=parse_type(spec.get("value")))
        elif name == "ROW":
            fields = [(f["name"], parse_type(f["type"])) for f in spec.get("fields", [])]
            data_type = DataType("ROW", fields=fields)
        else:
            return parse_type(root)
        data_type.nullable = nullable
        return data_type
    raise TypeError_("cannot read a type from {!r}".format(spec))


# ---------------------------------------------------------------- values


def _float32_bits(value: float) -> Optional[bytes]:
    try:
        return struct.pack("<f", value)
    except OverflowError:
        return None


def _float32_shortest(value: float, where: str) -> float:
    """The shortest decimal that reads back as the same 32-bit float."""
    bits = _float32_bits(value)
    if bits is None:
        raise TypeError_("{}: {!r} is out of range for FLOAT".format(where, value))
    as_float32 = struct.unpack("<f", bits)[0]
    for digits in range(1, 10):
        candidate = float("{:.{}g}".format(as_float32, digits))
        if _float32_bits(candidate) == bits:
            return candidate
    return as_float32


def _non_finite(value: float) -> Optional[str]:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return None


_NON_FINITE_WORDS = {
    "nan": float("nan"),
    "inf": float("inf"),
    "+inf": float("inf"),
    "infinity": float("inf"),
    "+infinity": float("inf"),
    "-inf": float("-inf"),
    "-infinity": float("-inf"),
}


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise TypeError_("{}: expected a number, got a boolean".format(where))
    if isinstance(value, (int, float, decimal.Decimal)):
        return float(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _NON_FINITE_WORDS:
            return _NON_FINITE_WORDS[word]
        try:
            return float(decimal.Decimal(value.strip()))
        except decimal.InvalidOperation:
            pass
    if hasattr(value, "item"):  # numpy scalar
        return float(value.item())
    raise TypeError_("{}: expected a number, got {!r}".format(where, value))


def _to_int(value: Any, bits: int, where: str) -> int:
    if isinstance(value, bool):
        raise TypeError_("{}: expected an integer, got a boolean".format(where))
    if hasattr(value, "item") and not isinstance(value, (int, decimal.Decimal)):
        value = value.item()
    if isinstance(value, int):
        number = value
    elif isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        number = int(value)
    else:
        raise TypeError_("{}: expected an integer, got {!r}".format(where, value))
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not low <= number <= high:
        raise TypeError_("{}: {} is out of range for a {}-bit integer".format(where, number, bits))
    return number


def _decimal_text(value: Any, data_type: DataType, where: str) -> str:
    if isinstance(value, bool):
        raise TypeError_("{}: expected a decimal, got a boolean".format(where))
    if isinstance(value, float):
        raise TypeError_("{}: a binary float cannot stand for DECIMAL exactly: {!r}".format(where, value))
    try:
        number = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise TypeError_("{}: not a decimal: {!r}".format(where, value)) from None
    if not number.is_finite():
        raise TypeError_("{}: DECIMAL cannot hold {!r}".format(where, value))
    exponent = number.as_tuple().exponent
    digits_after_point = max(data_type.scale, -exponent)
    context = decimal.Context(prec=200)
    fixed = number.quantize(decimal.Decimal(1).scaleb(-digits_after_point), context=context)
    if fixed.is_zero():
        fixed = abs(fixed)
    return format(fixed, "f")


def _bytes_text(value: Any, where: str) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("0x"):
            text = text[2:]
        if re.fullmatch(r"(?:[0-9a-f]{2})*", text):
            return text
        raise TypeError_("{}: expected a hex string of bytes, got {!r}".format(where, value))
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).hex()
    raise TypeError_("{}: expected bytes, got {!r}".format(where, value))


_EPOCH_DATE = datetime.date(1970, 1, 1)


def _date_text(value: Any, where: str) -> str:
    if isinstance(value, datetime.datetime):
        raise TypeError_("{}: expected a date, got a timestamp {!r}".format(where, value))
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return (_EPOCH_DATE + datetime.timedelta(days=value)).isoformat()
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise TypeError_("{}: expected a date, got {!r}".format(where, value))


_TIMESTAMP_TEXT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?"
)
_TIME_TEXT = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?")


def _split_timestamp(value: Any, where: str) -> Tuple[datetime.datetime, int]:
    """Returns (naive UTC/wall time truncated to whole seconds, nanoseconds)."""
    if hasattr(value, "nanosecond") and hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        nanos = value.microsecond * 1000 + value.nanosecond
        value = value.to_pydatetime(warn=False)
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.replace(microsecond=0), nanos
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.replace(microsecond=0), value.microsecond * 1000
    if isinstance(value, str):
        match = _TIMESTAMP_TEXT.fullmatch(value.strip())
        if match:
            year, month, day, hour, minute, second, fraction, zone = match.groups()
            whole = datetime.datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
            )
            if zone not in (None, "Z", "UTC"):
                sign = -1 if zone[0] == "-" else 1
                digits = zone[1:].replace(":", "")
                offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
                whole -= sign * offset
            nanos = int((fraction or "").ljust(9, "0"))
            return whole, nanos
    raise TypeError_("{}: expected a timestamp, got {!r}".format(where, value))


def _fraction(nanos: int) -> str:
    return "{:06d}".format(nanos // 1000) if nanos % 1000 == 0 else "{:09d}".format(nanos)


def _timestamp_text(value: Any, where: str) -> str:
    whole, nanos = _split_timestamp(value, where)
    return "{}.{}".format(whole.strftime("%Y-%m-%dT%H:%M:%S"), _fraction(nanos))


def _time_text(value: Any, where: str) -> str:
    if isinstance(value, datetime.time):
        hour, minute, second, nanos = value.hour, value.minute, value.second, value.microsecond * 1000
    elif isinstance(value, str) and _TIME_TEXT.fullmatch(value.strip()):
        h, m, s, fraction = _TIME_TEXT.fullmatch(value.strip()).groups()
        hour, minute, second, nanos = int(h), int(m), int(s or 0), int((fraction or "").ljust(9, "0"))
    else:
        raise TypeError_("{}: expected a time of day, got {!r}".format(where, value))
    return "{:02d}:{:02d}:{:02d}.{}".format(hour, minute, second, _fraction(nanos))


def _map_entries(value: Any, where: str) -> List[Tuple[Any, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, (list, tuple)):
        entries = []
        for entry in value:
            if isinstance(entry, dict) and set(entry) == {"key", "value"}:
                entries.append((entry["key"], entry["value"]))
            elif isinstance(entry, (list, tuple)) and len(entry) == 2:
                entries.append((entry[0], entry[1]))
            else:
                raise TypeError_("{}: a map entry must be [key, value], got {!r}".format(where, entry))
        return entries
    raise TypeError_("{}: expected a map, got {!r}".format(where, value))


def map_key_order(key: Any) -> Tuple:
    """Sort key for canonical map keys: null first, then numbers by value,
    then everything else by its JSON text."""
    if key is None:
        return (0, 0, "")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (1, key, "")
    return (2, 0, json.dumps(key, sort_keys=True, ensure_ascii=False))


def canonical_value(data_type: DataType, value: Any, where: str = "value") -> Any:
    """Encodes one value of `data_type` canonically. Accepts Python values as
    pyarrow's `to_pylist` yields them and JSON values as readers print them."""
    if value is None:
        return None
    kind = data_type.kind
    if kind == "BOOLEAN":
        if hasattr(value, "item") and not isinstance(value, bool):
            value = value.item()
        if isinstance(value, bool):
            return value
        raise TypeError_("{}: expected a boolean, got {!r}".format(where, value))
    if kind in _INTEGER_KINDS:
        return _to_int(value, _INTEGER_KINDS[kind], where)
    if kind in ("FLOAT", "DOUBLE"):
        number = _to_float(value, where)
        special = _non_finite(number)
        if special is not None:
            return special
        return _float32_shortest(number, where) if kind == "FLOAT" else number
    if kind == "DECIMAL":
        return _decimal_text(value, data_type, where)
    if kind in ("CHAR", "VARCHAR"):
        if isinstance(value, str):
            return value
        raise TypeError_("{}: expected a string, got {!r}".format(where, value))
    if kind in ("BINARY", "VARBINARY"):
        return _bytes_text(value, where)
    if kind == "DATE":
        return _date_text(value, where)
    if kind == "TIME":
        return _time_text(value, where)
    if kind in ("TIMESTAMP", "TIMESTAMP_LTZ"):
        return _timestamp_text(value, where)
    if kind in ("ARRAY", "MULTISET"):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise TypeError_("{}: expected a list, got {!r}".format(where, value))
        return [canonical_value(data_type.element, item, "{}[{}]".format(where, i)) for i, item in enumerate(value)]
    if kind == "MAP":
        pairs = [
            [
                canonical_value(data_type.key, k, "{} key".format(where)),
                canonical_value(data_type.value, v, "{}[{!r}]".format(where, k)),
            ]
            for k, v in _map_entries(value, where)
        ]
        return sorted(pairs, key=lambda pair: map_key_order(pair[0]))
    if kind == "ROW":
        return canonical_row(data_type.fields, value, where)
    raise TypeError_("{}: unsupported type {}".format(where, kind))


def canonical_row(fields: List[Tuple[str, DataType]], row: Any, where: str = "row") -> Dict[str, Any]:
    """Encodes a row given as an object (missing members are null) or as a
    positional list."""
    if isinstance(row, (list, tuple)):
        if len(row) != len(fields):
            raise TypeError_("{}: {} values for {} fields".format(where, len(row), len(fields)))
        row = {name: item for (name, _), item in zip(fields, row)}
    if not isinstance(row, dict):
        raise TypeError_("{}: expected an object, got {!r}".format(where, row))
    known = {name for name, _ in fields}
    unknown = sorted(set(row) - known)
    if unknown:
        raise TypeError_("{}: unknown field(s) {} (fields are {})".format(where, unknown, [n for n, _ in fields]))
    return {
        name: canonical_value(field_type, row.get(name), "{}.{}".format(where, name)) for name, field_type in fields
    }


def row_line(row: Dict[str, Any]) -> str:
    """A canonical row as one line of compact JSON with sorted keys."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def sorted_lines(rows: List[Dict[str, Any]]) -> List[str]:
    return sorted(row_line(row) for row in rows)


def parse_json_exact(text: str) -> Any:
    """Parses JSON keeping every number's digits (floats as Decimal), so a
    DECIMAL printed as a bare number is not rounded through a binary float."""
    return json.loads(text, parse_float=decimal.Decimal)


# ------------------------------------------- canonical -> Python (for pyarrow)


def python_value(data_type: DataType, value: Any, where: str = "value") -> Any:
    """Turns a canonical value into the Python value pyarrow expects for the
    type's Arrow mapping (the inverse of `canonical_value`)."""
    if value is None:
        return None
    kind = data_type.kind
    if kind in ("BOOLEAN", "CHAR", "VARCHAR") or kind in _INTEGER_KINDS:
        return canonical_value(data_type, value, where)
    if kind in ("FLOAT", "DOUBLE"):
        return _to_float(value, where)
    if kind == "DECIMAL":
        return decimal.Decimal(_decimal_text(value, data_type, where))
    if kind in ("BINARY", "VARBINARY"):
        return bytes.fromhex(_bytes_text(value, where))
    if kind == "DATE":
        return datetime.date.fromisoformat(_date_text(value, where))
    if kind == "TIME":
        text = _time_text(value, where)
        return datetime.time.fromisoformat(text[:15])
    if kind in ("TIMESTAMP", "TIMESTAMP_LTZ"):
        whole, nanos = _split_timestamp(value, where)
        zone = datetime.timezone.utc if kind == "TIMESTAMP_LTZ" else None
        if nanos % 1000 != 0:
            # Python's datetime stops at microseconds; pandas carries nanoseconds.
            import pandas

            return pandas.Timestamp(whole.replace(tzinfo=zone)) + pandas.Timedelta(nanoseconds=nanos)
        return whole.replace(microsecond=nanos // 1000, tzinfo=zone)
    if kind in ("ARRAY", "MULTISET"):
        return [python_value(data_type.element, item, "{}[{}]".format(where, i)) for i, item in enumerate(value)]
    if kind == "MAP":
        return [
            (python_value(data_type.key, k, where + " key"), python_value(data_type.value, v, where))
            for k, v in _map_entries(value, where)
        ]
    if kind == "ROW":
        if not isinstance(value, dict):
            raise TypeError_("{}: expected an object for a ROW, got {!r}".format(where, value))
        return {
            name: python_value(field_type, value.get(name), "{}.{}".format(where, name))
            for name, field_type in data_type.fields
        }
    raise TypeError_("{}: unsupported type {}".format(where, kind))
