"""Notes (v1 only): create, read, list, update, delete, and the v1 wire shape.

A migration carries each deal's stage history into the target as a note, because history
cannot be written; so notes are real here, kept in ``Store.notes`` (the generated company
starts with none). What the spec says is followed: ``content`` is required, a note needs one
of ``deal_id``/``person_id``/``org_id``/``lead_id`` (``project_id``/``task_id`` too, but the
sandbox has no projects or tasks, so those are 400s), ``add_time`` may be set in the past or
future (``YYYY-MM-DD HH:MM:SS`` UTC), ``pinned_to_<x>_flag`` needs its ``<x>_id``, only an
admin may set ``user_id`` to someone else, and extra body keys are ignored (the request
schema has ``additionalProperties: true``).

Choices where spec and reference are silent: a note must point at records that exist and
are not deleted; deleting a deal, person or organization keeps its notes (nothing says
they go); a deleted note answers 404 and leaves the list; a lead's notes move to the deal
when the lead is converted (the conversion spec says related notes are transferred);
``content`` is stored as sent (no HTML sanitizing); the list's default order is by id.

Example::

    >>> from crmsync.sandbox.store import Store
    >>> st = Store(seed=1, deals=10)
    >>> n = create_note(st, {"content": "Moved to Demo", "deal_id": 3, "add_time": "2025-01-02 10:00:00"}, 1)
    >>> render_note(n, st, me=1)["add_time"]
    '2025-01-02 10:00:00'
"""

from __future__ import annotations

import calendar
import time

from .render import v1_time
from .store import Invalid, NotFound, Store

TARGETS = ("deal", "person", "org", "lead", "project", "task")
PIN_TARGET = {
    "pinned_to_deal_flag": "deal_id",
    "pinned_to_person_flag": "person_id",
    "pinned_to_organization_flag": "org_id",
    "pinned_to_lead_flag": "lead_id",
    "pinned_to_project_flag": "project_id",
    "pinned_to_task_flag": "task_id",
}
SORTABLE = ("id", "user_id", "deal_id", "person_id", "org_id", "content", "add_time", "update_time")


def parse_v1_time(value, name: str) -> int:
    if not isinstance(value, str):
        raise Invalid(f"Parameter '{name}' must be a YYYY-MM-DD HH:MM:SS string")
    try:
        return calendar.timegm(time.strptime(value, "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        raise Invalid(f"Parameter '{name}' must be YYYY-MM-DD HH:MM:SS (UTC)") from None


def _flag(v, name: str) -> bool:
    if isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)):
        return bool(v)
    raise Invalid(f"Parameter '{name}' must be 0 or 1")


def _check_target(store: Store, key: str, v) -> None:
    if v is None:
        return
    kind = key[:-3]
    if kind in ("project", "task"):
        raise Invalid(f"{kind.capitalize()} not found (the sandbox has no {kind}s)")
    if kind == "lead":
        rec = store.lead(v) if isinstance(v, str) else None
    else:
        rec = store.get(kind, v) if isinstance(v, int) and not isinstance(v, bool) else None
    if rec is None or rec["is_deleted"]:
        raise Invalid(f"{'Organization' if kind == 'org' else kind.capitalize()} not found")


def _apply(store: Store, note: dict, body: dict, user_id: int, creating: bool) -> None:
    if "content" in body or creating:
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise Invalid("Parameter 'content' is required and must be a non-empty string")
        note["content"] = content
    for target in TARGETS:
        key = f"{target}_id"
        if key in body:
            _check_target(store, key, body[key])
            note[key] = body[key]
    if not any(note[f"{t}_id"] is not None for t in TARGETS):
        raise Invalid("A note needs one of deal_id, person_id, org_id, lead_id, project_id or task_id")
    for flag, key in PIN_TARGET.items():
        if flag in body:
            on = _flag(body[flag], flag)
            if on and note[key] is None:
                raise Invalid(f"'{flag}' needs '{key}'")
            note[flag] = on
    for flag, key in PIN_TARGET.items():  # a pin cannot outlive its target
        note[flag] = note[flag] and note[key] is not None
    if "user_id" in body and body["user_id"] != note["user_id"]:
        caller = store.catalog.user(user_id)
        if not (caller and caller["is_admin"]):
            raise Invalid("Only an admin can change the author of a note")
        if store.catalog.user(body["user_id"]) is None:
            raise Invalid("User not found")
        note["user_id"] = body["user_id"]
    if "add_time" in body:
        note["add_time"] = parse_v1_time(body["add_time"], "add_time")


