"""Read-only access to what the warehouse already holds, for connectors.

Why: an incremental API source sometimes needs its own earlier data — to mark
a lead converted after the API deleted it, to notice ids that vanished, or to
decide which deals' history to fetch — without depending on the warehouse's
internals. Connectors get a :class:`StoredRecords` through
``SourceContext.stored``; it never writes.

Example::

    >>> stored = StoredRecords(conn, source="pipedrive")        # doctest: +SKIP
    >>> lead = stored.get("lead", "adf21080-0e10-11eb-879b-05d71fb426ec")   # doctest: +SKIP
    >>> lead.status                                              # doctest: +SKIP
    <LeadStatus.WORKING: 'working'>
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from crmsync.model import ENTITIES, Record
from crmsync.warehouse import JSON_FIELDS, SPECS

_JSON_COLUMNS = JSON_FIELDS
_CHUNK = 500


class StoredRecords:
    """One source's records as last written, rebuilt as canonical models."""

    def __init__(self, conn: sqlite3.Connection, source: str):
        self.conn = conn
        self.source = source

    def get(self, entity: str, source_id: str) -> Record | None:
        return self.get_many(entity, [source_id]).get(source_id)

    def get_many(self, entity: str, source_ids: Iterable[str]) -> dict[str, Record]:
        spec = SPECS[entity]
        cols = ", ".join(f'"{c}"' for c in spec.columns)
        ids = list(dict.fromkeys(source_ids))
        found: dict[str, Record] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            cursor = self.conn.execute(
                f'SELECT {cols} FROM "{spec.table}" WHERE source = ? AND source_id IN ({marks})',
                (self.source, *chunk),
            )
            for row in cursor:
                record = self._rebuild(entity, dict(zip(spec.columns, row, strict=True)))
                found[record.source_id] = record
        return found

    def all(self, entity: str) -> Iterator[Record]:
        """Every live record of ``entity`` (streamed: rebuilt a chunk at a time)."""
        ids = list(self.ids(entity))
        for start in range(0, len(ids), _CHUNK):
            yield from self.get_many(entity, ids[start : start + _CHUNK]).values()

    def ids(self, entity: str, *, include_removed: bool = False) -> Iterator[str]:
        """Every stored id of ``entity`` for this source (streamed)."""
        sql = f'SELECT source_id FROM "{SPECS[entity].table}" WHERE source = ?'
        if not include_removed:
            sql += " AND removed_run IS NULL"
        for (source_id,) in self.conn.execute(sql, (self.source,)):
            yield source_id

    def count(self, entity: str) -> int:
        table = SPECS[entity].table
        return self.conn.execute(f'SELECT COUNT(*) FROM "{table}" WHERE source = ?', (self.source,)).fetchone()[0]

    @staticmethod
    def _rebuild(entity: str, row: dict[str, Any]) -> Record:
        data = {k: (json.loads(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in row.items()}
        return ENTITIES[entity].model_validate({k: v for k, v in data.items() if v is not None})
