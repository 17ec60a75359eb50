"""Compare what a sync stored with the sandbox's exported truth; returns a list of differences."""

from __future__ import annotations

from decimal import Decimal

from crmsync.connectors.pipedrive.convert import parse_time
from crmsync.connectors.pipedrive.history import TRACKED

from crmsync.view import StoredRecords


def _labels(fields: list[dict]) -> dict[str, tuple[str, str, dict]]:
    return {f["key"]: (f["name"], f["field_type"], {o["id"]: o["label"] for o in f["options"] or ()})
            for f in fields if f["custom"]}


def custom_by_name(values: dict, fields: list[dict]) -> dict:
    out = {}
    for key, v in (values or {}).items():
        if v is None:
            continue
        name, ftype, options = _labels(fields)[key]
        if ftype == "enum":
            v = options[v]
        elif ftype == "set":
            v = [options[x] for x in v]
        out[name] = v
    return out


def _t(v):
    return None if v is None else parse_time(v)


def _s(v):
    return None if v is None else str(v)


def _hist_value(field: str, v):
    if v is None:
        return None
    return str(v)


def all_of(st: StoredRecords, entity: str) -> dict:
    ids = list(st.ids(entity))
    return st.get_many(entity, ids)


def compare(truth: dict, st: StoredRecords) -> list[str]:
    diffs: list[str] = []
    fields = truth["fields"]

    # deals
    deals = all_of(st, "deal")
    want = {str(d["id"]): d for d in truth["deals"]}
    if set(deals) != set(want):
        diffs.append(f"deal ids: missing {sorted(set(want) - set(deals))[:10]} "
                     f"extra {sorted(set(deals) - set(want))[:10]}")
    for i, d in want.items():
        got = deals.get(i)
        if got is None:
            continue
        exp = {
            "title": d["title"], "status": "deleted" if d["is_deleted"] else d["status"],
            "value": Decimal(str(d["value"])), "currency": d["currency"], "pipeline_id": _s(d["pipeline_id"]),
            "stage_id": _s(d["stage_id"]), "owner_id": _s(d["owner_id"]), "person_id": _s(d["person_id"]),
            "org_id": _s(d["org_id"]), "add_time": _t(d["add_time"]), "update_time": _t(d["update_time"]),
            "won_time": _t(d["won_time"]), "lost_time": _t(d["lost_time"]), "lost_reason": d["lost_reason"],
            "stage_change_time": _t(d["stage_change_time"]), "source_lead_id": d["source_lead_id"],
            "custom": custom_by_name(d["custom_fields"], fields["deal"]),
        }
        for k, v in exp.items():
            g = getattr(got, k)
            g = g.value if hasattr(g, "value") and k == "status" else g
            if g != v:
                diffs.append(f"deal {i}.{k}: stored {g!r} != truth {v!r}")

    # leads, including converted (deleted in Pipedrive) and archived
    leads = all_of(st, "lead")
    want_l = {d["id"]: d for d in truth["leads"] if not d["is_deleted"] or d.get("converted_deal_id")}
    if set(leads) != set(want_l):
        diffs.append(f"lead ids: missing {sorted(set(want_l) - set(leads))[:5]} "
                     f"extra {sorted(set(leads) - set(want_l))[:5]}")
    labels = {x["id"]: x["name"] for x in truth["lead_labels"]}
    for i, d in want_l.items():
        got = leads.get(i)
        if got is None:
            continue
        if d.get("converted_deal_id"):
            exp = {"status": "converted", "converted_deal_id": str(d["converted_deal_id"])}
            if "_crmsync" not in got.raw:  # seen before conversion: the full lead is kept
                exp.update(title=d["title"], custom=custom_by_name(d["custom_fields"], fields["deal"]))
        else:
            exp = {"status": "archived" if d["is_archived"] else "new", "title": d["title"],
                   "person_id": _s(d["person_id"]), "org_id": _s(d["organization_id"]),
                   "labels": [labels[x] for x in d["label_ids"]],
                   "update_time": _t(d["update_time"]),
                   "custom": custom_by_name(d["custom_fields"], fields["deal"])}
        for k, v in exp.items():
            g = getattr(got, k)
            g = g.value if k == "status" else g
            if g != v:
                diffs.append(f"lead {i}.{k}: stored {g!r} != truth {v!r}")

    # persons and organizations (deleted ones are not listed by v2 and must not be stored live)
    for entity, key, fkey in (("person", "persons", "person"), ("organization", "organizations", "org")):
        got_all = all_of(st, entity)
        want_p = {str(p["id"]): p for p in truth[key] if not p["is_deleted"]}
        if set(got_all) != set(want_p):
            diffs.append(f"{entity} ids: missing {sorted(set(want_p) - set(got_all))[:5]} "
                         f"extra {sorted(set(got_all) - set(want_p))[:5]}")
        for i, p in want_p.items():
            got = got_all.get(i)
            if got is None:
                continue
            for k, v in (("name", p["name"]), ("update_time", _t(p["update_time"])),
                         ("custom", custom_by_name(p["custom_fields"], fields[fkey]))):
                if getattr(got, k) != v:
                    diffs.append(f"{entity} {i}.{k}: stored {getattr(got, k)!r} != truth {v!r}")

    # pipelines and stages
    for entity, key in (("pipeline", "pipelines"), ("stage", "stages")):
        got_all = all_of(st, entity)
        want_s = {str(s["id"]): s["name"] for s in truth[key] if not s["is_deleted"]}
        if {i: r.name for i, r in got_all.items()} != want_s:
            diffs.append(f"{entity}s differ")

    # stage history: every tracked transition, exactly once
    changes = all_of(st, "stage_change")
    got_ev = sorted((c.deal_id, c.field, c.old_value, c.new_value, c.changed_at, c.actor_id)
                    for c in changes.values() if c.evidence == "api")
    want_ev = sorted((str(e["item_id"]), e["field_key"], _hist_value(e["field_key"], e["old_value"]),
                      _hist_value(e["field_key"], e["new_value"]), _t(e["time"]), _s(e["user_id"]))
                     for e in truth["events"] if e["field_key"] in TRACKED)
    if got_ev != want_ev:
        missing = sorted(set(want_ev) - set(got_ev))
        extra = sorted(set(got_ev) - set(want_ev))
        diffs.append(f"stage history: {len(missing)} missing e.g. {missing[:3]}; {len(extra)} extra e.g. {extra[:3]}")
    firsts = {c.deal_id: c.new_value for c in changes.values() if c.evidence == "derived"}
    by_deal: dict[str, list] = {}
    for e in sorted(truth["events"], key=lambda e: (e["time"], e["id"])):
        if e["field_key"] == "stage_id":
            by_deal.setdefault(str(e["item_id"]), []).append(e)
    for i, d in want.items():
        moves = by_deal.get(i)
        first = str(moves[0]["old_value"]) if moves else str(d["stage_id"])
        if firsts.get(i) != first:
            diffs.append(f"deal {i} first stage: stored {firsts.get(i)!r} != truth {first!r}")

    # conversions
    convs = {(c.lead_id, c.deal_id) for c in all_of(st, "conversion").values()}
    want_c = {(d["id"], str(d["converted_deal_id"])) for d in truth["leads"] if d.get("converted_deal_id")}
    if convs != want_c:
        diffs.append(f"conversions: missing {sorted(want_c - convs)[:5]} extra {sorted(convs - want_c)[:5]}")
    return diffs
