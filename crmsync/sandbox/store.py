"""The sandbox's state: generated base records, a SQLite filter index, and an overlay of changes.

Why this shape: base records are pure functions of ``(seed, id)`` (see
:mod:`crmsync.sandbox.generator`), so only what changed since start -- API writes and
simulated activity -- is kept in memory (``overlay``). Filters and sorting run on a
small SQLite index (one row per record: times, status, relation ids) that is built in
a background thread (rows computed by forked worker processes when the sandbox is big:
1M deals index in ~20 s on 2 cores), so a 1M-deal sandbox answers at once: until the index is ready,
deal lists sorted by id are served by scanning ids; everything else waits for it.

``Store(empty=True)`` is a freshly created company instead: users, one default pipeline, no
records and no custom fields (see :meth:`Catalog.build_empty`), for migrations into it.

Time is virtual and deterministic: it starts at ``now`` and moves one second per write
(or as far as :meth:`Store.advance` says), so the same seed and the same calls give the
same timestamps.

Example::

    >>> s = Store(seed=1, deals=50, persons=20, orgs=5, leads=10)
    >>> s.wait_ready()
    True
    >>> s.deal(3)["id"]
    3
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator

from .catalog import Catalog
from .generator import STATUS_CODES, Generator

DEFAULT_NOW = 1_790_812_800  # 2026-10-01T00:00:00Z
NEW_EVENT_IDS = 1 << 40

_SCHEMA = """
CREATE TABLE deal (id INTEGER PRIMARY KEY, update_time INT, add_time INT, status INT, pipeline_id INT,
                   stage_id INT, is_deleted INT, is_archived INT, owner_id INT, person_id INT, org_id INT);
CREATE TABLE person (id INTEGER PRIMARY KEY, update_time INT, add_time INT, is_deleted INT, owner_id INT,
                     org_id INT);
CREATE TABLE org (id INTEGER PRIMARY KEY, update_time INT, add_time INT, is_deleted INT, owner_id INT,
                  org_id INT);
CREATE TABLE lead (n INTEGER PRIMARY KEY, uuid TEXT, update_time INT, add_time INT, is_archived INT,
                   is_deleted INT, owner_id INT, person_id INT, organization_id INT);
