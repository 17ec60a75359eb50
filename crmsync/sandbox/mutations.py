"""Changes to records, shared by API writes and simulated activity.

Both paths go through here so a stage move made by ``PATCH /api/v2/deals/{id}`` and one
made by :meth:`Sandbox.simulate` leave the same trace: a new ``update_time``, the
derived fields Pipedrive maintains (``stage_change_time``, ``won_time``,
``close_time``...), and one history event per changed field, which ``/v1/deals/{id}/flow``
and ``/changelog`` then show.

Bodies follow the v2 request schemas: unknown keys are 400s; ``add_time`` is accepted when
creating persons and organizations (addPerson/addOrganization list it) but not deals
(addDeal does not); ``won_time``/``lost_time``/``close_time`` keep a migrated deal's original
close times and are refused unless the resulting status allows them ("Can only be set if
deal status is won/lost"); ``archive_time`` only on an archived deal. Every write, even one
that changes nothing, moves ``update_time``, so a client can detect concurrent edits by it.

Example::

    >>> from crmsync.sandbox.store import Store
    >>> st = Store(seed=1, deals=20)
    >>> deal = create_deal(st, {"title": "Demo"}, user_id=1)
    >>> update_deal(st, deal["id"], {"status": "won"}, user_id=1)["won_time"] is not None
    True
"""

from __future__ import annotations

import calendar
import copy
import re
import time

from .catalog import CURRENCIES
from .notes import transfer_lead_notes
from .rng import uuid_for
from .store import Invalid, NotFound, Store

DEAL_WRITABLE = {
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "is_deleted",
    "is_archived",
    "archive_time",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "close_time",
    "won_time",
    "lost_time",
    "expected_close_date",
    "label_ids",
    "custom_fields",
    "origin_id",
    "channel",
    "channel_id",
}
PERSON_WRITABLE = {
    "name",
    "first_name",
    "last_name",
    "owner_id",
    "org_id",
    "emails",
    "phones",
    "visible_to",
    "label_ids",
    "custom_fields",
}
# accepted on persons as the spec says and kept, but never shown: Pipedrive shows them only with
# contact sync enabled, which the sandbox does not model
CONTACT_SYNC = ("birthday", "im", "job_title", "marketing_status", "notes", "postal_address")
PERSON_WRITABLE |= set(CONTACT_SYNC)
ORG_WRITABLE = {
    "name",
    "owner_id",
    "address",
    "visible_to",
    "label_ids",
    "custom_fields",
    "website",
    "linkedin",
    "industry",
    "annual_revenue",
    "employee_count",
}
CREATE_ONLY = {"add_time"}  # addPerson/addOrganization take it; the updates and addDeal do not
CLOSE_TIMES = {"won_time": ("won",), "lost_time": ("lost",), "close_time": ("won", "lost")}
LEAD_WRITABLE = {
    "title",
    "owner_id",
    "label_ids",
    "person_id",
    "organization_id",
    "is_archived",
    "value",
    "expected_close_date",
    "visible_to",
    "was_seen",
    "channel",
    "channel_id",
    "origin_id",
}


def _check_custom(store: Store, entity: str, values: dict) -> dict:
    fields = {f["key"]: f for f in store.catalog.custom_fields(entity)}
    out = {}
    for key, v in values.items():
        f = fields.get(key)
        if f is None:
            raise Invalid(f"Unknown custom field: {key}")
        if v is not None and f["field_type"] == "enum" and v not in {o["id"] for o in f["options"]}:
            raise Invalid(f"Invalid option id for field {key}")
        if v is not None and f["field_type"] == "set":
            if not isinstance(v, list) or not v:
                raise Invalid(f"Field {key} expects a non-empty array of option ids (clear it with null)")
            v = sorted(v)
        out[key] = v
    return out


