"""Migration pieces at unit level: pipelines/stages with a stage map, owners by email, leads by fingerprint,
skipped origin records, ``sample_scope`` and ``verify_migration``."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crmsync.model import Deal, Lead, Organization, Person, Pipeline, Stage, User
from crmsync.push.ledger import Ledger
from crmsync.push.plan import Planner, PushSettings, Ref
from crmsync.push.runner import sample_scope, verify_migration

from .unit_helpers import ORIGIN, TARGET, FakeTarget, actions, open_wh, plan, push, refresh, write


@pytest.fixture
def wh(tmp_path):
    with open_wh(tmp_path) as wh:
        yield wh


def test_pipelines_and_stages_follow_the_stage_map_and_adopt_existing_ones(wh):
    write(wh, "pipeline", [Pipeline(source=TARGET, source_id="70", name="Ventas", raw={"update_time": None})])
    write(wh, "stage", [Stage(source=TARGET, source_id="700", name="Propuesta", pipeline_id="70")])
    write(wh, "pipeline", [Pipeline(source=ORIGIN, source_id="1", name="Sales")])
    write(wh, "stage", [Stage(source=ORIGIN, source_id="10", name="Proposal", pipeline_id="1"),
                        Stage(source=ORIGIN, source_id="11", name="Won it", pipeline_id="1",
                              probability=Decimal("100"))])
    fake = FakeTarget()
    fake.records["pipeline"]["70"] = {"name": "Ventas"}
    fake.records["stage"]["700"] = {"name": "Propuesta", "pipeline_id": "70"}
    settings = PushSettings(ORIGIN, TARGET, stage_map={"Sales": "Ventas", "Sales/Proposal": "Ventas/Propuesta"})
    _, items, _ = push(wh, fake, settings, ("pipeline", "stage"))
    assert [(i.action, i.target_id) for i in items["pipeline"]] == [("skip", "70")]
    assert {i.origin_id: (i.action, i.target_id) for i in items["stage"]} == {"10": ("skip", "700"),
                                                                            "11": ("create", None)}
    assert fake.calls == [("create", "stage", {"name": "Won it", "pipeline_id": "70", "probability": Decimal("100")})]
    assert Ledger(wh.conn).target_id(TARGET, "stage", ORIGIN, "10") == "700"


def test_owners_are_mapped_by_email_and_unknown_owners_are_left_to_the_default_with_a_notice(wh):
    write(wh, "user", [User(source=TARGET, source_id="9", email="ANA@acme.es")])
    write(wh, "user", [User(source=ORIGIN, source_id="5", email="ana@acme.es"),
                       User(source=ORIGIN, source_id="6", email="gone@acme.es")])
    write(wh, "organization", [Organization(source=ORIGIN, source_id="1", name="Acme", owner_id="5"),
                               Organization(source=ORIGIN, source_id="2", name="Beta", owner_id="6")])
    planner = Planner(wh.conn, PushSettings(ORIGIN, TARGET), Ledger(wh.conn))
    by = {i.origin_id: i for i in planner.plan("organization")}
    assert by["1"].values == {"name": "Acme", "owner_id": "9"}
    assert by["2"].values == {"name": "Beta"}
    assert any("origin user 6" in n for n in planner.notices)


def test_deleted_deals_converted_and_archived_leads_are_not_migrated(wh):
    write(wh, "deal", [Deal(source=ORIGIN, source_id="1", title="Gone", status="deleted"),
                       Deal(source=ORIGIN, source_id="2", title="Live", status="open")])
    write(wh, "lead", [Lead(source=ORIGIN, source_id="l1", title="Became a deal", status="converted"),
                       Lead(source=ORIGIN, source_id="l2", title="Archived", status="archived"),
                       Lead(source=ORIGIN, source_id="l3", title="Open")])
    assert actions(plan(wh, PushSettings(ORIGIN, TARGET), "deal")) == {"1": "skip", "2": "create"}
    assert actions(plan(wh, PushSettings(ORIGIN, TARGET), "lead")) == {"l1": "skip", "l2": "skip", "l3": "create"}


def test_a_lead_created_with_an_unknown_outcome_is_recovered_by_fingerprint(wh):
    """Leads cannot carry the crmsync key: the title + person + organization fingerprint finds them."""
    write(wh, "person", [Person(source=ORIGIN, source_id="1", name="Ana")])
    write(wh, "lead", [Lead(source=ORIGIN, source_id="l1", title="Inbound", person_id="1")])
    fake = FakeTarget()
    push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
    fake.unknown_after_create = True
    first, items, executor = push(wh, fake, PushSettings(ORIGIN, TARGET), ("lead",))
    assert executor.outcomes[("lead", "unknown")] == 1
    assert items["lead"][0].values["person_id"] == Ref("person", "1")
    refresh(wh, fake)
    fake.unknown_after_create = False
    fake.calls.clear()
    _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("lead",))
    assert items["lead"][0].reason == "matched by fingerprint"
    assert fake.calls == [] and len(fake.records["lead"]) == 1
    mapped = Ledger(wh.conn).id_map(TARGET, "lead", ORIGIN)["l1"]
    assert (mapped.run_id, mapped.action) == (first, "create")


def test_a_deleted_target_deal_is_not_adopted_by_fingerprint(wh):
    write(wh, "deal", [Deal(source=TARGET, source_id="90", title="Renewal", status="deleted")])
    write(wh, "deal", [Deal(source=ORIGIN, source_id="1", title="Renewal")])
    assert actions(plan(wh, PushSettings(ORIGIN, TARGET), "deal")) == {"1": "create"}


def _origin_company(wh):
    write(wh, "pipeline", [Pipeline(source=ORIGIN, source_id="1", name="Sales"),
                           Pipeline(source=ORIGIN, source_id="2", name="Other")])
    write(wh, "stage", [Stage(source=ORIGIN, source_id="10", name="New", pipeline_id="1"),
                        Stage(source=ORIGIN, source_id="11", name="Won", pipeline_id="1"),
                        Stage(source=ORIGIN, source_id="20", name="Elsewhere", pipeline_id="2")])
    write(wh, "organization", [Organization(source=ORIGIN, source_id=str(i), name=f"Org {i}") for i in (1, 2, 3)])
    write(wh, "person", [Person(source=ORIGIN, source_id="1", name="Ana", org_id="2"),
                         Person(source=ORIGIN, source_id="2", name="Bo", org_id="3")])
    write(wh, "deal", [Deal(source=ORIGIN, source_id="1", title="First", person_id="1", stage_id="10",
                            pipeline_id="1", add_time="2026-01-01T00:00:00Z"),
                       Deal(source=ORIGIN, source_id="2", title="Second", person_id="2", stage_id="20",
                            pipeline_id="2", add_time="2026-02-01T00:00:00Z"),
                       Deal(source=ORIGIN, source_id="3", title="Deleted", status="deleted",
                            add_time="2025-01-01T00:00:00Z")])
    write(wh, "lead", [Lead(source=ORIGIN, source_id="l1", title="Ana's lead", person_id="1"),
                       Lead(source=ORIGIN, source_id="l2", title="Org 2's lead", org_id="2"),
                       Lead(source=ORIGIN, source_id="l3", title="Bo's lead", person_id="2")])


def test_sample_scope_takes_the_first_live_deals_with_everything_they_point_to(wh):
    _origin_company(wh)
    scope = sample_scope(wh.conn, ORIGIN, 1)
    assert scope == {
        "deal": {"1"}, "person": {"1"}, "organization": {"2"}, "pipeline": {"1"}, "stage": {"10", "11"},
        "lead": {"l1", "l2"},
    }
    assert {i.origin_id for i in plan(wh, PushSettings(ORIGIN, TARGET, scope=scope), "stage")} == {"10", "11"}


def test_verify_migration_counts_and_checks_relationships_through_the_id_map(wh):
    _origin_company(wh)
    settings = PushSettings(ORIGIN, TARGET, entities=("pipeline", "stage", "organization", "person", "deal"))
    fake = FakeTarget()
    push(wh, fake, settings, settings.entities)
    refresh(wh, fake)
    report = verify_migration(wh, settings)
    assert report["ok"], report
    assert report["counts"]["deal"] == {"origin": 2, "in_target": 2, "rejected": 0, "missing": 0}
    assert report["relationships"]["deal"]["counts"] == {"person_id: ok": 2, "stage_id: ok": 2, "pipeline_id: ok": 2}
    # someone deletes a person in the target, and moves a deal to another person
    ana = Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "1")
    bo = Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "2")
    del fake.records["person"][ana]
    deal = Ledger(wh.conn).target_id(TARGET, "deal", ORIGIN, "2")
    fake.edit("deal", deal, person_id=ana)
    refresh(wh, fake)
    report = verify_migration(wh, settings)
    assert not report["ok"]
    assert report["counts"]["person"]["missing"] == 1
    assert report["relationships"]["deal"]["broken"] == [
        {"origin_id": "2", "field": "person_id", "expected": bo, "found": ana}]
    # a deal deleted in the target (Pipedrive keeps it 30 days as status "deleted") is missing too
    fake.edit("deal", Ledger(wh.conn).target_id(TARGET, "deal", ORIGIN, "1"), status="deleted")
    refresh(wh, fake)
    counts = verify_migration(wh, settings)["counts"]["deal"]
    assert counts == {"origin": 2, "in_target": 1, "rejected": 0, "missing": 1}
