"""Behaviour of the cell value parsers in crmsync.values, on real-world messy CRM export values."""

from __future__ import annotations

import contextlib
import doctest
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync import values
from crmsync.errors import ConfigError, ValueParseError
from crmsync.values import (
    PLACEHOLDERS,
    DateOrderDetector,
    Money,
    excel_serial_to_datetime,
    is_blank,
    normalize_email,
    normalize_phone,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_decimal,
    parse_money,
    parse_text,
    split_multi,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reason_of(excinfo: pytest.ExceptionInfo[ValueParseError]) -> str:
    return excinfo.value.reason


def test_module_docstring_examples_are_true():
    result = doctest.testmod(values, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10
    assert result.failed == 0


# --------------------------------------------------------------------------------------------------
# Blanks and text
# --------------------------------------------------------------------------------------------------

BLANKS = [
    None, "", "   ", "\t\n", "\u00a0", "\u200b", "\ufeff ", "N/A", "n/a", "NA", "#N/A", "-", "--",
    "\u2014", "None", "(none)", "NULL", "nil", "Not Set", "(not set)", "Select", "-- Select --",
    "Seleccione", "(blank)", float("nan"), Decimal("NaN"),
]  # fmt: skip


@pytest.mark.parametrize("raw", BLANKS)
def test_is_blank_recognises_empty_cells_and_placeholders(raw):
    assert is_blank(raw)


@pytest.mark.parametrize("raw", ["Unknown", "0", "x", "Nan", "Other", 0, 0.0, False, "#REF!", "?", "a"])
def test_is_blank_keeps_values_that_may_be_real_answers(raw):
    assert not is_blank(raw)


def test_placeholders_are_lowercase_and_frozen():
    assert isinstance(PLACEHOLDERS, frozenset)
    assert all(p == p.lower() and p == p.strip() for p in PLACEHOLDERS)
    assert "unknown" not in PLACEHOLDERS


@pytest.mark.parametrize(
    "parser",
    [
        parse_text,
        parse_bool,
        parse_decimal,
        parse_money,
        parse_date,
        parse_datetime,
        normalize_email,
        normalize_phone,
    ],
)
@pytest.mark.parametrize("raw", BLANKS)
def test_every_parser_returns_none_for_blank_input(parser, raw):
    assert parser(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Acme Corp  ", "Acme Corp"),
        ("Acme  \n Corp", "Acme  \n Corp"),  # only the ends are stripped
        ("\ufeffAcme", "Acme"),
        ("Unknown", "Unknown"),
        (12345.0, "12345"),  # zip code typed as a number in XLSX
        (12.5, "12.5"),
        (42, "42"),
        (True, "TRUE"),
        (Decimal("1.50"), "1.50"),
        (date(2021, 4, 15), "2021-04-15"),
    ],
)
def test_parse_text_strips_ends_and_reads_typed_cells(raw, expected):
    assert parse_text(raw) == expected


# --------------------------------------------------------------------------------------------------
# Booleans
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["TRUE", "true", "True", " yes ", "Y", "y", "1", "1.0", "Sí", "SÍ", "si", "SI", "x", "X", "✓",
     "verdadero", "VERDADERO", "on", "ON", "t", True, 1, 1.0, Decimal(1)],
)  # fmt: skip
def test_parse_bool_reads_true_spellings_in_english_and_spanish(raw):
    assert parse_bool(raw) is True


@pytest.mark.parametrize(
    "raw", ["FALSE", "false", "No", "NO", "n", "0", "0.0", "falso", "Falso", "off", "f", False, 0, 0.0]
)
def test_parse_bool_reads_false_spellings_in_english_and_spanish(raw):
    assert parse_bool(raw) is False


@pytest.mark.parametrize("raw", ["maybe", "yes please", "2", "si no", 2, -1, 0.5, date(2021, 1, 1), "tru"])
def test_parse_bool_refuses_anything_else(raw):
    with pytest.raises(ValueParseError) as excinfo:
        parse_bool(raw)
    assert reason_of(excinfo) == "not a yes/no value"
    assert excinfo.value.value == raw


