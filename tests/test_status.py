"""The status page, its JSON and feed, incidents, maintenance, subscribers, the read-only
switch and the front door, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from garrison.app import create_app
from garrison.ops.status import sampler
from tests.authkit import bearer
from tests.conftest import make_settings, migrated, start
from tests.statuskit import Kit, status_kit
from tests.test_auth_email import SmtpServer, body_of, smtp  # noqa: F401  (fixture)

PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
async def kit(tmp_path: Path, fresh_database_url: str) -> Kit:  # type: ignore[misc]
    async with status_kit(tmp_path, fresh_database_url) as value:
        yield value


async def test_page_json_and_feed_are_cacheable(kit: Kit) -> None:
    await sampler.run_once(db=kit.db, health=kit.health, settings=kit.settings.status)
    page = await kit.client.get("/status")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "public, max-age=0"  # the kit sets 0 s
    etag = page.headers["etag"]
    assert "All systems operational" in page.text
    again = await kit.client.get("/status", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""

    doc = (await kit.client.get("/api/v1/status")).json()
    assert doc["status"]["indicator"] == "operational"
    states = {c["id"]: c["state"] for c in doc["components"]}
    assert states == {
        "api": "operational",
        "database": "operational",
        "outbox": "operational",
        "disk": "operational",
        "backup": "operational",  # the backup checks (warn-only until a backup is due)
    }
    database = next(c for c in doc["components"] if c["id"] == "database")
    assert len(database["days"]) == 90
    assert database["days"][-1]["uptime"] == 100.0  # today's sample
    assert database["days"][0]["state"] == "unknown"

    feed = await kit.client.get("/status/feed.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert ET.fromstring(feed.content).find(f"{ATOM}title") is not None


async def test_default_cache_lifetime_is_thirty_seconds(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url=database_url, worker={"in_process": False})
    await migrated(settings)
    async with start(create_app(settings)) as running:
        for path in ("/status", "/api/v1/status", "/status/feed.atom"):
            response = await running.client.get(path)
            assert response.headers["cache-control"] == "public, max-age=30", path
            assert response.headers["etag"].startswith('"')


async def test_incident_lifecycle_is_escaped_and_emits_events(kit: Kit) -> None:
    created = await kit.post(
        "/api/v1/status/incidents",
        {
            "title": f"Errors {PAYLOAD}",
            "message": f"Looking. {PAYLOAD}",
            "impact": "major",
            "components": ["database"],
        },
    )
    assert created.status_code == 201, created.text
    incident = created.json()
    assert incident["status"] == "investigating"

    page = (await kit.client.get("/status")).text
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    feed = (await kit.client.get("/status/feed.atom")).content
    assert b"<script>" not in feed
    assert b"<img" not in feed
    summaries = [e.text for e in ET.fromstring(feed).iter(f"{ATOM}summary")]
    assert f"Looking. {PAYLOAD}" in summaries  # the text itself survives, as text

    doc = (await kit.client.get("/api/v1/status")).json()
    assert doc["status"]["indicator"] == "degraded"
    assert {c["id"]: c["state"] for c in doc["components"]}["database"] == "degraded"

    update = await kit.post(
        f"/api/v1/status/incidents/{incident['id']}/updates",
        {"status": "monitoring", "message": "A fix is out."},
    )
    assert update.status_code == 201
    assert [u["status"] for u in update.json()["updates"]] == ["monitoring", "investigating"]
    resolved = await kit.post(f"/api/v1/status/incidents/{incident['id']}/resolve", {})
    assert resolved.json()["resolved_at"] is not None
    doc = (await kit.client.get("/api/v1/status")).json()
    assert doc["status"]["indicator"] == "operational"
    assert "Resolved this week" in (await kit.client.get("/status")).text

    await kit.drain()
    status_topics = [t for t in kit.topics if t.startswith("status.")]
    assert status_topics == [  # one incident: its messages arrive in order
        "status.incident.created",
        "status.incident.updated",
        "status.incident.resolved",
    ]


async def test_status_management_needs_the_permission(kit: Kit) -> None:
    body = {"title": "t", "message": "m"}
    anonymous = await kit.client.post("/api/v1/status/incidents", json=body)
    assert anonymous.status_code == 401
    user = bearer(await kit.auth.token(role="user"))
    denied = await kit.client.post("/api/v1/status/incidents", json=body, headers=user)
    assert denied.status_code == 403
    assert (await kit.client.get("/api/v1/status/incidents", headers=user)).status_code == 403


async def test_bad_input_names_the_field(kit: Kit) -> None:
    now = datetime.now(UTC)
    backwards = await kit.post(
        "/api/v1/status/maintenances",
        {
            "title": "x",
            "starts_at": now.isoformat(),
            "ends_at": (now - timedelta(hours=1)).isoformat(),
        },
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["pointer"] == "#/ends_at"
    unknown = await kit.post(
        "/api/v1/status/incidents", {"title": "x", "message": "y", "components": ["nope"]}
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "#/components/0"
    not_email = await kit.client.post("/api/v1/status/subscribers", json={"email": "not-an-email"})
    assert not_email.status_code == 422
    assert not_email.json()["errors"][0]["pointer"] == "#/email"
    form = await kit.client.post("/status/subscribe", data={"email": "nope"})
    assert form.status_code == 422
    assert form.json()["errors"][0]["pointer"] == "#/email"


async def test_read_only_maintenance_refuses_writes(kit: Kit) -> None:
    now = datetime.now(UTC)
    window = await kit.post(
        "/api/v1/status/maintenances",
        {
            "title": "Database upgrade",
            "components": ["database"],
            "read_only": True,
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(minutes=10)).isoformat(),
        },
    )
    assert window.status_code == 201, window.text
    assert window.json()["state"] == "in_progress"
    write = await kit.client.post(
        "/api/v1/auth/register", json={"email": "late@example.com", "password": "x" * 20}
    )
    assert write.status_code == 503
    assert 1 <= int(write.headers["retry-after"]) <= 600
    problem = write.json()
    assert problem["type"] == "urn:garrison:problem:read-only-maintenance"
    assert problem["maintenance"]["id"] == window.json()["id"]
    assert "Database upgrade" in problem["detail"]
    assert (await kit.client.get("/api/v1/status")).status_code == 200  # reads go on
    doc = (await kit.client.get("/api/v1/status")).json()
    assert {c["id"]: c["state"] for c in doc["components"]}["database"] == "maintenance"

    cancelled = await kit.post(f"/api/v1/status/maintenances/{window.json()['id']}/cancel", {})
    assert cancelled.json()["state"] == "cancelled"
    again = await kit.client.post(
        "/api/v1/auth/register", json={"email": "late@example.com", "password": "x" * 20}
    )
    assert again.status_code == 201
    await kit.drain()
    assert [t for t in kit.topics if t.startswith("status.maintenance.")] == [
        "status.maintenance.scheduled",
        "status.maintenance.cancelled",
    ]


async def test_subscribers_confirm_by_link_and_get_notices(
    tmp_path: Path,
    fresh_database_url: str,
    smtp: SmtpServer,  # noqa: F811
) -> None:
    address = f"reader-{tmp_path.name[-12:].lower().replace('_', '')}@example.com"
    smtp_settings = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
    async with status_kit(tmp_path, fresh_database_url, smtp=smtp_settings) as kit:
        accepted = await kit.client.post("/api/v1/status/subscribers", json={"email": address})
        assert accepted.status_code == 202
        [mail] = smtp.messages_to(address)
        link = re.search(
            r"http://localhost:3000(/status/subscribe/confirm\?token=\S+)", body_of(mail)
        )
        assert link, body_of(mail)
        form = await kit.client.get(link.group(1))
        assert '<form method="post"' in form.text  # a click on a form, not a prefetch
        confirmed = await kit.client.post(link.group(1))
        assert "Subscribed" in confirmed.text
        assert "expired" in (await kit.client.post(link.group(1))).text  # works once

        await kit.post("/api/v1/status/incidents", {"title": "Slow writes", "message": "On it."})
        await kit.drain()
        notices = [m for m in smtp.messages_to(address) if "Slow writes" in m["Subject"]]
        assert len(notices) == 1
        text = body_of(notices[0])
        assert "On it." in text
        unsubscribe = re.search(r"http://localhost:3000(/status/unsubscribe\?\S+)", text)
        assert unsubscribe
        assert "Unsubscribed" in (await kit.client.post(unsubscribe.group(1))).text
        await kit.post("/api/v1/status/incidents", {"title": "Second one", "message": "Again."})
        await kit.drain()
        assert not [m for m in smtp.messages_to(address) if "Second one" in m["Subject"]]


async def test_database_down_shows_the_last_known_state(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    async with status_kit(tmp_path, database) as kit:
        await sampler.run_once(db=kit.db, health=kit.health, settings=kit.settings.status)
        await kit.post("/api/v1/status/incidents", {"title": "Known issue", "message": "Noted."})
        assert (await kit.client.get("/status")).status_code == 200
    # The same data directory, and a database that refuses connections.
    with socket_closed() as port:
        down = make_settings(
            tmp_path,
            database_url=f"mysql+asyncmy://root@127.0.0.1:{port}/gone",
            worker={"in_process": False},
            db={"connect_timeout": 1},
        )
        async with start(create_app(down)) as running:
            page = await running.client.get("/status")
            assert page.status_code == 200
            assert "cannot be read right now" in page.text
            assert "Known issue" in page.text  # the last known incidents
            doc = (await running.client.get("/api/v1/status")).json()
            assert doc["stale"] is True
            states = {c["id"]: c["state"] for c in doc["components"]}
            assert states["database"] == "outage"
            assert states["api"] == "outage"
            database_days = next(c for c in doc["components"] if c["id"] == "database")["days"]
            assert database_days[-1]["uptime"] == 100.0  # history as last recorded


async def test_samples_wait_while_the_database_is_down(tmp_path: Path) -> None:
    from sqlalchemy import select

    from garrison.db import Database
    from garrison.db.migrate import head_revisions
    from garrison.ops.health import HealthService
    from garrison.ops.status.models import StatusDay

    minute = datetime.now(UTC).replace(hour=12, minute=30, second=0, microsecond=0)
    pending: list[tuple[datetime, sampler.Samples]] = []
    async with status_kit(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}") as kit:
        with socket_closed() as port:
            settings = kit.settings
            down = Database(f"mysql+asyncmy://root@127.0.0.1:{port}/gone", settings.db)
            down.settings.connect_timeout = 1
            health = HealthService(
                db=down,
                store=None,
                data_dir=settings.data_dir,
                settings=settings.health,
                expected_revisions=head_revisions(),
            )
            try:
                with pytest.raises(Exception):  # noqa: B017, PT011 - the driver's own error
                    await sampler.run_once(
                        db=down,
                        health=health,
                        settings=settings.status,
                        now=minute,
                        pending=pending,
                    )
            finally:
                await down.dispose()
        assert len(pending) == 1
        # The database is back: the outage minute is written with its own time.
        written = await sampler.run_once(
            db=kit.db,
            health=kit.health,
            settings=settings.status,
            now=minute + timedelta(minutes=1),
            pending=pending,
        )
        assert pending == []
        # The outage minute's four components (the health service built above has no backup
        # check), then the app's five (with the backup component).
        assert written == 9
        async with kit.db.read_session() as session:
            row = await session.scalar(
                select(StatusDay).where(
                    StatusDay.component == "database", StatusDay.day == minute.date()
                )
            )
        assert row is not None
        assert (row.operational, row.outage) == (1, 1)


class socket_closed:
    """A loopback port nothing listens on (bound, then released)."""

    def __enter__(self) -> int:
        from tests.helpers import free_port

        return free_port()

    def __exit__(self, *_: object) -> None:
        return None


async def test_front_door(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url=database_url, worker={"in_process": False})
    await migrated(settings)
    app = create_app(settings)
    fresh = database_url.startswith("sqlite")  # the shared MariaDB has other tests' users
    async with start(app) as running:
        browser = await running.client.get(
            "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        )
        assert browser.headers["content-type"].startswith("text/html")
        assert 'href="/status"' in browser.text
        assert 'href="/api/docs"' in browser.text
        api = await running.client.get("/", headers={"Accept": "application/json"})
        body = api.json()
        assert body["links"]["health"] == "/api/health"
        if fresh:
            assert body["first_admin"]["command"].startswith("garrison users create")
            assert "--role admin" in browser.text
    async with start(create_app(settings), client_addr=("203.0.113.7", 4000)) as remote:
        body = (await remote.client.get("/")).json()
        assert "first_admin" not in body  # never shown to other machines
    if fresh:
        async with status_kit(tmp_path, database_url) as kit:  # creates users
            kit.status.needs_first_admin = None
            assert "first_admin" not in (await kit.client.get("/")).json()


def test_monitor_feeds_status_components(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from garrison.cli import app as cli

    database = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["monitor", "--once", "--json", "--timeout", "2", "http://127.0.0.1:9/api/health"],
        env={"GARRISON_DATA_DIR": str(tmp_path / "var"), "GARRISON_DATABASE_URL": database},
    )
    assert result.exit_code == 1, result.output  # port 9 refuses: an outage
    assert '"state":"outage"' in result.output
    bad = runner.invoke(cli, ["monitor", "--once", "ftp://x"])
    assert bad.exit_code == 2

    async def check() -> None:
        async with status_kit(tmp_path, database) as kit:
            doc = (await kit.client.get("/api/v1/status")).json()
            [watcher] = [c for c in doc["components"] if c["id"].startswith("monitor:")]
            assert watcher["id"] == "monitor:127.0.0.1:9/api/health"
            assert watcher["state"] == "outage"
            assert watcher["days"][-1]["minutes_down"] == 1

    asyncio.run(check())
