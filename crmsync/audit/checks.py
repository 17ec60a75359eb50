"""Data-quality checks of the warehouse: one SQL query per check, run inside SQLite.

Every check has an ``id`` (stable: used in ``[audit]``, JSON and ``--fail-on``), a
default severity (``info`` < ``warning`` < ``error``, overridable per check in
``[audit] severity``), the thresholds it uses (from :class:`AuditConfig`) and
returns the total number of offending records plus the first ``max_records`` of
them, worst first. A check whose tables are missing (``crmsync reconcile`` never
ran) is ``skipped``, never an error.

What counts, per check (deals are non-deleted, not vanished, and in the
``--pipeline`` when one is given; the period filter does not apply to checks —
they describe the warehouse as it is at ``as_of``):

=============================== ======== ==============================================================
id                              severity offending record
=============================== ======== ==============================================================
stale_open_deal                 warning  open deal whose update_time (else add_time) is ≥ stale_days before as_of
past_close_date                 warning  open deal whose expected_close_date + past_close_grace_days < as_of date
close_date_pushed               warning  deal whose expected close date was moved later ≥ close_date_pushes times
                                         (``changes`` history and connector ``stage_changes``)
stage_skipped                   warning  one forward stage move jumping over ≥ skipped_stages stages (stage order =
                                         ``stages.position`` within the pipeline; from ``deal_timeline``)
stage_backwards                 warning  one stage move to an earlier stage of the same pipeline
won_without_value               error    won deal with no value or value 0
lost_without_reason             warning  lost deal with an empty lost_reason
missing_amount                  warning  open deal with no value or value 0
missing_currency                warning  deal with a value but no currency
missing_close_date              warning  open deal with no expected_close_date
missing_owner                   warning  deal with no owner_id
missing_contact                 warning  deal with neither person_id nor org_id
rotting_deal                    warning  open deal in its stage (since stage_change_time, else add_time) longer than
                                         the stage's rotten_days (or default_rotten_days when the stage has none)
duplicate_person                warning  pair of persons of one source sharing an email or phone (identity_links)
duplicate_organization          warning  pair of organizations of one source with the same name/domain, or a fuzzy
                                         name match scoring ≥ fuzzy_min_score (identity_links)
invalid_email                   warning  one email of a person that did not normalize (its ``problem`` says why)
invalid_phone                   warning  one phone of a person that did not normalize
aging_lead                      warning  lead still new/working/nurturing with no update for ≥ lead_aging_days
converted_lead_without_deal     error    lead marked converted (status or converted_deal_id) with no conversion to a
                                         deal that is in the warehouse
deal_without_lead               info     deal with no originating lead, in a source that records conversions
                                         (has explicit or captured ones)
stage_change_after_close        warning  deal whose stage changed after it was won/lost (timeline_violations)
probability_mismatch            warning  open deal whose probability differs from its stage's by more than
                                         probability_tolerance points, or is outside 0–100
timeline_violation              warning  any other timeline invariant violation from reconciliation
reconcile_conflict              warning  a contradiction found by reconciliation (reconcile_conflicts)
quarantined_rows                warning  row quarantined by the latest run of its source (fires above
                                         quarantine_max_rows)
=============================== ======== ==============================================================

Example::

    >>> results = run_checks(conn, AuditConfig(), Filters.make(as_of="2025-06-30"))   # doctest: +SKIP
    >>> [(r.id, r.count) for r in results if r.fired]                                 # doctest: +SKIP
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from crmsync.audit.settings import AuditConfig, Filters, Severity

#: Checks and metrics that read every deal (lead, person) name the table ``NOT INDEXED``: otherwise SQLite may walk
#: a non-covering index to save a sort and read the table in random order, measured 3-5x slower at 1M rows.
DEAL_SCOPE = (
    "d.removed_run IS NULL AND d.status IS NOT 'deleted' "
    "AND (:pipeline IS NULL OR d.pipeline_id = :pipeline OR d.pipeline_name = :pipeline "
    "OR d.pipeline_id IN (SELECT p.source_id FROM pipelines p WHERE p.name = :pipeline))"
)
AGE = "ROUND(julianday(:as_of) - julianday({0}), 1)"

#: Stage rank within its pipeline (1 = first), from ``position``; stages without a position have no rank.
STAGE_RANK = """
stage_rank AS (
    SELECT source, source_id AS stage_id, pipeline_id, name, category,
           ROW_NUMBER() OVER (PARTITION BY source, pipeline_id ORDER BY position, source_id) AS rk
    FROM stages WHERE removed_run IS NULL AND position IS NOT NULL
)"""

#: Temp tables built once per audit (inside its read transaction, so they vanish with it).
PREPARE = (
    # Every stage with its rank in the pipeline (NULL without a position) and probability.
    "CREATE TEMP TABLE audit_stage_rank (source TEXT, stage_id TEXT, pipeline_id TEXT, name TEXT, rk INTEGER, "
    "probability REAL, rotten_days INTEGER, PRIMARY KEY (source, stage_id)) WITHOUT ROWID",
    f"WITH {STAGE_RANK} INSERT INTO audit_stage_rank SELECT s.source, s.source_id, s.pipeline_id, s.name, r.rk, "
    "CAST(s.probability AS REAL), s.rotten_days FROM stages s LEFT JOIN stage_rank r ON r.source = s.source "
    "AND r.stage_id = s.source_id WHERE s.removed_run IS NULL",
    # Stage moves of the reconciled timeline that skip or go back: a stage event's old_value (the stage it
    # left) and new_value, both ranked stages of one pipeline. One pass over deal_timeline serves both checks
    # and the funnel (the highest stage a deal reached before going back).
    "CREATE TEMP TABLE audit_stage_moves AS "
    "SELECT t.source, t.deal_id, t.at, a.pipeline_id, a.name AS from_stage, b.name AS to_stage, a.rk AS from_rank, "
    "b.rk AS to_rank, b.rk - a.rk - 1 AS skipped FROM deal_timeline t "
    "JOIN audit_stage_rank a ON a.source = t.source AND a.stage_id = t.old_value "
    "JOIN audit_stage_rank b ON b.source = t.source AND b.stage_id = t.new_value AND b.pipeline_id IS a.pipeline_id "
    "WHERE t.kind = 'stage' AND t.old_value IS NOT NULL AND b.rk - a.rk != 1 AND b.rk != a.rk",
    "CREATE TEMP TABLE audit_deal_peak (source TEXT, deal_id TEXT, pipeline_id TEXT, peak INTEGER, "
    "PRIMARY KEY (source, deal_id, pipeline_id)) WITHOUT ROWID",
    "INSERT INTO audit_deal_peak SELECT source, deal_id, pipeline_id, MAX(from_rank) FROM audit_stage_moves "
    "WHERE to_rank < from_rank GROUP BY source, deal_id, pipeline_id",
)

_MOVES = f"""
SELECT m.source, m.deal_id AS id, d.title AS label, m.at, m.from_stage, m.to_stage, m.from_rank, m.to_rank,
       m.skipped