# --------------------------------------------------------------------------------------------------
# Decimals
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234", "1234"),
        ("1234.56", "1234.56"),
        ("-12", "-12"),
        ("+12", "12"),
        ("1,234.56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1 234,56", "1234.56"),
        ("1\u00a0234,56", "1234.56"),  # no-break space from French locale exports
        ("1\u202f234,56", "1234.56"),  # narrow no-break space
        ("1'234.56", "1234.56"),  # Swiss
        ("12,34,567.50", "1234567.50"),  # Indian lakh grouping
        ("1,234,567", "1234567"),
        ("1.234.567", "1234567"),
        ("1.234.567,89", "1234567.89"),
        ("1,234", "1234"),  # one full thousands group: grouping
        ("1.234", "1234"),
        ("12.500", "12500"),
        ("0.125", "0.125"),  # a leading 0 is never a thousands group
        ("1234.567", "1234.567"),  # four-digit lead: not a grouping pattern
        ("1,5", "1.5"),
        ("1,23", "1.23"),
        ("0,5", "0.5"),
        (".5", "0.5"),
        ("12.", "12"),
        ("(123.45)", "-123.45"),
        ("( 1,200 )", "-1200"),
        ("1,234.00-", "-1234.00"),  # ERP trailing minus
        ("\u22125", "-5"),  # real minus sign
        ("- 12", "-12"),
        ("12.5K", "12500"),
        ("12.5k", "12500"),
        ("3M", "3000000"),
        ("3 MM", "3000000"),
        ("1.2B", "1200000000"),
        ("1.2bn", "1200000000"),
        ("1.234K", "1234"),  # a suffix makes a single separator decimal
        ("-2.5M", "-2500000"),
        ("45%", "45"),
        ("45 %", "45"),
        ("12.5%", "12.5"),
        ("1.5E+06", "1500000"),
        ("1.23457E+11", "123457000000"),
        ("  42  ", "42"),
    ],
)
def test_parse_decimal_reads_messy_spreadsheet_numbers(raw, expected):
    assert parse_decimal(raw) == Decimal(expected)


@pytest.mark.parametrize(
    ("raw", "sep", "expected"),
    [
        ("1.234", ".", "1.234"),
        ("1,234", ",", "1.234"),
        ("1.234", ",", "1234"),
        ("1,234", ".", "1234"),
        ("1,234.5", ".", "1234.5"),
        ("1.234,5", ",", "1234.5"),
        ("1 234,5", ",", "1234.5"),
        ("12", ",", "12"),
    ],
)
def test_parse_decimal_decimal_separator_overrides_the_guess(raw, sep, expected):
    assert parse_decimal(raw, decimal_separator=sep) == Decimal(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1234, Decimal(1234)),
        (0.1, Decimal("0.1")),
        (1234.5, Decimal("1234.5")),
        (Decimal("9.99"), Decimal("9.99")),
    ],
)
def test_parse_decimal_accepts_typed_xlsx_numbers_exactly(raw, expected):
    assert parse_decimal(raw) == expected
    assert isinstance(parse_decimal(raw), Decimal)


@pytest.mark.parametrize(
    ("raw", "kwargs", "reason"),
    [
        ("abc", {}, "not a number"),
        ("$12", {}, "not a number"),  # currency belongs to parse_money
        ("12 34", {}, "irregular digit grouping"),
        ("1,234.567,89", {}, "irregular digit grouping"),
        ("1.2.3,4", {}, "irregular digit grouping"),
        ("1.5", {"decimal_separator": ","}, "not a number with ',' as decimal separator"),
        ("1,5", {"decimal_separator": "."}, "not a number with '.' as decimal separator"),
        ("(-5)", {}, "not a number"),
        ("1e5x", {}, "not a number"),
        ("inf", {}, "not a number"),
        ("NaN", {}, "not a number"),
        ("%", {}, "not a number"),
        ("1,234" * 40, {}, "not a number"),
        (True, {}, "not a number (got a yes/no value)"),
        (float("inf"), {}, "not a number"),
        (date(2021, 1, 1), {}, "not a number"),
    ],
)
def test_parse_decimal_refuses_unreadable_numbers_with_a_reason(raw, kwargs, reason):
    with pytest.raises(ValueParseError) as excinfo:
        parse_decimal(raw, **kwargs)
    assert reason in reason_of(excinfo)


def test_parse_decimal_rejects_an_unknown_separator_setting_as_config_error():
    with pytest.raises(ConfigError):
        parse_decimal("1", decimal_separator=";")


