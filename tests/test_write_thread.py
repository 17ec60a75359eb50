"""Writing batches on a writer thread (crmsync.sync._WriterThread) changes only the wall time: with it
on or off a sync leaves the same warehouse, summary and progress, also when a batch fails, and Ctrl-C
while a batch is being written still leaves a consistent warehouse and an interrupted run."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from crmsync.connectors.spreadsheet import SpreadsheetSource

from crmsync import sync as sync_module
from crmsync.config import parse_config
from crmsync.errors import InputError, WarehouseError
from crmsync.source import PreparedRows
from crmsync.sync import run_sync
from crmsync.warehouse import Warehouse
from tests.test_parallel_sync import comparable, dump, messy_exports

both_readers = pytest.mark.parametrize("parallel", [
    False,
    pytest.param(True, marks=pytest.mark.skipif(not sync_module._CAN_FORK, reason="the reader process needs fork")),
])


def sync(tmp_path: Path, name: str, monkeypatch, *, thread: bool, parallel: bool, progress=None):
    monkeypatch.setenv("CRMSYNC_WRITE_THREAD", "1" if thread else "0")
    cfg = parse_config(
        {"warehouse": {"path": str(tmp_path / f"{name}.db"), "batch_size": 7},
         "sources": {"s": {"type": "spreadsheet", "path": "in/*", "mapping": "spreadsheet", "phone_region": "ES"}}},
        path=tmp_path / "c.toml", environ={},
    )
    return run_sync(cfg, parallel=parallel, progress=progress)


@pytest.fixture
def writing_threads(monkeypatch) -> set[str]:
    """Names of the threads that ran a batch's transaction."""
    names: set[str] = set()
    real = sync_module._Batcher._write

    def write(self, batch):
        names.add(threading.current_thread().name)
        return real(self, batch)

    monkeypatch.setattr(sync_module._Batcher, "_write", write)
    return names


@both_readers
def test_writer_thread_on_and_off_leave_identical_warehouses_and_summaries(tmp_path, monkeypatch, parallel,
                                                                           writing_threads):
    messy_exports(tmp_path / "in")
    off = sync(tmp_path, "off", monkeypatch, thread=False, parallel=parallel)
    assert writing_threads == {"MainThread"}
    writing_threads.clear()
    on = sync(tmp_path, "on", monkeypatch, thread=True, parallel=parallel)
    assert writing_threads == {"crmsync-write_0"}
    assert comparable(off) == comparable(on)
    assert off.totals()["quarantined"] >= 5 and off.totals()["inserted"] > 150
    assert dump(tmp_path / "off.db") == dump(tmp_path / "on.db")

    # Edit a deal, drop an organization: updates, history and removals agree too.
    deals = tmp_path / "in" / "deals.csv"
    deals.write_text(deals.read_text(encoding="utf-8").replace("Deal 3,", "Deal three,"), encoding="utf-8")
    orgs = tmp_path / "in" / "organizations.csv"
    orgs.write_bytes(b"\n".join(line for line in orgs.read_bytes().split(b"\n") if not line.startswith(b"12;")))
    off = sync(tmp_path, "off", monkeypatch, thread=False, parallel=parallel)
    on = sync(tmp_path, "on", monkeypatch, thread=True, parallel=parallel)
    assert comparable(off) == comparable(on)
    assert off.totals()["updated"] == 1 and off.totals()["removed"] == 1
    assert dump(tmp_path / "off.db") == dump(tmp_path / "on.db")


def test_progress_reports_the_same_committed_totals_with_the_writer_thread(tmp_path, monkeypatch):
    messy_exports(tmp_path / "in")
    reported: dict[bool, list[int]] = {False: [], True: []}

    def progress_of(thread: bool):
        def progress(label: str, rows: int) -> None:
            conn = sqlite3.connect(tmp_path / f"{thread}.db")
            (committed,) = conn.execute("select coalesce(sum(read), 0) from run_counts").fetchone()
            conn.close()
            assert rows <= committed  # never ahead of what is durable
            reported[thread].append(rows)
        return progress

    for thread in (False, True):
        sync(tmp_path, str(thread), monkeypatch, thread=thread, parallel=False, progress=progress_of(thread))
    assert len(reported[True]) > 20
    assert reported[True] == reported[False]


