"""StageCatalog: pipelines and stages derived from deals, on records and on warehouse rows alike."""

from crmsync.connectors.spreadsheet.stages import StageCatalog

from crmsync.warehouse import SPECS

COLUMNS = SPECS["deal"].columns


def row(**fields):
    """A deal's warehouse row with these fields set (the others empty, as the warehouse binds them)."""
    fields = {"source": "s", "source_id": "1", "title": "t", **fields}
    return SPECS["deal"].unfinished_fields()(fields)


def test_derived_ids_on_rows_are_those_on_field_dicts():
    cases = [{"pipeline_name": "Sales", "stage_name": "Won"}, {"stage_name": "Won"},
             {"pipeline_name": "Sales", "stage_name": "Won", "pipeline_id": "7", "stage_id": "71"},
             {"pipeline_name": "", "stage_name": "Lost"}, {"pipeline_name": "Sales"}]
    for fields in cases * 2:  # twice: the second time from the catalog's memory
        by_row = StageCatalog("s").attach_row(row(**fields))
        on_fields = dict(fields)
        StageCatalog("s").attach_fields(on_fields)
        assert by_row == row(**on_fields), fields


def test_a_stage_seen_first_without_a_category_takes_the_first_category_seen_later():
    catalog = StageCatalog("s")
    for category in (None, "won", "lost"):
        catalog.attach_row(row(pipeline_name="Sales", stage_name="Closed", stage_category=category))
    stages = [r for r in catalog.records() if r.entity == "stage"]
    assert [(s.source_id, s.category) for s in stages] == [("Sales/Closed", "won")]
