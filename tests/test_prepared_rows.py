"""The spreadsheet source turns its rows straight into warehouse rows (SpreadsheetSource.read_prepared:
EntityMapping.convert_stored + TableSpec.unfinished_fields), skipping the record objects. These tests pin
that this shortcut yields exactly what building the records and preparing them would (Source.read_prepared's
generic path), item for item, on every kind of export the project has fixtures for."""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from crmsync.connectors.spreadsheet import SpreadsheetSource
from crmsync.connectors.spreadsheet.reader import open_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.config import parse_config
from crmsync.mapping import Rejection, load_mapping
from crmsync.model import ENTITIES
from crmsync.source import PreparedRows, SourceContext, prepare_records
from crmsync.sync import _origin_fields
from crmsync.warehouse import SPECS, finish_row, raw_json
from tests.test_parallel_sync import messy_exports

ROOT = Path(__file__).parent.parent
PRESETS = Path(__file__).parent / "fixtures" / "presets"


def source(path: str, mapping: str, **options) -> SpreadsheetSource:
    cfg = parse_config({"sources": {"s": {"type": "spreadsheet", "path": path, "mapping": mapping, **options}}},
                       path=ROOT / "c.toml", environ={})
    context = SourceContext(config=cfg, base_dir=cfg.base_dir)
    return SpreadsheetSource.from_config(cfg.sources["s"], context)


def both_ways(make) -> tuple[list, list]:
    """(records prepared one by one, rows prepared without records): each from a fresh source."""
    generic = list(prepare_records(make().read(), SpreadsheetSource.prepared_rows))
    direct = list(make().read_prepared())
    return generic, direct


