"""Endpoint handlers and the route table (with each operation's ``x-token-cost``).

Handlers take a :class:`Call` and return ``(status, body)``; the HTTP layer
(:mod:`crmsync.sandbox.server`) does auth, limits, faults and serialization. The cost
column is copied from the official specs (a test checks it against them), so budgets
drain as they would against Pipedrive.

Choices where the reference is silent or UNCERTAIN (see also the package docstring):
v1 lists send ``additional_data.pagination`` (nested, as the docs and examples, not the
flat schema); v2 ``limit`` > 500 is a 400, v1 ``limit`` is clamped to 500; flow items are
newest first with stage ids as strings and ``*_formatted`` names; a converted or deleted
lead answers 404 on ``GET /v1/leads/{id}``; a deleted deal still answers on
``GET /api/v2/deals/{id}`` (``is_deleted: true``) until purged; ``/v1/recents`` silently
clamps ``since_timestamp`` to the last 30 days.

Example::

    >>> route("GET", "v2", "/deals/7")[0].cost
    1
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import render
from .mutations import (
    check_refs,
    convert_lead,
    create_contact,
    create_deal,
    create_lead,
    delete_contact,
    delete_deal,
    delete_lead,
    update_contact,
    update_deal,
    update_lead,
)
from .rng import uuid_for
from .store import Invalid, NotFound, Store

DAY = 86400
MAX_LIMIT = 500


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(body.get("error"))
        self.status, self.body = status, body


def error_body(message: str, info: str = "Please check developers.pipedrive.com") -> dict:
    return {"success": False, "error": message, "error_info": info, "data": None, "additional_data": None}


def bad_request(message: str) -> ApiError:
    return ApiError(400, error_body(message))


def not_found(message: str = "Entity was not found") -> ApiError:
    return ApiError(404, error_body(message, "Object was not found."))


@dataclass
class Call:
    store: Store
    query: dict[str, str]
    body: dict
    user_id: int
    params: tuple = ()
    ctx: dict = field(default_factory=dict)  # server-wide things: conversions timer settings


# -- parameter parsing -----------------------------------------------------------------------------
def _int(q: dict, name: str, default: int | None = None) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise bad_request(f"Parameter '{name}' must be an integer") from None


def _rfc3339(q: dict, name: str) -> int | None:
    v = q.get(name)
    if not v:
        return None
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", v)
    if not m:
        raise bad_request(f"Parameter '{name}' must be an RFC 3339 date-time, e.g. 2025-01-01T10:20:00Z")
    ts = calendar.timegm(time.strptime(f"{m[1]} {m[2]}", "%Y-%m-%d %H:%M:%S"))
    tz = m[4]
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        ts -= sign * (hh * 3600 + mm * 60)
    return ts


def _v2_limit(q: dict) -> int:
    limit = _int(q, "limit", 100)
    if limit < 1 or limit > MAX_LIMIT:
        raise bad_request(f"Parameter 'limit' must be between 1 and {MAX_LIMIT}")
    return limit


def _v1_page(q: dict) -> tuple[int, int]:
    start = max(_int(q, "start", 0), 0)
    limit = _int(q, "limit", 100)
    if limit < 1:
        raise bad_request("Parameter 'limit' must be positive")
    return start, min(limit, MAX_LIMIT)


def encode_cursor(field_: str, value, ident, direction: str) -> str:
    raw = json.dumps(
        {"field": field_, "fieldValue": value, "sortDirection": direction, "id": ident}, separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, field_: str, direction: str):
    if not cursor:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["field"] != field_ or data["sortDirection"] != direction:
            raise ValueError
        return data["fieldValue"], data["id"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("Invalid cursor") from None


def _sort(q: dict, allowed: tuple[str, ...]) -> tuple[str, str]:
    by = q.get("sort_by") or "id"
    direction = q.get("sort_direction") or "asc"
    if by not in allowed:
        raise bad_request(f"Parameter 'sort_by' must be one of {', '.join(allowed)}")
    if direction not in ("asc", "desc"):
        raise bad_request("Parameter 'sort_direction' must be asc or desc")
    return by, direction


def _csv_ints(q: dict, name: str, max_n: int = 100) -> list[int] | None:
    v = q.get(name)
    if not v:
        return None
    try:
        out = [int(x) for x in v.split(",") if x.strip()]
    except ValueError:
        raise bad_request(f"Parameter '{name}' must be comma-separated integers") from None
    if len(out) > max_n:
        raise bad_request(f"Parameter '{name}' accepts at most {max_n} values")
    return out


def ok(data, additional=None, **extra) -> tuple[int, dict]:
    body = {"success": True, "data": data, "additional_data": additional}
    body.update(extra)
    return 200, body


# -- generic v2 entity listing ---------------------------------------------------------------------
STATUS = {"open": 0, "won": 1, "lost": 2, "deleted": 3}


def _filters(kind: str, q: dict, archived: bool | None) -> list[tuple[str, str, object]]:
    f: list[tuple[str, str, object]] = []
    if kind == "deal":
        statuses = [s for s in (q.get("status") or "").split(",") if s]
        if any(s not in STATUS for s in statuses):
            raise bad_request("Parameter 'status' must be open, won, lost or deleted")
        f.append(("status", "in", tuple(STATUS[s] for s in statuses) if statuses else (0, 1, 2)))
        f.append(("is_archived", "=", int(bool(archived))))
        for name in ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id"):
            v = _int(q, name)
            if v is not None:
                f.append((name, "=", v))
    else:
        f.append(("is_deleted", "=", 0))
        v = _int(q, "owner_id")
        if v is not None:
            f.append(("owner_id", "=", v))
        if kind == "person":
            v = _int(q, "org_id")
            if v is not None:
                f.append(("org_id", "=", v))
    ids = _csv_ints(q, "ids")
    if ids is not None:
        f.append(("id", "in", tuple(ids)))
    since, until = _rfc3339(q, "updated_since"), _rfc3339(q, "updated_until")
    if since is not None:
        f.append(("update_time", ">=", since))
    if until is not None:
        f.append(("update_time", "<", until))
    return f


def _sql(filters) -> list[tuple[str, tuple]]:
    out = []
    for col, op, v in filters:
        if op == "in":
            out.append((f"{col} IN ({','.join('?' * len(v))})" if v else "0", tuple(v)))
        else:
            out.append((f"{col} {op} ?", (v,)))
    return out


_DEAL_COLS = (
    "id",
    "update_time",
    "add_time",
    "status",
    "pipeline_id",
    "stage_id",
    "is_deleted",
    "is_archived",
    "owner_id",
    "person_id",
    "org_id",
)


def _pred(store: Store, filters):
    def pred(rec):
        row = dict(zip(_DEAL_COLS, store._index_row("deal", rec), strict=True))
        for col, op, v in filters:
            x = row[col]
            if (
                (op == "=" and x != v)
                or (op == "in" and x not in v)
                or (op == ">=" and x < v)
                or (op == "<" and x >= v)
            ):
                return False
        return True

    return pred


def _custom_only(q: dict) -> set[str] | None:
    v = q.get("custom_fields")
    if not v:
        return None
    keys = [k for k in v.split(",") if k]
    if len(keys) > 15:
        raise bad_request("Parameter 'custom_fields' accepts at most 15 keys")
    return set(keys)


def _deal_include(q: dict) -> set[str]:
    inc = {x for x in (q.get("include_fields") or "").split(",") if x}
    bad = inc - set(render.DEAL_INCLUDE_FIELDS)
    if bad:
        raise bad_request(f"Parameter 'include_fields' has unknown values: {', '.join(sorted(bad))}")
    return inc


def _list(call: Call, kind: str, archived: bool | None = None) -> tuple[int, dict]:
    q, store = call.query, call.store
    limit = _v2_limit(q)
    by, direction = _sort(q, ("id", "update_time", "add_time"))
    if kind == "person" and q.get("deal_id"):
        deal = store.get("deal", _int(q, "deal_id"))
        q = dict(q, ids=str(deal["person_id"] if deal and deal["person_id"] else -1))
    filters = _filters(kind, q, archived)
    after = decode_cursor(q.get("cursor"), by, direction)
    if kind == "deal" and by == "id" and not store.ready.is_set():
        recs = store.scan_deals(_pred(store, filters), direction, after[1] if after else None, limit + 1)
    else:
        ids = store.query_ids(kind, _sql(filters), by, direction, tuple(after) if after else None, limit + 1)
        recs = [store.get(kind, i) for i in ids]
    more = len(recs) > limit
    recs = recs[:limit]
    cat, only, labels = store.catalog, _custom_only(q), q.get("include_option_labels") == "true"
    if kind == "deal":
        inc = _deal_include(q)
        data = [render.v2_deal(r, cat, inc, only, labels) for r in recs]
    elif kind == "person":
        data = [render.v2_person(r, cat, only, labels) for r in recs]
    else:
        data = [render.v2_org(r, cat, only, labels) for r in recs]
    nxt = None
    if more:
        last = recs[-1]
        nxt = encode_cursor(by, last[by], last["id"], direction)
    return ok(data, {"next_cursor": nxt})


def _get_one(call: Call, kind: str) -> tuple[int, dict]:
    rec = call.store.get(kind, int(call.params[0]))
    if rec is None or (kind != "deal" and rec["is_deleted"]):
        raise not_found()
    cat, q = call.store.catalog, call.query
    if kind == "deal":
        return ok(render.v2_deal(rec, cat, _deal_include(q), _custom_only(q), q.get("include_option_labels") == "true"))
    fn = render.v2_person if kind == "person" else render.v2_org
    return ok(fn(rec, cat, _custom_only(q), q.get("include_option_labels") == "true"))


def _write(fn, *args):
    try:
        return fn(*args)
    except NotFound:
        raise not_found() from None
    except Invalid as exc:
        raise bad_request(str(exc)) from None


def deals_list(call):
    return _list(call, "deal", archived=False)


def deals_archived(call):
    return _list(call, "deal", archived=True)


def deal_get(call):
    return _get_one(call, "deal")


def deal_create(call):
    _write(check_refs, call.store, call.body)
    rec = _write(create_deal, call.store, call.body, call.user_id)
    return ok(render.v2_deal(rec, call.store.catalog))


def deal_update(call):
    _write(check_refs, call.store, call.body)
    rec = _write(update_deal, call.store, int(call.params[0]), call.body, call.user_id)
    return ok(render.v2_deal(rec, call.store.catalog))


def deal_delete(call):
    rec = _write(delete_deal, call.store, int(call.params[0]), call.user_id)
    return 200, {"success": True, "data": {"id": rec["id"]}}


def _contact_routes(kind):
    render_fn = render.v2_person if kind == "person" else render.v2_org

    def lst(call):
        return _list(call, kind)

    def get(call):
        return _get_one(call, kind)

    def create(call):
        _write(check_refs, call.store, call.body)
        return ok(render_fn(_write(create_contact, call.store, kind, call.body, call.user_id), call.store.catalog))

    def update(call):
        _write(check_refs, call.store, call.body)
        rec = _write(update_contact, call.store, kind, int(call.params[0]), call.body, call.user_id)
        return ok(render_fn(rec, call.store.catalog))

    def delete(call):
        rec = _write(delete_contact, call.store, kind, int(call.params[0]), call.user_id)
        return 200, {"success": True, "data": {"id": rec["id"]}}

    return lst, get, create, update, delete


# -- small v2 collections --------------------------------------------------------------------------
def _page_list(call: Call, items: list[dict], allowed: tuple[str, ...], render_fn) -> tuple[int, dict]:
    q = call.query
    limit = _v2_limit(q)
    by, direction = _sort(q, allowed)
    items = sorted(items, key=lambda x: (x[by], x["id"]), reverse=direction == "desc")
    after = decode_cursor(q.get("cursor"), by, direction)
    if after is not None:
        key = tuple(after)
        items = [x for x in items if ((x[by], x["id"]) > key if direction == "asc" else (x[by], x["id"]) < key)]
    page, more = items[:limit], len(items) > limit
    nxt = encode_cursor(by, page[-1][by], page[-1]["id"], direction) if more else None
    return ok([render_fn(x) for x in page], {"next_cursor": nxt})


def pipelines_list(call):
    items = [p for p in call.store.catalog.pipelines if not p["is_deleted"]]
    return _page_list(call, items, ("id", "update_time", "add_time"), render.v2_pipeline)


def stages_list(call):
    pid = _int(call.query, "pipeline_id")
    items = [s for s in call.store.catalog.stages if not s["is_deleted"] and (pid is None or s["pipeline_id"] == pid)]
    return _page_list(call, items, ("id", "update_time", "add_time", "order_nr"), render.v2_stage)


def _offset_cursor(q: dict) -> int:
    c = q.get("cursor")
    if not c:
        return 0
    try:
        return int(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)).decode().removeprefix("offset:"))
    except (ValueError, binascii.Error):
        raise bad_request("Invalid cursor") from None


def _offset_next(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _fields_v2(entity):
    def handler(call):
        q = call.query
        limit, start = _v2_limit(q), _offset_cursor(q)
        fields = call.store.catalog.live_fields(entity)
        page = fields[start : start + limit]
        nxt = _offset_next(start + limit) if start + limit < len(fields) else None
        return ok([render.v2_field(f) for f in page], {"next_cursor": nxt})

    return handler


# -- v1 --------------------------------------------------------------------------------------------
def _v1_pagination(start: int, limit: int, more: bool) -> dict:
    p = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        p["next_start"] = start + limit
    return p


LEAD_SYSTEM_KEYS = (
    "title",
    "value",
    "currency",
    "user_id",
    "person_id",
    "org_id",
    "expected_close_date",
    "label",
    "visible_to",
    "origin",
    "channel",
    "channel_id",
)


def _v1_fields(entity):
    def handler(call):
        start, limit = _v1_page(call.query)
        cat = call.store.catalog
        fields = cat.live_fields("deal" if entity == "lead" else entity)
        if entity == "lead":
            fields = [f for f in fields if f["custom"] or f["key"] in LEAD_SYSTEM_KEYS]
        page = fields[start : start + limit]
        more = start + limit < len(fields)
        data = [render.v1_field(f, start + n) for n, f in enumerate(page)]
        return ok(data, {"pagination": _v1_pagination(start, limit, more)})

    return handler


_LEAD_SORT = {"id": "n", "add_time": "add_time", "update_time": "update_time"}


def _leads(call: Call, archived: bool) -> tuple[int, dict]:
    q = call.query
    start, limit = _v1_page(q)
    where = [("is_deleted = ?", (0,)), ("is_archived = ?", (int(archived),))]
    for name in ("owner_id", "person_id", "organization_id"):
        v = _int(q, name)
        if v is not None:
            where.append((f"{name} = ?", (v,)))
    if not archived:
        since = _rfc3339(q, "updated_since")
        if since is not None:
            where.append(("update_time >= ?", (since,)))
    order, direction = "n", "asc"  # oldest first, as documented
    if q.get("sort"):
        parts = q["sort"].split()
        if parts[0] not in _LEAD_SORT and parts[0] not in (
            "title",
            "owner_id",
            "creator_id",
            "was_seen",
            "expected_close_date",
            "next_activity_id",
        ):
            raise bad_request("Parameter 'sort' is not valid")
        order = _LEAD_SORT.get(parts[0], "n")
        direction = "desc" if len(parts) > 1 and parts[1].upper() == "DESC" else "asc"
    ids = call.store.query_ids("lead", where, order, direction, None, limit + 1, start)
    more = len(ids) > limit
    data = [render.v1_lead(call.store.get("lead", n), call.store.catalog) for n in ids[:limit]]
    return ok(data, {"pagination": _v1_pagination(start, limit, more)})


def leads_list(call):
    return _leads(call, archived=False)


def leads_archived(call):
    return _leads(call, archived=True)


def _lead_404():
    return ApiError(404, error_body("requested lead not found", "Object was not found."))


def lead_get(call):
    rec = call.store.lead(call.params[0])
    if rec is None or rec["is_deleted"]:
        raise _lead_404()
    return ok(render.v1_lead(rec, call.store.catalog))


def _lead_write(fn, *args):
    try:
        return fn(*args)
    except NotFound:
        raise _lead_404() from None
    except Invalid as exc:
        raise bad_request(str(exc)) from None


def lead_create(call):
    _lead_write(check_refs, call.store, call.body, "organization_id")
    rec = _lead_write(create_lead, call.store, call.body, call.user_id)
    status, body = ok(render.v1_lead(rec, call.store.catalog))
    return 201, body


def lead_update(call):
    _lead_write(check_refs, call.store, call.body, "organization_id")
    rec = _lead_write(update_lead, call.store, call.params[0], call.body, call.user_id)
    return ok(render.v1_lead(rec, call.store.catalog))


def lead_delete(call):
    rec = _lead_write(delete_lead, call.store, call.params[0], call.user_id)
    return 200, {"success": True, "data": {"id": rec["id"]}}


def lead_labels(call):
    return ok(
        [
            {
                **x,
                "add_time": render.lead_time(x["add_time"]),
                "update_time": render.lead_time(x["update_time"]),
            }
            for x in call.store.catalog.lead_labels
        ]
    )


def lead_sources(call):
    return ok([{"name": n} for n in call.store.gen.lead_sources()])


def users_list(call):
    return ok([render.v1_user(u, call.user_id) for u in call.store.catalog.users])


def _deal_or_404(call) -> dict:
    rec = call.store.get("deal", int(call.params[0]))
    if rec is None:
        raise ApiError(404, error_body("Deal not found", "Object was not found."))
    return rec


def _is_custom(key: str) -> bool:
    return len(key) == 40 and all(c in "0123456789abcdef" for c in key)


def deal_flow(call):
    rec = _deal_or_404(call)
    q = call.query
    start, limit = _v1_page(q)
    items = [x for x in (q.get("items") or "").split(",") if x]
    events = [] if items and "dealChange" not in items else call.store.events("deal", rec["id"])
    if q.get("all_changes") not in ("1", "true"):
        events = [e for e in events if not _is_custom(e["field_key"])]
    events.sort(key=lambda e: (e["time"], e["id"]), reverse=True)  # newest first
    page = events[start : start + limit]
    cat = call.store.catalog
    users = {e["user_id"] for e in page} | {rec["owner_id"]}
    related = {
        "deal": {
            str(rec["id"]): {
                "id": rec["id"],
                "title": rec["title"],
                "status": rec["status"],
                "value": rec["value"],
                "currency": rec["currency"],
                "stage_id": rec["stage_id"],
                "pipeline_id": rec["pipeline_id"],
            }
        },
        "user": {
            str(u): {k: v for k, v in render.v1_user_ref(cat, u).items() if k != "value"} for u in users if cat.user(u)
        },
    }
    return ok(
        [render.flow_item(e, cat) for e in page],
        {"pagination": _v1_pagination(start, limit, start + limit < len(events))},
        related_objects=related,
    )


def deal_changelog(call):
    rec = _deal_or_404(call)
    q = call.query
    limit, start = _v2_limit(q), _offset_cursor(q)
    events = sorted(call.store.events("deal", rec["id"]), key=lambda e: (e["time"], e["id"]), reverse=True)
    page = events[start : start + limit]
    nxt = _offset_next(start + limit) if start + limit < len(events) else None
    return ok([render.changelog_item(e) for e in page], {"next_cursor": nxt})


RECENT_ITEMS = ("deal", "person", "organization", "pipeline", "stage", "user")


def recents(call):
    q, store = call.query, call.store
    raw = q.get("since_timestamp")
    if not raw:
        raise bad_request("Parameter 'since_timestamp' is required")
    try:
        since = calendar.timegm(time.strptime(raw, "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        raise bad_request("Parameter 'since_timestamp' must be YYYY-MM-DD HH:MM:SS") from None
    since = max(since, store.now - 30 * DAY)  # the real endpoint only looks ~30 days back
    items = [x for x in (q.get("items") or "").split(",") if x] or list(RECENT_ITEMS)
    if any(x not in RECENT_ITEMS for x in items):
        raise bad_request(f"Parameter 'items' supports {', '.join(RECENT_ITEMS)} in this sandbox")
    start, limit = _v1_page(q)
    cat = store.catalog
    small = []
    if "pipeline" in items:
        small += [
            ("pipeline", p["update_time"], p["id"], render.v1_pipeline(p))
            for p in cat.pipelines
            if p["update_time"] >= since
        ]
    if "stage" in items:
        small += [
            ("stage", s["update_time"], s["id"], render.v1_stage(s, cat))
            for s in cat.stages
            if s["update_time"] >= since
        ]
    if "user" in items:
        small += [
            ("user", u["last_login"], u["id"], render.v1_user(u, call.user_id))
            for u in cat.users
            if u["last_login"] >= since
        ]
    small.sort(key=lambda x: (x[1], x[0], x[2]))
    selects, params = [], []
    for item, table in (("deal", "deal"), ("person", "person"), ("organization", "org")):
        if item in items:
            selects.append(f"SELECT '{item}', update_time, id FROM {table} WHERE update_time >= ?")
            params.append(since)
    rows: list = []
    big_start = max(start - len(small), 0)
    page_small = small[start : start + limit]
    want = limit + 1 - len(page_small)
    if selects and want > 0:
        store.wait_ready()
        sql = " UNION ALL ".join(selects) + " ORDER BY 2, 1, 3 LIMIT ? OFFSET ?"
        with store.lock:
            rows = store.db.execute(sql, [*params, want, big_start]).fetchall()
    more = len(page_small) + len(rows) > limit
    data = [{"item": k, "id": i, "data": d} for k, _, i, d in page_small]
    for item, _, ident in rows[: limit - len(page_small)]:
        if item == "deal":
            d = render.v1_deal_flat(store.get("deal", ident), cat)
        elif item == "person":
            d = render.v1_person_flat(store.get("person", ident), cat)
        else:
            d = render.v1_org_flat(store.get("org", ident), cat)
        data.append({"item": item, "id": ident, "data": d})
    last = data[-1]["data"].get("update_time") if data else None
    return ok(
        data,
        {
            "since_timestamp": render.v1_time(since),
            "last_timestamp_on_page": last,
            "pagination": _v1_pagination(start, limit, more),
        },
    )


# -- lead conversion (v2, asynchronous) ------------------------------------------------------------
def lead_convert(call):
    store, uuid = call.store, call.params[0]
    body = call.body
    extra = set(body) - {"stage_id", "pipeline_id"}
    if extra:
        raise bad_request(f"Unknown parameter(s): {', '.join(sorted(extra))}")
    lead = store.lead(uuid)
    if lead is None or lead["is_deleted"] or lead["is_archived"]:
        raise not_found()
    with store.lock:
        conv_id = uuid_for(store.seed, "conversion", len(store.conversions) + 1)
        job = {"conversion_id": conv_id, "lead_id": uuid, "status": "not_started", "deal_id": None}
        store.conversions[conv_id] = job
    delay = call.ctx.get("conversion_delay", 0.2)

    def run():
        job["status"] = "running"
        try:
            deal = convert_lead(store, uuid, body, call.user_id)
        except (NotFound, Invalid):
            job["status"] = "failed"
        else:
            job["deal_id"], job["status"] = deal["id"], "completed"

    job["status"] = "running"
    timer = threading.Timer(delay, run)
    timer.daemon = True
    timer.start()
    return ok({"conversion_id": conv_id})


def lead_convert_status(call):
    uuid, conv_id = call.params
    job = call.store.conversions.get(conv_id)
    if job is None or job["lead_id"] != uuid:
        raise not_found()
    data = {"lead_id": uuid, "conversion_id": conv_id, "status": job["status"]}
    if job["status"] == "completed":
        data["deal_id"] = job["deal_id"]
    return ok(data)


# -- routing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    method: str
    family: str
    pattern: str
    handler: Callable
    cost: int
    operation: str
    spec: str = ""  # which spec file documents it ("v1-jan26" for deprecated v1 paths); "" = family

    @property
    def regex(self):
        return re.compile("^" + re.sub(r"\{[a-z_]+\}", r"([^/]+)", self.pattern) + "$")


_persons = _contact_routes("person")
_orgs = _contact_routes("org")
ROUTES = (
    # (method, family, path, handler, x-token-cost, operationId)
    Route("GET", "v2", "/deals", deals_list, 10, "getDeals"),
    Route("POST", "v2", "/deals", deal_create, 5, "addDeal"),
    Route("GET", "v2", "/deals/archived", deals_archived, 20, "getArchivedDeals"),
    Route("GET", "v2", "/deals/{id}", deal_get, 1, "getDeal"),
    Route("PATCH", "v2", "/deals/{id}", deal_update, 5, "updateDeal"),
    Route("DELETE", "v2", "/deals/{id}", deal_delete, 3, "deleteDeal"),
    Route("GET", "v2", "/persons", _persons[0], 10, "getPersons"),
    Route("POST", "v2", "/persons", _persons[2], 5, "addPerson"),
    Route("GET", "v2", "/persons/{id}", _persons[1], 1, "getPerson"),
    Route("PATCH", "v2", "/persons/{id}", _persons[3], 5, "updatePerson"),
    Route("DELETE", "v2", "/persons/{id}", _persons[4], 3, "deletePerson"),
    Route("GET", "v2", "/organizations", _orgs[0], 10, "getOrganizations"),
    Route("POST", "v2", "/organizations", _orgs[2], 5, "addOrganization"),
    Route("GET", "v2", "/organizations/{id}", _orgs[1], 1, "getOrganization"),
    Route("PATCH", "v2", "/organizations/{id}", _orgs[3], 5, "updateOrganization"),
    Route("DELETE", "v2", "/organizations/{id}", _orgs[4], 3, "deleteOrganization"),
    Route("GET", "v2", "/pipelines", pipelines_list, 5, "getPipelines"),
    Route("GET", "v2", "/stages", stages_list, 5, "getStages"),
    Route("GET", "v2", "/dealFields", _fields_v2("deal"), 10, "getDealFields"),
    Route("GET", "v2", "/personFields", _fields_v2("person"), 10, "getPersonFields"),
    Route("GET", "v2", "/organizationFields", _fields_v2("org"), 10, "getOrganizationFields"),
    Route("POST", "v2", "/leads/{id}/convert/deal", lead_convert, 40, "convertLeadToDeal"),
    Route(
        "GET",
        "v2",
        "/leads/{id}/convert/status/{conversion_id}",
        lead_convert_status,
        1,
        "getLeadConversionStatus",
    ),
    Route("GET", "v1", "/leads", leads_list, 20, "getLeads"),
    Route("POST", "v1", "/leads", lead_create, 10, "addLead"),
    Route("GET", "v1", "/leads/archived", leads_archived, 40, "getArchivedLeads"),
    Route("GET", "v1", "/leads/{id}", lead_get, 2, "getLead"),
    Route("PATCH", "v1", "/leads/{id}", lead_update, 10, "updateLead"),
    Route("DELETE", "v1", "/leads/{id}", lead_delete, 6, "deleteLead"),
    Route("GET", "v1", "/leadLabels", lead_labels, 10, "getLeadLabels"),
    Route("GET", "v1", "/leadSources", lead_sources, 2, "getLeadSources"),
    Route("GET", "v1", "/leadFields", _v1_fields("lead"), 20, "getLeadFields"),
    Route("GET", "v1", "/dealFields", _v1_fields("deal"), 20, "getDealFields"),
    Route("GET", "v1", "/personFields", _v1_fields("person"), 20, "getPersonFields"),
    Route("GET", "v1", "/organizationFields", _v1_fields("org"), 20, "getOrganizationFields"),
    Route("GET", "v1", "/users", users_list, 20, "getUsers"),
    Route("GET", "v1", "/deals/{id}/flow", deal_flow, 40, "getDealUpdates"),
    Route("GET", "v1", "/deals/{id}/changelog", deal_changelog, 20, "getDealChangelog"),
    Route("GET", "v1", "/recents", recents, 20, "getRecents"),
)


def _legacy_routes() -> tuple[Route, ...]:
    from . import legacy as lg

    return (
        Route("GET", "v1", "/deals", lg.v1_deals, 20, "getDeals", "v1-jan26"),
        Route("GET", "v1", "/deals/{id}", lg.v1_deal, 2, "getDeal", "v1-jan26"),
        Route("GET", "v1", "/persons", lg._v1_contacts("person"), 20, "getPersons", "v1-jan26"),
        Route("GET", "v1", "/organizations", lg._v1_contacts("org"), 20, "getOrganizations", "v1-jan26"),
        Route("GET", "v1", "/deals/{id}/products", lg.empty_v1, 20, "getDealProducts", "v1-jan26"),
        Route("GET", "v1", "/files", lg.empty_v1, 20, "getFiles"),
        Route("GET", "v1", "/filters", lg.empty_v1, 20, "getFilters"),
        Route("GET", "v1", "/currencies", lg.currencies, 20, "getCurrencies"),
        Route("GET", "v1", "/activityTypes", lg.activity_types, 20, "getActivityTypes"),
        Route(
            "GET",
            "v1",
            "/noteFields",
            lg.system_fields(
                ("id", "ID", "int"),
                ("content", "Content", "text"),
                ("deal_id", "Deal", "deal"),
                ("add_time", "Add time", "date"),
            ),
            20,
            "getNoteFields",
        ),
        Route(
            "GET",
            "v1",
            "/activityFields",
            lg.system_fields(
                ("id", "ID", "int"),
                ("subject", "Subject", "varchar"),
                ("deal_id", "Deal", "deal"),
                ("due_date", "Due date", "date"),
            ),
            20,
            "getActivityFields",
        ),
        Route(
            "GET",
            "v1",
            "/productFields",
            lg.system_fields(("id", "ID", "int"), ("name", "Name", "varchar"), ("code", "Product code", "varchar")),
            20,
            "getProductFields",
        ),
        Route("GET", "v2", "/activities", lg.empty_v2, 10, "getActivities"),
        Route("GET", "v2", "/products", lg.empty_v2, 10, "getProducts"),
        Route("GET", "v2", "/deals/{id}/products", lg.empty_v2, 10, "getDealProducts"),
    )


def _migration_routes() -> tuple[Route, ...]:
    """Writes a migration into another company needs (handlers in :mod:`crmsync.sandbox.handlers`).

    v2 pipelines, stages and custom fields (create, get, delete); v1 field creation, lead labels, notes."""
    from . import handlers as h

    fields = (
        ("deal", "/dealFields", "Deal"),
        ("person", "/personFields", "Person"),
        ("org", "/organizationFields", "Organization"),
    )
    return (
        Route("POST", "v2", "/pipelines", h.pipeline_create, 5, "addPipeline"),
        Route("GET", "v2", "/pipelines/{id}", h.pipeline_get, 1, "getPipeline"),
        Route("PATCH", "v2", "/pipelines/{id}", h.pipeline_update, 5, "updatePipeline"),
        Route("DELETE", "v2", "/pipelines/{id}", h.pipeline_delete, 3, "deletePipeline"),
        Route("POST", "v2", "/stages", h.stage_create, 5, "addStage"),
        Route("GET", "v2", "/stages/{id}", h.stage_get, 1, "getStage"),
        Route("PATCH", "v2", "/stages/{id}", h.stage_update, 5, "updateStage"),
        Route("DELETE", "v2", "/stages/{id}", h.stage_delete, 3, "deleteStage"),
        *(Route("POST", "v2", path, h.field_create_v2(e), 5, f"add{name}Field") for e, path, name in fields),
        *(Route("POST", "v1", path, h.field_create_v1(e), 10, f"add{name}Field") for e, path, name in fields),
        *(
            Route("GET", "v2", path + "/{field_code}", h.field_get_v2(e), 1, f"get{name}Field")
            for e, path, name in fields
        ),
        *(
            Route("DELETE", "v2", path + "/{field_code}", h.field_delete_v2(e), 3, f"delete{name}Field")
            for e, path, name in fields
        ),
        Route("POST", "v1", "/leadLabels", h.lead_label_create, 10, "addLeadLabel"),
        Route("PATCH", "v1", "/leadLabels/{id}", h.lead_label_update, 10, "updateLeadLabel"),
        Route("DELETE", "v1", "/leadLabels/{id}", h.lead_label_delete, 6, "deleteLeadLabel"),
        Route("GET", "v1", "/notes", h.notes_list, 20, "getNotes"),
        Route("POST", "v1", "/notes", h.note_create, 10, "addNote"),
        Route("GET", "v1", "/notes/{id}", h.note_get, 2, "getNote"),
        Route("PUT", "v1", "/notes/{id}", h.note_update, 10, "updateNote"),
        Route("DELETE", "v1", "/notes/{id}", h.note_delete, 6, "deleteNote"),
    )


ROUTES = ROUTES + _legacy_routes() + _migration_routes()
_COMPILED = [(r, r.regex) for r in ROUTES]


def route(method: str, family: str, path: str) -> tuple[Route | None, tuple, bool]:
    """(route, path params, path_exists_with_other_method)."""
    other = False
    for r, rx in _COMPILED:
        if r.family != family:
            continue
        m = rx.match(path)
        if m:
            if r.method == method:
                return r, m.groups(), True
            other = True
    return None, (), other