# --------------------------------------------------------------------------------------------------
# Money
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "amount", "currency"),
    [
        ("$12.5K", "12500", "USD"),
        ("€1.234,56", "1234.56", "EUR"),
        ("1,234.56 USD", "1234.56", "USD"),
        ("1.234,56 €", "1234.56", "EUR"),
        ("1.234,56\u00a0€", "1234.56", "EUR"),
        ("USD 1,234.56", "1234.56", "USD"),
        ("usd 5", "5", "USD"),
        ("-$50", "-50", "USD"),
        ("$-50", "-50", "USD"),
        ("($1,200.00)", "-1200.00", "USD"),
        ("$(1,200.00)", "-1200.00", "USD"),
        ("£3", "3", "GBP"),
        ("R$ 1.500,00", "1500.00", "BRL"),
        ("MX$1,000", "1000", "MXN"),
        ("CA$ 99.99", "99.99", "CAD"),
        ("C$5", "5", "CAD"),
        ("A$5", "5", "AUD"),
        ("US$ 100", "100", "USD"),
        ("¥1,000", "1000", "JPY"),
        ("CN¥1,000", "1000", "CNY"),
        ("₹12,34,567", "1234567", "INR"),
        ("S/. 100", "100", "PEN"),
        ("CHF 1'234.50", "1234.50", "CHF"),
        ("COP 1.500.000", "1500000", "COP"),
        ("ARS 2.500", "2500", "ARS"),
        ("CLP$ 10.000", "10000", "CLP"),
        ("1.2M EUR", "1200000", "EUR"),
        ("12,50 $", "12.50", "USD"),  # French-Canadian style: symbol after
        ("$1,000 CAD", "1000", "CAD"),  # a bare $ defers to a dollar-family code
        ("$ -", "0", "USD"),  # Excel accounting format's zero
        ("1234", "1234", None),
    ],
)
def test_parse_money_reads_symbols_codes_and_both_grouping_conventions(raw, amount, currency):
    assert parse_money(raw) == Money(Decimal(amount), currency)


def test_parse_money_reads_european_grouping_with_trailing_euro_sign():
    assert parse_money("1.234,56 €") == Money(Decimal("1234.56"), "EUR")


@pytest.mark.parametrize(
    ("raw", "default", "currency"),
    [
        ("$1,000", "MXN", "MXN"),  # a Mexican CRM's $ is pesos
        ("$1,000", "cad", "CAD"),
        ("$1.000", "COP", "COP"),
        ("$1,000", "EUR", "USD"),  # EUR is not written with $: a bare $ stays USD
        ("$1,000", None, "USD"),
        ("1000", "EUR", "EUR"),
        ("€5", "USD", "EUR"),  # the cell's own symbol beats the default
        (1000, "GBP", "GBP"),
        (12.5, None, None),
    ],
)
def test_parse_money_dollar_sign_and_plain_amounts_follow_default_currency(raw, default, currency):
    money = parse_money(raw, default_currency=default)
    assert money is not None
    assert money.currency == currency


def test_parse_money_passes_decimal_separator_through():
    assert parse_money("€1.234", decimal_separator=",") == Money(Decimal("1234"), "EUR")
    assert parse_money("$1.234", decimal_separator=".") == Money(Decimal("1.234"), "USD")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("5 XYZ", "unknown currency code 'XYZ'"),
        ("12 mil", "unknown currency code 'mil'"),
        ("€5 USD", "two different currencies (EUR and USD)"),
        ("$5 EUR", "two different currencies ($ and EUR)"),
        ("abc", "not an amount"),
        ("EUR", "not an amount"),
        ("-$-5", "two minus signs"),
        ("45%", "not a number"),
        ("$ 12 34", "irregular digit grouping"),
        ("kr 100", "not a number"),  # kr is SEK/NOK/DKK/ISK: not guessed
    ],
)
def test_parse_money_refuses_unreadable_amounts_with_a_reason(raw, reason):
    with pytest.raises(ValueParseError) as excinfo:
        parse_money(raw)
    assert reason in reason_of(excinfo)


def test_parse_money_rejects_an_unknown_default_currency_as_config_error():
    with pytest.raises(ConfigError, match="ISO 4217"):
        parse_money("5", default_currency="EURO")


def test_money_is_an_immutable_amount_and_currency_pair():
    money = Money(Decimal("1"), "USD")
    assert (money.amount, money.currency) == (Decimal("1"), "USD")
    with pytest.raises(AttributeError):
        money.amount = Decimal("2")  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------------

APRIL_15 = date(2021, 4, 15)


@pytest.mark.parametrize(
    "raw",
    [
        "2021-04-15", "2021-04-15 00:00:00", "2021-04-15T10:00:00Z", "2021-04-15T23:30:00-05:00",
        "2021/04/15", "2021/4/15", "20210415", "15/04/2021", "04/15/2021", "4/15/2021", "15-04-21",
        "15.04.2021", "15 Apr, 2021", "Apr 15, 2021", "15 April 2021", "15-Apr-2021", "15-Apr-21",
        "April 15th, 2021", "Thursday, April 15, 2021", "Apr. 15 2021", "2021 Apr 15", "15 abr 2021",
        "15 ABR. 2021", "15 de abril de 2021", "15 de abril del 2021", "jueves, 15 de abril de 2021",
        "44301", "44301.75", 44301, 44301.75, Decimal("44301"), APRIL_15,
        datetime(2021, 4, 15, 10, 30), 20210415, "15/04/2021 10:30",
    ],
)  # fmt: skip
def test_parse_date_reads_every_common_export_form(raw):
    assert parse_date(raw) == APRIL_15


