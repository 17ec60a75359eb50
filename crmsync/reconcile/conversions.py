"""Which lead became which deal, when, and how we know.

Why an order of evidence: explicit links (a deal's ``source_lead_id``, a
lead's converted-deal id, lead↔deal and contact↔deal associations (see
:mod:`.associations`), conversions captured by a connector at sync time)
are facts; a match by person/organization, title and time window is a guess.
Explicit evidence always wins, guesses carry a confidence and their reasons,
and contradictions are recorded instead of resolved silently:

* one lead linked to two deals, or a deal claimed by two leads;
* a conversion dated before the lead existed;
* a status that says "converted" while no id or flag shows a deal (the ids win).

Example::

    >>> links = infer_candidates(lead, deals, settings)        # doctest: +SKIP
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rapidfuzz import fuzz

from .associations import association_links


@dataclass(frozen=True)
class InferenceSettings:
    """Thresholds for inferred links (configurable under ``[reconcile]``)."""

    window_days: int = 180
    min_confidence: float = 0.6


@dataclass
class Link:
    lead: tuple[str, str]
    deal: tuple[str, str]
    converted_at: str | None
    method: str
    confidence: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class Conflict:
    kind: str
    entity: str
    source: str
    source_id: str
    detail: str


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


#: Where the association module finds its columns in the rows selected below.
_LEAD_COLS = {"status": 2, "add_time": 5, "person_id": 6, "deal_ids": 11}
_DEAL_COLS = {"add_time": 3, "person_ids": 8}


def find_conversions(conn: sqlite3.Connection, settings: InferenceSettings) -> tuple[list[Link], list[Conflict]]:
    leads = {
        (r[0], r[1]): r
        for r in conn.execute(
            "SELECT source, source_id, status, converted_deal_id, converted_at, add_time, person_id, org_id, title, "
            "value, converted, deal_ids FROM leads"
        )
    }
    deals = {
        (r[0], r[1]): r
        for r in conn.execute(
            "SELECT source, source_id, source_lead_id, add_time, person_id, org_id, title, value, person_ids "
            "FROM deals "
            "WHERE removed_run IS NULL OR source_lead_id IS NOT NULL"
        )
    }
    links: dict[tuple, Link] = {}
    conflicts: list[Conflict] = []

    def add(lead_key: tuple[str, str], deal_key: tuple[str, str], at: str | None, method: str, reason: str) -> None:
        key = (lead_key, deal_key)
        if key in links:
            link = links[key]
            link.reasons.append(reason)
            if method == "captured" and link.method == "explicit":
                link.method = "captured"  # a conversion seen happening is the strongest evidence
            link.converted_at = link.converted_at or at
            return
        links[key] = Link(lead_key, deal_key, at, method, 1.0, [reason])

    for (source, deal_id), d in deals.items():
        lead_id = d[2]
        if lead_id:
            add((source, lead_id), (source, deal_id), None, "explicit", "deal.source_lead_id")
    for (source, lead_id), lead in leads.items():
        if lead[3]:
            add((source, lead_id), (source, lead[3]), lead[4], "explicit", "lead.converted_deal_id")
    associated, association_conflicts = association_links(
        leads, deals, when=_when, lead_cols=_LEAD_COLS, deal_cols=_DEAL_COLS)
    for lead_key, deal_key, reason in associated:
        add(lead_key, deal_key, None, "explicit", reason)
    conflicts += [Conflict(*c) for c in association_conflicts]
    for source, lead_id, deal_id, at in conn.execute(
        "SELECT source, lead_id, deal_id, converted_at FROM captured_conversions"
    ):
        add((source, lead_id), (source, deal_id), at, "captured", "captured at sync time")
    for link in links.values():
        deal = deals.get(link.deal)
        if link.converted_at is None and deal is not None:
            link.converted_at = deal[3]  # the deal was created by the conversion
            link.reasons.append("converted_at taken from the deal's add_time")
        lead = leads.get(link.lead)
        if lead is None:
            link.reasons.append("lead not in the warehouse")
        if deal is None:
            link.reasons.append("deal not in the warehouse")

    explicit_leads = {link.lead for link in links.values()}
    explicit_deals = {link.deal for link in links.values()}

    # Contradictions between a lead's status picklist, its converted flag and the ids: flag and ids win.
    for key, lead in leads.items():
        status, flag, has_ids = lead[2], lead[10], key in explicit_leads
        if flag is not None and bool(flag) != has_ids:
            kind, detail = (("flag_without_deal", "the converted flag is set but no deal id shows which deal")
                            if flag else ("ids_contradict_flag", "deal ids show a conversion but the flag says not "
                                                                  "converted (the ids win)"))
            conflicts.append(Conflict(kind, "lead", *key, detail))
        if status == "converted" and not has_ids and not flag:
            flag_note = " and the flag says not converted" if flag is not None else ""
            conflicts.append(Conflict("status_without_evidence", "lead", *key, "status says converted but no deal "
                                      f"id or captured conversion shows one{flag_note}"))
        elif (has_ids or flag) and status not in ("converted", None):
            conflicts.append(Conflict("evidence_contradicts_status", "lead", *key,
                                      f"{'ids' if has_ids else 'the converted flag'} show a conversion but the "
                                      f"status is {status!r} (the {'ids' if has_ids else 'flag'} win)"))

    inferred = _infer(leads, deals, explicit_leads, explicit_deals, settings)
    all_links = list(links.values()) + inferred
    conflicts += _conflicts(all_links, leads, deals)
    return all_links, conflicts


def _infer(leads: dict, deals: dict, taken_leads: set, taken_deals: set,
           settings: InferenceSettings) -> list[Link]:
    """Candidate deals for leads without explicit links: same person/org, after the lead, similar title/value.

    Only for sources that record no conversion at all: where a source does record them (Pipedrive's
    ``source_lead_id``, a converted-deal id column), a lead without one was not converted, and a guess
    could only be a false positive. Candidates come from blocks by person and organization, never
    all pairs; organization-only candidates are skipped when they cannot reach ``min_confidence``.
    """
    explicit_sources = {key[0] for key in taken_leads}
    by_person: dict[tuple[str, str], list] = defaultdict(list)
    by_org: dict[tuple[str, str], list] = defaultdict(list)
    deal_times: dict[tuple[str, str], datetime | None] = {}
    for key, d in deals.items():
        if key in taken_deals or key[0] in explicit_sources:
            continue
        deal_times[key] = _when(d[3])
        if d[4]:
            by_person[(key[0], d[4])].append(key)
        if d[5]:
            by_org[(key[0], d[5])].append(key)
    org_only_can_pass = settings.min_confidence <= _ORG_ONLY_MAX
    window = timedelta(days=settings.window_days)
    out = []
    for key, lead in leads.items():
        if key in taken_leads or key[0] in explicit_sources or lead[2] in ("unqualified", "archived"):
            continue
        lead_at = _when(lead[5])
        candidates = set(by_person.get((key[0], lead[6]), []))
        if org_only_can_pass:
            candidates |= set(by_org.get((key[0], lead[7]), []))
        best: tuple[float, list[str], tuple] | None = None
        for deal_key in candidates:
            d = deals[deal_key]
            deal_at = deal_times[deal_key]
            if lead_at and deal_at and not (lead_at <= deal_at <= lead_at + window):
                continue
            score, reasons = 0.0, []
            if lead[6] and d[4] == lead[6]:
                score += 0.5
                reasons.append("same person")
            if lead[7] and d[5] == lead[7]:
                score += 0.25
                reasons.append("same organization")
            if lead[8] and d[6]:
                similarity = fuzz.token_set_ratio(lead[8], d[6]) / 100
                score += 0.15 * similarity
                reasons.append(f"title similarity {similarity:.2f}")
            if lead[9] and d[7] and _close(lead[9], d[7]):
                score += 0.1
                reasons.append("similar value")
            if lead_at and deal_at:
                reasons.append(f"deal created {(deal_at - lead_at).days} days after the lead")
            if best is None or score > best[0]:
                best = (score, reasons, deal_key)
        if best and best[0] >= settings.min_confidence:
            out.append(Link(key, best[2], deals[best[2]][3], "inferred", round(best[0], 3), best[1]))
    return out


#: The best score a candidate sharing only the organization can reach: org 0.25 + title 0.15 + value 0.1.
_ORG_ONLY_MAX = 0.5


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    return max(x, y) > 0 and abs(x - y) / max(x, y) <= 0.2


def _conflicts(links: list[Link], leads: dict, deals: dict) -> list[Conflict]:
    conflicts = []
    per_lead: dict[tuple, list[Link]] = defaultdict(list)
    per_deal: dict[tuple, list[Link]] = defaultdict(list)
    for link in links:
        per_lead[link.lead].append(link)
        per_deal[link.deal].append(link)
    for key, group in per_lead.items():
        if len(group) > 1:
            conflicts.append(Conflict("lead_linked_to_several_deals", "lead", *key,
                                      "deals " + ", ".join(sorted(link.deal[1] for link in group))))
    for key, group in per_deal.items():
        if len(group) > 1:
            conflicts.append(Conflict("deal_claimed_by_several_leads", "deal", *key,
                                      "leads " + ", ".join(sorted(link.lead[1] for link in group))))
    for link in links:
        lead, deal = leads.get(link.lead), deals.get(link.deal)
        lead_at, at = _when(lead[5]) if lead else None, _when(link.converted_at)
        if lead_at and at and at < lead_at:
            conflicts.append(Conflict("converted_before_lead_existed", "lead", *link.lead,
                                      f"converted {link.converted_at} to deal {link.deal[1]}, lead added {lead[5]}"))
        deal_at = _when(deal[3]) if deal else None
        if lead_at and deal_at and deal_at < lead_at and link.method != "inferred":
            conflicts.append(Conflict("deal_created_before_lead", "deal", *link.deal,
                                      f"deal created {deal[3]}, before its lead {link.lead[1]} ({lead[5]})"))
    return conflicts


def rows(links: list[Link], leads_added: dict[tuple, str | None]) -> list[tuple]:
    out = []
    for link in links:
        added, at = _when(leads_added.get(link.lead)), _when(link.converted_at)
        days = round((at - added).total_seconds() / 86400, 3) if added and at else None
        out.append((link.lead[0], link.lead[1], link.deal[0], link.deal[1], link.converted_at, link.method,
                    link.confidence, json.dumps(link.reasons, ensure_ascii=False), days))
    return out
