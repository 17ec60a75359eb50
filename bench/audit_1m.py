"""Benchmark: ``crmsync audit`` on a 1M-deal warehouse vs. a one-scan baseline, in the same run.

Why a ratio: machines here are noisy, so seconds alone mean little. The baseline is the cheapest
useful question one can ask of the same warehouse — one scan of every deal grouped by stage
(``SELECT stage_id, COUNT(*), SUM(CAST(value AS REAL)) FROM deals GROUP BY stage_id``) — and the
script prints the full audit (every check and metric) beside it and as a multiple of it.

The warehouse is built directly (``Warehouse.open`` + ``crmsync.reconcile.ensure_tables``, then plain
``executemany``) with realistic shapes: 2 pipelines × 5 ranked stages, deals with stage history
(``deal_timeline`` and ``stage_spans``, ~2.5 spans per deal), pushed close dates in ``changes``,
leads with conversions, persons with some invalid emails/phones, identity links, violations and
quarantined rows.

Usage::

    python bench/audit_1m.py                  # 1,000,000 deals (builds a ~1 GB file in a temp dir, ~3 min)
    python bench/audit_1m.py --deals 100000   # quicker
    python bench/audit_1m.py --keep /tmp/big.db   # keep the warehouse for `crmsync audit --db /tmp/big.db`
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from crmsync.audit import AuditConfig, Filters, run_audit
from crmsync.reconcile import ensure_tables
from crmsync.warehouse import SPECS, Warehouse

SRC = "bench"
PIPELINES = {"1": "Sales", "2": "Renewals"}
STAGE_NAMES = ["Prospecting", "Contact made", "Qualification", "Proposal made", "Negotiation"]
CATEGORIES = ["prospecting", "contact", "qualification", "proposal", "negotiation"]
CURRENCIES = ["EUR", "EUR", "EUR", "USD", "USD", "GBP"]
T0 = datetime(2023, 1, 1)  # naive UTC: isoformat() is ~5x cheaper than strftime, and the build makes ~7M times


def iso(t: datetime) -> str:
    return t.isoformat() + "Z"


def _insert(conn, table: str, columns: list[str], rows) -> int:
    cols = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" * len(columns))
    cur = conn.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)
    return cur.rowcount


def build(path: Path, deals: int, seed: int = 7) -> dict[str, int]:
    rnd = random.Random(seed)
    uniform = rnd.random

    def randint(a: int, b: int) -> int:  # random.randint costs ~4x more; uniformity is all we need here
        return a + int(uniform() * (b - a + 1))
    counts: dict[str, int] = {}
    with Warehouse.open(path) as wh:
        ensure_tables(wh)
        conn = wh.conn
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO runs (id, command, status, started_at) VALUES (1, 'sync', 'succeeded', ?)",
                     (iso(T0),))
        conn.execute("INSERT INTO run_counts (run_id, source, entity, read, inserted, updated, unchanged, "
                     "quarantined, removed) VALUES (1, ?, 'deal', ?, ?, 0, 0, 500, 0)", (SRC, deals, deals))
        _insert(conn, "pipelines", ["source", "source_id", "name", "position", "first_run", "last_run"],
                [(SRC, pid, name, int(pid), 1, 1) for pid, name in PIPELINES.items()])
        stages = []
        for pid in PIPELINES:
            for i, name in enumerate(STAGE_NAMES):
                stages.append((SRC, f"{pid}-{i + 1}", name, pid, i + 1, CATEGORIES[i], 10 + 20 * i,
                               30 if i < 3 else None, 1, 1))
        _insert(conn, "stages", ["source", "source_id", "name", "pipeline_id", "position", "category",
                                 "probability", "rotten_days", "first_run", "last_run"], stages)
        _insert(conn, "users", ["source", "source_id", "name", "first_run", "last_run"],
                [(SRC, str(u), f"User {u}", 1, 1) for u in range(1, 51)])
        n_people = max(deals // 10, 100)
        _insert(conn, "organizations", ["source", "source_id", "name", "first_run", "last_run"],
                ((SRC, str(o), f"Org {o // 2} Ltd", 1, 1) for o in range(n_people // 2)))
        _insert(conn, "persons", ["source", "source_id", "name", "emails", "phones", "first_run", "last_run"],
                ((SRC, str(p), f"Person {p}",
                  json.dumps([{"raw": f"p{p}@x.com", "normalized": f"p{p}@x.com"}] if p % 50 else
                             [{"raw": f"p{p}@x", "problem": "not a valid email address"}]),
                  json.dumps([{"raw": "555", "problem": "not a valid phone number"}] if p % 70 == 0 else []),
                  1, 1) for p in range(n_people)))
        _insert(conn, "identity_links", ["entity", "a_source", "a_id", "b_source", "b_id", "reason", "score"],
                (("organization", SRC, str(o), SRC, str(o + 1), f"name:org {o // 2}", 1.0)
                 for o in range(0, n_people // 2 - 1, 2)))

        deal_cols = ["source", "source_id", "title", "status", "value", "currency", "pipeline_id", "stage_id",
                     "stage_name", "stage_category", "probability", "person_id", "org_id", "owner_id",
                     "expected_close_date", "add_time", "update_time", "stage_change_time", "won_time", "lost_time",
                     "close_time", "lost_reason", "source_lead_id", "first_run", "last_run"]
        assert set(deal_cols) - {"first_run", "last_run"} <= set(SPECS["deal"].columns)
        deal_rows, timeline, spans, changes, violations = [], [], [], [], []
        leads, conversions = [], []
        for i in range(deals):
            did = str(i + 1)
            pid = "1" if uniform() < 0.8 else "2"
            added = T0 + timedelta(minutes=int(uniform() * 3 * 365 * 24 * 60))
            status = rnd.choices(["open", "won", "lost", "deleted"], [40, 30, 25, 5])[0]
            top = randint(1, 5)
            t, seq, entered = added, 1, []
            timeline.append((SRC, did, seq, iso(added), "created", None, None, None, "milestone", None))
            prev = None
            for k in range(1, top + 1):
                if k > 1 and uniform() < 0.4:
                    continue  # skipped a stage: no event
                t = t + timedelta(hours=randint(4, 24 * 40))
                seq += 1
                timeline.append((SRC, did, seq, iso(t), "stage", prev, f"{pid}-{k}", CATEGORIES[k - 1], "api", None))
                entered.append((k, t))
                prev = f"{pid}-{k}"
            if uniform() < 0.03 and len(entered) > 1:  # a move back
                t = t + timedelta(days=3)
                seq += 1
                k = entered[0][0]
                timeline.append((SRC, did, seq, iso(t), "stage", prev, f"{pid}-{k}", CATEGORIES[k - 1], "api", None))
                entered.append((k, t))
            closed = t + timedelta(days=randint(1, 30)) if status in ("won", "lost") else None
            for j, (k, at) in enumerate(entered):
                left = entered[j + 1][1] if j + 1 < len(entered) else closed
                secs = (left - at).total_seconds() if left else None
                spans.append((SRC, did, f"{pid}-{k}", STAGE_NAMES[k - 1], CATEGORIES[k - 1], iso(at),
                               iso(left) if left else None, secs, "api"))
            cur = entered[-1][0] if entered else 1
            value = None if uniform() < 0.02 else f"{randint(5, 2000) * 50}.00"
            expected = (added + timedelta(days=randint(10, 120))).date().isoformat()
            if uniform() < 0.05:
                first = expected
                for _ in range(randint(1, 3)):
                    later = (datetime.fromisoformat(first) + timedelta(days=30)).date().isoformat()
                    changes.append((1, SRC, "deal", did, "expected_close_date", first, later, iso(t)))
                    first = later
                expected = first
            if uniform() < 0.002:
                violations.append((SRC, did, "event_before_creation", "stage event before creation"))
            lead_id = None
            if uniform() < 0.3:
                lead_id = f"L{did}"
                lead_added = added - timedelta(days=randint(1, 60))
                leads.append((SRC, lead_id, f"Lead {did}", "converted", rnd.choice(["Web", "Referral", "Event"]),
                              rnd.choice(["Organic", "Paid", "Partner"]), str(randint(1, 50)), iso(lead_added),
                              iso(added), did, iso(added), 1, 1))
                conversions.append((SRC, lead_id, SRC, did, iso(added), "explicit", 1.0, "[]",
                                    (added - lead_added).total_seconds() / 86400))
            deal_rows.append((
                SRC, did, f"Deal {did}", status, value, rnd.choice(CURRENCIES), pid, f"{pid}-{cur}",
                STAGE_NAMES[cur - 1], CATEGORIES[cur - 1], str(10 + 20 * (cur - 1) + (30 if uniform() < 0.02
                                                                                       else 0)),
                str(int(uniform() * n_people)) if uniform() > 0.01 else None, str(int(uniform() * (n_people // 2))),
                str(randint(1, 50)) if uniform() > 0.01 else None, expected, iso(added), iso(t), iso(t),
                iso(closed) if status == "won" else None, iso(closed) if status == "lost" else None,
                iso(closed) if closed else None,
                rnd.choice(["Price", "Timing", None]) if status == "lost" else None, lead_id, 1, 1,
            ))
        for j in range(deals // 2):  # unconverted leads
            lead_added = T0 + timedelta(minutes=int(uniform() * 3 * 365 * 24 * 60))
            leads.append((SRC, f"U{j}", f"Open lead {j}", rnd.choice(["new", "working", "nurturing", "unqualified"]),
                          rnd.choice(["Web", "Referral", "Event"]), rnd.choice(["Organic", "Paid", "Partner"]),
                          str(randint(1, 50)), iso(lead_added), iso(lead_added), None, None, 1, 1))
        counts["deals"] = _insert(conn, "deals", deal_cols, deal_rows)
        counts["deal_timeline"] = _insert(conn, "deal_timeline", ["source", "deal_id", "seq", "at", "kind",
                                                                   "old_value", "new_value", "stage_category",
                                                                   "evidence", "actor_id"], timeline)
        counts["stage_spans"] = _insert(conn, "stage_spans", ["source", "deal_id", "stage_id", "stage_name",
                                                               "stage_category", "entered_at", "left_at", "seconds",
                                                               "evidence"], spans)
        counts["changes"] = _insert(conn, "changes", ["run_id", "source", "entity", "source_id", "field",
                                                      "old_value", "new_value", "changed_at"], changes)
        counts["timeline_violations"] = _insert(conn, "timeline_violations", ["source", "deal_id", "rule", "detail"],
                                                violations)
        counts["leads"] = _insert(conn, "leads", ["source", "source_id", "title", "status", "source_name", "channel",
                                                  "owner_id", "add_time", "update_time", "converted_deal_id",
                                                  "converted_at", "first_run", "last_run"], leads)
        counts["conversions"] = _insert(conn, "conversions", ["lead_source", "lead_id", "deal_source", "deal_id",
                                                              "converted_at", "method", "confidence", "reasons",
                                                              "days_to_convert"], conversions)
        counts["quarantine"] = _insert(conn, "quarantine", ["run_id", "source", "entity", "file", "line", "column",
                                                            "value", "reason"],
                                       ((1, SRC, "deal", "deals.csv", n, "Value", "TBD", "not an amount")
                                        for n in range(500)))
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    return counts


def baseline(path: Path) -> float:
    import sqlite3

    conn = sqlite3.connect(path)
    t0 = time.perf_counter()
    conn.execute("SELECT stage_id, COUNT(*), SUM(CAST(value AS REAL)) FROM deals GROUP BY stage_id").fetchall()
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the warehouse at this path and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "audit_bench.db"
        if not path.exists():
            t0 = time.perf_counter()
            counts = build(path, args.deals)
            print(f"built {path} in {time.perf_counter() - t0:.1f}s: "
                  + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
        baseline(path)  # warm the page cache for both sides alike
        base = min(baseline(path) for _ in range(3))
        filters = Filters.make(as_of="2026-01-01")
        report = run_audit(path, AuditConfig(), filters)
        audit = report.seconds
        fired = {c.id: c.count for c in report.checks if c.fired}
        print(f"audit: {audit:.2f}s for {len(report.checks)} checks + all metrics "
              f"({sum(fired.values()):,} offending records in {len(fired)} fired checks)")
        print(f"baseline (one GROUP BY stage_id scan of deals): {base:.3f}s")
        print(f"ratio audit / baseline: {audit / base:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
