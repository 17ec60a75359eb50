"""The source's read() over a mocked API: edge cases the sandbox cannot stage on demand."""

from __future__ import annotations

from pathlib import Path

import responses
from crmsync.connectors.pipedrive import PipedriveSource

from crmsync.config import parse_config
from crmsync.model import Deal
from crmsync.source import Checkpoint, Notice, SourceContext

BASE = "https://acme.pipedrive.com"


def ok(data, next_cursor=None):
    return {"success": True, "data": data, "additional_data": {"next_cursor": next_cursor}}


def v1(data):
    return {"success": True, "data": data,
            "additional_data": {"pagination": {"start": 0, "limit": 500, "more_items_in_collection": False}}}


def source(cursors=None, **options) -> PipedriveSource:
    cfg = parse_config({"sources": {"pd": {"type": "pipedrive", "base_url": BASE, "api_token": "t0k3n",
                                           "backoff_seconds": 0, **options}}})
    opts = PipedriveSource.Options.model_validate(cfg.sources["pd"].options)
    return PipedriveSource("pd", opts, SourceContext(config=cfg, base_dir=Path("."), cursors=cursors or {}))


def metadata():
    responses.get(f"{BASE}/api/v1/users", json=ok([{"id": 1, "name": "Ana", "email": "ana@example.com",
                                                     "active_flag": True}]))
    responses.get(f"{BASE}/api/v2/pipelines", json=ok([{"id": 1, "name": "Sales", "order_nr": 0}]))
    responses.get(f"{BASE}/api/v2/stages", json=ok([{"id": 1, "name": "New", "pipeline_id": 1, "order_nr": 1}]))
    for f in ("dealFields", "personFields", "organizationFields"):
        responses.get(f"{BASE}/api/v2/{f}", json=ok([]))
    responses.get(f"{BASE}/api/v1/leadFields", json=v1([]))
    responses.get(f"{BASE}/api/v1/leadLabels", json=ok([]))
    responses.get(f"{BASE}/api/v2/persons", json=ok([]))
    responses.get(f"{BASE}/api/v2/organizations", json=ok([]))
    responses.get(f"{BASE}/api/v1/leads", json=v1([]))
    responses.get(f"{BASE}/api/v1/leads/archived", json=v1([]))


def deal(i, t, archived=False):
    return {"id": i, "title": f"D{i}", "status": "open", "pipeline_id": 1, "stage_id": 1, "is_archived": archived,
            "add_time": "2026-01-01T00:00:00Z", "update_time": t, "custom_fields": {}}


@responses.activate
def test_a_deal_in_both_archived_and_live_lists_is_written_once_and_the_cursor_waits_for_it():
    metadata()
    responses.get(f"{BASE}/api/v2/deals/archived", json=ok([deal(5, "2026-01-02T00:00:00Z", archived=True)]))
    responses.get(f"{BASE}/api/v2/deals", json=ok([deal(4, "2026-01-02T00:00:00Z"),
                                                    deal(5, "2026-01-03T00:00:00Z"),
                                                    deal(6, "2026-01-04T00:00:00Z")]))
    items = list(source(history=False).read())
    deals = [x for x in items if isinstance(x, Deal)]
    assert sorted(d.source_id for d in deals) == ["4", "5", "6"]
    assert [x.value for x in items if isinstance(x, Checkpoint) and x.stream == "deals"] == ["2026-01-02T23:59:59Z"]
    assert any(isinstance(x, Notice) and x.kind == "changed_during_run" for x in items)


@responses.activate
def test_incremental_lists_ask_updated_since_the_cursor_minus_the_overlap_sorted_by_update_time():
    metadata()
    responses.get(f"{BASE}/api/v2/deals/archived", json=ok([]))
    responses.get(f"{BASE}/api/v2/deals", json=ok([]))
    list(source({"deals": "2026-01-02T00:10:00Z", "persons": "2026-01-02T00:00:00Z"}, overlap_seconds=600,
                history=False).read())
    deals = next(c.request for c in responses.calls if c.request.url.startswith(f"{BASE}/api/v2/deals?"))
    assert deals.params["updated_since"] == "2026-01-02T00:00:00Z"
    assert deals.params["sort_by"] == "update_time" and deals.params["sort_direction"] == "asc"
    assert deals.params["status"] == "open,won,lost,deleted" and "source_lead_id" in deals.params["include_fields"]
    assert deals.params["limit"] == "500"
    persons = next(c.request for c in responses.calls if "/api/v2/persons" in c.request.url)
    assert persons.params["updated_since"] == "2026-01-01T23:50:00Z"
    assert all("/recents" not in c.request.url for c in responses.calls)
    assert all("api_token" not in c.request.url for c in responses.calls)


@responses.activate
def test_a_deal_edited_while_we_page_is_written_once_and_read_again_next_run():
    metadata()
    responses.get(f"{BASE}/api/v2/deals/archived", json=ok([]))
    # keyset paging by update_time meets deal 4 again on a later page after it was edited mid-listing
    responses.get(f"{BASE}/api/v2/deals", json=ok([deal(4, "2026-01-02T00:00:00Z"), deal(5, "2026-01-02T00:00:01Z")],
                                                   next_cursor="p2"))
    responses.get(f"{BASE}/api/v2/deals", json=ok([deal(6, "2026-01-03T00:00:00Z"), deal(4, "2026-01-05T00:00:00Z"),
                                                    deal(7, "2026-01-06T00:00:00Z")]))
    items = list(source(history=False).read())
    assert sorted(d.source_id for d in items if isinstance(d, Deal)) == ["4", "5", "6", "7"]
    cps = [x.value for x in items if isinstance(x, Checkpoint) and x.stream == "deals"]
    assert cps == ["2026-01-02T00:00:01Z", "2026-01-04T23:59:59Z"]


@responses.activate
def test_a_lead_edited_while_we_page_is_written_once_and_the_lead_cursor_waits_for_it():
    metadata()
    responses.replace(responses.GET, f"{BASE}/api/v1/leads", json={"success": True, "data": [
        {"id": "a", "title": "A", "update_time": "2026-01-01T00:00:01.000Z"},
        {"id": "b", "title": "B", "update_time": "2026-01-01T00:00:02.000Z"},
        {"id": "a", "title": "A2", "update_time": "2026-01-01T00:00:09.000Z"}],
        "additional_data": {"pagination": {"start": 0, "limit": 500, "more_items_in_collection": False}}})
    responses.get(f"{BASE}/api/v2/deals/archived", json=ok([]))
    responses.get(f"{BASE}/api/v2/deals", json=ok([]))
    items = list(source(history=False).read())
    leads = [x for x in items if type(x).__name__ == "Lead"]
    assert [x.title for x in leads] == ["A", "B"]
    assert [x.value for x in items if isinstance(x, Checkpoint) and x.stream == "leads"] == ["2026-01-01T00:00:08Z"]
