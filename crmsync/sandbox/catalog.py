"""The small, eagerly built part of a sandbox company: users, pipelines, stages, fields, labels.

These few hundred objects are needed by every record (stage names for flow items,
option ids for enum values, field keys for ``custom_fields``), so they are built once
per seed and kept mutable: simulated activity can rename a custom field or add an enum
option, exactly the changes a sync has to survive.

Example::

    >>> cat = Catalog.build(seed=1, now=1_790_000_000)
    >>> [p["name"] for p in cat.pipelines]
    ['Sales', 'Ventas España', 'Renewals']
    >>> len(cat.custom_fields("deal")[0]["key"])
    40
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .names import FIRST_EN, FIRST_ES, LAST_EN, LAST_ES
from .rng import bits, hex40, uuid_for

# (name, [(stage name, probability %, rotten days or None)]) -- probabilities rise towards the close.
PIPELINES = (
    (
        "Sales",
        [
            ("Qualified", 10, 14),
            ("Contact Made", 20, None),
            ("Demo Scheduled", 40, 21),
            ("Proposal Made", 60, None),
            ("Negotiations Started", 80, 30),
        ],
    ),
    (
        "Ventas España",
        [
            ("Prospecto", 10, None),
            ("Contactado", 25, 10),
            ("Propuesta enviada", 50, 15),
            ("Negociación", 75, None),
            ("Cierre", 90, 7),
        ],
    ),
    ("Renewals", [("Upcoming", 50, None), ("In review", 70, 10), ("Signed", 95, None)]),
)
# A freshly created company (``Catalog.build_empty``): one pipeline with the five stages Pipedrive's
# onboarding shows (names as in its default sales pipeline; probability 100 %, no rotting, deal
# probability off: what a new pipeline gets when nobody edited it). A choice: the reference is silent.
EMPTY_PIPELINE = (
    "Pipeline",
    [
        ("Qualified", 100, None),
        ("Contact Made", 100, None),
        ("Demo Scheduled", 100, None),
        ("Proposal Made", 100, None),
        ("Negotiations Started", 100, None),
    ],
)
# Users of an empty company: the seeded user (same seed) each one shares name and email with, or None.
# Ids are shifted on purpose (empty user 2 is seeded user 1) so owner mapping must go by email, and
# seeded users 4..8 have no counterpart while empty users 1 and 5 exist only in the empty company.
EMPTY_USERS = (None, 1, 2, 3, None)
EMPTY_LEAD_LABELS = (("Hot", "red"), ("Warm", "yellow"), ("Cold", "blue"))
CURRENCIES = ("EUR", "USD", "GBP", "MXN")
CHANNELS = ("Organic search", "Paid search", "Referral", "Email marketing", "Evento / Event", "Social media")
LEAD_SOURCES = (
    "Manually created",
    "Deal",
    "Web forms",
    "Prospector",
    "Leadbooster",
    "Live chat",
    "Import",
    "Website visitors",
    "Workflow automation",
    "API",
)
# lead source -> the immutable `origin` Pipedrive stores next to it
SOURCE_ORIGIN = {
    "Manually created": "ManuallyCreated",
    "Web forms": "WebForms",
    "Import": "Import",
    "API": "API",
    "Prospector": "Prospector",
    "Live chat": "LiveChat",
    "Leadbooster": "Leadbooster",
    "Deal": "Deal",
    "Website visitors": "WebsiteVisitors",
    "Workflow automation": "WorkflowAutomation",
}
DEAL_LABELS = (("Hot", "red"), ("Warm", "yellow"), ("Cold", "blue"), ("VIP", "purple"), ("Churn risk", "gray"))
LEAD_LABELS = (
    ("Hot", "red"),
    ("Warm", "yellow"),
    ("Cold", "blue"),
    ("Partner", "green"),
    ("Inbound web", "purple"),
)

# Custom fields per entity: (name, field_type, option labels or None). Leads inherit the deal ones.
CUSTOM_FIELDS = {
    "deal": (
        ("Segment", "enum", ("Enterprise", "Mid-market", "PYME", "Startup")),
        ("Interests", "set", ("CRM", "ERP", "Analytics", "Soporte", "Training")),
        ("Budget", "monetary", None),
        ("Contract start", "date", None),
        ("Referral code", "varchar", None),
        ("Resumen / Summary", "text", None),
        ("Account manager", "user", None),
        ("Champion", "people", None),
        ("Partner org", "org", None),
        ("Score", "double", None),
    ),
    "person": (
        ("Preferred language", "enum", ("Español", "English", "Català", "Português")),
        ("Topics", "set", ("Pricing", "Integraciones", "Security", "Roadmap")),
        ("Birthday", "date", None),
        ("LinkedIn handle", "varchar", None),
        ("Notas", "text", None),
        ("Spend to date", "monetary", None),
        ("Relationship owner", "user", None),
        ("Previous employer", "org", None),
    ),
    "org": (
        ("Tier", "enum", ("Gold", "Silver", "Bronze")),
        ("Regions", "set", ("EMEA", "LATAM", "NA", "APAC")),
        ("Founded", "date", None),
        ("Tax ID / CIF", "varchar", None),
        ("Description", "text", None),
        ("Annual budget", "monetary", None),
        ("Key account manager", "user", None),
        ("Main contact", "people", None),
    ),
}

# System fields per entity: (v1 key, v2 field_code, name, field_type)
SYSTEM_FIELDS = {
    "deal": (
        ("title", "title", "Title", "varchar"),
        ("value", "value", "Value", "monetary"),
        ("currency", "currency", "Currency", "varchar_options"),
        ("user_id", "owner_id", "Owner", "user"),
        ("person_id", "person_id", "Contact person", "people"),
        ("org_id", "org_id", "Organization", "org"),
        ("pipeline", "pipeline_id", "Pipeline", "double"),
        ("stage_id", "stage_id", "Stage", "stage"),
        ("status", "status", "Status", "status"),
        ("probability", "probability", "Probability", "double"),
        ("lost_reason", "lost_reason", "Lost reason", "varchar_options"),
        ("add_time", "add_time", "Deal created", "date"),
        ("update_time", "update_time", "Update time", "date"),
        ("won_time", "won_time", "Won time", "date"),
        ("lost_time", "lost_time", "Lost time", "date"),
        ("expected_close_date", "expected_close_date", "Expected close date", "date"),
        ("label", "label_ids", "Label", "set"),
        ("visible_to", "visible_to", "Visible to", "visible_to"),
        ("origin", "origin", "Source origin", "varchar"),
        ("channel", "channel", "Source channel", "enum"),
        ("channel_id", "channel_id", "Source channel ID", "varchar"),
    ),
    "person": (
        ("name", "name", "Name", "varchar"),
        ("first_name", "first_name", "First name", "varchar"),
        ("last_name", "last_name", "Last name", "varchar"),
        ("email", "emails", "Email", "varchar"),
        ("phone", "phones", "Phone", "phone"),
        ("org_id", "org_id", "Organization", "org"),
        ("owner_id", "owner_id", "Owner", "user"),
        ("add_time", "add_time", "Person created", "date"),
        ("update_time", "update_time", "Update time", "date"),
        ("visible_to", "visible_to", "Visible to", "visible_to"),
    ),
    "org": (
        ("name", "name", "Name", "varchar"),
        ("owner_id", "owner_id", "Owner", "user"),
        ("address", "address", "Address", "address"),
        ("add_time", "add_time", "Organization created", "date"),
        ("update_time", "update_time", "Update time", "date"),
        ("visible_to", "visible_to", "Visible to", "visible_to"),
    ),
}


def person_name(seed: int, uid: int, kind: str = "user") -> tuple[str, str]:
    """(first, last) in Spanish or English, chosen by hash bits."""
    b = bits(seed, kind + ":name", uid)
    if b & 1:
        first, last = FIRST_ES[(b >> 8) % len(FIRST_ES)], LAST_ES[(b >> 16) % len(LAST_ES)]
        if b & 2:  # Spanish double surname
            last = f"{last} {LAST_ES[(b >> 24) % len(LAST_ES)]}"
        return first, last
    return FIRST_EN[(b >> 8) % len(FIRST_EN)], LAST_EN[(b >> 16) % len(LAST_EN)]


def _user(seed: int, name_id: int, uid: int, n_users: int, t0: int, now: int, domain: str) -> dict:
    """User ``uid`` named (and e-mailed) after hash slot ``name_id`` of ``seed``: equal slots, equal emails."""
    first, last = person_name(seed, name_id)
    email = f"{first.split()[0].lower()}.{name_id}@{domain}.example.com"
    email = email.translate(str.maketrans("áéíóúñÁÉÍÓÚÑ", "aeiounAEIOUN"))
    return {
        "id": uid,
        "name": f"{first} {last}",
        "email": email,
        "active_flag": uid != n_users,
        "is_admin": uid == 1,
        "default_currency": "EUR" if bits(seed, "user", name_id) & 1 else "USD",
        "locale": "es_ES" if bits(seed, "user", name_id) & 1 else "en_US",
        "created": t0 + uid * 3600,
        "last_login": now - uid * 7200,
    }


@dataclass
class Catalog:
    """Company-wide objects; mutable through :class:`crmsync.sandbox.store.Store` only."""

    seed: int
    now: int
    users: list[dict] = field(default_factory=list)
    pipelines: list[dict] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)
    fields: dict[str, list[dict]] = field(default_factory=dict)
    lead_labels: list[dict] = field(default_factory=list)
    channels: list[dict] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)  # api token -> user id
    next_option_id: int = 1000

    @classmethod
    def build(cls, seed: int, now: int, n_users: int = 8) -> Catalog:
        cat = cls(seed=seed, now=now)
        t0 = now - 800 * 86400  # the company predates every record
        for uid in range(1, n_users + 1):
            cat.users.append(_user(seed, uid, uid, n_users, t0, now, f"sandbox-{seed}"))
            cat.tokens[hex40(seed, f"api-token:{uid}")] = uid
        cat._build_pipelines(PIPELINES, t0)
        cat._build_lead_labels(LEAD_LABELS, t0)
        cat.channels = [{"id": n, "label": name} for n, name in enumerate(CHANNELS, start=1)]
        for entity in ("deal", "person", "org"):
            cat.fields[entity] = cat._build_fields(entity, t0)
        return cat

    @classmethod
    def build_empty(cls, seed: int, now: int) -> Catalog:
        """A company created a day before ``now``: users (see ``EMPTY_USERS``), one default
        pipeline, Pipedrive's three default lead labels, system fields only, own API tokens."""
        cat = cls(seed=seed, now=now)
        t0 = now - 86400
        n = len(EMPTY_USERS)
        for uid, twin in enumerate(EMPTY_USERS, start=1):
            if twin is None:
                cat.users.append(_user(seed, 100 + uid, uid, n, t0, now, f"empty-{seed}"))
            else:
                cat.users.append(_user(seed, twin, uid, n, t0, now, f"sandbox-{seed}"))
            cat.tokens[hex40(seed, f"empty-company-api-token:{uid}")] = uid
        cat.users[-1]["active_flag"] = True  # a new company has no deactivated users yet
        cat._build_pipelines((EMPTY_PIPELINE,), t0, probability=False, edited=0)
        cat._build_lead_labels(EMPTY_LEAD_LABELS, t0, salt="empty-lead-label")
        cat.channels = [{"id": n, "label": name} for n, name in enumerate(CHANNELS, start=1)]
        for entity in ("deal", "person", "org"):
            cat.fields[entity] = cat._build_fields(entity, t0, custom=False)
        return cat

    def _build_pipelines(self, pipelines, t0: int, probability: bool = True, edited: int = 86400) -> None:
        cat = self
        sid = 0
        for pid, (pname, stages) in enumerate(pipelines, start=1):
            cat.pipelines.append(
                {
                    "id": pid,
                    "name": pname,
                    "order_nr": pid - 1,
                    "is_deleted": False,
                    "is_deal_probability_enabled": probability,
                    "add_time": t0 + pid * 60,
                    "update_time": t0 + pid * 60 + edited,
                }
            )
            for order, (sname, prob, rot) in enumerate(stages, start=1):
                sid += 1
                cat.stages.append(
                    {
                        "id": sid,
                        "order_nr": order,
                        "name": sname,
                        "is_deleted": False,
                        "deal_probability": prob,
                        "pipeline_id": pid,
                        "is_deal_rot_enabled": rot is not None,
                        "days_to_rotten": rot,
                        "add_time": t0 + pid * 60 + order,
                        "update_time": t0 + pid * 60 + order,
                    }
                )

    def _build_lead_labels(self, labels, t0: int, salt: str = "lead-label") -> None:
        for n, (name, color) in enumerate(labels, start=1):
            self.lead_labels.append(
                {
                    "id": uuid_for(self.seed, salt, n),
                    "name": name,
                    "color": color,
                    "add_time": t0 + n,
                    "update_time": t0 + n,
                }
            )

    def _build_fields(self, entity: str, t0: int, custom: bool = True) -> list[dict]:
        out: list[dict] = []
        for n, (key, code, name, ftype) in enumerate(SYSTEM_FIELDS[entity], start=1):
            options = None
            if code == "channel":
                options = [dict(o) for o in self.channels]
            elif code == "label_ids" and entity == "deal":  # deal labels: the ids deals carry in label_ids
                options = [{"id": n, "label": name, "color": color} for n, (name, color) in enumerate(DEAL_LABELS, 1)]
            out.append(
                {
                    "id": n,
                    "key": key,
                    "code": code,
                    "name": name,
                    "field_type": ftype,
                    "custom": False,
                    "options": options,
                    "add_time": t0,
                    "update_time": None,
                }
            )
        base = len(out)
        for n, (name, ftype, labels) in enumerate(CUSTOM_FIELDS[entity] if custom else (), start=1):
            options = None
            if labels:
                options = []
                for label in labels:
                    options.append(
                        {"id": self.next_option_id, "label": label, "add_time": t0 + n, "update_time": t0 + n}
                    )
                    self.next_option_id += 1
            key = hex40(self.seed, f"field:{entity}:{n}")
            out.append(
                {
                    "id": base + n + 8000 * (1 + ("deal", "person", "org").index(entity)),
                    "key": key,
                    "code": key,
                    "name": name,
                    "field_type": ftype,
                    "custom": True,
                    "options": options,
                    "add_time": t0 + n * 600,
                    "update_time": t0 + n * 600,
                }
            )
        return out

    # -- lookups -------------------------------------------------------------------------------
    def changed(self) -> None:
        """Forget lookup caches after a pipeline, stage or field was added or changed."""
        self.__dict__.pop("_custom_cache", None)
        self.__dict__.pop("_stage_by_id", None)

    def custom_fields(self, entity: str) -> list[dict]:
        """Custom field objects (live: renames, new options and API-created fields show)."""
        entity = "deal" if entity == "lead" else entity
        cache = self.__dict__.setdefault("_custom_cache", {})
        if entity not in cache:
            cache[entity] = [f for f in self.fields[entity] if f["custom"] and not f.get("is_deleted")]
        return cache[entity]

    def live_fields(self, entity: str) -> list[dict]:
        """System and custom fields as the field lists show them (deleted custom fields left out)."""
        return [f for f in self.fields[entity] if not f.get("is_deleted")]

    def generated_fields(self, entity: str) -> list[dict]:
        """The custom fields generated records draw values for: the company's starting set, deleted
        ones included, so that deleting or adding a field never changes any other value drawn."""
        entity = "deal" if entity == "lead" else entity
        return [f for f in self.fields[entity] if f["custom"] and not f.get("api_created")]

    def stage(self, sid: int) -> dict | None:
        by_id = self.__dict__.setdefault("_stage_by_id", {s["id"]: s for s in self.stages})
        return by_id.get(sid)

    def pipeline_stages(self, pid: int) -> list[dict]:
        return sorted(
            (s for s in self.stages if s["pipeline_id"] == pid and not s["is_deleted"]),
            key=lambda s: s["order_nr"],
        )

    def pipeline(self, pid: int | None) -> dict | None:
        return next((p for p in self.pipelines if p["id"] == pid), None)

    def user(self, uid: int | None) -> dict | None:
        return next((u for u in self.users if u["id"] == uid), None)

    def default_pipeline(self) -> dict:
        return min((p for p in self.pipelines if not p["is_deleted"]), key=lambda p: p["order_nr"])
