"""Audit the warehouse: data-quality checks and sales metrics, as tables, JSON or one HTML file.

Example::

    >>> from crmsync.audit import AuditConfig, Filters, run_audit
    >>> report = run_audit("crmsync.db", AuditConfig(), Filters.make(period="2025"))   # doctest: +SKIP
    >>> report.worst                                                                  # doctest: +SKIP
    <Severity.ERROR: 'error'>

See ``docs/audit.md`` for every check, metric, threshold and the JSON schema.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module defining it, imported on first use so that ``crmsync`` commands other
#: than ``audit`` start without loading the audit engine.
_EXPORTS = {
    **dict.fromkeys(("CHECK_IDS", "CHECKS", "CheckResult", "run_checks", "worst_severity"), "crmsync.audit.checks"),
    **dict.fromkeys(("AuditReport", "fails", "run_audit"), "crmsync.audit.report"),
    **dict.fromkeys(("AuditConfig", "Filters", "Severity", "audit_config_from", "parse_period"),
                    "crmsync.audit.settings"),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crmsync.audit' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "CHECKS", "CHECK_IDS", "AuditConfig", "AuditReport", "CheckResult", "Filters", "Severity",
    "audit_config_from", "fails", "parse_period", "run_audit", "run_checks", "worst_severity",
]
