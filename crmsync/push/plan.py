"""Deciding what a push would do: desired values, matching, field-level diffs, conflicts.

Why a plan first: users trust a tool with their production CRM only when it says exactly what it
will do before doing it (creates / updates / deletes / skips / conflicts per entity, the changed
fields, the requests and tokens). The plan is computed from the warehouse alone — the origin's
records and the target's records as last read — so it spends no API request.

Values are canonical field names, flattened: ``custom.<field name>`` for custom fields. References
to other records stay symbolic (:class:`Ref`) until the apply step resolves them through the ID
map, because in a migration the referenced person is created a moment before the deal.

Example::

    >>> settings = PushSettings(origin="pd_a", target="pd_b")          # doctest: +SKIP
    >>> items = Planner(conn, settings, ledger).plan("person")          # doctest: +SKIP
    >>> items[0].action, items[0].changes                               # doctest: +SKIP
    ('update', {'emails': [['ANA@X.COM'], ['ana@x.com']]})
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crmsync.errors import ConfigError, ValueParseError
from crmsync.model import ContactPoint, Organization, Person, Record
from crmsync.reconcile.identity import normalize_domain, normalize_org_name
from crmsync.values import normalize_email, normalize_phone
from crmsync.view import StoredRecords
from crmsync.warehouse import to_json

from .ledger import Ledger

#: Push order: parents before the records that point at them.
ORDER = ("pipeline", "stage", "organization", "person", "lead", "deal")
MODES = ("insert", "update", "upsert", "enrich", "mirror")
MATCH_KEYS = ("key", "email", "name", "domain", "fingerprint")
DEFAULT_MATCH: dict[str, tuple[str, ...]] = {
    "pipeline": ("name",),
    "stage": ("name",),
    "organization": ("key", "name", "domain"),
    "person": ("key", "email"),
    "lead": ("fingerprint",),
    "deal": ("key", "fingerprint"),
}
#: Canonical fields pushed per entity (besides ``custom.*``).
FIELDS: dict[str, tuple[str, ...]] = {
    "pipeline": ("name",),
    "stage": ("name", "pipeline_id", "probability", "rotten_days"),
    "organization": ("name", "address", "domain", "owner_id"),
    "person": ("name", "emails", "phones", "org_id", "owner_id"),
    "lead": ("title", "person_id", "org_id", "owner_id", "value", "currency", "expected_close_date"),
    "deal": ("title", "value", "currency", "status", "pipeline_id", "stage_id", "person_id", "org_id", "owner_id",
             "expected_close_date", "won_time", "lost_time", "lost_reason", "archived"),
}
REFS = {"pipeline_id": "pipeline", "stage_id": "stage", "org_id": "organization", "person_id": "person",
        "owner_id": "user"}
_SPACES = re.compile(r"\s{2,}")
#: Which entity's custom fields a record uses (Pipedrive leads share the deal fields).
FIELD_OWNER = {"deal": "deal", "lead": "deal", "person": "person", "organization": "organization"}
#: Custom field types whose values are ids of other records, and the entity they point to.
REF_FIELD_TYPES = {"user": "user", "people": "person", "org": "organization"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another origin record, resolved to the target's id at apply time."""

    entity: str
    origin_id: str


@dataclass
class PushSettings:
    """What to push where and how. ``origin == target`` writes a CRM's own records back (normalized)."""

    origin: str
    target: str
    entities: tuple[str, ...] = ORDER
    modes: dict[str, str] = field(default_factory=dict)
    match: dict[str, tuple[str, ...]] = field(default_factory=dict)
    normalize: bool = False
    force: bool = False
    #: Only these origin ids per entity (``--sample``); ``None`` = everything.
    scope: dict[str, set[str]] | None = None
    #: ``{"Origin pipeline": "Target pipeline", "Origin pipeline/Stage": "Target pipeline/Stage"}``
    stage_map: dict[str, str] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        return self.origin == self.target

    def mode(self, entity: str) -> str:
        return self.modes.get(entity) or ("update" if self.same else "upsert")

    def keys(self, entity: str) -> tuple[str, ...]:
        return self.match.get(entity, DEFAULT_MATCH[entity])

    def check(self) -> None:
        for entity, mode in self.modes.items():
            if entity not in ORDER:
                raise ConfigError(f"--mode {entity}={mode}: unknown entity (use one of {', '.join(ORDER)})")
            if mode not in MODES:
                raise ConfigError(f"--mode {entity}={mode}: unknown mode (use one of {', '.join(MODES)})")
        for entity, keys in self.match.items():
            if entity not in ORDER:
                raise ConfigError(f"--match {entity}=...: unknown entity (use one of {', '.join(ORDER)})")
            bad = [k for k in keys if k not in MATCH_KEYS]
            if bad:
                raise ConfigError(f"--match {entity}={','.join(keys)}: unknown key {bad[0]!r} "
                                  f"(use {', '.join(MATCH_KEYS)})")