@pytest.mark.parametrize(
    ("raw", "month"),
    [
        ("1 ene 2021", 1), ("1 feb 2021", 2), ("1 mar 2021", 3), ("1 abr 2021", 4), ("1 may 2021", 5),
        ("1 jun 2021", 6), ("1 jul 2021", 7), ("1 ago 2021", 8), ("1 sep 2021", 9), ("1 set 2021", 9),
        ("1 sept 2021", 9), ("1 oct 2021", 10), ("1 nov 2021", 11), ("1 dic 2021", 12),
        ("1 de enero de 2021", 1), ("1 de setiembre de 2021", 9), ("1 de diciembre de 2021", 12),
        ("Aug 1, 2021", 8), ("1 December 2021", 12),
    ],
)  # fmt: skip
def test_parse_date_knows_english_and_spanish_month_names(raw, month):
    assert parse_date(raw) == date(2021, month, 1)


@pytest.mark.parametrize(
    ("raw", "order", "expected"),
    [
        ("04/05/2021", "DMY", date(2021, 5, 4)),
        ("04/05/2021", "MDY", date(2021, 4, 5)),
        ("4.5.21", "DMY", date(2021, 5, 4)),
        ("21/04/15", "YMD", date(2021, 4, 15)),
        ("21/4/5", "YMD", date(2021, 4, 5)),
        ("15/04/2021", "DMY", APRIL_15),  # unambiguous and consistent with the order
        ("04/15/2021", "MDY", APRIL_15),
        ("2021-04-15", "DMY", APRIL_15),  # a 4-digit year first is Y/M/D under any order
        ("2021/04/15", "MDY", APRIL_15),
    ],
)
def test_parse_date_uses_order_for_day_month_forms(raw, order, expected):
    assert parse_date(raw, order=order) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("15/04/00", date(2000, 4, 15)),
        ("15/04/21", date(2021, 4, 15)),
        ("15/04/68", date(2068, 4, 15)),
        ("15/04/69", date(1969, 4, 15)),
        ("15/04/99", date(1999, 4, 15)),
        ("15-Apr-69", date(1969, 4, 15)),
    ],
)
def test_parse_date_two_digit_years_pivot_at_69_like_strptime(raw, expected):
    assert parse_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "order", "reason"),
    [
        ("04/05/2021", None, "ambiguous date: day and month could be swapped; set date_order"),
        ("12/04/2021 12:00 AM", None, "set date_order"),
        ("13/04/2021", "MDY", "day/month out of range for M/D/Y"),
        ("04/13/2021", "DMY", "day/month out of range for D/M/Y"),
        ("15/04/2021", "YMD", "not a date in Y/M/D order"),
        ("99/04/25", None, "if it is yy/mm/dd set date_order"),
        ("5/4/202", "DMY", "year needs 2 or 4 digits"),
        ("31/02/2021", None, "not a valid calendar date"),
        ("2021-02-30", None, "not a valid calendar date"),
        ("2021-13-01 10:00", None, "not a valid calendar date"),
        ("29/02/2021", "DMY", "day/month out of range for D/M/Y"),
        ("Apr 2021", None, "not a date"),
        ("15 Foo 2021", None, "not a date"),
        ("2021", None, "not a date"),
        ("yesterday", None, "not a date"),
        ("2021-04-15 25:00", None, "not a valid time of day"),
        (2021, None, "outside the Excel date range"),
        (5, None, "outside the Excel date range"),
        (True, None, "not a date"),
        (20210231, None, "not a valid calendar date"),
    ],
)
def test_parse_date_refuses_unreadable_or_inconsistent_dates_with_a_reason(raw, order, reason):
    with pytest.raises(ValueParseError) as excinfo:
        parse_date(raw, order=order)
    assert reason in reason_of(excinfo)


def test_parse_date_accepts_leap_day_only_in_leap_years():
    assert parse_date("29/02/2020") == date(2020, 2, 29)
    assert parse_date("2000-02-29") == date(2000, 2, 29)
    with pytest.raises(ValueParseError):
        parse_date("29/02/1900", order="DMY")


