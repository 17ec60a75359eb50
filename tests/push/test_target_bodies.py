"""``PipedriveTarget``: the exact JSON each create/update sends (custom fields by hash, option ids, lead values)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import responses
from crmsync.connectors.pipedrive.client import PipedriveClient
from crmsync.connectors.pipedrive.target import PipedriveTarget

from crmsync.errors import WriteRejected
from crmsync.push.target import Written

BASE = "https://acme.pipedrive.com"
TOKEN = "target-test-token"
SEGMENT = "a" * 40
TAGS = "b" * 40
BUDGET = "c" * 40
LEAD_NOTE = "d" * 40
PERSON_LEVEL = "e" * 40
KEY = "f" * 40
UPDATED = "2026-11-24T02:00:00Z"


def ok(data, additional=None):
    return {"success": True, "data": data, "additional_data": additional}


def field(code, name, type_="varchar", options=()):
    return {"field_code": code, "field_name": name, "field_type": type_, "is_custom_field": True,
            "options": [{"id": i, "label": label} for i, label in options] or None}


DEAL_FIELDS = [
    {"field_code": "title", "field_name": "Title", "field_type": "varchar", "is_custom_field": False},
    field(SEGMENT, "Segment", "enum", [(11, "SMB"), (12, "Enterprise")]),
    field(TAGS, "Tags", "set", [(21, "Hot"), (22, "Partner"), (23, "Renewal")]),
    field(BUDGET, "Budget", "double"),
    field(LEAD_NOTE, "Lead note"),
]


@pytest.fixture
def target():
    return PipedriveTarget(PipedriveClient(BASE, TOKEN, sleep=lambda s: None, max_attempts=2))


def sent(i=-1):
    return json.loads(responses.calls[i].request.body)


def fields(path, items):
    responses.get(f"{BASE}/api/v2{path}", json=ok(items, {"next_cursor": None}))


@responses.activate
def test_deal_create_sends_v2_body_with_ints_numbers_dates_and_custom_fields_by_hash(target):
    fields("/dealFields", DEAL_FIELDS)
    responses.post(f"{BASE}/api/v2/deals", json=ok({"id": 501, "update_time": UPDATED}))
    written = target.create("deal", {
        "title": "Big deal", "value": Decimal("1200.50"), "currency": "EUR", "status": "won",
        "pipeline_id": "1", "stage_id": "3", "person_id": "12", "org_id": "4", "owner_id": "9",
        "expected_close_date": date(2026, 12, 1), "won_time": datetime(2026, 11, 2, 10, 30, tzinfo=UTC),
        "custom.Segment": "Enterprise", "custom.Tags": ["Hot", "Renewal"], "custom.Budget": Decimal("100"),
        "custom.Lead note": "from the fair",
    })
    assert written == Written("501", UPDATED)
    assert responses.calls[-1].request.method == "POST"
    assert responses.calls[-1].request.url == f"{BASE}/api/v2/deals"
    assert sent() == {
        "title": "Big deal", "value": 1200.5, "currency": "EUR", "status": "won",
        "pipeline_id": 1, "stage_id": 3, "person_id": 12, "org_id": 4, "owner_id": 9,
        "expected_close_date": "2026-12-01", "won_time": "2026-11-02T10:30:00Z",
        "custom_fields": {SEGMENT: 12, TAGS: [21, 23], BUDGET: 100, LEAD_NOTE: "from the fair"},
    }


@responses.activate
def test_deal_update_patches_only_the_given_fields(target):
    responses.patch(f"{BASE}/api/v2/deals/501", json=ok({"id": 501, "update_time": UPDATED}))
    written = target.update("deal", "501", {"stage_id": "4", "value": Decimal("900")})
    assert written == Written("501", UPDATED)
    assert responses.calls[0].request.method == "PATCH"
    assert sent() == {"stage_id": 4, "value": 900}
    assert len(responses.calls) == 1  # no field definitions fetched when no custom value is written


@responses.activate
def test_person_create_sends_emails_phones_and_org_as_int(target):
    fields("/personFields", [field(PERSON_LEVEL, "Level", "enum", [(31, "VIP")])])
    responses.post(f"{BASE}/api/v2/persons", json=ok({"id": 77, "update_time": UPDATED}))
    target.create("person", {
        "name": "Ana Ruiz",
        "emails": [{"value": "ana@x.com", "label": "work", "primary": True}],
        "phones": [{"value": "+34600112233", "label": "mobile", "primary": True}],
        "org_id": "4", "owner_id": "9", "custom.Level": "VIP",
    })
    assert responses.calls[-1].request.url == f"{BASE}/api/v2/persons"
    assert sent() == {
        "name": "Ana Ruiz",
        "emails": [{"value": "ana@x.com", "label": "work", "primary": True}],
        "phones": [{"value": "+34600112233", "label": "mobile", "primary": True}],
        "org_id": 4, "owner_id": 9, "custom_fields": {PERSON_LEVEL: 31},
    }


@responses.activate
def test_person_update_sends_v2_patch(target):
    responses.patch(f"{BASE}/api/v2/persons/77", json=ok({"id": 77, "update_time": UPDATED}))
    target.update("person", "77", {"emails": [{"value": "ana@x.com", "label": None, "primary": True}]})
    assert sent() == {"emails": [{"value": "ana@x.com", "primary": True}]}


@responses.activate
def test_organization_create_wraps_address_and_turns_domain_into_website(target):
    responses.post(f"{BASE}/api/v2/organizations", json=ok({"id": 4, "update_time": UPDATED}))
    target.create("organization", {"name": "Acme SL", "address": "Calle Mayor 1, Madrid", "domain": "acme.es",
                                   "owner_id": "9"})
    assert sent() == {"name": "Acme SL", "address": {"value": "Calle Mayor 1, Madrid"},
                      "website": "https://acme.es", "owner_id": 9}


@responses.activate
def test_organization_update_clearing_address_and_domain_sends_nulls(target):
    responses.patch(f"{BASE}/api/v2/organizations/4", json=ok({"id": 4, "update_time": UPDATED}))
    target.update("organization", "4", {"address": None, "domain": None})
    assert sent() == {"address": None, "website": None}


@responses.activate
def test_lead_create_sends_v1_body_with_value_object_organization_id_and_top_level_custom(target):
    fields("/dealFields", DEAL_FIELDS)
    lead_id = "adf21080-0e10-11eb-879b-05d71fb426ec"
    responses.post(f"{BASE}/api/v1/leads", json=ok({"id": lead_id, "update_time": UPDATED}))
    written = target.create("lead", {
        "title": "Inbound", "person_id": "12", "org_id": "4", "owner_id": "9",
        "value": Decimal("250.75"), "currency": "USD", "expected_close_date": date(2027, 1, 15),
        "custom.Segment": "SMB", "custom.Lead note": "web form",
    })
    assert written == Written(lead_id, UPDATED)
    assert responses.calls[-1].request.url == f"{BASE}/api/v1/leads"
    assert sent() == {
        "title": "Inbound", "person_id": 12, "organization_id": 4, "owner_id": 9,
        "value": {"amount": 250.75, "currency": "USD"}, "expected_close_date": "2027-01-15",
        SEGMENT: 11, LEAD_NOTE: "web form",
    }


@responses.activate
def test_lead_update_sends_v1_patch_with_the_value_object(target):
    lead_id = "adf21080-0e10-11eb-879b-05d71fb426ec"
    responses.patch(f"{BASE}/api/v1/leads/{lead_id}", json=ok({"id": lead_id, "update_time": UPDATED}))
    target.update("lead", lead_id, {"value": Decimal("300"), "currency": "USD", "title": "Inbound (2)"})
    assert responses.calls[0].request.method == "PATCH"
    assert sent() == {"title": "Inbound (2)", "value": {"amount": 300, "currency": "USD"}}


@responses.activate
def test_stage_create_maps_probability_and_rotten_days(target):
    responses.post(f"{BASE}/api/v2/stages", json=ok({"id": 8, "update_time": UPDATED}))
    target.create("stage", {"name": "Proposal", "pipeline_id": "2", "probability": Decimal("60"), "rotten_days": 14})
    assert sent() == {"name": "Proposal", "pipeline_id": 2, "deal_probability": 60, "days_to_rotten": 14,
                      "is_deal_rot_enabled": True}


@responses.activate
def test_stage_update_turning_rot_off(target):
    responses.patch(f"{BASE}/api/v2/stages/8", json=ok({"id": 8, "update_time": UPDATED}))
    target.update("stage", "8", {"rotten_days": None, "probability": Decimal("12.5")})
    assert sent() == {"is_deal_rot_enabled": False, "deal_probability": 12.5}


@responses.activate
def test_pipeline_create_and_note_update(target):
    responses.post(f"{BASE}/api/v2/pipelines", json=ok({"id": 2, "update_time": UPDATED}))
    responses.put(f"{BASE}/api/v1/notes/33", json=ok({"id": 33, "update_time": UPDATED}))
    target.create("pipeline", {"name": "Sales"})
    assert sent() == {"name": "Sales"}
    target.update("note", "33", {"content": "<p>history</p>", "deal_id": "501"})
    assert responses.calls[-1].request.method == "PUT"
    assert sent() == {"content": "<p>history</p>", "deal_id": 501}


@responses.activate
def test_unknown_custom_field_is_rejected_before_any_write(target):
    fields("/dealFields", DEAL_FIELDS)
    with pytest.raises(WriteRejected) as info:
        target.create("deal", {"title": "x", "custom.Nope": "1"})
    assert "Nope" in info.value.api_error
    assert [c.request.method for c in responses.calls] == ["GET"]


@responses.activate
def test_field_definitions_are_fetched_once_per_run(target):
    fields("/dealFields", DEAL_FIELDS)
    responses.post(f"{BASE}/api/v2/deals", json=ok({"id": 1, "update_time": UPDATED}))
    target.create("deal", {"title": "a", "custom.Segment": "SMB"})
    target.create("deal", {"title": "b", "custom.Segment": "SMB"})
    assert [c.request.method for c in responses.calls] == ["GET", "POST", "POST"]


@responses.activate
def test_ensure_key_field_creates_it_once_and_later_writes_use_its_hash(target):
    fields("/dealFields", DEAL_FIELDS)
    responses.post(f"{BASE}/api/v2/dealFields", json=ok({"field_code": KEY, "field_name": "crmsync key"}))
    fields("/dealFields", [*DEAL_FIELDS, field(KEY, "crmsync key")])
    responses.post(f"{BASE}/api/v2/deals", json=ok({"id": 1, "update_time": UPDATED}))
    assert target.ensure_key_field("deal") == Written(f"deal:{KEY}")
    assert sent() == {"field_name": "crmsync key", "field_type": "varchar"}
    target.create("deal", {"title": "a", "custom.crmsync key": "a:deal:7"})
    assert sent() == {"title": "a", "custom_fields": {KEY: "a:deal:7"}}
    assert target.ensure_key_field("deal") is None  # already there: nothing posted
    assert [c.request.method for c in responses.calls].count("POST") == 2


@responses.activate
def test_delete_uses_the_v2_or_v1_path(target):
    responses.delete(f"{BASE}/api/v2/deals/5", json=ok({"id": 5}))
    responses.delete(f"{BASE}/api/v1/leads/abc", json=ok({"id": "abc"}))
    responses.delete(f"{BASE}/api/v2/dealFields/{KEY}", json=ok({"id": 1}))
    target.delete("deal", "5")
    target.delete("lead", "abc")
    target.delete("field", f"deal:{KEY}")
    assert [c.request.url for c in responses.calls] == [
        f"{BASE}/api/v2/deals/5", f"{BASE}/api/v1/leads/abc", f"{BASE}/api/v2/dealFields/{KEY}"]


def test_cost_matches_the_clients_write_costs(target):
    assert target.cost("deal", "create") == (1, 5)
    assert target.cost("deal", "update") == (1, 5)
    assert target.cost("deal", "delete") == (1, 3)
    assert target.cost("lead", "create") == (1, 10)
    assert target.cost("lead", "update") == (1, 10)
    assert target.cost("note", "update") == (1, 10)


@pytest.mark.parametrize("value", ["Gold", ["Hot", "Gold"]])
@responses.activate
def test_unknown_option_label_is_rejected_instead_of_clearing_the_field(target, value):
    fields("/dealFields", DEAL_FIELDS)
    name = "Segment" if isinstance(value, str) else "Tags"
    with pytest.raises(WriteRejected) as info:
        target.update("deal", "5", {f"custom.{name}": value})
    assert "Gold" in info.value.api_error
    assert [c.request.method for c in responses.calls] == ["GET"]


@responses.activate
def test_unlabeled_emails_and_phones_and_rot_off_send_no_nulls_the_v2_spec_forbids(target):
    # v2 specs: emails[].label / phones[].label are non-null strings, days_to_rotten a non-null integer
    responses.post(f"{BASE}/api/v2/persons", json=ok({"id": 77, "update_time": UPDATED}))
    responses.patch(f"{BASE}/api/v2/stages/8", json=ok({"id": 8, "update_time": UPDATED}))
    target.create("person", {"name": "Ana", "emails": [{"value": "ana@x.com", "label": None, "primary": True}],
                             "phones": [{"value": "+34600112233", "label": None, "primary": False}]})
    assert sent() == {"name": "Ana", "emails": [{"value": "ana@x.com", "primary": True}],
                      "phones": [{"value": "+34600112233", "primary": False}]}
    target.update("stage", "8", {"rotten_days": None})
    assert sent() == {"is_deal_rot_enabled": False}
