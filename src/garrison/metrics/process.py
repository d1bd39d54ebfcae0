"""Process metrics that add up across workers.

prometheus-client's process collector only describes the process that serves the scrape, so
each worker copies its own figures into multi-process gauges: at every scrape it serves and
every ``interval`` seconds in the background. The sampler also drops the files of workers
that have died, so ``livesum`` gauges count only live ones.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.multiprocess import mark_process_dead

from garrison.metrics.registry import (
    PROCESS_CPU,
    PROCESS_MEMORY,
    PROCESS_OPEN_FDS,
    PROCESS_START,
    WORKERS,
)

_collector = ProcessCollector(registry=None)
_TARGETS = {
    "process_cpu_seconds_total": PROCESS_CPU,
    "process_resident_memory_bytes": PROCESS_MEMORY,
    "process_open_fds": PROCESS_OPEN_FDS,
    "process_start_time_seconds": PROCESS_START,
}


def sample_process() -> None:
    WORKERS.set(1)
    for family in _collector.collect():
        for sample in family.samples:
            gauge = _TARGETS.get(sample.name)
            if gauge is not None:
                gauge.set(sample.value)


def reap_dead_workers(directory: Path) -> int:
    """Remove the live-gauge files of processes that no longer exist; returns how many."""
    dead: set[int] = set()
    for path in directory.glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            dead.add(int(pid_text))
    for pid in dead:
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return len(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


async def sample_forever(interval: float, directory: Path | None) -> None:
    while True:
        sample_process()
        if directory is not None:
            await asyncio.to_thread(reap_dead_workers, directory)
        await asyncio.sleep(interval)