def test_parse_date_rejects_an_unknown_order_setting_as_config_error():
    with pytest.raises(ConfigError, match="date_order"):
        parse_date("15/04/2021", order="DYM")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (1, datetime(1900, 1, 1)),
        (59, datetime(1900, 2, 28)),
        (61, datetime(1900, 3, 1)),  # after the phantom 1900-02-29 Excel is one day ahead
        (25569, datetime(1970, 1, 1)),
        (44301, datetime(2021, 4, 15)),
        (44301.5, datetime(2021, 4, 15, 12)),
        (44301.4375, datetime(2021, 4, 15, 10, 30)),
        (Decimal("44301.25"), datetime(2021, 4, 15, 6)),
        (2958465, datetime(9999, 12, 31)),
    ],
)
def test_excel_serial_to_datetime_follows_the_1900_date_system(serial, expected):
    assert excel_serial_to_datetime(serial) == expected


@pytest.mark.parametrize("serial", [60, 60.5, 0, -1, 2958466, float("nan"), True, "44301"])
def test_excel_serial_to_datetime_refuses_the_phantom_leap_day_and_out_of_range(serial):
    with pytest.raises(ValueParseError):
        excel_serial_to_datetime(serial)


def test_excel_serial_60_names_the_1900_leap_year_bug():
    with pytest.raises(ValueParseError, match="1900-02-29"):
        excel_serial_to_datetime(60)


# --------------------------------------------------------------------------------------------------
# Datetimes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-04-15", datetime(2021, 4, 15, tzinfo=UTC)),
        ("2021-04-15 10:30:00", datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),
        ("2021-04-15T10:30:00Z", datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),
        ("2021-04-15T10:30:00+02:00", datetime(2021, 4, 15, 8, 30, tzinfo=UTC)),
        ("2021-04-15T10:30:00.250-05:00", datetime(2021, 4, 15, 15, 30, 0, 250000, tzinfo=UTC)),
        ("2021-04-15 10:30:00 +0200", datetime(2021, 4, 15, 8, 30, tzinfo=UTC)),
        ("2021-04-15 10:30 UTC", datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),
        ("2021-04-15 10:30 AM", datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),
        ("04/15/21 10:30 AM", datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),
        ("4/15/2021 3:05 PM", datetime(2021, 4, 15, 15, 5, tzinfo=UTC)),
        ("4/15/2021 12:05 AM", datetime(2021, 4, 15, 0, 5, tzinfo=UTC)),
        ("4/15/2021 12:05 PM", datetime(2021, 4, 15, 12, 5, tzinfo=UTC)),
        ("15/04/2021 14:30", datetime(2021, 4, 15, 14, 30, tzinfo=UTC)),
        ("15/04/2021 3:05 p. m.", datetime(2021, 4, 15, 15, 5, tzinfo=UTC)),
        ("15/04/2021 09:05:07", datetime(2021, 4, 15, 9, 5, 7, tzinfo=UTC)),
        ("Apr 15, 2021 10:30 AM", datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),
        ("15 de abril de 2021, 14:30", datetime(2021, 4, 15, 14, 30, tzinfo=UTC)),
        ("44301.75", datetime(2021, 4, 15, 18, tzinfo=UTC)),
        (44301.4375, datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),
        (date(2021, 4, 15), datetime(2021, 4, 15, tzinfo=UTC)),
        (datetime(2021, 4, 15, 10, 30), datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),
        (
            datetime(2021, 4, 15, 10, 30, tzinfo=timezone(timedelta(hours=-3))),
            datetime(2021, 4, 15, 13, 30, tzinfo=UTC),
        ),
    ],
)
def test_parse_datetime_reads_common_forms_and_returns_utc(raw, expected):
    result = parse_datetime(raw)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-04-15 10:30", datetime(2021, 4, 15, 8, 30, tzinfo=UTC)),  # CEST, UTC+2
        ("15/01/2021 10:30", datetime(2021, 1, 15, 9, 30, tzinfo=UTC)),  # CET, UTC+1
        ("2021-04-15", datetime(2021, 4, 14, 22, 0, tzinfo=UTC)),  # midnight in Madrid
        (datetime(2021, 4, 15, 10, 30), datetime(2021, 4, 15, 8, 30, tzinfo=UTC)),  # naive XLSX cell
        ("2021-04-15T10:30:00Z", datetime(2021, 4, 15, 10, 30, tzinfo=UTC)),  # explicit offset wins
        ("2021-04-15 10:30 -05:00", datetime(2021, 4, 15, 15, 30, tzinfo=UTC)),
    ],
)
def test_parse_datetime_reads_naive_times_in_the_given_zone(raw, expected):
    assert parse_datetime(raw, tz=ZoneInfo("Europe/Madrid")) == expected


