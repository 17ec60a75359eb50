"""Spreadsheet source: CSV and XLSX exports of any CRM, through a mapping file.

Why: most pipeline data outside Pipedrive arrives as exports — messy ones.
The reader (:mod:`.reader`) copes with encodings, delimiters and layout; this
module decides which file holds which entity, settles each date column's
day/month order from the data, converts rows through the mapping and sends
rows it cannot convert to quarantine with file, row, column, value and reason.
Rows of one entity's files may also give records of others (``[entities.person.also_from.deal]``,
docs/mappings.md): those are written once per id per run, and their entity completes after every
file feeding it.

Config::

    [sources.exports]
    type = "spreadsheet"
    path = "exports/*.csv"        # a file, a glob, or a list of them (relative to the config)
    mapping = "spreadsheet"       # built-in preset or path to a mapping .toml
    # entity = "deal"             # force every file to one entity instead of matching names
    # date_order = "DMY"          # override per-column detection
    # encoding = "cp1252"  delimiter = ";"  sheet = "Deals"  header_row = 1
"""

from __future__ import annotations

import glob
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmsync.errors import ConfigError, InputError
from crmsync.mapping import EntityMapping, Rejection, load_mapping, raw_cells
from crmsync.mapping_exprs import CellFailed
from crmsync.model import ENTITIES, Record
from crmsync.source import EntityComplete, Item, Notice, PreparedRows, Source, StrictOptions, prepare_records
from crmsync.values import DateOrderDetector, is_blank
from crmsync.warehouse import SPECS, QuarantineRow

from .reader import SheetRow, Table, open_table
from .stages import StageCatalog

#: A date written as numbers with the year last (or two-digit): the forms whose day/month order is unclear.
_NUMERIC_DATE = re.compile(r"\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}\b")
#: Regions whose exports write month before day; elsewhere ambiguous dates read as D/M/Y.
_MONTH_FIRST_REGIONS = frozenset({"US", "CA", "PH", "FM", "MH", "PW", "GU", "AS", "PR", "VI"})


class SpreadsheetOptions(StrictOptions):
    path: str | list[str]
    mapping: str = "spreadsheet"
    entity: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int = 1
    date_order: str | None = None
    default_currency: str | None = None
    phone_region: str | None = None
    timezone: str | None = None
    decimal_separator: str | None = None


