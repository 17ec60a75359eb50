"""Canonical records -> the JSON shapes of Pipedrive API v1 and v2.

One canonical record, several wire shapes, because that is where syncs break: v1 writes
``YYYY-MM-DD HH:MM:SS`` and nests relation objects (``"user_id": {"id":.., "name":..}``)
with custom fields at the root under 40-hex keys (enum as ``"123"``, set as ``"1,2"``,
monetary as ``<key>`` + ``<key>_currency``); v2 writes RFC 3339, plain ids and a
``custom_fields`` object (enum as ``123``, set as ``[1, 2]``, monetary as
``{"value":..,"currency":..}``). v1 leads are the exception: ISO-8601 with milliseconds.

Example::

    >>> v1_time(0), v2_time(0), lead_time(0)
    ('1970-01-01 00:00:00', '1970-01-01T00:00:00Z', '1970-01-01T00:00:00.000Z')
"""

from __future__ import annotations

import time

from .catalog import Catalog

DEAL_INCLUDE_FIELDS = (
    "next_activity_id",
    "last_activity_id",
    "first_won_time",
    "products_count",
    "files_count",
    "notes_count",
    "followers_count",
    "email_messages_count",
    "activities_count",
    "done_activities_count",
    "undone_activities_count",
    "participants_count",
    "last_incoming_mail_time",
    "last_outgoing_mail_time",
    "smart_bcc_email",
    "source_lead_id",
)


