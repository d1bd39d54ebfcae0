"""The GCRA limiters, each behaviour on memory and on the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from garrison.store import MemoryRateLimiter, Rate, RateLimiter, RedisRateLimiter, StoreUnavailable
from tests.helpers import free_port


class FrozenClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# Rates in these tests are slow (one request per 36 s or more) wherever a result depends on
# the clock: Redis reads its own clock, so the time the test itself takes (long on a busy
# machine) must be small against one request's cost for the outcome to be fixed.
SLOW = 3600.0
# The limiter's production timeout (0.5 s) is for failing fast in an outage; these tests
# send hundreds of commands at once and are about counting, so on a busy machine a queued
# command must not time out.
BUSY_MACHINE_TIMEOUT = 30.0


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter(clock=FrozenClock())
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    redis_limiter = RedisRateLimiter.from_url(url, prefix=prefix, timeout=BUSY_MACHINE_TIMEOUT)
    try:
        yield redis_limiter
    finally:
        keys = [key async for key in redis_limiter.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis_limiter.client.delete(*keys)
        await redis_limiter.close()


async def test_burst_then_refusal(limiter: RateLimiter) -> None:
    rate = Rate(limit=100, period=SLOW, burst=20)
    decisions = [await limiter.hit("client", rate) for _ in range(21)]
    assert all(d.allowed for d in decisions[:20])
    assert [d.remaining for d in decisions[:3]] == [19, 18, 17]
    assert decisions[19].remaining == 0
    refused = decisions[20]
    assert not refused.allowed
    assert refused.remaining == 0
    # One request costs 36 s at 100/hour: the next one is allowed at most that much later.
    assert 0 < refused.retry_after <= rate.interval
    assert refused.limit == 20


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    rate = Rate.per_minute(1, burst=2)
    assert (await limiter.hit("a", rate)).allowed
    assert (await limiter.hit("a", rate)).allowed
    assert not (await limiter.hit("a", rate)).allowed
    assert (await limiter.hit("b", rate)).allowed


async def test_reset_empties_the_bucket(limiter: RateLimiter) -> None:
    rate = Rate.per_minute(1, burst=1)
    assert (await limiter.hit("k", rate)).allowed
    assert not (await limiter.hit("k", rate)).allowed
    await limiter.reset("k")
    assert (await limiter.hit("k", rate)).allowed


async def test_reset_after_reports_when_the_bucket_is_full(limiter: RateLimiter) -> None:
    rate = Rate(limit=10, period=SLOW, burst=10)  # one per 360 s
    first = await limiter.hit("k", rate)
    assert first.reset_after == pytest.approx(rate.interval)  # measured within the hit
    for _ in range(4):
        last = await limiter.hit("k", rate)
    assert 4 * rate.interval < last.reset_after <= 5 * rate.interval
    assert last.remaining == 5


async def test_the_bucket_refills_as_the_clock_moves() -> None:
    clock = FrozenClock()
    limiter = MemoryRateLimiter(clock=clock)
    rate = Rate.per_minute(60, burst=2)  # one per second
    assert (await limiter.hit("k", rate)).allowed
    assert (await limiter.hit("k", rate)).allowed
    refused = await limiter.hit("k", rate)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(1.0)
    clock.now += 0.5
    assert (await limiter.hit("k", rate)).retry_after == pytest.approx(0.5)
    clock.now += 0.5
    allowed = await limiter.hit("k", rate)
    assert allowed.allowed
    assert allowed.reset_after == pytest.approx(2.0)


async def test_a_refused_attempt_costs_nothing(limiter: RateLimiter) -> None:
    rate = Rate.per_minute(1, burst=1)
    await limiter.hit("k", rate)
    first = await limiter.hit("k", rate)
    second = await limiter.hit("k", rate)
    assert not first.allowed
    assert not second.allowed
    assert second.retry_after <= first.retry_after


async def test_cost_spends_several_requests(limiter: RateLimiter) -> None:
    rate = Rate(limit=10, period=SLOW, burst=10)
    assert (await limiter.hit("k", rate, cost=7)).remaining == 3
    assert not (await limiter.hit("k", rate, cost=4)).allowed
    assert (await limiter.hit("k", rate, cost=3)).allowed


async def test_exact_under_concurrency(limiter: RateLimiter) -> None:
    rate = Rate.per_minute(1, burst=50)
    decisions = await asyncio.gather(*(limiter.hit("hot", rate) for _ in range(300)))
    assert sum(d.allowed for d in decisions) == 50


async def test_redis_limiters_share_one_bucket(redis_url: str) -> None:
    """Two limiters with their own connections (as two processes would have) count together."""
    prefix = f"test:{uuid.uuid4().hex}:"
    first = RedisRateLimiter.from_url(redis_url, prefix=prefix, timeout=BUSY_MACHINE_TIMEOUT)
    second = RedisRateLimiter.from_url(redis_url, prefix=prefix, timeout=BUSY_MACHINE_TIMEOUT)
    rate = Rate.per_minute(1, burst=40)
    try:
        decisions = await asyncio.gather(
            *(limiter.hit("shared", rate) for limiter in [first, second] * 100)
        )
        assert sum(d.allowed for d in decisions) == 40
    finally:
        await first.reset("shared")
        await first.close()
        await second.close()


async def test_redis_down_raises_store_unavailable_quickly() -> None:
    port = free_port()  # nothing listens there
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreUnavailable):
            await limiter.hit("k", Rate.per_minute(10))
        # Marked down: the next call does not even try the network.
        with pytest.raises(StoreUnavailable, match="marked down"):
            await limiter.hit("k", Rate.per_minute(10))
    finally:
        await limiter.close()


def test_rate_validation() -> None:
    rate = Rate.per_minute(100, burst=20)
    assert rate.interval == pytest.approx(0.6)
    assert rate.tolerance == pytest.approx(12.0)
    assert Rate.per_minute(30).burst == 30


async def test_memory_limiter_stays_bounded() -> None:
    limiter = MemoryRateLimiter(max_keys=100)
    rate = Rate.per_minute(1, burst=5)
    for i in range(1000):
        assert (await limiter.hit(f"k{i}", rate)).allowed
    assert len(limiter._tat) <= 100
    # The most recent buckets are kept: k999 has spent one of its five.
    assert (await limiter.hit("k999", rate)).remaining == 3


async def test_an_empty_bucket_allows_whatever_the_clock_reads() -> None:
    """Floating point: at some clock readings (now + t) - t lands a hair above now. An
    empty one-request bucket must still allow its first request at every one of them."""
    rate = Rate.per_minute(1, burst=1)
    for step in range(2_000):
        limiter = MemoryRateLimiter(clock=FrozenClock(1_000.0 + step * 0.123_456_7))
        assert (await limiter.hit("k", rate)).allowed, step
        assert not (await limiter.hit("k", rate)).allowed, step
