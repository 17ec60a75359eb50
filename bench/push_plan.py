"""Benchmark: time and memory of planning a push over a large company (no request spent).

Syncs a seeded sandbox company (lists only) and plans a same-company normalization push over every
entity. Beside it, in the same run, a baseline reads every stored record of the same entities twice
(origin and target side: the least a plan must read). Prints the ratio and the RSS the plan added.

Usage::

    python bench/push_plan.py                 # 20,000 deals
    python bench/push_plan.py --deals 100000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from crmsync.config import parse_config
from crmsync.push import PushSettings, run_push
from crmsync.push.plan import ORDER
from crmsync.sandbox import Sandbox
from crmsync.sync import run_sync
from crmsync.view import StoredRecords
from crmsync.warehouse import Warehouse


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deals", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Sandbox(seed=3, deals=args.deals) as sb:
        cfg = parse_config({"warehouse": {"path": str(Path(tmp) / "wh.db")}, "sources": {"a": {
            "type": "pipedrive", "base_url": sb.base_url, "api_token": sb.api_token, "history": False}}})
        run_sync(cfg)
        t0 = time.perf_counter()
        records = 0
        with Warehouse.open(cfg.warehouse.path, write=False) as wh:
            stored = StoredRecords(wh.conn, "a")
            for _ in range(2):
                for entity in ORDER:
                    records += sum(1 for _ in stored.all(entity))
        baseline = time.perf_counter() - t0
        before = _rss_mib()
        t1 = time.perf_counter()
        report = run_push(cfg, PushSettings(origin="a", target="a", normalize=True), do_refresh=False)
        plan = time.perf_counter() - t1
        planned = sum(sum(c.values()) for c in report.counts.values())
        print(f"plan of {planned:,} records: {plan:.1f} s; baseline (read them twice): {baseline:.1f} s; "
              f"ratio {plan / baseline:.2f}x")
        print(f"peak RSS {before:.0f} MiB before the plan (sandbox in this process), {_rss_mib():.0f} MiB after: "
              f"+{(_rss_mib() - before) * 1024 / max(planned, 1):.2f} KiB per planned record")


if __name__ == "__main__":
    main()
