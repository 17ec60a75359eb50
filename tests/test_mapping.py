"""Mapping files: validation messages, parsing by model type, lookups, and the unvalidated build path."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from crmsync.errors import MappingError
from crmsync.mapping import Rejection, builtin_mappings, compile_mapping, load_mapping
from crmsync.model import ENTITIES, DealStatus, LeadStatus, StageCategory

DEAL_ROW = {
    "ID": "7", "Title": " Café Olé ", "Status": "Ganado", "Value": "€1.234,56", "Currency": "",
    "Stage": "Propuesta", "Probability": "60", "Created": "2025-03-01 10:00:00",
    "Expected close date": "2025-04-15", "Lead source": "Web", "Unmapped column": "kept in raw",
}


def mapping(**entities):
    return compile_mapping({"entities": entities}, name="t", where="t.toml", overrides={})


def test_builtin_spreadsheet_preset_converts_a_messy_deal_row():
    em = load_mapping("spreadsheet", overrides={"date_order": "YMD"}).entity("deal")
    deal = em.convert(DEAL_ROW, "demo")
    assert not isinstance(deal, Rejection), deal
    assert deal.source_id == "7" and deal.title == "Café Olé"
    assert deal.status is DealStatus.WON
    assert (deal.value, deal.currency) == (Decimal("1234.56"), "EUR")
    assert deal.stage_category is StageCategory.PROPOSAL and deal.stage_name == "Propuesta"
    assert deal.add_time == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert deal.expected_close_date == date(2025, 4, 15)
    assert deal.custom == {"Lead source": "Web"}
    assert deal.raw["Unmapped column"] == "kept in raw" and "Currency" not in deal.raw


def test_records_built_without_validation_equal_validated_ones():
    em = load_mapping("spreadsheet", overrides={"date_order": "YMD"}).entity("deal")
    deal = em.convert(DEAL_ROW, "demo")
    assert type(deal).model_validate(deal.model_dump()) == deal


def test_unknown_stage_is_reported_not_guessed():
    em = load_mapping("spreadsheet", overrides={"date_order": "YMD"}).entity("deal")
    deal = em.convert({**DEAL_ROW, "Stage": "Demo scheduled"}, "demo")
    assert deal.stage_category is None and deal.stage_name == "Demo scheduled"
    assert em.unmapped == {("stage_category", "Demo scheduled"): 1}


def test_lead_status_outside_the_lookup_is_rejected_with_the_fix():
    em = load_mapping("spreadsheet").entity("lead")
    result = em.convert({"ID": "L1", "Title": "x", "Status": "Hot lead"}, "demo")
    assert isinstance(result, Rejection)
    assert result.column == "Status" and result.value == "Hot lead"
    assert "add it to [lookups.lead_status]" in result.reason


def test_lead_status_words_in_spanish_map_to_canonical_statuses():
    em = load_mapping("spreadsheet").entity("lead")
    cases = [("En proceso", LeadStatus.WORKING), ("CONVERTIDO", LeadStatus.CONVERTED), ("", LeadStatus.NEW)]
    for word, status in cases:
        assert em.convert({"ID": "L1", "Title": "x", "Status": word}, "s").status is status


def test_unparseable_value_is_rejected_naming_column_value_and_reason():
    em = load_mapping("spreadsheet", overrides={"date_order": "YMD"}).entity("deal")
    result = em.convert({**DEAL_ROW, "Value": "TBD"}, "demo")
    assert isinstance(result, Rejection)
    assert (result.column, result.value) == ("Value", "TBD")
    assert result.reason


def test_missing_required_title_is_rejected():
    em = load_mapping("spreadsheet", overrides={"date_order": "YMD"}).entity("deal")
    result = em.convert({**DEAL_ROW, "Title": "N/A"}, "demo")
    assert isinstance(result, Rejection) and "title is required" in result.reason


def test_missing_id_is_rejected():
    em = load_mapping("spreadsheet").entity("organization")
    result = em.convert({"ID": " ", "Name": "Acme"}, "demo")
    assert isinstance(result, Rejection) and "missing id" in result.reason


def test_person_keeps_every_email_and_phone_raw_beside_normalized():
    em = load_mapping("spreadsheet", overrides={"phone_region": "ES", "date_order": "DMY"}).entity("person")
    person = em.convert(
        {"ID": "1", "Name": "José", "Email": " JOSE@Cafe.es; bad@", "Email 2": "j@gmail.com",
         "Phone": "612 34 56 78", "Phone 2": "N/A"},
        "demo",
    )
    assert [(e.raw, e.normalized, e.label) for e in person.emails] == [
        ("JOSE@Cafe.es", "jose@cafe.es", "work"), ("bad@", None, "work"), ("j@gmail.com", "j@gmail.com", "other")
    ]
    assert person.emails[1].problem
    assert [(p.raw, p.normalized) for p in person.phones] == [("612 34 56 78", "+34612345678")]
    assert person.primary_email == "jose@cafe.es"


def test_memoised_columns_never_share_mutable_values_between_records():
    em = load_mapping("spreadsheet").entity("lead")
    a = em.convert({"ID": "1", "Title": "x", "Labels": "hot, warm"}, "s")
    b = em.convert({"ID": "2", "Title": "y", "Labels": "hot, warm"}, "s")
    a.labels.append("changed")
    assert b.labels == ["hot", "warm"]


def test_custom_fields_keep_human_names_and_parse_types():
    em = load_mapping("spreadsheet", overrides={"date_order": "DMY"}).entity("lead")
    lead = em.convert({"ID": "1", "Title": "x", "Budget confirmed": "Sí", "Timeline": "15/04/2026"}, "s")
    assert lead.custom == {"Budget (BANT)": True, "Timeline (BANT)": date(2026, 4, 15)}


def test_mapping_errors_name_file_entity_and_field_all_at_once():
    with pytest.raises(MappingError) as info:
        compile_mapping(
            {
                "entities": {
                    "deal": {
                        "id": "ID",
                        "fields": {"title": "T", "valeu": "V", "status": {"column": "S", "lookup": "nope"}},
                    },
                    "widget": {"id": "ID"},
                    "lead": {"fields": {"title": "T"}},
                },
                "mapping": {"date_order": "DDMM"},
            },
            name="mine", where="my_mapping.toml", overrides={},
        )
    msg = str(info.value)
    assert msg.startswith("my_mapping.toml: ")
    for expected in ("entities.deal.fields.valeu: deal has no such field",
                     "entities.deal.fields.status.lookup: no [lookups.nope] table",
                     "entities.widget: unknown entity", "entities.lead.id: missing",
                     "mapping.date_order: 'DDMM' is not one of"):
        assert expected in msg


def test_required_model_field_left_unmapped_is_a_mapping_error():
    with pytest.raises(MappingError, match="entities.deal.fields.title: required by the deal entity but not mapped"):
        mapping(deal={"id": "ID", "fields": {"value": "V"}})


def test_lookup_word_mapped_to_two_canonical_values_is_an_error():
    with pytest.raises(MappingError, match="'done' maps to both 'won' and 'lost'"):
        compile_mapping({"lookups": {"s": {"won": ["Done"], "lost": ["done"]}}}, name="t", where="t", overrides={})


def test_enum_field_without_lookup_accepts_canonical_words_only():
    em = mapping(deal={"id": "ID", "fields": {"title": "T", "status": "S"}}).entity("deal")
    assert em.convert({"ID": "1", "T": "x", "S": "WON"}, "s").status is DealStatus.WON
    assert isinstance(em.convert({"ID": "1", "T": "x", "S": "closed"}, "s"), Rejection)


def test_unknown_currency_code_is_rejected():
    em = mapping(deal={"id": "ID", "fields": {"title": "T", "currency": "C"}}).entity("deal")
    result = em.convert({"ID": "1", "T": "x", "C": "Euro"}, "s")
    assert isinstance(result, Rejection) and result.column == "C"
    assert em.convert({"ID": "1", "T": "x", "C": "eur"}, "s").currency == "EUR"


def test_unknown_preset_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(MappingError, match="no such built-in preset.*spreadsheet"):
        load_mapping("salesforse")
    with pytest.raises(MappingError, match="mapping file not found"):
        load_mapping("mine.toml", base_dir=tmp_path)


def test_user_mapping_file_is_loaded_relative_to_the_config(tmp_path):
    (tmp_path / "m.toml").write_text(
        '[entities.organization]\nid = "Id"\n[entities.organization.fields]\nname = "Org"\n'
    )
    m = load_mapping("m.toml", base_dir=tmp_path)
    assert m.entity("organization").convert({"Id": 5, "Org": "Acme"}, "s").source_id == "5"


def test_every_builtin_preset_compiles():
    for name in builtin_mappings():
        assert load_mapping(name).entities


def test_the_generic_preset_maps_every_entity_a_spreadsheet_usually_holds():
    assert set(load_mapping("spreadsheet").entities) >= {"user", "organization", "person", "lead", "deal"}
    assert set(ENTITIES) >= set(load_mapping("spreadsheet").entities)


def test_constant_values_fill_fields_and_custom_fields_for_every_row():
    em = mapping(stage_change={
        "id": "Id",
        "fields": {"deal_id": "OpportunityId", "field": {"value": "stage"}, "new_value": "StageName",
                   "changed_at": "CreatedDate", "evidence": {"value": "export_history"}},
        "custom": {"Exported by": {"value": "Data Loader"}},
    }).entity("stage_change")
    change = em.convert({"Id": "h1", "OpportunityId": "o1", "StageName": "Won", "CreatedDate": "2021-04-28"}, "s")
    assert (change.field, change.evidence, change.new_value) == ("stage", "export_history", "Won")
    assert change.custom == {"Exported by": "Data Loader"}


def test_constant_for_an_enum_field_is_checked_and_canonical():
    em = mapping(deal={"id": "ID", "fields": {"title": "T", "status": {"value": "WON"}}}).entity("deal")
    assert em.convert({"ID": "1", "T": "x"}, "s").status is DealStatus.WON
    with pytest.raises(MappingError, match=r"entities.deal.fields.status.value: 'done' is not one of"):
        mapping(deal={"id": "ID", "fields": {"title": "T", "status": {"value": "done"}}})


def test_a_field_needs_exactly_one_of_column_path_or_value():
    with pytest.raises(MappingError, match=r"entities.deal.fields.currency: give exactly one of column, path, "
                                           r"template, derive or value"):
        mapping(deal={"id": "ID", "fields": {"title": "T", "currency": {"default": "EUR"}}})


def test_column_aliases_use_the_first_name_the_file_has():
    em = mapping(deal={"id": ["Deal - ID", "ID"], "fields": {
        "title": "T", "currency": {"column": ["Deal - Currency", "Deal - Currency of value"]}}}).entity("deal")
    headers = ["ID", "T", "Deal - Currency of value"]
    assert em.missing_columns(headers) == []
    em.bind(headers)
    deal = em.convert({"ID": "9", "T": "x", "Deal - Currency of value": "MXN"}, "s")
    assert (deal.source_id, deal.currency) == ("9", "MXN")
    assert em.missing_columns(["T"]) == ["Deal - Currency / Deal - Currency of value", "Deal - ID / ID"]


def test_custom_money_is_stored_as_amount_and_currency():
    em = mapping(organization={"id": "ID", "fields": {"name": "N"},
                               "custom": {"Revenue": {"column": "R", "parse": "money"}}}).entity("organization")
    org = em.convert({"ID": "1", "N": "Acme", "R": "$5M"}, "s")
    assert org.custom == {"Revenue": {"amount": "5000000", "currency": "USD"}}
