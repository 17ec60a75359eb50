"""``run_push`` end to end at unit level: the in-memory target (``open_target`` patched), no refresh."""

from __future__ import annotations

import json

import pytest

from crmsync.config import parse_config
from crmsync.errors import ConfigError
from crmsync.model import Organization, Person
from crmsync.push import runner
from crmsync.push.ledger import Ledger
from crmsync.push.plan import PushSettings

from .unit_helpers import ORIGIN, TARGET, FakeTarget, open_wh, point, refresh, write


@pytest.fixture
def setup(tmp_path, monkeypatch):
    fake = FakeTarget(keyed=("organization", "person"))
    monkeypatch.setattr(runner, "open_target", lambda config, name: fake)
    sheet = {"type": "spreadsheet", "path": [str(tmp_path / "none.csv")], "mapping": "spreadsheet"}
    config = parse_config({"warehouse": {"path": str(tmp_path / "wh.db")}, "sources": {ORIGIN: sheet, TARGET: sheet}},
                          environ={})
    with open_wh(tmp_path) as wh:
        write(wh, "organization", [Organization(source=ORIGIN, source_id="1", name="Acme")])
        write(wh, "person", [Person(source=ORIGIN, source_id="1", name="Ana", org_id="1",
                                    emails=[point("ana@acme.es", normalized="ana@acme.es")]),
                             Person(source=ORIGIN, source_id="2", name="Bo")])
    return config, fake, tmp_path


def run(config, **kw):
    return runner.run_push(config, PushSettings(ORIGIN, TARGET, entities=("organization", "person")),
                           do_refresh=False, **kw)


def test_a_dry_run_writes_nothing_and_saves_a_plan_with_its_cost(setup):
    config, fake, tmp_path = setup
    report = run(config)
    assert fake.calls == []
    assert not report.applied and report.plan_id is not None
    assert report.counts == {"organization": {"create": 1}, "person": {"create": 2}}
    assert report.cost == {"requests": 3, "tokens": 15}
    with open_wh(tmp_path) as wh:
        assert Ledger(wh.conn).open_plan_seen(TARGET, ORIGIN)[0] == report.plan_id
        row = wh.conn.execute("SELECT command, status FROM runs WHERE id = ?", (report.run_id,)).fetchone()
    assert row == ("push", "succeeded")


def test_apply_writes_the_key_on_creates_closes_the_plan_and_a_rerun_changes_nothing(setup):
    config, fake, tmp_path = setup
    run(config)
    report = run(config, apply=True)
    assert report.counts == {"organization": {"create": 1}, "person": {"create": 2}}
    assert [c[2]["custom.crmsync key"] for c in fake.calls] == ["a:organization:1", "a:person:1", "a:person:2"]
    org_tid = next(iter(fake.records["organization"]))
    assert fake.calls[1][2]["org_id"] == org_tid
    with open_wh(tmp_path) as wh:
        assert Ledger(wh.conn).open_plan_seen(TARGET, ORIGIN) == (None, {})
        refresh(wh, fake)
        summary = json.loads(wh.conn.execute("SELECT summary FROM runs WHERE id = ?", (report.run_id,)).fetchone()[0])
    assert summary["counts"]["person"] == {"create": 2}
    fake.calls.clear()
    again = run(config, apply=True)
    assert fake.calls == []
    assert again.counts == {"organization": {"skip": 1}, "person": {"skip": 2}}


def test_a_failing_run_is_recorded_as_failed(setup):
    config, fake, tmp_path = setup

    def boom(entity, values):
        raise RuntimeError("socket closed")

    fake.create = boom
    with pytest.raises(RuntimeError):
        run(config, apply=True)
    with open_wh(tmp_path) as wh:
        status, error = wh.conn.execute("SELECT status, error FROM runs ORDER BY id DESC").fetchone()
        log = wh.conn.execute("SELECT status, error FROM push_log").fetchall()
    assert status == "failed" and "socket closed" in error
    assert log == [("unknown", "interrupted or failed mid-request")]


@pytest.mark.parametrize(("settings", "message"), [
    (PushSettings(ORIGIN, TARGET, modes={"person": "merge"}), "unknown mode"),
    (PushSettings(ORIGIN, TARGET, modes={"people": "upsert"}), "unknown entity"),
    (PushSettings(ORIGIN, TARGET, match={"person": ("email", "phone")}), "unknown key 'phone'"),
    (PushSettings("nowhere", TARGET), "unknown origin"),
])
def test_bad_settings_are_config_errors_before_anything_is_read(setup, settings, message):
    config, fake, _ = setup
    with pytest.raises(ConfigError, match=message):
        runner.run_push(config, settings, do_refresh=False)
    assert fake.calls == []


def test_default_modes_are_update_for_the_same_crm_and_upsert_across():
    assert PushSettings("pd", "pd").mode("person") == "update"
    assert PushSettings("a", "pd").mode("person") == "upsert"
    assert PushSettings("a", "pd", modes={"person": "enrich"}).mode("person") == "enrich"


# -- crmsync push (CLI) ----------------------------------------------------------------------------
def _config_file(tmp_path):
    path = tmp_path / "crmsync.toml"
    path.write_text(f'[warehouse]\npath = "{tmp_path / "wh.db"}"\n'
                    f'[sources.{ORIGIN}]\ntype = "spreadsheet"\npath = ["{tmp_path / "none.csv"}"]\n'
                    f'mapping = "spreadsheet"\n'
                    f'[sources.{TARGET}]\ntype = "spreadsheet"\npath = ["{tmp_path / "none.csv"}"]\n'
                    f'mapping = "spreadsheet"\n', encoding="utf-8")
    return str(path)


def test_cli_push_plans_as_json_and_applies(setup, monkeypatch):
    from typer.testing import CliRunner

    from crmsync.cli import app

    for var in ("CRMSYNC_CONFIG", "CRMSYNC_WAREHOUSE__PATH"):
        monkeypatch.delenv(var, raising=False)
    config, fake, tmp_path = setup
    cfg = _config_file(tmp_path)
    cli = CliRunner()
    result = cli.invoke(app, ["push", TARGET, "--from", ORIGIN, "--entity", "organization", "--entity", "person",
                              "--no-refresh", "--config", cfg, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["applied"] is False and report["counts"]["person"] == {"create": 2}
    assert fake.calls == []
    result = cli.invoke(app, ["push", TARGET, "--from", ORIGIN, "--entity", "organization", "--entity", "person",
                              "--no-refresh", "--config", cfg, "--apply"])
    assert result.exit_code == 0, result.output
    assert len(fake.calls) == 3 and "spent:" in result.stdout
    bad = cli.invoke(app, ["push", TARGET, "--from", ORIGIN, "--mode", "person=merge", "--no-refresh", "--config", cfg])
    assert bad.exit_code == 2 and "unknown mode" in bad.stderr
    assert len(fake.calls) == 3
