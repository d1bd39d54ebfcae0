"""In-process store for one process (development, tests, the embedded default)."""

from __future__ import annotations

import time


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    @staticmethod
    def _expiry(ttl: float | None) -> float | None:
        return None if ttl is None else time.monotonic() + ttl

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._data[key] = (value, self._expiry(ttl))

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._data[key] = (value, self._expiry(ttl))
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, *, amount: int = 1, ttl: float | None = None) -> int:
        current = self._live(key)
        if current is None:
            self._data[key] = (str(amount).encode(), self._expiry(ttl))
            return amount
        value = int(current) + amount
        self._data[key] = (str(value).encode(), self._data[key][1])
        return value

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
