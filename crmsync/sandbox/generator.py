"""Per-id deterministic records: cheap summaries for the index, full records on demand.

Why two layers: a million deals must be filterable (status, stage, ``updated_since``)
seconds after start, but nobody reads a million full records at once. So
``deal_summary(i)`` derives the fields that filters and sorting need from 128 hash
bits (a few microseconds, run for every id at start-up), and ``deal_record(i)``
rebuilds the same summary and adds names, custom fields and the stage history from a
private RNG (only for the ids a page shows). Both depend only on ``(seed, id)``, the
sizes and the sandbox's ``now``, so any id renders the same on every run.

Ids grow with ``add_time`` (as in Pipedrive, ids are handed out in creation order).
Deleted deals were deleted in the last 30 days (Pipedrive purges them after 30).
Converted leads point at the deal they became through ``Generator.lead_for_deal``.

Example::

    >>> from crmsync.sandbox.catalog import Catalog
    >>> g = Generator(seed=1, now=1_790_000_000, deals=100, persons=30, orgs=10, leads=20,
    ...               catalog=Catalog.build(1, 1_790_000_000))
    >>> g.deal_record(5)["id"], g.deal_record(5) == g.deal_record(5), g.deal_events(5)[0]["field_key"]
    (5, True, 'add_time')
"""

from __future__ import annotations

from .catalog import CURRENCIES, LEAD_SOURCES, SOURCE_ORIGIN, Catalog, person_name
from .names import (
    CITIES,
    COMPANY_STEM,
    COMPANY_SUFFIX_EN,
    COMPANY_SUFFIX_ES,
    EMAIL_DOMAINS_PERSONAL,
    LOST_REASONS,
    PRODUCTS,
    STREETS,
)
from .rng import bits, rng, uuid_for

DAY = 86400
SPAN = 730 * DAY  # deals and people were created over the last two years
LEAD_SPAN = 365 * DAY
STATUS_CODES = {"open": 0, "won": 1, "lost": 2, "deleted": 3}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}


