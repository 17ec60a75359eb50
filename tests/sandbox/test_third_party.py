"""A third-party Pipedrive client (singer-io tap-pipedrive) reads the sandbox end to end.

Optional: set CRMSYNC_TAP_PIPEDRIVE_PYTHON to the python of an environment where
``tap-pipedrive==2.1.0`` is installed (see bench/sandbox_tap_pipedrive.py); skipped otherwise.
"""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

TAP_PYTHON = os.environ.get("CRMSYNC_TAP_PIPEDRIVE_PYTHON")


@pytest.mark.slow
@pytest.mark.skipif(not TAP_PYTHON, reason="CRMSYNC_TAP_PIPEDRIVE_PYTHON not set")
def test_tap_pipedrive_syncs_every_stream_without_errors():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
    from sandbox_tap_pipedrive import run_tap

    result = run_tap(TAP_PYTHON, deals=120)
    assert result["returncode"] == 0, result["stderr_tail"]
    assert result["records"]["deals"] == result["expected_deals"]
    assert result["records"]["dealflow"] > result["records"]["deals"]
    assert all(set(e["statuses"]) == {"200"} for e in result["endpoints"].values())
