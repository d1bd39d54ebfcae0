"""Per-process cache of collection definitions and their ``Table`` objects.

Every records request needs its collection's table; building it from the registry row costs
a query and some milliseconds. Entries live ``TTL`` seconds; a schema change made by this
process drops its entry at once, and one made by another process is seen within ``TTL``
(a query that fails on a stale table drops the entry and is retried once by the caller).
"""

from __future__ import annotations

import time

from garrison.records import registry
from garrison.records.registry import Collection, Executor

TTL = 2.0


class CollectionCache:
    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Collection]] = {}

    async def get(self, session: Executor, name: str) -> Collection:
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is not None:
            if now - entry[0] < self.ttl:
                return entry[1]
            # Expired: one cheap query says whether the definition moved on. Keeping the same
            # Table object while it has not keeps SQLAlchemy's compiled statements cached.
            if await registry.stamp_of(session, name=name) == entry[1].stamp:
                self._entries[name] = (now, entry[1])
                return entry[1]
        collection = await registry.get_collection(session, name=name)
        self._entries[name] = (now, collection)
        return collection

    def put(self, collection: Collection) -> None:
        self._entries[collection.name] = (time.monotonic(), collection)

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)
