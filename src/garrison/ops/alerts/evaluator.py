"""The worker's alerting job: evaluate every rule, open and resolve alerts.

``run_once`` is the whole job; ``window`` carries the previous round's counters (rates are
deltas between rounds). Two workers evaluating at once cannot open the same alert twice:
the open alert's unique ``open_key`` refuses the second insert, and the retried
transaction then finds the alert open.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.log import get_logger
from garrison.ops.alerts import rules, service
from garrison.ops.alerts.config_view import Thresholds
from garrison.ops.alerts.rules import Finding, MetricWindow
from garrison.ops.health import HealthService
from garrison.settings import Settings

log = get_logger("garrison.alerts")


async def findings(
    *, health: HealthService, settings: Settings, window: MetricWindow
) -> list[Finding]:
    thresholds = Thresholds.of(settings)
    report = await health.report()
    return rules.from_metrics(window.delta(), thresholds) + rules.from_health(report, thresholds)


async def run_once(
    *, db: Database, health: HealthService, settings: Settings, window: MetricWindow
) -> tuple[int, int]:
    """Evaluate the rules once; returns (alerts opened, alerts resolved)."""
    found = await findings(health=health, settings=settings, window=window)
    config = settings.status.alerts

    async def work(session: AsyncSession) -> tuple[int, int]:
        opened, resolved = await service.apply(
            session,
            findings=found,
            suppress_minutes=config.suppress_minutes,
            default_suppress=config.default_suppress_minutes,
        )
        return len(opened), len(resolved)

    try:
        counts = await transact(db, work)
    except IntegrityError:  # another worker opened the same alert first: it is open now
        counts = await transact(db, work)
    if counts != (0, 0):
        log.info("alerts.changed", opened=counts[0], resolved=counts[1])
    return counts
