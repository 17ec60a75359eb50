"""A Pipedrive sync killed with SIGKILL mid-way leaves a valid warehouse; the next run converges to the truth."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

from crmsync.config import parse_config
from crmsync.sandbox import RateLimitConfig, Sandbox
from crmsync.sync import run_sync

from .conftest import stored
from .truthcheck import compare

SCRIPT = """
import sys
import crmsync.source
from crmsync.config import parse_config
from crmsync.connectors.pipedrive import PipedriveSource
from crmsync.sync import run_sync

class EP:
    def load(self):
        return PipedriveSource

crmsync.source.connector_types = lambda: {"pipedrive": EP()}
base, token, db = sys.argv[1:4]
run_sync(parse_config({"warehouse": {"path": db, "batch_size": 100},
                       "sources": {"pd": {"type": "pipedrive", "base_url": base, "api_token": token}}}))
"""


def test_sync_killed_mid_way_then_rerun_converges_to_the_truth(tmp_path):
    db = tmp_path / "wh.db"
    with Sandbox(seed=11, deals=300, leads=60, rate_limit=RateLimitConfig(burst=60)) as sb:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, sb.base_url, sb.api_token, str(db)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    (n,) = conn.execute("SELECT COUNT(*) FROM stage_changes").fetchone()
                if n >= 100:
                    break
            except sqlite3.OperationalError:
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        cfg = parse_config({"warehouse": {"path": str(db)}, "sources": {"pd": {
            "type": "pipedrive", "base_url": sb.base_url, "api_token": sb.api_token}}})
        sb.limiter.config.burst = 2000
        assert run_sync(cfg).status == "succeeded"
        assert compare(sb.export_truth(), stored(tmp_path)) == []
        with sqlite3.connect(db) as conn:
            statuses = [s for (s,) in conn.execute("SELECT status FROM runs ORDER BY id")]
        assert statuses == ["interrupted", "succeeded"]
