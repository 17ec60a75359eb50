"""Read reconciliation results back: conversions, and one deal's timeline with its evidence.

Why a module: the CLI's ``conversions`` and ``history`` commands (and anyone scripting against
the warehouse) need the same answers; the SQL lives here, the CLI only renders.

Example::

    >>> with Warehouse.open("crmsync.db", write=False) as wh:          # doctest: +SKIP
    ...     deal_history(wh.conn, "1042")["events"][0]["evidence"]
    'api'
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from crmsync.errors import ConfigError, WarehouseError

METHODS = ("explicit", "captured", "inferred")


def _require(conn: sqlite3.Connection, table: str) -> None:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is None:
        raise WarehouseError(f"no {table} table yet: run `crmsync reconcile` (or `crmsync sync`) first")


def list_conversions(conn: sqlite3.Connection, *, method: str | None = None, min_confidence: float = 0.0,
                     source: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Conversions, newest first, with the lead's and deal's titles and the reasons as a list."""
    _require(conn, "conversions")
    if method is not None and method not in METHODS:
        raise ConfigError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    sql = """
        SELECT c.lead_source, c.lead_id, l.title, c.deal_source, c.deal_id, d.title, c.converted_at, c.method,
               c.confidence, c.reasons, c.days_to_convert
        FROM conversions c
        LEFT JOIN leads l ON l.source = c.lead_source AND l.source_id = c.lead_id
        LEFT JOIN deals d ON d.source = c.deal_source AND d.source_id = c.deal_id
        WHERE c.confidence >= ? AND (? IS NULL OR c.method = ?) AND (? IS NULL OR c.lead_source = ?)
        ORDER BY c.converted_at DESC, c.lead_source, c.lead_id"""
    args: list[Any] = [min_confidence, method, method, source, source]
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    keys = ("lead_source", "lead_id", "lead_title", "deal_source", "deal_id", "deal_title", "converted_at",
            "method", "confidence", "reasons", "days_to_convert")
    rows = []
    for row in conn.execute(sql, args):
        item = dict(zip(keys, row, strict=True))
        item["reasons"] = json.loads(item["reasons"] or "[]")
        rows.append(item)
    return rows


def deal_history(conn: sqlite3.Connection, deal_id: str, source: str | None = None) -> dict[str, Any]:
    """A deal's merged timeline (each event with its evidence), time in stage, and invariant violations."""
    _require(conn, "deal_timeline")
    sources = [r[0] for r in conn.execute(
        "SELECT source FROM deals WHERE source_id = ? AND (? IS NULL OR source = ?) ORDER BY source",
        (deal_id, source, source))]
    if not sources:
        where = f" in source {source!r}" if source else ""
        raise ConfigError(f"deal {deal_id!r} not found{where}")
    if len(sources) > 1:
        raise ConfigError(f"deal {deal_id!r} exists in several sources ({', '.join(sources)}); pass --source")
    src = sources[0]
    title, stage, status = conn.execute(
        "SELECT title, COALESCE(stage_name, stage_id), status FROM deals WHERE source = ? AND source_id = ?",
        (src, deal_id)).fetchone()
    events = [dict(zip(("seq", "at", "kind", "old_value", "new_value", "stage_category", "evidence", "actor_id"),
                       r, strict=True))
              for r in conn.execute(
                  "SELECT seq, at, kind, old_value, new_value, stage_category, evidence, actor_id FROM deal_timeline "
                  "WHERE source = ? AND deal_id = ? ORDER BY seq", (src, deal_id))]
    spans = [dict(zip(("stage_id", "stage_name", "stage_category", "entered_at", "left_at", "seconds"), r,
                      strict=True))
             for r in conn.execute(
                 "SELECT stage_id, stage_name, stage_category, entered_at, left_at, seconds FROM stage_spans "
                 "WHERE source = ? AND deal_id = ? ORDER BY entered_at", (src, deal_id))]
    violations = [dict(zip(("rule", "detail"), r, strict=True)) for r in conn.execute(
        "SELECT rule, detail FROM timeline_violations WHERE source = ? AND deal_id = ?", (src, deal_id))]
    return {"source": src, "deal_id": deal_id, "title": title, "stage": stage, "status": status,
            "events": events, "spans": spans, "violations": violations}
