"""Stage-history notes of a migration: one note per deal, updated when the history grows, never duplicated,
and rolled back to the note's previous content."""

from __future__ import annotations

import pytest

from crmsync.config import parse_config
from crmsync.model import Deal
from crmsync.push import runner
from crmsync.push.apply import Executor
from crmsync.push.ledger import Ledger
from crmsync.push.plan import PushSettings
from crmsync.push.runner import NOTE_HEADER, _apply_notes, note_items

from .unit_helpers import ORIGIN, TARGET, FakeTarget, open_wh, push, refresh, write

SETTINGS = PushSettings(ORIGIN, TARGET)


def timeline(wh, deal_id, *events, start=0):
    with wh.transaction():
        wh.conn.execute("CREATE TABLE IF NOT EXISTS deal_timeline (source TEXT, deal_id TEXT, seq INTEGER, at TEXT, "
                        "kind TEXT, old_value TEXT, new_value TEXT, stage_category TEXT, evidence TEXT, "
                        "actor_id TEXT)")
        for seq, (at, old, new) in enumerate(events, start):
            wh.conn.execute("INSERT INTO deal_timeline VALUES (?, ?, ?, ?, 'stage', ?, ?, NULL, 'api', NULL)",
                            (ORIGIN, deal_id, seq, at, old, new))


def notes_run(wh, fake):
    ledger = Ledger(wh.conn)
    run_id = wh.start_run("migrate", sources=[ORIGIN, TARGET])
    executor = Executor(wh, ledger, fake, SETTINGS, run_id)
    items = note_items(wh.conn, ledger, SETTINGS)
    _apply_notes(wh, ledger, fake, SETTINGS, run_id, items, executor)
    wh.finish_run(run_id, "succeeded")
    return run_id, items, executor


@pytest.fixture
def migrated(tmp_path):
    fake = FakeTarget()
    with open_wh(tmp_path) as wh:
        write(wh, "deal", [Deal(source=ORIGIN, source_id="1", title="Renewal"),
                           Deal(source=ORIGIN, source_id="2", title="No history")])
        push(wh, fake, SETTINGS, ("deal",))
        refresh(wh, fake)
        timeline(wh, "1", ("2026-01-01T00:00:00Z", None, "New"), ("2026-02-01T00:00:00Z", "New", "Proposal"))
        fake.calls.clear()
        yield wh, fake


def test_one_note_per_deal_with_history_carrying_the_crmsync_key(migrated):
    wh, fake = migrated
    _, items, executor = notes_run(wh, fake)
    deal_tid = Ledger(wh.conn).target_id(TARGET, "deal", ORIGIN, "1")
    assert [(c[0], c[1], c[2]["deal_id"]) for c in fake.calls] == [("create", "note", deal_tid)]
    content = fake.calls[0][2]["content"]
    assert NOTE_HEADER in content and "New → Proposal" in content and "a:note:1" in content
    assert executor.outcomes[("note", "create")] == 1


def test_notes_are_skipped_when_unchanged_and_updated_when_the_history_grows(migrated):
    wh, fake = migrated
    notes_run(wh, fake)
    fake.calls.clear()
    _, items, _ = notes_run(wh, fake)
    assert [i.action for i in items] == ["skip"] and fake.calls == []
    timeline(wh, "1", ("2026-03-01T00:00:00Z", "Proposal", "Won"), start=2)
    _, items, _ = notes_run(wh, fake)
    assert [i.action for i in items] == ["update"]
    assert [c[0] for c in fake.calls] == ["update"] and "Proposal → Won" in fake.calls[0][2][1]["content"]


def test_an_interrupted_note_create_is_found_on_the_deal_not_created_again(migrated):
    wh, fake = migrated
    fake.unknown_after_create = True
    first, _, executor = notes_run(wh, fake)
    assert executor.outcomes[("note", "unknown")] == 1
    fake.unknown_after_create = False
    fake.calls.clear()
    _, _, executor = notes_run(wh, fake)
    assert fake.calls == [] and executor.outcomes[("note", "recovered")] == 1
    assert len(fake.records["note"]) == 1
    assert Ledger(wh.conn).id_map(TARGET, "note", ORIGIN)["1"].run_id == first


def test_rolling_back_a_note_update_restores_the_previous_content(migrated, monkeypatch):
    wh, fake = migrated
    notes_run(wh, fake)
    (note_id, note), = fake.records["note"].items()
    original = note["content"]
    timeline(wh, "1", ("2026-03-01T00:00:00Z", "Proposal", "Won"), start=2)
    update_run, _, _ = notes_run(wh, fake)
    assert fake.records["note"][note_id]["content"] != original
    path = wh.path
    wh.close()
    monkeypatch.setattr(runner, "open_target", lambda config, name: fake)
    config = parse_config({"warehouse": {"path": str(path)}}, environ={})
    result = runner.run_rollback(config, update_run, do_refresh=False)
    assert result["restored"] == 1
    assert fake.records["note"][note_id]["content"] == original
