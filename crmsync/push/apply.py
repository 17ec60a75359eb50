"""Carrying out a plan: one request per changed record, each bracketed by ledger commits.

Why this shape: a push must be safe to kill and to repeat. Before a create, an intent is
committed; before an update or delete, the pre-image. After the answer, the outcome (ID map,
target ``update_time``) is committed. A run killed between the two finds, on the next run, a
pending intent and looks the record up by its crmsync key in the refreshed target copy before
creating anything — so re-runs never duplicate, and rollback always knows what to restore.

Example::

    >>> executor = Executor(wh, ledger, target_api, settings, run_id)   # doctest: +SKIP
    >>> executor.apply(items)                                            # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from crmsync.errors import RecordNotFound, WriteOutcomeUnknown, WriteRejected
from crmsync.warehouse import Warehouse

from .ledger import Ledger
from .plan import Item, PushSettings, Ref, plain
from .target import Target


class Executor:
    """Applies :class:`Item` lists in order; counts outcomes; stops on errors that are not per-record."""

    def __init__(self, wh: Warehouse, ledger: Ledger, target: Target, settings: PushSettings, run_id: int,
                 progress: Callable[[str, int], None] | None = None):
        self.wh, self.ledger, self.target, self.s, self.run_id = wh, ledger, target, settings, run_id
        self.progress = progress
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.notices: Counter[str] = Counter()
        self.problems: list[dict[str, Any]] = []
        #: (item, field, ref) whose record was not in the target yet when the item was written
        self.deferred: list[tuple[Item, str, Ref]] = []

    def apply(self, items: list[Item]) -> None:
        quiet: list[Item] = []
        for n, item in enumerate(items, 1):
            if item.action in ("create", "update", "delete"):
                self._bookkeep(quiet)
                getattr(self, "_" + item.action)(item)
            else:
                quiet.append(item)
                if len(quiet) >= 500:
                    self._bookkeep(quiet)
            if self.progress and n % 50 == 0:
                self.progress(item.entity, n)
        self._bookkeep(quiet)

    # -- actions -------------------------------------------------------------------------------
    def _bookkeep(self, quiet: list[Item]) -> None:
        """Skips and conflicts send nothing; newly matched or recovered records join the ID map (one commit)."""
        if not quiet:
            return
        with self.wh.transaction():
            for item in quiet:
                if item.action == "conflict":
                    self.ledger.log(self.run_id, self.s.target, item.entity, self.s.origin, item.origin_id,
                                    item.target_id, "update", None, plain(item.values), "conflict", item.reason)
                    self.problems.append({"entity": item.entity, "origin_id": item.origin_id,
                                          "target_id": item.target_id, "status": "conflict", "reason": item.reason,
                                          "changes": item.changes})
                if item.target_id and not self.s.same:
                    # a conflict keeps its base: adopting the target's new time would drop the conflict next run
                    self._adopt(item, item.base if item.action == "conflict" else item.seen)
        for item in quiet:
            self.outcomes[(item.entity, item.action)] += 1
        quiet.clear()

    def _adopt(self, item: Item, update_time: str | None) -> None:
        if item.intent is not None and not item.owned:  # maybe the user's record: never the run's to roll back
            self.ledger.resolve_intent(item.intent["id"], "matched", item.target_id)
            self.ledger.map(self.run_id, self.s.target, item.entity, self.s.origin, item.origin_id, item.target_id,
                            "match", update_time, item.fingerprint)
        elif item.intent is not None:  # recovered: the interrupted run created it, and keeps owning it
            self.ledger.map(item.intent["run_id"], self.s.target, item.entity, self.s.origin, item.origin_id,
                            item.target_id, "create", update_time, item.fingerprint)
            self.ledger.resolve_intent(item.intent["id"], "recovered", item.target_id)
            self.notices[f"{item.entity}: recovered after an interrupted run (found by its crmsync key)"] += 1
        else:
            self.ledger.map(self.run_id, self.s.target, item.entity, self.s.origin, item.origin_id, item.target_id,
                            "match", update_time, item.fingerprint)

    def _create(self, item: Item) -> None:
        values = self._resolve(item)
        with self.wh.transaction():
            if item.intent is not None:
                self.ledger.resolve_intent(item.intent["id"], "absent")
            intent = self.ledger.intend(self.run_id, self.s.target, item.entity, self.s.origin, item.origin_id,
                                        item.key or "", item.fingerprint)
            log = self.ledger.log(self.run_id, self.s.target, item.entity, self.s.origin, item.origin_id, None,
                                  "create", None, plain(values), "pending")
        try:
            written = self.target.create(item.entity, values)
        except WriteRejected as exc:
            with self.wh.transaction():
                self.ledger.resolve_intent(intent, "rejected")
                self.ledger.finish_log(log, "rejected", error=exc.api_error)
            self._problem(item, "rejected", exc.api_error)
            return
        except WriteOutcomeUnknown as exc:
            with self.wh.transaction():
                self.ledger.finish_log(log, "unknown", error=str(exc))
            self._problem(item, "unknown", str(exc))
            return
        except BaseException:
            with self.wh.transaction():
                self.ledger.finish_log(log, "unknown", error="interrupted or failed mid-request")
            raise
        with self.wh.transaction():
            self.ledger.map(self.run_id, self.s.target, item.entity, self.s.origin, item.origin_id,
                            written.target_id, "create", written.update_time, item.fingerprint)
            self.ledger.resolve_intent(intent, "done", written.target_id)
            self.ledger.finish_log(log, "done", target_id=written.target_id, update_time=written.update_time)
        self.outcomes[(item.entity, "create")] += 1

    def _update(self, item: Item) -> None:
        values = self._resolve(item)
        if not values:
            self.outcomes[(item.entity, "skip")] += 1
            return
        before = {k: item.changes[k][0] for k in values if k in item.changes}
        with self.wh.transaction():
            log = self.ledger.log(self.run_id, self.s.target, item.entity, self.s.origin, item.origin_id,
                                  item.target_id, "update", before, plain(values), "pending",
                                  update_time=item.seen)
            if not self.s.same:
                self._adopt(item, item.seen)
        assert item.target_id is not None
        try:
            written = self.target.update(item.entity, item.target_id, values)
        except (WriteRejected, RecordNotFound) as exc:
            error = exc.api_error if isinstance(exc, WriteRejected) else "deleted in the target since it was read"
            with self.wh.transaction():
                self.ledger.finish_log(log, "rejected", error=error, update_time=item.seen)
            self._problem(item, "rejected", error)
            return
        except BaseException:
            with self.wh.transaction():
                self.ledger.finish_log(log, "unknown", error="interrupted or failed mid-request", update_time=item.seen)
            raise
        with self.wh.transaction():
            self.ledger.finish_log(log, "done", update_time=written.update_time)
            if not self.s.same:
                self.ledger.touch(self.s.target, item.entity, self.s.origin, item.origin_id, written.update_time)
        self.outcomes[(item.entity, "update")] += 1

    def _delete(self, item: Item) -> None:
        assert item.target_id is not None
        with self.wh.transaction():
            log = self.ledger.log(self.run_id, self.s.target, item.entity, self.s.origin, item.origin_id,
                                  item.target_id, "delete", plain(item.values), None, "pending", update_time=item.seen)
        try:
            self.target.delete(item.entity, item.target_id)
        except RecordNotFound:
            pass  # already gone: the goal of a delete
        except WriteRejected as exc:
            with self.wh.transaction():
                self.ledger.finish_log(log, "rejected", error=exc.api_error)
            self._problem(item, "rejected", exc.api_error)
            return
        with self.wh.transaction():
            self.ledger.finish_log(log, "done")
            self.ledger.unmap(self.s.target, item.entity, item.target_id)
        self.outcomes[(item.entity, "delete")] += 1

    # -- helpers -------------------------------------------------------------------------------
    def _resolve(self, item: Item) -> dict[str, Any]:
        """Refs -> target ids; a ref whose record is not in the target is dropped (and said)."""
        out = {}
        for name, value in item.values.items():
            if isinstance(value, Ref):
                tid = value.origin_id if self.s.same else self.ledger.target_id(
                    self.s.target, value.entity, self.s.origin, value.origin_id)
                if tid is None:
                    self.deferred.append((item, name, value))
                    continue
                value = tid
            out[name] = value
        return out

    def finish_deferred(self) -> None:
        """Set references whose record was created later in the run (an organization's contact person).

        One PATCH per such record, after everything else; references still unresolvable are said.
        """
        pending: dict[tuple[str, str], tuple[Item, dict[str, Any]]] = {}
        for item, name, ref in self.deferred:
            tid = self.ledger.target_id(self.s.target, ref.entity, self.s.origin, ref.origin_id)
            target_id = item.target_id or self.ledger.target_id(self.s.target, item.entity, self.s.origin,
                                                                item.origin_id)
            if tid is None or target_id is None:
                self.notices[f"{item.entity}.{name}: the {ref.entity} it points to is not in the target "
                             "(not migrated, rejected or out of the sample); left empty"] += 1
                continue
            entry = pending.setdefault((item.entity, item.origin_id), (item, {}))
            entry[1][name] = (target_id, tid)
        self.deferred.clear()
        for (entity, origin_id), (_, fields) in pending.items():
            target_id = next(iter(fields.values()))[0]
            later = Item(entity, origin_id, "update", target_id=target_id,
                         values={name: tid for name, (_, tid) in fields.items()},
                         changes={name: [None, tid] for name, (_, tid) in fields.items()}, reason="deferred reference")
            self._update(later)

    def _problem(self, item: Item, status: str, error: str) -> None:
        self.outcomes[(item.entity, status)] += 1
        self.problems.append({"entity": item.entity, "origin_id": item.origin_id, "target_id": item.target_id,
                              "status": status, "reason": error})
