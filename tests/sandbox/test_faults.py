"""Each injected fault looks like the failure a client meets in production."""

from __future__ import annotations

import time

import pytest
import requests

from crmsync.sandbox import FaultConfig, RateLimitConfig, Sandbox
from tests.sandbox.conftest import client


@pytest.fixture(scope="module")
def faulty():
    with Sandbox(
        seed=4,
        deals=30,
        rate_limit=RateLimitConfig(burst=None, daily_budget=0),
        faults=FaultConfig(storm_seconds=0.5, slow_seconds=0.4),
    ) as sb:
        yield sb


def _force(sb, kind, count=1):
    assert requests.post(sb.base_url + "/_sandbox/faults", json={"kind": kind, "count": count}).ok


def test_error_fault_is_a_5xx(faulty):
    _force(faulty, "error")
    r = client(faulty).get(faulty.base_url + "/api/v2/deals")
    assert r.status_code in (500, 502, 503)
    assert client(faulty).get(faulty.base_url + "/api/v2/deals").status_code == 200


def test_storm_fault_answers_429_for_its_duration(faulty):
    http = client(faulty)
    _force(faulty, "storm")
    codes = [http.get(faulty.base_url + "/api/v2/stages").status_code for _ in range(3)]
    assert codes == [429, 429, 429]
    time.sleep(0.55)
    assert http.get(faulty.base_url + "/api/v2/stages").status_code == 200


def test_slow_fault_delays_the_answer(faulty):
    _force(faulty, "slow")
    t0 = time.monotonic()
    assert client(faulty).get(faulty.base_url + "/api/v2/pipelines").status_code == 200
    assert time.monotonic() - t0 >= 0.4


def test_truncate_fault_closes_mid_body(faulty):
    _force(faulty, "truncate")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client(faulty).get(faulty.base_url + "/api/v2/deals")


def test_invalid_json_fault_sends_a_complete_but_broken_body(faulty):
    _force(faulty, "invalid_json")
    r = client(faulty).get(faulty.base_url + "/api/v2/deals")
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


def test_null_data_fault_sends_success_with_null_data(faulty):
    _force(faulty, "null_data")
    assert client(faulty).get(faulty.base_url + "/api/v2/deals").json() == {
        "success": True,
        "data": None,
        "additional_data": None,
    }


def test_fault_rates_are_seeded_and_reproducible():
    def run():
        with Sandbox(
            seed=9,
            deals=10,
            rate_limit=RateLimitConfig(burst=None, daily_budget=0),
            faults=FaultConfig(error_rate=0.2, null_data_rate=0.2),
        ) as sb:
            http = client(sb)
            return [
                (r.status_code, r.text[:40]) for r in (http.get(sb.base_url + "/api/v2/pipelines") for _ in range(40))
            ]

    first = run()
    assert first == run()
    assert {c for c, _ in first} & {500, 502, 503} and any("null" in t for _, t in first)
