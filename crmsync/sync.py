"""The sync runner: stream every configured source into the warehouse in batches.

Why it looks like this: a scheduled job must be safe to kill and cheap to
repeat. Items from a source are buffered and written one batch per
transaction; cursors and removals are committed in the same transaction as
the data they depend on; every input row is counted as loaded (inserted,
updated, unchanged) or quarantined, so ``read == loaded + quarantined`` holds
per entity and is stored in ``run_counts``.

Example::

    >>> summary = run_sync(load_config("config.example.toml"))    # doctest: +SKIP
    >>> summary.totals()["read"]                                   # doctest: +SKIP
    42
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import json
import marshal
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from crmsync.config import Config
from crmsync.errors import ConfigError, CrmsyncError
from crmsync.source import (
    Checkpoint,
    EntityComplete,
    Notice,
    PreparedRows,
    Source,
    SourceContext,
    load_connector,
)
from crmsync.view import StoredRecords
from crmsync.warehouse import QuarantineRow, Warehouse, finish_row, raw_json, utcnow

COUNT_NAMES = ("read", "inserted", "updated", "unchanged", "quarantined", "removed")
#: ``CRMSYNC_PARALLEL=0`` reads every source in the writing process (see :func:`run_sync`).
PARALLEL_ENV = "CRMSYNC_PARALLEL"

#: progress(label, rows_read_so_far) is called after every committed batch.
ProgressCallback = Callable[[str, int], None]


@dataclass
class EntityCounts:
    source: str
    entity: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    removed: int = 0


@dataclass
class SourceOutcome:
    name: str
    type: str
    status: str = "ok"
    error: str | None = None
    exit_code: int = 0
    notices: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunSummary:
    """What a run did; the CLI prints it as a table or as JSON (``to_dict``)."""

    run_id: int
    status: str
    started_at: str
    seconds: float
    warehouse: str
    entities: list[EntityCounts]
    sources: list[SourceOutcome]
    #: The reconciliation that followed the sync (``run_sync(..., reconcile=True)``), as a dict.
    reconcile: dict[str, Any] | None = None

    def totals(self) -> dict[str, int]:
        return {name: sum(getattr(e, name) for e in self.entities) for name in COUNT_NAMES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "warehouse": self.warehouse,
            "totals": self.totals(),
            "entities": [asdict(e) for e in self.entities],
            "sources": [asdict(s) for s in self.sources],
            "reconcile": self.reconcile,
        }


class _Batcher:
    """Buffers one source's items and commits them a batch per transaction.

    Records are buffered as the ``(params, origin)`` rows the warehouse writes
    (:meth:`TableSpec.params`), so rows prepared by a reader process (see :func:`_drain_parallel`)
    and records read here take the same path and make the same batches.
    """

    def __init__(self, wh: Warehouse, run_id: int, source: str, batch_size: int,
                 counts: dict[str, EntityCounts], progress: ProgressCallback | None):
        self.wh, self.run_id, self.source, self.batch_size = wh, run_id, source, batch_size
        self.counts = counts
        self.progress = progress
        self.rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.bad: list[QuarantineRow] = []
        self.pending = 0
        self.read_total = 0

    def _entity(self, entity: str) -> EntityCounts:
        if entity not in self.counts:
            self.counts[entity] = EntityCounts(self.source, entity)
        return self.counts[entity]

    def add_prepared(self, entity: str, rows: list[tuple[Any, ...]],
                     raw_columns: tuple[str, ...] | None = None) -> None:
        """Rows of :meth:`TableSpec.params` (or unfinished ones, see :class:`PreparedRows`) plus
        origin, in read order; flushes every ``batch_size`` rows however they arrive."""
        # Unfinished rows are finished now, raw as bare cells while their headers are known.
        raw_of = _raw_json(raw_columns) if raw_columns is not None else None
        rows = [finish_row(row, raw_of) for row in rows]
        start, n = 0, len(rows)
        while start < n:
            take = min(n - start, self.batch_size - self.pending)
            self.rows[entity].extend(rows[start : start + take] if take < n else rows)
            self.pending += take
            start += take
            if self.pending >= self.batch_size:
                self.flush()

    def add_quarantine(self, row: QuarantineRow) -> None:
        self.bad.append(row)
        self.pending += 1
        if self.pending >= self.batch_size:
            self.flush()

    def flush(self, checkpoint: Checkpoint | None = None, complete: str | None = None) -> None:
        """Commit everything buffered, then the checkpoint or removal, in one transaction."""
        delta: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNT_NAMES, 0))
        with self.wh.transaction():
            bad = list(self.bad)
            for entity, rows in self.rows.items():
                result = self.wh.write_prepared(self.run_id, entity, rows)
                d = delta[entity]
                d["read"] += len(rows)
                d["inserted"] += result.inserted
                d["updated"] += result.updated
                d["unchanged"] += result.unchanged
                for (params, origin), reason in result.duplicates:
                    source_id = params[1]
                    raw = params[-1]  # the raw column, as JSON text
                    bad.append(QuarantineRow(
                        source=self.source, entity=entity, reason=f"{reason} ({source_id})",
                        column=None, value=source_id, raw=json.loads(raw) if isinstance(raw, str) else None,
                        **_origin_fields(origin),
                    ))
                    d["read"] -= 1  # counted again below as a quarantined row
            for row in bad:
                delta[row.entity]["read"] += 1
                delta[row.entity]["quarantined"] += 1
            self.wh.quarantine(self.run_id, bad)
            if checkpoint is not None:
                self.wh.set_cursor(self.run_id, self.source, checkpoint.stream, checkpoint.value)
            if complete is not None:
                done, now = self._entity(complete), delta[complete]
                seen = sum(getattr(done, n) + now[n] for n in ("inserted", "updated", "unchanged"))
                now["removed"] += self.wh.mark_removed(self.run_id, self.source, complete, seen=seen)
                self.wh.clear_old_quarantine(self.run_id, self.source, [complete])
            for entity, d in delta.items():
                self.wh.add_counts(self.run_id, self.source, entity, **d)
        # Only after COMMIT: the in-memory summary mirrors what is durable.
        for entity, d in delta.items():
            counts = self._entity(entity)
            for name, value in d.items():
                setattr(counts, name, getattr(counts, name) + value)
            self.read_total += d["read"]
        self.rows.clear()
        self.bad.clear()
        self.pending = 0
        if self.progress:
            self.progress(self.source, self.read_total)


def _origin_fields(origin: dict[str, Any] | tuple[str, str | None, int] | None) -> dict[str, Any]:
    """A row's origin (see :class:`PreparedRows`) as QuarantineRow fields."""
    if type(origin) is tuple:
        return dict(zip(("file", "sheet", "line"), origin, strict=True))
    return origin or {}


