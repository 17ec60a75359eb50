"""``sandbox serve`` prints its URL and token first, serves, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import requests
from typer.testing import CliRunner

from crmsync.sandbox.cli import sandbox_app


@pytest.mark.slow
def test_serve_prints_url_and_token_then_serves_until_interrupted():
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmsync.sandbox", "serve", "--port", "0", "--deals", "50", "--seed", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url, token = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and len(token) == 40
        r = requests.get(url + "/api/v2/deals?limit=3", headers={"x-api-token": token}, timeout=10)
        assert r.status_code == 200 and len(r.json()["data"]) == 3
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert token not in err and '"tokens": 10' in err


def test_help_shows_an_example():
    result = CliRunner().invoke(sandbox_app, ["serve", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--deals" in result.output