def _slot(i: int, n: int, span: int, jitter_bits: int, now: int) -> int:
    """Creation time of the i-th of n records spread over ``span`` before ``now``; grows with i."""
    start = now - span
    width = max(span // max(n, 1), 1)
    return start + (i - 1) * span // max(n, 1) + (jitter_bits & 0xFFFF) * (width - 1) // 65536


def iso_date(ts: int) -> str:
    import time as _t

    return _t.strftime("%Y-%m-%d", _t.gmtime(ts))


class Generator:
    """Builds records for one ``(seed, sizes, now)``; holds no per-record state."""

    def __init__(self, seed: int, now: int, deals: int, persons: int, orgs: int, leads: int, catalog: Catalog):
        self.seed, self.now = seed, now
        self.n_deals, self.n_persons, self.n_orgs, self.n_leads = deals, persons, orgs, leads
        self.cat = catalog
        self.n_users = len(catalog.users)
        self._pipes = [[s["id"] for s in catalog.pipeline_stages(p["id"])] for p in catalog.pipelines]
        # converted leads: every 10th lead (n % 10 == 3) became a deal whose id follows the lead's slot
        self.deal_from_lead: dict[int, int] = {}
        self.lead_for_deal: dict[int, int] = {}
        if deals and 10 * deals >= leads:
            for n in range(3, leads + 1, 10):
                i = min(deals, n * deals // leads + 1)
                if i not in self.lead_for_deal:
                    self.deal_from_lead[n], self.lead_for_deal[i] = i, n

    # -- deals ---------------------------------------------------------------------------------
    def deal_summary(self, i: int) -> dict:
        """Index fields of deal ``i`` (times in epoch seconds)."""
        seed, now = self.seed, self.now
        b0, b1 = bits(seed, "deal", i, 0), bits(seed, "deal", i, 1)
        add_t = _slot(i, self.n_deals, SPAN, b0, now)
        lead_n = self.lead_for_deal.get(i)
        if lead_n is not None:  # converted deals start where their lead ended
            add_t = max(add_t, self.lead_add_time(lead_n) + 3600)
        age = now - add_t
        u = (b0 >> 16) & 0xFF
        pipe = 0 if u < 140 else 1 if u < 217 else 2
        stages = self._pipes[pipe]
        life = min(((b0 >> 32) & 0xFF) * DAY + (b0 >> 40 & 0xFFFF), max(age - 60, 0))
        u2 = (b0 >> 24) & 0xFF
        closed = life < age - DAY and u2 < 180
        status = ("won" if u2 < 75 else "lost") if closed else "open"
        k = len(stages) - 1 if status == "won" else ((b0 >> 48) & 0xF) % len(stages)
        end_t = add_t + life
        last_move = max(add_t + 60, end_t - ((b0 >> 56) & 0xFF) * 1200) if k > 0 else None
        if last_move is not None and status == "open":
            last_move = end_t if end_t > add_t + 60 else add_t + 60
        close_t = end_t if closed else None
        last_t = max(add_t, end_t, last_move or 0)
        reopen_t = None
        if closed and ((b0 >> 52) & 0xF) == 0 and now - last_t > 2 * DAY:
            reopen_t = last_t + DAY + (b1 >> 3) % max(now - last_t - 2 * DAY, 1)
            last_t = reopen_t
        touch_t = None
        if ((b1 >> 10) & 0xF) == 0:  # a recent edit (value change) so `recents` has data
            touch_t = max(last_t + 60, now - (b1 >> 14) % (30 * DAY))
            if touch_t < now:
                last_t = touch_t
            else:
                touch_t = None
        archived = deleted = False
        archive_t = delete_t = None
        if (b1 & 0x1F) == 0:
            deleted = True
            delete_t = min(max(last_t + 60, now - (b1 >> 8) % (29 * DAY)), now - 1)
            last_t = max(last_t, delete_t)
        elif closed and reopen_t is None and ((b1 >> 5) & 0x1F) < 3:
            archived = True
            archive_t = min(last_t + (b1 >> 40) % (60 * DAY) + 60, now - 1)
            last_t = max(last_t, archive_t)
        return {
            "id": i,
            "add_time": add_t,
            "update_time": last_t,
            "pipeline_id": pipe + 1,
            "stage_id": stages[k],
            "stage_index": k,
            "status": status if reopen_t is None else "open",
            "closed_status": status,
            "close_time": close_t,
            "last_move": last_move,
            "reopen_time": reopen_t,
            "touch_time": touch_t,
            "is_deleted": deleted,
            "delete_time": delete_t,
            "is_archived": archived,
            "archive_time": archive_t,
            "owner_id": 1 + (b1 >> 20) % self.n_users,
            "person_id": 1 + (b1 >> 28) % self.n_persons if self.n_persons else None,
            "org_id": 1 + (b1 >> 36) % self.n_orgs if self.n_orgs and (b1 >> 62) != 0 else None,
            "value": ((b1 >> 44) & 0x3FFF) * 25,
            "currency": "EUR" if pipe == 1 else CURRENCIES[(b1 >> 58) & 3],
        }

    def deal_index_row(self, i: int) -> tuple:
        s = self.deal_summary(i)
        st = "deleted" if s["is_deleted"] else s["status"]
        return (
            i,
            s["update_time"],
            s["add_time"],
            STATUS_CODES[st],
            s["pipeline_id"],
            s["stage_id"],
            int(s["is_deleted"]),
            int(s["is_archived"]),
            s["owner_id"],
            s["person_id"],
            s["org_id"],
        )

    def deal_record(self, i: int) -> dict:
        """The full canonical deal (times as epoch seconds); its history is :meth:`deal_events`."""
        s = self.deal_summary(i)
        r = rng(self.seed, "deal", i)
        cat = self.cat
        org = self.org_name(s["org_id"]) if s["org_id"] else None
        product = PRODUCTS[r.randrange(len(PRODUCTS))]
        title = f"{org} – {product}" if org else f"{product} ({self.person_full_name(s['person_id'])})"
        creator = s["owner_id"] if r.random() < 0.8 else 1 + r.randrange(self.n_users)
        lead_n = self.lead_for_deal.get(i)
        status, lost_reason, won_time, lost_time = "open", None, None, None
        if s["close_time"] is not None:
            status = s["closed_status"]
            if status == "won":
                won_time = s["close_time"]
            else:
                lost_time = s["close_time"]
                lost_reason = LOST_REASONS[r.randrange(len(LOST_REASONS))]
        first_won = won_time
        if s["reopen_time"] is not None:
            status, won_time, lost_time, lost_reason = "open", None, None, None
        stage = cat.stage(s["stage_id"])
        close_time = won_time or lost_time
        rec = {
            "id": i,
            "title": title,
            "creator_user_id": creator,
            "owner_id": s["owner_id"],
            "person_id": s["person_id"],
            "org_id": s["org_id"],
            "pipeline_id": s["pipeline_id"],
            "stage_id": s["stage_id"],
            "value": s["value"],
            "currency": s["currency"],
            "add_time": s["add_time"],
            "update_time": s["update_time"],
            "stage_change_time": s["last_move"],
            "status": "deleted" if s["is_deleted"] else status,
            "is_deleted": s["is_deleted"],
            "is_archived": s["is_archived"],
            "archive_time": s["archive_time"],
            "probability": None if r.random() < 0.7 else stage["deal_probability"],
            "lost_reason": lost_reason,
            "visible_to": 3 if r.random() < 0.8 else 7,
            "close_time": close_time,
            "won_time": won_time,
            "lost_time": lost_time,
            "first_won_time": first_won,
            "expected_close_date": iso_date(s["add_time"] + r.randint(14, 180) * DAY) if r.random() < 0.75 else None,
            "label_ids": sorted(r.sample(range(1, 6), r.randint(0, 2))),
            "origin": "ManuallyCreated" if lead_n is None else self._lead_origin(lead_n),
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            "source_lead_id": self.lead_uuid(lead_n) if lead_n is not None else None,
            "custom_fields": self._custom_values("deal", r, s["add_time"]),
        }
        if r.random() < 0.3:
            rec["channel"] = 1 + r.randrange(len(cat.channels))
            rec["channel_id"] = r.choice(["Jun23 Billboards", "Q4 webinar", "Feria Madrid", None])
        return rec

    def deal_events(self, i: int) -> list[dict]:
        """The generated field-change history of deal ``i``, oldest first (its own RNG stream)."""
        s = self.deal_summary(i)
        rec = self.deal_record(i)
        h = rng(self.seed, "deal-history", i)
        stages = self._pipes[s["pipeline_id"] - 1]
        owner, creator = s["owner_id"], rec["creator_user_id"]
        events: list[tuple] = [(s["add_time"], "add_time", None, s["add_time"], creator)]
        # the stage path: forward one stage at a time, sometimes one step back and forth again
        k = s["stage_index"]
        path = list(range(k + 1))
        if k >= 2 and h.random() < 0.15:
            j = h.randrange(1, k)
            path = path[: j + 1] + [j - 1] + path[j:]
        if len(path) > 1:
            t_first, t_last = s["add_time"] + 60, s["last_move"]
            times = sorted(h.randint(t_first, t_last) for _ in range(len(path) - 2)) + [t_last]
            for (a, b), t in zip(zip(path, path[1:], strict=False), times, strict=True):
                events.append((t, "stage_id", stages[a], stages[b], owner))
        status = "open"
        if s["close_time"] is not None:
            status, t = s["closed_status"], s["close_time"]
            events.append((t, "status", "open", status, owner))
            if status == "won":
                events.append((t, "won_time", None, t, owner))
            else:
                reason = rec["lost_reason"] or LOST_REASONS[h.randrange(len(LOST_REASONS))]
                events.append((t, "lost_reason", None, reason, owner))
                events.append((t, "lost_time", None, t, owner))
        if s["reopen_time"] is not None:
            events.append((s["reopen_time"], "status", status, "open", owner))
            status = "open"
        if s["touch_time"] is not None:
            events.append((s["touch_time"], "value", s["value"] - 25 * h.randint(1, 400), s["value"], owner))
        if s["is_archived"]:
            events.append((s["archive_time"], "is_archived", False, True, owner))
        if s["is_deleted"]:
            events.append((s["delete_time"], "status", status, "deleted", owner))
        events.sort(key=lambda e: e[0])
        return [
            {
                "id": i * 64 + n,
                "item_id": i,
                "time": t,
                "field_key": key,
                "old_value": old,
                "new_value": new,
                "user_id": uid,
                "change_source": "app",
            }
            for n, (t, key, old, new, uid) in enumerate(events)
        ]

    def _custom_values(self, entity: str, r, add_t: int) -> dict:
        out: dict = {}
        for f in self.cat.generated_fields(entity):
            if r.random() < 0.3:
                continue  # unset
            ft = f["field_type"]
            # Records are generated lazily, possibly after a simulated add_option: draw only from the
            # options the company started with, or adding an option would silently rewrite old records.
            options = [o for o in f["options"] or () if not o.get("simulated")]
            if ft == "enum":
                v = r.choice(options)["id"]
            elif ft == "set":
                v = sorted(o["id"] for o in r.sample(options, r.randint(1, min(3, len(options)))))
            elif ft == "monetary":
                v = {"value": r.randint(1, 400) * 250, "currency": r.choice(CURRENCIES)}
            elif ft == "date":
                v = iso_date(add_t + r.randint(-400, 400) * DAY)
            elif ft == "varchar":
                v = r.choice(["REF-", "ref ", "R/"]) + str(r.randint(100, 99999))
            elif ft == "text":
                v = r.choice(
                    [
                        "Cliente muy interesado.\nLlamar en marzo.",
                        "Wants SSO; budget in Q3.",
                        "Follow-up after demo — decisión pendiente.",
                        "Key account",
                    ]
                )
            elif ft == "user":
                v = 1 + r.randrange(self.n_users)
            elif ft == "people":
                if not self.n_persons:
                    continue
                v = 1 + r.randrange(self.n_persons)
            elif ft == "org":
                if not self.n_orgs:
                    continue
                v = 1 + r.randrange(self.n_orgs)
            elif ft == "double":
                v = round(r.uniform(0, 100), 2)
            else:
                continue
            out[f["key"]] = v
        return out

    # -- persons -------------------------------------------------------------------------------
    def person_summary(self, j: int) -> dict:
        b = bits(self.seed, "person", j, 0)
        add_t = _slot(j, self.n_persons, SPAN, b, self.now)
        upd = add_t + (b >> 16) % max(self.now - add_t, 1)
        deleted = (b >> 40) % 50 == 0
        return {
            "id": j,
            "add_time": add_t,
            "update_time": upd,
            "is_deleted": deleted,
            "owner_id": 1 + (b >> 48) % self.n_users,
            "org_id": 1 + (b >> 52) % self.n_orgs if self.n_orgs and (b >> 60) % 10 < 7 else None,
        }

    def person_index_row(self, j: int) -> tuple:
        s = self.person_summary(j)
        return (j, s["update_time"], s["add_time"], int(s["is_deleted"]), s["owner_id"], s["org_id"])

    def person_full_name(self, j: int | None) -> str:
        if not j:
            return "?"
        first, last = person_name(self.seed, j, "person")
        return f"{first} {last}"

    def person_record(self, j: int) -> dict:
        s = self.person_summary(j)
        r = rng(self.seed, "person", j)
        first, last = person_name(self.seed, j, "person")
        ascii_ = str.maketrans("áéíóúñÁÉÍÓÚÑ' ", "aeiounAEIOUN..")
        login = f"{first.split()[0]}.{last.split()[0]}".translate(ascii_)
        emails = []
        domain = self.org_name(s["org_id"]).split()[0].lower().translate(ascii_) + ".example" if s["org_id"] else None
        if domain:
            emails.append(
                {
                    "value": (login.lower() if r.random() < 0.7 else login) + f"@{domain}",
                    "primary": True,
                    "label": "work",
                }
            )
        for _ in range(r.randint(0 if emails else 1, 2)):
            emails.append(
                {
                    "value": f"{login.lower()}{r.randint(1, 99)}@{r.choice(EMAIL_DOMAINS_PERSONAL)}",
                    "primary": not emails,
                    "label": r.choice(["home", "other", "work"]),
                }
            )
        phones = []
        for n in range(r.randint(0, 3)):
            fmt = r.randrange(5)
            d = [r.randint(0, 9) for _ in range(9)]
            ds = "".join(map(str, d))
            value = (
                f"+34 6{ds[1:3]} {ds[3:6]} {ds[6:9]}",
                f"6{ds[1:9]}",
                f"(555) {ds[0:3]}-{ds[3:7]}",
                f"+1-555-{ds[0:3]}-{ds[3:7]}",
                f"+44 20 {ds[0:4]} {ds[4:8]}",
            )[fmt]
            phones.append({"value": value, "primary": n == 0, "label": r.choice(["work", "mobile", "home"])})
        return {
            "id": j,
            "name": f"{first} {last}",
            "first_name": first,
            "last_name": last,
            "owner_id": s["owner_id"],
            "org_id": s["org_id"],
            "add_time": s["add_time"],
            "update_time": s["update_time"],
            "emails": emails,
            "phones": phones,
            "is_deleted": s["is_deleted"],
            "visible_to": 3,
            "label_ids": [],
            "picture_id": None,
            "custom_fields": self._custom_values("person", r, s["add_time"]),
        }

    # -- organizations -------------------------------------------------------------------------
    def org_summary(self, o: int) -> dict:
        b = bits(self.seed, "org", o, 0)
        add_t = _slot(o, self.n_orgs, SPAN + 60 * DAY, b, self.now)
        upd = add_t + (b >> 16) % max(self.now - add_t, 1)
        return {
            "id": o,
            "add_time": add_t,
            "update_time": upd,
            "is_deleted": (b >> 40) % 60 == 0,
            "owner_id": 1 + (b >> 48) % self.n_users,
        }

    def org_index_row(self, o: int) -> tuple:
        s = self.org_summary(o)
        return (o, s["update_time"], s["add_time"], int(s["is_deleted"]), s["owner_id"], None)

    def org_name(self, o: int) -> str:
        b = bits(self.seed, "org:name", o)
        stem = COMPANY_STEM[b % len(COMPANY_STEM)]
        suffix = COMPANY_SUFFIX_ES if b >> 8 & 1 else COMPANY_SUFFIX_EN
        return f"{stem} {suffix[(b >> 16) % len(suffix)]}" + (f" {o}" if o > len(COMPANY_STEM) * 6 else "")

    def org_record(self, o: int) -> dict:
        s = self.org_summary(o)
        r = rng(self.seed, "org", o)
        city, country, postal = CITIES[r.randrange(len(CITIES))]
        street, number = STREETS[r.randrange(len(STREETS))], str(r.randint(1, 200))
        return {
            "id": o,
            "name": self.org_name(o),
            "owner_id": s["owner_id"],
            "add_time": s["add_time"],
            "update_time": s["update_time"],
            "is_deleted": s["is_deleted"],
            "visible_to": 3,
            "address": {
                "value": f"{street} {number}, {postal} {city}",
                "country": country,
                "locality": city,
                "route": street,
                "street_number": number,
                "postal_code": postal,
            },
            "label_ids": [],
            "website": f"https://{self.org_name(o).split()[0].lower()}.example" if r.random() < 0.6 else None,
            "linkedin": None,
            "industry": None,
            "annual_revenue": None,
            "employee_count": r.choice([None, 5, 12, 50, 250, 1200]),
            "custom_fields": self._custom_values("org", r, s["add_time"]),
        }

    # -- leads ---------------------------------------------------------------------------------
    def lead_uuid(self, n: int) -> str:
        return uuid_for(self.seed, "lead", n)

    def lead_add_time(self, n: int) -> int:
        return _slot(n, self.n_leads, LEAD_SPAN, bits(self.seed, "lead", n, 0), self.now - 20 * DAY)

    def _lead_source(self, n: int) -> str:
        b = bits(self.seed, "lead", n, 0)
        return ("Manually created", "Web forms", "Import", "API", "Live chat", "Prospector")[(b >> 20) % 6]

    def _lead_origin(self, n: int) -> str:
        return SOURCE_ORIGIN[self._lead_source(n)]

    def lead_summary(self, n: int) -> dict:
        b = bits(self.seed, "lead", n, 0)
        add_t = self.lead_add_time(n)
        upd = add_t + (b >> 24) % max(self.now - add_t, 1) // 4
        converted = n in self.deal_from_lead
        if converted:
            upd = self.deal_summary(self.deal_from_lead[n])["add_time"]
        archived = not converted and (b >> 40) % 12 == 0
        has_person = (b >> 44) % 10 < 8 or not self.n_orgs
        return {
            "n": n,
            "id": self.lead_uuid(n),
            "add_time": add_t,
            "update_time": upd,
            "is_archived": archived,
            "is_deleted": converted,
            "owner_id": 1 + (b >> 48) % self.n_users,
            "person_id": 1 + (b >> 52) % self.n_persons if has_person and self.n_persons else None,
            "organization_id": 1 + (b >> 56) % self.n_orgs if self.n_orgs and (b >> 34) & 1 else None,
        }

    def lead_index_row(self, n: int) -> tuple:
        s = self.lead_summary(n)
        return (
            n,
            s["id"],
            s["update_time"],
            s["add_time"],
            int(s["is_archived"]),
            int(s["is_deleted"]),
            s["owner_id"],
            s["person_id"],
            s["organization_id"],
        )

    def lead_record(self, n: int) -> dict:
        s = self.lead_summary(n)
        r = rng(self.seed, "lead", n)
        who = self.org_name(s["organization_id"]) if s["organization_id"] else self.person_full_name(s["person_id"])
        source = self._lead_source(n)
        labels = [x["id"] for x in r.sample(self.cat.lead_labels, r.randint(0, 2))]
        rec = {
            "id": s["id"],
            "n": n,
            "title": f"{who} lead",
            "owner_id": s["owner_id"],
            "creator_id": s["owner_id"],
            "label_ids": labels,
            "person_id": s["person_id"],
            "organization_id": s["organization_id"],
            "source_name": source,
            "origin": SOURCE_ORIGIN[source],
            "origin_id": None,
            "channel": 1 + r.randrange(len(self.cat.channels)) if r.random() < 0.4 else None,
            "channel_id": None,
            "source_deal_id": None,
            "is_archived": s["is_archived"],
            "is_deleted": s["is_deleted"],
            "was_seen": r.random() < 0.6,
            "value": {"amount": r.randint(1, 200) * 500, "currency": r.choice(CURRENCIES)}
            if r.random() < 0.6
            else None,
            "expected_close_date": iso_date(s["add_time"] + r.randint(10, 120) * DAY) if r.random() < 0.4 else None,
            "next_activity_id": None,
            "add_time": s["add_time"],
            "update_time": s["update_time"],
            "visible_to": "3",
            "custom_fields": self._custom_values("lead", r, s["add_time"]),
            "converted_deal_id": self.deal_from_lead.get(n),
        }
        return rec

    def lead_sources(self) -> list[str]:
        return list(LEAD_SOURCES)
