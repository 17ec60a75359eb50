"""The push ledger: ID map and rejected-row exports, stored plans' seen times, ``crmsync pushlog``."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.model import Person
from crmsync.push.ledger import Ledger
from crmsync.push.plan import PushSettings

from .unit_helpers import ORIGIN, TARGET, FakeTarget, open_wh, plan, point, push, write

runner = CliRunner()


@pytest.fixture
def wh(tmp_path):
    with open_wh(tmp_path) as wh:
        yield wh


def _populate(wh):
    """Run 1 maps two persons into "b" and one into "c"; run 2 has one rejected write into "b"."""
    ledger = Ledger(wh.conn)
    with wh.transaction():
        ledger.map(1, TARGET, "person", ORIGIN, "1", "101", "create", "2026-11-24T03:00:01Z", None)
        ledger.map(1, TARGET, "person", ORIGIN, "2", "102", "match", "2026-11-24T03:00:02Z", None)
        ledger.map(1, "c", "person", ORIGIN, "1", "9001", "create", None, None)
        log = ledger.log(2, TARGET, "deal", ORIGIN, "7", None, "create", None, {"title": "X", "stage_id": 99},
                         "pending")
        ledger.finish_log(log, "rejected", error="Stage 99 does not exist")
        done = ledger.log(2, TARGET, "deal", ORIGIN, "8", None, "create", None, {"title": "Y"}, "pending")
        ledger.finish_log(done, "done", target_id="555")
    return ledger


def test_id_map_export_lists_rows_in_write_order_filtered_by_target_and_run(wh):
    ledger = _populate(wh)
    rows = ledger.export("id_map", TARGET)
    assert [(r["origin_id"], r["target_id"], r["run_id"], r["action"], r["target_update_time"]) for r in rows] == [
        ("1", "101", 1, "create", "2026-11-24T03:00:01Z"), ("2", "102", 1, "match", "2026-11-24T03:00:02Z")]
    assert {"target", "entity", "origin", "origin_id", "target_id", "run_id", "action"} <= set(rows[0])
    assert len(ledger.export("id_map")) == 3
    assert ledger.export("id_map", TARGET, run_id=2) == []


def test_remapping_the_same_target_id_keeps_the_run_that_created_it(wh):
    ledger = _populate(wh)
    with wh.transaction():
        ledger.map(5, TARGET, "person", ORIGIN, "1", "101", "match", "2026-11-24T04:00:00Z")
    m = ledger.id_map(TARGET, "person", ORIGIN)["1"]
    assert (m.run_id, m.action, m.target_update_time) == (1, "create", "2026-11-24T04:00:00Z")


def test_rejected_export_carries_what_was_sent_and_the_apis_error(wh):
    ledger = _populate(wh)
    rows = ledger.export("push_rejected", TARGET, run_id=2)
    assert len(rows) == 1
    row = rows[0]
    assert (row["entity"], row["origin_id"], row["action"], row["error"]) == (
        "deal", "7", "create", "Stage 99 does not exist")
    assert json.loads(row["sent"]) == {"title": "X", "stage_id": 99}
    assert ledger.export("push_rejected", "c") == []


def test_export_refuses_other_tables(wh):
    with pytest.raises(ValueError):
        Ledger(wh.conn).export("runs")


def test_open_plan_seen_returns_the_latest_unapplied_plans_seen_times(wh):
    ledger = Ledger(wh.conn)
    with wh.transaction():
        ledger.save_plan(1, TARGET, ORIGIN, iter([("person", "1", "101", "update", "{}", "2026-11-24T01:00:00Z")]), {})
        latest = ledger.save_plan(2, TARGET, ORIGIN, iter([
            ("person", "1", "101", "update", "{}", "2026-11-24T02:00:00Z"),
            ("person", "2", "102", "skip", "{}", None),
            ("person", "3", None, "create", "{}", None),  # nothing seen for a create
        ]), {})
        ledger.save_plan(3, "c", ORIGIN, iter([("person", "1", "9", "update", "{}", "2026-11-24T09:00:00Z")]), {})
    plan_id, seen = ledger.open_plan_seen(TARGET, ORIGIN)
    assert plan_id == latest
    assert seen == {("person", "1"): "2026-11-24T02:00:00Z", ("person", "2"): None}
    with wh.transaction():
        ledger.close_plans(TARGET, ORIGIN, 4)
    assert ledger.open_plan_seen(TARGET, ORIGIN) == (None, {})
    assert ledger.open_plan_seen("c", ORIGIN)[0] is not None


def test_a_target_change_between_the_dry_run_and_the_apply_is_a_conflict(wh):
    """What ``run_push`` does: the apply checks against what the saved plan showed, not only the ID map."""
    def crm_person(name, at):
        return Person(source=TARGET, source_id="80", name=name, emails=[point("ana@acme.es")], update_time=at)

    write(wh, "person", [crm_person("Ana R.", "2026-11-24T01:00:00Z")])
    write(wh, "person", [Person(source=ORIGIN, source_id="1", name="Ana Ruiz", emails=[point("ana@acme.es")])])
    settings = PushSettings(ORIGIN, TARGET)
    items = plan(wh, settings, "person")  # the dry run the user reviewed
    assert [(i.action, i.target_id, i.seen) for i in items] == [("update", "80", "2026-11-24T01:00:00Z")]
    ledger = Ledger(wh.conn)
    with wh.transaction():
        ledger.save_plan(1, TARGET, ORIGIN, iter([(i.entity, i.origin_id, i.target_id, i.action, "{}", i.seen)
                                                 for i in items]), {})
    write(wh, "person", [crm_person("Ana (renamed in the CRM)", "2026-11-24T02:00:00Z")])  # then someone edits it
    assert [i.action for i in plan(wh, settings, "person")] == ["update"]  # no ID map entry: nothing to compare
    _, seen = ledger.open_plan_seen(TARGET, ORIGIN)
    fake = FakeTarget()
    _, items, _ = push(wh, fake, settings, ("person",), plan_seen=seen)
    assert items["person"][0].action == "conflict"
    assert "2026-11-24T01:00:00Z" in items["person"][0].reason
    assert fake.calls == []


# -- crmsync pushlog -------------------------------------------------------------------------------
@pytest.fixture
def config(tmp_path, monkeypatch):
    for var in ("CRMSYNC_CONFIG", "CRMSYNC_WAREHOUSE__PATH"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "crmsync.toml"
    path.write_text(f'[warehouse]\npath = "{tmp_path / "wh.db"}"\n', encoding="utf-8")
    with open_wh(tmp_path) as wh:
        _populate(wh)
    return path


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_pushlog_idmap_csv(config):
    result = invoke("pushlog", "idmap", "--config", str(config), "--target", TARGET, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["entity"], r["origin_id"], r["target_id"], r["run_id"], r["action"]) for r in rows] == [
        ("person", "1", "101", "1", "create"), ("person", "2", "102", "1", "match")]


def test_pushlog_idmap_json(config):
    result = invoke("pushlog", "idmap", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["target"], r["origin_id"], r["target_id"], r["run_id"]) for r in rows] == [
        (TARGET, "1", "101", 1), (TARGET, "2", "102", 1), ("c", "1", "9001", 1)]


def test_pushlog_rejected_json_to_a_file(config, tmp_path):
    out = tmp_path / "rejected.json"
    result = invoke("pushlog", "rejected", "--config", str(config), "--run", "2", "--format", "json", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["origin_id"], r["error"]) for r in rows] == [("7", "Stage 99 does not exist")]


def test_pushlog_empty_csv_still_has_a_header(config):
    result = invoke("pushlog", "idmap", "--config", str(config), "--run", "42")
    assert result.exit_code == 0
    assert result.stdout.strip() == "target,entity,origin,origin_id,target_id,run_id"


def test_pushlog_rejects_unknown_format_and_kind(config):
    assert runner.invoke(app, ["pushlog", "idmap", "--config", str(config), "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["pushlog", "ids", "--config", str(config)]).exit_code == 2
