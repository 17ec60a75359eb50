"""Simulated activity between syncs shows up where an incremental sync looks."""

from __future__ import annotations

import requests

from crmsync.sandbox import Sandbox
from crmsync.sandbox.render import v2_time
from tests.sandbox.conftest import client


def test_simulated_changes_appear_in_updated_since_and_flow(fresh):
    http = client(fresh)
    before = v2_time(fresh.store.now)
    changes = requests.post(fresh.base_url + "/_sandbox/simulate", json={"events": 60, "hours": 48}).json()
    assert changes["success"] and len(changes["changes"]) > 40
    assert changes["now"] >= fresh.store.start_now + 48 * 3600
    touched = {c["id"] for c in changes["changes"] if c["entity"] == "deal"}
    listed = set()
    for status in ("open,won,lost", "deleted"):
        url = f"{fresh.base_url}/api/v2/deals?updated_since={before}&status={status}&limit=500"
        listed |= {d["id"] for d in http.get(url).json()["data"]}
        url = f"{fresh.base_url}/api/v2/deals/archived?updated_since={before}&limit=500"
        listed |= {d["id"] for d in http.get(url).json()["data"]}
    assert touched and touched <= listed
    moved = next(c for c in changes["changes"] if c["action"] == "move_stage")
    flow = http.get(f"{fresh.base_url}/v1/deals/{moved['id']}/flow").json()["data"]
    from crmsync.sandbox.render import v1_time

    assert any(
        i["data"]["field_key"] == "stage_id"
        and i["data"]["change_source"] == "app"
        and i["timestamp"] == v1_time(moved["time"])
        for i in flow
    )
    kinds = {c["action"] for c in changes["changes"]}
    assert {"move_stage", "create_deal", "update_deal"} <= kinds


def test_simulation_is_reproducible_and_lands_in_the_truth_journal():
    runs = []
    for _ in range(2):
        with Sandbox(seed=5, deals=100) as sb:
            sb.simulate(events=30, hours=12)
            sb.simulate(events=30, hours=12)
            runs.append(sb.export_truth())
    assert runs[0] == runs[1]
    journal = runs[0]["journal"]
    assert journal and {e["entity"] for e in journal} >= {"deal"}


def test_field_rename_and_new_option_show_in_field_endpoints():
    with Sandbox(seed=5, deals=50) as sb:
        import random

        from crmsync.sandbox.simulate import _apply

        r = random.Random(0)
        renamed = _apply(sb.store, r, "rename_field", sb.store.now + 10)
        added = _apply(sb.store, r, "add_option", sb.store.now + 20)
        http = client(sb)
        path = {"dealField": "dealFields", "personField": "personFields", "orgField": "organizationFields"}
        fields = http.get(f"{sb.base_url}/api/v2/{path[renamed['entity']]}?limit=500").json()["data"]
        field = next(f for f in fields if f["field_code"] == renamed["id"])
        assert "(v" in field["field_name"]
        fields = http.get(f"{sb.base_url}/api/v2/{path[added['entity']]}?limit=500").json()["data"]
        field = next(f for f in fields if f["field_code"] == added["id"])
        assert added["option_id"] in {o["id"] for o in field["options"]}


def test_truth_export_is_served_over_http(fresh):
    truth = requests.get(fresh.base_url + "/_sandbox/truth").json()
    assert len(truth["deals"]) == 120 and truth["events"] and truth["fields"]["deal"]


def test_simulated_lead_conversions_link_deal_and_delete_lead():
    with Sandbox(seed=5, deals=100, leads=80) as sb:
        changes = sb.simulate(events=150, hours=72)
        converted = [c for c in changes if c["action"] == "convert_lead"]
        assert converted
        http = client(sb)
        for c in converted:
            deal = http.get(f"{sb.base_url}/api/v2/deals/{c['deal_id']}?include_fields=source_lead_id").json()
            assert deal["data"]["source_lead_id"] == c["id"]
            assert http.get(f"{sb.base_url}/v1/leads/{c['id']}").status_code == 404


def test_adding_an_enum_option_leaves_every_existing_record_as_it_was():
    """Regression: lazily generated records drew from the grown option list after add_option."""
    import random

    import requests

    from crmsync.sandbox import Sandbox
    from crmsync.sandbox.simulate import _apply

    with Sandbox(seed=3, deals=120) as sb:
        headers = {"x-api-token": sb.api_token}

        def deals() -> dict:
            body = requests.get(f"{sb.base_url}/api/v2/deals?limit=500", headers=headers, timeout=30).json()
            return {d["id"]: d["custom_fields"] for d in body["data"]}

        before = deals()
        for n in range(6):
            _apply(sb.store, random.Random(n), "add_option", sb.advance(1))
        assert deals() == before
