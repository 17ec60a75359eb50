"""A local, spec-faithful Pipedrive API for offline development, tests and benchmarks.

``Sandbox`` generates a seeded fake company (users, pipelines, persons, organizations,
deals with months of stage history, leads, custom fields of every type) and serves it
over real HTTP on loopback with Pipedrive's URL families, auth, pagination, date
formats, token-cost rate limits and injectable faults.

``Sandbox(empty=True)`` is instead a freshly created company to migrate into: users (some
sharing emails with the seeded company of the same seed), one default pipeline, no records.
Writes cover what a migration needs: v2 deals, persons, organizations, pipelines and stages;
v1 leads, notes and custom fields (v2 fields too); lead conversion.

Example::

    from crmsync.sandbox import Sandbox
    with Sandbox(seed=1, deals=200, leads=100) as sb, Sandbox(seed=1, empty=True) as target:
        r = requests.get(f"{sb.base_url}/api/v2/deals", headers={"x-api-token": sb.api_token})

Choices on points the API reference marks UNCERTAIN (pipedrive-api.md §13):

1. ``?api_token=`` is accepted on v1 and v2 (as is ``x-api-token`` and ``Authorization: Bearer``).
2. ``GET /v1/leads`` pages with nested ``additional_data.pagination`` (as the docs), not the flat schema.
3. Flow/changelog ``old_value``/``new_value`` are strings (times in v1 format); flow is newest first;
   stage and pipeline changes carry ``additional_data.old_value_formatted``/``new_value_formatted``;
   won/lost show as ``status`` plus ``won_time``/``lost_time``/``lost_reason`` changes; archiving as
   ``is_archived``, deleting as ``status`` -> ``deleted``.
4. 429 bodies are the generic error envelope; no ``Retry-After`` by default; no daily-budget header;
   the budget resets at midnight UTC; burst and budget 429s differ only by message.
5. A converted lead answers 404 on ``GET /v1/leads/{id}``; the new deal copies the lead's origin,
   channel, value, relations and custom values; no webhooks are emitted.
6. Every deal custom field also applies to leads (``leadFields`` lists them).
7. ``POST /v1/leads`` answers 201, as the spec says.
8. Deprecated v1 ``/deals``, ``/persons``... lists are not served (404), as after 2026-08-01.

Other choices: virtual time starts at 2026-10-01T00:00:00Z and moves one second per write (or with
``advance``/``simulate``); v2 ``custom_fields`` lists every key (null when unset) while v1 leads omit
unset keys; a deleted deal stays readable by id with ``is_deleted: true``; archived deals and leads
refuse edits except un-archiving; v2 ``limit`` over 500 is a 400 and v1's is clamped to 500.
"""

from .faults import FaultConfig
from .limits import RateLimitConfig
from .server import Sandbox
from .store import Store

__all__ = ["FaultConfig", "RateLimitConfig", "Sandbox", "Store"]
