"""Health checks in application/health+json (draft-inadarei-api-health-check).

Each check runs with its own timeout and all run concurrently, so a hung dependency costs at
most ``health.check_timeout`` seconds. The report is cached for ``health.cache_seconds`` and
computed by one caller at a time, so a flood of probes never becomes a flood of queries.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import text

from garrison import __version__
from garrison.audit import service as audit_service
from garrison.db.engine import Database
from garrison.db.migrate import current_revisions, script_directory
from garrison.db.size import storage_bytes
from garrison.outbox import service as outbox_service
from garrison.settings import HealthSettings, Settings
from garrison.store.base import KeyValueStore

Status = Literal["pass", "warn", "fail"]
_RANK: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}
MEDIA_TYPE = "application/health+json"


@dataclass(frozen=True)
class CheckResult:
    name: str
    component_type: str
    status: Status
    observed_value: float | int | None = None
    observed_unit: str | None = None
    output: str | None = None
    component_id: str | None = None  # which node, when a component has several

    def as_json(self, time_iso: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "componentType": self.component_type,
            "status": self.status,
            "time": time_iso,
        }
        if self.observed_value is not None:
            body["observedValue"] = self.observed_value
            body["observedUnit"] = self.observed_unit
        if self.output:
            body["output"] = self.output
        if self.component_id:
            body["componentId"] = self.component_id
        return body


@dataclass(frozen=True)
class HealthReport:
    status: Status
    checks: tuple[CheckResult, ...] = ()
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def http_status(self) -> int:
        return 503 if self.status == "fail" else 200

    def public(self) -> dict[str, Any]:
        return {"status": self.status}

    def detailed(self, service_id: str) -> dict[str, Any]:
        stamp = self.time.isoformat()
        checks: dict[str, list[dict[str, Any]]] = {}
        for check in self.checks:
            checks.setdefault(check.name, []).append(check.as_json(stamp))
        return {
            "status": self.status,
            "version": __version__.split(".")[0],
            "releaseId": __version__,
            "serviceId": service_id,
            "checks": checks,
        }


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default="pass")


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this release's migration scripts know."""
    return frozenset(script.revision for script in script_directory().walk_revisions())


