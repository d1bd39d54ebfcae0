"""Each gateway middleware alone, around a three-line app (the whole app is for the end-to-end
tests): what it adds, what it refuses, and that non-HTTP scopes pass straight through."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from garrison.context import current_context, route_template, state
from garrison.db import Database
from garrison.errors import NotFound
from garrison.gateway.access_log import AccessLogMiddleware
from garrison.gateway.body_limit import BodyLimitMiddleware
from garrison.gateway.client_ip import ClientAddress, ClientIpMiddleware
from garrison.gateway.content_type import ContentTypeMiddleware
from garrison.gateway.errors import ErrorsMiddleware
from garrison.gateway.pipeline import GatewayMiddleware
from garrison.gateway.rate_limit import RateLimitMiddleware, RateLimitStats
from garrison.gateway.request_id import RequestIdMiddleware
from garrison.gateway.security_headers import SecurityHeaders, SecurityHeadersMiddleware
from garrison.log import configure_logging
from garrison.runtime import Runtime, attach
from garrison.settings import RateLimitSettings
from garrison.store import MemoryRateLimiter, MemoryStore
from garrison.store.cache import Cache
from garrison.types import ASGIApp, Receive, Scope, Send
from tests.conftest import make_settings


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what the layers in front left behind: state, client, scheme, context."""
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    body = await request.body()
    values = state(scope)
    context = current_context()
    if scope["path"] == "/boom":
        raise RuntimeError("secret detail that must not leak")
    if scope["path"] == "/missing":
        raise NotFound("no such thing")
    response = JSONResponse(
        {
            "request_id": values.get("request_id"),
            "client_ip": values.get("client_ip"),
            "client": list(scope["client"]) if scope.get("client") else None,
            "scheme": scope["scheme"],
            "context_ip": context.ip,
            "body_bytes": len(body),
        }
    )
    await response(scope, receive, send)


