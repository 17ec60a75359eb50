"""End to end over real HTTP: crmsync.sync.run_sync with a parsed config against the sandbox."""

from __future__ import annotations

import pytest

from crmsync.sandbox import RateLimitConfig, Sandbox
from crmsync.sync import run_sync

from .conftest import client_usage, make_config, stored
from .truthcheck import compare

FAST = RateLimitConfig(burst=2000)


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """One sandbox and warehouse after a full sync (shared by the read-only checks below)."""
    tmp = tmp_path_factory.mktemp("full")
    with Sandbox(seed=7, deals=400, leads=150, rate_limit=FAST) as sb:
        cfg = make_config(sb, tmp)
        summary = run_sync(cfg)
        yield sb, tmp, cfg, summary


def test_full_sync_equals_sandbox_truth(synced):
    sb, tmp, _, summary = synced
    assert summary.status == "succeeded", summary.sources
    assert compare(sb.export_truth(), stored(tmp)) == []


def test_the_api_token_is_nowhere_in_the_warehouse(synced):
    sb, tmp, _, _ = synced
    for f in tmp.iterdir():
        assert sb.api_token.encode() not in f.read_bytes(), f


LIST_ENDPOINTS = ("GET /api/v2/deals", "GET /api/v2/deals/archived", "GET /api/v2/persons",
                  "GET /api/v2/organizations", "GET /api/v1/leads", "GET /api/v1/leads/archived")
METADATA = ("GET /api/v1/users", "GET /api/v2/pipelines", "GET /api/v2/stages", "GET /api/v2/dealFields",
            "GET /api/v2/personFields", "GET /api/v2/organizationFields", "GET /api/v1/leadFields",
            "GET /api/v1/leadLabels")


def test_full_sync_spends_one_history_request_only_per_deal_that_ever_moved(synced):
    sb, tmp, _, summary = synced
    truth = sb.export_truth()
    moved = {str(e["item_id"]) for e in truth["events"] if e["field_key"] in ("stage_id", "status")}
    notices = summary.sources[0].notices
    assert any(n["kind"] == "usage" for n in notices)
    st = stored(tmp)
    derived_only = [d for d in st.ids("deal") if d not in moved]
    assert derived_only, "some deals never moved: their first stage needs no request"
    # every deal has its first stage, with or without a history request
    firsts = {c.deal_id for c in st.get_many("stage_change", list(st.ids("stage_change"))).values()
              if c.evidence == "derived"}
    assert firsts == set(st.ids("deal"))


def test_second_run_without_changes_spends_at_most_one_list_request_per_entity_plus_metadata(synced):
    sb, tmp, cfg, _ = synced
    sb.usage.reset()
    summary = run_sync(cfg)
    assert summary.status == "succeeded"
    usage = client_usage(sb)
    assert set(usage["endpoints"]) <= set(LIST_ENDPOINTS) | set(METADATA), usage["endpoints"]
    assert all(n == 1 for n in usage["endpoints"].values()), usage["endpoints"]
    assert usage["requests"] == len(LIST_ENDPOINTS) + len(METADATA)
    totals = summary.totals()
    assert totals["inserted"] == totals["updated"] == totals["removed"] == totals["quarantined"] == 0
    # only the always-complete metadata is re-read: records in the overlap window are de-duplicated
    assert {e.entity for e in summary.entities if e.read} <= {"user", "pipeline", "stage", "custom_field"}


def _journal_ids(truth: dict, since: int, entity: str) -> set[str]:
    return {str(e["item_id"]) for e in truth["journal"][since:] if e["entity"] == entity}


def test_incremental_run_after_simulated_activity_picks_up_exactly_the_changes(tmp_path):
    # Seed 1 gives moves, wins, reopenings, deletions, conversions, archived leads and a field rename, and no
    # ``add_option``: adding an option in the sandbox silently re-generates the custom values of every
    # untouched record (no update_time change) — a sandbox bug no incremental sync could follow.
    with Sandbox(seed=1, deals=300, leads=120, rate_limit=FAST) as sb:
        cfg = make_config(sb, tmp_path)
        assert run_sync(cfg).status == "succeeded"
        for round_ in range(2):
            mark = len(sb.export_truth()["journal"])
            changes = sb.simulate(events=60, hours=24)
            assert changes and "add_option" not in {c["action"] for c in changes}
            sb.usage.reset()
            summary = run_sync(cfg)
            assert summary.status == "succeeded", summary.sources
            truth = sb.export_truth()
            assert compare(truth, stored(tmp_path)) == [], f"round {round_}"
            counts = {e.entity: e for e in summary.entities}
            changed_deals = _journal_ids(truth, mark, "deal")
            deal = counts["deal"]
            assert deal.inserted + deal.updated == len(changed_deals)
            assert deal.unchanged == 0 and deal.removed == 0
            changed_leads = _journal_ids(truth, mark, "lead")
            lead = counts.get("lead")
            assert (lead.inserted + lead.updated if lead else 0) == len(changed_leads)
            # history requests only for deals whose stage/status moved
            moved = {str(e["item_id"]) for e in truth["journal"][mark:]
                     if e["entity"] == "deal" and e["field_key"] in ("stage_id", "status", "pipeline_id")}
            history_calls = client_usage(sb)["endpoints"].get("GET /api/v1/deals/{id}/changelog", 0)
            assert history_calls == len(moved)


