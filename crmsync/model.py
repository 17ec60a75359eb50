"""The canonical model every source is read into and every sink is written from.

Why one model: a deal from Pipedrive's v2 API, a row of a HubSpot export and a
line of a hand-made spreadsheet must land in the same tables with the same
meaning, so reconciliation and audit are written once.

Rules the types enforce:

* every record is keyed by ``(source, source_id)``; ids are strings;
* money is :class:`~decimal.Decimal` plus an ISO 4217 currency code;
* times are timezone-aware and normalised to UTC; dates are plain dates;
* stages carry a canonical :class:`StageCategory` (or ``None`` when the
  mapping has no entry for the source's stage name: reported, never guessed);
* custom fields are kept under their human names in ``custom``, and the
  source's raw record is kept in ``raw`` so nothing is lost.

Example::

    >>> from decimal import Decimal
    >>> d = Deal(source="demo", source_id="7", title="Café Olé", value=Decimal("1200"),
    ...          currency="eur", status="open")
    >>> d.currency, d.key
    ('EUR', ('demo', '7'))
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator


def _to_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("time must be timezone-aware (parse it with a timezone, or mark it UTC)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]


def _currency(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"currency must be a 3-letter ISO 4217 code, got {value!r}")
    return code


Currency = Annotated[str, AfterValidator(_currency)]


class StageCategory(StrEnum):
    """Where a stage sits in a sales process, whatever the CRM calls it."""

    PROSPECTING = "prospecting"
    CONTACT = "contact"
    QUALIFICATION = "qualification"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    WON = "won"
    LOST = "lost"
    FOLLOW_UP = "follow_up"


class LeadStatus(StrEnum):
    """A lead's canonical status; ``converted`` once it became a deal."""

    NEW = "new"
    WORKING = "working"
    NURTURING = "nurturing"
    UNQUALIFIED = "unqualified"
    CONVERTED = "converted"
    ARCHIVED = "archived"


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    DELETED = "deleted"