"""
_INDEXES = """
CREATE INDEX deal_upd ON deal(update_time, id);
CREATE INDEX deal_add ON deal(add_time, id);
CREATE INDEX person_upd ON person(update_time, id);
CREATE INDEX org_upd ON org(update_time, id);
CREATE UNIQUE INDEX lead_uuid ON lead(uuid);
CREATE INDEX lead_upd ON lead(update_time, n);
"""
KINDS = ("deal", "person", "org", "lead")
CHUNK = 20000
POOL_MIN_ROWS = 150_000  # below this a process pool costs more than it saves
_POOL_GEN: Generator | None = None  # inherited by forked index workers
_POOL_LOCK = threading.Lock()  # two stores indexing at once must each fork with their own generator


def _rows_local(gen: Generator, job: tuple[str, int, int]) -> list[tuple]:
    kind, lo, hi = job
    row = getattr(gen, f"{kind}_index_row")
    return [row(i) for i in range(lo, hi + 1)]


def _rows(job: tuple[str, int, int]) -> list[tuple]:
    kind, lo, hi = job
    row = getattr(_POOL_GEN, f"{kind}_index_row")
    return [row(i) for i in range(lo, hi + 1)]


class NotFound(LookupError):
    """The record does not exist (or no longer does)."""


class Invalid(ValueError):
    """A request asked for something the API would reject with 400."""


class Store:
    """All records of one sandbox company; every public method is thread-safe."""

    def __init__(
        self,
        seed: int = 1,
        deals: int = 200,
        persons: int | None = None,
        orgs: int | None = None,
        leads: int | None = None,
        now: int = DEFAULT_NOW,
        users: int = 8,
        background: bool = False,
        empty: bool = False,
    ):
        self.seed = seed
        self.empty = empty
        self.sizes = {
            "deal": deals,
            "person": persons if persons is not None else max(20, deals // 4),
            "org": orgs if orgs is not None else max(10, deals // 10),
            "lead": leads if leads is not None else max(10, deals // 5),
        }
        if empty:  # a new company: no records, whatever sizes were asked for
            self.sizes = {k: 0 for k in KINDS}
        self.start_now = now
        self.now = now
        self.catalog = Catalog.build_empty(seed, now) if empty else Catalog.build(seed, now, users)
        self.gen = Generator(
            seed,
            now,
            self.sizes["deal"],
            self.sizes["person"],
            self.sizes["org"],
            self.sizes["lead"],
            self.catalog,
        )
        self.lock = threading.RLock()
        self.overlay: dict[str, dict] = {k: {} for k in KINDS}
        self.next_id = {k: self.sizes[k] + 1 for k in KINDS}
        self.next_event_id = NEW_EVENT_IDS
        self.journal: list[dict] = []  # every change made after start, in order (for export and tests)
        self.conversions: dict[str, dict] = {}
        self.notes: dict[int, dict] = {}  # only API-created notes: the generated company has none
        self.next_note_id = 1
        self.next_label = 0  # API-created lead labels so far
        self.sim_round = 0  # how many times simulate() ran: seeds its RNG
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.executescript(_SCHEMA)
        self.ready = threading.Event()
        self.index_error: BaseException | None = None
        if background:
            threading.Thread(target=self._build_index, name="sandbox-index", daemon=True).start()
        else:
            self._build_index()

    # -- index -----------------------------------------------------------------------------------
    def _chunks(self) -> Iterator[tuple[str, list[tuple]]]:
        """Index rows in chunks; computed by forked worker processes for big sandboxes (pure
        functions of the seed, so the workers need nothing but the generator they inherit)."""
        jobs = [
            (kind, lo, min(self.sizes[kind], lo + CHUNK - 1))
            for kind in KINDS
            for lo in range(1, self.sizes[kind] + 1, CHUNK)
        ]
        workers = min(os.cpu_count() or 1, 4)
        if (
            sum(self.sizes.values()) >= POOL_MIN_ROWS
            and workers > 1
            and "fork" in multiprocessing.get_all_start_methods()
        ):
            global _POOL_GEN
            with _POOL_LOCK:  # the workers fork here and keep the generator they saw
                _POOL_GEN = self.gen
                pool = multiprocessing.get_context("fork").Pool(workers)
            with pool:
                for job, rows in zip(jobs, pool.imap(_rows, jobs), strict=True):
                    yield job[0], rows
            return
        for job in jobs:
            yield job[0], _rows_local(self.gen, job)

    def _build_index(self) -> None:
        try:
            marks = {"deal": 11, "person": 6, "org": 6, "lead": 9}
            for kind, rows in self._chunks():
                with self.lock:  # mutations made meanwhile win: they are written with REPLACE
                    self.db.executemany(f"INSERT OR IGNORE INTO {kind} VALUES ({','.join('?' * marks[kind])})", rows)
            with self.lock:
                self.db.executescript(_INDEXES)
                self.db.commit()
        except BaseException as exc:  # surfaced by wait_ready
            self.index_error = exc
        finally:
            self.ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        ok = self.ready.wait(timeout)
        if self.index_error is not None:
            raise RuntimeError("sandbox index build failed") from self.index_error
        return ok

    def _index_row(self, kind: str, rec: dict) -> tuple:
        if kind == "deal":
            st = "deleted" if rec["is_deleted"] else rec["status"]
            return (
                rec["id"],
                rec["update_time"],
                rec["add_time"],
                STATUS_CODES[st],
                rec["pipeline_id"],
                rec["stage_id"],
                int(rec["is_deleted"]),
                int(rec["is_archived"]),
                rec["owner_id"],
                rec["person_id"],
                rec["org_id"],
            )
        if kind == "lead":
            return (
                rec["n"],
                rec["id"],
                rec["update_time"],
                rec["add_time"],
                int(rec["is_archived"]),
                int(rec["is_deleted"]),
                rec["owner_id"],
                rec["person_id"],
                rec["organization_id"],
            )
        return (
            rec["id"],
            rec["update_time"],
            rec["add_time"],
            int(rec["is_deleted"]),
            rec["owner_id"],
            rec.get("org_id"),
        )

    # -- reading ---------------------------------------------------------------------------------
    def _base(self, kind: str, ident: int) -> dict | None:
        if not 1 <= ident <= self.sizes[kind]:
            return None
        return getattr(self.gen, f"{kind}_record")(ident)

    def get(self, kind: str, ident: int) -> dict | None:
        """The current record (overlay first), or None. Callers must not mutate it."""
        with self.lock:
            rec = self.overlay[kind].get(ident)
        return rec if rec is not None else self._base(kind, ident)

    def events(self, kind: str, ident: int) -> list[dict]:
        """Field-change history of one record, oldest first (generated part plus later changes)."""
        with self.lock:
            rec = self.overlay[kind].get(ident)
            if rec is not None and "_events" in rec:
                return list(rec["_events"])
        if kind == "deal" and 1 <= ident <= self.sizes["deal"]:
            return self.gen.deal_events(ident)
        return []

    def deal(self, i: int) -> dict | None:
        return self.get("deal", i)

    def lead_n(self, uuid: str) -> int | None:
        self.wait_ready()
        with self.lock:
            row = self.db.execute("SELECT n FROM lead WHERE uuid = ?", (uuid,)).fetchone()
        return row[0] if row else None

    def lead(self, uuid: str) -> dict | None:
        n = self.lead_n(uuid)
        return None if n is None else self.get("lead", n)

    def query_ids(
        self,
        kind: str,
        where: Iterable[tuple[str, tuple]],
        order: str,
        direction: str,
        after: tuple | None,
        limit: int,
        offset: int = 0,
    ) -> list[int]:
        """Ids from the index, ``where`` as (sql, params) pairs, keyset or offset paging."""
        self.wait_ready()
        pk = "n" if kind == "lead" else "id"
        clauses, params = [], []
        for sql, ps in where:
            clauses.append(sql)
            params.extend(ps)
        op = ">" if direction == "asc" else "<"
        if after is not None:
            if order == pk:
                clauses.append(f"{pk} {op} ?")
                params.append(after[1])
            else:
                clauses.append(f"({order}, {pk}) {op} (?, ?)")
                params.extend(after)
        sql = f"SELECT {pk} FROM {kind}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        d = "ASC" if direction == "asc" else "DESC"
        sql += f" ORDER BY {order} {d}" + (f", {pk} {d}" if order != pk else "") + " LIMIT ? OFFSET ?"
        params.extend([limit, offset])
        with self.lock:
            return [r[0] for r in self.db.execute(sql, params)]

    def count(self, kind: str, where: Iterable[tuple[str, tuple]]) -> int:
        self.wait_ready()
        clauses = [w[0] for w in where]
        params = [p for w in where for p in w[1]]
        sql = f"SELECT COUNT(*) FROM {kind}" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        with self.lock:
            return self.db.execute(sql, params).fetchone()[0]

    def scan_deals(self, pred, direction: str, after_id: int | None, limit: int) -> list[dict]:
        """Id-ordered deal scan that needs no index (used while the index is still building)."""
        out: list[dict] = []
        with self.lock:
            top = self.next_id["deal"] - 1
        i = (
            (after_id + 1 if after_id is not None else 1)
            if direction == "asc"
            else (after_id - 1 if after_id is not None else top)
        )
        step = 1 if direction == "asc" else -1
        while 1 <= i <= top and len(out) < limit:
            rec = self.get("deal", i)
            if rec is not None and pred(rec):
                out.append(rec)
            i += step
        return out

    # -- writing ---------------------------------------------------------------------------------
    def tick(self, at: int | None = None) -> int:
        """Advance virtual time by one second (or to ``at``) and return it."""
        with self.lock:
            self.now = max(self.now + 1, at or 0)
            return self.now

    def advance(self, seconds: int) -> int:
        with self.lock:
            self.now += seconds
            return self.now

    def put(
        self,
        kind: str,
        rec: dict,
        changes: list[tuple] | None = None,
        user_id: int = 1,
        source: str = "api",
        at: int | None = None,
    ) -> dict:
        """Store a new version of ``rec``; ``changes`` are (field_key, old, new) for its history."""
        with self.lock:
            t = rec["update_time"] if at is None else at
            for key, old, new in changes or ():
                ev = {
                    "id": self.next_event_id,
                    "item_id": rec["id"],
                    "time": t,
                    "field_key": key,
                    "old_value": old,
                    "new_value": new,
                    "user_id": user_id,
                    "change_source": source,
                }
                self.next_event_id += 1
                rec.setdefault("_events", []).append(ev)
                self.journal.append({"entity": kind, **ev})
            ident = rec["n"] if kind == "lead" else rec["id"]
            self.overlay[kind][ident] = rec
            marks = ",".join("?" * len(self._index_row(kind, rec)))
            self.db.execute(f"INSERT OR REPLACE INTO {kind} VALUES ({marks})", self._index_row(kind, rec))
            return rec

    def editable(self, kind: str, ident: int) -> dict:
        """A private deep copy of the current record, for changing and then :meth:`put`."""
        rec = self.get(kind, ident)
        if rec is None:
            raise NotFound(kind)
        rec = copy.deepcopy(rec)
        if "_events" not in rec:
            rec["_events"] = self.events(kind, ident)
        return rec

    def log(self, entity: str, item_id, key: str, old, new, user_id: int, t: int) -> None:
        """Journal a change to something outside the four record kinds (pipelines, notes, fields)."""
        with self.lock:
            self.journal.append(
                {
                    "entity": entity,
                    "id": self.next_event_id,
                    "item_id": item_id,
                    "time": t,
                    "field_key": key,
                    "old_value": old,
                    "new_value": new,
                    "user_id": user_id,
                    "change_source": "api",
                }
            )
            self.next_event_id += 1

    def new_id(self, kind: str) -> int:
        with self.lock:
            ident = self.next_id[kind]
            self.next_id[kind] += 1
            return ident

    def all_ids(self, kind: str) -> range:
        return range(1, self.next_id[kind])
