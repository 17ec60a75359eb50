"""The parts of a mapping field that read more than one plain cell: templates, multi-value cells, conditions.

Why a module of their own: :mod:`crmsync.mapping` compiles fields into a generated converter and
must stay fast for the plain ``column = "X"`` case; these pieces are only built for fields that use
them, validated once at load time, and each is a small callable the converter calls per row.

* :class:`Template` combines columns: ``template = "{First Name} {Last Name}"``. Blank cells are
  skipped together with the separator in front of them, so no double spaces or dangling commas.
* :class:`Extract` takes values out of a multi-value cell: ``split = ";"`` and/or
  ``pattern = '\\((\\d+)\\)'``, then ``pick = "first"`` or ``"all"``.
* :func:`compile_conditions` tests a row for ``when = [{ if = {...}, value = ... }]`` cases.
* :class:`ColumnSet` reads every column whose header matches a pattern into one ``{key: value}``
  field: ``columns = { pattern = '^Date entered "(?P<stage>.+)"$', key = "{stage}" }``.

Example::

    >>> Template.parse("{First Name} {Last Name}", "t").render({"First Name": " Ana ", "Last Name": ""})
    'Ana'
    >>> Extract.parse({"split": ";"}, "t", []).items("123; 456;")
    ['123', '456']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crmsync import values
from crmsync.errors import ValueParseError

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
PICKS = ("first", "all")


class CellFailed(Exception):
    """A cell read outside the field's own column cannot be read (a condition's ``IsWon = "maybe"``, one of
    the ``columns`` a pattern matched): the row is quarantined, naming that column."""

    def __init__(self, column: str, raw: Any, reason: str):
        super().__init__(reason)
        self.column, self.raw, self.reason = column, raw, reason


@dataclass(frozen=True)
class Template:
    """Text built from several columns: placeholders ``{Column}`` and the literal text between them.

    Text before the first placeholder and after the last is a prefix/suffix, kept whenever any
    column has a value; text between two placeholders is the separator written in front of the
    later value, and only when some value precedes it. All columns blank gives ``None``; runs of
    whitespace become one space.

    >>> t = Template.parse("{Street}, {City} {Zip}", "t")
    >>> t.render({"Street": "1 Main St", "City": "", "Zip": "28001"})
    '1 Main St 28001'
    """

    prefix: str
    parts: tuple[tuple[str, str], ...]  # (separator before the value, column)
    suffix: str

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column for _, column in self.parts)

    @classmethod
    def parse(cls, text: Any, where: str, problems: list[str] | None = None) -> Template | None:
        problems = [] if problems is None else problems
        if not isinstance(text, str) or not _PLACEHOLDER.search(text):
            problems.append(f"{where}.template: must be text naming columns in braces, like \"{{First Name}} "
                            "{{Last Name}}\"")
            return None
        pieces = _PLACEHOLDER.split(text)  # literal, column, literal, column, ..., literal
        literals, columns = pieces[0::2], pieces[1::2]
        if any("{" in lit or "}" in lit for lit in literals):
            problems.append(f"{where}.template: unbalanced brace in {text!r} (each column is written {{Name}})")
            return None
        parts = tuple(zip(["", *literals[1:-1]], [c.strip() for c in columns], strict=True))
        return cls(prefix=literals[0], parts=parts, suffix=literals[-1])

    def render(self, row: dict[str, Any]) -> str | None:
        out: list[str] = []
        for separator, column in self.parts:
            text = values.parse_text(row.get(column))
            if text is None:
                continue
            if out:
                out.append(separator)
            out.append(text)
        if not out:
            return None
        return " ".join((self.prefix + "".join(out) + self.suffix).split())


@dataclass(frozen=True)
class Extract:
    """Values inside one cell: split on a separator, and/or the matches of a regular expression.

    With ``pattern`` and no ``split`` the values are every match in the cell; with both, each
    split part gives its first match (parts without one are dropped). A pattern with a group
    yields the group, else the whole match. Blank and placeholder values are dropped.

    >>> Extract.parse({"pattern": r"\\((\\d+)\\)"}, "t", []).items("ACME, Inc (5002), Acme (5001)")
    ['5002', '5001']
    """

    split: str | None
    pattern: re.Pattern[str] | None
    pick: str

    @classmethod
    def parse(cls, spec: dict[str, Any], where: str, problems: list[str], *, default_pick: str = "first"
              ) -> Extract | None:
        split, pattern, pick = spec.get("split"), spec.get("pattern"), spec.get("pick", default_pick)
        ok = True
        if split is not None and (not isinstance(split, str) or not split):
            problems.append(f"{where}.split: must be the non-empty text between values, like \";\"")
            ok = False
        compiled = None
        if pattern is not None:
            try:
                compiled = re.compile(pattern) if isinstance(pattern, str) else None
            except re.error as exc:
                problems.append(f"{where}.pattern: not a valid regular expression ({exc}); write it in single "
                                "quotes in TOML so backslashes stay as written")
                ok = False
            else:
                if compiled is None:
                    problems.append(f"{where}.pattern: must be a regular expression (text)")
                    ok = False
                elif compiled.groups > 1:
                    problems.append(f"{where}.pattern: has {compiled.groups} groups; use one group around the "
                                    "part to keep, or (?:...) for the others")
                    ok = False
        if pick not in PICKS:
            problems.append(f"{where}.pick: {pick!r} is not one of {', '.join(PICKS)}")
            ok = False
        return cls(split, compiled, pick) if ok else None

    def items(self, raw: Any) -> list[str]:
        text = values.parse_text(raw)
        if text is None:
            return []
        parts = text.split(self.split) if self.split is not None else [text]
        out = []
        for part in parts:
            if self.pattern is not None:
                if self.split is None:
                    found = [m.group(1) if self.pattern.groups else m.group(0) for m in self.pattern.finditer(part)]
                else:
                    m = self.pattern.search(part)
                    found = [] if m is None else [m.group(1) if self.pattern.groups else m.group(0)]
            else:
                found = [part]
            out += [v for f in found if (v := values.parse_text(f)) is not None]
        return out

    def first(self, raw: Any) -> str | None:
        found = self.items(raw)
        return found[0] if found else None


@dataclass(frozen=True)
class ColumnSet:
    r"""Every column whose header matches ``pattern``, each under a key built from the pattern's named groups.

    Why: some exports spread one fact over a column per value (HubSpot writes a ``Date entered "<stage>
    (<pipeline>)"`` column per stage of every pipeline); which columns exist depends on the account, so
    they are found by pattern in each file's headers, not listed.

    >>> cs = ColumnSet.parse({"pattern": r'^Date entered "(?P<stage>.+) \((?P<pipeline>[^()]+)\)"$',
    ...                       "key": "{pipeline}/{stage}"}, "t", [])
    >>> cs.match(['Deal Name', 'Date entered "Closed Won (Sales Pipeline)"'])
    [('Date entered "Closed Won (Sales Pipeline)"', 'Sales Pipeline/Closed Won')]
    """

    pattern: re.Pattern[str]
    key: str

    @classmethod
    def parse(cls, spec: Any, where: str, problems: list[str]) -> ColumnSet | None:
        here = f"{where}.columns"
        if not isinstance(spec, dict) or not isinstance(spec.get("pattern"), str):
            problems.append(f"{here}: must be a table like {{ pattern = '^Date entered \"(?P<stage>.+)\"$', "
                            "key = \"{stage}\" }")
            return None
        for extra in sorted(set(spec) - {"pattern", "key"}):
            problems.append(f"{here}.{extra}: unknown key (expected pattern, key)")
        try:
            pattern = re.compile(spec["pattern"])
        except re.error as exc:
            problems.append(f"{here}.pattern: not a valid regular expression ({exc})")
            return None
        key = spec.get("key")
        if key is None:
            if pattern.groups != 1:
                problems.append(f"{here}.key: missing (needed when the pattern has {pattern.groups} groups: name "
                                "them (?P<name>...) and write key = \"{name}\")")
                return None
            return cls(pattern, "")
        names = set(_PLACEHOLDER.findall(key)) if isinstance(key, str) else set()
        unknown = names - set(pattern.groupindex)
        if not names or unknown:
            problems.append(f"{here}.key: must name the pattern's groups in braces, like \"{{stage}}\""
                            + (f" ({', '.join(sorted(unknown))} is not a named group)" if unknown else ""))
            return None
        return cls(pattern, key)

    def match(self, headers: list[str]) -> list[tuple[str, str]]:
        """``(header, key)`` for every header the pattern matches, in file order."""
        out = []
        for header in headers:
            m = self.pattern.search(header)
            if m is None:
                continue
            if not self.key:
                key = m.group(1)
            else:
                key = _PLACEHOLDER.sub(lambda g, m=m: (m.group(g.group(1)) or "").strip(), self.key)
            out.append((header, key.strip()))
        return out


#: Keys of one ``if`` table.
COND_KEYS = frozenset({"column", "is", "empty"})


def compile_conditions(spec: Any, where: str, problems: list[str]) -> tuple[tuple[str, ...], Callable] | None:
    """``if = {column = "IsWon", is = true}`` (or a list of such tables, all of which must hold) -> (columns, test).

    ``is = true/false`` reads the cell as yes/no (an unreadable cell quarantines the row); ``is = "text"``
    or a list of texts compares ignoring case, accents and spaces; ``empty = true/false`` tests for a
    blank cell. A blank cell never satisfies ``is``.
    """
    tables = spec if isinstance(spec, list) else [spec]
    if not tables or not all(isinstance(t, dict) for t in tables):
        problems.append(f"{where}.if: must be a table like {{ column = \"IsWon\", is = true }} or a list of them")
        return None
    tests: list[Callable[[dict[str, Any]], bool]] = []
    columns: list[str] = []
    for k, table in enumerate(tables):
        here = f"{where}.if" + (f"[{k}]" if isinstance(spec, list) else "")
        for key in sorted(set(table) - COND_KEYS):
            problems.append(f"{here}.{key}: unknown key (expected column and one of is, empty)")
        column = table.get("column")
        if not isinstance(column, str) or not column:
            problems.append(f"{here}.column: the column to test is missing")
            return None
        if ("is" in table) == ("empty" in table):
            problems.append(f"{here}: give exactly one of is (a value to compare) or empty (true/false)")
            return None
        columns.append(column)
        if "empty" in table:
            if not isinstance(table["empty"], bool):
                problems.append(f"{here}.empty: must be true or false")
                return None
            tests.append(_empty_test(column, table["empty"]))
            continue
        expected = table["is"]
        if isinstance(expected, bool):
            tests.append(_bool_test(column, expected))
        elif isinstance(expected, str) or (isinstance(expected, list) and expected
                                           and all(isinstance(e, str) for e in expected)):
            from crmsync.mapping import fold  # one folding rule for lookups and conditions

            words = frozenset(fold(e) for e in ([expected] if isinstance(expected, str) else expected))
            tests.append(_text_test(column, words, fold))
        else:
            problems.append(f"{here}.is: must be true, false, a text or a list of texts")
            return None
    if len(tests) == 1:
        return tuple(columns), tests[0]
    return tuple(columns), lambda row, tests=tuple(tests): all(test(row) for test in tests)


def _empty_test(column: str, expected: bool) -> Callable[[dict[str, Any]], bool]:
    return lambda row: values.is_blank(row.get(column)) is expected


def _bool_test(column: str, expected: bool) -> Callable[[dict[str, Any]], bool]:
    def test(row: dict[str, Any]) -> bool:
        raw = row.get(column)
        try:
            return values.parse_bool(raw) is expected
        except ValueParseError as exc:
            raise CellFailed(column, raw, f"{exc.reason} (a condition of the mapping reads it)") from None

    return test


def _text_test(column: str, words: frozenset[str], fold: Callable[[str], str]) -> Callable[[dict[str, Any]], bool]:
    def test(row: dict[str, Any]) -> bool:
        text = values.parse_text(row.get(column))
        return text is not None and fold(text) in words

    return test
