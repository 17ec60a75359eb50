"""Pipedrive connector: complete, incremental, economical pull into the canonical model.

Config (``[sources.<name>]``)::

    [sources.pipedrive]
    type = "pipedrive"
    base_url = "https://yourcompany.pipedrive.com"   # or the sandbox's URL
    api_token = "${PIPEDRIVE_API_TOKEN}"
    # entities = ["deals", "leads", "persons", "organizations"]   # default: all four
    # history = true                 # stage/status/pipeline/lost-reason transitions of deals
    # history_endpoint = "changelog" # 20 tokens per deal; "flow" (items=dealChange) costs 40
    # history_backfill = "all"       # first sight of a deal: "all" = every deal edited after creation
    #                                # (exact); "moved" = only deals whose fields show a move/close
    #                                # (cheaper; misses deals lost+reopened in their first stage)
    # start_date = 2024-01-01        # first run reads only records updated since then
    # overlap_seconds = 30           # incremental reads re-ask from this long before the cursor: the
    #                                # boundary second itself is always re-read (updated_since is >=),
    #                                # the rest covers writes that become visible late; re-read records
    #                                # whose update_time equals the stored one are dropped, not re-written
    # token_budget = 20000           # stop cleanly (exit 6, resumable) before spending more
    # requests_per_2s = 16           # optional hard cap below your plan's burst limit
    # full_refresh = false           # re-read everything and mark vanished records removed
    # page_size = 500  timeout_seconds = 30  max_attempts = 6  backoff_seconds = 0.5  phone_region = "ES"

What a run does, in order (each list sorted by ``update_time`` ascending and paged by
cursor, a checkpoint after every page, so a stopped run resumes at the last page):

1. metadata: users (v1), pipelines, stages, deal/person/organization fields (v2), lead
   fields and labels (v1) — complete snapshots every run;
2. persons, organizations (v2, ``updated_since``);
3. deals (v2 ``/deals/archived`` then ``/deals?status=open,won,lost,deleted``,
   ``include_fields=source_lead_id,first_won_time``), with each page's stage history for
   the deals that moved (see :mod:`.history`), and for deals with ``source_lead_id`` a
   :class:`~crmsync.model.Conversion` plus the lead marked converted (Pipedrive deletes
   the lead; crmsync keeps it);
4. leads (v1 ``/leads`` by moving ``updated_since``; ``/leads/archived`` newest first
   until the cursor);
5. field renames since the last run: a Notice, and the stored records' ``custom`` keys
   renamed; then the field-name cursor.

The first run (no cursor) and ``full_refresh`` runs read complete snapshots and send
``EntityComplete`` so records Pipedrive no longer has are marked removed; incremental runs
never do. Deals deleted in Pipedrive stay as ``status = "deleted"`` (visible for 30 days).

Incremental = ``updated_since`` (cursor minus ``overlap_seconds``); records re-read only
because of the overlap (same ``update_time`` as stored) are dropped, and a record met twice
in one run (edited while we paged, or moved between the archived and live lists) is written
once with the cursor held below its newer ``update_time``. Not seen incrementally (Pipedrive
offers no trace): persons/organizations deleted, and leads deleted without conversion —
``full_refresh = true`` finds them. ``--estimate``: :func:`estimate`, :func:`estimate_source`
or ``PipedriveSource.estimate(source_cfg, context)``; no request is spent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator

from crmsync.config import SourceConfig, format_validation_errors
from crmsync.errors import ConfigError
from crmsync.model import Deal, Lead, LeadStatus, Record
from crmsync.source import Checkpoint, EntityComplete, Item, Notice, Source, SourceContext, StrictOptions
from crmsync.view import StoredRecords
from crmsync.warehouse import QuarantineRow

from . import convert, history
from .client import COSTS, NotFound, PipedriveClient
from .fields import FieldSet, names_json, renames
from .paging import PAGE_SIZE, v1_keyset_pages, v1_pages, v2_pages

__all__ = ["PipedriveOptions", "PipedriveSource", "Estimate", "estimate", "estimate_source"]

EntityName = Literal["deals", "leads", "persons", "organizations"]
ALL_ENTITIES: tuple[EntityName, ...] = ("deals", "leads", "persons", "organizations")
DEAL_INCLUDE = "source_lead_id,first_won_time"
DEAL_STATUSES = "open,won,lost,deleted"
HISTORY_CHECKPOINT_EVERY = 25


class SandboxOptions(StrictOptions):
    """``sandbox = { seed = 1, deals = 300 }``: read a seeded local sandbox started for the run."""

    seed: int = 1
    deals: int = Field(300, ge=0, le=1_000_000)
    leads: int | None = Field(None, ge=0)
    persons: int | None = Field(None, ge=0)
    orgs: int | None = Field(None, ge=0)


class PipedriveOptions(StrictOptions):
    base_url: str | None = None
    api_token: SecretStr | None = None
    #: Instead of base_url/api_token: a crmsync sandbox (a local Pipedrive-compatible API over
    #: loopback HTTP) started for the run, so a config can exercise the API path with no credentials.
    sandbox: SandboxOptions | None = None
    entities: list[EntityName] = Field(default_factory=lambda: list(ALL_ENTITIES))
    history: bool = True
    history_endpoint: Literal["changelog", "flow"] = "changelog"
    history_backfill: Literal["all", "moved"] = "all"
    start_date: date | None = None
    overlap_seconds: int = Field(30, ge=0, le=7 * 86400)
    token_budget: int | None = Field(None, ge=1)
    requests_per_2s: int | None = Field(None, ge=1, le=480)
    full_refresh: bool = False
    page_size: int = Field(PAGE_SIZE, ge=1, le=500)
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    max_attempts: int = Field(6, ge=1, le=20)
    backoff_seconds: float = Field(0.5, ge=0, le=60)
    phone_region: str | None = None


    @model_validator(mode="after")
    def _one_endpoint(self) -> PipedriveOptions:
        if self.sandbox is None and (self.base_url is None or self.api_token is None):
            raise ValueError("give base_url and api_token (or sandbox = { seed = 1, deals = 300 })")
        if self.sandbox is not None and (self.base_url is not None or self.api_token is not None):
            raise ValueError("give either sandbox or base_url/api_token, not both")
        return self


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PipedriveSource(Source):
    """Reads a Pipedrive company (see the module docstring for config and behaviour)."""

    Options = PipedriveOptions
    options: PipedriveOptions

    def __init__(self, name, options, context):
        super().__init__(name, options, context)
        self.client: PipedriveClient | None = None
        self._emitted_leads: set[str] = set()
        self._track: dict[str, set[str]] = {}  # entity -> ids emitted this run (only when renames pending)
        self._renamed: dict[str, dict[str, str]] = {}  # entity -> {old custom name: new} pending this run

    @classmethod
    def estimate(cls, source: SourceConfig, context: SourceContext) -> Estimate:
        """What the next run of this source will spend (see :func:`estimate`); a hook for ``--estimate``."""
        return estimate(cls.parse_options(source), context.cursors, context.stored)

    @classmethod
    def open_target(cls, source: SourceConfig, context: SourceContext):
        """This company as a push/migrate target (see :mod:`.target`)."""
        from .target import PipedriveTarget

        options = cls.parse_options(source)
        if options.sandbox is not None:
            raise ConfigError(f"sources.{source.name}: a sandbox started per run cannot be a push target (it is gone "
                              "after the run); start one with `crmsync sandbox serve` and give its base_url/api_token")
        return PipedriveTarget(cls(source.name, options, context).make_client())

    # -- plumbing ------------------------------------------------------------------------------
    def make_client(self, base_url: str | None = None, token: str | None = None) -> PipedriveClient:
        o = self.options
        if base_url is None or token is None:
            assert o.base_url is not None and o.api_token is not None  # checked by PipedriveOptions
            base_url, token = o.base_url, o.api_token.get_secret_value()
        return PipedriveClient(
            base_url, token, timeout=o.timeout_seconds, max_attempts=o.max_attempts,
            backoff=o.backoff_seconds,
            token_budget=o.token_budget, requests_per_2s=o.requests_per_2s, where=f"sources.{self.name}",
        )

    @property
    def stored(self) -> StoredRecords | None:
        return self.context.stored

    def _stored_many(self, entity: str, ids: list[str]) -> dict[str, Record]:
        if self.stored is None or not ids:
            return {}
        return self.stored.get_many(entity, ids)

    def _full(self, stream: str) -> bool:
        return self.options.full_refresh or stream not in self.context.cursors

    def _since(self, stream: str) -> str | None:
        cursor = None if self.options.full_refresh else self.context.cursors.get(stream)
        if cursor:
            at = convert.parse_time(cursor) - timedelta(seconds=self.options.overlap_seconds)
            return _iso(at)
        if self.options.start_date:
            return f"{self.options.start_date.isoformat()}T00:00:00Z"
        return None

    def _complete(self, stream: str) -> bool:
        return self._full(stream) and self.options.start_date is None

    def _quarantine(self, entity: str, obj: Any, exc: Exception) -> QuarantineRow:
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            column = ".".join(str(p) for p in err.get("loc", ())) or None
            reason = f"{err.get('msg')}"
            value = err.get("input") if not isinstance(err.get("input"), dict) else None
        else:
            column, reason, value = None, f"{type(exc).__name__}: {exc}", None
        oid = obj.get("id") if isinstance(obj, dict) else None
        return QuarantineRow(source=self.name, entity=entity, reason=f"{reason} (Pipedrive id {oid})",
                             column=column, value=value, raw=obj if isinstance(obj, dict) else {"value": obj})

    def _convert(self, entity: str, fn, objs: list, *args) -> tuple[list[Record], list[QuarantineRow]]:
        good, bad = [], []
        for obj in objs:
            try:
                good.append(fn(self.name, obj, *args))
            except (ValidationError, ValueError, KeyError, TypeError, AttributeError) as exc:
                bad.append(self._quarantine(entity, obj, exc))
        return good, bad

    def _fresh(self, entity: str, records: list[Record], cursor: str | None) -> list[Record]:
        """Drop records re-read only because of the overlap window (same ``update_time`` as stored)."""
        if not cursor or not records:
            return records
        limit = convert.parse_time(cursor)
        maybe = [r.source_id for r in records if r.update_time is not None and r.update_time <= limit]
        stored = self._stored_many(entity, maybe)
        return [r for r in records
                if not (r.source_id in stored and stored[r.source_id].update_time == r.update_time)]

    def _restored(self, entity: str, record: Record) -> Record:
        """A record rebuilt from the warehouse, with this run's field renames applied, to be written again."""
        mapping = self._renamed.get(entity)
        if mapping and any(k in record.custom for k in mapping):
            custom = {mapping.get(k, k): v for k, v in record.custom.items()}
            record = type(record).model_validate({**record.model_dump(), "custom": custom})
        return self._emit(entity, record)

    def _emit(self, entity: str, record: Record) -> Record:
        ids = self._track.get(entity)
        if ids is not None:
            ids.add(record.source_id)
        return record

    # -- the run -------------------------------------------------------------------------------
    def read(self) -> Iterator[Item]:
        box = self.options.sandbox
        if box is None:
            yield from self._read(self.make_client())
            return
        from crmsync.sandbox import Sandbox

        # The sandbox lives exactly as long as this generator: the runner drains it, then closes it.
        with Sandbox(seed=box.seed, deals=box.deals, leads=box.leads, persons=box.persons, orgs=box.orgs) as sb:
            yield from self._read(self.make_client(sb.base_url, sb.api_token))

    def _read(self, client: PipedriveClient) -> Iterator[Item]:
        self.client = client
        o = self.options
        meta = None
        yield from self._metadata(client, out := {})
        meta, field_sets = out["meta"], out["fields"]
        pending = renames(self.context.cursors.get("fields"), field_sets)
        if pending:
            affected = {"deal": ("deal", "lead"), "person": ("person",), "organization": ("organization",)}
            self._track = {e: set() for ent in pending for e in affected[ent]}
            for ent, changes in pending.items():
                for e in affected[ent]:
                    self._renamed.setdefault(e, {}).update({old: new for old, new in changes.values()})
        if "persons" in o.entities:
            yield from self._v2_entity(client, "/persons", "persons", "person", {}, convert.person, meta)
        if "organizations" in o.entities:
            yield from self._v2_entity(client, "/organizations", "organizations", "organization", {},
                                       convert.organization, meta)
        if "deals" in o.entities:
            params = {"status": DEAL_STATUSES, "include_fields": DEAL_INCLUDE}
            full = self._complete("deals") and self._complete("deals_archived")
            # archived first (few), so a deal un-archived while we read is not written twice in one run
            archived: set[str] = set()
            yield from self._v2_entity(client, "/deals/archived", "deals_archived", "deal", params, convert.deal,
                                       meta, record_ids=archived)
            yield from self._v2_entity(client, "/deals", "deals", "deal", params, convert.deal, meta,
                                       skip_ids=archived)
            if full:
                yield EntityComplete("deal")
        if "leads" in o.entities:
            yield from self._leads(client, meta)
        yield from self._apply_renames(pending, field_sets)
        yield Checkpoint("fields", names_json(field_sets))
        usage = client.usage
        yield Notice("usage", f"Pipedrive: {usage.requests} requests, {usage.tokens} tokens, "
                              f"{usage.retries} retries", 1)

    def _metadata(self, client: PipedriveClient, out: dict) -> Iterator[Item]:
        o = self.options
        users = client.get("v1", "/users")["data"]
        pipelines = [p for page in v2_pages(client, "/pipelines", {}, o.page_size) for p in page]
        stages = [s for page in v2_pages(client, "/stages", {}, o.page_size) for s in page]
        fields: dict[str, FieldSet] = {}
        if {"deals"} & set(o.entities):
            fields["deal"] = FieldSet.from_v2([f for p in v2_pages(client, "/dealFields", {}, o.page_size) for f in p])
        if "persons" in o.entities:
            fields["person"] = FieldSet.from_v2(
                [f for p in v2_pages(client, "/personFields", {}, o.page_size) for f in p])
        if "organizations" in o.entities:
            fields["organization"] = FieldSet.from_v2(
                [f for p in v2_pages(client, "/organizationFields", {}, o.page_size) for f in p])
        labels: dict[str, str] = {}
        lead_fields = FieldSet()
        if "leads" in o.entities:
            lead_fields = FieldSet.from_v1([f for p in v1_pages(client, "/leadFields", {}, o.page_size) for f in p])
            labels = {str(x["id"]): str(x.get("name")) for x in client.get("v1", "/leadLabels")["data"]}
            if "deal" not in fields:
                fields["deal"] = lead_fields
        region = o.phone_region or self.context.config.defaults.phone_region
        meta = convert.Meta(
            deal_fields=fields.get("deal", FieldSet()), lead_fields=lead_fields,
            person_fields=fields.get("person", FieldSet()), org_fields=fields.get("organization", FieldSet()),
            pipelines={str(p["id"]): p.get("name") for p in pipelines},
            stages={str(s["id"]): s.get("name") for s in stages},
            users={str(u["id"]): u.get("name") for u in users}, lead_labels=labels, phone_region=region,
        )
        for entity, fn, objs in (("user", convert.user, users), ("pipeline", convert.pipeline, pipelines),
                                 ("stage", convert.stage, stages)):
            good, bad = self._convert(entity, fn, objs)
            yield from good
            yield from bad
            yield EntityComplete(entity)
        for owner, fs in fields.items():
            yield from convert.custom_fields(self.name, owner, fs)
        yield EntityComplete("custom_field")
        out["meta"], out["fields"] = meta, fields

    def _v2_entity(self, client, path, stream, entity, params, fn, meta, *, record_ids: set[str] | None = None,
                   skip_ids: set[str] | None = None) -> Iterator[Item]:
        """One v2 list, ``update_time`` ascending from the cursor, a checkpoint per page.

        ``record_ids`` collects the ids written; ids in ``skip_ids`` (already written this run from
        another list) are not written again, and the cursor is held below them so the next run
        reads their newer state.
        """
        o = self.options
        cursor = None if o.full_refresh else self.context.cursors.get(stream)
        since = self._since(stream)
        query = {**params, "sort_by": "update_time", "sort_direction": "asc"}
        if since:
            query["updated_since"] = since
        best = cursor
        hold: datetime | None = None
        seen = IdSet()

        def checkpoint(value: str) -> Checkpoint | None:
            at = convert.parse_time(value)
            if hold is not None and at >= hold:
                at = hold - timedelta(seconds=1)
                value = _iso(at)
            if cursor is not None and at <= convert.parse_time(cursor):
                return None
            return Checkpoint(stream, value)

        for page in v2_pages(client, path, query, o.page_size):
            good, bad = self._convert(entity, fn, page, meta)
            good = self._fresh(entity, good, cursor)
            # Written already in this run: it moved between the archived and live lists, or was edited
            # while we paged (keyset paging meets it again, newer). Written once; the cursor is held
            # below its new update_time so the next run reads the newer state.
            twice = [r for r in good if r.source_id in seen or (skip_ids and r.source_id in skip_ids)]
            for r in twice:
                if r.update_time is not None:
                    hold = r.update_time if hold is None else min(hold, r.update_time)
                yield Notice("changed_during_run", f"{entity} {r.source_id} changed while it was being read; "
                             "its newer state is read next run", 1)
            if twice:
                again = {r.source_id for r in twice}
                good = [r for r in good if r.source_id not in again]
            for r in good:
                seen.add(r.source_id)
            if record_ids is not None:
                record_ids.update(r.source_id for r in good)
            yield from bad
            if entity == "deal":
                for item in self._deal_page(client, good):
                    if isinstance(item, Checkpoint):  # mid-page progress: cursor of the last finished deal
                        if best is None or convert.parse_time(item.value) > convert.parse_time(best):
                            best = item.value
                            if (cp := checkpoint(best)) is not None:
                                yield cp
                    else:
                        yield item
            else:
                for rec in good:
                    yield self._emit(entity, rec)
            times = [str(x.get("update_time")) for x in page if x.get("update_time")]
            if times:
                top = max(times, key=convert.parse_time)
                if best is None or convert.parse_time(top) > convert.parse_time(best):
                    best = top
            if best and (cp := checkpoint(best)) is not None:
                yield cp
        if self._complete(stream) and entity != "deal":
            yield EntityComplete(entity)

    # -- deals: history and conversions --------------------------------------------------------
    def _deal_page(self, client: PipedriveClient, deals: list[Deal]) -> Iterator[Item]:
        o = self.options
        stored = self._stored_many("deal", [d.source_id for d in deals])
        lead_ids = [d.source_lead_id for d in deals if d.source_lead_id and "leads" in o.entities]
        stored_leads = self._stored_many("lead", lead_ids)
        calls = 0
        for d in deals:
            old = stored.get(d.source_id)
            if o.history:
                changes: list = []
                if history.needs_history(d, old, o.history_backfill):
                    changes = self._history(client, d.source_id)
                    calls += 1
                    yield from changes
                if old is None or changes:
                    first = history.first_stage(self.name, d, changes)
                    if first is not None:
                        yield first
            if d.source_lead_id and "leads" in o.entities and d.source_lead_id not in self._emitted_leads:
                lead = stored_leads.get(d.source_lead_id)
                if not (isinstance(lead, Lead) and lead.status == LeadStatus.CONVERTED
                        and lead.converted_deal_id == d.source_id):
                    yield convert.conversion(self.name, d)
                    yield self._restored("lead", convert.converted_lead(lead, self.name, d.source_lead_id, d))
                    self._emitted_leads.add(d.source_lead_id)
            yield self._emit("deal", d)
            if calls >= HISTORY_CHECKPOINT_EVERY and d.raw.get("update_time"):
                # a page of deals can need hundreds of history requests: save progress on the way, so a
                # budget stop or a failure resumes after the last finished deal (the list is update_time asc)
                calls = 0
                yield Checkpoint("", str(d.raw["update_time"]))

    def _history(self, client: PipedriveClient, deal_id: str) -> list:
        o = self.options
        try:
            if o.history_endpoint == "flow":
                items = [x for page in v1_pages(client, f"/deals/{deal_id}/flow", {"items": "dealChange"},
                                                o.page_size) for x in page]
                return history.from_flow(self.name, deal_id, items)
            items = [x for page in v2_pages_v1(client, f"/deals/{deal_id}/changelog", o.page_size) for x in page]
            return history.from_changelog(self.name, deal_id, items)
        except NotFound:
            return []  # purged since it was listed

    # -- leads ---------------------------------------------------------------------------------
    def _leads(self, client: PipedriveClient, meta) -> Iterator[Item]:
        o = self.options
        full = self._complete("leads") and self._complete("leads_archived")
        track_all = full
        seen: set[str] = set(self._emitted_leads) if track_all else set()
        # live leads, paged by moving updated_since (robust to leads vanishing mid-listing)
        cursor = None if o.full_refresh else self.context.cursors.get("leads")
        best = cursor
        hold: datetime | None = None
        for page in v1_keyset_pages(client, "/leads", self._since("leads"), o.page_size):
            good, bad = self._convert("lead", convert.lead, page, meta)
            yield from bad
            for rec in self._fresh("lead", good, cursor):
                if rec.source_id in self._emitted_leads:
                    if rec.update_time is not None:  # edited while we paged: its newer state next run
                        hold = rec.update_time if hold is None else min(hold, rec.update_time)
                    continue
                self._emitted_leads.add(rec.source_id)
                yield self._emit("lead", rec)
            if track_all:
                seen.update(str(x.get("id")) for x in page)
            top = max((x.get("update_time") for x in page if x.get("update_time")), key=convert.parse_time,
                      default=None)
            if top and (best is None or convert.parse_time(top) > convert.parse_time(best)):
                best = top
            value = best
            if value and hold is not None and convert.parse_time(value) >= hold:
                value = _iso(hold - timedelta(seconds=1))
            if value and (cursor is None or convert.parse_time(value) > convert.parse_time(cursor)):
                yield Checkpoint("leads", value)
        # archived leads: no updated_since on this endpoint, so newest first until the cursor
        acursor = None if o.full_refresh else self.context.cursors.get("leads_archived")
        floor = convert.parse_time(self._since("leads_archived")) if self._since("leads_archived") else None
        abest = acursor
        ahold: datetime | None = None
        params = {"sort": "update_time DESC"}
        for page in v1_pages(client, "/leads/archived", params, o.page_size):
            good, bad = self._convert("lead", convert.lead, page, meta)
            yield from bad
            for rec in self._fresh("lead", good, acursor):
                if rec.source_id in self._emitted_leads:
                    if rec.update_time is not None:  # archived while we read: take it next run
                        ahold = rec.update_time if ahold is None else min(ahold, rec.update_time)
                    continue
                if floor is not None and rec.update_time is not None and rec.update_time < floor:
                    continue
                self._emitted_leads.add(rec.source_id)
                yield self._emit("lead", rec)
            if track_all:
                seen.update(str(x.get("id")) for x in page)
            times = [convert.parse_time(x.get("update_time")) for x in page if x.get("update_time")]
            if times:
                top = _iso(max(times))
                if abest is None or convert.parse_time(top) > convert.parse_time(abest):
                    abest = top
            if floor is not None and times and min(times) < floor:
                break
        if abest and ahold is not None and convert.parse_time(abest) >= ahold:
            abest = _iso(ahold - timedelta(seconds=1))
        if abest and (acursor is None or convert.parse_time(abest) > convert.parse_time(acursor)):
            yield Checkpoint("leads_archived", abest)
        if full and self.stored is not None:
            # converted leads are gone from Pipedrive but stay in the warehouse: re-confirm them
            missing = [i for i in self.stored.ids("lead") if i not in seen]
            for start in range(0, len(missing), 500):
                for rec in self.stored.get_many("lead", missing[start:start + 500]).values():
                    if isinstance(rec, Lead) and rec.status == LeadStatus.CONVERTED:
                        yield self._restored("lead", rec)
            yield EntityComplete("lead")

    # -- renames -------------------------------------------------------------------------------
    def _apply_renames(self, pending: dict, field_sets: dict) -> Iterator[Item]:
        if not pending or self.stored is None:
            return
        targets = {"deal": ("deal", "lead"), "person": ("person",), "organization": ("organization",)}
        for ent, changes in pending.items():
            for key, (old, new) in changes.items():
                yield Notice("field_renamed", f"{ent} field {key}: {old!r} renamed to {new!r} in Pipedrive; "
                                              "stored records now use the new name", 1)
            mapping = {old: new for old, new in changes.values()}
            for entity in targets[ent]:
                done = self._track.get(entity, set())
                ids = [i for i in self.stored.ids(entity) if i not in done]
                for start in range(0, len(ids), 500):
                    for rec in self.stored.get_many(entity, ids[start:start + 500]).values():
                        if any(k in rec.custom for k in mapping):
                            yield self._restored(entity, rec)


