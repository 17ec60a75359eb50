"""Export of the sandbox's full truth: every record and every change event, as plain JSON.

Tests and reconciliation checks compare what a sync stored against this. Records and notes
(deleted notes with ``active_flag`` false) are in the canonical (v2-like) shape with RFC 3339
times; ``events`` are all deal field changes (generated history plus later writes);
``journal`` lists only the changes made after start (record, note, pipeline, stage and field
writes, simulated activity), in order. It walks every
record, so it is O(size): fine for test-sized sandboxes, slow for a million deals.

Example::

    >>> from crmsync.sandbox.store import Store
    >>> truth = export_truth(Store(seed=1, deals=10))
    >>> len(truth["deals"])
    10
"""

from __future__ import annotations

from .render import v2_time


def _plain(rec: dict) -> dict:
    out = {}
    for k, v in rec.items():
        if k == "_events":
            continue
        out[k] = v2_time(v) if (k.endswith("_time") and isinstance(v, int)) else v
    return out


def _event(ev: dict, entity: str = "deal") -> dict:
    out = {"entity": entity, **ev}
    out["time"] = v2_time(ev["time"])
    return out


def export_truth(store) -> dict:
    store.wait_ready()
    with store.lock:
        cat = store.catalog
        out = {
            "seed": store.seed,
            "now": v2_time(store.now),
            "sizes": dict(store.sizes),
            "users": [_plain(u) for u in cat.users],
            "pipelines": [_plain(p) for p in cat.pipelines],
            "stages": [_plain(s) for s in cat.stages],
            "lead_labels": [_plain(x) for x in cat.lead_labels],
            "fields": {k: [_plain(f) for f in v] for k, v in cat.fields.items()},
            "deals": [],
            "persons": [],
            "organizations": [],
            "leads": [],
            "notes": [_plain(n) for n in store.notes.values()],
            "events": [],
            "journal": [_event(e, e["entity"]) for e in store.journal],
        }
        for kind, key in (
            ("deal", "deals"),
            ("person", "persons"),
            ("org", "organizations"),
            ("lead", "leads"),
        ):
            for i in store.all_ids(kind):
                rec = store.get(kind, i)
                if rec is None:
                    continue
                out[key].append(_plain(rec))
                if kind == "deal":
                    out["events"].extend(_event(e) for e in store.events("deal", i))
        return out
