"""End to end over real HTTP: crmsync.sync.run_sync with a parsed config against the sandbox."""

from __future__ import annotations

import pytest

from crmsync.sandbox import RateLimitConfig, Sandbox
from crmsync.sync import run_sync

from .conftest import make_config, stored
from .truthcheck import compare

FAST = RateLimitConfig(burst=2000)


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """One sandbox and warehouse after a full sync (shared by the read-only checks below)."""
    tmp = tmp_path_factory.mktemp("full")
    with Sandbox(seed=7, deals=400, leads=150, rate_limit=FAST) as sb:
        cfg = make_config(sb, tmp)
        summary = run_sync(cfg)
        yield sb, tmp, cfg, summary


def test_full_sync_equals_sandbox_truth(synced):
    sb, tmp, _, summary = synced
    assert summary.status == "succeeded", summary.sources
    assert compare(sb.export_truth(), stored(tmp)) == []
