"""Writes change the data the way Pipedrive does, and lead conversion is asynchronous."""

from __future__ import annotations

import time

from tests.sandbox.conftest import client


def test_deal_lifecycle_create_move_win_reopen_delete(fresh):
    http, base = client(fresh), fresh.base_url + "/api/v2/deals"
    deal = http.post(base, json={"title": "Nueva", "value": 500, "currency": "EUR", "pipeline_id": 2}).json()["data"]
    assert deal["pipeline_id"] == 2 and deal["stage_id"] == 6 and deal["origin"] == "API"
    moved = http.patch(f"{base}/{deal['id']}", json={"stage_id": 8}).json()["data"]
    assert moved["stage_change_time"] is not None
    won = http.patch(f"{base}/{deal['id']}", json={"status": "won"}).json()["data"]
    assert won["won_time"] and won["close_time"]
    reopened = http.patch(f"{base}/{deal['id']}", json={"status": "open"}).json()["data"]
    assert reopened["won_time"] is None
    assert http.delete(f"{base}/{deal['id']}").json() == {"success": True, "data": {"id": deal["id"]}}
    assert http.get(f"{base}/{deal['id']}").json()["data"]["is_deleted"] is True
    ids = {d["id"] for d in http.get(base + "?status=deleted&limit=500").json()["data"]}
    assert deal["id"] in ids
    flow = http.get(f"{fresh.base_url}/v1/deals/{deal['id']}/flow").json()["data"]
    keys = [i["data"]["field_key"] for i in flow]
    assert keys[0] == "status" and "stage_id" in keys and keys[-1] == "add_time"
    assert flow[-2]["data"]["change_source"] == "api"


def test_bad_writes_are_400s(fresh):
    http, base = client(fresh), fresh.base_url + "/api/v2"
    assert http.post(base + "/deals", json={}).status_code == 400
    assert http.post(base + "/deals", json={"title": "x", "stage_id": 999}).status_code == 400
    assert http.post(base + "/deals", json={"title": "x", "custom_fields": {"f" * 40: 1}}).status_code == 400
    assert http.patch(base + "/deals/99999", json={"title": "x"}).status_code == 404
    assert http.post(fresh.base_url + "/v1/leads", json={"title": "no person"}).status_code == 400


def test_archived_deals_refuse_edits_until_unarchived(fresh):
    http, base = client(fresh), fresh.base_url + "/api/v2/deals"
    deal = http.post(base, json={"title": "A"}).json()["data"]
    http.patch(f"{base}/{deal['id']}", json={"status": "lost"})
    assert http.patch(f"{base}/{deal['id']}", json={"is_archived": True}).json()["data"]["is_archived"]
    assert http.patch(f"{base}/{deal['id']}", json={"title": "B"}).status_code == 400
    archived = {d["id"] for d in http.get(base + "/archived?limit=500&status=lost").json()["data"]}
    assert deal["id"] in archived
    assert http.patch(f"{base}/{deal['id']}", json={"is_archived": False}).status_code == 200


def test_custom_fields_write_in_v2_shape_and_read_back_in_v1(fresh):
    http = client(fresh)
    cat = fresh.store.catalog
    enum = next(f for f in cat.custom_fields("deal") if f["field_type"] == "enum")
    money = next(f for f in cat.custom_fields("deal") if f["field_type"] == "monetary")
    body = {
        "title": "CF",
        "custom_fields": {enum["key"]: enum["options"][1]["id"], money["key"]: {"value": 12, "currency": "USD"}},
    }
    deal = http.post(fresh.base_url + "/api/v2/deals", json=body).json()["data"]
    assert deal["custom_fields"][money["key"]] == {"value": 12, "currency": "USD"}
    recent = http.get(fresh.base_url + "/v1/recents?since_timestamp=2026-09-30%2000:00:00&items=deal").json()
    v1 = next(x["data"] for x in recent["data"] if x["id"] == deal["id"])
    assert v1[enum["key"]] == str(enum["options"][1]["id"]) and v1[money["key"] + "_currency"] == "USD"


def test_leads_create_patch_delete(fresh):
    http, base = client(fresh), fresh.base_url + "/v1/leads"
    label = fresh.store.catalog.lead_labels[0]["id"]
    lead = http.post(
        base,
        json={"title": "L", "organization_id": 1, "label_ids": [label], "value": {"amount": 10, "currency": "EUR"}},
    ).json()["data"]
    assert lead["source_name"] == "API" and lead["origin"] == "API"
    patched = http.patch(f"{base}/{lead['id']}", json={"title": "L2", "value": None}).json()["data"]
    assert patched["title"] == "L2" and patched["value"] is None
    assert http.patch(f"{base}/{lead['id']}", json={"is_archived": True}).json()["data"]["is_archived"]
    assert lead["id"] in {x["id"] for x in http.get(base + "/archived?limit=500").json()["data"]}
    assert lead["id"] not in {x["id"] for x in http.get(base + "?limit=500").json()["data"]}
    assert http.delete(f"{base}/{lead['id']}").json() == {"success": True, "data": {"id": lead["id"]}}
    assert http.get(f"{base}/{lead['id']}").status_code == 404


def test_lead_conversion_is_async_and_links_the_new_deal(fresh):
    http = client(fresh)
    lead = http.get(fresh.base_url + "/v1/leads?limit=1").json()["data"][0]
    url = f"{fresh.base_url}/api/v2/leads/{lead['id']}/convert"
    conv = http.post(url + "/deal", json={"pipeline_id": 3}).json()["data"]["conversion_id"]
    first = http.get(f"{url}/status/{conv}").json()["data"]
    assert first["status"] in ("not_started", "running") and "deal_id" not in first
    for _ in range(100):
        status = http.get(f"{url}/status/{conv}").json()["data"]
        if status["status"] == "completed":
            break
        time.sleep(0.02)
    assert status["status"] == "completed"
    deal = http.get(f"{fresh.base_url}/api/v2/deals/{status['deal_id']}?include_fields=source_lead_id").json()
    assert deal["data"]["source_lead_id"] == lead["id"] and deal["data"]["pipeline_id"] == 3
    assert http.get(f"{fresh.base_url}/v1/leads/{lead['id']}").status_code == 404
    assert lead["id"] not in {x["id"] for x in http.get(fresh.base_url + "/v1/leads?limit=500").json()["data"]}
    assert http.post(url + "/deal", json={}).status_code == 404
    assert http.post(url + "/deal", json={"owner_id": 1}).status_code == 400
    assert http.get(f"{url}/status/00000000-0000-4000-8000-000000000000").status_code == 404
