"""Notes are stored, listed with their filters and pages, edited and deleted as the v1 spec says."""

from __future__ import annotations

import time

import pytest

from tests.sandbox.conftest import client, spec_cost, spent


def _call(sb, specs, check_schema, method, url, path, **kw):
    before = spent(sb)
    r = client(sb).request(method, sb.base_url + "/v1" + url, **kw)
    assert spent(sb) - before == spec_cost(specs, "v1", path, method), (method, path)
    return r, check_schema("v1", path, method, r)


def test_note_create_get_update_delete_match_spec_and_costs(fresh, specs, check_schema):
    r, body = _call(
        fresh,
        specs,
        check_schema,
        "POST",
        "/notes",
        "/notes",
        json={
            "content": "<p>Stage history</p>",
            "deal_id": 4,
            "pinned_to_deal_flag": 1,
            "add_time": "2025-02-03 04:05:06",
        },
    )
    note = body["data"]
    assert r.status_code == 200 and note["deal_id"] == 4 and note["pinned_to_deal_flag"] is True
    assert note["add_time"] == "2025-02-03 04:05:06" and note["deal"]["title"] and note["user"]["is_you"]
    _, got = _call(fresh, specs, check_schema, "GET", f"/notes/{note['id']}", "/notes/{id}")
    assert got["data"] == note
    _, put = _call(
        fresh,
        specs,
        check_schema,
        "PUT",
        f"/notes/{note['id']}",
        "/notes/{id}",
        json={"content": "Edited", "person_id": 2},
    )
    assert put["data"]["content"] == "Edited" and put["data"]["person"]["name"] and put["data"]["deal_id"] == 4
    assert put["data"]["update_time"] > note["update_time"] and put["data"]["add_time"] == note["add_time"]
    _, deleted = _call(fresh, specs, check_schema, "DELETE", f"/notes/{note['id']}", "/notes/{id}")
    assert deleted == {"success": True, "data": True}
    truth = {n["id"]: n for n in fresh.export_truth()["notes"]}
    assert truth[note["id"]]["active_flag"] is False and truth[note["id"]]["content"] == "Edited"
    for method in ("GET", "PUT", "DELETE"):
        r, gone = _call(
            fresh, specs, check_schema, method, f"/notes/{note['id']}", "/notes/{id}", json={"content": "x"}
        )
        assert r.status_code == 404 and gone["success"] is False


def test_notes_list_filters_by_target_and_pages_like_v1(fresh, specs, check_schema):
    http, base = client(fresh), fresh.base_url + "/v1/notes"
    made = [http.post(base, json={"content": f"n{i}", "deal_id": 5 if i % 2 else 6}).json()["data"] for i in range(7)]
    lead = http.get(fresh.base_url + "/v1/leads?limit=1").json()["data"][0]
    on_lead = http.post(base, json={"content": "lead note", "lead_id": lead["id"]}).json()["data"]
    on_org = http.post(base, json={"content": "org note", "org_id": 3, "pinned_to_organization_flag": 1}).json()["data"]
    r, first = _call(fresh, specs, check_schema, "GET", "/notes?deal_id=5&limit=2", "/notes")
    assert [n["id"] for n in first["data"]] == [made[1]["id"], made[3]["id"]]
    assert first["additional_data"]["pagination"] == {
        "start": 0,
        "limit": 2,
        "more_items_in_collection": True,
        "next_start": 2,
    }
    rest = http.get(base, params={"deal_id": 5, "start": 2, "limit": 2}).json()
    assert [n["id"] for n in rest["data"]] == [made[5]["id"]]
    assert rest["additional_data"]["pagination"]["more_items_in_collection"] is False
    assert [n["id"] for n in http.get(base, params={"lead_id": lead["id"]}).json()["data"]] == [on_lead["id"]]
    pinned = http.get(base, params={"pinned_to_organization_flag": 1}).json()["data"]
    assert [n["id"] for n in pinned] == [on_org["id"]]
    everything = http.get(base, params={"limit": 500}).json()["data"]
    assert len(everything) == 9
    newest = http.get(base, params={"sort": "id DESC", "limit": 1}).json()["data"]
    assert newest[0]["id"] == on_org["id"]


