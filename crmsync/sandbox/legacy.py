"""Deprecated v1 lists and the entities the sandbox does not model, so whole-account clients run.

Two groups of endpoints live here, apart from the current API in :mod:`crmsync.sandbox.api`:

* Deprecated v1 ``/deals``, ``/deals/{id}``, ``/persons``, ``/organizations`` (shapes and costs
  from the 2026-01-14 v1 spec): out of support since 2026-08-01 but "may remain functional",
  and still what older extractors call. They carry v1's nested relation objects
  (``"user_id": {"id":.., "name":.., "value":..}``) and ``related_objects``.
* Entities the sandbox does not model (activities, products, files, filters): their
  lists answer well-formed empty pages and their field lists carry a few system fields, so a
  client that walks every stream (tap-pipedrive does) does not stop at a 404. Currencies and
  activity types return a small fixed list.

Example::

    >>> from crmsync.sandbox.store import Store
    >>> st = Store(seed=1, deals=10)
    >>> legacy_deal(st.get("deal", 2), st)["user_id"]["value"] == st.get("deal", 2)["owner_id"]
    True
"""

from __future__ import annotations

from . import render
from .api import ApiError as _ApiError
from .api import _v1_page, _v1_pagination, _v2_limit, bad_request, error_body, ok

V1_STATUS = {"open": (0,), "won": (1,), "lost": (2,), "deleted": (3,), "all_not_deleted": (0, 1, 2)}


def _user(cat, uid, has_pic_bool=True) -> dict | None:
    ref = render.v1_user_ref(cat, uid)
    if ref is not None and has_pic_bool:
        ref["has_pic"] = False
    return ref


def _person_ref(store, pid) -> dict | None:
    rec = store.get("person", pid) if pid else None
    if rec is None:
        return None
    return {
        "active_flag": not rec["is_deleted"],
        "name": rec["name"],
        "email": [{"label": e["label"], "value": e["value"], "primary": e["primary"]} for e in rec["emails"]],
        "phone": [{"label": p["label"], "value": p["value"], "primary": p["primary"]} for p in rec["phones"]],
        "owner_id": rec["owner_id"],
        "value": rec["id"],
    }


def _org_ref(store, oid) -> dict | None:
    rec = store.get("org", oid) if oid else None
    if rec is None:
        return None
    return {
        "name": rec["name"],
        "people_count": 0,
        "owner_id": rec["owner_id"],
        "address": (rec["address"] or {}).get("value", ""),
        "active_flag": not rec["is_deleted"],
        "cc_email": "sandbox@pipedrivemail.example",
        "value": rec["id"],
    }


def legacy_deal(rec: dict, store) -> dict:
    """A v1 deal as the deprecated ``/v1/deals`` wrote it: nested relations, root custom keys."""
    cat = store.catalog
    out = render.v1_deal_flat(rec, cat)
    out.update(
        {
            "creator_user_id": _user(cat, rec["creator_user_id"]),
            "user_id": _user(cat, rec["owner_id"]),
            "person_id": _person_ref(store, rec["person_id"]),
            "org_id": _org_ref(store, rec["org_id"]),
            "person_name": (store.get("person", rec["person_id"]) or {}).get("name") if rec["person_id"] else None,
            "org_name": (store.get("org", rec["org_id"]) or {}).get("name") if rec["org_id"] else None,
            "cc_email": f"sandbox+deal{rec['id']}@pipedrivemail.example",
            "products_count": 0,
            "files_count": 0,
            "notes_count": 0,
            "followers_count": 0,
            "email_messages_count": 0,
            "activities_count": 0,
            "done_activities_count": 0,
            "undone_activities_count": 0,
            "participants_count": 0,
            "org_hidden": False,
            "person_hidden": False,
        }
    )
    return out


def _related(store, recs: list[dict]) -> dict:
    cat = store.catalog
    users = {r["owner_id"] for r in recs} | {r["creator_user_id"] for r in recs}
    stages = {r["stage_id"] for r in recs}
    return {
        "user": {
            str(u): {k: v for k, v in render.v1_user_ref(cat, u).items() if k != "value"} for u in users if cat.user(u)
        },
        "stage": {str(s): render.v1_stage(cat.stage(s), cat) for s in stages if cat.stage(s)},
        "pipeline": {str(p["id"]): render.v1_pipeline(p) for p in cat.pipelines},
    }


