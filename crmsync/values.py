"""Turn messy spreadsheet cells into typed values: text, yes/no, numbers, money, dates, emails, phones.

CRM exports are typed by hand in many locales. One column holds ``"1.234,56 €"``, ``"$12.5K"`` and
``"N/A"``; dates arrive as ``"15/04/2021"``, ``"Apr 15, 2021"``, Excel serial numbers and real
``datetime`` cells. Every importer needs the same careful rules, so they live here once, tested, and
cheap enough for million-row ingests (precompiled patterns, a fast path for the clean common case).

Every parser accepts a ``str`` or an already-typed XLSX value (``int``, ``float``, ``bool``,
``datetime``, ``date``, ``Decimal``, ``None``), returns ``None`` for a blank cell (see
:data:`PLACEHOLDERS`) and raises :class:`~crmsync.errors.ValueParseError` with a short reason for
anything it cannot read. A bad *setting* (unknown ``order``, ``default_currency`` or region) raises
:class:`~crmsync.errors.ConfigError` instead. Nothing here prints or does I/O.

Example::

    >>> parse_money("1.234,56 €")
    Money(amount=Decimal('1234.56'), currency='EUR')
    >>> parse_date("15/04/2021")
    datetime.date(2021, 4, 15)
    >>> parse_date("04/05/2021")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    crmsync.errors.ValueParseError: ambiguous date: day and month could be swapped; set date_order ...
    >>> parse_date("04/05/2021", order="DMY")
    datetime.date(2021, 5, 4)
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Literal, NamedTuple

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crmsync.errors import ConfigError, ValueParseError

__all__ = [
    "DOLLAR_FAMILY",
    "EXCEL_SERIAL_RANGE",
    "ISO_4217",
    "PLACEHOLDERS",
    "UTC",
    "DateOrder",
    "DateOrderDetector",
    "Money",
    "excel_serial_to_datetime",
    "is_blank",
    "normalize_email",
    "normalize_phone",
    "parse_bool",
    "parse_date",
    "parse_datetime",
    "parse_decimal",
    "parse_money",
    "parse_text",
    "split_multi",
]

DateOrder = Literal["DMY", "MDY", "YMD"]

# --------------------------------------------------------------------------------------------------
# Blanks and text
# --------------------------------------------------------------------------------------------------

#: Lowercased cell values that mean "nothing was entered". Deliberately conservative: only words
#: that are never a real answer. ``"unknown"``, ``"other"``, ``"0"`` and ``"nan"`` are *not* here
#: ("Unknown" is a real lead source in many picklists, "Nan" is a first name); Excel error values
#: other than ``#N/A`` (``#REF!``, ``#VALUE!``) are not blanks either, they are broken formulas.
PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "n/a", "na", "n.a.", "#n/a",
        "-", "--", "---", "\u2014", "\u2013",  # em dash, en dash
        "none", "(none)", "-none-", "null", "nil",  # "-None-": Zoho's empty picklist value
        "not set", "(not set)", "(blank)", "(empty)",
        "select", "--select--", "-- select --", "seleccionar", "seleccione", "-- seleccione --",
    }
)  # fmt: skip
_PLACEHOLDER_MAX = max(map(len, PLACEHOLDERS))
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
assert not any(p.isdigit() for p in PLACEHOLDERS)  # parse_text returns digit-only cells as they are


def _clean(s: str) -> str:
    """Strip whitespace, including the zero-width characters and BOMs that copy-paste leaves behind."""
    s = s.strip()
    if s and (s[0] in _ZERO_WIDTH or s[-1] in _ZERO_WIDTH):
        s = s.strip(_ZERO_WIDTH).strip()
    return s


def _blank_str(s: str) -> bool:
    """True for an already-cleaned string that is empty or a placeholder."""
    return not s or (len(s) <= _PLACEHOLDER_MAX and s.lower() in PLACEHOLDERS)


def is_blank(raw: object) -> bool:
    """Tell whether a cell holds nothing: ``None``, empty/whitespace text, a placeholder, or a NaN.

    Every parser in this module returns ``None`` for these, so a blank never becomes an error.

    >>> [is_blank(v) for v in (None, "  ", "N/A", "-- Select --", "Unknown", 0)]
    [True, True, True, True, False, False]
    """
    if raw is None:
        return True
    if type(raw) is str:
        return _blank_str(_clean(raw))
    if isinstance(raw, float):
        return math.isnan(raw)
    if isinstance(raw, Decimal):
        return raw.is_nan()
    return False


def parse_text(raw: object) -> str | None:
    """Read a text cell: surrounding whitespace stripped, nothing else changed; blank gives ``None``.

    XLSX may type a text column as numbers (account numbers, zip codes): whole floats lose their
    ``.0`` so ``12345.0`` reads as ``"12345"``; dates read as ISO text.

    >>> parse_text("  Acme  Corp ")
    'Acme  Corp'
    >>> parse_text(12345.0), parse_text("N/A")
    ('12345', None)
    """
    if type(raw) is str:
        if raw.isdigit():  # ids: no space to strip, no placeholder (checked below) -- the commonest cell
            return raw
        # _clean() and _blank_str() inlined: this runs for every text cell of every row.
        s = raw.strip()
        if s and (s[0] in _ZERO_WIDTH or s[-1] in _ZERO_WIDTH):
            s = s.strip(_ZERO_WIDTH).strip()
        if not s or (len(s) <= _PLACEHOLDER_MAX and s.lower() in PLACEHOLDERS):
            return None
        return s
    if is_blank(raw):
        return None
    if isinstance(raw, bool):
        return "TRUE" if raw else "FALSE"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, Decimal):
        return format(raw, "f")
    if isinstance(raw, date):  # datetime included
        return raw.isoformat()
    return str(raw)


# --------------------------------------------------------------------------------------------------
# Booleans
# --------------------------------------------------------------------------------------------------

_TRUE_WORDS = ("true", "t", "yes", "y", "1", "1.0", "si", "sí", "verdadero", "on", "x", "✓", "✔")
_FALSE_WORDS = ("false", "f", "no", "n", "0", "0.0", "falso", "off")
_BOOL_WORDS: dict[str, bool] = {**dict.fromkeys(_TRUE_WORDS, True), **dict.fromkeys(_FALSE_WORDS, False)}


def _strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def parse_bool(raw: object) -> bool | None:
    """Read a yes/no cell in English or Spanish, any case or accent: true/false, yes/no, y/n, sí/si,
    verdadero/falso, on/off, t/f, 1/0 and a checkbox mark ``x`` (or ✓) for True.

    ``x`` has no False counterpart: an unticked checkbox is an empty cell, which reads as ``None``.
    Anything else raises rather than guessing.

    >>> parse_bool("Sí"), parse_bool("FALSE"), parse_bool(1), parse_bool("")
    (True, False, True, None)
    """
    if type(raw) is str:
        s = _clean(raw)
        key = s.lower()
        found = _BOOL_WORDS.get(key)
        if found is not None:
            return found
        if _blank_str(s):
            return None
        found = _BOOL_WORDS.get(_strip_accents(key))
        if found is not None:
            return found
        raise ValueParseError("not a yes/no value", raw)
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, (int, float, Decimal)):
        if raw == 1:
            return True
        if raw == 0:
            return False
        if is_blank(raw):
            return None
    raise ValueParseError("not a yes/no value", raw)


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------

_NOT_A_NUMBER = "not a number"
_MAX_NUMBER_LEN = 100  # longer cells are not amounts; refusing them keeps Decimal work bounded
_SPACES = " \u00a0\u202f\u2009"  # space, no-break space, narrow no-break space, thin space
_GROUP_CHARS = ".,'\u2019" + _SPACES
_PLAIN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_DOT_GROUP = re.compile(r"-?[1-9][0-9]{0,2}\.[0-9]{3}")  # "1.234": grouping or decimal? see _body
_US_GROUPED = re.compile(r"[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?")  # fast path: 1,234,567.89
_EU_GROUPED = re.compile(r"[1-9][0-9]{0,2}(?:\.[0-9]{3})+(?:,[0-9]+)?")  # fast path: 1.234.567,89
_SCIENTIFIC = re.compile(r"[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]{1,3}")  # Excel's "1.23457E+11"
_BODY = re.compile(r"[0-9.,'\u2019" + _SPACES + "]+")
_DIGITS = re.compile(r"[0-9]+")
_NON_DIGIT = re.compile(r"[^0-9]")
_LEAD_GROUP = re.compile(r"[1-9][0-9]{0,2}")
_GROUPED = {g: re.compile(r"[0-9]{1,3}(?:" + re.escape(g) + r"[0-9]{3})+") for g in _GROUP_CHARS}
_INDIAN_GROUPED = re.compile(r"[0-9]{1,2}(?:,[0-9]{2})*,[0-9]{3}")  # 12,34,567 (lakh grouping)
_ONE = Decimal(1)
_MAGNITUDE = re.compile(r"(?<=[0-9.,])\s?(k|mm|m|bn|b)$", re.IGNORECASE)
_MULTIPLIER = {
    "k": Decimal(10**3),
    "m": Decimal(10**6),
    "mm": Decimal(10**6),
    "b": Decimal(10**9),
    "bn": Decimal(10**9),
}
_MINUS = "-\u2212"  # ASCII hyphen-minus and the real minus sign
_SIGNS = "+" + _MINUS


def _check_separator(decimal_separator: str | None) -> None:
    if decimal_separator is not None and decimal_separator not in (".", ","):
        raise ConfigError(f"decimal_separator must be '.', ',' or None (auto), not {decimal_separator!r}")


def _body(s: str, sep: str | None, has_magnitude: bool, raw: object) -> Decimal:
    """Read unsigned digits with grouping and at most one decimal separator (see parse_decimal)."""
    if not s or not _BODY.fullmatch(s):
        raise ValueParseError(_NOT_A_NUMBER, raw)
    dec: str | None = sep
    if sep is None:
        has_dot, has_comma = "." in s, "," in s
        if has_dot and has_comma:
            dec = "." if s.rfind(".") > s.rfind(",") else ","
        elif has_dot or has_comma:
            c = "." if has_dot else ","
            i = s.find(c)
            if s.find(c, i + 1) != -1:
                dec = None  # repeated: "1.234.567" can only be grouping
            elif not has_magnitude and len(s) - i == 4 and _LEAD_GROUP.fullmatch(s, 0, i):
                dec = None  # "1,234" / "12.500": one full thousands group
            else:
                dec = c
    int_part, frac = s, ""
    if dec is not None:
        i = s.find(dec)
        if i != -1:
            int_part, frac = s[:i], s[i + 1 :]
            if frac and not _DIGITS.fullmatch(frac):
                raise ValueParseError(_sep_reason(sep), raw)
    if int_part and not _DIGITS.fullmatch(int_part):
        g = int_part[_NON_DIGIT.search(int_part).start()]  # type: ignore[union-attr]
        pattern = _GROUPED.get(g)
        if (
            g == dec
            or pattern is None
            or not (pattern.fullmatch(int_part) or (g == "," and _INDIAN_GROUPED.fullmatch(int_part)))
        ):
            raise ValueParseError(_sep_reason(sep), raw)
        int_part = int_part.replace(g, "")
    if not int_part and not frac:
        raise ValueParseError(_NOT_A_NUMBER, raw)
    return Decimal(f"{int_part or '0'}.{frac}" if frac else int_part)


def _sep_reason(sep: str | None) -> str:
    if sep is None:
        return f"{_NOT_A_NUMBER} (irregular digit grouping; set decimal_separator if it is ',')"
    return f"{_NOT_A_NUMBER} with '{sep}' as decimal separator"


def _number(s: str, sep: str | None, raw: object, *, allow_percent: bool = True) -> Decimal:
    """Read a cleaned, non-blank numeric string: sign, accounting parentheses, %, K/M/B, grouping."""
    if len(s) > _MAX_NUMBER_LEN:
        raise ValueParseError(_NOT_A_NUMBER, raw)
    neg = False
    if s[0] == "(" and s[-1] == ")":
        neg = True
        s = s[1:-1].strip()
    if s and s[0] in _SIGNS:
        if s[0] != "+":
            if neg:
                raise ValueParseError(_NOT_A_NUMBER, raw)
            neg = True
        s = s[1:].lstrip()
    elif s and s[-1] in _MINUS and not neg:  # ERP style "1,234.00-"
        neg = True
        s = s[:-1].rstrip()
    if allow_percent and s.endswith("%"):
        s = s[:-1].rstrip()
    mult = None
    if s and s[-1].isalpha():
        m = _MAGNITUDE.search(s)
        if m is not None:
            mult = _MULTIPLIER[m.group(1).lower()]
            s = s[: m.start()]
    if mult is None and sep != "," and _US_GROUPED.fullmatch(s):
        d = Decimal(s.replace(",", ""))
    elif mult is None and sep != "." and _EU_GROUPED.fullmatch(s):
        d = Decimal(s.replace(".", "").replace(",", "."))
    elif sep != "," and _SCIENTIFIC.fullmatch(s):
        d = Decimal(s)
    else:
        d = _body(s, sep, mult is not None, raw)
        if mult is not None:
            d *= mult
            if d == d.to_integral_value():
                d = d.quantize(_ONE)  # "$12.5K" is 12500, not 12500.0: the ".0" was never written
    return -d if neg and d else d


def _typed_number(raw: object) -> Decimal | None:
    """Decimal from an XLSX-typed cell; floats go through repr so 0.1 stays 0.1."""
    t = type(raw)
    if t is int:
        return Decimal(raw)  # type: ignore[arg-type]
    if t is float:
        if math.isnan(raw):  # type: ignore[arg-type]
            return None
        if math.isinf(raw):  # type: ignore[arg-type]
            raise ValueParseError(_NOT_A_NUMBER, raw)
        return Decimal(repr(raw))
    if raw is None:
        return None
    if isinstance(raw, Decimal):
        if raw.is_nan():
            return None
        if not raw.is_finite():
            raise ValueParseError(_NOT_A_NUMBER, raw)
        return raw
    if isinstance(raw, bool):
        raise ValueParseError(f"{_NOT_A_NUMBER} (got a yes/no value)", raw)
    if isinstance(raw, int):
        return Decimal(int(raw))
    if isinstance(raw, float):
        return _typed_number(float(raw))
    raise ValueParseError(_NOT_A_NUMBER, raw)


def parse_decimal(raw: object, decimal_separator: str | None = None) -> Decimal | None:
    """Read a number written the way people write them in spreadsheets, exactly, as a ``Decimal``.

    Accepts grouping with ``,`` ``.`` spaces or apostrophes (``1,234.56``, ``1.234,56``,
    ``1 234,56``, ``1'234.56``, Indian ``12,34,567``), accounting negatives ``(123.45)``, leading or
    trailing minus, magnitude suffixes ``K`` (thousand), ``M``/``MM`` (million), ``B``/``BN``
    (billion), and Excel's scientific ``1.5E+06``. ``45%`` reads as ``Decimal("45")``: the percent
    sign is dropped, not applied, so ``"45%"`` and ``"45"`` in one probability column agree.
    Currency symbols are refused: use :func:`parse_money`.

    The decimal separator is read from the string itself when ``decimal_separator`` is None:

    * both ``.`` and ``,`` present: the last one is the decimal separator;
    * one of them repeated (``1.234.567``): it is grouping;
    * one of them once, followed by exactly three digits after a 1-3 digit lead not starting with 0
      (``1,234``, ``12.500``): it is read as **thousands grouping**, so ``"1.234"`` is 1234. This is
      the right call for amounts typed in either convention, but wrong for a value like 1.234 written
      without grouping; pass ``decimal_separator="."`` or ``","`` when the column's convention is
      known. A magnitude suffix overrides it (``1.234K`` is 1234);
    * otherwise it is the decimal separator (``12.5``, ``0,125``, ``1,5``).

    >>> parse_decimal("1.234,56"), parse_decimal("(1,200)"), parse_decimal("12.5K")
    (Decimal('1234.56'), Decimal('-1200'), Decimal('12500'))
    >>> parse_decimal("1.234"), parse_decimal("1.234", decimal_separator=".")
    (Decimal('1234'), Decimal('1.234'))
    """
    _check_separator(decimal_separator)
    if type(raw) is not str:
        return _typed_number(raw)
    s = raw.strip()
    if _PLAIN.fullmatch(s) and (
        decimal_separator == "." or (decimal_separator is None and not _DOT_GROUP.fullmatch(s))
    ):
        return Decimal(s)
    s = _clean(s)
    if _blank_str(s):
        return None
    return _number(s, decimal_separator, raw)


# --------------------------------------------------------------------------------------------------
# Money
# --------------------------------------------------------------------------------------------------

_ISO_4217_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
    BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
    MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
    RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD
    TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG
    XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL
    """
#: Active ISO 4217 currency codes (plus fund codes and precious metals), as of 2025.
#: XXX ("no currency") and XTS ("testing") are left out: in a cell they are placeholders.
ISO_4217: frozenset[str] = frozenset(_ISO_4217_CODES.split())

_DOLLAR_CODES = """
    USD CAD AUD NZD HKD SGD TWD MXN COP ARS CLP CUP DOP UYU BSD BBD BZD BMD BND FJD GYD JMD KYD LRD
    NAD SBD SRD TTD XCD
    """
#: Currencies whose own symbol is a bare ``$``: a ``$`` amount takes ``default_currency`` when it is
#: one of these (a Mexican CRM's "$1,000" is pesos), otherwise it is USD.
DOLLAR_FAMILY: frozenset[str] = frozenset(_DOLLAR_CODES.split())

# Symbol (uppercased) -> ISO code; None marks the bare "$" whose code depends on default_currency.
# "¥" is read as JPY (use "CN¥" for yuan); "C$" as CAD (not the Nicaraguan córdoba); "kr" is left
# out on purpose because it is SEK, NOK, DKK or ISK.
_SYMBOLS: dict[str, str | None] = {
    "$": None, "US$": "USD", "U$S": "USD", "R$": "BRL", "MX$": "MXN", "CA$": "CAD", "C$": "CAD",
    "A$": "AUD", "AU$": "AUD", "NZ$": "NZD", "HK$": "HKD", "S$": "SGD", "NT$": "TWD", "COL$": "COP",
    "€": "EUR", "£": "GBP", "¥": "JPY", "JP¥": "JPY", "CN¥": "CNY", "￥": "JPY", "₹": "INR",
    "₩": "KRW", "₽": "RUB", "₺": "TRY", "₪": "ILS", "₱": "PHP", "₫": "VND", "฿": "THB", "₦": "NGN",
    "₴": "UAH", "ZŁ": "PLN", "KČ": "CZK", "S/": "PEN", "S/.": "PEN",
}  # fmt: skip
_SYMBOL_ALTS = "|".join(re.escape(k) for k in sorted(_SYMBOLS, key=len, reverse=True))
_CUR_PREFIX = re.compile(r"(?:(?P<sym>" + _SYMBOL_ALTS + r")|(?P<code>[A-Za-z]{3})\$?(?![A-Za-z]))\s*", re.IGNORECASE)
_CUR_SUFFIX = re.compile(r"(?<![A-Za-z])\s*(?:(?P<sym>" + _SYMBOL_ALTS + r")|(?P<code>[A-Za-z]{3}))$", re.IGNORECASE)
_ACCOUNTING_ZERO = frozenset(_MINUS + "\u2013\u2014")  # Excel's accounting format shows 0 as "$ -"


class Money(NamedTuple):
    """An exact amount and its ISO 4217 currency (``None`` when neither the cell nor the caller says)."""

    amount: Decimal
    currency: str | None


@lru_cache(maxsize=64)
def _check_currency(code: str) -> str:
    upper = code.upper()
    if upper not in ISO_4217:
        raise ConfigError(f"default_currency {code!r} is not an ISO 4217 currency code")
    return upper


def _currency_of(m: re.Match[str]) -> str:
    """ISO code named by a prefix/suffix match; "" for a bare "$"; "?" + the text for an unknown code."""
    sym = m.group("sym")
    if sym is not None:
        return _SYMBOLS[sym.upper()] or ""
    code = m.group("code").upper()
    return code if code in ISO_4217 else "?" + m.group("code")


def _money_str(s: str, default: str | None, sep: str | None, raw: object) -> Money:
    neg = False
    if s[0] == "(" and s[-1] == ")":
        neg = True
        s = s[1:-1].strip()
    if s and s[0] in _SIGNS:
        if s[0] != "+":
            if neg:
                raise ValueParseError("not an amount (two minus signs)", raw)
            neg = True
        s = s[1:].lstrip()
    pre = post = None
    m = None if s[:1].isdigit() else _CUR_PREFIX.match(s)
    if m is not None:
        pre = _currency_of(m)
        s = s[m.end() :]
        if not neg and s and s[0] == "(" and s[-1] == ")":  # "$(1,200.00)"
            neg = True
            s = s[1:-1].strip()
    # Suffix tokens are at most 4 characters: searching only the tail keeps long cells cheap.
    m = None if s[-1:].isdigit() else _CUR_SUFFIX.search(s, max(0, len(s) - 8))
    if m is not None:
        post = _currency_of(m)
        s = s[: m.start()].rstrip()
    if not s:
        raise ValueParseError("not an amount", raw)
    if neg and s[0] in "(" + _SIGNS:
        raise ValueParseError("not an amount (two minus signs)", raw)
    if len(s) == 1 and s in _ACCOUNTING_ZERO and (pre is not None or post is not None):
        amount = Decimal(0)
    else:
        amount = _number(s, sep, raw, allow_percent=False)
    if neg and amount:
        amount = -amount
    for cur in (pre, post):
        if cur and cur[0] == "?":  # only now: "abc" is "not an amount", "12 abc" an unknown code
            raise ValueParseError(f"unknown currency code '{cur[1:]}'", raw)
    if pre is not None and post is not None and pre != post:
        if pre and post:
            raise ValueParseError(f"two different currencies ({pre} and {post})", raw)
        code = pre or post
        if code not in DOLLAR_FAMILY:  # "$" next to a non-dollar code
            raise ValueParseError(f"two different currencies ($ and {code})", raw)
        pre = post = code
    cur = pre if pre is not None else post
    if cur == "":
        cur = default if default in DOLLAR_FAMILY else "USD"
    elif cur is None:
        cur = default
    return Money(amount, cur)


def parse_money(raw: object, default_currency: str | None = None, decimal_separator: str | None = None) -> Money | None:
    """Read an amount with an optional currency symbol or ISO code before or after it.

    The number follows :func:`parse_decimal` (same grouping rules and ``decimal_separator``, no ``%``).
    The currency comes from the cell: a symbol (``€`` EUR, ``£`` GBP, ``¥`` JPY, ``R$`` BRL, ``MX$``
    MXN, ``CA$``/``C$`` CAD, ``A$`` AUD, ...) or a 3-letter code that must be ISO 4217 (case-
    insensitive; unknown codes raise). A bare ``$`` means ``default_currency`` when that is a
    dollar-sign currency (:data:`DOLLAR_FAMILY`: USD, CAD, AUD, MXN, COP, ARS, CLP, ...), else USD.
    A cell with no currency gets ``default_currency`` (possibly ``None``). Excel's accounting zero
    ``"$ -"`` reads as 0.

    >>> parse_money("($1,200.00)")
    Money(amount=Decimal('-1200.00'), currency='USD')
    >>> parse_money("$ 1.500.000", default_currency="COP")
    Money(amount=Decimal('1500000'), currency='COP')
    >>> parse_money("1234", default_currency="EUR")
    Money(amount=Decimal('1234'), currency='EUR')
    """
    _check_separator(decimal_separator)
    default = None if default_currency is None else _check_currency(default_currency)
    if type(raw) is not str:
        amount = _typed_number(raw)
        return None if amount is None else Money(amount, default)
    s = raw.strip()
    if _PLAIN.fullmatch(s) and (
        decimal_separator == "." or (decimal_separator is None and not _DOT_GROUP.fullmatch(s))
    ):
        return Money(Decimal(s), default)
    s = _clean(s)
    if _blank_str(s):
        return None
    if len(s) > _MAX_NUMBER_LEN:
        raise ValueParseError("not an amount", raw)
    return _money_str(s, default, decimal_separator, raw)


def plain_amount(raw: object, decimal_separator: str | None = None) -> str | None:
    """``raw`` itself when it is a plain amount that :func:`parse_money` reads as ``Decimal(raw)``
    and whose ``str()`` is ``raw`` again (``61923.63``, ``-5``, ``0.50``); ``None`` otherwise
    (grouping, symbols, spaces, leading zeros, ``1.234``, ...: parse those).

    Why: the warehouse stores an amount as that text, so the commonest cell needs no ``Decimal`` at all.

    >>> plain_amount("61923.63"), plain_amount("0100.50"), plain_amount("1.234"), plain_amount("$5")
    ('61923.63', None, None, None)
    """
    if type(raw) is not str:
        return None
    if decimal_separator is None:  # "1.234" could be grouping: not plain (one regex for both tests)
        return raw if _PLAIN_UNGROUPED.fullmatch(raw) else None
    return raw if decimal_separator == "." and _PLAIN_AMOUNT.fullmatch(raw) else None


_PLAIN_AMOUNT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
#: _PLAIN_AMOUNT that is not also _DOT_GROUP.
_PLAIN_UNGROUPED = re.compile(r"(?!-?[1-9][0-9]{0,2}\.[0-9]{3}$)-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


# --------------------------------------------------------------------------------------------------
# Dates and times
# --------------------------------------------------------------------------------------------------

_ORDER_LABEL = {"DMY": "D/M/Y", "MDY": "M/D/Y", "YMD": "Y/M/D"}
_DMY, _MDY, _YMD = 1, 2, 4
_SINGLE_ORDER: dict[int, DateOrder] = {_DMY: "DMY", _MDY: "MDY", _YMD: "YMD"}
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_MAX_DATE_LEN = 64  # the longest real form is ~40 chars; the cap bounds regex backtracking
_AMBIGUOUS = "ambiguous date: day and month could be swapped; set date_order (DMY or MDY)"
_NOT_A_DATE = "not a date"
_BAD_CALENDAR_DATE = "not a valid calendar date"

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_NAIVE_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?")
_NUMERIC_DATE = re.compile(r"([0-9]{1,4})([/.\-])([0-9]{1,2})\2([0-9]{1,4})")
_DETECT_DATE = re.compile(r"\s*([0-9]{1,4})([/.\-])([0-9]{1,2})\2([0-9]{1,4})(?![0-9])")
_SERIAL_TEXT = re.compile(r"[0-9]{5}(?:\.[0-9]+)?")
_TIME_TAIL = re.compile(
    r"(?:T|\s*,\s*|\s+)([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?"
    r"\s*(?:([aApP])\.?\s?[mM]\.?)?"
    r"\s*(Z|UTC|GMT|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
_DATE_WORD = re.compile(r"[0-9]+|[^\W\d_]+|\S")

_MONTHS: dict[str, int] = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9, "sept": 9,
    "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
    "ene": 1, "enero": 1, "febrero": 2, "marzo": 3, "abr": 4, "abril": 4, "mayo": 5, "junio": 6,
    "julio": 7, "ago": 8, "agosto": 8, "set": 9, "septiembre": 9, "setiembre": 9, "octubre": 10,
    "noviembre": 11, "dic": 12, "diciembre": 12,
}  # fmt: skip
# Words and marks a month-name date may contain besides day, month and year (weekdays, "de", ordinals).
_FILLER_WORDS = """
    de del of the st nd rd th º ª , . - /
    mon monday tue tues tuesday wed wednesday thu thur thurs thursday fri friday sat saturday sun sunday
    lunes martes miércoles miercoles jueves viernes sábado sabado domingo
    """
_DATE_FILLERS = frozenset(_FILLER_WORDS.split())

#: Serial numbers parse_date/parse_datetime accept as Excel dates: 1927-05-18 to 2173-10-14. A
#: number outside this window in a date column (``2021``, ``5``) is far likelier a typo than a date.
EXCEL_SERIAL_RANGE = (10_000, 99_999)
_EXCEL_EPOCH = date(1899, 12, 30).toordinal()
_EXCEL_MAX_SERIAL = 2_958_465  # 9999-12-31


def _check_order(order: object) -> None:
    if order is not None and order not in _ORDER_LABEL:
        raise ConfigError(f"date_order must be one of DMY, MDY, YMD or unset, not {order!r}")


def _valid_ymd(y: int, m: int, d: int) -> bool:
    if not (1 <= m <= 12 and 1 <= y <= 9999 and d >= 1):
        return False
    if d <= _DAYS_IN_MONTH[m]:
        return True
    return m == 2 and d == 29 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _year(s: str) -> int:
    """Year from 2 or 4 digits; two-digit years pivot like strptime's %y: 00-68 -> 20xx, 69-99 -> 19xx."""
    y = int(s)
    if len(s) == 2:
        return y + (2000 if y < 69 else 1900)
    return y


def _readings(a: str, b: str, c: str) -> int:
    """Bit set of the orders under which numeric date parts a/b/c form a real date.

    D/M/Y and M/D/Y need a 2- or 4-digit year last; Y/M/D needs a 4-digit year first, or a
    2-digit year first with a 1-2 digit day last (``21/4/5``).
    """
    la, lc = len(a), len(c)
    if la == 4:
        return _YMD if lc <= 2 and _valid_ymd(int(a), int(b), int(c)) else 0
    if la > 2:
        return 0
    mask = 0
    if lc == 2 or lc == 4:
        ai, bi, y = int(a), int(b), _year(c)
        if _valid_ymd(y, bi, ai):
            mask |= _DMY
        if _valid_ymd(y, ai, bi):
            mask |= _MDY
    if la == 2 and lc <= 2 and _valid_ymd(_year(a), int(b), int(c)):
        mask |= _YMD
    return mask


def _numeric_date(a: str, b: str, c: str, order: str | None, raw: object) -> date:
    if len(a) == 4:  # year first is Y/M/D whatever the order: nobody writes Y/D/M
        if len(c) <= 2 and _valid_ymd(int(a), int(b), int(c)):
            return date(int(a), int(b), int(c))
        raise ValueParseError(_BAD_CALENDAR_DATE, raw)
    if len(a) > 2:
        raise ValueParseError(_NOT_A_DATE, raw)
    if order is None:
        mask = _readings(a, b, c)
        if mask & _DMY and mask & _MDY:
            raise ValueParseError(_AMBIGUOUS, raw)
        if mask & _DMY:
            return date(_year(c), int(b), int(a))
        if mask & _MDY:
            return date(_year(c), int(a), int(b))
        if mask & _YMD:
            raise ValueParseError("not a date in D/M/Y or M/D/Y order; if it is yy/mm/dd set date_order", raw)
        raise ValueParseError(_BAD_CALENDAR_DATE if len(c) in (2, 4) else _NOT_A_DATE, raw)
    if order == "YMD":
        if len(a) != 2 or len(c) > 2:
            raise ValueParseError("not a date in Y/M/D order; check date_order", raw)
        y, m, d = _year(a), int(b), int(c)
    elif len(c) != 2 and len(c) != 4:
        raise ValueParseError(f"not a date in {_ORDER_LABEL[order]} order (year needs 2 or 4 digits)", raw)
    elif order == "DMY":
        y, m, d = _year(c), int(b), int(a)
    else:
        y, m, d = _year(c), int(a), int(b)
    if _valid_ymd(y, m, d):
        return date(y, m, d)
    raise ValueParseError(f"day/month out of range for {_ORDER_LABEL[order]}; check date_order", raw)


def _named_date(s: str, raw: object) -> date:
    """Dates with a month name: "15 Apr, 2021", "Apr 15th 2021", "15-Apr-21", "15 de abril de 2021"."""
    month = 0
    nums: list[str] = []
    for tok in _DATE_WORD.findall(s.lower()):
        if "0" <= tok[0] <= "9":
            if len(tok) > 4:
                raise ValueParseError(_NOT_A_DATE, raw)
            nums.append(tok)
        elif tok in _MONTHS:
            if month:
                raise ValueParseError(_NOT_A_DATE, raw)
            month = _MONTHS[tok]
        elif tok not in _DATE_FILLERS:
            raise ValueParseError(_NOT_A_DATE, raw)
    if not month or len(nums) != 2:
        raise ValueParseError(_NOT_A_DATE, raw)
    d, y = nums
    if len(d) == 4:  # "2021 Apr 15"
        d, y = y, d
    if len(d) > 2 or len(y) not in (2, 4):
        raise ValueParseError(_NOT_A_DATE, raw)
    year, day = _year(y), int(d)
    if not _valid_ymd(year, month, day):
        raise ValueParseError(_BAD_CALENDAR_DATE, raw)
    return date(year, month, day)


def _date_part(s: str, order: str | None, raw: object) -> date:
    """Date from the cleaned date part of a cell (time already split off)."""
    if len(s) == 10 and _ISO_DATE.fullmatch(s):
        try:
            return date.fromisoformat(s)
        except ValueError:
            raise ValueParseError(_BAD_CALENDAR_DATE, raw) from None
    m = _NUMERIC_DATE.fullmatch(s)
    if m is not None:
        return _numeric_date(m.group(1), m.group(3), m.group(4), order, raw)
    if len(s) == 8 and _DIGITS.fullmatch(s):  # basic ISO 20210415
        y, mo, d = int(s[:4]), int(s[4:6]), int(s[6:])
        if _valid_ymd(y, mo, d):
            return date(y, mo, d)
        raise ValueParseError(_BAD_CALENDAR_DATE, raw)
    if s and not s[0].isdigit() or any(c.isalpha() for c in s):
        return _named_date(s, raw)
    raise ValueParseError(_NOT_A_DATE, raw)


@lru_cache(maxsize=256)
def _offset(tok: str) -> tzinfo:
    if tok.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if tok[0] == "-" else 1
    digits = tok[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(tok)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _time_of(m: re.Match[str], raw: object) -> tuple[time, tzinfo | None]:
    h, mi = int(m.group(1)), int(m.group(2))
    sec = int(m.group(3)) if m.group(3) else 0
    us = int((m.group(4) + "00000")[:6]) if m.group(4) else 0
    ampm = m.group(5)
    if ampm is not None:
        if h > 12:
            raise ValueParseError("not a valid time of day (hour above 12 with AM/PM)", raw)
        h = h % 12 + (12 if ampm in "pP" else 0)
    if h > 23 or mi > 59 or sec > 59:
        raise ValueParseError("not a valid time of day", raw)
    tz = None
    if m.group(6):
        try:
            tz = _offset(m.group(6))
        except ValueError:
            raise ValueParseError("not a valid UTC offset", raw) from None
    return time(h, mi, sec, us), tz


def _split_time(s: str, raw: object) -> tuple[str, re.Match[str] | None]:
    if len(s) > _MAX_DATE_LEN:
        raise ValueParseError(_NOT_A_DATE, raw)
    colon = s.find(":")
    if colon == -1:
        return s, None
    m = _TIME_TAIL.search(s, max(0, colon - 4))  # the time starts just before its first colon
    if m is None:
        raise ValueParseError(_NOT_A_DATE, raw)
    return s[: m.start()].rstrip().rstrip(",").rstrip(), m


def excel_serial_to_datetime(serial: int | float | Decimal) -> datetime:
    """Convert an Excel (1900 date system) serial number to a naive datetime.

    Excel counts days from 1899-12-30 but pretends 1900 was a leap year, so serial 60 (1900-02-29)
    does not exist and raises; serials below 60 are one day later than the plain count. The
    fraction is the time of day, rounded to the millisecond. Full Excel range: 1 to 2958465.

    >>> excel_serial_to_datetime(44301.75)
    datetime.datetime(2021, 4, 15, 18, 0)
    >>> excel_serial_to_datetime(59), excel_serial_to_datetime(61)
    (datetime.datetime(1900, 2, 28, 0, 0), datetime.datetime(1900, 3, 1, 0, 0))
    """
    if isinstance(serial, bool) or not isinstance(serial, (int, float, Decimal)):
        raise ValueParseError("not an Excel date serial number", serial)
    if not (serial.is_finite() if isinstance(serial, Decimal) else math.isfinite(serial)):
        raise ValueParseError("not an Excel date serial number", serial)
    day = math.floor(serial)
    if not 1 <= day <= _EXCEL_MAX_SERIAL:
        raise ValueParseError(f"Excel date serial out of range (1-{_EXCEL_MAX_SERIAL})", serial)
    if day == 60:
        raise ValueParseError("Excel date serial 60 is 1900-02-29, a day that never existed", serial)
    result = datetime.fromordinal(_EXCEL_EPOCH + day + (1 if day < 60 else 0))
    millis = round((serial - day) * 86_400_000)
    return result + timedelta(milliseconds=millis) if millis else result


def _serial(value: int | float | Decimal, raw: object) -> datetime:
    """Excel serial inside the plausible window, else a clear error."""
    lo, hi = EXCEL_SERIAL_RANGE
    if not lo <= value < hi + 1:
        raise ValueParseError(f"not a date (a number outside the Excel date range {lo}-{hi})", raw)
    return excel_serial_to_datetime(value)


def _typed_datetime(raw: object) -> datetime | date | None:
    """date/datetime as is; numbers as Excel serials (or 8-digit yyyymmdd integers)."""
    if isinstance(raw, date):
        return raw
    if raw is None or isinstance(raw, bool) or not isinstance(raw, (int, float, Decimal)):
        if raw is None:
            return None
        raise ValueParseError(_NOT_A_DATE, raw)
    if is_blank(raw):
        return None
    if isinstance(raw, int) and 10_000_101 <= raw <= 99_991_231:
        y, md = divmod(raw, 10_000)
        mo, d = divmod(md, 100)
        if _valid_ymd(y, mo, d):
            return date(y, mo, d)
        raise ValueParseError(_BAD_CALENDAR_DATE, raw)
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueParseError(_NOT_A_DATE, raw)
    return _serial(raw, raw)


def parse_date(raw: object, order: DateOrder | None = None) -> date | None:
    """Read a calendar date from any common spreadsheet form.

    Accepted: ISO ``2021-04-15`` (with or without a time, which is ignored along with any offset:
    the date is taken as written), ``20210415``, numeric ``15/04/2021``, ``04/15/2021``,
    ``15-04-21``, ``15.04.2021``, month names in English or Spanish (``15 Apr, 2021``,
    ``Apr 15th, 2021``, ``15-Apr-21``, ``15 de abril de 2021``), Excel serials within
    :data:`EXCEL_SERIAL_RANGE` (numbers or 5-digit text), and ``date``/``datetime`` objects.

    Two-digit years pivot like ``strptime``'s ``%y``: 00-68 are 2000-2068, 69-99 are 1969-1999.

    ``order`` (``"DMY"``, ``"MDY"`` or ``"YMD"``) says how to read day-first/month-first numeric
    dates. Without it a value is read only if a single D/M/Y-or-M/D/Y reading is a real date
    (``13/04/2021``); ``04/05/2021`` raises as ambiguous, and two-digit-year-first ``21/04/15`` needs
    ``order="YMD"``. With it, the value must be a real date in that order (``13/04/2021`` with
    ``"MDY"`` raises). Year-first values with a 4-digit year (``2021/04/15``) are Y/M/D under any order.

    >>> parse_date("15 de abril de 2021"), parse_date(44301)
    (datetime.date(2021, 4, 15), datetime.date(2021, 4, 15))
    >>> parse_date("13/04/2021", order="MDY")
    Traceback (most recent call last):
    ...
    crmsync.errors.ValueParseError: day/month out of range for M/D/Y; check date_order
    """
    _check_order(order)
    if type(raw) is str:
        s = raw.strip()
        if len(s) == 10 and _ISO_DATE.fullmatch(s):
            try:
                return date.fromisoformat(s)
            except ValueError:
                raise ValueParseError(_BAD_CALENDAR_DATE, raw) from None
        s = _clean(s)
        if _blank_str(s):
            return None
        if _SERIAL_TEXT.fullmatch(s):
            return _serial(Decimal(s), raw).date()
        ds, tm = _split_time(s, raw)
        if tm is not None:
            _time_of(tm, raw)  # reject "2021-04-15 25:00" even though the time is dropped
        return _date_part(ds, order, raw)
    value = _typed_datetime(raw)
    return value.date() if isinstance(value, datetime) else value


def _to_utc(dt: datetime, zone: tzinfo, raw: object) -> datetime:
    if dt.tzinfo is None:
        if zone is UTC:
            return dt.replace(tzinfo=UTC)
        dt = dt.replace(tzinfo=zone)
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueParseError("date out of range after converting to UTC", raw) from None


def parse_datetime(raw: object, order: DateOrder | None = None, tz: tzinfo | None = None) -> datetime | None:
    """Read a moment in time and return it timezone-aware in UTC.

    Accepts every :func:`parse_date` form (read as midnight) plus a time: ``2021-04-15 10:30:00``,
    ``2021-04-15T10:30:00+02:00``, ``...Z``, ``04/15/21 10:30 AM``, ``4/15/2021 3:05 PM``,
    ``15/04/2021 14:30``, ``15/04/2021 3:05 p. m.``; Excel serials keep their time fraction.
    A time without an offset (and a naive ``datetime`` from XLSX) is wall-clock time in ``tz``
    (any ``tzinfo``, e.g. ``zoneinfo.ZoneInfo("Europe/Madrid")``; default UTC), then converted.
    ``order`` works as in :func:`parse_date`. Epoch seconds are not accepted.

    >>> parse_datetime("4/15/2021 3:05 PM")
    datetime.datetime(2021, 4, 15, 15, 5, tzinfo=datetime.timezone.utc)
    >>> parse_datetime("2021-04-15T10:30:00+02:00")
    datetime.datetime(2021, 4, 15, 8, 30, tzinfo=datetime.timezone.utc)
    """
    if tz is None:
        zone: tzinfo = UTC
    elif isinstance(tz, tzinfo):
        zone = tz
    else:
        raise ConfigError(f"tz must be a tzinfo such as zoneinfo.ZoneInfo('Europe/Madrid'), not {tz!r}")
    _check_order(order)
    if type(raw) is str:
        s = raw.strip()
        if len(s) >= 10 and _ISO_DATE.match(s):
            if zone is UTC and _ISO_NAIVE_DATETIME.fullmatch(s):
                # Fast path for the commonest cell, "2021-04-15 10:30:00" read as UTC: parsing it
                # with the offset appended gives the same aware value as parse-then-replace(),
                # which costs several times more.
                try:
                    return datetime.fromisoformat(s + "+00:00")
                except ValueError:
                    pass
            try:
                return _to_utc(datetime.fromisoformat(s), zone, raw)
            except ValueError:
                pass  # e.g. "2021-04-15 10:30 AM": the general path below reads it
        s = _clean(s)
        if _blank_str(s):
            return None
        if _SERIAL_TEXT.fullmatch(s):
            return _to_utc(_serial(Decimal(s), raw), zone, raw)
        ds, tm = _split_time(s, raw)
        d = _date_part(ds, order, raw)
        if tm is None:
            return _to_utc(datetime(d.year, d.month, d.day), zone, raw)
        t, offset = _time_of(tm, raw)
        return _to_utc(datetime.combine(d, t, offset), zone, raw)
    value = _typed_datetime(raw)
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return _to_utc(value, zone, raw)


class DateOrderDetector:
    """Learn a date column's day/month order from its own values, cheaply.

    Feed values one at a time. A value that is a real date in exactly one order proves that order:
    ``25/04/2021`` proves DMY, ``04/25/2021`` MDY, ``2021/04/25`` (or ``99/04/25``) YMD; values that
    fit several orders, month names, serials and typed cells prove nothing. ``order`` is the proven
    order so far (``None`` until something is proven, and on conflict). ``decided`` turns True once
    ``confirmations`` values agree, or on ``conflict`` (two values proving different orders, e.g. a
    column mixing D/M/Y and M/D/Y, or ISO and D/M/Y); after that ``feed`` returns at once. Each
    ``feed`` is O(1). Callers feed until ``decided`` or out of data, then use ``order`` or their
    configured default.

    >>> detector = DateOrderDetector()
    >>> for value in ["03/04/2021", "25/04/2021", "30/04/2021", "12/05/2021"]:
    ...     detector.feed(value)
    >>> detector.order, detector.decided
    ('DMY', False)
    >>> detector.feed("01/13/2021")
    >>> detector.order, detector.conflict, detector.decided
    (None, True, True)
    """

    __slots__ = ("confirmations", "conflict", "decided", "order", "_proofs")

    def __init__(self, confirmations: int = 3):
        if confirmations < 1:
            raise ConfigError("confirmations must be at least 1")
        self.confirmations = confirmations
        self.order: DateOrder | None = None
        self.decided = False
        self.conflict = False
        self._proofs = 0

    def feed(self, raw: object) -> None:
        """Take one cell value as evidence (ignored once decided)."""
        if self.decided or type(raw) is not str:
            return
        m = _DETECT_DATE.match(raw)  # type: ignore[arg-type]
        if m is None:
            return
        proven = _SINGLE_ORDER.get(_readings(m.group(1), m.group(3), m.group(4)))
        if proven is None:
            return
        if self.order is None:
            self.order = proven
        elif proven != self.order:
            self.order = None
            self.conflict = self.decided = True
            return
        self._proofs += 1
        if self._proofs >= self.confirmations:
            self.decided = True


# --------------------------------------------------------------------------------------------------
# Emails, phones, multi-value cells
# --------------------------------------------------------------------------------------------------

_NOT_AN_EMAIL = "not a valid email address"


def normalize_email(raw: object) -> str | None:
    """Check an email address's syntax and return it lowercased, or raise.

    Tolerates what CRM exports wrap addresses in: ``<...>``, a display name
    (``"Ana <ana@x.com>"``), a ``mailto:`` prefix and query. Syntax only, no DNS lookups
    (``email-validator`` with ``check_deliverability=False``); reserved domains such as
    ``.test`` or ``localhost`` are rejected.

    >>> normalize_email(" <mailto:Ana.Lopez@Example.COM> ")
    'ana.lopez@example.com'
    """
    if type(raw) is not str:
        if is_blank(raw):
            return None
        raise ValueParseError(_NOT_AN_EMAIL, raw)
    s = _clean(raw)
    if _blank_str(s):
        return None
    if s[-1] == ">" and "<" in s:
        s = s[s.rindex("<") + 1 : -1].strip()
    if s[:7].lower() == "mailto:":
        s = s[7:].split("?", 1)[0].strip()
    try:
        return validate_email(s, check_deliverability=False).normalized.lower()
    except (EmailNotValidError, ValueError, UnicodeError):
        raise ValueParseError(_NOT_AN_EMAIL, raw) from None


@lru_cache(maxsize=32)
def _check_region(region: str | None) -> str | None:
    if region is None:
        return None
    upper = region.upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"default_region {region!r} is not a region phonenumbers knows (e.g. 'US', 'ES')")
    return upper


def _valid_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")


def _whole_number(raw: object) -> int | None:
    """The int a typed numeric cell holds, if it is a finite whole number (Excel's 34612345678.0)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, Decimal)):
        return None
    if isinstance(raw, int):
        return raw
    if not (raw.is_finite() if isinstance(raw, Decimal) else math.isfinite(raw)) or raw != int(raw):
        return None
    return int(raw)


def normalize_phone(raw: object, default_region: str | None = "US", keep_extension: bool = True) -> str | None:
    """Normalize a phone number to E.164 (``+34612345678``), or raise.

    Numbers without a ``+`` country code are read in ``default_region``. The number must be
    *valid* (phonenumbers' per-country number ranges), not merely *possible* (right length):
    "possible" lets through the placeholders that fill CRM phone fields, such as 000-000-0000 and
    123-456-7890. The cost is rejecting numbers from ranges newer than the installed phonenumbers
    metadata; upgrading phonenumbers fixes that.

    Excel stores ``+34 612 34 56 78`` typed as a number as ``34612345678.0``, losing the ``+``: a
    digits-only value that is not valid in ``default_region`` is retried as international
    (``00`` or ``+`` prefix). An extension is kept as ``;ext=NN`` (RFC 3966 style) unless
    ``keep_extension=False`` drops it.

    >>> normalize_phone("(212) 555-0100 ext. 7"), normalize_phone(34612345678.0)
    ('+12125550100;ext=7', '+34612345678')
    >>> normalize_phone("612 34 56 78", default_region="ES")
    '+34612345678'
    """
    region = _check_region(default_region)
    if type(raw) is str:
        s = _clean(raw)
        if _blank_str(s):
            return None
        if s[:4].lower() == "tel:":
            s = s[4:].strip()
    elif is_blank(raw):
        return None
    else:
        whole = _whole_number(raw)
        if whole is None:
            raise ValueParseError("not a phone number", raw)
        s = str(whole)
    number = _valid_phone(s, region)
    if number is None:
        digits = _PHONE_PUNCTUATION.sub("", s)
        if len(digits) <= 20 and digits.isascii() and digits.isdigit():
            number = _valid_phone("+" + (digits[2:] if digits.startswith("00") else digits), None)
    if number is None:
        where = "" if s.startswith("+") or region is None else f" for region {region}"
        raise ValueParseError(f"not a valid phone number{where}", raw)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if keep_extension and number.extension:
        return f"{e164};ext={number.extension}"
    return e164


_MULTI_SEPARATOR = re.compile(r"\s*(?:[;,\r\n]+|\s/\s)\s*")


def split_multi(raw: object) -> list[str]:
    """Split a cell holding several emails or phones into trimmed, non-blank parts.

    Separators: ``;``, ``,``, line breaks and ``/`` with spaces around it. Spaces alone never split,
    so ``+34 612 34 56 78`` stays whole; a bare ``/`` does not split either. Commas always split:
    they are rare inside a phone number, but a ``"Doe, Jane" <j@x.com>`` display name would be cut.

    >>> split_multi("a@x.com; b@y.com\\n+34 612 34 56 78 / n/a")
    ['a@x.com', 'b@y.com', '+34 612 34 56 78']
    """
    if type(raw) is not str:
        if is_blank(raw):
            return []
        text = parse_text(raw)
        return [text] if text is not None else []
    return [p for p in _MULTI_SEPARATOR.split(_clean(raw)) if not _blank_str(p)]