def v1_time(ts: int | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def v2_time(ts: int | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def lead_time(ts: int | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


# -- custom fields ---------------------------------------------------------------------------------
def custom_v2(rec: dict, fields: list[dict], only: set[str] | None = None, labels: bool = False) -> dict:
    """All custom keys of the entity; unset ones are null (v2 lists every key)."""
    vals = rec.get("custom_fields") or {}
    out = {}
    for f in fields:
        key = f["key"]
        if only is not None and key not in only:
            continue
        v = vals.get(key)
        if labels and v is not None and f["field_type"] in ("enum", "set"):
            names = {o["id"]: o["label"] for o in f["options"] or ()}
            v = (
                {"id": v, "label": names.get(v)}
                if f["field_type"] == "enum"
                else [{"id": x, "label": names.get(x)} for x in v]
            )
        out[key] = v
    return out


def custom_v1(rec: dict, fields: list[dict], omit_unset: bool = False) -> dict:
    """Root-level v1 keys: enum as string id, set as comma string, monetary with ``_currency``."""
    vals = rec.get("custom_fields") or {}
    out: dict = {}
    for f in fields:
        key, ft = f["key"], f["field_type"]
        v = vals.get(key)
        if v is None:
            if not omit_unset:
                out[key] = None
                if ft == "monetary":
                    out[key + "_currency"] = None
            continue
        if ft == "enum":
            out[key] = str(v)
        elif ft == "set":
            out[key] = ",".join(str(x) for x in v)
        elif ft == "monetary":
            out[key], out[key + "_currency"] = v["value"], v["currency"]
        else:
            out[key] = v
    return out


# -- deals -----------------------------------------------------------------------------------------
def v2_deal(
    rec: dict,
    cat: Catalog,
    include: set[str] = frozenset(),
    only_custom: set[str] | None = None,
    labels: bool = False,
) -> dict:
    out = {
        "id": rec["id"],
        "title": rec["title"],
        "creator_user_id": rec["creator_user_id"],
        "owner_id": rec["owner_id"],
        "person_id": rec["person_id"],
        "org_id": rec["org_id"],
        "pipeline_id": rec["pipeline_id"],
        "stage_id": rec["stage_id"],
        "value": rec["value"],
        "currency": rec["currency"],
        "add_time": v2_time(rec["add_time"]),
        "update_time": v2_time(rec["update_time"]),
        "stage_change_time": v2_time(rec["stage_change_time"]),
        "is_deleted": rec["is_deleted"],
        "is_archived": rec["is_archived"],
        "archive_time": v2_time(rec["archive_time"]),
        "status": rec["status"],
        "probability": rec["probability"],
        "lost_reason": rec["lost_reason"],
        "visible_to": rec["visible_to"],
        "close_time": v2_time(rec["close_time"]),
        "won_time": v2_time(rec["won_time"]),
        "lost_time": v2_time(rec["lost_time"]),
        "local_won_date": rec["won_time"] and time.strftime("%Y-%m-%d", time.gmtime(rec["won_time"])),
        "local_lost_date": rec["lost_time"] and time.strftime("%Y-%m-%d", time.gmtime(rec["lost_time"])),
        "local_close_date": rec["close_time"] and time.strftime("%Y-%m-%d", time.gmtime(rec["close_time"])),
        "expected_close_date": rec["expected_close_date"],
        "label_ids": list(rec["label_ids"]),
        "origin": rec["origin"],
        "origin_id": rec["origin_id"],
        "channel": rec["channel"],
        "channel_id": rec["channel_id"],
        "arr": None,
        "mrr": None,
        "acv": None,
        "custom_fields": custom_v2(rec, cat.custom_fields("deal"), only_custom, labels),
    }
    for name in include:
        if name == "source_lead_id":
            out[name] = rec["source_lead_id"]
        elif name == "first_won_time":
            out[name] = v2_time(rec["first_won_time"])
        elif name.endswith("_count"):
            out[name] = 0
        elif name == "smart_bcc_email":
            out[name] = f"sandbox+deal{rec['id']}@pipedrivemail.example"
        else:
            out[name] = None
    return out


def v1_user_ref(cat: Catalog, uid: int | None) -> dict | None:
    u = cat.user(uid)
    if u is None:
        return None
    return {
        "id": u["id"],
        "name": u["name"],
        "email": u["email"],
        "has_pic": 0,
        "pic_hash": None,
        "active_flag": u["active_flag"],
        "value": u["id"],
    }


def v1_deal_flat(rec: dict, cat: Catalog) -> dict:
    """v1 deal as ``/v1/recents`` describes it: plain relation ids, root-level custom keys."""
    stage = cat.stage(rec["stage_id"]) or {}
    owner = cat.user(rec["owner_id"]) or {}
    out = {
        "id": rec["id"],
        "creator_user_id": rec["creator_user_id"],
        "user_id": rec["owner_id"],
        "person_id": rec["person_id"],
        "org_id": rec["org_id"],
        "stage_id": rec["stage_id"],
        "title": rec["title"],
        "value": rec["value"],
        "currency": rec["currency"],
        "add_time": v1_time(rec["add_time"]),
        "update_time": v1_time(rec["update_time"]),
        "stage_change_time": v1_time(rec["stage_change_time"]),
        "active": rec["status"] == "open",
        "deleted": rec["is_deleted"],
        "is_archived": rec["is_archived"],
        "archive_time": v1_time(rec["archive_time"]),
        "status": rec["status"],
        "probability": rec["probability"],
        "lost_reason": rec["lost_reason"],
        "visible_to": str(rec["visible_to"]),
        "close_time": v1_time(rec["close_time"]),
        "pipeline_id": rec["pipeline_id"],
        "won_time": v1_time(rec["won_time"]),
        "first_won_time": v1_time(rec["first_won_time"]),
        "lost_time": v1_time(rec["lost_time"]),
        "expected_close_date": rec["expected_close_date"],
        "label": ",".join(str(x) for x in rec["label_ids"]) or None,
        "stage_order_nr": stage.get("order_nr"),
        "owner_name": owner.get("name"),
        "weighted_value": rec["value"] * (stage.get("deal_probability", 100) / 100),
        "formatted_value": f"{rec['value']} {rec['currency']}",
        "rotten_time": None,
        "origin": rec["origin"],
        "origin_id": rec["origin_id"],
        "channel": rec["channel"],
        "channel_id": rec["channel_id"],
        "arr": None,
        "mrr": None,
        "acv": None,
        "arr_currency": None,
        "mrr_currency": None,
        "acv_currency": None,
    }
    out.update(custom_v1(rec, cat.custom_fields("deal")))
    return out


# -- persons and organizations ---------------------------------------------------------------------
def v2_person(rec: dict, cat: Catalog, only_custom: set[str] | None = None, labels: bool = False) -> dict:
    return {
        "id": rec["id"],
        "name": rec["name"],
        "first_name": rec["first_name"],
        "last_name": rec["last_name"],
        "owner_id": rec["owner_id"],
        "org_id": rec["org_id"],
        "add_time": v2_time(rec["add_time"]),
        "update_time": v2_time(rec["update_time"]),
        "emails": [dict(e) for e in rec["emails"]],
        "phones": [dict(p) for p in rec["phones"]],
        "is_deleted": rec["is_deleted"],
        "visible_to": rec["visible_to"],
        "label_ids": list(rec["label_ids"]),
        "picture_id": rec["picture_id"],
        "custom_fields": custom_v2(rec, cat.custom_fields("person"), only_custom, labels),
    }


def v1_person_flat(rec: dict, cat: Catalog) -> dict:
    out = {
        "id": rec["id"],
        "company_id": 1,
        "active_flag": not rec["is_deleted"],
        "phone": [dict(p) for p in rec["phones"]] or [{"value": "", "primary": True}],
        "email": [dict(e) for e in rec["emails"]] or [{"value": "", "primary": True}],
        "first_char": rec["name"][:1].lower(),
        "add_time": v1_time(rec["add_time"]),
        "update_time": v1_time(rec["update_time"]),
        "visible_to": str(rec["visible_to"]),
        "picture_id": None,
        "label": None,
        "label_ids": list(rec["label_ids"]),
        "org_name": None,
        "owner_name": (cat.user(rec["owner_id"]) or {}).get("name"),
        "cc_email": "sandbox@pipedrivemail.example",
        "owner_id": rec["owner_id"],
        "org_id": rec["org_id"],
        "name": rec["name"],
        "first_name": rec["first_name"],
        "last_name": rec["last_name"],
    }
    out.update(custom_v1(rec, cat.custom_fields("person")))
    return out


def v2_org(rec: dict, cat: Catalog, only_custom: set[str] | None = None, labels: bool = False) -> dict:
    return {
        "id": rec["id"],
        "name": rec["name"],
        "owner_id": rec["owner_id"],
        "add_time": v2_time(rec["add_time"]),
        "update_time": v2_time(rec["update_time"]),
        "is_deleted": rec["is_deleted"],
        "visible_to": rec["visible_to"],
        "address": dict(rec["address"]) if rec["address"] else None,
        "label_ids": list(rec["label_ids"]),
        "website": rec["website"],
        "linkedin": rec["linkedin"],
        "industry": rec["industry"],
        "annual_revenue": rec["annual_revenue"],
        "employee_count": rec["employee_count"],
        "custom_fields": custom_v2(rec, cat.custom_fields("org"), only_custom, labels),
    }


def v1_org_flat(rec: dict, cat: Catalog) -> dict:
    addr = rec["address"] or {}
    out = {
        "id": rec["id"],
        "company_id": 1,
        "owner_id": v1_user_ref(cat, rec["owner_id"]),
        "name": rec["name"],
        "active_flag": not rec["is_deleted"],
        "country_code": addr.get("country"),
        "label": None,
        "label_ids": list(rec["label_ids"]),
        "add_time": v1_time(rec["add_time"]),
        "update_time": v1_time(rec["update_time"]),
        "visible_to": str(rec["visible_to"]),
        "address": addr.get("value"),
        "address_route": addr.get("route"),
        "address_street_number": addr.get("street_number"),
        "address_locality": addr.get("locality"),
        "address_country": addr.get("country"),
        "address_postal_code": addr.get("postal_code"),
        "cc_email": "sandbox@pipedrivemail.example",
    }
    out.update(custom_v1(rec, cat.custom_fields("org")))
    return out


# -- leads -----------------------------------------------------------------------------------------
def v1_lead(rec: dict, cat: Catalog) -> dict:
    out = {
        "id": rec["id"],
        "title": rec["title"],
        "owner_id": rec["owner_id"],
        "creator_id": rec["creator_id"],
        "label_ids": list(rec["label_ids"]),
        "person_id": rec["person_id"],
        "organization_id": rec["organization_id"],
        "source_name": rec["source_name"],
        "origin": rec["origin"],
        "origin_id": rec["origin_id"],
        "channel": rec["channel"],
        "channel_id": rec["channel_id"],
        "source_deal_id": rec["source_deal_id"],
        "is_archived": rec["is_archived"],
        "was_seen": rec["was_seen"],
        "value": dict(rec["value"]) if rec["value"] else None,
        "expected_close_date": rec["expected_close_date"],
        "next_activity_id": rec["next_activity_id"],
        "add_time": lead_time(rec["add_time"]),
        "update_time": lead_time(rec["update_time"]),
        "visible_to": rec["visible_to"],
        "cc_email": f"sandbox+lead{rec['n']}@pipedrivemail.example",
    }
    out.update(custom_v1(rec, cat.custom_fields("lead"), omit_unset=True))
    return out


# -- catalog objects -------------------------------------------------------------------------------
def v2_pipeline(p: dict) -> dict:
    return {
        "id": p["id"],
        "name": p["name"],
        "order_nr": p["order_nr"],
        "is_deleted": p["is_deleted"],
        "is_deal_probability_enabled": p["is_deal_probability_enabled"],
        "add_time": v2_time(p["add_time"]),
        "update_time": v2_time(p["update_time"]),
        "is_selected": p["order_nr"] == 0,
    }


def v2_stage(s: dict) -> dict:
    return {
        "id": s["id"],
        "order_nr": s["order_nr"],
        "name": s["name"],
        "is_deleted": s["is_deleted"],
        "deal_probability": s["deal_probability"],
        "pipeline_id": s["pipeline_id"],
        "is_deal_rot_enabled": s["is_deal_rot_enabled"],
        "days_to_rotten": s["days_to_rotten"],
        "add_time": v2_time(s["add_time"]),
        "update_time": v2_time(s["update_time"]),
    }


def v1_pipeline(p: dict) -> dict:
    return {
        "id": p["id"],
        "name": p["name"],
        "url_title": p["name"].lower().replace(" ", "-"),
        "order_nr": p["order_nr"],
        "active": not p["is_deleted"],
        "deal_probability": True,
        "add_time": v1_time(p["add_time"]),
        "update_time": v1_time(p["update_time"]),
        "selected": p["order_nr"] == 0,
    }


def v1_stage(s: dict, cat: Catalog) -> dict:
    p = next(x for x in cat.pipelines if x["id"] == s["pipeline_id"])
    return {
        "id": s["id"],
        "order_nr": s["order_nr"],
        "name": s["name"],
        "active_flag": not s["is_deleted"],
        "deal_probability": s["deal_probability"],
        "pipeline_id": s["pipeline_id"],
        "rotten_flag": s["is_deal_rot_enabled"],
        "rotten_days": s["days_to_rotten"],
        "add_time": v1_time(s["add_time"]),
        "update_time": v1_time(s["update_time"]),
        "pipeline_name": p["name"],
        "pipeline_deal_probability": True,
    }


def v2_field(f: dict) -> dict:
    options = None
    if f["options"] is not None:
        options = [
            {
                "id": o["id"],
                "label": o["label"],
                "color": None,
                "add_time": v2_time(o.get("add_time")),
                "update_time": v2_time(o.get("update_time")),
            }
            for o in f["options"]
        ]
    subfields = None
    if f["field_type"] == "monetary" and f["custom"]:
        subfields = [
            {
                "field_code": f["key"] + "_currency",
                "field_name": f["name"] + " currency",
                "field_type": "varchar",
            }
        ]
    return {
        "field_name": f["name"],
        "field_code": f["code"],
        "description": f.get("description"),
        "field_type": f["field_type"],
        "options": options,
        "subfields": subfields,
        "is_custom_field": f["custom"],
        "is_optional_response_field": False,
    }


def v1_field(f: dict, order: int) -> dict:
    options = None if f["options"] is None else [{"id": o["id"], "label": o["label"]} for o in f["options"]]
    return {
        "id": f["id"],
        "key": f["key"],
        "name": f["name"],
        "order_nr": order,
        "field_type": f["field_type"],
        "add_time": v1_time(f["add_time"]),
        "update_time": v1_time(f["update_time"]),
        "last_updated_by_user_id": 1 if f["custom"] else None,
        "created_by_user_id": 1 if f["custom"] else None,
        "active_flag": True,
        "edit_flag": f["custom"],
        "index_visible_flag": True,
        "details_visible_flag": True,
        "add_visible_flag": True,
        "important_flag": False,
        "bulk_edit_allowed": True,
        "searchable_flag": f["field_type"] in ("varchar", "text"),
        "filtering_allowed": True,
        "sortable_flag": True,
        "mandatory_flag": f["key"] == "title",
        "options": options,
        "options_deleted": [],
        "is_subfield": False,
        "subfields": [],
    }


def v1_user(u: dict, me: int) -> dict:
    return {
        "id": u["id"],
        "name": u["name"],
        "default_currency": u["default_currency"],
        "locale": u["locale"],
        "lang": 1,
        "email": u["email"],
        "phone": None,
        "activated": u["active_flag"],
        "last_login": v1_time(u["last_login"]),
        "created": v1_time(u["created"]),
        "modified": v1_time(u["last_login"]),
        "has_created_company": u["id"] == 1,
        "access": [
            {"app": "sales", "admin": u["is_admin"], "permission_set_id": "sandbox-sales"},
            {"app": "global", "admin": u["is_admin"], "permission_set_id": "sandbox-global"},
        ],
        "active_flag": u["active_flag"],
        "timezone_name": "Europe/Madrid",
        "timezone_offset": "+01:00",
        "role_id": 1,
        "icon_url": None,
        "is_you": u["id"] == me,
        "is_deleted": False,
    }


# -- history ---------------------------------------------------------------------------------------
def _change_value(v) -> str | None:
    """Flow/changelog values are strings (times in v1 format), as live captures show."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int) and v > 100_000_000:  # an epoch time
        return v1_time(v)
    return str(v)


def flow_item(ev: dict, cat: Catalog) -> dict:
    data = {
        "id": ev["id"],
        "item_id": ev["item_id"],
        "user_id": ev["user_id"],
        "field_key": ev["field_key"],
        "old_value": _change_value(ev["old_value"]),
        "new_value": _change_value(ev["new_value"]),
        "is_bulk_update_flag": None,
        "log_time": v1_time(ev["time"]),
        "change_source": ev["change_source"],
        "change_source_user_agent": "crmsync-sandbox" if ev["change_source"] == "api" else None,
    }
    if ev["field_key"] in ("stage_id", "pipeline_id"):
        look = (
            cat.stage
            if ev["field_key"] == "stage_id"
            else (lambda i: next((p for p in cat.pipelines if p["id"] == i), None))
        )
        old, new = look(ev["old_value"]) if ev["old_value"] else None, look(ev["new_value"])
        data["additional_data"] = {
            "old_value_formatted": old and old["name"],
            "new_value_formatted": new and new["name"],
        }
    else:
        data["additional_data"] = {}
    return {"object": "dealChange", "timestamp": v1_time(ev["time"]), "data": data}


def changelog_item(ev: dict) -> dict:
    return {
        "field_key": ev["field_key"],
        "old_value": _change_value(ev["old_value"]),
        "new_value": _change_value(ev["new_value"]),
        "actor_user_id": ev["user_id"],
        "time": v1_time(ev["time"]),
        "change_source": ev["change_source"],
        "change_source_user_agent": "crmsync-sandbox" if ev["change_source"] == "api" else None,
        "is_bulk_update_flag": False,
    }
