"""Writes to a company's structure: pipelines, stages (v2), custom fields (v1 and v2), lead labels.

A migration builds the target's skeleton before any record: the pipelines and stages its
deals land in, and a custom field (say "crmsync key") that ties each copied record to its
source. These live in the :class:`~crmsync.sandbox.catalog.Catalog`; every change here bumps
virtual time, sets ``update_time`` and is journalled, like record writes.

Deleting, where the spec only says "Marks a pipeline/stage as deleted" and the reference is
silent on the deals inside (choices, the safe ones):

* a stage or pipeline that still holds deals (any status, archived or not; deleted deals do
  not count) is refused with 400: deleting or stranding deals as a side effect of an API call
  is the dangerous option, and a client that moves or deletes the deals first works either way;
* the last pipeline cannot be deleted (deals created without a pipeline need a default);
* deleting a pipeline also marks its stages deleted;
* deleted pipelines and stages stay readable by id with ``is_deleted: true`` (like deleted
  deals), leave the lists, answer 404 to PATCH and DELETE, and take no new deals.

Deleting a custom field (v2 ``DELETE /<entity>Fields/{field_code}``, "Marks a custom field as
deleted") hides it from the lists and from records and refuses it in writes; values stay
stored unseen. System fields cannot be deleted.

Lead labels (v1 ``POST /leadLabels``, ``PATCH``/``DELETE /leadLabels/{id}``) live here too, since
a migration has to create the labels its leads carry; deleting a label that live leads still
carry is refused (the same choice as for stages), a deleted label is simply gone.

Moving a stage to another pipeline (``PATCH /stages/{id}`` with ``pipeline_id``) is refused
while it holds deals, for the same reason. API-created pipelines start with no stages (the
API has no way to send them along), so a deal cannot be put in one until a stage is added.

Example::

    >>> from crmsync.sandbox.store import Store
    >>> st = Store(empty=True)
    >>> p = create_pipeline(st, {"name": "Migrated"}, user_id=1)
    >>> create_stage(st, {"name": "First", "pipeline_id": p["id"]}, user_id=1)["order_nr"]
    1
"""

from __future__ import annotations

from .rng import hex40, uuid_for
from .store import Invalid, NotFound, Store

PIPELINE_TYPES = {"name": str, "is_deal_probability_enabled": bool}
STAGE_TYPES = {
    "name": str,
    "pipeline_id": int,
    "deal_probability": int,
    "is_deal_rot_enabled": bool,
    "days_to_rotten": (int, type(None)),
}
# field_type values each addDealField/addPersonField/addOrganizationField accepts
V1_FIELD_TYPES = [
    "address",
    "date",
    "daterange",
    "double",
    "enum",
    "monetary",
    "org",
    "people",
    "phone",
    "set",
    "text",
    "time",
    "timerange",
    "user",
    "varchar",
    "varchar_auto",
    "visible_to",
]
V2_FIELD_TYPES = [
    "varchar",
    "text",
    "double",
    "phone",
    "date",
    "daterange",
    "time",
    "timerange",
    "set",
    "enum",
    "varchar_auto",
    "address",
    "monetary",
    "org",
    "people",
    "user",
]
V1_FIELD_BODY = {"name": str, "field_type": str, "options": list, "add_visible_flag": bool}
V2_FIELD_BODY = {
    "field_name": str,
    "field_type": str,
    "options": list,
    "ui_visibility": dict,
    "important_fields": dict,
    "required_fields": dict,
    "description": (str, type(None)),
}


def check_body(body: dict, types: dict, required: tuple[str, ...] = ()) -> None:
    """400 on unknown keys, missing required ones and wrong JSON types (``true`` is no integer)."""
    extra = sorted(set(body) - set(types))
    if extra:
        raise Invalid(f"Unknown parameter(s): {', '.join(extra)}")
    for key in required:
        if body.get(key) is None or body.get(key) == "":
            raise Invalid(f"Parameter '{key}' is required")
    for key, v in body.items():
        want = types[key] if isinstance(types[key], tuple) else (types[key],)
        if (isinstance(v, bool) and bool not in want) or not isinstance(v, want):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in want)
            raise Invalid(f"Parameter '{key}' must be {names}")


def _deals_in(store: Store, column: str, ident: int) -> int:
    return store.count("deal", [(f"{column} = ?", (ident,)), ("is_deleted = ?", (0,))])


# -- pipelines -------------------------------------------------------------------------------------
def _live_pipeline(store: Store, pid: int) -> dict:
    p = store.catalog.pipeline(pid)
    if p is None or p["is_deleted"]:
        raise NotFound("pipeline")
    return p


