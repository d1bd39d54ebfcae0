"""``Idempotency-Key`` for record creation (draft-ietf-httpapi-idempotency-key-header).

    begin()    own committed transaction: claim the key (or find the first attempt)
    complete() in the create's transaction: store the response with the record
    abandon()  own transaction: release the key when the create failed

The same key with the same request replays the first response and creates nothing; with a
different request it is a 422; while the first attempt still runs it is a 409. A claim whose
attempt died (crash between begin and complete) expires after ``LEASE`` and can be retaken.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.db.retry import DatabaseUnavailable, with_retry
from garrison.errors import BadRequest
from garrison.records.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from garrison.records.ids import uuid7
from garrison.records.models import IdempotencyKey

RETENTION = timedelta(hours=24)
LEASE = timedelta(seconds=60)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise BadRequest(
            "Idempotency-Key must be 1-255 visible ASCII characters",
            errors=[{"header": "Idempotency-Key", "detail": "invalid"}],
        )
    return key


def fingerprint(method: str, path: str, body: Any) -> bytes:
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


async def begin(db: Database, *, scope: str, key: str, fingerprint: bytes) -> Replay | None:
    """Claim ``key`` for this request; a ``Replay`` when a finished attempt exists."""

    async def claim() -> Replay | None:
        return await _claim(db, scope=scope, key=key, fingerprint=fingerprint)

    return await with_retry(claim, deadline=db.settings.retry_deadline)


async def _claim(db: Database, *, scope: str, key: str, fingerprint: bytes) -> Replay | None:
    now = _now()
    async with db.transaction() as session:
        existing = (
            await session.execute(
                select(IdempotencyKey).where(
                    IdempotencyKey.scope == scope, IdempotencyKey.key == key
                )
            )
        ).scalar_one_or_none()
        if existing is not None:
            expired = existing.expires_at <= now
            abandoned = existing.state == "processing" and existing.created_at <= now - LEASE
            if not (expired or abandoned):
                if existing.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used with a different request",
                        errors=[
                            {"header": "Idempotency-Key", "detail": "reused with another body"}
                        ],
                    )
                if existing.state == "processing":
                    raise IdempotencyKeyInUse(
                        "a request with this Idempotency-Key is still being processed",
                        headers={"Retry-After": "1"},
                    )
                assert existing.status is not None
                return Replay(existing.status, existing.response or {})
            await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == existing.id))
            await session.flush()
        session.add(
            IdempotencyKey(
                id=uuid7(),
                scope=scope,
                key=key,
                fingerprint=fingerprint,
                state="processing",
                created_at=now,
                expires_at=now + RETENTION,
            )
        )
        try:
            await session.flush()
        except IntegrityError:
            # Another attempt claimed it between our read and our insert.
            raise IdempotencyKeyInUse(
                "a request with this Idempotency-Key is still being processed",
                headers={"Retry-After": "1"},
            ) from None
    return None


async def complete(
    session: AsyncSession, *, scope: str, key: str, status: int, body: dict[str, Any]
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(state="done", status=status, response=body)
    )


async def abandon(db: Database, *, scope: str, key: str) -> None:
    async def release(session: AsyncSession) -> None:
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.scope == scope,
                IdempotencyKey.key == key,
                IdempotencyKey.state == "processing",
            )
        )

    async def once() -> None:
        async with db.transaction() as session:
            await release(session)

    # Best effort within a short deadline: the claim's lease frees the key anyway, and the
    # caller is already failing with the error that matters.
    with contextlib.suppress(DBAPIError, DatabaseUnavailable):
        await with_retry(once, deadline=2.0)


async def purge_expired(session: AsyncSession, *, limit: int = 1000) -> int:
    ids = (
        (
            await session.execute(
                select(IdempotencyKey.id).where(IdempotencyKey.expires_at <= _now()).limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if ids:
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(ids)))
    return len(ids)
