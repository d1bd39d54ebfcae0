"""``/api/v1/webhooks``: endpoints, secrets, the delivery log and replays (``webhooks:manage``)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, status

from garrison.auth.deps import require
from garrison.auth.principal import Principal
from garrison.crypto import Keyring, keyring_for
from garrison.deps import ReadSession, SettingsDep, WriteSession
from garrison.runtime import runtime_of
from garrison.webhooks import service
from garrison.webhooks.models import WebhookEndpoint, WebhookMessage
from garrison.webhooks.schemas import (
    AttemptOut,
    AttemptPage,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPage,
    EndpointPatch,
    MessageOut,
    MessagePage,
    RecoverIn,
    RecoverOut,
    SecretOut,
    StatsOut,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
Manager = Annotated[Principal, require("webhooks:manage")]
EndpointId = Annotated[str, Path(min_length=1, max_length=40)]
MessageId = Annotated[int, Path(ge=1)]


def _keyring(request: Request) -> Keyring:
    runtime = runtime_of(request)
    keyring = runtime.find(Keyring)
    if keyring is None:  # built once per process (no await between the look-up and the add)
        keyring = keyring_for(runtime.settings)
        runtime.add(keyring)
    return keyring


def _out(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
        "headers": endpoint.headers,
        "rate_per_second": endpoint.rate_per_second,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since,
        "last_success_at": endpoint.last_success_at,
        "secret_rotated_until": endpoint.previous_secret_until
        if endpoint.previous_secret
        else None,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


def _message(message: WebhookMessage) -> MessageOut:
    return MessageOut(
        id=message.id,
        msg_id=message.msg_id,
        event_id=message.event_id,
        event_type=message.event_type,
        status=message.status,
        attempts=message.attempts,
        next_attempt_at=message.next_attempt_at if message.status == "pending" else None,
        created_at=message.created_at,
        finished_at=message.finished_at,
        payload=orjson.loads(message.body),
    )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an endpoint")
async def create(
    body: EndpointIn,
    principal: Manager,
    session: WriteSession,
    settings: SettingsDep,
    request: Request,
) -> EndpointCreated:
    endpoint, secret = await service.create_endpoint(
        session,
        url=body.url,
        events=body.events,
        description=body.description,
        enabled=body.enabled,
        headers=body.headers,
        rate_per_second=body.rate_per_second,
        config=settings.webhooks,
        development=settings.is_development,
        keyring=_keyring(request),
        actor=principal.actor,
    )
    return EndpointCreated(**_out(endpoint), secret=secret)


@router.get("", summary="List endpoints")
async def list_all(_: Manager, session: ReadSession) -> EndpointPage:
    endpoints = await service.list_endpoints(session)
    return EndpointPage(items=[EndpointOut(**_out(e)) for e in endpoints])


@router.get("/{endpoint_id}", summary="One endpoint")
async def get(endpoint_id: EndpointId, _: Manager, session: ReadSession) -> EndpointOut:
    return EndpointOut(**_out(await service.get_endpoint(session, endpoint_id=endpoint_id)))


@router.patch("/{endpoint_id}", summary="Change an endpoint")
async def patch(
    endpoint_id: EndpointId,
    body: EndpointPatch,
    principal: Manager,
    session: WriteSession,
    settings: SettingsDep,
) -> EndpointOut:
    endpoint = await service.update_endpoint(
        session,
        endpoint_id=endpoint_id,
        changes=body.model_dump(exclude_unset=True),
        config=settings.webhooks,
        development=settings.is_development,
        actor=principal.actor,
    )
    return EndpointOut(**_out(endpoint))


@router.delete(
    "/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an endpoint"
)
async def delete(endpoint_id: EndpointId, principal: Manager, session: WriteSession) -> None:
    await service.delete_endpoint(session, endpoint_id=endpoint_id, actor=principal.actor)


@router.post("/{endpoint_id}/rotate-secret", summary="Issue a new signing secret")
async def rotate_secret(
    endpoint_id: EndpointId,
    principal: Manager,
    session: WriteSession,
    settings: SettingsDep,
    request: Request,
) -> SecretOut:
    secret, until = await service.rotate_secret(
        session,
        endpoint_id=endpoint_id,
        config=settings.webhooks,
        keyring=_keyring(request),
        actor=principal.actor,
    )
    return SecretOut(secret=secret, previous_valid_until=until)


@router.post(
    "/{endpoint_id}/test", status_code=status.HTTP_202_ACCEPTED, summary="Send webhook.test"
)
async def send_test(
    endpoint_id: EndpointId, principal: Manager, session: WriteSession
) -> MessageOut:
    message = await service.send_test(session, endpoint_id=endpoint_id, actor=principal.actor)
    return _message(message)


@router.get("/{endpoint_id}/messages", summary="Messages for this endpoint, newest first")
async def messages(
    endpoint_id: EndpointId,
    _: Manager,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(ge=1)] = None,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(pending|succeeded|failed)$")
    ] = None,
) -> MessagePage:
    rows, next_cursor = await service.list_messages(
        session, endpoint_id=endpoint_id, limit=limit, before=cursor, status=status_
    )
    return MessagePage(items=[_message(m) for m in rows], next_cursor=next_cursor)


@router.get("/{endpoint_id}/messages/{message_id}/attempts", summary="Attempts of a message")
async def attempts(
    endpoint_id: EndpointId, message_id: MessageId, _: Manager, session: ReadSession
) -> AttemptPage:
    rows = await service.list_attempts(session, endpoint_id=endpoint_id, message_id=message_id)
    return AttemptPage(
        items=[
            AttemptOut(
                id=a.id,
                attempted_at=a.attempted_at,
                succeeded=a.succeeded,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                response_body=a.response_body,
                error=a.error,
                trigger=a.trigger,
            )
            for a in rows
        ]
    )


@router.post(
    "/{endpoint_id}/messages/{message_id}/resend",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Deliver a message again (same webhook-id)",
)
async def resend(
    endpoint_id: EndpointId, message_id: MessageId, principal: Manager, session: WriteSession
) -> MessageOut:
    message = await service.resend(
        session, endpoint_id=endpoint_id, message_id=message_id, actor=principal.actor
    )
    return _message(message)


@router.post(
    "/{endpoint_id}/recover",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Retry every failed message since a time",
)
async def recover(
    endpoint_id: EndpointId, body: RecoverIn, principal: Manager, session: WriteSession
) -> RecoverOut:
    since = body.since if body.since.tzinfo else body.since.replace(tzinfo=UTC)
    count = await service.recover(
        session, endpoint_id=endpoint_id, since=since, actor=principal.actor
    )
    return RecoverOut(requeued=count)


@router.get("/{endpoint_id}/stats", summary="Success rate, latency and backlog")
async def stats(
    endpoint_id: EndpointId,
    _: Manager,
    session: ReadSession,
    window_hours: Annotated[float, Query(gt=0, le=24 * 30)] = 24,
) -> StatsOut:
    return StatsOut(
        **await service.stats(session, endpoint_id=endpoint_id, window_hours=window_hours)
    )
