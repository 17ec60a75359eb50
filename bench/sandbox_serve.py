"""Benchmark: start a large sandbox (``sandbox serve`` in a child process) and page through v2 deals.

Reports the time until the first page is served (process start, imports, bind, first
request), the time until the filter index is ready, the server's RSS, and pages/s of
cursor paging through ``/api/v2/deals`` over loopback for a bounded time: first while
the index builds (id-ordered scan), then on the index (by id, and by update_time with
``updated_since`` as an incremental sync does). The client runs in this process, the
server in its own, so they do not share a GIL.

Example::

    python bench/sandbox_serve.py --deals 1000000 --seconds 15 --limit 500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import requests


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def page_for(http: requests.Session, url: str, limit: int, seconds: float, params: dict | None = None) -> dict:
    pages = deals = 0
    cursor = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        p = {"limit": limit, **(params or {}), **({"cursor": cursor} if cursor else {})}
        body = http.get(url, params=p).json()
        pages += 1
        deals += len(body["data"])
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
    dt = time.monotonic() - t0
    return {"pages": pages, "deals": deals, "seconds": round(dt, 2), "pages_per_s": round(pages / dt, 1),
            "deals_per_s": round(deals / dt)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deals", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=15.0, help="paging time per phase")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--index-timeout", type=float, default=180.0)
    args = ap.parse_args()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmsync.sandbox", "serve", "--port", "0", "--deals", str(args.deals),
         "--seed", str(args.seed), "--burst", "0", "--daily-budget", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        base, token = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        printed = time.monotonic() - t0
        http = requests.Session()
        http.headers["x-api-token"] = token
        url = base + "/api/v2/deals"
        http.get(url, params={"limit": 1}).raise_for_status()
        report = {"deals": args.deals, "limit": args.limit, "url_printed_s": round(printed, 3),
                  "first_page_s": round(time.monotonic() - t0, 3), "rss_at_first_page_mb": rss_mb(proc.pid)}
        report["sizes"] = http.get(base + "/_sandbox/info").json()["sizes"]
        report["paging_while_indexing"] = page_for(http, url, args.limit, args.seconds)
        while not http.get(base + "/_sandbox/info").json()["index_ready"]:
            if time.monotonic() - t0 > args.index_timeout:
                raise SystemExit("index not ready in time")
            time.sleep(0.5)
        report["index_ready_s"] = round(time.monotonic() - t0, 1)
        report["rss_index_ready_mb"] = rss_mb(proc.pid)
        report["paging_by_id"] = page_for(http, url, args.limit, args.seconds)
        report["paging_by_update_time_since"] = page_for(
            http, url, args.limit, args.seconds, {"sort_by": "update_time", "updated_since": "2026-01-01T00:00:00Z"})
        report["rss_end_mb"] = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