class SpreadsheetSource(Source):
    """Reads every matching file as a complete snapshot of the entities it holds."""

    Options = SpreadsheetOptions
    options: SpreadsheetOptions
    #: Reading needs nothing from the warehouse, so the runner may read in a second process
    #: while it writes (crmsync.sync._drain_parallel).
    parallel_safe = True

    def files(self) -> list[Path]:
        patterns = [self.options.path] if isinstance(self.options.path, str) else self.options.path
        found: list[Path] = []
        for pattern in patterns:
            full = Path(pattern) if Path(pattern).is_absolute() else self.context.base_dir / pattern
            matches = sorted(Path(p) for p in glob.glob(str(full))) if glob.has_magic(pattern) else [full]
            matches = [p for p in matches if p.is_file() and not p.name.startswith(("~$", ".~lock"))]
            if not matches:
                raise InputError(f"sources.{self.name}.path: no file matches {pattern!r} (looked in {full.parent})")
            found += [m for m in matches if m not in found]
        return found

    def read(self) -> Iterator[Item]:
        return self._read(prepared=False)

    def read_prepared(self) -> Iterator[Item | PreparedRows]:
        """Rows of each file's own entity go straight from the mapping's field values to warehouse
        rows (``EntityMapping.convert_stored`` + ``TableSpec.unfinished_fields``) with no record object
        in between; everything else is as :meth:`read` yields it.

        ``tests/test_prepared_rows.py`` pins that both give the same rows.
        """
        return prepare_records(self._read(prepared=True), self.prepared_rows)

    def _read(self, prepared: bool) -> Iterator[Item | PreparedRows]:
        opts = self.options
        defaults = self.context.config.defaults
        if opts.entity is not None and opts.entity not in ENTITIES:
            raise ConfigError(f"sources.{self.name}.entity: unknown entity {opts.entity!r}")
        mapping = load_mapping(
            opts.mapping,
            base_dir=self.context.base_dir,
            overrides={
                "date_order": opts.date_order,
                "default_currency": opts.default_currency or defaults.default_currency,
                "phone_region": opts.phone_region or defaults.phone_region,
                "timezone": opts.timezone or defaults.timezone,
                "decimal_separator": opts.decimal_separator,
            },
        )
        by_entity: dict[str, list[Path]] = {}
        for path in self.files():
            entity = opts.entity or (em.entity if (em := mapping.entity_for_file(path.name)) else None)
            if entity is None:
                yield Notice("ignored_file", f"{path.name}: no entity of mapping {mapping.name!r} matches this file")
                continue
            if entity not in mapping.entities:
                raise ConfigError(f"sources.{self.name}.entity: mapping {mapping.name!r} has no [entities.{entity}]")
            by_entity.setdefault(entity, []).append(path)
        # Exports without a stage list of their own get one derived from their deals.
        catalog = StageCatalog(self.name) if "stage" not in by_entity and "pipeline" not in by_entity else None
        # Which entities each entity's files feed: its own, and those declared with also_from it.
        secondaries = {e: mapping.also.get(e, []) for e in by_entity}
        feeds: dict[str, set[str]] = {}
        for entity in by_entity:
            feeds.setdefault(entity, set()).add(entity)
            for sm in secondaries[entity]:
                feeds.setdefault(sm.entity, set()).add(entity)
        run = _Secondaries({sm.entity for ems in secondaries.values() for sm in ems})
        read: set[str] = set()
        completed: set[str] = set()
        for entity in ENTITIES:  # parents before children
            if entity in by_entity:
                em = mapping.entity(entity)
                for path in by_entity[entity]:
                    items = self._read_file(path, em, catalog if entity == "deal" else None,
                                            secondaries[entity], run, prepared)
                    yield from _batched(entity, items, self.prepared_rows) if prepared else items
                read.add(entity)
            # An entity is complete once every file feeding it is read: one fed by the rows of a
            # later entity's files (persons from deals) completes after those files.
            for done in ENTITIES:
                if done in completed or done not in feeds or not feeds[done] <= read:
                    continue
                completed.add(done)
                yield from run.records(done)
                ems = ([mapping.entity(done)] if done in by_entity else []) + [
                    sm for e in by_entity for sm in secondaries[e] if sm.entity == done]
                unmapped: Counter[tuple[str, str]] = Counter()
                for one in ems:
                    unmapped.update(one.unmapped)
                    one.unmapped.clear()
                for (field, value), count in sorted(unmapped.items()):
                    yield Notice(
                        "unmapped_value",
                        f"{done}.{field}: {value!r} is not in mapping {mapping.name!r}; add it to its lookup",
                        count,
                    )
                yield EntityComplete(done)
                if done == "deal" and catalog is not None:
                    yield from catalog.records()
                    yield EntityComplete("pipeline")
                    yield EntityComplete("stage")

    def _open(self, path: Path) -> Table:
        o = self.options
        return open_table(path, sheet=o.sheet, encoding=o.encoding, delimiter=o.delimiter, header_row=o.header_row)

    def _read_file(self, path: Path, em: EntityMapping, catalog: StageCatalog | None,
                   secondaries: list[EntityMapping], run: _Secondaries,
                   prepared: bool = False) -> Iterator[Item | RawColumns | tuple[Any, ...]]:
        """The file's items in order; with ``prepared``, each of its own entity's records is yielded
        as its warehouse row ``(unfinished params, origin)`` instead."""
        with self._open(path) as table:
            headers = table.headers
            if not em.has_id_columns(headers):
                id_columns = " / ".join(em.id_spec.candidates()) or str(em.id_spec.column)
                raise InputError(
                    f"{path}: id column {id_columns!r} of {em.entity} (mapping {em.mapping_name!r}) not "
                    f"found; columns are: {', '.join(headers)}"
                )
            for column in em.missing_columns(headers):
                yield Notice("missing_column", f"{path.name}: column {column!r} of the mapping is not in the file")
            yield from self._settle_date_orders(path.name, table, em)
        em.bind(headers)
        # Secondary entities of this file (persons on deal rows): only those whose id columns it has.
        also: list[tuple[EntityMapping, list[str]]] = []
        for sm in secondaries:
            if not sm.has_id_columns(headers):
                columns = " / ".join(sm.id_spec.candidates()) or str(sm.id_spec.column)
                yield Notice("missing_column", f"{path.name}: no {sm.entity} is read from this file: it has no id "
                             f"column ({columns}) of [entities.{sm.entity}.also_from.{em.entity}]")
                continue
            for column in sm.missing_columns(headers):
                yield Notice("missing_column", f"{path.name}: column {column!r} of the mapping "
                             f"([entities.{sm.entity}.also_from.{em.entity}]) is not in the file")
            with self._open(path) as table:
                yield from self._settle_date_orders(path.name, table, sm)
            sm.bind(headers)
            # A secondary record keeps as raw only the columns its mapping reads: the same person
            # on a later deal row is then unchanged, not updated because the deal columns differ.
            also.append((sm, sm.read_columns(headers)))
        name = self.name
        to_row = SPECS[em.entity].unfinished_fields() if prepared else None
        with self._open(path) as table:
            # Prepared, a CSV row's raw goes as its bare cells (see PreparedRows.raw_columns); typed
            # XLSX cells as the dict the warehouse encodes.
            bare_cells = to_row is not None and table.text_cells
            if bare_cells:
                yield RawColumns(tuple(table.headers))
            # Prepared, a full CSV row that feeds only its own entity is converted from its cells by
            # position (EntityMapping.convert_cells): no dict of the row, none of its fields.
            by_position = bare_cells and not also
            attach = catalog.attach_row if catalog is not None else None
            primary = run.primary_id
            entity, file = em.entity, table.path
            for row in table.cell_rows() if by_position else table:
                if type(row) is tuple:
                    line, cells = row
                    result = em.convert_cells(cells, name)
                    if type(result) is not Rejection:
                        if attach is not None:
                            result = attach(result)
                        primary(entity, result[1])
                        yield result, (file, None, line)
                        continue
                    row = SheetRow(file, None, line, dict(zip(headers, cells, strict=True)), ())
                    yield _quarantine(name, entity, row, result.column, result.value, result.reason)
                    continue
                if row.extra:
                    yield _quarantine(name, em.entity, row, None, row.extra[0],
                                      f"row has {len(row.extra)} more cell(s) than the header: a delimiter or "
                                      "quote is probably wrong in this row")
                    continue
                if row.encoding_error:
                    yield Notice("encoding", f"{path.name}: some rows have bytes that are not {table.encoding}; they "
                                 "were decoded best-effort (loaded) — check them, or set encoding")
                result = em.convert(row.values, name) if to_row is None else em.convert_stored(row.values, name)
                if type(result) is Rejection:
                    yield _quarantine(name, em.entity, row, result.column, result.value, result.reason)
                elif to_row is None:
                    if catalog is not None:
                        catalog.attach(result)
                    run.primary(result)
                    yield result.at(file=row.file, sheet=row.sheet, line=row.line)
                else:
                    result["raw"] = tuple(row.values.values()) if bare_cells else raw_cells(row.values)
                    if catalog is not None:
                        catalog.attach_fields(result)
                    run.primary_id(em.entity, result["source_id"])
                    yield to_row(result), (row.file, row.sheet, row.line)
                for sm, columns in also:
                    cells = {c: row.values[c] for c in columns if c in row.values}
                    try:
                        if sm.row_filter is not None and not sm.row_filter[1](cells):
                            continue  # its `if` does not hold: this row has no such record
                    except CellFailed as exc:
                        yield _quarantine(name, sm.entity, row, exc.column, exc.raw,
                                          f"{exc.reason} (the `if` of [entities.{sm.entity}.also_from.{em.entity}])",
                                          raw=cells)
                        continue
                    source_id = sm.row_id(cells)
                    if source_id is None:
                        continue  # no person on this row: nothing to load, nothing wrong
                    if run.repeats(sm.entity, source_id, cells, row):
                        continue  # the same cells as the record kept for this id: nothing to convert
                    second = sm.convert(cells, name)
                    if isinstance(second, Rejection):
                        yield _quarantine(name, sm.entity, row, second.column, second.value,
                                          f"{second.reason} (the {sm.entity} of this {em.entity} row; the "
                                          f"{em.entity} itself is loaded unless quarantined for its own reason)",
                                          raw=cells)
                    else:
                        run.secondary(second.at(file=row.file, sheet=row.sheet, line=row.line), cells)

    def _settle_date_orders(self, filename: str, table: Table, em: EntityMapping) -> Iterator[Notice]:
        """Decide D/M/Y vs M/D/Y per date column from its values, reading only until each is decided."""
        em.date_orders.clear()
        if em.settings.date_order != "auto":
            return
        columns = [c for c in em.columns("date") + em.columns("datetime") if c in table.headers]
        if not columns:
            return
        detectors = {c: DateOrderDetector() for c in columns}
        numeric: set[str] = set()  # columns holding a/b/c numeric dates, the only ones with an order to decide
        pending = set(columns)
        for row in table:
            for column in list(pending):
                raw = row.values.get(column)
                if isinstance(raw, str) and not is_blank(raw):
                    if _NUMERIC_DATE.match(raw):
                        numeric.add(column)
                    detector = detectors[column]
                    detector.feed(raw)
                    if detector.decided:
                        pending.discard(column)
            if not pending:
                break
        fallback = "MDY" if em.settings.phone_region.upper() in _MONTH_FIRST_REGIONS else "DMY"
        for column in columns:
            detector = detectors[column]
            if column not in numeric:
                continue  # month names, ISO, serials or typed cells: no order to decide
            if detector.conflict:
                yield Notice("date_order", f"{filename}: column {column!r} mixes D/M/Y and M/D/Y dates; rows "
                             "that fit neither are quarantined — set date_order to choose")
            elif detector.order:
                em.date_orders[column] = detector.order
            else:
                em.date_orders[column] = fallback
                yield Notice("date_order", f"{filename}: column {column!r} has only ambiguous dates (day and "
                             f"month both ≤ 12); read as {fallback} — set date_order to choose")