def parse_time(value, name: str) -> int:
    """RFC 3339 (``2024-05-01T10:00:00Z``, offsets allowed) or v1's ``2024-05-01 10:00:00`` (UTC)."""
    m = isinstance(value, str) and re.fullmatch(
        r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?", value
    )
    if not m:
        raise Invalid(f"Parameter '{name}' must be a date-time such as 2024-05-01T10:00:00Z")
    try:
        ts = calendar.timegm(time.strptime(f"{m[1]} {m[2]}", "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        raise Invalid(f"Parameter '{name}' is not a valid date-time") from None
    tz = m[3]
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        ts -= sign * (int(tz[1:3]) * 3600 + int(tz[-2:]) * 60)
    return ts


def check_refs(store: Store, body: dict, org_key: str = "org_id") -> None:
    """API writes may only point at users, persons and organizations the company has (400 otherwise).

    Only API handlers call this: simulated activity picks ids itself."""
    if "owner_id" in body and store.catalog.user(body["owner_id"]) is None:
        raise Invalid("User not found")
    for key, kind, label in (("person_id", "person", "Person"), (org_key, "org", "Organization")):
        v = body.get(key)
        if v is None:
            continue
        rec = store.get(kind, v) if isinstance(v, int) and not isinstance(v, bool) else None
        if rec is None or rec["is_deleted"]:
            raise Invalid(f"{label} not found")


def _close_times(body: dict, status: str | None) -> dict[str, int]:
    """Parsed won/lost/close times of ``body``; 400 unless the deal's resulting status allows them."""
    out = {}
    for key, allowed in CLOSE_TIMES.items():
        if body.get(key) is None:
            continue
        if status not in allowed:
            raise Invalid(f"{key} can only be set if the deal status is {' or '.join(allowed)}")
        out[key] = parse_time(body[key], key)
    return out


def _unknown(body: dict, allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise Invalid(f"Unknown parameter(s): {', '.join(extra)}")


def _stage_for(store: Store, body: dict, rec: dict | None) -> tuple[int, int]:
    cat = store.catalog
    if body.get("stage_id") is not None:
        st = cat.stage(body["stage_id"])
        if st is None or st["is_deleted"]:
            raise Invalid("Stage not found")
        return st["pipeline_id"], st["id"]
    if body.get("pipeline_id") is not None:
        if rec is not None and body["pipeline_id"] == rec["pipeline_id"]:
            return rec["pipeline_id"], rec["stage_id"]
        stages = cat.pipeline_stages(body["pipeline_id"])
        if not stages:
            p = cat.pipeline(body["pipeline_id"])
            raise Invalid("Pipeline has no stages" if p and not p["is_deleted"] else "Pipeline not found")
        return body["pipeline_id"], stages[0]["id"]
    if rec is not None:
        return rec["pipeline_id"], rec["stage_id"]
    p = cat.default_pipeline()
    return p["id"], cat.pipeline_stages(p["id"])[0]["id"]


def create_deal(
    store: Store,
    body: dict,
    user_id: int,
    source: str = "api",
    at: int | None = None,
    source_lead_id: str | None = None,
    origin: str = "API",
) -> dict:
    _unknown(body, DEAL_WRITABLE)
    if not body.get("title"):
        raise Invalid("Title is required")
    if body.get("is_deleted") or body.get("status") == "deleted":
        raise Invalid("A deal cannot be created as deleted")
    status = body.get("status", "open")
    if status not in ("open", "won", "lost"):
        raise Invalid("status must be one of open, won, lost")
    _close_times(body, status)
    if body.get("archive_time") is not None and not body.get("is_archived"):
        raise Invalid("archive_time can only be set if the deal is archived")
    pipeline_id, stage_id = _stage_for(store, body, None)
    t = store.tick(at)
    i = store.new_id("deal")
    rec = {
        "id": i,
        "title": body["title"],
        "creator_user_id": user_id,
        "owner_id": body.get("owner_id", user_id),
        "person_id": body.get("person_id"),
        "org_id": body.get("org_id"),
        "pipeline_id": pipeline_id,
        "stage_id": stage_id,
        "value": body.get("value", 0),
        "currency": body.get("currency", "EUR"),
        "add_time": t,
        "update_time": t,
        "stage_change_time": None,
        "status": "open",
        "is_deleted": False,
        "is_archived": False,
        "archive_time": None,
        "probability": body.get("probability"),
        "lost_reason": None,
        "visible_to": body.get("visible_to", 3),
        "close_time": None,
        "won_time": None,
        "lost_time": None,
        "first_won_time": None,
        "expected_close_date": body.get("expected_close_date"),
        "label_ids": list(body.get("label_ids") or []),
        "origin": origin,
        "origin_id": body.get("origin_id"),
        "channel": body.get("channel"),
        "channel_id": body.get("channel_id"),
        "source_lead_id": source_lead_id,
        "custom_fields": {
            k: v for k, v in _check_custom(store, "deal", body.get("custom_fields") or {}).items() if v is not None
        },
        "_events": [],
    }
    store.put("deal", rec, [("add_time", None, t)], user_id, source)
    follow = {k: body[k] for k in ("lost_reason", *CLOSE_TIMES, "is_archived", "archive_time") if k in body}
    if status != "open" or body.get("is_archived"):
        return update_deal(store, i, {"status": status, **follow}, user_id, source)
    return rec


def update_deal(store: Store, i: int, body: dict, user_id: int, source: str = "api", at: int | None = None) -> dict:
    _unknown(body, DEAL_WRITABLE)
    with store.lock:
        rec = store.editable("deal", i)
        if rec["is_deleted"]:
            raise NotFound("deal")
        if rec["is_archived"] and body.get("is_archived") is not False:
            raise Invalid("Archived deals cannot be edited; unarchive it first (is_archived: false)")
        if body.get("is_deleted"):
            raise Invalid("Use DELETE to delete a deal")
        t = store.tick(at)
        changes: list[tuple] = []

        def setf(key, new, event_key=None):
            old = rec.get(key)
            if old != new:
                rec[key] = new
                changes.append((event_key or key, old, new))

        for key in (
            "title",
            "owner_id",
            "person_id",
            "org_id",
            "value",
            "currency",
            "probability",
            "visible_to",
            "expected_close_date",
            "origin_id",
            "channel",
            "channel_id",
        ):
            if key in body:
                setf(key, body[key], "user_id" if key == "owner_id" else None)
        if "label_ids" in body:
            setf("label_ids", sorted(body["label_ids"] or []), "label")
        if "stage_id" in body or "pipeline_id" in body:
            pid, sid = _stage_for(store, body, rec)
            if pid != rec["pipeline_id"]:
                setf("pipeline_id", pid)
            if sid != rec["stage_id"]:
                setf("stage_id", sid)
                rec["stage_change_time"] = t
        new_status = body.get("status", rec["status"])
        if new_status not in ("open", "won", "lost"):
            raise Invalid("status must be one of open, won, lost")
        times = _close_times(body, new_status)
        if new_status != rec["status"]:
            setf("status", new_status)
            if new_status == "won":
                won = times.pop("won_time", t)
                rec.update(won_time=won, close_time=times.pop("close_time", won), lost_time=None, lost_reason=None)
                rec["first_won_time"] = rec["first_won_time"] or won
                changes.append(("won_time", None, won))
            elif new_status == "lost":
                lost = times.pop("lost_time", t)
                rec.update(lost_time=lost, close_time=times.pop("close_time", lost), won_time=None)
                changes.append(("lost_time", None, lost))
                if body.get("lost_reason"):
                    setf("lost_reason", body["lost_reason"])
            else:  # reopened
                rec.update(won_time=None, lost_time=None, close_time=None, lost_reason=None)
        elif body.get("lost_reason") and rec["status"] == "lost":
            setf("lost_reason", body["lost_reason"])
        for key, v in times.items():  # corrections of a closed deal's times
            setf(key, v)
        if "custom_fields" in body:
            for key, v in _check_custom(store, "deal", body["custom_fields"] or {}).items():
                old = rec["custom_fields"].get(key)
                if old != v:
                    if v is None:
                        rec["custom_fields"].pop(key, None)
                    else:
                        rec["custom_fields"][key] = v
                    changes.append((key, old, v))
        if "is_archived" in body and bool(body["is_archived"]) != rec["is_archived"]:
            setf("is_archived", bool(body["is_archived"]))
            rec["archive_time"] = t if rec["is_archived"] else None
        if body.get("archive_time") is not None:
            if not rec["is_archived"]:
                raise Invalid("archive_time can only be set if the deal is archived")
            rec["archive_time"] = parse_time(body["archive_time"], "archive_time")
        rec["update_time"] = t
        return store.put("deal", rec, changes, user_id, source)


def delete_deal(store: Store, i: int, user_id: int, source: str = "api", at: int | None = None) -> dict:
    with store.lock:
        rec = store.editable("deal", i)
        if rec["is_deleted"]:
            raise NotFound("deal")
        t = store.tick(at)
        old = rec["status"]
        rec.update(is_deleted=True, status="deleted", update_time=t)
        return store.put("deal", rec, [("status", old, "deleted")], user_id, source)


# -- persons / organizations -----------------------------------------------------------------------
def _contact_list(v, label="work"):
    if v is None:
        return []
    if isinstance(v, str):
        return [{"value": v, "primary": True, "label": label}]
    return [
        {
            "value": x.get("value", ""),
            "primary": bool(x.get("primary", n == 0)),
            "label": x.get("label", label),
        }
        for n, x in enumerate(v)
    ]


def create_contact(
    store: Store, kind: str, body: dict, user_id: int, source: str = "api", at: int | None = None
) -> dict:
    entity = "person" if kind == "person" else "org"
    _unknown(body, (PERSON_WRITABLE if kind == "person" else ORG_WRITABLE) | CREATE_ONLY)
    if not body.get("name"):
        raise Invalid("Name is required")
    added = parse_time(body["add_time"], "add_time") if body.get("add_time") is not None else None
    t = store.tick(at)
    ident = store.new_id(kind)
    rec = {
        "id": ident,
        "name": body["name"],
        "owner_id": body.get("owner_id", user_id),
        "add_time": added if added is not None else t,
        "update_time": t,
        "is_deleted": False,
        "visible_to": body.get("visible_to", 3),
        "label_ids": list(body.get("label_ids") or []),
        "custom_fields": {
            k: v for k, v in _check_custom(store, entity, body.get("custom_fields") or {}).items() if v is not None
        },
        "_events": [],
    }
    if kind == "person":
        first, _, last = body["name"].partition(" ")
        rec.update(
            first_name=body.get("first_name", first),
            last_name=body.get("last_name", last),
            org_id=body.get("org_id"),
            emails=_contact_list(body.get("emails")),
            phones=_contact_list(body.get("phones")),
            picture_id=None,
            **{k: body[k] for k in CONTACT_SYNC if k in body},
        )
    else:
        addr = body.get("address")
        rec.update(
            address={"value": addr} if isinstance(addr, str) else addr,
            **{k: body.get(k) for k in ("website", "linkedin", "industry", "annual_revenue", "employee_count")},
        )
    return store.put(kind, rec, [("add_time", None, rec["add_time"])], user_id, source)


def update_contact(
    store: Store, kind: str, ident: int, body: dict, user_id: int, source: str = "api", at: int | None = None
) -> dict:
    entity = "person" if kind == "person" else "org"
    _unknown(body, PERSON_WRITABLE if kind == "person" else ORG_WRITABLE)
    with store.lock:
        rec = store.editable(kind, ident)
        if rec["is_deleted"]:
            raise NotFound(kind)
        t = store.tick(at)
        changes = []
        for key, v in body.items():
            if key == "custom_fields":
                for ck, cv in _check_custom(store, entity, v or {}).items():
                    old = rec["custom_fields"].get(ck)
                    if old != cv:
                        changes.append((ck, old, cv))
                        if cv is None:
                            rec["custom_fields"].pop(ck, None)
                        else:
                            rec["custom_fields"][ck] = cv
                continue
            if key in ("emails", "phones"):
                v = _contact_list(v)
            elif key == "address" and isinstance(v, str):
                v = {"value": v}
            if rec.get(key) != v:
                changes.append((key, copy.deepcopy(rec.get(key)), v))
                rec[key] = v
        rec["update_time"] = t
        return store.put(kind, rec, changes, user_id, source)


def delete_contact(
    store: Store, kind: str, ident: int, user_id: int, source: str = "api", at: int | None = None
) -> dict:
    with store.lock:
        rec = store.editable(kind, ident)
        if rec["is_deleted"]:
            raise NotFound(kind)
        rec.update(is_deleted=True, update_time=store.tick(at))
        return store.put(kind, rec, [("is_deleted", False, True)], user_id, source)


# -- leads -----------------------------------------------------------------------------------------
def _lead_checks(store: Store, body: dict) -> None:
    if "label_ids" in body:
        known = {x["id"] for x in store.catalog.lead_labels}
        if any(x not in known for x in body["label_ids"] or []):
            raise Invalid("Unknown lead label id")
    v = body.get("value")
    if v is not None and not (isinstance(v, dict) and "amount" in v and "currency" in v):
        raise Invalid("value must be an object with amount and currency")
    if "visible_to" in body and body["visible_to"] not in ("1", "3", "5", "7"):
        raise Invalid('visible_to must be one of "1", "3", "5", "7"')


def create_lead(store: Store, body: dict, user_id: int, source: str = "api", at: int | None = None) -> dict:
    custom = {k: v for k, v in body.items() if len(k) == 40}
    plain = {k: v for k, v in body.items() if len(k) != 40}
    _unknown(plain, LEAD_WRITABLE - {"is_archived"})
    if not plain.get("title"):
        raise Invalid("Title is required")
    if plain.get("person_id") is None and plain.get("organization_id") is None:
        raise Invalid("A lead needs a person_id or an organization_id")
    _lead_checks(store, plain)
    t = store.tick(at)
    n = store.new_id("lead")
    rec = {
        "id": uuid_for(store.seed, "lead:new", n),
        "n": n,
        "title": plain["title"],
        "owner_id": plain.get("owner_id", user_id),
        "creator_id": user_id,
        "label_ids": list(plain.get("label_ids") or []),
        "person_id": plain.get("person_id"),
        "organization_id": plain.get("organization_id"),
        "source_name": "API",
        "origin": "API",
        "origin_id": plain.get("origin_id"),
        "channel": plain.get("channel"),
        "channel_id": plain.get("channel_id"),
        "source_deal_id": None,
        "is_archived": False,
        "is_deleted": False,
        "was_seen": plain.get("was_seen", False),
        "value": plain.get("value"),
        "expected_close_date": plain.get("expected_close_date"),
        "next_activity_id": None,
        "add_time": t,
        "update_time": t,
        "visible_to": plain.get("visible_to", "3"),
        "custom_fields": {k: v for k, v in _check_custom(store, "lead", custom).items() if v is not None},
        "converted_deal_id": None,
        "_events": [],
    }
    return store.put("lead", rec, [("add_time", None, t)], user_id, source)


def update_lead(store: Store, uuid: str, body: dict, user_id: int, source: str = "api", at: int | None = None) -> dict:
    custom = {k: v for k, v in body.items() if len(k) == 40}
    plain = {k: v for k, v in body.items() if len(k) != 40}
    _unknown(plain, LEAD_WRITABLE - {"origin_id"})
    _lead_checks(store, plain)
    n = store.lead_n(uuid)
    if n is None:
        raise NotFound("lead")
    with store.lock:
        rec = store.editable("lead", n)
        if rec["is_deleted"]:
            raise NotFound("lead")
        if rec["is_archived"] and plain.get("is_archived") is not False:
            raise Invalid("Archived leads cannot be edited; unarchive it first (is_archived: false)")
        t = store.tick(at)
        changes = []
        for key, v in plain.items():
            if rec.get(key) != v:
                changes.append((key, copy.deepcopy(rec.get(key)), v))
                rec[key] = v
        for key, v in _check_custom(store, "lead", custom).items():
            old = rec["custom_fields"].get(key)
            if old != v:
                changes.append((key, old, v))
                if v is None:
                    rec["custom_fields"].pop(key, None)
                else:
                    rec["custom_fields"][key] = v
        if rec["person_id"] is None and rec["organization_id"] is None:
            raise Invalid("A lead needs a person_id or an organization_id")
        rec["update_time"] = t
        return store.put("lead", rec, changes, user_id, source)


def delete_lead(store: Store, uuid: str, user_id: int, source: str = "api", at: int | None = None) -> dict:
    n = store.lead_n(uuid)
    if n is None:
        raise NotFound("lead")
    with store.lock:
        rec = store.editable("lead", n)
        if rec["is_deleted"]:
            raise NotFound("lead")
        rec.update(is_deleted=True, update_time=store.tick(at))
        return store.put("lead", rec, [("is_deleted", False, True)], user_id, source)


def convert_lead(store: Store, uuid: str, body: dict, user_id: int, source: str = "api", at: int | None = None) -> dict:
    """Do the conversion now: a new deal with ``source_lead_id``, the lead marked deleted, its notes moved.

    The deal copies the lead's title, owner, person, organization, value, labels-free fields,
    custom values and its origin/channel (a choice: the reference marks this UNCERTAIN).
    """
    _unknown(body, {"stage_id", "pipeline_id"})
    n = store.lead_n(uuid)
    if n is None:
        raise NotFound("lead")
    with store.lock:
        lead = store.editable("lead", n)
        if lead["is_deleted"] or lead["is_archived"]:
            raise NotFound("lead")
        target = {}
        if body.get("stage_id") is not None:
            target["stage_id"] = body["stage_id"]
        elif body.get("pipeline_id") is not None:
            target["pipeline_id"] = body["pipeline_id"]
        value = lead["value"] or {}
        deal_body = {
            "title": lead["title"],
            "owner_id": lead["owner_id"],
            "person_id": lead["person_id"],
            "org_id": lead["organization_id"],
            "value": value.get("amount", 0),
            "currency": value.get("currency", CURRENCIES[0]),
            "expected_close_date": lead["expected_close_date"],
            "custom_fields": lead["custom_fields"],
            "origin_id": lead["origin_id"],
            "channel": lead["channel"],
            "channel_id": lead["channel_id"],
            **target,
        }
        deal = create_deal(store, deal_body, user_id, source, at, source_lead_id=lead["id"], origin=lead["origin"])
        lead.update(is_deleted=True, update_time=store.tick(), converted_deal_id=deal["id"])
        store.put("lead", lead, [("is_deleted", False, True)], user_id, source)
        transfer_lead_notes(store, lead["id"], deal["id"], user_id, lead["update_time"])
        return deal
