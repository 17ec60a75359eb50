"""Deprecated v1 lists keep v1's nested shapes; unmodeled entities answer empty, well-formed pages."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/deals", "/deals?limit=100"),
        ("/deals", "/deals?status=deleted&limit=20"),
        ("/deals/{id}", "/deals/4"),
        ("/persons", "/persons?limit=50"),
        ("/organizations", "/organizations?limit=50"),
    ],
)
def test_deprecated_v1_reads_match_the_january_2026_spec(sandbox, http, check_schema, path, url):
    r = http.get(sandbox.base_url + "/v1" + url)
    assert r.status_code == 200
    check_schema("v1-jan26", path, "get", r)


def test_v1_deals_nest_relations_where_v2_has_ids(sandbox, http):
    v1 = http.get(sandbox.base_url + "/v1/deals/4").json()["data"]
    v2 = http.get(sandbox.base_url + "/api/v2/deals/4").json()["data"]
    assert v1["user_id"]["value"] == v2["owner_id"] and v1["user_id"]["name"]
    if v2["person_id"]:
        assert v1["person_id"]["value"] == v2["person_id"] and "email" in v1["person_id"]
    assert v1["add_time"].replace(" ", "T") + "Z" == v2["add_time"]
    assert v1["visible_to"] == str(v2["visible_to"])


def test_v1_deals_pages_cover_every_not_archived_deal(sandbox, http):
    ids, start = [], 0
    while True:
        r = http.get(sandbox.base_url + "/v1/deals", params={"start": start, "limit": 200}).json()
        ids += [d["id"] for d in r["data"]]
        page = r["additional_data"]["pagination"]
        if not page["more_items_in_collection"]:
            break
        start = page["next_start"]
    truth = {d["id"] for d in sandbox.export_truth()["deals"] if not d["is_deleted"] and not d["is_archived"]}
    assert len(ids) == len(set(ids)) and set(ids) == truth


@pytest.mark.parametrize(
    ("version", "path"),
    [
        ("v1", "/files"),
        ("v1", "/filters"),
        ("v1", "/currencies"),
        ("v1", "/activityTypes"),
        ("v1", "/noteFields"),
        ("v1", "/activityFields"),
        ("v1", "/productFields"),
        ("v2", "/activities"),
        ("v2", "/products"),
    ],
)
def test_unmodeled_entities_answer_well_formed_pages(sandbox, http, check_schema, version, path):
    prefix = "/api/v2" if version == "v2" else "/v1"
    r = http.get(sandbox.base_url + prefix + path)
    assert r.status_code == 200
    check_schema(version, path, "get", r)