def same(a: object, b: object) -> bool:
    """Equality where NaN (the empty-column marker, see TableSpec.params) equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, PreparedRows) and isinstance(b, PreparedRows):  # compared as written: finished
        return a.entity == b.entity and same(finished(a), finished(b))
    return a == b


def finished(prepared: PreparedRows) -> list[tuple]:
    """The rows as written, with their origins as the quarantine would read them."""
    raw_of = raw_json(prepared.raw_columns) if prepared.raw_columns is not None else None
    return [(params, _origin_fields(origin)) for params, origin in (finish_row(row, raw_of) for row in prepared.rows)]


def assert_same_items(generic: list, direct: list) -> None:
    assert [type(i).__name__ for i in generic] == [type(i).__name__ for i in direct]
    for g, d in zip(generic, direct, strict=True):
        assert same(g, d), (g, d)


@pytest.mark.parametrize(("vendor", "mapping", "options"), [
    ("salesforce", "salesforce_export", {"timezone": "America/Los_Angeles", "default_currency": "USD"}),
    ("pipedrive", "pipedrive_export", {"timezone": "Europe/Madrid", "phone_region": "ES"}),
    ("hubspot", "hubspot_export", {"timezone": "America/New_York"}),
    ("zoho", "zoho_export", {"timezone": "Asia/Kolkata"}),
])
def test_vendor_exports_give_the_same_rows_with_or_without_records(vendor, mapping, options):
    generic, direct = both_ways(lambda: source(str(PRESETS / vendor / "*"), mapping, **options))
    assert sum(len(i.rows) for i in direct if isinstance(i, PreparedRows)) > 10
    assert_same_items(generic, direct)


def test_shipped_examples_give_the_same_rows_with_or_without_records():
    generic, direct = both_ways(lambda: source(str(ROOT / "examples" / "*"), "spreadsheet"))
    assert {i.entity for i in direct if isinstance(i, PreparedRows)} >= {"deal", "person", "lead", "stage"}
    # CSV rows travel as bare cells under their headers; the XLSX leads as the dict of typed cells.
    assert {i.entity for i in direct if isinstance(i, PreparedRows) and i.raw_columns} >= {"deal", "person"}
    assert all(i.raw_columns is None for i in direct if isinstance(i, PreparedRows) and i.entity == "lead")
    assert_same_items(generic, direct)


def test_messy_exports_give_the_same_rows_and_quarantine_with_or_without_records(tmp_path):
    messy_exports(tmp_path / "in")
    generic, direct = both_ways(lambda: source(str(tmp_path / "in" / "*"), "spreadsheet", phone_region="ES"))
    assert any(type(i).__name__ == "QuarantineRow" for i in direct)
    assert_same_items(generic, direct)


def test_every_entity_prepares_defaulted_fields_as_its_built_record_would():
    for entity, model in ENTITIES.items():
        spec = SPECS[entity]
        required = {name: f.annotation for name, f in model.model_fields.items() if f.is_required()}
        fields = {name: SAMPLE.get(kind, "x") for name, kind in required.items()}
        fields.update(source="s", source_id="1")
        assert same(spec.unfinished_fields()(fields), spec.unfinished()(model.build(fields).__dict__)), entity


SAMPLE = {datetime: datetime(2024, 5, 1, 12, tzinfo=UTC)}

_CELLS = {
    "ID": st.sampled_from(["1", "2", "2", " 3 ", "", "N/A", "x-9"]),
    "Title": st.sampled_from(["Deal", "", "Select", "Peña, S.A.", "  spaced  "]),
    "Status": st.sampled_from(["Open", "Won", "Lost", "Ganado", "", "weird"]),
    "Value": st.sampled_from(["1.234,56 €", "$12.5K", "1,234.56 USD", "-5", "", "abc", "0100.50", "1.234",
                              "61923.63", "0.50", "-0", "0", "007", "1.2345", " 12 ", "5."]),
    "Currency": st.sampled_from(["EUR", "usd", "", "XXX?", "MXN"]),
    "Pipeline": st.sampled_from(["Sales", "", "Ventas"]),
    "Stage": st.sampled_from(["Prospecting", "Negociación", "Etapa rara", "", "Won"]),
    "Created": st.sampled_from(["2024-01-05 10:00:00", "15/04/2021 14:30", "45000.5", "", "soon", "2021-02-30"]),
    "Expected close date": st.sampled_from(["2024-12-01", "15 Apr, 2021", "04/15/21", "", "never"]),
    "Probability": st.sampled_from(["50", "50%", "", "high"]),
    "Lead source": st.sampled_from(["Web", "", "-"]),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries(_CELLS), min_size=1, max_size=12))
def test_random_messy_deal_rows_give_the_same_rows_with_or_without_records(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("deals")
    header = list(_CELLS)
    lines = [",".join(header)] + [",".join('"' + r[h].replace('"', '""') + '"' for h in header) for r in rows]
    (folder / "deals.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    generic, direct = both_ways(lambda: source(str(folder / "deals.csv"), "spreadsheet"))
    assert_same_items(generic, direct)
    shutil.rmtree(folder)


def _csv_files_with_mappings(tmp_path: Path) -> list[tuple[Path, str, dict]]:
    messy_exports(tmp_path / "messy")
    files = [(p, "spreadsheet", {"phone_region": "ES"}) for p in sorted((tmp_path / "messy").glob("*.csv"))]
    files += [(p, "spreadsheet", {}) for p in sorted((ROOT / "examples").glob("*.csv"))]
    for vendor, mapping in [("salesforce", "salesforce_export"), ("pipedrive", "pipedrive_export"),
                            ("hubspot", "hubspot_export"), ("zoho", "zoho_export")]:
        files += [(p, mapping, {"timezone": "Europe/Madrid"}) for p in sorted((PRESETS / vendor).glob("*.csv"))]
    return files


def test_rows_converted_by_position_equal_the_field_dicts_made_into_rows(tmp_path):
    """EntityMapping.convert_cells against convert_stored + unfinished_fields, row by row, on every CSV
    fixture (also files whose rows feed secondary entities, which the source reads the dict way)."""
    compared = rejected = 0
    for path, mapping_name, options in _csv_files_with_mappings(tmp_path):
        src = source(str(path), mapping_name, **options)
        mapping = load_mapping(mapping_name, base_dir=ROOT, overrides={
            "timezone": options.get("timezone"), "phone_region": options.get("phone_region") or "US"})
        em = mapping.entity_for_file(path.name)
        if em is None:
            continue
        with open_table(str(path)) as table:
            list(src._settle_date_orders(path.name, table, em))
        with open_table(str(path)) as table:
            headers = table.headers
            em.bind(headers)
            to_row = SPECS[em.entity].unfinished_fields()
            for item in table.cell_rows():
                if type(item) is not tuple:
                    continue
                _, cells = item
                by_position = em.convert_cells(cells, "s")
                fields = em.convert_stored(dict(zip(headers, cells, strict=True)), "s")
                if type(fields) is Rejection:
                    assert by_position == fields, (path.name, cells)
                    rejected += 1
                    continue
                assert same(by_position, to_row({**fields, "raw": tuple(cells)})), (path.name, cells)
                compared += 1
    assert compared > 250 and rejected > 10, (compared, rejected)
