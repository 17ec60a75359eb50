"""``push``, ``migrate`` and ``rollback`` as library calls (the CLI only renders what they return).

Why one runner for push and migrate: a migration *is* a push from another source, in relationship
order, plus what only a migration needs — pipelines/stages created in the target, owners mapped by
email, each deal's stage history carried as a note (the API cannot backdate history), a sample
mode and a verification report. Both refresh the target into the warehouse first (an incremental
read), plan from the warehouse, and only with ``apply=True`` write.

Example::

    >>> report = run_push(config, PushSettings(origin="pd", target="pd", normalize=True))   # doctest: +SKIP
    >>> report.counts["person"]                                                               # doctest: +SKIP
    {'update': 12, 'skip': 288}
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crmsync.config import Config
from crmsync.errors import ConfigError, CrmsyncError, RecordNotFound, WriteOutcomeUnknown, WriteRejected
from crmsync.source import SourceContext, load_connector
from crmsync.view import StoredRecords
from crmsync.warehouse import Warehouse

from .apply import Executor
from .ledger import Ledger
from .plan import ORDER, Item, Planner, PushSettings, crmsync_key, plain, stamp
from .target import Target

SAMPLE_DIFFS = 5


@dataclass
class PushReport:
    """What a push/migrate planned or did. ``counts[entity][action]``; ``cost`` is the plan's estimate."""

    run_id: int
    command: str
    origin: str
    target: str
    applied: bool
    plan_id: int | None = None
    seconds: float = 0.0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cost: dict[str, int] = field(default_factory=lambda: {"requests": 0, "tokens": 0})
    usage: dict[str, Any] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def open_target(config: Config, name: str) -> Target:
    """The configured source ``name`` as a write target (its connector must support writing)."""
    if name not in config.sources:
        raise ConfigError(f"unknown target {name!r} (configured sources: {', '.join(config.sources) or 'none'})")
    source_cfg = config.sources[name]
    cls = load_connector(source_cfg.type, f"sources.{name}")
    opener = getattr(cls, "open_target", None)
    if opener is None:
        raise ConfigError(f"sources.{name}: a {source_cfg.type} source cannot be written to; push into a CRM "
                          "source such as type = \"pipedrive\"")
    return opener(source_cfg, SourceContext(config=config, base_dir=config.base_dir))


def refresh(config: Config, names: list[str]) -> None:
    """Read ``names`` into the warehouse (incrementally) so plans compare against current data."""
    from crmsync.sync import run_sync

    summary = run_sync(config, only=names, command="push-refresh")
    failed = [s for s in summary.sources if s.status != "ok"]
    if failed:
        raise CrmsyncError(f"reading {failed[0].name} before the push failed: {failed[0].error}")


def run_push(config: Config, settings: PushSettings, *, apply: bool = False, do_refresh: bool = True,
             command: str = "push", notes: bool = False, verify: bool = False,
             progress: Callable[[str, int], None] | None = None) -> PushReport:
    """Plan (and with ``apply`` carry out) a push of ``settings.origin`` into ``settings.target``."""
    settings.check()
    t0 = time.perf_counter()
    target = open_target(config, settings.target)
    if settings.origin not in config.sources:
        raise ConfigError(f"unknown origin {settings.origin!r} (configured: {', '.join(config.sources)})")
    entities = [e for e in ORDER if e in settings.entities and e in target.entities]
    if do_refresh:
        refresh(config, [settings.target])
    with Warehouse.open(config.warehouse.path) as wh:
        ledger = Ledger(wh.conn)
        run_id = wh.start_run(command, config_path=str(config.path) if config.path else None,
                              sources=[settings.origin, settings.target])
        report = PushReport(run_id, command, settings.origin, settings.target, apply)
        try:
            _push(wh, ledger, target, settings, entities, report, apply=apply, notes=notes, progress=progress)
        except BaseException as exc:
            final = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            report.usage = target.usage()
            wh.finish_run(run_id, final, error=f"{type(exc).__name__}: {exc}"[:500], summary=report.to_dict())
            raise
        report.usage = target.usage()
        report.seconds = time.perf_counter() - t0
        wh.finish_run(run_id, "succeeded", summary=report.to_dict())
    if apply and verify:
        if do_refresh:
            refresh(config, [settings.target])
        with Warehouse.open(config.warehouse.path) as wh:
            report.verification = verify_migration(wh, settings)
            with wh.transaction() as conn:
                conn.execute("UPDATE runs SET summary = ? WHERE id = ?", (_json(report.to_dict()), report.run_id))
    report.seconds = time.perf_counter() - t0
    return report


