"""Simulated activity between two syncs: the changes an incremental sync must pick up.

One call moves virtual time forward by ``hours`` and spreads ``events`` changes over
that span, chosen by an RNG seeded with the sandbox seed and the round number, so the
same sequence of calls on the same seed produces the same changes. Every change goes
through :mod:`crmsync.sandbox.mutations` (the same code as API writes) with
``change_source="app"``, so it shows in ``updated_since``, flow, changelog and recents.

Example::

    >>> from crmsync.sandbox.store import Store
    >>> st = Store(seed=1, deals=50)
    >>> [c["action"] for c in simulate(st, events=3, hours=1)]  # doctest: +SKIP
    ['move_stage', 'win', 'create_deal']
"""

from __future__ import annotations

import random

from . import mutations as m
from .store import Invalid, NotFound, Store

ACTIONS = (
    ("create_deal", 8),
    ("update_deal", 10),
    ("move_stage", 14),
    ("win", 6),
    ("lose", 6),
    ("reopen", 3),
    ("delete_deal", 3),
    ("archive_deal", 3),
    ("create_lead", 5),
    ("update_lead", 4),
    ("archive_lead", 2),
    ("convert_lead", 4),
    ("update_person", 5),
    ("create_person", 3),
    ("update_org", 3),
    ("rename_field", 1),
    ("add_option", 1),
)


def _pick(store: Store, r: random.Random, kind: str, ok) -> dict | None:
    top = store.next_id[kind] - 1
    for _ in range(40):
        rec = store.get(kind, r.randint(1, top)) if top else None
        if rec is not None and ok(rec):
            return rec
    return None


