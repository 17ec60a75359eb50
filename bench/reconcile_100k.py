"""Benchmark: ``crmsync reconcile`` on 100k leads × 100k deals vs. a read-everything baseline, in the same run.

Why a ratio: machines here are noisy, so seconds alone mean little. The baseline reads every row of
every table reconcile reads (leads, deals, persons, organizations, stages, stage_changes, changes,
captured_conversions) with ``fetchall``; the script prints reconcile beside it and as a multiple of it.

The warehouse is built directly (``Warehouse.open`` for the schema, then plain ``executemany``) with
realistic shapes, from a fixed seed:

* two sources, ``pd`` (Pipedrive-like: ~70% of records) and ``sheet`` (an export: the rest);
* 20k organizations: Spanish and English names made of common words (so many share a prefix such as
  ``Grupo``, ``Construcciones`` or ``Global``: the large fuzzy blocks a real CRM has), legal suffixes
  (S.A., S.L., S.A. de C.V., Inc., Ltd., GmbH…), ~8% near-duplicate spellings (a typo, a dropped
  accent, another suffix) and web domains, some shared;
* 50k persons with 1–2 emails and 0–2 phones as ``ContactPoint`` JSON dumps, ~5% of them repeated in
  the other source with the same email or phone;
* 100k leads and 100k deals on those persons/organizations (organization sizes skewed: a few big
  accounts own a couple of hundred leads and deals; ``--hot-org-share 0.1`` gives one account 10% of
  them, a stress test of the organization blocking); 30% of leads converted with explicit evidence (``source_lead_id``
  on the deal, or ``converted_deal_id`` on the lead in the export), a third of those also captured at
  sync time; statuses, values, titles from the lead;
* 2 pipelines × 5 stages per source and ~2 stage changes per deal.

Phase times are measured from outside by wrapping the reconcile module's functions (the rest is
DELETE + INSERT of the output tables); ``--profile`` prints cProfile's top functions instead.

Usage::

    python bench/reconcile_100k.py                     # 100k × 100k
    python bench/reconcile_100k.py --leads 20000 --deals 20000
    python bench/reconcile_100k.py --profile           # where the time goes
    python bench/reconcile_100k.py --keep /tmp/r.db    # keep the warehouse
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crmsync.config import parse_config
from crmsync.reconcile import conversions, identity, run_reconcile, timeline
from crmsync.warehouse import SPECS, Warehouse

NOW = datetime(2026, 10, 1, tzinfo=UTC)
SOURCES = ("pd", "sheet")

HEADS = ["Grupo", "Construcciones", "Global", "Soluciones", "Servicios", "Distribuciones", "Tecnologías",
         "Consultores", "Inversiones", "Comercial", "Industrias", "Transportes", "Green", "Blue", "North",
         "Smart", "Digital", "Alpha", "Nova", "Acme"]
WORDS = ["Ibérica", "Atlántico", "Mediterráneo", "Norte", "Sur", "Levante", "Andaluza", "Castilla", "Galicia",
         "Pacific", "Summit", "River", "Harbor", "Pioneer", "Vertex", "Orbit", "Quantum", "Horizon", "Cedar",
         "Maple", "Falcon", "Delta", "Sigma", "Aurora", "Peña", "Muñoz", "García", "López", "Martínez", "Ruiz",
         "Hernández", "Jiménez", "Smith", "Brown", "Taylor", "Wilson", "Evans", "Müller", "Schmidt", "Weber",
         "Logistics", "Energy", "Foods", "Systems", "Labs", "Partners", "Holdings", "Media", "Health", "Motors"]
SUFFIXES = ["S.A.", "S.L.", "S.A. de C.V.", "Inc.", "Ltd.", "GmbH", "LLC", "S.L.U.", "Corp.", "", "", ""]
FIRST = ["Ana", "Luis", "María", "Javier", "Lucía", "Carlos", "Elena", "Pablo", "Laura", "David", "John",
         "Emma", "Oliver", "Sophie", "James", "Olivia", "Lukas", "Hannah", "Marta", "Jorge"]
LAST = ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Müller", "Schneider", "Fischer", "Ruiz", "Díaz"]
PRODUCTS = ["Solar panels", "CRM licences", "Fleet renewal", "Office fit-out", "Cloud migration", "Training",
            "Maintenance contract", "Consulting", "Security audit", "Packaging line", "Website", "Insurance"]


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _typo(rng: random.Random, name: str) -> str:
    """A near-duplicate spelling: a swapped/dropped letter, an accent lost, case, or another suffix."""
    kind = rng.randrange(4)
    if kind == 0 and len(name) > 6:
        i = rng.randrange(1, len(name) - 2)
        return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    if kind == 1 and len(name) > 6:
        i = rng.randrange(1, len(name) - 1)
        return name[:i] + name[i + 1:]
    if kind == 2:
        return name.upper().replace("Í", "I").replace("É", "E").replace("Ñ", "N")
    return name.rsplit(",", 1)[0] + ", " + rng.choice(["S.A.", "Inc", "Ltd", "SL"])


def _insert(table: str, columns: tuple[str, ...]) -> str:
    """INSERT naming its columns: the model's leading fields, then the bookkeeping ones (``meta``)."""
    names = (*columns, "custom", "raw", "row_hash", "first_run", "last_run", "removed_run")
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def build(path: Path, n_leads: int, n_deals: int, n_persons: int, n_orgs: int, seed: int,
          hot_org_share: float = 0.0) -> dict[str, int]:
    rng = random.Random(seed)
    with Warehouse.open(path) as wh:
        run = wh.start_run("sync")
        wh.finish_run(run, "succeeded")
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    meta = (None, None, None, run, run, None)  # custom, raw, row_hash, first_run, last_run, removed_run

    def src() -> str:
        return "pd" if rng.random() < 0.7 else "sheet"

    # stages: 2 pipelines × 5 per source
    cats = ["prospecting", "qualification", "proposal", "negotiation", "closing"]
    stage_rows, stages = [], {s: [] for s in SOURCES}
    for s in SOURCES:
        for p in (1, 2):
            for pos, cat in enumerate(cats, 1):
                sid = f"{p}{pos}"
                stages[s].append(sid)
                stage_rows.append((s, sid, f"{cat.title()} {p}", str(p), pos, cat, str(pos * 20), 30, *meta))
    db.executemany(f"INSERT INTO stages VALUES ({', '.join('?' * 14)})", stage_rows)

    # organizations
    org_rows, orgs = [], {s: [] for s in SOURCES}
    base_names: list[str] = []
    for i in range(n_orgs):
        s = src()
        if base_names and rng.random() < 0.08:
            name = _typo(rng, rng.choice(base_names))
        else:
            words = [rng.choice(HEADS)] if rng.random() < 0.6 else []
            words += rng.sample(WORDS, rng.choice((1, 2, 2, 3)))
            suffix = rng.choice(SUFFIXES)
            name = " ".join(words) + (f", {suffix}" if suffix else "")
            base_names.append(name)
        slug = "".join(ch for ch in name.split(",")[0].lower() if ch.isascii() and ch.isalnum())[:20]
        domain = None if rng.random() < 0.3 else rng.choice([f"{slug}.com", f"https://www.{slug}.es/", slug + ".io"])
        oid = f"O{i}"
        orgs[s].append(oid)
        org_rows.append((s, oid, name, domain, None, None, iso(NOW - timedelta(days=rng.randrange(900))), None,
                         *meta))
    db.executemany(f"INSERT INTO organizations VALUES ({', '.join('?' * 14)})", org_rows)

    # persons
    person_rows, persons, contacts = [], {s: [] for s in SOURCES}, []
    for i in range(n_persons):
        s = src()
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if contacts and rng.random() < 0.05:  # the same person in the other source
            emails, phones = rng.choice(contacts)
            s = "sheet" if s == "pd" else "pd"
        else:
            emails = [{"raw": f"{first}.{last}{i}@example{rng.randrange(500)}.com",
                       "normalized": f"{first}.{last}{i}@example{rng.randrange(500)}.com".lower(),
                       "label": "work", "primary": True}]
            if rng.random() < 0.3:
                emails.append({"raw": f"{first}{i}@gmail.com", "normalized": f"{first}{i}@gmail.com".lower(),
                               "label": "home", "primary": False})
            phones = []
            for k in range(rng.choice((0, 1, 1, 2))):
                digits = f"6{rng.randrange(10**8):08d}"
                phones.append({"raw": f"{digits[:3]} {digits[3:5]} {digits[5:7]} {digits[7:]}",
                               "normalized": f"+34{digits}", "label": "mobile", "primary": k == 0})
            if rng.random() < 0.02:
                emails.append({"raw": "n/a@", "normalized": None, "label": None, "primary": False,
                               "problem": "invalid email"})
            contacts.append((emails, phones))
        pid = f"P{i}"
        persons[s].append(pid)
        org = rng.choice(orgs[s]) if orgs[s] and rng.random() < 0.8 else None
        person_rows.append((s, pid, f"{first} {last}", first, last, json.dumps(emails, ensure_ascii=False),
                            json.dumps(phones), org, "1", iso(NOW - timedelta(days=rng.randrange(900))), None,
                            *meta))
    db.executemany(f"INSERT INTO persons VALUES ({', '.join('?' * 17)})", person_rows)

    def skewed(pool: list[str]) -> str:
        """A few big accounts (index ~ u²: the largest owns hundreds of records), or one hot account."""
        if hot_org_share and rng.random() < hot_org_share:
            return pool[0]
        return pool[int(len(pool) * rng.random() ** 2)]

    # leads
    lead_rows, leads = [], []
    for i in range(n_leads):
        s = src()
        added = NOW - timedelta(days=rng.uniform(150, 850))
        person = rng.choice(persons[s]) if rng.random() < 0.9 else None
        org = skewed(orgs[s]) if rng.random() < 0.7 else None
        title = f"{rng.choice(PRODUCTS)} for {rng.choice(LAST)}"
        value = str(rng.randrange(1, 200) * 500)
        status = rng.choice(["new", "working", "qualified", "unqualified", "archived"])
        leads.append((s, f"L{i}", added, person, org, title, value, status))
    # deals: 30% of leads convert with explicit evidence, the rest of the deals stand alone
    deal_rows, change_rows, captured_rows, lead_converted = [], [], [], {}
    n_converted = int(min(n_leads, n_deals) * 0.3)
    converted = rng.sample(range(n_leads), n_converted)
    for i in range(n_deals):
        if i < n_converted:
            s, lead_id, l_added, person, org, title, value, _ = leads[converted[i]]
            added = l_added + timedelta(days=rng.uniform(0.1, 90))
            source_lead_id = lead_id if s == "pd" else None
            lead_converted[lead_id] = (f"D{i}", iso(added)) if s == "sheet" else None
            if s == "pd" and rng.random() < 0.33:
                captured_rows.append((s, f"{lead_id}:D{i}", lead_id, f"D{i}", iso(added), "explicit", 1.0,
                                      '["deal.source_lead_id"]', *meta))
        else:
            s = src()
            source_lead_id = None
            added = NOW - timedelta(days=rng.uniform(120, 850))
            person = rng.choice(persons[s]) if rng.random() < 0.85 else None
            org = skewed(orgs[s]) if rng.random() < 0.7 else None
            title = f"{rng.choice(PRODUCTS)} for {rng.choice(LAST)}"
            value = str(rng.randrange(1, 200) * 500)
        pipe = rng.choice((1, 2))
        path_len = rng.randrange(1, 6)
        at = added
        prev = None
        for k in range(path_len):
            at = at + timedelta(days=rng.uniform(0.5, 20))
            new = f"{pipe}{k + 1}"
            change_rows.append((s, f"D{i}-{k}", f"D{i}", "stage_id", prev, new, iso(at), "1",
                                "api" if s == "pd" else "export_history", *meta))
            prev = new
        roll = rng.random()
        status = "won" if roll < 0.3 else "lost" if roll < 0.55 else "open"
        close = at + timedelta(days=rng.uniform(0.5, 10)) if status != "open" else None
        if status != "open":
            change_rows.append((s, f"D{i}-s", f"D{i}", "status", "open", status, iso(close), "1",
                                "api" if s == "pd" else "export_history", *meta))
        deal_rows.append((
            s, f"D{i}", title, status, value, "EUR", str(pipe), None, prev, None, None, None, person, None, org, None,
            "1", None, None, iso(added), iso(close or at), iso(at), iso(close) if status == "won" else None,
            iso(close) if status == "lost" else None, iso(close) if close else None,
            "price" if status == "lost" else None, source_lead_id, *meta,
        ))
    db.executemany(_insert("deals", SPECS["deal"].columns[:27]), deal_rows)
    for s, lead_id, added, person, org, title, value, status in leads:
        conv = lead_converted.get(lead_id)
        if lead_id in lead_converted:
            status = "converted"
        lead_rows.append((s, lead_id, title, status, status, person, org, "1", value, "EUR", None, "Web", None,
                          "[]", iso(added), iso(added), conv[0] if conv else None, conv[1] if conv else None,
                          (1 if lead_id in lead_converted else 0) if s == "sheet" else None, *meta))
    db.executemany(_insert("leads", SPECS["lead"].columns[:19]), lead_rows)
    db.executemany(f"INSERT INTO stage_changes VALUES ({', '.join('?' * 15)})", change_rows)
    db.executemany(f"INSERT INTO captured_conversions VALUES ({', '.join('?' * 14)})", captured_rows)
    db.commit()
    db.close()
    per_org_leads: dict[tuple, int] = {}
    per_org_deals: dict[tuple, int] = {}
    for r in lead_rows:
        if r[6]:
            per_org_leads[(r[0], r[6])] = per_org_leads.get((r[0], r[6]), 0) + 1
    for r in deal_rows:
        if r[14]:
            per_org_deals[(r[0], r[14])] = per_org_deals.get((r[0], r[14]), 0) + 1
    return {"leads": len(lead_rows), "deals": len(deal_rows), "persons": len(person_rows),
            "organizations": len(org_rows), "stages": len(stage_rows), "stage_changes": len(change_rows),
            "captured_conversions": len(captured_rows), "explicit conversions planted": n_converted,
            "max leads of one org": max(per_org_leads.values(), default=0),
            "max deals of one org": max(per_org_deals.values(), default=0)}


