"""A small warehouse whose audit answers are worked out by hand in tests/test_audit.py.

Source ``s``; pipeline ``P`` with stages S1..S5 (positions 1..5, probabilities 10/20/40/60/80, rotten
days 10 on S1 only) and pipeline ``Q`` with one stage Q1 (probability 50). ``AS_OF`` is the audit's
"now". Every row is written directly (no sync, no reconcile) so the expected numbers depend only
on what is here.
"""

from __future__ import annotations

import json
from pathlib import Path

from crmsync.reconcile import ensure_tables
from crmsync.warehouse import Warehouse

AS_OF = "2025-07-01"
S = "s"

STAGES = [  # source_id, name, pipeline, position, probability, rotten_days
    ("S1", "Lead in", "P", 1, "10", 10),
    ("S2", "Contacted", "P", 2, "20", None),
    ("S3", "Qualified", "P", 3, "40", None),
    ("S4", "Proposal", "P", 4, "60", None),
    ("S5", "Negotiation", "P", 5, "80", None),
    ("Q1", "Renewal", "Q", 1, "50", None),
]

DEAL_COLUMNS = ["source_id", "title", "status", "value", "currency", "pipeline_id", "stage_id", "probability",
                "person_id", "org_id", "owner_id", "expected_close_date", "add_time", "update_time",
                "stage_change_time", "won_time", "lost_time", "close_time", "lost_reason", "source_lead_id",
                "removed_run"]
DEALS = [
    ("D1", "Stale one", "open", "1000", "EUR", "P", "S2", "20", "p1", "o1", "u1", "2025-08-01",
     "2025-05-01T00:00:00Z", "2025-05-15T00:00:00Z", "2025-05-02T00:00:00Z", None, None, None, None, None, None),
    ("D2", "Past close, rotting", "open", "500", "EUR", "P", "S1", "10", "p1", None, "u1", "2025-06-15",
     "2025-06-10T00:00:00Z", "2025-06-20T00:00:00Z", "2025-06-10T00:00:00Z", None, None, None, None, None, None),
    ("D3", "Empty shell", "open", None, None, "P", "S4", "90", None, None, None, None,
     "2025-06-20T00:00:00Z", "2025-06-25T00:00:00Z", None, None, None, None, None, None, None),
    ("D4", "Won for nothing", "won", "0", "USD", "P", "S5", "80", "p2", None, "u2", "2025-03-15",
     "2025-03-01T00:00:00Z", "2025-03-11T00:00:00Z", None, "2025-03-11T00:00:00Z", None,
     "2025-03-11T00:00:00Z", None, None, None),
    ("D5", "Skipper", "won", "2000.50", "EUR", "P", "S5", "80", "p2", "o2", "u2", "2025-01-20",
     "2025-01-01T00:00:00Z", "2025-01-21T00:00:00Z", "2025-01-10T00:00:00Z", "2025-01-21T00:00:00Z", None,
     "2025-01-21T00:00:00Z", None, None, None),
    ("D6", "Went back", "lost", "300", "EUR", "P", "S2", "20", "p3", "o3", "u1", "2025-02-20",
     "2025-02-01T00:00:00Z", "2025-02-11T00:00:00Z", "2025-02-06T00:00:00Z", None, "2025-02-11T00:00:00Z",
     "2025-02-11T00:00:00Z", None, None, None),
    ("D7", "From a lead", "won", "1000", "USD", "P", "S5", "80", "p1", "o1", "u1", "2025-05-01",
     "2025-04-01T00:00:00Z", "2025-05-01T00:00:00Z", None, "2025-05-01T00:00:00Z", None,
     "2025-05-01T00:00:00Z", None, "L1", None),
    ("D8", "Renewal", "open", "700", "EUR", "Q", "Q1", None, None, "o1", "u1", "2025-09-01",
     "2025-06-01T00:00:00Z", "2025-06-30T00:00:00Z", None, None, None, None, None, None, None),
    ("D9", "Deleted", "deleted", None, None, "P", "S1", None, None, None, None, None,
     "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", None, None, None, None, None, None, None),
    ("D10", "Vanished", "open", None, None, "P", "S1", None, None, None, None, None,
     "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", None, None, None, None, None, None, 2),
    ("D11", "No currency", "open", "250", None, "P", "S3", "45", "p1", None, "u1", "2025-07-15",
     "2025-06-15T00:00:00Z", "2025-06-28T00:00:00Z", None, None, None, None, None, None, None),
]

