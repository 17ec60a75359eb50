"""HTTP client for Pipedrive: retries, pacing, token accounting, budget stop.

Why a client of its own: every request costs tokens from a company-wide daily budget
(the ``x-token-cost`` of its operation) and counts against a per-token 2-second burst
window, and Pipedrive answers clients that keep hammering after 429s with a 403 from its
CDN. So this client

* sends the API token only in the ``x-api-token`` header (never the query string, so
  URLs in exceptions and logs carry no secret), and scrubs it from any message anyway;
* retries 429, 5xx, connection errors, truncated bodies, invalid JSON and
  ``data: null`` list pages with tenacity, waiting ``Retry-After`` or
  ``x-ratelimit-reset`` when the server says how long, else exponential back-off;
* paces itself: once ``x-ratelimit-limit`` is known it spaces requests at 90% of that
  rate per 2-second window, and when ``x-ratelimit-remaining`` still drops to a reserve
  it waits for the window to reset instead of running into 429s (``requests_per_2s``
  caps it further);
* counts requests and tokens per endpoint from the cost table below and raises
  :class:`~crmsync.errors.BudgetExhausted` *before* a request that would exceed the
  configured token budget.

Example::

    >>> c = PipedriveClient("https://example.pipedrive.com", "secret")   # doctest: +SKIP
    >>> c.get("v2", "/deals", {"limit": 500})["data"]                      # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from crmsync.errors import (
    AuthError,
    BudgetExhausted,
    ConfigError,
    RecordNotFound,
    RemoteError,
    WriteOutcomeUnknown,
    WriteRejected,
)

#: x-token-cost per (API family, path pattern), copied from the official OpenAPI specs
#: (shared/specs/pipedrive; pipedrive-api.md §10). Unknown endpoints are charged 20.
COSTS: dict[tuple[str, str], int] = {
    ("v2", "/deals"): 10,
    ("v2", "/deals/archived"): 20,
    ("v2", "/deals/{id}"): 1,
    ("v2", "/persons"): 10,
    ("v2", "/organizations"): 10,
    ("v2", "/pipelines"): 5,
    ("v2", "/stages"): 5,
    ("v2", "/dealFields"): 10,
    ("v2", "/personFields"): 10,
    ("v2", "/organizationFields"): 10,
    ("v1", "/leads"): 20,
    ("v1", "/leads/archived"): 40,
    ("v1", "/leads/{id}"): 2,
    ("v1", "/leadLabels"): 10,
    ("v1", "/leadSources"): 2,
    ("v1", "/leadFields"): 20,
    ("v1", "/dealFields"): 20,
    ("v1", "/users"): 20,
    ("v1", "/deals/{id}/flow"): 40,
    ("v1", "/deals/{id}/changelog"): 20,
}
#: x-token-cost of writes per (method, API family, path pattern), from the same specs.
WRITE_COSTS: dict[tuple[str, str, str], int] = {
    **{("POST", "v2", f"/{e}"): 5 for e in ("deals", "persons", "organizations", "pipelines", "stages")},
    **{("PATCH", "v2", f"/{e}/{{id}}"): 5 for e in ("deals", "persons", "organizations", "pipelines", "stages")},
    **{("DELETE", "v2", f"/{e}/{{id}}"): 3 for e in ("deals", "persons", "organizations", "pipelines", "stages")},
    **{("POST", "v2", f"/{e}Fields"): 5 for e in ("deal", "person", "organization")},
    **{("DELETE", "v2", f"/{e}Fields/{{id}}"): 3 for e in ("deal", "person", "organization")},
    ("POST", "v1", "/leads"): 10,
    ("PATCH", "v1", "/leads/{id}"): 10,
    ("DELETE", "v1", "/leads/{id}"): 6,
    ("POST", "v1", "/notes"): 10,
    ("PUT", "v1", "/notes/{id}"): 10,
    ("DELETE", "v1", "/notes/{id}"): 6,
}
DEFAULT_COST = 20
USER_AGENT = "crmsync-pipedrive/0.1"
_ID_SEGMENT = re.compile(r"/(\d+|[0-9a-f]{40}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=/|$)")


def endpoint_pattern(path: str) -> str:
    """``/deals/17/changelog`` -> ``/deals/{id}/changelog`` (the cost table's key)."""
    return _ID_SEGMENT.sub("/{id}", path)


def cost_of(family: str, path: str, method: str = "GET") -> int:
    if method != "GET":
        return WRITE_COSTS.get((method, family, endpoint_pattern(path)), DEFAULT_COST)
    return COSTS.get((family, endpoint_pattern(path)), DEFAULT_COST)


class NotFound(RecordNotFound):
    """The API answered 404 for one object (e.g. a deal purged since it was listed)."""


Rejected = WriteRejected
OutcomeUnknown = WriteOutcomeUnknown


class _Retry(Exception):
    """A failure worth another attempt; ``wait`` is what the server asked for (seconds)."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


@dataclass
class Usage:
    requests: int = 0
    tokens: int = 0
    retries: int = 0
    endpoints: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, label: str, tokens: int) -> None:
        self.requests += 1
        self.tokens += tokens
        e = self.endpoints.setdefault(label, {"requests": 0, "tokens": 0})
        e["requests"] += 1
        e["tokens"] += tokens


def normalize_base_url(base_url: str) -> str:
    base = base_url.strip().rstrip("/")
    for suffix in ("/api/v2", "/api/v1", "/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"base_url must start with https:// (e.g. https://yourcompany.pipedrive.com), got {base!r}")
    return base


class PipedriveClient:
    """Pipedrive client: ``get`` for syncs, ``send`` for pushes. Not thread-safe; one per run."""

    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
        max_wait: float = 60.0,
        backoff: float = 0.5,
        token_budget: int | None = None,
        requests_per_2s: int | None = None,
        where: str = "sources.pipedrive",
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base_url = normalize_base_url(base_url)
        self._token = api_token
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.backoff = backoff
        self.token_budget = token_budget
        self.requests_per_2s = requests_per_2s
        self.where = where
        self.session = session or requests.Session()
        self.session.headers.update({"x-api-token": api_token, "Accept": "application/json", "User-Agent": USER_AGENT})
        self._sleep, self._clock = sleep, clock
        self._not_before = 0.0
        self._last_start = -1e9
        self._interval = 0.0
        self._recent: deque[float] = deque()
        self.usage = Usage()

    # -- public --------------------------------------------------------------------------------
    def url(self, family: str, path: str) -> str:
        return f"{self.base_url}/api/{family}{path}"

    def get(self, family: str, path: str, params: dict[str, Any] | None = None, *, expect_list: bool = True) -> dict:
        """One GET, retried; returns the parsed envelope (``success`` checked, ``data`` a list if expected)."""
        return self._call("GET", family, path, params, None, expect_list)

    def send(self, method: str, family: str, path: str, body: dict[str, Any] | None = None) -> dict:
        """One write (POST/PATCH/PUT/DELETE); returns the envelope.

        Retries what is safe to retry: 429s (refused before processing), connections that never
        opened, and — for PATCH/PUT/DELETE, which are idempotent — 5xx and timeouts. A POST that
        may have been processed raises :class:`OutcomeUnknown` instead of risking a duplicate.
        Refusals (400/403/409/422) raise :class:`Rejected` with the API's message.
        """
        return self._call(method, family, path, None, body, False)

    def _call(self, method: str, family: str, path: str, params: dict[str, Any] | None,
              json_body: dict[str, Any] | None, expect_list: bool) -> dict:
        label = f"{method} /api/{family}{endpoint_pattern(path)}"
        cost = cost_of(family, path, method)
        if self.token_budget is not None and self.usage.tokens + cost > self.token_budget:
            raise BudgetExhausted(
                f"{self.where}: token budget of {self.token_budget} reached after {self.usage.tokens} tokens "
                f"({self.usage.requests} requests); the next request ({label}) costs {cost}. "
                "Everything before it is saved; re-run (or raise token_budget) to resume"
            )
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    body = self._once(method, family, path, params, json_body, label, expect_list)
        except (Rejected, NotFound, OutcomeUnknown):
            self.usage.add(label, cost)  # answered (or maybe processed): the tokens are spent
            raise
        except _Retry as exc:
            raise RemoteError(self._scrub(f"{label}: {exc} (gave up after {self.max_attempts} attempts; "
                                          "re-run later — committed data and cursors are kept)")) from None
        self.usage.add(label, cost)
        return body

    # -- internals -----------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _count_retry(self, state: RetryCallState) -> None:
        self.usage.retries += 1

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.wait is not None:
            return min(exc.wait, self.max_wait)
        return min(self.backoff * 2 ** (state.attempt_number - 1), 30.0)

    def _pace(self) -> None:
        now = self._clock()
        if self._interval and now < self._last_start + self._interval:
            self._not_before = max(self._not_before, self._last_start + self._interval)
        if now < self._not_before:
            self._sleep(self._not_before - now)
        self._last_start = self._clock()
        if self.requests_per_2s:
            now = self._clock()
            while self._recent and now - self._recent[0] >= 2.0:
                self._recent.popleft()
            if len(self._recent) >= self.requests_per_2s:
                self._sleep(max(2.0 - (now - self._recent[0]), 0.0))
            self._recent.append(self._clock())

    def _note_limits(self, headers: Any) -> None:
        """Stay below the burst limit: when few requests are left in the window, wait for its reset."""
        try:
            remaining = int(headers.get("x-ratelimit-remaining"))
            limit = int(headers.get("x-ratelimit-limit"))
            reset = float(headers.get("x-ratelimit-reset"))
        except (TypeError, ValueError):
            return
        if limit > 0:
            # spread requests evenly at 90% of the documented 2-second window's limit
            self._interval = 2.0 / (limit * 0.9)
        if remaining <= max(1, limit // 10):
            self._not_before = max(self._not_before, self._clock() + min(reset, self.max_wait))

    @staticmethod
    def _server_wait(headers: Any) -> float | None:
        for name in ("Retry-After", "x-ratelimit-reset"):
            v = headers.get(name)
            if v is None:
                continue
            try:
                return max(float(v), 0.0)
            except ValueError:
                continue
        return None

    def _once(self, method: str, family: str, path: str, params: dict | None, json_body: dict | None,
              label: str, expect_list: bool) -> dict:
        self._pace()
        creating = method == "POST"
        try:
            r = self.session.request(method, self.url(family, path), params=params, json=json_body,
                                     timeout=self.timeout)
        except requests.exceptions.ConnectTimeout:
            raise _Retry("connection failed (ConnectTimeout)") from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            if creating and not _never_sent(exc):
                raise OutcomeUnknown(f"{label}: no complete answer ({type(exc).__name__}); the object may exist "
                                     "now — the next run looks it up by its crmsync key before creating") from None
            raise _Retry(f"connection failed ({type(exc).__name__})") from None
        except requests.RequestException as exc:  # invalid URL and the like: not worth retrying
            raise RemoteError(self._scrub(f"{label}: request failed ({type(exc).__name__})")) from None
        self._note_limits(r.headers)
        status = r.status_code
        if status == 401:
            raise AuthError(f"{self.where}.api_token: Pipedrive refused the API token (HTTP 401 on {label}); "
                            "copy a current token from Pipedrive > Personal preferences > API")
        if status == 429:
            wait = self._server_wait(r.headers)
            message = _error_text(r)
            if "budget" in message.lower() or (wait is not None and wait > self.max_wait):
                raise BudgetExhausted(self._scrub(
                    f"{label}: Pipedrive's daily token budget is exhausted ({message or 'HTTP 429'}); "
                    "re-run after it resets — committed data and cursors are kept"))
            raise _Retry(f"rate limited (HTTP 429: {message or 'no message'})", wait=wait)
        if status >= 500 and creating:
            raise OutcomeUnknown(f"{label}: HTTP {status} after the body was sent; the object may exist now — "
                                 "the next run looks it up by its crmsync key before creating")
        if status >= 500:
            raise _Retry(f"server error HTTP {status}", wait=self._server_wait(r.headers) if status == 503 else None)
        if status == 403 and "html" in r.headers.get("Content-Type", ""):
            raise RemoteError(f"{label}: HTTP 403 from Pipedrive's CDN (too many requests); wait before re-running")
        if status == 404 and method in ("PATCH", "PUT", "DELETE"):  # the record is gone: one row, not the run
            text = self._scrub(_error_text(r) or r.reason)
            raise Rejected(f"{label}: HTTP 404: {text}", status, text)
        if status == 404:
            raise NotFound(self._scrub(f"{label}: not found (HTTP 404: {_error_text(r)})"))
        if method != "GET" and status in (400, 403, 405, 409, 422):
            text = self._scrub(_error_text(r) or r.reason)
            raise Rejected(f"{label}: HTTP {status}: {text}", status, text)
        if status >= 400:
            raise RemoteError(self._scrub(f"{label}: HTTP {status}: {_error_text(r) or r.reason}"))
        try:
            body = r.json()
        except ValueError:
            raise _Retry("response body is not complete JSON (truncated?)") from None
        if not isinstance(body, dict):
            raise _Retry("response body is not a JSON object")
        if body.get("success") is False:
            raise RemoteError(self._scrub(f"{label}: Pipedrive answered success=false: {body.get('error')}"))
        if expect_list:
            data = body.get("data")
            if data is None:
                if not body.get("additional_data"):
                    # {"success": true, "data": null, "additional_data": null}: a glitch, not an empty page
                    raise _Retry("list answered data: null without pagination")
                body["data"] = []
            elif not isinstance(data, list):
                raise _Retry("list answered a non-list data")
        return body


def _never_sent(exc: Exception) -> bool:
    """True when the connection failed before any byte of the request left (safe to retry a POST)."""
    text = repr(exc)
    return any(s in text for s in ("NewConnectionError", "Connection refused", "Name or service not known"))


def _error_text(r: requests.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or "")[:200]
    return ""