def v1_deals(call):
    q, store = call.query, call.store
    start, limit = _v1_page(q)
    status = q.get("status") or "all_not_deleted"
    if status not in V1_STATUS:
        raise bad_request("Parameter 'status' must be open, won, lost, deleted or all_not_deleted")
    codes = V1_STATUS[status]
    where = [(f"status IN ({','.join('?' * len(codes))})", codes), ("is_archived = ?", (0,))]
    for name, col in (("stage_id", "stage_id"), ("user_id", "owner_id")):
        if q.get(name):
            where.append((f"{col} = ?", (int(q[name]),)))
    order, direction = "id", "asc"
    if q.get("sort"):
        parts = q["sort"].split(",")[0].split()
        order = parts[0] if parts[0] in ("id", "update_time", "add_time") else "id"
        direction = "desc" if len(parts) > 1 and parts[1].upper() == "DESC" else "asc"
    ids = store.query_ids("deal", where, order, direction, None, limit + 1, start)
    recs = [store.get("deal", i) for i in ids[:limit]]
    return ok(
        [legacy_deal(r, store) for r in recs],
        {"pagination": _v1_pagination(start, limit, len(ids) > limit)},
        related_objects=_related(store, recs),
    )


def v1_deal(call):
    rec = call.store.get("deal", int(call.params[0]))
    if rec is None:
        raise _ApiError(404, error_body("Deal not found", "Object was not found."))
    return ok(legacy_deal(rec, call.store), None, related_objects=_related(call.store, [rec]))


def _v1_contacts(kind):
    def handler(call):
        q, store = call.query, call.store
        start, limit = _v1_page(q)
        ids = store.query_ids(kind, [("is_deleted = ?", (0,))], "id", "asc", None, limit + 1, start)
        recs = [store.get(kind, i) for i in ids[:limit]]
        fn = render.v1_person_flat if kind == "person" else render.v1_org_flat
        data = [fn(r, store.catalog) for r in recs]
        if kind == "person":
            for d, r in zip(data, recs, strict=True):
                d["owner_id"] = _user(store.catalog, r["owner_id"], has_pic_bool=False)  # int here, per spec
                d["org_id"] = _org_ref(store, r["org_id"])
        return ok(data, {"pagination": _v1_pagination(start, limit, len(ids) > limit)})

    return handler


# -- entities the sandbox does not model -------------------------------------------------------------
def empty_v1(call):
    start, limit = _v1_page(call.query)
    return ok([], {"pagination": _v1_pagination(start, limit, False)})


def empty_v2(call):
    _v2_limit(call.query)
    return ok([], {"next_cursor": None})


def system_fields(*keys: tuple[str, str, str]):
    def handler(call):
        fields = [
            {
                "id": n,
                "key": k,
                "name": name,
                "field_type": ft,
                "options": None,
                "custom": False,
                "add_time": call.store.catalog.users[0]["created"],
                "update_time": None,
            }
            for n, (k, name, ft) in enumerate(keys, start=1)
        ]
        data = [
            {
                **render.v1_field(f, n),
                "options": [],
                "created_by_user_id": 1,
                "last_updated_by_user_id": 1,
                "update_time": render.v1_time(f["add_time"]),
            }
            for n, f in enumerate(fields)
        ]
        return ok(data, {"pagination": _v1_pagination(0, len(data), False)})

    return handler


def currencies(call):
    names = {
        "EUR": ("Euro", "€"),
        "USD": ("US Dollar", "$"),
        "GBP": ("Pound Sterling", "£"),
        "MXN": ("Mexican Peso", "MX$"),
    }
    return ok(
        [
            {
                "id": n,
                "code": code,
                "name": name,
                "decimal_points": 2,
                "symbol": sym,
                "active_flag": True,
                "is_custom_flag": False,
            }
            for n, (code, (name, sym)) in enumerate(names.items(), start=1)
        ]
    )


def activity_types(call):
    t = render.v1_time(call.store.catalog.users[0]["created"])
    types = (("Call", "call"), ("Meeting", "meeting"), ("Email", "email"), ("Tarea", "task"))
    return ok(
        [
            {
                "id": n,
                "name": name,
                "key_string": key,
                "icon_key": key,
                "active_flag": True,
                "color": "5b7fbf",
                "is_custom_flag": False,
                "order_nr": n,
                "add_time": t,
                "update_time": t,
            }
            for n, (name, key) in enumerate(types, start=1)
        ]
    )
