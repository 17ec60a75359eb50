"""StoredRecords: connectors read back what the warehouse holds, as canonical models."""

from decimal import Decimal

from crmsync.model import ContactPoint, Deal, Lead, LeadStatus, Person
from crmsync.view import StoredRecords
from crmsync.warehouse import Warehouse


def test_stored_records_round_trip_to_equal_models_and_list_ids(tmp_path):
    records = [
        Deal(source="s", source_id="1", title="A", value=Decimal("9.99"), currency="EUR", custom={"x": [1, 2]}),
        Person(source="s", source_id="p", name="Ana", emails=[ContactPoint(raw="A@x.com", normalized="a@x.com")]),
        Lead(source="s", source_id="l", title="L", status=LeadStatus.WORKING, labels=["hot"]),
        Deal(source="other", source_id="1", title="B"),
    ]
    with Warehouse.open(tmp_path / "w.db") as wh:
        run = wh.start_run("sync")
        with wh.transaction():
            for record in records:
                wh.write_records(run, record.entity, [record])
        stored = StoredRecords(wh.conn, "s")
        assert stored.get("deal", "1") == records[0]
        assert stored.get("person", "p") == records[1]
        assert stored.get("lead", "l") == records[2]
        assert stored.get("deal", "missing") is None
        assert list(stored.ids("deal")) == ["1"] and stored.count("deal") == 1
