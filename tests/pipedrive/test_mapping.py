"""API objects to canonical records: custom fields by name with labels (deals and leads), history, times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from crmsync.connectors.pipedrive import convert, history
from crmsync.connectors.pipedrive.fields import FieldSet, names_json, renames

SEG, INT, BUD, REF = "a" * 40, "b" * 40, "c" * 40, "d" * 40
V2_FIELDS = [
    {"field_code": "title", "field_name": "Title", "field_type": "varchar", "is_custom_field": False},
    {"field_code": SEG, "field_name": "Segment", "field_type": "enum", "is_custom_field": True,
     "options": [{"id": 1, "label": "Enterprise"}, {"id": 2, "label": "SMB"}]},
    {"field_code": INT, "field_name": "Interests", "field_type": "set", "is_custom_field": True,
     "options": [{"id": 5, "label": "CRM"}, {"id": 6, "label": "ERP"}]},
    {"field_code": BUD, "field_name": "Budget", "field_type": "monetary", "is_custom_field": True, "options": None},
    {"field_code": REF, "field_name": "Referral code", "field_type": "varchar", "is_custom_field": True},
]
V1_FIELDS = [{"key": f["field_code"], "name": f["field_name"], "field_type": f["field_type"],
              "edit_flag": f["is_custom_field"], "options": f.get("options")} for f in V2_FIELDS]


def meta():
    deal_fields = FieldSet.from_v2(V2_FIELDS)
    return convert.Meta(deal_fields=deal_fields, lead_fields=FieldSet.from_v1(V1_FIELDS),
                        person_fields=FieldSet(), org_fields=FieldSet(), stages={"3": "Proposal"},
                        pipelines={"1": "Sales"}, users={"9": "Ana"}, lead_labels={"u-1": "Hot"})


def test_deal_custom_fields_arrive_under_human_names_with_option_labels():
    d = convert.deal("pd", {"id": 7, "title": "Big", "status": "open", "value": 1200.5, "currency": "eur",
                            "pipeline_id": 1, "stage_id": 3, "owner_id": 9,
                            "add_time": "2026-01-02T03:04:05Z", "update_time": "2026-01-03T00:00:00Z",
                            "custom_fields": {SEG: 1, INT: [5, 6], BUD: {"value": 500, "currency": "USD"},
                                              REF: None}}, meta())
    assert d.custom == {"Segment": "Enterprise", "Interests": ["CRM", "ERP"],
                        "Budget": {"value": 500, "currency": "USD"}}
    assert (d.source_id, d.value, d.currency, d.stage_name, d.pipeline_name, d.owner_name) == (
        "7", Decimal("1200.5"), "EUR", "Proposal", "Sales", "Ana")
    assert d.add_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert d.raw["custom_fields"][SEG] == 1  # the object as received


def test_lead_custom_fields_in_v1_format_get_names_and_labels_too():
    lead = convert.lead("pd", {"id": "adf21080-0e10-11eb-879b-05d71fb426ec", "title": "Jane", "owner_id": 9,
                               "label_ids": ["u-1"], "person_id": 4, "organization_id": None,
                               "value": {"amount": 999, "currency": "USD"}, "is_archived": False,
                               "add_time": "2020-10-14T11:30:36.551Z", "update_time": "2020-10-14T11:30:36.551Z",
                               SEG: "2", INT: "5,6", BUD: 300, BUD + "_currency": "EUR"}, meta())
    assert lead.custom == {"Segment": "SMB", "Interests": ["CRM", "ERP"],
                           "Budget": {"value": 300, "currency": "EUR"}}
    assert lead.labels == ["Hot"] and lead.value == Decimal("999") and lead.status.value == "new"
    assert lead.update_time == datetime(2020, 10, 14, 11, 30, 36, 551000, tzinfo=UTC)


def test_archived_lead_is_archived_and_converted_lead_keeps_its_data():
    m = meta()
    lead = convert.lead("pd", {"id": "L1", "title": "T", "is_archived": True, SEG: "1"}, m)
    assert lead.status.value == "archived"
    deal = convert.deal("pd", {"id": 9, "title": "T", "add_time": "2026-02-01T00:00:00Z",
                               "source_lead_id": "L1"}, m)
    done = convert.converted_lead(lead, "pd", "L1", deal)
    assert (done.status.value, done.converted_deal_id, done.custom) == ("converted", "9", {"Segment": "Enterprise"})
    assert done.converted_at == deal.add_time
    rebuilt = convert.converted_lead(None, "pd", "L2", deal)
    assert rebuilt.title == "T" and "reconstructed" in rebuilt.raw["_crmsync"]
    conv = convert.conversion("pd", deal)
    assert (conv.lead_id, conv.deal_id, conv.method, conv.confidence) == ("L1", "9", "explicit", 1.0)


def test_a_renamed_field_keeps_its_identity_and_the_rename_is_detected():
    before = {"deal": FieldSet.from_v2(V2_FIELDS)}
    renamed = [dict(f, field_name="Market segment") if f["field_code"] == SEG else f for f in V2_FIELDS]
    after = {"deal": FieldSet.from_v2(renamed)}
    assert renames(names_json(before), after) == {"deal": {SEG: ("Segment", "Market segment")}}
    assert renames(names_json(after), after) == {}
    assert after["deal"].values_v2({SEG: 2}) == {"Market segment": "SMB"}


def test_flow_deal_changes_become_stage_changes_with_time_and_actor():
    flow = [
        {"object": "dealChange", "timestamp": "2026-07-28 08:05:56",
         "data": {"id": 3, "item_id": 1, "user_id": 8877, "field_key": "stage_id", "old_value": "10",
                  "new_value": "11", "log_time": "2026-07-28 08:05:56",
                  "additional_data": {"old_value_formatted": "Negotiations", "new_value_formatted": "Signed"}}},
        {"object": "note", "timestamp": "2026-07-28 07:51:29", "data": {"id": 2, "content": "x"}},
        {"object": "dealChange", "timestamp": "2026-07-29 09:00:00",
         "data": {"id": 4, "item_id": 1, "user_id": 8877, "field_key": "status", "old_value": "open",
                  "new_value": "won", "log_time": "2026-07-29 09:00:00"}},
        {"object": "dealChange", "timestamp": "2026-07-29 09:00:00",
         "data": {"id": 5, "item_id": 1, "user_id": 8877, "field_key": "value", "old_value": 1,
                  "new_value": 2, "log_time": "2026-07-29 09:00:00"}},
    ]
    rows = history.from_flow("pd", "1", flow)
    assert [(r.field, r.old_value, r.new_value, r.actor_id) for r in rows] == [
        ("stage_id", "10", "11", "8877"), ("status", "open", "won", "8877")]
    assert rows[0].changed_at == datetime(2026, 7, 28, 8, 5, 56, tzinfo=UTC)
    # the same changes through the changelog get the same ids
    log = [{"field_key": "stage_id", "old_value": 10, "new_value": 11, "actor_user_id": 8877,
            "time": "2026-07-28 08:05:56"}]
    assert history.from_changelog("pd", "1", log)[0].source_id == rows[0].source_id


def test_first_stage_is_known_for_a_deal_that_never_moved():
    m = meta()
    still = convert.deal("pd", {"id": 2, "title": "T", "stage_id": 3, "add_time": "2026-01-01T00:00:00Z",
                                "creator_user_id": 9}, m)
    assert not history.needs_history(still, None)  # never edited after creation
    touched = still.model_copy(update={"update_time": still.add_time.replace(day=3)})
    assert history.needs_history(touched, None, "all") and not history.needs_history(touched, None, "moved")
    first = history.first_stage("pd", still, [])
    assert (first.new_value, first.old_value, first.changed_at, first.evidence) == (
        "3", None, still.add_time, "derived")
    moved = convert.deal("pd", {"id": 2, "title": "T", "stage_id": 4, "add_time": "2026-01-01T00:00:00Z",
                                "stage_change_time": "2026-01-05T00:00:00Z"}, m)
    assert history.needs_history(moved, still) and not history.needs_history(moved, moved)
    changes = history.from_changelog("pd", "2", [{"field_key": "stage_id", "old_value": "3", "new_value": "4",
                                                   "time": "2026-01-05 00:00:00"}])
    assert history.first_stage("pd", moved, changes).new_value == "3"
