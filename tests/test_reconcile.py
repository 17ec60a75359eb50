"""Reconciliation: conversions by evidence, timelines with spans and invariants, identity links.

Expected values are worked out by hand in each test from the fixture records.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crmsync.config import parse_config
from crmsync.model import ContactPoint, Conversion, Deal, Lead, Organization, Person, Stage, StageChange
from crmsync.reconcile import run_reconcile
from crmsync.reconcile.identity import normalize_domain, normalize_org_name
from crmsync.warehouse import Warehouse


def t(day: int, hour: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


def load(tmp_path, records, **reconcile):
    path = tmp_path / "w.db"
    with Warehouse.open(path) as wh:
        run = wh.start_run("sync")
        with wh.transaction():
            for record in records:
                wh.write_records(run, record.entity, [record])
        wh.finish_run(run, "succeeded")
    cfg = parse_config({"warehouse": {"path": str(path)}, "reconcile": reconcile}, environ={})
    summary = run_reconcile(cfg)
    return summary, sqlite3.connect(path)


def lead(i, **kw):
    return Lead(**{"source": "crm", "source_id": f"L{i}", "title": f"Lead {i}", "add_time": t(1), **kw})


def deal(i, **kw):
    return Deal(**{"source": "crm", "source_id": f"D{i}", "title": f"Deal {i}", **kw})


# ------------------------------------------------------------------ conversions


def test_explicit_links_from_either_side_and_captured_conversions_become_one_row_each(tmp_path):
    records = [
        lead(1), deal(1, source_lead_id="L1", add_time=t(5)),
        lead(2, status="converted", converted_deal_id="D2", converted_at=t(3)), deal(2, add_time=t(3)),
        lead(3), deal(3, add_time=t(9)),
        Conversion(source="crm", source_id="c3", lead_id="L3", deal_id="D3", converted_at=t(9, 12)),
    ]
    _, db = load(tmp_path, records)
    rows = db.execute("select lead_id, deal_id, converted_at, method, confidence, days_to_convert "
                      "from conversions order by lead_id").fetchall()
    assert rows == [
        ("L1", "D1", "2025-03-05T00:00:00Z", "explicit", 1.0, 4.0),  # deal created at conversion
        ("L2", "D2", "2025-03-03T00:00:00Z", "explicit", 1.0, 2.0),
        ("L3", "D3", "2025-03-09T12:00:00Z", "captured", 1.0, 8.5),
    ]


def test_status_contradicting_the_evidence_is_recorded_and_the_ids_win(tmp_path):
    records = [
        lead(1, status="converted"),  # says converted, nothing shows a deal
        lead(2, status="working", converted_deal_id="D2"), deal(2, add_time=t(4)),  # ids say converted
    ]
    _, db = load(tmp_path, records)
    conflicts = db.execute("select kind, source_id from reconcile_conflicts order by source_id").fetchall()
    assert conflicts == [("status_without_evidence", "L1"), ("evidence_contradicts_status", "L2")]
    assert db.execute("select lead_id, deal_id from conversions").fetchall() == [("L2", "D2")]


def test_one_lead_two_deals_one_deal_two_leads_and_conversion_before_lead_are_conflicts(tmp_path):
    records = [
        lead(1, converted_deal_id="D1"), deal(1, source_lead_id="L1", add_time=t(2)),
        deal(9, source_lead_id="L1", add_time=t(3)),          # L1 -> D1 and D9
        lead(2, converted_deal_id="D5"), lead(3, converted_deal_id="D5"), deal(5, add_time=t(4)),  # D5 <- L2, L3
        lead(4, add_time=t(10), converted_deal_id="D6", converted_at=t(8)), deal(6, add_time=t(8)),  # before lead
    ]
    _, db = load(tmp_path, records)
    kinds = db.execute("select kind, entity, source_id, detail from reconcile_conflicts order by kind, source_id")
    assert kinds.fetchall() == [
        ("converted_before_lead_existed", "lead", "L4", "converted 2025-03-08T00:00:00Z to deal D6, lead added "
                                                        "2025-03-10T00:00:00Z"),
        ("deal_claimed_by_several_leads", "deal", "D5", "leads L2, L3"),
        ("deal_created_before_lead", "deal", "D6", "deal created 2025-03-08T00:00:00Z, before its lead L4 "
                                                   "(2025-03-10T00:00:00Z)"),
        ("evidence_contradicts_status", "lead", "L1", "ids show a conversion but the status is 'new' (the ids win)"),
        ("evidence_contradicts_status", "lead", "L2", "ids show a conversion but the status is 'new' (the ids win)"),
        ("evidence_contradicts_status", "lead", "L3", "ids show a conversion but the status is 'new' (the ids win)"),
        ("evidence_contradicts_status", "lead", "L4", "ids show a conversion but the status is 'new' (the ids win)"),
        ("lead_linked_to_several_deals", "lead", "L1", "deals D1, D9"),
    ]


def test_inferred_link_needs_same_person_and_window_and_carries_confidence_and_reasons(tmp_path):
    records = [
        lead(1, person_id="P1", org_id="O1", title="Solar panels for HQ", value=Decimal("1000")),
        deal(1, person_id="P1", org_id="O1", title="Solar panels for HQ", value=Decimal("1100"), add_time=t(11)),
        lead(2, person_id="P2"), deal(2, person_id="P2", add_time=datetime(2025, 12, 1, tzinfo=UTC)),  # too late
        lead(3, person_id="P3", status="unqualified"), deal(3, person_id="P3", add_time=t(2)),  # unqualified lead
        lead(4, person_id="P4"), deal(4, org_id="O9", add_time=t(2)),  # nothing shared
    ]
    _, db = load(tmp_path, records)
    rows = db.execute("select lead_id, deal_id, method, confidence, reasons from conversions").fetchall()
    # same person 0.5 + same org 0.25 + identical title 0.15 + value within 20% 0.1 = 1.0
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("L1", "D1", "inferred", 1.0)]
    assert json.loads(rows[0][4]) == ["same person", "same organization", "title similarity 1.00", "similar value",
                                      "deal created 10 days after the lead"]


def test_inferred_links_respect_the_configured_threshold(tmp_path):
    records = [lead(1, person_id="P1", title="x"), deal(1, person_id="P1", title="completely different",
                                                            add_time=t(3))]
    # same person 0.5 + title similarity ~0: below 0.6, above 0.5.
    _, db = load(tmp_path, records, min_confidence=0.6)
    assert db.execute("select count(*) from conversions").fetchone() == (0,)
    _, db = load(tmp_path, [], min_confidence=0.5)
    assert db.execute("select lead_id, deal_id, method from conversions").fetchall() == [("L1", "D1", "inferred")]


def test_no_inference_in_a_source_that_records_conversions_itself(tmp_path):
    records = [
        lead(2, person_id="P2", converted_deal_id="D2"), deal(2, person_id="P2", add_time=t(3)),
        lead(3, person_id="P3", title="Solar"), deal(3, person_id="P3", title="Solar", add_time=t(4)),
        Lead(source="sheet", source_id="L7", title="Solar", person_id="P7", add_time=t(1)),
        Deal(source="sheet", source_id="D7", title="Solar", person_id="P7", add_time=t(4)),
    ]
    _, db = load(tmp_path, records)
    # "crm" records conversions (L2 -> D2), so L3 was not converted however alike D3 looks; "sheet" records
    # none, so its look-alike pair is inferred (0.5 person + 0.15 title = 0.65).
    assert db.execute("select lead_source, lead_id, deal_id, method from conversions order by 1, 2").fetchall() == [
        ("crm", "L2", "D2", "explicit"), ("sheet", "L7", "D7", "inferred")]


# ------------------------------------------------------------------ associations (HubSpot-style)


def hs_lead(i, **kw):
    return Lead(**{"source": "hs", "source_id": f"L{i}", "title": f"Lead {i}", "add_time": t(2), **kw})


def hs_deal(i, **kw):
    return Deal(**{"source": "hs", "source_id": f"D{i}", "title": f"Deal {i}", "add_time": t(5), **kw})


def conversions(db):
    return {(r[0], r[1]): (r[2], json.loads(r[3])) for r in db.execute(
        "select lead_id, deal_id, method, reasons from conversions where lead_source = 'hs'")}


def conflicts(db):
    return sorted(db.execute("select kind, source_id, detail from reconcile_conflicts").fetchall())


def test_lead_deal_association_is_an_explicit_link_and_the_contact_association_adds_its_reason(tmp_path):
    records = [hs_lead(1, person_id="C1", deal_ids=["D1"]), hs_deal(1, person_id="C1", person_ids=["C1", "C9"])]
    _, db = load(tmp_path, records)
    assert conversions(db) == {("L1", "D1"): ("explicit", [
        "lead associated with the deal (lead.deal_ids)",
        "deal associated with the lead's contact C1 (deal.person_ids)",
        "converted_at taken from the deal's add_time"])}


def test_lead_without_deal_associations_is_linked_to_its_contacts_later_deals_only(tmp_path):
    records = [
        hs_lead(1, person_id="C1", add_time=t(3)),
        hs_deal(1, person_ids=["C1"], add_time=t(4)),                 # after the lead: linked
        hs_deal(2, person_ids=["C7", "C1"], add_time=t(1)),           # an older deal of the same contact: not
        hs_deal(3, person_id="C1", add_time=t(6)),                    # a single person_id is no association list
    ]
    _, db = load(tmp_path, records)
    assert conversions(db) == {("L1", "D1"): ("explicit", [
        "deal associated with the lead's contact C1 (deal.person_ids); the lead has no deal associations of its own",
        "converted_at taken from the deal's add_time"])}


def test_a_leads_own_associations_decide_over_its_contacts_other_deals(tmp_path):
    records = [hs_lead(1, person_id="C1", deal_ids=["D1"]), hs_deal(1), hs_deal(2, person_ids=["C1"])]
    _, db = load(tmp_path, records)
    assert set(conversions(db)) == {("L1", "D1")}


def test_association_contradictions_are_conflicts(tmp_path):
    records = [
        hs_lead(1, person_id="C1", deal_ids=["D1"]), hs_deal(1, person_ids=["C2"]),      # deal is someone else's
        hs_lead(2, person_id="C3", status="unqualified"), hs_deal(3, person_ids=["C3"]),  # disqualified lead's contact
        hs_lead(4, deal_ids=["D4", "D5"]), hs_deal(4), hs_deal(5),                        # one lead, two deals
    ]
    _, db = load(tmp_path, records)
    assert set(conversions(db)) == {("L1", "D1"), ("L4", "D4"), ("L4", "D5")}
    assert [c for c in conflicts(db) if c[0] != "evidence_contradicts_status"] == [
        ("association_contact_mismatch", "L1", "associated deal D1 is associated with contacts C2, not with the "
                                               "lead's contact C1"),
        ("deal_for_contact_of_closed_lead", "L2", "deal D3 is associated with the lead's contact C3 but the lead is "
                                                  "unqualified: not linked"),
        ("lead_linked_to_several_deals", "L4", "deals D4, D5"),
    ]


def test_association_links_switch_off_guessing_in_their_source(tmp_path):
    records = [hs_lead(1, person_id="C1", deal_ids=["D1"]), hs_deal(1),
               hs_lead(2, person_id="P2", title="Solar"), hs_deal(2, person_id="P2", title="Solar")]
    _, db = load(tmp_path, records)
    assert set(conversions(db)) == {("L1", "D1")}  # L2/D2 look alike, but the source records its conversions


# ------------------------------------------------------------------ timelines


def stage(i, category):
    return Stage(source="crm", source_id=f"S{i}", name=f"Stage {i}", category=category)


def change(deal_id, n, old, new, at, field="stage_id", evidence="api"):
    return StageChange(source="crm", source_id=f"{deal_id}-{n}", deal_id=deal_id, field=field, old_value=old,
                       new_value=new, changed_at=at, evidence=evidence)


def test_timeline_merges_api_events_with_milestones_and_derives_time_in_stage(tmp_path):
    records = [
        stage(1, "prospecting"), stage(2, "proposal"), stage(3, "negotiation"),
        deal(1, stage_id="S3", status="won", add_time=t(1), won_time=t(10), close_time=t(10)),
        change("D1", 1, None, "S1", t(1)),
        change("D1", 2, "S1", "S2", t(3)),
        change("D1", 3, "S2", "S3", t(6, 12)),
        change("D1", 4, "open", "won", t(10), field="status"),
    ]
    _, db = load(tmp_path, records)
    events = db.execute("select seq, kind, new_value, stage_category, evidence from deal_timeline "
                        "where deal_id = 'D1' order by seq").fetchall()
    assert events == [(1, "stage", "S1", "prospecting", "api"), (2, "created", None, None, "milestone"),
                      (3, "stage", "S2", "proposal", "api"), (4, "stage", "S3", "negotiation", "api"),
                      (5, "status", "won", None, "api")]
    spans = db.execute("select stage_id, stage_category, seconds from stage_spans where deal_id = 'D1' "
                       "order by entered_at").fetchall()
    assert spans == [("S1", "prospecting", 2 * 86400.0), ("S2", "proposal", 3.5 * 86400), ("S3", "negotiation",
                                                                                        3.5 * 86400)]
    assert db.execute("select count(*) from timeline_violations").fetchone() == (0,)


def test_deal_without_history_gets_an_observed_stage_not_an_invented_path(tmp_path):
    records = [stage(2, "proposal"), deal(7, stage_id="S2", add_time=t(1), stage_change_time=t(4))]
    _, db = load(tmp_path, records)
    assert db.execute("select kind, at, new_value, evidence from deal_timeline where deal_id = 'D7' "
                      "order by seq").fetchall() == [
        ("created", "2025-03-01T00:00:00Z", None, "milestone"), ("stage", "2025-03-04T00:00:00Z", "S2", "observed")
    ]


def test_stage_entered_dates_are_milestone_events_matched_to_stages_whatever_their_spelling(tmp_path):
    records = [
        Stage(source="crm", source_id="Sales/Appointment scheduled", name="Appointment scheduled",
              category="prospecting"),
        Stage(source="crm", source_id="Sales/closedwon", name="closedwon", category="won"),
        deal(1, stage_id="Sales/closedwon", status="won", add_time=t(1), won_time=t(9), close_time=t(9),
             stage_entered={"Sales/Appointment Scheduled": t(1), "Sales/Closed Won": t(9), "Other/Unknown": t(5)}),
        # an API event at the same moment as a milestone wins over it (stronger evidence)
        change("D1", 1, None, "Sales/Appointment scheduled", t(1)),
    ]
    _, db = load(tmp_path, records)
    events = db.execute("select at, kind, new_value, evidence from deal_timeline where deal_id = 'D1' "
                        "and kind = 'stage' order by seq").fetchall()
    assert events == [
        ("2025-03-01T00:00:00Z", "stage", "Sales/Appointment scheduled", "api"),
        ("2025-03-05T00:00:00Z", "stage", "Other/Unknown", "milestone"),      # no such stage: kept as written
        ("2025-03-09T00:00:00Z", "stage", "Sales/closedwon", "milestone"),    # "Closed Won" is "closedwon"
    ]
    spans = db.execute("select stage_id, seconds from stage_spans where deal_id = 'D1' order by entered_at")
    assert spans.fetchall() == [("Sales/Appointment scheduled", 4 * 86400.0), ("Other/Unknown", 4 * 86400.0),
                                ("Sales/closedwon", 0.0)]


@pytest.mark.parametrize(
    ("records", "rule"),
    [
        ([deal(1, stage_id="S2", add_time=t(1)), change("D1", 1, None, "S1", t(2))], "ends_in_current_state"),
        ([deal(1, status="won", add_time=t(1))], "closed_without_close_time"),
        ([deal(1, stage_id="S2", status="lost", add_time=t(1), lost_time=t(5)),
          change("D1", 1, "S1", "S2", t(7))], "stage_change_after_close"),
        ([deal(1, stage_id="S1", add_time=t(5)), change("D1", 1, None, "S1", t(2))], "event_before_creation"),
        ([deal(1, status="won", add_time=t(5), won_time=t(3))], "closed_before_created"),
    ],
)
def test_each_timeline_invariant_violation_is_stored_with_the_deal(tmp_path, records, rule):
    _, db = load(tmp_path, records)
    rules = [r[0] for r in db.execute("select rule from timeline_violations where deal_id = 'D1'")]
    assert rule in rules


def test_reopened_deal_may_move_stage_after_its_first_close(tmp_path):
    records = [
        deal(1, stage_id="S2", status="won", add_time=t(1), won_time=t(9), close_time=t(9)),
        change("D1", 1, None, "S1", t(1)), change("D1", 2, "open", "lost", t(3), field="status"),
        change("D1", 3, "lost", "open", t(4), field="status"), change("D1", 4, "S1", "S2", t(5)),
        change("D1", 5, "open", "won", t(9), field="status"),
    ]
    _, db = load(tmp_path, records)
    assert db.execute("select rule from timeline_violations").fetchall() == []


def test_sync_diff_history_of_a_snapshot_source_feeds_the_timeline(tmp_path):
    path = tmp_path / "w.db"
    with Warehouse.open(path) as wh:
        for stage_id in ("S1", "S2"):
            run = wh.start_run("sync")
            with wh.transaction():
                wh.write_records(run, "deal", [deal(1, stage_id=stage_id, add_time=t(1))])
    run_reconcile(parse_config({"warehouse": {"path": str(path)}}, environ={}))
    db = sqlite3.connect(path)
    events = db.execute("select kind, old_value, new_value, evidence from deal_timeline order by seq").fetchall()
    assert ("stage", "S1", "S2", "sync_diff") in events


# ------------------------------------------------------------------ identity


@pytest.mark.parametrize(
    ("a", "b"),
    [("ACME, Inc.", "Acme Inc"), ("Peña & Asociados S.A. de C.V.", "PENA ASOCIADOS"), ("Müller GmbH", "muller"),
     ("Café Olé, S.L.", "Cafe Ole")],
)
def test_org_names_normalize_case_accents_punctuation_and_legal_suffixes(a, b):
    assert normalize_org_name(a) == normalize_org_name(b)


def test_domains_normalize_scheme_www_and_path():
    assert normalize_domain("https://www.Acme.com/about") == normalize_domain("acme.com") == "acme.com"


def test_same_person_and_org_across_sources_are_linked_with_reason_and_score_without_merging(tmp_path):
    records = [
        Person(source="pipedrive", source_id="1", name="Ana",
               emails=[ContactPoint(raw="ANA@x.com", normalized="ana@x.com")]),
        Person(source="sheet", source_id="a", name="Ana G.",
               emails=[ContactPoint(raw="ana@x.com", normalized="ana@x.com")],
               phones=[ContactPoint(raw="612", normalized="+34612345678")]),
        Person(source="sheet", source_id="b", name="Ana dup", phones=[ContactPoint(raw="+34 612 34 56 78",
                                                                                   normalized="+34612345678")]),
        Person(source="sheet", source_id="c", name="Bad", emails=[ContactPoint(raw="bad@", problem="invalid")]),
        Organization(source="pipedrive", source_id="o1", name="ACME, Inc.", domain="https://acme.com"),
        Organization(source="sheet", source_id="o2", name="Acme Inc"),
        Organization(source="sheet", source_id="o3", name="Other", domain="www.acme.com"),
        Organization(source="sheet", source_id="o4", name="Acme Industriess"),
        Organization(source="sheet", source_id="o5", name="Acme Industries Ltd."),
    ]
    _, db = load(tmp_path, records)
    links = db.execute("select entity, a_source, a_id, b_source, b_id, reason, score from identity_links "
                       "order by entity, reason, a_id, b_id").fetchall()
    assert ("person", "pipedrive", "1", "sheet", "a", "email:ana@x.com", 1.0) in links
    assert ("person", "sheet", "a", "sheet", "b", "phone:+34612345678", 0.9) in links
    assert ("organization", "pipedrive", "o1", "sheet", "o2", "name:acme", 1.0) in links
    assert ("organization", "pipedrive", "o1", "sheet", "o3", "domain:acme.com", 1.0) in links
    fuzzy = [r for r in links if r[5].startswith("fuzzy_name")]
    assert [(r[2], r[4]) for r in fuzzy] == [("o4", "o5")] and 0.9 <= fuzzy[0][6] < 1.0
    assert not [r for r in links if "c" in (r[2], r[4])]
    assert db.execute("select count(*) from persons").fetchone() == (4,)  # nothing merged


def test_reconcile_is_idempotent(tmp_path):
    records = [lead(1), deal(1, source_lead_id="L1", add_time=t(2))]
    first, db = load(tmp_path, records)
    second = run_reconcile(parse_config({"warehouse": {"path": str(tmp_path / "w.db")}}, environ={}))
    assert first.counts == second.counts
    assert db.execute("select count(*) from conversions").fetchone() == (1,)


def test_converted_flag_and_ids_win_over_the_status_picklist_and_disagreements_are_recorded(tmp_path):
    records = [
        lead(1, status="converted", converted=False),             # picklist says converted, flag says no
        lead(2, status="working", converted=True),                # flag says converted, no deal id
        lead(3, status="converted", converted=False, converted_deal_id="D3"), deal(3, add_time=t(2)),
        lead(4, status="converted", converted=True, converted_deal_id="D4"), deal(4, add_time=t(2)),  # consistent
    ]
    _, db = load(tmp_path, records)
    conflicts = db.execute("select source_id, kind from reconcile_conflicts order by source_id, kind").fetchall()
    assert conflicts == [
        ("L1", "status_without_evidence"),
        ("L2", "evidence_contradicts_status"), ("L2", "flag_without_deal"),
        ("L3", "ids_contradict_flag"),
    ]
    assert db.execute("select lead_id from conversions order by 1").fetchall() == [("L3",), ("L4",)]


def test_a_change_seen_by_the_api_and_by_two_syncs_appears_once_with_the_api_time(tmp_path):
    path = tmp_path / "w.db"
    won = [change("D1", 1, "open", "won", t(3), field="status")]
    with Warehouse.open(path) as wh:
        for status, events in (("open", []), ("won", won)):
            run = wh.start_run("sync")
            with wh.transaction():
                closed = t(3) if events else None
                wh.write_records(run, "deal", [deal(1, status=status, add_time=t(1), close_time=closed)])
                wh.write_records(run, "stage_change", events)
    run_reconcile(parse_config({"warehouse": {"path": str(path)}}, environ={}))
    db = sqlite3.connect(path)
    assert db.execute("select count(*) from changes where field = 'status'").fetchone() == (1,)  # the diff exists
    wins = db.execute("select at, new_value, evidence from deal_timeline where kind = 'status' order by seq")
    assert wins.fetchall() == [("2025-03-03T00:00:00Z", "won", "api")]
