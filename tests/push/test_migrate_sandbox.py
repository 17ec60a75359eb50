"""Migration between two sandbox companies over real HTTP: verification, idempotence, kill safety, rollback."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

from crmsync.push import PushSettings, run_push, run_rollback, sample_scope
from crmsync.sandbox import Sandbox
from crmsync.sync import run_sync
from crmsync.warehouse import Warehouse

from .conftest import empty_company, make_config, snapshot, writes


def _migrate(cfg, **kw):
    run_sync(cfg, only=["a"], reconcile=True)
    return run_push(cfg, PushSettings(origin="a", target="b", **kw), apply=True, command="migrate", notes=True,
                    verify=True)


def test_migrating_a_company_into_an_empty_one_verifies_equal_counts_and_intact_links(tmp_path):
    with Sandbox(seed=5, deals=40) as a, empty_company() as b:
        cfg = make_config(tmp_path, ("a", a), ("b", b))
        report = _migrate(cfg)
        v = report.verification
        assert v["ok"], (v["counts"], v["relationships"], report.problems[:5])
        for entity in ("organization", "person", "deal"):
            assert v["counts"][entity]["origin"] > 0
            assert v["counts"][entity]["in_target"] == v["counts"][entity]["origin"]
        # the one origin lead with neither person nor organization: Pipedrive refuses it, and the report says why
        assert v["counts"]["lead"]["in_target"] + v["counts"]["lead"]["rejected"] == v["counts"]["lead"]["origin"]
        assert [r["error"] for r in v.get("rejected", {}).get("lead", [])] == [
            "A lead needs a person_id or an organization_id"] * v["counts"]["lead"]["rejected"]
        deal_links = v["relationships"]["deal"]["counts"]
        assert deal_links.get("person_id: ok", 0) > 0 and deal_links.get("stage_id: ok", 0) > 0
        assert not [k for k in deal_links if k.endswith("broken") or k.endswith("not migrated")]
        source, target = snapshot(a), snapshot(b)
        assert sorted(d[0] for d in target["deal"].values()) == sorted(
            d[0] for d in source["deal"].values())
        assert sorted(p[0] for p in target["person"].values()) == sorted(p[0] for p in source["person"].values())
        unequal = [f for recs in v["sample"].values() for r in recs for f in r["fields"] if not f["equal"]]
        assert unequal == []


def test_rerunning_a_finished_migration_writes_nothing(tmp_path):
    with Sandbox(seed=6, deals=25) as a, empty_company() as b:
        cfg = make_config(tmp_path, ("a", a), ("b", b))
        _migrate(cfg)
        before = writes(b)
        again = _migrate(cfg)
        assert writes(b) == before
        assert all(set(c) <= {"skip"} for c in again.counts.values()), again.counts
        assert again.verification["ok"]


def test_each_migrated_deal_carries_its_stage_history_as_a_note(tmp_path):
    with Sandbox(seed=7, deals=20) as a, empty_company() as b:
        cfg = make_config(tmp_path, ("a", a), ("b", b))
        report = _migrate(cfg)
        assert report.counts["note"].get("create", 0) > 0
        with Warehouse.open(cfg.warehouse.path, write=False) as wh:
            (deal_id, note_id), = wh.conn.execute(
                "SELECT d.target_id, n.target_id FROM id_map n JOIN id_map d ON d.origin_id = n.origin_id AND "
                "d.entity = 'deal' WHERE n.entity = 'note' LIMIT 1").fetchall()
            (origin_deal,) = wh.conn.execute("SELECT origin_id FROM id_map WHERE entity = 'note' AND target_id = ?",
                                             (note_id,)).fetchone()
            events = wh.conn.execute("SELECT COUNT(*) FROM deal_timeline WHERE source = 'a' AND deal_id = ?",
                                     (origin_deal,)).fetchone()[0]
        from crmsync.connectors.pipedrive.client import PipedriveClient

        notes = PipedriveClient(b.base_url, b.api_token).get("v1", "/notes", {"deal_id": deal_id})["data"]
        assert len(notes) == 1
        assert "Stage history carried over by crmsync" in notes[0]["content"]
        assert notes[0]["content"].count("<li>") == events


def test_rollback_leaves_the_target_as_it_was_before_the_migration(tmp_path):
    with Sandbox(seed=8, deals=25) as a, empty_company() as b:
        cfg = make_config(tmp_path, ("a", a), ("b", b))
        before = snapshot(b)
        report = _migrate(cfg)
        assert snapshot(b)["deal"]
        result = run_rollback(cfg, report.run_id)
        assert result["refused"] == [] and result["failed"] == []
        after = snapshot(b)
        assert after == before


def test_rollback_refuses_a_record_edited_in_the_target_since_unless_forced(tmp_path):
    with Sandbox(seed=9, deals=10) as a, empty_company() as b:
        cfg = make_config(tmp_path, ("a", a), ("b", b))
        report = _migrate(cfg)
        deal_id = next(iter(snapshot(b)["deal"]))
        b.advance(60)
        from crmsync.connectors.pipedrive.client import PipedriveClient

        PipedriveClient(b.base_url, b.api_token).send("PATCH", "v2", f"/deals/{deal_id}", {"title": "edited by a user"})
        result = run_rollback(cfg, report.run_id)
        assert [r["target_id"] for r in result["refused"]] == [deal_id]
        assert deal_id in snapshot(b)["deal"]
        forced = run_rollback(cfg, report.run_id, force=True)
        assert forced["deleted"] >= 1
        assert deal_id not in snapshot(b)["deal"]


def test_sample_migrates_n_deals_with_their_persons_and_organizations(tmp_path):
    with Sandbox(seed=10, deals=40) as a, empty_company() as b:
        cfg = make_config(tmp_path, ("a", a), ("b", b))
        run_sync(cfg, only=["a"], reconcile=True)
        with Warehouse.open(cfg.warehouse.path, write=False) as wh:
            scope = sample_scope(wh.conn, "a", 5)
        report = run_push(cfg, PushSettings(origin="a", target="b", scope=scope), apply=True, command="migrate",
                          notes=True, verify=True)
        assert len(snapshot(b)["deal"]) == 5
        assert report.verification["ok"], report.verification["relationships"]
        persons = snapshot(b)["person"]
        assert len(persons) == len(scope["person"])


def _kill_after(proc: subprocess.Popen, sb: Sandbox, n: int) -> None:
    """SIGKILL the migration once the target has answered ``n`` writes (it must still be running then)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and writes(sb) < n:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