def _apply(store: Store, r: random.Random, action: str, t: int) -> dict | None:
    cat = store.catalog
    user = 1 + r.randrange(len(cat.users))
    src = "app"
    live = lambda d: not d["is_deleted"] and not d["is_archived"]  # noqa: E731
    if action == "create_deal":
        rec = m.create_deal(
            store,
            {
                "title": f"Nueva oportunidad {store.next_id['deal']}",
                "value": r.randint(1, 400) * 100,
                "currency": "EUR",
                "person_id": r.randint(1, store.sizes["person"]),
            },
            user,
            src,
            t,
        )
        return {"entity": "deal", "id": rec["id"]}
    if action in ("update_deal", "move_stage", "win", "lose", "reopen", "delete_deal", "archive_deal"):
        want = {
            "move_stage": lambda d: live(d) and d["status"] == "open",
            "win": lambda d: live(d) and d["status"] == "open",
            "lose": lambda d: live(d) and d["status"] == "open",
            "reopen": lambda d: live(d) and d["status"] in ("won", "lost"),
            "archive_deal": lambda d: live(d) and d["status"] in ("won", "lost"),
        }.get(action, live)
        deal = _pick(store, r, "deal", want)
        if deal is None:
            return None
        i = deal["id"]
        if action == "update_deal":
            m.update_deal(store, i, {"value": deal["value"] + r.randint(1, 50) * 100}, user, src, t)
        elif action == "move_stage":
            stages = [s["id"] for s in cat.pipeline_stages(deal["pipeline_id"])]
            pos = stages.index(deal["stage_id"]) if deal["stage_id"] in stages else 0
            nxt = stages[min(pos + 1, len(stages) - 1)] if r.random() < 0.85 or pos == 0 else stages[pos - 1]
            if nxt == deal["stage_id"]:
                nxt = stages[0]
            m.update_deal(store, i, {"stage_id": nxt}, user, src, t)
        elif action == "win":
            m.update_deal(store, i, {"status": "won"}, user, src, t)
        elif action == "lose":
            m.update_deal(store, i, {"status": "lost", "lost_reason": "Sin presupuesto"}, user, src, t)
        elif action == "reopen":
            m.update_deal(store, i, {"status": "open"}, user, src, t)
        elif action == "delete_deal":
            m.delete_deal(store, i, user, src, t)
        else:
            m.update_deal(store, i, {"is_archived": True}, user, src, t)
        return {"entity": "deal", "id": i}
    if action == "create_lead":
        rec = m.create_lead(
            store,
            {"title": f"Web lead {store.next_id['lead']}", "person_id": r.randint(1, store.sizes["person"])},
            user,
            src,
            t,
        )
        return {"entity": "lead", "id": rec["id"]}
    if action in ("update_lead", "archive_lead", "convert_lead"):
        lead = _pick(store, r, "lead", lambda x: not x["is_deleted"] and not x["is_archived"])
        if lead is None:
            return None
        if action == "update_lead":
            m.update_lead(
                store,
                lead["id"],
                {"was_seen": not lead["was_seen"], "title": lead["title"] + " *"},
                user,
                src,
                t,
            )
        elif action == "archive_lead":
            m.update_lead(store, lead["id"], {"is_archived": True}, user, src, t)
        else:
            deal = m.convert_lead(store, lead["id"], {}, user, src, t)
            return {"entity": "lead", "id": lead["id"], "deal_id": deal["id"]}
        return {"entity": "lead", "id": lead["id"]}
    if action in ("update_person", "update_org"):
        kind = "person" if action == "update_person" else "org"
        rec = _pick(store, r, kind, lambda x: not x["is_deleted"])
        if rec is None:
            return None
        m.update_contact(
            store,
            kind,
            rec["id"],
            {"name": rec["name"] + (" Jr." if kind == "person" else " Group")},
            user,
            src,
            t,
        )
        return {"entity": kind, "id": rec["id"]}
    if action == "create_person":
        rec = m.create_contact(store, "person", {"name": "Nuevo Contacto", "emails": "nuevo@example.com"}, user, src, t)
        return {"entity": "person", "id": rec["id"]}
    entity = r.choice(["deal", "person", "org"])
    with store.lock:
        t = store.tick(t)
        if action == "rename_field":
            f = r.choice(cat.custom_fields(entity))
            old = f["name"]
            f["name"] = f"{old.split(' (v')[0]} (v{t % 1000})"
            f["update_time"] = t
            store.journal.append(
                {
                    "entity": f"{entity}Field",
                    "item_id": f["key"],
                    "time": t,
                    "field_key": "name",
                    "old_value": old,
                    "new_value": f["name"],
                }
            )
            return {"entity": f"{entity}Field", "id": f["key"]}
        f = r.choice([x for x in cat.custom_fields(entity) if x["options"]])
        opt = {
            "id": cat.next_option_id,
            "label": f"Opción {cat.next_option_id}",
            "add_time": t,
            "update_time": t,
            "simulated": True,  # generated records never draw from it (see Generator._custom_values)
        }
        cat.next_option_id += 1
        f["options"].append(opt)
        f["update_time"] = t
        store.journal.append(
            {
                "entity": f"{entity}Field",
                "item_id": f["key"],
                "time": t,
                "field_key": "options",
                "old_value": None,
                "new_value": opt["label"],
            }
        )
        return {"entity": f"{entity}Field", "id": f["key"], "option_id": opt["id"]}


def simulate(store: Store, events: int = 20, hours: float = 24.0) -> list[dict]:
    """Apply ``events`` random changes spread over the next ``hours`` of virtual time."""
    store.wait_ready()
    with store.lock:
        store.sim_round += 1
        r = random.Random(f"{store.seed}:simulate:{store.sim_round}")
        start = store.now
        span = max(int(hours * 3600), events + 1)
        names = [a for a, _ in ACTIONS]
        weights = [w for _, w in ACTIONS]
        out = []
        for k in range(events):
            t = start + (k + 1) * span // (events + 1)
            action = r.choices(names, weights)[0]
            try:
                res = _apply(store, r, action, t)
            except (Invalid, NotFound):
                res = None
            if res is not None:
                out.append({"action": action, "time": store.now, **res})
        store.now = max(store.now, start + span)
        return out