def create_pipeline(store: Store, body: dict, user_id: int) -> dict:
    check_body(body, PIPELINE_TYPES, ("name",))
    with store.lock:
        cat, t = store.catalog, store.tick()
        p = {
            "id": max((x["id"] for x in cat.pipelines), default=0) + 1,
            "name": body["name"],
            "order_nr": max((x["order_nr"] for x in cat.pipelines), default=-1) + 1,
            "is_deleted": False,
            "is_deal_probability_enabled": body.get("is_deal_probability_enabled", False),
            "add_time": t,
            "update_time": t,
        }
        cat.pipelines.append(p)
        cat.changed()
        store.log("pipeline", p["id"], "add_time", None, t, user_id, t)
        return p


def update_pipeline(store: Store, pid: int, body: dict, user_id: int) -> dict:
    check_body(body, PIPELINE_TYPES)
    if "name" in body and not body["name"]:
        raise Invalid("Parameter 'name' must not be empty")
    with store.lock:
        p = _live_pipeline(store, pid)
        t = store.tick()
        _apply(store, "pipeline", p, body, user_id, t)
        return p


def delete_pipeline(store: Store, pid: int, user_id: int) -> dict:
    with store.lock:
        p = _live_pipeline(store, pid)
        cat = store.catalog
        if not [x for x in cat.pipelines if not x["is_deleted"] and x["id"] != pid]:
            raise Invalid("The last pipeline of a company cannot be deleted")
        n = _deals_in(store, "pipeline_id", pid)
        if n:
            raise Invalid(f"Pipeline holds {n} deal(s); move or delete them first")
        t = store.tick()
        for s in cat.stages:
            if s["pipeline_id"] == pid and not s["is_deleted"]:
                _apply(store, "stage", s, {"is_deleted": True}, user_id, t)
        _apply(store, "pipeline", p, {"is_deleted": True}, user_id, t)
        return p


# -- stages ----------------------------------------------------------------------------------------
def _live_stage(store: Store, sid: int) -> dict:
    s = store.catalog.stage(sid)
    if s is None or s["is_deleted"]:
        raise NotFound("stage")
    return s


def _stage_checks(store: Store, body: dict) -> None:
    if "name" in body and not body["name"]:
        raise Invalid("Parameter 'name' must not be empty")
    if "deal_probability" in body and not 0 <= body["deal_probability"] <= 100:
        raise Invalid("Parameter 'deal_probability' must be between 0 and 100")
    if body.get("days_to_rotten") is not None and body["days_to_rotten"] < 1:
        raise Invalid("Parameter 'days_to_rotten' must be a positive integer")
    if "pipeline_id" in body:
        p = store.catalog.pipeline(body["pipeline_id"])
        if p is None or p["is_deleted"]:
            raise Invalid("Pipeline not found")


def _next_order(store: Store, pid: int) -> int:
    return max((s["order_nr"] for s in store.catalog.pipeline_stages(pid)), default=0) + 1


def create_stage(store: Store, body: dict, user_id: int) -> dict:
    check_body(body, STAGE_TYPES, ("name", "pipeline_id"))
    with store.lock:
        _stage_checks(store, body)
        cat, t = store.catalog, store.tick()
        rot = body.get("is_deal_rot_enabled", False)
        s = {
            "id": max((x["id"] for x in cat.stages), default=0) + 1,
            "order_nr": _next_order(store, body["pipeline_id"]),
            "name": body["name"],
            "is_deleted": False,
            "deal_probability": body.get("deal_probability", 100),
            "pipeline_id": body["pipeline_id"],
            "is_deal_rot_enabled": rot,
            "days_to_rotten": body.get("days_to_rotten") if rot else None,
            "add_time": t,
            "update_time": t,
        }
        cat.stages.append(s)
        cat.changed()
        store.log("stage", s["id"], "add_time", None, t, user_id, t)
        return s


def update_stage(store: Store, sid: int, body: dict, user_id: int) -> dict:
    check_body(body, STAGE_TYPES)
    with store.lock:
        s = _live_stage(store, sid)
        _stage_checks(store, body)
        changes = dict(body)
        if "pipeline_id" in body and body["pipeline_id"] != s["pipeline_id"]:
            n = _deals_in(store, "stage_id", sid)
            if n:
                raise Invalid(f"Stage holds {n} deal(s); move them before moving the stage to another pipeline")
            changes["order_nr"] = _next_order(store, body["pipeline_id"])
        if changes.get("is_deal_rot_enabled") is False:
            changes["days_to_rotten"] = None
        t = store.tick()
        _apply(store, "stage", s, changes, user_id, t)
        return s


def delete_stage(store: Store, sid: int, user_id: int) -> dict:
    with store.lock:
        s = _live_stage(store, sid)
        n = _deals_in(store, "stage_id", sid)
        if n:
            raise Invalid(f"Stage holds {n} deal(s); move or delete them first")
        _apply(store, "stage", s, {"is_deleted": True}, user_id, store.tick())
        return s


def _apply(store: Store, entity: str, obj: dict, changes: dict, user_id: int, t: int) -> None:
    for key, v in changes.items():
        if obj.get(key) != v:
            store.log(entity, obj["id"], key, obj.get(key), v, user_id, t)
            obj[key] = v
    obj["update_time"] = t
    store.catalog.changed()