def test_notes_list_date_filters_use_add_time_and_updated_since_update_time(fresh):
    http, base = client(fresh), fresh.base_url + "/v1/notes"
    old = http.post(base, json={"content": "old", "deal_id": 1, "add_time": "2024-03-01 12:00:00"}).json()["data"]
    new = http.post(base, json={"content": "new", "deal_id": 1}).json()["data"]
    march = http.get(base, params={"start_date": "2024-03-01", "end_date": "2024-03-01"}).json()["data"]
    assert [n["id"] for n in march] == [old["id"]]
    since = new["update_time"].replace(" ", "T") + "Z"
    assert [n["id"] for n in http.get(base, params={"updated_since": since}).json()["data"]] == [new["id"]]
    assert http.get(base, params={"start_date": "March"}).status_code == 400
    assert http.get(base, params={"sort": "title ASC"}).status_code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"deal_id": 1}, "content"),
        ({"content": "orphan"}, "needs one of"),
        ({"content": "x", "deal_id": 99999}, "Deal not found"),
        ({"content": "x", "lead_id": "00000000-0000-4000-8000-000000000000"}, "Lead not found"),
        ({"content": "x", "project_id": 1}, "Project not found"),
        ({"content": "x", "person_id": 1, "pinned_to_deal_flag": 1}, "needs 'deal_id'"),
        ({"content": "x", "deal_id": 1, "add_time": "2024-01-01T00:00:00Z"}, "YYYY-MM-DD HH:MM:SS"),
        ({"content": "x", "deal_id": 1, "user_id": 77}, "User not found"),
    ],
)
def test_invalid_notes_are_400s(fresh, check_schema, body, message):
    r = client(fresh).post(fresh.base_url + "/v1/notes", json=body)
    assert r.status_code == 400
    assert message in check_schema("v1", "/notes", "post", r)["error"]


def test_only_an_admin_may_write_a_note_in_someone_elses_name(fresh):
    admin, base = client(fresh), fresh.base_url + "/v1/notes"
    note = admin.post(base, json={"content": "x", "deal_id": 1, "user_id": 3}).json()["data"]
    assert note["user_id"] == 3 and note["user"]["is_you"] is False and note["last_update_user_id"] == 1
    other = client(fresh)
    other.headers["x-api-token"] = fresh.tokens[2]
    assert other.post(base, json={"content": "x", "deal_id": 1, "user_id": 3}).status_code == 400
    assert other.post(base, json={"content": "x", "deal_id": 1, "user_id": 2}).status_code == 200


def test_deleting_a_deal_keeps_its_notes(fresh):
    http = client(fresh)
    note = http.post(fresh.base_url + "/v1/notes", json={"content": "kept", "deal_id": 9}).json()["data"]
    assert http.delete(fresh.base_url + "/api/v2/deals/9").status_code == 200
    assert http.get(f"{fresh.base_url}/v1/notes/{note['id']}").json()["data"]["deal_id"] == 9


def test_converting_a_lead_moves_its_notes_to_the_new_deal(fresh):
    http = client(fresh)
    lead = http.get(fresh.base_url + "/v1/leads?limit=1").json()["data"][0]
    body = {"content": "from the lead", "lead_id": lead["id"], "pinned_to_lead_flag": 1}
    note = http.post(fresh.base_url + "/v1/notes", json=body).json()["data"]
    url = f"{fresh.base_url}/api/v2/leads/{lead['id']}/convert"
    conv = http.post(url + "/deal", json={}).json()["data"]["conversion_id"]
    for _ in range(200):
        status = http.get(f"{url}/status/{conv}").json()["data"]
        if status["status"] == "completed":
            break
        time.sleep(0.02)
    moved = http.get(f"{fresh.base_url}/v1/notes/{note['id']}").json()["data"]
    assert moved["deal_id"] == status["deal_id"] and moved["lead_id"] is None
    assert moved["pinned_to_deal_flag"] is True and moved["pinned_to_lead_flag"] is False
    assert moved["update_time"] > note["update_time"]
