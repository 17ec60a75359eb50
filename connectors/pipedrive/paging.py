"""Page iterators: v2 cursor paging, v1 offset paging, and v1 leads by moving ``updated_since``.

Why three: v2 lists page with an opaque ``cursor`` (keyset: robust to records changing
while we page); v1 lists page by ``start`` offset, which skips a record whenever an earlier
one leaves the result set mid-listing (a lead converted or deleted while we page). For
``/v1/leads``, which accepts ``updated_since``, :func:`v1_keyset_pages` therefore pages by
moving ``updated_since`` to the last ``update_time`` seen (ids already seen are dropped),
which no deletion can shift. Page size is 500, Pipedrive's maximum.

Example::

    >>> for page in v2_pages(client, "/deals", {"sort_by": "update_time"}):   # doctest: +SKIP
    ...     handle(page)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .client import PipedriveClient

PAGE_SIZE = 500


def v2_pages(client: PipedriveClient, path: str, params: dict[str, Any] | None = None,
             page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
    cursor = None
    while True:
        p = {**(params or {}), "limit": page_size}
        if cursor:
            p["cursor"] = cursor
        body = client.get("v2", path, p)
        yield body["data"]
        cursor = (body.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            return


def _more(additional: dict | None) -> tuple[bool, int | None]:
    """(more_items, next_start) from nested ``pagination`` or the flat form some v1 schemas declare."""
    a = additional or {}
    p = a.get("pagination") if isinstance(a.get("pagination"), dict) else a
    return bool(p.get("more_items_in_collection")), p.get("next_start")


def v1_pages(client: PipedriveClient, path: str, params: dict[str, Any] | None = None,
             page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
    start = 0
    while True:
        body = client.get("v1", path, {**(params or {}), "start": start, "limit": page_size})
        data = body["data"]
        yield data
        more, next_start = _more(body.get("additional_data"))
        if not more or not data:
            return
        start = next_start if isinstance(next_start, int) and next_start > start else start + len(data)


def v1_keyset_pages(client: PipedriveClient, path: str, since: str | None,
                    page_size: int = PAGE_SIZE, params: dict[str, Any] | None = None) -> Iterator[list[dict]]:
    """Pages of ``path`` sorted by ``update_time ASC``, paged by moving ``updated_since``.

    Yields only records not yielded before in this listing. ``since`` is an ISO time or None.
    If a whole page shares one ``update_time`` (no progress), it falls back to offsets for that time.
    """
    seen: set[str] = set()
    start = 0
    while True:
        p: dict[str, Any] = {**(params or {}), "sort": "update_time ASC", "limit": page_size, "start": start}
        if since:
            p["updated_since"] = since
        body = client.get("v1", path, p)
        data = body["data"]
        fresh = [x for x in data if str(x.get("id")) not in seen]
        seen.update(str(x.get("id")) for x in fresh)
        if fresh:
            yield fresh
        more, _ = _more(body.get("additional_data"))
        if not more or not data:
            return
        last = data[-1].get("update_time")
        if last and last != since:
            since, start = last, 0
            seen = {str(x.get("id")) for x in data if x.get("update_time") == last}
        else:
            start += len(data)
