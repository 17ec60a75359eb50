"""One timeline per deal, merged from every kind of evidence, with time-in-stage spans and invariant checks.

Evidence, strongest first (a weaker event at the same moment with the same
value is dropped as a duplicate of the stronger one):

1. ``api`` — change events a connector read (Pipedrive ``flow``/``changelog``);
2. ``export_history`` — history tables in exports (Salesforce OpportunityHistory);
3. ``milestone`` — the deal's own dates: created, won, lost, closed, and the date it entered each
   stage when the source has a column per stage (``deal.stage_entered``, HubSpot's "Date entered");
4. ``sync_diff`` — a field that changed between two syncs of a source with no
   history (its time is when crmsync saw it, so it is an upper bound);
5. ``observed`` — the stage a deal was in when first seen, if nothing else says
   how it got there (dated ``stage_change_time`` when the source has it).

Invariants checked (violations stored with the deal, never "fixed"):
``ends_in_current_state``, ``closed_without_close_time``,
``stage_change_after_close``, ``event_before_creation``,
``closed_before_created``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

EVIDENCE_RANK = {"api": 0, "export_history": 1, "milestone": 2, "sync_diff": 3, "observed": 4}


@dataclass
class Event:
    at: str
    kind: str  # "stage", "status", "pipeline", "lost_reason", "created"
    old: str | None
    new: str | None
    evidence: str
    actor: str | None = None


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_FIELD_KIND = {"stage_id": "stage", "stage": "stage", "stage_name": "stage", "status": "status",
               "pipeline_id": "pipeline", "pipeline": "pipeline", "lost_reason": "lost_reason"}


def build(conn: sqlite3.Connection) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Return (timeline rows, span rows, violation rows) for every deal in the warehouse."""
    stages = {(s, sid): (name, cat) for s, sid, name, cat in
              conn.execute("SELECT source, source_id, name, category FROM stages")}
    stage_by_name = {(s, name): sid for (s, sid), (name, _) in stages.items()}
    # Exports spell one stage several ways: "Closed won" in a stage column, "Closed Won" in a header, "closedwon"
    # as an internal id. Compared on letters and digits only, ignoring case.
    stage_folded = {(s, _squash(text)): sid for (s, sid), (name, _) in stages.items() for text in (sid, name)
                    if text}
    events: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for source, deal_id, field, old, new, at, actor, evidence in conn.execute(
        "SELECT source, deal_id, field, old_value, new_value, changed_at, actor_id, evidence FROM stage_changes"
    ):
        kind = _FIELD_KIND.get(field)
        if kind:
            events[(source, deal_id)].append(Event(at, kind, old, new, evidence or "api", actor))
    for source, deal_id, field, old, new, at in conn.execute(
        "SELECT source, source_id, field, old_value, new_value, changed_at FROM changes "
        "WHERE entity = 'deal' AND field IN ('stage_id', 'status', 'pipeline_id', 'lost_reason')"
    ):
        events[(source, deal_id)].append(Event(at, _FIELD_KIND[field], old, new, "sync_diff"))

    timeline, spans, violations = [], [], []
    for deal in conn.execute(
        "SELECT source, source_id, stage_id, stage_name, status, add_time, won_time, lost_time, close_time, "
        "stage_change_time, update_time, stage_entered FROM deals WHERE removed_run IS NULL"
    ):
        source, deal_id, stage_id, stage_name, status, add, won, lost, close, stage_changed, _, entered = deal
        key = (source, deal_id)

        def resolve(value: str | None, source: str = source) -> str | None:
            """A stage event may name the stage (exports) or give its id (APIs): use the id when known."""
            if value is None or (source, value) in stages:
                return value
            found = stage_by_name.get((source, value))
            return found if found is not None else stage_folded.get((source, _squash(value)), value)

        current_stage = stage_id or resolve(stage_name)
        evs = [Event(e.at, e.kind, resolve(e.old), resolve(e.new), e.evidence, e.actor) if e.kind == "stage" else e
               for e in events.get(key, [])]
        if add:
            evs.append(Event(add, "created", None, None, "milestone"))
        for at, value in ((won, "won"), (lost, "lost")):
            if at:
                evs.append(Event(at, "status", None, value, "milestone"))
        for stage, at in (json.loads(entered) if entered else {}).items():
            evs.append(Event(at, "stage", None, resolve(stage), "milestone"))
        if current_stage and not any(e.kind == "stage" for e in evs):
            evs.append(Event(stage_changed or add or "", "stage", None, current_stage, "observed"))
        evs = _drop_seen_diffs(evs)
        evs = _dedupe(sorted((e for e in evs if e.at), key=lambda e: (e.at, EVIDENCE_RANK.get(e.evidence, 9))))
        for seq, e in enumerate(evs, start=1):
            category = stages.get((source, e.new), (None, None))[1] if e.kind == "stage" else None
            timeline.append((source, deal_id, seq, e.at, e.kind, e.old, e.new, category, e.evidence, e.actor))
        spans += _spans(source, deal_id, evs, stages, status, close)
        violations += [(source, deal_id, rule, detail) for rule, detail in
                       _check(evs, current_stage, status, add, close or won or lost, won, lost)]
    return timeline, spans, violations


