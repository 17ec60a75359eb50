"""The CLI: exit codes, one-line errors on stderr, --json, --help examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmsync.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def example(tmp_path, monkeypatch):
    """The shipped example config and data, copied so the test writes its own crmsync.db."""
    shutil.copy(ROOT / "config.example.toml", tmp_path / "config.example.toml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for var in ("CRMSYNC_CONFIG", "CRMSYNC_WAREHOUSE__PATH"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "config.example.toml"


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_sync_json_reports_counts_that_add_up(example):
    result = invoke("sync", "--config", str(example), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    totals = summary["totals"]
    assert totals["read"] == totals["inserted"] + totals["quarantined"] > 0
    by_source: dict[str, set[str]] = {}
    for e in summary["entities"]:
        by_source.setdefault(e["source"], set()).add(e["entity"])
    spreadsheet = {"user", "organization", "person", "lead", "deal", "pipeline", "stage"}
    assert by_source["examples"] == spreadsheet
    assert by_source["pipedrive_sandbox"] == spreadsheet | {"stage_change", "conversion", "custom_field"}


def test_sync_table_output_names_entities_and_time(example):
    result = invoke("sync", "--config", str(example), "--source", "examples")
    assert result.exit_code == 0
    assert "deal" in result.stdout and "quarantined" in result.stdout and "succeeded in" in result.stdout


def test_status_after_two_syncs_shows_both_runs_and_table_counts(example):
    invoke("sync", "--config", str(example), "--source", "examples")
    invoke("sync", "--config", str(example), "--source", "examples")
    result = invoke("status", "--config", str(example), "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    syncs = [r for r in report["runs"] if r["command"] == "sync"]
    assert [r["status"] for r in syncs] == ["succeeded", "succeeded"]
    assert [r["command"] for r in report["runs"]] == ["reconcile", "sync", "reconcile", "sync"]  # sync reconciles
    second = syncs[0]["counts"]
    assert sum(c["unchanged"] for c in second) == sum(c["read"] - c["quarantined"] for c in second)
    assert report["tables"]["deals"]["rows"] > 0


def test_config_from_environment_variable(example, monkeypatch):
    monkeypatch.setenv("CRMSYNC_CONFIG", str(example))
    assert invoke("sync", "--json", "--source", "examples").exit_code == 0


def test_missing_config_is_one_line_on_stderr_with_exit_code_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRMSYNC_CONFIG", raising=False)
    result = invoke("sync")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("crmsync: error: crmsync.toml: config file not found")
    assert "Traceback" not in result.stderr


def test_bad_config_keys_are_all_listed_in_one_line(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[warehouse]\npaht = "x"\n[sources.a]\ntype = "spreadsheet"\npaht = "x.csv"\n')
    result = invoke("sync", "--config", str(conf))
    assert result.exit_code == 2
    assert "warehouse.paht: unknown key" in result.stderr
    conf.write_text('[sources.a]\ntype = "spreadsheet"\npaht = "x.csv"\n')
    result = invoke("sync", "--config", str(conf))
    assert result.exit_code == 2
    assert "sources.a.paht: unknown key" in result.stderr and "sources.a.path: Field required" in result.stderr
    assert result.stderr.count("\n") == 1


def test_unreadable_input_exits_3_naming_the_file(tmp_path):
    (tmp_path / "deals.xlsx").write_bytes(b"not a zip")
    conf = tmp_path / "c.toml"
    conf.write_text('[sources.a]\ntype = "spreadsheet"\npath = "deals.xlsx"\n')
    result = invoke("sync", "--config", str(conf))
    assert result.exit_code == 3
    assert "deals.xlsx" in result.stderr and "Traceback" not in result.stderr


def test_debug_flag_adds_the_traceback(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text("[warehouse\n")
    result = invoke("sync", "--config", str(conf), "--debug")
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_unknown_source_name_is_a_usage_error(example):
    result = invoke("sync", "--config", str(example), "--source", "nope")
    assert result.exit_code == 2 and "unknown source nope (configured: examples, pipedrive_sandbox)" in result.stderr


def test_status_before_any_sync_explains_what_to_do(example):
    result = invoke("status", "--config", str(example))
    assert result.exit_code == 5 and "run `crmsync sync` first" in result.stderr


def test_init_writes_a_config_that_loads_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "crmsync.toml"
    assert invoke("init", str(target)).exit_code == 0
    from crmsync.config import load_config

    assert load_config(target).sources["spreadsheets"].type == "spreadsheet"
    again = invoke("init", str(target))
    assert again.exit_code == 2 and "--force" in again.stderr


def test_second_sync_while_one_holds_the_warehouse_exits_5(example):
    from crmsync.warehouse import Warehouse

    with Warehouse.open(example.parent / "crmsync.db"):
        result = invoke("sync", "--config", str(example))
    assert result.exit_code == 5 and "another crmsync run" in result.stderr


def test_every_command_has_help_with_an_example():
    commands = ["sync", "status", "init", "reconcile", "audit", "conversions", "history", "push", "migrate",
                "rollback", "pushlog"]
    for name in commands:
        result = invoke(name, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.stdout and f"crmsync {name}" in result.stdout, name
    top = invoke("--help")
    assert "Exit codes" in top.stdout and "sandbox" in top.stdout
    serve = invoke("sandbox", "serve", "--help")
    assert serve.exit_code == 0 and "Example: crmsync sandbox serve" in serve.stdout


def test_version_flag(example):
    from crmsync import __version__

    assert invoke("--version").stdout.strip() == f"crmsync {__version__}"


def test_reconcile_after_sync_links_the_example_leads_to_their_deals(example):
    invoke("sync", "--config", str(example), "--source", "examples")
    result = invoke("reconcile", "--config", str(example), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["by_kind"]["conversions"]["explicit"] == 4  # L-1, L-2, L-5, L-9 in examples/leads.xlsx
    assert summary["counts"]["deal_timeline"] > 0


def test_estimate_prints_requests_and_tokens_and_spends_nothing(example):
    result = invoke("sync", "--config", str(example), "--estimate", "--json")
    assert result.exit_code == 0, result.output
    plans = json.loads(result.stdout)
    assert plans["examples"] is None  # local files cost nothing
    first = plans["pipedrive_sandbox"]
    assert first["requests"] > 10 and first["tokens"] > first["requests"]
    assert not (example.parent / "crmsync.db").exists()  # nothing was synced or created
    text = invoke("sync", "--config", str(example), "--estimate")
    assert "pipedrive_sandbox: about" in text.stdout and "examples: no API requests" in text.stdout


def test_audit_fail_on_error_sets_the_documented_exit_code(example):
    invoke("sync", "--config", str(example), "--source", "examples")
    invoke("reconcile", "--config", str(example))
    passing = invoke("audit", "--config", str(example), "--format", "json", "--fail-on", "error")
    report = json.loads(passing.stdout)
    fired = {c["severity"] for c in report["checks"] if c["status"] not in ("ok", "skipped")}
    assert "error" not in fired and passing.exit_code == 0
    failing = invoke("audit", "--config", str(example), "--format", "json", "--fail-on", "warning")
    assert "warning" in fired and failing.exit_code == 7


def test_sync_reconciles_by_default_and_conversions_and_history_read_the_result(example):
    summary = json.loads(invoke("sync", "--config", str(example), "--source", "examples", "--json").stdout)
    assert summary["reconcile"]["by_kind"]["conversions"]["explicit"] == 4
    rows = json.loads(invoke("conversions", "--config", str(example), "--method", "explicit", "--json").stdout)
    # examples/leads.xlsx: L-1 -> 2, L-2 -> 6, L-5 -> 9, L-9 -> 14 (Converted deal ID column and deals' Lead ID).
    assert sorted((r["lead_id"], r["deal_id"]) for r in rows) == [("L-1", "2"), ("L-2", "6"), ("L-5", "9"),
                                                                  ("L-9", "14")]
    history = json.loads(invoke("history", "2", "--config", str(example), "--json").stdout)
    assert [e["evidence"] for e in history["events"]] == ["milestone", "observed"]
    assert history["events"][1]["new_value"] == "Sales/Prospecting"
    missing = invoke("history", "404", "--config", str(example))
    assert missing.exit_code == 2 and "deal '404' not found" in missing.stderr
    skipped = json.loads(invoke("sync", "--config", str(example), "--source", "examples", "--json",
                                "--no-reconcile").stdout)
    assert skipped["reconcile"] is None
