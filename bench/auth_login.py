"""Login timing: unknown user vs wrong password, and loop responsiveness during a burst.

    python -m bench.auth_login [--rounds 40]

Runs the app in-process (SQLite in a temporary directory) and reports medians and their
ratio; both are measured in the same run, so the ratio holds when absolute numbers drift.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from garrison.app import create_app
from garrison.auth import service
from garrison.auth.runtime import AuthRuntime
from garrison.db import migrate
from garrison.events import Actor
from garrison.log import configure_logging
from garrison.runtime import runtime_of
from garrison.settings import load_settings

PASSWORD = "correct horse battery staple"


async def _timed(client: httpx.AsyncClient, body: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 401
    return time.perf_counter() - started


async def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    settings = load_settings(
        _env_file=None,
        data_dir=tmp,
        auth={"lockout_threshold": 10**6, "lockout_ip_threshold": 10**6},
        log={"level": "error"},
    )
    configure_logging(settings)
    await migrate.upgrade(settings.db_url, settings.db)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await service.register(
                runtime_of(app).get(AuthRuntime),
                email="known@example.com",
                password=PASSWORD,
                actor=Actor.system(),
            )
            wrong, unknown = [], []
            for _ in range(rounds):  # interleaved, so drift hits both alike
                wrong.append(
                    await _timed(client, {"email": "known@example.com", "password": "x" * 12})
                )
                unknown.append(
                    await _timed(client, {"email": "nobody@example.com", "password": "x" * 12})
                )
            idle = []
            for _ in range(rounds):
                started = time.perf_counter()
                await client.get("/api/health/live")
                idle.append(time.perf_counter() - started)

            burst = [
                asyncio.create_task(
                    _timed(client, {"email": "known@example.com", "password": "x" * 12})
                )
                for _ in range(16)
            ]
            probes = []
            while not all(task.done() for task in burst):  # probe while the burst hashes
                started = time.perf_counter()
                await client.get("/api/health/live")
                probes.append(time.perf_counter() - started)
                # In-process the probe may never suspend; pacing lets the burst run.
                await asyncio.sleep(0.005)
            burst_times = await asyncio.gather(*burst)
    w, u = statistics.median(wrong), statistics.median(unknown)
    print(f"login wrong password  median {w * 1000:7.1f} ms")
    print(f"login unknown user    median {u * 1000:7.1f} ms   ratio {u / w:.2f}")
    print(f"/api/health/live idle median {statistics.median(idle) * 1000:7.2f} ms")
    print(
        f"/api/health/live during 16 concurrent logins ({max(burst_times) * 1000:.0f} ms): "
        f"{len(probes)} probes, median {statistics.median(probes) * 1000:.2f} ms, "
        f"max {max(probes) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    asyncio.run(main(parser.parse_args().rounds))
