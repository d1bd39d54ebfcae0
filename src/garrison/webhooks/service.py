"""Webhook endpoints and their delivery log. Keyword-only, typed, never commits.

Fan-out happens in the worker's sealing transaction (``fan_out``): each sealed event that
an enabled endpoint subscribes to becomes one message per endpoint, so delivery to one
endpoint never waits on another and nothing is written for events nobody subscribed to.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import rewrap
from garrison.crypto import Keyring
from garrison.db.types import utcnow
from garrison.errors import NotFound, ValidationFailed
from garrison.events import Actor, Event, emit
from garrison.webhooks import catalogue, ssrf
from garrison.webhooks.config import WebhookSettings
from garrison.webhooks.models import (
    FAILED,
    PENDING,
    SUCCEEDED,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from garrison.webhooks.signing import new_secret

PURPOSE = "webhooks.secret"
_messages: Table = WebhookMessage.__table__  # type: ignore[assignment]
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
_RESERVED_HEADERS = {
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "user-agent",
    "te",
    "upgrade",
}


def _problem(pointer: str, detail: str) -> ValidationFailed:
    return ValidationFailed(detail, errors=[{"pointer": pointer, "detail": detail}])


def check_url(url: str, *, config: WebhookSettings, development: bool) -> str:
    try:
        ssrf.check_url(
            url,
            allow_http=config.http_allowed(development),
            allow_private=config.private_allowed(development),
        )
    except ssrf.Refused as exc:
        raise _problem("#/url", str(exc)) from None
    return url


def check_filters(values: Sequence[str], *, config: WebhookSettings) -> list[str]:
    if len(values) > config.max_filters:
        raise _problem("#/events", f"at most {config.max_filters} filters")
    for index, value in enumerate(values):
        if reason := catalogue.unknown_filter(value):
            raise _problem(f"#/events/{index}", reason)
    return sorted(set(values))


def check_headers(values: Mapping[str, str]) -> dict[str, str]:
    for name, value in values.items():
        pointer = f"#/headers/{name}"
        if not _HEADER_NAME.match(name):
            raise _problem(pointer, "not a valid header name")
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("webhook-"):
            raise _problem(pointer, "this header is set by Garrison")
        if len(value) > 1000 or any(ch in value for ch in "\r\n\x00"):
            raise _problem(pointer, "a header value is one line of at most 1000 characters")
    return dict(values)


async def get_endpoint(session: AsyncSession, *, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    return endpoint


async def list_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    return list((await session.scalars(query)).all())


async def create_endpoint(
    session: AsyncSession,
    *,
    url: str,
    events: Sequence[str],
    description: str,
    enabled: bool,
    headers: Mapping[str, str],
    rate_per_second: float | None,
    config: WebhookSettings,
    development: bool,
    keyring: Keyring,
    actor: Actor,
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its signing secret (returned this once, stored sealed)."""
    endpoint_id = "ep_" + uuid.uuid4().hex
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        url=check_url(url, config=config, development=development),
        description=description,
        events=check_filters(events, config=config),
        headers=check_headers(headers),
        enabled=enabled,
        rate_per_second=rate_per_second,
        secret=keyring.seal(secret, purpose=PURPOSE, context=endpoint_id),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    await emit(
        session,
        Event(
            action="webhook.endpoint.created",
            actor=actor,
            target_type="webhook_endpoint",
            target_id=endpoint_id,
            data={"url": endpoint.url, "events": endpoint.events},
        ),
    )
    return endpoint, secret


