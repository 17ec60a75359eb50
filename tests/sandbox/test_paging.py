"""Pagination returns every record exactly once; filters select what they say."""

from __future__ import annotations

import pytest

from crmsync.sandbox import RateLimitConfig, Sandbox
from tests.sandbox.conftest import client


def _v2_all(http, url: str) -> list[dict]:
    out, cursor = [], None
    while True:
        r = http.get(url, params={"limit": 37, **({"cursor": cursor} if cursor else {})}).json()
        out += r["data"]
        cursor = r["additional_data"]["next_cursor"]
        if cursor is None:
            return out


@pytest.mark.parametrize("sort", ["id&sort_direction=asc", "update_time&sort_direction=desc", "add_time"])
def test_v2_cursor_pages_return_every_deal_once(sandbox, http, sort):
    got = _v2_all(http, f"{sandbox.base_url}/api/v2/deals?status=open,won,lost,deleted&sort_by={sort}")
    ids = [d["id"] for d in got]
    assert len(ids) == len(set(ids))
    truth = {d["id"] for d in sandbox.export_truth()["deals"] if not d["is_archived"]}
    assert set(ids) == truth
    key = "id" if sort.startswith("id") else sort.split("&")[0]
    seq = [(d[key], d["id"]) for d in got]
    assert seq == sorted(seq, reverse="desc" in sort)


def test_default_list_hides_deleted_and_archived(sandbox, http):
    got = _v2_all(http, sandbox.base_url + "/api/v2/deals")
    assert got and not any(d["is_deleted"] or d["is_archived"] for d in got)
    archived = _v2_all(http, sandbox.base_url + "/api/v2/deals/archived")
    assert archived and all(d["is_archived"] for d in archived)


def test_v1_offset_pages_return_every_lead_once(sandbox, http):
    ids, start = [], 0
    while True:
        r = http.get(f"{sandbox.base_url}/v1/leads", params={"start": start, "limit": 23}).json()
        ids += [x["id"] for x in r["data"]]
        page = r["additional_data"]["pagination"]
        if not page["more_items_in_collection"]:
            assert "next_start" not in page
            break
        start = page["next_start"]
    truth = {x["id"] for x in sandbox.export_truth()["leads"] if not x["is_deleted"] and not x["is_archived"]}
    assert len(ids) == len(set(ids)) and set(ids) == truth


def test_v2_limit_above_500_is_rejected_and_v1_is_clamped(sandbox, http):
    assert http.get(sandbox.base_url + "/api/v2/deals?limit=501").status_code == 400
    r = http.get(sandbox.base_url + "/v1/leads?limit=900").json()
    assert r["additional_data"]["pagination"]["limit"] == 500


def test_updated_since_and_until_select_by_update_time(sandbox, http):
    since, until = "2026-06-01T00:00:00Z", "2026-09-01T00:00:00Z"
    got = _v2_all(http, f"{sandbox.base_url}/api/v2/deals?updated_since={since}&updated_until={until}")
    truth = {
        d["id"]
        for d in sandbox.export_truth()["deals"]
        if since <= d["update_time"] < until and not d["is_archived"] and not d["is_deleted"]
    }
    assert {d["id"] for d in got} == truth and truth


def test_filters_by_pipeline_stage_and_status(sandbox, http):
    got = _v2_all(http, f"{sandbox.base_url}/api/v2/deals?pipeline_id=2&status=won")
    assert got and all(d["pipeline_id"] == 2 and d["status"] == "won" for d in got)
    got = _v2_all(http, f"{sandbox.base_url}/api/v2/deals?stage_id=3")
    assert got and all(d["stage_id"] == 3 for d in got)
    deleted = _v2_all(http, f"{sandbox.base_url}/api/v2/deals?status=deleted")
    assert deleted and all(d["is_deleted"] for d in deleted)


def test_bad_cursor_and_bad_sort_are_400s(sandbox, http):
    assert http.get(sandbox.base_url + "/api/v2/deals?cursor=nonsense").status_code == 400
    assert http.get(sandbox.base_url + "/api/v2/deals?sort_by=title").status_code == 400
    assert http.get(sandbox.base_url + "/api/v2/deals?updated_since=yesterday").status_code == 400


