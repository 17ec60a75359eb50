"""Warehouse writes: insert/update/unchanged accounting, history, removals, locking."""

import sqlite3
from decimal import Decimal

import pytest

from crmsync.errors import WarehouseError
from crmsync.model import Deal, Person, Stage
from crmsync.warehouse import QuarantineRow, Warehouse


def deal(i, **kw):
    base = {"source": "s", "source_id": str(i), "title": f"Deal {i}", "value": Decimal("10.50"), "currency": "EUR"}
    return Deal(**{**base, **kw})


def write(wh, run, records, entity="deal"):
    with wh.transaction():
        return wh.write_records(run, entity, records)


def test_second_write_of_same_records_counts_unchanged_and_writes_no_history(tmp_path):
    with Warehouse.open(tmp_path / "w.db") as wh:
        r1 = wh.start_run("sync")
        c1 = write(wh, r1, [deal(1), deal(2)])
        r2 = wh.start_run("sync")
        c2 = write(wh, r2, [deal(1), deal(2)])
        assert (c1.inserted, c1.updated, c1.unchanged) == (2, 0, 0)
        assert (c2.inserted, c2.updated, c2.unchanged) == (0, 0, 2)
        assert wh.conn.execute("select count(*) from changes").fetchone()[0] == 0
        assert wh.conn.execute("select last_run, first_run from deals where source_id='1'").fetchone() == (r2, r1)


def test_changed_field_updates_the_record_and_writes_old_and_new_to_history(tmp_path):
    with Warehouse.open(tmp_path / "w.db") as wh:
        r1 = wh.start_run("sync")
        write(wh, r1, [deal(1, stage_name="Proposal"), deal(2)])
        r2 = wh.start_run("sync")
        c = write(wh, r2, [deal(1, stage_name="Negotiation"), deal(2)])
        assert (c.inserted, c.updated, c.unchanged) == (0, 1, 1)
        rows = wh.conn.execute("select run_id, source_id, field, old_value, new_value from changes").fetchall()
        assert rows == [(r2, "1", "stage_name", "Proposal", "Negotiation")]


def test_money_is_stored_exactly_as_decimal_text(tmp_path):
    with Warehouse.open(tmp_path / "w.db") as wh:
        write(wh, wh.start_run("sync"), [deal(1, value=Decimal("1234567890123.45"))])
        assert wh.conn.execute("select value, currency from deals").fetchone() == ("1234567890123.45", "EUR")


def test_repeated_id_in_one_run_is_returned_as_duplicate_not_overwritten(tmp_path):
    with Warehouse.open(tmp_path / "w.db") as wh:
        run = wh.start_run("sync")
        first = write(wh, run, [deal(1, title="first"), deal(1, title="second")])
        later = write(wh, run, [deal(1, title="third")])
        assert first.inserted == 1 and len(first.duplicates) == 1
        assert len(later.duplicates) == 1
        assert wh.conn.execute("select title from deals").fetchone() == ("first",)


def test_records_missing_from_a_complete_snapshot_are_marked_removed_and_can_return(tmp_path):
    with Warehouse.open(tmp_path / "w.db") as wh:
        r1 = wh.start_run("sync")
        write(wh, r1, [deal(1), deal(2)])
        r2 = wh.start_run("sync")
        write(wh, r2, [deal(1)])
        with wh.transaction():
            assert wh.mark_removed(r2, "s", "deal") == 1
        assert wh.conn.execute("select source_id, removed_run from deals where removed_run is not null").fetchall() == [
            ("2", r2)
        ]
        r3 = wh.start_run("sync")
        c = write(wh, r3, [deal(1), deal(2)])
        assert c.updated == 1
        assert wh.conn.execute("select count(*) from deals where removed_run is not null").fetchone()[0] == 0
        fields = [r[0] for r in wh.conn.execute("select field from changes where source_id='2' order by id")]
        assert fields == ["_removed", "_removed"]  # removed in r2, back in r3


def test_person_contacts_are_kept_as_json_with_raw_and_normalized(tmp_path):
    from crmsync.model import ContactPoint

    p = Person(source="s", source_id="1", name="Ana",
               emails=[ContactPoint(raw=" ANA@X.COM", normalized="ana@x.com", primary=True)])
    with Warehouse.open(tmp_path / "w.db") as wh:
        write(wh, wh.start_run("sync"), [p], entity="person")
        (emails,) = wh.conn.execute("select emails from persons").fetchone()
    assert '"normalized":"ana@x.com"' in emails and '"raw":" ANA@X.COM"' in emails


