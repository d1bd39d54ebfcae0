"""The ops domain's periodic jobs and the state they keep between runs.

The worker schedules them (``garrison.worker.standard_jobs`` lists each with its interval);
each run is a self-contained ``run_once`` in its own module:

    status.sample   garrison.ops.status.sampler.run_once    status.sample_interval_seconds
    status.announce garrison.ops.status.announcer.run_once  status.maintenance_poll_seconds
    alerts.evaluate garrison.ops.alerts.evaluator.run_once  status.alerts.interval_seconds

Building ``OpsJobs`` registers the status and alert mail handlers on the outbox registry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from garrison.db.engine import Database
from garrison.db.migrate import head_revisions
from garrison.ops.alerts import evaluator
from garrison.ops.alerts.rules import MetricWindow
from garrison.ops.health import HealthService
from garrison.ops.status import announcer, notify, sampler
from garrison.outbox.registry import Registry, registry
from garrison.settings import Settings
from garrison.store.factory import open_store


class OpsJobs:
    def __init__(self, db: Database, settings: Settings, *, handlers: Registry = registry) -> None:
        self.db = db
        self.settings = settings
        notify.install(handlers, settings)
        self.window = MetricWindow(multiproc_dir=settings.metrics.multiproc_dir)
        self.unwritten: list[tuple[datetime, sampler.Samples]] = []  # while the database is away

    @asynccontextmanager
    async def _health(self) -> AsyncIterator[HealthService]:
        """A health service for one run (its store connection is closed after it)."""
        store = open_store(self.settings) if self.settings.redis_url else None
        try:
            yield HealthService(
                db=self.db,
                store=store,
                data_dir=self.settings.data_dir,
                settings=self.settings.health,
                expected_revisions=head_revisions(),
            )
        finally:
            if store is not None:
                await store.close()

    async def sample(self) -> object:
        async with self._health() as health:
            return await sampler.run_once(
                db=self.db, health=health, settings=self.settings.status, pending=self.unwritten
            )

    async def announce(self) -> object:
        """Maintenance windows that started or ended: ``status.maintenance.started|ended``."""
        return await announcer.run_once(db=self.db)

    async def evaluate(self) -> object:
        if not self.settings.status.alerts.enabled:
            return None
        async with self._health() as health:
            return await evaluator.run_once(
                db=self.db, health=health, settings=self.settings, window=self.window
            )