class HealthService:
    def __init__(
        self,
        *,
        db: Database,
        store: KeyValueStore | None,
        data_dir: Path,
        settings: HealthSettings,
        expected_revisions: frozenset[str],
        app_settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.data_dir = data_dir
        self.settings = settings
        self.expected_revisions = expected_revisions
        self.app_settings = app_settings
        self._cached: tuple[float, HealthReport] | None = None
        self._lock = asyncio.Lock()
        self._cluster_peak = 0  # the largest cluster seen: fewer members is a lost node

    async def report(self) -> HealthReport:
        cached = self._cached
        now = time.monotonic()
        if cached and now - cached[0] < self.settings.cache_seconds:
            return cached[1]
        async with self._lock:
            cached = self._cached
            if cached and time.monotonic() - cached[0] < self.settings.cache_seconds:
                return cached[1]
            report = await self._run_checks()
            self._cached = (time.monotonic(), report)
            return report

    async def _run_checks(self) -> HealthReport:
        # (component, type, check, status when it errors or times out)
        checks: list[tuple[str, str, Callable[[], Awaitable[list[CheckResult]]], Status]] = [
            ("database", "datastore", self._database, "fail"),
            ("disk", "system", self._disk, "fail"),
            # A database growing past its threshold needs an operator soon, not now: warn.
            ("database:storage", "datastore", self._storage, "warn"),
            # A backlog delays webhooks and e-mail but not the API: warn, never fail.
            ("outbox", "component", self._backlog, "warn"),
            # Without quorum the cluster refuses writes: fail. A lost node or replica: warn.
            ("database:cluster", "datastore", self._cluster, "warn"),
            ("database:replication", "datastore", self._replication, "warn"),
        ]
        if self.app_settings is not None:
            # A stale backup endangers data, not the requests being served: warn.
            checks.append(("backup", "component", self._backup, "warn"))
        if self.store is not None:
            # The API keeps serving without its store (rate limits fail open): warn, not fail.
            checks.append(("cache", "datastore", self._store, "warn"))
        groups = await asyncio.gather(*(self._bounded(*check) for check in checks))
        results = tuple(result for group in groups for result in group)
        return HealthReport(status=worst([r.status for r in results]), checks=results)

    async def _bounded(
        self,
        name: str,
        component_type: str,
        check: Callable[[], Awaitable[list[CheckResult]]],
        on_error: Status,
    ) -> list[CheckResult]:
        try:
            return await asyncio.wait_for(check(), timeout=self.settings.check_timeout)
        except TimeoutError:
            output = "timed out"
        except Exception as exc:
            output = _brief(exc)
        return [CheckResult(f"{name}:responseTime", component_type, on_error, output=output)]

    async def _database(self) -> list[CheckResult]:
        started = time.perf_counter()
        # The writer, but on its autocommit engine: a probe must not take SQLite's write
        # lock (BEGIN IMMEDIATE) or hold a transaction a timeout could leave open.
        async with self.db.writer_read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            elapsed = round((time.perf_counter() - started) * 1000, 2)
            applied = await current_revisions(conn)
        missing = self.expected_revisions - applied
        if missing and applied and not applied & known_revisions():
            # The database is ahead of this release: a newer release (blue-green, the old
            # colour still serving) applied its expand-only migrations. Not a failure.
            missing = frozenset()
        return [
            CheckResult("database:responseTime", "datastore", "pass", elapsed, "ms"),
            CheckResult(
                "database:migrations",
                "datastore",
                "fail" if missing else "pass",
                len(missing),
                "pending",
                output="migrations pending: run `garrison migrate up`" if missing else None,
            ),
        ]

    async def _backup(self) -> list[CheckResult]:
        from garrison.ops.backup.health import checks

        assert self.app_settings is not None
        return await checks(self.db, self.app_settings)

    async def _store(self) -> list[CheckResult]:
        assert self.store is not None
        started = time.perf_counter()
        await self.store.ping()
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return [CheckResult("cache:responseTime", "datastore", "pass", elapsed, "ms")]

    async def _backlog(self) -> list[CheckResult]:
        """The worker's backlog: audit entries not yet sealed, outbox messages not yet
        delivered (and how long the oldest has waited), and parked (poison) messages."""
        now = datetime.now(UTC)
        async with self.db.read_session() as session:
            unsealed, oldest_entry = await audit_service.unsealed_backlog(session)
            outbox = await outbox_service.backlog(session)
        pending, parked = outbox.pending, outbox.parked
        waited = max(_age(now, oldest_entry), _age(now, outbox.oldest_pending))
        late = waited > self.settings.backlog_warn_seconds
        return [
            CheckResult(
                "outbox:backlog",
                "component",
                "warn" if late else "pass",
                int(unsealed) + int(pending),
                "events",
                output=f"the oldest event has waited {int(waited)} s for the worker"
                if late
                else None,
            ),
            CheckResult(
                "outbox:parked",
                "component",
                "warn" if parked else "pass",
                int(parked),
                "messages",
                output="parked messages need an operator: GET /api/v1/outbox/parked"
                if parked
                else None,
            ),
        ]

    async def _cluster(self) -> list[CheckResult]:
        """The writer's Galera state: quorum, its own state, members, flow control."""
        if self.db.is_sqlite:
            return []
        rows = await self.db.writer_fast_read.query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_status',"
            "'wsrep_cluster_size','wsrep_local_state_comment','wsrep_flow_control_paused')"
        )
        wsrep = {str(row["Variable_name"]).lower(): str(row["Value"]) for row in rows}
        if wsrep.get("wsrep_cluster_status", "Disconnected") == "Disconnected":
            return []  # not a Galera node (wsrep off)
        size = int(wsrep.get("wsrep_cluster_size") or 0)
        self._cluster_peak = max(self._cluster_peak, size)
        primary = wsrep["wsrep_cluster_status"] == "Primary"
        synced = wsrep.get("wsrep_local_state_comment") == "Synced"
        paused = float(wsrep.get("wsrep_flow_control_paused") or 0)
        size_status: Status = "pass" if size >= self._cluster_peak else "warn"
        return [
            CheckResult(
                "database:cluster",
                "datastore",
                "pass" if primary and synced else "fail",
                size,
                "members",
                output=None
                if primary and synced
                else f"no quorum: the writer is {wsrep['wsrep_cluster_status']}, "
                f"{wsrep.get('wsrep_local_state_comment')}",
                component_id="writer",
            ),
            CheckResult(
                "database:clusterSize",
                "datastore",
                size_status,
                size,
                "members",
                output=f"{self._cluster_peak - size} node(s) lost of {self._cluster_peak}"
                if size_status == "warn"
                else None,
            ),
            CheckResult(
                "database:flowControl",
                "datastore",
                "warn" if paused > 0.1 else "pass",
                round(paused, 3),
                "fraction paused",
            ),
        ]

    async def _replication(self) -> list[CheckResult]:
        """Each reader: its lag and state (a skipped reader is a warning: reads go on)."""
        replicas = self.db.replicas
        if not replicas:
            return []
        await replicas.probe_all()
        return [
            CheckResult(
                "database:replication",
                "datastore",
                "pass" if replica.usable and replica.problem is None else "warn",
                replica.lag,
                "s",
                output=replica.problem,
                component_id=replica.name,
            )
            for replica in replicas.replicas
        ]

    async def _disk(self) -> list[CheckResult]:
        free_mb = shutil.disk_usage(self.data_dir).free // (1024 * 1024)
        status: Status = "pass"
        if free_mb < self.settings.disk_fail_mb:
            status = "fail"
        elif free_mb < self.settings.disk_warn_mb:
            status = "warn"
        return [CheckResult("disk:free", "system", status, free_mb, "MiB")]

    async def _storage(self) -> list[CheckResult]:
        used_mb = round(await storage_bytes(self.db) / (1024 * 1024), 1)
        limit = self.settings.database_warn_mb
        over = limit is not None and used_mb > limit
        return [
            CheckResult(
                "database:storage",
                "datastore",
                "warn" if over else "pass",
                used_mb,
                "MiB",
                output=f"the database takes {used_mb:g} MiB, over the {limit} MiB warning "
                "threshold (GARRISON_HEALTH__DATABASE_WARN_MB)"
                if over
                else None,
            )
        ]


def _age(now: datetime, moment: datetime | None) -> float:
    """Seconds since ``moment`` (aware UTC); 0 when there is none."""
    return 0.0 if moment is None else max(0.0, (now - moment).total_seconds())


def _brief(exc: BaseException) -> str:
    """A short, operator-only description (never shown to the public)."""
    return type(exc).__name__