def _convert(sb, lead_id: str) -> str:
    """Convert a lead through the sandbox's v2 API and wait for the job; returns the deal id."""
    import time

    import requests

    h = {"x-api-token": sb.api_token}
    r = requests.post(f"{sb.base_url}/api/v2/leads/{lead_id}/convert/deal", json={}, headers=h, timeout=5)
    conv = r.json()["data"]["conversion_id"]
    for _ in range(100):
        status = requests.get(f"{sb.base_url}/api/v2/leads/{lead_id}/convert/status/{conv}", headers=h,
                              timeout=5).json()["data"]
        if status["status"] == "completed":
            return str(status["deal_id"])
        time.sleep(0.05)
    raise AssertionError("conversion did not complete")


def test_conversion_through_the_api_keeps_the_lead_marked_converted(tmp_path):
    with Sandbox(seed=5, deals=60, leads=40, rate_limit=FAST, conversion_delay=0.0) as sb:
        cfg = make_config(sb, tmp_path)
        run_sync(cfg)
        st = stored(tmp_path)
        lead_id = next(i for i in st.ids("lead") if st.get("lead", i).status.value == "new")
        before = st.get("lead", lead_id)
        deal_id = _convert(sb, lead_id)
        assert run_sync(cfg).status == "succeeded"
        st = stored(tmp_path)
        after = st.get("lead", lead_id)
        assert after.status.value == "converted" and after.converted_deal_id == deal_id
        assert after.title == before.title and after.custom == before.custom  # the full lead is kept
        assert after.converted_at == st.get("deal", deal_id).add_time
        convs = [c for c in st.get_many("conversion", list(st.ids("conversion"))).values() if c.lead_id == lead_id]
        assert [(c.deal_id, c.method, c.confidence) for c in convs] == [(deal_id, "explicit", 1.0)]
        assert compare(sb.export_truth(), st) == []


def test_renamed_custom_field_keeps_values_under_the_new_name_and_is_reported(tmp_path):
    with Sandbox(seed=4, deals=80, leads=30, rate_limit=FAST, conversion_delay=0.0) as sb:
        cfg = make_config(sb, tmp_path)
        run_sync(cfg)
        field = next(f for f in sb.store.catalog.custom_fields("deal") if f["name"] == "Segment")
        with sb.store.lock:  # what the sandbox's own simulate("rename_field") does
            field["name"] = "Market segment"
        # and a lead with a Segment value converts in the same interval (its stored copy is rewritten too)
        st = stored(tmp_path)
        lead_id = next(i for i, x in st.get_many("lead", list(st.ids("lead"))).items()
                       if x.status.value == "new" and "Segment" in x.custom)
        _convert(sb, lead_id)
        summary = run_sync(cfg)
        assert summary.status == "succeeded"
        notices = [n for n in summary.sources[0].notices if n["kind"] == "field_renamed"]
        assert len(notices) == 1 and "'Segment' renamed to 'Market segment'" in notices[0]["message"]
        st = stored(tmp_path)
        deals = st.get_many("deal", list(st.ids("deal")))
        assert not any("Segment" in d.custom for d in deals.values())
        assert any("Market segment" in d.custom for d in deals.values())
        leads = st.get_many("lead", list(st.ids("lead")))
        assert not any("Segment" in x.custom for x in leads.values())
        assert compare(sb.export_truth(), st) == []
        # the rename is applied once: the next run has nothing to rewrite
        again = run_sync(cfg)
        assert not [n for n in again.sources[0].notices if n["kind"] == "field_renamed"]
        assert again.totals()["updated"] == 0


def test_full_refresh_marks_deleted_persons_and_leads_removed_and_keeps_converted_leads(tmp_path):
    import requests

    with Sandbox(seed=12, deals=100, leads=50, rate_limit=FAST) as sb:
        cfg = make_config(sb, tmp_path)
        run_sync(cfg)
        st = stored(tmp_path)
        leads = st.get_many("lead", list(st.ids("lead")))
        converted = {i for i, x in leads.items() if x.status.value == "converted"}
        assert converted
        victim_lead = next(i for i, x in leads.items() if x.status.value == "new")
        victim_person = next(iter(st.ids("person")))
        h = {"x-api-token": sb.api_token}
        assert requests.delete(f"{sb.base_url}/api/v1/leads/{victim_lead}", headers=h, timeout=5).ok
        assert requests.delete(f"{sb.base_url}/api/v2/persons/{victim_person}", headers=h, timeout=5).ok
        run_sync(cfg)  # incremental: Pipedrive's lists show no trace of these deletions
        assert victim_lead in set(stored(tmp_path).ids("lead"))
        cfg_full = make_config(sb, tmp_path, full_refresh=True)
        summary = run_sync(cfg_full)
        removed = {e.entity: e.removed for e in summary.entities}
        assert removed["lead"] == 1 and removed["person"] == 1
        st = stored(tmp_path)
        assert victim_lead not in set(st.ids("lead")) and victim_person not in set(st.ids("person"))
        assert converted <= set(st.ids("lead"))
        assert compare(sb.export_truth(), st) == []
