"""What the status page costs: ``/status`` from its cache against ``/api/health``, and the
worker's periodic jobs (sampling, alert rules, maintenance announcements) at idle.

1. One ``garrison serve`` (development profile, SQLite, one worker, the status cache at its
   default 30 s) answers ``GET /status`` and ``GET /api/health`` in alternating wrk rounds
   from another process over loopback; the figure is the ratio of the two rates (target:
   ``/status`` at least 0.8 of health).
2. In this process, on a SQLite database: the CPU time of ``sampler.run_once``,
   ``evaluator.run_once`` and ``announcer.run_once`` averaged over many calls, turned into
   the share of one core they take at their default intervals (sampling and rules once a
   minute, announcements every ``status.maintenance_poll_seconds``; target < 1 %).

    flock /tmp/garrison-bench.lock python -m bench.status_page [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench.metrics_overhead import start_server
from garrison.audit import install_keyring
from garrison.db import Database, migrate
from garrison.db.migrate import head_revisions
from garrison.ops.alerts import evaluator
from garrison.ops.alerts.rules import MetricWindow
from garrison.ops.health import HealthService
from garrison.ops.status import announcer, sampler
from garrison.settings import StatusSettings, load_settings


def wrk(port: int, path: str, seconds: int, connections: int, *headers: str) -> float:
    import re
    import subprocess

    extra = [arg for header in headers for arg in ("-H", header)]
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            *extra,
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(out)
    return float(match.group(1))


def throughput(seconds: int, rounds: int, connections: int) -> tuple[float, float, float]:
    scratch = Path(tempfile.mkdtemp(prefix="garrison-status-bench-"))
    proc, port = start_server(scratch / "var", metrics=True)
    try:
        wrk(port, "/status", 1, 4)  # warm: the first build, the health cache
        health, status, plain = [], [], []
        gzip = "Accept-Encoding: gzip"  # what browsers and CDNs send
        for _ in range(rounds):
            health.append(wrk(port, "/api/health", seconds, connections, gzip))
            status.append(wrk(port, "/status", seconds, connections, gzip))
            plain.append(wrk(port, "/status", seconds, connections))
        return max(health), max(status), max(plain)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)


async def job_costs(calls: int) -> tuple[float, float, float]:
    scratch = Path(tempfile.mkdtemp(prefix="garrison-status-jobs-"))
    settings = load_settings(_env_file=None, data_dir=scratch, worker={"in_process": False})
    install_keyring(settings)
    await migrate.upgrade(settings.db_url, settings.db)
    db = Database(settings.db_url, settings.db)
    health = HealthService(
        db=db,
        store=None,
        data_dir=scratch,
        settings=settings.health,
        expected_revisions=head_revisions(),
    )
    health.settings.cache_seconds = 0  # every call does the real checks
    window = MetricWindow()
    try:
        await sampler.run_once(db=db, health=health, settings=settings.status)
        started = time.process_time()
        for _ in range(calls):
            await sampler.run_once(db=db, health=health, settings=settings.status)
        sample = (time.process_time() - started) / calls
        await evaluator.run_once(db=db, health=health, settings=settings, window=window)
        started = time.process_time()
        for _ in range(calls):
            await evaluator.run_once(db=db, health=health, settings=settings, window=window)
        evaluate = (time.process_time() - started) / calls
        await announcer.run_once(db=db)
        started = time.process_time()
        for _ in range(calls):
            await announcer.run_once(db=db)
        announce = (time.process_time() - started) / calls
        return sample, evaluate, announce
    finally:
        await db.dispose()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    health, status, plain = throughput(args.seconds, args.rounds, args.connections)
    print(f"GET /api/health           {health:10.0f} req/s (best of {args.rounds})")
    print(f"GET /status (gzip)        {status:10.0f} req/s (from cache)")
    print(f"GET /status (identity)    {plain:10.0f} req/s (from cache, no Accept-Encoding)")
    print(
        f"ratio status/health: {status / health:.2f} gzip, {plain / health:.2f} identity"
        " (target >= 0.80)"
    )
    sample, evaluate, announce = asyncio.run(job_costs(args.calls))
    poll = StatusSettings().maintenance_poll_seconds  # the default interval
    share = ((sample + evaluate) / 60 + announce / poll) * 100
    print(f"sampler.run_once    {sample * 1000:7.2f} ms CPU per call")
    print(f"evaluator.run_once  {evaluate * 1000:7.2f} ms CPU per call")
    print(f"announcer.run_once  {announce * 1000:7.2f} ms CPU per call (every {poll:g} s)")
    print(f"idle cost at the default intervals: {share:.3f} % of one core (target < 1 %)")


if __name__ == "__main__":
    main()