class _Secondaries:
    """Records of secondary entities (persons read from deal rows), one per id for the whole run.

    Why buffered: the same person is on every row of each of their deals, and a run may write an id
    only once, so the last row that converts wins and the record is written when its entity
    completes. An id a file of the entity itself gave (the people file) is not overwritten.
    """

    def __init__(self, entities: set[str]) -> None:
        self._records: dict[str, dict[str, tuple[Record, dict[str, object]]]] = {}
        #: Ids given by files of the entity itself, kept only for entities that have secondaries.
        self._primary: dict[str, set[str]] = {entity: set() for entity in entities}

    def primary(self, record: Record) -> None:
        self.primary_id(record.entity, record.source_id)

    def primary_id(self, entity: str, source_id: str) -> None:
        seen = self._primary.get(entity)
        if seen is not None:
            seen.add(source_id)

    def secondary(self, record: Record, cells: dict[str, object]) -> None:
        self._records.setdefault(record.entity, {})[record.source_id] = (record, cells)

    def repeats(self, entity: str, source_id: str, cells: dict[str, object], row: SheetRow) -> bool:
        """Whether the record kept for this id was read from the same cells (then it is this row's now)."""
        kept = self._records.get(entity, {}).get(source_id)
        if kept is None or kept[1] != cells:
            return False
        kept[0].at(file=row.file, sheet=row.sheet, line=row.line)
        return True

    def records(self, entity: str) -> Iterator[Record]:
        primary = self._primary.get(entity, set())
        for source_id, (record, _) in self._records.pop(entity, {}).items():
            if source_id not in primary:
                yield record


@dataclass(frozen=True, slots=True)
class RawColumns:
    """Within one file's items (``prepared``): the headers its rows' raw cells are under."""

    headers: tuple[str, ...]


def _batched(entity: str, items: Iterator[Item | RawColumns | tuple[Any, ...]], size: int,
             ) -> Iterator[Item | PreparedRows]:
    """Runs of warehouse rows as :class:`PreparedRows` of up to ``size``; other items as they are."""
    rows: list[Any] = []
    columns = None
    for item in items:
        if type(item) is tuple:
            rows.append(item)
            if len(rows) >= size:
                yield PreparedRows(entity, rows, columns)
                rows = []
            continue
        if rows:
            yield PreparedRows(entity, rows, columns)
            rows = []
        if type(item) is RawColumns:
            columns = item.headers
        else:
            yield item
    if rows:
        yield PreparedRows(entity, rows, columns)


def _quarantine(source: str, entity: str, row: SheetRow, column: str | None, value: object,
                reason: str, raw: dict[str, object] | None = None) -> QuarantineRow:
    return QuarantineRow(source=source, entity=entity, reason=reason, file=row.file, sheet=row.sheet,
                         line=row.line, column=column, value=value, raw=row.values if raw is None else raw)
