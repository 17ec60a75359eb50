"""crmsync audit: every check and metric against hand-computed answers, the example data, JSON, HTML,
the command, and the HTML report rendered by a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmsync.audit import CHECK_IDS, AuditConfig, Filters, Severity, fails, parse_period, run_audit
from crmsync.audit.cli import app
from crmsync.audit.report_html import to_html
from crmsync.audit.report_json import SCHEMA_VERSION, to_dict
from crmsync.errors import ConfigError

from . import audit_fixtures as fx

ROOT = Path(__file__).resolve().parents[1]
CHARTS = {"funnel", "time_in_stage", "conversion", "pipeline_value", "problems"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.build(tmp_path_factory.mktemp("audit") / "w.db")


def audit(db: Path, **settings):
    filters = {k: settings.pop(k) for k in ("period", "since", "until", "pipeline") if k in settings}
    return run_audit(db, AuditConfig(**settings), Filters.make(as_of=fx.AS_OF, **filters))


def counts(report) -> dict[str, int]:
    return {c.id: c.count for c in report.checks}


def ids(report, check: str) -> list[str]:
    return [r["id"] for r in next(c for c in report.checks if c.id == check).records]


# -- checks: default thresholds ------------------------------------------------------------------

# Worked out from audit_fixtures.py with as_of 2025-07-01 (D9 deleted and D10 vanished never count):
EXPECTED_DEFAULT = {
    "stale_open_deal": 1,           # D1: last update 2025-05-15 ≤ 2025-06-01 (30 days); D2/D3/D8/D11 newer
    "past_close_date": 1,           # D2 expected 2025-06-15 < 2025-07-01; D11 is 07-15, D3 has none
    "close_date_pushed": 1,         # D5 pushed twice; D1 once later + once earlier (not a push)
    "stage_skipped": 1,             # D5 S1→S4 skips 2; D6 S1→S3 skips only 1
    "stage_backwards": 1,           # D6 S3→S2
    "won_without_value": 1,         # D4 value 0
    "lost_without_reason": 1,       # D6
    "missing_amount": 1,            # D3 (open, no value)
    "missing_currency": 1,          # D11 (250, no currency); D3 has no value at all
    "missing_close_date": 1,        # D3
    "missing_owner": 1,             # D3 (D9/D10 excluded)
    "missing_contact": 1,           # D3 (D8 has an org)
    "rotting_deal": 1,              # D2: 21 days in S1 (rotten 10); no other stage has rotten_days
    "duplicate_person": 1,          # p1~p2 same source; p1~other/p9 is cross-source
    "duplicate_organization": 2,    # o1~o2 exact, o1~o3 fuzzy 0.92; o2~o3 0.85 < 0.9
    "invalid_email": 2,             # p1 "bad@", p3 "nope" (not normalized); p4 vanished
    "invalid_phone": 1,             # p1 "123"
    "aging_lead": 2,                # L2 (update 05-10), L4 (added 04-01, never updated); L3 fresh, L5 closed
    "converted_lead_without_deal": 2,  # L6 → D99 not in the warehouse, L7 status only
    "deal_without_lead": 8,         # all in-scope deals but D7 (from L1): D1-D6, D8, D11
    "stage_change_after_close": 1,  # D6
    "probability_mismatch": 1,      # D3 90% vs S4 60%; D11 45% vs 40% within 10 points
    "timeline_violation": 1,        # D4 event_before_creation (D9's is on a deleted deal)
    "reconcile_conflict": 1,        # L7
    "quarantined_rows": 3,          # the latest run of source s (run 2) quarantined 3 rows
}


def test_every_check_has_a_hand_computed_answer(db: Path) -> None:
    assert set(EXPECTED_DEFAULT) == set(CHECK_IDS)
    report = audit(db)
    assert counts(report) == EXPECTED_DEFAULT
    assert all(c.status == "fired" for c in report.checks)


def test_offending_records_are_the_right_ones(db: Path) -> None:
    report = audit(db)
    assert ids(report, "stale_open_deal") == ["D1"]
    stale = next(c for c in report.checks if c.id == "stale_open_deal").records[0]
    assert stale["fields"]["days"] == 47.0  # 2025-05-15 → 2025-07-01
    assert "47 days" in stale["detail"]
    assert ids(report, "past_close_date") == ["D2"]
    assert ids(report, "close_date_pushed") == ["D5"]
    assert ids(report, "stage_skipped") == ["D5"]
    assert ids(report, "stage_backwards") == ["D6"]
    assert ids(report, "won_without_value") == ["D4"]
    assert ids(report, "missing_currency") == ["D11"]
    assert ids(report, "rotting_deal") == ["D2"]
    assert ids(report, "duplicate_person") == ["p1"]
    assert sorted(ids(report, "invalid_email")) == ["p1", "p3"]
    assert ids(report, "aging_lead") == ["L4", "L2"]  # oldest first
    assert sorted(ids(report, "converted_lead_without_deal")) == ["L6", "L7"]
    assert sorted(ids(report, "deal_without_lead")) == sorted(["D1", "D2", "D3", "D4", "D5", "D6", "D8", "D11"])
    assert ids(report, "timeline_violation") == ["D4"]
    quarantined = next(c for c in report.checks if c.id == "quarantined_rows").records
    assert [r["fields"]["line"] for r in quarantined] == [2, 3, 4]
    assert {r["fields"]["run_id"] for r in quarantined} == {2}


@pytest.mark.parametrize(("settings", "check", "expected"), [
    ({"stale_days": 60}, "stale_open_deal", 0),            # D1 is 47 days old
    ({"past_close_grace_days": 20}, "past_close_date", 0),  # D2 06-15 is not before 06-11
    ({"close_date_pushes": 3}, "close_date_pushed", 0),
    ({"close_date_pushes": 1}, "close_date_pushed", 2),    # D5 and D1 (one push later)
    ({"skipped_stages": 1}, "stage_skipped", 2),           # + D6 S1→S3
    ({"default_rotten_days": 15}, "rotting_deal", 4),      # D2 + D1 60 d in S2, D8 30 d, D11 16 d; D3 11 d
    ({"include_cross_source": True}, "duplicate_person", 2),
    ({"fuzzy_min_score": 0.8}, "duplicate_organization", 3),
    ({"fuzzy_min_score": 0.95}, "duplicate_organization", 1),
    ({"lead_aging_days": 60}, "aging_lead", 1),            # only L4 (04-01 ≤ 05-02)
    ({"probability_tolerance": 4}, "probability_mismatch", 2),  # + D11 (5 points)
])
def test_thresholds_are_configurable(db: Path, settings: dict, check: str, expected: int) -> None:
    assert counts(audit(db, **settings))[check] == expected


def test_stale_days_10_by_hand(db: Path) -> None:
    # cutoff 2025-06-21: D1 (05-15), D2 (06-20) qualify; D3 06-25, D8 06-30, D11 06-28 do not.
    assert sorted(ids(audit(db, stale_days=10), "stale_open_deal")) == ["D1", "D2"]


def test_quarantine_tolerance_and_severity_overrides_and_disabled(db: Path) -> None:
    report = audit(db, quarantine_max_rows=3, severity={"deal_without_lead": "error"},
                   disabled=["won_without_value"])
    by_id = {c.id: c for c in report.checks}
    assert by_id["quarantined_rows"].count == 3 and by_id["quarantined_rows"].status == "ok"
    assert by_id["deal_without_lead"].severity is Severity.ERROR
    assert "won_without_value" not in by_id


def test_unknown_check_ids_in_config_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown check id"):
        AuditConfig(disabled=["no_such_check"])
    with pytest.raises(ValueError):
        AuditConfig(stale_dayz=3)


def test_records_are_capped_but_counted(db: Path) -> None:
    report = audit(db, max_records=3)
    c = next(c for c in report.checks if c.id == "deal_without_lead")
    assert c.count == 8 and len(c.records) == 3
    assert to_dict(report)["checks"][CHECK_IDS.index("deal_without_lead")]["truncated"] is True


def test_pipeline_filter_applies_to_deal_checks(db: Path) -> None:
    c = counts(audit(db, pipeline="Q"))
    assert c["stale_open_deal"] == 0 and c["missing_owner"] == 0
    assert c["deal_without_lead"] == 1  # D8
    assert c["aging_lead"] == 2          # leads have no pipeline
    assert counts(audit(db, pipeline="Renewals")) == c  # by name too


def test_worst_severity_and_fail_on(db: Path) -> None:
    report = audit(db)
    assert report.worst is Severity.ERROR
    assert fails(report, "warning") and fails(report, "error")
    calm = audit(db, disabled=["won_without_value", "converted_lead_without_deal"])
    assert calm.worst is Severity.WARNING
    assert fails(calm, "warning") and not fails(calm, "error") and not fails(calm, None)


def test_missing_reconcile_tables_skip_checks(tmp_path: Path) -> None:
    from crmsync.warehouse import Warehouse

    with Warehouse.open(tmp_path / "bare.db"):
        pass
    report = run_audit(tmp_path / "bare.db", AuditConfig(), Filters.make(as_of=fx.AS_OF))
    skipped = {c.id for c in report.checks if c.status == "skipped"}
    assert {"stage_skipped", "duplicate_person", "deal_without_lead", "timeline_violation"} <= skipped
    assert all("crmsync reconcile" in c.note for c in report.checks if c.status == "skipped")
    assert report.worst is None
    assert report.metrics["funnel"] == [] and report.metrics["lead_conversion"] is None


# -- metrics -------------------------------------------------------------------------------------


def test_funnel(db: Path) -> None:
    p, q = audit(db).metrics["funnel"]
    # P: D1 top 2, D2 1, D3 4, D4/D5/D7 5, D6 3 (current S2 but went back from S3), D11 3 → 8 deals
    assert (p["pipeline_id"], p["deals"], p["won"]) == ("P", 8, 3)
    assert [s["reached"] for s in p["stages"]] == [8, 7, 6, 4, 3]
    assert [s["conversion_to_next"] for s in p["stages"]] == [0.875, 0.8571, 0.6667, 0.75, 1.0]
    assert (q["pipeline_id"], q["deals"], q["won"], q["stages"][0]["reached"]) == ("Q", 1, 0, 1)
    assert q["stages"][0]["conversion_to_next"] == 0.0


def test_win_rate_deal_size_cycle_velocity(db: Path) -> None:
    m = audit(db).metrics
    assert m["win_rate"] == {"won": 3, "lost": 1, "rate": 0.75}
    assert m["deal_size"] == [
        {"currency": "USD", "won": 2, "without_value": 0, "total": 1000.0, "average": 500.0},  # D4 0 + D7 1000
        {"currency": "EUR", "won": 1, "without_value": 0, "total": 2000.5, "average": 2000.5},
    ]
    # won deals took 10 (D4), 20 (D5), 30 (D7) days: p90 = 20 + 0.8 × 10
    assert m["sales_cycle"] == {"deals": 3, "mean_days": 20.0, "median_days": 20.0, "p90_days": 28.0}
    velocity = {v["currency"]: v for v in m["velocity"]}
    assert velocity["EUR"]["open_deals"] == 3  # D1, D2, D8
    assert velocity["EUR"]["per_day"] == pytest.approx(3 * 0.75 * 2000.5 / 20, abs=0.01)
    assert velocity["(none)"] == {"currency": "(none)", "open_deals": 2, "win_rate": 0.75, "average_deal_size": None,
                                  "cycle_days": 20.0, "per_day": None}


def test_period_filter_on_closed_deals(db: Path) -> None:
    m = audit(db, period="2025-Q1").metrics
    assert m["win_rate"] == {"won": 2, "lost": 1, "rate": 0.6667}  # D4 (03-11), D5 (01-21); D6 lost 02-11
    assert m["sales_cycle"]["median_days"] == 15.0                  # 10 and 20 days


def test_time_in_stage_and_bottleneck(db: Path) -> None:
    m = audit(db).metrics
    rows = {r["stage_id"]: r for r in m["time_in_stage"]}
    assert rows["S5"] == {**rows["S5"], "spans": 3, "mean_days": 17.0, "median_days": 11.0, "p90_days": 26.2}
    assert (rows["S1"]["spans"], rows["S1"]["median_days"], rows["S1"]["p90_days"]) == (2, 3.0, 3.8)
    assert (rows["S4"]["median_days"], rows["S3"]["median_days"], rows["S2"]["median_days"]) == (5.0, 3.0, 5.0)
    # median × drop-off: S1 3×0.125, S2 5×0.1429, S3 3×0.3333, S4 5×0.25 = 1.25, S5 11×0
    b = m["bottleneck"]
    assert (b["stage_id"], b["median_days"], b["drop_off"], b["score"]) == ("S4", 5.0, 0.25, 1.25)
    q1 = {r["stage_id"]: r for r in audit(db, period="2025-Q1").metrics["time_in_stage"]}
    assert q1["S5"]["spans"] == 2 and q1["S5"]["median_days"] == 10.5  # D7's span entered in April


def test_pipeline_value(db: Path) -> None:
    rows = [(r["currency"], r["stage_id"], r["deals"], r["value"], r["weighted"])
            for r in audit(db).metrics["pipeline_value"]]
    assert rows == [
        ("(none)", "S3", 1, 250.0, 112.5),   # D11 250 × 45%
        ("(none)", "S4", 1, 0.0, 0.0),       # D3 has no value
        ("EUR", "S1", 1, 500.0, 50.0),       # D2 500 × 10%
        ("EUR", "S2", 1, 1000.0, 200.0),     # D1 1000 × 20%
        ("EUR", "Q1", 1, 700.0, 350.0),      # D8 700 × stage Q1's 50% (no deal probability)
    ]
    assert [r["stage_id"] for r in audit(db, pipeline="P").metrics["pipeline_value"]] == ["S3", "S4", "S1", "S2"]


def test_lead_conversion(db: Path) -> None:
    lc = audit(db).metrics["lead_conversion"]
    assert (lc["leads"], lc["converted"], lc["rate"]) == (7, 2, 0.2857)  # L1, L6 of L1-L7 (L8 vanished)
    assert [(r["key"], r["leads"], r["converted"]) for r in lc["by_month"]] == [
        ("2025-01", 1, 0), ("2025-03", 2, 2), ("2025-04", 1, 0), ("2025-05", 1, 0), ("2025-06", 2, 0)]
    assert {r["key"]: (r["leads"], r["converted"]) for r in lc["by_channel"]} == {
        "Paid": (3, 1), "Organic": (3, 1), "(none)": (1, 0)}
    assert {r["key"]: (r["leads"], r["converted"], r["rate"]) for r in lc["by_owner"]} == {
        "Ana": (3, 2, 0.6667), "Ben": (3, 0, 0.0), "(none)": (1, 0, 0.0)}
    assert {r["key"]: (r["leads"], r["converted"]) for r in lc["by_source_name"]} == {
        "Web": (3, 1), "Event": (3, 1), "(none)": (1, 0)}
    march = audit(db, period="2025-03").metrics["lead_conversion"]
    assert (march["leads"], march["converted"], march["rate"]) == (2, 2, 1.0)


def test_periods() -> None:
    from datetime import date

    assert parse_period("2025") == (date(2025, 1, 1), date(2025, 12, 31))
    assert parse_period("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert parse_period("2025-Q4") == (date(2025, 10, 1), date(2025, 12, 31))
    assert parse_period("2025-01-05..2025-02-01") == (date(2025, 1, 5), date(2025, 2, 1))
    for bad in ("2025-13", "last year", "2025-02-30..2025-03-01"):
        with pytest.raises(ConfigError):
            parse_period(bad)
    with pytest.raises(ConfigError, match="after"):
        Filters.make(since="2025-03-01", until="2025-01-01")


# -- JSON ----------------------------------------------------------------------------------------


def test_json_schema_is_stable(db: Path) -> None:
    doc = json.loads(json.dumps(to_dict(audit(db))))
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert set(doc) == {"schema_version", "generated_at", "warehouse", "seconds", "filters", "summary", "checks",
                        "metrics"}
    assert doc["filters"] == {"as_of": "2025-07-01T00:00:00Z", "since": None, "until": None, "pipeline": None}
    assert doc["summary"]["worst"] == "error"
    assert doc["summary"]["checks"] == {"error": 2, "warning": 22, "info": 1, "ok": 0, "skipped": 0}
    assert doc["summary"]["offending_records"] == sum(EXPECTED_DEFAULT.values())
    for check in doc["checks"]:
        assert set(check) == {"id", "title", "entity", "severity", "status", "count", "thresholds", "description",
                              "note", "truncated", "records"}
        for record in check["records"]:
            assert set(record) == {"entity", "source", "id", "label", "detail", "fields"}
    assert set(doc["metrics"]) == {"lead_conversion", "funnel", "win_rate", "deal_size", "sales_cycle", "velocity",
                                   "time_in_stage", "bottleneck", "pipeline_value"}


# -- the shipped example data ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crmsync.config import load_config
    from crmsync.reconcile import run_reconcile
    from crmsync.sync import run_sync

    work = tmp_path_factory.mktemp("examples")
    shutil.copy(ROOT / "config.example.toml", work)
    shutil.copytree(ROOT / "examples", work / "examples")
    cfg = load_config(work / "config.example.toml")
    run_sync(cfg)
    run_reconcile(cfg)
    return cfg.warehouse.path


def test_example_data_gives_a_meaningful_report(example_db: Path) -> None:
    report = run_audit(example_db, AuditConfig(max_records=1000), Filters.make(as_of="2025-10-31"))
    fired = {c.id: c for c in report.checks if c.fired}
    # What a reader of examples/ can verify: 3 rows are quarantined (a deal "TBD", a lead "Hot lead", a person
    # dated 31/13/2025), Emma Brown's "emma@gmail" is not an email, and open deals from spring are stale.
    # (config.example.toml may add other sources, e.g. a Pipedrive sandbox: only more can fire.)
    quarantined = [r for r in fired["quarantined_rows"].records if r["source"] == "examples"]
    assert sorted(r["fields"]["value"] for r in quarantined) == ["31/13/2025 10:00", "Hot lead", "TBD"]
    assert "emma@gmail" in {r["fields"]["value"] for r in fired["invalid_email"].records}
    assert {"stale_open_deal", "past_close_date", "aging_lead", "invalid_phone"} <= set(fired)
    m = report.metrics
    assert m["lead_conversion"]["leads"] >= 20 and m["lead_conversion"]["converted"] > 0
    assert m["funnel"] and m["funnel"][0]["stages"] and m["win_rate"]["won"] > 0
    assert m["deal_size"] and m["time_in_stage"] and m["pipeline_value"] and m["bottleneck"]
    assert report.worst in (Severity.WARNING, Severity.ERROR)


# -- HTML ----------------------------------------------------------------------------------------


def _check_self_contained(html: str) -> None:
    assert html.count("<html") == 1
    assert "http" not in html.lower()  # no URL of any kind: nothing can be fetched
    assert not re.search(r"\b(src|href)\s*=", html, re.I)
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html


def test_html_is_one_self_contained_file_with_an_svg_per_chart(db: Path, example_db: Path) -> None:
    for report in (audit(db), run_audit(example_db, AuditConfig(), Filters.make(as_of="2025-10-31"))):
        html = to_html(report)
        _check_self_contained(html)
        charts = re.findall(r'<svg class="chart" data-chart="(\w+)".*?</svg>', html, re.S)
        assert set(charts) == CHARTS
        for svg in re.findall(r'<svg class="chart".*?</svg>', html, re.S):
            assert 'class="mark"' in svg
        assert "Top problems and their records" in html


def test_html_escapes_data(tmp_path: Path) -> None:
    from crmsync.warehouse import Warehouse

    path = fx.build(tmp_path / "x.db")
    with Warehouse.open(path) as wh:
        wh.conn.execute("UPDATE deals SET title = '<script>alert(1)</script>' WHERE source_id = 'D1'")
    html = to_html(run_audit(path, AuditConfig(), Filters.make(as_of=fx.AS_OF)))
    assert "<script>" not in html and "&lt;script&gt;" in html


# -- the command ---------------------------------------------------------------------------------


def test_command_json_html_and_fail_on(db: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--db", str(db), "--as-of", fx.AS_OF, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["worst"] == "error"
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["--db", str(db), "--as-of", fx.AS_OF, "-f", "html", "-o", str(out),
                                 "--fail-on", "error"])
    assert result.exit_code == 8 and out.read_text().startswith("<!DOCTYPE html>")
    result = runner.invoke(app, ["--db", str(db), "--as-of", fx.AS_OF, "--fail-on", "warning"])
    assert result.exit_code == 8 and "won_without_value" in result.stdout  # worst is error
    result = runner.invoke(app, ["--db", str(db), "--as-of", fx.AS_OF, "--period", "2025-13"])
    assert result.exit_code == 2 and "--period" in result.stderr
    result = runner.invoke(app, ["--db", str(tmp_path / "none.db")])
    assert result.exit_code == 5 and "no warehouse yet" in result.stderr


def test_command_with_config(example_db: Path) -> None:
    config = example_db.parent / "config.example.toml"
    result = CliRunner().invoke(app, ["--config", str(config), "--as-of", "2025-10-31", "--fail-on", "error"])
    assert result.exit_code == 0, result.output
    assert "stale_open_deal" in result.stdout and "funnel" in result.stdout


# -- a real browser ------------------------------------------------------------------------------

INSTALL = "install Debian's chromium: sudo apt-get update && sudo apt-get install -y chromium"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail(f"headless Chromium is needed to check the HTML report renders: {INSTALL}")


def render(html: Path, screenshot: Path | None = None) -> str:
    """The DOM Chromium built from ``html`` (and a 1280×2000 screenshot when asked)."""
    base = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
            "--window-size=1280,2000"]
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", html.as_uri()], check=True, capture_output=True,
                       timeout=120)
    dom = subprocess.run([*base, "--dump-dom", html.as_uri()], check=True, capture_output=True, timeout=120)
    return dom.stdout.decode()


def test_html_renders_in_headless_chromium(example_db: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(to_html(run_audit(example_db, AuditConfig(), Filters.make(as_of="2025-10-31"))))
    shot = tmp_path / "report.png"
    dom = render(page, shot)
    svgs = re.findall(r'<svg class="chart" data-chart="(\w+)"(.*?)</svg>', dom, re.S)
    assert {name for name, _ in svgs} == CHARTS
    for name, body in svgs:
        marks = re.findall(r'<(rect|line|polyline|circle)[^>]*class="mark"', body)
        assert marks, f"chart {name} has nothing drawn"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_audit_of_an_open_connection_is_repeatable_and_leaves_it_as_it_was(db: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    before = conn.execute("PRAGMA cache_size").fetchone()
    first = run_audit(conn, AuditConfig(), Filters.make(as_of=fx.AS_OF))
    second = run_audit(conn, AuditConfig(), Filters.make(as_of=fx.AS_OF))
    assert counts(first) == counts(second) == EXPECTED_DEFAULT
    assert conn.execute("PRAGMA cache_size").fetchone() == before
    assert not conn.execute("SELECT name FROM temp.sqlite_master").fetchall()  # temp tables are gone
    conn.close()
