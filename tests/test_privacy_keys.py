"""Per-subject keys and sealed audit entries (SQLite and MariaDB): sealing round trip, a key
made in a rolled-back transaction is never used again, erasure leaves the chain verifying,
keys are stored wrapped with the installation's keyring."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from garrison import events, rewrap
from garrison.audit import install_keyring, personal, retention
from garrison.audit import subject_keys as keys
from garrison.audit.models import AuditEntry, SubjectKey
from garrison.audit.sealer import seal_pending
from garrison.audit.verify import verify_chain
from garrison.crypto import keyring_for
from garrison.db.engine import Database
from garrison.events import Actor, Event
from garrison.settings import Settings
from tests.conftest import make_settings, migrated


@pytest.fixture
async def setup(
    tmp_path: Path, fresh_database_url: str
) -> AsyncIterator[tuple[Database, Settings]]:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrated(settings)
    db = Database(settings.db_url, settings.db)
    yield db, settings
    await db.dispose()


def about(user: str, secret: str) -> Event:
    return Event(
        action="profile.updated",
        actor=Actor("user", user),
        target_type="user",
        target_id=user,
        changes={"name": ("old", secret)},
    )


def test_seal_and_open_round_trip() -> None:
    key = b"k" * 32
    sealed = keys.seal("kid", key, {"ip": "192.0.2.1"}, aad="event-1")
    assert sealed.startswith("v1.kid.")
    assert "192.0.2.1" not in sealed
    assert keys.open_sealed(key, sealed, aad="event-1") == {"ip": "192.0.2.1"}
    assert keys.open_sealed(key, sealed, aad="event-2") is None  # bound to its entry
    assert keys.open_sealed(b"x" * 32, sealed, aad="event-1") is None


async def test_a_rolled_back_key_is_not_reused(setup: tuple[Database, Settings]) -> None:
    db, _settings = setup
    keys._cache.clear()

    class Boom(Exception):
        pass

    async def failing() -> None:
        async with db.transaction() as session:
            await events.emit(session, about("u-rollback", "first"))
            await events.emit(session, about("u-rollback", "second"))
            raise Boom

    with pytest.raises(Boom):
        await failing()
    async with db.transaction() as session:
        await events.emit(session, about("u-rollback", "third"))
    async with db.read_session() as session:
        rows = (await session.execute(select(AuditEntry.__table__))).all()
        [opened] = await personal.open_rows(session, rows)
    assert not opened["erased"]
    assert "third" in (opened["changes"] or "")


async def test_erasing_the_key_keeps_the_chain(setup: tuple[Database, Settings]) -> None:
    db, settings = setup
    for user in ("u-keep", "u-gone"):
        async with db.transaction() as session:
            await events.emit(session, about(user, f"secret-of-{user}"))
    await seal_pending(db, batch_size=10)
    async with db.transaction() as session:
        assert await keys.destroy(session, subject_id="u-gone") == 1
    async with db.read_session() as session:
        rows = (await session.execute(select(AuditEntry.__table__).order_by(AuditEntry.id))).all()
        opened = await personal.open_rows(session, rows)
        report = await verify_chain(session, checkpoint_key=retention.signing_key(settings))
    assert report.ok
    assert report.checked == 2
    assert [(r["subject_id"], r["erased"]) for r in opened] == [("u-keep", False), ("u-gone", True)]
    assert "secret-of-u-keep" in (opened[0]["changes"] or "")
    assert opened[1]["changes"] is None
    assert all("secret-of" not in (row.sealed or "") for row in rows)
    # Editing the sealed text is still caught by the chain.
    async with db.transaction() as session:
        await session.execute(
            update(AuditEntry).where(AuditEntry.subject_id == "u-keep").values(sealed="v1.x.AAAA")
        )
    async with db.read_session() as session:
        broken = await verify_chain(session, checkpoint_key=retention.signing_key(settings))
    assert not broken.ok


async def test_keys_are_stored_wrapped_and_bare_ones_get_wrapped(
    setup: tuple[Database, Settings], tmp_path: Path
) -> None:
    """A copy of the database alone opens nothing: each subject key is sealed with the
    installation's keyring. Keys stored bare (before revision 0017) still open, and
    ``garrison secrets rotate``'s re-wrap function wraps them."""
    db, settings = setup
    keys._cache.clear()
    async with db.transaction() as session:
        await events.emit(session, about("u-wrapped", "wrapped-secret"))
        found = await keys.key_for(session, subject_id="u-wrapped", create=False)
    assert found is not None
    key_id, key = found
    async with db.read_session() as session:
        stored = await session.scalar(select(SubjectKey.key).where(SubjectKey.id == key_id))
    assert stored is not None
    assert stored.startswith("gv1.")
    assert base64.b64encode(key).decode() not in stored

    # Another installation's secret does not open it: readers see the entries as unreadable,
    # and a new entry about the subject is refused (503) rather than sealed under a new key
    # that would leave the old entries unreadable for good.
    stranger = make_settings(
        tmp_path / "elsewhere",
        database_url=settings.db_url,
        secret_key="another-installation-0123456789-abcdefghij",
    )
    keys._cache.clear()
    async with db.read_session() as session:
        assert await keys.keys_by_id(session, {key_id}) == {}
        rows = (await session.execute(select(AuditEntry.__table__))).all()
        [unreadable] = await personal.open_rows(session, rows)
    assert unreadable["erased"] is True
    with pytest.raises(keys.SubjectKeyUnavailable) as refused:
        async with db.transaction() as session:
            await events.emit(session, about("u-wrapped", "another-secret"))
    assert refused.value.status == 503
    assert "GARRISON_PREVIOUS_SECRET_KEYS" in str(refused.value.detail)
    install_keyring(settings)  # back to this installation's own
    assert keyring_for(stranger).current_id != keyring_for(settings).current_id

    # A bare key, as revision 0016 stored it: read as it is, then wrapped by rotation.
    async with db.transaction() as session:
        await session.execute(
            update(SubjectKey)
            .where(SubjectKey.id == key_id)
            .values(key=base64.b64encode(key).decode())
        )
    async with db.read_session() as session:
        assert await keys.keys_by_id(session, {key_id}) == {key_id: key}
    assert "audit.subject_key" in rewrap.registered()
    assert await rewrap.rotate(db, keyring_for(settings), "audit.subject_key") == 1
    assert await rewrap.rotate(db, keyring_for(settings), "audit.subject_key") == 0
    async with db.read_session() as session:
        stored = await session.scalar(select(SubjectKey.key).where(SubjectKey.id == key_id))
        assert stored is not None
        assert stored.startswith("gv1.")
        rows = (await session.execute(select(AuditEntry.__table__))).all()
        [opened] = await personal.open_rows(session, rows)
    assert "wrapped-secret" in (opened["changes"] or "")
