"""The event types an endpoint can subscribe to, their filters, and the OpenAPI 3.1
``webhooks`` section that publishes them with their payload schemas.

Record events are typed per collection: the audit action ``record.created`` on collection
``posts`` is delivered as ``record.posts.created``. A filter is an exact type, a prefix
ending in ``.*`` (``record.posts.*``, ``auth.*``) or ``*`` for everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

COLLECTION = "{collection}"
_SEGMENT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FILTER_SHAPE = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")


@dataclass(frozen=True)
class EventType:
    name: str
    summary: str


EVENT_TYPES: tuple[EventType, ...] = (
    EventType("record.{collection}.created", "A record was created in a collection"),
    EventType("record.{collection}.updated", "A record was changed"),
    EventType("record.{collection}.deleted", "A record was deleted"),
    EventType("collection.created", "A collection was created"),
    EventType("collection.schema_changed", "A collection's fields or indexes changed"),
    EventType("collection.deleted", "A collection was dropped"),
    EventType("auth.user.created", "A user account was created"),
    EventType("auth.user.disabled", "A user account was disabled"),
    EventType("auth.user.enabled", "A user account was enabled again"),
    EventType("auth.user.roles_changed", "A user's roles changed"),
    EventType("auth.login.succeeded", "A user signed in"),
    EventType("auth.login.failed", "A sign-in was refused"),
    EventType("auth.logout", "A user signed out"),
    EventType("auth.lockout", "An account or address was locked out"),
    EventType("auth.password.changed", "A password was changed or reset"),
    EventType("auth.email.verified", "An e-mail address was verified"),
    EventType("auth.refresh.reuse_detected", "A refresh token was reused (possible theft)"),
    EventType("auth.api_key.created", "An API key was created"),
    EventType("auth.api_key.revoked", "An API key was revoked"),
    EventType("auth.role.created", "A role was created"),
    EventType("auth.role.updated", "A role's permissions changed"),
    EventType("auth.role.deleted", "A role was deleted"),
    EventType("quota.created", "A quota was created"),
    EventType("quota.updated", "A quota was changed"),
    EventType("quota.deleted", "A quota was deleted"),
    EventType("webhook.endpoint.created", "A webhook endpoint was created"),
    EventType("webhook.endpoint.updated", "A webhook endpoint was changed"),
    EventType("webhook.endpoint.deleted", "A webhook endpoint was deleted"),
    EventType("webhook.endpoint.disabled", "An endpoint was disabled after failing"),
    EventType("webhook.test", "A test event sent on request"),
    EventType("flag.updated", "A feature flag was created, changed or deleted"),
    EventType("privacy.export.requested", "A personal-data export was requested"),
    EventType("privacy.erasure.completed", "A user's personal data was erased"),
    EventType("status.incident.created", "An incident was opened on the status page"),
    EventType("status.incident.updated", "An incident got a new update"),
    EventType("status.incident.resolved", "An incident was resolved"),
    EventType("status.maintenance.scheduled", "A maintenance window was scheduled"),
    EventType("status.maintenance.updated", "A maintenance window was changed"),
    EventType("status.maintenance.cancelled", "A maintenance window was cancelled or ended early"),
    EventType("status.maintenance.started", "A maintenance window began"),
    EventType("status.maintenance.ended", "A maintenance window ended"),
    EventType("alert.opened", "An alert rule fired"),
    EventType("alert.resolved", "A firing alert resolved"),
)
RECORD_VERBS = ("created", "updated", "deleted")


def event_type(action: str, target_type: str | None) -> str:
    """The webhook type of an audit action (records are typed per collection)."""
    if action.startswith("record.") and target_type and action.count(".") == 1:
        return f"record.{target_type}.{action.split('.', 1)[1]}"
    return action


def _type_matches(pattern: str, name: str) -> bool:
    want, have = pattern.split("."), name.split(".")
    if len(want) != len(have):
        return False
    return all(
        w == h or (w == COLLECTION and _SEGMENT.match(h)) for w, h in zip(want, have, strict=True)
    )


def _prefix_matches(pattern: str, prefix: list[str]) -> bool:
    want = pattern.split(".")
    if len(prefix) >= len(want):
        return False
    return all(
        w == p or (w == COLLECTION and _SEGMENT.match(p))
        for w, p in zip(want[: len(prefix)], prefix, strict=True)
    )


def unknown_filter(value: str) -> str | None:
    """Why ``value`` is not a filter of a known type, or None when it is one."""
    if not FILTER_SHAPE.match(value) or len(value) > 160:
        return "use an event type, a prefix ending in .* or *"
    if value == "*":
        return None
    if value.endswith(".*"):
        prefix = value[:-2].split(".")
        if any(_prefix_matches(t.name, prefix) for t in EVENT_TYPES):
            return None
        return f"no event type starts with {value[:-2]!r}"
    if any(_type_matches(t.name, value) for t in EVENT_TYPES):
        return None
    return f"unknown event type {value!r}"


def matches(filters: list[str], name: str) -> bool:
    for item in filters:
        if item == "*" or item == name:
            return True
        if item.endswith(".*") and name.startswith(item[:-1]):
            return True
    return False


# -- the OpenAPI ``webhooks`` section ------------------------------------------------------


class Actor(BaseModel):
    kind: str = Field(description="user, api_key, service, system or anonymous")
    id: str | None = None


class EventData(BaseModel):
    """What every delivery's ``data`` holds."""

    id: str = Field(description="the event id (the same in the audit log)")
    action: str = Field(description="the audit action, e.g. record.created")
    occurred_at: str
    actor: Actor
    target: dict[str, str | None] = Field(description="{type, id} of what changed")
    outcome: str = Field(description="success, denied or failed")
    changes: dict[str, Any] = Field(description="field -> [before, after] (secrets redacted)")
    data: dict[str, Any] = Field(description="the event's payload, e.g. the record")


class WebhookPayload(BaseModel):
    """The body of every delivery (Standard Webhooks). Verify the ``webhook-signature``
    header over ``webhook-id.webhook-timestamp.body`` with the endpoint's secret."""

    type: str
    timestamp: str = Field(description="RFC 3339 time the event occurred")
    data: EventData


def catalogue_router() -> APIRouter:
    """One POST operation per event type, for ``app.webhooks`` (OpenAPI 3.1)."""
    router = APIRouter()
    for item in EVENT_TYPES:

        async def receive(payload: Annotated[WebhookPayload, Body()]) -> None:  # pragma: no cover
            """Receivers answer 2xx to acknowledge."""

        router.add_api_route(
            item.name,
            receive,
            methods=["POST"],
            summary=item.summary,
            name=item.name,
            operation_id="webhook_" + item.name.replace(".", "_").replace("{", "").replace("}", ""),
        )
    return router
