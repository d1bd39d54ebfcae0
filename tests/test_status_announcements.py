"""Maintenance windows announce their start and end (``status.maintenance.started`` /
``.ended``) once each, from the worker's ``status.announce`` job: cancelled, edited and
missed windows, two workers at once, subscribers' e-mail, and the migration that adds the
claim columns. The job is driven with an explicit ``now``; SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, column, insert, select, table

from garrison.db import migrate
from garrison.db.engine import Database
from garrison.db.types import UtcDateTime
from garrison.ops.status import announcer, service
from garrison.ops.status.models import Maintenance
from garrison.outbox.registry import Registry
from garrison.worker import Worker, standard_jobs
from tests.conftest import make_settings
from tests.statuskit import Kit, status_kit
from tests.test_auth_email import SmtpServer, body_of, smtp  # noqa: F401  (fixture)

STARTED, ENDED = "status.maintenance.started", "status.maintenance.ended"
HOUR = timedelta(hours=1)


@pytest.fixture
async def kit(tmp_path: Path, fresh_database_url: str) -> Kit:  # type: ignore[misc]
    async with status_kit(tmp_path, fresh_database_url) as value:
        yield value


def _base() -> datetime:
    """A start an hour from now, on a whole second (the job is driven from here)."""
    return (datetime.now(UTC) + HOUR).replace(microsecond=0)


async def _schedule(kit: Kit, starts_at: datetime, ends_at: datetime, **extra: Any) -> str:
    response = await kit.post(
        "/api/v1/status/maintenances",
        {
            "title": extra.pop("title", "Database upgrade"),
            "components": ["database"],
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _announced(kit: Kit, maintenance_id: str) -> list[str]:
    """The announcement topics delivered so far for one window, in order."""
    await kit.drain()
    return [
        m.topic
        for m in kit.messages
        if m.target_id == maintenance_id and m.topic in (STARTED, ENDED)
    ]


async def test_a_window_announces_its_start_and_end_once(kit: Kit) -> None:
    start = _base()
    window = await _schedule(kit, start, start + HOUR)

    assert await announcer.run_once(db=kit.db, now=start - timedelta(seconds=1)) == []
    assert await announcer.run_once(db=kit.db, now=start) == [(STARTED, window)]
    assert await announcer.run_once(db=kit.db, now=start) == []
    assert await announcer.run_once(db=kit.db, now=start + HOUR / 2) == []
    assert await announcer.run_once(db=kit.db, now=start + HOUR) == [(ENDED, window)]
    assert await announcer.run_once(db=kit.db, now=start + 2 * HOUR) == []

    await kit.drain()
    mine = [m for m in kit.messages if m.target_id == window]
    assert [m.topic for m in mine] == ["status.maintenance.scheduled", STARTED, ENDED]
    started, ended = (m.payload["data"] for m in mine[1:])
    assert (started["id"], started["state"], started["title"]) == (
        window,
        "in_progress",
        "Database upgrade",
    )
    assert ended["state"] == "completed"
    assert mine[1].payload["actor"]["kind"] == "system"
    async with kit.db.read_session() as session:
        row = await session.get(Maintenance, window)
        assert row is not None
        assert row.started_announced_at == start
        assert row.ended_announced_at == start + HOUR
    # The announcements are not edits: the window reads as it did.
    shown = (
        await kit.client.get(f"/api/v1/status/maintenances/{window}", headers=kit.admin)
    ).json()
    assert shown["updated_at"] == shown["created_at"]
    assert "started_announced_at" not in shown


async def test_a_window_cancelled_before_it_starts_announces_nothing(kit: Kit) -> None:
    start = _base()
    window = await _schedule(kit, start, start + HOUR)
    cancelled = await kit.post(f"/api/v1/status/maintenances/{window}/cancel", {})
    assert cancelled.json()["state"] == "cancelled"
    for moment in (start, start + HOUR / 2, start + HOUR, start + 2 * HOUR):
        assert await announcer.run_once(db=kit.db, now=moment) == []
    assert await _announced(kit, window) == []


async def test_a_window_cancelled_while_in_progress_does_not_end_again(kit: Kit) -> None:
    """``cancelled`` is the end of a window cancelled in progress: no ``ended`` follows."""
    start = _base()
    window = await _schedule(kit, start, start + HOUR)
    assert await announcer.run_once(db=kit.db, now=start) == [(STARTED, window)]
    await kit.post(f"/api/v1/status/maintenances/{window}/cancel", {})
    assert await announcer.run_once(db=kit.db, now=start + HOUR) == []
    assert await _announced(kit, window) == [STARTED]


async def test_a_window_edited_after_it_started_still_ends_once(kit: Kit) -> None:
    start = _base()
    window = await _schedule(kit, start, start + HOUR)
    assert await announcer.run_once(db=kit.db, now=start + timedelta(minutes=1)) == [
        (STARTED, window)
    ]

    # Extended while in progress: nothing at the old end, one ``ended`` at the new one.
    longer = await kit.client.patch(
        f"/api/v1/status/maintenances/{window}",
        json={"ends_at": (start + 2 * HOUR).isoformat()},
        headers=kit.admin,
    )
    assert longer.status_code == 200, longer.text
    assert await announcer.run_once(db=kit.db, now=start + HOUR) == []
    # Its start moved later: it has started once already and does not start again.
    later = await kit.client.patch(
        f"/api/v1/status/maintenances/{window}",
        json={"starts_at": (start + HOUR + timedelta(minutes=30)).isoformat()},
        headers=kit.admin,
    )
    assert later.status_code == 200, later.text
    assert await announcer.run_once(db=kit.db, now=start + HOUR + timedelta(minutes=40)) == []
    assert await announcer.run_once(db=kit.db, now=start + 2 * HOUR) == [(ENDED, window)]
    assert await announcer.run_once(db=kit.db, now=start + 3 * HOUR) == []

    # Edited again after it ended (even back into the future): nothing more is announced.
    reopened = await kit.client.patch(
        f"/api/v1/status/maintenances/{window}",
        json={"ends_at": (start + 4 * HOUR).isoformat()},
        headers=kit.admin,
    )
    assert reopened.status_code == 200, reopened.text
    for moment in (start + 3 * HOUR, start + 4 * HOUR):
        assert await announcer.run_once(db=kit.db, now=moment) == []
    assert await _announced(kit, window) == [STARTED, ENDED]


async def test_a_window_rescheduled_before_it_starts_starts_at_its_new_time(kit: Kit) -> None:
    start = _base()
    window = await _schedule(kit, start, start + HOUR)
    moved = await kit.client.patch(
        f"/api/v1/status/maintenances/{window}",
        json={"starts_at": (start + HOUR).isoformat(), "ends_at": (start + 2 * HOUR).isoformat()},
        headers=kit.admin,
    )
    assert moved.status_code == 200, moved.text
    assert await announcer.run_once(db=kit.db, now=start) == []
    assert await announcer.run_once(db=kit.db, now=start + HOUR) == [(STARTED, window)]
    assert await announcer.run_once(db=kit.db, now=start + 2 * HOUR) == [(ENDED, window)]


async def test_a_worker_down_for_the_whole_window_announces_only_its_end(kit: Kit) -> None:
    """No stale ``started`` after the window is over: only ``ended``, once."""
    start = _base()
    window = await _schedule(kit, start, start + HOUR)
    assert await announcer.run_once(db=kit.db, now=start - HOUR) == []
    # ... the worker is away from before the start until after the end ...
    assert await announcer.run_once(db=kit.db, now=start + 3 * HOUR) == [(ENDED, window)]
    assert await announcer.run_once(db=kit.db, now=start + 4 * HOUR) == []
    assert await _announced(kit, window) == [ENDED]
    async with kit.db.read_session() as session:
        row = await session.get(Maintenance, window)
        assert row is not None
        assert row.started_announced_at is None  # the start was never announced
        assert row.ended_announced_at == start + 3 * HOUR


async def test_two_workers_announce_each_window_once(kit: Kit) -> None:
    start = _base()
    windows = [await _schedule(kit, start, start + HOUR, title=f"W{i}") for i in range(4)]
    first = Database(kit.settings.db_url, kit.settings.db)
    second = Database(kit.settings.db_url, kit.settings.db)
    try:
        for moment, action in ((start, STARTED), (start + HOUR, ENDED)):
            one, two = await asyncio.gather(
                announcer.run_once(db=first, now=moment),
                announcer.run_once(db=second, now=moment),
            )
            assert sorted(one + two) == sorted((action, w) for w in windows)
    finally:
        await first.dispose()
        await second.dispose()
    for window in windows:
        assert await _announced(kit, window) == [STARTED, ENDED]


async def test_a_claim_seen_late_by_a_second_worker_announces_nothing(kit: Kit) -> None:
    """The race's losing side, step by step: a worker that saw the window due, but claims
    it after another worker's claim committed, matches no row and emits nothing."""
    start = _base()
    window = await _schedule(kit, start, start + HOUR)
    async with kit.db.read_session() as session:
        seen = (
            await session.scalars(select(Maintenance.id).where(Maintenance.starts_at <= start))
        ).all()
    assert seen == [window]
    assert await announcer.run_once(db=kit.db, now=start) == [(STARTED, window)]
    async with kit.db.transaction() as session:
        late = await service.claim_announcement(
            session, maintenance_id=window, action=STARTED, now=start + timedelta(seconds=1)
        )
    assert late is None
    assert await _announced(kit, window) == [STARTED]


