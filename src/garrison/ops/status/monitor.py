"""Checks from outside: probe health endpoints (another Garrison, or anything answering
HTTP) and record each as a ``monitor:<name>`` status component of this instance.

A 2xx answer is operational unless its JSON says ``"status": "warn"`` (degraded) or
``"fail"``; another status, a timeout or a refused connection is an outage.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from garrison.db.engine import Database
from garrison.ops.status import sampler
from garrison.ops.status.components import MONITOR_PREFIX
from garrison.ops.status.config import StatusSettings


@dataclass(frozen=True)
class Probe:
    url: str
    component: str
    state: str
    http_status: int | None
    milliseconds: float
    detail: str


def component_for(url: str) -> str:
    parts = urlsplit(url)
    name = parts.netloc + (parts.path.rstrip("/") or "")
    return (MONITOR_PREFIX + name)[:64]


def _classify(response: httpx.Response) -> tuple[str, str]:
    if not 200 <= response.status_code < 300:
        return "outage", f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "operational", f"HTTP {response.status_code}"
    status = body.get("status") if isinstance(body, dict) else None
    if status == "warn":
        return "degraded", "warn"
    if status in ("fail", "down"):
        return "outage", str(status)
    return "operational", str(status or response.status_code)


async def probe(client: httpx.AsyncClient, url: str) -> Probe:
    started = time.perf_counter()
    try:
        response = await client.get(url, headers={"Accept": "application/health+json"})
        state, detail = _classify(response)
        code: int | None = response.status_code
    except httpx.HTTPError as exc:
        state, detail, code = "outage", type(exc).__name__, None
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return Probe(url, component_for(url), state, code, elapsed, detail)


async def run_once(
    *, db: Database | None, urls: list[str], settings: StatusSettings, probe_timeout: float
) -> list[Probe]:
    """Probe every URL at once; record the results when ``db`` is given."""
    async with httpx.AsyncClient(timeout=probe_timeout, follow_redirects=False) as client:
        probes = list(await asyncio.gather(*(probe(client, url) for url in urls)))
    if db is not None:
        await sampler.record(
            db, samples=[(p.component, p.state, p.detail) for p in probes], settings=settings
        )
    return probes
