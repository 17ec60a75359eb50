"""Reading a spreadsheet source in a second process (crmsync.sync._drain_parallel) changes only the
wall time: same rows, quarantine, counts, notices and history as reading in the writing process;
a reader that dies or fails stops the source cleanly and keeps what was committed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from crmsync.connectors.spreadsheet import SpreadsheetSource

from crmsync import sync as sync_module
from crmsync.config import parse_config
from crmsync.source import PreparedRows, Source
from crmsync.sync import run_sync

pytestmark = pytest.mark.skipif(not sync_module._CAN_FORK, reason="the parallel reader needs fork (Linux)")

# Timestamps that differ between any two runs; everything else must be identical.
_VOLATILE = {"started_at", "finished_at", "created_at", "changed_at", "updated_at", "pid", "config_path",
             "summary"}


def messy_exports(folder: Path) -> None:
    """One file per kind of mess: encodings, bad rows, repeated ids, typed XLSX cells, unknown stages."""
    folder.mkdir(exist_ok=True)
    (folder / "organizations.csv").write_bytes(
        ("ID;Name;Domain;Created\n" + "".join(f"{i};Peña {i} S.A.;p{i}.mx;2024-0{1 + i % 9}-0{1 + i % 7} 10:00\n"
                                              for i in range(40))
         + ";sin id;x.mx;\n" + "7;Repetida;r.mx;2024-01-01\n").encode("cp1252"))
    deals = ["ID,Title,Status,Value,Currency,Stage,Created,Expected close date,Lead source"]
    for i in range(1, 120):
        status = ("Open", "Won", "Lost", "Ganado")[i % 4]
        stage = ("Prospecting", "Contact made", "Negociación", "Etapa rara")[i % 4]
        created = f"15/0{1 + i % 9}/2024 1{i % 10}:30"
        close = f"2024-12-{10 + i % 19}"
        deals.append(f'{i},"Deal {i}, ""quoted""",{status},"{i * 10},50 €",,{stage},{created},{close},Web')
    deals += ["200,,Open,1,EUR,Prospecting,,,",  # title required: quarantined
              "201,No value,Open,not money,EUR,Prospecting,,,",  # bad amount: quarantined
              "5,Duplicate of 5,Open,1,EUR,Prospecting,,,",  # repeated id: quarantined as duplicate
              "202,Too many cells,Open,1,EUR,Prospecting,,,,extra,cells"]
    (folder / "deals.csv").write_text("\n".join(deals) + "\n", encoding="utf-8")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["ID", "Name", "Email", "Phone", "Created", "Job title"])
    for i in range(30):
        ws.append([1000 + i, f"Persona {i}", f"p{i}@example.es" if i % 5 else "not-an-email", 600000000 + i,
                   datetime(2024, 1, 1 + i % 28, 9, i), "Gerente" if i % 2 else None])
    wb.save(folder / "persons.xlsx")


def run(tmp_path: Path, name: str, parallel: bool, batch_size: int = 7):
    cfg = parse_config(
        {"warehouse": {"path": str(tmp_path / f"{name}.db"), "batch_size": batch_size},
         "sources": {"s": {"type": "spreadsheet", "path": "in/*", "mapping": "spreadsheet", "phone_region": "ES"}}},
        path=tmp_path / "c.toml", environ={},
    )
    return run_sync(cfg, parallel=parallel)


def dump(db_path: Path) -> dict[str, list[tuple]]:
    """Every table's rows without the columns that hold wall-clock times or ids of processes."""
    conn = sqlite3.connect(db_path)
    out = {}
    for (table,) in conn.execute("select name from sqlite_master where type = 'table' order by name"):
        cols = [r[1] for r in conn.execute(f'pragma table_info("{table}")') if r[1] not in _VOLATILE]
        order = ", ".join(f'"{c}"' for c in cols)
        out[table] = conn.execute(f'select {order} from "{table}" order by {order}').fetchall()
    conn.close()
    return out


def comparable(summary) -> dict:
    d = summary.to_dict()
    for key in ("started_at", "seconds", "warehouse"):
        d.pop(key)
    return d


@pytest.fixture
def spy_parallel(monkeypatch):
    calls = []
    real = sync_module._drain_parallel

    def spy(*args, **kwargs):
        calls.append(args[0].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_module, "_drain_parallel", spy)
    return calls


