"""Audit the warehouse: data-quality checks and sales metrics, as tables, JSON or one HTML file.

Example::

    >>> from crmsync.audit import AuditConfig, Filters, run_audit
    >>> report = run_audit("crmsync.db", AuditConfig(), Filters.make(period="2025"))   # doctest: +SKIP
    >>> report.worst                                                                  # doctest: +SKIP
    <Severity.ERROR: 'error'>

See ``docs/audit.md`` for every check, metric, threshold and the JSON schema.
"""

from __future__ import annotations

from crmsync.audit.checks import CHECK_IDS, CHECKS, CheckResult, run_checks, worst_severity
from crmsync.audit.report import AuditReport, fails, run_audit
from crmsync.audit.settings import AuditConfig, Filters, Severity, audit_config_from, parse_period

__all__ = [
    "CHECKS", "CHECK_IDS", "AuditConfig", "AuditReport", "CheckResult", "Filters", "Severity",
    "audit_config_from", "fails", "parse_period", "run_audit", "run_checks", "worst_severity",
]
