"""Deterministic randomness addressed by ``(seed, kind, id)`` instead of by call order.

The sandbox must serve a million deals without generating them up front, so every
record is derived from a hash of its own coordinates: deal 734211 looks the same
whether it is the first record asked for or the last, and whichever thread asks.
``bits`` is a splitmix64 finaliser (cheap enough to run 1M times at start-up for the
filter index); ``rng`` gives a full :class:`random.Random` for the details of one
record, which are only built when a page needs them.

Example::

    >>> bits(1, "deal", 7) == bits(1, "deal", 7)
    True
    >>> rng(1, "deal", 7).random() == rng(1, "deal", 7).random()
    True
"""

from __future__ import annotations

import random
import uuid
import zlib

_M = (1 << 64) - 1


_SALTS: dict[str, int] = {}


def _kind_salt(kind: str) -> int:
    salt = _SALTS.get(kind)
    if salt is None:
        salt = _SALTS[kind] = zlib.crc32(kind.encode()) * 0x2545F4914F6CDD1D & _M
    return salt


def mix64(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit value for any integer."""
    z = (x * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return z ^ (z >> 31)


def bits(seed: int, kind: str, ident: int, lane: int = 0) -> int:
    """64 random-looking bits for one record (``lane`` gives independent streams)."""
    return mix64((seed * 0x100000001B3) ^ _kind_salt(kind) ^ (ident << 8) ^ lane)


def rng(seed: int, kind: str, ident: int) -> random.Random:
    """A private :class:`random.Random` for one record's details."""
    return random.Random(bits(seed, kind, ident, 255))


def hex40(seed: int, label: str) -> str:
    """A stable 40-hex key, the shape Pipedrive uses for custom-field keys and tokens."""
    parts = [bits(seed, label, i, 17) for i in range(3)]
    return "".join(f"{p:016x}" for p in parts)[:40]


def uuid_for(seed: int, kind: str, ident: int) -> str:
    """A stable version-4-shaped UUID (lead ids, label ids, conversion ids)."""
    hi, lo = bits(seed, kind, ident, 1), bits(seed, kind, ident, 2)
    return str(uuid.UUID(int=(hi << 64) | lo, version=4))