async def test_the_worker_runs_the_job_and_the_page_shows_the_window(kit: Kit) -> None:
    assert "status.announce" in [job.name for job in standard_jobs(kit.db, kit.settings)]
    now = datetime.now(UTC)
    window = await _schedule(
        kit, now - timedelta(minutes=1), now + HOUR, title="Replica rebuild", read_only=False
    )
    worker = Worker(kit.db, kit.settings, handlers=Registry(), tasks=[])
    await worker.run_due()  # every periodic job is due when a worker starts
    assert await _announced(kit, window) == [STARTED]

    doc = (await kit.client.get("/api/v1/status")).json()
    [shown] = [w for w in doc["maintenances"] if w["id"] == window]
    assert shown["state"] == "in_progress"
    feed = (await kit.client.get("/status/feed.atom")).text
    assert "Maintenance: Replica rebuild" in feed


async def test_subscribers_are_mailed_when_a_window_starts_and_ends(
    tmp_path: Path,
    fresh_database_url: str,
    smtp: SmtpServer,  # noqa: F811
) -> None:
    address = f"window-{uuid.uuid4().hex[:12]}@example.com"
    smtp_settings = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
    async with status_kit(tmp_path, fresh_database_url, smtp=smtp_settings) as kit:
        async with kit.db.transaction() as session:
            token = await service.subscribe(session, email=address, ttl=3600)
            assert token is not None
            assert await service.confirm(session, token=token)
        start = _base()
        await _schedule(kit, start, start + HOUR, title="Disk swap", read_only=True)
        await announcer.run_once(db=kit.db, now=start)
        await announcer.run_once(db=kit.db, now=start + HOUR)
        await kit.drain()

        notices = {m["Subject"]: body_of(m) for m in smtp.messages_to(address)}
        assert set(notices) == {
            "[Garrison status] Maintenance scheduled: Disk swap",
            "[Garrison status] Maintenance started: Disk swap",
            "[Garrison status] Maintenance ended: Disk swap",
        }
        started = notices["[Garrison status] Maintenance started: Disk swap"]
        assert started.startswith("Maintenance started: Disk swap")
        assert "The API is read-only until this window ends." in started
        ended = notices["[Garrison status] Maintenance ended: Disk swap"]
        assert ended.startswith("Maintenance ended: Disk swap")
        assert "The API accepts writes again." in ended
        assert "read-only" not in ended
        assert "/status/unsubscribe?id=" in ended


