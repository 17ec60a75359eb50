"""Every implemented endpoint answers in the shape the official OpenAPI specs describe."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import client

V2_LISTS = [
    ("/deals", "/deals?limit=50&include_fields=source_lead_id,first_won_time,notes_count"),
    ("/deals", "/deals?status=deleted,won,lost&sort_by=update_time&sort_direction=desc&limit=100"),
    ("/deals/archived", "/deals/archived?limit=100&include_fields=source_lead_id"),
    ("/persons", "/persons?limit=100"),
    ("/organizations", "/organizations?limit=100"),
    ("/pipelines", "/pipelines"),
    ("/stages", "/stages?pipeline_id=1&sort_by=order_nr"),
    ("/dealFields", "/dealFields"),
    ("/personFields", "/personFields"),
    ("/organizationFields", "/organizationFields"),
]


@pytest.mark.parametrize(("spec_path", "url"), V2_LISTS)
def test_v2_lists_match_spec(sandbox, http, check_schema, spec_path, url):
    r = http.get(sandbox.base_url + "/api/v2" + url)
    assert r.status_code == 200
    body = check_schema("v2", spec_path, "get", r)
    assert body["data"], url


@pytest.mark.parametrize("path", ["/deals/{id}", "/persons/{id}", "/organizations/{id}"])
def test_v2_single_records_match_spec(sandbox, http, check_schema, path):
    r = http.get(sandbox.base_url + "/api/v2" + path.replace("{id}", "5") + "?include_fields=")
    check_schema("v2", path, "get", r)


V1_READS = [
    ("/leads", "/leads?limit=100"),
    ("/leads/archived", "/leads/archived?limit=100"),
    ("/leadLabels", "/leadLabels"),
    ("/leadSources", "/leadSources"),
    ("/leadFields", "/leadFields"),
    ("/dealFields", "/dealFields"),
    ("/personFields", "/personFields"),
    ("/organizationFields", "/organizationFields"),
    ("/users", "/users"),
    ("/recents", "/recents?since_timestamp=2026-09-01%2000:00:00&limit=200"),
    ("/recents", "/recents?since_timestamp=2020-01-01%2000:00:00&items=deal&limit=50"),
]


@pytest.mark.parametrize(("spec_path", "url"), V1_READS)
@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_v1_reads_match_spec_on_both_url_families(sandbox, http, check_schema, spec_path, url, prefix):
    r = http.get(sandbox.base_url + prefix + url)
    assert r.status_code == 200
    body = check_schema("v1", spec_path, "get", r)
    assert body["data"], url


def test_lead_by_id_and_its_404_match_spec(sandbox, http, check_schema):
    lead = http.get(sandbox.base_url + "/v1/leads?limit=1").json()["data"][0]
    check_schema("v1", "/leads/{id}", "get", http.get(f"{sandbox.base_url}/v1/leads/{lead['id']}"))
    missing = http.get(f"{sandbox.base_url}/v1/leads/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert check_schema("v1", "/leads/{id}", "get", missing)["error"] == "requested lead not found"


def test_flow_and_changelog_match_spec(sandbox, http, check_schema):
    for deal_id in (3, 10, 25):
        flow = http.get(f"{sandbox.base_url}/v1/deals/{deal_id}/flow?items=dealChange&all_changes=1")
        check_schema("v1", "/deals/{id}/flow", "get", flow)
        log = http.get(f"{sandbox.base_url}/v1/deals/{deal_id}/changelog?limit=3")
        check_schema("v1", "/deals/{id}/changelog", "get", log)


def test_writes_match_spec(fresh, check_schema):
    http, base = client(fresh), fresh.base_url + "/api/v2"
    deal = check_schema("v2", "/deals", "post", http.post(base + "/deals", json={"title": "Spec deal"}))["data"]
    check_schema("v2", "/deals/{id}", "patch", http.patch(f"{base}/deals/{deal['id']}", json={"value": 10}))
    check_schema("v2", "/deals/{id}", "delete", http.delete(f"{base}/deals/{deal['id']}"))
    for path, body in (
        ("/persons", {"name": "Ana Pérez", "emails": [{"value": "ana@example.es"}]}),
        ("/organizations", {"name": "Pérez S.L."}),
    ):
        rec = check_schema("v2", path, "post", http.post(base + path, json=body))["data"]
        check_schema("v2", path + "/{id}", "patch", http.patch(f"{base}{path}/{rec['id']}", json={"name": "X"}))
        check_schema("v2", path + "/{id}", "delete", http.delete(f"{base}{path}/{rec['id']}"))
    v1 = fresh.base_url + "/v1"
    created = http.post(v1 + "/leads", json={"title": "Spec lead", "person_id": 1})
    assert created.status_code == 201
    lead = check_schema("v1", "/leads", "post", created)["data"]
    check_schema("v1", "/leads/{id}", "patch", http.patch(f"{v1}/leads/{lead['id']}", json={"was_seen": True}))
    check_schema("v1", "/leads/{id}", "delete", http.delete(f"{v1}/leads/{lead['id']}"))


def test_conversion_endpoints_match_spec(fresh, check_schema):
    http = client(fresh)
    lead = http.get(fresh.base_url + "/v1/leads?limit=1").json()["data"][0]
    base = f"{fresh.base_url}/api/v2/leads/{lead['id']}/convert"
    started = check_schema("v2", "/leads/{id}/convert/deal", "post", http.post(base + "/deal", json={}))
    status = http.get(f"{base}/status/{started['data']['conversion_id']}")
    check_schema("v2", "/leads/{id}/convert/status/{conversion_id}", "get", status)
    missing = http.post(f"{fresh.base_url}/api/v2/leads/00000000-0000-4000-8000-000000000000/convert/deal", json={})
    assert missing.status_code == 404
    check_schema("v2", "/leads/{id}/convert/deal", "post", missing)


def test_unauthorized_answers_pipedrive_401_body(sandbox):
    import requests

    for url in ("/api/v2/deals", "/v1/leads", "/api/v1/users"):
        r = requests.get(sandbox.base_url + url, headers={"x-api-token": "0" * 40})
        assert r.status_code == 401
        assert r.json()["success"] is False and r.json()["errorCode"] == 401
        assert r.json()["error"] == "unauthorized access"


def test_token_accepted_as_header_query_or_bearer(sandbox):
    import requests

    base, tok = sandbox.base_url + "/api/v2/pipelines", sandbox.api_token
    assert requests.get(base, headers={"x-api-token": tok}).status_code == 200
    assert requests.get(base, params={"api_token": tok}).status_code == 200
    assert requests.get(base, headers={"Authorization": f"Bearer {tok}"}).status_code == 200


def test_v2_has_no_bare_v2_prefix_and_v1_has_two(sandbox, http):
    assert http.get(sandbox.base_url + "/v2/deals").status_code == 404
    assert http.get(sandbox.base_url + "/v1/users").status_code == 200
    assert http.get(sandbox.base_url + "/api/v1/users").status_code == 200
    assert http.get(sandbox.base_url + "/api/v1/deals/2/flow").status_code == 200


def test_costs_in_route_table_match_spec_x_token_cost(specs):
    from crmsync.sandbox.api import ROUTES

    for route in ROUTES:
        op = specs[route.spec or route.family]["paths"][route.pattern][route.method.lower()]
        assert op["operationId"] == route.operation
        assert op["x-token-cost"] == route.cost, route
