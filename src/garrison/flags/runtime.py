"""The flags a process serves: a snapshot in memory, compiled for this environment, swapped
whole when a change is announced.

A write commits, then its instance calls ``notify``: it reloads at once and publishes on
the change channel; every other instance hears it (Redis pub/sub, or the in-process
broadcast on the embedded default) and reloads too. A full reload also runs every
``flags.refresh_seconds``, and after a lost subscription, so a missed message only delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from garrison import flags
from garrison.db.engine import Database
from garrison.flags import service
from garrison.flags.principals import PrincipalCache
from garrison.flags.rules import ERROR, FLAG_NOT_FOUND, Evaluator, Resolution, compile_flag
from garrison.log import get_logger
from garrison.settings import Settings
from garrison.store.base import StoreUnavailable
from garrison.store.pubsub import PubSub

log = get_logger("garrison.flags")
RETRY_SECONDS = 1.0
START_WAIT = 2.0


@dataclass(frozen=True)
class Snapshot:
    evaluators: dict[str, Evaluator] = field(default_factory=dict)
    tag: str = "empty"  # changes whenever any definition does


def build_snapshot(definitions: list[dict[str, Any]], environment: str) -> Snapshot:
    digest = hashlib.sha256(environment.encode())
    evaluators: dict[str, Evaluator] = {}
    for item in definitions:
        evaluators[item["key"]] = compile_flag(item, environment)
        digest.update(f"\0{item['key']}\0{item['version']}".encode())
    return Snapshot(evaluators, digest.hexdigest()[:32])


class FlagRuntime:
    def __init__(self, db: Database, settings: Settings, pubsub: PubSub) -> None:
        self.db = db
        self.settings = settings
        self.config = settings.flags
        self.pubsub = pubsub
        self.snapshot = Snapshot()
        self.reloads = 0
        self.principals = PrincipalCache(self.config.principal_cache_seconds)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tried = asyncio.Event()  # a first load was attempted

    def evaluate(self, key: str, context: Mapping[str, Any]) -> Resolution:
        evaluator = self.snapshot.evaluators.get(key)
        if evaluator is None:
            return Resolution(key, None, None, ERROR, FLAG_NOT_FOUND, f"no flag {key!r}")
        return evaluator(context)

    def evaluate_all(self, context: Mapping[str, Any]) -> list[Resolution]:
        return [evaluator(context) for evaluator in self.snapshot.evaluators.values()]

    async def reload(self) -> None:
        try:
            async with self._lock:
                async with self.db.read_session() as session:
                    definitions = await service.all_definitions(session)
                self.snapshot = build_snapshot(definitions, self.settings.env)
                self.reloads += 1
        finally:
            self._tried.set()

    async def notify(self) -> None:
        """After a committed change: reload here, and tell every other instance."""
        await self.reload()
        try:
            await self.pubsub.publish(self.config.channel, self.snapshot.tag.encode())
        except StoreUnavailable as exc:
            log.warning("flags.notify_failed", error=str(exc))

    async def start(self) -> None:
        """Subscribe and load in the background; wait for the first load to succeed or fail,
        at most ``START_WAIT`` seconds, so a database that hangs never holds up the start."""
        self._task = asyncio.create_task(self._listen(), name="garrison-flags")
        flags._install(self.evaluate)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT):
                await self._tried.wait()

    async def stop(self) -> None:
        flags._install(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pubsub.close()

    async def _listen(self) -> None:
        while True:
            try:
                subscription = await self.pubsub.subscribe(self.config.channel)
            except StoreUnavailable as exc:
                log.warning("flags.subscribe_failed", error=str(exc))
                await self._reload_quietly()  # without notifications, still serve the latest
                await asyncio.sleep(RETRY_SECONDS)  # back-off before reconnecting
                continue
            try:
                await self._follow(subscription)
            except Exception as exc:
                log.warning("flags.subscription_lost", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                await subscription.close()

    async def _reload_quietly(self) -> None:
        try:
            await self.reload()
        except Exception as exc:  # not migrated yet, or down: retried
            log.warning("flags.not_loaded", error=type(exc).__name__)

    async def _follow(self, subscription: Any) -> None:
        # A reload after (re)subscribing covers whatever was announced while away.
        await self.reload()
        while True:
            message = await subscription.next(self.config.refresh_seconds)
            if message is not None and message == self.snapshot.tag.encode():
                continue  # our own announcement, or one we already have
            await self.reload()


def context_tag(snapshot_tag: str, context: Mapping[str, Any]) -> str:
    """The bulk response's ETag: the snapshot and the context it was evaluated for."""
    body = orjson.dumps(context, option=orjson.OPT_SORT_KEYS)
    return '"' + hashlib.sha256(snapshot_tag.encode() + b"\0" + body).hexdigest()[:32] + '"'
