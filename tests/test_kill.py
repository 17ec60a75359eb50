"""A sync killed at any moment leaves a valid warehouse, and the next run converges to the input."""

from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROWS = 30_000


@pytest.fixture
def big_source(tmp_path: Path) -> Path:
    with (tmp_path / "organizations.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ID", "Name", "Domain", "Created"])
        for i in range(ROWS):
            w.writerow([i, f"Compañía {i} S.L.", f"c{i}.es", "2025-01-02 03:04:05"])
    conf = tmp_path / "c.toml"
    conf.write_text('[warehouse]\npath = "w.db"\nbatch_size = 500\n\n'
                    '[sources.big]\ntype = "spreadsheet"\npath = "organizations.csv"\n')
    return conf


def start(conf: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "crmsync.cli", "sync", "--config", str(conf), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_committed_rows(db: Path, proc: subprocess.Popen, minimum: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sync finished before it could be killed; raise ROWS"
        try:
            with sqlite3.connect(db, timeout=1) as conn:
                (n,) = conn.execute("select coalesce(sum(read), 0) from run_counts").fetchone()
            if n >= minimum:
                return n
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    raise AssertionError("no batch was committed within 60 s")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_sync_killed_midway_then_rerun_yields_exactly_the_input(big_source, sig):
    db = big_source.parent / "w.db"
    proc = start(big_source)
    committed = wait_for_committed_rows(db, proc, 1500)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted" in proc.stderr.read()

    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    (status,) = conn.execute("select status from runs").fetchone()
    assert status == ("running" if sig == signal.SIGKILL else "interrupted")
    partial = conn.execute("select count(*) from organizations").fetchone()[0]
    assert committed <= partial < ROWS
    (counted,) = conn.execute("select sum(inserted) from run_counts").fetchone()
    assert counted == partial  # counts committed with the rows they describe
    conn.close()

    rerun = subprocess.run([sys.executable, "-m", "crmsync.cli", "sync", "--config", str(big_source), "--json"],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("select count(*), count(distinct source_id) from organizations").fetchone() == (ROWS, ROWS)
    assert conn.execute("select min(cast(source_id as int)), max(cast(source_id as int)) from organizations"
                        ).fetchone() == (0, ROWS - 1)
    assert [r[0] for r in conn.execute("select status from runs where command = 'sync' order by id")] == [
        "interrupted", "succeeded"]
    inserted, unchanged = conn.execute("select inserted, unchanged from run_counts where run_id = 2").fetchone()
    assert (inserted, unchanged) == (ROWS - partial, partial)
    assert conn.execute("select count(*) from organizations where removed_run is not null").fetchone() == (0,)
