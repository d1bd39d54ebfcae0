"""The status page's data, built at most once per ``status.cache_seconds`` and rendered once
per build into the three bodies (HTML, JSON, Atom) the routes serve as they are.

When the database cannot be read, the last snapshot (kept in memory and in
``<data_dir>/status/last.json``, so a restart during an outage has it too) is served with
the live health states on top: the page shows the outage, never a 500.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from garrison import __version__
from garrison.db.engine import Database
from garrison.log import get_logger
from garrison.ops.health import HealthService
from garrison.ops.status import components, render, service
from garrison.ops.status.components import ComponentState, State
from garrison.ops.status.config import StatusSettings
from garrison.ops.status.models import StatusDay, StatusSample

log = get_logger("garrison.status")
MONITOR_FRESH = timedelta(minutes=5)


@dataclass(frozen=True)
class Body:
    """One representation, plain and gzip-compressed once per build."""

    plain: bytes
    gzipped: bytes
    tag: str

    @classmethod
    def of(cls, data: bytes, kind: str, etag: str) -> Body:
        return cls(data, gzip.compress(data, 6, mtime=0), f"{kind}-{etag}")


@dataclass(frozen=True)
class Bodies:
    html: Body
    json: Body
    atom: Body
    stale: bool


def _day_entry(day: date, row: tuple[int, int, int] | None) -> dict[str, Any]:
    if row is None or sum(row) == 0:
        return {"date": day.isoformat(), "state": "unknown", "uptime": None}
    ok, slow, down = row
    total = ok + slow + down
    state: State = "outage" if down else ("degraded" if slow else "operational")
    return {
        "date": day.isoformat(),
        "state": state,
        "uptime": round(100 * (total - down) / total, 2),
        "minutes_down": down,
        "minutes_degraded": slow,
    }


class StatusService:
    def __init__(
        self,
        *,
        db: Database,
        health: HealthService,
        settings: StatusSettings,
        data_dir: Path,
        public_url: str,
    ) -> None:
        self.db = db
        self.health = health
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.path = data_dir / "status" / "last.json"
        self._bodies: tuple[float, Bodies] | None = None
        self._stored: dict[str, Any] | None = None  # the last document read from the database
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._bodies = None

    async def bodies(self) -> Bodies:
        cached = self._bodies
        if cached and time.monotonic() - cached[0] < self.settings.cache_seconds:
            return cached[1]
        async with self._lock:
            cached = self._bodies
            if cached and time.monotonic() - cached[0] < self.settings.cache_seconds:
                return cached[1]
            bodies = await self._build()
            self._bodies = (time.monotonic(), bodies)
            return bodies

    async def known_components(self) -> set[str]:
        report = await self.health.report()
        known = {c.key for c in components.from_report(report)} | set(components.NAMES)
        async with self.db.read_session() as session:
            names = await session.scalars(
                select(StatusSample.component)
                .where(StatusSample.component.startswith(components.MONITOR_PREFIX))
                .distinct()
            )
            known.update(names)
        return known

    async def document(self) -> tuple[dict[str, Any], bool]:
        """(the public document, whether it is stale: the database could not be read)."""
        now = datetime.now(UTC)
        live = components.from_report(await self.health.report())
        try:
            stored = await self._read(now)
            self._stored = stored
            self._save(stored)
            stale = False
        except Exception as exc:  # the database is down: the last known data, live states
            log.warning("status.stale", error=type(exc).__name__)
            stored = self._stored or self._load() or _empty(now)
            stale = True
        return _assemble(self, stored, live, now, stale), stale

    async def _build(self) -> Bodies:
        doc, stale = await self.document()
        body = orjson.dumps(doc)
        # The same content keeps its tag across rebuilds (the build time is left out); each
        # representation has its own tag, as RFC 9110 asks of strong validators.
        stable = dict(doc, generated_at=None, data_as_of=None)
        etag = hashlib.sha256(orjson.dumps(stable)).hexdigest()[:32]
        html = render.page(doc, title=self.settings.title).encode()
        atom = render.feed(doc, title=self.settings.title, base=self.public_url).encode()
        return Bodies(
            html=Body.of(html, "h", etag),
            json=Body.of(body, "j", etag),
            atom=Body.of(atom, "a", etag),
            stale=stale,
        )

    async def _read(self, now: datetime) -> dict[str, Any]:
        first = (now - timedelta(days=self.settings.history_days - 1)).date()
        async with self.db.read_session() as session:
            days = (
                await session.execute(
                    select(
                        StatusDay.component,
                        StatusDay.day,
                        StatusDay.operational,
                        StatusDay.degraded,
                        StatusDay.outage,
                    ).where(StatusDay.day >= first)
                )
            ).all()
            latest = (
                select(StatusSample.component, func.max(StatusSample.at).label("at"))
                .where(
                    StatusSample.component.startswith(components.MONITOR_PREFIX),
                    StatusSample.at > now - MONITOR_FRESH * 12,
                )
                .group_by(StatusSample.component)
                .subquery()
            )
            monitors = (
                await session.execute(
                    select(StatusSample.component, StatusSample.state, StatusSample.at).join(
                        latest,
                        (latest.c.component == StatusSample.component)
                        & (latest.c.at == StatusSample.at),
                    )
                )
            ).all()
            incidents = await service.current_incidents(session, now=now)
            maintenances = await service.current_maintenances(session, now=now)
        history: dict[str, dict[str, list[int]]] = {}
        for key, day, ok, slow, down in days:
            history.setdefault(key, {})[day.isoformat()] = [ok, slow, down]
        return {
            "history": history,
            "monitors": {
                key: {"state": state, "at": at.isoformat()} for key, state, at in monitors
            },
            "incidents": [i.model_dump(mode="json") for i in incidents],
            "maintenances": [m.model_dump(mode="json") for m in maintenances],
            "read_at": now.isoformat(),
        }

    def _save(self, stored: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_bytes(orjson.dumps(stored))
            os.replace(temporary, self.path)
        except OSError as exc:  # a full or read-only disk must not take the page down
            log.warning("status.not_saved", error=type(exc).__name__)

    def _load(self) -> dict[str, Any] | None:
        try:
            loaded: dict[str, Any] = orjson.loads(self.path.read_bytes())
            return loaded
        except (OSError, orjson.JSONDecodeError):
            return None


def _empty(now: datetime) -> dict[str, Any]:
    return {"history": {}, "monitors": {}, "incidents": [], "maintenances": [], "read_at": None}


def _assemble(
    status: StatusService,
    stored: dict[str, Any],
    live: list[ComponentState],
    now: datetime,
    stale: bool,
) -> dict[str, Any]:
    in_maintenance: set[str] = set()
    for window in stored["maintenances"]:
        starts = datetime.fromisoformat(window["starts_at"])
        ends = datetime.fromisoformat(window["ends_at"])
        window["state"] = (
            "in_progress"
            if starts <= now < ends
            else ("scheduled" if now < starts else "completed")
        )
        if window["state"] == "in_progress":
            in_maintenance.update(window["components"])
    affected: dict[str, State] = {}
    for incident in stored["incidents"]:
        if incident["resolved_at"] is None:
            hit: State = "outage" if incident["impact"] == "critical" else "degraded"
            for key in incident["components"]:
                affected[key] = components.worst([affected.get(key, "operational"), hit])
    states: list[ComponentState] = list(live)
    for key, sample in stored["monitors"].items():
        fresh = now - datetime.fromisoformat(sample["at"]) < MONITOR_FRESH
        states.append(components.component(key, sample["state"] if fresh else "unknown"))
    days = [
        (now - timedelta(days=offset)).date()
        for offset in range(status.settings.history_days - 1, -1, -1)
    ]
    listed: list[dict[str, Any]] = []
    overall_states: list[State] = []
    for item in states:
        state: State = components.worst([item.state, affected.get(item.key, "operational")])
        if item.key in in_maintenance and state == "operational":
            state = "maintenance"
        recorded = stored["history"].get(item.key, {})
        bars = []
        for day in days:
            row = recorded.get(day.isoformat())
            bars.append(_day_entry(day, (row[0], row[1], row[2]) if row else None))
        totals = [sum(v) for v in recorded.values()]
        downs = [v[2] for v in recorded.values()]
        uptime = round(100 * (sum(totals) - sum(downs)) / sum(totals), 3) if sum(totals) else None
        overall_states.append(state)
        listed.append(
            {
                "id": item.key,
                "name": item.name,
                "description": item.description,
                "state": state,
                "label": components.component(item.key, state).label,
                "uptime": uptime,
                "days": bars,
            }
        )
    overall = components.worst(overall_states)
    open_incidents = [i for i in stored["incidents"] if i["resolved_at"] is None]
    if open_incidents and overall == "operational":
        overall = "degraded"
    return {
        "status": {
            "indicator": overall,
            "description": _headline(overall, stale),
        },
        "generated_at": now.isoformat(),
        "data_as_of": stored.get("read_at"),
        "stale": stale,
        "version": __version__,
        "components": listed,
        "incidents": stored["incidents"],
        "maintenances": stored["maintenances"],
        "history_days": status.settings.history_days,
    }


def _headline(overall: State, stale: bool) -> str:
    text = {
        "operational": "All systems operational",
        "degraded": "Some systems are degraded",
        "outage": "Service disruption",
        "maintenance": "Maintenance in progress",
        "unknown": "Status unknown",
    }[overall]
    return text