def test_parallel_and_serial_reads_of_messy_exports_leave_identical_warehouses(tmp_path, monkeypatch,
                                                                                 spy_parallel):
    monkeypatch.setattr(Source, "prepared_rows", 5)  # many messages, none aligned with batches of 7
    messy_exports(tmp_path / "in")
    serial, parallel = run(tmp_path, "serial", False), run(tmp_path, "parallel", True)
    assert spy_parallel == ["s"]
    assert comparable(serial) == comparable(parallel)
    totals = serial.totals()
    assert totals["quarantined"] >= 5 and totals["inserted"] > 150
    assert any(n["kind"] == "unmapped_value" for n in serial.sources[0].notices)
    assert dump(tmp_path / "serial.db") == dump(tmp_path / "parallel.db")

    # Edit a deal, drop an organization: updates, history and removals agree too.
    deals = tmp_path / "in" / "deals.csv"
    deals.write_text(deals.read_text(encoding="utf-8").replace("Deal 3,", "Deal three,"), encoding="utf-8")
    orgs = tmp_path / "in" / "organizations.csv"
    orgs.write_bytes(b"\n".join(line for line in orgs.read_bytes().split(b"\n") if not line.startswith(b"12;")))
    serial, parallel = run(tmp_path, "serial", False), run(tmp_path, "parallel", True)
    assert comparable(serial) == comparable(parallel)
    assert serial.totals()["updated"] == 1 and serial.totals()["removed"] == 1
    assert dump(tmp_path / "serial.db") == dump(tmp_path / "parallel.db")


def test_parallel_read_with_one_big_batch_matches_serial(tmp_path):
    messy_exports(tmp_path / "in")
    serial, parallel = run(tmp_path, "serial", False, 5000), run(tmp_path, "parallel", True, 5000)
    assert comparable(serial) == comparable(parallel)
    assert dump(tmp_path / "serial.db") == dump(tmp_path / "parallel.db")


def _dies_after(monkeypatch, records: int, how) -> None:
    real = SpreadsheetSource.read_prepared
    parent = os.getpid()
    monkeypatch.setattr(Source, "prepared_rows", 5)

    def read_prepared(self):
        seen = 0
        for item in real(self):
            if isinstance(item, PreparedRows):
                seen += len(item.rows)
                if seen > records and os.getpid() != parent:
                    how()
            yield item

    monkeypatch.setattr(SpreadsheetSource, "read_prepared", read_prepared)


def test_reader_process_killed_midway_fails_the_source_in_one_line_and_keeps_committed_batches(tmp_path,
                                                                                                 monkeypatch):
    messy_exports(tmp_path / "in")
    _dies_after(monkeypatch, 60, lambda: os.kill(os.getpid(), signal.SIGKILL))
    summary = run(tmp_path, "w", True)
    (outcome,) = summary.sources
    assert summary.status == "failed" and outcome.status == "failed" and outcome.exit_code == 1
    assert "killed by signal 9" in outcome.error and "\n" not in outcome.error
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("select status from runs").fetchall() == [("failed",)]
    assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    # Counts were committed with the rows they describe, and never past what the reader sent.
    tables = ("organizations", "deals", "persons")
    written = sum(conn.execute(f"select count(*) from {t}").fetchone()[0] for t in tables)
    (counted,) = conn.execute("select coalesce(sum(inserted), 0) from run_counts").fetchone()
    assert counted == written <= 60
    conn.close()

    monkeypatch.undo()
    again = run(tmp_path, "w", True)
    assert again.status == "succeeded"
    run(tmp_path, "fresh", False)
    for table in ("organizations", "deals", "persons", "stages"):
        assert rows(tmp_path / "w.db", table) == rows(tmp_path / "fresh.db", table)


def rows(db_path: Path, table: str) -> list[tuple]:
    """A table's records: every column but the run ids they were written in."""
    conn = sqlite3.connect(db_path)
    try:
        columns = [r[1] for r in conn.execute(f"pragma table_info({table})") if r[1] not in ("first_run", "last_run")]
        return conn.execute(f"select {', '.join(columns)} from {table} order by source_id").fetchall()
    finally:
        conn.close()


def test_reader_bug_fails_the_source_with_one_line_naming_the_exception(tmp_path, monkeypatch):
    messy_exports(tmp_path / "in")

    def boom():
        raise RuntimeError("boom in the reader")

    _dies_after(monkeypatch, 10, boom)
    summary = run(tmp_path, "w", True)
    (outcome,) = summary.sources
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert "RuntimeError: boom in the reader" in outcome.error and "\n" not in outcome.error


def test_reader_crmsync_error_fails_the_source_exactly_as_a_serial_read_does(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "deals.csv").write_text("Deal number,Title\n1,x\n", encoding="utf-8")
    serial, parallel = run(tmp_path, "serial", False), run(tmp_path, "parallel", True)
    assert parallel.sources[0].error == serial.sources[0].error
    assert parallel.sources[0].exit_code == serial.sources[0].exit_code == 3
    assert "id column 'ID'" in parallel.sources[0].error