# deal, seq, at, kind, old, new
TIMELINE = [
    ("D5", 1, "2025-01-01T00:00:00Z", "stage", None, "S1"),
    ("D5", 2, "2025-01-05T00:00:00Z", "stage", "S1", "S4"),   # skips S2, S3
    ("D5", 3, "2025-01-10T00:00:00Z", "stage", "S4", "S5"),
    ("D6", 1, "2025-02-01T00:00:00Z", "stage", None, "S1"),
    ("D6", 2, "2025-02-03T00:00:00Z", "stage", "S1", "S3"),   # skips S2 only
    ("D6", 3, "2025-02-06T00:00:00Z", "stage", "S3", "S2"),   # backwards
    ("D1", 1, "2025-05-02T00:00:00Z", "stage", "S1", "S2"),   # a normal move
]

# deal, stage, entered, left, days
SPANS = [
    ("D5", "S1", "2025-01-01", "2025-01-05", 4), ("D5", "S4", "2025-01-05", "2025-01-10", 5),
    ("D5", "S5", "2025-01-10", "2025-01-21", 11),
    ("D6", "S1", "2025-02-01", "2025-02-03", 2), ("D6", "S3", "2025-02-03", "2025-02-06", 3),
    ("D6", "S2", "2025-02-06", "2025-02-11", 5),
    ("D4", "S5", "2025-03-01", "2025-03-11", 10),
    ("D7", "S5", "2025-04-01", "2025-05-01", 30),
    ("D1", "S2", "2025-05-02", None, None),
]

LEAD_COLUMNS = ["source_id", "title", "status", "owner_id", "source_name", "channel", "add_time", "update_time",
                "converted_deal_id", "removed_run"]
