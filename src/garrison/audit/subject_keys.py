"""Per-subject keys: personal data in audit entries is sealed under a key of the person it
is about, so erasing the person destroys the key and leaves the entries (and the hash chain,
which covers the ciphertext) intact but unreadable.

AES-256-GCM (``cryptography``) with a random 96-bit nonce per entry; the sealed text is
``v1.<key id>.<base64url(nonce || ciphertext)>``. Keys are cached per process only once they
are known to be committed (read back from the table), for ``CACHE_SECONDS``, per database (a
process that talks to two databases, a restore drill or the test suite, must not seal with
the other one's key).

This module imports nothing of the audit or event layers: ``garrison.audit`` calls it.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit.models import SubjectKey
from garrison.db.types import utcnow

PREFIX = "v1."
CACHE_SECONDS = 60.0
_cache: dict[tuple[str, str], tuple[str, bytes, float]] = {}


def _database(session: AsyncSession) -> str:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    return str(engine.url)  # the password is hidden


def _remember(session: AsyncSession, subject_id: str, key_id: str, key: bytes) -> None:
    if len(_cache) > 50_000:
        _cache.clear()
    _cache[_database(session), subject_id] = (key_id, key, time.monotonic() + CACHE_SECONDS)


def forget(session: AsyncSession, subject_id: str) -> None:
    _cache.pop((_database(session), subject_id), None)


async def _stored(session: AsyncSession, subject_id: str) -> tuple[str, bytes] | None:
    row = (
        await session.execute(
            select(SubjectKey.id, SubjectKey.key).where(SubjectKey.subject_id == subject_id)
        )
    ).first()
    if row is None:
        return None
    return str(row.id), base64.b64decode(row.key)


async def key_for(
    session: AsyncSession, *, subject_id: str, create: bool
) -> tuple[str, bytes] | None:
    """(key id, key) of ``subject_id``; with ``create``, made in the caller's transaction
    when there is none yet (so it commits, or not, with what it protects)."""
    cached = _cache.get((_database(session), subject_id))
    if cached is not None and cached[2] > time.monotonic():
        return cached[0], cached[1]
    found = await _stored(session, subject_id)
    created: set[str] = session.info.setdefault("garrison_new_subject_keys", set())
    if found is not None:
        if subject_id not in created:  # made by this transaction: not known committed yet
            _remember(session, subject_id, *found)
        return found
    if not create:
        return None
    key_id, key = uuid.uuid4().hex, AESGCM.generate_key(bit_length=256)
    try:
        async with session.begin_nested():
            await session.execute(
                insert(SubjectKey).values(
                    id=key_id,
                    subject_id=subject_id,
                    key=base64.b64encode(key).decode(),
                    created_at=utcnow(),
                )
            )
    except IntegrityError:  # made meanwhile by another transaction: use that one
        found = await _stored(session, subject_id)
        if found is None:
            raise
        return found
    created.add(subject_id)
    return key_id, key


async def destroy(session: AsyncSession, *, subject_id: str) -> int:
    """Delete the subject's key (erasure); returns how many were deleted."""
    forget(session, subject_id)
    result = await session.execute(delete(SubjectKey).where(SubjectKey.subject_id == subject_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def seal(key_id: str, key: bytes, value: dict[str, Any], *, aad: str) -> str:
    nonce = os.urandom(12)
    body = AESGCM(key).encrypt(nonce, orjson.dumps(value), aad.encode())
    return f"{PREFIX}{key_id}.{base64.urlsafe_b64encode(nonce + body).decode()}"


def key_id_of(sealed: str) -> str | None:
    if not sealed.startswith(PREFIX):
        return None
    return sealed[len(PREFIX) :].split(".", 1)[0]


def open_sealed(key: bytes, sealed: str, *, aad: str) -> dict[str, Any] | None:
    """The sealed value, or None when it does not open with ``key``."""
    try:
        raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :].split(".", 1)[1])
        opened = AESGCM(key).decrypt(raw[:12], raw[12:], aad.encode())
    except (IndexError, ValueError, InvalidTag):
        return None
    value = orjson.loads(opened)
    return value if isinstance(value, dict) else None


async def keys_by_id(session: AsyncSession, key_ids: set[str]) -> dict[str, bytes]:
    """The keys still stored among ``key_ids`` (erased ones are simply missing)."""
    if not key_ids:
        return {}
    rows = await session.execute(
        select(SubjectKey.id, SubjectKey.key).where(SubjectKey.id.in_(sorted(key_ids)))
    )
    return {str(row.id): base64.b64decode(row.key) for row in rows}
