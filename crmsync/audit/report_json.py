"""The audit as JSON: a stable, versioned schema for scripts, dashboards and CI.

``schema_version`` changes only when a key is removed or changes meaning; new keys may be added
within a version. Times are ISO-8601 UTC (``Z``), dates ``YYYY-MM-DD``, rates are fractions
0–1 rounded to 4 places, days and money are numbers rounded to 2 places, ``null`` means "cannot be
computed" (e.g. no closed deals in the period). Schema (version 1)::

    {
      "schema_version": 1,
      "generated_at": "2026-01-31T09:00:00Z",
      "warehouse": "/data/crmsync.db",
      "seconds": 0.42,                                # time the audit took
      "filters": {"as_of": "…Z", "since": "YYYY-MM-DD"|null, "until": "YYYY-MM-DD"|null, "pipeline": str|null},
      "summary": {
        "worst": "error"|"warning"|"info"|null,     # highest severity among fired checks
        "checks": {"error": int, "warning": int, "info": int, "ok": int, "skipped": int},
        "offending_records": int                     # sum of count over fired checks
      },
      "checks": [                                    # every enabled check, in a fixed order
        {"id": "stale_open_deal", "title": str, "entity": "deal"|"lead"|"person"|"organization"|"quarantine",
         "severity": "info"|"warning"|"error", "status": "ok"|"fired"|"skipped",
         "count": int,                               # all offending records
         "thresholds": {name: value},                # the [audit] settings the check used
         "description": str, "note": str|null,       # note: why it was skipped
         "truncated": bool,                          # count > len(records)
         "records": [                                # the first max_records, worst first
           {"entity": str, "source": str, "id": str, "label": str|null, "detail": str,
            "fields": {column: value}}               # check-specific values (days, dates, stage names…)
         ]}
      ],
      "metrics": {
        "lead_conversion": null | {"leads": int, "converted": int, "rate": float|null,
            "by_source_name" | "by_channel" | "by_owner" | "by_month":
                [{"key": str, "leads": int, "converted": int, "rate": float|null}]},
        "funnel": [{"source": str, "pipeline_id": str, "pipeline_name": str|null, "deals": int, "won": int,
            "stages": [{"stage_id": str, "name": str, "rank": int, "reached": int,
                        "conversion_to_next": float|null}]}],
        "win_rate": {"won": int, "lost": int, "rate": float|null},
        "deal_size": [{"currency": str, "won": int, "without_value": int, "total": float|null,
                       "average": float|null}],
        "sales_cycle": {"deals": int, "mean_days": float|null, "median_days": float|null, "p90_days": float|null},
        "velocity": [{"currency": str, "open_deals": int, "win_rate": float|null, "average_deal_size": float|null,
                      "cycle_days": float|null, "per_day": float|null}],
        "time_in_stage": [{"source": str, "stage_id": str, "name": str, "pipeline_id": str|null,
                           "rank": int|null, "spans": int, "mean_days": float, "median_days": float,
                           "p90_days": float}],
        "bottleneck": null | {"source": str, "pipeline_id": str, "stage_id": str, "name": str,
                              "median_days": float, "drop_off": float, "score": float},
        "pipeline_value": [{"source": str, "pipeline_id": str|null, "stage_id": str|null, "name": str|null,
                            "rank": int|null, "currency": str, "deals": int, "value": float, "weighted": float}]
      }
    }

Metric definitions are in :mod:`crmsync.audit.metrics`, check definitions in :mod:`crmsync.audit.checks`.
"""

from __future__ import annotations

import json
from typing import Any

from crmsync.audit.report import AuditReport

SCHEMA_VERSION = 1


def to_dict(report: AuditReport) -> dict[str, Any]:
    worst = report.worst
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": report.generated_at,
        "warehouse": report.warehouse,
        "seconds": round(report.seconds, 3),
        "filters": report.filters.to_dict(),
        "summary": {
            "worst": worst.value if worst else None,
            "checks": report.counts(),
            "offending_records": sum(c.count for c in report.checks if c.fired),
        },
        "checks": [
            {
                "id": c.id, "title": c.title, "entity": c.entity, "severity": c.severity.value,
                "status": c.status, "count": c.count, "thresholds": c.thresholds,
                "description": c.description, "note": c.note,
                "truncated": c.count > len(c.records), "records": c.records,
            }
            for c in report.checks
        ],
        "metrics": report.metrics,
    }


def to_json(report: AuditReport, indent: int | None = 2) -> str:
    return json.dumps(to_dict(report), indent=indent, ensure_ascii=False, default=str)
