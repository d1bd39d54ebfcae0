"""Rate limits per principal, with draft-ietf-httpapi-ratelimit-headers fields.

Each request is matched to one policy: a per-route override (``settings.rate_limit.routes``,
by path prefix on segment boundaries; the auth endpoints get a stricter one), else the
environment default, which an admin quota for the caller's API key or role replaces. The
bucket key is ``<policy>:<principal>``; the principal comes from ``identify(scope)``
(``user:<id>``, ``key:<id>``, ``client:<id>``), and anonymous callers are keyed by their
address as resolved by the client-IP layer through the trusted proxies.

A limited response carries ``RateLimit-Policy`` and ``RateLimit``; a refusal is 429
``application/problem+json`` with the quota-exceeded problem type, ``violated-policies`` and
``Retry-After``. Health and metrics paths are never limited. When the limiter's store does not
answer, the general API fails open (logged and counted) onto this process's own limiter with
the same policies, and sensitive routes fail closed with 503 and ``Retry-After``; both are
switches in the settings. Either way, never a 500 and never a hang.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from garrison.context import request_id, state
from garrison.errors import GarrisonError, QuotaExceeded, ServiceUnavailable, problem_response
from garrison.gateway.credentials import DuplicateCredential, credential_headers
from garrison.log import get_logger
from garrison.runtime import find_runtime
from garrison.settings import RateLimitSettings
from garrison.store.ratelimit import Decision, MemoryRateLimiter, Rate
from garrison.types import ASGIApp, Message, Receive, Scope, Send

log = get_logger("garrison.ratelimit")

Identify = Callable[[Scope], Awaitable[str | None]]
Roles = Callable[[Scope], Awaitable[Sequence[str]]]
# (scope, principal, roles) -> the admin quota replacing the default policy, or None
QuotaLookup = Callable[[Scope, str, Sequence[str]], Awaitable[Rate | None]]
_WARN_EVERY = 5.0  # seconds between two "store unavailable" log lines
# A later layer's question for the shared store, asked in the limiter's round trip: the
# identify function may leave a store key under PROBE; the answer (whether the key exists,
# True/False) is left under PROBED when the shared store gave one.
PROBE = "ratelimit_probe"
PROBED = "ratelimit_probed"


def _count_ratelimit(decision: str, policy: str) -> None:
    # Imported here, not at the top: `garrison serve` must set PROMETHEUS_MULTIPROC_DIR
    # before prometheus-client is first imported, or its forked workers count in memory.
    from garrison.metrics import registry

    registry.ratelimit(decision, policy=policy)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Policy:
    name: str
    rate: Rate | None  # None: unlimited
    sensitive: bool = False


@dataclass
class RateLimitStats:
    """Counters for the metrics endpoint (per process)."""

    allowed: int = 0
    denied: int = 0
    failed_open: int = 0
    failed_closed: int = 0


def _rate(requests_per_minute: int | None, burst: int | None) -> Rate | None:
    return None if requests_per_minute is None else Rate.per_minute(requests_per_minute, burst)


def _matches(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def policy_headers(policy: Policy, rate: Rate, decision: Decision) -> list[tuple[bytes, bytes]]:
    """The two structured fields (RFC 9651 lists of one item each)."""
    quoted = '"' + policy.name + '"'
    window = math.ceil(rate.period)
    reset = math.ceil(decision.reset_after)
    return [
        (b"ratelimit-policy", f"{quoted};q={rate.limit};w={window}".encode()),
        (b"ratelimit", f"{quoted};r={decision.remaining};t={reset}".encode()),
    ]


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: RateLimitSettings,
        identify: Identify | None = None,
        roles: Roles | None = None,
        quota: QuotaLookup | None = None,
        stats: RateLimitStats | None = None,
    ) -> None:
        self.app = app
        self.identify = identify
        self.roles = roles
        self.quota = quota
        self.stats = stats or RateLimitStats()
        self.exempt = tuple(settings.exempt_paths)
        self.fail_open = settings.fail_open
        self.fail_open_sensitive = settings.fail_open_sensitive
        self.default = Policy("default", _rate(settings.requests_per_minute, settings.burst))
        self.routes = [
            (
                tuple(route.paths),
                Policy(route.name, _rate(route.requests_per_minute, route.burst), route.sensitive),
            )
            for route in settings.routes
        ]
        self._last_warning = 0.0
        self._fallback = MemoryRateLimiter()  # while the shared store does not answer

    def _route_policy(self, path: str) -> Policy | None:
        for prefixes, policy in self.routes:
            if any(_matches(path, prefix) for prefix in prefixes):
                return policy
        return None

    async def _principal(self, scope: Scope) -> str:
        principal = await self.identify(scope) if self.identify else None
        if principal:
            return principal
        return f"ip:{state(scope).get('client_ip') or 'unknown'}"

    async def _policy(self, scope: Scope, principal: str) -> Policy:
        route = self._route_policy(scope["path"])
        if route is not None:
            return route
        if self.quota is not None:
            roles = await self.roles(scope) if self.roles else ()
            rate = await self.quota(scope, principal, roles)
            if rate is not None:
                return Policy("quota", rate)
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(_matches(scope["path"], p) for p in self.exempt):
            await self.app(scope, receive, send)
            return
        try:
            credential_headers(scope)  # one parse for this layer and authentication
        except DuplicateCredential as exc:
            await self._respond(scope, receive, send, exc, [])
            return
        principal = await self._principal(scope)
        policy = await self._policy(scope, principal)
        rate = policy.rate
        if rate is None:
            await self.app(scope, receive, send)
            return
        runtime = find_runtime(scope)
        key = f"{policy.name}:{principal}"
        try:
            if runtime is None:
                raise RuntimeError("no rate limiter (lifespan not started)")
            values = state(scope)
            decision = await runtime.rate_limiter.hit(key, rate, probe=values.get(PROBE))
            if decision.probed is not None:
                values[PROBED] = decision.probed
        except Exception as exc:  # any failure of the store: the configured mode, never a 500
            fallback = await self._unavailable(scope, receive, send, policy, key, exc)
            if fallback is None:
                return
            decision = fallback
        await self._decided(scope, receive, send, policy, rate, decision)

    async def _decided(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        policy: Policy,
        rate: Rate,
        decision: Decision,
    ) -> None:
        headers = policy_headers(policy, rate, decision)
        if not decision.allowed:
            self.stats.denied += 1
            _count_ratelimit("limited", policy.name)
            retry_after = str(max(1, math.ceil(decision.retry_after)))
            error = QuotaExceeded(
                f"the {policy.name!r} policy allows {rate.limit} requests per "
                f"{math.ceil(rate.period)} s with bursts of {rate.burst}; retry in "
                f"{retry_after} s",
                headers={"Retry-After": retry_after},
                **{"violated-policies": [policy.name]},
            )
            await self._respond(scope, receive, send, error, headers)
            return
        self.stats.allowed += 1
        _count_ratelimit("allowed", policy.name)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _unavailable(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        policy: Policy,
        key: str,
        exc: Exception,
    ) -> Decision | None:
        """The decision of this process's own limiter when failing open; ``None`` once a
        failing-closed refusal has been sent."""
        fail_open = self.fail_open_sensitive if policy.sensitive else self.fail_open
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            log.warning(
                "ratelimit.store_unavailable",
                policy=policy.name,
                mode="open" if fail_open else "closed",
                error=type(exc).__name__,
            )
        if fail_open:
            # "Open" is not unlimited: this process's own limiter takes over (the same
            # policy, counted per process) until the store answers again.
            self.stats.failed_open += 1
            _count_ratelimit("fail_open", policy.name)
            assert policy.rate is not None
            return await self._fallback.hit(key, policy.rate)
        self.stats.failed_closed += 1
        _count_ratelimit("fail_closed", policy.name)
        error = ServiceUnavailable(
            "rate limiting is unavailable; this endpoint refuses requests until it is back",
            headers={"Retry-After": "1"},
        )
        await self._respond(scope, receive, send, error, [])
        return None

    @staticmethod
    async def _respond(
        scope: Scope,
        receive: Receive,
        send: Send,
        error: GarrisonError,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        response = problem_response(error, request_id=request_id(scope))
        response.raw_headers.extend(headers)
        await response(scope, receive, send)
