"""``/metrics`` in-process: what is counted, how it is labelled, and who may read it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from garrison import __version__, metrics
from garrison.app import create_app
from garrison.settings import ConfigError, Settings
from tests.conftest import Running, make_settings, migrated, start
from tests.metrics_helpers import Samples, parse, total, value
from tests.routes import router as extra_routes

GOOD_TOKEN = "Mt7qW2eR9tY4uI1oP6aS3dF8gH5jK0lZx"
WHOAMI = "/api/v1/_test/whoami/{item_id}"
REQUESTS = "garrison_http_requests_total"
DURATION_COUNT = "garrison_http_request_duration_seconds_count"


async def scrape(client: httpx.AsyncClient, **kwargs: Any) -> Samples:
    response = await client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def _client(
    settings: Settings,
    *,
    client_addr: tuple[str, int] = ("127.0.0.1", 5000),
    routers: tuple[APIRouter, ...] = (),
) -> AsyncIterator[httpx.AsyncClient]:
    await migrated(settings)
    app = create_app(settings)
    app.include_router(extra_routes)
    for router in routers:
        app.include_router(router)
    async with start(app, client_addr=client_addr) as running:
        yield running.client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(make_settings(tmp_path)):
        yield c


async def test_exposition_parses_and_counts_by_route_template(client: httpx.AsyncClient) -> None:
    labels = {"method": "GET", "route": WHOAMI, "status": "200"}
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/api/v1/_test/whoami/{uuid.uuid4()}")).status_code == 200
    after = await scrape(client)
    assert value(after, REQUESTS, labels) - value(before, REQUESTS, labels) == 3
    assert value(after, DURATION_COUNT, labels) - value(before, DURATION_COUNT, labels) == 3
    assert value(after, "garrison_build_info", {"version": __version__}) == 1
    assert value(after, "garrison_workers") == 1
    assert value(after, "garrison_process_resident_memory_bytes") > 0


async def test_errors_and_unmatched_paths_get_fixed_labels(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    assert (await client.get("/api/v1/_test/boom")).status_code == 500
    assert (await client.get("/no/such/route")).status_code == 404
    assert (await client.request("PURGE", "/api/health/live")).status_code == 405
    after = await scrape(client)

    def delta(**labels: str) -> float:
        return value(after, REQUESTS, labels) - value(before, REQUESTS, labels)

    assert delta(method="GET", route="/api/v1/_test/boom", status="500") == 1
    assert delta(method="GET", route="<unmatched>", status="404") == 1
    assert total(after, REQUESTS, method="OTHER") > total(before, REQUESTS, method="OTHER")


async def test_no_id_email_or_token_ever_reaches_a_label(client: httpx.AsyncClient) -> None:
    marker = uuid.uuid4().hex
    email = f"alice.{marker}@example.com"
    token = f"tok_{marker}secret"
    await client.get(f"/api/v1/_test/whoami/{marker}?token={token}&email={email}")
    await client.get(f"/api/v1/users/{email}/keys/{token}")
    await client.get(f"/{marker}", headers={"Authorization": f"Bearer {token}"})
    await client.request(f"X{marker[:8].upper()}", f"/api/v1/_test/whoami/{marker}")
    await client.post("/api/v1/_test/echo", json={"email": email, "age": -1})
    metrics.cache("hit", namespace=marker)
    metrics.cache("miss", namespace=email)
    metrics.ratelimit("limited", policy=f"user:{marker}")
    metrics.auth_event(email, "denied")
    metrics.auth_event(token, "failed")
    text = (await client.get("/metrics")).text
    parse(text)
    for secret in (marker, marker[:8].upper(), email, token, "example.com"):
        assert secret not in text
    samples = parse(text)
    assert value(samples, "garrison_cache_requests_total", {"namespace": "other", "result": "hit"})
    assert value(samples, "garrison_auth_events_total", {"kind": "other", "outcome": "denied"})


@pytest.fixture
async def running_app(tmp_path: Path) -> AsyncIterator[Running]:
    settings = make_settings(tmp_path)
    await migrated(settings)
    app = create_app(settings)
    app.include_router(extra_routes)
    async with start(app) as running:
        yield running


def route_templates(routes: Iterable[Any]) -> Iterator[str]:
    """Every route's path template; included routers are walked (FastAPI >= 0.165 keeps
    them as one entry each in ``app.routes``; their routes' paths carry the prefix)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from route_templates(included.routes)
        elif isinstance(getattr(route, "path", None), str):
            yield route.path


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PROPFIND", "X-CUSTOM"]),
    path=st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=60),
)
async def test_labels_stay_within_closed_sets(running_app: Running, method: str, path: str) -> None:
    """Whatever the path and method, a new series' route label is one of the app's route
    templates or ``<unmatched>``, and its method label a standard method or ``OTHER``."""
    client = running_app.client
    try:
        request = client.build_request(method, "/" + path.lstrip("/"))
    except (httpx.InvalidURL, UnicodeEncodeError, ValueError):
        return
    before = set(await scrape(client))
    await client.send(request)
    after = set(await scrape(client))
    templates = set(route_templates(running_app.app.routes))
    for name, labels in after - before:
        found = dict(labels)
        if name == REQUESTS:
            assert found["route"] in templates | {"<unmatched>"}
            assert found["method"] in {"GET", "POST", "DELETE", "OTHER"}