MIGRATE_SCRIPT = """
import sys
from crmsync.config import parse_config
from crmsync.push import PushSettings, run_push
a_url, a_tok, b_url, b_tok, db = sys.argv[1:6]
cfg = parse_config({"warehouse": {"path": db}, "sources": {
    "a": {"type": "pipedrive", "base_url": a_url, "api_token": a_tok},
    "b": {"type": "pipedrive", "base_url": b_url, "api_token": b_tok, "history": False}}})
run_push(cfg, PushSettings(origin="a", target="b"), apply=True, command="migrate", notes=True)
"""


def test_a_migration_killed_mid_way_and_rerun_creates_no_duplicates(tmp_path):
    with Sandbox(seed=12, deals=60) as a, empty_company() as b:
        cfg = make_config(tmp_path, ("a", a), ("b", b))
        run_sync(cfg, only=["a"], reconcile=True)
        proc = subprocess.Popen([sys.executable, "-c", MIGRATE_SCRIPT, a.base_url, a.api_token, b.base_url,
                                 b.api_token, str(cfg.warehouse.path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        _kill_after(proc, b, 40)
        partial = snapshot(b)
        assert sum(len(v) for v in partial.values()) > 0
        report = run_push(cfg, PushSettings(origin="a", target="b"), apply=True, command="migrate", notes=True,
                          verify=True)
        assert report.verification["ok"], report.verification["counts"]
        source, target = snapshot(a), snapshot(b)
        for entity in ("deal", "person", "organization", "lead"):
            names = sorted(v[0] for v in target[entity].values())
            assert names == sorted(v[0] for v in source[entity].values()), entity
        with sqlite3.connect(cfg.warehouse.path) as conn:
            dup = conn.execute("SELECT target_id, COUNT(*) FROM id_map GROUP BY target, entity, target_id "
                               "HAVING COUNT(*) > 1").fetchall()
        assert dup == []


def test_cli_migrate_plans_then_applies_then_rolls_back(tmp_path):
    from typer.testing import CliRunner

    from crmsync.cli import app

    with Sandbox(seed=13, deals=15) as a, empty_company() as b:
        cfg = tmp_path / "crmsync.toml"
        cfg.write_text(f'[warehouse]\npath = "{tmp_path / "wh.db"}"\n'
                       f'[sources.a]\ntype = "pipedrive"\nbase_url = "{a.base_url}"\napi_token = "{a.api_token}"\n'
                       f'[sources.b]\ntype = "pipedrive"\nbase_url = "{b.base_url}"\napi_token = "{b.api_token}"\n'
                       "history = false\n", encoding="utf-8")
        runner = CliRunner()
        before = snapshot(b)
        plan = runner.invoke(app, ["migrate", "--from", "a", "--to", "b", "--config", str(cfg)])
        assert plan.exit_code == 0, plan.output
        assert "nothing written; add --apply" in plan.output and snapshot(b) == before
        done = runner.invoke(app, ["migrate", "--from", "a", "--to", "b", "--apply", "--config", str(cfg), "--json"])
        assert done.exit_code == 0, done.output
        report = json.loads(done.output)
        assert report["verification"]["ok"] and report["applied"]
        assert a.api_token not in done.output and b.api_token not in done.output
        ids = runner.invoke(app, ["pushlog", "idmap", "--target", "b", "--format", "json", "--config", str(cfg)])
        assert {r["entity"] for r in json.loads(ids.output)} >= {"deal", "person", "organization", "stage"}
        undo = runner.invoke(app, ["rollback", str(report["run_id"]), "--config", str(cfg)])
        assert undo.exit_code == 0, undo.output
        assert snapshot(b) == before
        wrong = runner.invoke(app, ["rollback", "1", "--config", str(cfg)])
        assert wrong.exit_code == 2 and "not a push or migrate run" in wrong.output


SPREADSHEET_MIGRATE_SCRIPT = """
import sys
from crmsync.config import parse_config
from crmsync.push import PushSettings, run_push
examples, b_url, b_tok, db = sys.argv[1:5]
cfg = parse_config({"warehouse": {"path": db}, "sources": {
    "examples": {"type": "spreadsheet", "path": [examples + "/*.csv", examples + "/*.xlsx"], "mapping": "spreadsheet"},
    "b": {"type": "pipedrive", "base_url": b_url, "api_token": b_tok, "history": False}}})
run_push(cfg, PushSettings(origin="examples", target="b"), apply=True, command="migrate", notes=True)
"""


def test_a_spreadsheet_migration_killed_mid_way_and_rerun_creates_no_duplicates(tmp_path):
    import shutil
    from pathlib import Path

    examples = tmp_path / "examples"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples", examples)
    with empty_company() as b:
        cfg = make_config(tmp_path, ("b", b), extra={"examples": {
            "type": "spreadsheet", "path": [str(examples / "*.csv"), str(examples / "*.xlsx")],
            "mapping": "spreadsheet"}})
        run_sync(cfg, only=["examples"], reconcile=True)
        proc = subprocess.Popen([sys.executable, "-c", SPREADSHEET_MIGRATE_SCRIPT, str(examples), b.base_url,
                                 b.api_token, str(cfg.warehouse.path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        _kill_after(proc, b, 30)
        killed_at = writes(b)
        assert killed_at > 0
        report = run_push(cfg, PushSettings(origin="examples", target="b"), apply=True, command="migrate",
                          notes=True, verify=True)
        assert writes(b) > killed_at  # it really stopped mid-way: the re-run had work left
        assert report.verification["ok"], report.verification["counts"]
        with sqlite3.connect(cfg.warehouse.path) as conn:
            titles = sorted(t for (t,) in conn.execute(
                "SELECT title FROM deals WHERE source = 'examples' AND removed_run IS NULL AND status != 'deleted'"))
            dup = conn.execute("SELECT target_id, COUNT(*) FROM id_map GROUP BY target, entity, target_id "
                               "HAVING COUNT(*) > 1").fetchall()
        assert sorted(d[0] for d in snapshot(b)["deal"].values()) == titles
        assert dup == []
