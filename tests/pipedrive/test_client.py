"""The HTTP client and pagers against mocked responses (``responses``): retries, limits, paging, errors."""

from __future__ import annotations

import json

import pytest
import responses
from crmsync.connectors.pipedrive.client import PipedriveClient, cost_of
from crmsync.connectors.pipedrive.paging import v1_keyset_pages, v1_pages, v2_pages
from responses import matchers

from crmsync.errors import AuthError, BudgetExhausted, RemoteError

BASE = "https://acme.pipedrive.com"
TOKEN = "0123456789abcdef-secret-token"


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(sleeps):
    return PipedriveClient(BASE, TOKEN, sleep=sleeps.append, max_attempts=4)


def ok(data, additional=None):
    return {"success": True, "data": data, "additional_data": additional}


@responses.activate
def test_token_is_sent_in_the_header_never_in_the_url(client):
    responses.get(f"{BASE}/api/v2/deals", json=ok([]), match=[matchers.header_matcher({"x-api-token": TOKEN})])
    client.get("v2", "/deals", {"limit": 500})
    assert TOKEN not in responses.calls[0].request.url


@responses.activate
def test_v2_cursor_paging_follows_next_cursor_with_page_size_500(client):
    responses.get(f"{BASE}/api/v2/deals", json=ok([{"id": 1}], {"next_cursor": "abc"}),
                  match=[matchers.query_param_matcher({"limit": "500", "sort_by": "id"})])
    responses.get(f"{BASE}/api/v2/deals", json=ok([{"id": 2}], {"next_cursor": None}),
                  match=[matchers.query_param_matcher({"limit": "500", "sort_by": "id", "cursor": "abc"})])
    pages = list(v2_pages(client, "/deals", {"sort_by": "id"}))
    assert pages == [[{"id": 1}], [{"id": 2}]]
    assert client.usage.requests == 2 and client.usage.tokens == 20


@responses.activate
def test_v1_offset_paging_reads_nested_and_flat_pagination(client):
    responses.get(f"{BASE}/api/v1/leadFields", json=ok([{"k": 1}], {"pagination": {
        "start": 0, "limit": 500, "more_items_in_collection": True, "next_start": 500}}))
    responses.get(f"{BASE}/api/v1/leadFields", json=ok([{"k": 2}], {"start": 500, "limit": 500,
                                                                     "more_items_in_collection": False}))
    assert list(v1_pages(client, "/leadFields")) == [[{"k": 1}], [{"k": 2}]]
    assert responses.calls[1].request.params["start"] == "500"


@responses.activate
def test_leads_are_paged_by_moving_updated_since_so_a_vanished_lead_cannot_shift_pages(client):
    t1, t2 = "2026-01-01T00:00:01.000Z", "2026-01-01T00:00:02.000Z"
    more = {"pagination": {"start": 0, "limit": 2, "more_items_in_collection": True, "next_start": 2}}
    last = {"pagination": {"start": 0, "limit": 2, "more_items_in_collection": False}}
    responses.get(f"{BASE}/api/v1/leads", json=ok([{"id": "a", "update_time": t1}, {"id": "b", "update_time": t2}],
                                                  more))
    responses.get(f"{BASE}/api/v1/leads", json=ok([{"id": "b", "update_time": t2}, {"id": "c", "update_time": t2}],
                                                  last))
    pages = list(v1_keyset_pages(client, "/leads", None, page_size=2))
    assert [[x["id"] for x in p] for p in pages] == [["a", "b"], ["c"]]
    second = responses.calls[1].request.params
    assert second["updated_since"] == t2 and second["start"] == "0" and second["sort"] == "update_time ASC"


@responses.activate
def test_429_waits_retry_after_then_succeeds(client, sleeps):
    responses.get(f"{BASE}/api/v2/deals", status=429, json={"success": False, "error": "Request over limit"},
                  headers={"Retry-After": "3", "x-ratelimit-reset": "1"})
    responses.get(f"{BASE}/api/v2/deals", json=ok([{"id": 1}]))
    assert client.get("v2", "/deals")["data"] == [{"id": 1}]
    assert sleeps == [3.0]
    assert client.usage.retries == 1 and client.usage.tokens == 10  # the refused request cost nothing


@responses.activate
def test_429_without_retry_after_waits_x_ratelimit_reset(client, sleeps):
    responses.get(f"{BASE}/api/v2/deals", status=429, json={"success": False, "error": "Request over limit"},
                  headers={"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"})
    responses.get(f"{BASE}/api/v2/deals", json=ok([]))
    client.get("v2", "/deals")
    assert 2.0 in sleeps


