"""Real processes: ``garrison worker`` killed with SIGKILL mid-delivery loses no webhook
(another worker sends the rest, duplicates carry the same ``webhook-id``), and queued mail
survives an SMTP outage (a real aiosmtpd that is down, then up)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from garrison import events
from garrison.crypto import keyring_for
from garrison.db import Database
from garrison.db.types import utcnow
from garrison.events import Actor, Event
from garrison.outbox.models import OutboxMessage
from garrison.settings import Settings
from garrison.webhooks import service
from garrison.webhooks.models import SUCCEEDED, WebhookMessage
from garrison.worker import Worker
from tests.authkit import auth_app
from tests.conftest import make_settings, migrated
from tests.helpers import free_port, garrison_process
from tests.test_auth_email import launch_smtp
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.slow


async def _setup(settings: Settings, receiver: Receiver, count: int) -> tuple[str, list[str]]:
    db = Database(settings.db_url, settings.db)
    ids: list[str] = []
    try:
        async with db.transaction() as session:
            _endpoint, secret = await service.create_endpoint(
                session,
                url=receiver.url("/slow"),
                events=["record.*"],
                description="",
                enabled=True,
                headers={},
                rate_per_second=None,
                config=settings.webhooks,
                development=True,
                keyring=keyring_for(settings),
                actor=Actor.system(),
            )
        async with db.transaction() as session:
            for n in range(count):
                event = Event(
                    action="record.created",
                    actor=Actor.system(),
                    target_type="posts",
                    target_id=f"r{n}",
                    data={"n": n},
                )
                await events.emit(session, event)
                ids.append(event.id)
    finally:
        await db.dispose()
    return secret, ids


async def _until(predicate: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_sigkill_of_the_worker_loses_no_webhook(
    tmp_path: Path, fresh_database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrated(settings)
    receiver = await Receiver().start()
    env = {
        "GARRISON_DATABASE_URL": settings.db_url,
        "GARRISON_DATA_DIR": str(settings.data_dir),
        "GARRISON_LOG__FORMAT": "json",
        "GARRISON_LOG__LEVEL": "warning",
        "GARRISON_WORKER__POLL_INTERVAL": "0.1",
        "GARRISON_WEBHOOKS__ENDPOINT_CONCURRENCY": "1",
        "GARRISON_WEBHOOKS__LEASE_SECONDS": "2",
        "GARRISON_WEBHOOKS__RETRY_SCHEDULE": "[0, 0.2, 0.2, 0.2, 0.2]",
    }
    try:
        _secret, ids = await _setup(settings, receiver, 40)
        first = garrison_process("worker", env=env)
        try:
            await _until(lambda: len(receiver.deliveries) >= 10)
            first.proc.kill()  # SIGKILL mid-batch: its claims stay leased, results unwritten
            assert first.proc.wait(30) == -9
        finally:
            first.close()
        expected = {"msg_" + event_id.replace("-", "") for event_id in ids}
        second = garrison_process("worker", env=env)
        try:
            await _until(lambda: {d.headers["webhook-id"] for d in receiver.deliveries} >= expected)
            db = Database(settings.db_url, settings.db)
            try:

                async def all_succeeded() -> bool:
                    async with db.read_session() as session:
                        done = await session.execute(
                            select(func.count())
                            .select_from(WebhookMessage)
                            .where(WebhookMessage.status == SUCCEEDED)
                        )
                        return done.scalar_one() == len(ids)

                deadline = time.monotonic() + 60
                while not await all_succeeded():
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            finally:
                await db.dispose()
            second.proc.terminate()
            assert second.proc.wait(30) == 0
        finally:
            second.close()
    finally:
        await receiver.close()
    seen = [d.headers["webhook-id"] for d in receiver.deliveries]
    assert set(seen) == expected  # every event at least once, duplicates with the same id


async def test_smtp_outage_delays_mail_and_loses_none(
    tmp_path: Path, fresh_database_url: str
) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path,
        database_url=fresh_database_url,
        worker={"in_process": False},
        smtp={"host": "127.0.0.1", "port": port, "security": "none", "timeout": 2},
    )
    async with auth_app(settings) as kit:
        address = await kit.user()
        response = await kit.client.post(
            "/api/v1/auth/password-reset/request", json={"email": address}
        )
        assert response.status_code == 202
        db = kit.runtime.db
        worker = Worker(db, settings)
        await worker.run_once()  # the SMTP server is down: the send fails, the mail stays

        async def mail_rows() -> list[OutboxMessage]:
            async with db.read_session() as session:
                query = select(OutboxMessage).where(OutboxMessage.topic == "mail.send")
                return list((await session.scalars(query)).all())

        [queued] = await mail_rows()
        assert queued.attempts == 1
        assert "MailError" in (queued.last_error or "")
        assert address not in queued.payload  # the message is sealed at rest

        server = launch_smtp(tmp_path / "maildir", port)
        try:
            async with db.transaction() as session:
                await session.execute(update(OutboxMessage).values(available_at=utcnow()))
            while await worker.run_once():
                pass
            code = await server.code(address, "Reset your password")
            assert code.startswith("got_")
            assert await mail_rows() == []
        finally:
            server.proc.terminate()
            server.proc.wait(30)
        assert worker.webhooks is not None
        await worker.webhooks.close()
