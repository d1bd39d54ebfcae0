"""The watch window's figures: a colour's 5xx rate (from HAProxy's per-server counters) and
p95 latency (from the colour's own Prometheus histogram), judged over a sliding window."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

DURATION = "garrison_http_request_duration_seconds_bucket"
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_IGNORED_ROUTES = ("/api/health", "/metrics")


def histogram(text: str) -> dict[float, float]:
    """Cumulative request counts by upper bound, summed over methods, routes and statuses
    (health checks and scrapes left out)."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(DURATION):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = match["labels"]
        route = re.search(r'route="([^"]*)"', labels)
        if route and route.group(1).startswith(_IGNORED_ROUTES):
            continue
        bound = re.search(r'le="([^"]*)"', labels)
        if bound is None:
            continue
        le = float("inf") if bound.group(1) == "+Inf" else float(bound.group(1))
        buckets[le] = buckets.get(le, 0.0) + float(match["value"])
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile (seconds, the bucket's upper bound) of the requests between two
    scrapes; None when there were none."""
    bounds = sorted(after)
    deltas = [after[b] - before.get(b, 0.0) for b in bounds]
    if not deltas or deltas[-1] <= 0:
        return None
    target = q * deltas[-1]
    for bound, count in zip(bounds, deltas, strict=True):
        if count >= target:
            return bound
    return bounds[-1]


@dataclass(frozen=True)
class Sample:
    at: float
    responses: int
    errors: int
    buckets: dict[float, float] | None


@dataclass
class Judge:
    """Keeps the samples of one window and says what, if anything, is wrong."""

    window: float
    max_5xx_ratio: float
    min_requests: int
    max_p95_ms: float
    samples: deque[Sample] = field(default_factory=deque)

    def add(self, sample: Sample) -> str | None:
        self.samples.append(sample)
        while len(self.samples) > 2 and sample.at - self.samples[1].at >= self.window:
            self.samples.popleft()
        first = self.samples[0]
        responses = sample.responses - first.responses
        errors = sample.errors - first.errors
        if responses >= self.min_requests and errors / responses > self.max_5xx_ratio:
            return (
                f"5xx rate {errors / responses:.1%} ({errors}/{responses}) over "
                f"{sample.at - first.at:.0f} s exceeds {self.max_5xx_ratio:.1%}"
            )
        if first.buckets is not None and sample.buckets is not None:
            count = sample.buckets.get(float("inf"), 0) - first.buckets.get(float("inf"), 0)
            p95 = quantile(first.buckets, sample.buckets, 0.95)
            if p95 is not None and count >= self.min_requests and p95 * 1000 > self.max_p95_ms:
                return f"p95 latency {p95 * 1000:.0f} ms exceeds {self.max_p95_ms:.0f} ms"
        return None
