"""Pipedrive API objects -> canonical records (validated ``Model(...)``, never ``Record.build``).

Why here and small: every wire quirk is handled in one place — v2 RFC 3339 times, v1
``YYYY-MM-DD HH:MM:SS`` UTC times, v1 leads' ISO times with milliseconds, money as
``Decimal`` from the JSON number's text, ids as strings, custom fields by human name with
option labels (leads too), and the object as received kept in ``raw``.

Example::

    >>> from crmsync.connectors.pipedrive.fields import FieldSet
    >>> m = Meta(deal_fields=FieldSet(), lead_fields=FieldSet(), person_fields=FieldSet(), org_fields=FieldSet())
    >>> deal("pd", {"id": 7, "title": "X", "status": "won", "value": 1200.5, "currency": "eur",
    ...             "add_time": "2026-01-02T03:04:05Z"}, m).value
    Decimal('1200.5')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crmsync.errors import ValueParseError
from crmsync.model import (
    ContactPoint,
    Conversion,
    CustomField,
    Deal,
    Lead,
    LeadStatus,
    Organization,
    Person,
    Pipeline,
    Stage,
    User,
)
from crmsync.values import normalize_email, normalize_phone

from .fields import FieldSet


@dataclass
class Meta:
    """Lookups a conversion needs: field sets, names of pipelines/stages/users, lead label names."""

    deal_fields: FieldSet
    lead_fields: FieldSet
    person_fields: FieldSet
    org_fields: FieldSet
    pipelines: dict[str, str] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    lead_labels: dict[str, str] = field(default_factory=dict)
    phone_region: str | None = None


def parse_time(value: Any) -> datetime | None:
    """v2 ``2026-01-02T03:04:05Z``, v1 ``2026-01-02 03:04:05`` (UTC) or lead ``...05.123Z`` -> aware UTC."""
    if value in (None, ""):
        return None
    text = str(value).strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # Pipedrive's v1 times are UTC
    return dt.astimezone(UTC)


def _date(value: Any) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def _id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):  # v1 relation object {"value": 5, ...}
        value = value.get("value", value.get("id"))
    return None if value is None else str(value)


def money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _prob(value: Any) -> Decimal | None:
    return None if value is None else money(value)


def deal(source: str, d: dict, meta: Meta) -> Deal:
    status = "deleted" if d.get("is_deleted") else (d.get("status") or "open")
    pipeline_id, stage_id, owner_id = _id(d.get("pipeline_id")), _id(d.get("stage_id")), _id(d.get("owner_id"))
    return Deal(
        source=source,
        source_id=str(d["id"]),
        title=d.get("title") or f"(untitled deal {d['id']})",
        status=status,
        value=money(d.get("value")),
        currency=d.get("currency") or None,
        pipeline_id=pipeline_id,
        pipeline_name=meta.pipelines.get(pipeline_id or ""),
        stage_id=stage_id,
        stage_name=meta.stages.get(stage_id or ""),
        probability=_prob(d.get("probability")),
        person_id=_id(d.get("person_id")),
        org_id=_id(d.get("org_id")),
        owner_id=owner_id,
        owner_name=meta.users.get(owner_id or ""),
        expected_close_date=_date(d.get("expected_close_date")),
        add_time=parse_time(d.get("add_time")),
        update_time=parse_time(d.get("update_time")),
        stage_change_time=parse_time(d.get("stage_change_time")),
        won_time=parse_time(d.get("won_time")),
        lost_time=parse_time(d.get("lost_time")),
        close_time=parse_time(d.get("close_time")),
        lost_reason=d.get("lost_reason") or None,
        source_lead_id=d.get("source_lead_id") or None,
        archived=bool(d.get("is_archived")),
        custom=meta.deal_fields.values_v2(d.get("custom_fields")),
        raw=d,
    )


def lead(source: str, d: dict, meta: Meta) -> Lead:
    value = d.get("value") or {}
    archived = bool(d.get("is_archived"))
    return Lead(
        source=source,
        source_id=str(d["id"]),
        title=d.get("title") or f"(untitled lead {d['id']})",
        status=LeadStatus.ARCHIVED if archived else LeadStatus.NEW,
        status_raw="archived" if archived else "open",
        person_id=_id(d.get("person_id")),
        org_id=_id(d.get("organization_id")),
        owner_id=_id(d.get("owner_id")),
        value=money(value.get("amount")) if isinstance(value, dict) else None,
        currency=(value.get("currency") or None) if isinstance(value, dict) else None,
        expected_close_date=_date(d.get("expected_close_date")),
        source_name=d.get("source_name") or None,
        channel=_id(d.get("channel")),
        labels=[meta.lead_labels.get(str(x), str(x)) for x in d.get("label_ids") or ()],
        add_time=parse_time(d.get("add_time")),
        update_time=parse_time(d.get("update_time")),
        custom=meta.lead_fields.values_v1(d),
        raw=d,
    )


def converted_lead(stored: Lead | None, source: str, lead_id: str, deal_rec: Deal) -> Lead:
    """The lead marked converted into ``deal_rec``: the stored lead, or one rebuilt from the deal.

    Pipedrive deletes a lead when it converts it, so a lead converted before crmsync first saw
    it is known only through the deal's ``source_lead_id``; the conversion copies the lead's
    title, owner, person, organization and value, so those are taken from the deal and ``raw``
    says the record was reconstructed.
    """
    update = {"status": LeadStatus.CONVERTED, "status_raw": "converted",
              "converted_deal_id": deal_rec.source_id, "converted_at": deal_rec.add_time}
    if stored is not None:
        return Lead.model_validate({**stored.model_dump(), **update})
    return Lead(
        source=source, source_id=lead_id, title=deal_rec.title, person_id=deal_rec.person_id,
        org_id=deal_rec.org_id, owner_id=deal_rec.owner_id,
        raw={"id": lead_id, "_crmsync": "reconstructed: Pipedrive deleted this lead when it became deal "
             f"{deal_rec.source_id}; crmsync had not seen it before"},
        **update,
    )


def conversion(source: str, deal_rec: Deal) -> Conversion:
    return Conversion(
        source=source, source_id=f"{deal_rec.source_lead_id}:{deal_rec.source_id}",
        lead_id=deal_rec.source_lead_id, deal_id=deal_rec.source_id, converted_at=deal_rec.add_time,
        method="explicit", confidence=1.0, reasons=["deal.source_lead_id"],
        raw={"deal_id": deal_rec.raw.get("id"), "source_lead_id": deal_rec.source_lead_id},
    )


def _points(items: Any, kind: str, region: str | None) -> list[ContactPoint]:
    out = []
    for x in items or ():
        if isinstance(x, str):
            x = {"value": x}
        raw = str(x.get("value") or "").strip()
        if not raw:
            continue
        normalized, problem = None, None
        try:
            normalized = normalize_email(raw) if kind == "email" else normalize_phone(raw, region)
        except ValueParseError as exc:
            problem = exc.reason
        out.append(ContactPoint(raw=raw, normalized=normalized, label=x.get("label"),
                                primary=bool(x.get("primary")), problem=problem))
    return out


def person(source: str, d: dict, meta: Meta) -> Person:
    return Person(
        source=source,
        source_id=str(d["id"]),
        name=d.get("name") or None,
        first_name=d.get("first_name") or None,
        last_name=d.get("last_name") or None,
        emails=_points(d.get("emails", d.get("email")), "email", meta.phone_region),
        phones=_points(d.get("phones", d.get("phone")), "phone", meta.phone_region),
        org_id=_id(d.get("org_id")),
        owner_id=_id(d.get("owner_id")),
        add_time=parse_time(d.get("add_time")),
        update_time=parse_time(d.get("update_time")),
        custom=meta.person_fields.values_v2(d.get("custom_fields")),
        raw=d,
    )


def organization(source: str, d: dict, meta: Meta) -> Organization:
    address = d.get("address")
    if isinstance(address, dict):
        address = address.get("formatted_address") or address.get("value")
    website = d.get("website") or None
    domain = None
    if website:
        domain = str(website).split("//")[-1].split("/")[0].lower().removeprefix("www.") or None
    return Organization(
        source=source,
        source_id=str(d["id"]),
        name=d.get("name") or f"(unnamed organization {d['id']})",
        domain=domain,
        address=address or None,
        owner_id=_id(d.get("owner_id")),
        add_time=parse_time(d.get("add_time")),
        update_time=parse_time(d.get("update_time")),
        custom=meta.org_fields.values_v2(d.get("custom_fields")),
        raw=d,
    )


def pipeline(source: str, d: dict) -> Pipeline:
    return Pipeline(source=source, source_id=str(d["id"]), name=d.get("name") or str(d["id"]),
                    position=d.get("order_nr"), active=not d.get("is_deleted", False), raw=d)


def stage(source: str, d: dict) -> Stage:
    return Stage(source=source, source_id=str(d["id"]), name=d.get("name") or str(d["id"]),
                 pipeline_id=_id(d.get("pipeline_id")), position=d.get("order_nr"),
                 probability=_prob(d.get("deal_probability")), rotten_days=d.get("days_to_rotten"), raw=d)


def user(source: str, d: dict) -> User:
    active = d.get("active_flag")
    return User(source=source, source_id=str(d["id"]), name=d.get("name") or None, email=d.get("email") or None,
                active=None if active is None else bool(active), raw=d)


def custom_fields(source: str, owner: str, fs: FieldSet) -> list[CustomField]:
    """The definitions behind ``custom`` values, so a migration can recreate them (with option labels)."""
    return [CustomField(source=source, source_id=f"{owner}:{key}", owner=owner, name=fs.names[key], type=d.type or None,
                        options=list(d.options.values()), raw={"key": key, "name": d.name, "type": d.type})
            for key, d in fs.fields.items()]
