"""Run a whole audit (checks + metrics) on a warehouse and hold the result."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crmsync.audit.checks import CheckResult, run_checks, worst_severity
from crmsync.audit.metrics import compute_metrics
from crmsync.audit.settings import AuditConfig, Filters, Severity
from crmsync.errors import ConfigError, WarehouseError
from crmsync.warehouse import Warehouse


@dataclass
class AuditReport:
    warehouse: str
    generated_at: str
    filters: Filters
    config: AuditConfig
    checks: list[CheckResult]
    metrics: dict[str, Any]
    seconds: float

    @property
    def worst(self) -> Severity | None:
        """Highest severity among checks that fired (``None``: nothing fired)."""
        return worst_severity(self.checks)

    def counts(self) -> dict[str, int]:
        """How many checks fired per severity, plus ok and skipped."""
        out = {"error": 0, "warning": 0, "info": 0, "ok": 0, "skipped": 0}
        for c in self.checks:
            out[c.severity.value if c.fired else c.status] += 1
        return out


def fails(report: AuditReport, fail_on: Severity | str | None) -> bool:
    """True when a check of severity ``fail_on`` or worse fired (``--fail-on``)."""
    if fail_on is None:
        return False
    try:
        threshold = Severity(fail_on)
    except ValueError:
        raise ConfigError(f"--fail-on: {fail_on!r} must be one of info, warning, error") from None
    worst = report.worst
    return worst is not None and worst.rank >= threshold.rank


def run_audit(warehouse: str | os.PathLike[str] | sqlite3.Connection, config: AuditConfig | None = None,
              filters: Filters | None = None) -> AuditReport:
    """Audit a warehouse file (opened read-only, no lock) or an open connection."""
    config = config or AuditConfig()
    filters = filters or Filters.make()
    t0 = time.perf_counter()
    if isinstance(warehouse, sqlite3.Connection):
        checks, metrics = _run(warehouse, config, filters)
        name = "(connection)"
    else:
        path = Path(warehouse)
        with Warehouse.open(path, write=False) as wh:
            try:
                checks, metrics = _run(wh.conn, config, filters)
            except sqlite3.DatabaseError as exc:
                raise WarehouseError(f"{path}: cannot audit warehouse: {exc}") from None
        name = str(path)
    return AuditReport(warehouse=name, generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       filters=filters, config=config, checks=checks, metrics=metrics,
                       seconds=time.perf_counter() - t0)


def _run(conn: sqlite3.Connection, config: AuditConfig, filters: Filters) -> tuple[list[CheckResult], dict]:
    # Sorts (ORDER BY … LIMIT, GROUP BY) stay in memory instead of spilling to temp files; restored after.
    own = not conn.in_transaction
    names = ("temp_store", "cache_size") if own else ("cache_size",)  # temp_store is fixed inside a transaction
    saved = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names}
    if own:
        conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -262144")
    if own:
        conn.execute("BEGIN")  # one read snapshot for checks and metrics; the temp tables vanish with it
    try:
        return run_checks(conn, config, filters), compute_metrics(conn, filters)
    finally:
        if own:
            conn.execute("ROLLBACK")
        for name, value in saved.items():
            conn.execute(f"PRAGMA {name} = {int(value)}")