def test_parse_datetime_uses_order_for_ambiguous_dates():
    assert parse_datetime("04/05/2021 10:00", order="DMY") == datetime(2021, 5, 4, 10, tzinfo=UTC)
    assert parse_datetime("04/05/2021 10:00", order="MDY") == datetime(2021, 4, 5, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("04/05/2021 10:00", "ambiguous date"),
        ("15/04/2021 24:00", "not a valid time of day"),
        ("15/04/2021 13:00 PM", "hour above 12 with AM/PM"),
        ("15/04/2021 10:61", "not a valid time of day"),
        ("2021-04-15 10:30 +25:00", "not a valid UTC offset"),
        ("10:30", "not a date"),
        ("15/04/2021 10:30 tomorrow", "not a date"),
        ("0001-01-01T00:00:00+05:00", "date out of range"),
        ("1618481400", "not a date"),  # epoch seconds are not accepted
    ],
)
def test_parse_datetime_refuses_unreadable_times_with_a_reason(raw, reason):
    with pytest.raises(ValueParseError) as excinfo:
        parse_datetime(raw)
    assert reason in reason_of(excinfo)


def test_parse_datetime_rejects_a_zone_name_string_as_config_error():
    with pytest.raises(ConfigError, match="tzinfo"):
        parse_datetime("2021-04-15", tz="Europe/Madrid")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Date order detection
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "order"),
    [
        (["01/02/2021", "25/04/2021", "30/04/2021", "13/05/2021"], "DMY"),
        (["01/02/2021", "04/25/2021", "4/30/2021 10:00 AM", "05/13/21"], "MDY"),
        (["2021/04/25", "2021-04-26", "2021-04-27T10:00:00Z"], "YMD"),
        (["99/04/25", "98/12/31", "97/01/30"], "YMD"),
    ],
)
def test_date_order_detector_decides_from_values_that_prove_one_order(column, order):
    detector = DateOrderDetector()
    for value in column:
        detector.feed(value)
    assert (detector.order, detector.decided, detector.conflict) == (order, True, False)


def test_date_order_detector_ignores_values_that_prove_nothing():
    detector = DateOrderDetector()
    for value in ["01/02/2021", "12/12/12", "Apr 15, 2021", "", None, 44301, APRIL_15, "n/a", "31/02/2021"]:
        detector.feed(value)
    assert (detector.order, detector.decided, detector.conflict) == (None, False, False)


def test_date_order_detector_reports_order_seen_so_far_before_deciding():
    detector = DateOrderDetector(confirmations=3)
    detector.feed("25/04/2021")
    assert (detector.order, detector.decided) == ("DMY", False)


def test_date_order_detector_flags_contradictory_evidence_as_conflict():
    detector = DateOrderDetector()
    detector.feed("25/04/2021")
    detector.feed("04/25/2021")
    assert (detector.order, detector.decided, detector.conflict) == (None, True, True)


def test_date_order_detector_stops_working_once_decided():
    detector = DateOrderDetector(confirmations=1)
    detector.feed("25/04/2021")
    assert detector.decided
    detector.feed("04/25/2021")  # would conflict, but the detector no longer looks
    assert (detector.order, detector.conflict) == ("DMY", False)


def test_date_order_detector_refuses_zero_confirmations():
    with pytest.raises(ConfigError):
        DateOrderDetector(confirmations=0)


# --------------------------------------------------------------------------------------------------
# Emails, phones, multi-value cells
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ana@example.com", "ana@example.com"),
        ("  Ana.Lopez@Example.COM ", "ana.lopez@example.com"),
        ("<ana@example.com>", "ana@example.com"),
        ("mailto:ana@example.com", "ana@example.com"),
        ("MAILTO:Ana@Example.com?subject=Hi", "ana@example.com"),
        ("<mailto:ana@example.com>", "ana@example.com"),
        ("Ana López <ana@example.com>", "ana@example.com"),
        ("first.last+crm@sub.example.co.uk", "first.last+crm@sub.example.co.uk"),
    ],
)
def test_normalize_email_lowercases_and_unwraps_addresses(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["ana", "ana@", "@example.com", "ana@@example.com", "ana@example", "ana @example.com", "a@b.test", 42],
)
def test_normalize_email_refuses_invalid_addresses(raw):
    with pytest.raises(ValueParseError) as excinfo:
        normalize_email(raw)
    assert reason_of(excinfo) == "not a valid email address"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(212) 555-0100", "US", "+12125550100"),
        ("212.555.0100", "US", "+12125550100"),
        ("+1 212-555-0100", "ES", "+12125550100"),
        ("+34 612 34 56 78", "US", "+34612345678"),
        ("612 34 56 78", "ES", "+34612345678"),
        ("612345678", "es", "+34612345678"),
        ("0034 612 34 56 78", "US", "+34612345678"),
        ("tel:+34612345678", "US", "+34612345678"),
        (34612345678.0, "US", "+34612345678"),  # Excel dropped the +
        (34612345678, "US", "+34612345678"),
        (2125550100, "US", "+12125550100"),
        ("+1 212-555-0100 ext. 23", "US", "+12125550100;ext=23"),
        ("(212) 555-0100 x7", "US", "+12125550100;ext=7"),
        ("+44 20 7946 0958", None, "+442079460958"),
    ],
)
def test_normalize_phone_returns_e164(raw, region, expected):
    assert normalize_phone(raw, default_region=region) == expected


