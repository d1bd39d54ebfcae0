"""The seam for queued mail: a domain calls ``queue`` in its transaction, the outbox (which
installs itself when imported) stores the message and its worker sends it. The seam sits
below the domains so that one which the outbox's router depends on (auth) can queue mail
without importing the outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.crypto import Keyring

Queue = Callable[[AsyncSession, EmailMessage, Keyring], Awaitable[str]]
_queue: Queue | None = None


class NoMailQueue(RuntimeError):
    """Mail was queued before the outbox installed its queue: it would be lost."""


def install_queue(queue_fn: Queue) -> None:
    global _queue
    _queue = queue_fn


async def queue(session: AsyncSession, *, message: EmailMessage, keyring: Keyring) -> str:
    """Queue ``message`` for sending once the caller's transaction commits; its id."""
    if _queue is None:
        raise NoMailQueue("no mail queue installed (import garrison.outbox)")
    return await _queue(session, message, keyring)
