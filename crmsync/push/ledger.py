"""The push ledger in the warehouse: ID map, intents, per-write log (pre-images), stored plans.

Why in the warehouse: what crmsync wrote into a CRM must survive the process, be exportable,
and sit next to the data it came from. Each write is bracketed by two small commits — an intent
or pre-image *before* the request and the outcome after — so a kill at any point leaves enough
to finish, recover or undo the work:

* ``push_intents``: written before every create; a pending intent on the next run means "this
  may exist in the target: look it up by its crmsync key before creating";
* ``id_map``: origin record -> target id, with the run that created or matched it and the
  target's ``update_time`` right after crmsync's last write (the base for conflict checks);
* ``push_log``: one row per request with the fields before and after (rollback's pre-image)
  and, for refused writes, the API's error (the rejected-rows table is a view on it);
* ``push_plans`` / ``push_plan_items``: what a dry run saw, so an apply can tell which target
  records changed since the plan.

Example::

    >>> ledger = Ledger(wh.conn)                                    # doctest: +SKIP
    >>> ledger.target_id("pd_b", "deal", "pd_a", "42")              # doctest: +SKIP
    '7'
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from crmsync.warehouse import to_json, utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS id_map (
    target TEXT NOT NULL, entity TEXT NOT NULL, origin TEXT NOT NULL, origin_id TEXT NOT NULL,
    target_id TEXT NOT NULL, run_id INTEGER NOT NULL, action TEXT NOT NULL,
    target_update_time TEXT, fingerprint TEXT, updated_at TEXT NOT NULL,
    PRIMARY KEY (target, entity, origin, origin_id)
);
CREATE INDEX IF NOT EXISTS id_map_target_id ON id_map (target, entity, target_id);
CREATE TABLE IF NOT EXISTS push_intents (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, target TEXT NOT NULL, entity TEXT NOT NULL,
    origin TEXT NOT NULL, origin_id TEXT NOT NULL, crmsync_key TEXT NOT NULL, fingerprint TEXT,
    state TEXT NOT NULL, created_at TEXT NOT NULL, resolved_at TEXT, target_id TEXT
);
CREATE INDEX IF NOT EXISTS push_intents_pending ON push_intents (target, state);
CREATE TABLE IF NOT EXISTS push_log (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, target TEXT NOT NULL, entity TEXT NOT NULL,
    origin TEXT NOT NULL, origin_id TEXT NOT NULL, target_id TEXT, action TEXT NOT NULL,
    before TEXT, after TEXT, status TEXT NOT NULL, error TEXT, target_update_time TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS push_log_run ON push_log (run_id);
CREATE VIEW IF NOT EXISTS push_rejected AS
    SELECT run_id, target, entity, origin, origin_id, target_id, action, after AS sent, error, at
    FROM push_log WHERE status = 'rejected';
CREATE TABLE IF NOT EXISTS push_plans (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, target TEXT NOT NULL, origin TEXT NOT NULL,
    created_at TEXT NOT NULL, applied_run INTEGER, summary TEXT
);
CREATE TABLE IF NOT EXISTS push_plan_items (
    plan_id INTEGER NOT NULL, entity TEXT NOT NULL, origin_id TEXT NOT NULL, target_id TEXT,
    action TEXT NOT NULL, changes TEXT, seen_update_time TEXT,
    PRIMARY KEY (plan_id, entity, origin_id)
);
"""


@dataclass(frozen=True, slots=True)
class Mapped:
    target_id: str
    run_id: int
    action: str
    target_update_time: str | None


