"""Pipedrive's token-based rate limiting, and the per-client spend report.

Pipedrive charges every request a fixed number of tokens (the ``x-token-cost`` of its
operation in the official specs) against a daily budget shared by the whole company,
and separately caps each API token at N requests per rolling 2-second window; the
burst state is sent as ``x-ratelimit-limit/remaining/reset`` and both limits answer
429 with the error envelope. Both limits are configurable so tests can make them
tight, and every request (allowed or not) is counted per client and endpoint so a
sync's spend can be read back from ``GET /_sandbox/usage``.

Choices where the reference is UNCERTAIN: the daily budget resets at midnight UTC;
the 429 body is the generic envelope (``"Request over limit"`` for bursts,
``"Daily token budget exceeded"`` for the budget); no ``Retry-After`` header unless
``retry_after=True``; rejected (429) requests cost nothing.

Example::

    >>> lim = RateLimiter(RateLimitConfig(burst=2, daily_budget=100))
    >>> [lim.admit(user_id=1, cost=10, now=0.0).allowed for _ in range(3)]
    [True, True, False]
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field

PREMIUM_BASE = 30_000 * 5  # base tokens x Premium multiplier, per seat


@dataclass
class RateLimitConfig:
    """``burst``: requests per ``window`` seconds per token (None: off). ``daily_budget``: tokens per
    UTC day for the company (None: 30,000 x 5 (Premium) x seats, 0: unlimited)."""

    burst: int | None = 100
    window: float = 2.0
    daily_budget: int | None = None
    retry_after: bool = False


@dataclass
class Decision:
    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


class RateLimiter:
    def __init__(self, config: RateLimitConfig, seats: int = 8):
        self.config = config
        self.budget = config.daily_budget if config.daily_budget is not None else PREMIUM_BASE * seats
        self.lock = threading.Lock()
        self.windows: dict[int, collections.deque] = collections.defaultdict(collections.deque)
        self.spent = 0
        self.day = self._utc_day(time.time())

    @staticmethod
    def _utc_day(wall: float) -> int:
        return int(wall // 86400)

    def admit(self, user_id: int, cost: int, now: float | None = None, wall: float | None = None) -> Decision:
        """Charge ``cost`` tokens for one request of ``user_id`` unless a limit says no."""
        now = time.monotonic() if now is None else now
        wall = time.time() if wall is None else wall
        cfg = self.config
        with self.lock:
            day = self._utc_day(wall)
            if day != self.day:
                self.day, self.spent = day, 0
            headers: dict[str, str] = {}
            win = self.windows[user_id]
            if cfg.burst:
                while win and now - win[0] >= cfg.window:
                    win.popleft()
                reset = math.ceil(cfg.window - (now - win[0])) if win else math.ceil(cfg.window)
                if len(win) >= cfg.burst:
                    headers.update(
                        {
                            "x-ratelimit-limit": str(cfg.burst),
                            "x-ratelimit-remaining": "0",
                            "x-ratelimit-reset": str(max(reset, 1)),
                        }
                    )
                    if cfg.retry_after:
                        headers["Retry-After"] = str(max(reset, 1))
                    return Decision(False, headers, "Request over limit")
            if self.budget and self.spent + cost > self.budget:
                until_midnight = math.ceil((day + 1) * 86400 - wall)
                if cfg.burst:
                    headers.update(
                        {
                            "x-ratelimit-limit": str(cfg.burst),
                            "x-ratelimit-remaining": str(max(cfg.burst - len(win), 0)),
                            "x-ratelimit-reset": str(math.ceil(cfg.window)),
                        }
                    )
                if cfg.retry_after:
                    headers["Retry-After"] = str(until_midnight)
                return Decision(False, headers, "Daily token budget exceeded")
            self.spent += cost
            if cfg.burst:
                win.append(now)
                reset = math.ceil(cfg.window - (now - win[0]))
                headers.update(
                    {
                        "x-ratelimit-limit": str(cfg.burst),
                        "x-ratelimit-remaining": str(cfg.burst - len(win)),
                        "x-ratelimit-reset": str(max(reset, 1)),
                    }
                )
            return Decision(True, headers)

    def budget_state(self) -> dict:
        with self.lock:
            return {
                "daily_budget": self.budget or None,
                "spent_today": self.spent,
                "remaining_today": (self.budget - self.spent) if self.budget else None,
            }

    def reset(self) -> None:
        with self.lock:
            self.windows.clear()
            self.spent = 0


class Usage:
    """Requests and tokens per client (user id + User-Agent) and endpoint; never holds tokens."""

    def __init__(self):
        self.lock = threading.Lock()
        self.clients: dict[str, dict] = {}

    def record(self, user_id: int | None, agent: str, endpoint: str, status: int, tokens: int) -> None:
        key = f"user {user_id} | {agent}"
        with self.lock:
            c = self.clients.setdefault(
                key, {"user_id": user_id, "user_agent": agent, "requests": 0, "tokens": 0, "endpoints": {}}
            )
            c["requests"] += 1
            c["tokens"] += tokens
            e = c["endpoints"].setdefault(endpoint, {"requests": 0, "tokens": 0, "statuses": {}})
            e["requests"] += 1
            e["tokens"] += tokens
            e["statuses"][str(status)] = e["statuses"].get(str(status), 0) + 1

    def report(self) -> list[dict]:
        with self.lock:
            import copy

            return copy.deepcopy(sorted(self.clients.values(), key=lambda c: -c["tokens"]))

    def reset(self) -> None:
        with self.lock:
            self.clients.clear()
