"""``run_rollback`` against the in-memory target: deletes creates, restores pre-images, refuses changed records."""

from __future__ import annotations

import pytest

from crmsync.config import parse_config
from crmsync.model import Person
from crmsync.push import runner
from crmsync.push.ledger import Ledger
from crmsync.push.plan import PushSettings

from .unit_helpers import ORIGIN, TARGET, FakeTarget, open_wh, point, push, refresh, write


def person(sid, name, email, source=ORIGIN):
    return Person(source=source, source_id=sid, name=name, emails=[point(email, normalized=email)])


@pytest.fixture
def pushed(tmp_path, monkeypatch):
    """Push run: Ana (matched by email in the CRM as "Ana R.") renamed, Bo created; the target re-read."""
    fake = FakeTarget()
    fake.records["person"]["80"] = {"name": "Ana R.", "emails": [{"value": "ana@acme.es", "primary": True}],
                                    "update_time": fake.now()}
    with open_wh(tmp_path) as wh:
        refresh(wh, fake)
        write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es"), person("2", "Bo Li", "bo@acme.es")])
        run_id, _, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
        refresh(wh, fake)
        bo = Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "2")
    monkeypatch.setattr(runner, "open_target", lambda config, name: fake)
    config = parse_config({"warehouse": {"path": str(tmp_path / "wh.db")}}, environ={})
    fake.calls.clear()
    return config, fake, run_id, bo


def reread(config, fake):
    with open_wh(config.warehouse.path.parent) as wh:
        refresh(wh, fake)


def test_rollback_deletes_what_the_run_created_and_restores_what_it_updated(pushed):
    config, fake, run_id, bo = pushed
    result = runner.run_rollback(config, run_id, do_refresh=False)
    assert (result["deleted"], result["restored"], result["refused"], result["failed"]) == (1, 1, [], [])
    assert fake.records["person"]["80"]["name"] == "Ana R."
    assert bo not in fake.records["person"]
    assert ("delete", "person", bo) in fake.calls
    with open_wh(config.warehouse.path.parent) as wh:
        assert Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "2") is None


def test_rollback_refuses_records_changed_in_the_target_since_unless_forced(pushed):
    config, fake, run_id, bo = pushed
    fake.edit("person", "80", name="Ana (edited after the push)")
    fake.edit("person", bo, name="Bo (edited after the push)")
    reread(config, fake)
    result = runner.run_rollback(config, run_id, do_refresh=False)
    assert (result["deleted"], result["restored"]) == (0, 0)
    assert sorted(r["target_id"] for r in result["refused"]) == sorted(["80", bo])
    assert fake.records["person"]["80"]["name"] == "Ana (edited after the push)"
    forced = runner.run_rollback(config, run_id, force=True, do_refresh=False)
    assert (forced["deleted"], forced["restored"]) == (1, 1)


def test_rollback_of_a_record_already_deleted_in_the_target_is_not_a_failure(pushed):
    config, fake, run_id, bo = pushed
    del fake.records["person"][bo]
    reread(config, fake)
    result = runner.run_rollback(config, run_id, do_refresh=False)
    assert result["failed"] == [] and result["restored"] == 1
    assert ("delete", "person", bo) not in fake.calls
    with open_wh(config.warehouse.path.parent) as wh:
        assert Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "2") is None


def test_rollback_refuses_runs_that_are_not_pushes(pushed):
    config, _, _, _ = pushed
    with pytest.raises(Exception, match="not a push or migrate run"):
        runner.run_rollback(config, 1, do_refresh=False)


def test_after_a_rollback_the_next_push_is_not_blocked_by_crmsyncs_own_restore(pushed):
    config, fake, run_id, bo = pushed
    runner.run_rollback(config, run_id, do_refresh=False)
    reread(config, fake)
    with open_wh(config.warehouse.path.parent) as wh:
        _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
    assert {i.origin_id: i.action for i in items["person"]} == {"1": "update", "2": "create"}