def run_sync(
    config: Config,
    *,
    only: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    command: str = "sync",
    reconcile: bool = False,
    parallel: bool | None = None,
) -> RunSummary:
    """Read every enabled source (or those named in ``only``) into the warehouse.

    Errors of one source are recorded and the others still run; the summary's
    ``status`` is ``failed`` if any source failed. A ``KeyboardInterrupt``
    marks the run ``interrupted`` and propagates. ``reconcile=True`` rebuilds the
    reconciliation tables afterwards (as its own run) when every source succeeded.

    ``parallel`` (default: on unless ``CRMSYNC_PARALLEL=0``, and only where ``fork`` exists) reads
    sources whose connector sets ``parallel_safe = True`` in a second process that also prepares
    each record's SQL row, while this process only writes (see :func:`_drain_parallel`).
    Results are identical either way; only the wall time differs.
    """
    if parallel is None:
        parallel = os.environ.get(PARALLEL_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    parallel = parallel and _CAN_FORK
    names = list(only) if only else [n for n, s in config.sources.items() if s.enabled]
    unknown = [n for n in names if n not in config.sources]
    if unknown:
        known = ", ".join(config.sources) or "none"
        raise ConfigError(f"unknown source {', '.join(unknown)} (configured: {known})")
    if not names:
        raise ConfigError("no sources to sync: add a [sources.<name>] table to the config")
    # Validate every source's options before touching the warehouse.
    connectors: list[tuple[str, type[Source]]] = [
        (n, load_connector(config.sources[n].type, f"sources.{n}")) for n in names
    ]
    started, t0 = utcnow(), time.perf_counter()
    with Warehouse.open(config.warehouse.path) as wh, _fewer_collections():
        run_id = wh.start_run(command, config_path=str(config.path) if config.path else None, sources=names)
        all_counts: list[EntityCounts] = []
        outcomes: list[SourceOutcome] = []
        status = "succeeded"
        try:
            for name, cls in connectors:
                source_cfg = config.sources[name]
                outcome = SourceOutcome(name=name, type=source_cfg.type)
                outcomes.append(outcome)
                counts: dict[str, EntityCounts] = {}
                try:
                    cursors = {stream: v for (_, stream), v in wh.cursors(name).items()}
                    context = SourceContext(config=config, base_dir=config.base_dir, cursors=cursors,
                                            stored=StoredRecords(wh.conn, name))
                    source = cls.from_config(source_cfg, context)
                    batcher = _Batcher(wh, run_id, name, config.warehouse.batch_size, counts, progress)
                    if parallel and getattr(source, "parallel_safe", False):
                        _drain_parallel(source, batcher, outcome, wh)
                    else:
                        _drain(source, batcher, outcome)
                except CrmsyncError as exc:
                    outcome.status, outcome.error, outcome.exit_code = "failed", str(exc), exc.exit_code
                    status = "failed"
                all_counts.extend(counts.values())
        except BaseException as exc:
            final = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            wh.finish_run(run_id, final, error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        summary = RunSummary(
            run_id=run_id, status=status, started_at=started, seconds=time.perf_counter() - t0,
            warehouse=str(config.warehouse.path), entities=all_counts, sources=outcomes,
        )
        errors = "; ".join(f"{o.name}: {o.error}" for o in outcomes if o.error) or None
        wh.finish_run(run_id, status, summary=summary.to_dict(), error=errors)
    if reconcile and status == "succeeded":
        from crmsync.reconcile import run_reconcile  # reconcile builds on sync, not the other way round

        summary.reconcile = run_reconcile(config).to_dict()
    return summary


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector rarely while syncing, then as before.

    Why: a sync allocates several short-lived tuples, strings and dicts per row and none of them
    form cycles, but with the default thresholds the collector runs every few dozen rows and now
    and then scans the whole heap: measured, 5-7% of a one-process spreadsheet sync's CPU.
    Reference counting still frees everything at once; only cycles wait a little longer.
    """
    before = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def estimate_sync(config: Config, *, only: Sequence[str] | None = None) -> dict[str, dict[str, Any] | None]:
    """Per source, the requests and tokens its next run would spend (``None``: it costs nothing).

    Reads the warehouse (if there is one yet) for cursors and stored counts; spends no request
    and writes nothing.
    """
    names = list(only) if only else [n for n, s in config.sources.items() if s.enabled]
    unknown = [n for n in names if n not in config.sources]
    if unknown:
        raise ConfigError(f"unknown source {', '.join(unknown)} (configured: {', '.join(config.sources) or 'none'})")
    wh = Warehouse.open(config.warehouse.path, write=False) if config.warehouse.path.exists() else None
    try:
        plans: dict[str, dict[str, Any] | None] = {}
        for name in names:
            cls = load_connector(config.sources[name].type, f"sources.{name}")
            cursors = {stream: v for (_, stream), v in wh.cursors(name).items()} if wh else {}
            context = SourceContext(config=config, base_dir=config.base_dir, cursors=cursors,
                                    stored=StoredRecords(wh.conn, name) if wh else None)
            plans[name] = cls.estimate(config.sources[name], context)
        return plans
    finally:
        if wh is not None:
            wh.close()


def _drain(source: Source, batcher: _Batcher, outcome: SourceOutcome) -> None:
    notices: dict[tuple[str, str], Notice] = {}
    for item in source.read_prepared():
        if type(item) is PreparedRows:
            batcher.add_prepared(item.entity, item.rows, item.raw_columns)
        else:
            _take(source, item, batcher, notices)
    batcher.flush()
    outcome.notices = [asdict(n) for n in notices.values()]


def _take(source: Source, item: Any, batcher: _Batcher, notices: dict[tuple[str, str], Notice]) -> None:
    """Everything a source yields except records."""
    if isinstance(item, QuarantineRow):
        batcher.add_quarantine(item)
    elif isinstance(item, Checkpoint):
        batcher.flush(checkpoint=item)
    elif isinstance(item, EntityComplete):
        batcher.flush(complete=item.entity)
    elif isinstance(item, Notice):
        key = (item.kind, item.message)
        if key in notices:
            notices[key].count += item.count
        else:
            notices[key] = Notice(item.kind, item.message, item.count)
    else:  # pragma: no cover - a connector bug, not user input
        raise TypeError(f"source {source.name!r} yielded {type(item).__name__}, not a crmsync item")


# -- reading in a second process ---------------------------------------------------------------
#
# Why: a spreadsheet ingest is CPU-bound Python (parse, convert, build SQL rows, JSON) plus SQLite
# writes, and one process only uses one core. A forked reader process runs ``source.read_prepared()``,
# whose records arrive as ``(params, origin)`` rows (PreparedRows: the JSON of their custom and raw
# columns is written by whichever side has time, see WorkShare); this process receives those rows
# and the other items in read order and writes them exactly as :func:`_drain` does (same batches,
# same transactions, same counts). Only this process ever opens the warehouse for writing. The pipe
# is the bounded queue: the reader blocks once a message or two is unread, so memory stays flat.
# A reader that raises a crmsync error fails the source with that error, as if it had been read
# here; a reader that dies or hits a bug fails it with :class:`ReaderCrashed` (one line); Ctrl-C
# stops both (the reader ignores SIGINT and is terminated by its parent).

_CAN_FORK = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
_ROWS, _ITEM, _END, _ERROR, _CRASH = range(5)


class ReaderCrashed(CrmsyncError):
    """The process reading a source died or failed unexpectedly; what was committed before stays."""

    exit_code = 1


def _drain_parallel(source: Source, batcher: _Batcher, outcome: SourceOutcome, wh: Warehouse) -> None:
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    # A thread moves messages from the pipe into a queue that holds a batch and a bit: while this
    # thread commits a batch, the reader keeps going instead of waiting on a full 64 KiB pipe
    # (measured: without it the two processes mostly took turns).
    inbox_size = batcher.batch_size // source.prepared_rows + 2
    inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=inbox_size)
    # Messages this process has taken, in memory both processes share: the reader's measure of the
    # writer's backlog (see WorkShare).
    taken = ctx.RawValue("q", 0)
    proc = ctx.Process(target=_read_in_child, args=(source, sender, receiver, wh, taken, inbox_size // 2),
                       name=f"crmsync-read-{source.name}", daemon=True)
    _widen_pipe(receiver)
    proc.start()
    sender.close()
    pump = threading.Thread(target=_pump, args=(receiver, inbox), name=f"crmsync-inbox-{source.name}", daemon=True)
    pump.start()
    notices: dict[tuple[str, str], Notice] = {}
    loads, get = marshal.loads, inbox.get
    try:
        while True:
            data = get()
            taken.value += 1
            if data is None:  # the pipe closed before the reader said it was done
                proc.join(timeout=5)
                code = proc.exitcode
                how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
                raise ReaderCrashed(
                    f"the process reading this source {how} before it finished; every batch committed before "
                    "stays, re-run to resume (CRMSYNC_PARALLEL=0 reads in one process)"
                )
            message = loads(data)
            kind = message[0]
            if kind == _ROWS:
                batcher.add_prepared(message[1], message[2], message[3])
            elif kind == _ITEM:
                _take(source, pickle.loads(message[1]), batcher, notices)
            elif kind == _END:
                break
            elif kind == _ERROR:
                raise pickle.loads(message[1])
            else:
                crashed = ReaderCrashed(
                    f"reading failed unexpectedly ({message[1]}); every batch committed before stays "
                    "(a bug: please report it; CRMSYNC_PARALLEL=0 crmsync sync --debug shows the traceback)"
                )
                crashed.add_note(message[2])  # the reader's traceback, shown by --debug
                raise crashed
    finally:
        if proc.is_alive():
            proc.terminate()  # our own child, by handle; a no-op once it has sent _END and exited
        proc.join()
        # The pump ends at the pipe's EOF; make room in case it is waiting to queue a message.
        while pump.is_alive():
            with contextlib.suppress(queue.Empty):
                inbox.get(timeout=0.05)
        receiver.close()
    batcher.flush()
    outcome.notices = [asdict(n) for n in notices.values()]


def _widen_pipe(receiver: Any) -> None:
    """Let the pipe hold a whole message (Linux: up to 1 MiB unprivileged). With the default 64 KiB
    the reader waits while the pump thread, which needs the GIL for every 64 KiB read, catches up:
    measured, the two processes then mostly took turns instead of overlapping."""
    with contextlib.suppress(OSError):  # a smaller limit: slower, still correct
        fcntl.fcntl(receiver.fileno(), _F_SETPIPE_SZ, 1 << 20)


_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _pump(receiver: Any, inbox: queue.Queue[bytes | None]) -> None:
    """Pipe -> queue until EOF, then ``None``. Blocks when the queue is full (that is the bound)."""
    try:
        while True:
            inbox.put(receiver.recv_bytes())
    except (EOFError, OSError):
        inbox.put(None)


def _read_in_child(source: Source, sender: Any, receiver: Any, wh: Warehouse, taken: Any, backlog: int) -> None:
    """The reader process: ``source.read()`` as messages; never touches the warehouse."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # The parent's end of the pipe, inherited by fork: closed, so that if the parent dies the next
    # send fails (EPIPE) and this process ends instead of waiting forever on a full pipe.
    receiver.close()
    if wh._lock_fd is not None:
        # Not the lock itself (flock is released only when every copy is closed): if the parent is
        # killed, this process must not keep the next run out.
        os.close(wh._lock_fd)
    # Nothing allocated here lives long or forms cycles; scanning the inherited heap would cost more.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    send, dumps = sender.send_bytes, marshal.dumps
    share = WorkShare(taken, backlog)
    try:
        try:
            for item in source.read_prepared():
                if type(item) is PreparedRows:
                    send(_rows_message(item, finish=share.rows(len(item.rows))))
                else:
                    send(dumps((_ITEM, pickle.dumps(item))))
                share.sent()
            send(dumps((_END,)))
        except CrmsyncError as exc:
            send(dumps((_ERROR, _portable(exc))))
        except (BrokenPipeError, ConnectionResetError):
            raise
        except BaseException as exc:  # a bug: the parent reports it in one line (traceback with --debug)
            send(dumps((_CRASH, f"{type(exc).__name__}: {exc}"[:500], traceback.format_exc())))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone or stopped listening: nothing left to do
    finally:
        sender.close()


def _rows_message(item: PreparedRows, finish: int = 0) -> bytes:
    """The rows as a message, the first ``finish`` of them finished here (their JSON written)."""
    rows, n = item.rows, len(item.rows)
    if finish:
        raw_of = _raw_json(item.raw_columns) if item.raw_columns is not None else None
        rows = [finish_row(row, raw_of) for row in rows[:finish]] + rows[finish:]
    try:
        # Rows all finished need nothing of their headers on the writer's side.
        return marshal.dumps((_ROWS, item.entity, rows, item.raw_columns if finish < n else None))
    except ValueError:  # a raw cell marshal cannot carry (a typed XLSX value): finish the rows here
        if finish >= n:
            raise
        return _rows_message(item, finish=n)


class WorkShare:
    """Which share of each message's rows the reader process finishes (writes the JSON of) itself.

    Why: that work (about a sixth of a deals row's CPU) can be done on either side, and which side
    is the slower one depends on the file, the mapping and the machine. After each message the
    reader compares how many messages it has sent with how many the writer has taken (``taken``,
    a counter in shared memory): more than ``backlog`` waiting means the writer is behind, so the
    reader takes a larger share of the work; fewer, a smaller one. The share settles where the two
    processes go at the same pace.

    >>> share = WorkShare(taken=type("Counter", (), {"value": 0})(), backlog=1)
    >>> share.sent(); share.rows(1000)   # one message waiting: not behind yet
    400
    >>> share.sent(); share.rows(1000)   # two: behind
    500
    """

    #: How much the share moves per message.
    STEP = 0.1

    def __init__(self, taken: Any, backlog: int, start: float = 0.5) -> None:
        self.taken, self.backlog, self.share, self.count = taken, backlog, start, 0

    def rows(self, n: int) -> int:
        return round(self.share * n)

    def sent(self) -> None:
        self.count += 1
        if self.count - self.taken.value > self.backlog:
            self.share = min(1.0, self.share + self.STEP)
        else:
            self.share = max(0.0, self.share - self.STEP)


@functools.lru_cache(maxsize=16)
def _raw_json(headers: tuple[str, ...]) -> Callable[[Any], str]:
    """One :func:`raw_json` encoder per file's headers (a message of rows each)."""
    return raw_json(headers)


def _portable(exc: CrmsyncError) -> bytes:
    """The error pickled so the parent raises the same class and message (or a plain CrmsyncError)."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:
        clone = CrmsyncError(str(exc))
        clone.exit_code = exc.exit_code
        return pickle.dumps(clone)
