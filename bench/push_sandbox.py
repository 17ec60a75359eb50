"""Benchmark: requests per changed record and throughput of a migration under the sandbox's rate limits.

Migrates a seeded sandbox company A into an empty company B (both local, real HTTP, Pipedrive's
burst limit of the sandbox on), then re-runs it, then pushes normalized emails/phones back into A.
It prints, from the sandboxes' own usage counters (what Pipedrive would bill):

* write requests per changed record (target: 1 — no search per record, the ID map answers it);
* reads spent to refresh the target before planning (list pages, not per record);
* throughput in writes/s, beside a baseline measured in the same run: a bare loop POSTing as many
  persons with ``requests`` (no plan, no ledger, no safety) into a third empty company, so
  the ratio shows what intents, ID map and pre-images cost.

Usage::

    python bench/push_sandbox.py                  # 300 deals
    python bench/push_sandbox.py --deals 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests

from crmsync.config import parse_config
from crmsync.push import PushSettings, run_push
from crmsync.sandbox import RateLimitConfig, Sandbox
from crmsync.sync import run_sync


def _usage(sb: Sandbox) -> tuple[int, int]:
    reads = writes = 0
    for client in sb.usage_report()["clients"]:
        for name, e in client["endpoints"].items():
            if name.startswith("GET"):
                reads += e["requests"]
            else:
                writes += e["requests"]
    return reads, writes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deals", type=int, default=300)
    ap.add_argument("--burst", type=int, default=80, help="sandbox requests per 2 s per token")
    args = ap.parse_args()
    limits = RateLimitConfig(burst=args.burst)
    with tempfile.TemporaryDirectory() as tmp, \
            Sandbox(seed=3, deals=args.deals, rate_limit=limits) as a, \
            Sandbox(seed=4, deals=0, persons=0, orgs=0, leads=0, rate_limit=limits) as b, \
            Sandbox(seed=4, deals=0, persons=0, orgs=0, leads=0, rate_limit=limits) as c:
        cfg = parse_config({"warehouse": {"path": str(Path(tmp) / "wh.db")}, "sources": {
            "a": {"type": "pipedrive", "base_url": a.base_url, "api_token": a.api_token},
            "b": {"type": "pipedrive", "base_url": b.base_url, "api_token": b.api_token, "history": False}}})
        run_sync(cfg, only=["a"], reconcile=True)
        settings = PushSettings(origin="a", target="b")
        t0 = time.perf_counter()
        report = run_push(cfg, settings, apply=True, command="migrate", notes=True)
        seconds = time.perf_counter() - t0
        reads, writes = _usage(b)
        changed = sum(n for counts in report.counts.values() for k, n in counts.items()
                      if k in ("create", "update", "delete"))
        refused = sum(c.get("rejected", 0) for c in report.counts.values())
        keys = writes - changed - refused
        print(f"migrate {args.deals} deals: {changed:,} records and fields written with {writes:,} write requests "
              f"= {writes / max(changed, 1):.3f} requests per changed record (target 1; the rest: {keys} to create "
              f"the crmsync key fields, {refused} refused by the API); {reads:,} read requests for the target refresh")
        print(f"  {seconds:.1f} s, {changed / seconds:,.0f} records/s under a burst limit of {args.burst}/2s")
        r0 = _usage(b)
        t1 = time.perf_counter()
        again = run_push(cfg, settings, apply=True, command="migrate", notes=True)
        r1 = _usage(b)
        print(f"re-run: {r1[1] - r0[1]} write requests, {r1[0] - r0[0]} read requests, "
              f"{time.perf_counter() - t1:.1f} s; actions {sorted({k for c in again.counts.values() for k in c})}")
        cfg_a = parse_config({"warehouse": {"path": str(Path(tmp) / "wh.db")}, "sources": {
            "a": {"type": "pipedrive", "base_url": a.base_url, "api_token": a.api_token}}})
        a0 = _usage(a)
        norm = run_push(cfg_a, PushSettings(origin="a", target="a", entities=("person",), normalize=True),
                        apply=True)
        a1 = _usage(a)
        updated = norm.counts.get("person", {}).get("update", 0)
        print(f"normalize persons in place: {updated} updated with {a1[1] - a0[1]} write requests")

        bodies = [{"name": f"Person {i}", "emails": [{"value": f"p{i}@example.com", "primary": True}]}
                  for i in range(writes)]
        session = requests.Session()
        session.headers["x-api-token"] = c.api_token
        t2 = time.perf_counter()
        for body in bodies:
            while True:
                r = session.post(f"{c.base_url}/api/v2/persons", json=body)
                if r.status_code != 429:
                    break
                time.sleep(float(r.headers.get("x-ratelimit-reset", "1")))
        raw_rate = len(bodies) / (time.perf_counter() - t2)
        ours = writes / seconds
        print(f"baseline (bare POST loop of as many writes, no plan/ledger/safety): {raw_rate:,.1f} writes/s; "
              f"crmsync migrate {ours:,.1f} writes/s (incl. refresh and planning); ratio {ours / raw_rate:.2f}x")


if __name__ == "__main__":
    main()
