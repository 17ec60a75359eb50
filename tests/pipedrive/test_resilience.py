"""Faults, budgets and estimates end to end against the sandbox (real HTTP, run_sync)."""

from __future__ import annotations

import sqlite3

from crmsync.connectors.pipedrive import PipedriveOptions, estimate, estimate_source

from crmsync.sandbox import FaultConfig, RateLimitConfig, Sandbox
from crmsync.sync import run_sync

from .conftest import client_usage, make_config, stored
from .truthcheck import compare

FAST = RateLimitConfig(burst=2000)


def _cursors(tmp_path) -> dict[str, str]:
    conn = sqlite3.connect(tmp_path / "wh.db")
    return dict(conn.execute("SELECT stream, value FROM cursors WHERE source = 'pd'").fetchall())


def test_injected_faults_end_with_exact_data_or_a_clean_failure_the_next_run_completes(tmp_path):
    faults = FaultConfig(error_rate=0.04, truncate_rate=0.03, invalid_json_rate=0.03, null_data_rate=0.03,
                         storm_rate=0.002, storm_seconds=1.0)
    with Sandbox(seed=2, deals=250, leads=80, rate_limit=FAST, faults=faults) as sb:
        cfg = make_config(sb, tmp_path, backoff_seconds=0.02)
        outcomes = []
        for _ in range(6):
            summary = run_sync(cfg)
            outcomes.append(summary.sources[0].exit_code)
            if summary.status == "succeeded":
                break
            assert summary.sources[0].exit_code == 4, summary.sources[0].error  # RemoteError: retry later
        assert outcomes[-1] == 0, outcomes
        injected = sb.usage_report()["faults"]
        assert sum(injected.values()) >= 10, injected
        assert compare(sb.export_truth(), stored(tmp_path)) == []
        # and incremental runs under the same faults converge too
        sb.simulate(events=30, hours=12)
        for _ in range(6):
            if run_sync(cfg).status == "succeeded":
                break
        assert compare(sb.export_truth(), stored(tmp_path)) == []


def test_429_storm_is_waited_out_honouring_the_rate_limit_headers(tmp_path):
    with Sandbox(seed=2, deals=30, leads=10, rate_limit=FAST, faults=FaultConfig(storm_seconds=1.0)) as sb:
        sb.faults.force("storm", 1)
        summary = run_sync(make_config(sb, tmp_path))
        assert summary.status == "succeeded", summary.sources
        assert sb.usage_report()["faults"]["storm"] >= 1
        assert compare(sb.export_truth(), stored(tmp_path)) == []


def test_paces_below_a_tight_burst_limit_without_being_refused(tmp_path):
    with Sandbox(seed=2, deals=40, leads=10, rate_limit=RateLimitConfig(burst=20, window=1.0)) as sb:
        summary = run_sync(make_config(sb, tmp_path))
        assert summary.status == "succeeded", summary.sources
        assert client_usage(sb)["requests"] > 40  # well over two windows' worth
        statuses = {}
        for c in sb.usage_report()["clients"]:
            for e in c["endpoints"].values():
                for k, v in e["statuses"].items():
                    statuses[k] = statuses.get(k, 0) + v
        assert "429" not in statuses, statuses


def test_token_budget_stops_cleanly_and_reruns_resume_to_the_exact_data(tmp_path):
    with Sandbox(seed=6, deals=200, leads=60, rate_limit=FAST) as sb:
        cfg = make_config(sb, tmp_path, token_budget=1500)
        codes = []
        for _ in range(30):
            sb.usage.reset()
            summary = run_sync(cfg)
            codes.append(summary.sources[0].exit_code)
            assert client_usage(sb)["tokens"] <= 1500
            if summary.status == "succeeded":
                break
            assert "token budget" in summary.sources[0].error
        assert codes[0] == 6 and codes[-1] == 0 and set(codes[:-1]) == {6}, codes
        assert compare(sb.export_truth(), stored(tmp_path)) == []


def test_estimate_predicts_the_spend_of_a_no_change_run_and_of_a_first_run(tmp_path):
    with Sandbox(seed=8, deals=120, leads=40, rate_limit=FAST) as sb:
        cfg = make_config(sb, tmp_path)
        options = PipedriveOptions.model_validate(cfg.sources["pd"].options)
        first = estimate(options, {}, None, counts={"deal": 120, "lead": 40, "person": 30, "organization": 12})
        assert estimate_source(cfg, "pd")["notes"]  # no warehouse yet: says the sizes are unknown
        run_sync(cfg)
        first_actual = client_usage(sb)
        assert first["requests"] >= first_actual["requests"]  # history is an upper bound on a first run
        est = estimate(options, _cursors(tmp_path), stored(tmp_path))
        assert estimate_source(cfg, "pd") == est
        from crmsync.connectors.pipedrive import PipedriveSource

        from crmsync.source import SourceContext

        ctx = SourceContext(config=cfg, base_dir=tmp_path, cursors=_cursors(tmp_path), stored=stored(tmp_path))
        assert PipedriveSource.estimate(cfg.sources["pd"], ctx) == est
        sb.usage.reset()
        run_sync(cfg)
        actual = client_usage(sb)
        assert (est["requests"], est["tokens"]) == (actual["requests"], actual["tokens"])
        assert est["notes"]  # says what it cannot know (deals that will move)


def test_persistent_server_errors_fail_cleanly_and_the_next_run_completes(tmp_path):
    with Sandbox(seed=9, deals=150, leads=40, rate_limit=FAST, faults=FaultConfig(error_rate=0.3)) as sb:
        cfg = make_config(sb, tmp_path, max_attempts=2, backoff_seconds=0.01)
        failed = run_sync(cfg)
        assert failed.status == "failed" and failed.sources[0].exit_code == 4
        assert "gave up after 2 attempts" in failed.sources[0].error and sb.api_token not in failed.sources[0].error
        sb.faults.config.error_rate = 0.0
        assert run_sync(cfg).status == "succeeded"
        assert compare(sb.export_truth(), stored(tmp_path)) == []


def test_a_wrong_token_fails_the_source_with_exit_code_2_and_never_shows_the_token(tmp_path):
    with Sandbox(seed=2, deals=10, leads=5, rate_limit=FAST) as sb:
        cfg = make_config(sb, tmp_path, api_token="not-the-right-token-123")
        summary = run_sync(cfg)
        outcome = summary.sources[0]
        assert summary.status == "failed" and outcome.exit_code == 2
        assert "api_token" in outcome.error and "not-the-right-token-123" not in outcome.error
        conn = sqlite3.connect(tmp_path / "wh.db")
        assert "not-the-right-token-123" not in str(conn.execute("SELECT * FROM runs").fetchall())
