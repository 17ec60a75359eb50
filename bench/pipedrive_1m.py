"""Benchmark: a full Pipedrive sync of a 1M-deal sandbox, lists only, in a child process.

Prints the sync's wall time, the child's peak RSS (the connector + warehouse, not the sandbox) and what it
spent. No truth export (at 1M it takes longer than the sync); bench/pipedrive_sync.py checks correctness at
smaller sizes. Measured 2026-11-24: 719 s, peak RSS 187 MiB, 3,057 requests, 1,563,298 records.

Usage::

    python bench/pipedrive_1m.py [--deals 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crmsync.sandbox import RateLimitConfig, Sandbox


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deals", type=int, default=1_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="crmsync-pd1m-"))
    t0 = time.perf_counter()
    with Sandbox(seed=1, deals=args.deals, rate_limit=RateLimitConfig(burst=None, daily_budget=0)) as sb:
        ready = time.perf_counter() - t0
        conf = tmp / "c.toml"
        conf.write_text(f'[warehouse]\npath = "{tmp / "w.db"}"\n[sources.pd]\ntype = "pipedrive"\n'
                        f'base_url = "{sb.base_url}"\napi_token = "${{PD_TOKEN}}"\nhistory = false\n')
        t1 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "crmsync.cli", "sync", "--no-reconcile", "--json", "--config", str(conf)],
            env={**os.environ, "PD_TOKEN": sb.api_token}, capture_output=True, text=True, check=True,
        )
        seconds = time.perf_counter() - t1
    summary = json.loads(proc.stdout)
    print(json.dumps({
        "deals": args.deals,
        "sandbox_ready_s": round(ready, 1),
        "sync_s": round(seconds, 1),
        "child_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "records": summary["totals"]["read"],
        "spend": [n["message"] for s in summary["sources"] for n in s["notices"]],
    }, indent=2))


if __name__ == "__main__":
    main()