@responses.activate
def test_paces_below_the_burst_limit_when_few_requests_are_left(client, sleeps):
    responses.get(f"{BASE}/api/v2/deals", json=ok([]),
                  headers={"x-ratelimit-limit": "20", "x-ratelimit-remaining": "1", "x-ratelimit-reset": "2"})
    client.get("v2", "/deals")
    client.get("v2", "/deals")
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 2.0


@responses.activate
def test_5xx_and_connection_errors_are_retried_with_backoff(client, sleeps):
    import requests

    responses.get(f"{BASE}/api/v2/stages", status=502, body="<html>bad gateway</html>")
    responses.get(f"{BASE}/api/v2/stages", body=requests.ConnectionError("reset by peer"))
    responses.get(f"{BASE}/api/v2/stages", json=ok([{"id": 1}]))
    assert client.get("v2", "/stages")["data"] == [{"id": 1}]
    assert len(sleeps) == 2 and sleeps[0] < sleeps[1]


@responses.activate
def test_truncated_json_is_retried(client):
    body = json.dumps(ok([{"id": 1}]))
    responses.get(f"{BASE}/api/v2/deals", body=body[: len(body) // 2], content_type="application/json")
    responses.get(f"{BASE}/api/v2/deals", body=body, content_type="application/json")
    assert client.get("v2", "/deals")["data"] == [{"id": 1}]


@responses.activate
def test_data_null_without_pagination_is_retried_but_with_pagination_is_an_empty_page(client):
    responses.get(f"{BASE}/api/v2/deals", json={"success": True, "data": None, "additional_data": None})
    responses.get(f"{BASE}/api/v2/deals", json=ok([{"id": 1}]))
    assert client.get("v2", "/deals")["data"] == [{"id": 1}]
    responses.get(f"{BASE}/api/v1/leads", json={"success": True, "data": None, "additional_data": {
        "pagination": {"start": 0, "limit": 500, "more_items_in_collection": False}}})
    assert client.get("v1", "/leads")["data"] == []


@responses.activate
def test_persistent_failure_is_a_remote_error_without_the_token(client):
    responses.get(f"{BASE}/api/v2/deals", status=503, body="maintenance")
    with pytest.raises(RemoteError) as exc:
        client.get("v2", "/deals")
    assert "503" in str(exc.value) and TOKEN not in str(exc.value)
    assert len(responses.calls) == 4


@responses.activate
def test_bad_token_is_an_auth_error_naming_the_key_not_the_token(client):
    responses.get(f"{BASE}/api/v2/deals", status=401,
                  json={"success": False, "error": "unauthorized access", "errorCode": 401})
    with pytest.raises(AuthError) as exc:
        client.get("v2", "/deals")
    assert exc.value.exit_code == 2
    assert "api_token" in str(exc.value) and TOKEN not in str(exc.value) and TOKEN not in repr(exc.value)
    assert len(responses.calls) == 1  # never retried


@responses.activate
def test_cdn_403_after_hammering_stops_at_once(client):
    responses.get(f"{BASE}/api/v2/deals", status=403, body="<html>Cloudflare</html>", content_type="text/html")
    with pytest.raises(RemoteError, match="CDN"):
        client.get("v2", "/deals")
    assert len(responses.calls) == 1


@responses.activate
def test_token_budget_stops_before_the_request_that_would_exceed_it(sleeps):
    c = PipedriveClient(BASE, TOKEN, sleep=sleeps.append, token_budget=25)
    responses.get(f"{BASE}/api/v2/deals", json=ok([]))
    c.get("v2", "/deals")
    c.get("v2", "/deals")
    with pytest.raises(BudgetExhausted) as exc:
        c.get("v2", "/deals")
    assert exc.value.exit_code == 6 and len(responses.calls) == 2 and c.usage.tokens == 20


@responses.activate
def test_daily_budget_429_from_pipedrive_is_a_clean_budget_stop(client):
    responses.get(f"{BASE}/api/v2/deals", status=429,
                  json={"success": False, "error": "Daily token budget exceeded"})
    with pytest.raises(BudgetExhausted):
        client.get("v2", "/deals")


def test_token_costs_come_from_the_spec_table():
    assert cost_of("v2", "/deals") == 10
    assert cost_of("v1", "/deals/123/flow") == 40
    assert cost_of("v1", "/deals/123/changelog") == 20
    assert cost_of("v1", "/leads/archived") == 40
    assert cost_of("v1", "/leads/adf21080-0e10-11eb-879b-05d71fb426ec") == 2
