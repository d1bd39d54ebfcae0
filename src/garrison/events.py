"""The event seam: every state change reports itself here, inside its own transaction.

    await events.emit(session, Event(action="record.updated", actor=actor, ...))

``emit`` is called with the session of the change, before the request boundary commits, so
the change, its audit entry and its outbox message commit together or not at all.
``emit_standalone`` is for attempts that were denied or failed: their own transaction has
rolled back, so the audit entry is written in a transaction of its own.

This module is the contract. Until the audit domain fills it in, ``emit`` writes a
structured log line (with secrets redacted) and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.gateway.context import RequestContext, current_context
from garrison.log import get_logger, redact_secrets

ActorKind = Literal["user", "api_key", "service", "system", "anonymous"]
Outcome = Literal["success", "denied", "failed"]

log = get_logger("garrison.events")


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls("system")

    @classmethod
    def anonymous(cls) -> Actor:
        return cls("anonymous")


@dataclass(frozen=True)
class Event:
    """One state change (or attempt). ``action`` is dotted: ``auth.login.failed``.

    ``changes`` maps a field to ``(before, after)`` for updates; fields whose names look
    secret are redacted before anything is stored or logged. ``data`` is the payload that
    outbox consumers (webhooks, e-mail, cache invalidation) receive.
    """

    action: str
    actor: Actor
    target_type: str | None = None
    target_id: str | None = None
    outcome: Outcome = "success"
    changes: Mapping[str, tuple[Any, Any]] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    context: RequestContext = field(default_factory=current_context)


def _log(event: Event) -> None:
    fields = redact_secrets(
        None,
        "info",
        {
            "action": event.action,
            "actor_kind": event.actor.kind,
            "actor_id": event.actor.id,
            "target_type": event.target_type,
            "target_id": event.target_id,
            "outcome": event.outcome,
            "ip": event.context.ip,
        },
    )
    log.info("event", **fields)


async def emit(session: AsyncSession, event: Event) -> None:
    """Record ``event`` in the caller's transaction."""
    _log(event)


async def emit_standalone(db: Database, event: Event) -> None:
    """Record ``event`` in a transaction of its own (denied and failed attempts)."""
    _log(event)
