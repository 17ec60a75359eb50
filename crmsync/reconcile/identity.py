"""Link the same person or organization across sources (and duplicates within one), never merging.

Why links and not merges: sources must stay as they came, so a wrong match
costs a row in ``identity_links``, not lost data. Persons match on normalized
email (score 1.0) and E.164 phone (0.9); organizations on normalized name
(case, accents, punctuation and legal suffixes such as S.A., S.L., S.A. de
C.V., Inc., Ltd., GmbH removed: 1.0), web domain (1.0), and fuzzy name
similarity (rapidfuzz, within blocks of names sharing their rarest word, score =
similarity).

Example::

    >>> normalize_org_name("Peña & Asociados, S.A. de C.V.")
    'pena asociados'
    >>> normalize_org_name("ACME, Inc.") == normalize_org_name("Acme Inc")
    True
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator

from rapidfuzz import fuzz

# Longest first, so "s.a. de c.v." wins over "s.a.".
_LEGAL_SUFFIXES = sorted(
    [
        "s.a. de c.v.", "s. de r.l. de c.v.", "s.a.p.i. de c.v.", "s.a.s.", "s.a.", "s.l.", "s.l.u.", "s.r.l.",
        "s.c.", "sas", "sa", "sl", "slu", "srl", "ltda.", "ltda", "cia.", "cía.",
        "inc.", "inc", "incorporated", "corp.", "corp", "corporation", "co.", "company", "llc", "l.l.c.",
        "ltd.", "ltd", "limited", "plc", "llp", "lp", "gmbh", "ag", "kg", "ug", "bv", "b.v.", "nv", "n.v.",
        "oy", "ab", "as", "a/s", "spa", "s.p.a.", "sarl", "s.a.r.l.", "pty ltd", "pty. ltd.", "pty",
    ],
    key=len,
    reverse=True,
)
_SUFFIX_RE = re.compile(
    r"(?:[\s,]+(?:" + "|".join(re.escape(s) for s in _LEGAL_SUFFIXES) + r"))+\s*$", re.IGNORECASE
)
_NON_WORD = re.compile(r"[^\w]+")
FUZZY_THRESHOLD = 90.0
MAX_FUZZY_BLOCK = 500


def normalize_org_name(name: str) -> str:
    """Lower-case, accent-free, punctuation-free name without legal-form suffixes."""
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    previous = None
    while previous != text:  # "Acme Holdings Inc. Ltd." drops both forms
        previous = text
        text = _SUFFIX_RE.sub("", text.strip())
    return " ".join(_NON_WORD.sub(" ", text).split())


def normalize_domain(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip().lower()
    text = re.sub(r"^[a-z]+://", "", text).split("/")[0].split("?")[0]
    text = text.removeprefix("www.")
    return text or None


def person_links(conn: sqlite3.Connection) -> Iterator[tuple]:
    """(entity, a_source, a_id, b_source, b_id, reason, score) for persons sharing an email or phone."""
    for column, reason, score in (("emails", "email", 1.0), ("phones", "phone", 0.9)):
        rows = conn.execute(
            f"""
            WITH points AS (
                SELECT DISTINCT p.source, p.source_id, json_extract(j.value, '$.normalized') AS value
                FROM persons p, json_each(p.{column}) j
                WHERE p.removed_run IS NULL AND json_extract(j.value, '$.normalized') IS NOT NULL
            )
            SELECT a.source, a.source_id, b.source, b.source_id, a.value
            FROM points a JOIN points b ON a.value = b.value
             AND (a.source < b.source OR (a.source = b.source AND a.source_id < b.source_id))
            """
        )
        for a_source, a_id, b_source, b_id, value in rows:
            yield ("person", a_source, a_id, b_source, b_id, f"{reason}:{value}", score)


def organization_links(conn: sqlite3.Connection) -> Iterator[tuple]:
    """(entity, a_source, a_id, b_source, b_id, reason, score) for organizations that look the same."""
    by_name: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_domain: dict[str, list[tuple[str, str]]] = defaultdict(list)
    names: dict[tuple[str, str], str] = {}
    for source, source_id, name, domain in conn.execute(
        "SELECT source, source_id, name, domain FROM organizations WHERE removed_run IS NULL"
    ):
        key = (source, source_id)
        if name:
            normal = normalize_org_name(name)
            if normal:
                names[key] = normal
                by_name[normal].append(key)
        if (d := normalize_domain(domain)) is not None:
            by_domain[d].append(key)
    seen: set[tuple] = set()
    for groups, reason in ((by_name, "name"), (by_domain, "domain")):
        for value, keys in groups.items():
            for a, b in _pairs(keys):
                seen.add((a, b))
                yield ("organization", *a, *b, f"{reason}:{value}", 1.0)
    # Fuzzy names, compared only within blocks of names sharing one of their two rarest words:
    # "acme industries" and "acme industriess" meet in "acme" (a typo in one word is still found);
    # "compania 1234" and "compania 1243" would only meet in "compania", a word so common that its
    # block is skipped. (Blocking on a 3-letter prefix made one block of every "Compañía …": quadratic.)
    tokens = {normal: set(normal.split()) for normal in by_name}
    frequency = Counter(t for words in tokens.values() for t in words)
    blocks: dict[str, list[str]] = defaultdict(list)
    for normal, words in tokens.items():
        for word in sorted(words, key=lambda t: (frequency[t], t))[:2]:
            blocks[word].append(normal)
    for candidates in blocks.values():
        if len(candidates) > MAX_FUZZY_BLOCK:
            continue  # a word shared by this many names says nothing; exact name/domain links still apply
        for i, left in enumerate(candidates):
            for right in candidates[i + 1 :]:
                score = fuzz.token_sort_ratio(left, right)
                if score < FUZZY_THRESHOLD:
                    continue
                for a in by_name[left]:
                    for b in by_name[right]:
                        pair = (a, b) if a < b else (b, a)
                        if pair not in seen:
                            seen.add(pair)
                            yield ("organization", *pair[0], *pair[1], f"fuzzy_name:{left}~{right}",
                                   round(score / 100, 3))


def _pairs(keys: list[tuple[str, str]]) -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    ordered = sorted(set(keys))
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            yield a, b