def _push(wh: Warehouse, ledger: Ledger, target: Target, settings: PushSettings, entities: list[str],
          report: PushReport, *, apply: bool, notes: bool, progress) -> None:
    plan_id, seen = ledger.open_plan_seen(settings.target, settings.origin)
    keyed = {e for e in entities if target.keyed(e)} if not settings.same else set()
    key_notices: Counter[str] = Counter()
    if apply:
        for entity in sorted(keyed):
            try:
                created = target.ensure_key_field(entity)
            except WriteRejected as exc:
                keyed.discard(entity)
                key_notices[f"{entity}: the target refused to create the {target.key_field!r} field ({exc.api_error}); "
                            "interrupted creates are recovered by natural keys (email, name, fingerprint) instead"] += 1
                continue
            if created is not None:
                with wh.transaction():
                    ledger.log(report.run_id, settings.target, "field", settings.origin, entity, created.target_id,
                               "create", None, {"name": target.key_field, "entity": entity}, "done")
    planner = Planner(wh.conn, settings, ledger, key_entities=frozenset(keyed), plan_seen=seen if apply else {})
    executor = Executor(wh, ledger, target, settings, report.run_id, progress)
    if not apply:
        with wh.transaction():
            report.plan_id = ledger.save_plan(report.run_id, settings.target, settings.origin, iter(()), {})
    for entity in entities:
        report.counts[entity] = {}
        for items in planner.plan_chunks(entity):
            _summarize(report, target, entity, items)
            fields = planner.missing_fields(entity)  # those this chunk's records use, not created yet
            if fields:
                _summarize_fields(report, target, fields)
            if apply:
                for f in fields:
                    _create_field(wh, ledger, target, settings, report.run_id, planner, f, executor)
                executor.apply(items)
                continue
            for f in fields:
                planner.field_created(f["owner"], f["name"])
            with wh.transaction():
                ledger.add_plan_items(report.plan_id or 0, ((i.entity, i.origin_id, i.target_id, i.action,
                                                              _json(i.changes), i.seen) for i in items if i.target_id))
    if apply:
        executor.finish_deferred()
    if notes and "deal" in entities and not settings.same:
        items = note_items(wh.conn, ledger, settings)
        _summarize(report, target, "note", items)
        if apply:
            _apply_notes(wh, ledger, target, settings, report.run_id, items, executor)
    if apply:
        report.counts = _outcomes(executor.outcomes)
        report.problems = executor.problems[:200]
        with wh.transaction():
            ledger.close_plans(settings.target, settings.origin, report.run_id)
    else:
        with wh.transaction():
            ledger.set_plan_summary(report.plan_id or 0, {"counts": report.counts})
    notices = Counter(planner.notices) + executor.notices + key_notices
    report.notices = [{"message": m, "count": n} for m, n in notices.most_common()]


def _create_field(wh: Warehouse, ledger: Ledger, target: Target, settings: PushSettings, run_id: int,
                  planner: Planner, f: dict[str, Any], executor: Executor) -> None:
    """Create a custom field the origin's records use and the target lacks (rollback deletes it)."""
    try:
        written = target.create_field(f["owner"], f["name"], f["type"], f["options"])
    except WriteRejected as exc:
        executor.outcomes[("custom_field", "rejected")] += 1
        executor.problems.append({"entity": "custom_field", "origin_id": f"{f['owner']}:{f['name']}",
                                  "target_id": None, "status": "rejected", "reason": exc.api_error})
        return
    with wh.transaction():
        ledger.log(run_id, settings.target, "field", settings.origin, f"{f['owner']}:{f['name']}", written.target_id,
                   "create", None, f, "done")
    planner.field_created(f["owner"], f["name"])
    executor.outcomes[("custom_field", "create")] += 1