def test_normalize_phone_can_drop_extensions():
    assert normalize_phone("+1 212-555-0100 ext. 23", keep_extension=False) == "+12125550100"


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("000-000-0000", "US", "not a valid phone number for region US"),  # possible but not valid
        ("123-456-7890", "US", "not a valid phone number for region US"),
        ("555-0100", "US", "not a valid phone number for region US"),
        ("612345678", "US", "not a valid phone number for region US"),
        ("12345", "ES", "not a valid phone number for region ES"),
        ("+99 1234", "US", "not a valid phone number"),
        ("call me", "US", "not a valid phone number for region US"),
        (3.5, "US", "not a phone number"),
        (True, "US", "not a phone number"),
    ],
)
def test_normalize_phone_refuses_invalid_numbers_with_the_region(raw, region, reason):
    with pytest.raises(ValueParseError) as excinfo:
        normalize_phone(raw, default_region=region)
    assert reason_of(excinfo) == reason


def test_normalize_phone_rejects_an_unknown_region_as_config_error():
    with pytest.raises(ConfigError):
        normalize_phone("612345678", default_region="XX")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a@x.com; b@y.com", ["a@x.com", "b@y.com"]),
        ("a@x.com;b@y.com;", ["a@x.com", "b@y.com"]),
        ("a@x.com, b@y.com", ["a@x.com", "b@y.com"]),
        ("a@x.com\nb@y.com\r\nc@z.com", ["a@x.com", "b@y.com", "c@z.com"]),
        ("612 345 678 / 699 999 999", ["612 345 678", "699 999 999"]),
        ("+34 612 34 56 78", ["+34 612 34 56 78"]),  # spaces never split
        ("+1 (212) 555-0100", ["+1 (212) 555-0100"]),
        ("612345678/699999999", ["612345678/699999999"]),  # a bare slash does not split
        ("a@x.com; n/a; ; -", ["a@x.com"]),
        ("  ", []),
        (None, []),
        (34612345678.0, ["34612345678"]),
    ],
)
def test_split_multi_splits_on_list_separators_but_not_on_spaces(raw, expected):
    assert split_multi(raw) == expected


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------

MESSY_ALPHABET = "0123456789 .,-/:()+'%$€£¥R'KMBkmbTZAPMapmdeDEabrAprUSDEUR\u00a0\u2212\u2014\u200b"
messy_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=MESSY_ALPHABET, max_size=30),
    st.from_regex(r"[0-9]{1,4}[/.\-][0-9]{1,2}[/.\-][0-9]{1,4}( [0-9]{1,2}:[0-9]{2}( ?[AP]M)?)?", fullmatch=True),
    st.builds(lambda t: "2021-04-15" + t, st.text(alphabet="T 0123456789:+-.Z", max_size=20)),
)


@FAST
@given(messy_text)
def test_parsers_on_arbitrary_text_return_the_right_type_or_raise_value_parse_error(text):
    checks = [
        (parse_decimal, Decimal),
        (parse_money, Money),
        (parse_date, date),
        (parse_datetime, datetime),
        (parse_bool, bool),
    ]
    for parser, expected_type in checks:
        try:
            result = parser(text)
        except ValueParseError:
            continue
        assert result is None or isinstance(result, expected_type), (parser.__name__, text, result)
        if isinstance(result, datetime):
            assert result.tzinfo is UTC
    with contextlib.suppress(ValueParseError):
        parse_date(text, order="DMY")


def _format_decimal(d: Decimal, group: str, point: str) -> str:
    us = format(d, ",")  # "1,234,567.891" with Python's own grouping
    return us.replace(",", "\0").replace(".", point).replace("\0", group)