FROM temp.audit_stage_moves m JOIN deals d ON d.source = m.source AND d.source_id = m.deal_id
WHERE {DEAL_SCOPE} AND {{cond}}
"""

_CONTACT = """
SELECT p.source, p.source_id AS id, p.name AS label, json_extract(j.value, '$.raw') AS value,
       COALESCE(json_extract(j.value, '$.problem'), 'not normalized') AS problem
FROM persons p NOT INDEXED, json_each(p.{column}) j
WHERE p.removed_run IS NULL
  AND (json_extract(j.value, '$.normalized') IS NULL OR json_extract(j.value, '$.problem') IS NOT NULL)
"""

_LINKS = """
SELECT l.a_source AS source, l.a_id AS id, l.b_source AS other_source, l.b_id AS other_id,
       l.reason, l.score, a.name AS label, b.name AS other_label
FROM identity_links l
LEFT JOIN {table} a ON a.source = l.a_source AND a.source_id = l.a_id
LEFT JOIN {table} b ON b.source = l.b_source AND b.source_id = l.b_id
WHERE l.entity = '{entity}' AND (:cross_source OR l.a_source = l.b_source) {extra}
"""

_CONVERSION_SOURCES = "SELECT DISTINCT deal_source FROM conversions WHERE method IN ('explicit', 'captured')"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    entity: str
    severity: Severity
    sql: str
    order: str
    detail: Callable[[dict[str, Any]], str]
    needs: tuple[str, ...] = ("deals",)
    thresholds: Callable[[AuditConfig], dict[str, Any]] = lambda c: {}
    #: When the check fires: more than this many offending records (a threshold name or 0).
    tolerance: Callable[[AuditConfig], int] = lambda c: 0
    description: str = ""


@dataclass
class CheckResult:
    id: str
    title: str
    entity: str
    severity: Severity
    description: str
    thresholds: dict[str, Any]
    status: str  # "ok" | "fired" | "skipped"
    count: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None

    @property
    def fired(self) -> bool:
        return self.status == "fired"


def _days(row: dict[str, Any], key: str = "days") -> str:
    value = row.get(key)
    return "?" if value is None else f"{value:g}"


CHECKS: tuple[Check, ...] = (
    Check(
        "stale_open_deal", "Stale open deals", "deal", Severity.WARNING,
        f"SELECT d.source, d.source_id AS id, d.title AS label, COALESCE(d.update_time, d.add_time) AS last_touch, "
        f"{AGE.format('COALESCE(d.update_time, d.add_time)')} AS days, d.owner_id "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.status = 'open' "
        "AND COALESCE(d.update_time, d.add_time) <= :stale_cutoff",
        "last_touch, source, id",
        lambda r: f"no update for {_days(r)} days (last {r['last_touch']})",
        thresholds=lambda c: {"stale_days": c.stale_days},
        description="Open deals nobody has touched for a long time.",
    ),
    Check(
        "past_close_date", "Open deals past their expected close date", "deal", Severity.WARNING,
        f"SELECT d.source, d.source_id AS id, d.title AS label, d.expected_close_date, "
        f"{AGE.format('d.expected_close_date')} AS days, d.owner_id "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.status = 'open' AND d.expected_close_date < :close_cutoff",
        "expected_close_date, source, id",
        lambda r: f"expected to close {r['expected_close_date']}, {_days(r)} days ago",
        thresholds=lambda c: {"past_close_grace_days": c.past_close_grace_days},
        description="Still open although the expected close date has passed.",
    ),
    Check(
        "close_date_pushed", "Close date pushed repeatedly", "deal", Severity.WARNING,
        "WITH moved AS ("
        " SELECT source, source_id AS deal_id, old_value, new_value FROM changes"
        " WHERE entity = 'deal' AND field = 'expected_close_date'"
        " UNION ALL SELECT source, deal_id, old_value, new_value FROM stage_changes"
        " WHERE field = 'expected_close_date'),"
        " pushes AS (SELECT source, deal_id, COUNT(*) AS pushes, MIN(old_value) AS first_date,"
        " MAX(new_value) AS last_date FROM moved"
        " WHERE old_value IS NOT NULL AND new_value IS NOT NULL AND new_value > old_value"
        " GROUP BY source, deal_id HAVING COUNT(*) >= :close_date_pushes) "
        "SELECT p.source, p.deal_id AS id, d.title AS label, p.pushes, p.first_date, p.last_date, d.status "
        f"FROM pushes p JOIN deals d ON d.source = p.source AND d.source_id = p.deal_id WHERE {DEAL_SCOPE}",
        "pushes DESC, source, id",
        lambda r: f"close date pushed {r['pushes']} times, {r['first_date']} → {r['last_date']}",
        needs=("deals", "changes", "stage_changes"),
        thresholds=lambda c: {"close_date_pushes": c.close_date_pushes},
        description="A close date moved later again and again is a forecast nobody believes.",
    ),
    Check(
        "stage_skipped", "Stages skipped", "deal", Severity.WARNING,
        _MOVES.format(cond="m.skipped >= :skipped_stages"),
        "skipped DESC, source, id, at",
        lambda r: f"{r['from_stage']} → {r['to_stage']} at {r['at']}, skipping {r['skipped']} stage(s)",
        needs=("deals", "deal_timeline", "stages"),
        thresholds=lambda c: {"skipped_stages": c.skipped_stages},
        description="A deal jumped over stages in one move (counted per move).",
    ),
    Check(
        "stage_backwards", "Deals moved back a stage", "deal", Severity.WARNING,
        _MOVES.format(cond="m.to_rank < m.from_rank"),
        "source, id, at",
        lambda r: f"{r['from_stage']} → {r['to_stage']} at {r['at']} (backwards)",
        needs=("deals", "deal_timeline", "stages"),
        description="A deal went back to an earlier stage (counted per move).",
    ),
    Check(
        "won_without_value", "Won deals without a value", "deal", Severity.ERROR,
        "SELECT d.source, d.source_id AS id, d.title AS label, d.value, d.won_time "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.status = 'won' "
        "AND (d.value IS NULL OR CAST(d.value AS REAL) = 0)",
        "won_time DESC, source, id",
        lambda r: f"won {r['won_time'] or '(no date)'} with value {r['value'] or 'empty'}",
        description="Revenue that reports cannot count.",
    ),
    Check(
        "lost_without_reason", "Lost deals without a reason", "deal", Severity.WARNING,
        "SELECT d.source, d.source_id AS id, d.title AS label, d.lost_time "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.status = 'lost' AND TRIM(COALESCE(d.lost_reason, '')) = ''",
        "lost_time DESC, source, id",
        lambda r: f"lost {r['lost_time'] or '(no date)'} with no reason",
        description="Losses nobody can learn from.",
    ),
    Check(
        "missing_amount", "Open deals without an amount", "deal", Severity.WARNING,
        "SELECT d.source, d.source_id AS id, d.title AS label, d.value "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.status = 'open' "
        "AND (d.value IS NULL OR CAST(d.value AS REAL) = 0)",
        "source, id",
        lambda r: f"value is {r['value'] or 'empty'}",
    ),
    Check(
        "missing_currency", "Deals with a value but no currency", "deal", Severity.WARNING,
        "SELECT d.source, d.source_id AS id, d.title AS label, d.value "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.value IS NOT NULL AND TRIM(COALESCE(d.currency, '')) = ''",
        "source, id",
        lambda r: f"value {r['value']} has no currency",
    ),
    Check(
        "missing_close_date", "Open deals without an expected close date", "deal", Severity.WARNING,
        "SELECT d.source, d.source_id AS id, d.title AS label "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.status = 'open' AND d.expected_close_date IS NULL",
        "source, id",
        lambda r: "no expected close date",
    ),
    Check(
        "missing_owner", "Deals without an owner", "deal", Severity.WARNING,
        "SELECT d.source, d.source_id AS id, d.title AS label, d.status "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND TRIM(COALESCE(d.owner_id, '')) = ''",
        "source, id",
        lambda r: f"{r['status']} deal with no owner",
    ),
    Check(
        "missing_contact", "Deals without a person or organization", "deal", Severity.WARNING,
        "SELECT d.source, d.source_id AS id, d.title AS label, d.status "
        f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND d.person_id IS NULL AND d.org_id IS NULL",
        "source, id",
        lambda r: f"{r['status']} deal with no contact person or organization",
    ),
    Check(
        "rotting_deal", "Deals rotting in their stage", "deal", Severity.WARNING,
        "SELECT d.source, d.source_id AS id, d.title AS label, s.name AS stage, "
        "COALESCE(s.rotten_days, :default_rotten_days) AS rotten_days, "
        f"{AGE.format('COALESCE(d.stage_change_time, d.add_time)')} AS days "
        "FROM deals d NOT INDEXED JOIN temp.audit_stage_rank s ON s.source = d.source AND s.stage_id = d.stage_id "
        f"WHERE {DEAL_SCOPE} AND d.status = 'open' AND COALESCE(s.rotten_days, :default_rotten_days) IS NOT NULL "
        "AND julianday(:as_of) - julianday(COALESCE(d.stage_change_time, d.add_time)) "
        "> COALESCE(s.rotten_days, :default_rotten_days)",
        "days DESC, source, id",
        lambda r: f"{_days(r)} days in {r['stage']} (rots after {r['rotten_days']})",
        needs=("deals", "stages"),
        thresholds=lambda c: {"default_rotten_days": c.default_rotten_days},
        description="Pipedrive-style rotting: longer in the current stage than the stage allows.",
    ),
    Check(
        "duplicate_person", "Duplicate persons", "person", Severity.WARNING,
        _LINKS.format(table="persons", entity="person", extra=""),
        "source, id, other_id",
        lambda r: f"same as {r['other_source']}/{r['other_id']} ({r['other_label'] or '?'}): {r['reason']}",
        needs=("identity_links", "persons"),
        thresholds=lambda c: {"include_cross_source": c.include_cross_source},
        description="Persons sharing an email or phone (from identity links).",
    ),
    Check(
        "duplicate_organization", "Duplicate organizations", "organization", Severity.WARNING,
        _LINKS.format(table="organizations", entity="organization",
                      extra="AND (l.reason NOT LIKE 'fuzzy_name:%' OR l.score >= :fuzzy_min_score)"),
        "score DESC, source, id, other_id",
        lambda r: (f"{'same' if r['score'] >= 1 else 'looks like'} {r['other_source']}/{r['other_id']} "
                   f"({r['other_label'] or '?'}): {r['reason']} score {r['score']:g}"),
        needs=("identity_links", "organizations"),
        thresholds=lambda c: {"fuzzy_min_score": c.fuzzy_min_score, "include_cross_source": c.include_cross_source},
        description="Organizations with the same normalized name or domain, or a close fuzzy name.",
    ),
    Check(
        "invalid_email", "Invalid emails", "person", Severity.WARNING,
        _CONTACT.format(column="emails"), "source, id, value",
        lambda r: f"email {r['value']!r}: {r['problem']}",
        needs=("persons",),
    ),
    Check(
        "invalid_phone", "Invalid phones", "person", Severity.WARNING,
        _CONTACT.format(column="phones"), "source, id, value",
        lambda r: f"phone {r['value']!r}: {r['problem']}",
        needs=("persons",),
    ),
    Check(
        "aging_lead", "Leads aging without progress", "lead", Severity.WARNING,
        "SELECT l.source, l.source_id AS id, l.title AS label, l.status, "
        f"COALESCE(l.update_time, l.add_time) AS last_touch, {AGE.format('COALESCE(l.update_time, l.add_time)')} "
        "AS days FROM leads l NOT INDEXED WHERE l.removed_run IS NULL AND l.status IN ('new', 'working', 'nurturing') "
        "AND COALESCE(l.update_time, l.add_time) <= :lead_cutoff",
        "last_touch, source, id",
        lambda r: f"{r['status']} for {_days(r)} days with no update (last {r['last_touch']})",
        needs=("leads",),
        thresholds=lambda c: {"lead_aging_days": c.lead_aging_days},
    ),
    Check(
        "converted_lead_without_deal", "Converted leads with no deal", "lead", Severity.ERROR,
        "SELECT l.source, l.source_id AS id, l.title AS label, l.status, l.converted_deal_id "
        "FROM leads l NOT INDEXED WHERE l.removed_run IS NULL "
        "AND (l.status = 'converted' OR l.converted_deal_id IS NOT NULL) AND NOT EXISTS ("
        " SELECT 1 FROM conversions c JOIN deals d ON d.source = c.deal_source AND d.source_id = c.deal_id"
        " AND d.removed_run IS NULL WHERE c.lead_source = l.source AND c.lead_id = l.source_id)",
        "source, id",
        lambda r: (f"marked converted to deal {r['converted_deal_id']}, which is not in the warehouse"
                   if r["converted_deal_id"] else "status converted, but no deal found"),
        needs=("leads", "conversions", "deals"),
    ),
    Check(
        "deal_without_lead", "Deals with no originating lead", "deal", Severity.INFO,
        "SELECT d.source, d.source_id AS id, d.title AS label, d.add_time FROM deals d NOT INDEXED "
        f"WHERE {DEAL_SCOPE} AND d.source IN ({_CONVERSION_SOURCES}) AND NOT EXISTS ("
        " SELECT 1 FROM temp.audit_converted_deals c WHERE c.source = d.source AND c.deal_id = d.source_id)",
        "add_time DESC, source, id",
        lambda r: f"created {r['add_time'] or '(no date)'} with no lead (explicit, captured or inferred)",
        needs=("deals", "conversions"),
        description="Only for sources that record conversions; inferred links count as a lead.",
    ),
    Check(
        "stage_change_after_close", "Stage changed after close", "deal", Severity.WARNING,
        "SELECT v.source, v.deal_id AS id, d.title AS label, v.detail AS violation FROM timeline_violations v "
        f"JOIN deals d ON d.source = v.source AND d.source_id = v.deal_id WHERE {DEAL_SCOPE} "
        "AND v.rule = 'stage_change_after_close'",
        "source, id",
        lambda r: r["violation"],
        needs=("deals", "timeline_violations"),
    ),
    Check(
        "probability_mismatch", "Probability inconsistent with the stage", "deal", Severity.WARNING,
        "SELECT d.source, d.source_id AS id, d.title AS label, s.name AS stage, "
        "CAST(d.probability AS REAL) AS probability, s.probability AS stage_probability "
        "FROM deals d NOT INDEXED LEFT JOIN temp.audit_stage_rank s ON s.source = d.source AND s.stage_id = d.stage_id "
        f"WHERE {DEAL_SCOPE} AND d.status = 'open' AND d.probability IS NOT NULL AND ("
        " CAST(d.probability AS REAL) < 0 OR CAST(d.probability AS REAL) > 100"
        " OR (s.probability IS NOT NULL"
        "     AND ABS(CAST(d.probability AS REAL) - s.probability) > :probability_tolerance))",
        "source, id",
        lambda r: (f"probability {r['probability']:g}% outside 0–100" if r["stage_probability"] is None
                   or not 0 <= r["probability"] <= 100 else
                   f"probability {r['probability']:g}% but stage {r['stage']} says {r['stage_probability']:g}%"),
        needs=("deals", "stages"),
        thresholds=lambda c: {"probability_tolerance": c.probability_tolerance},
    ),
    Check(
        "timeline_violation", "Timeline invariant violations", "deal", Severity.WARNING,
        "SELECT v.source, v.deal_id AS id, d.title AS label, v.rule, v.detail AS violation "
        "FROM timeline_violations v JOIN deals d ON d.source = v.source AND d.source_id = v.deal_id "
        f"WHERE {DEAL_SCOPE} AND v.rule != 'stage_change_after_close'",
        "rule, source, id",
        lambda r: f"{r['rule']}: {r['violation']}",
        needs=("deals", "timeline_violations"),
    ),
    Check(
        "reconcile_conflict", "Reconciliation conflicts", "lead", Severity.WARNING,
        "SELECT c.source, c.source_id AS id, c.entity AS record_entity, c.kind, c.detail AS conflict, "
        "NULL AS label FROM reconcile_conflicts c",
        "kind, source, id",
        lambda r: f"{r['entity']} {r['kind']}: {r['conflict']}",
        needs=("reconcile_conflicts",),
    ),
    Check(
        "quarantined_rows", "Rows quarantined by the last run", "quarantine", Severity.WARNING,
        "WITH last AS (SELECT source, MAX(run_id) AS run_id FROM run_counts GROUP BY source) "
        "SELECT q.source, CAST(q.id AS TEXT) AS id, q.entity || ' ' || COALESCE(q.file, '') "
        "|| COALESCE(':' || q.line, '') AS label, q.run_id, q.entity AS record_entity, q.file, q.sheet, q.line, "
        "q.\"column\", q.value, q.reason FROM quarantine q JOIN last ON last.source = q.source "
        "AND last.run_id = q.run_id",
        "source, file, line, CAST(id AS INTEGER)",
        lambda r: f"{r['column'] or 'row'} = {r['value']!r}: {r['reason']}",
        needs=("quarantine", "run_counts"),
        thresholds=lambda c: {"quarantine_max_rows": c.quarantine_max_rows},
        tolerance=lambda c: c.quarantine_max_rows,
    ),
)

CHECK_IDS: tuple[str, ...] = tuple(c.id for c in CHECKS)
CHECKS_BY_ID = {c.id: c for c in CHECKS}


def check_params(config: AuditConfig, filters: Filters) -> dict[str, Any]:
    params = filters.params()
    params.update(
        stale_cutoff=filters.cutoff(config.stale_days),
        lead_cutoff=filters.cutoff(config.lead_aging_days),
        close_cutoff=(filters.as_of.date() - timedelta(days=config.past_close_grace_days)).isoformat(),
        close_date_pushes=config.close_date_pushes,
        skipped_stages=config.skipped_stages,
        default_rotten_days=config.default_rotten_days,
        probability_tolerance=config.probability_tolerance,
        fuzzy_min_score=config.fuzzy_min_score,
        cross_source=int(config.include_cross_source),
        max_records=config.max_records,
    )
    return params


def existing_tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


def run_checks(conn: sqlite3.Connection, config: AuditConfig, filters: Filters,
               only: set[str] | None = None) -> list[CheckResult]:
    """Run every enabled check; results in :data:`CHECKS` order."""
    tables = existing_tables(conn)
    params = check_params(config, filters)
    prepare(conn, tables)
    wanted = [c for c in CHECKS if c.id not in config.disabled and (only is None or c.id in only)]
    runnable = [c for c in wanted if all(t in tables for t in c.needs)]
    counted = count_deal_checks(conn, runnable, params)
    return [run_check(conn, check, config, params, tables, counted.get(check.id)) for check in wanted]


_SIMPLE = f"FROM deals d NOT INDEXED WHERE {DEAL_SCOPE} AND "


def deal_predicate(check: Check) -> str | None:
    """The condition of a check that is a plain filter of the deals table (no join), else ``None``."""
    head, sep, predicate = check.sql.partition(_SIMPLE)
    if sep and head.startswith("SELECT ") and " JOIN " not in head and _SIMPLE not in predicate:
        return predicate
    return None


def count_deal_checks(conn: sqlite3.Connection, checks: list[Check], params: dict[str, Any]) -> dict[str, int]:
    """Counts of every plain deal-filter check in ONE scan of the deals table (instead of one scan each)."""
    predicates = {c.id: p for c in checks if (p := deal_predicate(c)) is not None}
    if not predicates:
        return {}
    sums = ", ".join(f"COALESCE(SUM(CASE WHEN {p} THEN 1 ELSE 0 END), 0)" for p in predicates.values())
    row = conn.execute(f"SELECT {sums} {_SIMPLE[:-5]}", params).fetchone()
    return dict(zip(predicates, row, strict=True))


def prepare(conn: sqlite3.Connection, tables: set[str]) -> None:
    """Create the audit's temp tables once (idempotent per connection)."""
    if conn.execute("SELECT 1 FROM temp.sqlite_master WHERE name = 'audit_converted_deals'").fetchone():
        return
    for name, key in (("audit_converted_deals", "deal"), ("audit_converted_leads", "lead")):
        conn.execute(f"CREATE TEMP TABLE {name} (source TEXT, {key}_id TEXT, PRIMARY KEY (source, {key}_id)) "
                     "WITHOUT ROWID")
        if "conversions" in tables:
            conn.execute(f"INSERT OR IGNORE INTO {name} SELECT {key}_source, {key}_id FROM conversions")
    if "stages" not in tables:
        return
    for i, statement in enumerate(PREPARE):
        if i == 2 and "deal_timeline" not in tables:
            conn.execute("CREATE TEMP TABLE audit_stage_moves (source TEXT, deal_id TEXT, pipeline_id TEXT, "
                         "from_rank INTEGER, to_rank INTEGER)")
            conn.execute(PREPARE[3])
            break
        conn.execute(statement)


