"""Reconcile the warehouse: lead→deal conversions, unified deal timelines, identities across sources.

Why derived tables rebuilt in one transaction: reconciliation is a pure
function of what the sources delivered. Rebuilding ``conversions``,
``reconcile_conflicts``, ``deal_timeline``, ``stage_spans``,
``timeline_violations`` and ``identity_links`` from scratch each time makes
it idempotent, and a kill mid-way leaves the previous result intact.

Example::

    >>> summary = run_reconcile(load_config("config.example.toml"))   # doctest: +SKIP
    >>> summary.counts["conversions"]                                  # doctest: +SKIP
    4
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from crmsync.config import Config
from crmsync.warehouse import Warehouse

from . import conversions, identity, timeline
from .conversions import InferenceSettings

TABLES: dict[str, tuple[dict[str, type], tuple[str, ...] | None]] = {
    "conversions": (
        {"lead_source": str, "lead_id": str, "deal_source": str, "deal_id": str, "converted_at": str,
         "method": str, "confidence": float, "reasons": str, "days_to_convert": float},
        ("lead_source", "lead_id", "deal_source", "deal_id"),
    ),
    "reconcile_conflicts": ({"kind": str, "entity": str, "source": str, "source_id": str, "detail": str}, None),
    "deal_timeline": (
        {"source": str, "deal_id": str, "seq": int, "at": str, "kind": str, "old_value": str, "new_value": str,
         "stage_category": str, "evidence": str, "actor_id": str},
        ("source", "deal_id", "seq"),
    ),
    "stage_spans": (
        {"source": str, "deal_id": str, "stage_id": str, "stage_name": str, "stage_category": str,
         "entered_at": str, "left_at": str, "seconds": float, "evidence": str},
        None,
    ),
    "timeline_violations": ({"source": str, "deal_id": str, "rule": str, "detail": str}, None),
    "identity_links": (
        {"entity": str, "a_source": str, "a_id": str, "b_source": str, "b_id": str, "reason": str, "score": float},
        None,
    ),
}


@dataclass
class ReconcileSummary:
    run_id: int
    seconds: float
    counts: dict[str, int]
    by_kind: dict[str, dict[str, int]]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "seconds": round(self.seconds, 3), "counts": self.counts,
                "by_kind": self.by_kind}


def ensure_tables(wh: Warehouse) -> None:
    for name, (columns, pk) in TABLES.items():
        table = wh.db[name]
        if pk:
            table.create(columns, pk=pk, if_not_exists=True)
        else:
            table.create(columns, if_not_exists=True)
    wh.db["stage_spans"].create_index(["source", "deal_id"], if_not_exists=True)
    wh.db["identity_links"].create_index(["entity", "a_source", "a_id"], if_not_exists=True)
    wh.db["timeline_violations"].create_index(["source", "deal_id"], if_not_exists=True)


def run_reconcile(config: Config) -> ReconcileSummary:
    """Rebuild every reconciliation table from the warehouse's current records."""
    settings = InferenceSettings(window_days=config.reconcile.window_days,
                                 min_confidence=config.reconcile.min_confidence)
    t0 = time.perf_counter()
    with Warehouse.open(config.warehouse.path) as wh:
        run_id = wh.start_run("reconcile", config_path=str(config.path) if config.path else None)
        try:
            with wh.transaction():
                ensure_tables(wh)
                conn = wh.conn
                links, conflicts = conversions.find_conversions(conn, settings)
                added = {(s, i): a for s, i, a in conn.execute("SELECT source, source_id, add_time FROM leads")}
                timeline_rows, span_rows, violation_rows = timeline.build(conn)
                link_rows = list(identity.person_links(conn)) + list(identity.organization_links(conn))
                data = {
                    "conversions": conversions.rows(links, added),
                    "reconcile_conflicts": [(c.kind, c.entity, c.source, c.source_id, c.detail) for c in conflicts],
                    "deal_timeline": timeline_rows,
                    "stage_spans": span_rows,
                    "timeline_violations": violation_rows,
                    "identity_links": link_rows,
                }
                for name, rows in data.items():
                    conn.execute(f'DELETE FROM "{name}"')
                    if rows:
                        marks = ", ".join("?" * len(rows[0]))
                        conn.executemany(f'INSERT OR REPLACE INTO "{name}" VALUES ({marks})', rows)
        except BaseException as exc:
            wh.finish_run(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                          error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        counts = {name: len(rows) for name, rows in data.items()}
        by_kind = {
            "conversions": _tally(r[5] for r in data["conversions"]),
            "reconcile_conflicts": _tally(r[0] for r in data["reconcile_conflicts"]),
            "timeline_violations": _tally(r[2] for r in data["timeline_violations"]),
            "identity_links": _tally(f"{r[0]}:{r[5].split(':')[0]}" for r in data["identity_links"]),
        }
        summary = ReconcileSummary(run_id, time.perf_counter() - t0, counts, by_kind)
        wh.finish_run(run_id, "succeeded", summary=summary.to_dict())
    return summary


def _tally(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))