def _summarize(report: PushReport, target: Target, entity: str, items: list[Item]) -> None:
    """Add one chunk's actions, cost and (up to SAMPLE_DIFFS per kind) diffs to the report."""
    counts: Counter[str] = Counter(i.action for i in items)
    total = report.counts.setdefault(entity, {})
    for action, n in counts.items():
        total[action] = total.get(action, 0) + n
    for action in ("create", "update", "delete"):
        requests, tokens = target.cost(entity, action)
        report.cost["requests"] += requests * counts[action]
        report.cost["tokens"] += tokens * counts[action]
    samples = report.samples.setdefault(entity, [])
    for kinds in (("update", "conflict"), ("create", "delete")):
        room = SAMPLE_DIFFS - sum(1 for x in samples if x["action"] in kinds)
        samples.extend({"origin_id": i.origin_id, "target_id": i.target_id, "action": i.action, "reason": i.reason,
                        "changes": i.changes} for i in [x for x in items if x.action in kinds][:max(room, 0)])
    report.problems.extend({"entity": entity, "origin_id": i.origin_id, "target_id": i.target_id,
                            "status": "conflict", "reason": i.reason, "changes": i.changes}
                           for i in items if i.action == "conflict")


def _summarize_fields(report: PushReport, target: Target, fields: list[dict[str, Any]]) -> None:
    counts = report.counts.setdefault("custom_field", {})
    counts["create"] = counts.get("create", 0) + len(fields)
    report.samples.setdefault("custom_field", []).extend(
        {"origin_id": f"{f['owner']}:{f['name']}", "target_id": None, "action": "create", "reason": "",
         "changes": {"type": [None, f["type"]], "options": [None, f["options"]]}} for f in fields)
    report.cost["requests"] += len(fields)
    report.cost["tokens"] += len(fields) * target.cost("custom_field", "create")[1]


def _outcomes(counter: Counter) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for (entity, action), n in counter.items():
        out[entity][action] = n
    return dict(out)


# -- stage history notes -------------------------------------------------------------------------
NOTE_HEADER = "Stage history carried over by crmsync"


def note_content(conn, origin: str, deal_id: str) -> str | None:
    """The origin deal's merged timeline as note text (Pipedrive cannot backdate history)."""
    rows = conn.execute("SELECT at, kind, old_value, new_value, evidence FROM deal_timeline WHERE source = ? "
                        "AND deal_id = ? ORDER BY seq", (origin, deal_id)).fetchall()
    if not rows:
        return None
    lines = [f"<p><b>{NOTE_HEADER}</b> from {origin} deal {deal_id} (the API cannot backdate history).</p><ul>"]
    for at, kind, old, new, evidence in rows:
        move = f"{old or '—'} → {new or '—'}" if old or new else ""
        lines.append(f"<li>{at} · {kind} {move} <i>({evidence})</i></li>")
    lines.append(f"</ul><p>crmsync key: {crmsync_key(origin, 'note', deal_id)}</p>")
    return "".join(lines)


def note_items(conn, ledger: Ledger, settings: PushSettings) -> list[Item]:
    """One note per origin deal with a timeline: create, update when the timeline grew, else skip."""
    if not _has(conn):  # the origin was never reconciled: no timelines to carry
        return []
    deals = ledger.id_map(settings.target, "deal", settings.origin)
    notes = ledger.id_map(settings.target, "note", settings.origin)
    fingerprints = dict(conn.execute("SELECT origin_id, fingerprint FROM id_map WHERE target = ? AND entity = 'note' "
                                     "AND origin = ?", (settings.target, settings.origin)).fetchall())
    scope = None if settings.scope is None else settings.scope.get("deal", set())
    pending = {i["origin_id"]: i for i in ledger.pending_intents(settings.target) if i["entity"] == "note"}
    items = []
    ids = scope if scope is not None else [r[0] for r in conn.execute(
        "SELECT DISTINCT deal_id FROM deal_timeline WHERE source = ?", (settings.origin,))]
    for deal_id in sorted(ids):
        content = note_content(conn, settings.origin, deal_id)
        if content is None:
            continue
        digest = hashlib.blake2b(content.encode(), digest_size=12).hexdigest()
        deal_target = deals.get(deal_id)
        mapped = notes.get(deal_id)
        values = {"content": content, "deal_id": deal_target.target_id if deal_target else None}
        key = crmsync_key(settings.origin, "note", deal_id)
        if mapped is None:
            items.append(Item("note", deal_id, "create", values=values, key=key, fingerprint=digest,
                              changes={"content": [None, f"{content.count('<li>')} events"]},
                              intent=pending.get(deal_id)))
        elif fingerprints.get(deal_id) != digest:
            items.append(Item("note", deal_id, "update", target_id=mapped.target_id, values=values, key=key,
                              fingerprint=digest,
                              changes={"content": [_last_note(conn, settings, deal_id), "(new history)"]}))
        else:
            items.append(Item("note", deal_id, "skip", target_id=mapped.target_id, reason="up to date"))
    return items


