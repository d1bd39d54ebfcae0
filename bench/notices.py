"""How long a change notice takes to reach another process (the propagation delay of the
in-memory copies: a user's status and roles, the deny list, the quota table).

    python -m bench.notices [--count 500] [--json]

A child process subscribes with a ``NoticeBus`` of its own on the local Redis
(``GARRISON_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``); this process announces
``--count`` notices, one every 2 ms, each carrying its send time. The child records when
each arrived (the same machine's clock) and reports the delays: p50, p99 and the largest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from typing import Any

from garrison.store.notices import NoticeBus
from garrison.store.pubsub import RedisPubSub

REDIS_URL = os.environ.get("GARRISON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TOPIC = "bench.notice"


async def _listen(prefix: str, count: int) -> list[float]:
    bus = NoticeBus(RedisPubSub(REDIS_URL, prefix=prefix))
    delays: list[float] = []
    done = asyncio.Event()

    def heard(key: str) -> None:
        delays.append(time.time() - float(key))
        if len(delays) >= count:
            done.set()

    bus.on(TOPIC, heard, lambda: None)
    await bus.start()
    await bus.subscribed.wait()
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    finally:
        await bus.stop()
    return delays


async def _announce(prefix: str, count: int) -> None:
    bus = NoticeBus(RedisPubSub(REDIS_URL, prefix=prefix))
    await bus.start(listen=False)
    try:
        for _ in range(count):
            await bus.announce(TOPIC, f"{time.time():.6f}")
            await asyncio.sleep(0.002)
    finally:
        await bus.stop()


def measure(count: int) -> dict[str, Any]:
    prefix = f"garrison-bench-notices-{secrets.token_hex(4)}:"
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.notices", "--child", prefix, "--count", str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("the listening process did not subscribe")
    asyncio.run(_announce(prefix, count))
    output, _ = child.communicate(timeout=120)
    delays = sorted(json.loads(output))
    ms = [d * 1000 for d in delays]
    return {
        "notices": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "max_ms": round(ms[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="notices to send")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--child", metavar="PREFIX", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_listen(args.child, args.count))), flush=True)
        return
    result = measure(args.count)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['notices']} notices to another process: p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms"
        )


if __name__ == "__main__":
    main()