class Record(BaseModel):
    """Base of every canonical record: identity, provenance, custom fields, raw form.

    ``first_run`` / ``last_run`` are filled by the warehouse, not by sources.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False, str_strip_whitespace=True)

    entity: ClassVar[str] = "record"
    _defaults: ClassVar[dict[str, Any]] = {}
    _factories: ClassVar[tuple[tuple[str, Any], ...]] = ()

    source: str = Field(min_length=1)
    source_id: str = Field(min_length=1)
    custom: dict[str, Any] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict)
    first_run: int | None = None
    last_run: int | None = None
    #: Where the record was read (file, sheet, line), for quarantine messages; not stored.
    _origin: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def origin(self) -> dict[str, Any] | None:
        return self.__pydantic_private__["_origin"]

    def at(self, **origin: Any) -> Record:
        """Remember where this record was read (``file``, ``sheet``, ``line``); returns self."""
        self.__pydantic_private__["_origin"] = origin  # what `self._origin = ` does, minus pydantic's checks
        return self

    @field_validator("source_id", mode="before")
    @classmethod
    def _id_as_string(cls, value: Any) -> Any:
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return value

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_id)

    @classmethod
    def build(cls, data: dict[str, Any]) -> Record:
        """Make a record from values that are *already* of the model's types, without validating.

        For the hot path only (mappings whose parsers produce typed values): it costs a tenth of
        ``model_construct``. Anything else — API payloads, user input — goes through
        ``model_validate``. ``tests/test_mapping.py`` re-validates what the mappings build.
        """
        values = {**cls._defaults, **data}
        for name, factory in cls._factories:
            if name not in data:
                values[name] = factory()
        record = cls.__new__(cls)
        _set = object.__setattr__
        _set(record, "__dict__", values)
        _set(record, "__pydantic_fields_set__", set(data))
        _set(record, "__pydantic_extra__", None)
        _set(record, "__pydantic_private__", {"_origin": None})
        return record

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields = cls.model_fields
        cls._defaults = {n: f.default for n, f in fields.items() if f.default_factory is None and not f.is_required()}
        cls._factories = tuple((n, f.default_factory) for n, f in fields.items() if f.default_factory is not None)


class Pipeline(Record):
    entity: ClassVar[str] = "pipeline"
    name: str
    position: int | None = None
    active: bool | None = None


class Stage(Record):
    entity: ClassVar[str] = "stage"
    name: str
    pipeline_id: str | None = None
    position: int | None = None
    category: StageCategory | None = None
    probability: Decimal | None = None
    rotten_days: int | None = None


class User(Record):
    entity: ClassVar[str] = "user"
    name: str | None = None
    email: str | None = None
    active: bool | None = None


class CustomField(Record):
    """A custom field as its source defines it: what a migration needs to recreate it elsewhere.

    ``owner`` is the entity whose records carry it (``deal``, ``person``, ``organization``; Pipedrive
    leads share the deal fields), ``name`` the key used in records' ``custom``, ``type`` the source's
    own type name (Pipedrive: varchar, text, double, monetary, date, enum, set, user, people, org, …)
    and ``options`` the labels of enum/set fields.
    """

    entity: ClassVar[str] = "custom_field"
    owner: str
    name: str
    type: str | None = None
    options: list[str] = Field(default_factory=list)


class Organization(Record):
    entity: ClassVar[str] = "organization"
    name: str
    domain: str | None = None
    address: str | None = None
    owner_id: str | None = None
    add_time: UtcDatetime | None = None
    update_time: UtcDatetime | None = None


class ContactPoint(BaseModel):
    """One email or phone of a person: the value as it came and its normalised form.

    ``normalized`` is ``None`` when the raw value is not a valid address/number;
    the raw value is still kept and ``problem`` says why (audit reports it).
    """

    model_config = ConfigDict(extra="forbid")

    raw: str
    normalized: str | None = None
    label: str | None = None
    primary: bool = False
    problem: str | None = None


class Person(Record):
    entity: ClassVar[str] = "person"
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    emails: list[ContactPoint] = Field(default_factory=list)
    phones: list[ContactPoint] = Field(default_factory=list)
    org_id: str | None = None
    owner_id: str | None = None
    add_time: UtcDatetime | None = None
    update_time: UtcDatetime | None = None

    @property
    def primary_email(self) -> str | None:
        return _primary(self.emails)

    @property
    def primary_phone(self) -> str | None:
        return _primary(self.phones)


def _primary(points: list[ContactPoint]) -> str | None:
    valid = [p for p in points if p.normalized]
    for point in valid:
        if point.primary:
            return point.normalized
    return valid[0].normalized if valid else None


class Lead(Record):
    entity: ClassVar[str] = "lead"
    title: str
    status: LeadStatus = LeadStatus.NEW
    status_raw: str | None = None
    person_id: str | None = None
    org_id: str | None = None
    owner_id: str | None = None
    value: Decimal | None = None
    currency: Currency | None = None
    expected_close_date: date | None = None
    source_name: str | None = None
    channel: str | None = None
    labels: list[str] = Field(default_factory=list)
    add_time: UtcDatetime | None = None
    update_time: UtcDatetime | None = None
    converted_deal_id: str | None = None
    converted_at: UtcDatetime | None = None
    #: The contact a lead carries inline where the CRM has no separate person/organization for it yet
    #: (Salesforce and Zoho leads: name, email, phone and company are columns of the lead itself).
    contact_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    org_name: str | None = None
    #: The source's own converted flag (Salesforce ``IsConverted``, Zoho ``Converted``), kept apart from the
    #: status picklist: when they disagree, reconciliation trusts the flag and ids and records the conflict.
    converted: bool | None = None
    #: Every deal the source associates with this lead (HubSpot Leads' "Associated Deal IDs"): each one is
    #: explicit conversion evidence. ``None`` when the source has no such associations.
    deal_ids: list[str] | None = None


class Deal(Record):
    entity: ClassVar[str] = "deal"
    title: str
    status: DealStatus = DealStatus.OPEN
    value: Decimal | None = None
    currency: Currency | None = None
    pipeline_id: str | None = None
    pipeline_name: str | None = None
    stage_id: str | None = None
    stage_name: str | None = None
    stage_category: StageCategory | None = None
    probability: Decimal | None = None
    person_id: str | None = None
    person_name: str | None = None
    org_id: str | None = None
    org_name: str | None = None
    owner_id: str | None = None
    owner_name: str | None = None
    expected_close_date: date | None = None
    add_time: UtcDatetime | None = None
    update_time: UtcDatetime | None = None
    stage_change_time: UtcDatetime | None = None
    won_time: UtcDatetime | None = None
    lost_time: UtcDatetime | None = None
    close_time: UtcDatetime | None = None
    lost_reason: str | None = None
    source_lead_id: str | None = None
    #: Archived deals are kept out of the pipeline views but are not lost or deleted (Pipedrive ``is_archived``).
    archived: bool | None = None
    #: When the deal entered each stage, by stage id or name, as the source's own columns say (HubSpot's
    #: ``Date entered "<stage> (<pipeline>)"``): milestone events of the deal's timeline.
    stage_entered: dict[str, UtcDatetime] | None = None
    #: Every person the source associates with this deal (HubSpot's "Associated Contact IDs"); ``person_id`` is
    #: the primary one. A lead whose person is among them is explicit conversion evidence.
    person_ids: list[str] | None = None


class StageChange(Record):
    """One transition of a deal (stage, status, pipeline or lost reason) with time and actor."""

    entity: ClassVar[str] = "stage_change"
    deal_id: str
    field: str
    old_value: str | None = None
    new_value: str | None = None
    changed_at: UtcDatetime
    actor_id: str | None = None
    evidence: str = "api"


class Conversion(Record):
    """A lead that became a deal, with how we know it."""

    entity: ClassVar[str] = "conversion"
    lead_id: str
    deal_id: str
    converted_at: UtcDatetime | None = None
    method: str = "explicit"
    confidence: float = 1.0
    reasons: list[str] = Field(default_factory=list)


#: Entity name -> record class, in the order relationships need (parents first).
ENTITIES: dict[str, type[Record]] = {
    cls.entity: cls
    for cls in (Pipeline, Stage, User, CustomField, Organization, Person, Lead, Deal, StageChange, Conversion)
}

#: Table name in the warehouse for each entity.
TABLES: dict[str, str] = {
    "pipeline": "pipelines",
    "stage": "stages",
    "user": "users",
    "custom_field": "custom_fields",
    "organization": "organizations",
    "person": "persons",
    "lead": "leads",
    "deal": "deals",
    "stage_change": "stage_changes",
    "conversion": "captured_conversions",
}

#: Entities whose field changes are written to the ``changes`` history table.
HISTORY_ENTITIES = frozenset({"lead", "deal"})
