"""One export file feeding several entities: ``[entities.X.also_from.Y]`` (docs/mappings.md).

A deals export carries its contact's and company's columns; the rows of files matched to deals
also give persons and organizations, each written once per run, and deals link to them. Every
end-to-end test runs in both reader paths: the forked reader process and one process.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from crmsync.config import parse_config
from crmsync.errors import MappingError
from crmsync.mapping import compile_mapping, derive_key
from crmsync.reconcile import run_reconcile
from crmsync.sync import run_sync

FIXTURES = Path(__file__).parent / "fixtures" / "presets"

MAPPING = """
[mapping]
date_order = "YMD"

[entities.organization]
match = ["*compan*"]
id = "Company ID"
[entities.organization.fields]
name = "Company"

[entities.organization.also_from.deal]
id = { derive = ["Company"] }
[entities.organization.also_from.deal.fields]
name = { column = "Company", required = true }

[entities.person]
match = ["*people*"]
id = "Person ID"
[entities.person.fields]
name = "Name"
emails = { column = "Email" }

[entities.person.also_from.deal]
id = { derive = ["Contact email", "Contact"] }
[entities.person.also_from.deal.fields]
name = "Contact"
emails = { column = "Contact email" }
add_time = "Contact since"
org_id = { derive = ["Company"] }

