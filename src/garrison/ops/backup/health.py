"""``backup:age`` (warn when the last full backup is older than ``age_warn_hours``),
``backup:log_lag`` (warn when the log archive is more than ``log_lag_warn_seconds`` behind)
and, on MariaDB, ``backup:binlog`` (warn when the server cannot be archived: no ``log_bin``
or a ``binlog_format`` other than ROW)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text

from garrison.db.engine import Database
from garrison.ops.backup import service
from garrison.ops.health import CheckResult
from garrison.ops.models import Instance
from garrison.settings import Settings


async def checks(db: Database, settings: Settings) -> list[CheckResult]:
    config = settings.backup
    status = await service.backup_status(settings=settings)
    from garrison.ops.backup import metrics  # not at import: see garrison.metrics.registry

    metrics.observe(status)
    now = datetime.now(UTC)
    results: list[CheckResult] = []
    age = status.full_age(now)
    if age is None:
        # A new installation has until its first scheduled backup; after that, warn.
        async with db.read_engine.connect() as conn:
            created = (await conn.execute(select(Instance.created_at).limit(1))).scalar()
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        young = created is None or (now - created).total_seconds() < config.age_warn_hours * 3600
        results.append(
            CheckResult(
                "backup:age",
                "component",
                "pass" if young else "warn",
                output="no full backup yet: run `garrison backup create`",
            )
        )
    else:
        hours = round(age / 3600, 2)
        late = hours > config.age_warn_hours
        results.append(
            CheckResult(
                "backup:age",
                "component",
                "warn" if late else "pass",
                hours,
                "h",
                output=f"the last full backup is {hours} h old" if late else None,
            )
        )
    lag = status.log_lag(now)
    if lag is None:
        results.append(
            CheckResult(
                "backup:log_lag",
                "component",
                "warn" if config.stream else "pass",
                output="no log archive yet: run `garrison backup stream`"
                if config.stream
                else "log archiving is off (GARRISON_BACKUP__STREAM)",
            )
        )
    else:
        late = lag > config.log_lag_warn_seconds
        results.append(
            CheckResult(
                "backup:log_lag",
                "component",
                "warn" if late else "pass",
                round(lag, 1),
                "s",
                output=f"the log archive is {int(lag)} s behind" if late else None,
            )
        )
    if not settings.is_sqlite:
        async with db.writer_read_engine.connect() as conn:
            log_bin, binlog_format = (
                await conn.execute(text("SELECT @@log_bin, @@binlog_format"))
            ).one()
        ready = int(log_bin) == 1 and str(binlog_format).upper() == "ROW"
        results.append(
            CheckResult(
                "backup:binlog",
                "component",
                "pass" if ready or not config.stream else "warn",
                output=None
                if ready
                else "point-in-time restore needs log_bin=ON and "
                f"binlog_format=ROW (log_bin={int(log_bin)}, binlog_format={binlog_format})",
            )
        )
    return results
