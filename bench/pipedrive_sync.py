"""Benchmark: requests, tokens and wall time of Pipedrive syncs against the local sandbox.

For a full sync, a no-change re-run and an incremental run after simulated activity it
prints what the connector spent (from the sandbox's own usage counters, i.e. what
Pipedrive would bill) beside the minimum any tool must spend:

* lists: ⌈N/500⌉ pages per list endpoint (deals incl. deleted, archived deals, persons,
  organizations, leads, archived leads), at least one page each;
* metadata: users, pipelines, stages, deal/person/organization fields, lead fields, lead labels;
* history: one changelog request per deal with a stage/status/pipeline/lost-reason change
  (on a full sync: every deal that has one; incrementally: every deal that got one).

Also: a baseline in the same run that fetches the same deal pages and does json.loads +
sqlite executemany (the floor of "download and store"), and peak RSS of this process.

Usage::

    python bench/pipedrive_sync.py                     # 2,000 deals, 500 leads
    python bench/pipedrive_sync.py --deals 10000 --leads 2500
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from crmsync.connectors.pipedrive import PipedriveSource
from crmsync.connectors.pipedrive.history import TRACKED

import crmsync.source
from crmsync.config import parse_config
from crmsync.sandbox import RateLimitConfig, Sandbox
from crmsync.sync import run_sync

METADATA = 8  # users, pipelines, stages, dealFields, personFields, organizationFields, leadFields, leadLabels


class _EP:
    def load(self):
        return PipedriveSource


def _register() -> None:
    original = crmsync.source.connector_types
    crmsync.source.connector_types = lambda: {**original(), "pipedrive": _EP()}


def _usage(sb: Sandbox) -> dict:
    clients = sb.usage_report()["clients"]
    ep: dict[str, int] = {}
    for c in clients:
        for name, e in c["endpoints"].items():
            ep[name] = ep.get(name, 0) + e["requests"]
    return {"requests": sum(c["requests"] for c in clients), "tokens": sum(c["tokens"] for c in clients),
            "history": ep.get("GET /api/v1/deals/{id}/changelog", 0), "endpoints": ep}


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss of a child also counts its parent's size at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _pages(n: int) -> int:
    return max(1, math.ceil(n / 500))


def _minimum_full(truth: dict, with_history: bool = True) -> dict:
    deals = truth["deals"]
    live = sum(1 for d in deals if not d["is_archived"])
    archived = len(deals) - live
    persons = sum(1 for p in truth["persons"] if not p["is_deleted"])
    orgs = sum(1 for o in truth["organizations"] if not o["is_deleted"])
    leads = [x for x in truth["leads"] if not x["is_deleted"]]
    alive = sum(1 for x in leads if not x["is_archived"])
    lists = (_pages(live) + _pages(archived) + _pages(persons) + _pages(orgs) + _pages(alive)
             + _pages(len(leads) - alive))
    history = len({e["item_id"] for e in truth["events"] if e["field_key"] in TRACKED}) if with_history else 0
    return {"requests": lists + METADATA + history, "lists": lists, "history": history,
            "tokens": None}


def _minimum_incremental(truth: dict, mark: int, with_history: bool = True) -> dict:
    journal = truth["journal"][mark:]
    changed = {e["entity"]: set() for e in journal}
    for e in journal:
        changed[e["entity"]].add(e["item_id"])
    history = len({e["item_id"] for e in journal if e["entity"] == "deal" and e["field_key"] in TRACKED})
    history = history if with_history else 0
    lists = 6  # at least one page per list endpoint (all changes fit in one page here)
    return {"requests": lists + METADATA + history, "lists": lists, "history": history, "tokens": None}


def _baseline(sb: Sandbox, path: Path) -> float:
    """Fetch the same deal pages (v2, 500 per page) + json.loads + executemany; seconds."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE deals (id INTEGER PRIMARY KEY, body TEXT)")
    s = requests.Session()
    s.headers["x-api-token"] = sb.api_token
    for endpoint in ("/api/v2/deals", "/api/v2/deals/archived"):
        cursor = None
        while True:
            params = {"limit": 500, "status": "open,won,lost,deleted", "include_fields": "source_lead_id"}
            if cursor:
                params["cursor"] = cursor
            body = json.loads(s.get(sb.base_url + endpoint, params=params, timeout=60).content)
            with conn:
                conn.executemany("INSERT OR REPLACE INTO deals VALUES (?, ?)",
                                 [(d["id"], json.dumps(d)) for d in body["data"]])
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                break
    conn.close()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=2000)
    ap.add_argument("--leads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--events", type=int, default=200, help="simulated changes before the incremental run")
    ap.add_argument("--burst", type=int, default=100, help="sandbox burst limit per 2 s (Premium: 100)")
    ap.add_argument("--history-backfill", default="all", choices=("all", "moved"))
    ap.add_argument("--no-history", action="store_true", help="history = false (lists only; for big N)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--in-process", action="store_true", help="sync in this process (RSS then includes the sandbox)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    _register()
    if args.child:
        from crmsync.config import Config

        status = run_sync(Config.model_validate(json.loads(sys.stdin.read()))).status
        print(status, _peak_rss_mb())
        return 0
    leads = args.leads if args.leads is not None else args.deals // 4
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            Sandbox(seed=args.seed, deals=args.deals, leads=leads, rate_limit=RateLimitConfig(burst=args.burst)) as sb:
        cfg = parse_config({"warehouse": {"path": str(Path(tmp) / "wh.db")}, "sources": {"pd": {
            "type": "pipedrive", "base_url": sb.base_url, "api_token": sb.api_token,
            "history_backfill": args.history_backfill, "history": not args.no_history}}})

        def phase(name: str, minimum: dict) -> None:
            sb.usage.reset()
            t0 = time.perf_counter()
            rss = ""
            if args.in_process:
                status = run_sync(cfg).status
            else:  # a child process, so its peak RSS is the connector's alone (not the sandbox's)
                child = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True,
                                       input=json.dumps(cfg.model_dump(mode="json")))  # token via stdin, not argv
                status, _, rss = (child.stdout.strip() or f"crashed: {child.stderr[-300:]}").partition(" ")
            seconds = time.perf_counter() - t0
            u = _usage(sb)
            rows.append({"phase": name, "status": status, "rss_mb": rss if not args.in_process else None,
                         "requests": u["requests"], "tokens": u["tokens"],
                         "history_requests": u["history"], "min_requests": minimum["requests"],
                         "min_history": minimum["history"], "seconds": round(seconds, 2)})

        phase("full", _minimum_full(sb.export_truth(), not args.no_history))
        phase("no-change", {"requests": 6 + METADATA, "history": 0})
        mark = len(sb.export_truth()["journal"])
        sb.simulate(events=args.events, hours=24)
        phase("incremental", _minimum_incremental(sb.export_truth(), mark, not args.no_history))
        sb.limiter.reset()
        base = _baseline(sb, Path(tmp) / "baseline.db")
    child_rss = [float(r["rss_mb"]) for r in rows if r["rss_mb"]]
    rss_mb = _peak_rss_mb() if args.in_process else max(child_rss, default=0.0)
    out = {"deals": args.deals, "leads": leads, "burst_per_2s": args.burst, "history_backfill": args.history_backfill,
           "phases": rows, "baseline_deal_pages_seconds": round(base, 2), "peak_rss_mb_sync": round(rss_mb, 1)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"Pipedrive sync vs minimum — {args.deals} deals, {leads} leads, sandbox burst {args.burst}/2s, "
          f"history_backfill={args.history_backfill}")
    print(f"{'phase':<12} {'status':<10} {'requests':>9} {'minimum':>8} {'history':>8} {'min hist':>9} "
          f"{'tokens':>8} {'seconds':>8} {'RSS MB':>7}")
    for r in rows:
        print(f"{r['phase']:<12} {r['status']:<10} {r['requests']:>9} {r['min_requests']:>8} "
              f"{r['history_requests']:>8} {r['min_history']:>9} {r['tokens']:>8} {r['seconds']:>8} "
              f"{r['rss_mb'] or '-':>7}")
    print(f"baseline (same deal pages, json.loads + executemany, no history): {base:.2f} s; "
          f"peak RSS of the sync process{' (+ sandbox)' if args.in_process else ''}: {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