async def update_endpoint(
    session: AsyncSession,
    *,
    endpoint_id: str,
    changes: Mapping[str, Any],
    config: WebhookSettings,
    development: bool,
    actor: Actor,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id=endpoint_id)
    before: dict[str, Any] = {}
    if "url" in changes and changes["url"] is not None:
        before["url"] = endpoint.url
        endpoint.url = check_url(changes["url"], config=config, development=development)
    if "events" in changes and changes["events"] is not None:
        before["events"] = endpoint.events
        endpoint.events = check_filters(changes["events"], config=config)
    if "headers" in changes and changes["headers"] is not None:
        before["headers"] = sorted(endpoint.headers)
        endpoint.headers = check_headers(changes["headers"])
    if "description" in changes and changes["description"] is not None:
        before["description"] = endpoint.description
        endpoint.description = changes["description"]
    if "rate_per_second" in changes:
        before["rate_per_second"] = endpoint.rate_per_second
        endpoint.rate_per_second = changes["rate_per_second"]
    if "enabled" in changes and changes["enabled"] is not None:
        before["enabled"] = endpoint.enabled
        endpoint.enabled = bool(changes["enabled"])
        if endpoint.enabled:  # a fresh start: the failure clock begins again
            endpoint.disabled_reason = None
            endpoint.failing_since = None
    endpoint.updated_at = utcnow()
    await session.flush()
    after = {
        "url": endpoint.url,
        "events": endpoint.events,
        "headers": sorted(endpoint.headers),
        "description": endpoint.description,
        "rate_per_second": endpoint.rate_per_second,
        "enabled": endpoint.enabled,
    }
    await emit(
        session,
        Event(
            action="webhook.endpoint.updated",
            actor=actor,
            target_type="webhook_endpoint",
            target_id=endpoint_id,
            changes={key: (value, after[key]) for key, value in before.items()},
        ),
    )
    return endpoint


async def delete_endpoint(session: AsyncSession, *, endpoint_id: str, actor: Actor) -> None:
    endpoint = await get_endpoint(session, endpoint_id=endpoint_id)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id))
    await session.execute(delete(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id))
    await session.delete(endpoint)
    await emit(
        session,
        Event(
            action="webhook.endpoint.deleted",
            actor=actor,
            target_type="webhook_endpoint",
            target_id=endpoint_id,
        ),
    )


async def rotate_secret(
    session: AsyncSession,
    *,
    endpoint_id: str,
    config: WebhookSettings,
    keyring: Keyring,
    actor: Actor,
) -> tuple[str, datetime | None]:
    """A new secret; the old one keeps signing (a second signature) for the overlap."""
    endpoint = await get_endpoint(session, endpoint_id=endpoint_id)
    secret = new_secret()
    until = utcnow() + timedelta(seconds=config.secret_overlap_seconds)
    if config.secret_overlap_seconds > 0:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_until = until
    else:
        endpoint.previous_secret = endpoint.previous_secret_until = None
    endpoint.secret = keyring.seal(secret, purpose=PURPOSE, context=endpoint_id)
    endpoint.updated_at = utcnow()
    await session.flush()
    await emit(
        session,
        Event(
            action="webhook.endpoint.secret_rotated",
            actor=actor,
            target_type="webhook_endpoint",
            target_id=endpoint_id,
        ),
    )
    return secret, endpoint.previous_secret_until


