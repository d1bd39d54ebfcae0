"""The ops domain's periodic jobs, registered in one place.

Each job is a self-contained ``async def run_once(...)`` in its own module; this table says
how often each runs and with what. The worker calls ``PeriodicJobs.run_due()`` on every
poll; a job that fails is logged and tried again at its next turn.

    status.sample   garrison.ops.status.sampler.run_once    status.sample_interval_seconds
    alerts.evaluate garrison.ops.alerts.evaluator.run_once  status.alerts.interval_seconds
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from garrison.db.engine import Database
from garrison.db.migrate import head_revisions
from garrison.log import get_logger
from garrison.ops.alerts import evaluator
from garrison.ops.alerts.rules import MetricWindow
from garrison.ops.health import HealthService
from garrison.ops.status import notify, sampler
from garrison.outbox.registry import Registry
from garrison.settings import Settings
from garrison.store.base import KeyValueStore
from garrison.store.factory import open_store

log = get_logger("garrison.jobs")


@dataclass
class Job:
    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    due: float = 0.0


class PeriodicJobs:
    def __init__(self, db: Database, settings: Settings, *, handlers: Registry) -> None:
        self.db = db
        self.settings = settings
        notify.install(handlers, settings)
        self._store: KeyValueStore | None = None
        self._health: HealthService | None = None
        window = MetricWindow(multiproc_dir=settings.metrics.multiproc_dir)
        unwritten: list[tuple[datetime, sampler.Samples]] = []  # while the database is away
        status = settings.status
        self.jobs = [
            Job(
                "status.sample",
                status.sample_interval_seconds,
                lambda: sampler.run_once(
                    db=db, health=self.health(), settings=status, pending=unwritten
                ),
            ),
        ]
        if status.alerts.enabled:
            self.jobs.append(
                Job(
                    "alerts.evaluate",
                    status.alerts.interval_seconds,
                    lambda: evaluator.run_once(
                        db=db, health=self.health(), settings=settings, window=window
                    ),
                )
            )

    def health(self) -> HealthService:
        if self._health is None:
            if self.settings.redis_url:
                self._store = open_store(self.settings)
            self._health = HealthService(
                db=self.db,
                store=self._store,
                data_dir=self.settings.data_dir,
                settings=self.settings.health,
                expected_revisions=head_revisions(),
            )
        return self._health

    async def run_due(self) -> None:
        now = time.monotonic()
        for job in self.jobs:
            if now < job.due:
                continue
            job.due = now + job.interval
            try:
                await job.run()
            except Exception as exc:  # a database outage must not stop the other jobs
                log.warning("job.failed", job=job.name, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None
