"""The store protocol shared by the memory and Redis implementations."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class StoreUnavailable(Exception):
    """The backing service did not answer; callers decide whether to fail open or closed."""


@runtime_checkable
class KeyValueStore(Protocol):
    """Bytes in, bytes out, keys namespaced by the caller. TTLs are in seconds."""

    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Store only when the key is missing; True when this call stored it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, *, amount: int = 1, ttl: float | None = None) -> int:
        """Add to a counter, creating it at 0; ``ttl`` is set when the counter is created."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` when the backing service does not answer."""
        ...

    async def close(self) -> None: ...