def test_a_start_marks_runs_left_running_by_a_killed_process_as_interrupted(tmp_path):
    with Warehouse.open(tmp_path / "w.db") as wh:
        r1 = wh.start_run("sync")
    with Warehouse.open(tmp_path / "w.db") as wh:
        wh.start_run("sync")
        assert wh.conn.execute("select status from runs where id=?", (r1,)).fetchone() == ("interrupted",)


def test_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    with Warehouse.open(tmp_path / "w.db"), pytest.raises(WarehouseError, match="another crmsync run"):
        Warehouse.open(tmp_path / "w.db")


def test_rolled_back_batch_leaves_nothing_behind(tmp_path):
    with Warehouse.open(tmp_path / "w.db") as wh:
        run = wh.start_run("sync")
        with pytest.raises(RuntimeError), wh.transaction():
            wh.write_records(run, "deal", [deal(1)])
            wh.quarantine(run, [QuarantineRow(source="s", entity="deal", reason="bad")])
            raise RuntimeError("killed")
        assert wh.conn.execute("select count(*) from deals").fetchone()[0] == 0
        assert wh.conn.execute("select count(*) from quarantine").fetchone()[0] == 0


def test_status_reads_without_a_warehouse_gives_a_clear_error(tmp_path):
    with pytest.raises(WarehouseError, match="run `crmsync sync` first"):
        Warehouse.open(tmp_path / "none.db", write=False)


def test_schema_gains_new_model_columns_on_an_existing_warehouse(tmp_path):
    path = tmp_path / "w.db"
    with Warehouse.open(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("alter table deals drop column lost_reason")
    conn.close()
    with Warehouse.open(path) as wh:
        assert "lost_reason" in wh.db["deals"].columns_dict


def test_a_value_the_column_stores_in_its_own_type_is_not_a_change_on_the_next_run(tmp_path):
    # A mapping may give an integer column text ("3"): SQLite stores it as the integer 3, so the
    # stored row differs from the parameters in Python but holds the same value.
    with Warehouse.open(tmp_path / "w.db") as wh:
        stage = {"source": "s", "source_id": "P/1", "name": "Won", "pipeline_id": "P", "position": "3"}
        write(wh, wh.start_run("sync"), [Stage.build(stage)], "stage")
        assert wh.conn.execute("select position, typeof(position) from stages").fetchone() == (3, "integer")
        again = write(wh, wh.start_run("sync"), [Stage.build(stage)], "stage")
        moved = write(wh, wh.start_run("sync"), [Stage.build({**stage, "position": "4"})], "stage")
        assert (again.updated, again.unchanged) == (0, 1)
        assert (moved.updated, moved.unchanged) == (1, 0)


def test_rows_of_a_warehouse_written_with_row_hashes_are_unchanged_when_read_again(tmp_path):
    # Earlier versions kept a row_hash column; it is left in place and no longer decides anything.
    with Warehouse.open(tmp_path / "w.db") as wh:
        write(wh, wh.start_run("sync"), [deal(1), deal(2)])
        wh.conn.execute("alter table deals add column row_hash text")
        wh.conn.execute("update deals set row_hash = 'm0123'")
    with Warehouse.open(tmp_path / "w.db") as wh:
        c = write(wh, wh.start_run("sync"), [deal(1), deal(2, title="Renamed")])
        assert (c.inserted, c.updated, c.unchanged) == (0, 1, 1)
        assert wh.conn.execute("select count(*) from changes").fetchone()[0] == 1


def test_a_snapshot_that_wrote_every_stored_record_skips_the_search_for_removed_ones(tmp_path):
    with Warehouse.open(tmp_path / "w.db") as wh:
        run = wh.start_run("sync")
        write(wh, run, [deal(1), deal(2)])
        statements = []
        wh.conn.set_trace_callback(statements.append)
        assert wh.mark_removed(run, "s", "deal", seen=2) == 0
        assert not any("last_run <" in s for s in statements)  # an index-only count was enough
        later = wh.start_run("sync")
        write(wh, later, [deal(1)])
        assert wh.mark_removed(later, "s", "deal", seen=1) == 1  # 2 stored, 1 seen: deal 2 is gone
        assert any("last_run <" in s for s in statements)
        assert wh.conn.execute("select source_id from deals where removed_run is not null").fetchall() == [("2",)]
