"""Seeded fault injection: the failures a sync must survive, on demand and reproducibly.

Kinds: ``error`` (a 500/502/503), ``storm`` (every request answers 429 for
``storm_seconds``), ``slow`` (the answer waits ``slow_seconds``), ``truncate`` (the
connection closes half way through a body whose Content-Length promised more),
``invalid_json`` (a complete response whose body is cut JSON), ``null_data``
(``{"success": true, "data": null}``). Rates are drawn from an RNG seeded with the
sandbox seed, so one sequence of requests meets the same faults on every run;
:meth:`Faults.force` queues exact faults for tests.

Example::

    >>> f = Faults(FaultConfig(), seed=1)
    >>> f.force("null_data", 1)
    >>> f.pick(now=0.0), f.pick(now=0.0)
    ('null_data', None)
"""

from __future__ import annotations

import collections
import random
import threading
from dataclasses import dataclass, fields

KINDS = ("error", "storm", "slow", "truncate", "invalid_json", "null_data")


@dataclass
class FaultConfig:
    """Probabilities per request (0..1) and durations in seconds."""

    error_rate: float = 0.0
    storm_rate: float = 0.0
    storm_seconds: float = 3.0
    slow_rate: float = 0.0
    slow_seconds: float = 1.5
    truncate_rate: float = 0.0
    invalid_json_rate: float = 0.0
    null_data_rate: float = 0.0

    def update(self, values: dict) -> None:
        names = {f.name for f in fields(self)}
        for key, v in values.items():
            if key not in names:
                raise ValueError(f"unknown fault setting: {key}")
            setattr(self, key, float(v))


class Faults:
    def __init__(self, config: FaultConfig, seed: int = 1):
        self.config = config
        self.rng = random.Random(f"faults:{seed}")
        self.lock = threading.Lock()
        self.forced: collections.deque = collections.deque()
        self.storm_until = 0.0
        self.counts: collections.Counter = collections.Counter()

    def force(self, kind: str, count: int = 1) -> None:
        """Make the next ``count`` API requests fail with ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind: {kind}")
        with self.lock:
            self.forced.extend([kind] * count)

    def pick(self, now: float) -> str | None:
        """The fault for this request, if any; ``storm`` means answer 429."""
        c = self.config
        with self.lock:
            if now < self.storm_until:
                kind = "storm"
            elif self.forced:
                kind = self.forced.popleft()
                if kind == "storm":
                    self.storm_until = now + c.storm_seconds
            else:
                u = self.rng.random()
                kind = None
                for name, rate in (
                    ("error", c.error_rate),
                    ("storm", c.storm_rate),
                    ("slow", c.slow_rate),
                    ("truncate", c.truncate_rate),
                    ("invalid_json", c.invalid_json_rate),
                    ("null_data", c.null_data_rate),
                ):
                    if u < rate:
                        kind = name
                        break
                    u -= rate
                if kind == "storm":
                    self.storm_until = now + c.storm_seconds
            if kind:
                self.counts[kind] += 1
            return kind

    def error_status(self) -> int:
        with self.lock:
            return self.rng.choice((500, 502, 503))
