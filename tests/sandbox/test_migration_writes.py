"""Record writes take what a migrator sends, and every write moves ``update_time`` (conflict detection)."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import client


def _new(http, api):
    org = http.post(api + "/organizations", json={"name": "Org"}).json()["data"]
    person = http.post(api + "/persons", json={"name": "Ana Gil", "org_id": org["id"]}).json()["data"]
    deal = http.post(api + "/deals", json={"title": "D", "person_id": person["id"]}).json()["data"]
    return org, person, deal


def test_every_write_moves_update_time_and_updated_since_finds_it(empty):
    http, api, v1 = client(empty), empty.base_url + "/api/v2", empty.base_url + "/v1"
    org, person, deal = _new(http, api)
    lead = http.post(v1 + "/leads", json={"title": "L", "person_id": person["id"]}).json()["data"]
    note = http.post(v1 + "/notes", json={"content": "n", "deal_id": deal["id"]}).json()["data"]
    writes = [
        ("PATCH", f"{api}/deals/{deal['id']}", {"value": 5}, f"{api}/deals/{deal['id']}"),
        ("PATCH", f"{api}/deals/{deal['id']}", {}, f"{api}/deals/{deal['id']}"),
        ("PATCH", f"{api}/persons/{person['id']}", {"name": "Ana G."}, f"{api}/persons/{person['id']}"),
        ("PATCH", f"{api}/organizations/{org['id']}", {"name": "Org 2"}, f"{api}/organizations/{org['id']}"),
        ("PATCH", f"{v1}/leads/{lead['id']}", {"title": "L2"}, None),
        ("PUT", f"{v1}/notes/{note['id']}", {"content": "n2"}, f"{v1}/notes/{note['id']}"),
        ("PATCH", f"{api}/pipelines/1", {"name": "Sales"}, f"{api}/pipelines/1"),
        ("PATCH", f"{api}/stages/1", {"deal_probability": 10}, f"{api}/stages/1"),
        ("DELETE", f"{api}/deals/{deal['id']}", None, f"{api}/deals/{deal['id']}"),
    ]
    for method, url, body, read in writes:
        before = http.get(read or url).json()["data"]["update_time"]
        r = http.request(method, url, json=body)
        assert r.status_code == 200, (method, url, r.text)
        after = http.get(read).json()["data"]["update_time"] if read else r.json()["data"]["update_time"]
        assert after > before, (method, url)
    since = http.get(f"{api}/persons/{person['id']}").json()["data"]["update_time"]
    found = http.get(api + "/persons", params={"updated_since": since}).json()["data"]
    assert [p["id"] for p in found] == [person["id"]]


def test_deal_patch_takes_every_field_a_migrator_sends(empty):
    http, api = client(empty), empty.base_url + "/api/v2"
    org, person, deal = _new(http, api)
    key = http.post(api + "/dealFields", json={"field_name": "crmsync key", "field_type": "varchar"}).json()
    key = key["data"]["field_code"]
    body = {
        "owner_id": 3,
        "org_id": org["id"],
        "person_id": person["id"],
        "stage_id": 4,
        "value": 1250.5,
        "currency": "USD",
        "expected_close_date": "2026-12-01",
        "custom_fields": {key: "A:deal:17"},
    }
    out = http.patch(f"{api}/deals/{deal['id']}", json=body).json()["data"]
    assert {k: out[k] for k in body} == body
    assert out["pipeline_id"] == 1 and out["stage_change_time"] is not None


def test_a_closed_deal_can_carry_its_original_close_times(empty):
    http, api = client(empty), empty.base_url + "/api/v2"
    won = http.post(api + "/deals", json={"title": "W", "status": "won", "won_time": "2025-03-04T05:06:07Z"}).json()[
        "data"
    ]
    assert (won["status"], won["won_time"], won["close_time"]) == (
        "won",
        "2025-03-04T05:06:07Z",
        "2025-03-04T05:06:07Z",
    )
    with_first = http.get(f"{api}/deals/{won['id']}", params={"include_fields": "first_won_time"}).json()["data"]
    assert with_first["first_won_time"] == "2025-03-04T05:06:07Z"
    lost = http.post(api + "/deals", json={"title": "L"}).json()["data"]
    body = {"status": "lost", "lost_time": "2025-01-02 03:04:05", "close_time": "2025-01-02T04:04:05+01:00"}
    lost = http.patch(f"{api}/deals/{lost['id']}", json=body).json()["data"]
    assert (lost["lost_time"], lost["close_time"]) == ("2025-01-02T03:04:05Z", "2025-01-02T03:04:05Z")
    fixed = http.patch(f"{api}/deals/{won['id']}", json={"won_time": "2025-03-05T00:00:00Z"}).json()["data"]
    assert fixed["won_time"] == "2025-03-05T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": "x", "won_time": "2025-01-01T00:00:00Z"}, "won_time can only be set"),
        ({"title": "x", "status": "won", "lost_time": "2025-01-01T00:00:00Z"}, "lost_time can only be set"),
        ({"title": "x", "close_time": "2025-01-01T00:00:00Z"}, "close_time can only be set"),
        ({"title": "x", "status": "won", "won_time": "yesterday"}, "date-time"),
        ({"title": "x", "archive_time": "2025-01-01T00:00:00Z"}, "archive_time"),
        ({"title": "x", "add_time": "2025-01-01T00:00:00Z"}, "Unknown parameter(s): add_time"),
        ({"title": "x", "owner_id": 99}, "User not found"),
        ({"title": "x", "person_id": 999}, "Person not found"),
        ({"title": "x", "org_id": 999}, "Organization not found"),
        ({"title": "x", "status": "deleted"}, "deleted"),
    ],
)
def test_deal_bodies_the_api_would_refuse_are_400s_and_create_nothing(empty, check_schema, body, message):
    http = client(empty)
    r = http.post(empty.base_url + "/api/v2/deals", json=body)
    assert r.status_code == 400 and message in check_schema("v2", "/deals", "post", r)["error"]
    assert http.get(empty.base_url + "/api/v2/deals?status=open,won,lost,deleted").json()["data"] == []


def test_persons_and_organizations_take_add_time_on_create_only(empty, check_schema):
    http, api = client(empty), empty.base_url + "/api/v2"
    org = http.post(
        api + "/organizations",
        json={
            "name": "Old Co",
            "add_time": "2021-06-01T09:00:00Z",
            "website": "https://old.example",
            "employee_count": 12,
        },
    )
    org = check_schema("v2", "/organizations", "post", org)["data"]
    assert org["add_time"] == "2021-06-01T09:00:00Z" and org["update_time"] > org["add_time"]
    assert (org["website"], org["employee_count"]) == ("https://old.example", 12)
    emails = [
        {"value": "ana@old.example", "primary": True, "label": "work"},
        {"value": "a@x.es", "primary": False, "label": "home"},
    ]
    phones = [{"value": "+34 600 000 000", "primary": True, "label": "mobile"}]
    body = {"name": "Ana", "add_time": "2021-06-02 10:00:00", "emails": emails, "phones": phones, "job_title": "CFO"}
    person = check_schema("v2", "/persons", "post", http.post(api + "/persons", json=body))["data"]
    assert person["add_time"] == "2021-06-02T10:00:00Z" and person["emails"] == emails and person["phones"] == phones
    assert http.patch(f"{api}/persons/{person['id']}", json={"add_time": "2020-01-01T00:00:00Z"}).status_code == 400
    assert http.post(api + "/persons", json={"name": "x", "add_time": "soon"}).status_code == 400
    listed = http.get(api + "/persons", params={"sort_by": "add_time"}).json()["data"]
    assert listed[0]["id"] == person["id"]


def test_writes_that_point_at_missing_or_deleted_records_are_refused(empty):
    http, api = client(empty), empty.base_url + "/api/v2"
    org, person, deal = _new(http, api)
    http.delete(f"{api}/organizations/{org['id']}")
    assert http.patch(f"{api}/persons/{person['id']}", json={"org_id": org["id"]}).status_code == 400
    assert http.patch(f"{api}/deals/{deal['id']}", json={"org_id": org["id"]}).status_code == 400
    assert http.post(empty.base_url + "/v1/leads", json={"title": "L", "organization_id": org["id"]}).status_code == 400
    assert http.patch(f"{api}/deals/{deal['id']}", json={"owner_id": 5}).status_code == 200
    assert http.patch(f"{api}/deals/{deal['id']}", json={"owner_id": 6}).status_code == 400