def run_check(conn: sqlite3.Connection, check: Check, config: AuditConfig, params: dict[str, Any],
              tables: set[str], count: int | None = None) -> CheckResult:
    severity = config.severity.get(check.id, check.severity)
    result = CheckResult(check.id, check.title, check.entity, Severity(severity), check.description,
                         check.thresholds(config), "ok")
    missing = [t for t in check.needs if t not in tables]
    if missing:
        result.status = "skipped"
        hint = "run `crmsync reconcile` first" if set(missing) & _RECONCILE_TABLES else "run `crmsync sync` first"
        result.note = f"no table {', '.join(missing)} in the warehouse; {hint}"
        return result
    # Two cheap passes (a count, then a top-N sort) measured faster than one pass that materializes every
    # offending row to count it alongside (COUNT(*) OVER ()).
    result.count = (conn.execute(f"SELECT COUNT(*) FROM ({check.sql})", params).fetchone()[0]
                    if count is None else count)
    if result.count and config.max_records:
        cur = conn.execute(f"SELECT * FROM ({check.sql}) AS q ORDER BY {check.order} LIMIT :max_records", params)
        names = [c[0] for c in cur.description]
        for row in cur:
            data = dict(zip(names, row, strict=True))
            record = {"entity": data.pop("record_entity", check.entity), "source": data.pop("source"),
                      "id": data.pop("id"), "label": data.pop("label", None)}
            record["detail"] = check.detail({**record, **data})
            record["fields"] = data
            result.records.append(record)
    if result.count > check.tolerance(config):
        result.status = "fired"
    return result


_RECONCILE_TABLES = {"conversions", "reconcile_conflicts", "deal_timeline", "stage_spans", "timeline_violations",
                     "identity_links"}


def worst_severity(results: list[CheckResult]) -> Severity | None:
    """The highest severity among checks that fired, ``None`` when none did."""
    fired = [r.severity for r in results if r.fired]
    return max(fired, key=lambda s: s.rank) if fired else None