def test_sources_that_may_read_the_warehouse_while_reading_are_written_in_the_main_thread(
        tmp_path, monkeypatch, writing_threads):
    messy_exports(tmp_path / "in")
    monkeypatch.setattr(SpreadsheetSource, "parallel_safe", False)
    sync(tmp_path, "w", monkeypatch, thread=True, parallel=True)
    assert writing_threads == {"MainThread"}


@both_readers
@pytest.mark.parametrize("error", [WarehouseError("w.db: database or disk is full"),
                                   sqlite3.OperationalError("database or disk is full")], ids=type)
def test_a_batch_failing_in_the_writer_thread_fails_the_sync_exactly_as_in_the_main_thread(
        tmp_path, monkeypatch, parallel, error):
    messy_exports(tmp_path / "in")
    real = Warehouse.write_prepared
    calls = 0

    def fails_fourth(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 4:
            raise error
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Warehouse, "write_prepared", fails_fourth)
    outcome = {}
    for thread in (False, True):
        calls = 0
        try:
            outcome[thread] = comparable(sync(tmp_path, str(thread), monkeypatch, thread=thread, parallel=parallel))
        except Exception as exc:  # noqa: BLE001 - what surfaces is the point
            outcome[thread] = (type(exc), str(exc))
    assert outcome[True] == outcome[False]
    if isinstance(error, WarehouseError):  # a crmsync error fails the source, with what was committed
        assert outcome[True]["sources"][0]["error"] == str(error)
    else:
        assert outcome[True] == (sqlite3.OperationalError, str(error))
    # Nothing after the failed batch was committed: the two warehouses are the same.
    assert dump(tmp_path / "False.db") == dump(tmp_path / "True.db")


@pytest.mark.parametrize("batch_fails", [False, True])
def test_ctrl_c_while_a_batch_is_being_written_interrupts_the_run_once_that_batch_settled(tmp_path, monkeypatch,
                                                                                           batch_fails):
    messy_exports(tmp_path / "in")
    calls = 0

    def progress(label: str, rows: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # reported while the next batch is in flight
            raise KeyboardInterrupt

    if batch_fails:  # the batch in flight fails too: Ctrl-C still wins
        real = sync_module._Batcher._write
        batches = 0

        def third_fails(self, batch):
            nonlocal batches
            batches += 1
            if batches == 3:
                raise WarehouseError("w.db: database or disk is full")
            return real(self, batch)

        monkeypatch.setattr(sync_module._Batcher, "_write", third_fails)
    with pytest.raises(KeyboardInterrupt):
        sync(tmp_path, "w", monkeypatch, thread=True, parallel=True, progress=progress)
    assert not [t for t in threading.enumerate() if t.name.startswith("crmsync-write")]
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    assert conn.execute("select status from runs").fetchall() == [("interrupted",)]
    tables = ("organizations", "deals", "persons", "stages")
    written = sum(conn.execute(f"select count(*) from {t}").fetchone()[0] for t in tables)
    (counted,) = conn.execute("select coalesce(sum(inserted), 0) from run_counts").fetchone()
    assert counted == written > 0  # counts committed with the rows they describe
    conn.close()


@both_readers
def test_when_the_batch_in_flight_fails_and_then_the_reader_fails_the_batch_error_is_reported(tmp_path,
                                                                                                monkeypatch, parallel):
    """Written in the main thread, the batch fails before anything more is read; with the writer
    thread the reader can fail meanwhile, and the batch's error must still be the one reported."""
    messy_exports(tmp_path / "in")
    real_read, real_write = SpreadsheetSource.read_prepared, sync_module._Batcher._write

    def two_batches_then_fail(self):
        for item in real_read(self):
            if isinstance(item, PreparedRows):
                yield PreparedRows(item.entity, item.rows[:14])  # exactly two batches of 7
                raise InputError("deals.csv: unreadable after row 14")
            yield item

    batches = 0

    def second_fails(self, batch):
        nonlocal batches
        batches += 1
        if batches == 2:
            raise WarehouseError("w.db: database or disk is full")
        return real_write(self, batch)

    monkeypatch.setattr(SpreadsheetSource, "read_prepared", two_batches_then_fail)
    monkeypatch.setattr(sync_module._Batcher, "_write", second_fails)
    for thread in (False, True):
        batches = 0
        summary = sync(tmp_path, str(thread), monkeypatch, thread=thread, parallel=parallel)
        assert summary.sources[0].error == "w.db: database or disk is full"
        assert summary.totals()["read"] == 7
    assert dump(tmp_path / "False.db") == dump(tmp_path / "True.db")
