"""Idempotency keys on both backends: replay, mismatch, in-progress, abandoned attempts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from garrison.db import Database
from garrison.errors import BadRequest
from garrison.records import idempotency
from garrison.records.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from garrison.records.models import IdempotencyKey
from tests.conftest import make_settings, migrated

FP = idempotency.fingerprint("POST", "/api/v1/collections/posts/records", {"title": "a"})
OTHER = idempotency.fingerprint("POST", "/api/v1/collections/posts/records", {"title": "b"})


@pytest.fixture
async def db(fresh_database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrated(settings)
    database = Database(settings.db_url, settings.db)
    yield database
    await database.dispose()


async def test_first_attempt_then_replay(db: Database) -> None:
    assert await idempotency.begin(db, scope="u1:posts", key="k1", fingerprint=FP) is None
    async with db.transaction() as session:
        await idempotency.complete(
            session, scope="u1:posts", key="k1", status=201, body={"id": "r1"}
        )
    replay = await idempotency.begin(db, scope="u1:posts", key="k1", fingerprint=FP)
    assert replay == idempotency.Replay(201, {"id": "r1"})


async def test_same_key_other_body_is_refused(db: Database) -> None:
    await idempotency.begin(db, scope="s", key="k", fingerprint=FP)
    with pytest.raises(IdempotencyKeyReused):
        await idempotency.begin(db, scope="s", key="k", fingerprint=OTHER)


async def test_in_progress_is_a_conflict(db: Database) -> None:
    await idempotency.begin(db, scope="s", key="k", fingerprint=FP)
    with pytest.raises(IdempotencyKeyInUse):
        await idempotency.begin(db, scope="s", key="k", fingerprint=FP)


async def test_keys_are_per_scope(db: Database) -> None:
    assert await idempotency.begin(db, scope="alice:posts", key="k", fingerprint=FP) is None
    assert await idempotency.begin(db, scope="bob:posts", key="k", fingerprint=FP) is None


async def test_abandoned_claim_released_and_retaken(db: Database) -> None:
    await idempotency.begin(db, scope="s", key="k", fingerprint=FP)
    await idempotency.abandon(db, scope="s", key="k")
    assert await idempotency.begin(db, scope="s", key="k", fingerprint=FP) is None
    # A claim whose process died is retaken once its lease is over.
    async with db.transaction() as session:
        await session.execute(
            update(IdempotencyKey).values(
                created_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
            )
        )
    assert await idempotency.begin(db, scope="s", key="k", fingerprint=FP) is None


async def test_concurrent_claims_one_winner(db: Database) -> None:
    results = await asyncio.gather(
        *(idempotency.begin(db, scope="s", key="race", fingerprint=FP) for _ in range(8)),
        return_exceptions=True,
    )
    winners = [r for r in results if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, IdempotencyKeyInUse) for r in results if r is not None)


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\tkey", "é"])
def test_invalid_keys(key: str) -> None:
    with pytest.raises(BadRequest):
        idempotency.check_key(key)
