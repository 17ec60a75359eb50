"""Many clients at once: readers and writers in parallel threads all get correct answers."""

from __future__ import annotations

import concurrent.futures

import requests

from crmsync.sandbox import RateLimitConfig, Sandbox


def test_parallel_readers_and_writers_see_no_errors():
    with Sandbox(seed=8, deals=400, rate_limit=RateLimitConfig(burst=None, daily_budget=0)) as sb:

        def reader(n: int) -> int:
            http = requests.Session()
            http.headers["x-api-token"] = sb.tokens[1 + n % 4]
            seen, cursor = 0, None
            while True:
                r = http.get(
                    sb.base_url + "/api/v2/deals", params={"limit": 50, **({"cursor": cursor} if cursor else {})}
                )
                assert r.status_code == 200
                seen += len(r.json()["data"])
                cursor = r.json()["additional_data"]["next_cursor"]
                if cursor is None:
                    return seen

        def writer(n: int) -> int:
            http = requests.Session()
            http.headers["x-api-token"] = sb.api_token
            for k in range(15):
                r = http.post(sb.base_url + "/api/v2/deals", json={"title": f"w{n}-{k}"})
                assert r.status_code == 200
                assert (
                    http.patch(
                        f"{sb.base_url}/api/v2/deals/{r.json()['data']['id']}", json={"status": "won"}
                    ).status_code
                    == 200
                )
            return 15

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            reads = [pool.submit(reader, n) for n in range(6)]
            writes = [pool.submit(writer, n) for n in range(6)]
            assert sum(f.result() for f in writes) == 90
            assert all(f.result() >= 300 for f in reads)
        ids = [d["id"] for d in sb.export_truth()["deals"]]
        assert len(ids) == len(set(ids)) == 490
