"""Declarative mappings: which column feeds which canonical field, and how to parse it.

Why declarative: every CRM export names its columns differently, and ops staff
must be able to adapt a mapping without writing Python. A mapping is a TOML
file (built-in presets live in :mod:`crmsync.mappings`); it is compiled once
into per-field closures so the per-row cost is a few dict look-ups and a parse.

A mapping file looks like::

    [mapping]
    description = "Generic spreadsheet export"
    date_order = "auto"            # or "DMY", "MDY", "YMD"

    [entities.deal]
    match = ["*deal*"]             # file names (globs, case-insensitive) holding deals
    id = "ID"                      # column holding the record's id in the source

    [entities.deal.fields]
    title = "Title"                # column name, parse type taken from the model
    value = { column = "Value", parse = "money" }
    status = { column = "Status", lookup = "deal_status", default = "open" }
    stage_category = { column = "Stage", lookup = "stage_category" }

    [entities.deal.custom]         # custom fields, under their human names
    "Lead source" = "Source"

    [lookups.deal_status]          # canonical value = [words used by the source]
    won = ["Won", "Ganado", "Closed Won"]

Rows of one entity's files can also give records of another (a deals export's contact persons):
``[entities.person.also_from.deal]`` holds that table's id and fields (:attr:`Mapping.also`), and
``derive = [columns]`` builds a deterministic key when the export has no id for them.

Fields that read more than one plain cell (templates, multi-value cells, ``when`` cases) are built by
:mod:`crmsync.mapping_exprs` and only cost anything in mappings that use them (docs/mappings.md).

Example::

    >>> m = load_mapping("spreadsheet")                      # doctest: +SKIP
    >>> result = m.entity("deal").convert({"ID": "1", "Title": "x"}, source="demo")  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from enum import Enum
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmsync import values
from crmsync.errors import MappingError, ValueParseError
from crmsync.mapping_exprs import CellFailed, ColumnSet, Extract, Template, compile_conditions
from crmsync.model import ENTITIES, ContactPoint, Record
from crmsync.warehouse import MISSING, iso_utc_text, stored_form, stored_row_expression

PARSERS = ("text", "int", "decimal", "money", "bool", "date", "datetime", "email", "phone", "list", "id")
DATE_ORDERS = ("auto", "DMY", "MDY", "YMD")
#: What to do when a value is not in its lookup: keep null and report it, quarantine the row, or keep it.
ON_MISSING = ("report", "quarantine", "keep")
_RESERVED = frozenset({"source", "source_id", "custom", "raw", "first_run", "last_run"})
_FIELD_KEYS = {"column", "path", "value", "parse", "lookup", "default", "required", "on_missing", "label",
               "template", "split", "pattern", "pick", "when", "columns", "derive"}
#: Keys of an ``[entities.<name>]`` table, and of an ``[entities.<name>.also_from.<entity>]`` table.
_ENTITY_KEYS = {"match", "id", "fields", "custom", "also_from"}
_ALSO_KEYS = {"id", "fields", "custom", "if"}
_CASE_KEYS = {"if", "value", "column"}


@dataclass(slots=True)
class Rejection:
    """Why a row could not become a record: goes to the quarantine table."""

    column: str | None
    value: Any
    reason: str


@dataclass(slots=True)
class ParseSettings:
    """Per-source parse settings (source config wins over mapping defaults)."""

    date_order: str = "auto"
    default_currency: str | None = None
    phone_region: str = "US"
    timezone: tzinfo = UTC
    decimal_separator: str | None = None


def fold(text: str) -> str:
    """Case-, accent- and space-insensitive key for lookups: ``'  Ganádo '`` -> ``'ganado'``."""
    text = unicodedata.normalize("NFKD", text.strip().casefold())
    return " ".join("".join(ch for ch in text if not unicodedata.combining(ch)).split())


def derive_key(row: dict[str, Any], columns: tuple[str, ...]) -> str | None:
    """A deterministic key from the first of ``columns`` that is not blank on the row.

    Why: denormalized exports (a deals file with its contact's columns) often carry no id of the
    contact, so one is derived the same way on every row and every run. A cell holding an email
    address gives its first valid address, lower-cased; any other cell gives its text folded (case,
    accents and spacing ignored). Ids and names never contain ``@``, so the forms cannot collide.

    >>> derive_key({"ID": "", "Email": "Jose@Acme.com, j@x.es", "Name": "José"}, ("ID", "Email", "Name"))
    'jose@acme.com'
    >>> derive_key({"Email": "n/a", "Name": " José  Muñoz "}, ("Email", "Name"))
    'jose munoz'
    """
    cells = tuple(row.get(column) for column in columns)
    try:
        return _derive(cells)
    except TypeError:  # an unhashable cell (not from a spreadsheet): not remembered
        return _derive.__wrapped__(cells)


@lru_cache(maxsize=1 << 16)
def _derive(cells: tuple[Any, ...]) -> str | None:
    """:func:`derive_key` of the cells themselves, remembered: a person's email is on every row of their
    deals, and checking an address costs more than the rest of the row."""
    for cell in cells:
        text = values.parse_text(cell)
        if text is None:
            continue
        if "@" not in text:
            return fold(text)
        for part in values.split_multi(text):
            try:
                email = values.normalize_email(part)
            except ValueParseError:
                continue
            if email:
                return email
    return None


def _resolve_tz(name: str, where: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC  # the constant, so parsers take their no-conversion fast path
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"{where}: unknown timezone {name!r} (use an IANA name like 'Europe/Madrid')") from None


@dataclass
class FieldSpec:
    name: str
    column: str | None
    path: tuple[str, ...] | None
    parse: str
    lookup: str | None
    default: Any
    required: bool
    on_missing: str
    label: str | None
    #: Other names the column goes by (``column = ["Deal - Currency", "Deal - Currency of value"]``):
    #: the first one a file has is used.
    aliases: tuple[str, ...] = ()
    #: ``value = ...``: every record gets this constant (already in canonical form).
    constant: Any = None
    has_constant: bool = False
    #: ``template = "{First Name} {Last Name}"``: the value is built from several columns.
    template: Template | None = None
    #: ``split``/``pattern``/``pick``: the value(s) are taken out of a multi-value cell.
    extract: Extract | None = None
    #: ``when = [...]``: cases tried in order before the field's own column/value/default.
    cases: tuple[Case, ...] = ()
    #: ``columns = { pattern, key }``: every matching column of a file, as one ``{key: value}`` table.
    column_set: ColumnSet | None = None
    #: ``derive = ["Person - ID", "Person - Email", "Deal - Contact person"]``: a deterministic key from
    #: the first of these columns that is not blank on the row (see :func:`derive_key`).
    derive: tuple[str, ...] = ()

    def candidates(self) -> tuple[str, ...]:
        if self.template is not None:
            return self.template.columns
        if self.derive:
            return self.derive
        return self.aliases or ((self.column,) if self.column is not None else ())

    def column_groups(self) -> list[tuple[str, ...]]:
        """Every column this field may read, as groups of alternative names (for missing-column notices)."""
        groups = [(c,) for c in self.candidates()] if self.template is not None else (
            [self.candidates()] if self.candidates() else [])
        for case in self.cases:
            groups += [(c,) for c in case.columns]
            if case.spec is not None:
                groups += case.spec.column_groups()
        return groups

    def parsed_columns(self) -> list[str]:
        """Columns whose cells are parsed with this field's parse type (not templates, not conditions)."""
        own = [] if self.template is not None else list(self.candidates())
        return own + [c for case in self.cases if case.spec is not None for c in case.spec.candidates()]


@dataclass(frozen=True)
class Case:
    """One ``when`` case: if ``test(row)`` holds, the field gets ``constant`` or the value read by ``spec``."""

    test: Callable[[dict[str, Any]], bool]
    columns: tuple[str, ...]
    constant: Any = None
    spec: FieldSpec | None = None


@dataclass
class EntityMapping:
    """A compiled mapping for one entity; :meth:`convert` turns a raw row into a record."""

    entity: str
    mapping_name: str
    match: list[str]
    id_spec: FieldSpec
    fields: list[FieldSpec]
    custom: list[FieldSpec]
    lookups: dict[str, dict[str, str]]
    settings: ParseSettings
    record_cls: type[Record]
    date_orders: dict[str, str] = field(default_factory=dict)
    #: (field, value) -> rows, for lookup values the mapping does not know.
    unmapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    _fold_memo: dict[str, str] = field(default_factory=dict, repr=False)
    _required: list[str] = field(default_factory=list, repr=False)
    _default_coercers: list[Any] = field(default_factory=list, repr=False)
    _convert: Callable[[dict[str, Any], str], Record | Rejection] | None = field(default=None, repr=False)
    _convert_fields: Callable[[dict[str, Any], str], dict[str, Any] | Rejection] | None = field(
        default=None, repr=False)
    _convert_stored: Callable[[dict[str, Any], str], dict[str, Any] | Rejection] | None = field(
        default=None, repr=False)
    _convert_cells: Callable[[list[str], str], tuple[Any, ...] | Rejection] | None = field(default=None, repr=False)
    _compile_cells: Callable[[], Any] | None = field(default=None, repr=False)
    _id_spec: FieldSpec | None = field(default=None, repr=False)
    #: For a secondary mapping (``[entities.person.also_from.deal]``): the entity whose files' rows it reads,
    #: and its ``if`` (the columns it tests, and the test): only rows where it holds give a record.
    also_from: str | None = None
    row_filter: tuple[tuple[str, ...], Callable[[dict[str, Any]], bool]] | None = None

    def matches(self, filename: str) -> bool:
        lowered = filename.lower()
        return any(fnmatch.fnmatch(lowered, pattern.lower()) for pattern in self.match)

    def has_id_columns(self, headers: Iterable[str]) -> bool:
        """Whether a file with these headers can give this entity's id (a derived id needs one of its columns)."""
        present = set(headers)
        spec = self.id_spec
        if spec.template is not None:
            return present.issuperset(spec.template.columns)
        if spec.path:
            return spec.path[0] in present
        if spec.derive:
            return bool(present.intersection(spec.derive))
        return spec.column in present if not spec.aliases else bool(present.intersection(spec.aliases))

    def read_columns(self, headers: Iterable[str]) -> list[str]:
        """The headers this mapping reads, in file order (the raw form kept of a secondary record)."""
        header_list = list(headers)
        wanted = set(self.columns())
        if self.row_filter is not None:
            wanted.update(self.row_filter[0])
        specs = [self.id_spec, *self.fields, *self.custom]
        wanted.update(spec.path[0] for spec in specs if spec.path)
        for spec in specs:
            if spec.column_set is not None:
                wanted.update(header for header, _ in spec.column_set.match(header_list))
        return [h for h in header_list if h in wanted]

    def row_id(self, row: dict[str, Any]) -> str | None:
        """The id this row gives (``None`` when blank), without converting the row."""
        return values.parse_text(self._get(self._id_spec or self.id_spec, row))

    def columns(self, parse: str | None = None) -> list[str]:
        """Columns this mapping may read, aliases included (optionally only those of one parse type)."""
        specs = [self.id_spec, *self.fields, *self.custom]
        if parse is None:
            return [c for s in specs for group in s.column_groups() for c in group]
        return [c for s in specs if s.parse == parse for c in s.parsed_columns()]

    def missing_columns(self, headers: Iterable[str]) -> list[str]:
        """Columns of the mapping a file lacks (an aliased column only when it has none of its names)."""
        present = set(headers)
        out = []
        for spec in [self.id_spec, *self.fields, *self.custom]:
            for names in spec.column_groups():
                if names and not present.intersection(names):
                    out.append(" / ".join(names))
        return sorted(set(out))

    def bind(self, headers: Iterable[str] | None = None) -> None:
        """Prepare the per-row steps for one file: drop columns it lacks, fix each date column's order.

        Call after ``date_orders`` is settled; :meth:`convert` binds lazily to all columns otherwise.
        """
        header_list = None if headers is None else list(headers)
        present = None if header_list is None else set(header_list)

        def resolve(spec: FieldSpec) -> FieldSpec:
            if spec.cases:
                spec = replace(spec, cases=tuple(
                    replace(c, spec=resolve(c.spec)) if c.spec is not None else c for c in spec.cases))
            if present is None or len(spec.aliases) < 2:
                return spec
            chosen = next((name for name in spec.aliases if name in present), spec.aliases[0])
            return replace(spec, column=chosen)

        self._id_spec = resolve(self.id_spec)

        def step(spec: FieldSpec, canonical: bool, stored: bool) -> tuple[FieldSpec, str | None, Any, int]:
            if spec.cases:
                branches = [(self._constant(replace(spec, constant=case.constant, cases=()), canonical)
                             if case.spec is None else step(case.spec, canonical, stored)) for case in spec.cases]
                has_base = spec.column is not None or spec.path or spec.template or spec.has_constant
                base = step(replace(spec, cases=()), canonical, stored) if has_base else None
                which = _which_case(tuple(case.test for case in spec.cases))
                return (spec, None, (which, branches, base), _WHEN)
            if spec.has_constant:
                return (spec, None, self._constant(spec, canonical), _CONST)
            if spec.column_set is not None:
                matched = spec.column_set.match(header_list) if header_list is not None else []
                readers = [(header, key, self._parser(replace(spec, column=header, column_set=None)))
                           for header, key in matched]
                return (spec, None, partial(_read_column_set, tuple(readers)), _COLUMNS)
            mode = _MONEY if spec.parse == "money" else _APPEND if spec.parse in ("email", "phone") else _SET
            parse = self._parser(spec)
            extract = spec.extract
            if extract is not None and extract.pick == "all":
                parse = _each(extract, parse)
            elif extract is not None:
                parse = _first(extract, parse)
            coerce = _coercer(self.record_cls, spec.name) if canonical else None
            if coerce is not None:
                parse = _then(parse, coerce)
            many = extract is not None and extract.pick == "all"
            if stored and canonical and mode in (_SET, _MONEY) and not many:
                parse = self._stored(spec, parse)
            if spec.parse not in _MUTABLE_RESULTS and not spec.lookup and not many:
                parse = _Memo(parse)
            elif spec.lookup and not many:
                # Only values the lookup table knows are remembered: a miss may be counted in
                # ``unmapped`` (once per row) or quarantine the row, so it is looked up every time.
                hit = partial(self._lookup_hit, spec)
                parse = _Memo(parse, cacheable=hit if extract is None else (lambda raw: hit(extract.first(raw))))
            if spec.parse == "money" and not canonical:
                parse = _then(parse, _money_json)  # a custom amount is stored as {"amount", "currency"}
            return (spec, spec.column, parse, mode)

        def steps(specs: list[FieldSpec], stored: bool = False,
                  ) -> list[tuple[FieldSpec, str | None, Callable[[Any], Any], int]]:
            out: list[tuple[FieldSpec, str | None, Any, int]] = []
            for spec in map(resolve, specs):
                missing = (present is not None and spec.column is not None and spec.column not in present
                           and not spec.cases)
                if missing and spec.default is None and not spec.required:
                    continue  # the file has no such column: the field stays empty
                out.append(step(spec, specs is self.fields, stored))
            return out

        self._required = _required_fields(self.record_cls)
        self._default_coercers = [
            (spec.name, coerce) for spec in self.fields
            if spec.default is not None and (coerce := _coercer(self.record_cls, spec.name)) is not None
        ]
        # Two converters, each with its own memos: typed values for records, and values as stored.
        self._convert_fields = _compile_convert(self, steps(self.fields), steps(self.custom))
        self._convert_stored = _compile_convert(self, steps(self.fields, stored=True), steps(self.custom), stored=True)
        # By position only for the headers bound here (compiled on first use).
        self._convert_cells = None
        self._compile_cells = None if header_list is None else (lambda: _compile_convert(
            self, steps(self.fields, stored=True), steps(self.custom), stored=True, headers=header_list))
        build = self.record_cls.build

        def convert(row: dict[str, Any], source: str) -> Record | Rejection:
            fields = self._convert_fields(row, source)
            if type(fields) is Rejection:
                return fields
            fields["raw"] = raw_cells(row)
            return build(fields)

        self._convert = convert

    def convert(self, row: dict[str, Any], source: str) -> Record | Rejection:
        """Turn one raw row into a canonical record, or say why it cannot be one.

        The work is done by a function generated in :meth:`bind` for this file's columns (see
        :func:`_compile_convert`): the same steps as a loop over fields, spelled out once per field.
        """
        convert = self._convert
        if convert is None:
            self.bind()
            convert = self._convert
            assert convert is not None
        return convert(row, source)

    def convert_stored(self, row: dict[str, Any], source: str) -> dict[str, Any] | Rejection:
        """:meth:`convert` without building the record, for ``TableSpec.unfinished_fields``: the
        field values (defaulted fields left out), times, dates, decimals and enums set straight from
        a cell already as their stored text (``warehouse.stored_form``), others typed. ``raw`` is left
        to the caller (:func:`raw_cells`, or its JSON text). The same steps and rejections.

        >>> deals = load_mapping("spreadsheet").entity("deal")
        >>> row = {"ID": "7", "Title": "Big one", "Value": "1.500,00 €", "Created": "2024-05-01 09:30:00"}
        >>> fields = deals.convert_stored(row, "exports")
        >>> fields["source_id"], fields["value"], fields["currency"], fields["add_time"]
        ('7', Decimal('1500.00'), 'EUR', '2024-05-01T09:30:00Z')
        """
        if self._convert_stored is None:
            self.bind()
            assert self._convert_stored is not None
        return self._convert_stored(row, source)

    def convert_cells(self, cells: list[str], source: str) -> tuple[Any, ...] | Rejection:
        """:meth:`convert_stored` of a row given as its cells under the headers the mapping was
        bound to (:meth:`bind` with headers; one cell per header), straight to the warehouse row
        ``TableSpec.unfinished_fields`` would make with ``raw`` the tuple of cells.

        Why: for a CSV row this skips the row's dict, the fields' dict and the second pass over
        them, about half of what converting a deals row cost; a rejection is the same.

        >>> deals = load_mapping("spreadsheet").entity("deal")
        >>> deals.bind(["ID", "Title", "Value", "Created"])
        >>> row = deals.convert_cells(["7", "Big one", "1.500,00 €", "2024-05-01 09:30:00"], "exports")
        >>> row[:3], row[-1]
        (('exports', '7', 'Big one'), ('7', 'Big one', '1.500,00 €', '2024-05-01 09:30:00'))
        """
        convert = self._convert_cells
        if convert is None:
            if self._compile_cells is None:
                raise TypeError("convert_cells needs the file's headers: call bind(headers) first")
            convert = self._convert_cells = self._compile_cells()
        return convert(cells, source)

    def _stored(self, spec: FieldSpec, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``parse`` followed by the field's stored form (if it has one); ISO times read as UTC skip
        the ``datetime`` altogether, plain amounts the ``Decimal``."""
        if spec.parse == "money":
            sep = self.settings.decimal_separator
            if spec.lookup or spec.extract is not None or sep not in (None, "."):
                return parse
            try:  # a plain cell's currency is the default's, checked here once as parse_money checks it
                currency = values.parse_money("0", self.settings.default_currency, sep).currency  # type: ignore[union-attr]
            except ValueParseError:
                return parse  # every row then says why, as before

            def plain_first(raw: Any) -> Any:
                text = values.plain_amount(raw, sep)
                return parse(raw) if text is None else values.Money(text, currency)  # type: ignore[arg-type]

            # What _compile_convert may call first by itself: the text, or None to call this.
            plain_first.text_first = (  # type: ignore[attr-defined]
                values.plain_amount if sep is None else (lambda raw: values.plain_amount(raw, sep)))
            plain_first.currency = currency  # type: ignore[attr-defined]
            return plain_first
        form = stored_form(self.entity, spec.name)
        if form is None:
            return parse
        stored = _then(parse, form)
        if (spec.parse != "datetime" or spec.lookup or spec.extract is not None
                or self.settings.timezone not in (None, UTC)):
            return stored

        def iso_first(raw: Any) -> Any:
            text = iso_utc_text(raw)
            return stored(raw) if text is None else text

        iso_first.text_first = iso_utc_text  # type: ignore[attr-defined]
        return iso_first

    def _constant(self, spec: FieldSpec, canonical_field: bool) -> Any:
        coerce = _coercer(self.record_cls, spec.name) if canonical_field else None
        return coerce(spec.constant) if coerce is not None else spec.constant

    def _lookup_hit(self, spec: FieldSpec, raw: Any) -> bool:
        """Whether looking ``raw`` up has no side effect (blank, a known value, or ``keep``)."""
        if spec.on_missing != "report":
            return True
        text = values.parse_text(raw)
        return text is None or self.lookups[spec.lookup or ""].get(fold(text)) is not None

    @staticmethod
    def _get(spec: FieldSpec, row: dict[str, Any]) -> Any:
        if spec.template is not None:
            return spec.template.render(row)
        if spec.derive:
            return derive_key(row, spec.derive)
        if spec.column is not None:
            return row.get(spec.column)
        node: Any = row
        for part in spec.path or ():
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node

    def _parser(self, spec: FieldSpec) -> Callable[[Any], Any]:
        """The function that parses a non-empty raw value of this field (blank/placeholder -> None)."""
        settings = self.settings
        kind = spec.parse
        if spec.lookup:
            return partial(self._lookup, spec)
        if kind in ("text", "id"):
            return values.parse_text
        if kind in ("date", "datetime"):
            order = self.date_orders.get(spec.column or "") or (
                None if settings.date_order == "auto" else settings.date_order
            )
            # Closures with positional arguments, not partial(..., keyword=...): a keyword partial
            # merges its keywords into a new dict on every call.
            if kind == "date":
                return lambda raw, parse=values.parse_date: parse(raw, order)
            tz = settings.timezone
            return lambda raw, parse=values.parse_datetime: parse(raw, order, tz)
        sep = settings.decimal_separator
        if kind == "decimal":
            return lambda raw, parse=values.parse_decimal: parse(raw, sep)
        if kind == "int":
            return lambda raw: _parse_int(raw, sep)
        if kind == "money":
            currency = settings.default_currency
            return lambda raw, parse=values.parse_money: parse(raw, currency, sep)
        if kind == "bool":
            return values.parse_bool
        if kind == "list":
            return lambda raw: values.split_multi(str(raw)) or None
        if kind in ("email", "phone"):
            return partial(self._contacts, spec)
        raise AssertionError(kind)  # compile_mapping() only admits PARSERS

    def _contacts(self, spec: FieldSpec, raw: Any) -> list[ContactPoint]:
        points = []
        parts = values.split_multi(raw if isinstance(raw, str) else str(raw))
        if spec.parse == "phone" and not isinstance(raw, str):
            parts = [raw]  # a number cell from XLSX
        for part in parts:
            try:
                if spec.parse == "email":
                    normalized = values.normalize_email(part)
                else:
                    normalized = values.normalize_phone(part, default_region=self.settings.phone_region)
                problem = None
            except ValueParseError as exc:
                normalized, problem = None, exc.reason
            points.append(
                ContactPoint(raw=str(part), normalized=normalized, label=spec.label, problem=problem)
            )
        return points

    def _lookup(self, spec: FieldSpec, raw: Any) -> Any:
        text = values.parse_text(raw)
        if text is None:
            return None
        table = self.lookups[spec.lookup or ""]
        memo = self._fold_memo
        folded = memo.get(text)
        if folded is None:
            folded = fold(text)
            if len(memo) < 50_000:  # lookup columns repeat a few words; don't grow without bound
                memo[text] = folded
        hit = table.get(folded)
        if hit is not None:
            return hit
        if spec.on_missing == "keep":
            return text
        if spec.on_missing == "quarantine":
            known = ", ".join(sorted(set(table.values())))
            raise ValueParseError(
                f"{text!r} is not in lookup {spec.lookup!r} of mapping {self.mapping_name!r} "
                f"(maps to: {known}); add it to [lookups.{spec.lookup}]",
                raw,
            )
        self.unmapped[(spec.name, text)] += 1
        return None


_SET, _MONEY, _APPEND, _CONST, _WHEN, _COLUMNS = 0, 1, 2, 3, 4, 5


def _read_column_set(readers: tuple[tuple[str, str, Callable[[Any], Any]], ...], row: dict[str, Any]
                     ) -> dict[str, Any] | None:
    """``{key: parsed value}`` of a ``columns`` field's non-blank cells; a bad cell names its own column."""
    out = {}
    for header, key, parse in readers:
        raw = row.get(header)
        if raw is None or raw == "":
            continue
        try:
            value = parse(raw)
        except ValueParseError as exc:
            raise CellFailed(header, raw, exc.reason) from None
        if value is not None:
            out[key] = value
    return out or None


def _which_case(tests: tuple[Callable[[dict[str, Any]], bool], ...]) -> Callable[[dict[str, Any]], int]:
    """The index of the first ``when`` case whose condition holds for a row, or -1."""
    if len(tests) == 1:
        only = tests[0]
        return lambda row: 0 if only(row) else -1

    def which(row: dict[str, Any]) -> int:
        for i, test in enumerate(tests):
            if test(row):
                return i
        return -1

    return which


def _first(extract: Extract, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def first(raw: Any) -> Any:
        item = extract.first(raw)
        return None if item is None else parse(item)

    return first


def _each(extract: Extract, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def each(raw: Any) -> list[Any] | None:
        out = [v for item in extract.items(raw) if (v := parse(item)) is not None]
        return out or None

    return each
#: Parsers whose results are mutable lists: never shared between records through a memo.
_MUTABLE_RESULTS = frozenset({"list", "email", "phone"})


class _Memo:
    """Remember a column's parsed values while the column repeats itself (status, stage, owner…).

    Exports are full of low-cardinality columns, and a dict hit costs a fraction of a parse. Once a
    column shows more than ``limit`` distinct values (ids, titles, timestamps) the memo switches
    itself off and drops its cache, so unique columns pay almost nothing. ``cacheable(raw)``, if
    given, says whether a parsed value may be remembered (lookups with side effects may not).

    Compiled converters look ``cache`` up inline and call :meth:`miss` only when it has no entry;
    ``on_off`` tells them when the memo switches off, so they stop looking.
    """

    __slots__ = ("parse", "cache", "limit", "cacheable", "on_off")

    def __init__(self, parse: Callable[[Any], Any], limit: int = 2048,
                 cacheable: Callable[[Any], bool] | None = None):
        self.parse = parse
        self.cache: dict[Any, Any] | None = {}
        self.limit = limit
        self.cacheable = cacheable
        self.on_off: Callable[[], None] | None = None

    def __call__(self, raw: Any) -> Any:
        cache = self.cache
        if cache is None:
            return self.parse(raw)
        try:
            return cache[raw]
        except KeyError:
            return self.miss(raw)

    def miss(self, raw: Any) -> Any:
        value = self.parse(raw)  # a parse error propagates and is not remembered
        cache = self.cache
        if cache is None or (self.cacheable is not None and not self.cacheable(raw)):
            return value
        if len(cache) >= self.limit:
            self.cache = None
            if self.on_off is not None:
                self.on_off()
        else:
            cache[raw] = value
        return value


#: "No such value" in generated code; the same object the warehouse's row expressions test for.
_MISS = MISSING


def _compile_convert(em: EntityMapping, field_steps: list[Any], custom_steps: list[Any], stored: bool = False,
                     headers: list[str] | None = None) -> Callable[[Any, str], Any]:
    """Generate ``convert_fields(row, source)`` for a bound mapping's steps: the loop of the original converter
    unrolled, one block per field, with constants baked in and memo look-ups inline.

    Why: a generic loop pays tuple unpacking, attribute look-ups and mode branches for every field
    of every row (about half of the conversion time of a deals row). The generated function does
    exactly the same steps in the same order; only the interpretation overhead is gone.

    With ``headers`` (and ``stored``) it generates ``convert_cells(cells, source)`` instead, for rows
    given as a list of cells under those headers: cells are read by position, fields kept in local
    variables, and the result is the row's ``TableSpec.unfinished_fields`` tuple itself (``raw`` the
    tuple of cells) or the same :class:`Rejection`. See :meth:`EntityMapping.convert_cells`.
    """
    ns: dict[str, Any] = {
        "MISS": _MISS, "Rejection": Rejection, "ValueParseError": ValueParseError, "CellFailed": CellFailed,
        "parse_text": values.parse_text, "EMPTY_GET": {}.get,
    }
    positional = headers is not None
    where_of = {h: i for i, h in enumerate(headers or ())}
    set_fields: list[str] = []

    def put(name: str) -> str:
        """Where a field's value goes: the ``data`` dict, or a local variable by position."""
        if not positional:
            return f"data[{name!r}]"
        if name not in set_fields:
            set_fields.append(name)
        return f"f_{name}"

    def unset(name: str) -> str:
        return f"{put(name)} is MISS" if positional else f"{name!r} not in data"

    def current(name: str) -> str:
        return f"(None if {unset(name)} else f_{name})" if positional else f"data.get({name!r})"

    # By position, the row as a dict for the few steps that need more than one cell (templates,
    # conditions): made once per row, and only if the mapping has such a step (see the end).
    uses_row: list[bool] = []

    def whole_row() -> str:
        uses_row.append(True)
        return "row"

    if positional:
        ns["ROW"] = lambda cells, headers=tuple(headers or ()): dict(zip(headers, cells, strict=True))
        lines = ["def convert_cells(cells, source):"]
    else:
        lines = ["def convert_fields(row, source):", "    row_get = row.get"]
    add = lines.append

    def slot(target: str, name: str) -> str:
        return put(name) if target == "data" else f"{target}[{name!r}]"

    def cell(column: str) -> str:
        """The raw value of a column on the row."""
        if not positional:
            return f"row_get({column!r})"
        return f"cells[{where_of[column]}]" if column in where_of else "None"

    id_spec = em._id_spec or em.id_spec
    if id_spec.column is not None:
        ns["ID_COL"] = id_spec.column
        add(f"    raw_id = {cell(id_spec.column) if positional else 'row_get(ID_COL)'}")
    else:
        ns["GET_ID"] = partial(em._get, id_spec)
        add(f"    raw_id = GET_ID({whole_row()})")
    add("    record_id = parse_text(raw_id)")
    add("    if record_id is None:")
    add(f"        return Rejection({id_spec.column!r}, raw_id, "
        "'missing id: every row needs a value in its id column')")
    if not positional:
        add("    data = {'source': source, 'source_id': record_id}")
    field_lines_at = len(lines)

    def parse(i: int, parse_fn: Any, where: str | None, indent: str) -> None:
        ns[f"P{i}"] = parse_fn
        if isinstance(parse_fn, _Memo):
            ns[f"G{i}"] = parse_fn.cache.get if parse_fn.cache is not None else ns["EMPTY_GET"]
            ns[f"M{i}"] = parse_fn.miss

            def off(i: int = i, memo: _Memo = parse_fn) -> None:
                ns[f"G{i}"], ns[f"M{i}"] = ns["EMPTY_GET"], memo.parse

            parse_fn.on_off = off
            add(f"{indent}value = G{i}(raw, MISS)")
            add(f"{indent}if value is MISS:")
            add(f"{indent}    try:")
            add(f"{indent}        value = M{i}(raw)")
            add(f"{indent}    except ValueParseError as exc:")
            add(f"{indent}        return Rejection({where!r}, raw, exc.reason)")
        else:
            add(f"{indent}try:")
            add(f"{indent}    value = P{i}(raw)")
            add(f"{indent}except ValueParseError as exc:")
            add(f"{indent}    return Rejection({where!r}, raw, exc.reason)")

    counter = iter(range(1_000_000))

    def empty_lines(spec: FieldSpec, column: str | None, target: str, raw: str = "raw") -> list[str]:
        """What an empty value does: the default if the field has none yet, else a rejection if required."""
        if target == "custom":
            return []
        name = spec.name
        why = name + " is required but empty" + ("" if raw == "raw" else " (no case of its when holds)")
        reject = f"return Rejection({column!r}, {raw}, {why!r})"
        empty: list[str] = []
        if spec.default is not None:
            d = f"D{next(counter)}"
            ns[d] = spec.default
            empty += [f"if {unset(name)}:", f"    {put(name)} = {d}"]
            if spec.required:
                empty += ["else:", "    " + reject]
        elif spec.required:
            empty += [reject]
        return empty

    def emit(step: tuple[FieldSpec, str | None, Any, int], target: str, indent: str,
             empty: list[str] | None = None) -> None:
        spec, column, parse_fn, mode = step
        name = spec.name
        i = next(counter)
        if mode == _CONST:
            ns[f"K{i}"] = parse_fn
            add(f"{indent}{slot(target, name)} = K{i}  # constant")
            return
        if mode == _COLUMNS:
            ns[f"S{i}"] = parse_fn
            add(f"{indent}# {target} {name!r} <- columns matching {spec.column_set.pattern.pattern!r}")
            add(f"{indent}try:")
            add(f"{indent}    value = S{i}({whole_row()})")
            add(f"{indent}except CellFailed as exc:")
            add(f"{indent}    return Rejection(exc.column, exc.raw, exc.reason)")
            add(f"{indent}if value is not None:")
            add(f"{indent}    {slot(target, name)} = value")
            return
        if mode == _WHEN:
            which, branches, base = parse_fn
            ns[f"W{i}"] = which
            add(f"{indent}# {target} {name!r} <- when ({len(branches)} cases)")
            add(f"{indent}try:")
            add(f"{indent}    case = W{i}({whole_row()})")
            add(f"{indent}except CellFailed as exc:")
            add(f"{indent}    return Rejection(exc.column, exc.raw, exc.reason)")
            for k, branch in enumerate(branches):
                add(f"{indent}{'if' if k == 0 else 'elif'} case == {k}:")
                if isinstance(branch, tuple):  # a column read when the case holds; empty like the field
                    emit(branch, target, indent + "    ", empty_lines(spec, branch[1], target))
                else:
                    ns[f"K{i}_{k}"] = branch
                    add(f"{indent}    {slot(target, name)} = K{i}_{k}")
            add(f"{indent}else:")
            if base is not None:
                emit(base, target, indent + "    ", empty_lines(spec, base[1], target))
            else:
                lines.extend(f"{indent}    {e}" for e in empty_lines(spec, None, target, raw="None") or ["pass"])
            return
        if empty is None:
            empty = empty_lines(spec, column, target)
        where = column or ".".join(spec.path or ()) or (
            " + ".join(spec.template.columns) if spec.template is not None else None)
        add(f"{indent}# {target} {name!r} <- {where} ({spec.parse})")
        if spec.column is not None:
            add(f"{indent}raw = {cell(spec.column)}")
        else:
            ns[f"GET{i}"] = partial(em._get, spec)
            add(f"{indent}raw = GET{i}({whole_row()})")
        if target == "custom":  # an empty custom value is simply left out
            add(f"{indent}if raw is not None and raw != '':")
            parse(i, parse_fn, where, indent + "    ")
            add(f"{indent}    if value is not None:")
            add(f"{indent}        custom[{name!r}] = value")
            return
        add(f"{indent}if raw is None or raw == '':")
        lines.extend(f"{indent}    {e}" for e in empty or ["pass"])
        add(f"{indent}else:")
        # By position, a cell whose stored text is itself (plain amounts, ISO times read as UTC, see
        # EntityMapping._stored) is stored without the memo and the parse: no call layers, no Money.
        parser = getattr(parse_fn, "parse", parse_fn)  # under its memo, if it has one
        text_first = getattr(parser, "text_first", None) if positional else None
        if text_first is not None and mode in (_SET, _MONEY):
            ns[f"TF{i}"] = text_first
            add(f"{indent}    value = TF{i}(raw)")
            add(f"{indent}    if value is not None:")
            add(f"{indent}        {slot(target, name)} = value")
            currency = getattr(parser, "currency", None) if mode == _MONEY else None
            if currency:
                ns[f"CUR{i}"] = currency
                add(f"{indent}        if not {current('currency')}:")
                add(f"{indent}            {put('currency')} = CUR{i}")
            add(f"{indent}    else:")
            indent += "    "
        parse(i, parse_fn, where, indent + "    ")
        add(f"{indent}    if value is None:")
        lines.extend(f"{indent}        {e}" for e in empty or ["pass"])
        store = f"{indent}        {slot(target, name)}"
        if mode == _SET:
            add(f"{indent}    else:")
            add(f"{store} = value")
        elif mode == _MONEY:
            add(f"{indent}    else:")
            add(f"{store} = value.amount")
            add(f"{indent}        if value.currency and not {current('currency')}:")
            add(f"{indent}            {put('currency')} = value.currency")
        else:
            add(f"{indent}    elif not ({unset(name)}):")
            add(f"{store} = {put(name)} + value")
            add(f"{indent}    else:")
            add(f"{store} = value")

    for step in field_steps:
        emit(step, "data", "    ")
    if custom_steps:
        add("    custom = {}")
        for step in custom_steps:
            emit(step, "custom", "    ")
        add(f"    {put('custom')} = custom")
    for k, name in enumerate(em._required):
        spec = next(s for s in em.fields if s.name == name)
        ns[f"REQ{k}"] = partial(_missing_required, em, spec)
        add(f"    if {unset(name)}:")
        add(f"        return REQ{k}({'ROW(cells)' if positional else 'row'})")  # rare: made only here
    for k, (name, coerce) in enumerate(em._default_coercers):
        ns[f"C{k}"] = coerce
        add(f"    value = {current(name)}")
        test = f"isinstance(value, str) and type(value) is not C{k}"  # an enum member needs no coercion
        if stored and isinstance(coerce, type) and issubclass(coerce, Enum):
            ns[f"V{k}"] = frozenset(member.value for member in coerce)
            test += f" and value not in V{k}"  # nor, in stored form, an enum's value
        add(f"    if {test}:")
        add(f"        {put(name)} = C{k}(value)")
    # Every value was produced by a typed parser (and coerced above), so the model is built without
    # re-validating (Model.build): validation costs more than all the parsing of a row together.
    # tests/test_mapping.py re-validates every record the mappings produce to keep this honest.
    if positional:
        # Every local starts unset; the result is the warehouse row (raw: the cells as they came).
        if set_fields:
            lines.insert(field_lines_at, f"    {' = '.join(f'f_{n}' for n in set_fields)} = MISS")
        if uses_row:
            lines.insert(1, "    row = ROW(cells)")
        values_of = {n: f"f_{n}" for n in set_fields}
        values_of.update(source="source", source_id="record_id", raw="tuple(cells)")
        row_text, row_ns = stored_row_expression(em.entity, values_of, "T_")
        ns.update(row_ns)
        add(f"    return {row_text}")
    else:
        add("    return data")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<crmsync.mapping {em.mapping_name}.{em.entity}>", "exec"), ns)  # noqa: S102
    convert_fields = ns["convert_cells" if positional else "convert_fields"]
    convert_fields.__source__ = source  # for debugging: print(em._convert_fields.__source__)
    return convert_fields


def raw_cells(row: dict[str, Any]) -> dict[str, Any]:
    """A record's ``raw``: the row as it came, blank cells dropped (typed XLSX cells are JSON-encoded
    by the warehouse)."""
    return {k: v for k, v in row.items() if v is not None and v != ""}


def _missing_required(em: EntityMapping, spec: FieldSpec, row: dict[str, Any]) -> Rejection:
    reads_one_cell = spec.column is not None or spec.path or spec.template is not None
    return Rejection(spec.column, em._get(spec, row) if reads_one_cell else None, f"{spec.name} is required but empty")


def _coercer(cls: type[Record], name: str) -> Callable[[Any], Any] | None:
    """A check/conversion a parsed value still needs to fit the model (enums, currency codes)."""
    if name == "currency":
        return _currency_code
    annotation = cls.model_fields[name].annotation
    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, Enum):
            return arg
    return None


def _currency_code(value: Any) -> str:
    code = str(value).strip().upper()
    if code not in values.ISO_4217:
        raise ValueParseError(f"{value!r} is not an ISO 4217 currency code (like EUR, USD, MXN)", value)
    return code


def _then(first: Callable[[Any], Any], second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def both(raw: Any) -> Any:
        value = first(raw)
        if value is None:
            return None
        try:
            return second(value)
        except ValueError:
            raise ValueParseError(f"{value!r} is not an accepted value here", raw) from None

    return both


def _money_json(money: values.Money) -> dict[str, str | None]:
    return {"amount": str(money.amount), "currency": money.currency}


def _parse_int(raw: Any, decimal_separator: str | None) -> int | None:
    number = values.parse_decimal(raw, decimal_separator=decimal_separator)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise ValueParseError("not a whole number", raw)
    return int(number)


@dataclass
class Mapping:
    """A loaded mapping file: its entities and lookups."""

    name: str
    path: Path | None
    description: str
    entities: dict[str, EntityMapping]
    #: Secondary mappings by the entity whose files they read: ``{"deal": [<person from deal rows>]}``.
    also: dict[str, list[EntityMapping]] = field(default_factory=dict)

    def entity(self, name: str) -> EntityMapping:
        return self.entities[name]

    def entity_for_file(self, filename: str) -> EntityMapping | None:
        for entity in self.entities.values():
            if entity.matches(filename):
                return entity
        return None


def builtin_mappings() -> list[str]:
    """Names of the presets shipped in :mod:`crmsync.mappings`."""
    files = resources.files("crmsync.mappings")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def load_mapping(
    ref: str, *, base_dir: Path | None = None, overrides: dict[str, Any] | None = None
) -> Mapping:
    """Load a mapping by preset name (``"spreadsheet"``) or by path to a TOML file.

    ``overrides`` are parse settings from the source config (``date_order``,
    ``default_currency``, ``phone_region``, ``timezone``, ``decimal_separator``)
    that win over the mapping's own ``[mapping]`` defaults.
    """
    looks_like_path = ref.endswith(".toml") or "/" in ref or "\\" in ref
    if looks_like_path:
        path = Path(ref)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise MappingError(f"{ref}: mapping file not found (built-in presets: {', '.join(builtin_mappings())})")
        text = path.read_text(encoding="utf-8")
        name, where = path.stem, str(path)
    else:
        resource = resources.files("crmsync.mappings") / f"{ref}.toml"
        if not resource.is_file():
            raise MappingError(
                f"mapping {ref!r}: no such built-in preset (choose one of: {', '.join(builtin_mappings())}, "
                "or give a path to your own .toml)"
            )
        text = resource.read_text(encoding="utf-8")
        name, where, path = ref, f"mappings/{ref}.toml", None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{where}: not valid TOML: {exc}") from None
    return compile_mapping(data, name=name, where=where, path=path, overrides=overrides or {})


def compile_mapping(
    data: dict[str, Any], *, name: str, where: str, path: Path | None = None, overrides: dict[str, Any]
) -> Mapping:
    """Validate a parsed mapping and compile it; every problem names file, entity and field."""
    problems: list[str] = []
    unknown = set(data) - {"mapping", "entities", "lookups"}
    problems += [f"{key}: unknown section (expected mapping, entities, lookups)" for key in sorted(unknown)]
    head = data.get("mapping", {})
    known_head = {"description", "date_order", "default_currency", "phone_region", "timezone", "decimal_separator"}
    problems += [f"mapping.{k}: unknown key" for k in sorted(set(head) - known_head)]
    merged = {**head, **{k: v for k, v in overrides.items() if v is not None}}

    settings = ParseSettings()
    order = merged.get("date_order", "auto")
    if order not in DATE_ORDERS:
        problems.append(f"mapping.date_order: {order!r} is not one of {', '.join(DATE_ORDERS)}")
    else:
        settings.date_order = order
    settings.default_currency = merged.get("default_currency")
    settings.phone_region = merged.get("phone_region", "US")
    settings.decimal_separator = merged.get("decimal_separator")
    if settings.decimal_separator not in (None, ".", ","):
        problems.append("mapping.decimal_separator: must be \".\" or \",\"")
    try:
        settings.timezone = _resolve_tz(merged.get("timezone", "UTC"), f"{where}: mapping.timezone")
    except MappingError as exc:
        problems.append(str(exc))

    lookups: dict[str, dict[str, str]] = {}
    for lname, table in data.get("lookups", {}).items():
        if not isinstance(table, dict):
            problems.append(f"lookups.{lname}: must be a table of canonical = [source words]")
            continue
        folded: dict[str, str] = {}
        for canonical, words in table.items():
            words = [words] if isinstance(words, str) else words
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                problems.append(f"lookups.{lname}.{canonical}: must be a list of strings")
                continue
            for word in [canonical, *words]:
                key = fold(word)
                if key in folded and folded[key] != canonical:
                    problems.append(
                        f"lookups.{lname}: {word!r} maps to both {folded[key]!r} and {canonical!r}"
                    )
                folded[key] = canonical
        lookups[lname] = folded

    entities: dict[str, EntityMapping] = {}
    also: dict[str, list[EntityMapping]] = {}
    declared = data.get("entities", {})
    for ename, body in declared.items():
        prefix = f"entities.{ename}"
        cls = ENTITIES.get(ename)
        if cls is None:
            problems.append(f"{prefix}: unknown entity (expected one of {', '.join(ENTITIES)})")
            continue
        if not isinstance(body, dict):
            problems.append(f"{prefix}: must be a table with match, id and fields")
            continue
        extra = set(body) - _ENTITY_KEYS
        problems += [f"{prefix}.{k}: unknown key" for k in sorted(extra)]
        match = body.get("match", [f"*{ename}*"])
        match = [match] if isinstance(match, str) else match
        if set(body) == {"also_from"}:
            pass  # only read from other entities' files: no file is matched to it
        elif (compiled := _compile_entity(ename, cls, body, prefix, name, lookups, settings, problems, match)):
            entities[ename] = compiled
        also_from = body.get("also_from", {})
        if not isinstance(also_from, dict):
            problems.append(f"{prefix}.also_from: must be tables like [{prefix}.also_from.deal] with id and "
                            f"fields (the columns of those files that give a {ename})")
            continue
        for primary, sub in also_from.items():
            here = f"{prefix}.also_from.{primary}"
            if primary == ename:
                problems.append(f"{here}: an entity cannot be read also from its own files (remove it)")
                continue
            if primary not in declared:
                problems.append(f"{here}: the mapping has no [entities.{primary}] whose files could give a "
                                f"{ename} (declare it, or use one of: {', '.join(k for k in declared if k != ename)})")
                continue
            if isinstance(declared[primary], dict) and set(declared[primary]) == {"also_from"}:
                problems.append(f"{here}: no file is matched to {primary} (its table has only also_from); give "
                                f"[entities.{primary}] a match and id")
                continue
            if not isinstance(sub, dict):
                problems.append(f"{here}: must be a table with id and fields")
                continue
            for key in sorted(set(sub) - _ALSO_KEYS):
                hint = f" (files are matched to {primary} by [entities.{primary}].match)" if key == "match" else ""
                problems.append(f"{here}.{key}: unknown key{hint}; expected id, fields, custom, if")
            row_filter = compile_conditions(sub["if"], here, problems) if "if" in sub else None
            secondary = _compile_entity(ename, cls, sub, here, name, lookups, settings, problems, [])
            if secondary is not None:
                secondary.also_from = primary
                secondary.row_filter = row_filter
                also.setdefault(primary, []).append(secondary)
    if problems:
        raise MappingError(f"{where}: " + "; ".join(problems))
    return Mapping(name=name, path=path, description=head.get("description", ""), entities=entities, also=also)


def _compile_entity(ename: str, cls: type[Record], body: dict[str, Any], prefix: str, name: str,
                    lookups: dict[str, dict[str, str]], settings: ParseSettings, problems: list[str],
                    match: list[str]) -> EntityMapping | None:
    """One ``[entities.<name>]`` table (or one of its ``also_from`` tables): id, fields and custom fields."""
    if "id" not in body:
        problems.append(f"{prefix}.id: missing (the column holding each record's id, or derive = [columns])")
        return None
    id_spec = _field_spec("source_id", body["id"], cls, lookups, f"{prefix}.id", problems, id_field=True)
    fields = []
    for fname, spec in body.get("fields", {}).items():
        if fname not in cls.model_fields or fname in _RESERVED:
            problems.append(f"{prefix}.fields.{fname}: {ename} has no such field")
            continue
        # A list of tables gives several columns for one field (emails from "Email" and "Email 2");
        # a list of names gives alternative names of one column, except for emails and phones, where
        # every named column is read.
        if isinstance(spec, list) and all(isinstance(x, str) for x in spec) and fname not in ("emails", "phones"):
            spec = {"column": spec}
        for i, one in enumerate(spec if isinstance(spec, list) else [spec]):
            where_f = f"{prefix}.fields.{fname}" + (f"[{i}]" if isinstance(spec, list) else "")
            compiled = _field_spec(fname, one, cls, lookups, where_f, problems)
            if compiled:
                fields.append(compiled)
    for required in _required_fields(cls):
        if required not in {f.name for f in fields}:
            problems.append(f"{prefix}.fields.{required}: required by the {ename} entity but not mapped")
    custom = []
    for cname, spec in body.get("custom", {}).items():
        compiled = _field_spec(cname, spec, None, lookups, f"{prefix}.custom.{cname}", problems)
        if compiled:
            custom.append(compiled)
    if not id_spec:
        return None
    return EntityMapping(
        entity=ename, mapping_name=name, match=match, id_spec=id_spec, fields=fields,
        custom=custom, lookups=lookups, settings=settings, record_cls=cls,
    )


def _required_fields(cls: type[Record]) -> list[str]:
    base = set(Record.model_fields)
    return [n for n, f in cls.model_fields.items() if f.is_required() and n not in base]


def _kind_for(cls: type[Record] | None, name: str) -> str:
    """The parse type a model field needs, from its annotation."""
    if cls is None:
        return "text"
    annotation = cls.model_fields[name].annotation
    if name in ("emails", "phones"):
        return "email" if name == "emails" else "phone"
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is list:
        return "list"
    for py, kind in ((bool, "bool"), (datetime, "datetime"), (date, "date"), (Decimal, "decimal"), (int, "int")):
        if isinstance(annotation, type) and issubclass(annotation, py):
            return kind
    if get_origin(annotation) is not None and get_args(annotation) and get_args(annotation)[0] is datetime:
        return "datetime"  # Annotated[datetime, ...]
    return "text"


def _dict_value_kind(cls: type[Record] | None, name: str) -> str | None:
    """For a ``{key: value}`` model field, the parse type of its values (custom fields: text); else None."""
    if cls is None:
        return "text"
    annotation = cls.model_fields[name].annotation
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is not dict:
        return None
    value_type = get_args(annotation)[1]
    if get_origin(value_type) is not None and get_args(value_type)[0] is datetime:
        return "datetime"  # Annotated[datetime, ...]
    for py, kind in ((bool, "bool"), (datetime, "datetime"), (date, "date"), (Decimal, "decimal"), (int, "int")):
        if isinstance(value_type, type) and issubclass(value_type, py):
            return kind
    return "text"


def _enum_lookup(cls: type[Record] | None, name: str) -> dict[str, str] | None:
    if cls is None:
        return None
    annotation = cls.model_fields[name].annotation
    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, Enum):
            return {fold(m.value): m.value for m in arg}
    return None


def _field_spec(
    name: str,
    spec: Any,
    cls: type[Record] | None,
    lookups: dict[str, dict[str, str]],
    where: str,
    problems: list[str],
    id_field: bool = False,
) -> FieldSpec | None:
    if isinstance(spec, str) or (isinstance(spec, list) and spec and all(isinstance(x, str) for x in spec)):
        spec = {"column": spec}  # a name, or alternative names of one column
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a column name or a table like {{ column = \"...\" }}")
        return None
    for key in sorted(set(spec) - _FIELD_KEYS):
        problems.append(f"{where}.{key}: unknown key (expected one of {', '.join(sorted(_FIELD_KEYS))})")
    column, path = spec.get("column"), spec.get("path")
    given = [k for k in ("column", "path", "value", "template", "columns", "derive") if k in spec]
    if id_field and any(k in spec for k in ("value", "when", "split", "pattern", "pick")):
        problems.append(f"{where}: an id is read with column, path or template (not value, when or split)")
        return None
    if len(given) > 1 or (not given and "when" not in spec):
        what = ("column, path, template or derive" if id_field
                else "column, path, template, derive or value (a constant)")
        problems.append(f"{where}: give exactly one of {what}" + ("" if id_field else ", or when cases"))
        return None
    column_set = None
    if cls is not None and "columns" not in spec and _dict_value_kind(cls, name) is not None:
        problems.append(f"{where}: {name} is a {{key: value}} table: read it with columns = {{ pattern = '...', "
                        "key = \"{...}\" }")
        return None
    if "columns" in spec:
        if id_field or any(k in spec for k in ("when", "split", "pattern", "pick")):
            problems.append(f"{where}.columns: cannot be combined with when/split/pattern/pick (or used for an id)")
            return None
        value_kind = _dict_value_kind(cls, name)
        if value_kind is None:
            problems.append(f"{where}.columns: gives a {{key: value}} table, but {name} holds one value (use "
                            "it for a custom field, or a field like stage_entered)")
            return None
        column_set = ColumnSet.parse(spec["columns"], where, problems)
        if column_set is None:
            return None
        spec = {**spec, "parse": spec.get("parse") or value_kind}
    derive: tuple[str, ...] = ()
    if "derive" in spec:
        names = spec["derive"]
        if not isinstance(names, list) or not names or not all(isinstance(c, str) and c for c in names):
            problems.append(f"{where}.derive: a non-empty list of column names, like derive = [\"Person - Email\", "
                            "\"Person - Name\"]")
            return None
        if any(k in spec for k in ("when", "split", "pattern", "pick")):
            problems.append(f"{where}.derive: cannot be combined with when/split/pattern/pick")
            return None
        if not id_field and (spec.get("parse") not in (None, "text", "id") or _kind_for(cls, name) != "text"):
            problems.append(f"{where}.derive: gives a text key; {name} is not a text field")
            return None
        derive = tuple(names)
    template = None
    if "template" in spec:
        template = Template.parse(spec["template"], where, problems)
        if template is None:
            return None
    aliases: tuple[str, ...] = ()
    if isinstance(column, list):
        if not column or not all(isinstance(c, str) for c in column):
            problems.append(f"{where}.column: a column name or a non-empty list of alternative names")
            return None
        aliases, column = tuple(column), column[0]
    kind = "id" if id_field else spec.get("parse") or _kind_for(cls, name)
    if kind not in PARSERS:
        problems.append(f"{where}.parse: {kind!r} is not one of {', '.join(PARSERS)}")
        return None
    lookup = spec.get("lookup")
    on_missing = spec.get("on_missing", "report")
    if on_missing not in ON_MISSING:
        problems.append(f"{where}.on_missing: {on_missing!r} is not one of {', '.join(ON_MISSING)}")
    enum_values = None if id_field else _enum_lookup(cls, name)
    if lookup is not None and lookup not in lookups:
        problems.append(f"{where}.lookup: no [lookups.{lookup}] table in this mapping")
        return None
    if lookup is None and enum_values is not None:
        # An enum field without a lookup table accepts the canonical words themselves.
        lookup = f"_enum_{name}"
        lookups.setdefault(lookup, enum_values)
        if "on_missing" not in spec:
            on_missing = "quarantine"
    default = spec.get("default")
    if default is not None and enum_values is not None and fold(str(default)) not in enum_values:
        problems.append(f"{where}.default: {default!r} is not one of {', '.join(sorted(enum_values.values()))}")
    constant = spec.get("value")
    if constant is not None and enum_values is not None:
        if fold(str(constant)) not in enum_values:
            problems.append(f"{where}.value: {constant!r} is not one of {', '.join(sorted(enum_values.values()))}")
        else:
            constant = enum_values[fold(str(constant))]
    extract = None
    if any(k in spec for k in ("split", "pattern", "pick")):
        if not any(k in spec for k in ("split", "pattern")):
            problems.append(f"{where}.pick: needs split or pattern (how the values in the cell are told apart)")
            return None
        if kind in ("email", "phone"):
            problems.append(f"{where}.split: {name} cells are already split on , ; and line breaks; "
                            "remove split/pattern")
            return None
        many = kind == "list" or cls is None
        extract = Extract.parse(spec, where, problems, default_pick="all" if kind == "list" else "first")
        if extract is None:
            return None
        if kind == "list":
            if extract.pick != "all":
                problems.append(f"{where}.pick: {name} is a list: it takes all the values (remove pick)")
                return None
            kind = "text"  # each value is text; the field gets the list of them
        elif extract.pick == "all" and not many:
            problems.append(f"{where}.pick: \"all\" gives a list, but {name} holds one value: use pick = \"first\" "
                            "(or a custom field for the whole list)")
            return None
    cases: list[Case] = []
    if "when" in spec:
        when = spec["when"]
        if not isinstance(when, list) or not when or not all(isinstance(c, dict) for c in when):
            problems.append(f"{where}.when: must be a list of cases like [{{ if = {{ column = \"IsWon\", is = true }}, "
                            "value = \"won\" }}]")
            return None
        inherited = {k: spec[k] for k in ("parse", "lookup", "on_missing", "label", "split", "pattern", "pick")
                     if k in spec}
        for k, case in enumerate(when):
            here = f"{where}.when[{k}]"
            for key in sorted(set(case) - _CASE_KEYS):
                problems.append(f"{here}.{key}: unknown key (a case has if, and value or column)")
            if "if" not in case:
                problems.append(f"{here}.if: missing (the condition of this case)")
                continue
            if ("value" in case) == ("column" in case):
                problems.append(f"{here}: give exactly one of value (a constant) or column (read when the case holds)")
                continue
            compiled = compile_conditions(case["if"], here, problems)
            if compiled is None:
                continue
            columns, test = compiled
            if "value" in case:
                value = case["value"]
                if enum_values is not None:
                    if fold(str(value)) not in enum_values:
                        problems.append(f"{here}.value: {value!r} is not one of "
                                        f"{', '.join(sorted(enum_values.values()))}")
                        continue
                    value = enum_values[fold(str(value))]
                cases.append(Case(test=test, columns=columns, constant=value))
            else:
                sub = _field_spec(name, {**inherited, "column": case["column"]}, cls, lookups, here, problems)
                if sub is not None:
                    cases.append(Case(test=test, columns=columns, spec=sub))
    return FieldSpec(
        derive=derive,
        column_set=column_set,
        template=template,
        extract=extract,
        cases=tuple(cases),
        name=name,
        column=column,
        path=tuple(path.split(".")) if isinstance(path, str) else None,
        parse=kind,
        lookup=lookup,
        default=default,
        required=bool(spec.get("required", False)),
        on_missing=on_missing,
        label=spec.get("label"),
        aliases=aliases,
        constant=constant,
        has_constant="value" in spec,
    )

