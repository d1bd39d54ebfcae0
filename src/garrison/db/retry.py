"""Retry an idempotent unit of work when the database reports a transient failure.

Transient: MySQL/MariaDB deadlock (1213), lock wait timeout (1205), too many connections
(1040), server shutting down (1053), connection killed (1927), lost or refused connection
(2002, 2003, 2006, 2013, 2055, 4031), and SQLite's "database is locked". The unit of work must
be safe to run again from the start: it gets a fresh session and transaction each attempt.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.log import get_logger

T = TypeVar("T")

TRANSIENT_MYSQL_CODES = frozenset(
    {1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055, 4031}
)
log = get_logger(__name__)


def mysql_error_code(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def is_transient(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    code = mysql_error_code(exc)
    if code is not None:
        return code in TRANSIENT_MYSQL_CODES
    if exc.connection_invalidated:
        return True
    return "database is locked" in str(exc.orig)


async def with_retry(
    work: Callable[[], Awaitable[T]],
    *,
    attempts: int = 4,
    base_delay: float = 0.02,
    max_delay: float = 0.5,
) -> T:
    """Run ``work`` until it succeeds or fails with a non-transient error."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except DBAPIError as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            log.warning("db.retry", attempt=attempt, code=mysql_error_code(exc))
            await asyncio.sleep(random.uniform(0, delay))  # full jitter
    raise AssertionError("unreachable")  # pragma: no cover


async def transact(
    db: Database, work: Callable[[AsyncSession], Awaitable[T]], *, attempts: int = 4
) -> T:
    """Run ``work`` in its own transaction, retrying the whole transaction when transient."""

    async def once() -> T:
        async with db.transaction() as session:
            return await work(session)

    return await with_retry(once, attempts=attempts)