async def test_the_upgrade_marks_windows_already_begun_or_over(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """Windows that started or ended before the revision ran are not announced late."""
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrate.upgrade(settings.db_url, settings.db, "0014")
    now = datetime.now(UTC).replace(microsecond=0)
    spans = {"over": (-2 * HOUR, -HOUR), "running": (-HOUR, HOUR), "coming": (HOUR, 2 * HOUR)}
    db = Database(settings.db_url, settings.db)
    try:
        # The table as revision 0013 left it (the model has the new columns).
        old = table(
            "status_maintenances",
            *(column(name) for name in ("id", "title", "description", "read_only")),
            column("components", JSON()),
            *(column(name, UtcDateTime()) for name in ("starts_at", "ends_at", "created_at")),
            column("updated_at", UtcDateTime()),
        )
        async with db.connect() as conn:
            await conn.execute(
                insert(old),
                [
                    {
                        "id": name,
                        "title": name,
                        "description": "",
                        "components": [],
                        "starts_at": now + before,
                        "ends_at": now + after,
                        "read_only": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for name, (before, after) in spans.items()
                ],
            )
            await conn.commit()
        await migrate.upgrade(settings.db_url, settings.db)
        async with db.read_session() as session:
            rows = {r.id: r for r in await session.scalars(select(Maintenance))}
        assert rows["over"].started_announced_at == now - 2 * HOUR
        assert rows["over"].ended_announced_at == now - HOUR
        assert rows["running"].started_announced_at == now - HOUR
        assert rows["running"].ended_announced_at is None
        assert rows["coming"].started_announced_at is None
        assert rows["coming"].ended_announced_at is None
        assert await announcer.run_once(db=db, now=now) == []
        assert await announcer.run_once(db=db, now=now + HOUR) == [
            (ENDED, "running"),  # ends first
            (STARTED, "coming"),
        ]
    finally:
        await db.dispose()


async def test_webhook_endpoints_receive_the_announcements(kit: Kit) -> None:
    created = await kit.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example.com/status", "events": ["status.maintenance.*"]},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    start = _base()
    window = await _schedule(kit, start, start + HOUR)
    await announcer.run_once(db=kit.db, now=start)
    await announcer.run_once(db=kit.db, now=start + HOUR)
    await kit.drain()

    page = await kit.client.get(f"/api/v1/webhooks/{endpoint}/messages", headers=kit.admin)
    assert page.status_code == 200, page.text
    queued = [
        (m["event_type"], m["payload"]["data"]["data"]["state"])
        for m in reversed(page.json()["items"])
        if m["payload"]["data"]["target"]["id"] == window
    ]
    assert queued == [
        ("status.maintenance.scheduled", "scheduled"),
        (STARTED, "in_progress"),
        (ENDED, "completed"),
    ]
