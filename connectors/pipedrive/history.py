"""Stage history: per-deal changelog (or flow) -> :class:`StageChange` records.

Why per deal and only some deals: Pipedrive has no bulk history endpoint; each deal's
``/v1/deals/{id}/changelog`` costs 20 tokens (``/flow`` 40), so it is requested only for
deals whose stage/status/pipeline/lost reason or ``stage_change_time``/``won_time``/
``lost_time``/``close_time``/``add_time`` differ from what the warehouse holds (a new
deal counts as changed only if it ever moved or closed). A deal's first stage is derived
without any request when it never moved: the stage it is in now, entered at ``add_time``.

Kept transitions: ``stage_id``, ``status`` (won/lost/reopened/deleted), ``pipeline_id``
and ``lost_reason``, with time and actor. Ids are derived from the content (deal, field,
time, old/new values), so refetching a deal's whole history re-writes the same rows
(``unchanged``) and changelog and flow give the same ids.

Example::

    >>> rows = from_changelog("pd", "7", [{"field_key": "stage_id", "old_value": "1", "new_value": "2",
    ...                                    "actor_user_id": 3, "time": "2026-01-02 03:04:05"}])
    >>> rows[0].field, rows[0].old_value, rows[0].new_value, rows[0].changed_at.isoformat()
    ('stage_id', '1', '2', '2026-01-02T03:04:05+00:00')
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from crmsync.model import Deal, StageChange

from .convert import parse_time

TRACKED = ("stage_id", "status", "pipeline_id", "lost_reason")
#: Deal fields whose change means the deal's history must be read again.
TRIGGERS = ("stage_id", "pipeline_id", "status", "lost_reason", "add_time", "stage_change_time",
            "won_time", "lost_time", "close_time")


def _text(v) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


_Item = tuple[str, object, object, object, object, dict]


def _rows(source: str, deal_id: str, items: Iterable[_Item]) -> list[StageChange]:
    out: list[StageChange] = []
    seen: dict[str, int] = {}
    for field_key, old, new, when, actor, raw in items:
        if field_key not in TRACKED:
            continue
        changed_at = parse_time(when)
        if changed_at is None:
            continue
        old_t, new_t = _text(old), _text(new)
        digest = hashlib.blake2b(f"{old_t}\x1f{new_t}".encode(), digest_size=4).hexdigest()
        key = f"{deal_id}:{field_key}:{changed_at.strftime('%Y%m%dT%H%M%S')}:{digest}"
        n = seen.get(key, 0) + 1
        seen[key] = n
        out.append(StageChange(
            source=source, source_id=key if n == 1 else f"{key}:{n}", deal_id=deal_id, field=field_key,
            old_value=old_t, new_value=new_t, changed_at=changed_at, actor_id=_text(actor), evidence="api",
            raw=raw,
        ))
    return out


def from_changelog(source: str, deal_id: str, items: list[dict]) -> list[StageChange]:
    """``GET /v1/deals/{id}/changelog`` items (any order) -> stage changes, oldest first."""
    rows = [(x.get("field_key"), x.get("old_value"), x.get("new_value"), x.get("time"), x.get("actor_user_id"), x)
            for x in items if isinstance(x, dict)]
    return _oldest_first(_rows(source, deal_id, rows))


def _oldest_first(rows: list[StageChange]) -> list[StageChange]:
    """The APIs list newest first; reversing keeps same-second changes in their real order."""
    return sorted(reversed(rows), key=lambda r: r.changed_at)


def from_flow(source: str, deal_id: str, items: list[dict]) -> list[StageChange]:
    """``GET /v1/deals/{id}/flow?items=dealChange`` items -> stage changes, oldest first."""
    rows = []
    for x in items:
        if not isinstance(x, dict) or x.get("object") != "dealChange":
            continue
        d = x.get("data") or {}
        rows.append((d.get("field_key"), d.get("old_value"), d.get("new_value"),
                     d.get("log_time") or x.get("timestamp"), d.get("user_id"), d))
    return _oldest_first(_rows(source, deal_id, rows))


def first_stage(source: str, deal: Deal, changes: list[StageChange]) -> StageChange | None:
    """The stage the deal was created in, entered at ``add_time`` (derived, no request)."""
    if deal.add_time is None:
        return None
    moves = [c for c in changes if c.field == "stage_id"]
    stage = deal.stage_id
    if moves:
        # several moves can share the first second: the first is the one nobody moved into
        first_second = [c for c in moves if c.changed_at == moves[0].changed_at]
        entered = {c.new_value for c in first_second}
        stage = next((c.old_value for c in first_second if c.old_value not in entered), moves[0].old_value)
    if stage is None:
        return None
    raw = deal.raw or {}
    return StageChange(
        source=source, source_id=f"{deal.source_id}:first_stage", deal_id=deal.source_id, field="stage_id",
        old_value=None, new_value=stage, changed_at=deal.add_time, actor_id=_text(raw.get("creator_user_id")),
        evidence="derived", raw={"from": "first stage_id change" if moves else "current stage (never moved)"},
    )


def ever_moved(deal: Deal) -> bool:
    raw = deal.raw or {}
    return bool(deal.stage_change_time or deal.won_time or deal.lost_time or deal.close_time
                or raw.get("first_won_time") or deal.status.value != "open")


def needs_history(new: Deal, stored: Deal | None, backfill: str = "all") -> bool:
    """Whether this deal's history must be (re)read: it moved or closed since the warehouse saw it.

    A deal the warehouse has never seen: with ``backfill="all"`` every deal changed after its
    creation (``update_time`` past ``add_time``) — exact, because a deal lost and reopened without
    ever leaving its first stage shows no trace in its fields; with ``"moved"`` only deals whose
    fields show a move or a close (cheaper; misses exactly that case).
    """
    if stored is None:
        if ever_moved(new):
            return True
        return backfill == "all" and new.update_time is not None and new.update_time != new.add_time
    return any(getattr(new, f) != getattr(stored, f) for f in TRIGGERS)