def baseline(path: Path) -> float:
    """Read every row of every table reconcile reads."""
    db = sqlite3.connect(path)
    t0 = time.perf_counter()
    for table in ("leads", "deals", "persons", "organizations", "stages", "stage_changes", "changes",
                  "captured_conversions"):
        db.execute(f"SELECT * FROM {table}").fetchall()
    seconds = time.perf_counter() - t0
    db.close()
    return seconds


def timed_phases() -> tuple[dict[str, float], list]:
    """Wrap the reconcile phases (module attributes run_reconcile calls) to time them from outside."""
    phases: dict[str, float] = {}
    originals = []

    def wrap(module, name: str, label: str, consume: bool = False) -> None:
        fn = getattr(module, name)
        originals.append((module, name, fn))

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            if consume:
                out = list(out)
            phases[label] = phases.get(label, 0.0) + time.perf_counter() - t0
            return out

        setattr(module, name, timed)

    wrap(conversions, "find_conversions", "conversions (explicit + inferred + conflicts)")
    wrap(conversions, "rows", "conversion rows")
    wrap(timeline, "build", "timelines, spans, violations")
    wrap(identity, "person_links", "identity: persons (email/phone self-join)", consume=True)
    wrap(identity, "organization_links", "identity: organizations (name, domain, fuzzy)", consume=True)
    return phases, originals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--persons", type=int, default=None, help="default: half the leads")
    ap.add_argument("--orgs", type=int, default=None, help="default: a fifth of the leads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hot-org-share", type=float, default=0.0,
                    help="share of organization-bearing leads/deals given to one account (stress test)")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    ap.add_argument("--keep", type=Path, help="build the warehouse here and keep it")
    args = ap.parse_args(argv)
    persons = args.persons if args.persons is not None else args.leads // 2
    orgs = args.orgs if args.orgs is not None else args.leads // 5

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "reconcile.db"
        if path.exists():
            path.unlink()
        t0 = time.perf_counter()
        sizes = build(path, args.leads, args.deals, persons, orgs, args.seed, args.hot_org_share)
        built = time.perf_counter() - t0
        print(f"warehouse built in {built:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
        cfg = parse_config({"warehouse": {"path": str(path)}}, environ={})

        base = baseline(path)
        phases, originals = timed_phases()
        profiler = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        try:
            if profiler:
                profiler.enable()
            summary = run_reconcile(cfg)
            if profiler:
                profiler.disable()
        finally:
            for module, name, fn in originals:
                setattr(module, name, fn)
        total = time.perf_counter() - t0
        base_after = baseline(path)  # once more: caches are warm for both

        print(f"\nreconcile: {total:.2f} s total ({summary.seconds:.2f} s by its own clock)")
        for label, seconds in phases.items():
            print(f"  {label:<50} {seconds:7.2f} s")
        rest = total - sum(phases.values())
        print(f"  {'open, DELETE + INSERT output tables, run log':<50} {rest:7.2f} s")
        print("\nrows per output table:")
        for name, count in summary.counts.items():
            kinds = summary.by_kind.get(name)
            detail = f"  {kinds}" if kinds else ""
            print(f"  {name:<22} {count:>9,}{detail}")
        ref = min(base, base_after)
        print(f"\nbaseline (fetch every row of the 8 input tables): {base:.2f} s cold-ish, {base_after:.2f} s warm")
        print(f"reconcile / baseline: {total / ref:.1f}×")
        print(f"verdict: {'under' if total < 60 else 'OVER'} a minute ({total:.1f} s)")
        if profiler:
            print()
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
