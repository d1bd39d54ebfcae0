"""The event seam: every state change reports itself here, inside its own transaction.

    await events.emit(session, Event(action="record.updated", actor=actor, ...))

``emit`` is called with the session of the change, before the request boundary commits, so
the change and its audit entry (which carries the event for the outbox) commit together or
not at all.
``emit_standalone`` is for attempts that were denied or failed: their own transaction has
rolled back, so the audit entry is written in a transaction of its own. Called during a
request's ``WriteSession``, it is deferred until that transaction has ended (committed or
rolled back) and written before the response leaves: writing it at once would wait on the
request's own lock on SQLite (one writer at a time).

This module is the contract. Each event is handed to the installed *recorder*, in the
caller's transaction, and becomes a structured log line (secrets redacted). The recorder is
the audit log (``garrison.audit.install_recorder``, called by the composition roots: the
app, the CLI, the test fixtures): this module sits below every domain and imports none of
them. The worker then seals committed entries into the hash chain and turns each into a
message in the outbox (``garrison.outbox``) for the domains' handlers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.context import RequestContext, current_context
from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.log import get_logger, info_line, redact_secrets

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


@dataclass(frozen=True, kw_only=True)
class Event:
    """One state change (or attempt). ``action`` is dotted: ``auth.login.failed``.

    ``changes`` maps a field to ``(before, after)`` for updates; fields whose names look
    secret are redacted before anything is stored or logged. ``data`` is the payload that
    outbox consumers (webhooks, e-mail, cache invalidation) receive. ``id`` identifies the
    event in the audit log and in the outbox message (consumers deduplicate on it).
    """

    action: str
    actor: Actor
    target_type: str | None = None
    target_id: str | None = None
    outcome: Outcome = "success"
    changes: Mapping[str, tuple[Any, Any]] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    context: RequestContext = field(default_factory=current_context)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


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
            "event_id": event.id,
            "request_id": event.context.request_id,
        },
    )
    info_line(log, "event", dict(fields))  # every write logs one: the fast path when JSON


Recorder = Callable[[AsyncSession, "Event"], Awaitable[None]]
_recorder: Recorder | None = None


def install_recorder(recorder: Recorder) -> None:
    """Make ``recorder`` write every event (the audit log installs itself at start)."""
    global _recorder
    _recorder = recorder


class NoRecorder(RuntimeError):
    """An event was emitted before any recorder was installed: it would be lost."""


async def _record(session: AsyncSession, event: Event) -> None:
    if _recorder is None:  # refuse loudly: an unrecorded change would break the audit trail
        raise NoRecorder(f"no event recorder installed; {event.action} would go unrecorded")
    await _recorder(session, event)


async def emit(session: AsyncSession, event: Event) -> None:
    """Record ``event`` in the caller's transaction: one insert of its audit entry, which
    carries the whole event, with no lock shared with other writers. Once the transaction
    has committed the worker seals the entry into the hash chain and, in that same sealing
    transaction, writes its outbox message; a rolled-back change leaves neither."""
    await _record(session, event)
    _log(event)


_deferred: ContextVar[list[tuple[Database, Event]] | None] = ContextVar(
    "garrison_deferred_events", default=None
)


async def _standalone_now(db: Database, event: Event) -> None:
    async def work(session: AsyncSession) -> None:
        await _record(session, event)

    await transact(db, work)
    _log(event)


async def emit_standalone(db: Database, event: Event) -> None:
    """Record ``event`` in a transaction of its own (denied and failed attempts)."""
    pending = _deferred.get()
    if pending is not None:
        pending.append((db, event))
        return
    await _standalone_now(db, event)


@asynccontextmanager
async def deferring_standalone() -> AsyncIterator[None]:
    """Wrap a writer transaction: ``emit_standalone`` calls inside it are written when the
    block ends, after the transaction, each in its own transaction."""
    pending: list[tuple[Database, Event]] = []
    token = _deferred.set(pending)
    try:
        yield
    finally:
        _deferred.reset(token)
        for db, event in pending:
            try:
                await _standalone_now(db, event)
            except Exception as exc:  # the response is decided; do not turn it into a 500
                log.error("event.lost", action=event.action, event_id=event.id, error=str(exc))
