"""Messy real-world exports, end to end: files -> spreadsheet source -> sync -> SQLite.

Every fixture here is hand-made to carry one kind of mess; every test checks what
landed in the warehouse (or in quarantine), not just that nothing crashed.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.config import parse_config
from crmsync.errors import InputError
from crmsync.sync import run_sync

DEAL_HEADER = "ID,Title,Status,Value,Currency,Stage,Created,Expected close date\n"


def sync(tmp_path: Path, files: dict[str, bytes | str], **options):
    """Write ``files`` into tmp_path/in, sync them with the generic preset, return (summary, db)."""
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    source = {"type": "spreadsheet", "path": "in/*", "mapping": "spreadsheet", **options}
    cfg = parse_config({"warehouse": {"path": str(tmp_path / "w.db")}, "sources": {"s": source}},
                       path=tmp_path / "c.toml", environ={})
    summary = run_sync(cfg)
    db = sqlite3.connect(tmp_path / "w.db")
    return summary, db


def counts(summary, entity):
    (e,) = [e for e in summary.entities if e.entity == entity]
    return e


def assert_accounted(summary):
    for e in summary.entities:
        assert e.read == e.inserted + e.updated + e.unchanged + e.quarantined, e


# ------------------------------------------------------------------ encodings and layout


def test_cp1252_export_with_spanish_accents_loads_exact_text(tmp_path):
    data = "ID;Name;Domain\n1;Peña & Asociados, S.A.;pena.mx\n2;Café Olé;cafe.es\n".encode("cp1252")
    summary, db = sync(tmp_path, {"organizations.csv": data})
    assert db.execute("select name from organizations order by source_id").fetchall() == [
        ("Peña & Asociados, S.A.",), ("Café Olé",)
    ]
    assert_accounted(summary)


def test_utf8_bom_tab_delimited_export_finds_its_id_column(tmp_path):
    data = "\ufeffID\tTitle\tValue\n1\tAçaí bowl\t1.234,50 €\n".encode()
    _, db = sync(tmp_path, {"deals.tsv": data})
    assert db.execute("select title, value, currency from deals").fetchone() == ("Açaí bowl", "1234.50", "EUR")


def test_quoted_multiline_title_is_kept_and_later_rows_get_true_line_numbers(tmp_path):
    data = DEAL_HEADER + '1,"Line one\nline two",Open,10,EUR,,,\n2,Fine,Open,TBD,EUR,,,\n'
    summary, db = sync(tmp_path, {"deals.csv": data})
    assert db.execute("select title from deals").fetchone() == ("Line one\nline two",)
    assert db.execute('select line, "column", value from quarantine').fetchone() == (4, "Value", "TBD")
    assert_accounted(summary)


def test_blank_rows_and_trailing_empty_columns_are_not_rows(tmp_path):
    data = "ID,Name,,,\n1,Acme,,,\n,,,,\n\n2,Beta,,,\n,,,,\n,,,,\n"
    summary, db = sync(tmp_path, {"organizations.csv": data})
    assert counts(summary, "organization").read == 2
    assert db.execute("select count(*) from organizations").fetchone() == (2,)


def test_duplicate_headers_are_both_kept_in_raw(tmp_path):
    data = "ID,Name,Email,Email\n1,Ana,ana@x.com,ana@y.com\n"
    _, db = sync(tmp_path, {"persons.csv": data})
    (raw, emails) = db.execute("select raw, emails from persons").fetchone()
    assert '"Email":"ana@x.com"' in raw and '"Email (2)":"ana@y.com"' in raw
    assert "ana@x.com" in emails


def test_row_with_more_cells_than_header_is_quarantined_not_shifted(tmp_path):
    data = "ID,Name\n1,Acme\n2,Beta, Inc.,extra\n"
    summary, db = sync(tmp_path, {"organizations.csv": data})
    assert counts(summary, "organization").quarantined == 1
    assert "more cell" in db.execute("select reason from quarantine").fetchone()[0]


# ------------------------------------------------------------------ dates


def test_day_first_column_is_detected_from_its_own_values(tmp_path):
    data = DEAL_HEADER + "1,a,Open,1,EUR,,03/04/2025 10:00,05/06/2025\n2,b,Open,1,EUR,,25/04/2025 09:00,13/06/2025\n"
    _, db = sync(tmp_path, {"deals.csv": data})
    rows = db.execute("select add_time, expected_close_date from deals order by source_id").fetchall()
    assert rows == [("2025-04-03T10:00:00Z", "2025-06-05"), ("2025-04-25T09:00:00Z", "2025-06-13")]


def test_month_first_column_is_detected_from_its_own_values(tmp_path):
    data = DEAL_HEADER + "1,a,Open,1,USD,,04/03/25 10:00 AM,06/05/2025\n2,b,Open,1,USD,,04/25/25 3:05 PM,06/13/2025\n"
    _, db = sync(tmp_path, {"deals.csv": data})
    rows = db.execute("select add_time, expected_close_date from deals order by source_id").fetchall()
    assert rows == [("2025-04-03T10:00:00Z", "2025-06-05"), ("2025-04-25T15:05:00Z", "2025-06-13")]


def test_date_order_option_overrides_detection(tmp_path):
    data = DEAL_HEADER + "1,a,Open,1,EUR,,,03/04/2025\n"
    _, db = sync(tmp_path, {"deals.csv": data}, date_order="MDY")
    assert db.execute("select expected_close_date from deals").fetchone() == ("2025-03-04",)


def test_named_months_iso_with_time_and_excel_serials_all_parse(tmp_path):
    data = DEAL_HEADER + (
        '1,a,Open,1,EUR,,"15 Apr, 2021",2021-04-15 00:00:00\n'
        "2,b,Open,1,EUR,,44301,15 abr 2021\n"
    )
    _, db = sync(tmp_path, {"deals.csv": data})
    rows = db.execute("select add_time, expected_close_date from deals order by source_id").fetchall()
    assert rows == [("2021-04-15T00:00:00Z", "2021-04-15"), ("2021-04-15T00:00:00Z", "2021-04-15")]


def test_naive_times_are_read_in_the_configured_timezone(tmp_path):
    data = DEAL_HEADER + "1,a,Open,1,EUR,,2025-07-01 12:00:00,\n"
    _, db = sync(tmp_path, {"deals.csv": data}, timezone="Europe/Madrid")
    assert db.execute("select add_time from deals").fetchone() == ("2025-07-01T10:00:00Z",)


def test_xlsx_real_date_cells_numbers_and_accents_load(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["ID", "Title", "Value", "Currency", "Created", "Expected close date"])
    ws.append([1, "Ñandú", 1234.5, "EUR", datetime(2025, 5, 6, 7, 8), datetime(2025, 6, 1)])
    ws.append([None, None, None, None, None, None])
    ws.append([2, "Zoë", "$12.5K", None, "2025-05-07", None])
    wb.save(tmp_path / "deals.xlsx")
    summary, db = sync(tmp_path, {"deals.xlsx": (tmp_path / "deals.xlsx").read_bytes()})
    rows = db.execute("select source_id, title, cast(value as real), currency, add_time, expected_close_date "
                      "from deals order by source_id").fetchall()
    assert rows == [("1", "Ñandú", 1234.5, "EUR", "2025-05-06T07:08:00Z", "2025-06-01"),
                    ("2", "Zoë", 12500.0, "USD", "2025-05-07T00:00:00Z", None)]
    assert counts(summary, "deal").read == 2


# ------------------------------------------------------------------ money, booleans, placeholders


@pytest.mark.parametrize(
    ("cell", "amount", "currency"),
    [("$12.5K", "12500", "USD"), ('"€1.234,56"', "1234.56", "EUR"), ('"1,234.56 USD"', "1234.56", "USD"),
     ('"1.234,56 €"', "1234.56", "EUR"), ("-$50", "-50", "USD"), ("", None, None), ("N/A", None, None)],
)
def test_money_formats_from_real_exports(tmp_path, cell, amount, currency):
    _, db = sync(tmp_path, {"deals.csv": f"ID,Title,Value\n1,a,{cell}\n"})
    value, cur = db.execute("select value, currency from deals").fetchone()
    assert (None if value is None else Decimal(value), cur) == (None if amount is None else Decimal(amount), currency)


@pytest.mark.parametrize(("cell", "expected"), [("TRUE", 1), ("FALSE", 0), ("yes", 1), ("no", 0), ("Sí", 1),
                                                ("1", 1), ("0", 0), ("Select", None), ("-", None)])
def test_boolean_words_and_placeholders(tmp_path, cell, expected):
    _, db = sync(tmp_path, {"users.csv": f"ID,Name,Active\n1,Ana,{cell}\n"})
    assert db.execute("select active from users").fetchone() == (expected,)


@pytest.mark.parametrize("placeholder", ["Select", "N/A", "-", "none", ""])
def test_placeholders_become_null_not_text(tmp_path, placeholder):
    _, db = sync(tmp_path, {"organizations.csv": f"ID,Name,Domain,Address\n1,Acme,{placeholder},{placeholder}\n"})
    assert db.execute("select domain, address from organizations").fetchone() == (None, None)


# ------------------------------------------------------------------ accounting and quarantine


def test_every_row_is_loaded_or_quarantined_with_file_row_column_value_and_reason(tmp_path):
    data = DEAL_HEADER + (
        "1,ok,Open,10,EUR,,,\n"
        "2,bad money,Open,ten euros,EUR,,,\n"
        ",no id,Open,10,EUR,,,\n"
        "3,bad status,Pending,10,EUR,,,\n"
        "1,dup id,Open,10,EUR,,,\n"
    )
    summary, db = sync(tmp_path, {"deals.csv": data})
    c = counts(summary, "deal")
    assert (c.read, c.inserted, c.quarantined) == (5, 1, 4)
    rows = db.execute('select file, line, "column", value, reason from quarantine order by line').fetchall()
    assert [r[1] for r in rows] == [3, 4, 5, 6]
    assert rows[0][0].endswith("deals.csv") and rows[0][2:4] == ("Value", "ten euros")
    assert "missing id" in rows[1][4]
    assert rows[2][2:4] == ("Status", "Pending")
    assert "duplicate id" in rows[3][4] and rows[3][3] == "1"
    stored = db.execute("select read, inserted, quarantined from run_counts where entity='deal'").fetchone()
    assert stored == (5, 1, 4)


def test_rerun_of_unchanged_input_changes_nothing(tmp_path):
    files = {"deals.csv": DEAL_HEADER + "1,a,Open,10,EUR,Proposal,2025-01-01 10:00:00,\n2,b,Won,5,EUR,,,\n"}
    sync(tmp_path, files)
    db = sqlite3.connect(tmp_path / "w.db")
    before = db.execute("select * from deals order by source_id").fetchall()
    summary, db = sync(tmp_path, files)
    c = counts(summary, "deal")
    assert (c.inserted, c.updated, c.unchanged) == (0, 0, 2)
    after = db.execute("select * from deals order by source_id").fetchall()
    cols = [d[0] for d in db.execute("select * from deals").description]
    last_run = cols.index("last_run")
    assert [r[:last_run] + r[last_run + 1:] for r in before] == [r[:last_run] + r[last_run + 1:] for r in after]
    assert db.execute("select count(*) from changes").fetchone() == (0,)


def test_editing_one_cell_updates_exactly_that_record_and_records_history(tmp_path):
    rows = "1,a,Open,10,EUR,Proposal,,\n2,b,Open,5,EUR,Proposal,,\n"
    sync(tmp_path, {"deals.csv": DEAL_HEADER + rows})
    edited = rows.replace("2,b,Open,5,EUR,Proposal", "2,b,Open,5,EUR,Negotiation")
    summary, db = sync(tmp_path, {"deals.csv": DEAL_HEADER + edited})
    c = counts(summary, "deal")
    assert (c.updated, c.unchanged) == (1, 1)
    changes = db.execute("select source_id, field, old_value, new_value from changes order by field").fetchall()
    assert ("2", "stage_name", "Proposal", "Negotiation") in changes
    assert ("2", "stage_category", "proposal", "negotiation") in changes
    assert {c[0] for c in changes} == {"2"}


def test_row_deleted_from_the_export_is_marked_removed_not_deleted(tmp_path):
    sync(tmp_path, {"deals.csv": DEAL_HEADER + "1,a,Open,1,EUR,,,\n2,b,Open,1,EUR,,,\n"})
    summary, db = sync(tmp_path, {"deals.csv": DEAL_HEADER + "1,a,Open,1,EUR,,,\n"})
    assert counts(summary, "deal").removed == 1
    assert db.execute("select source_id, removed_run is not null from deals order by 1").fetchall() == [
        ("1", 0), ("2", 1)
    ]


def test_quarantine_holds_only_the_latest_complete_read(tmp_path):
    bad = DEAL_HEADER + "1,a,Open,TBD,EUR,,,\n"
    sync(tmp_path, {"deals.csv": bad})
    _, db = sync(tmp_path, {"deals.csv": bad})
    assert db.execute("select count(*) from quarantine").fetchone() == (1,)
    _, db = sync(tmp_path, {"deals.csv": DEAL_HEADER + "1,a,Open,10,EUR,,,\n"})
    assert db.execute("select count(*) from quarantine").fetchone() == (0,)


def test_file_without_its_id_column_fails_the_source_naming_file_and_columns(tmp_path):
    summary, _ = sync(tmp_path, {"deals.csv": "Key,Title\n1,a\n"})
    (outcome,) = summary.sources
    assert outcome.status == "failed" and outcome.exit_code == InputError.exit_code
    assert "deals.csv: id column 'ID'" in outcome.error and "columns are: Key, Title" in outcome.error
    assert summary.status == "failed"


def test_files_no_entity_matches_are_reported_and_skipped(tmp_path):
    summary, _ = sync(tmp_path, {"notes.csv": "a,b\n1,2\n", "organizations.csv": "ID,Name\n1,A\n"})
    (notice,) = [n for n in summary.sources[0].notices if n["kind"] == "ignored_file"]
    assert "notes.csv" in notice["message"]


def test_unknown_stage_names_are_reported_with_their_row_count(tmp_path):
    data = DEAL_HEADER + "1,a,Open,1,EUR,Demo booked,,\n2,b,Open,1,EUR,Demo booked,,\n"
    summary, db = sync(tmp_path, {"deals.csv": data})
    (notice,) = [n for n in summary.sources[0].notices if n["kind"] == "unmapped_value"]
    assert "'Demo booked'" in notice["message"] and notice["count"] == 2
    assert db.execute("select count(*) from deals where stage_category is null").fetchone() == (2,)


# ------------------------------------------------------------------ property: any bytes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400))
def test_random_csv_bytes_never_crash_a_sync_and_every_row_is_accounted_for(tmp_path_factory, body):
    tmp_path = tmp_path_factory.mktemp("fuzz")
    summary, db = sync(tmp_path, {"organizations.csv": b"ID,Name\n" + body})
    for outcome in summary.sources:
        assert outcome.status == "ok" or outcome.exit_code == InputError.exit_code, outcome.error
    assert_accounted(summary)
    stored = db.execute("select coalesce(sum(read), 0), coalesce(sum(inserted + updated + unchanged + quarantined), 0) "
                        "from run_counts").fetchone()
    assert stored[0] == stored[1]
    loaded = db.execute("select count(*) from organizations").fetchone()[0]
    quarantined = db.execute("select count(*) from quarantine").fetchone()[0]
    assert loaded + quarantined == sum(e.read for e in summary.entities)


# ------------------------------------------------------------------ derived pipelines and stages


def test_deals_export_without_stage_list_gets_pipelines_and_stages_with_categories(tmp_path):
    data = ("ID,Title,Pipeline,Stage\n"
            "1,a,Sales,Propuesta\n2,b,Sales,Demo booked\n3,c,,Prospecting\n4,d,Sales,Propuesta\n")
    summary, db = sync(tmp_path, {"deals.csv": data})
    assert db.execute("select source_id, name, pipeline_id, category from stages order by source_id").fetchall() == [
        ("Default/Prospecting", "Prospecting", "Default", "prospecting"),
        ("Sales/Demo booked", "Demo booked", "Sales", None),
        ("Sales/Propuesta", "Propuesta", "Sales", "proposal"),
    ]
    assert db.execute("select source_id from pipelines order by 1").fetchall() == [("Default",), ("Sales",)]
    assert db.execute("select stage_id from deals where source_id = '4'").fetchone() == ("Sales/Propuesta",)
    assert_accounted(summary)


def test_stage_that_no_deal_uses_any_more_is_marked_removed(tmp_path):
    sync(tmp_path, {"deals.csv": "ID,Title,Stage\n1,a,Proposal\n2,b,Negotiation\n"})
    _, db = sync(tmp_path, {"deals.csv": "ID,Title,Stage\n1,a,Proposal\n2,b,Proposal\n"})
    assert db.execute("select source_id from stages where removed_run is not null").fetchall() == [
        ("Default/Negotiation",)
    ]


def test_module_examples_run():
    import doctest

    from crmsync.connectors.spreadsheet import stages

    assert doctest.testmod(stages).failed == 0


def test_column_of_only_ambiguous_dates_follows_the_region_and_says_so(tmp_path):
    data = DEAL_HEADER + "1,a,Open,1,USD,,,03/04/2025\n2,b,Open,1,USD,,,05/06/2025\n"
    summary, db = sync(tmp_path, {"deals.csv": data}, phone_region="US")
    assert db.execute("select expected_close_date from deals order by source_id").fetchall() == [
        ("2025-03-04",), ("2025-05-06",)
    ]
    (notice,) = [n for n in summary.sources[0].notices if n["kind"] == "date_order"]
    assert "only ambiguous dates" in notice["message"] and "MDY" in notice["message"]


def test_date_that_contradicts_the_column_order_is_quarantined_naming_the_order(tmp_path):
    rows = "".join(f"{i},t,Open,1,EUR,,,{d}\n" for i, d in enumerate(
        ["25/04/2025", "26/04/2025", "27/04/2025", "04/28/2025", "03/04/2025"]))
    summary, db = sync(tmp_path, {"deals.csv": DEAL_HEADER + rows})
    ((value, reason),) = db.execute("select value, reason from quarantine").fetchall()
    assert value == "04/28/2025" and "D/M/Y" in reason
    assert db.execute("select expected_close_date from deals where source_id = '4'").fetchone() == ("2025-04-03",)
    assert counts(summary, "deal").inserted == 4


def test_date_order_conflict_within_the_first_rows_is_reported(tmp_path):
    rows = "1,t,Open,1,EUR,,,25/04/2025\n2,t,Open,1,EUR,,,04/28/2025\n3,t,Open,1,EUR,,,03/04/2025\n"
    summary, db = sync(tmp_path, {"deals.csv": DEAL_HEADER + rows})
    assert any(n["kind"] == "date_order" and "mixes" in n["message"] for n in summary.sources[0].notices)
    assert db.execute("select value from quarantine").fetchall() == [("03/04/2025",)]


def test_month_name_dates_raise_no_date_order_notice(tmp_path):
    data = DEAL_HEADER + '1,a,Open,1,EUR,,"15 Apr, 2021",\n2,b,Open,1,EUR,,"3 May, 2021",\n'
    summary, _ = sync(tmp_path, {"deals.csv": data})
    assert not [n for n in summary.sources[0].notices if n["kind"] == "date_order"]


def test_mapping_timezone_applies_unless_the_config_sets_one(tmp_path):
    (tmp_path / "m.toml").write_text(
        '[mapping]\ntimezone = "Asia/Kolkata"\n[entities.deal]\nid = "ID"\n'
        '[entities.deal.fields]\ntitle = "Title"\nadd_time = "Created"\n'
    )
    files = {"deals.csv": "ID,Title,Created\n1,a,2025-01-01 05:30:00\n"}
    _, db = sync(tmp_path, files, mapping=str(tmp_path / "m.toml"))
    assert db.execute("select add_time from deals").fetchone() == ("2025-01-01T00:00:00Z",)
    other = tmp_path / "source_sets_utc"
    other.mkdir()
    _, db = sync(other, files, mapping=str(tmp_path / "m.toml"), timezone="UTC")
    assert db.execute("select add_time from deals").fetchone() == ("2025-01-01T05:30:00Z",)


# ------------------------------------------------------------------ the process around a sync


def test_sync_leaves_the_garbage_collector_thresholds_as_it_found_them_even_when_interrupted(tmp_path, monkeypatch):
    import gc

    from crmsync import sync as sync_module

    before = gc.get_threshold()
    during = []

    def interrupted(*args):
        during.append(gc.get_threshold())
        raise KeyboardInterrupt

    monkeypatch.setattr(sync_module, "_drain", interrupted)
    (tmp_path / "deals.csv").write_text(DEAL_HEADER + "1,a,Open,1,USD,,,\n", encoding="utf-8")
    cfg = parse_config({"warehouse": {"path": str(tmp_path / "w.db")},
                        "sources": {"s": {"type": "spreadsheet", "path": "deals.csv"}}},
                       path=tmp_path / "c.toml", environ={})
    with pytest.raises(KeyboardInterrupt):
        run_sync(cfg, parallel=False)
    assert during[0][0] > before[0]  # collections are rare while rows are read and written
    assert gc.get_threshold() == before


def test_a_row_gone_from_the_export_is_removed_even_when_a_repeated_id_keeps_the_row_count(tmp_path):
    sync(tmp_path, {"deals.csv": DEAL_HEADER + "1,a,Open,1,EUR,,,\n2,b,Open,1,EUR,,,\n"})
    summary, db = sync(tmp_path, {"deals.csv": DEAL_HEADER + "1,a,Open,1,EUR,,,\n1,again,Open,1,EUR,,,\n"})
    c = counts(summary, "deal")
    assert (c.read, c.unchanged, c.quarantined, c.removed) == (2, 1, 1, 1)
    assert db.execute("select source_id from deals where removed_run is not null").fetchall() == [("2",)]
