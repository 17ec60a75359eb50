"""The HTTP side: a loopback ``ThreadingHTTPServer`` speaking Pipedrive, and :class:`Sandbox`.

Every API request goes: URL family (``/api/v1`` or ``/v1`` for v1, ``/api/v2`` for v2)
-> auth (``x-api-token`` header, ``api_token`` query or ``Authorization: Bearer``) ->
route -> fault pick -> rate limit (the route's token cost) -> handler -> serialization
(where truncation and invalid JSON are injected). Admin endpoints live under
``/_sandbox/`` (no auth, no cost, no faults): ``GET usage``, ``POST usage/reset``,
``GET info``, ``POST faults``, ``POST simulate``, ``POST advance``, ``GET truth``.
Request logging is switched off: query strings can carry ``api_token``.

Example::

    with Sandbox(seed=1, deals=200, leads=100) as sb:
        requests.get(f"{sb.base_url}/api/v2/deals", headers={"x-api-token": sb.api_token})
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from . import api
from .faults import FaultConfig, Faults
from .limits import RateLimitConfig, RateLimiter, Usage
from .store import DEFAULT_NOW, Store

UNAUTHORIZED = {
    "success": False,
    "error": "unauthorized access",
    "errorCode": 401,
    "error_info": "Please check developers.pipedrive.com",
    "data": None,
    "additional_data": None,
}


def _family(path: str) -> tuple[str | None, str]:
    for prefix, fam in (("/api/v2/", "v2"), ("/api/v1/", "v1"), ("/v1/", "v1")):
        if path.startswith(prefix):
            return fam, "/" + path[len(prefix) :].rstrip("/")
    return None, path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stalls
    server_version = "crmsync-sandbox"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - never log: URLs may hold api_token
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(
        self,
        status: int,
        body: dict | bytes,
        headers: dict | None = None,
        truncate: bool = False,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if truncate:
            self.wfile.write(raw[: len(raw) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(raw)

    def _dispatch(self, method: str) -> None:
        sb: Sandbox = self.server.sandbox  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        raw = self._read_body()
        if parts.path.startswith("/_sandbox/"):
            status, body = sb.admin(method, parts.path[len("/_sandbox/") :], query, raw)
            self._send(status, body)
            return
        family, path = _family(parts.path)
        agent = self.headers.get("User-Agent", "-")
        token = self.headers.get("x-api-token") or query.pop("api_token", None)
        auth = self.headers.get("Authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        user_id = sb.store.catalog.tokens.get(token or "")
        endpoint = f"{method} {parts.path}"
        if family is None:
            self._send(404, api.error_body("Unknown method ."))
            sb.usage.record(user_id, agent, endpoint, 404, 0)
            return
        if user_id is None:
            sb.usage.record(None, agent, endpoint, 401, 0)
            self._send(401, UNAUTHORIZED)
            return
        route, params, other = api.route(method, family, path)
        if route is None:
            status = 405 if other else 404
            self._send(status, api.error_body("Method not allowed" if other else "Unknown method ."))
            sb.usage.record(user_id, agent, endpoint, status, 0)
            return
        endpoint = f"{method} /{'api/' if parts.path.startswith('/api/') else ''}{family}{route.pattern}"
        fault = sb.faults.pick(time.monotonic())
        if fault == "storm":
            headers = {
                "x-ratelimit-limit": str(sb.limiter.config.burst or 0),
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": "2",
            }
            sb.usage.record(user_id, agent, endpoint, 429, 0)
            self._send(429, api.error_body("Request over limit"), headers)
            return
        if fault == "error":
            status = sb.faults.error_status()
            sb.usage.record(user_id, agent, endpoint, status, 0)
            if status == 500:
                self._send(500, api.error_body("Internal server error"))
            else:
                html = f"<html><body><h1>{status}</h1>Sandbox injected gateway error</body></html>".encode()
                self._send(status, html, content_type="text/html")
            return
        decision = sb.limiter.admit(user_id, route.cost)
        if not decision.allowed:
            sb.usage.record(user_id, agent, endpoint, 429, 0)
            self._send(429, api.error_body(decision.error), decision.headers)
            return
        if fault == "slow":
            time.sleep(sb.faults.config.slow_seconds)
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            status, out = 400, api.error_body("Request body must be a JSON object")
        else:
            call = api.Call(sb.store, query, body, user_id, params, sb.ctx)
            try:
                status, out = route.handler(call)
            except api.ApiError as exc:
                status, out = exc.status, exc.body
            except ValueError:  # e.g. a non-numeric id in the path
                status, out = 404, api.error_body("Entity was not found", "Object was not found.")
        sb.usage.record(user_id, agent, endpoint, status, route.cost)
        if fault == "null_data" and status < 300:
            out = {"success": True, "data": None, "additional_data": None}
        if fault == "invalid_json":
            text = json.dumps(out, ensure_ascii=False).encode()
            self._send(status, text[: max(len(text) // 2, 1)], decision.headers)
            return
        self._send(status, out, decision.headers, truncate=fault == "truncate")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Sandbox:
    """A running fake Pipedrive company on 127.0.0.1; a context manager for tests.

    ``deals``/``persons``/``orgs``/``leads`` size the generated data (persons, orgs and
    leads default to a share of deals); ``rate_limit`` and ``faults`` take the configs
    of :mod:`~crmsync.sandbox.limits` and :mod:`~crmsync.sandbox.faults`; ``wait`` blocks
    until the filter index is built (``False`` serves at once, see the store docstring).

    ``empty=True`` serves a freshly created company instead of the seeded one, as the target
    of a migration: users (three share name and email with users 1-3 of the seeded company
    of the same seed, under ids 2-4), one default pipeline with five stages, Pipedrive's
    default lead labels, no custom fields and no records; the size arguments are ignored.
    Its API tokens differ from the seeded company's, so each company answers only its own.
    See :meth:`crmsync.sandbox.catalog.Catalog.build_empty`.
    """

    def __init__(
        self,
        seed: int = 1,
        deals: int = 200,
        persons: int | None = None,
        orgs: int | None = None,
        leads: int | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        now: int = DEFAULT_NOW,
        rate_limit: RateLimitConfig | None = None,
        faults: FaultConfig | None = None,
        wait: bool = True,
        conversion_delay: float = 0.2,
        empty: bool = False,
    ):
        self.store = Store(
            seed=seed, deals=deals, persons=persons, orgs=orgs, leads=leads, now=now, background=True, empty=empty
        )
        self.limiter = RateLimiter(rate_limit or RateLimitConfig(), seats=len(self.store.catalog.users))
        self.faults = Faults(faults or FaultConfig(), seed)
        self.usage = Usage()
        self.ctx = {"conversion_delay": conversion_delay}
        self.host, self.port = host, port
        self._wait = wait
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Sandbox:
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.sandbox = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sandbox-http", daemon=True)
        self._thread.start()
        if self._wait:
            self.store.wait_ready()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until interrupted (the CLI's ``serve``)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_token(self) -> str:
        """The admin user's (user 1) token; other users' tokens are in :attr:`tokens`."""
        return next(t for t, uid in self.store.catalog.tokens.items() if uid == 1)

    @property
    def tokens(self) -> dict[int, str]:
        return {uid: t for t, uid in self.store.catalog.tokens.items()}

    # -- admin ---------------------------------------------------------------------------------
    def usage_report(self) -> dict:
        return {
            "budget": self.limiter.budget_state(),
            "clients": self.usage.report(),
            "faults": dict(self.faults.counts),
        }

    def simulate(self, events: int = 20, hours: float = 24.0) -> list[dict]:
        from .simulate import simulate

        return simulate(self.store, events=events, hours=hours)

    def advance(self, seconds: int) -> int:
        return self.store.advance(seconds)

    def export_truth(self) -> dict:
        from .truth import export_truth

        return export_truth(self.store)

    def admin(self, method: str, path: str, query: dict, raw: bytes) -> tuple[int, dict]:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"success": False, "error": "body must be JSON"}
        st = self.store
        try:
            if method == "GET" and path == "usage":
                return 200, self.usage_report()
            if method == "POST" and path == "usage/reset":
                self.usage.reset()
                self.limiter.reset()
                return 200, {"success": True}
            if method == "GET" and path == "info":
                return 200, {
                    "seed": st.seed,
                    "empty": st.empty,
                    "sizes": st.sizes,
                    "now": st.now,
                    "index_ready": st.ready.is_set(),
                    "users": len(st.catalog.users),
                }
            if method == "POST" and path == "faults":
                if "kind" in body:
                    self.faults.force(body["kind"], int(body.get("count", 1)))
                self.faults.config.update(body.get("config", {}))
                return 200, {"success": True}
            if method == "POST" and path == "simulate":
                changes = self.simulate(int(body.get("events", 20)), float(body.get("hours", 24)))
                return 200, {"success": True, "now": st.now, "changes": changes}
            if method == "POST" and path == "advance":
                return 200, {"success": True, "now": self.advance(int(body.get("seconds", 0)))}
            if method == "GET" and path == "truth":
                return 200, self.export_truth()
        except (ValueError, TypeError) as exc:
            return 400, {"success": False, "error": str(exc)}
        return 404, {"success": False, "error": "unknown admin endpoint"}