class IdSet:
    """Ids seen in one listing: a bitmap for integer ids (1M deals: 125 kB), a set for the rest."""

    def __init__(self) -> None:
        self.bits = bytearray()
        self.other: set[str] = set()

    def add(self, ident: str) -> None:
        if ident.isdigit() and len(ident) < 10:
            i = int(ident)
            if i >> 3 >= len(self.bits):
                self.bits.extend(bytes((i >> 3) + 1 - len(self.bits) + 4096))
            self.bits[i >> 3] |= 1 << (i & 7)
        else:
            self.other.add(ident)

    def __contains__(self, ident: str) -> bool:
        if ident.isdigit() and len(ident) < 10:
            i = int(ident)
            return i >> 3 < len(self.bits) and bool(self.bits[i >> 3] & (1 << (i & 7)))
        return ident in self.other


def v2_pages_v1(client: PipedriveClient, path: str, page_size: int) -> Iterator[list[dict]]:
    """Cursor paging on a v1 path (``/v1/deals/{id}/changelog`` pages by ``cursor``)."""
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": page_size}
        if cursor:
            params["cursor"] = cursor
        body = client.get("v1", path, params)
        yield body["data"]
        cursor = (body.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            return


# -- estimate ----------------------------------------------------------------------------------
class Estimate(dict):
    """``{"requests": int, "tokens": int, "lines": [{endpoint, requests, tokens, note}], "notes": [...]}``."""


def estimate(options: PipedriveOptions | dict, cursors: dict[str, str] | None = None,
             stored: StoredRecords | None = None, *, counts: dict[str, int] | None = None,
             changed_deals: int | None = None) -> Estimate:
    """Requests and tokens the next run will spend, before spending any (no network).

    Full streams (no cursor, or ``full_refresh``) cost ⌈N/page_size⌉ list pages, N from
    ``counts`` or else the warehouse's stored counts; incremental streams cost at least one
    page each (more if more than a page changed). History costs one changelog (20) or flow
    (40) request per deal that moved: ``changed_deals`` if given, else on a first run every
    stored-or-counted deal (an upper bound), else unknown (0, noted).
    """
    if isinstance(options, dict):
        options = PipedriveOptions.model_validate(options)
    cursors = cursors or {}
    counts = dict(counts or {})
    page = options.page_size
    lines: list[dict] = []
    notes: list[str] = []

    def n_of(entity: str) -> int:
        if entity in counts:
            return counts[entity]
        return stored.count(entity) if stored is not None else 0

    def add(family: str, path: str, requests: int, note: str = "") -> None:
        cost = COSTS.get((family, path), 20)
        lines.append({"endpoint": f"GET /api/{family}{path}", "requests": requests, "tokens": requests * cost,
                      "note": note})

    def pages(entity: str, stream: str) -> tuple[int, str]:
        full = options.full_refresh or stream not in cursors
        if full:
            n = n_of(entity)
            if n == 0 and stream not in cursors:
                notes.append(f"{entity}: nothing stored yet; pass counts={{'{entity}': N}} for a real figure")
            return max(1, math.ceil(n / page)), "full" if n else "full (size unknown)"
        return 1, "incremental (≥1 page)"

    add("v1", "/users", 1, "metadata")
    add("v2", "/pipelines", 1, "metadata")
    add("v2", "/stages", 1, "metadata")
    if "deals" in options.entities:
        add("v2", "/dealFields", 1, "metadata")
    if "persons" in options.entities:
        add("v2", "/personFields", 1, "metadata")
        add("v2", "/persons", *pages("person", "persons"))
    if "organizations" in options.entities:
        add("v2", "/organizationFields", 1, "metadata")
        add("v2", "/organizations", *pages("organization", "organizations"))
    if "deals" in options.entities:
        add("v2", "/deals", *pages("deal", "deals"))
        add("v2", "/deals/archived", 1, "archived deals (≥1 page)")
        if options.history:
            path = "/deals/{id}/changelog" if options.history_endpoint == "changelog" else "/deals/{id}/flow"
            if changed_deals is None:
                if "deals" not in cursors:
                    changed_deals = n_of("deal")
                    notes.append("history: upper bound, one request per deal (deals that never moved cost none)")
                else:
                    changed_deals = 0
                    notes.append("history: plus one request per deal that moved since the last run (unknown now)")
            add("v1", path, changed_deals, "stage history")
    if "leads" in options.entities:
        add("v1", "/leadFields", 1, "metadata")
        add("v1", "/leadLabels", 1, "metadata")
        add("v1", "/leads", *pages("lead", "leads"))
        add("v1", "/leads/archived", 1, "archived leads, newest first (≥1 page)")
    return Estimate(requests=sum(x["requests"] for x in lines), tokens=sum(x["tokens"] for x in lines),
                    lines=lines, notes=notes)


def estimate_source(config, name: str, *, counts: dict[str, int] | None = None,
                    changed_deals: int | None = None) -> Estimate:
    """:func:`estimate` for source ``name`` of a loaded :class:`~crmsync.config.Config`.

    Reads the warehouse (read-only, no lock) for this source's cursors and stored counts; a
    warehouse that does not exist yet means a first run. Spends no request.
    """
    import sqlite3

    source = config.sources[name]
    try:
        options = PipedriveOptions.model_validate(source.options)
    except ValidationError as exc:
        raise ConfigError(format_validation_errors(exc, ("sources", name))) from None
    path = config.warehouse.path
    if not path.exists():
        return estimate(options, {}, None, counts=counts, changed_deals=changed_deals)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        try:
            cursors = dict(conn.execute("SELECT stream, value FROM cursors WHERE source = ?", (name,)).fetchall())
        except sqlite3.OperationalError:  # an empty warehouse file without tables
            return estimate(options, {}, None, counts=counts, changed_deals=changed_deals)
        return estimate(options, cursors, StoredRecords(conn, name), counts=counts, changed_deals=changed_deals)
    finally:
        conn.close()