def _squash(text: str) -> str:
    """``"Sales Pipeline/Closed Won"`` -> ``"salespipelineclosedwon"``: one key for a stage's spellings."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _drop_seen_diffs(events: list[Event]) -> list[Event]:
    """A change two syncs noticed is the same move an API or history event already dated exactly.

    A ``sync_diff`` is timed when crmsync saw it (an upper bound), so it matches a stronger event with
    the same kind and value at or before that time, not at the same minute.
    """
    strong: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for e in events:
        if e.evidence in ("api", "export_history"):
            strong[(e.kind, e.new)].append(e.at)
    if not strong:
        return events
    return [e for e in events if not (
        e.evidence == "sync_diff" and any(at <= e.at for at in strong.get((e.kind, e.new), ())))]


def _dedupe(events: list[Event]) -> list[Event]:
    """Drop the same change reported by weaker evidence (same minute), and stage "moves" to the stage
    the deal is already in (history tables repeat the stage when only the amount changed)."""
    out: list[Event] = []
    seen: set[tuple] = set()
    last_stage: str | None = None
    for e in events:
        key = (e.kind, e.new, e.at[:16])
        if key in seen and e.kind != "created":
            continue
        if e.kind == "stage":
            if e.new == last_stage:
                continue
            last_stage = e.new
        seen.add(key)
        out.append(e)
    return out


def _spans(source: str, deal_id: str, events: list[Event], stages: dict, status: str | None,
           close: str | None) -> list[tuple]:
    out = []
    stage_events = [e for e in events if e.kind == "stage"]
    for i, e in enumerate(stage_events):
        left = stage_events[i + 1].at if i + 1 < len(stage_events) else (close if status in ("won", "lost") else None)
        seconds = (_ts(left) - _ts(e.at)).total_seconds() if left else None
        name, category = stages.get((source, e.new), (e.new, None))
        out.append((source, deal_id, e.new, name, category, e.at, left, seconds, e.evidence))
    return out


def _check(events: list[Event], current_stage: str | None, status: str | None, add: str | None,
           closed_at: str | None, won: str | None, lost: str | None) -> list[tuple[str, str]]:
    problems = []
    stage_events = [e for e in events if e.kind == "stage"]
    if stage_events and current_stage and stage_events[-1].new != current_stage:
        problems.append(("ends_in_current_state",
                         f"timeline ends in stage {stage_events[-1].new!r}, deal is in {current_stage!r}"))
    status_events = [e for e in events if e.kind == "status" and e.new]
    if status_events and status and status_events[-1].new != status and status != "deleted":
        problems.append(("ends_in_current_state",
                         f"timeline ends with status {status_events[-1].new!r}, deal is {status!r}"))
    if status in ("won", "lost") and not closed_at:
        problems.append(("closed_without_close_time", f"deal is {status} but has no close/won/lost time"))
    if closed_at and status in ("won", "lost"):
        reopened = False
        for e in events:
            if e.kind == "status" and e.new == "open" and e.at > closed_at:
                reopened = True
            if e.kind == "stage" and e.at > closed_at and not reopened and e.evidence != "observed":
                problems.append(("stage_change_after_close",
                                 f"stage changed to {e.new!r} at {e.at}, after closing at {closed_at}"))
                break
    if add:
        for e in events:
            if e.at < add and e.kind != "created":
                problems.append(("event_before_creation", f"{e.kind} event at {e.at} before creation at {add}"))
                break
        for label, at in (("won", won), ("lost", lost), ("closed", closed_at)):
            if at and at < add:
                problems.append(("closed_before_created", f"{label} at {at}, created at {add}"))
                break
    return problems
