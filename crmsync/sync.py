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

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from crmsync.config import Config
from crmsync.errors import ConfigError, CrmsyncError
from crmsync.model import Record
from crmsync.source import Checkpoint, EntityComplete, Notice, Source, SourceContext, load_connector
from crmsync.view import StoredRecords
from crmsync.warehouse import QuarantineRow, Warehouse, utcnow

COUNT_NAMES = ("read", "inserted", "updated", "unchanged", "quarantined", "removed")

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
    """Buffers one source's items and commits them a batch per transaction."""

    def __init__(self, wh: Warehouse, run_id: int, source: str, batch_size: int,
                 counts: dict[str, EntityCounts], progress: ProgressCallback | None):
        self.wh, self.run_id, self.source, self.batch_size = wh, run_id, source, batch_size
        self.counts = counts
        self.progress = progress
        self.records: dict[str, list[Record]] = defaultdict(list)
        self.bad: list[QuarantineRow] = []
        self.pending = 0
        self.read_total = 0

    def _entity(self, entity: str) -> EntityCounts:
        if entity not in self.counts:
            self.counts[entity] = EntityCounts(self.source, entity)
        return self.counts[entity]

    def add_record(self, record: Record) -> None:
        self.records[record.entity].append(record)
        self.pending += 1
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
            for entity, records in self.records.items():
                result = self.wh.write_records(self.run_id, entity, records)
                d = delta[entity]
                d["read"] += len(records)
                d["inserted"] += result.inserted
                d["updated"] += result.updated
                d["unchanged"] += result.unchanged
                for record, reason in result.duplicates:
                    origin = record.origin or {}
                    bad.append(QuarantineRow(
                        source=self.source, entity=entity, reason=f"{reason} ({record.source_id})",
                        column=None, value=record.source_id, raw=record.raw, **origin,
                    ))
                    d["read"] -= 1  # counted again below as a quarantined row
            for row in bad:
                delta[row.entity]["read"] += 1
                delta[row.entity]["quarantined"] += 1
            self.wh.quarantine(self.run_id, bad)
            if checkpoint is not None:
                self.wh.set_cursor(self.run_id, self.source, checkpoint.stream, checkpoint.value)
            if complete is not None:
                delta[complete]["removed"] += self.wh.mark_removed(self.run_id, self.source, complete)
                self.wh.clear_old_quarantine(self.run_id, self.source, [complete])
            for entity, d in delta.items():
                self.wh.add_counts(self.run_id, self.source, entity, **d)
        # Only after COMMIT: the in-memory summary mirrors what is durable.
        for entity, d in delta.items():
            counts = self._entity(entity)
            for name, value in d.items():
                setattr(counts, name, getattr(counts, name) + value)
            self.read_total += d["read"]
        self.records.clear()
        self.bad.clear()
        self.pending = 0
        if self.progress:
            self.progress(self.source, self.read_total)


def run_sync(
    config: Config,
    *,
    only: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    command: str = "sync",
    reconcile: bool = False,
) -> RunSummary:
    """Read every enabled source (or those named in ``only``) into the warehouse.

    Errors of one source are recorded and the others still run; the summary's
    ``status`` is ``failed`` if any source failed. A ``KeyboardInterrupt``
    marks the run ``interrupted`` and propagates. ``reconcile=True`` rebuilds the
    reconciliation tables afterwards (as its own run) when every source succeeded.
    """
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
    with Warehouse.open(config.warehouse.path) as wh:
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
                    _drain(source, _Batcher(wh, run_id, name, config.warehouse.batch_size, counts, progress),
                           outcome)
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
    for item in source.read():
        if isinstance(item, Record):
            batcher.add_record(item)
        elif isinstance(item, QuarantineRow):
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
    batcher.flush()
    outcome.notices = [asdict(n) for n in notices.values()]
