"""Writing canonical values into a Pipedrive company (the push/migrate target).

Why small: the push engine decides what to write; this module only speaks Pipedrive — v2 for
deals, persons, organizations, pipelines and stages (v1 is out of support for them), v1 for leads
and notes — turning canonical values into request bodies: custom fields by their hash keys
(fetched once per run, only when a custom value is written), money as numbers, lead values as
``{amount, currency}``, organization addresses as ``{value}``, domains as ``website``.

Example::

    >>> t = PipedriveTarget(client)                                          # doctest: +SKIP
    >>> t.create("person", {"name": "Ana", "emails": [{"value": "ana@x.com", "primary": True}]})  # doctest: +SKIP
    Written(target_id='12', update_time='2026-11-24T02:00:00Z')
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from crmsync.errors import WriteRejected
from crmsync.push.target import Target, Written

from .client import PipedriveClient, cost_of
from .fields import FieldSet
from .paging import v2_pages

#: entity -> (API family, collection path)
PATHS = {
    "pipeline": ("v2", "/pipelines"),
    "stage": ("v2", "/stages"),
    "organization": ("v2", "/organizations"),
    "person": ("v2", "/persons"),
    "lead": ("v1", "/leads"),
    "deal": ("v2", "/deals"),
    "note": ("v1", "/notes"),
}
FIELD_PATHS = {"deal": "/dealFields", "person": "/personFields", "organization": "/organizationFields"}
#: Custom field types Pipedrive's v2 API creates (the rest are created as text).
FIELD_TYPES = frozenset({"varchar", "text", "double", "phone", "date", "daterange", "time", "timerange", "set", "enum",
                         "varchar_auto", "address", "monetary", "org", "people", "user"})
_INT_REFS = ("pipeline_id", "stage_id", "person_id", "org_id", "owner_id", "deal_id")


class PipedriveTarget(Target):
    """A Pipedrive company as a push target; one per run, sharing the source's client settings."""

    entities: ClassVar[tuple[str, ...]] = ("pipeline", "stage", "organization", "person", "lead", "deal", "note")

    def __init__(self, client: PipedriveClient):
        self.client = client
        self._fields: dict[str, FieldSet] = {}

    # -- Target --------------------------------------------------------------------------------
    def cost(self, entity: str, action: str) -> tuple[int, int]:
        if entity == "custom_field":
            return 1, cost_of("v2", "/dealFields", "POST")
        family, path = PATHS[entity]
        if action == "create":
            return 1, cost_of(family, path, "POST")
        method = "PUT" if entity == "note" else ("DELETE" if action == "delete" else "PATCH")
        return 1, cost_of(family, f"{path}/1", method)

    def create(self, entity: str, values: dict[str, Any]) -> Written:
        family, path = PATHS[entity]
        body = self._body(entity, values, creating=True)
        return _written(self.client.send("POST", family, path, body))

    def update(self, entity: str, target_id: str, values: dict[str, Any]) -> Written:
        family, path = PATHS[entity]
        body = self._body(entity, values, creating=False)
        method = "PUT" if entity == "note" else "PATCH"
        return _written(self.client.send(method, family, f"{path}/{target_id}", body))

    def delete(self, entity: str, target_id: str) -> None:
        if entity == "field":
            owner, _, code = target_id.partition(":")
            self.client.send("DELETE", "v2", f"{FIELD_PATHS[owner]}/{code}")
            return
        family, path = PATHS[entity]
        self.client.send("DELETE", family, f"{path}/{target_id}")

    def keyed(self, entity: str) -> bool:
        return entity in FIELD_PATHS

    def ensure_key_field(self, entity: str) -> Written | None:
        fields = self._field_set(entity)
        if any(f.name == self.key_field for f in fields.fields.values()):
            return None
        return self.create_field(entity, self.key_field, "varchar", [])

    def create_field(self, owner: str, name: str, type_: str, options: list[str]) -> Written:
        body: dict[str, Any] = {"field_name": name, "field_type": type_ if type_ in FIELD_TYPES else "text"}
        if body["field_type"] in ("enum", "set"):
            if not options:
                body["field_type"] = "varchar"
            else:
                body["options"] = [{"label": label} for label in options]
        data = self.client.send("POST", "v2", FIELD_PATHS[owner], body).get("data") or {}
        self._fields.pop(owner, None)
        self._fields.pop("lead", None)
        return Written(f"{owner}:{data.get('field_code', '')}")

    def find_notes(self, deal_target_id: str) -> list[dict[str, Any]]:
        data = self.client.get("v1", "/notes", {"deal_id": deal_target_id, "limit": 500})["data"]
        return [{"id": n.get("id"), "content": n.get("content")} for n in data]

    def usage(self) -> dict[str, Any]:
        u = self.client.usage
        return {"requests": u.requests, "tokens": u.tokens, "retries": u.retries, "endpoints": u.endpoints}

    # -- bodies --------------------------------------------------------------------------------
    def _body(self, entity: str, values: dict[str, Any], creating: bool) -> dict[str, Any]:
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for name, value in values.items():
            if name.startswith("custom."):
                custom[name[7:]] = value
                continue
            if isinstance(value, Decimal):
                value = float(value) if value != value.to_integral() else int(value)
            elif isinstance(value, datetime):
                value = value.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif isinstance(value, date):
                value = value.isoformat()
            if name in _INT_REFS and value is not None:
                value = _int(value)
            if name in ("emails", "phones") and value:  # label is a non-null string in v2: omit, Pipedrive defaults it
                value = [{k: v for k, v in p.items() if not (k == "label" and v is None)} for p in value]
            body[name] = value
        if entity == "lead":
            body = self._lead_body(body, creating)
        elif entity == "organization":
            if "address" in body:
                body["address"] = {"value": body["address"]} if body["address"] else None
            if "domain" in body:
                domain = body.pop("domain")
                body["website"] = f"https://{domain}" if domain else None
        elif entity == "stage":
            if "probability" in body:
                body["deal_probability"] = _number(body.pop("probability"))
            if "rotten_days" in body:
                days = body.pop("rotten_days")
                if days is not None:  # a non-null integer in v2; turning rot off is the flag alone
                    body["days_to_rotten"] = days
                body["is_deal_rot_enabled"] = days is not None
        elif entity == "deal":
            if body.get("value") is not None:
                body["value"] = _number(body["value"])
            if "archived" in body:
                body["is_archived"] = bool(body.pop("archived"))
        if custom and entity == "lead":
            body.update(self._custom(entity, custom))  # v1 leads carry deal custom fields at the top level
        elif custom:
            body["custom_fields"] = self._custom(entity, custom)
        return body

    @staticmethod
    def _lead_body(body: dict[str, Any], creating: bool) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k not in ("value", "currency", "org_id")}
        if "org_id" in body:
            out["organization_id"] = body["org_id"]
        if "value" in body or "currency" in body:
            amount = body.get("value")
            out["value"] = None if amount is None else {"amount": _number(amount),
                                                        "currency": body.get("currency") or "EUR"}
        return out

    def _custom(self, entity: str, custom: dict[str, Any]) -> dict[str, Any]:
        fields = self._field_set(entity)
        by_name = {f.name: f for f in fields.fields.values()}
        out = {}
        for name, value in custom.items():
            f = by_name.get(name)
            if f is None:
                raise WriteRejected(f"custom field {name!r} does not exist in the target's {entity} fields; "
                                    "create it in Pipedrive (same name) or drop it from the push",
                                    api_error=f"no {entity} field named {name!r} in the target")
            if f.type in ("enum", "set") and value is not None:
                by_label = {label: option_id for option_id, label in f.options.items()}
                labels = value if isinstance(value, list) else [value]
                unknown = [str(v) for v in labels if str(v) not in by_label]
                if unknown:
                    raise WriteRejected(f"custom field {name!r} has no option {unknown[0]!r} in the target",
                                        api_error=f"{entity} field {name!r}: no option {unknown[0]!r} in the target; "
                                                  "add it in Pipedrive or map the value")
                ids = [_int(by_label[str(v)]) for v in labels]
                value = ids if isinstance(value, list) else ids[0]
            elif f.type in ("user", "people", "org") and value is not None:
                value = _int(value)
            elif isinstance(value, dict):
                value = {k: _number(v) if isinstance(v, Decimal) else v for k, v in value.items()}
            elif isinstance(value, Decimal):
                value = _number(value)
            out[f.key] = value
        return out

    def _field_set(self, entity: str) -> FieldSet:
        if entity not in self._fields:
            path = FIELD_PATHS[entity if entity != "lead" else "deal"]
            self._fields[entity] = FieldSet.from_v2([f for page in v2_pages(self.client, path, {}, 500) for f in page])
        return self._fields[entity]


def _written(envelope: dict[str, Any]) -> Written:
    data = envelope.get("data") or {}
    return Written(str(data.get("id")), data.get("update_time"))


def _int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _number(value: Any) -> Any:
    if value is None:
        return None
    d = Decimal(str(value))
    return int(d) if d == d.to_integral() else float(d)
