"""Retry a unit of work when the database reports a transient failure.

Transient: MySQL/MariaDB deadlock or Galera certification conflict (1213), lock wait
timeout (1205), a Galera node not ready for queries (1047 "WSREP has not yet prepared node
for application use"), too many connections (1040), a server shutting down or a connection
killed (1053, 1927), a lost or refused connection (2002, 2003, 2006, 2013, 2055, 4031), and
SQLite's "database is locked". During a failover these last seconds, so the whole
transaction is retried with backoff and full jitter until ``db.retry_deadline`` (default
15 s) has passed; then the caller gets ``DatabaseUnavailable`` (503 with
``Retry-After``), never a 500.

A write is never applied twice by a retry: the unit of work runs again from the start in a
fresh transaction, and an error raised by the COMMIT itself (``during_commit``) is retried
only when the server certainly rolled the transaction back (1213, 1205, 1047). A connection
lost during COMMIT leaves the outcome unknown: it is not retried here, the client gets a
503 and its ``Idempotency-Key`` retry is answered from the stored outcome or applied once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from garrison.errors import ServiceUnavailable
from garrison.log import get_logger

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from garrison.db.engine import Database

T = TypeVar("T")

ROLLED_BACK_CODES = frozenset({1047, 1205, 1213})  # the server undid the transaction
CONNECTION_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
TRANSIENT_MYSQL_CODES = ROLLED_BACK_CODES | CONNECTION_CODES
DEFAULT_DEADLINE = 15.0
log = get_logger(__name__)


class DatabaseUnavailable(ServiceUnavailable):
    """The database stayed unavailable for the whole retry deadline (a failover that took
    too long, or an outage): 503 with ``Retry-After``."""

    slug = "database-unavailable"

    def __init__(self, retry_after: int = 2) -> None:
        super().__init__(
            "the database is briefly unavailable; retry shortly",
            headers={"Retry-After": str(retry_after)},
        )


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
    if code is not None and code in TRANSIENT_MYSQL_CODES:
        return True
    if exc.connection_invalidated:
        return True
    text = str(exc.orig)
    return "database is locked" in text or "WSREP has not yet prepared" in text


def is_retryable(exc: BaseException) -> bool:
    """Transient, and safe to run again: not a COMMIT whose outcome is unknown."""
    if isinstance(exc, PoolTimeout):
        return False  # overload, not failover: retrying adds load
    if not is_transient(exc):
        return False
    if getattr(exc, "during_commit", False):
        return mysql_error_code(exc) in ROLLED_BACK_CODES
    return True


async def with_retry(
    work: Callable[[], Awaitable[T]],
    *,
    attempts: int | None = None,
    deadline: float = DEFAULT_DEADLINE,
    base_delay: float = 0.02,
    max_delay: float = 0.5,
    retry_if: Callable[[BaseException], bool] = is_retryable,
    unavailable: bool = True,
) -> T:
    """Run ``work`` until it succeeds or fails with an error ``retry_if`` refuses.

    Retries stop after ``deadline`` seconds (or ``attempts`` tries, when given): a transient
    error then becomes ``DatabaseUnavailable`` (unless ``unavailable`` is false: an inner
    retry leaves its last error to the caller's own retry); any other error is raised as
    it is."""
    give_up = time.monotonic() + deadline
    attempt = 0
    while True:
        attempt += 1
        try:
            return await work()
        except DBAPIError as exc:
            if not retry_if(exc):
                raise
            last = attempts is not None and attempt >= attempts
            if last or time.monotonic() >= give_up:
                if not unavailable or (attempts is not None and last):
                    raise  # an inner retry (or a bound on attempts): the error as it was
                log.warning("db.retry_exhausted", attempts=attempt, code=mysql_error_code(exc))
                raise DatabaseUnavailable() from exc
            delay = min(max_delay, base_delay * 2 ** min(attempt - 1, 16))
            delay = min(random.uniform(0, delay), max(0.0, give_up - time.monotonic()))
            log.warning("db.retry", attempt=attempt, code=mysql_error_code(exc))
            await asyncio.sleep(delay)  # full jitter, never past the deadline


async def transact(
    db: Database, work: Callable[[AsyncSession], Awaitable[T]], *, attempts: int | None = None
) -> T:
    """Run ``work`` in its own transaction, retrying the whole transaction when transient,
    within ``db.retry_deadline``."""

    async def once() -> T:
        async with db.transaction() as session:
            return await work(session)

    return await with_retry(once, attempts=attempts, deadline=db.settings.retry_deadline)
