"""Builds one process's ``Runtime`` and tears it down: the composition root of the app.

``open_runtime`` opens, in order, the database, the store and the caches, the domains'
app-wide objects (registered on the runtime by class), the metrics sampler, tracing and the
in-process worker; leaving the block closes them in reverse order, each once, even when a
later step failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from garrison.auth.runtime import AuthRuntime
from garrison.db.engine import Database
from garrison.db.migrate import head_revisions
from garrison.files.runtime import FileRuntime
from garrison.flags.runtime import FlagRuntime
from garrison.metrics import instrument_database
from garrison.metrics.process import sample_forever
from garrison.ops.health import HealthService
from garrison.ops.status.runtime import StatusRuntime
from garrison.outbox.registry import import_handler_modules
from garrison.quotas.service import QuotaLookup
from garrison.records.cache import CollectionCache, schema_bus
from garrison.runtime import Runtime
from garrison.settings import Settings
from garrison.store import wake
from garrison.store.factory import open_cache, open_pubsub, open_rate_limiter, open_store
from garrison.store.notices import NoticeBus
from garrison.store.redis import RedisStore
from garrison.worker import Worker

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, tracer: TracerProvider | None = None, components: tuple[object, ...] = ()
) -> AsyncIterator[Runtime]:
    """The runtime for ``settings``; ``components`` are registered as they are (the app
    passes the rate-limit counters its middleware already holds)."""
    async with AsyncExitStack() as stack:
        db = Database(settings.db_url, settings.db)
        stack.push_async_callback(db.dispose)
        store = open_store(settings)
        stack.push_async_callback(store.close)
        rate_limiter = open_rate_limiter(store)
        stack.push_async_callback(rate_limiter.close)
        cache = open_cache(settings, store)
        if isinstance(store, RedisStore):  # commits wake the workers of other processes
            stack.push_async_callback(wake.use_redis(store.client, settings.redis_prefix))
        runtime = Runtime(settings, db, store, cache, rate_limiter)
        for component in components:
            runtime.add(component)
        notices = NoticeBus(open_pubsub(settings))  # the domains' caches register on it
        await notices.start()
        stack.push_async_callback(notices.stop)
        runtime.add(notices)
        collections = CollectionCache(bus=schema_bus(store))
        collections.start()
        stack.push_async_callback(collections.stop)
        runtime.add(collections)
        quota_ttl = settings.rate_limit.quota_cache_seconds
        runtime.add(QuotaLookup(db=db, cache=cache, ttl=quota_ttl, notices=notices))
        health = HealthService(
            db=db,
            store=store if settings.redis_url or settings.redis_sentinels else None,
            data_dir=settings.data_dir,
            settings=settings.health,
            expected_revisions=head_revisions(),
            app_settings=settings,
        )
        runtime.add(health)
        if settings.metrics.enabled:
            instrument_database(db)
            config = settings.metrics
            sampler = sample_forever(config.process_interval, config.multiproc_dir)
            stack.push_async_callback(_cancel, asyncio.create_task(sampler))
        if tracer is not None:
            from garrison.tracing import instrument_database as trace_database

            trace_database(db, tracer)
            # Flushes the spans still queued; runs after the worker has stopped.
            stack.push_async_callback(asyncio.to_thread, tracer.shutdown)
        # After the instrumentation: the auth runtime reads the database in the background
        # (keys, the deny list), and every connection it checks out must be counted.
        auth = AuthRuntime(settings, db, store, notices=notices)
        await auth.start()
        stack.push_async_callback(auth.stop)
        runtime.add(auth)
        status = StatusRuntime(settings, db, health)
        await status.start()
        stack.push_async_callback(status.stop)
        runtime.add(status)
        runtime.add(status.read_only)  # the read-only middleware asks it
        flags = FlagRuntime(db, settings, open_pubsub(settings))
        await flags.start()
        stack.push_async_callback(flags.stop)
        runtime.add(flags)
        files = FileRuntime.open(settings)
        stack.push_async_callback(files.close)
        runtime.add(files)
        if settings.worker.in_process:
            import_handler_modules(settings.worker.handler_modules)
            worker = Worker(db, settings)
            runtime.add(worker)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop), name="garrison-worker")
            stack.push_async_callback(worker.shutdown, stop, task)
        yield runtime
