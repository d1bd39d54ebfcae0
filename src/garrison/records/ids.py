"""Record ids: UUIDv7 (RFC 9562) — time-ordered, so new rows append to the primary-key
B-tree, and 74 random bits, so ids cannot be guessed or enumerated."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def uuid7() -> str:
    """A UUIDv7 string; ids made in one process are strictly increasing."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        rand = int.from_bytes(os.urandom(10), "big") & ((1 << 74) - 1)
        if ms <= _last_ms:
            # Same (or earlier) millisecond: keep the clock, step the random part so ids
            # stay monotonic without leaking a counter.
            ms = _last_ms
            rand = (_last_rand + 1 + (rand & 0xFFFF)) & ((1 << 74) - 1)
        _last_ms, _last_rand = ms, rand
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (rand >> 62) << 64  # 12 bits rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # 62 bits rand_b
    return str(uuid.UUID(int=value))


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
