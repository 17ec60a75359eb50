"""The local SQLite warehouse: canonical tables, run log, quarantine, cursors, history.

Why it is built this way:

* **Consistency under kill.** Each batch (records + quarantined rows + counts +
  cursors that follow them) is one transaction in WAL mode, so killing the
  process at any moment leaves a valid database, the run marked unfinished,
  and cursors never ahead of written data.
* **Speed.** ``sqlite-utils`` creates and evolves the schema; the hot path is
  plain ``executemany``: one keyed look-up of stored hashes per batch, then
  ``INSERT`` for new rows, ``UPDATE`` for changed ones and a cheap ``last_run``
  touch for unchanged ones. (``upsert_all`` measured ~9x slower here.)
* **History.** For leads and deals every changed field is written to
  ``changes`` (old value, new value, run), so stage history can later be
  derived even from sources that have none.
* **Pleasant to browse.** Plain table names, keys indexed, JSON in TEXT
  columns, ISO-8601 UTC times — opens cleanly in Datasette or sqlite-utils.

Example::

    >>> with Warehouse.open("crmsync.db") as wh:           # doctest: +SKIP
    ...     run_id = wh.start_run(command="sync")
    ...     counts = wh.write_batch(run_id, "deal", records)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import sqlite_utils
from pydantic import BaseModel

from crmsync.errors import WarehouseError
from crmsync.model import ENTITIES, HISTORY_ENTITIES, TABLES, Record

SCHEMA_VERSION = 1
_CHUNK = 500  # keys per IN (...) look-up; well under SQLite's variable limit
_CACHE_KIB = 32 * 1024  # page cache of a writing connection (PRAGMA cache_size)
_CHECKPOINT_PAGES = 8000  # WAL pages between automatic checkpoints (default 1000)


def utcnow() -> str:
    return to_sql(datetime.now(UTC))


def to_sql(value: Any) -> Any:
    """Python value -> SQLite value. Decimals stay exact as TEXT; times are ISO-8601 UTC."""
    if value is None or isinstance(value, str | int | float):
        return value  # bool is an int
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return to_json(value.model_dump(mode="json", exclude_none=True))
    return to_json(value)


def to_json(value: Any) -> str:
    """Compact JSON; keys keep their order (a source row's column order is stable), so equal
    records give equal text. One encoder is reused: ``json.dumps`` with options builds a new one per call."""
    return _ENCODE(value)


def raw_json(headers: Iterable[str]) -> Callable[[Sequence[str | None]], str]:
    """``f(cells)``: ``to_json`` of a row's non-blank cells under their headers (a record's ``raw``)
    for rows whose cells are all text or ``None`` (CSV), written straight from the cells with each
    header's JSON prefix made once. Cells past the last header are ignored (such rows are quarantined).

    Why: building the dict and encoding it cost 10 us for a 17-column deals row, this 6; and a
    reader process can send the bare cells, which cost the pipe a fraction of a dict (see
    :class:`crmsync.source.PreparedRows`).

    >>> print(raw_json(["ID", "Name", "Note"])(("7", 'Peña "P"', "")))
    {"ID":"7","Name":"Peña \\"P\\""}
    """
    prefixes = [_encode_str(h) + ":" for h in headers]
    encode = _encode_str

    def encode_cells(cells: Sequence[str | None]) -> str:
        return "{" + ",".join([p + encode(c) for p, c in zip(prefixes, cells, strict=False) if c]) + "}"

    return encode_cells


_encode_str = json.encoder.encode_basestring


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    converted = to_sql(value)
    return converted


# A C encoder built once: JSONEncoder.encode() with options rebuilds it on every call, which
# costs more than encoding a whole row.
_C_ENCODER = json.encoder.c_make_encoder
if _C_ENCODER is not None:
    _c_encode = _C_ENCODER(None, _json_default, json.encoder.encode_basestring, None, ":", ",", False, False, True)

    def _ENCODE(value: Any) -> str:  # noqa: N802 - module-level alias
        return "".join(_c_encode(value, 0))
else:  # pragma: no cover - CPython always has the C accelerator
    _ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default).encode


def _sql_type(annotation: Any) -> type:
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    base = get_args(annotation)[0] if get_origin(annotation) is not None and get_args(annotation) else annotation
    if isinstance(base, type):
        if issubclass(base, bool | int) and not issubclass(base, Enum):
            return int
        if issubclass(base, float):
            return float
    return str


#: Model fields stored as JSON text (lists and objects).
JSON_FIELDS = frozenset({"custom", "raw", "emails", "phones", "labels", "reasons", "options", "deal_ids", "person_ids",
                         "stage_entered"})


def _converter(annotation: Any, name: str) -> Callable[[Any], Any] | None:
    """How a model field becomes a SQLite value; ``None`` when it already is one (the common case)."""
    if name in JSON_FIELDS:
        return to_json
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    base = get_args(annotation)[0] if get_origin(annotation) is not None and get_args(annotation) else annotation
    if isinstance(base, type):
        if issubclass(base, Enum):
            return _enum_value
        if issubclass(base, datetime):
            return _utc_text
        if issubclass(base, date):
            return date.isoformat
        if issubclass(base, Decimal):
            return str
    return None


def _enum_value(value: Enum) -> Any:
    return value.value


#: Converters inlined by _compile_row as expressions (same results, no function call).
_FAST_CONVERT: dict[Any, str] = {}


@dataclass(frozen=True)
class TableSpec:
    """How one entity is laid out: its table and data columns (in a fixed order)."""

    entity: str
    table: str
    columns: tuple[str, ...]
    types: dict[str, type]
    converters: tuple[tuple[str, Callable[[Any], Any] | None], ...]

    @classmethod
    def for_entity(cls, entity: str) -> TableSpec:
        model = ENTITIES[entity]
        own = [n for n in model.model_fields if n not in Record.model_fields]
        names = ["source", "source_id", *own, "custom", "raw"]
        fields = model.model_fields
        types = {n: _sql_type(fields[n].annotation) for n in names}
        converters = tuple((n, _converter(fields[n].annotation, n)) for n in names)
        return cls(entity=entity, table=TABLES[entity], columns=tuple(names), types=types, converters=converters)

    def row(self, record: Record) -> list[Any]:
        """The record's values in column order, as SQLite values."""
        return self._compiled()[0](record.__dict__)

    def params(self, record: Record) -> tuple[Any, ...]:
        """:meth:`row` as statement parameters: ``None`` is bound as NaN, which SQLite stores as NULL.

        Why: Python's sqlite3 binds ``None`` through its adapter protocol (an attribute look-up that
        fails per value), about 0.7 us each; a float is bound directly. Deals have a dozen empty
        columns, so this alone was ~8 us of a row's insert. :meth:`Warehouse.open` checks that the
        SQLite library really stores a NaN as NULL and falls back to ``None`` otherwise.
        """
        return self._compiled()[1](record.__dict__)

    def unfinished(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        """``f(record.__dict__)``: :meth:`params` with ``custom`` and ``raw`` still dicts.

        A reader process sends these (marshalled) and the writer finishes them (:func:`finish_row`)
        before :meth:`Warehouse.write_prepared`: the JSON encoding of those two can then be done by
        whichever process has time for it. Dicts that marshal cannot carry (typed XLSX cells, parsed
        custom values) must be finished on the reader's side.
        """
        return self._compiled()[2]

    def unfinished_fields(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        """``f(fields)``: :meth:`unfinished` of the record ``Model.build(fields)`` would make, without
        making it. Fields left out take the model's defaults; a field may already hold its stored
        text (:func:`stored_form`), and ``raw`` its JSON text.

        Why: a spreadsheet row's record exists only to become this tuple; building the model object
        and reading its ``__dict__`` back cost about a tenth of a deals row's reading (see
        ``EntityMapping.convert_stored``).

        >>> SPECS["stage"].unfinished_fields()({"source": "s", "source_id": "1", "name": "Won"})[:3]
        ('s', '1', 'Won')
        """
        return self._compiled()[3]

    def _compiled(self) -> tuple[Any, Any, Any, Any]:
        compiled = _COMPILED.get(self.entity)
        if compiled is None:
            compiled = _COMPILED[self.entity] = _compile_row(self.converters, _model_defaults(self.entity))
        return compiled


def _model_defaults(entity: str) -> dict[str, Any]:
    """Each field's default as :meth:`Record.build` fills it (factories called once)."""
    model = ENTITIES[entity]
    return {**model._defaults, **{name: factory() for name, factory in model._factories}}


#: entity -> (row, params, unfinished, unfinished_fields) functions generated from the table's
#: converters (see _compile_row).
_COMPILED: dict[str, tuple[Any, Any, Any, Any]] = {}
#: What an empty column is bound as (see TableSpec.params); None if this SQLite keeps NaN as a REAL.
_NULL_PARAM: Any = float("nan")


def _check_null_param(conn: sqlite3.Connection) -> None:
    """Bind empty columns as None after all if this SQLite library would store a NaN as a REAL."""
    global _NULL_PARAM
    if _NULL_PARAM is not None and conn.execute("SELECT ? IS NULL", (_NULL_PARAM,)).fetchone()[0] != 1:
        _NULL_PARAM = None
        _COMPILED.clear()


def _compile_row(converters: tuple[tuple[str, Callable[[Any], Any] | None], ...],
                 defaults: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """Generate ``row(values)``, ``params(values)``, ``unfinished(values)`` (params with ``custom``
    and ``raw`` not yet JSON, see :meth:`TableSpec.unfinished`) and ``unfinished_fields(values)`` (the
    same from a dict that may lack defaulted fields) for one table: a flat expression per column
    instead of a loop with a converter call per column (a third of the cost of the write path)."""
    ns: dict[str, Any] = {"N": _NULL_PARAM, "MISS": _MISSING}
    row_items, param_items, unfinished_items, fields_items = [], [], [], []
    for i, (name, convert) in enumerate(converters):
        get = f"d[{name!r}]"
        ns[f"D{i}"] = _default_param(name, convert, defaults.get(name))
        fields_items.append(_stored_item(i, name, convert, f"g({name!r}, MISS)", ns))
        if convert is None or name in _LEFT_TO_WRITER:
            unfinished_items.append(f"N if (v := {get}) is None else v")
        if convert is None:
            row_items.append(get)
            param_items.append(f"N if (v := {get}) is None else v")
            continue
        call = _call(i, convert, ns)
        row_items.append(f"None if (v := {get}) is None else {call}")
        param_items.append(f"N if (v := {get}) is None else {call}")
        if name not in _LEFT_TO_WRITER:
            unfinished_items.append(f"N if (v := {get}) is None else {call}")
    ns.update(ENC=_ENCODE, UTC_TEXT=_utc_text, DATE_ISO=date.isoformat)
    source = (
        "def row(d):\n    return [\n        " + ",\n        ".join(row_items) + ",\n    ]\n"
        "def params(d):\n    return (\n        " + ",\n        ".join(param_items) + ",\n    )\n"
        "def unfinished(d):\n    return (\n        " + ",\n        ".join(unfinished_items) + ",\n    )\n"
        "def unfinished_fields(d):\n    g = d.get\n    return (\n        "
        + ",\n        ".join(fields_items) + ",\n    )\n"
    )
    exec(compile(source, "<crmsync.warehouse row>", "exec"), ns)  # noqa: S102 - generated from field names
    return ns["row"], ns["params"], ns["unfinished"], ns["unfinished_fields"]


def _default_param(name: str, convert: Callable[[Any], Any] | None, default: Any) -> Any:
    """A column's parameter when its field was left out (the model's default)."""
    if default is None:
        return _NULL_PARAM
    return default if convert is None or name in _LEFT_TO_WRITER else convert(default)


def _call(i: int, convert: Callable[[Any], Any], ns: dict[str, Any], prefix: str = "") -> str:
    """The expression converting ``v`` to its column value (converter ``c{i}`` put in ``ns``)."""
    fast = _FAST_CONVERT.get(convert)
    if fast is not None:
        return fast.format(p=prefix)
    ns[f"{prefix}c{i}"] = convert
    return f"{prefix}c{i}(v)"


def _stored_item(i: int, name: str, convert: Callable[[Any], Any] | None, value: str, ns: dict[str, Any],
                 prefix: str = "") -> str:
    """One column of :meth:`TableSpec.unfinished_fields`: ``value`` (an expression that is ``MISS``
    when the field was never set) as the column's parameter. Needs ``{prefix}D{i}``, ``{prefix}N``
    and ``{prefix}MISS`` in ``ns`` (see :func:`stored_row_expression`)."""
    d, n, miss = f"{prefix}D{i}", f"{prefix}N", f"{prefix}MISS"
    if convert is None or name in _LEFT_TO_WRITER:
        return f"{d} if (v := {value}) is {miss} else {n} if v is None else v"
    call = _call(i, convert, ns, prefix)
    if convert in _TEXT_READY:  # the value may already be its stored text (see stored_form)
        call = f"v if type(v) is str else {call}"
    return f"{d} if (v := {value}) is {miss} else {n} if v is None else {call}"


def stored_row_expression(entity: str, values: dict[str, str], prefix: str) -> tuple[str, dict[str, Any]]:
    """Source text of a tuple expression that is :meth:`TableSpec.unfinished_fields` of the fields
    whose values the expressions in ``values`` hold (``MISS`` when unset; columns not in ``values``
    take their defaults), and the names it needs (all starting with ``prefix``), for code generated
    elsewhere (``EntityMapping.convert_cells``) that keeps fields in local variables, not a dict.

    >>> text, ns = stored_row_expression("stage", {"source": "s", "source_id": "i", "name": "n"}, "T_")
    >>> eval(text, {**ns, "s": "x", "i": "1", "n": "Won"})[:3]
    ('x', '1', 'Won')
    """
    spec = SPECS[entity]
    defaults = _model_defaults(entity)
    ns: dict[str, Any] = {f"{prefix}N": _NULL_PARAM, f"{prefix}MISS": _MISSING, f"{prefix}ENC": _ENCODE,
                          f"{prefix}UTC_TEXT": _utc_text, f"{prefix}DATE_ISO": date.isoformat}
    items = []
    for i, (name, convert) in enumerate(spec.converters):
        ns[f"{prefix}D{i}"] = _default_param(name, convert, defaults.get(name))
        value = values.get(name)
        items.append(f"{prefix}D{i}" if value is None else _stored_item(i, name, convert, value, ns, prefix))
    return "(\n        " + ",\n        ".join(items) + ",\n    )", ns


#: What :func:`stored_row_expression`'s values are when a field was never set.
MISSING = _MISSING = object()


#: Columns :meth:`TableSpec.unfinished` leaves as dicts; always the last two (see TableSpec.for_entity).
_LEFT_TO_WRITER = ("custom", "raw")


def finish_row(row: tuple[Any, ...], raw_of: Callable[[Any], str] | None = None) -> tuple[Any, ...]:
    """``(unfinished params, tag)`` -> ``(params, tag)``: the ``custom`` and ``raw`` columns (the last
    two) JSON-encoded as :meth:`TableSpec.params` would have. A ``raw`` of bare cells (a tuple) is
    encoded by ``raw_of`` (:func:`raw_json` of their headers)."""
    params = row[0]
    custom, raw = params[-2], params[-1]
    if type(raw) is tuple:
        raw = raw_of(raw)  # type: ignore[misc]
    elif type(raw) is dict:
        raw = _ENCODE(raw)
    if type(custom) is dict:
        custom = _ENCODE(custom)
    if custom is not params[-2] or raw is not params[-1]:
        return (*params[:-2], custom, raw), row[1]
    return row


def params_row(params: tuple[Any, ...]) -> list[Any]:
    """:meth:`TableSpec.row` from :meth:`TableSpec.params`: empty columns back to ``None``.

    A NaN can only be the empty-column marker: SQLite stores any NaN as NULL.
    """
    return [None if type(v) is float and v != v else v for v in params]


def _utc_text(value: datetime) -> str:
    """``to_sql`` for a datetime (the column converter of every time field)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # == value.isoformat().replace("+00:00", "Z"), without formatting the offset (half the cost)
    return f"{value.date().isoformat()}T{value.time().isoformat()}Z"


def stored_form(entity: str, name: str) -> Callable[[Any], str] | None:
    """How a scalar field becomes its stored text (times, dates, decimals, enums); ``None`` for
    fields stored as they are or as JSON. :meth:`TableSpec.unfinished_fields` accepts either the
    field's value or this text, so a parser may produce the text directly (see ``iso_utc_text``)."""
    convert = dict(SPECS[entity].converters).get(name)
    return convert if convert in _TEXT_READY or convert is str else None


def iso_utc_text(raw: object) -> str | None:
    """The stored text of the commonest time cell, ``2021-04-15 10:30:00`` read as UTC, made from the
    text itself; ``None`` for any other form (parse those, then :func:`_utc_text`).

    Why: parsing to a ``datetime`` and formatting it back costs about five times as much, and
    exports hold two or three such columns per row.

    >>> iso_utc_text("2021-04-15 10:30:00"), iso_utc_text("2021-02-30 10:30:00"), iso_utc_text("15/04/2021")
    ('2021-04-15T10:30:00Z', None, None)
    """
    if type(raw) is not str or len(raw) != 19 or not _ISO_SECONDS.fullmatch(raw):
        return None
    day = raw[:10]
    if day not in _REAL_DAYS:  # the calendar check (month 1-12, day in month), once per day seen
        try:
            _date_from_iso(day)
        except ValueError:
            return None
        if len(_REAL_DAYS) < 100_000:
            _REAL_DAYS.add(day)
    return f"{day}T{raw[11:]}Z"


#: The time of day is checked here (hour < 24, minute and second < 60, as ``datetime`` requires).
_ISO_SECONDS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
_date_from_iso = date.fromisoformat
_REAL_DAYS: set[str] = set()


_FAST_CONVERT.update({
    to_json: "{p}ENC(v)", _utc_text: "{p}UTC_TEXT(v)", _enum_value: "v._value_", date.isoformat: "{p}DATE_ISO(v)",
    str: "str(v)",
})


#: Converters whose result is text that a value may already be (TableSpec.unfinished_fields).
_TEXT_READY = frozenset({_utc_text, date.isoformat, _enum_value})

SPECS = {entity: TableSpec.for_entity(entity) for entity in ENTITIES}


@dataclass
class BatchCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: list[tuple[Any, str]] = field(default_factory=list)


@dataclass
class QuarantineRow:
    """A row that could not be loaded, with everything needed to find and fix it."""

    source: str
    entity: str
    reason: str
    file: str | None = None
    sheet: str | None = None
    line: int | None = None
    column: str | None = None
    value: Any = None
    raw: dict[str, Any] | None = None


class Warehouse:
    """A SQLite warehouse file. Use :meth:`open` (takes the single-writer lock)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None):
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._lock_fd = lock_fd

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, write: bool = True) -> Warehouse:
        """Open (creating if needed) the warehouse; ``write=True`` takes an exclusive run lock.

        The lock is an advisory ``flock`` on ``<path>.lock`` so two scheduled
        runs never interleave batches; readers (``status``) don't take it.
        """
        path = Path(path)
        lock_fd = None
        try:
            if write:
                path.parent.mkdir(parents=True, exist_ok=True)
                lock_fd = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(lock_fd)
                    raise WarehouseError(
                        f"{path}: another crmsync run is writing this warehouse; wait for it to finish"
                    ) from None
            elif not path.exists():
                raise WarehouseError(f"{path}: no warehouse yet; run `crmsync sync` first")
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            if write:
                # A bounded page cache big enough for the key indexes of a large run: with the 2 MiB
                # default, batches of a 400k-row ingest kept re-reading index pages (~25% of the
                # write time). Memory stays flat: the cache never grows past this.
                conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
                # Checkpoint the WAL every ~32 MiB instead of every 4 MiB: fewer copy+fsync rounds
                # (~10% of a large ingest's wall time). Every commit stays atomic and a kill loses
                # nothing committed; only an OS crash may lose commits since the last checkpoint.
                conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
            _check_null_param(conn)
        except sqlite3.DatabaseError as exc:
            if lock_fd is not None:
                os.close(lock_fd)
            raise WarehouseError(f"{path}: cannot open warehouse: {exc}") from None
        wh = cls(path, conn, lock_fd)
        if write:
            wh.ensure_schema()
        return wh

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create missing tables, columns and indexes; never drops anything."""
        db = self.db
        try:
            with self.transaction():
                for spec in SPECS.values():
                    columns: dict[str, type] = {**spec.types, "first_run": int,
                                                "last_run": int, "removed_run": int}
                    table = db[spec.table]
                    if not table.exists():
                        table.create(columns, pk=("source", "source_id"), not_null={"source", "source_id"})
                    else:
                        for name, kind in columns.items():
                            if name not in table.columns_dict:
                                table.add_column(name, kind)
                db["deals"].create_index(["source", "stage_id"], if_not_exists=True)
                db["deals"].create_index(["source", "source_lead_id"], if_not_exists=True)
                db["stage_changes"].create_index(["source", "deal_id", "changed_at"], if_not_exists=True)
                db["runs"].create(
                    {"id": int, "command": str, "status": str, "started_at": str, "finished_at": str,
                     "config_path": str, "sources": str, "summary": str, "error": str, "pid": int},
                    pk="id", if_not_exists=True,
                )
                db["run_counts"].create(
                    {"run_id": int, "source": str, "entity": str, "read": int, "inserted": int,
                     "updated": int, "unchanged": int, "quarantined": int, "removed": int},
                    pk=("run_id", "source", "entity"), if_not_exists=True,
                )
                db["quarantine"].create(
                    {"id": int, "run_id": int, "source": str, "entity": str, "file": str, "sheet": str,
                     "line": int, "column": str, "value": str, "reason": str, "raw": str, "created_at": str},
                    pk="id", if_not_exists=True,
                )
                db["quarantine"].create_index(["source", "run_id"], if_not_exists=True)
                db["changes"].create(
                    {"id": int, "run_id": int, "source": str, "entity": str, "source_id": str,
                     "field": str, "old_value": str, "new_value": str, "changed_at": str},
                    pk="id", if_not_exists=True,
                )
                db["changes"].create_index(["source", "entity", "source_id"], if_not_exists=True)
                db["cursors"].create(
                    {"source": str, "stream": str, "value": str, "run_id": int, "updated_at": str},
                    pk=("source", "stream"), if_not_exists=True,
                )
                db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
                self.conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        except sqlite3.DatabaseError as exc:
            raise WarehouseError(f"{self.path}: cannot set up warehouse schema: {exc}") from None

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    # -- runs ----------------------------------------------------------------------

    def start_run(self, command: str, *, config_path: str | None = None, sources: Sequence[str] = ()) -> int:
        """Record a new run; earlier runs still marked ``running`` were killed: mark them ``interrupted``."""
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, ?) "
                "WHERE status = 'running'",
                (utcnow(),),
            )
            cur = self.conn.execute(
                "INSERT INTO runs (command, status, started_at, config_path, sources, pid) "
                "VALUES (?, 'running', ?, ?, ?, ?)",
                (command, utcnow(), config_path, to_json(list(sources)), os.getpid()),
            )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, *, summary: dict[str, Any] | None = None,
                   error: str | None = None) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary = ?, error = ? WHERE id = ?",
                (status, utcnow(), to_json(summary) if summary is not None else None, error, run_id),
            )

    def add_counts(self, run_id: int, source: str, entity: str, **counts: int) -> None:
        """Add to a run's per-entity counters (inside the caller's batch transaction)."""
        names = ("read", "inserted", "updated", "unchanged", "quarantined", "removed")
        vals = [counts.get(n, 0) for n in names]
        self.conn.execute(
            f"INSERT INTO run_counts (run_id, source, entity, {', '.join(names)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT(run_id, source, entity) DO UPDATE SET "
            + ", ".join(f"{n} = {n} + excluded.{n}" for n in names),
            (run_id, source, entity, *vals),
        )

    # -- records -------------------------------------------------------------------

    def write_records(self, run_id: int, entity: str, records: Sequence[Record]) -> BatchCounts:
        """Write one batch of records of one entity (caller holds the transaction).

        A record whose id was already written earlier in the same run is not
        written again: it comes back in ``duplicates`` for the caller to
        quarantine, so a repeated id in the input never silently overwrites.
        """
        params = SPECS[entity].params
        counts = self.write_prepared(run_id, entity, [(params(record), record) for record in records])
        counts.duplicates = [(row[1], reason) for row, reason in counts.duplicates]
        return counts

    def write_prepared(self, run_id: int, entity: str, rows: Sequence[tuple[tuple[Any, ...], Any]]) -> BatchCounts:
        """:meth:`write_records` for rows already turned into ``(params, tag)`` by :meth:`TableSpec.params`
        (possibly in another process; :func:`finish_row` finishes :meth:`TableSpec.unfinished` ones);
        ``duplicates`` holds ``(row, reason)``.

        A stored row is unchanged when its columns hold these parameters. Why compare the columns
        and not a hash of the row: only ids already stored need comparing at all, so a new row costs
        nothing (hashing every row was about a tenth of an ingest); and the comparison is exact.
        """
        spec = SPECS[entity]
        counts = BatchCounts()
        if not rows:
            return counts
        keys = [(row[0][0], row[0][1]) for row in rows]
        by_key = dict(zip(keys, rows, strict=True))
        if len(by_key) < len(rows):  # a repeated id: the first row keeps it
            by_key = {}
            for key, row in zip(keys, rows, strict=True):
                if key in by_key:
                    counts.duplicates.append((row, "duplicate id in this run: an earlier row has the same id"))
                else:
                    by_key[key] = row

        existing = self._existing(spec, list(by_key))
        if not existing:  # new ids only (a first load): nothing to compare or record
            self._insert(run_id, spec, [row[0] for row in by_key.values()])
            counts.inserted = len(by_key)
            return counts
        inserts, updates, touches = [], [], []
        changed: dict[tuple[str, str], tuple[tuple[Any, ...], list[Any]]] = {}
        for key, row in by_key.items():
            params = row[0]
            old = existing.get(key)
            if old is None:
                inserts.append(params)
                continue
            last_run, removed_run = old[0], old[1]
            if last_run == run_id:
                counts.duplicates.append((row, "duplicate id in this run: an earlier row has the same id"))
                continue
            new = params_row(params)
            if removed_run is None and (list(old[2:]) == new or self._holds(spec, params)):
                touches.append(key)
            else:
                updates.append((*params[2:], run_id, key[0], key[1]))
                changed[key] = (old, new)

        table = spec.table
        if changed and entity in HISTORY_ENTITIES:
            self._record_changes(run_id, spec, changed)
        if inserts:
            self._insert(run_id, spec, inserts)
        if updates:
            sets = ", ".join(f'"{c}" = ?' for c in spec.columns[2:])
            self.conn.executemany(
                f'UPDATE "{table}" SET {sets}, last_run = ?, removed_run = NULL WHERE source = ? AND source_id = ?',
                updates,
            )
        if touches:
            self._touch(table, run_id, touches)
        counts.inserted, counts.updated, counts.unchanged = len(inserts), len(updates), len(touches)
        return counts

    def _insert(self, run_id: int, spec: TableSpec, params: list[tuple[Any, ...]]) -> None:
        cols = ", ".join(f'"{c}"' for c in spec.columns)
        marks = ", ".join("?" * len(spec.columns))
        self.conn.executemany(
            f'INSERT INTO "{spec.table}" ({cols}, first_run, last_run) VALUES ({marks}, {run_id:d}, {run_id:d})', params
        )

    def _holds(self, spec: TableSpec, params: tuple[Any, ...]) -> bool:
        """Whether the stored row compares equal to ``params`` in SQLite, where each column's type
        affinity applies (an ``INTEGER`` column stores the text ``"5"`` as ``5``). Asked only when the
        Python values differ, so a value the column converts does not count as a change every run."""
        test = " AND ".join(f'"{c}" IS ?' for c in spec.columns[2:])
        return self.conn.execute(
            f'SELECT 1 FROM "{spec.table}" WHERE source = ? AND source_id = ? AND {test}', params
        ).fetchone() is not None

    def _touch(self, table: str, run_id: int, keys: list[tuple[str, str]]) -> None:
        """Set ``last_run`` of unchanged rows: one ``UPDATE ... IN (...)`` per chunk of keys."""
        by_source: dict[str, list[str]] = {}
        for source, source_id in keys:
            by_source.setdefault(source, []).append(source_id)
        for source, ids in by_source.items():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                self.conn.execute(
                    f'UPDATE "{table}" SET last_run = ? WHERE source = ? AND source_id IN ({marks})',
                    (run_id, source, *chunk),
                )

    def _existing(self, spec: TableSpec, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
        """Stored rows of these keys: ``(last_run, removed_run, *columns)``."""
        found: dict[tuple[str, str], tuple[Any, ...]] = {}
        by_source: dict[str, list[str]] = {}
        for source, source_id in keys:
            by_source.setdefault(source, []).append(source_id)
        cols = ", ".join(f'"{c}"' for c in spec.columns)
        for source, ids in by_source.items():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                for row in self.conn.execute(
                    f'SELECT last_run, removed_run, {cols} FROM "{spec.table}" '
                    f"WHERE source = ? AND source_id IN ({marks})",
                    (source, *chunk),
                ):
                    found[(source, row[3])] = row
        return found

    def _record_changes(self, run_id: int, spec: TableSpec,
                        changed: dict[tuple[str, str], tuple[tuple[Any, ...], list[Any]]]) -> None:
        """History rows for ``{key: (stored row as _existing reads it, new row values)}``."""
        now = utcnow()
        history = []
        for (source, source_id), (old, new) in changed.items():
            if old[1] is not None:
                history.append((run_id, source, spec.entity, source_id, "_removed", "removed", None, now))
            for name, before, after in zip(spec.columns[2:], old[4:], new[2:], strict=True):
                if before == after:
                    continue
                if name in ("custom", "raw"):
                    # Per key, so one edited cell is one history row: "raw.Stage", "custom.Budget".
                    b, a = json.loads(before or "{}"), json.loads(after or "{}")
                    for k in sorted(set(b) | set(a)):
                        if b.get(k) != a.get(k):
                            history.append((run_id, source, spec.entity, source_id, f"{name}.{k}",
                                            _text_json(b.get(k)), _text_json(a.get(k)), now))
                    continue
                history.append((run_id, source, spec.entity, source_id, name, _text(before), _text(after), now))
        self.conn.executemany(
            "INSERT INTO changes (run_id, source, entity, source_id, field, old_value, new_value, changed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            history,
        )

    def mark_removed(self, run_id: int, source: str, entity: str, seen: int | None = None) -> int:
        """After a complete snapshot of ``entity``, mark records the source no longer has as removed.

        Nothing is deleted: ``removed_run`` says in which run the record
        vanished, and for leads and deals the removal is written to history.

        ``seen``: how many of the source's records this run wrote (inserted, updated or unchanged).
        When the table holds no others, there is nothing to look for: counting the source's ids is
        an index-only count, while looking for unseen records reads every row (0.65 s of a 1M-row
        first load, after all rows are written).
        """
        table = SPECS[entity].table
        if seen is not None and self.conn.execute(
            f'SELECT count(*) FROM "{table}" WHERE source = ?', (source,)
        ).fetchone()[0] == seen:
            return 0
        gone = [
            r[0]
            for r in self.conn.execute(
                f'SELECT source_id FROM "{table}" WHERE source = ? AND last_run < ? AND removed_run IS NULL',
                (source, run_id),
            )
        ]
        if not gone:
            return 0
        now = utcnow()
        self.conn.executemany(
            f'UPDATE "{table}" SET removed_run = ? WHERE source = ? AND source_id = ?',
            [(run_id, source, sid) for sid in gone],
        )
        if entity in HISTORY_ENTITIES:
            self.conn.executemany(
                "INSERT INTO changes (run_id, source, entity, source_id, field, old_value, new_value, changed_at) "
                "VALUES (?, ?, ?, ?, '_removed', NULL, 'removed', ?)",
                [(run_id, source, entity, sid, now) for sid in gone],
            )
        return len(gone)

    # -- quarantine and cursors ----------------------------------------------------

    def quarantine(self, run_id: int, rows: Iterable[QuarantineRow]) -> int:
        now = utcnow()
        params = [
            (run_id, q.source, q.entity, q.file, q.sheet, q.line, q.column,
             None if q.value is None else str(to_sql(q.value)), q.reason,
             to_json(q.raw) if q.raw is not None else None, now)
            for q in rows
        ]
        self.conn.executemany(
            'INSERT INTO quarantine (run_id, source, entity, file, sheet, line, "column", value, reason, raw, '
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )
        return len(params)

    def clear_old_quarantine(self, run_id: int, source: str, entities: Iterable[str]) -> None:
        """A complete re-read supersedes earlier quarantine rows of the same entities."""
        for entity in entities:
            self.conn.execute(
                "DELETE FROM quarantine WHERE source = ? AND entity = ? AND run_id < ?", (source, entity, run_id)
            )

    def set_cursor(self, run_id: int, source: str, stream: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO cursors (source, stream, value, run_id, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(source, stream) DO UPDATE SET value = excluded.value, run_id = excluded.run_id, "
            "updated_at = excluded.updated_at",
            (source, stream, value, run_id, utcnow()),
        )

    def cursors(self, source: str | None = None) -> dict[tuple[str, str], str]:
        sql = "SELECT source, stream, value FROM cursors"
        args: tuple[Any, ...] = ()
        if source is not None:
            sql += " WHERE source = ?"
            args = (source,)
        return {(s, st): v for s, st, v in self.conn.execute(sql, args)}

    # -- reading -------------------------------------------------------------------

    def status(self, last: int = 10) -> dict[str, Any]:
        """Last runs, row counts per table and cursors, for ``crmsync status``."""
        runs = [
            dict(zip(("id", "command", "status", "started_at", "finished_at", "error"), r, strict=True))
            for r in self.conn.execute(
                "SELECT id, command, status, started_at, finished_at, error FROM runs ORDER BY id DESC LIMIT ?",
                (last,),
            )
        ]
        for run in runs:
            run["counts"] = [
                dict(zip(("source", "entity", "read", "inserted", "updated", "unchanged", "quarantined",
                          "removed"), r, strict=True))
                for r in self.conn.execute(
                    "SELECT source, entity, read, inserted, updated, unchanged, quarantined, removed "
                    "FROM run_counts WHERE run_id = ? ORDER BY source, entity",
                    (run["id"],),
                )
            ]
        tables = {}
        for spec in SPECS.values():
            total, removed = self.conn.execute(
                f'SELECT COUNT(*), COUNT(removed_run) FROM "{spec.table}"'
            ).fetchone()
            tables[spec.table] = {"rows": total, "removed": removed}
        for extra in ("changes", "quarantine"):
            tables[extra] = {"rows": self.conn.execute(f"SELECT COUNT(*) FROM {extra}").fetchone()[0]}
        cursors = [
            dict(zip(("source", "stream", "value", "run_id", "updated_at"), r, strict=True))
            for r in self.conn.execute("SELECT source, stream, value, run_id, updated_at FROM cursors ORDER BY 1, 2")
        ]
        return {"warehouse": str(self.path), "runs": runs, "tables": tables, "cursors": cursors}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _text_json(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return to_json(value)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception (including KeyboardInterrupt)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
