"""Unit-test helpers for the push engine: an in-memory CRM as a :class:`Target`, warehouse writers.

``FakeTarget`` keeps what it was asked to write (``calls``) and the records it holds; ``refresh``
writes those records into the warehouse as the target source, as a real incremental read would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crmsync.errors import WriteOutcomeUnknown, WriteRejected
from crmsync.model import ENTITIES, ContactPoint, Record
from crmsync.push.apply import Executor
from crmsync.push.ledger import Ledger
from crmsync.push.plan import ORDER, Item, Planner, PushSettings
from crmsync.push.target import Target, Written
from crmsync.warehouse import Warehouse

ORIGIN, TARGET = "a", "b"


class FakeTarget(Target):
    """A CRM in memory. ``reject[(entity, field)] = message`` refuses writes carrying that field;
    ``unknown_after_create`` makes creates answer like a timeout although the record was made."""

    entities = ORDER

    def __init__(self, keyed: tuple[str, ...] = ()):
        self.calls: list[tuple[str, str, Any]] = []
        self.records: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in (*ORDER, "note")}
        self._keyed = set(keyed)
        self._ids = 100
        self._clock = 0
        self.reject: dict[tuple[str, str], str] = {}
        self.unknown_after_create = False

    def now(self) -> str:
        self._clock += 1
        return f"2026-11-24T03:{self._clock // 60:02d}:{self._clock % 60:02d}Z"

    def cost(self, entity: str, action: str) -> tuple[int, int]:
        return 1, {"create": 5, "update": 5, "delete": 3}[action]

    def _check(self, entity: str, values: dict[str, Any]) -> None:
        for name in values:
            if (entity, name) in self.reject:
                message = self.reject[(entity, name)]
                raise WriteRejected(f"HTTP 400: {message}", 400, message)

    def create(self, entity: str, values: dict[str, Any]) -> Written:
        self.calls.append(("create", entity, dict(values)))
        self._check(entity, values)
        self._ids += 1
        tid = str(self._ids)
        stamp = self.now()
        self.records[entity][tid] = {**values, "update_time": stamp}
        if self.unknown_after_create:
            raise WriteOutcomeUnknown("POST: HTTP 502 after the body was sent")
        return Written(tid, stamp)

    def update(self, entity: str, target_id: str, values: dict[str, Any]) -> Written:
        self.calls.append(("update", entity, (target_id, dict(values))))
        self._check(entity, values)
        self._exists(entity, target_id)
        stamp = self.now()
        self.records[entity][target_id].update(values, update_time=stamp)
        return Written(target_id, stamp)

    def delete(self, entity: str, target_id: str) -> None:
        self.calls.append(("delete", entity, target_id))
        self._exists(entity, target_id)
        del self.records[entity][target_id]

    def _exists(self, entity: str, target_id: str) -> None:
        if target_id not in self.records[entity]:
            raise WriteRejected(f"HTTP 404: {entity} not found", 404, f"{entity} not found")

    def find_notes(self, deal_target_id: str) -> list[dict[str, Any]]:
        return [{"id": nid, "content": n.get("content")} for nid, n in self.records["note"].items()
                if str(n.get("deal_id")) == str(deal_target_id)]

    def keyed(self, entity: str) -> bool:
        return entity in self._keyed

    def edit(self, entity: str, target_id: str, **values: Any) -> None:
        """Someone changes the record in the CRM (not through crmsync)."""
        self.records[entity][target_id].update(values, update_time=self.now())


def point(value: str, *, primary: bool = True, label: str | None = None, normalized: str | None = None
          ) -> ContactPoint:
    return ContactPoint(raw=value, normalized=normalized, label=label, primary=primary)


def to_record(entity: str, source: str, source_id: str, values: dict[str, Any]) -> Record:
    """Canonical flattened values (as a Target receives them) -> a stored record of ``source``."""
    cls = ENTITIES[entity]
    data: dict[str, Any] = {"source": source, "source_id": source_id, "custom": {}, "raw": {}}
    for name, value in values.items():
        if name.startswith("custom."):
            data["custom"][name[7:]] = value
        elif name in ("emails", "phones"):
            data[name] = [point(p["value"], primary=p.get("primary", False), label=p.get("label"),
                                normalized=p["value"].lower()) for p in value or ()]
        elif name == "update_time" and "update_time" not in cls.model_fields:
            data["raw"]["update_time"] = value
        elif name in cls.model_fields:
            data[name] = value
    return cls.model_validate(data)


def open_wh(tmp_path: Path) -> Warehouse:
    return Warehouse.open(tmp_path / "wh.db")


def write(wh: Warehouse, entity: str, records: list[Record], *, snapshot: bool = False, run_id: int | None = None
          ) -> int:
    """Write records as one sync run (``snapshot`` marks the source's others of ``entity`` removed)."""
    run_id = run_id or wh.start_run("sync", sources=sorted({r.source for r in records}))
    with wh.transaction():
        wh.write_records(run_id, entity, records)
        if snapshot:
            for source in {r.source for r in records}:
                wh.mark_removed(run_id, source, entity)
    return run_id


def refresh(wh: Warehouse, fake: FakeTarget, source: str = TARGET) -> None:
    """Write the fake CRM's records into the warehouse as ``source`` (a full read, removals marked)."""
    run_id = wh.start_run("sync", sources=[source])
    with wh.transaction():
        for entity in ORDER:  # notes are not read back (the CRM copy has no notes table)
            records = [to_record(entity, source, tid, values) for tid, values in fake.records[entity].items()]
            if records:
                wh.write_records(run_id, entity, records)
            wh.mark_removed(run_id, source, entity)


def plan(wh: Warehouse, settings: PushSettings, entity: str, **kwargs: Any) -> list[Item]:
    return Planner(wh.conn, settings, Ledger(wh.conn), **kwargs).plan(entity)


def push(wh: Warehouse, fake: FakeTarget, settings: PushSettings, entities: tuple[str, ...] = ORDER,
         **kwargs: Any) -> tuple[int, dict[str, list[Item]], Executor]:
    """Plan and apply ``entities`` in order as one push run; returns (run id, items per entity, executor)."""
    ledger = Ledger(wh.conn)
    run_id = wh.start_run("push", sources=[settings.origin, settings.target])
    planner = Planner(wh.conn, settings, ledger, **kwargs)
    executor = Executor(wh, ledger, fake, settings, run_id)
    done = {}
    for entity in entities:
        done[entity] = planner.plan(entity)
        executor.apply(done[entity])
    wh.finish_run(run_id, "succeeded")
    return run_id, done, executor


def actions(items: list[Item]) -> dict[str, str]:
    return {i.origin_id: i.action for i in items}