# -- custom fields ---------------------------------------------------------------------------------
def create_field(
    store: Store,
    entity: str,
    name: str,
    field_type: str,
    options: list | None,
    user_id: int,
    description: str | None = None,
) -> dict:
    """A new custom field of ``entity`` (deal fields also apply to leads); key: 40 hex, per company."""
    if field_type in ("enum", "set"):
        if not options:
            raise Invalid(f"Fields of type {field_type} need a non-empty 'options' array")
        if any(not isinstance(o, dict) or not isinstance(o.get("label"), str) or not o["label"] for o in options):
            raise Invalid("Each option must be an object with a non-empty 'label'")
    elif options:
        raise Invalid("Only enum and set fields take options")
    with store.lock:
        cat, t = store.catalog, store.tick()
        ident = max(f["id"] for f in cat.fields[entity]) + 1  # deleted ones included: ids are never reused
        company = "empty" if store.empty else "seeded"
        key = hex40(store.seed, f"{company}-api-field:{entity}:{ident}")
        opts = None
        if options:
            opts = []
            for o in options:
                opts.append({"id": cat.next_option_id, "label": o["label"], "add_time": t, "update_time": t})
                cat.next_option_id += 1
        f = {
            "id": ident,
            "key": key,
            "code": key,
            "name": name,
            "field_type": field_type,
            "custom": True,
            "options": opts,
            "add_time": t,
            "update_time": t,
            "description": description,
            "api_created": True,  # generated records never carry values for it
        }
        cat.fields[entity].append(f)
        cat.changed()
        store.log(f"{entity}Field", key, "add_time", None, t, user_id, t)
        return f


def delete_field(store: Store, entity: str, code: str, user_id: int) -> dict:
    """Mark a custom field deleted: gone from the lists and from records (values are kept unseen),
    refused in writes. System fields cannot be deleted."""
    with store.lock:
        f = next((x for x in store.catalog.live_fields(entity) if x["code"] == code), None)
        if f is None:
            raise NotFound("field")
        if not f["custom"]:
            raise Invalid("System fields cannot be deleted")
        t = store.tick()
        f.update(is_deleted=True, update_time=t)
        store.catalog.changed()
        store.log(f"{entity}Field", f["key"], "is_deleted", False, True, user_id, t)
        return f


# -- lead labels -----------------------------------------------------------------------------------
LABEL_COLORS = ("blue", "brown", "dark-gray", "gray", "green", "orange", "pink", "purple", "red", "yellow")
LABEL_TYPES = {"name": str, "color": str}


def _label_checks(body: dict) -> None:
    if "name" in body and not body["name"].strip():
        raise Invalid("Parameter 'name' must not be empty")
    if "color" in body and body["color"] not in LABEL_COLORS:
        raise Invalid(f"Parameter 'color' must be one of {', '.join(LABEL_COLORS)}")


def _label(store: Store, label_id: str) -> dict:
    found = next((x for x in store.catalog.lead_labels if x["id"] == label_id), None)
    if found is None:
        raise NotFound("lead label")
    return found


def create_lead_label(store: Store, body: dict, user_id: int) -> dict:
    check_body(body, LABEL_TYPES, ("name", "color"))
    _label_checks(body)
    with store.lock:
        cat, t = store.catalog, store.tick()
        store.next_label += 1
        label = {
            "id": uuid_for(store.seed, f"{'empty' if store.empty else 'seeded'}-api-lead-label", store.next_label),
            "name": body["name"],
            "color": body["color"],
            "add_time": t,
            "update_time": t,
        }
        cat.lead_labels.append(label)
        store.log("leadLabel", label["id"], "add_time", None, t, user_id, t)
        return label


def update_lead_label(store: Store, label_id: str, body: dict, user_id: int) -> dict:
    check_body(body, LABEL_TYPES)
    _label_checks(body)
    with store.lock:
        label, t = _label(store, label_id), store.tick()
        for key, v in body.items():
            if label[key] != v:
                store.log("leadLabel", label_id, key, label[key], v, user_id, t)
                label[key] = v
        label["update_time"] = t
        return label


def delete_lead_label(store: Store, label_id: str, user_id: int) -> dict:
    """Scans every lead (labels are not indexed): fine for a rare call, O(leads)."""
    with store.lock:
        label = _label(store, label_id)
        carriers = 0
        for n in store.all_ids("lead"):
            lead = store.get("lead", n)
            if lead is not None and not lead["is_deleted"] and label_id in lead["label_ids"]:
                carriers += 1
        if carriers:
            raise Invalid(f"{carriers} lead(s) carry this label; remove it from them first")
        store.catalog.lead_labels.remove(label)
        t = store.tick()
        store.log("leadLabel", label_id, "is_deleted", False, True, user_id, t)
        return label
