"""Outbound webhooks against a real receiver on loopback: the endpoints API and its bad
input, Standard Webhooks signatures checked by the official ``standardwebhooks`` library,
per-endpoint retries on a (shortened) schedule, Retry-After, 410 and auto-disable with the
admin alert, secret rotation, isolation of a hanging endpoint, receivers that misbehave,
SSRF refusals, replay, stats, retention and ``garrison secrets rotate``."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from garrison import events
from garrison.crypto import Keyring, keyring_for
from garrison.db import Database
from garrison.db.types import utcnow
from garrison.events import Actor, Event
from garrison.outbox.models import OutboxMessage
from garrison.settings import Settings
from garrison.webhooks import catalogue, ssrf
from garrison.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from garrison.worker import Worker
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings
from tests.helpers import assert_problem, garrison
from tests.webhook_receiver import Delivery, Receiver

# Retries fall due only when a test says so (``Rig.make_due``): a schedule short enough to
# elapse on its own raced the tests on a busy machine (a retry "not due yet" went out).
SCHEDULE = [0.0, 600.0, 600.0, 600.0]


def wh_settings(tmp_path: Path, database_url: str, **webhooks: Any) -> Settings:
    config: dict[str, Any] = {"retry_schedule": SCHEDULE, "jitter": 0, "poll_interval": 0.05}
    config.update(webhooks)
    return make_settings(
        tmp_path,
        database_url=database_url,
        worker={"in_process": False, "poll_interval": 0.05},
        webhooks=config,
    )


@dataclass
class Rig:
    kit: AuthApp
    settings: Settings
    receiver: Receiver
    worker: Worker
    admin: dict[str, str]

    @property
    def db(self) -> Database:
        return self.kit.runtime.db

    async def endpoint(self, path: str = "/ok", **body: Any) -> dict[str, Any]:
        payload = {"url": self.receiver.url(path), "events": ["record.*"], **body}
        response = await self.kit.client.post("/api/v1/webhooks", json=payload, headers=self.admin)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def get(self, url: str, **params: Any) -> Any:
        response = await self.kit.client.get(url, headers=self.admin, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def deliver(self) -> None:
        """Seal (which fans out), then send everything due and record the results."""
        assert self.worker.webhooks is not None
        await self.worker.seal()
        while await self.worker.webhooks.run_once():
            await self.worker.webhooks.drain()

    async def make_due(self) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(WebhookMessage).values(next_attempt_at=utcnow()))


async def record(db: Database, verb: str, record_id: str, collection: str = "posts") -> str:
    event = Event(
        action=f"record.{verb}",
        actor=Actor.system(),
        target_type=collection,
        target_id=record_id,
        data={"collection": collection, "record": {"id": record_id, "title": verb}},
    )
    async with db.transaction() as session:
        await events.emit(session, event)
    return event.id


def verify(secret: str, delivery: Delivery) -> dict[str, Any]:
    result: dict[str, Any] = Webhook(secret).verify(delivery.body, delivery.headers)
    return result


@pytest.fixture
async def rig(tmp_path: Path, fresh_database_url: str) -> AsyncIterator[Rig]:
    settings = wh_settings(tmp_path, fresh_database_url)
    receiver = await Receiver().start()
    try:
        async with auth_app(settings) as kit:
            admin = bearer(await kit.token(role="admin"))
            worker = Worker(kit.runtime.db, settings)
            try:
                yield Rig(kit, settings, receiver, worker, admin)
            finally:
                assert worker.webhooks is not None
                await worker.webhooks.close()
    finally:
        await receiver.close()


async def test_endpoint_api_and_bad_input(rig: Rig) -> None:
    client, admin = rig.kit.client, rig.admin
    created = await rig.endpoint(description="orders", headers={"X-Tenant": "t1"})
    assert created["id"].startswith("ep_")
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) >= len("whsec_") + 32  # base64 of >= 24 bytes
    shown = await rig.get(f"/api/v1/webhooks/{created['id']}")
    assert "secret" not in shown
    assert shown["events"] == ["record.*"]
    assert [e["id"] for e in (await rig.get("/api/v1/webhooks"))["items"]] == [created["id"]]
    async with rig.db.read_session() as session:
        stored = (await session.execute(select(WebhookEndpoint.secret))).scalar_one()
    assert stored.startswith("gv1.")
    assert created["secret"] not in stored

    patched = await client.patch(
        f"/api/v1/webhooks/{created['id']}",
        json={"events": ["record.posts.created", "auth.*"], "enabled": False},
        headers=admin,
    )
    assert patched.status_code == 200
    assert patched.json()["events"] == ["auth.*", "record.posts.created"]
    assert patched.json()["enabled"] is False

    bad: list[tuple[dict[str, Any], str]] = [
        ({"url": "not a url", "events": ["*"]}, "#/url"),
        ({"url": "ftp://example.com/x", "events": ["*"]}, "#/url"),
        ({"url": rig.receiver.url(), "events": ["record.posts.exploded"]}, "#/events/0"),
        ({"url": rig.receiver.url(), "events": ["nothing.*"]}, "#/events/0"),
        ({"url": rig.receiver.url(), "events": [f"auth.{n}" for n in range(10_000)]}, "events"),
        ({"url": rig.receiver.url(), "events": ["*"], "headers": {"webhook-id": "x"}}, "headers"),
    ]
    for body, pointer in bad:
        response = await client.post("/api/v1/webhooks", json=body, headers=admin)
        problem = assert_problem(response, 422)
        assert pointer in str(problem["errors"]), (body, problem)
    not_json = await client.post(
        "/api/v1/webhooks",
        content=b"{nope",
        headers={**admin, "content-type": "application/json"},
    )
    assert not_json.status_code in (400, 422)
    assert len((await rig.get("/api/v1/webhooks"))["items"]) == 1  # nothing stored

    user = bearer(await rig.kit.token(role="user"))
    assert_problem(await client.get("/api/v1/webhooks", headers=user), 403)
    assert_problem(await client.get("/api/v1/webhooks"), 401)
    deleted = await client.delete(f"/api/v1/webhooks/{created['id']}", headers=admin)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/api/v1/webhooks/{created['id']}", headers=admin), 404)


async def test_deliveries_verify_with_standardwebhooks(rig: Rig) -> None:
    created = await rig.endpoint()
    other = await rig.endpoint(events=["record.posts.created"])
    ids = [await record(rig.db, verb, "r1") for verb in ("created", "updated", "deleted")]
    await record(rig.db, "created", "c1", collection="comments")
    await rig.deliver()

    received = rig.receiver.to("/ok")
    mine = [d for d in received if verify_or_none(created["secret"], d)]
    types = [verify(created["secret"], d)["type"] for d in mine]
    # One record's events arrive in the order they were made; other targets run beside them.
    assert [t for t in types if t.startswith("record.posts.")] == [
        "record.posts.created",
        "record.posts.updated",
        "record.posts.deleted",
    ]
    assert sorted(types) == sorted([*types[:0], *types])
    assert "record.comments.created" in types
    first = verify(created["secret"], mine[0])
    assert first["data"]["id"] == ids[0]
    assert first["data"]["data"]["record"] == {"id": "r1", "title": "created"}
    assert mine[0].headers["content-type"] == "application/json"
    assert mine[0].headers["user-agent"].startswith("Garrison-Webhooks/")
    # The other endpoint got only what it subscribed to, signed with its own secret.
    theirs = [d for d in received if verify_or_none(other["secret"], d)]
    assert [verify(other["secret"], d)["type"] for d in theirs] == ["record.posts.created"]
    assert theirs[0].headers["webhook-id"] == mine[0].headers["webhook-id"]
    tampered = Delivery("/ok", mine[0].headers, mine[0].body.replace(b"created", b"CREATED"))
    with pytest.raises(WebhookVerificationError):
        verify(created["secret"], tampered)

    page = await rig.get(f"/api/v1/webhooks/{created['id']}/messages")
    assert [m["status"] for m in page["items"]] == ["succeeded"] * 4
    attempts = await rig.get(
        f"/api/v1/webhooks/{created['id']}/messages/{page['items'][0]['id']}/attempts"
    )
    [attempt] = attempts["items"]
    assert attempt["succeeded"] is True
    assert attempt["status_code"] == 204
    stats = await rig.get(f"/api/v1/webhooks/{created['id']}/stats")
    assert (stats["attempts"], stats["success_rate"], stats["backlog"]) == (4, 1.0, 0)
    assert stats["latency_p50_ms"] is not None


def verify_or_none(secret: str, delivery: Delivery) -> dict[str, Any] | None:
    try:
        return verify(secret, delivery)
    except WebhookVerificationError:
        return None


async def test_receiver_down_then_back_retries_on_schedule(rig: Rig) -> None:
    created = await rig.endpoint()
    rig.receiver.down = True
    event_id = await record(rig.db, "created", "r1")
    await rig.deliver()
    [message] = (await rig.get(f"/api/v1/webhooks/{created['id']}/messages"))["items"]
    assert (message["status"], message["attempts"]) == ("pending", 1)
    assert message["event_id"] == event_id
    await rig.deliver()  # the retry is not due yet: nothing is sent
    assert len(rig.receiver.to("/ok")) == 1
    await rig.make_due()
    await rig.deliver()
    rig.receiver.down = False
    await rig.make_due()
    await rig.deliver()
    deliveries = rig.receiver.to("/ok")
    assert len(deliveries) == 3
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1  # stable across retries
    verify(created["secret"], deliveries[-1])
    url = f"/api/v1/webhooks/{created['id']}/messages/{message['id']}/attempts"
    attempts = (await rig.get(url))["items"]
    assert [(a["succeeded"], a["status_code"]) for a in attempts] == [
        (False, 503),
        (False, 503),
        (True, 204),
    ]

    # The schedule runs out: the message fails for good and recover puts it back.
    rig.receiver.down = True
    await record(rig.db, "updated", "r1")
    for _ in SCHEDULE:
        await rig.deliver()
        await rig.make_due()
    failed = await rig.get(f"/api/v1/webhooks/{created['id']}/messages", status="failed")
    assert len(failed["items"]) == 1
    assert failed["items"][0]["attempts"] == len(SCHEDULE)
    rig.receiver.down = False
    since = (utcnow() - timedelta(minutes=5)).isoformat()
    recovered = await rig.kit.client.post(
        f"/api/v1/webhooks/{created['id']}/recover", json={"since": since}, headers=rig.admin
    )
    assert recovered.json() == {"requeued": 1}
    await rig.deliver()
    assert (await rig.get(f"/api/v1/webhooks/{created['id']}/messages", status="failed"))[
        "items"
    ] == []
    # Resend a delivered message: the same webhook-id again.
    before = len(rig.receiver.to("/ok"))
    resent = await rig.kit.client.post(
        f"/api/v1/webhooks/{created['id']}/messages/{message['id']}/resend", headers=rig.admin
    )
    assert resent.status_code == 202
    await rig.deliver()
    again = rig.receiver.to("/ok")
    assert len(again) == before + 1
    assert again[-1].headers["webhook-id"] == deliveries[0].headers["webhook-id"]


async def test_retry_after_410_and_auto_disable_with_alert(rig: Rig) -> None:
    limited = await rig.endpoint("/retry-after")
    gone = await rig.endpoint("/status/410")
    await record(rig.db, "created", "r1")
    start = utcnow()
    await rig.deliver()
    async with rig.db.read_session() as session:
        rows = {m.endpoint_id: m for m in (await session.scalars(select(WebhookMessage))).all()}
        endpoint = await session.get(WebhookEndpoint, gone["id"])
        assert endpoint is not None
        assert (endpoint.enabled, endpoint.disabled_reason) == (
            False,
            "the endpoint answered 410 Gone",
        )
    # 429 with Retry-After: 1 waits at least a second, though the schedule says 0.2 s.
    assert rows[limited["id"]].next_attempt_at >= start + timedelta(seconds=1)
    assert rows[gone["id"]].status == "failed"

    # An endpoint failing with no success for the configured period is disabled.
    rig.settings.webhooks.disable_after_seconds = 60
    failing = await rig.endpoint("/status/500")
    await record(rig.db, "updated", "r1")
    await rig.deliver()
    async with rig.db.transaction() as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == failing["id"])
            .values(failing_since=utcnow() - timedelta(seconds=61))
        )
    await rig.make_due()
    await rig.deliver()
    shown = await rig.get(f"/api/v1/webhooks/{failing['id']}")
    assert shown["enabled"] is False
    assert "no successful delivery" in shown["disabled_reason"]
    audit = await rig.get("/api/v1/audit", action="webhook.endpoint.disabled")
    assert {item["target"]["id"] for item in audit["items"]} >= {failing["id"], gone["id"]}
    async with rig.db.read_session() as session:
        alerts = (
            await session.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.topic == "mail.send")
            )
        ).scalar_one()
    assert alerts >= 2  # one e-mail per admin per disabled endpoint, queued with retries


async def test_rotated_secret_signs_twice_during_the_overlap(rig: Rig) -> None:
    created = await rig.endpoint()
    rotated = await rig.kit.client.post(
        f"/api/v1/webhooks/{created['id']}/rotate-secret", headers=rig.admin
    )
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != created["secret"]
    await record(rig.db, "created", "r1")
    await rig.deliver()
    [delivery] = rig.receiver.to("/ok")
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    assert verify(created["secret"], delivery) == verify(new, delivery)

    rig.settings.webhooks.secret_overlap_seconds = 0
    third = (
        await rig.kit.client.post(
            f"/api/v1/webhooks/{created['id']}/rotate-secret", headers=rig.admin
        )
    ).json()["secret"]
    test = await rig.kit.client.post(f"/api/v1/webhooks/{created['id']}/test", headers=rig.admin)
    assert test.status_code == 202
    await rig.deliver()
    last = rig.receiver.to("/ok")[-1]
    assert verify(third, last)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        verify(new, last)


async def test_hanging_endpoint_does_not_delay_the_others(rig: Rig) -> None:
    rig.settings.webhooks.timeout = 120
    await rig.endpoint("/hang")
    await rig.endpoint("/ok")
    for n in range(30):
        await record(rig.db, "created", f"r{n}")
    assert rig.worker.webhooks is not None
    stop = asyncio.Event()
    await rig.worker.seal()
    task = asyncio.create_task(rig.worker.webhooks.run(stop))
    try:
        await rig.receiver.wait_for("/ok", 30)  # every one, while /hang holds its slots
        assert len(rig.receiver.to("/hang")) <= rig.settings.webhooks.endpoint_concurrency
    finally:
        rig.receiver.release()
        stop.set()
        await task


async def test_misbehaving_receivers_are_cut_off_and_recorded(rig: Rig) -> None:
    rig.settings.webhooks.timeout = 20
    rig.settings.webhooks.max_response_bytes = 100_000
    paths = ["/huge", "/endless", "/binary", "/redirect"]
    endpoints = {path: (await rig.endpoint(path))["id"] for path in paths}
    await record(rig.db, "created", "r1")
    await rig.deliver()
    async with rig.db.read_session() as session:
        attempts = {a.endpoint_id: a for a in (await session.scalars(select(WebhookAttempt))).all()}
    for path in ("/huge", "/endless"):
        attempt = attempts[endpoints[path]]
        assert attempt.succeeded is False
        assert "over 100000 bytes" in (attempt.error or "")
        assert len(attempt.response_body or "") <= 4096
    binary = attempts[endpoints["/binary"]]
    assert binary.succeeded is True  # a 2xx is success; the body is stored readable
    assert "\ufffd" in (binary.response_body or "")
    redirect = attempts[endpoints["/redirect"]]
    assert (redirect.succeeded, redirect.status_code) == (False, 302)
    assert "not followed" in (redirect.error or "")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "ff02::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert ssrf.refusal(ipaddress.ip_address(address)) is not None


def test_public_addresses_are_allowed() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert ssrf.refusal(ipaddress.ip_address(address)) is None


async def test_production_refuses_private_and_plain_http(tmp_path: Path) -> None:
    settings = wh_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    settings.webhooks.allow_private_networks = False
    settings.webhooks.allow_http = False
    async with auth_app(settings) as kit:
        admin = bearer(await kit.token(role="admin"))
        for url, reason in [
            ("https://127.0.0.1/hook", "loopback"),
            ("https://169.254.169.254/latest/meta-data", "metadata"),
            ("https://[::ffff:10.0.0.1]/", "IPv4-mapped"),
            ("https://localhost/hook", "this machine"),
            ("http://example.com/hook", "https"),
        ]:
            response = await kit.client.post(
                "/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=admin
            )
            problem = assert_problem(response, 422)
            assert reason in str(problem["errors"]), (url, problem)


async def test_send_time_resolution_refuses_private_addresses(rig: Rig) -> None:
    """A host that passed at creation but resolves to loopback at send time is refused."""
    created = await rig.endpoint()
    async with rig.db.transaction() as session:
        await session.execute(
            update(WebhookEndpoint).values(url=f"https://localhost:{rig.receiver.port}/ok")
        )
    rig.worker.webhooks.sender.allow_private = False  # type: ignore[union-attr]
    await record(rig.db, "created", "r1")
    await rig.deliver()
    [message] = (await rig.get(f"/api/v1/webhooks/{created['id']}/messages"))["items"]
    attempts = (
        await rig.get(f"/api/v1/webhooks/{created['id']}/messages/{message['id']}/attempts")
    )["items"]
    # One attempt, or more when the 0.2 s retry fell due while the machine was busy: each
    # refused before a connection was made.
    assert attempts
    assert all(attempt["error"].startswith("refused: localhost") for attempt in attempts)
    assert rig.receiver.deliveries == []
    # The address a name resolves to is checked, not only the name.
    target = ssrf.Target("https", "localhost", rig.receiver.port, "/ok")
    with pytest.raises(ssrf.Refused, match=r"resolves to .*loopback"):
        await ssrf.resolve(target, allow_private=False)
    assert str(await ssrf.resolve(target, allow_private=True)) in ("127.0.0.1", "::1")


async def test_unsubscribed_events_write_nothing(rig: Rig) -> None:
    await rig.endpoint(events=["auth.user.created"], enabled=False)
    for n in range(5):
        await record(rig.db, "created", f"r{n}")
    await rig.worker.seal()
    async with rig.db.read_session() as session:
        for table in (WebhookMessage, OutboxMessage):
            count = await session.execute(select(func.count()).select_from(table))
            assert count.scalar_one() == 0, table


async def test_attempts_are_kept_for_the_retention_period(rig: Rig) -> None:
    created = await rig.endpoint()
    await record(rig.db, "created", "r1")
    await rig.deliver()
    async with rig.db.transaction() as session:
        await session.execute(
            update(WebhookAttempt).values(attempted_at=utcnow() - timedelta(days=31))
        )
        await session.execute(
            update(WebhookMessage).values(finished_at=utcnow() - timedelta(days=31))
        )
    assert rig.worker.webhooks is not None
    await rig.worker.webhooks._housekeeping()
    assert (await rig.get(f"/api/v1/webhooks/{created['id']}/messages"))["items"] == []


async def test_openapi_publishes_the_event_catalogue(rig: Rig) -> None:
    document = (await rig.kit.client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    hooks = document["webhooks"]
    assert {t.name for t in catalogue.EVENT_TYPES} <= set(hooks)
    schema = hooks["record.{collection}.created"]["post"]["requestBody"]["content"]
    assert "WebhookPayload" in orjson.dumps(schema).decode()


def test_filters_match_event_types() -> None:
    assert catalogue.event_type("record.created", "posts") == "record.posts.created"
    assert catalogue.matches(["record.*"], "record.posts.created")
    assert catalogue.matches(["record.posts.*"], "record.posts.deleted")
    assert not catalogue.matches(["record.posts.*"], "record.comments.created")
    assert catalogue.matches(["*"], "auth.login.failed")
    assert catalogue.unknown_filter("record.posts.created") is None
    assert catalogue.unknown_filter("auth.*") is None
    assert catalogue.unknown_filter("record.posts.exploded") is not None
    assert catalogue.unknown_filter("Record.*") is not None


async def test_secrets_rotate_reencrypts_under_the_new_key(
    tmp_path: Path, fresh_database_url: str
) -> None:
    old, new = "o" * 20 + "ld-master-key-0123456789", "n" * 20 + "ew-master-key-9876543210"
    settings = wh_settings(tmp_path, fresh_database_url, allow_private_networks=True)
    settings.secret_key = type(settings.secret_key)(old)  # type: ignore[misc]
    async with auth_app(settings) as kit:
        admin = bearer(await kit.token(role="admin"))
        body = {"url": "http://127.0.0.1:9/x", "events": ["*"]}
        created = (await kit.client.post("/api/v1/webhooks", json=body, headers=admin)).json()
    env = {
        "GARRISON_DATABASE_URL": settings.db_url,
        "GARRISON_DATA_DIR": str(settings.data_dir),
        "GARRISON_SECRET_KEY": new,
        "GARRISON_PREVIOUS_SECRET_KEYS": f'["{old}"]',
    }
    result = garrison("secrets", "rotate", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    # One webhook secret re-sealed, and the audit keys of the people the set-up's events
    # are about (the admin's); no other kind of sealed value exists here.
    rewrapped = dict(report["rewrapped"])
    assert rewrapped.pop("webhooks.secret") == 1
    assert rewrapped.pop("audit.subject_key") >= 1
    assert not any(rewrapped.values())
    assert report["key_id"] == Keyring(new).current_id
    db = Database(settings.db_url, settings.db)
    try:
        async with db.read_session() as session:
            sealed = (await session.execute(select(WebhookEndpoint.secret))).scalar_one()
    finally:
        await db.dispose()
    opened = Keyring(new).open_text(sealed, purpose="webhooks.secret", context=created["id"])
    assert opened == created["secret"]
    again = garrison("secrets", "rotate", "--json", env=env)
    assert not any(orjson.loads(again.stdout)["rewrapped"].values())
    assert keyring_for(settings).current_id != report["key_id"]


def test_secrets_command_has_help() -> None:
    result = garrison("secrets", "rotate", "--help")
    assert result.returncode == 0
    assert "PREVIOUS_SECRET_KEYS" in result.stdout