[entities.deal]
match = ["*deal*"]
id = "ID"
[entities.deal.fields]
title = "Title"
person_id = { derive = ["Contact email", "Contact"] }
org_id = { derive = ["Company"] }
"""

HEADER = "ID,Title,Contact,Contact email,Contact since,Company\n"
DEALS = HEADER + (
    "1,First,Ana Ruiz,ANA@acme.com,2021-01-05,Acme\n"
    "2,Second,Ana Ruiz,ana@acme.com,2021-01-05,Acme\n"
    "3,Third,Bo Li,,2021-02-01,Beta\n"
    "4,Fourth,,,,\n"
    "5,Fifth,Cy Oh,cy@x.com,not a date,Acme\n"
)

READER_PATHS = pytest.mark.parametrize("parallel", [True, False], ids=["forked-reader", "one-process"])


class Run:
    """Sync ``files`` (name -> text) with MAPPING; ``again`` syncs the same warehouse once more."""

    def __init__(self, tmp: Path, files: dict[str, str], parallel: bool):
        self.tmp, self.parallel = tmp, parallel
        (tmp / "m.toml").write_text(MAPPING, encoding="utf-8")
        self.write(files)
        self.config = parse_config(
            {"warehouse": {"path": str(tmp / "w.db")},
             "sources": {"s": {"type": "spreadsheet", "path": "in/*", "mapping": "m.toml"}}},
            path=tmp / "c.toml", environ={})
        self.summary = run_sync(self.config, parallel=parallel)
        self.db = sqlite3.connect(tmp / "w.db")

    def write(self, files: dict[str, str]) -> None:
        folder = self.tmp / "in"
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")

    def again(self, files: dict[str, str] | None = None) -> None:
        if files is not None:
            self.write(files)
        self.summary = run_sync(self.config, parallel=self.parallel)

    def counts(self, entity: str):
        (e,) = [e for e in self.summary.entities if e.entity == entity]
        return e

    def rows(self, sql: str) -> list[tuple]:
        return self.db.execute(sql).fetchall()


def assert_read_is_loaded_plus_quarantined(summary) -> None:
    assert summary.status == "succeeded"
    for e in summary.entities:
        assert e.read == e.inserted + e.updated + e.unchanged + e.quarantined, e


# ------------------------------------------------------------------ end to end, both reader paths


@READER_PATHS
def test_a_deals_export_also_loads_each_person_once_with_the_deal_linked(tmp_path, parallel):
    run = Run(tmp_path, {"deals.csv": DEALS}, parallel)
    assert run.rows("select source_id, name, org_id from persons order by source_id") == [
        ("ana@acme.com", "Ana Ruiz", "acme"), ("bo li", "Bo Li", "beta")]
    assert run.rows("select source_id, person_id, org_id from deals order by source_id") == [
        ("1", "ana@acme.com", "acme"), ("2", "ana@acme.com", "acme"), ("3", "bo li", "beta"),
        ("4", None, None), ("5", "cy@x.com", "acme")]
    assert run.rows("select source_id, name from organizations order by source_id") == [
        ("acme", "Acme"), ("beta", "Beta")]


@READER_PATHS
def test_a_bad_person_value_quarantines_only_the_person_and_every_entity_accounts_for_its_records(
        tmp_path, parallel):
    run = Run(tmp_path, {"deals.csv": DEALS}, parallel)
    assert_read_is_loaded_plus_quarantined(run.summary)
    # Deals: one per row. Persons: one per distinct id loaded, plus the row whose person failed.
    # Organizations: one per distinct id. Rows without a contact or company add nothing.
    assert (run.counts("deal").read, run.counts("deal").inserted, run.counts("deal").quarantined) == (5, 5, 0)
    assert (run.counts("person").read, run.counts("person").inserted, run.counts("person").quarantined) == (3, 2, 1)
    assert (run.counts("organization").read, run.counts("organization").inserted,
            run.counts("organization").quarantined) == (2, 2, 0)
    (bad,) = run.rows('select entity, line, "column", value, reason from quarantine')
    assert bad[:4] == ("person", 6, "Contact since", "not a date")
    assert "the person of this deal row" in bad[4]
    assert run.rows("select title from deals where source_id = '5'") == [("Fifth",)]


@READER_PATHS
def test_a_row_without_a_person_gives_no_person_and_is_not_quarantined(tmp_path, parallel):
    run = Run(tmp_path, {"deals.csv": HEADER + "4,Fourth,,,,\n7,Seventh,(none),n/a,,-\n"}, parallel)
    assert run.rows("select count(*) from persons") == [(0,)]
    assert run.rows("select count(*) from organizations") == [(0,)]
    assert run.rows("select count(*) from quarantine") == [(0,)]
    assert run.counts("deal").inserted == 2
    assert {e.entity for e in run.summary.entities} >= {"deal"}
    assert_read_is_loaded_plus_quarantined(run.summary)


@READER_PATHS
def test_the_same_person_on_several_rows_with_different_values_keeps_the_last_row(tmp_path, parallel):
    deals = HEADER + "1,First,Ana Ruiz,ana@acme.com,,Acme\n2,Second,Ana Ruiz-Gómez,ana@acme.com,,Acme\n"
    run = Run(tmp_path, {"deals.csv": deals}, parallel)
    ((source_id, name, raw),) = run.rows("select source_id, name, raw from persons")
    assert (source_id, name) == ("ana@acme.com", "Ana Ruiz-Gómez")
    # Its raw form is the columns its mapping reads, not the deal's: a person is not "updated" by its deals.
    assert json.loads(raw) == {"Contact": "Ana Ruiz-Gómez", "Contact email": "ana@acme.com", "Company": "Acme"}
    assert run.counts("person").read == 1


@READER_PATHS
def test_a_person_repeated_with_the_same_cells_is_converted_once_and_counted_once(tmp_path, parallel, monkeypatch):
    from crmsync.mapping import EntityMapping
    converted: list[str] = []

    def counting(method):
        def count(self, row, source):
            converted.append(self.entity)
            return method(self, row, source)
        return count

    # Rows of the file's own entity go through convert_stored (to warehouse rows), the others through convert.
    monkeypatch.setattr(EntityMapping, "convert", counting(EntityMapping.convert))
    monkeypatch.setattr(EntityMapping, "convert_stored", counting(EntityMapping.convert_stored))
    deals = HEADER + "".join(f"{i},Deal {i},Ana Ruiz,ana@acme.com,2021-01-05,Acme\n" for i in range(1, 21))
    run = Run(tmp_path, {"deals.csv": deals}, parallel)
    if not parallel:  # the forked reader's calls are not seen here
        assert converted.count("person") == 1 and converted.count("deal") == 20
    assert [(run.counts(e).read, run.counts(e).inserted) for e in ("deal", "person", "organization")] == [
        (20, 20), (1, 1), (1, 1)]


@READER_PATHS
def test_rerunning_the_same_deals_export_reports_every_record_unchanged(tmp_path, parallel):
    run = Run(tmp_path, {"deals.csv": DEALS}, parallel)
    run.again()
    assert_read_is_loaded_plus_quarantined(run.summary)
    for entity, loaded in (("deal", 5), ("person", 2), ("organization", 2)):
        c = run.counts(entity)
        assert (c.unchanged, c.inserted, c.updated, c.removed) == (loaded, 0, 0, 0), c
    assert run.counts("person").quarantined == 1


@READER_PATHS
def test_a_person_only_on_deal_rows_is_removed_when_its_deals_leave_the_export(tmp_path, parallel):
    run = Run(tmp_path, {"deals.csv": DEALS}, parallel)
    run.again({"deals.csv": HEADER + "2,Second,Ana Ruiz,ana@acme.com,2021-01-05,Acme\n"})
    assert (run.counts("person").unchanged, run.counts("person").removed) == (1, 1)
    assert (run.counts("organization").unchanged, run.counts("organization").removed) == (1, 1)


@READER_PATHS
def test_a_person_the_people_file_has_is_kept_from_that_file_not_from_deal_rows(tmp_path, parallel):
    files = {"deals.csv": DEALS, "people.csv": "Person ID,Name,Email\nana@acme.com,Ana (people file),ana@acme.com\n"
                                              "p2,Dee,dee@x.com\n"}
    run = Run(tmp_path, files, parallel)
    assert run.rows("select source_id, name from persons order by source_id") == [
        ("ana@acme.com", "Ana (people file)"), ("bo li", "Bo Li"), ("p2", "Dee")]
    assert_read_is_loaded_plus_quarantined(run.summary)
    assert (run.counts("person").read, run.counts("person").inserted) == (2 + 1 + 1, 3)
    run.again()  # the people file's persons are not removed by completing persons after the deals
    assert (run.counts("person").unchanged, run.counts("person").removed) == (3, 0)


@READER_PATHS
def test_pipedrive_deals_export_persons_link_by_email_to_the_persons_of_another_source(tmp_path, parallel):
    folder = FIXTURES / "pipedrive"
    sources = {
        "pd_deals": {"type": "spreadsheet", "path": str(folder / "deals-*.csv"), "mapping": "pipedrive_export",
                     "timezone": "Europe/Madrid", "phone_region": "ES"},
        "pd_people": {"type": "spreadsheet", "path": str(folder / "people-*.csv"), "mapping": "pipedrive_export",
                      "timezone": "Europe/Madrid", "phone_region": "ES"},
    }
    config = parse_config({"warehouse": {"path": str(tmp_path / "w.db")}, "sources": sources},
                          path=tmp_path / "c.toml", environ={})
    summary = run_sync(config, parallel=parallel)
    assert_read_is_loaded_plus_quarantined(summary)
    db = sqlite3.connect(tmp_path / "w.db")
    persons = dict(db.execute("select source_id, name from persons where source = 'pd_deals'").fetchall())
    assert persons == {"jose.munoz@acme.com": "José Muñoz", "wile@acme.com": "Wile Coyote",
                       "maria@cafeole.es": "María López", "luis.pena@penaconstrucciones.mx": "Luis Peña",
                       "peter gibbons": "Peter Gibbons"}
    assert db.execute("select person_id, org_id from deals where source_id = '103'").fetchone() == (
        "maria@cafeole.es", "cafeteria ole")
    # María's last deal row (104) names her organization in mojibake: the last row wins.
    assert db.execute("select org_id from persons where source_id = 'maria@cafeole.es'").fetchone() == (
        "cafa© ola©",)
    run_reconcile(config)
    links = {(r[0], r[1], r[2]) for r in db.execute(
        "select a_source || ':' || a_id, b_source || ':' || b_id, reason from identity_links "
        "where entity = 'person'")}
    for deals_id, people_id in (("jose.munoz@acme.com", "201"), ("maria@cafeole.es", "202"),
                                ("luis.pena@penaconstrucciones.mx", "203")):
        pair = {f"pd_deals:{deals_id}", f"pd_people:{people_id}"}
        assert any({a, b} == pair and reason == f"email:{deals_id}" for a, b, reason in links), (pair, links)


@READER_PATHS
def test_a_deal_quarantined_for_its_own_value_still_loads_its_person(tmp_path, parallel):
    run = Run(tmp_path, {"deals.csv": HEADER + "6,,Dee Ng,dee@x.com,2021-03-01,Acme\n"}, parallel)
    assert run.rows('select entity, "column" from quarantine') == [("deal", "Title")]
    assert run.rows("select source_id, name from persons") == [("dee@x.com", "Dee Ng")]
    assert [(run.counts(e).read, run.counts(e).quarantined) for e in ("deal", "person", "organization")] == [
        (1, 1), (1, 0), (1, 0)]
    assert_read_is_loaded_plus_quarantined(run.summary)


# ------------------------------------------------------------------ the mapping syntax


def compile_toml(entities: dict) -> object:
    return compile_mapping({"entities": entities}, name="t", where="t.toml", overrides={})


DEAL = {"id": "ID", "fields": {"title": "Title"}}


def test_derive_takes_the_first_non_blank_column_an_email_lowercased_else_the_text_folded():
    columns = ("Person - ID", "Person - Email", "Contact")
    assert derive_key({"Person - ID": "201", "Person - Email": "a@b.com"}, columns) == "201"
    assert derive_key({"Person - ID": "", "Person - Email": "bad@, A@B.com", "Contact": "x"}, columns) == "a@b.com"
    assert derive_key({"Person - Email": "bad@", "Contact": "  José   MUÑOZ "}, columns) == "jose munoz"
    assert derive_key({"Person - Email": "N/A", "Contact": "-"}, columns) is None


def test_also_from_naming_an_entity_the_mapping_does_not_declare_is_a_one_line_error():
    with pytest.raises(MappingError, match=r"t.toml: entities.person.also_from.dael: the mapping has no "
                                           r"\[entities.dael\]"):
        compile_toml({"deal": DEAL, "person": {"id": "PID", "also_from": {"dael": {"id": "X"}}}})


def test_also_from_its_own_entity_or_with_a_match_key_is_rejected_with_the_fix():
    with pytest.raises(MappingError, match=r"entities.deal.also_from.deal: an entity cannot be read also from"):
        compile_toml({"deal": {**DEAL, "also_from": {"deal": DEAL}}})
    with pytest.raises(MappingError, match=r"entities.person.also_from.deal.match: unknown key \(files are "
                                           r"matched to deal by \[entities.deal\].match\)"):
        compile_toml({"deal": DEAL, "person": {"id": "PID", "also_from": {"deal": {"id": "X", "match": "*"}}}})


def test_also_from_tables_need_an_id_and_valid_fields():
    with pytest.raises(MappingError, match=r"entities.person.also_from.deal.id: missing"):
        compile_toml({"deal": DEAL, "person": {"id": "PID", "also_from": {"deal": {"fields": {}}}}})
    with pytest.raises(MappingError, match=r"entities.organization.also_from.deal.fields.name: required"):
        compile_toml({"deal": DEAL, "organization": {"id": "OID", "fields": {"name": "N"},
                                                     "also_from": {"deal": {"id": {"derive": ["Company"]}}}}})
    with pytest.raises(MappingError, match=r"entities.person.also_from: must be tables like "
                                           r"\[entities.person.also_from.deal\]"):
        compile_toml({"deal": DEAL, "person": {"id": "PID", "also_from": ["deal"]}})


def test_derive_must_list_column_names_and_only_gives_text_fields():
    with pytest.raises(MappingError, match=r"entities.deal.id.derive: a non-empty list of column names"):
        compile_toml({"deal": {"id": {"derive": []}, "fields": {"title": "Title"}}})
    with pytest.raises(MappingError, match=r"entities.deal.fields.value.derive: gives a text key"):
        compile_toml({"deal": {**DEAL, "fields": {"title": "Title", "value": {"derive": ["V"]}}}})


def test_a_mapping_with_also_from_lists_it_under_the_entity_whose_files_it_reads():
    m = compile_toml({"deal": DEAL, "person": {"id": "PID", "also_from": {"deal": {"id": {"derive": ["E"]}}}}})
    (person,) = m.also["deal"]
    assert (person.entity, person.also_from, person.match) == ("person", "deal", [])
    assert m.entity_for_file("deals.csv").entity == "deal"  # file matching is unchanged


CONTACTS_MAPPING = """
[entities.person]
match = ["*contacts*"]
id = "Record ID"
[entities.person.fields]
name = "Name"

