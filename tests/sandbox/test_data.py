"""The generated company is reproducible from its seed and looks like a real CRM."""

from __future__ import annotations

import re

from crmsync.sandbox import Sandbox, Store
from tests.sandbox.conftest import client


def test_same_seed_gives_identical_truth_and_other_seed_differs():
    a, b, c = (Store(seed=s, deals=80, persons=30, orgs=8, leads=40) for s in (5, 5, 6))
    ta, tb, tc = (
        s_.__class__.__module__ and __import__("crmsync.sandbox.truth", fromlist=["x"]).export_truth(s_)
        for s_ in (a, b, c)
    )
    assert ta == tb
    assert ta["deals"] != tc["deals"]


def test_same_seed_gives_identical_http_pages():
    pages = []
    for _ in range(2):
        with Sandbox(seed=11, deals=50) as sb:
            pages.append(client(sb).get(sb.base_url + "/api/v2/deals?limit=500").json())
    assert pages[0] == pages[1]


def test_data_mixes_languages_statuses_and_history(sandbox):
    truth = sandbox.export_truth()
    names = " ".join(p["name"] for p in truth["persons"])
    assert re.search(r"[áéíóúñ]", names) and re.search(r"\b(Smith|Johnson|Brown|Miller|Davis|Wilson)\b", names)
    deals = truth["deals"]
    statuses = {d["status"] for d in deals}
    assert statuses == {"open", "won", "lost", "deleted"}
    assert any(d["is_archived"] for d in deals)
    assert any(d["lost_reason"] for d in deals)
    assert {d["pipeline_id"] for d in deals} == {1, 2, 3}
    reopened = [e for e in truth["events"] if e["field_key"] == "status" and e["new_value"] == "open"]
    assert reopened, "some deals were won or lost and then reopened"
    moves = [e for e in truth["events"] if e["field_key"] == "stage_id"]
    assert len(moves) > len(deals)
    phones = [p["value"] for person in truth["persons"] for p in person["phones"]]
    assert any(x.startswith("+34") for x in phones) and any(x.startswith("(") for x in phones)
    assert any(len(person["emails"]) > 1 for person in truth["persons"])


def test_custom_fields_of_each_type_with_40_hex_keys(sandbox):
    fields = sandbox.store.catalog.fields
    for entity in ("deal", "person", "org"):
        custom = [f for f in fields[entity] if f["custom"]]
        assert all(re.fullmatch(r"[0-9a-f]{40}", f["key"]) for f in custom)
        assert {"enum", "set", "monetary", "date", "varchar", "text", "user"} <= {f["field_type"] for f in custom}


def test_v1_and_v2_write_custom_fields_their_own_way(sandbox, http):
    monetary = next(f["key"] for f in sandbox.store.catalog.custom_fields("deal") if f["field_type"] == "monetary")
    enum = next(f["key"] for f in sandbox.store.catalog.custom_fields("deal") if f["field_type"] == "enum")
    for lead in http.get(sandbox.base_url + "/v1/leads?limit=500").json()["data"]:
        if monetary in lead and enum in lead:
            assert isinstance(lead[enum], str) and lead[monetary + "_currency"]
            break
    else:
        raise AssertionError("no lead with both a monetary and an enum value")
    deal = http.get(sandbox.base_url + "/api/v2/deals/4").json()["data"]
    assert set(sandbox.store.catalog.custom_fields("deal")[0]) and monetary in deal["custom_fields"]
    value = next(
        d for d in http.get(sandbox.base_url + "/api/v2/deals?limit=200").json()["data"] if d["custom_fields"][monetary]
    )["custom_fields"][monetary]
    assert set(value) == {"value", "currency"}


def test_dates_are_rfc3339_in_v2_and_space_separated_in_v1(sandbox, http):
    v2 = http.get(sandbox.base_url + "/api/v2/deals?limit=1").json()["data"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v2["add_time"])
    v1 = http.get(sandbox.base_url + "/v1/deals/2/flow").json()["data"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", v1["timestamp"])
    lead = http.get(sandbox.base_url + "/v1/leads?limit=1").json()["data"][0]
    assert lead["add_time"].endswith(".000Z")


def test_converted_leads_are_gone_and_their_deals_carry_source_lead_id(sandbox, http):
    gen = sandbox.store.gen
    n, deal_id = next(iter(gen.deal_from_lead.items()))
    deal = http.get(f"{sandbox.base_url}/api/v2/deals/{deal_id}?include_fields=source_lead_id").json()["data"]
    assert deal["source_lead_id"] == gen.lead_uuid(n)
    assert http.get(f"{sandbox.base_url}/v1/leads/{gen.lead_uuid(n)}").status_code == 404
    plain = http.get(f"{sandbox.base_url}/api/v2/deals/{deal_id}").json()["data"]
    assert "source_lead_id" not in plain


def test_stage_changes_in_flow_look_like_pipedrive(sandbox, http):
    items = []
    for deal_id in range(1, 40):
        items += [
            i
            for i in http.get(f"{sandbox.base_url}/v1/deals/{deal_id}/flow").json()["data"]
            if i["data"]["field_key"] == "stage_id"
        ]
    assert items
    d = items[0]["data"]
    assert d["new_value"].isdigit() and d["additional_data"]["new_value_formatted"]
    assert items[0]["object"] == "dealChange"
