"""Reconcile after a Pipedrive sandbox run where leads convert between syncs (issue 5, acceptance item 2).

Expected values come from the sandbox's exported truth, never from crmsync. The truth's conversion of lead L
is the deal whose ``source_lead_id`` is L; its conversion time is that deal's ``add_time``: Pipedrive's
convert job creates the deal (``add_time``) and then deletes the lead, and the sandbox's journal records
exactly those two writes, the deal's ``add_time`` at T and the lead's ``is_deleted`` one virtual second
later (the sandbox's clock ticks once per write). The test checks that pairing too, so "conversion time =
the new deal's add_time" is a fact of the truth here, not an assumption.

Scenario (seed 3, 150 deals, 80 leads, 8 leads converted in the seed data before any sync):
sync 1 -> convert 3 live leads (an hour of virtual time apart) -> sync 2 -> reconcile (round 1)
-> convert 2 more live leads, and create a lead and convert it before crmsync ever sees it -> sync 3 ->
reconcile (round 2).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime

import pytest
import requests

from crmsync.config import parse_config
from crmsync.reconcile import run_reconcile
from crmsync.sandbox import RateLimitConfig, Sandbox
from crmsync.sync import run_sync

UNTHROTTLED = RateLimitConfig(burst=None, daily_budget=0)


def _ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _convert(sb: Sandbox, lead_id: str) -> str:
    """Convert through the v2 API and poll the asynchronous job; returns the new deal's id."""
    h = {"x-api-token": sb.api_token}
    r = requests.post(f"{sb.base_url}/api/v2/leads/{lead_id}/convert/deal", json={}, headers=h, timeout=5)
    r.raise_for_status()
    conversion_id = r.json()["data"]["conversion_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = requests.get(f"{sb.base_url}/api/v2/leads/{lead_id}/convert/status/{conversion_id}", headers=h,
                           timeout=5).json()["data"]
        if job["status"] == "completed":
            return str(job["deal_id"])
        assert job["status"] in ("not_started", "running"), job
        time.sleep(0.02)
    raise AssertionError(f"conversion of {lead_id} did not complete")


def _live_leads(truth: dict) -> list[str]:
    return sorted(x["id"] for x in truth["leads"] if not x["is_deleted"] and not x["is_archived"])


def truth_conversions(truth: dict) -> dict[str, tuple[str, str]]:
    """lead id -> (deal id, conversion time) from the sandbox's truth, checked against its journal."""
    out = {str(d["source_lead_id"]): (str(d["id"]), d["add_time"]) for d in truth["deals"] if d.get("source_lead_id")}
    leads = {x["id"]: x for x in truth["leads"]}
    for lead_id, (deal_id, _) in out.items():  # both sides of the truth agree on every pair
        assert str(leads[lead_id]["converted_deal_id"]) == deal_id and leads[lead_id]["is_deleted"]
    deal_added = {str(e["item_id"]): e["time"] for e in truth["journal"]
                  if e["entity"] == "deal" and e["field_key"] == "add_time"}
    lead_deleted = {e["item_id"]: e["time"] for e in truth["journal"]
                    if e["entity"] == "lead" and e["field_key"] == "is_deleted"}
    for lead_id, (deal_id, at) in out.items():
        if lead_id in lead_deleted:  # converted after start: the job's two writes, deal first
            assert deal_added[deal_id] == at
            assert (_ts(lead_deleted[lead_id]) - _ts(at)).total_seconds() == 1
    return out


def _snapshot(path) -> dict:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    snap = {
        "conversions": [dict(r) for r in db.execute("SELECT * FROM conversions")],
        "leads": {r["source_id"]: dict(r) for r in db.execute("SELECT * FROM leads")},
    }
    db.close()
    return snap


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reconcile_sandbox")
    with Sandbox(seed=3, deals=150, leads=80, rate_limit=UNTHROTTLED, conversion_delay=0.0) as sb:
        cfg = parse_config({
            "warehouse": {"path": str(tmp / "wh.db")},
            "sources": {"pd": {"type": "pipedrive", "base_url": sb.base_url, "api_token": sb.api_token,
                               "history": True}},
        }, environ={})
        assert run_sync(cfg).status == "succeeded"
        seeded = truth_conversions(sb.export_truth())
        live = _live_leads(sb.export_truth())
        round1 = {}
        for lead_id in live[:3]:
            sb.advance(3600)
            round1[lead_id] = _convert(sb, lead_id)
        assert run_sync(cfg).status == "succeeded"
        run_reconcile(cfg)
        truth1 = sb.export_truth()
        after1 = _snapshot(tmp / "wh.db")

        round2 = {}
        for lead_id in live[3:5]:
            sb.advance(1800)
            round2[lead_id] = _convert(sb, lead_id)
        person = next(p["id"] for p in truth1["persons"])
        h = {"x-api-token": sb.api_token}
        r = requests.post(f"{sb.base_url}/v1/leads", json={"title": "Born and converted between syncs",
                                                           "person_id": person}, headers=h, timeout=5)
        assert r.status_code == 201, r.text
        unseen = r.json()["data"]["id"]
        sb.advance(600)
        round2[unseen] = _convert(sb, unseen)
        assert run_sync(cfg).status == "succeeded"
        summary = run_reconcile(cfg)
        truth2 = sb.export_truth()
        after2 = _snapshot(tmp / "wh.db")
    return {"seeded": seeded, "round1": round1, "round2": round2, "unseen": unseen, "truth1": truth1,
            "truth2": truth2, "after1": after1, "after2": after2, "summary": summary}