def create_note(store: Store, body: dict, user_id: int) -> dict:
    note = {f"{t}_id": None for t in TARGETS}
    note.update({flag: False for flag in PIN_TARGET})
    note.update(user_id=user_id, last_update_user_id=user_id, active_flag=True)
    with store.lock:
        _apply(store, note, body, user_id, creating=True)
        t = store.tick()
        note["id"] = store.next_note_id
        store.next_note_id += 1
        note.setdefault("add_time", t)
        note["update_time"] = t
        store.notes[note["id"]] = note
        store.log("note", note["id"], "add_time", None, note["add_time"], user_id, t)
        return note


def get_note(store: Store, ident: int) -> dict:
    with store.lock:
        note = store.notes.get(ident)
        if note is None or not note["active_flag"]:
            raise NotFound("note")
        return note


def update_note(store: Store, ident: int, body: dict, user_id: int) -> dict:
    with store.lock:
        note = get_note(store, ident)
        draft = dict(note)
        _apply(store, draft, body, user_id, creating=False)
        t = store.tick()
        for key, v in draft.items():
            if note[key] != v:
                store.log("note", ident, key, note[key], v, user_id, t)
        note.update(draft, update_time=t, last_update_user_id=user_id)
        return note


def delete_note(store: Store, ident: int, user_id: int) -> dict:
    with store.lock:
        note = get_note(store, ident)
        t = store.tick()
        note.update(active_flag=False, update_time=t, last_update_user_id=user_id)
        store.log("note", ident, "active_flag", True, False, user_id, t)
        return note


def transfer_lead_notes(store: Store, lead_id: str, deal_id: int, user_id: int, t: int) -> None:
    """A converted lead's notes now belong to its deal (pins follow)."""
    with store.lock:
        for note in store.notes.values():
            if note["lead_id"] == lead_id:
                note.update(
                    lead_id=None,
                    deal_id=deal_id,
                    pinned_to_deal_flag=note["pinned_to_deal_flag"] or note["pinned_to_lead_flag"],
                    pinned_to_lead_flag=False,
                    update_time=t,
                )
                store.log("note", note["id"], "deal_id", None, deal_id, user_id, t)


def list_notes(store: Store, filters: dict, sort: list[tuple[str, bool]]) -> list[dict]:
    """Active notes matching ``filters`` (equality on note keys, plus ``add_from``/``add_to``/
    ``updated_since`` bounds), ordered by ``sort`` [(key, descending)] then id."""
    with store.lock:
        notes = [dict(n) for n in store.notes.values() if n["active_flag"]]
    lo, hi, since = filters.pop("add_from", None), filters.pop("add_to", None), filters.pop("updated_since", None)
    out = [
        n
        for n in notes
        if all(n[k] == v for k, v in filters.items())
        and (lo is None or n["add_time"] >= lo)
        and (hi is None or n["add_time"] < hi)
        and (since is None or n["update_time"] >= since)
    ]
    out.sort(key=lambda n: n["id"])
    for key, desc in reversed(sort):  # stable sorts: the first key ends up most significant
        out.sort(key=lambda n, k=key: (n[k] is None, n[k] if n[k] is not None else 0), reverse=desc)
    return out


def render_note(note: dict, store: Store, me: int) -> dict:
    cat = store.catalog
    deal = store.get("deal", note["deal_id"]) if note["deal_id"] else None
    person = store.get("person", note["person_id"]) if note["person_id"] else None
    org = store.get("org", note["org_id"]) if note["org_id"] else None
    author = cat.user(note["user_id"]) or {}
    return {
        "id": note["id"],
        "user_id": note["user_id"],
        "deal_id": note["deal_id"],
        "person_id": note["person_id"],
        "org_id": note["org_id"],
        "lead_id": note["lead_id"],
        "project_id": note["project_id"],
        "task_id": note["task_id"],
        "content": note["content"],
        "add_time": v1_time(note["add_time"]),
        "update_time": v1_time(note["update_time"]),
        "active_flag": note["active_flag"],
        **{flag: note[flag] for flag in PIN_TARGET},
        "last_update_user_id": note["last_update_user_id"],
        "deal": {"title": deal["title"]} if deal else None,
        "person": {"name": person["name"]} if person else None,
        "organization": {"name": org["name"]} if org else None,
        "project": None,
        "task": None,
        "user": {
            "email": author.get("email"),
            "name": author.get("name"),
            "icon_url": None,
            "is_you": note["user_id"] == me,
        },
    }
