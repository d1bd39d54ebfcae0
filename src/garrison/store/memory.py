"""In-process store for one process (development, tests, the embedded default).

With ``max_entries`` it is bounded: the least recently used key is dropped to make room
(the cache's memory backend); without it, nothing is evicted before its TTL.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class MemoryStore:
    name = "memory"

    def __init__(self, *, max_entries: int | None = None) -> None:
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._data)

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        if self._max_entries is not None:
            self._data.move_to_end(key)
        return value

    def _put(self, key: str, item: tuple[bytes, float | None]) -> None:
        self._data[key] = item
        if self._max_entries is not None:
            self._data.move_to_end(key)
            while len(self._data) > self._max_entries:
                self._data.popitem(last=False)

    @staticmethod
    def _expiry(ttl: float | None) -> float | None:
        return None if ttl is None else time.monotonic() + ttl

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._put(key, (value, self._expiry(ttl)))

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, (value, self._expiry(ttl)))
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, *, amount: int = 1, ttl: float | None = None) -> int:
        current = self._live(key)
        if current is None:
            self._put(key, (str(amount).encode(), self._expiry(ttl)))
            return amount
        value = int(current) + amount
        self._data[key] = (str(value).encode(), self._data[key][1])
        return value

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
