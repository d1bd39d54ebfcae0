"""Handlers that domains register for outbox messages.

    from garrison import outbox

    async def send_webhooks(message: outbox.Message, db: Database) -> None: ...
    outbox.register("record.", send_webhooks)

Messages are written only for events that a registered handler wants (``Registry.wants``);
sinks (``register_sink``) see every sealed event in the sealing transaction and keep their own
queue (webhooks do). The audit log stays complete either way.

A handler is called at least once per matching message (exactly once unless a worker dies
or a handler fails mid-batch), so it must be idempotent: ``message.event_id`` is stable
across redeliveries. A message is finished when every matching handler has returned; if
one raises, the message is retried later and all its handlers run again.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.settings import ENV_PREFIX, ConfigError


@dataclass(frozen=True)
class Message:
    id: int
    event_id: str
    topic: str
    target_type: str | None
    target_id: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


Handler = Callable[[Message, Database], Awaitable[None]]
# A sink sees every sealed event in the sealing transaction (payloads as consumers receive
# them) and writes what it needs there: webhooks fan out to their own per-endpoint queue.
Sink = Callable[[AsyncSession, Sequence[Mapping[str, Any]]], Awaitable[None]]


def matches(prefix: str, topic: str) -> bool:
    """``""`` and ``"*"`` match everything; ``"record"`` and ``"record."`` match
    ``record.created`` (and ``record`` itself) but not ``records.x``."""
    if prefix in ("", "*"):
        return True
    bare = prefix.rstrip(".")
    return topic == bare or topic.startswith(bare + ".")


class Registry:
    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler, str | None]] = []
        self._sinks: dict[str, Sink] = {}

    def register(self, event_prefix: str, handler: Handler, *, key: str | None = None) -> None:
        """``key`` names a built-in consumer: registering it again replaces it."""
        if key is not None:
            self._handlers = [entry for entry in self._handlers if entry[2] != key]
        self._handlers.append((event_prefix, handler, key))

    def unregister(self, handler: Handler) -> None:
        self._handlers = [entry for entry in self._handlers if entry[1] is not handler]

    def handlers_for(self, topic: str) -> list[Handler]:
        return [handler for prefix, handler, _ in self._handlers if matches(prefix, topic)]

    def wants(self, topic: str) -> bool:
        """True when a handler will consume ``topic`` (else no message is written)."""
        return any(matches(prefix, topic) for prefix, _, _ in self._handlers)

    def register_sink(self, name: str, sink: Sink) -> None:
        self._sinks[name] = sink

    def unregister_sink(self, name: str) -> None:
        self._sinks.pop(name, None)

    @property
    def sinks(self) -> list[Sink]:
        return list(self._sinks.values())


registry = Registry()


def register(event_prefix: str, handler: Handler) -> None:
    """Subscribe ``handler`` to every message whose topic starts with ``event_prefix``."""
    registry.register(event_prefix, handler)


def import_handler_modules(modules: Iterable[str]) -> None:
    """Import the modules named in ``worker.handler_modules`` (they call ``register``)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"{ENV_PREFIX}WORKER__HANDLER_MODULES", f"cannot import {name!r}: {exc}"
            ) from None