[entities.lead.also_from.person]
if = { column = "Lifecycle Stage", is = "Lead" }
id = { template = "contact-{Record ID}" }
[entities.lead.also_from.person.fields]
title = { column = "Name", required = true }
person_id = "Record ID"
"""


@READER_PATHS
def test_a_contacts_export_also_loads_as_leads_only_the_rows_whose_if_holds(tmp_path, parallel):
    (tmp_path / "m.toml").write_text(CONTACTS_MAPPING, encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(
        "Record ID,Name,Lifecycle Stage\n1,Ann,Lead\n2,Bob,Customer\n3,Cy, lead \n4,,Lead\n", encoding="utf-8")
    config = parse_config({"warehouse": {"path": str(tmp_path / "w.db")}, "sources": {"hs": {
        "type": "spreadsheet", "path": "contacts.csv", "mapping": "m.toml"}}}, path=tmp_path / "c.toml", environ={})
    summary = run_sync(config, parallel=parallel)
    db = sqlite3.connect(tmp_path / "w.db")
    assert db.execute("select source_id, title, person_id from leads order by source_id").fetchall() == [
        ("contact-1", "Ann", "1"), ("contact-3", "Cy", "3")]
    assert db.execute("select count(*) from persons").fetchone() == (4,)
    assert db.execute('select entity, line, "column" from quarantine').fetchall() == [("lead", 5, "Name")]
    assert_read_is_loaded_plus_quarantined(summary)
    (leads,) = [e for e in summary.entities if e.entity == "lead"]
    assert (leads.read, leads.inserted, leads.quarantined) == (3, 2, 1)


def test_an_also_from_if_is_checked_like_a_when_condition():
    with pytest.raises(MappingError, match=r"entities.lead.also_from.person.if.column: the column to test"):
        compile_toml({"person": {"id": "ID"}, "lead": {"id": "LID", "fields": {"title": "T"}, "also_from": {
            "person": {"if": {"is": "Lead"}, "id": "ID", "fields": {"title": "Name"}}}}})
    with pytest.raises(MappingError, match=r"entities.person.also_from.lead: no file is matched to lead"):
        compile_toml({"lead": {"also_from": {"person": {"id": "ID", "fields": {"title": "T"}}}},
                      "person": {"id": "PID", "also_from": {"lead": {"id": "X"}}}})
