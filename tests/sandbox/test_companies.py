"""An empty company (a migration target) next to a seeded one: its shape, and fully separate state."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import requests

from crmsync.sandbox.catalog import EMPTY_USERS
from tests.sandbox.conftest import client


def test_an_empty_company_has_users_one_default_pipeline_and_no_records(empty, check_schema):
    http, api = client(empty), empty.base_url + "/api/v2"
    for path in ("/deals", "/persons", "/organizations"):
        assert check_schema("v2", path, "get", http.get(api + path))["data"] == []
    assert http.get(api + "/deals/archived").json()["data"] == []
    assert http.get(empty.base_url + "/v1/leads").json()["data"] == []
    pipelines = check_schema("v2", "/pipelines", "get", http.get(api + "/pipelines"))["data"]
    assert [(p["name"], p["is_selected"]) for p in pipelines] == [("Pipeline", True)]
    stages = http.get(api + "/stages", params={"sort_by": "order_nr"}).json()["data"]
    assert [s["name"] for s in stages] == [
        "Qualified",
        "Contact Made",
        "Demo Scheduled",
        "Proposal Made",
        "Negotiations Started",
    ]
    users = check_schema("v1", "/users", "get", http.get(empty.base_url + "/v1/users"))["data"]
    assert len(users) == len(EMPTY_USERS) and all(u["active_flag"] for u in users)
    assert [f["is_custom_field"] for f in http.get(api + "/dealFields").json()["data"]] == [False] * 21
    labels = http.get(empty.base_url + "/v1/leadLabels").json()["data"]
    assert [x["name"] for x in labels] == ["Hot", "Warm", "Cold"]
    deal = http.post(api + "/deals", json={"title": "First"}).json()["data"]
    assert (deal["id"], deal["pipeline_id"], deal["stage_id"]) == (1, 1, 1)


def test_users_2_to_4_of_an_empty_company_share_emails_with_users_1_to_3_of_the_seeded_one(fresh, empty):
    seeded = {u["id"]: u for u in client(fresh).get(fresh.base_url + "/v1/users").json()["data"]}
    target = {u["id"]: u for u in client(empty).get(empty.base_url + "/v1/users").json()["data"]}
    shared = {
        t["email"]: (s_id, t_id) for t_id, t in target.items() for s_id, s in seeded.items() if s["email"] == t["email"]
    }
    assert sorted(shared.values()) == [(1, 2), (2, 3), (3, 4)]
    assert all(seeded[s]["name"] == target[t]["name"] for s, t in shared.values())
    assert target[1]["email"] not in {u["email"] for u in seeded.values()}


def test_two_companies_in_one_process_keep_separate_state_and_tokens(fresh, empty):
    a, b = client(fresh), client(empty)
    assert set(fresh.tokens) & set(empty.tokens) == set(range(1, 6))  # the same user ids...
    assert set(fresh.store.catalog.tokens).isdisjoint(empty.store.catalog.tokens)  # ...different tokens
    wrong = requests.get(empty.base_url + "/api/v2/deals", headers={"x-api-token": fresh.api_token}, timeout=10)
    assert wrong.status_code == 401
    a_deals = a.get(fresh.base_url + "/api/v2/deals?limit=500").json()["data"]
    b_deal = b.post(empty.base_url + "/api/v2/deals", json={"title": "Only in B"}).json()["data"]
    b.post(empty.base_url + "/api/v2/pipelines", json={"name": "Only in B"})
    b.post(empty.base_url + "/api/v2/dealFields", json={"field_name": "Only in B", "field_type": "varchar"})
    b.post(empty.base_url + "/v1/notes", json={"content": "Only in B", "deal_id": b_deal["id"]})
    a.patch(fresh.base_url + "/api/v2/deals/1", json={"title": "Only in A"})
    assert a.get(fresh.base_url + "/api/v2/deals?limit=500").json()["data"][1:] == a_deals[1:]
    assert "Only in B" not in {p["name"] for p in a.get(fresh.base_url + "/api/v2/pipelines").json()["data"]}
    assert "Only in B" not in {f["field_name"] for f in a.get(fresh.base_url + "/api/v2/dealFields").json()["data"]}
    assert a.get(fresh.base_url + "/v1/notes").json()["data"] == []
    assert b.get(empty.base_url + "/api/v2/deals/1").json()["data"]["title"] == "Only in B"
    assert [d["title"] for d in b.get(empty.base_url + "/api/v2/deals").json()["data"]] == ["Only in B"]
    a_endpoints = {e for c in fresh.usage_report()["clients"] for e in c["endpoints"]}
    b_endpoints = {e for c in empty.usage_report()["clients"] for e in c["endpoints"]}
    assert "POST /api/v2/pipelines" in b_endpoints and "POST /api/v2/pipelines" not in a_endpoints
    assert "PATCH /api/v2/deals/{id}" in a_endpoints and "PATCH /api/v2/deals/{id}" not in b_endpoints


@pytest.mark.slow
def test_serve_empty_starts_a_company_without_records():
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmsync.sandbox", "serve", "--port", "0", "--empty", "--seed", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url, token = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        headers = {"x-api-token": token}
        assert requests.get(url + "/api/v2/deals", headers=headers, timeout=10).json()["data"] == []
        assert requests.get(url + "/_sandbox/info", timeout=10).json()["empty"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