def _last_note(conn, settings: PushSettings, deal_id: str) -> str | None:
    """The content crmsync last wrote to a deal's note: the pre-image rollback restores."""
    row = conn.execute("SELECT after FROM push_log WHERE target = ? AND entity = 'note' AND origin = ? AND "
                       "origin_id = ? AND action IN ('create', 'update', 'rollback-update') AND after IS NOT NULL "
                       "AND status NOT IN ('rejected', 'conflict') ORDER BY id DESC LIMIT 1",
                       (settings.target, settings.origin, deal_id)).fetchone()
    return json.loads(row[0]).get("content") if row else None


def _has(conn) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'deal_timeline'").fetchone() is not None


def _apply_notes(wh: Warehouse, ledger: Ledger, target: Target, settings: PushSettings, run_id: int,
                 items: list[Item], executor: Executor) -> None:
    deals = ledger.id_map(settings.target, "deal", settings.origin)
    for item in items:
        deal = deals.get(item.origin_id)
        if item.action == "skip" or deal is None:
            executor.outcomes[("note", "skip")] += 1
            continue
        item.values["deal_id"] = deal.target_id
        if item.action == "create" and item.intent is not None:
            found = [n for n in target.find_notes(deal.target_id) if item.key and item.key in (n.get("content") or "")]
            if found:
                with wh.transaction():
                    ledger.map(item.intent["run_id"], settings.target, "note", settings.origin, item.origin_id,
                               str(found[0]["id"]), "create", None, item.fingerprint)
                    ledger.resolve_intent(item.intent["id"], "recovered", str(found[0]["id"]))
                executor.outcomes[("note", "recovered")] += 1
                continue
        if item.action == "create":
            executor._create(item)
        else:
            executor._update(item)
            with wh.transaction():
                ledger.map(run_id, settings.target, "note", settings.origin, item.origin_id, item.target_id or "",
                           "match", None, item.fingerprint)


# -- sample ----------------------------------------------------------------------------------------
def sample_scope(conn, origin: str, n: int) -> dict[str, set[str]]:
    """A consistent subset: the first ``n`` live deals with their persons, organizations, pipelines,
    stages and owners, and the open leads of those persons/organizations."""
    stored = StoredRecords(conn, origin)
    deal_ids = [r[0] for r in conn.execute(
        "SELECT source_id FROM deals WHERE source = ? AND removed_run IS NULL AND status != 'deleted' "
        "ORDER BY add_time, CAST(source_id AS INTEGER), source_id LIMIT ?", (origin, n))]
    deals = stored.get_many("deal", deal_ids)
    scope: dict[str, set[str]] = {e: set() for e in ORDER}
    scope["deal"] = set(deals)
    for d in deals.values():
        for name, entity in (("person_id", "person"), ("org_id", "organization"), ("stage_id", "stage"),
                             ("pipeline_id", "pipeline")):
            if getattr(d, name):
                scope[entity].add(getattr(d, name))
    for p in stored.get_many("person", scope["person"]).values():
        if p.org_id:
            scope["organization"].add(p.org_id)
    for s in stored.get_many("stage", scope["stage"]).values():
        if s.pipeline_id:
            scope["pipeline"].add(s.pipeline_id)
    # every stage of the chosen pipelines, so the target pipeline has the origin's shape
    for sid, pid in conn.execute("SELECT source_id, pipeline_id FROM stages WHERE source = ? AND removed_run IS NULL",
                                 (origin,)):
        if pid in scope["pipeline"]:
            scope["stage"].add(sid)
    for lid, pid, oid in conn.execute("SELECT source_id, person_id, org_id FROM leads WHERE source = ? AND "
                                      "removed_run IS NULL", (origin,)):
        if pid in scope["person"] or (pid is None and oid in scope["organization"]):
            scope["lead"].add(lid)
    return scope