def test_deals_are_served_while_the_index_is_still_building(monkeypatch):
    import threading

    from crmsync.sandbox.store import Store

    gate, chunks = threading.Event(), Store._chunks

    def gated(self):
        gate.wait(30)
        yield from chunks(self)

    monkeypatch.setattr(Store, "_chunks", gated)
    with Sandbox(seed=2, deals=3000, wait=False, rate_limit=RateLimitConfig(burst=None, daily_budget=0)) as sb:
        http = client(sb)
        first = [http.get(sb.base_url + f"/api/v2/deals?limit=200&sort_direction={d}").json() for d in ("asc", "desc")]
        assert not sb.store.ready.is_set()
        gate.set()
        sb.store.wait_ready()
        again = [http.get(sb.base_url + f"/api/v2/deals?limit=200&sort_direction={d}").json() for d in ("asc", "desc")]
        assert first == again


def test_v1_recents_only_goes_back_30_days(sandbox, http):
    r = http.get(sandbox.base_url + "/v1/recents?since_timestamp=2020-01-01%2000:00:00&items=deal&limit=500").json()
    assert r["additional_data"]["since_timestamp"] == "2026-09-01 00:00:00"
    assert r["data"] and all(x["data"]["update_time"] >= "2026-09-01" for x in r["data"])


def test_v1_leads_updated_since_selects_by_update_time(sandbox, http):
    since = "2026-03-01T00:00:00Z"
    got = http.get(f"{sandbox.base_url}/v1/leads", params={"updated_since": since, "limit": 500}).json()["data"]
    truth = {
        x["id"]
        for x in sandbox.export_truth()["leads"]
        if x["update_time"] >= since and not x["is_deleted"] and not x["is_archived"]
    }
    assert truth and {x["id"] for x in got} == truth
    assert all(x["update_time"] >= since for x in got)


def test_index_built_by_worker_processes_equals_the_single_process_one(monkeypatch):
    from crmsync.sandbox import store as store_mod

    def dump(st):
        return {k: st.db.execute(f"SELECT * FROM {k} ORDER BY 1").fetchall() for k in store_mod.KINDS}

    monkeypatch.setattr(store_mod, "CHUNK", 700)
    monkeypatch.setattr(store_mod, "POOL_MIN_ROWS", 10**12)
    single = dump(store_mod.Store(seed=4, deals=3000))
    monkeypatch.setattr(store_mod, "POOL_MIN_ROWS", 0)
    pooled = dump(store_mod.Store(seed=4, deals=3000))
    assert single == pooled and len(single["deal"]) == 3000


def test_two_stores_indexing_at_once_each_fork_workers_with_their_own_data(monkeypatch):
    """Regression: the forked workers read a module global; a second store could overwrite it
    between the first one setting it and forking, and index the other company's rows."""
    import multiprocessing
    import time

    from crmsync.sandbox import store as store_mod

    real = multiprocessing.get_context

    class SlowFork:
        def __init__(self, method):
            self.ctx = real(method)

        def Pool(self, n):  # noqa: N802 - multiprocessing's name
            time.sleep(0.3)  # widen the window between setting the global and forking
            return self.ctx.Pool(n)

    def dump(st):
        st.wait_ready()
        return {k: st.db.execute(f"SELECT * FROM {k} ORDER BY 1").fetchall() for k in store_mod.KINDS}

    monkeypatch.setattr(store_mod, "CHUNK", 500)
    monkeypatch.setattr(store_mod, "POOL_MIN_ROWS", 10**12)
    alone = {seed: dump(store_mod.Store(seed=seed, deals=1500)) for seed in (5, 6)}
    monkeypatch.setattr(store_mod, "POOL_MIN_ROWS", 0)
    monkeypatch.setattr(store_mod.multiprocessing, "get_context", SlowFork)
    together = {seed: store_mod.Store(seed=seed, deals=1500, background=True) for seed in (5, 6)}
    assert {seed: dump(st) for seed, st in together.items()} == alone