def signing_secrets(
    endpoint: WebhookEndpoint, *, keyring: Keyring, now: datetime | None = None
) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one during
    the overlap after a rotation."""
    found = [keyring.open_text(endpoint.secret, purpose=PURPOSE, context=endpoint.id)]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and until > (now or utcnow()):
        found.append(
            keyring.open_text(endpoint.previous_secret, purpose=PURPOSE, context=endpoint.id)
        )
    return found


# -- messages ------------------------------------------------------------------------------


def body_for(event_type: str, payload: Mapping[str, Any]) -> str:
    return orjson.dumps(
        {"type": event_type, "timestamp": payload.get("occurred_at"), "data": payload},
        default=str,
    ).decode()


def _message_row(
    endpoint_id: str, event_id: str, event_type: str, key: str | None, body: str, now: datetime
) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "msg_id": "msg_" + event_id.replace("-", ""),
        "event_type": event_type,
        "ordering_key": key,
        "body": body,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def subscriptions(session: AsyncSession) -> list[tuple[str, list[str]]]:
    """(endpoint id, filters) of every enabled endpoint."""
    rows = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.enabled.is_(True))
    )
    return [(str(row[0]), list(row[1])) for row in rows]


async def fan_out(session: AsyncSession, *, events: Sequence[Mapping[str, Any]]) -> int:
    """One message per (event, subscribed endpoint), in the caller's transaction. ``events``
    are outbox payloads (``id``, ``action``, ``target``, …); returns how many messages."""
    subscribed = await subscriptions(session)
    if not subscribed:
        return 0
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for payload in events:
        target = payload.get("target") or {}
        name = catalogue.event_type(str(payload["action"]), target.get("type"))
        matching = [ep for ep, filters in subscribed if catalogue.matches(filters, name)]
        if not matching:
            continue
        body = body_for(name, payload)
        key = f"{target.get('type')}:{target.get('id')}" if target.get("type") else None
        for endpoint_id in matching:
            rows.append(_message_row(endpoint_id, str(payload["id"]), name, key, body, now))
    if rows:
        await session.execute(insert(_messages), rows)
    return len(rows)


async def send_test(session: AsyncSession, *, endpoint_id: str, actor: Actor) -> WebhookMessage:
    endpoint = await get_endpoint(session, endpoint_id=endpoint_id)
    event_id = str(uuid.uuid4())
    now = utcnow()
    payload = {
        "id": event_id,
        "action": "webhook.test",
        "occurred_at": now.isoformat().replace("+00:00", "Z"),
        "actor": {"kind": actor.kind, "id": actor.id},
        "target": {"type": "webhook_endpoint", "id": endpoint.id},
        "outcome": "success",
        "changes": {},
        "data": {"message": "This is a test event from Garrison."},
    }
    row = _message_row(
        endpoint.id, event_id, "webhook.test", None, body_for("webhook.test", payload), now
    )
    message = WebhookMessage(**row)
    session.add(message)
    await session.flush()
    return message


async def list_messages(
    session: AsyncSession,
    *,
    endpoint_id: str,
    limit: int,
    before: int | None = None,
    status: str | None = None,
) -> tuple[list[WebhookMessage], int | None]:
    """Newest first, with the id to continue before (None at the end)."""
    await get_endpoint(session, endpoint_id=endpoint_id)
    query = select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)
    if before is not None:
        query = query.where(WebhookMessage.id < before)
    if status is not None:
        query = query.where(WebhookMessage.status == status)
    rows = list(
        (await session.scalars(query.order_by(WebhookMessage.id.desc()).limit(limit + 1))).all()
    )
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


async def get_message(
    session: AsyncSession, *, endpoint_id: str, message_id: int
) -> WebhookMessage:
    message = await session.get(WebhookMessage, message_id)
    if message is None or message.endpoint_id != endpoint_id:
        raise NotFound(f"no message {message_id} for endpoint {endpoint_id!r}")
    return message


async def list_attempts(
    session: AsyncSession, *, endpoint_id: str, message_id: int
) -> list[WebhookAttempt]:
    await get_message(session, endpoint_id=endpoint_id, message_id=message_id)
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.message_id == message_id)
        .order_by(WebhookAttempt.id)
    )
    return list((await session.scalars(query)).all())


async def resend(
    session: AsyncSession, *, endpoint_id: str, message_id: int, actor: Actor
) -> WebhookMessage:
    """Deliver the message again now (same ``webhook-id``), whatever its state."""
    message = await get_message(session, endpoint_id=endpoint_id, message_id=message_id)
    message.status = PENDING
    message.next_attempt_at = utcnow()
    message.claimed_until = None
    message.finished_at = None
    message.attempts = 0
    await session.flush()
    await emit(
        session,
        Event(
            action="webhook.message.resent",
            actor=actor,
            target_type="webhook_endpoint",
            target_id=endpoint_id,
            data={"message": message_id},
        ),
    )
    return message


async def recover(session: AsyncSession, *, endpoint_id: str, since: datetime, actor: Actor) -> int:
    """Put every failed message of the endpoint created since ``since`` back in line."""
    await get_endpoint(session, endpoint_id=endpoint_id)
    result = await session.execute(
        update(WebhookMessage)
        .where(
            WebhookMessage.endpoint_id == endpoint_id,
            WebhookMessage.status == FAILED,
            WebhookMessage.created_at >= since,
        )
        .values(status=PENDING, attempts=0, next_attempt_at=utcnow(), finished_at=None)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    await emit(
        session,
        Event(
            action="webhook.endpoint.recovered",
            actor=actor,
            target_type="webhook_endpoint",
            target_id=endpoint_id,
            data={"since": since.isoformat(), "requeued": count},
        ),
    )
    return count


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def stats(session: AsyncSession, *, endpoint_id: str, window_hours: float) -> dict[str, Any]:
    await get_endpoint(session, endpoint_id=endpoint_id)
    since = utcnow() - timedelta(hours=window_hours)
    rows = (
        await session.execute(
            select(WebhookAttempt.succeeded, WebhookAttempt.latency_ms)
            .where(WebhookAttempt.endpoint_id == endpoint_id, WebhookAttempt.attempted_at >= since)
            .order_by(WebhookAttempt.id.desc())
            .limit(50_000)
        )
    ).all()
    succeeded = sum(1 for row in rows if row[0])
    latencies = [float(row[1]) for row in rows]

    async def count(status: str) -> int:
        query = (
            select(func.count())
            .select_from(WebhookMessage)
            .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == status)
        )
        return int((await session.execute(query)).scalar_one())

    return {
        "window_hours": window_hours,
        "attempts": len(rows),
        "succeeded": succeeded,
        "success_rate": succeeded / len(rows) if rows else None,
        "latency_p50_ms": _percentile(latencies, 0.5),
        "latency_p95_ms": _percentile(latencies, 0.95),
        "backlog": await count(PENDING),
        "failed_messages": await count(FAILED),
    }


async def backlog(session: AsyncSession) -> dict[str, int]:
    """Pending messages per endpoint (for the metrics gauge)."""
    rows = await session.execute(
        select(WebhookMessage.endpoint_id, func.count())
        .where(WebhookMessage.status == PENDING)
        .group_by(WebhookMessage.endpoint_id)
    )
    return {str(row[0]): int(row[1]) for row in rows}


async def purge(session: AsyncSession, *, older_than: datetime, limit: int = 5000) -> int:
    """Delete attempts, and finished messages, older than ``older_than`` (retention)."""
    ids = (
        await session.scalars(
            select(WebhookAttempt.id).where(WebhookAttempt.attempted_at < older_than).limit(limit)
        )
    ).all()
    if ids:
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.id.in_(list(ids))))
    done = (
        await session.scalars(
            select(WebhookMessage.id)
            .where(
                WebhookMessage.status.in_([SUCCEEDED, FAILED]),
                WebhookMessage.finished_at < older_than,
            )
            .limit(limit)
        )
    ).all()
    if done:
        await session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(list(done))))
    return len(ids) + len(done)


async def rewrap_secrets(session: AsyncSession, *, keyring: Keyring) -> int:
    """Re-encrypt endpoint secrets sealed under an older master key (``secrets rotate``)."""
    count = 0
    for endpoint in await list_endpoints(session):
        if keyring.needs_rewrap(endpoint.secret):
            endpoint.secret = keyring.rewrap(endpoint.secret, purpose=PURPOSE, context=endpoint.id)
            count += 1
        if endpoint.previous_secret and keyring.needs_rewrap(endpoint.previous_secret):
            endpoint.previous_secret = keyring.rewrap(
                endpoint.previous_secret, purpose=PURPOSE, context=endpoint.id
            )
            count += 1
    await session.flush()
    return count


async def _rewrap(session: AsyncSession, keyring: Keyring) -> int:
    return await rewrap_secrets(session, keyring=keyring)


rewrap.register(PURPOSE, _rewrap)
