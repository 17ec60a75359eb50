"""Lead→deal links from association lists (HubSpot-style exports): explicit evidence, with reasons and conflicts.

Why: HubSpot records no "converted" flag or id. What it records are associations: a Leads-object row
lists its deals ("Associated Deal IDs" → ``lead.deal_ids``) and a deal lists its contacts ("Associated
Contact IDs" → ``deal.person_ids``). Both are facts the CRM holds, so they are explicit links:

* a deal in the lead's own ``deal_ids`` is linked, whatever else is known;
* a lead with no deal associations of its own is linked to the deals associated with its contact
  (``lead.person_id`` in ``deal.person_ids``), except deals created before the lead (an older deal of
  the same contact did not come from it) and except when the lead is unqualified/archived, which is
  recorded as a conflict instead of a link.

Contradictions become conflicts: a lead's associated deal whose contacts do not include the lead's
contact (``association_contact_mismatch``), and a deal for the contact of a disqualified lead
(``deal_for_contact_of_closed_lead``). Several deals for one lead, or one deal for several leads,
are found later with every other link (:func:`crmsync.reconcile.conversions._conflicts`).

Only list fields are read (``deal_ids``, ``person_ids``): a deal's single ``person_id`` (Pipedrive,
Salesforce) is not an association list and never links anything here.

Example::

    >>> links, conflicts = association_links(leads, deals)          # doctest: +SKIP
    >>> links[0]
    (('hubspot', '8001'), ('hubspot', '9001234567'), "lead associated with the deal (lead.deal_ids)")
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

#: Lead statuses that say the lead did not convert: a contact's deal is not linked to such a lead.
CLOSED_STATUSES = frozenset({"unqualified", "archived"})

Key = tuple[str, str]


def association_links(
    leads: dict[Key, Any], deals: dict[Key, Any], *, when: Callable[[str | None], datetime | None],
    lead_cols: dict[str, int], deal_cols: dict[str, int],
) -> tuple[list[tuple[Key, Key, str]], list[tuple[str, str, str, str, str]]]:
    """``(lead, deal, reason)`` links and ``(kind, entity, source, source_id, detail)`` conflicts.

    ``leads``/``deals`` are rows keyed by ``(source, source_id)``; ``*_cols`` say where each needed
    column is in a row (``deal_ids``, ``person_id``, ``status``, ``add_time`` for leads; ``person_ids``,
    ``add_time`` for deals); ``when`` reads a stored time.
    """
    l_ids, l_person, l_status, l_added = (lead_cols[c] for c in ("deal_ids", "person_id", "status", "add_time"))
    d_people, d_added = deal_cols["person_ids"], deal_cols["add_time"]
    contacts: dict[Key, list[str]] = {key: _ids(d[d_people]) for key, d in deals.items() if d[d_people]}
    by_contact: dict[Key, list[Key]] = defaultdict(list)
    for key, people in contacts.items():
        for person in people:
            by_contact[(key[0], person)].append(key)

    links: list[tuple[Key, Key, str]] = []
    conflicts: list[tuple[str, str, str, str, str]] = []
    for key, lead in leads.items():
        source, person = key[0], lead[l_person]
        direct = _ids(lead[l_ids])
        for deal_id in direct:
            deal_key = (source, deal_id)
            links.append((key, deal_key, "lead associated with the deal (lead.deal_ids)"))
            people = contacts.get(deal_key)
            if person and people:
                if person in people:
                    links.append((key, deal_key, f"deal associated with the lead's contact {person} (deal.person_ids)"))
                else:
                    conflicts.append(("association_contact_mismatch", "lead", *key,
                                      f"associated deal {deal_id} is associated with contacts {', '.join(people)}, "
                                      f"not with the lead's contact {person}"))
        if direct or not person:
            continue
        lead_at = when(lead[l_added])
        for deal_key in sorted(by_contact.get((source, person), ())):
            deal_at = when(deals[deal_key][d_added])
            if lead_at and deal_at and deal_at < lead_at:
                continue  # an older deal of the same contact
            if lead[l_status] in CLOSED_STATUSES:
                conflicts.append(("deal_for_contact_of_closed_lead", "lead", *key,
                                  f"deal {deal_key[1]} is associated with the lead's contact {person} but the lead "
                                  f"is {lead[l_status]}: not linked"))
                continue
            links.append((key, deal_key, f"deal associated with the lead's contact {person} (deal.person_ids); the "
                                         "lead has no deal associations of its own"))
    return links, conflicts


def _ids(stored: str | list[str] | None) -> list[str]:
    """A stored id list (JSON text in the warehouse) as a list; ``None``/empty gives ``[]``."""
    if not stored:
        return []
    return json.loads(stored) if isinstance(stored, str) else list(stored)