async def test_domain_helpers_count(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    metrics.ratelimit("allowed")
    metrics.ratelimit("limited", policy="auth")
    metrics.ratelimit("fail_open")
    metrics.cache("hit", namespace="signing_keys")
    metrics.cache("miss", namespace="signing_keys")
    metrics.cache("error", namespace="signing_keys")
    metrics.auth_event("login", "success")
    metrics.auth_event("refresh_reuse", "denied")
    after = await scrape(client)
    expected = [
        ("garrison_ratelimit_decisions_total", {"policy": "default", "decision": "allowed"}),
        ("garrison_ratelimit_decisions_total", {"policy": "auth", "decision": "limited"}),
        ("garrison_ratelimit_decisions_total", {"policy": "default", "decision": "fail_open"}),
        ("garrison_cache_requests_total", {"namespace": "signing_keys", "result": "hit"}),
        ("garrison_cache_requests_total", {"namespace": "signing_keys", "result": "miss"}),
        ("garrison_cache_requests_total", {"namespace": "signing_keys", "result": "error"}),
        ("garrison_auth_events_total", {"kind": "login", "outcome": "success"}),
        ("garrison_auth_events_total", {"kind": "refresh_reuse", "outcome": "denied"}),
    ]
    for name, labels in expected:
        assert value(after, name, labels) - value(before, name, labels) == 1, (name, labels)


async def test_in_flight_counts_requests_being_handled(tmp_path: Path) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    slow = APIRouter()

    @slow.get("/api/v1/_slow")
    async def _slow() -> dict[str, bool]:
        entered.set()
        await release.wait()
        return {"ok": True}

    async for client in _client(make_settings(tmp_path), routers=(slow,)):
        idle = value(await scrape(client), "garrison_http_requests_in_flight")
        pending = asyncio.create_task(client.get("/api/v1/_slow"))
        await entered.wait()
        busy = value(await scrape(client), "garrison_http_requests_in_flight")
        release.set()
        assert (await pending).status_code == 200
        after = value(await scrape(client), "garrison_http_requests_in_flight")
        # The scrape itself is in flight while it reads the gauge.
        assert busy == idle + 1
        assert after == idle


async def test_database_pool_and_query_metrics(settings: Settings) -> None:
    settings.worker.in_process = False  # its polling would hold a connection at scrape time
    await migrated(settings)
    app = create_app(settings)
    async with start(app) as running:
        before = await scrape(running.client)
        assert (await running.client.get("/api/health")).status_code == 200
        after = await scrape(running.client)
    # The health check reads the writer through its autocommit pool, labelled reader.
    query = {"pool": "reader", "operation": "SELECT"}
    name = "garrison_db_query_duration_seconds_count"
    assert value(after, name, query) > value(before, name, query)
    wait = "garrison_db_pool_wait_seconds_count"
    assert value(after, wait, {"pool": "reader"}) > value(before, wait, {"pool": "reader"})
    assert value(after, "garrison_db_pool_size", {"pool": "writer"}) >= 1
    # Background work (the auth key ring loading, the worker) may hold one at scrape time.
    checked_out = value(after, "garrison_db_pool_checked_out", {"pool": "writer"})
    assert 0 <= checked_out <= value(after, "garrison_db_pool_size", {"pool": "writer"})
    assert ("garrison_db_pool_overflow", frozenset({("pool", "writer")})) in after
    assert value(after, "garrison_db_storage_bytes") > 0
    if not settings.is_sqlite:  # the hot-path reader's driver pool (the first scrape opened it)
        assert value(after, "garrison_db_pool_size", {"pool": "reader/driver"}) >= 1


# --- access ------------------------------------------------------------------------------


async def test_development_serves_loopback_only(tmp_path: Path) -> None:
    async for client in _client(make_settings(tmp_path), client_addr=("203.0.113.9", 4000)):
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_token_is_required_when_set(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics={"token": GOOD_TOKEN})
    async for client in _client(settings, client_addr=("203.0.113.9", 4000)):
        missing = await client.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert GOOD_TOKEN not in missing.text
        wrong = await client.get("/metrics", headers={"Authorization": f"Bearer {GOOD_TOKEN}x"})
        assert wrong.status_code == 401
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {GOOD_TOKEN}"})
        assert basic.status_code == 401
        await scrape(client, headers={"Authorization": f"Bearer {GOOD_TOKEN}"})


async def test_staging_is_not_public(tmp_path: Path, mysql_url: str, redis_url: str) -> None:
    strict = {
        "env": "staging",
        "database_url": mysql_url,
        "redis_url": redis_url,
        "secret_key": "Zq8mW3nR6tY1uI4oP7aS0dF2gH5jK9lX",
    }
    async for client in _client(make_settings(tmp_path / "a", **strict)):
        assert (await client.get("/metrics")).status_code == 404  # even from loopback
    settings = make_settings(tmp_path / "b", **strict, metrics={"token": GOOD_TOKEN})
    async for client in _client(settings):
        assert (await client.get("/metrics")).status_code == 401
        await scrape(client, headers={"Authorization": f"Bearer {GOOD_TOKEN}"})


async def test_separate_listener_means_not_on_the_api(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics={"listen": "127.0.0.1:9464"})
    async for client in _client(settings):
        assert (await client.get("/metrics")).status_code == 404


async def test_disabled_metrics_are_not_served(tmp_path: Path) -> None:
    async for client in _client(make_settings(tmp_path, metrics={"enabled": False})):
        assert (await client.get("/metrics")).status_code == 404


@pytest.mark.parametrize("token", ["changeme", "short-but-real", "a" * 40])
def test_weak_metrics_token_is_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, metrics={"token": token})
    assert caught.value.variable == "GARRISON_METRICS__TOKEN"
    assert token not in str(caught.value)