def _explicit(snap: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in snap["conversions"]:
        if c["method"] in ("explicit", "captured"):
            out.setdefault(c["lead_id"], []).append(c)
    return out


@pytest.mark.parametrize(("truth_key", "snap_key"), [("truth1", "after1"), ("truth2", "after2")])
def test_every_converted_lead_maps_to_exactly_its_deal_at_the_deals_add_time(run, truth_key, snap_key):
    truth = truth_conversions(run[truth_key])
    found = _explicit(run[snap_key])
    assert set(found) == set(truth)  # no converted lead missed, no explicit/captured link the truth lacks
    for lead_id, (deal_id, at) in truth.items():
        rows = found[lead_id]
        assert [(r["deal_source"], r["deal_id"]) for r in rows] == [("pd", deal_id)], lead_id
        assert _ts(rows[0]["converted_at"]) == _ts(at), lead_id
        assert rows[0]["confidence"] == 1.0


def test_conversions_made_between_syncs_appear_in_the_round_after_them_and_not_before(run):
    seeded, round1, round2 = run["seeded"], run["round1"], run["round2"]
    assert len(seeded) == 8 and len(round1) == 3 and len(round2) == 3
    first = _explicit(run["after1"])
    assert set(first) == set(seeded) | set(round1)
    assert not set(round2) & set(first)
    second = _explicit(run["after2"])
    assert set(second) == set(seeded) | set(round1) | set(round2)
    for lead_id, deal_id in {**round1, **round2}.items():
        assert second[lead_id][0]["deal_id"] == deal_id


def test_conversion_times_between_syncs_are_distinct_and_in_conversion_order(run):
    truth = truth_conversions(run["truth2"])
    found = {k: v[0] for k, v in _explicit(run["after2"]).items()}
    order = list(run["round1"]) + list(run["round2"])
    times = [_ts(found[k]["converted_at"]) for k in order]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times == [_ts(truth[k][1]) for k in order]


def test_converted_leads_stay_in_the_leads_table_marked_converted(run):
    truth = truth_conversions(run["truth2"])
    leads = run["after2"]["leads"]
    for lead_id, (deal_id, at) in truth.items():
        lead = leads[lead_id]
        assert lead["status"] == "converted" and lead["converted_deal_id"] == deal_id, lead_id
        assert _ts(lead["converted_at"]) == _ts(at) and lead["removed_run"] is None, lead_id
    truth_live = {x["id"] for x in run["truth2"]["leads"] if not x["is_deleted"]}
    assert all(leads[i]["status"] != "converted" for i in truth_live)


def test_days_to_convert_counts_from_the_lead_add_time_crmsync_saw(run):
    truth_leads = {x["id"]: x for x in run["truth2"]["leads"]}
    truth = truth_conversions(run["truth2"])
    found = {k: v[0] for k, v in _explicit(run["after2"]).items()}
    seen_before = [*run["round1"], *(k for k in run["round2"] if k != run["unseen"])]
    for lead_id in seen_before:
        expected = (_ts(truth[lead_id][1]) - _ts(truth_leads[lead_id]["add_time"])).total_seconds() / 86400
        assert found[lead_id]["days_to_convert"] == pytest.approx(expected, abs=1e-3), lead_id


def test_a_lead_created_and_converted_between_two_syncs_is_kept_and_linked(run):
    unseen, deal_id = run["unseen"], run["round2"][run["unseen"]]
    lead = run["after2"]["leads"][unseen]
    assert lead["status"] == "converted" and lead["converted_deal_id"] == deal_id
    assert lead["title"] == "Born and converted between syncs"  # rebuilt from the deal the conversion made
    assert unseen not in run["after1"]["leads"]


def test_inferred_links_never_contradict_the_truths_explicit_conversions(run):
    truth = truth_conversions(run["truth2"])
    lead_born_deals = {deal_id for deal_id, _ in truth.values()}
    inferred = [c for c in run["after2"]["conversions"] if c["method"] == "inferred"]
    for c in inferred:
        assert c["lead_id"] not in truth and c["deal_id"] not in lead_born_deals, c
        assert c["confidence"] < 1.0
    assert run["summary"].counts["reconcile_conflicts"] == 0


def test_no_conversion_is_inferred_for_a_lead_the_source_still_holds_unconverted(run):
    """Pipedrive records every conversion (source_lead_id), so a lead without one was not converted."""
    live = {x["id"] for x in run["truth2"]["leads"] if not x["is_deleted"]}
    assert [c["lead_id"] for c in run["after2"]["conversions"] if c["lead_id"] in live] == []