CONVENTIONS = [(",", "."), (".", ","), ("\u00a0", ","), (" ", ","), ("'", ".")]
decimals = st.builds(lambda n, places: Decimal(n).scaleb(-places), st.integers(-(10**15), 10**15), st.integers(0, 6))


@FAST
@given(decimals, st.sampled_from(CONVENTIONS))
def test_parse_decimal_round_trips_grouped_numbers_in_either_convention(d, convention):
    group, point = convention
    text = _format_decimal(d, group, point)
    assert parse_decimal(text, decimal_separator=point) == d
    auto = parse_decimal(text)
    if values._DOT_GROUP.fullmatch(text.replace(",", ".")):
        assert auto == Decimal(text.replace(",", "").replace(".", ""))  # documented: read as grouping
    else:
        assert auto == d


@FAST
@given(decimals, st.sampled_from(["€", "$", "£", "EUR", "USD"]), st.booleans())
def test_parse_money_round_trips_european_amounts_with_symbol_before_or_after(d, symbol, before):
    text = _format_decimal(d, ".", ",")
    cell = f"{symbol}{text}" if before else f"{text} {symbol}"
    money = parse_money(cell, decimal_separator=",")
    assert money is not None
    assert money.amount == d
    assert money.currency == {"€": "EUR", "$": "USD", "£": "GBP"}.get(symbol, symbol)


def _format_date(d: date, order: str, sep: str, pad: bool, two_digit_year: bool) -> str:
    day, month = (f"{d.day:02}", f"{d.month:02}") if pad else (str(d.day), str(d.month))
    year = f"{d.year % 100:02}" if two_digit_year else f"{d.year:04}"
    parts = {"DMY": (day, month, year), "MDY": (month, day, year), "YMD": (year, month, day)}[order]
    return sep.join(parts)


pivot_dates = st.dates(min_value=date(1969, 1, 1), max_value=date(2068, 12, 31))
any_dates = st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31))
date_cells = st.tuples(
    st.sampled_from(["DMY", "MDY", "YMD"]), st.sampled_from(["/", "-", "."]), st.booleans(), st.booleans()
)


@FAST
@given(st.one_of(pivot_dates, any_dates), date_cells)
def test_parse_date_round_trips_every_order_and_separator(d, form):
    order, sep, pad, two_digit_year = form
    two_digit_year = two_digit_year and 1969 <= d.year <= 2068
    text = _format_date(d, order, sep, pad, two_digit_year)
    assert parse_date(text, order=order) == d
    assert parse_datetime(text, order=order) == datetime(d.year, d.month, d.day, tzinfo=UTC)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["DMY", "MDY", "YMD"]), st.lists(st.tuples(pivot_dates, date_cells), max_size=20))
def test_date_order_detector_never_decides_the_wrong_order(order, cells):
    detector = DateOrderDetector()
    for d, (_, sep, pad, two_digit_year) in cells:
        detector.feed(_format_date(d, order, sep, pad, two_digit_year))
    assert not detector.conflict
    assert detector.order in (None, order)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.from_regex(r"-?[0-9]{1,8}(\.[0-9]{1,4})?", fullmatch=True), st.text(max_size=12)),
       sep=st.sampled_from([None, ".", ","]))
def test_a_plain_amount_is_exactly_the_text_parse_money_would_store(text, sep):
    plain = values.plain_amount(text, sep)
    if plain is not None:
        money = values.parse_money(text, None, sep)
        assert plain == text == str(money.amount) and money.currency is None


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789²٣ \t\u200bnoe", max_size=8), st.text(max_size=10)))
def test_parse_text_is_the_cleaned_cell_or_none_for_a_blank_one(raw):
    cleaned = values._clean(raw)
    assert values.parse_text(raw) == (None if values._blank_str(cleaned) else cleaned)


def _iso_utc_text_by_datetime(raw: str) -> str | None:
    """iso_utc_text as first written: the cell parsed to a datetime and formatted back."""
    if len(raw) != 19 or raw[10] not in "T " or not raw.isascii():
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is not None or parsed.isoformat(sep=raw[10]) != raw:
        return None
    return parsed.isoformat(sep="T") + "Z"


@settings(max_examples=500, deadline=None)
@given(st.one_of(
    st.from_regex(r"[0-9]{4}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-6][0-9]:[0-6][0-9]", fullmatch=True),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    st.text(alphabet="0123456789-: T", min_size=19, max_size=19),
))
def test_iso_utc_text_accepts_exactly_the_real_date_times_and_writes_their_stored_form(raw):
    from crmsync.warehouse import iso_utc_text

    assert iso_utc_text(raw) == _iso_utc_text_by_datetime(raw)
