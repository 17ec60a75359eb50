"""Planner and Executor against an in-memory target: modes, matching, recovery, conflicts, normalize."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import responses
from crmsync.connectors.pipedrive.client import PipedriveClient
from crmsync.connectors.pipedrive.target import PipedriveTarget

from crmsync.model import Deal, Lead, Organization, Person
from crmsync.push.ledger import Ledger
from crmsync.push.plan import PushSettings
from crmsync.values import normalize_email, normalize_phone

from .unit_helpers import ORIGIN, TARGET, FakeTarget, actions, open_wh, plan, point, push, refresh, write


@pytest.fixture
def wh(tmp_path):
    with open_wh(tmp_path) as wh:
        yield wh


def org(sid, name, source=ORIGIN, **kw):
    return Organization(source=source, source_id=sid, name=name, **kw)


def person(sid, name, email=None, source=ORIGIN, **kw):
    emails = [point(email, normalized=email.lower())] if email else []
    return Person(source=source, source_id=sid, name=name, emails=emails, **kw)


def seed_origin(wh):
    write(wh, "organization", [org("1", "Acme SL", domain="acme.es")])
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es", org_id="1"),
                         person("2", "Bo Li", "bo@acme.es", org_id="1")])
    write(wh, "deal", [Deal(source=ORIGIN, source_id="1", title="Acme renewal", value=Decimal("1200"),
                            currency="EUR", status="open", person_id="1", org_id="1")])


ENTITIES = ("organization", "person", "deal")


# -- modes -----------------------------------------------------------------------------------------
def test_upsert_creates_with_refs_resolved_then_a_replan_is_all_skips(wh):
    seed_origin(wh)
    fake = FakeTarget()
    run_id, items, executor = push(wh, fake, PushSettings(ORIGIN, TARGET), ENTITIES)
    assert [(c[0], c[1]) for c in fake.calls] == [("create", "organization"), ("create", "person"),
                                                  ("create", "person"), ("create", "deal")]
    org_tid = Ledger(wh.conn).target_id(TARGET, "organization", ORIGIN, "1")
    ana_tid = Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "1")
    deal_values = fake.calls[-1][2]
    assert deal_values["org_id"] == org_tid and deal_values["person_id"] == ana_tid  # refs -> target ids
    assert fake.calls[1][2]["org_id"] == org_tid
    assert executor.outcomes[("person", "create")] == 2
    mapped = Ledger(wh.conn).id_map(TARGET, "person", ORIGIN)
    assert {m.run_id for m in mapped.values()} == {run_id} and {m.action for m in mapped.values()} == {"create"}

    refresh(wh, fake)
    fake.calls.clear()
    _, again, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ENTITIES)
    assert {e: set(actions(i).values()) for e, i in again.items()} == {e: {"skip"} for e in ENTITIES}
    assert fake.calls == []


def test_enrich_fills_only_empty_fields(wh):
    write(wh, "person", [person("7", "Ana Ruiz", "ana@acme.es", source=TARGET)])
    p = person("1", "Ana María Ruiz", "ana@acme.es")
    p.phones = [point("+34600112233")]
    write(wh, "person", [p, person("2", "New Person", "new@acme.es")])
    items = plan(wh, PushSettings(ORIGIN, TARGET, modes={"person": "enrich"}), "person")
    by = {i.origin_id: i for i in items}
    assert by["1"].action == "update" and by["1"].target_id == "7"
    assert set(by["1"].values) == {"phones"}  # the name differs but is not empty: kept
    assert by["2"].action == "skip"  # enrich never creates


def test_insert_never_updates(wh):
    write(wh, "person", [person("7", "Ana R.", "ana@acme.es", source=TARGET)])
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es"), person("2", "New Person", "new@acme.es")])
    fake = FakeTarget()
    _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET, modes={"person": "insert"}), ("person",))
    assert actions(items["person"]) == {"1": "skip", "2": "create"}
    assert [(c[0], c[2]["name"]) for c in fake.calls] == [("create", "New Person")]


def test_update_never_creates(wh):
    write(wh, "person", [person("7", "Ana R.", "ana@acme.es", source=TARGET)])
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es"), person("2", "New Person", "new@acme.es")])
    fake = FakeTarget()
    fake.records["person"]["7"] = {"name": "Ana R."}
    _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET, modes={"person": "update"}), ("person",))
    assert actions(items["person"]) == {"1": "update", "2": "skip"}
    assert fake.calls == [("update", "person", ("7", {"name": "Ana Ruiz"}))]


def test_mirror_deletes_only_id_mapped_records_whose_origin_record_was_removed(wh):
    seed_origin(wh)
    fake = FakeTarget()
    push(wh, fake, PushSettings(ORIGIN, TARGET), ENTITIES)
    fake.records["person"]["999"] = {"name": "Unmapped Person", "update_time": fake.now()}  # not crmsync's
    refresh(wh, fake)
    bo_tid = Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "2")
    # the next full read of the origin no longer has Bo
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es", org_id="1")], snapshot=True)
    removed = wh.conn.execute("SELECT source_id FROM persons WHERE source = ? AND removed_run IS NOT NULL",
                              (ORIGIN,)).fetchall()
    assert removed == [("2",)]
    fake.calls.clear()
    _, items, executor = push(wh, fake, PushSettings(ORIGIN, TARGET, modes={"person": "mirror"}), ("person",))
    assert [(i.origin_id, i.action, i.target_id) for i in items["person"] if i.action != "skip"] == [
        ("2", "delete", bo_tid)]
    assert fake.calls == [("delete", "person", bo_tid)]
    assert "999" in fake.records["person"]
    assert Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "2") is None
    assert executor.outcomes[("person", "delete")] == 1


def test_mirror_with_a_sample_scope_never_deletes(wh):
    seed_origin(wh)
    fake = FakeTarget()
    push(wh, fake, PushSettings(ORIGIN, TARGET), ENTITIES)
    refresh(wh, fake)
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es", org_id="1")], snapshot=True)
    settings = PushSettings(ORIGIN, TARGET, modes={"person": "mirror"}, scope={"person": {"1"}})
    assert actions(plan(wh, settings, "person")) == {"1": "skip"}


def test_upsert_without_mirror_never_deletes(wh):
    seed_origin(wh)
    fake = FakeTarget()
    push(wh, fake, PushSettings(ORIGIN, TARGET), ENTITIES)
    refresh(wh, fake)
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es", org_id="1")], snapshot=True)
    items = plan(wh, PushSettings(ORIGIN, TARGET), "person")
    assert "delete" not in actions(items).values()


# -- matching --------------------------------------------------------------------------------------
def test_person_by_email_and_org_by_normalized_name_are_adopted_not_duplicated(wh):
    write(wh, "organization", [org("70", "Acme SL", source=TARGET)])
    write(wh, "person", [person("80", "Ana Ruiz", "ana@acme.es", source=TARGET, org_id="70")])
    write(wh, "organization", [org("1", "ACME S.L.")])
    write(wh, "person", [person("1", "Ana Ruiz", "Ana@Acme.ES", org_id="1")])
    fake = FakeTarget()
    fake.records["organization"]["70"] = {"name": "Acme SL"}
    fake.records["person"]["80"] = {"name": "Ana Ruiz"}
    run_id, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("organization", "person"))
    assert [(i.action, i.target_id, i.reason) for i in items["organization"]] == [
        ("update", "70", "matched by name")]  # adopted; its name is written the origin's way
    assert items["person"][0].target_id == "80" and items["person"][0].reason == "matched by email"
    assert not [c for c in fake.calls if c[0] == "create"]
    ledger = Ledger(wh.conn)
    assert ledger.target_id(TARGET, "organization", ORIGIN, "1") == "70"
    assert ledger.target_id(TARGET, "person", ORIGIN, "1") == "80"
    assert {m.action for e in ("organization", "person") for m in ledger.id_map(TARGET, e, ORIGIN).values()} == {
        "match"}


def test_a_target_record_is_never_matched_twice(wh):
    write(wh, "person", [person("80", "Ana", "ana@acme.es", source=TARGET)])
    write(wh, "person", [person("1", "Ana", "ana@acme.es"), person("2", "Ana (dup)", "ANA@acme.es")])
    items = plan(wh, PushSettings(ORIGIN, TARGET), "person")
    assert sorted((i.action, i.target_id) for i in items) == [("create", None), ("skip", "80")]


# -- recovery --------------------------------------------------------------------------------------
def _interrupted_create_of_ana(wh):
    """Origin person 1 and a run killed after recording the intent to create her (answer never seen)."""
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es")])
    ledger = Ledger(wh.conn)
    old_run = wh.start_run("push", sources=[ORIGIN, TARGET])
    with wh.transaction():
        intent = ledger.intend(old_run, TARGET, "person", ORIGIN, "1", "a:person:1", None)
    wh.finish_run(old_run, "interrupted")
    return ledger, old_run, intent


def test_pending_intent_found_by_crmsync_key_is_recovered_without_a_create(wh):
    ledger, old_run, intent = _interrupted_create_of_ana(wh)
    # the interrupted run's POST did reach the CRM: the refreshed copy carries the key
    target_rec = person("55", "Ana Ruiz", "ana@acme.es", source=TARGET)
    target_rec.custom = {"crmsync key": "a:person:1"}
    write(wh, "person", [target_rec])
    fake = FakeTarget(keyed=("person",))
    fake.records["person"]["55"] = {"name": "Ana Ruiz"}
    new_run, items, executor = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",),
                                    key_entities=frozenset({"person"}))
    assert new_run != old_run
    assert items["person"][0].target_id == "55" and items["person"][0].reason == "crmsync key"
    assert fake.calls == []
    mapped = ledger.id_map(TARGET, "person", ORIGIN)["1"]
    assert (mapped.target_id, mapped.run_id, mapped.action) == ("55", old_run, "create")
    assert wh.conn.execute("SELECT state, target_id FROM push_intents WHERE id = ?", (intent,)).fetchone() == (
        "recovered", "55")
    assert any("recovered" in n for n in executor.notices)


def test_create_with_unknown_outcome_is_recovered_on_the_next_run_not_duplicated(wh):
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es")])
    fake = FakeTarget(keyed=("person",))
    fake.unknown_after_create = True
    first, _, executor = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",), key_entities=frozenset({"person"}))
    assert executor.outcomes[("person", "unknown")] == 1
    assert Ledger(wh.conn).pending_intents(TARGET)[0]["origin_id"] == "1"
    assert fake.calls[0][2]["custom.crmsync key"] == "a:person:1"
    refresh(wh, fake)
    fake.unknown_after_create = False
    fake.calls.clear()
    push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",), key_entities=frozenset({"person"}))
    assert fake.calls == []
    assert len(fake.records["person"]) == 1
    mapped = Ledger(wh.conn).id_map(TARGET, "person", ORIGIN)["1"]
    assert mapped.run_id == first and mapped.action == "create"
    assert Ledger(wh.conn).pending_intents(TARGET) == []


def test_pending_intent_not_found_in_the_target_is_created_once(wh):
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es")])
    ledger = Ledger(wh.conn)
    old_run = wh.start_run("push", sources=[ORIGIN, TARGET])
    with wh.transaction():
        intent = ledger.intend(old_run, TARGET, "person", ORIGIN, "1", "a:person:1", None)
    fake = FakeTarget(keyed=("person",))
    new_run, _, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",), key_entities=frozenset({"person"}))
    assert [c[0] for c in fake.calls] == ["create"]
    assert wh.conn.execute("SELECT state FROM push_intents WHERE id = ?", (intent,)).fetchone() == ("absent",)
    assert ledger.id_map(TARGET, "person", ORIGIN)["1"].run_id == new_run


# -- conflicts -------------------------------------------------------------------------------------
def _pushed_ana(wh):
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es")])
    fake = FakeTarget()
    push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
    refresh(wh, fake)
    tid = Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "1")
    return fake, tid


def test_update_of_a_record_changed_in_the_target_since_crmsync_wrote_it_is_a_conflict(wh):
    fake, tid = _pushed_ana(wh)
    fake.edit("person", tid, name="Ana (edited in the CRM)")
    refresh(wh, fake)
    fake.calls.clear()
    _, items, executor = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
    item = items["person"][0]
    assert item.action == "conflict" and "changed in the target" in item.reason
    assert fake.calls == []
    assert fake.records["person"][tid]["name"] == "Ana (edited in the CRM)"
    assert executor.problems[0]["status"] == "conflict"
    assert wh.conn.execute("SELECT status FROM push_log WHERE origin_id = '1' ORDER BY id DESC").fetchone() == (
        "conflict",)


def test_force_overwrites_a_conflicting_record(wh):
    fake, tid = _pushed_ana(wh)
    fake.edit("person", tid, name="Ana (edited in the CRM)")
    refresh(wh, fake)
    fake.calls.clear()
    _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET, force=True), ("person",))
    assert items["person"][0].action == "update"
    assert fake.calls == [("update", "person", (tid, {"name": "Ana Ruiz"}))]
    # the ID map's base moves to crmsync's own write: the next change in the origin is no conflict
    assert Ledger(wh.conn).id_map(TARGET, "person", ORIGIN)["1"].target_update_time == \
        fake.records["person"][tid]["update_time"]


def test_an_origin_change_on_an_untouched_target_record_is_a_plain_update(wh):
    fake, tid = _pushed_ana(wh)
    write(wh, "person", [person("1", "Ana Ruiz Gil", "ana@acme.es")])
    fake.calls.clear()
    _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
    assert items["person"][0].action == "update"
    assert fake.calls == [("update", "person", (tid, {"name": "Ana Ruiz Gil"}))]


# -- normalize -------------------------------------------------------------------------------------
def _messy(wh):
    raw_phone, raw_email = "+34 600 11 22 33", "ANA.RUIZ@ACME.ES"
    p = Person(source=ORIGIN, source_id="1", name="Ana  Ruiz",
               emails=[point(raw_email, normalized=normalize_email(raw_email), label="work")],
               phones=[point(raw_phone, normalized=normalize_phone(raw_phone, "ES"), label="mobile")])
    write(wh, "person", [p])


def test_normalize_pushes_e164_phones_and_lowercase_emails_back_into_the_same_crm(wh):
    _messy(wh)
    items = plan(wh, PushSettings(ORIGIN, ORIGIN, normalize=True), "person")
    assert [i.action for i in items] == ["update"]
    assert items[0].target_id == "1"
    assert items[0].values == {
        "name": "Ana Ruiz",
        "emails": [{"value": "ana.ruiz@acme.es", "label": "work", "primary": True}],
        "phones": [{"value": "+34600112233", "label": "mobile", "primary": True}],
    }
    assert items[0].changes["phones"] == [[{"value": "+34 600 11 22 33", "label": "mobile", "primary": True}],
                                          [{"value": "+34600112233", "label": "mobile", "primary": True}]]


def test_without_normalize_the_same_crm_record_is_left_unchanged(wh):
    _messy(wh)
    items = plan(wh, PushSettings(ORIGIN, ORIGIN, normalize=False), "person")
    assert [i.action for i in items] == ["skip"]


# -- rejected writes -------------------------------------------------------------------------------
def test_a_rejected_create_is_logged_with_the_api_error_and_the_run_goes_on(wh):
    write(wh, "person", [person("1", "Ana", "ana@acme.es"), person("2", "Bo", "bo@acme.es")])
    fake = FakeTarget()
    p3 = person("3", "Cy", "cy@acme.es")
    p3.custom = {"Level": "VIP"}
    write(wh, "person", [p3])
    fake.reject[("person", "custom.Level")] = "no person field named 'Level' in the target"
    _, items, executor = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
    assert executor.outcomes[("person", "create")] == 2 and executor.outcomes[("person", "rejected")] == 1
    rows = Ledger(wh.conn).export("push_rejected")
    assert [(r["origin_id"], r["error"]) for r in rows] == [("3", "no person field named 'Level' in the target")]
    state = wh.conn.execute("SELECT state FROM push_intents WHERE origin_id = '3'").fetchone()
    assert state == ("rejected",)


# -- leads: v1 takes value and currency as one object ----------------------------------------------
LEAD_ID = "adf21080-0e10-11eb-879b-05d71fb426ec"


@pytest.mark.parametrize(("have", "want", "body"), [
    ((Decimal("100"), "EUR"), (Decimal("100"), "USD"), {"value": {"amount": 100, "currency": "USD"}}),
    ((Decimal("100"), "USD"), (Decimal("200"), "USD"), {"value": {"amount": 200, "currency": "USD"}}),
])
@responses.activate
def test_a_lead_value_or_currency_change_sends_both_to_pipedrive(wh, have, want, body):
    write(wh, "lead", [Lead(source=TARGET, source_id=LEAD_ID, title="Inbound", value=have[0], currency=have[1],
                            update_time="2026-11-20T10:00:00Z")])
    write(wh, "lead", [Lead(source=ORIGIN, source_id="1", title="Inbound", value=want[0], currency=want[1])])
    ledger = Ledger(wh.conn)
    with wh.transaction():
        ledger.map(1, TARGET, "lead", ORIGIN, "1", LEAD_ID, "create", "2026-11-20T10:00:00Z")
    base = "https://acme.pipedrive.com"
    responses.patch(f"{base}/api/v1/leads/{LEAD_ID}", json={"success": True, "data": {
        "id": LEAD_ID, "update_time": "2026-11-24T03:00:00Z"}})
    target = PipedriveTarget(PipedriveClient(base, "0" * 40, sleep=lambda s: None))
    _, items, executor = push(wh, target, PushSettings(ORIGIN, TARGET), ("lead",))
    assert executor.outcomes[("lead", "update")] == 1, executor.problems
    assert json.loads(responses.calls[0].request.body) == body
    # rollback's pre-image restores both as well
    before = json.loads(wh.conn.execute("SELECT before FROM push_log WHERE entity = 'lead'").fetchone()[0])
    assert before == {"value": str(have[0]), "currency": have[1]}


def test_a_conflict_still_holds_on_the_next_run_without_force(wh):
    fake, tid = _pushed_ana(wh)
    fake.edit("person", tid, name="Ana (edited in the CRM)")
    refresh(wh, fake)
    for _ in range(2):  # reporting the conflict must not make crmsync forget it
        fake.calls.clear()
        _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
        assert items["person"][0].action == "conflict"
        assert fake.calls == []
    assert fake.records["person"][tid]["name"] == "Ana (edited in the CRM)"


def test_a_conflict_seen_against_the_dry_run_plan_still_holds_on_the_next_run(wh):
    write(wh, "person", [person("80", "Ana R.", "ana@acme.es", source=TARGET, update_time="2026-11-24T01:00:00Z")])
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es")])
    fake = FakeTarget()
    fake.records["person"]["80"] = {"name": "Ana R.", "emails": [{"value": "ana@acme.es", "primary": True}],
                                    "update_time": "2026-11-24T01:00:00Z"}
    seen = {(i.entity, i.origin_id): i.seen for i in plan(wh, PushSettings(ORIGIN, TARGET), "person")}
    fake.edit("person", "80", name="Ana (edited in the CRM)")
    refresh(wh, fake)
    _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",), plan_seen=seen)
    assert items["person"][0].action == "conflict"
    _, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))  # the plan is closed now
    assert items["person"][0].action == "conflict"
    assert fake.calls == []


@responses.activate
def test_an_update_of_a_record_deleted_in_the_crm_since_the_refresh_does_not_stop_the_run(wh):
    write(wh, "person", [person("80", "Ana R.", "ana@acme.es", source=TARGET),
                         person("81", "Bo L.", "bo@acme.es", source=TARGET)])
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es"), person("2", "Bo Li", "bo@acme.es")])
    base = "https://acme.pipedrive.com"
    responses.patch(f"{base}/api/v2/persons/80", status=404, json={"success": False, "error": "Person not found"})
    responses.patch(f"{base}/api/v2/persons/81", json={"success": True, "data": {"id": 81, "update_time": None}})
    target = PipedriveTarget(PipedriveClient(base, "0" * 40, sleep=lambda s: None))
    _, _, executor = push(wh, target, PushSettings(ORIGIN, TARGET), ("person",))
    assert executor.outcomes[("person", "rejected")] == 1 and executor.outcomes[("person", "update")] == 1
    assert [(r["origin_id"], r["error"]) for r in Ledger(wh.conn).export("push_rejected")] == [
        ("1", "Person not found")]


def test_a_pending_intent_matched_only_by_email_is_kept_as_a_match_not_owned_by_the_interrupted_run(wh):
    ledger, old_run, intent = _interrupted_create_of_ana(wh)
    # a person with the same email but no crmsync key: maybe the POST landed, maybe a user typed it in
    write(wh, "person", [person("77", "Ana Ruiz", "ana@acme.es", source=TARGET)])
    fake = FakeTarget(keyed=("person",))
    fake.records["person"]["77"] = {"name": "Ana Ruiz"}
    new_run, items, _ = push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",), key_entities=frozenset({"person"}))
    assert items["person"][0].target_id == "77" and not items["person"][0].owned
    mapped = ledger.id_map(TARGET, "person", ORIGIN)["1"]
    assert (mapped.run_id, mapped.action) == (new_run, "match")  # rollback of old_run will not delete it
    assert wh.conn.execute("SELECT state FROM push_intents WHERE id = ?", (intent,)).fetchone() == ("matched",)


def test_mirror_does_not_delete_a_target_record_edited_since_crmsync_wrote_it_unless_forced(wh):
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es"), person("2", "Bo Li", "bo@acme.es")], snapshot=True)
    fake = FakeTarget()
    push(wh, fake, PushSettings(ORIGIN, TARGET), ("person",))
    refresh(wh, fake)
    write(wh, "person", [person("1", "Ana Ruiz", "ana@acme.es")], snapshot=True)  # Bo left the origin
    bo = Ledger(wh.conn).target_id(TARGET, "person", ORIGIN, "2")
    fake.edit("person", bo, name="Bo Li (edited in the CRM)")
    refresh(wh, fake)
    settings = PushSettings(ORIGIN, TARGET, modes={"person": "mirror"})
    assert actions(plan(wh, settings, "person"))["2"] == "conflict"
    forced = PushSettings(ORIGIN, TARGET, modes={"person": "mirror"}, force=True)
    assert actions(plan(wh, forced, "person"))["2"] == "delete"


def test_a_set_custom_field_with_the_same_options_in_another_order_is_up_to_date(wh):
    from crmsync.push.plan import comparable

    assert comparable("custom.Regions", ["EMEA", "NA"]) == comparable("custom.Regions", ["NA", "EMEA"])
    assert comparable("custom.Regions", ["EMEA"]) != comparable("custom.Regions", ["EMEA", "NA"])
    assert comparable("emails", [{"value": "a@x.es"}, {"value": "b@x.es"}]) != comparable(
        "emails", [{"value": "b@x.es"}, {"value": "a@x.es"}])  # the first email is the primary one