def client(app: ASGIApp, peer: str = "203.0.113.9") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(peer, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.mark.parametrize(
    "wrap",
    [
        RequestIdMiddleware,
        AccessLogMiddleware,
        ErrorsMiddleware,
        SecurityHeadersMiddleware,
        lambda app: BodyLimitMiddleware(app, max_bytes=10),
        lambda app: ClientIpMiddleware(app, trusted_proxies=["127.0.0.1"]),
        lambda app: ContentTypeMiddleware(app, allowed=["application/json"]),
        lambda app: GatewayMiddleware(
            app, address=ClientAddress(), security=SecurityHeaders(), metrics=False
        ),
    ],
)
async def test_non_http_scopes_pass_straight_through(wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing() -> dict[str, object]:
        return {"type": "lifespan.startup"}

    async def ignore(message: object) -> None:
        return None

    await wrap(app)({"type": "lifespan"}, nothing, ignore)
    assert seen == ["lifespan"]


async def test_request_id_keeps_a_sane_one_and_replaces_a_bad_one() -> None:
    async with client(RequestIdMiddleware(echo)) as http:
        kept = await http.get("/", headers={"X-Request-ID": "abc-12345678"})
        assert kept.headers["x-request-id"] == "abc-12345678"
        assert kept.json()["request_id"] == "abc-12345678"
        replaced = await http.get("/", headers={"X-Request-ID": "bad id <script>"})
        fresh = replaced.headers["x-request-id"]
        assert len(fresh) == 32
        assert replaced.json()["request_id"] == fresh
        assert (await http.get("/")).headers["x-request-id"] != fresh


async def test_client_ip_trusts_forwarded_headers_only_from_trusted_proxies() -> None:
    app = ClientIpMiddleware(echo, trusted_proxies=["10.0.0.0/8"])
    headers = {"X-Forwarded-For": "198.51.100.7, 10.1.1.1", "X-Forwarded-Proto": "https"}
    async with client(app, peer="10.2.2.2") as http:
        via_proxy = (await http.get("/", headers=headers)).json()
    assert via_proxy["client_ip"] == "198.51.100.7"
    assert via_proxy["context_ip"] == "198.51.100.7"
    assert via_proxy["scheme"] == "https"
    async with client(app, peer="203.0.113.9") as http:
        direct = (await http.get("/", headers=headers)).json()
    assert direct["client_ip"] == "203.0.113.9"  # a stranger cannot claim another address
    assert direct["scheme"] == "http"
    async with client(app, peer="10.2.2.2") as http:
        garbage = (await http.get("/", headers={"X-Forwarded-For": "1.2.3.4, junk"})).json()
    assert garbage["client_ip"] == "10.2.2.2"  # stops at the last trusted hop


async def test_security_headers_on_every_response() -> None:
    async def server_header(scope: Scope, receive: Receive, send: Send) -> None:
        await Response("x", headers={"Server": "leaky/1.2"})(scope, receive, send)

    async with client(SecurityHeadersMiddleware(server_header, hsts=True)) as http:
        response = await http.get("/")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "server" not in response.headers


async def test_a_page_keeps_its_own_policy_only_when_it_forbids_framing() -> None:
    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        policy = "default-src 'none'; form-action 'self' https://app.example"
        if scope["path"].endswith("/framed"):
            policy += "; frame-ancestors *"
        else:
            policy += "; frame-ancestors 'none'"
        await Response("x", headers={"Content-Security-Policy": policy})(scope, receive, send)

    app = SecurityHeadersMiddleware(page, page_prefixes=("/oauth",))
    async with client(app) as http:
        own = await http.get("/oauth/authorize")
        framed = await http.get("/oauth/framed")
        api = await http.get("/api/v1/x")
    assert own.headers["content-security-policy"].endswith(
        "https://app.example; frame-ancestors 'none'"
    )
    assert "frame-ancestors *" not in framed.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in framed.headers["content-security-policy"]
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert len(own.headers.get_list("content-security-policy")) == 1


async def test_errors_turn_an_escaped_exception_into_a_bare_problem() -> None:
    async with client(RequestIdMiddleware(ErrorsMiddleware(echo))) as http:
        response = await http.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret detail" not in response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_body_limit_refuses_by_declared_and_by_streamed_length() -> None:
    app = ErrorsMiddleware(BodyLimitMiddleware(echo, max_bytes=10))
    async with client(app) as http:
        small = await http.post("/", content=b"0123456789")
        assert small.json()["body_bytes"] == 10
        declared = await http.post("/", content=b"x" * 11)
        assert declared.status_code == 413
        assert declared.headers["content-type"] == "application/problem+json"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"xxxxx"

        streamed = await http.post("/", content=chunks())
        assert streamed.status_code == 413


async def test_content_type_refuses_bodies_of_other_types_under_the_api_prefix() -> None:
    app = ContentTypeMiddleware(echo, allowed=["application/json"])
    async with client(app) as http:
        json_body = await http.post("/api/x", json={"a": 1})
        assert json_body.status_code == 200
        assert (
            await http.post("/api/x", content=b"a=1", headers={"Content-Type": "text/plain"})
        ).status_code == 415
        assert (
            await http.post("/other", content=b"a=1", headers={"Content-Type": "text/plain"})
        ).status_code == 200


async def test_access_log_writes_one_line_with_the_status_and_no_raw_matched_path(
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    settings = make_settings(tmp_path)
    settings.log.format = "json"
    configure_logging(settings, stream=stream)

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        await Response(status_code=404)(scope, receive, send)

    async with client(AccessLogMiddleware(not_found)) as http:
        await http.get("/api/v1/records/secret-token?q=1")
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    access = [line for line in lines if line.get("event") == "http.request"]
    assert len(access) == 1
    assert access[0]["status"] == 404
    assert access[0]["route"] == "<unmatched>"
    assert "q=1" not in json.dumps(access[0])  # query strings are never logged
    assert route_template({"type": "http"}) is None


async def test_rate_limit_refuses_with_429_and_headers(tmp_path: Path) -> None:
    """The limiter comes from the app's runtime (here a minimal one on memory stores)."""
    settings = make_settings(tmp_path)
    db = Database(settings.db_url, settings.db)
    runtime = Runtime(settings, db, MemoryStore(), Cache(MemoryStore()), MemoryRateLimiter())
    stats = RateLimitStats()
    policy = RateLimitSettings(requests_per_minute=1, burst=2)
    limited = ErrorsMiddleware(RateLimitMiddleware(echo, settings=policy, stats=stats))
    holder = Starlette()
    attach(holder, runtime)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = holder
        await limited(scope, receive, send)

    try:
        async with client(app) as http:
            statuses = [(await http.get("/x")).status_code for _ in range(3)]
            refused = await http.get("/x")
    finally:
        await db.dispose()
    assert statuses == [200, 200, 429]
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"] == '"default";q=1;w=60'
    assert (stats.allowed, stats.denied) == (2, 2)


async def test_the_gateway_layer_does_what_the_separate_layers_did(tmp_path: Path) -> None:
    """One layer: the request id (kept or replaced, echoed once), the client through a
    trusted proxy, the security headers over the app's own, one access-log line."""
    stream = io.StringIO()
    settings = make_settings(tmp_path)
    settings.log.format = "json"
    configure_logging(settings, stream=stream)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/own":
            headers = {"X-Request-ID": "forged-by-app", "Server": "x", "Cache-Control": "max-age=5"}
            await Response(status_code=204, headers=headers)(scope, receive, send)
            return
        await echo(scope, receive, send)

    gateway = GatewayMiddleware(
        app,
        address=ClientAddress(["127.0.0.1"]),
        security=SecurityHeaders(hsts=True),
        metrics=False,
    )
    async with client(gateway, peer="127.0.0.1") as http:
        kept = await http.get(
            "/echo",
            headers={"X-Request-ID": "abcdefgh-1234", "X-Forwarded-For": "198.51.100.7"},
        )
        own = await http.get("/own", headers={"X-Request-ID": "bad id!"})
    assert kept.status_code == 200
    assert kept.headers["x-request-id"] == "abcdefgh-1234"
    assert kept.json()["request_id"] == "abcdefgh-1234"
    assert kept.json()["client_ip"] == "198.51.100.7"
    assert kept.json()["context_ip"] == "198.51.100.7"
    assert kept.headers["cache-control"] == "no-store"
    assert kept.headers["content-security-policy"].startswith("default-src 'none'")
    assert kept.headers["strict-transport-security"].startswith("max-age=")
    assert own.headers.get_list("x-request-id") != ["forged-by-app"]
    assert len(own.headers.get_list("x-request-id")) == 1
    assert own.headers["x-request-id"] != "bad id!"
    assert own.headers["cache-control"] == "max-age=5"  # the app chose its caching
    assert "server" not in own.headers
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    access = [line for line in lines if line.get("event") == "http.request"]
    assert [line["status"] for line in access] == [200, 204]
    assert access[0]["request_id"] == "abcdefgh-1234"
    assert access[0]["client_ip"] == "198.51.100.7"
    assert access[1]["request_id"] == own.headers["x-request-id"]
    assert current_context().ip is None  # the request context was reset
