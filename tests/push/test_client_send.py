"""``PipedriveClient.send``: what is retried, what is never retried (POSTs), refusals, token accounting."""

from __future__ import annotations

import pytest
import requests
import responses
from crmsync.connectors.pipedrive.client import PipedriveClient

from crmsync.errors import RemoteError, WriteOutcomeUnknown, WriteRejected

BASE = "https://acme.pipedrive.com"
TOKEN = "0123456789abcdef-push-secret-token"


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(sleeps):
    return PipedriveClient(BASE, TOKEN, sleep=sleeps.append, max_attempts=4)


def ok(data):
    return {"success": True, "data": data}


@responses.activate
def test_post_answered_500_raises_outcome_unknown_after_exactly_one_request(client, sleeps):
    responses.post(f"{BASE}/api/v2/deals", status=500, json={"success": False, "error": "boom"})
    responses.post(f"{BASE}/api/v2/deals", json=ok({"id": 1}))  # a retry would get this (and duplicate the deal)
    with pytest.raises(WriteOutcomeUnknown):
        client.send("POST", "v2", "/deals", {"title": "x"})
    assert len(responses.calls) == 1
    assert sleeps == []
    assert client.usage.requests == 1 and client.usage.tokens == 5  # maybe processed: tokens spent


@responses.activate
def test_post_read_timeout_raises_outcome_unknown_without_a_retry(client):
    responses.post(f"{BASE}/api/v2/persons", body=requests.exceptions.ReadTimeout("read timed out"))
    responses.post(f"{BASE}/api/v2/persons", json=ok({"id": 1}))
    with pytest.raises(WriteOutcomeUnknown):
        client.send("POST", "v2", "/persons", {"name": "Ana"})
    assert len(responses.calls) == 1


@responses.activate
def test_post_whose_connection_never_opened_is_retried(client, sleeps):
    responses.post(f"{BASE}/api/v2/persons",
                   body=requests.exceptions.ConnectionError("NewConnectionError: Connection refused"))
    responses.post(f"{BASE}/api/v2/persons", json=ok({"id": 9, "update_time": "2026-11-24T02:00:00Z"}))
    assert client.send("POST", "v2", "/persons", {"name": "Ana"})["data"]["id"] == 9
    assert len(responses.calls) == 2 and len(sleeps) == 1


@responses.activate
def test_patch_answered_500_then_200_succeeds_after_one_retry(client, sleeps):
    responses.patch(f"{BASE}/api/v2/deals/7", status=500, json={"success": False, "error": "boom"})
    responses.patch(f"{BASE}/api/v2/deals/7", json=ok({"id": 7, "update_time": "2026-11-24T02:00:00Z"}))
    body = client.send("PATCH", "v2", "/deals/7", {"title": "y"})
    assert body["data"]["id"] == 7
    assert len(responses.calls) == 2 and len(sleeps) == 1
    assert client.usage.retries == 1
    assert client.usage.requests == 1 and client.usage.tokens == 5  # one logical write


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@responses.activate
def test_idempotent_writes_are_retried_on_5xx(client, method):
    path = "/notes/3" if method == "PUT" else "/deals/3"
    family = "v1" if method == "PUT" else "v2"
    url = f"{BASE}/api/{family}{path}"
    responses.add(method, url, status=502, body="bad gateway")
    responses.add(method, url, json=ok({"id": 3}))
    assert client.send(method, family, path, {"content": "x"} if method == "PUT" else None)["data"]["id"] == 3
    assert len(responses.calls) == 2


@responses.activate
def test_post_429_waits_retry_after_then_succeeds(client, sleeps):
    responses.post(f"{BASE}/api/v2/organizations", status=429, json={"success": False, "error": "Request over limit"},
                   headers={"Retry-After": "2"})
    responses.post(f"{BASE}/api/v2/organizations", json=ok({"id": 4}))
    assert client.send("POST", "v2", "/organizations", {"name": "Acme"})["data"]["id"] == 4
    assert sleeps == [2.0]
    assert len(responses.calls) == 2


