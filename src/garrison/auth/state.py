"""Each process's copy of the users' authorisation state: status, token generation, roles
and the permissions those roles hold, by user id.

Every authenticated request needs that state, and it changes rarely; reading it from the
database each time was the request path's most expensive step after the record itself.
The copy is kept exact by change notices (``garrison.store.notices``): the services that
change a user's status, generation (logout everywhere, password change, disable) or roles,
or a role's permissions, mark their transaction, and once it commits this process drops
the entry at once and every other process when the notice arrives. The copy is used only
while the notice bus is live, and it is emptied whenever the bus (re)subscribes; an entry
also expires after ``auth.state_cache_seconds``, which bounds a change made where no notice
can come from (a hand-edited row).

A load that started before a notice must not store what it read: each notice advances an
epoch, and a load stores its result only if the epoch has not moved since it began.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.store.notices import NoticeBus, mark

USER_TOPIC = "auth.user"  # key: the user id
ROLES_TOPIC = "auth.roles"  # a role's permissions changed, or it was deleted: every user
_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class UserState:
    status: str
    generation: int
    roles: tuple[str, ...]
    permissions: frozenset[str]


def user_changed(session: AsyncSession, user_id: str) -> None:
    """Mark ``session``: the user's status, generation or roles change in it."""
    mark(session, USER_TOPIC, user_id)


def roles_changed(session: AsyncSession) -> None:
    """Mark ``session``: a role's permissions change in it (or a role goes)."""
    mark(session, ROLES_TOPIC)


class UserStateCache:
    def __init__(self, bus: NoticeBus | None, *, ttl: float) -> None:
        self.bus = bus
        self.ttl = ttl
        self._entries: dict[str, tuple[float, UserState | None]] = {}
        self.epoch = 0
        if bus is not None:
            bus.on(USER_TOPIC, self.forget, self.clear)
            bus.on(ROLES_TOPIC, lambda _key: self.clear(), self.clear)

    @property
    def usable(self) -> bool:
        return self.ttl > 0 and self.bus is not None and self.bus.live

    def get(self, user_id: str) -> tuple[bool, UserState | None]:
        """``(True, state)`` when this process's copy may answer (``None``: no such user)."""
        if not self.usable:
            return False, None
        entry = self._entries.get(user_id)
        if entry is None or time.monotonic() - entry[0] >= self.ttl:
            return False, None
        return True, entry[1]

    def put(self, user_id: str, state: UserState | None, *, epoch: int) -> None:
        """Keep what a load read, unless a notice arrived since it began (``epoch``)."""
        if not self.usable or epoch != self.epoch:
            return
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[user_id] = (time.monotonic(), state)

    def forget(self, user_id: str) -> None:
        self.epoch += 1
        self._entries.pop(user_id, None)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