@pytest.mark.parametrize("listen", ["9464", "127.0.0.1:", ":9464", "host:99999"])
def test_bad_listen_address_is_refused(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, metrics={"listen": listen})
    assert caught.value.variable == "GARRISON_METRICS__LISTEN"


def test_token_is_redacted_in_config_show(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics={"token": GOOD_TOKEN})
    assert GOOD_TOKEN not in str(settings.redacted())
    assert settings.redacted()["metrics"]["token"] == "**********"


async def test_failed_statement_is_still_timed(settings: Settings) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from garrison.db import Database

    name = "garrison_db_query_duration_seconds_count"
    labels = {"pool": "writer", "operation": "SELECT"}
    db = Database(settings.db_url, settings.db)
    metrics.instrument_database(db)
    metrics.instrument_database(db)  # a second call adds no second set of listeners
    checked_out = metrics.REGISTRY.get_sample_value(
        "garrison_db_pool_checked_out", {"pool": "writer"}
    )
    before = metrics.REGISTRY.get_sample_value(name, labels) or 0
    try:
        async with db.connect() as conn:
            with pytest.raises(DBAPIError):
                await conn.execute(text("SELECT missing_column FROM no_such_table"))
        async with db.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await db.dispose()
    assert metrics.REGISTRY.get_sample_value(name, labels) == before + 2
    after_checked_out = metrics.REGISTRY.get_sample_value(
        "garrison_db_pool_checked_out", {"pool": "writer"}
    )
    assert after_checked_out == checked_out
