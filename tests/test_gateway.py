from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from garrison.app import create_app
from garrison.settings import Settings
from tests.conftest import make_settings, migrated, start
from tests.helpers import assert_problem
from tests.routes import router as extra_routes

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-xss-protection": "0",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


@pytest.fixture
def gw_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        http={
            "cors_origins": ["https://app.example.com"],
            "trusted_proxies": ["10.0.0.0/8"],
            "max_body_bytes": 2048,
        },
    )


async def _client(
    settings: Settings, client_addr: tuple[str, int] = ("127.0.0.1", 5000)
) -> AsyncIterator[httpx.AsyncClient]:
    await migrated(settings)
    app = create_app(settings)
    app.include_router(extra_routes)
    async with start(app, client_addr=client_addr) as running:
        yield running.client


@pytest.fixture
async def gw(gw_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(gw_settings):
        yield client


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    assert "strict-transport-security" not in response.headers
    server = response.headers.get("server", "")
    assert not any(ch.isdigit() for ch in server)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/health/live", 200),
        ("GET", "/nope", 404),
        ("DELETE", "/api/health", 405),
        ("GET", "/api/v1/_test/boom", 500),
        ("GET", "/api/v1/_test/conflict", 409),
    ],
)
async def test_security_headers_on_every_response(
    gw: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await gw.request(method, path)
    assert response.status_code == status
    assert_security_headers(response)
    assert response.headers["cache-control"] == "no-store"


async def test_route_may_choose_its_caching(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/v1/_test/cached")
    assert response.headers["cache-control"] == "public, max-age=60"


async def test_docs_get_a_policy_that_lets_them_load(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/docs")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src" in csp
    assert "frame-ancestors 'none'" in csp


async def test_hsts_in_strict_environments(tmp_path: Path, mysql_url: str, redis_url: str) -> None:
    settings = make_settings(
        tmp_path,
        env="staging",
        database_url=mysql_url,
        redis_url=redis_url,
        secret_key="Zq8mW3nR6tY1uI4oP7aS0dF2gH5jK9lX",
    )
    async for client in _client(settings):
        response = await client.get("/api/health/live")
        hsts = response.headers["strict-transport-security"]
        assert hsts == "max-age=31536000; includeSubDomains"


async def test_openapi_is_3_1(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")


# --- request ids -------------------------------------------------------------------------


async def test_request_id_generated_and_echoed(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/v1/_test/whoami/1")
    rid = response.headers["x-request-id"]
    assert len(rid) == 32
    assert response.json()["request_id"] == rid


async def test_sane_request_id_kept(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/v1/_test/whoami/1", headers={"X-Request-ID": "abc-123_DEF.456"})
    assert response.headers["x-request-id"] == "abc-123_DEF.456"


@pytest.mark.parametrize(
    "bad", ["short", "x" * 200, "has space in it", "semi;colon;value", "<script>x"]
)
async def test_insane_request_id_replaced(gw: httpx.AsyncClient, bad: str) -> None:
    response = await gw.get("/api/health/live", headers={"X-Request-ID": bad})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) == 32


# --- errors as problem details -----------------------------------------------------------


async def test_unknown_route_is_problem(gw: httpx.AsyncClient) -> None:
    body = assert_problem(await gw.get("/api/v1/does-not-exist"), 404)
    assert body["title"] == "Not Found"


async def test_wrong_method_is_problem_with_allow(gw: httpx.AsyncClient) -> None:
    response = await gw.put("/api/health/live", json={})
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"


async def test_validation_error_points_at_fields(gw: httpx.AsyncClient) -> None:
    response = await gw.post("/api/v1/_test/echo", json={"email": "x", "age": -1})
    body = assert_problem(response, 422)
    pointers = {e["pointer"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert pointers == {"#/email", "#/age"}


async def test_missing_field_is_named(gw: httpx.AsyncClient) -> None:
    body = assert_problem(await gw.post("/api/v1/_test/echo", json={"email": "a@b.c"}), 422)
    assert [e["pointer"] for e in body["errors"]] == ["#/age"]  # type: ignore[attr-defined]


async def test_malformed_json_is_400(gw: httpx.AsyncClient) -> None:
    response = await gw.post(
        "/api/v1/_test/echo", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400)
    assert body["type"] == "urn:garrison:problem:malformed-body"


async def test_unexpected_exception_is_generic_500(gw_settings: Settings, tmp_path: Path) -> None:
    stream = io.StringIO()
    from garrison.log import configure_logging

    gw_settings.log.format = "json"
    configure_logging(gw_settings, stream=stream)
    async for client in _client(gw_settings):
        response = await client.get("/api/v1/_test/boom")
    body = assert_problem(response, 500)
    assert "internal-detail" not in response.text
    assert "Traceback" not in response.text
    logged = stream.getvalue()
    assert "internal-detail-that-must-not-leak" in logged
    assert "Traceback" in logged
    assert str(body["request_id"]) in logged


async def test_domain_error_extensions_pass_through(gw: httpx.AsyncClient) -> None:
    body = assert_problem(await gw.get("/api/v1/_test/conflict"), 409)
    assert body["detail"] == "already there"
    assert body["resource"] == "thing"


# --- body limit and content type ---------------------------------------------------------


async def test_declared_body_too_large_is_413(gw: httpx.AsyncClient) -> None:
    response = await gw.post(
        "/api/v1/_test/raw", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_streamed_body_too_large_is_413(gw: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 512

    response = await gw.post(
        "/api/v1/_test/raw", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_body_within_limit_passes(gw: httpx.AsyncClient) -> None:
    response = await gw.post(
        "/api/v1/_test/raw", content=b"z" * 2000, headers={"content-type": "application/json"}
    )
    assert response.json() == {"received": 2000}


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_unsupported_content_type_is_415(
    gw: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await gw.post("/api/v1/_test/raw", content=b"hello", headers=headers)
    assert_problem(response, 415)


async def test_json_with_charset_and_suffix_accepted(gw: httpx.AsyncClient) -> None:
    for ct in ("application/json; charset=utf-8", "application/vnd.thing+json"):
        response = await gw.post("/api/v1/_test/raw", content=b"{}", headers={"content-type": ct})
        assert response.status_code == 200, ct


# --- CORS ----------------------------------------------------------------------------------


async def test_cors_allows_listed_origin(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/health/live", headers={"Origin": "https://app.example.com"})
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"


async def test_cors_never_reflects_other_origins(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/health/live", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    preflight = await gw.options(
        "/api/health/live",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 400
    assert preflight.headers.get("access-control-allow-origin") != "https://evil.example"


async def test_cors_preflight_for_listed_origin(gw: httpx.AsyncClient) -> None:
    response = await gw.options(
        "/api/v1/_test/echo",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert_security_headers(response)


# --- client address and trusted proxies ---------------------------------------------------


async def test_forwarded_for_ignored_from_untrusted_peer(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/v1/_test/whoami/1", headers={"X-Forwarded-For": "1.2.3.4"})
    assert response.json()["client"] == "127.0.0.1"


async def test_forwarded_for_honoured_from_trusted_proxy(gw_settings: Settings) -> None:
    async for client in _client(gw_settings, client_addr=("10.1.2.3", 4000)):
        response = await client.get(
            "/api/v1/_test/whoami/1",
            headers={
                "X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.9.9.9",
                "X-Forwarded-Proto": "https",
            },
        )
        body = response.json()
        # 10.9.9.9 is another trusted hop; 198.51.100.7 is the first untrusted address.
        assert body["client"] == "198.51.100.7"
        assert body["scheme"] == "https"


# --- access log ----------------------------------------------------------------------------


async def test_access_log_line(gw_settings: Settings) -> None:
    stream = io.StringIO()
    from garrison.log import configure_logging

    gw_settings.log.format = "json"
    configure_logging(gw_settings, stream=stream)
    async for client in _client(gw_settings):
        response = await client.get(
            "/api/v1/_test/whoami/secret-id?token=hunter2",
            headers={"Authorization": "Bearer sekrit-token-value", "X-Request-ID": "req-abcdef-1"},
        )
    assert response.status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["event"] == "http.request"]
    assert len(access) == 1
    entry = access[0]
    assert entry["route"] == "/api/v1/_test/whoami/{item_id}"
    assert entry["method"] == "GET"
    assert entry["status"] == 200
    assert entry["request_id"] == "req-abcdef-1"
    assert entry["client_ip"] == "127.0.0.1"
    assert entry["user_id"] == "user-123"
    assert entry["time"].endswith("Z")
    assert isinstance(entry["duration_ms"], float)
    text = stream.getvalue()
    for secret in ("hunter2", "sekrit-token-value", "secret-id"):
        assert secret not in text


def test_log_redaction_of_secret_keys() -> None:
    from garrison.log import REDACTED, redact_secrets

    event = redact_secrets(
        None, "info", {"event": "x", "password": "p", "refresh_token": "t", "user": "u"}
    )
    assert event == {"event": "x", "password": REDACTED, "refresh_token": REDACTED, "user": "u"}


# --- fuzz: nothing the client sends produces a 500 -----------------------------------------


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=60),
    request_id=st.text(
        alphabet=st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=150
    ),
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
async def test_no_input_causes_a_server_error(
    gw: httpx.AsyncClient, path: str, request_id: str, body: bytes, content_type: str
) -> None:
    url = "/api/v1/_test/echo" if not path else "/" + path.lstrip("/")
    try:
        request = gw.build_request(
            "POST",
            url,
            content=body,
            headers={"X-Request-ID": request_id, "Content-Type": content_type},
        )
    except (httpx.InvalidURL, UnicodeEncodeError, ValueError):
        return
    response = await gw.send(request)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_busy_database_is_503_not_500(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/v1/_test/db-busy")
    body = assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert "UPDATE" not in str(body)


async def test_an_exhausted_connection_pool_is_503_not_500(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/v1/_test/pool-exhausted")
    body = assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert "QueuePool" not in str(body)
