"""Pipelines, stages and custom fields can be written (v2, and v1 fields) as a migration needs."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import client, spec_cost, spent


def test_pipeline_create_get_update_delete_match_spec_and_costs(empty, specs, check_schema):
    http, base = client(empty), empty.base_url + "/api/v2/pipelines"

    def call(method, url, path, **kw):
        before = spent(empty)
        r = http.request(method, url, **kw)
        assert spent(empty) - before == spec_cost(specs, "v2", path, method), (method, path)
        return check_schema("v2", path, method, r)["data"]

    made = call("POST", base, "/pipelines", json={"name": "Migrated", "is_deal_probability_enabled": True})
    assert made["name"] == "Migrated" and made["is_deal_probability_enabled"] and made["order_nr"] == 1
    assert call("GET", f"{base}/{made['id']}", "/pipelines/{id}") == made
    renamed = call("PATCH", f"{base}/{made['id']}", "/pipelines/{id}", json={"name": "Renamed"})
    assert renamed["name"] == "Renamed" and renamed["update_time"] > made["update_time"]
    assert renamed["add_time"] == made["add_time"]
    listed = {p["id"]: p for p in http.get(base).json()["data"]}
    assert listed[made["id"]]["name"] == "Renamed"
    deleted = check_schema("v2", "/pipelines/{id}", "delete", http.delete(f"{base}/{made['id']}"))
    assert deleted == {"success": True, "data": {"id": made["id"]}}
    assert made["id"] not in {p["id"] for p in http.get(base).json()["data"]}
    gone = http.get(f"{base}/{made['id']}").json()["data"]
    assert gone["is_deleted"] is True and gone["update_time"] > renamed["update_time"]


def test_stage_create_get_update_delete_match_spec_and_costs(empty, specs, check_schema):
    http, base = client(empty), empty.base_url + "/api/v2/stages"

    def call(method, url, path, **kw):
        before = spent(empty)
        r = http.request(method, url, **kw)
        assert spent(empty) - before == spec_cost(specs, "v2", path, method), (method, path)
        return check_schema("v2", path, method, r)["data"]

    body = {"name": "Won back", "pipeline_id": 1, "deal_probability": 40, "is_deal_rot_enabled": True}
    made = call("POST", base, "/stages", json={**body, "days_to_rotten": 9})
    assert made["order_nr"] == 6 and made["days_to_rotten"] == 9 and made["deal_probability"] == 40
    assert call("GET", f"{base}/{made['id']}", "/stages/{id}") == made
    changed = call("PATCH", f"{base}/{made['id']}", "/stages/{id}", json={"is_deal_rot_enabled": False})
    assert changed["days_to_rotten"] is None and changed["update_time"] > made["update_time"]
    in_pipeline = http.get(base, params={"pipeline_id": 1, "sort_by": "order_nr"}).json()["data"]
    assert [s["id"] for s in in_pipeline][-1] == made["id"]
    assert call("DELETE", f"{base}/{made['id']}", "/stages/{id}") == {"id": made["id"]}
    assert http.delete(f"{base}/{made['id']}").status_code == 404
    assert made["id"] not in {s["id"] for s in http.get(base).json()["data"]}
    assert http.get(f"{base}/{made['id']}").json()["data"]["is_deleted"] is True


def test_a_new_pipeline_takes_deals_once_it_has_a_stage(empty):
    http, api = client(empty), empty.base_url + "/api/v2"
    pid = http.post(api + "/pipelines", json={"name": "Renewals"}).json()["data"]["id"]
    refused = http.post(api + "/deals", json={"title": "D", "pipeline_id": pid})
    assert refused.status_code == 400 and refused.json()["error"] == "Pipeline has no stages"
    first = http.post(api + "/stages", json={"name": "Upcoming", "pipeline_id": pid}).json()["data"]
    second = http.post(api + "/stages", json={"name": "Signed", "pipeline_id": pid}).json()["data"]
    assert (first["order_nr"], second["order_nr"]) == (1, 2)
    deal = http.post(api + "/deals", json={"title": "D", "pipeline_id": pid}).json()["data"]
    assert (deal["pipeline_id"], deal["stage_id"]) == (pid, first["id"])
    moved = http.patch(f"{api}/deals/{deal['id']}", json={"stage_id": second["id"]}).json()["data"]
    assert moved["stage_id"] == second["id"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/pipelines", {}, "name"),
        ("/pipelines", {"name": "X", "color": "red"}, "Unknown parameter"),
        ("/pipelines", {"name": "X", "is_deal_probability_enabled": "yes"}, "must be bool"),
        ("/stages", {"name": "X"}, "pipeline_id"),
        ("/stages", {"name": "X", "pipeline_id": 99}, "Pipeline not found"),
        ("/stages", {"name": "X", "pipeline_id": 1, "deal_probability": 101}, "between 0 and 100"),
        ("/stages", {"name": "X", "pipeline_id": True}, "must be int"),
    ],
)
def test_invalid_pipeline_and_stage_bodies_are_400s_in_pipedrive_shape(empty, check_schema, path, body, message):
    r = client(empty).post(empty.base_url + "/api/v2" + path, json=body)
    assert r.status_code == 400
    out = check_schema("v2", path, "post", r)
    assert out["success"] is False and message in out["error"]


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/pipelines/{id}", "/stages/{id}"])
def test_unknown_pipeline_or_stage_ids_are_404s(empty, check_schema, method, path):
    r = client(empty).request(method, empty.base_url + "/api/v2" + path.replace("{id}", "404"), json={"name": "x"})
    assert r.status_code == 404
    assert check_schema("v2", path, method, r)["success"] is False


def test_deleting_a_stage_or_pipeline_that_holds_deals_is_refused_until_they_are_gone(empty):
    http, api = client(empty), empty.base_url + "/api/v2"
    pid = http.post(api + "/pipelines", json={"name": "Second"}).json()["data"]["id"]
    sid = http.post(api + "/stages", json={"name": "Only", "pipeline_id": pid}).json()["data"]["id"]
    deal = http.post(api + "/deals", json={"title": "Holder", "stage_id": sid, "status": "lost"}).json()["data"]
    http.patch(f"{api}/deals/{deal['id']}", json={"is_archived": True})  # archived deals count too
    for url in (f"{api}/stages/{sid}", f"{api}/pipelines/{pid}"):
        r = http.delete(url)
        assert r.status_code == 400 and "1 deal(s)" in r.json()["error"]
    assert http.patch(f"{api}/stages/{sid}", json={"pipeline_id": 1}).status_code == 400
    assert http.get(f"{api}/stages/{sid}").json()["data"]["is_deleted"] is False
    http.patch(f"{api}/deals/{deal['id']}", json={"is_archived": False})
    assert http.delete(f"{api}/deals/{deal['id']}").status_code == 200
    assert http.delete(f"{api}/stages/{sid}").status_code == 200
    assert http.delete(f"{api}/pipelines/{pid}").status_code == 200


def test_deleting_a_pipeline_deletes_its_stages_and_refuses_new_deals(empty):
    http, api = client(empty), empty.base_url + "/api/v2"
    pid = http.post(api + "/pipelines", json={"name": "Short-lived"}).json()["data"]["id"]
    sid = http.post(api + "/stages", json={"name": "Only", "pipeline_id": pid}).json()["data"]["id"]
    assert http.delete(f"{api}/pipelines/{pid}").status_code == 200
    assert http.get(f"{api}/stages/{sid}").json()["data"]["is_deleted"] is True
    assert sid not in {s["id"] for s in http.get(api + "/stages").json()["data"]}
    assert http.post(api + "/deals", json={"title": "x", "stage_id": sid}).status_code == 400
    assert http.post(api + "/deals", json={"title": "x", "pipeline_id": pid}).status_code == 400
    assert http.patch(f"{api}/pipelines/{pid}", json={"name": "back"}).status_code == 404
    assert http.delete(f"{api}/pipelines/{pid}").status_code == 404
    assert http.delete(f"{api}/pipelines/1").status_code == 400  # the company's last pipeline
    journal = [(e["entity"], e["item_id"], e["field_key"]) for e in empty.export_truth()["journal"]]
    assert ("pipeline", pid, "add_time") in journal and ("pipeline", pid, "is_deleted") in journal
    assert ("stage", sid, "is_deleted") in journal


FIELDS = [
    ("deal", "/dealFields", "/deals"),
    ("person", "/personFields", "/persons"),
    ("org", "/organizationFields", "/organizations"),
]


@pytest.mark.parametrize(("entity", "fields", "records"), FIELDS)
def test_a_v2_created_text_field_is_listed_and_accepted_in_record_writes(
    empty, specs, check_schema, entity, fields, records
):
    http, api = client(empty), empty.base_url + "/api/v2"
    before = spent(empty)
    r = http.post(api + fields, json={"field_name": "crmsync key", "field_type": "varchar"})
    assert spent(empty) - before == spec_cost(specs, "v2", fields, "post")
    field = check_schema("v2", fields, "post", r)["data"]
    key = field["field_code"]
    assert len(key) == 40 and field["is_custom_field"] and field["field_name"] == "crmsync key"
    assert key in {f["field_code"] for f in http.get(api + fields).json()["data"]}
    assert key in {f["key"] for f in http.get(empty.base_url + "/v1" + fields).json()["data"]}
    rec = http.post(api + records, json={"title" if entity == "deal" else "name": "R", "custom_fields": {key: "src-1"}})
    assert rec.status_code == 200 and rec.json()["data"]["custom_fields"][key] == "src-1"
    patched = http.patch(f"{api}{records}/{rec.json()['data']['id']}", json={"custom_fields": {key: "src-2"}})
    assert patched.json()["data"]["custom_fields"][key] == "src-2"


@pytest.mark.parametrize(("entity", "fields", "records"), FIELDS)
def test_a_v1_created_enum_field_gets_option_ids_that_record_writes_accept(
    empty, specs, check_schema, entity, fields, records
):
    http = client(empty)
    before = spent(empty)
    r = http.post(
        empty.base_url + "/v1" + fields,
        json={"name": "Tier", "field_type": "enum", "options": [{"label": "Gold"}, {"label": "Silver"}]},
    )
    assert spent(empty) - before == spec_cost(specs, "v1", fields, "post")
    field = check_schema("v1", fields, "post", r)["data"]
    assert [o["label"] for o in field["options"]] == ["Gold", "Silver"] and field["edit_flag"] is True
    gold = field["options"][0]["id"]
    body = {"title" if entity == "deal" else "name": "R", "custom_fields": {field["key"]: gold}}
    rec = http.post(empty.base_url + "/api/v2" + records, json=body).json()["data"]
    assert rec["custom_fields"][field["key"]] == gold
    bad = {**body, "custom_fields": {field["key"]: gold + 100}}
    assert http.post(empty.base_url + "/api/v2" + records, json=bad).status_code == 400


def test_new_deal_fields_apply_to_leads_too(empty):
    http = client(empty)
    key = http.post(empty.base_url + "/api/v2/dealFields", json={"field_name": "Key", "field_type": "text"}).json()
    key = key["data"]["field_code"]
    person = http.post(empty.base_url + "/api/v2/persons", json={"name": "P"}).json()["data"]
    lead = http.post(empty.base_url + "/v1/leads", json={"title": "L", "person_id": person["id"], key: "x"})
    assert lead.status_code == 201 and lead.json()["data"][key] == "x"
    assert key in {f["key"] for f in http.get(empty.base_url + "/v1/leadFields").json()["data"]}


@pytest.mark.parametrize(
    ("version", "body"),
    [
        ("v2", {"field_name": "X"}),
        ("v2", {"field_name": "X", "field_type": "boolean"}),
        ("v2", {"field_name": "X", "field_type": "enum"}),
        ("v2", {"field_name": "X", "field_type": "set", "options": [{"name": "no label"}]}),
        ("v2", {"field_name": "X", "field_type": "varchar", "options": [{"label": "A"}]}),
        ("v2", {"field_name": "", "field_type": "varchar"}),
        ("v1", {"name": "X", "field_type": "varchar", "field_name": "X"}),
        ("v1", {"field_type": "varchar"}),
    ],
)
def test_invalid_field_bodies_are_400s(empty, check_schema, version, body):
    prefix = "/api/v2" if version == "v2" else "/v1"
    r = client(empty).post(empty.base_url + prefix + "/dealFields", json=body)
    assert r.status_code == 400
    assert check_schema(version, "/dealFields", "post", r)["success"] is False


def test_a_field_added_to_a_seeded_company_leaves_generated_records_unchanged(fresh):
    http, base = client(fresh), fresh.base_url + "/api/v2"
    before = http.get(base + "/deals?limit=100").json()["data"]
    key = http.post(base + "/dealFields", json={"field_name": "Key", "field_type": "varchar"}).json()["data"]
    after = http.get(base + "/deals?limit=100").json()["data"]
    assert all(d["custom_fields"][key["field_code"]] is None for d in after)
    assert [
        {**d, "custom_fields": {k: v for k, v in d["custom_fields"].items() if k != key["field_code"]}} for d in after
    ] == before


def test_lead_labels_can_be_created_renamed_used_and_deleted(empty, specs, check_schema):
    http, v1 = client(empty), empty.base_url + "/v1"

    def call(method, url, path, **kw):
        before = spent(empty)
        r = http.request(method, v1 + url, **kw)
        assert spent(empty) - before == spec_cost(specs, "v1", path, method), (method, path)
        return r, check_schema("v1", path, method, r)

    _, made = call("POST", "/leadLabels", "/leadLabels", json={"name": "Partner", "color": "green"})
    label = made["data"]
    assert label["name"] == "Partner" and label in http.get(v1 + "/leadLabels").json()["data"]
    _, renamed = call("PATCH", f"/leadLabels/{label['id']}", "/leadLabels/{id}", json={"color": "dark-gray"})
    assert renamed["data"]["color"] == "dark-gray" and renamed["data"]["update_time"] > label["update_time"]
    org = http.post(empty.base_url + "/api/v2/organizations", json={"name": "O"}).json()["data"]
    lead = http.post(v1 + "/leads", json={"title": "L", "organization_id": org["id"], "label_ids": [label["id"]]})
    assert lead.status_code == 201
    r, _ = call("DELETE", f"/leadLabels/{label['id']}", "/leadLabels/{id}")
    assert r.status_code == 400 and "1 lead(s)" in r.json()["error"]
    http.patch(f"{v1}/leads/{lead.json()['data']['id']}", json={"label_ids": []})
    r, gone = call("DELETE", f"/leadLabels/{label['id']}", "/leadLabels/{id}")
    assert gone == {"success": True, "data": {"id": label["id"]}}
    assert label["id"] not in {x["id"] for x in http.get(v1 + "/leadLabels").json()["data"]}
    r, missing = call("PATCH", f"/leadLabels/{label['id']}", "/leadLabels/{id}", json={"name": "x"})
    assert r.status_code == 404 and missing["success"] is False
    for body in ({"name": "x"}, {"name": "x", "color": "teal"}, {"name": "", "color": "red"}):
        assert http.post(v1 + "/leadLabels", json=body).status_code == 400


@pytest.mark.parametrize(("entity", "fields", "records"), FIELDS)
def test_a_deleted_custom_field_leaves_lists_records_and_writes(empty, specs, check_schema, entity, fields, records):
    http, api = client(empty), empty.base_url + "/api/v2"
    key = http.post(api + fields, json={"field_name": "Tmp", "field_type": "varchar"}).json()["data"]["field_code"]
    rec = http.post(api + records, json={"title" if entity == "deal" else "name": "R", "custom_fields": {key: "v"}})
    rec = rec.json()["data"]
    path = fields + "/{field_code}"
    got = check_schema("v2", path, "get", http.get(f"{api}{fields}/{key}"))["data"]
    assert got["field_code"] == key
    before = spent(empty)
    deleted = http.delete(f"{api}{fields}/{key}")
    assert spent(empty) - before == spec_cost(specs, "v2", path, "delete")
    assert check_schema("v2", path, "delete", deleted)["data"]["field_code"] == key
    assert key not in {f["field_code"] for f in http.get(api + fields).json()["data"]}
    assert key not in http.get(f"{api}{records}/{rec['id']}").json()["data"]["custom_fields"]
    assert http.patch(f"{api}{records}/{rec['id']}", json={"custom_fields": {key: "w"}}).status_code == 400
    for method in ("GET", "DELETE"):
        r = http.request(method, f"{api}{fields}/{key}")
        assert r.status_code == 404 and check_schema("v2", path, method, r)["success"] is False
    assert http.delete(f"{api}{fields}/{'title' if entity == 'deal' else 'name'}").status_code == 400


def test_deleting_a_seeded_custom_field_changes_no_other_generated_value(fresh):
    http, base = client(fresh), fresh.base_url + "/api/v2"
    before = http.get(base + "/deals?limit=100").json()["data"]
    gone = fresh.store.catalog.custom_fields("deal")[0]["key"]
    assert http.delete(f"{base}/dealFields/{gone}").status_code == 200
    after = http.get(base + "/deals?limit=100").json()["data"]
    assert [{**d, "custom_fields": {k: v for k, v in d["custom_fields"].items() if k != gone}} for d in before] == after