class Ledger:
    """Reads and writes the push tables; the caller owns transactions (one per write step)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        conn.executescript(SCHEMA)

    # -- ID map --------------------------------------------------------------------------------
    def id_map(self, target: str, entity: str, origin: str) -> dict[str, Mapped]:
        return {r[0]: Mapped(r[1], r[2], r[3], r[4]) for r in self.conn.execute(
            "SELECT origin_id, target_id, run_id, action, target_update_time FROM id_map "
            "WHERE target = ? AND entity = ? AND origin = ?", (target, entity, origin))}

    def target_id(self, target: str, entity: str, origin: str, origin_id: str) -> str | None:
        row = self.conn.execute("SELECT target_id FROM id_map WHERE target = ? AND entity = ? AND origin = ? "
                                "AND origin_id = ?", (target, entity, origin, origin_id)).fetchone()
        return row[0] if row else None

    def claimed(self, target: str, entity: str) -> set[str]:
        """Target ids already mapped from any origin (never matched twice)."""
        return {r[0] for r in self.conn.execute(
            "SELECT target_id FROM id_map WHERE target = ? AND entity = ?", (target, entity))}

    def map(self, run_id: int, target: str, entity: str, origin: str, origin_id: str, target_id: str,
            action: str, update_time: str | None, fingerprint: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO id_map VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, entity, origin, origin_id) "
            "DO UPDATE SET target_id = excluded.target_id, target_update_time = excluded.target_update_time, "
            "run_id = CASE WHEN excluded.target_id = id_map.target_id THEN id_map.run_id ELSE excluded.run_id END, "
            "action = CASE WHEN excluded.target_id = id_map.target_id THEN id_map.action ELSE excluded.action END, "
            "fingerprint = COALESCE(excluded.fingerprint, id_map.fingerprint), updated_at = excluded.updated_at",
            (target, entity, origin, origin_id, target_id, run_id, action, update_time, fingerprint, utcnow()))

    def touch(self, target: str, entity: str, origin: str, origin_id: str, update_time: str | None) -> None:
        self.conn.execute("UPDATE id_map SET target_update_time = ?, updated_at = ? WHERE target = ? AND "
                          "entity = ? AND origin = ? AND origin_id = ?",
                          (update_time, utcnow(), target, entity, origin, origin_id))

    def unmap(self, target: str, entity: str, target_id: str) -> None:
        self.conn.execute("DELETE FROM id_map WHERE target = ? AND entity = ? AND target_id = ?",
                          (target, entity, target_id))

    # -- intents -------------------------------------------------------------------------------
    def intend(self, run_id: int, target: str, entity: str, origin: str, origin_id: str, key: str,
               fingerprint: str | None) -> int:
        cur = self.conn.execute(
            "INSERT INTO push_intents (run_id, target, entity, origin, origin_id, crmsync_key, fingerprint, state, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            (run_id, target, entity, origin, origin_id, key, fingerprint, utcnow()))
        return int(cur.lastrowid or 0)

    def resolve_intent(self, intent_id: int, state: str, target_id: str | None = None) -> None:
        self.conn.execute("UPDATE push_intents SET state = ?, target_id = ?, resolved_at = ? WHERE id = ?",
                          (state, target_id, utcnow(), intent_id))

    def pending_intents(self, target: str) -> list[dict[str, Any]]:
        cols = ("id", "run_id", "entity", "origin", "origin_id", "crmsync_key", "fingerprint")
        return [dict(zip(cols, r, strict=True)) for r in self.conn.execute(
            f"SELECT {', '.join(cols)} FROM push_intents WHERE target = ? AND state = 'pending' ORDER BY id",
            (target,))]

    # -- log -----------------------------------------------------------------------------------
    def log(self, run_id: int, target: str, entity: str, origin: str, origin_id: str, target_id: str | None,
            action: str, before: Any, after: Any, status: str, error: str | None = None,
            update_time: str | None = None) -> int:
        cur = self.conn.execute(
            "INSERT INTO push_log (run_id, target, entity, origin, origin_id, target_id, action, before, after, "
            "status, error, target_update_time, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, target, entity, origin, origin_id, target_id, action,
             None if before is None else to_json(before), None if after is None else to_json(after),
             status, error, update_time, utcnow()))
        return int(cur.lastrowid or 0)

    def finish_log(self, log_id: int, status: str, *, target_id: str | None = None, error: str | None = None,
                   update_time: str | None = None) -> None:
        self.conn.execute("UPDATE push_log SET status = ?, target_id = COALESCE(?, target_id), error = ?, "
                          "target_update_time = ? WHERE id = ?", (status, target_id, error, update_time, log_id))

    def refused_creates(self, target: str, origin: str, entity: str) -> dict[str, tuple[Any, str]]:
        """Origin ids whose latest create the target refused: (the values sent, the API's error)."""
        rows = self.conn.execute(
            "SELECT origin_id, after, error FROM push_log WHERE id IN (SELECT MAX(id) FROM push_log WHERE target = ? "
            "AND origin = ? AND entity = ? AND action = 'create' GROUP BY origin_id) AND status = 'rejected'",
            (target, origin, entity))
        return {origin_id: (json.loads(after) if after else None, error) for origin_id, after, error in rows}

    def run_log(self, run_id: int) -> list[dict[str, Any]]:
        cols = ("id", "run_id", "target", "entity", "origin", "origin_id", "target_id", "action", "before", "after",
                "status", "target_update_time")
        rows = []
        for r in self.conn.execute(f"SELECT {', '.join(cols)} FROM push_log WHERE run_id = ? ORDER BY id",
                                   (run_id,)):
            row = dict(zip(cols, r, strict=True))
            row["before"] = json.loads(row["before"]) if row["before"] else None
            row["after"] = json.loads(row["after"]) if row["after"] else None
            rows.append(row)
        return rows

    # -- plans ---------------------------------------------------------------------------------
    def save_plan(self, run_id: int, target: str, origin: str, items: Iterator[tuple], summary: dict) -> int:
        cur = self.conn.execute("INSERT INTO push_plans (run_id, target, origin, created_at, summary) "
                                "VALUES (?, ?, ?, ?, ?)", (run_id, target, origin, utcnow(), to_json(summary)))
        plan_id = int(cur.lastrowid or 0)
        self.add_plan_items(plan_id, items)
        return plan_id

    def add_plan_items(self, plan_id: int, items: Iterator[tuple]) -> None:
        """(entity, origin_id, target_id, action, changes JSON, seen update_time) rows of a stored plan."""
        self.conn.executemany("INSERT OR REPLACE INTO push_plan_items VALUES (?, ?, ?, ?, ?, ?, ?)",
                              ((plan_id, *item) for item in items))

    def set_plan_summary(self, plan_id: int, summary: dict) -> None:
        self.conn.execute("UPDATE push_plans SET summary = ? WHERE id = ?", (to_json(summary), plan_id))

    def open_plan_seen(self, target: str, origin: str) -> tuple[int | None, dict[tuple[str, str], str | None]]:
        """The latest unapplied plan for target/origin and the ``update_time`` it saw per (entity, origin id)."""
        row = self.conn.execute("SELECT id FROM push_plans WHERE target = ? AND origin = ? AND applied_run IS NULL "
                                "ORDER BY id DESC LIMIT 1", (target, origin)).fetchone()
        if row is None:
            return None, {}
        seen = {(e, o): t for e, o, t in self.conn.execute(
            "SELECT entity, origin_id, seen_update_time FROM push_plan_items WHERE plan_id = ? AND target_id "
            "IS NOT NULL", (row[0],))}
        return row[0], seen

    def close_plans(self, target: str, origin: str, run_id: int) -> None:
        self.conn.execute("UPDATE push_plans SET applied_run = ? WHERE target = ? AND origin = ? AND applied_run "
                          "IS NULL", (run_id, target, origin))

    # -- exports -------------------------------------------------------------------------------
    def export(self, table: str, target: str | None = None, run_id: int | None = None) -> list[dict[str, Any]]:
        """Rows of ``id_map`` or ``push_rejected`` (optionally one target / run) for CSV/JSON export."""
        if table not in ("id_map", "push_rejected"):
            raise ValueError(table)
        where, args = [], []
        if target:
            where.append("target = ?")
            args.append(target)
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
        cur = self.conn.execute(sql + " ORDER BY rowid" if table == "id_map" else sql, args)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur]
