"""Run a well-known third-party client, singer-io's tap-pipedrive, against the sandbox.

tap-pipedrive is not a crmsync dependency: install it in a throwaway environment first,
then point this script at that environment's python. The tap's base URL is a module
constant (``https://api.pipedrive.com``), so it is replaced before the tap runs; nothing
else is changed. The script selects every stream, runs discovery and a full sync, and
prints records per stream plus the sandbox's per-endpoint spend.

Example::

    python -m venv /tmp/tapenv && /tmp/tapenv/bin/pip install tap-pipedrive==2.1.0
    python bench/sandbox_tap_pipedrive.py --python /tmp/tapenv/bin/python --deals 300
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import subprocess
import tempfile

from crmsync.sandbox import RateLimitConfig, Sandbox


def run_tap(python: str, deals: int, seed: int = 1, timeout: float = 600) -> dict:
    """Sync every tap-pipedrive stream from a fresh sandbox; returns counts, exit code and spend."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        Sandbox(seed=seed, deals=deals, rate_limit=RateLimitConfig(burst=40)) as sb,
    ):
        d = pathlib.Path(tmp)
        (d / "config.json").write_text(json.dumps({"api_token": sb.api_token, "start_date": "2020-01-01T00:00:00Z"}))
        boot = (
            f"import tap_pipedrive.tap as t; t.BASE_URL = {sb.base_url!r}; from tap_pipedrive.cli import main; main()"
        )
        base = [python, "-c", boot, "--config", str(d / "config.json")]
        disc = subprocess.run([*base, "--discover"], capture_output=True, text=True, timeout=timeout, check=True)
        catalog = json.loads(disc.stdout)
        for stream in catalog["streams"]:
            for m in stream["metadata"]:
                if m["breadcrumb"] == []:
                    m["metadata"]["selected"] = True
        (d / "catalog.json").write_text(json.dumps(catalog))
        sync = subprocess.run(
            [*base, "--catalog", str(d / "catalog.json")], capture_output=True, text=True, timeout=timeout
        )
        counts: collections.Counter = collections.Counter()
        for line in sync.stdout.splitlines():
            msg = json.loads(line)
            if msg.get("type") == "RECORD":
                counts[msg["stream"]] += 1
        usage = {ep: e for c in sb.usage_report()["clients"] for ep, e in c["endpoints"].items()}
        truth = sb.export_truth()
        return {
            "returncode": sync.returncode,
            "records": dict(counts),
            "endpoints": usage,
            "stderr_tail": sync.stderr[-2000:] if sync.returncode else "",
            "expected_deals": sum(1 for x in truth["deals"] if not x["is_archived"]),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", required=True, help="python of an environment with tap-pipedrive installed")
    ap.add_argument("--deals", type=int, default=300)
    args = ap.parse_args()
    print(json.dumps(run_tap(args.python, args.deals), indent=2))


if __name__ == "__main__":
    main()