LEADS = [
    ("L1", "Lead one", "converted", "u1", "Web", "Paid", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z", "D7", None),
    ("L2", "Aging new", "new", "u1", "Web", "Paid", "2025-05-01T00:00:00Z", "2025-05-10T00:00:00Z", None, None),
    ("L3", "Fresh", "working", "u2", "Event", "Organic", "2025-06-20T00:00:00Z", None, None, None),
    ("L4", "Aging nurture", "nurturing", "u2", "Event", "Organic", "2025-04-01T00:00:00Z", None, None, None),
    ("L5", "Dead", "unqualified", "u2", "Web", "Paid", "2025-01-01T00:00:00Z", None, None, None),
    ("L6", "Lost its deal", "converted", "u1", "Event", "Organic", "2025-03-10T00:00:00Z", None, "D99", None),
    ("L7", "Says converted", "converted", None, None, None, "2025-06-05T00:00:00Z", "2025-06-30T00:00:00Z", None, None),
    ("L8", "Vanished", "new", "u1", "Web", "Paid", "2025-01-01T00:00:00Z", None, None, 2),
]

PERSONS = [
    ("p1", "Ann",
     [{"raw": "a@b.com", "normalized": "a@b.com"}, {"raw": "bad@", "problem": "not a valid email address"}],
     [{"raw": "123", "problem": "not a valid phone number"}], None),
    ("p2", "Bob", [{"raw": "x@y.com", "normalized": "x@y.com"}],
     [{"raw": "+34 600 000 000", "normalized": "+34600000000"}], None),
    ("p3", "Cid", [{"raw": "nope"}], [], None),
    ("p4", "Gone", [{"raw": "gone@", "problem": "not a valid email address"}], [], 2),
]


def build(path: Path) -> Path:
    """Write the fixture warehouse at ``path`` and return it."""
    with Warehouse.open(path) as wh:
        ensure_tables(wh)
        c = wh.conn
        c.execute("BEGIN")
        c.execute("INSERT INTO pipelines (source, source_id, name, position) VALUES (?, 'P', 'Sales', 1), "
                  "(?, 'Q', 'Renewals', 2)", (S, S))
        c.executemany("INSERT INTO stages (source, source_id, name, pipeline_id, position, probability, rotten_days) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)", [(S, *row) for row in STAGES])
        c.executemany("INSERT INTO users (source, source_id, name) VALUES (?, ?, ?)",
                      [(S, "u1", "Ana"), (S, "u2", "Ben")])
        c.executemany("INSERT INTO organizations (source, source_id, name) VALUES (?, ?, ?)",
                      [(S, "o1", "Acme"), (S, "o2", "ACME Inc"), (S, "o3", "Acmee")])
        c.executemany(f"INSERT INTO deals (source, {', '.join(DEAL_COLUMNS)}) VALUES (?{', ?' * len(DEAL_COLUMNS)})",
                      [(S, *row) for row in DEALS])
        c.executemany(f"INSERT INTO leads (source, {', '.join(LEAD_COLUMNS)}) VALUES (?{', ?' * len(LEAD_COLUMNS)})",
                      [(S, *row) for row in LEADS])
        c.executemany("INSERT INTO persons (source, source_id, name, emails, phones, removed_run) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      [(S, pid, name, json.dumps(emails), json.dumps(phones), removed)
                       for pid, name, emails, phones, removed in PERSONS])
        c.executemany("INSERT INTO deal_timeline (source, deal_id, seq, at, kind, old_value, new_value, evidence) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, 'api')", [(S, *row) for row in TIMELINE])
        c.executemany("INSERT INTO stage_spans (source, deal_id, stage_id, entered_at, left_at, seconds, evidence) "
                      "VALUES (?, ?, ?, ?, ?, ?, 'api')",
                      [(S, d, st, f"{a}T00:00:00Z", f"{b}T00:00:00Z" if b else None,
                        days * 86400.0 if days is not None else None) for d, st, a, b, days in SPANS])
        # Close date of D5 pushed twice (later, later); D1 once later and once earlier (not a push).
        c.executemany("INSERT INTO changes (run_id, source, entity, source_id, field, old_value, new_value, "
                      "changed_at) VALUES (1, ?, 'deal', ?, 'expected_close_date', ?, ?, ?)",
                      [(S, "D5", "2025-01-10", "2025-01-15", "2025-01-09T00:00:00Z"),
                       (S, "D5", "2025-01-15", "2025-01-20", "2025-01-14T00:00:00Z"),
                       (S, "D1", "2025-07-01", "2025-07-15", "2025-05-10T00:00:00Z")])
        c.execute("INSERT INTO stage_changes (source, source_id, deal_id, field, old_value, new_value, changed_at) "
                  "VALUES (?, 'c1', 'D1', 'expected_close_date', '2025-07-15', '2025-06-01', '2025-05-12T00:00:00Z')",
                  (S,))
        c.executemany("INSERT INTO conversions (lead_source, lead_id, deal_source, deal_id, converted_at, method, "
                      "confidence, reasons) VALUES (?, ?, ?, ?, NULL, 'explicit', 1.0, '[]')",
                      [(S, "L1", S, "D7"), (S, "L6", S, "D99")])
        c.executemany("INSERT INTO identity_links (entity, a_source, a_id, b_source, b_id, reason, score) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)", [
                          ("person", S, "p1", S, "p2", "email:x@y.com", 1.0),
                          ("person", S, "p1", "other", "p9", "email:a@b.com", 1.0),
                          ("organization", S, "o1", S, "o2", "name:acme", 1.0),
                          ("organization", S, "o1", S, "o3", "fuzzy_name:acme~acmee", 0.92),
                          ("organization", S, "o2", S, "o3", "fuzzy_name:acme inc~acmee", 0.85),
                      ])
        c.executemany("INSERT INTO timeline_violations (source, deal_id, rule, detail) VALUES (?, ?, ?, ?)", [
            (S, "D6", "stage_change_after_close", "stage changed to 'S2' after closing"),
            (S, "D4", "event_before_creation", "stage event before creation"),
            (S, "D9", "closed_before_created", "deleted deal: ignored"),
        ])
        c.execute("INSERT INTO reconcile_conflicts (kind, entity, source, source_id, detail) "
                  "VALUES ('status_without_evidence', 'lead', ?, 'L7', 'status says converted')", (S,))
        c.executemany("INSERT INTO run_counts (run_id, source, entity, read) VALUES (?, ?, 'deal', 10)",
                      [(1, S), (2, S), (2, "t")])
        c.executemany("INSERT INTO quarantine (run_id, source, entity, file, line, \"column\", value, reason) "
                      "VALUES (?, ?, 'deal', 'deals.csv', ?, 'Value', 'TBD', 'not an amount')",
                      [(1, S, 2), (1, S, 3), (2, S, 2), (2, S, 3), (2, S, 4)])
        c.execute("COMMIT")
    return path
