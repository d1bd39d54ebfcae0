"""Rate-limiter decisions per second, memory and Redis, against a floor on the same run.

    .venv/bin/python -m bench.ratelimit [--redis redis://127.0.0.1:6379/0] [--n 20000]

The Redis figures are compared with a bare ``PING`` over the same client (the cost of one
round trip), so the ratio shows what the GCRA script adds; absolute numbers drift between
runs on a shared machine, the ratios hold.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from garrison.store.ratelimit import MemoryRateLimiter, Rate, RateLimiter, RedisRateLimiter

RATE = Rate.per_minute(1_000_000_000, burst=1_000_000_000)  # never refuses: pure decision cost


async def _rate(n: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> float:
    per_task = n // concurrency

    async def task(offset: int) -> None:
        for i in range(per_task):
            await op(offset + i)

    started = time.perf_counter()
    await asyncio.gather(*(task(t * per_task) for t in range(concurrency)))
    return per_task * concurrency / (time.perf_counter() - started)


async def _limiter(limiter: RateLimiter, n: int, concurrency: int, keys: int) -> float:
    return await _rate(n, concurrency, lambda i: limiter.hit(f"bench:{i % keys}", RATE))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()

    memory = MemoryRateLimiter()
    rows: list[tuple[str, float]] = []
    for concurrency in (1, 50):
        rows.append(
            (f"memory   c={concurrency:<3}", await _limiter(memory, args.n * 5, concurrency, 1000))
        )
    redis_limiter = RedisRateLimiter.from_url(args.redis, prefix=f"bench:{uuid.uuid4().hex}:")
    try:
        for concurrency in (1, 50):
            ping = await _rate(args.n, concurrency, lambda _i: redis_limiter.client.ping())
            gcra = await _limiter(redis_limiter, args.n, concurrency, 1000)
            rows.append((f"redis PING c={concurrency:<3}", ping))
            rows.append((f"redis GCRA c={concurrency:<3}", gcra))
            rows.append((f"  ratio GCRA/PING c={concurrency}", gcra / ping))
        async for key in redis_limiter.client.scan_iter(match=f"{redis_limiter.prefix}*"):
            await redis_limiter.client.delete(key)
    finally:
        await redis_limiter.close()
    for name, value in rows:
        unit = "" if name.strip().startswith("ratio") else " decisions/s"
        print(f"{name:<28} {value:>12,.2f}{unit}")


if __name__ == "__main__":
    asyncio.run(main())
