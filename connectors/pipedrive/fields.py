"""Custom-field definitions: 40-hex keys -> human names, option ids -> labels.

Why: Pipedrive sends custom values under random per-company hash keys, enum values as
option ids and sets as id lists (``"12,14"`` in v1). Users want ``custom["Segment"] ==
"Enterprise"``. Identity is the key (immutable); the name is only a label, so a rename
in Pipedrive changes the label and is detected by comparing with the names stored
after the previous run (the ``fields`` cursor), reported as a Notice and applied to the
records already stored. Leads have no fields of their own: they inherit the deal ones
(``/v1/leadFields``), in v1 format (root-level keys).

Example::

    >>> fs = FieldSet.from_v2([{"field_code": "a" * 40, "field_name": "Segment", "field_type": "enum",
    ...                         "is_custom_field": True, "options": [{"id": 1, "label": "SMB"}]}])
    >>> fs.values_v2({"a" * 40: 1})
    {'Segment': 'SMB'}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_HASH = re.compile(r"^[0-9a-f]{40}$")


def is_custom_key(key: str) -> bool:
    return bool(_HASH.match(key))


@dataclass
class FieldDef:
    key: str
    name: str
    type: str
    options: dict[str, str] = field(default_factory=dict)  # str(option id) -> label


@dataclass
class FieldSet:
    fields: dict[str, FieldDef] = field(default_factory=dict)
    #: key -> the name used in ``custom`` (the field name, made unique if two fields share one)
    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def _build(cls, defs: list[FieldDef]) -> FieldSet:
        fs = cls()
        taken: dict[str, str] = {}
        for d in sorted(defs, key=lambda d: d.key):
            fs.fields[d.key] = d
            name = d.name or d.key
            if name in taken and taken[name] != d.key:
                name = f"{name} [{d.key[:8]}]"
            taken[name] = d.key
            fs.names[d.key] = name
        return fs

    @classmethod
    def from_v2(cls, items: list[dict]) -> FieldSet:
        defs = []
        for f in items:
            key = f.get("field_code") or ""
            if not (f.get("is_custom_field") or is_custom_key(key)):
                continue
            opts = {str(o.get("id")): str(o.get("label")) for o in f.get("options") or ()}
            defs.append(FieldDef(key, str(f.get("field_name") or key), str(f.get("field_type") or ""), opts))
        return cls._build(defs)

    @classmethod
    def from_v1(cls, items: list[dict]) -> FieldSet:
        defs = []
        for f in items:
            key = f.get("key") or ""
            if not (f.get("edit_flag") or is_custom_key(key)) or f.get("is_subfield"):
                continue
            opts = {str(o.get("id")): str(o.get("label")) for o in f.get("options") or ()}
            defs.append(FieldDef(key, str(f.get("name") or key), str(f.get("field_type") or ""), opts))
        return cls._build(defs)

    # -- values --------------------------------------------------------------------------------
    def _label(self, d: FieldDef, v: Any) -> Any:
        return d.options.get(str(v), str(v))

    def _convert(self, d: FieldDef, v: Any) -> Any:
        if d.type == "enum":
            if isinstance(v, dict):  # include_option_labels=true form
                return v.get("label") or self._label(d, v.get("id"))
            return self._label(d, v)
        if d.type == "set":
            if isinstance(v, str):
                v = [x for x in v.split(",") if x.strip()]
            if not isinstance(v, list):
                v = [v]
            return [x.get("label") or self._label(d, x.get("id")) if isinstance(x, dict) else self._label(d, x)
                    for x in v]
        return v

    def values_v2(self, custom_fields: dict | None) -> dict[str, Any]:
        """v2 ``custom_fields`` -> {name: value}; unset (null) fields are left out."""
        out: dict[str, Any] = {}
        for key, v in (custom_fields or {}).items():
            if v is None or v == [] or (isinstance(v, dict) and v.get("value") is None and "value" in v):
                continue
            d = self.fields.get(key)
            if d is None:
                out[key] = v  # a field created after the definitions were read: keep it under its key
                continue
            out[self.names[key]] = self._convert(d, v)
        return out

    def values_v1(self, record: dict) -> dict[str, Any]:
        """v1 root-level custom keys (with ``_currency``/``_until``/... siblings) -> {name: value}."""
        out: dict[str, Any] = {}
        for key, v in record.items():
            if not is_custom_key(key) or v is None or v == "":
                continue
            d = self.fields.get(key)
            siblings = {k[len(key) + 1:]: x for k, x in record.items() if k.startswith(key + "_") and x is not None}
            if d is not None and d.type == "monetary":
                value: Any = {"value": v, "currency": siblings.get("currency")}
            elif d is not None and siblings and d.type not in ("enum", "set"):
                value = {"value": v, **siblings}
            else:
                value = v if d is None else self._convert(d, v)
            out[key if d is None else self.names[key]] = value
        return out


def names_json(sets: dict[str, FieldSet]) -> str:
    """The ``fields`` cursor: {entity: {key: name}}, stable text."""
    return json.dumps({e: dict(sorted(fs.names.items())) for e, fs in sorted(sets.items())},
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def renames(old_json: str | None, sets: dict[str, FieldSet]) -> dict[str, dict[str, tuple[str, str]]]:
    """{entity: {key: (old name, new name)}} for fields whose name changed since the stored cursor."""
    if not old_json:
        return {}
    try:
        old = json.loads(old_json)
    except ValueError:
        return {}
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for entity, fs in sets.items():
        for key, name in fs.names.items():
            before = (old.get(entity) or {}).get(key)
            if before is not None and before != name:
                out.setdefault(entity, {})[key] = (before, name)
    return out