@dataclass
class Item:
    """One record's planned action. ``changes`` maps field -> [target's value, desired value]."""

    entity: str
    origin_id: str
    action: str  # create | update | delete | skip | conflict
    target_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, list[Any]] = field(default_factory=dict)
    reason: str = ""
    seen: str | None = None
    key: str | None = None
    fingerprint: str | None = None
    #: A pending intent this record's create is recovering (its run keeps ownership of the record).
    intent: dict[str, Any] | None = None
    #: Whether the record found for ``intent`` is provably that create (see ``Planner._owned``).
    owned: bool = True
    #: The target ``update_time`` a conflict was judged against (kept as the ID map's base).
    base: str | None = None


def stamp(value: Any) -> str | None:
    """Any time (datetime or API text) as ``YYYY-MM-DDTHH:MM:SSZ`` for equality checks."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value).strip().replace(" ", "T", 1)
    return text[:19] + "Z"


def crmsync_key(origin: str, entity: str, origin_id: str) -> str:
    return f"{origin}:{entity}:{origin_id}"


def plain(value: Any) -> Any:
    """A value as JSON-able text for plans, logs and pre-images."""
    if isinstance(value, Ref):
        return f"<{value.entity} {value.origin_id}>"
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, date | Decimal):
        return str(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def comparable(name: str, value: Any) -> Any:
    if value in (None, "", [], {}):
        return None
    if name in ("emails", "phones"):
        return [p["value"] if isinstance(p, dict) else p for p in value] or None
    if isinstance(value, list) and name.startswith("custom."):  # a set field: option order means nothing
        return sorted(str(v) for v in value)
    if name.endswith("_time"):
        return stamp(value)
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return Decimal(str(value)).normalize()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, str | dict):  # enums
        return value.value
    if name == "domain":
        return normalize_domain(str(value))
    return str(value)


class Planner:
    """Computes :class:`Item` lists per entity from the warehouse (origin records vs target records)."""

    def __init__(self, conn, settings: PushSettings, ledger: Ledger, *, key_entities: frozenset[str] = frozenset(),
                 plan_seen: dict[tuple[str, str], str | None] | None = None):
        self.conn = conn
        self.s = settings
        self.ledger = ledger
        self.origin = StoredRecords(conn, settings.origin)
        self.target = StoredRecords(conn, settings.target)
        self.key_entities = key_entities
        self.plan_seen = plan_seen or {}
        self.notices: dict[str, int] = {}
        self.users = self._user_map()
        self.field_defs = {(f.owner, f.name): f for f in self.origin.all("custom_field")}
        self.target_fields = {(f.owner, f.name) for f in self.target.all("custom_field")}
        #: (owner, name) -> values seen in origin records (a bounded sample) for fields the target lacks
        self.used_custom: dict[tuple[str, str], list[Any]] = {}
        self._origin_ids: dict[str, set[str]] = {}
        self._contacts: tuple[dict[str, dict[str, Record]], dict[str, dict[str, str]]] | None = None
        self._refusals: dict[str, dict[str, tuple[Any, str]]] = {}
        self._maps: dict[str, dict[str, str]] = {}
        self.pending = {(i["entity"], i["origin_id"]): i for i in ledger.pending_intents(settings.target)
                        if i["origin"] == settings.origin}

    # -- public --------------------------------------------------------------------------------
    def plan(self, entity: str) -> list[Item]:
        return [item for chunk in self.plan_chunks(entity) for item in chunk]

    def plan_chunks(self, entity: str, size: int = 2000) -> Iterator[list[Item]]:
        """The plan for ``entity`` in chunks, so memory stays flat however large both sides are.

        The target is held only as match keys (ids, emails, names); the target records an origin
        chunk matched are read per chunk.
        """
        mode = self.s.mode(entity)
        mapped = {} if self.s.same else self.ledger.id_map(self.s.target, entity, self.s.origin)
        self._maps.clear()  # earlier entities may have been written since: read their ID maps again
        index = _Index(self, entity, mapped)
        wanted: set[str] = set()
        batch: list[Record] = []
        for rec in self._origin_records(entity):
            wanted.add(rec.source_id)
            batch.append(rec)
            if len(batch) >= size:
                yield self._chunk(entity, mode, batch, mapped, index)
                batch = []
        if batch:
            yield self._chunk(entity, mode, batch, mapped, index)
        if mode == "mirror":
            yield self._mirror_deletes(entity, mapped, index, wanted)

    def _chunk(self, entity: str, mode: str, recs: list[Record], mapped: dict, index: _Index) -> list[Item]:
        found: list[tuple[Record, tuple | None]] = []
        for rec in recs:
            if _skip_reason(entity, rec):
                found.append((rec, None))
                continue
            desired = self.desired(entity, rec)
            key = crmsync_key(self.s.origin, entity, rec.source_id)
            fingerprint = self._fingerprint(entity, desired)
            if self.s.same:
                tid, how = (rec.source_id if rec.source_id in index.live else None), "same record"
            else:
                tid, how = index.find(rec.source_id, key, desired, fingerprint)
            found.append((rec, (desired, key, fingerprint, tid, how)))
        targets = self.target.get_many(entity, [ctx[3] for _, ctx in found if ctx and ctx[3]])
        return [Item(entity, rec.source_id, "skip", reason=_skip_reason(entity, rec)) if ctx is None
                else self._item(entity, mode, rec, targets.get(ctx[3]) if ctx[3] else None, ctx, mapped)
                for rec, ctx in found]

    def desired(self, entity: str, rec: Record) -> dict[str, Any]:
        """The values ``rec`` should have in the target (refs symbolic, custom flattened)."""
        out: dict[str, Any] = {}
        inline = self._lead_contacts()[1].get(rec.source_id, {}) if entity == "lead" and not self.s.same else {}
        for name in FIELDS[entity]:
            value = getattr(rec, name, None)
            if value is None:
                value = inline.get(name)
            if name in REFS and value is not None:
                if self.s.same:
                    out[name] = Ref(REFS[name], str(value))
                else:
                    translated = self._translate(f"{entity}.{name}", REFS[name], str(value))
                    if translated is not None:
                        out[name] = translated
                continue
            if name in ("emails", "phones"):
                out[name] = [{"value": (p.normalized if self.s.normalize and p.normalized else p.raw),
                              "label": p.label, "primary": p.primary} for p in value or ()]
                continue
            if entity == "deal" and name in ("won_time", "lost_time"):
                wanted_status = "won" if name == "won_time" else "lost"
                if getattr(rec, "status", None) != wanted_status:
                    continue
            if self.s.normalize and isinstance(value, str) and name in ("name", "title"):
                value = _SPACES.sub(" ", value).strip()
            out[name] = value.value if hasattr(value, "value") and not isinstance(value, str) else value
        if entity == "lead" and out.get("value") is None:
            out.pop("currency", None)  # a lead's currency lives inside its value object
        if entity in ("pipeline", "stage") and not self.s.same:
            self._rename_stage(entity, rec, out)
        owner = FIELD_OWNER.get(entity)
        for name, value in (rec.custom or {}).items() if hasattr(rec, "custom") else ():
            if name == "crmsync key" or owner is None:
                continue
            definition = self.field_defs.get((owner, name))
            ref_entity = REF_FIELD_TYPES.get(definition.type or "") if definition else None
            if ref_entity and value is not None and not self.s.same:
                value = self._translate(f"{entity}.custom.{name}", ref_entity,
                                        str(value.get("value") if isinstance(value, dict) else value))
                if value is None:
                    continue
            if not self.s.same and (owner, name) not in self.target_fields:
                seen = self.used_custom.setdefault((owner, name), [])
                if len(seen) < 1000:
                    seen.append(value)
            out[f"custom.{name}"] = value
        return out

    def target_id(self, ref: Ref) -> str | None:
        """The target id a :class:`Ref` resolves to now (one ID-map read per referenced entity per plan)."""
        if ref.entity not in self._maps:
            self._maps[ref.entity] = {o: m.target_id for o, m in
                                      self.ledger.id_map(self.s.target, ref.entity, self.s.origin).items()}
        return self._maps[ref.entity].get(ref.origin_id)

    def _translate(self, where: str, ref_entity: str, ident: str) -> Any:
        """An origin reference as the target will hold it: a user mapped by email, or a :class:`Ref`.

        ``None`` (and a notice) when it cannot point anywhere: the user has no namesake email in the
        target, or the record is not in the origin (quarantined, removed); the target's default applies.
        """
        if ref_entity == "user":
            mapped = self.users.get(ident)
            if mapped is None:
                self._notice(f"{where}: origin user {ident} has no user with the same email in {self.s.target}; "
                             "left empty (the target's default applies)")
            return mapped
        if self._dangling(ref_entity, ident):
            self._notice(f"{where}: origin {ref_entity} {ident} is not in {self.s.origin} (never read, quarantined "
                         "or removed there); left empty")
            return None
        return Ref(ref_entity, ident)

    def _owned(self, entity: str, how: str) -> bool:
        """Whether a record found for a pending intent can be the interrupted create itself.

        Only the crmsync key proves it; for records that cannot carry the key (leads, or a target
        that refused the key field) the fingerprint is the best evidence there is. A match by email
        or name may be a record the user made, so rollback must not treat it as the run's.
        """
        return how == "crmsync key" or (how == "matched by fingerprint" and entity not in self.key_entities)

    def _refused(self, entity: str, origin_id: str, values: dict[str, Any]) -> str | None:
        """The API's error when the last create of this record was refused with exactly these values.

        Sending them again would be refused again and spend tokens every run.
        """
        if self.s.force:
            return None
        if entity not in self._refusals:
            self._refusals[entity] = self.ledger.refused_creates(self.s.target, self.s.origin, entity)
        last = self._refusals[entity].get(origin_id)
        if last is None:
            return None
        resolved = {}
        for name, value in values.items():
            if isinstance(value, Ref):
                value = self.target_id(value)
                if value is None:
                    continue  # the apply drops it too
            resolved[name] = value
        return last[1] if last[0] == json.loads(to_json(plain(resolved))) else None

    def _dangling(self, entity: str, origin_id: str) -> bool:
        """A reference to a record the origin does not hold (a quarantined row, a purged person)."""
        if entity not in self._origin_ids:
            self._origin_ids[entity] = set(self.origin.ids(entity))
            if entity in ("person", "organization") and not self.s.same:
                self._origin_ids[entity] |= set(self._lead_contacts()[0][entity])
        return origin_id not in self._origin_ids[entity]

    def missing_fields(self, entity: str) -> list[dict[str, Any]]:
        """Custom fields the origin's ``entity`` records use that the target lacks: name, type, options.

        The type is the origin's own when it defined one, else inferred from the values (a
        spreadsheet column): lists -> set, money objects -> monetary, ISO dates -> date,
        numbers -> double, text -> varchar (text when longer than 255).
        """
        owner = FIELD_OWNER.get(entity)
        out = []
        for (o, name), values in sorted(self.used_custom.items()):
            if o != owner or (o, name) in self.target_fields:
                continue
            definition = self.field_defs.get((o, name))
            ftype = definition.type if definition and definition.type else _infer_type(values)
            options = list(definition.options) if definition else []
            if ftype in ("enum", "set"):
                for v in values:
                    for label in v if isinstance(v, list) else [v]:
                        if label is not None and str(label) not in options:
                            options.append(str(label))
            out.append({"owner": o, "name": name, "type": ftype, "options": options})
        return out

    def field_created(self, owner: str, name: str) -> None:
        self.target_fields.add((owner, name))

    # -- internals -----------------------------------------------------------------------------
    def _item(self, entity: str, mode: str, rec: Record, target_rec: Record | None, ctx: tuple,
              mapped: dict) -> Item:
        desired, key, fingerprint, _, how = ctx
        intent = self.pending.get((entity, rec.source_id))
        if how == "unread":
            return Item(entity, rec.source_id, "skip", target_id=mapped[rec.source_id].target_id,
                        reason="in the ID map but not read back from the target yet (run with --refresh)")
        if target_rec is None:
            if mode in ("update", "enrich") or self.s.same:
                return Item(entity, rec.source_id, "skip", reason="not in the target (mode " + mode + ")")
            values = {k: v for k, v in desired.items() if v not in (None, "", [])}
            if entity in self.key_entities:
                values["custom.crmsync key"] = key
            refused = self._refused(entity, rec.source_id, values)
            if refused is not None:
                return Item(entity, rec.source_id, "skip", reason=f"refused before with these same values: {refused} "
                            "(fix the record, or --force to send it again)")
            return Item(entity, rec.source_id, "create", values=values, key=key, fingerprint=fingerprint,
                        changes={k: [None, plain(v)] for k, v in values.items()}, intent=intent)
        seen = _update_time(target_rec)
        if mode == "insert":
            return Item(entity, rec.source_id, "skip", target_id=target_rec.source_id,
                        reason=f"already in the target ({how}; mode insert)", seen=seen)
        current = self._current(entity, target_rec)
        changes: dict[str, list[Any]] = {}
        values: dict[str, Any] = {}
        for name, want in desired.items():
            have = current.get(name)
            if mode == "enrich" and comparable(name, have) is not None:
                continue
            if comparable(name, want) is None or self._same_value(name, have, want):
                continue  # an empty origin value never clears the target's
            changes[name] = [plain(have), plain(want)]
            values[name] = want
        if entity == "lead" and ("value" in values or "currency" in values):
            # one {amount, currency} object in the API: sending one half would clear or re-currency the other
            for name in ("value", "currency"):
                if name not in values and desired.get(name) is not None:
                    changes[name] = [plain(current.get(name)), plain(desired[name])]
                    values[name] = desired[name]
        if (entity in self.key_entities and not self.s.same
                and (target_rec.custom or {}).get("crmsync key") != key and how != "crmsync key"):
            values["custom.crmsync key"] = key
            changes["custom.crmsync key"] = [plain((target_rec.custom or {}).get("crmsync key")), key]
        item = Item(entity, rec.source_id, "update" if values else "skip", target_id=target_rec.source_id,
                    values=values, changes=changes, seen=seen, key=key, fingerprint=fingerprint,
                    reason=how if values or how != "id map" else "up to date",
                    intent=intent, owned=self._owned(entity, how))
        if intent is not None and not item.owned:
            item.reason += " (an interrupted create may be this record, or the user's: kept as a match)"
        base = self.plan_seen.get((entity, rec.source_id)) or (mapped[rec.source_id].target_update_time
                                                                 if rec.source_id in mapped else None)
        if item.action == "update" and base and seen and stamp(base) != stamp(seen) and not self.s.force:
            item.action = "conflict"
            item.base = stamp(base)
            item.reason = f"changed in the target at {stamp(seen)} after crmsync read it at {stamp(base)}"
        return item

    def _same_value(self, name: str, have: Any, want: Any) -> bool:
        if isinstance(want, Ref):
            resolved = want.origin_id if self.s.same else self.target_id(want)
            return resolved is not None and have is not None and str(have) == resolved
        return comparable(name, have) == comparable(name, want)

    def _current(self, entity: str, rec: Record) -> dict[str, Any]:
        out = {}
        for name in FIELDS[entity]:
            value = getattr(rec, name, None)
            if name in ("emails", "phones"):
                value = [{"value": p.raw, "label": p.label, "primary": p.primary} for p in value or ()]
            out[name] = value
        for name, value in (getattr(rec, "custom", None) or {}).items():
            out[f"custom.{name}"] = value
        return out

    def _mirror_deletes(self, entity: str, mapped: dict, index: _Index, wanted: set[str]) -> list[Item]:
        """Mirror mode: delete target records crmsync mapped from origin records the origin no longer has."""
        if self.s.scope is not None:
            return []
        live = set(self.origin.ids(entity))
        gone = {o: m for o, m in mapped.items() if o not in live and o not in wanted and m.target_id in index.live}
        targets = self.target.get_many(entity, [m.target_id for m in gone.values()])
        out = []
        for origin_id, m in gone.items():
            seen = _update_time(targets[m.target_id])
            item = Item(entity, origin_id, "delete", target_id=m.target_id, seen=seen,
                        reason="removed from the origin (mode mirror)")
            if m.target_update_time and seen and stamp(m.target_update_time) != seen and not self.s.force:
                item.action, item.base = "conflict", stamp(m.target_update_time)
                item.reason = (f"removed from the origin, but changed in the target at {seen} after crmsync wrote it "
                               f"at {item.base}; not deleted (--force deletes it)")
            out.append(item)
        return out

    def _origin_records(self, entity: str) -> Iterator[Record]:
        scope = None if self.s.scope is None else self.s.scope.get(entity, set())
        if scope is not None:
            live = set(self.origin.ids(entity))  # get_many would also return records removed since
            yield from self.origin.get_many(entity, sorted(scope & live)).values()
        else:
            yield from self.origin.all(entity)
        if entity in ("person", "organization") and not self.s.same:
            yield from self._lead_contacts()[0][entity].values()

    def _lead_contacts(self) -> tuple[dict[str, dict[str, Record]], dict[str, dict[str, str]]]:
        """Persons and organizations for leads that carry their contact inline (Salesforce, Zoho).

        A target whose leads must point at a person or organization (Pipedrive) gets them: the origin's
        own person with the same email or organization with the same normalized name when there is
        one, else a record made from the lead's columns (ids ``lead-person:<lead id>`` and
        ``lead-org:<normalized company>``, one per company). Returns (records by entity, links by lead).
        """
        if self._contacts is not None:
            return self._contacts
        made: dict[str, dict[str, Record]] = {"person": {}, "organization": {}}
        links: dict[str, dict[str, str]] = {}
        self._contacts = (made, links)
        if "lead" not in self.s.entities:
            return self._contacts
        scope = None if self.s.scope is None else self.s.scope.get("lead", set())
        leads = [r for r in (self.origin.get_many("lead", sorted(scope)).values() if scope is not None
                             else self.origin.all("lead"))
                 if not (r.person_id or r.org_id or _skip_reason("lead", r))
                 and (r.contact_name or r.contact_email or r.org_name)]
        if not leads:
            return self._contacts
        by_email = {p.primary_email: p.source_id for p in self.origin.all("person") if p.primary_email}
        by_name = {normalize_org_name(o.name): o.source_id for o in self.origin.all("organization")}
        for lead in leads:
            link: dict[str, str] = {}
            if lead.org_name and normalize_org_name(lead.org_name):
                key = normalize_org_name(lead.org_name)
                link["org_id"] = by_name.get(key) or f"lead-org:{key}"
                if key not in by_name and link["org_id"] not in made["organization"]:
                    made["organization"][link["org_id"]] = Organization(
                        source=self.s.origin, source_id=link["org_id"], name=lead.org_name, owner_id=lead.owner_id,
                        raw={"_crmsync": f"made from lead {lead.source_id}'s company column"})
            email = _valid(normalize_email, lead.contact_email)
            if lead.contact_name or email:
                link["person_id"] = by_email.get(email or "") or f"lead-person:{lead.source_id}"
                if link["person_id"] not in by_email.values():
                    phone = _valid(normalize_phone, lead.contact_phone)
                    made["person"][link["person_id"]] = Person(
                        source=self.s.origin, source_id=link["person_id"], name=lead.contact_name or email,
                        emails=[ContactPoint(raw=lead.contact_email, normalized=email, primary=True)]
                        if lead.contact_email else [],
                        phones=[ContactPoint(raw=lead.contact_phone, normalized=phone, primary=True)]
                        if lead.contact_phone else [],
                        org_id=link.get("org_id"), owner_id=lead.owner_id,
                        raw={"_crmsync": f"made from lead {lead.source_id}'s contact columns"})
            links[lead.source_id] = link
        return self._contacts

    def _user_map(self) -> dict[str, str]:
        """Origin user id -> target user id, by email (case-insensitive)."""
        if self.s.same:
            return {}
        by_email = {}
        for u in self.target.all("user"):
            if u.email:
                by_email.setdefault(u.email.strip().lower(), u.source_id)
        return {u.source_id: by_email[u.email.strip().lower()] for u in self.origin.all("user")
                if u.email and u.email.strip().lower() in by_email}

    def _rename_stage(self, entity: str, rec: Record, out: dict[str, Any]) -> None:
        if entity == "pipeline":
            out["name"] = self.s.stage_map.get(rec.name, rec.name)
            return
        pipeline = self.origin.get("pipeline", rec.pipeline_id) if rec.pipeline_id else None
        full = f"{pipeline.name}/{rec.name}" if pipeline else rec.name
        renamed = self.s.stage_map.get(full) or self.s.stage_map.get(rec.name)
        if renamed:
            out["name"] = renamed.split("/", 1)[-1]

    def _fingerprint(self, entity: str, desired: dict[str, Any]) -> str | None:
        """Natural key for records that cannot carry the crmsync key (leads) or when it is off."""
        def ref(name: str) -> str:
            value = desired.get(name)
            return f"{value.entity}:{value.origin_id}" if isinstance(value, Ref) else str(value or "")
        if entity == "lead":
            return f"{desired.get('title')}|{ref('person_id')}|{ref('org_id')}"
        if entity == "deal":
            value = comparable("value", desired.get("value"))
            return f"{desired.get('title')}|{ref('person_id')}|{ref('org_id')}|{value}"
        return None

    def target_fingerprint(self, entity: str, rec: Record) -> str | None:
        """The same natural key computed from a target record (its refs mapped back to origin ids)."""
        back = self._reverse(entity)
        def ref(name: str, ref_entity: str) -> str:
            value = getattr(rec, name, None)
            if value is None:
                return ""
            origin_id = back.get(ref_entity, {}).get(str(value))
            return f"{ref_entity}:{origin_id}" if origin_id else f"target:{value}"
        if entity == "lead":
            return f"{rec.title}|{ref('person_id', 'person')}|{ref('org_id', 'organization')}"
        if entity == "deal":
            return (f"{rec.title}|{ref('person_id', 'person')}|{ref('org_id', 'organization')}|"
                    f"{comparable('value', rec.value)}")
        return None

    def _reverse(self, entity: str) -> dict[str, dict[str, str]]:
        cache = getattr(self, "_reverse_cache", None)
        if cache is None:
            cache = {e: {m.target_id: o for o, m in self.ledger.id_map(self.s.target, e, self.s.origin).items()}
                     for e in ("person", "organization")}
            self._reverse_cache = cache
        return cache

    def _notice(self, message: str) -> None:
        self.notices[message] = self.notices.get(message, 0) + 1


class _Index:
    """Finds the target record for an origin record: ID map first, then the configured match keys."""

    def __init__(self, planner: Planner, entity: str, mapped: dict):
        self.p, self.entity, self.mapped = planner, entity, mapped
        claimed = planner.ledger.claimed(planner.s.target, entity)
        #: Every target id the warehouse has ever held for this entity, removed ones included.
        self.known = set(planner.target.ids(entity, include_removed=True))
        #: Target records that exist and are not deleted; ``free``: those no origin record claimed yet.
        self.live: set[str] = set()
        self.free: set[str] = set()
        self.keys = planner.s.keys(entity)
        self.by: dict[str, dict[str, str]] = {k: {} for k in self.keys}
        self.by["key"] = {}
        for r in planner.target.all(entity):
            if _is_dead(r):
                continue
            tid = r.source_id
            self.live.add(tid)
            if tid in claimed:
                continue
            self.free.add(tid)
            custom_key = (getattr(r, "custom", None) or {}).get("crmsync key")
            if custom_key:
                self.by["key"].setdefault(str(custom_key), tid)
            for k in self.keys:
                for value in self._values(k, r):
                    self.by[k].setdefault(value, tid)

    def _values(self, key: str, r: Record) -> list[str]:
        if key == "email":
            return [p.normalized or p.raw.lower() for p in getattr(r, "emails", None) or ()]
        if key == "name":
            name = getattr(r, "name", None)
            if not name:
                return []
            if self.entity == "organization":
                return [normalize_org_name(name)]
            if self.entity == "stage":
                return [f"{r.pipeline_id}|{name.strip().lower()}"]
            return [name.strip().lower()]
        if key == "domain":
            d = normalize_domain(getattr(r, "domain", None))
            return [d] if d else []
        if key == "fingerprint":
            fp = self.p.target_fingerprint(self.entity, r)
            return [fp] if fp else []
        return []

    def find(self, origin_id: str, key: str, desired: dict[str, Any], fingerprint: str | None
             ) -> tuple[str | None, str]:
        """The target id for an origin record and how it was found ("new" when there is none)."""
        m = self.mapped.get(origin_id)
        if m is not None:
            if m.target_id in self.live:
                return m.target_id, "id map"
            if m.target_id not in self.known:
                return None, "unread"  # written by crmsync but not read back yet: never create it again
        tid = self.by["key"].get(key)
        if tid is None:
            for k in self.keys:
                for value in self._desired_values(k, desired, fingerprint):
                    tid = self.by[k].get(value)
                    if tid is not None:
                        break
                if tid is not None:
                    how = f"matched by {k}"
                    break
        else:
            how = "crmsync key"
        if tid is None or tid not in self.free:
            return None, "new"
        self.free.discard(tid)
        return tid, how

    def _desired_values(self, key: str, desired: dict[str, Any], fingerprint: str | None) -> list[str]:
        if key == "email":
            return [str(e["value"]).lower() for e in desired.get("emails") or ()]
        if key == "name" and desired.get("name"):
            if self.entity == "organization":
                return [normalize_org_name(desired["name"])]
            if self.entity == "stage":
                ref = desired.get("pipeline_id")
                tid = self.p.target_id(ref) if isinstance(ref, Ref) else None
                return [f"{tid}|{desired['name'].strip().lower()}"] if tid else []
            return [str(desired["name"]).strip().lower()]
        if key == "domain":
            d = normalize_domain(desired.get("domain"))
            return [d] if d else []
        if key == "fingerprint" and fingerprint:
            return [fingerprint]
        return []


def _valid(normalize, value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize(value) if normalize is normalize_email else normalize(value, None)
    except ValueParseError:
        return None


def _infer_type(values: list[Any]) -> str:
    present = [v for v in values if v not in (None, "", [])]
    if present and all(isinstance(v, list) for v in present):
        return "set"
    if present and all(isinstance(v, dict) and "currency" in v for v in present):
        return "monetary"
    if present and all(isinstance(v, date) or (isinstance(v, str) and _ISO_DATE.match(v)) for v in present):
        return "date"
    if present and all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in present):
        return "double"
    return "text" if any(len(str(v)) > 255 for v in present) else "varchar"


def _update_time(rec: Record) -> str | None:
    value = getattr(rec, "update_time", None) or (rec.raw or {}).get("update_time")
    return stamp(value)


def _is_dead(rec: Record) -> bool:
    status = getattr(rec, "status", None)
    return getattr(status, "value", status) == "deleted" or getattr(rec, "active", True) is False


def _skip_reason(entity: str, rec: Record) -> str:
    status = getattr(rec, "status", None)
    status = getattr(status, "value", status)
    if entity == "deal" and status == "deleted":
        return "deleted in the origin"
    if entity == "lead" and status == "converted":
        return "converted: the deal it became carries it"
    if entity == "lead" and status == "archived":
        return "archived in the origin"
    if entity in ("pipeline", "stage") and getattr(rec, "active", True) is False:
        return "deleted in the origin"
    return ""