def test_crmsync_parallel_0_reads_in_the_writing_process(tmp_path, monkeypatch, spy_parallel):
    messy_exports(tmp_path / "in")
    monkeypatch.setenv("CRMSYNC_PARALLEL", "0")
    cfg = parse_config({"warehouse": {"path": str(tmp_path / "w.db")},
                        "sources": {"s": {"type": "spreadsheet", "path": "in/*"}}}, path=tmp_path / "c.toml",
                       environ={})
    assert run_sync(cfg).status == "succeeded"
    assert spy_parallel == []
    monkeypatch.setenv("CRMSYNC_PARALLEL", "1")
    assert run_sync(cfg).status == "succeeded"
    assert spy_parallel == ["s"]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has exited (its new parent reaps it)
    except OSError:
        return False


@pytest.mark.slow
def test_reader_process_exits_by_itself_when_the_writer_is_killed(tmp_path):
    rows = 60_000
    with (tmp_path / "organizations.csv").open("w", encoding="utf-8") as f:
        f.write("ID,Name,Domain\n")
        f.writelines(f"{i},Compañía {i},c{i}.es\n" for i in range(rows))
    conf = tmp_path / "c.toml"
    conf.write_text('[warehouse]\npath = "w.db"\nbatch_size = 500\n\n'
                    '[sources.big]\ntype = "spreadsheet"\npath = "organizations.csv"\n')
    proc = subprocess.Popen([sys.executable, "-m", "crmsync.cli", "sync", "--config", str(conf), "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    readers: list[int] = []
    while not readers and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        readers = _children(proc.pid)
    assert readers, "no reader process appeared"
    time.sleep(0.5)  # let it get going (and fill the pipe)
    assert proc.poll() is None, "the sync finished before it could be killed; raise rows"
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(readers[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(readers[0]), "the reader outlived the killed writer"


@pytest.mark.parametrize("share", ["all", "none", "a third", "alternating"])
def test_whatever_share_of_the_rows_the_reader_finishes_the_warehouse_is_the_same(tmp_path, monkeypatch, share):
    # The reader process inherits this patch through fork: it finishes (writes the JSON of) that
    # share of each message's rows, and the writer finishes the rest.
    calls = iter(range(1_000_000))
    pick = {"all": lambda n: n, "none": lambda n: 0, "a third": lambda n: n // 3,
            "alternating": lambda n: n if next(calls) % 2 else 0}[share]
    monkeypatch.setattr(sync_module.WorkShare, "rows", lambda self, n: pick(n))
    monkeypatch.setattr(Source, "prepared_rows", 5)
    arrived = []  # per message the writer got: how many of its rows the reader finished
    add = sync_module._Batcher.add_prepared

    def spy(self, entity, rows, raw_columns=None):
        arrived.append(sum(type(row[0][-1]) is str for row in rows) / len(rows))  # raw's JSON already written
        return add(self, entity, rows, raw_columns)

    messy_exports(tmp_path / "in")
    serial = run(tmp_path, "serial", False)
    monkeypatch.setattr(sync_module._Batcher, "add_prepared", spy)
    parallel = run(tmp_path, "parallel", True)
    assert comparable(serial) == comparable(parallel)
    assert dump(tmp_path / "serial.db") == dump(tmp_path / "parallel.db")
    finished = set(arrived)
    # XLSX rows with typed cells always arrive finished (marshal cannot carry them raw)
    assert {"all": finished == {1.0}, "none": 0.0 in finished and 0 < len(finished) <= 2,
            "a third": any(0 < f < 1 for f in finished),
            "alternating": {0.0, 1.0} <= finished}[share], arrived


def test_the_reader_takes_more_of_the_work_while_the_writer_is_behind_and_less_while_it_keeps_up():
    taken = sync_module.multiprocessing.get_context("fork").RawValue("q", 0)
    share = sync_module.WorkShare(taken, backlog=2, start=0.5)
    for _ in range(3):
        share.sent()  # 1, 2, 3 messages waiting: only the third is more than the backlog
    assert share.rows(100) == 40
    for _ in range(10):
        share.sent()
    assert share.rows(100) == 100  # never more than all of them
    taken.value = share.count  # the writer caught up
    for _ in range(20):
        share.sent()
        taken.value += 1
    assert share.rows(100) == 0


def test_the_writer_counts_every_message_it_takes_so_the_reader_sees_its_backlog(tmp_path, monkeypatch):
    log = tmp_path / "backlog.txt"

    def sent(self):  # in the reader process (inherited through fork): record the backlog it sees
        self.count += 1
        with log.open("a") as f:
            f.write(f"{self.count - self.taken.value}\n")

    monkeypatch.setattr(sync_module.WorkShare, "sent", sent)
    monkeypatch.setattr(Source, "prepared_rows", 5)
    messy_exports(tmp_path / "in")
    run(tmp_path, "parallel", True)
    backlogs = [int(line) for line in log.read_text().split()]
    assert len(backlogs) > 20 and min(backlogs) >= 0
    # Were the writer's count not shared, the backlog would only grow, one per message.
    assert any(later < earlier for earlier, later in zip(backlogs, backlogs[1:], strict=False)), backlogs
