"""Token costs, the 2-second burst window, the daily budget and the spend report."""

from __future__ import annotations

import time

import requests

from crmsync.sandbox import RateLimitConfig, Sandbox
from tests.sandbox.conftest import client


def test_burst_limit_answers_429_with_headers_then_recovers():
    with Sandbox(seed=1, deals=20, rate_limit=RateLimitConfig(burst=3, window=1.0, daily_budget=0)) as sb:
        http = client(sb)
        seen = [http.get(sb.base_url + "/api/v2/pipelines") for _ in range(4)]
        assert [r.status_code for r in seen] == [200, 200, 200, 429]
        assert [r.headers["x-ratelimit-remaining"] for r in seen[:3]] == ["2", "1", "0"]
        assert seen[0].headers["x-ratelimit-limit"] == "3"
        body = seen[3].json()
        assert body["success"] is False and body["error"] == "Request over limit" and body["data"] is None
        assert int(seen[3].headers["x-ratelimit-reset"]) >= 1
        time.sleep(1.05)
        assert http.get(sb.base_url + "/api/v2/pipelines").status_code == 200


def test_burst_window_is_per_token():
    with Sandbox(seed=1, deals=20, rate_limit=RateLimitConfig(burst=1, window=5, daily_budget=0)) as sb:
        url = sb.base_url + "/api/v2/stages"
        assert requests.get(url, headers={"x-api-token": sb.tokens[1]}).status_code == 200
        assert requests.get(url, headers={"x-api-token": sb.tokens[1]}).status_code == 429
        assert requests.get(url, headers={"x-api-token": sb.tokens[2]}).status_code == 200


def test_daily_budget_is_spent_by_x_token_cost_and_exhaustion_is_429():
    with Sandbox(seed=1, deals=20, rate_limit=RateLimitConfig(burst=None, daily_budget=45)) as sb:
        http = client(sb)
        assert http.get(sb.base_url + "/v1/leads").status_code == 200  # 20
        assert http.get(sb.base_url + "/api/v2/deals").status_code == 200  # 10
        assert http.get(sb.base_url + "/api/v2/deals/3").status_code == 200  # 1
        r = http.get(sb.base_url + "/v1/leads")  # 20 more would pass 45
        assert r.status_code == 429 and r.json()["error"] == "Daily token budget exceeded"
        assert http.get(sb.base_url + "/api/v2/deals").status_code == 200  # 41
        assert http.get(sb.base_url + "/api/v2/deals").status_code == 429
        state = sb.usage_report()["budget"]
        assert state == {"daily_budget": 45, "spent_today": 41, "remaining_today": 4}
        assert requests.post(sb.base_url + "/_sandbox/usage/reset").status_code == 200
        assert http.get(sb.base_url + "/api/v2/deals").status_code == 200


def test_usage_report_counts_requests_and_tokens_per_client_and_endpoint():
    with Sandbox(seed=1, deals=20, rate_limit=RateLimitConfig(burst=None, daily_budget=0)) as sb:
        a = client(sb)
        a.headers["User-Agent"] = "sync-a"
        b = requests.Session()
        b.headers.update({"x-api-token": sb.tokens[2], "User-Agent": "sync-b"})
        for _ in range(3):
            a.get(sb.base_url + "/api/v2/deals")
        a.get(sb.base_url + "/v1/deals/2/flow")
        b.get(sb.base_url + "/api/v1/leads")
        requests.get(sb.base_url + "/api/v2/deals", headers={"x-api-token": "bad"})
        report = requests.get(sb.base_url + "/_sandbox/usage").json()
        clients = {c["user_agent"]: c for c in report["clients"]}
        assert clients["sync-a"]["tokens"] == 3 * 10 + 40 and clients["sync-a"]["requests"] == 4
        assert clients["sync-a"]["endpoints"]["GET /api/v2/deals"] == {
            "requests": 3,
            "tokens": 30,
            "statuses": {"200": 3},
        }
        assert clients["sync-b"]["endpoints"]["GET /api/v1/leads"]["tokens"] == 20
        assert clients["sync-b"]["user_id"] == 2
        assert sb.api_token not in str(report) and sb.tokens[2] not in str(report)


def test_tokens_never_leak_into_responses_or_errors():
    with Sandbox(seed=1, deals=20) as sb:
        tok = sb.api_token
        for url in (
            "/api/v2/deals?api_token=" + tok,
            "/api/v2/nope?api_token=" + tok,
            "/api/v2/deals?limit=900&api_token=" + tok,
        ):
            assert tok not in requests.get(sb.base_url + url).text
