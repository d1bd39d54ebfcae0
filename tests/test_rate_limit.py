"""The rate-limit layer in the app: policies, principals, headers, refusals, outages."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import http_sf
import httpx
import pytest

from garrison.app import create_app
from garrison.errors import QUOTA_EXCEEDED_TYPE
from garrison.gateway.rate_limit import RateLimitStats
from garrison.log import configure_logging
from garrison.runtime import runtime_of
from garrison.settings import Settings
from garrison.types import Scope
from tests.conftest import make_settings, migrated, start
from tests.routes import router as extra_routes
from tests.throwaway_redis import throwaway_redis

LIMITED = "/api/v1/_test/cached"


@pytest.fixture(params=["memory", "redis"])
def store_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    url: str = request.getfixturevalue("redis_url")
    return {"redis_url": url, "redis_prefix": f"test:{uuid.uuid4().hex}:"}


def limited_settings(tmp_path: Path, **rate_limit: Any) -> dict[str, Any]:
    # One request per minute: the bucket cannot refill while a test runs, however busy the
    # machine (the limiters read the real clock; the store's own tests inject one).
    values: dict[str, Any] = {"requests_per_minute": 1, "burst": 3}
    values.update(rate_limit)
    return {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", "rate_limit": values}


async def running(settings: Settings, **start_kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    await migrated(settings)
    app = create_app(settings)
    app.include_router(extra_routes)
    async with start(app, **start_kwargs) as run:
        yield run.client


@pytest.fixture
async def client(
    tmp_path: Path, store_settings: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, **limited_settings(tmp_path), **store_settings)
    async for c in running(settings):
        yield c


def parse_fields(response: httpx.Response) -> tuple[Any, Any]:
    policy = http_sf.parse(response.headers["ratelimit-policy"].encode(), tltype="list")
    limit = http_sf.parse(response.headers["ratelimit"].encode(), tltype="list")
    return policy, limit


async def test_burst_headers_and_refusal(client: httpx.AsyncClient) -> None:
    responses = [await client.get(LIMITED) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    policy, limit = parse_fields(responses[0])
    assert policy == [("default", {"q": 1, "w": 60})]
    assert limit[0][0] == "default"
    assert [parse_fields(r)[1][0][1]["r"] for r in responses] == [2, 1, 0, 0]
    assert limit[0][1]["t"] == 60  # one request at 1/min costs a minute

    refused = responses[3]
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"] == QUOTA_EXCEEDED_TYPE
    assert body["status"] == 429
    assert body["violated-policies"] == ["default"]
    assert body["request_id"] == refused.headers["x-request-id"]
    assert int(refused.headers["retry-after"]) >= 1
    assert parse_fields(refused)[0] == [("default", {"q": 1, "w": 60})]
    # The usual gateway headers are on the refusal too (it passed through those layers).
    assert refused.headers["x-content-type-options"] == "nosniff"


async def test_health_and_metrics_are_never_limited(client: httpx.AsyncClient) -> None:
    for _ in range(6):
        live = await client.get("/api/health/live")
        assert live.status_code == 200
        assert "ratelimit" not in live.headers
        metrics = await client.get("/metrics")
        assert metrics.status_code != 429
    assert (await client.get("/api/health")).status_code == 200


async def test_auth_routes_have_their_own_stricter_bucket(
    tmp_path: Path, store_settings: dict[str, Any]
) -> None:
    auth = {
        "name": "auth",
        "paths": ["/api/v1/auth/login"],
        "requests_per_minute": 10,
        "burst": 1,
        "sensitive": True,
    }
    settings = make_settings(
        tmp_path, **limited_settings(tmp_path, routes=[auth]), **store_settings
    )
    async for client in running(settings):
        first = await client.post("/api/v1/auth/login", json={})
        assert parse_fields(first)[0] == [("auth", {"q": 10, "w": 60})]
        second = await client.post("/api/v1/auth/login/", json={})
        assert second.status_code == 429
        assert second.json()["violated-policies"] == ["auth"]
        # A path that only shares a prefix of characters is not an auth route.
        other = await client.get("/api/v1/auth/login-help")
        assert parse_fields(other)[0][0][0] == "default"
        assert (await client.get(LIMITED)).status_code == 200  # the default bucket is intact


async def test_development_defaults_are_unlimited(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    assert settings.rate_limit.requests_per_minute is None
    async for client in running(settings):
        for _ in range(30):
            response = await client.get(LIMITED)
            assert response.status_code == 200
            assert "ratelimit" not in response.headers
        login = await client.post("/api/v1/auth/login", json={})
        assert "ratelimit" not in login.headers


async def test_anonymous_callers_are_keyed_by_their_resolved_address(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        **limited_settings(tmp_path, burst=1),
        http={"trusted_proxies": ["10.0.0.0/8"]},
    )
    async for client in running(settings, client_addr=("10.1.1.1", 1234)):
        a = {"X-Forwarded-For": "203.0.113.7"}
        b = {"X-Forwarded-For": "203.0.113.8"}
        assert (await client.get(LIMITED, headers=a)).status_code == 200
        assert (await client.get(LIMITED, headers=a)).status_code == 429
        assert (await client.get(LIMITED, headers=b)).status_code == 200
        # Spoofing a forwarded address from an untrusted peer does not buy a new bucket.
    async for client in running(settings, client_addr=("198.51.100.1", 1234)):
        assert (await client.get(LIMITED, headers=a)).status_code == 200
        assert (await client.get(LIMITED, headers=b)).status_code == 429


async def test_identified_principals_have_their_own_buckets(tmp_path: Path) -> None:
    async def identify(scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"x-test-user":
                return f"user:{value.decode()}"
        return None

    settings = make_settings(tmp_path, **limited_settings(tmp_path, burst=1))
    await migrated(settings)
    app = create_app(settings, identify=identify)
    app.include_router(extra_routes)
    async with start(app) as run:
        client = run.client
        assert (await client.get(LIMITED, headers={"x-test-user": "1"})).status_code == 200
        assert (await client.get(LIMITED, headers={"x-test-user": "1"})).status_code == 429
        assert (await client.get(LIMITED, headers={"x-test-user": "2"})).status_code == 200
        assert (await client.get(LIMITED)).status_code == 200  # anonymous: keyed by IP
        assert (await client.get(LIMITED)).status_code == 429


@pytest.mark.parametrize(
    ("switches", "general", "sensitive"),
    [
        ({}, 200, 503),
        ({"fail_open": False, "fail_open_sensitive": True}, 503, 405),
    ],
)
async def test_store_outage_follows_the_failure_modes(
    tmp_path: Path, switches: dict[str, bool], general: int, sensitive: int
) -> None:
    auth = {
        "name": "auth",
        "paths": ["/api/v1/auth/login"],
        "requests_per_minute": 10,
        "burst": 5,
        "sensitive": True,
    }
    stream = io.StringIO()
    with throwaway_redis() as redis:
        settings = make_settings(
            tmp_path,
            redis_url=redis.url,
            **limited_settings(tmp_path, routes=[auth], burst=100, **switches),
        )
        settings.log.format = "json"
        configure_logging(settings, stream=stream)
        async for client in running(settings):
            assert (await client.get(LIMITED)).status_code == 200
            # GET on the login route: let through, the route answers 405 (POST only).
            assert (await client.get("/api/v1/auth/login")).status_code == 405
            redis.kill()
            for _ in range(3):
                during = await client.get(LIMITED)
                assert during.status_code == general
                # Open is not unlimited: this process's own limiter counts meanwhile.
                assert ("ratelimit" in during.headers) == (general == 200)
                login = await client.get("/api/v1/auth/login")
                assert login.status_code == sensitive
            if sensitive == 503 or general == 503:
                refused = login if sensitive == 503 else during
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.headers["retry-after"] == "1"
            health = await client.get("/api/health")
            assert health.status_code == 200
            assert health.json()["status"] == "warn"
            stats = runtime_of(client._transport.app).get(RateLimitStats)  # type: ignore[attr-defined]
            assert stats.failed_open + stats.failed_closed == 6
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    warnings = [line for line in lines if line["event"] == "ratelimit.store_unavailable"]
    assert warnings
    assert all(line["level"] == "warning" for line in warnings)


@pytest.mark.parametrize(
    ("routes", "variable"),
    [
        ([{"name": "auth", "paths": ["api/v1/auth"]}], "GARRISON_RATE_LIMIT__ROUTES"),
        ([{"name": "Bad Name!", "paths": ["/x"]}], "GARRISON_RATE_LIMIT__ROUTES"),
        ([{"name": "x", "paths": ["/x"], "burst": 0}], "GARRISON_RATE_LIMIT__ROUTES"),
    ],
)
def test_bad_route_policies_are_refused_naming_the_variable(
    tmp_path: Path, routes: list[dict[str, Any]], variable: str
) -> None:
    from garrison.settings import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, rate_limit={"routes": routes})
    assert caught.value.variable.startswith(variable)


def test_profiles_set_the_auth_policy(tmp_path: Path) -> None:
    from garrison.settings import Settings

    production = Settings(_env_file=None, env="production", database_url="mysql+asyncmy://u@h/d")
    (auth,) = production.rate_limit.routes
    assert (auth.name, auth.requests_per_minute, auth.burst, auth.sensitive) == (
        "auth",
        10,
        5,
        True,
    )
    assert "/api/v1/auth/login" in auth.paths
    other = Settings(_env_file=None, env="production", database_url="mysql+asyncmy://u@h/d")
    other.rate_limit.routes[0].paths.append("/changed")
    assert "/changed" not in production.rate_limit.routes[0].paths  # profiles are copied


async def test_decisions_are_counted_in_metrics(client: httpx.AsyncClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def counts(text: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name.endswith("ratelimit_decisions_total")
                    and sample.labels.get("policy") == "default"
                ):
                    found[sample.labels["decision"]] = sample.value
        return found

    before = counts((await client.get("/metrics")).text)
    for _ in range(4):
        await client.get(LIMITED)
    after = counts((await client.get("/metrics")).text)
    assert after.get("allowed", 0) - before.get("allowed", 0) == 3
    assert after.get("limited", 0) - before.get("limited", 0) == 1