# -- verification ----------------------------------------------------------------------------------
def verify_migration(wh: Warehouse, settings: PushSettings, sample: int = 5) -> dict[str, Any]:
    """Counts origin vs target, every relationship checked through the ID map, a field-by-field sample."""
    ledger = Ledger(wh.conn)
    planner = Planner(wh.conn, settings, ledger)
    target = StoredRecords(wh.conn, settings.target)
    report: dict[str, Any] = {"counts": {}, "relationships": {}, "sample": {}, "id_map": {}}
    for entity in ORDER:
        if entity not in settings.entities:
            continue
        mapped = ledger.id_map(settings.target, entity, settings.origin)
        in_scope = [r for r in planner._origin_records(entity) if not _skipped(entity, r)]
        live = set(target.ids(entity))  # get_many also returns records since removed from the target
        targets = {tid: t for tid, t in target.get_many(entity, [m.target_id for m in mapped.values()]).items()
                   if tid in live and not _is_dead(t)}
        present = {r.source_id for r in in_scope if r.source_id in mapped and mapped[r.source_id].target_id in targets}
        refused = {o: error for o, (_, error) in
                   ledger.refused_creates(settings.target, settings.origin, entity).items()}
        rejected = {r.source_id: refused[r.source_id] for r in in_scope
                    if r.source_id not in present and r.source_id in refused}
        report["counts"][entity] = {"origin": len(in_scope), "in_target": len(present), "rejected": len(rejected),
                                    "missing": len(in_scope) - len(present) - len(rejected)}
        if rejected:
            report.setdefault("rejected", {})[entity] = [{"origin_id": k, "error": v}
                                                         for k, v in sorted(rejected.items())[:20]]
        report["id_map"][entity] = len(mapped)
        rel: Counter[str] = Counter()
        broken = []
        compared = []
        for r in in_scope:
            m = mapped.get(r.source_id)
            t = targets.get(m.target_id) if m else None
            if t is None:
                continue
            for name, ref_entity in (("org_id", "organization"), ("person_id", "person"), ("stage_id", "stage"),
                                     ("pipeline_id", "pipeline")):
                if not hasattr(r, name) or getattr(r, name) is None or ref_entity not in settings.entities:
                    continue
                want = ledger.target_id(settings.target, ref_entity, settings.origin, str(getattr(r, name)))
                have = getattr(t, name, None)
                if want is None:
                    rel[f"{name}: not migrated"] += 1
                elif str(have) == want:
                    rel[f"{name}: ok"] += 1
                else:
                    rel[f"{name}: broken"] += 1
                    if len(broken) < 10:
                        broken.append({"origin_id": r.source_id, "field": name, "expected": want, "found": have})
            if len(compared) < sample:
                desired = planner.desired(entity, r)
                current = planner._current(entity, t)
                fields = []
                for name, want in desired.items():
                    same = planner._same_value(name, current.get(name), want)
                    fields.append({"field": name, "origin": plain(want), "target": plain(current.get(name)),
                                   "equal": same})
                compared.append({"origin_id": r.source_id, "target_id": t.source_id, "fields": fields})
        report["relationships"][entity] = {"counts": dict(rel), "broken": broken}
        report["sample"][entity] = compared
    report["ok"] = all(c["missing"] == 0 for c in report["counts"].values()) and not any(
        k.endswith("broken") for r in report["relationships"].values() for k in r["counts"])
    return report


def _is_dead(rec) -> bool:
    from .plan import _is_dead as dead

    return dead(rec)


def _skipped(entity: str, rec) -> bool:
    from .plan import _skip_reason

    return bool(_skip_reason(entity, rec))


