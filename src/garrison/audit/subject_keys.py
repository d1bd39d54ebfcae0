"""Per-subject keys: personal data in audit entries is sealed under a key of the person it
is about, so erasing the person destroys the key and leaves the entries (and the hash chain,
which covers the ciphertext) intact but unreadable.

AES-256-GCM (``cryptography``) with a random 96-bit nonce per entry; the sealed text is
``v1.<key id>.<base64url(nonce || ciphertext)>``. Keys are cached per process only once they
are known to be committed (read back from the table), for ``CACHE_SECONDS``, per database (a
process that talks to two databases, a restore drill or the test suite, must not seal with
the other one's key).

The keys themselves are stored wrapped: sealed with the installation's keyring
(``garrison.crypto``, purpose ``audit.subject_key``, the key id as context), so a copy of the
database alone (a dump, a stolen backup) opens no audit entry. The composition roots install
the keyring per database (``install_keyring``, through ``garrison.audit.install_recorder``);
a process that installed none (a script calling the services) uses the keyring of its own
configuration (``load_settings()``). Rows from before revision 0017 hold the bare base64 of
their key, are read as they are, and are wrapped by ``garrison secrets rotate``.

A key wrapped under a master key this process does not hold (the secret changed and the old
one is not in ``GARRISON_PREVIOUS_SECRET_KEYS``) is never replaced, which would make the
subject's entries unreadable for good: readers show those entries as unreadable and log
``audit.subject_key.unreadable``; a new entry about that subject is refused with a 503 naming
the missing master key.

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
from sqlalchemy import URL, Connection, delete, insert, make_url, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import rewrap
from garrison.audit.models import SubjectKey
from garrison.crypto import DecryptionFailed, Keyring
from garrison.db.types import utcnow
from garrison.errors import ServiceUnavailable
from garrison.log import get_logger

PREFIX = "v1."
PURPOSE = "audit.subject_key"
_WRAPPED = "gv1."  # garrison.crypto's ciphertext prefix
CACHE_SECONDS = 60.0
_cache: dict[tuple[str, str], tuple[str, bytes, float]] = {}
_keyrings: dict[str, Keyring] = {}
_latest: list[Keyring] = []  # the last one installed, for a database that has none


log = get_logger(__name__)


class SubjectKeyUnavailable(ServiceUnavailable):
    """A subject's audit key is wrapped under a master key this installation does not hold."""

    slug, title = "audit-key-unavailable", "Audit Key Unavailable"


def _url(url: URL | str) -> str:
    return str(make_url(url) if isinstance(url, str) else url)  # the password is hidden


def install_keyring(database_url: str, keyring: Keyring) -> None:
    """Wrap and unwrap the subject keys of ``database_url`` with ``keyring``."""
    _keyrings[_url(database_url)] = keyring
    _latest[:] = [keyring]


def _database(session: AsyncSession) -> str:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    return _url(engine.url)


def _keyring(session: AsyncSession) -> Keyring:
    found = _keyrings.get(_database(session)) or (_latest[0] if _latest else None)
    if found is None:  # nothing installed: this process's own configuration
        from garrison.crypto import keyring_for
        from garrison.settings import load_settings

        settings = load_settings()
        found = keyring_for(settings)
        install_keyring(settings.db_url, found)
    return found


def wrap(session: AsyncSession, key_id: str, key: bytes) -> str:
    return _keyring(session).seal(key, purpose=PURPOSE, context=key_id)


def unwrap(session: AsyncSession, key_id: str, stored: str) -> bytes:
    """The key from its stored form: wrapped, or (before revision 0017) bare base64."""
    if stored.startswith(_WRAPPED):
        return _keyring(session).open(stored, purpose=PURPOSE, context=key_id)
    return base64.b64decode(stored)


def _remember(session: AsyncSession, subject_id: str, key_id: str, key: bytes) -> None:
    if len(_cache) > 50_000:
        _cache.clear()
    _cache[_database(session), subject_id] = (key_id, key, time.monotonic() + CACHE_SECONDS)


def forget(session: AsyncSession, subject_id: str) -> None:
    _cache.pop((_database(session), subject_id), None)


def _unwrap_or_none(session: AsyncSession, key_id: str, stored: str) -> bytes | None:
    try:
        return unwrap(session, key_id, stored)
    except DecryptionFailed:
        log.warning(
            "audit.subject_key.unreadable",
            key_id=key_id,
            hint="wrapped under a master key this process does not hold: the secret changed",
        )
        return None


async def _stored(session: AsyncSession, subject_id: str) -> tuple[str, bytes] | None:
    row = (
        await session.execute(
            select(SubjectKey.id, SubjectKey.key).where(SubjectKey.subject_id == subject_id)
        )
    ).first()
    if row is None:
        return None
    key = _unwrap_or_none(session, str(row.id), row.key)
    if key is None:
        raise SubjectKeyUnavailable(
            "this person's audit key was sealed under a master key that is not configured;"
            " add the old secret to GARRISON_PREVIOUS_SECRET_KEYS",
            headers={"Retry-After": "60"},
        )
    return str(row.id), key


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
                    key=wrap(session, key_id, key),
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
    found = {str(row.id): _unwrap_or_none(session, str(row.id), row.key) for row in rows}
    return {key_id: key for key_id, key in found.items() if key is not None}


async def rewrap_keys(session: AsyncSession, keyring: Keyring) -> int:
    """Wrap bare keys (rows from before revision 0017) and re-wrap keys sealed under an
    older master key, with ``keyring`` (``garrison secrets rotate``)."""
    count = 0
    for row in (await session.scalars(select(SubjectKey))).all():
        if row.key.startswith(_WRAPPED):
            if not keyring.needs_rewrap(row.key):
                continue
            row.key = keyring.rewrap(row.key, purpose=PURPOSE, context=row.id)
        else:
            row.key = keyring.seal(base64.b64decode(row.key), purpose=PURPOSE, context=row.id)
        count += 1
    await session.flush()
    return count


rewrap.register(PURPOSE, rewrap_keys)
