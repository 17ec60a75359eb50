"""Mapping language: templates, multi-value cells (split/pattern/pick) and conditional values (when).

Property tests pin the parsing rules on any input; example tests pin the vendor cases they were made for
(Salesforce IsWon/IsClosed, HubSpot names and association cells).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmsync.errors import MappingError
from crmsync.mapping import Rejection, compile_mapping
from crmsync.mapping_exprs import Extract, Template
from crmsync.model import DealStatus

# Cell text as exports write it: letters, digits, spaces and punctuation, sometimes blank or a placeholder.
CELL = st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
                 st.sampled_from(["", "  ", "N/A", "-", "null"]))
IDS = st.lists(st.integers(min_value=1, max_value=10**12).map(str), max_size=6)


def mapping(lookups=None, **entities):
    return compile_mapping({"entities": entities, "lookups": lookups or {}}, name="t", where="t.toml", overrides={})


def error(**entities) -> str:
    with pytest.raises(MappingError) as info:
        mapping(**entities)
    return str(info.value)


# ------------------------------------------------------------------ templates


@given(first=CELL, last=CELL)
def test_template_never_leaves_double_or_edge_spaces_and_is_none_only_when_every_column_is_blank(first, last):
    out = Template.parse("{First Name} {Last Name}", "t").render({"First Name": first, "Last Name": last})
    from crmsync.values import parse_text

    parts = [p for p in (parse_text(first), parse_text(last)) if p is not None]
    if not parts:
        assert out is None
    else:
        assert out == " ".join(" ".join(parts).split())
        assert "  " not in out and out == out.strip()


def test_template_drops_the_separator_of_a_blank_column_and_keeps_prefix_and_suffix():
    t = Template.parse("<{Street}, {City}, {Country}>", "t")
    assert t.render({"Street": "1 Main St", "City": "", "Country": "USA"}) == "<1 Main St, USA>"
    assert t.render({"Street": "", "City": "N/A", "Country": "USA"}) == "<USA>"
    assert t.render({}) is None


def test_template_field_builds_a_full_name_from_first_and_last_name():
    em = mapping(person={"id": "Record ID", "fields": {"name": {"template": "{First Name} {Last Name}"}}}).entity(
        "person")
    names = [em.convert({"Record ID": "1", "First Name": f, "Last Name": last}, "s").name
             for f, last in [("José", "Muñoz"), ("", "Okafor"), (" Ann ", " "), ("", "")]]
    assert names == ["José Muñoz", "Okafor", "Ann", None]


def test_template_id_can_prefix_the_record_id():
    em = mapping(lead={"id": {"template": "contact-{Record ID}"}, "fields": {"title": "T"}}).entity("lead")
    assert em.convert({"Record ID": "7001", "T": "x"}, "s").source_id == "contact-7001"


def test_template_columns_are_each_reported_when_missing_from_a_file():
    em = mapping(person={"id": "ID", "fields": {"name": {"template": "{First Name} {Last Name}"}}}).entity("person")
    assert em.missing_columns(["ID", "First Name"]) == ["Last Name"]


@pytest.mark.parametrize(("template", "message"), [
    ("First Name", "must be text naming columns in braces"),
    ("{First Name} {Last", "unbalanced brace"),
    (42, "must be text naming columns in braces"),
])
def test_bad_template_is_a_one_line_error_naming_the_field(template, message):
    msg = error(person={"id": "ID", "fields": {"name": {"template": template}}})
    assert f"t.toml: entities.person.fields.name.template: {message}" in msg and "\n" not in msg


# ------------------------------------------------------------------ split / pattern / pick


@given(ids=IDS, sep=st.sampled_from([";", "; ", " ;"]))
def test_split_gives_every_id_in_order_and_first_gives_the_first(ids, sep):
    cell = sep.join(ids)
    extract = Extract.parse({"split": ";"}, "t", [])
    assert extract.items(cell) == ids
    assert extract.first(cell) == (ids[0] if ids else None)


@given(pairs=st.lists(st.tuples(st.text("abcxyz ,ÁÑ.", max_size=10), st.integers(1, 10**9)), max_size=5))
def test_pattern_takes_the_id_in_parentheses_after_each_name_even_with_commas_in_names(pairs):
    cell = ", ".join(f"{name} ({n})" for name, n in pairs)
    assert Extract.parse({"pattern": r"\((\d+)\)"}, "t", []).items(cell) == [str(n) for _, n in pairs]


def test_split_and_pattern_together_keep_parts_with_a_match():
    extract = Extract.parse({"split": ";", "pattern": r"\d+"}, "t", [])
    assert extract.items("Acme (5001); no id; 5002") == ["5001", "5002"]


def test_first_of_a_multi_value_cell_fills_a_single_id_field_and_all_fill_a_custom_list():
    em = mapping(deal={"id": "ID", "fields": {
        "title": "T", "person_id": {"column": "Associated Contact IDs", "split": ";"},
        "org_id": {"column": "Associated Company", "pattern": r"\((\d+)\)\s*$", "split": ","},
    }, "custom": {"Contacts": {"column": "Associated Contact IDs", "split": ";", "pick": "all"}}}).entity("deal")
    deal = em.convert({"ID": "1", "T": "x", "Associated Contact IDs": "7001;7002",
                       "Associated Company": "Acme (5001), Globex (5002)"}, "s")
    assert (deal.person_id, deal.org_id, deal.custom) == ("7001", "5001", {"Contacts": ["7001", "7002"]})
    empty = em.convert({"ID": "2", "T": "x", "Associated Contact IDs": " ; "}, "s")
    assert (empty.person_id, empty.custom) == (None, {})


def test_split_list_field_takes_every_value_and_lists_are_never_shared_between_records():
    em = mapping(lead={"id": "ID", "fields": {"title": "T", "labels": {"column": "L", "split": "|"}}}).entity("lead")
    a = em.convert({"ID": "1", "T": "x", "L": "Hot | Warm, really"}, "s")
    b = em.convert({"ID": "2", "T": "x", "L": "Hot | Warm, really"}, "s")
    assert a.labels == ["Hot", "Warm, really"]
    a.labels.append("changed")
    assert b.labels == ["Hot", "Warm, really"]


def test_each_split_value_is_parsed_with_the_field_type_and_a_bad_one_quarantines_the_row():
    em = mapping(organization={"id": "ID", "fields": {"name": "N"}, "custom": {
        "Sizes": {"column": "S", "split": "/", "pick": "all", "parse": "int"}}}).entity("organization")
    assert em.convert({"ID": "1", "N": "a", "S": "10 / 250"}, "s").custom == {"Sizes": [10, 250]}
    bad = em.convert({"ID": "1", "N": "a", "S": "10 / lots"}, "s")
    assert isinstance(bad, Rejection) and (bad.column, bad.value) == ("S", "10 / lots")


@pytest.mark.parametrize(("field", "message"), [
    ({"column": "C", "split": ";", "pick": "all"}, "pick: \"all\" gives a list, but person_id holds one value"),
    ({"column": "C", "pick": "first"}, "pick: needs split or pattern"),
    ({"column": "C", "pattern": "(a)(b)"}, "pattern: has 2 groups"),
    ({"column": "C", "pattern": "(unclosed"}, "pattern: not a valid regular expression"),
    ({"column": "C", "split": ""}, "split: must be the non-empty text between values"),
    ({"column": "C", "split": ";", "pick": "last"}, "pick: 'last' is not one of first, all"),
])
def test_bad_multi_value_options_are_one_line_errors_with_the_fix(field, message):
    msg = error(deal={"id": "ID", "fields": {"title": "T", "person_id": field}})
    assert f"entities.deal.fields.person_id.{message}" in msg and "\n" not in msg


def test_an_id_is_one_cell_or_a_template_never_a_split_or_a_case():
    for id_spec in ({"column": "ID", "split": ";"}, {"when": [{"if": {"column": "A", "empty": False}, "column": "A"}]}):
        msg = error(deal={"id": id_spec, "fields": {"title": "T"}})
        assert "entities.deal.id: an id is read with column, path or template (not value, when or split)" in msg


def test_emails_cannot_be_split_again():
    msg = error(person={"id": "ID", "fields": {"emails": {"column": "E", "split": ";"}}})
    assert "entities.person.fields.emails.split: emails cells are already split" in msg


# ------------------------------------------------------------------ when


SALESFORCE_STATUS = {
    "when": [{"if": {"column": "IsWon", "is": True}, "value": "won"},
             {"if": {"column": "IsClosed", "is": True}, "value": "lost"},
             {"if": {"column": "IsClosed", "is": False}, "value": "open"}],
    "column": "StageName", "lookup": "deal_status", "default": "open",
}
CLOSE_TIME = {"when": [{"if": {"column": "IsClosed", "is": True}, "column": "CloseDate"}]}


def salesforce_deals():
    return mapping(
        {"deal_status": {"won": ["Closed Won"], "lost": ["Closed Lost"]}},
        deal={"id": "Id", "fields": {"title": "Name", "status": SALESFORCE_STATUS, "close_time": CLOSE_TIME}},
    ).entity("deal")


@pytest.mark.parametrize(("is_won", "is_closed", "stage", "status", "closed"), [
    ("TRUE", "TRUE", "Negotiation", DealStatus.WON, True),      # the flags win over the stage name
    ("FALSE", "TRUE", "Closed Won", DealStatus.LOST, True),     # closed and not won: lost, whatever the stage says
    ("false", "false", "Closed Won", DealStatus.OPEN, False),   # not closed: open, whatever the stage says
    ("", "", "Closed Won", DealStatus.WON, False),              # no flags (a report export): the stage lookup
    ("", "", "Prospecting", DealStatus.OPEN, False),            # unknown stage: the default
])
def test_salesforce_status_comes_from_iswon_isclosed_before_the_stage_name(is_won, is_closed, stage, status, closed):
    deal = salesforce_deals().convert({"Id": "1", "Name": "x", "IsWon": is_won, "IsClosed": is_closed,
                                       "StageName": stage, "CloseDate": "2021-04-30"}, "s")
    assert deal.status is status
    assert deal.close_time == (datetime(2021, 4, 30, tzinfo=UTC) if closed else None)


def test_unreadable_condition_cell_quarantines_the_row_naming_that_column():
    result = salesforce_deals().convert({"Id": "1", "Name": "x", "IsWon": "maybe"}, "s")
    assert isinstance(result, Rejection)
    assert (result.column, result.value) == ("IsWon", "maybe") and "yes/no" in result.reason


def test_when_conditions_compare_text_ignoring_case_and_accents_and_test_blanks():
    em = mapping(deal={"id": "ID", "fields": {"title": "T", "lost_reason": {"when": [
        {"if": {"column": "Stage", "is": ["Perdido", "closedlost"]}, "column": "Reason"},
        {"if": [{"column": "Stage", "is": "Cerrado"}, {"column": "Reason", "empty": True}], "value": "(none given)"},
    ]}}}).entity("deal")

    def reason(stage, why):
        return em.convert({"ID": "1", "T": "x", "Stage": stage, "Reason": why}, "s").lost_reason

    assert [reason(" PERDÍDO ", "Price"), reason("Open", "Price"), reason("cerrado", ""), reason("cerrado", "x")] == [
        "Price", None, "(none given)", None]


def test_when_columns_are_reported_missing_and_a_file_without_them_falls_back():
    em = salesforce_deals()
    assert em.missing_columns(["Id", "Name", "StageName"]) == ["CloseDate", "IsClosed", "IsWon"]
    em.bind(["Id", "Name", "StageName"])
    assert em.convert({"Id": "1", "Name": "x", "StageName": "Closed Lost"}, "s").status is DealStatus.LOST


def test_when_case_date_columns_take_part_in_day_month_detection():
    assert salesforce_deals().columns("datetime") == ["CloseDate"]


BOOL_CELL = st.sampled_from(["TRUE", "FALSE", "true", "false", "1", "0", "Sí", "no", "", " ", None])


@given(is_won=BOOL_CELL, is_closed=BOOL_CELL, stage=st.sampled_from(["Closed Won", "Closed Lost", "Prospecting", ""]))
def test_salesforce_status_rule_holds_for_any_flag_cells(is_won, is_closed, stage):
    from crmsync.values import parse_bool

    deal = salesforce_deals().convert({"Id": "1", "Name": "x", "IsWon": is_won, "IsClosed": is_closed,
                                       "StageName": stage}, "s")
    won, closed = parse_bool(is_won), parse_bool(is_closed)
    by_stage = {"Closed Won": DealStatus.WON, "Closed Lost": DealStatus.LOST}.get(stage, DealStatus.OPEN)
    expected = (DealStatus.WON if won else DealStatus.LOST if closed else DealStatus.OPEN if closed is False
                else by_stage)
    assert deal.status is expected


def test_a_case_column_left_blank_gets_the_default_and_a_required_field_with_no_case_is_quarantined():
    em = mapping(deal={"id": "ID", "fields": {
        "title": {"when": [{"if": {"column": "Kind", "is": "company"}, "column": "Company"}], "column": "Person",
                  "required": True},
        "lost_reason": {"when": [{"if": {"column": "Kind", "is": "company"}, "column": "Why"}], "default": "?"},
    }}).entity("deal")
    assert em.convert({"ID": "1", "Kind": "company", "Company": "Acme", "Why": ""}, "s").lost_reason == "?"
    assert em.convert({"ID": "1", "Kind": "person", "Person": "Ann"}, "s").title == "Ann"
    blank = em.convert({"ID": "1", "Kind": "company", "Company": " ", "Person": "Ann"}, "s")
    assert isinstance(blank, Rejection) and (blank.column, blank.reason) == ("Company", "title is required but empty")
    only_cases = mapping(deal={"id": "ID", "fields": {
        "title": {"when": [{"if": {"column": "Kind", "is": "company"}, "column": "Company"}], "required": True},
    }}).entity("deal").convert({"ID": "1", "Kind": "person"}, "s")
    assert isinstance(only_cases, Rejection)
    assert (only_cases.column, only_cases.value) == (None, None)
    assert only_cases.reason == "title is required but empty (no case of its when holds)"


@pytest.mark.parametrize(("field", "message"), [
    ({"when": [{"if": {"column": "IsWon", "is": True}, "value": "victory"}]}, "when[0].value: 'victory' is not one of"),
    ({"when": [{"if": {"column": "IsWon", "is": True}}]}, "when[0]: give exactly one of value"),
    ({"when": [{"value": "won"}]}, "when[0].if: missing"),
    ({"when": [{"if": {"column": "IsWon", "is": 1}, "value": "won"}]}, "when[0].if.is: must be true, false"),
    ({"when": [{"if": {"column": "IsWon"}, "value": "won"}]}, "when[0].if: give exactly one of is"),
    ({"when": [{"if": {"is": True}, "value": "won"}]}, "when[0].if.column: the column to test is missing"),
    ({"when": [{"if": {"column": "X", "is": True, "equals": 1}, "value": "won"}]}, "when[0].if.equals: unknown key"),
    ({"when": {"if": {"column": "X", "is": True}}}, "when: must be a list of cases"),
])
def test_bad_when_cases_are_one_line_errors_naming_the_case(field, message):
    msg = error(deal={"id": "ID", "fields": {"title": "T", "status": field}})
    assert f"t.toml: entities.deal.fields.status.{message}" in msg and "\n" not in msg


def test_a_plain_mapping_compiles_to_the_same_converter_as_before_the_new_keys():
    """Mappings that use none of template/split/when pay nothing for them: no new calls per row."""
    em = mapping(deal={"id": "ID", "fields": {"title": "T", "value": {"column": "V", "parse": "money"}}}).entity("deal")
    em.bind()
    source = em._convert_fields.__source__
    assert not re.search(r"\b(W\d+|CellFailed as|GET\d+)\b", source)


# ------------------------------------------------------------------ columns (a column per key)

DATE_ENTERED = {"pattern": r'^Date entered "(?P<stage>.+) \((?P<pipeline>[^()]+)\)"$', "key": "{pipeline}/{stage}"}
HEADERS = ["ID", "T", 'Date entered "Closed Won (Sales Pipeline)"', 'Date entered "Contract Sent (Partners)"',
           'Date exited "Closed Won (Sales Pipeline)"']


def stage_dates():
    em = mapping(deal={"id": "ID", "fields": {"title": "T", "stage_entered": {"columns": DATE_ENTERED}}}).entity("deal")
    em.bind(HEADERS)
    return em


def test_columns_read_every_matching_header_into_one_table_keyed_by_named_groups():
    deal = stage_dates().convert(dict(zip(HEADERS, ["1", "x", "2024-01-15 17:45", "", "2024-01-16 09:00"],
                                          strict=True)), "s")
    assert deal.stage_entered == {"Sales Pipeline/Closed Won": datetime(2024, 1, 15, 17, 45, tzinfo=UTC)}
    assert stage_dates().convert({"ID": "2", "T": "x"}, "s").stage_entered is None


def test_a_bad_cell_among_matched_columns_quarantines_the_row_naming_that_header():
    result = stage_dates().convert({"ID": "1", "T": "x", 'Date entered "Contract Sent (Partners)"': "soon"}, "s")
    assert isinstance(result, Rejection)
    assert (result.column, result.value) == ('Date entered "Contract Sent (Partners)"', "soon")


def test_custom_columns_without_a_key_use_the_patterns_one_group():
    em = mapping(deal={"id": "ID", "fields": {"title": "T"}, "custom": {
        "Exited": {"columns": {"pattern": r'^Date exited "(.+)"$'}, "parse": "date"}}}).entity("deal")
    em.bind(HEADERS)
    deal = em.convert({"ID": "1", "T": "x", 'Date exited "Closed Won (Sales Pipeline)"': "2024-01-16"}, "s")
    assert deal.custom == {"Exited": {"Closed Won (Sales Pipeline)": date(2024, 1, 16)}}


@pytest.mark.parametrize(("field", "message"), [
    ({"columns": {"pattern": "(?P<stage>.+)", "key": "{pipeline}"}}, "columns.key: must name the pattern's groups"),
    ({"columns": {"pattern": "(a)(b)"}}, "columns.key: missing (needed when the pattern has 2 groups"),
    ({"columns": {"pattern": "(", "key": "{x}"}}, "columns.pattern: not a valid regular expression"),
    ({"columns": "Date entered"}, "columns: must be a table like"),
    ({"column": "Stages"}, "stage_entered is a {key: value} table: read it with columns"),
])
def test_bad_columns_tables_are_one_line_errors(field, message):
    msg = error(deal={"id": "ID", "fields": {"title": "T", "stage_entered": field}})
    assert f"entities.deal.fields.stage_entered{'.' if message.startswith('columns') else ': '}{message}" in msg


def test_columns_for_a_one_value_field_is_an_error():
    msg = error(deal={"id": "ID", "fields": {"title": "T", "close_time": {"columns": DATE_ENTERED}}})
    assert "entities.deal.fields.close_time.columns: gives a {key: value} table, but close_time holds one value" in msg


def test_every_mapping_example_in_the_docs_compiles():
    """docs/mappings.md is what users copy: its layout example and each field example must load."""
    import tomllib
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "mappings.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    layout = [b for b in blocks if "[mapping]" in b]
    assert len(layout) == 1 and len(blocks) >= 5
    compile_mapping(tomllib.loads(layout[0]), name="doc", where="docs/mappings.md", overrides={})
    lookups = {"deal_status": {"won": ["Won"]}}
    homes = {"name": "person", "address": "organization", "labels": "lead"}
    for block in blocks:
        if block in layout:
            continue
        if "[entities." in block:  # a whole mapping (the also_from example)
            compile_mapping(tomllib.loads(block), name="doc", where="docs/mappings.md", overrides={})
            continue
        for key, spec in tomllib.loads(block).items():
            entity = homes.get(key, "deal")
            body = {"id": "ID", "fields": {"title": "T"} if entity in ("deal", "lead") else {}}
            if entity == "organization":
                body["fields"]["name"] = "N"
            if key == "id":
                body["id"] = spec
            elif key[0].isupper():
                body["custom"] = {key: spec}
            else:
                body["fields"][key] = spec
            compile_mapping({"entities": {entity: body}, "lookups": lookups}, name="doc", where=key, overrides={})