# -- rollback --------------------------------------------------------------------------------------
def run_rollback(config: Config, run_id: int, *, force: bool = False, do_refresh: bool = True) -> dict[str, Any]:
    """Undo push/migrate run ``run_id``: delete what it created, restore what it updated (pre-images).

    Refuses, per record, when the target changed it since that run wrote it (its ``update_time``
    moved on), unless ``force``. Deletes done by mirror mode cannot be undone through the API and
    are listed instead.
    """
    with Warehouse.open(config.warehouse.path, write=False) as wh:
        row = wh.conn.execute("SELECT command FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or row[0] not in ("push", "migrate") or not _has_ledger(wh):
            raise ConfigError(f"run {run_id}: not a push or migrate run (see crmsync status for run ids)")
        targets = {r[0] for r in wh.conn.execute("SELECT DISTINCT target FROM push_log WHERE run_id = ? UNION "
                                                 "SELECT DISTINCT target FROM id_map WHERE run_id = ?",
                                                 (run_id, run_id))}
    if not targets:
        return {"run_id": run_id, "deleted": 0, "restored": 0, "refused": [], "kept": [], "notes": ["nothing to undo"]}
    (target_name,) = targets
    target = open_target(config, target_name)
    if do_refresh:
        refresh(config, [target_name])
    result: dict[str, Any] = {"run_id": run_id, "target": target_name, "deleted": 0, "restored": 0,
                              "refused": [], "kept": [], "failed": []}
    with Warehouse.open(config.warehouse.path) as wh:
        ledger = Ledger(wh.conn)
        rb_run = wh.start_run("rollback", config_path=str(config.path) if config.path else None, sources=[target_name])
        stored = StoredRecords(wh.conn, target_name)
        try:
            for step in _undo_steps(wh.conn, ledger, run_id, target_name):
                _undo(wh, ledger, target, stored, step, rb_run, force, result)
        except BaseException as exc:
            wh.finish_run(rb_run, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                          error=f"{type(exc).__name__}: {exc}"[:500], summary=result)
            raise
        result["usage"] = target.usage()
        wh.finish_run(rb_run, "succeeded", summary=result)
    return result


def _has_ledger(wh: Warehouse) -> bool:
    return wh.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'push_log'").fetchone() is not None


def _undo_steps(conn, ledger: Ledger, run_id: int, target: str) -> list[dict[str, Any]]:
    """What to undo, newest first: logged updates/creates of the run, plus records recovered for it later."""
    steps = [r for r in ledger.run_log(run_id) if r["status"] in ("done", "pending", "unknown")]
    logged_creates = {(r["entity"], r["target_id"]) for r in steps if r["action"] == "create"}
    for entity, origin, origin_id, target_id, update_time in conn.execute(
            "SELECT entity, origin, origin_id, target_id, target_update_time FROM id_map WHERE target = ? AND "
            "run_id = ? AND action = 'create'", (target, run_id)):
        if (entity, target_id) not in logged_creates:
            steps.append({"id": 10**12, "target": target, "entity": entity, "origin": origin, "origin_id": origin_id,
                          "target_id": target_id, "action": "create", "before": None, "after": None,
                          "status": "done", "target_update_time": update_time})
    for intent in ledger.pending_intents(target):
        if intent["run_id"] == run_id:
            steps.append({"id": 10**12 + intent["id"], "target": target, "entity": intent["entity"],
                          "origin": intent["origin"],
                          "origin_id": intent["origin_id"], "target_id": None, "action": "create", "before": None,
                          "after": None, "status": "pending", "target_update_time": None,
                          "key": intent["crmsync_key"], "intent": intent["id"]})
    created = {(s["entity"], s["target_id"]) for s in steps if s["action"] == "create"}
    steps = [s for s in steps if s["action"] != "update" or (s["entity"], s["target_id"]) not in created]
    rank = {e: i for i, e in enumerate(("note", "deal", "lead", "person", "organization", "stage", "pipeline",
                                        "field"))}
    steps.sort(key=lambda s: (s["action"] != "update", rank.get(s["entity"], 0), -s["id"]))
    return steps


def _undo(wh: Warehouse, ledger: Ledger, target: Target, stored: StoredRecords, step: dict[str, Any], rb_run: int,
          force: bool, result: dict[str, Any]) -> None:
    entity, target_id = step["entity"], step["target_id"]
    if step["action"] == "delete":
        result["kept"].append({"entity": entity, "target_id": target_id,
                               "reason": "deleted by mirror mode; the API cannot restore it"})
        return
    if entity == "field" and step["action"] == "create":
        owner = str(step.get("after", {}).get("owner") or step.get("after", {}).get("entity") or "")
        users = wh.conn.execute("SELECT COUNT(*) FROM id_map WHERE target = ? AND run_id != ? AND entity IN (?, ?)",
                                (step["target"], step.get("run_id", -1), owner, "lead" if owner == "deal" else owner)
                                ).fetchone()[0]
        if users:
            result["kept"].append({"entity": "field", "target_id": target_id, "reason": f"{users} record(s) written "
                                   "by other runs use this field; deleting it would drop their values"})
            return
    current = None
    if entity not in ("note", "field"):
        if target_id is None and step.get("key"):
            target_id = _find_by_key(wh.conn, stored, entity, step["key"])
            if target_id is None:
                return  # the interrupted create never happened
        current = stored.get(entity, target_id) if target_id else None
        if current is not None and _removed(wh.conn, stored, entity, target_id):
            current = None  # get() also returns records the refresh found deleted
        if current is None or getattr(getattr(current, "status", None), "value", None) == "deleted":
            if step["action"] == "create":
                with wh.transaction():
                    ledger.unmap(step["target"], entity, target_id or "")
            return
        moved = stamp(getattr(current, "update_time", None) or (current.raw or {}).get("update_time"))
        base = step["target_update_time"]
        if step["action"] == "create" and step.get("origin_id") is not None:
            row = wh.conn.execute("SELECT target_update_time FROM id_map WHERE target = ? AND entity = ? AND "
                                  "target_id = ?", (step["target"], entity, target_id)).fetchone()
            base = (row[0] if row else None) or base  # crmsync's own later writes are not someone else's change
        if base and moved and moved != stamp(base) and not force:
            result["refused"].append({"entity": entity, "target_id": target_id, "action": step["action"],
                                      "reason": f"changed in the target at {moved} after the run "
                                                f"wrote it at {stamp(base)} (use --force)"})
            return
    if target_id is None:
        return
    try:
        if step["action"] == "create":
            try:
                target.delete(entity, target_id)
            except RecordNotFound:
                result.setdefault("already_gone", 0)
                result["already_gone"] += 1
            with wh.transaction():
                ledger.unmap(step["target"], entity, target_id)
                ledger.log(rb_run, step["target"], entity, step["origin"], step["origin_id"], target_id,
                           "rollback-delete", step.get("after"), None, "done")
            result["deleted"] += 1
        else:
            before = step["before"] or {}
            written = target.update(entity, target_id, before)
            with wh.transaction():
                ledger.log(rb_run, step["target"], entity, step["origin"], step["origin_id"], target_id,
                           "rollback-update", step.get("after"), before, "done", update_time=written.update_time)
                ledger.touch(step["target"], entity, step["origin"], step["origin_id"], written.update_time)
            result["restored"] += 1
    except (WriteRejected, WriteOutcomeUnknown) as exc:
        result["failed"].append({"entity": entity, "target_id": target_id, "reason": str(exc)})


def _removed(conn, stored: StoredRecords, entity: str, target_id: str) -> bool:
    from crmsync.model import TABLES

    row = conn.execute(f'SELECT removed_run FROM "{TABLES[entity]}" WHERE source = ? AND source_id = ?',
                       (stored.source, target_id)).fetchone()
    return row is not None and row[0] is not None


def _find_by_key(conn, stored: StoredRecords, entity: str, key: str) -> str | None:
    """The target record carrying ``key`` in its crmsync key custom field (only for interrupted creates)."""
    from crmsync.model import TABLES

    row = conn.execute(f'SELECT source_id FROM "{TABLES[entity]}" WHERE source = ? AND removed_run IS NULL AND '
                       "json_extract(custom, '$.\"crmsync key\"') = ?", (stored.source, key)).fetchone()
    return row[0] if row else None


def _json(value: Any) -> str:
    from crmsync.warehouse import to_json

    return to_json(value)