@pytest.mark.parametrize("status", [400, 403, 405, 409, 422])
@responses.activate
def test_refusals_raise_write_rejected_with_the_apis_error(client, status):
    responses.post(f"{BASE}/api/v2/deals", status=status,
                   json={"success": False, "error": "Stage 99 does not exist", "error_info": "see docs"})
    with pytest.raises(WriteRejected) as info:
        client.send("POST", "v2", "/deals", {"title": "x", "stage_id": 99})
    assert info.value.api_error == "Stage 99 does not exist"
    assert info.value.status == status
    assert "Stage 99 does not exist" in str(info.value)
    assert len(responses.calls) == 1


@responses.activate
def test_cdn_403_html_page_is_a_remote_error_not_a_rejected_row(client):
    responses.patch(f"{BASE}/api/v2/deals/1", status=403, body="<html>blocked</html>",
                    content_type="text/html")
    with pytest.raises(RemoteError) as info:
        client.send("PATCH", "v2", "/deals/1", {"title": "x"})
    assert not isinstance(info.value, WriteRejected)


@pytest.mark.parametrize(("method", "family", "path", "tokens"), [
    ("POST", "v2", "/deals", 5),
    ("PATCH", "v2", "/deals/17", 5),
    ("DELETE", "v2", "/deals/17", 3),
    ("POST", "v2", "/persons", 5),
    ("PATCH", "v2", "/organizations/3", 5),
    ("POST", "v2", "/stages", 5),
    ("POST", "v2", "/dealFields", 5),
    ("POST", "v1", "/leads", 10),
    ("PATCH", "v1", "/leads/adf21080-0e10-11eb-879b-05d71fb426ec", 10),
    ("DELETE", "v1", "/leads/adf21080-0e10-11eb-879b-05d71fb426ec", 6),
    ("POST", "v1", "/notes", 10),
    ("PUT", "v1", "/notes/5", 10),
])
@responses.activate
def test_write_tokens_are_counted_per_spec_cost(client, method, family, path, tokens):
    responses.add(method, f"{BASE}/api/{family}{path}", json=ok({"id": 1}))
    client.send(method, family, path, {"x": 1} if method != "DELETE" else None)
    assert client.usage.tokens == tokens
    assert client.usage.requests == 1


@responses.activate
def test_a_rejected_write_still_counts_its_tokens(client):
    responses.post(f"{BASE}/api/v1/leads", status=400, json={"success": False, "error": "bad"})
    with pytest.raises(WriteRejected):
        client.send("POST", "v1", "/leads", {"title": "x"})
    assert client.usage.tokens == 10


@responses.activate
def test_api_token_never_appears_in_exception_text(client):
    # An API that echoes the token back in its error must not leak it into the rejected-rows table.
    responses.post(f"{BASE}/api/v2/deals", status=400, json={"success": False, "error": f"token {TOKEN} invalid"})
    responses.patch(f"{BASE}/api/v2/deals/1", status=500, json={"success": False, "error": f"oops {TOKEN}"})
    responses.delete(f"{BASE}/api/v2/deals/2", status=404, json={"success": False, "error": f"gone {TOKEN}"})
    responses.post(f"{BASE}/api/v2/persons", status=503, json={"success": False, "error": f"down {TOKEN}"})
    seen = []
    for call in (lambda: client.send("POST", "v2", "/deals", {"title": "x"}),
                 lambda: client.send("PATCH", "v2", "/deals/1", {"title": "x"}),
                 lambda: client.send("DELETE", "v2", "/deals/2"),
                 lambda: client.send("POST", "v2", "/persons", {"name": "x"})):
        with pytest.raises(RemoteError) as info:
            call()
        seen.append(info.value)
    for exc in seen:
        assert TOKEN not in str(exc) and TOKEN not in repr(exc.args)
        assert TOKEN not in getattr(exc, "api_error", "")
    assert isinstance(seen[0], WriteRejected) and "***" in seen[0].api_error
    for call in responses.calls:
        assert TOKEN not in call.request.url


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
@responses.activate
def test_a_write_to_a_record_gone_from_the_crm_is_a_rejected_row_not_a_run_failure(client, method):
    responses.add(method, f"{BASE}/api/v2/persons/5", status=404, json={"success": False, "error": "Person not found"})
    with pytest.raises(WriteRejected) as info:
        client.send(method, "v2", "/persons/5", {"name": "x"} if method == "PATCH" else None)
    assert info.value.status == 404 and info.value.api_error == "Person not found"
    assert len(responses.calls) == 1
