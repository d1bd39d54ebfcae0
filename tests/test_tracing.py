"""Tracing against a real OTLP/HTTP receiver on loopback: spans, their parents, and the
trace id in every log line of the request."""

from __future__ import annotations

import io
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from garrison.app import create_app
from garrison.gateway.pipeline import GatewayMiddleware
from garrison.log import configure_logging
from garrison.settings import ConfigError
from garrison.settings import checks as settings_checks
from tests.conftest import make_settings, migrated, start
from tests.routes import router as extra_routes

pytest.importorskip("opentelemetry.sdk", reason="needs the garrison[tracing] extra")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                collector.paths.append(self.path)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.close()


def _attributes(span: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for attribute in span.attributes:
        kind = attribute.value.WhichOneof("value")
        result[attribute.key] = getattr(attribute.value, kind) if kind else None
    return result


async def test_requests_become_spans_and_log_lines_carry_the_trace_id(
    tmp_path: Path, database_url: str, collector: Collector
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        tracing={"enabled": True, "otlp_endpoint": collector.endpoint},
        log={"format": "json", "level": "debug"},
        # The health check's own 0.8 s per check fails fast in production; on a machine
        # busy with other tests it would turn this request into a 503.
        health={"check_timeout": 5},
    )
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    await migrated(settings)
    app = create_app(settings)
    app.include_router(extra_routes)
    trace_id = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)
    secret = secrets.token_hex(12)
    async with start(app) as running:
        health = await running.client.get(
            "/api/health", headers={"traceparent": f"00-{trace_id}-{caller_span}-01"}
        )
        assert health.status_code == 200
        item = await running.client.get(f"/api/v1/_test/whoami/{secret}?token={secret}")
        assert item.status_code == 200
    # Leaving the lifespan shut the provider down, which exported every queued span.
    assert collector.paths
    assert set(collector.paths) == {"/v1/traces"}
    servers = {span.name: span for span in collector.spans if span.kind == 2}
    health_span = servers["GET /api/health"]
    assert health_span.trace_id.hex() == trace_id
    assert health_span.parent_span_id.hex() == caller_span
    assert _attributes(health_span)["http.route"] == "/api/health"
    assert _attributes(health_span)["http.response.status_code"] == 200
    queries = [
        s for s in collector.spans if s.kind == 3 and s.parent_span_id == health_span.span_id
    ]
    operations = {_attributes(query)["db.operation.name"] for query in queries}
    assert "SELECT" in operations, "the health check's query is a child span of the request"

    item_span = servers["GET /api/v1/_test/whoami/{item_id}"]
    assert item_span.trace_id.hex() != trace_id
    for span in collector.spans:
        assert secret not in span.name
        assert all(secret not in str(v) for v in _attributes(span).values())

    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["event"] == "http.request"]
    by_route = {line["route"]: line for line in access}
    assert by_route["/api/health"]["trace_id"] == trace_id
    assert by_route["/api/health"]["span_id"] == health_span.span_id.hex()
    assert by_route["/api/v1/_test/whoami/{item_id}"]["trace_id"] == item_span.trace_id.hex()


async def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, log={"format": "json"})
    assert settings.tracing.enabled is False
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    await migrated(settings)
    app = create_app(settings)
    kinds = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[attr-defined]
    assert "TracingMiddleware" not in kinds
    assert GatewayMiddleware.__name__ in kinds
    async with start(app) as running:
        headers = {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"}
        assert (await running.client.get("/api/health/live", headers=headers)).status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    assert lines
    assert all("trace_id" not in line for line in lines)


def test_enabling_without_the_extra_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_checks, "_installed", lambda _module: False)
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, tracing={"enabled": True})
    assert caught.value.variable == "GARRISON_TRACING__ENABLED"
    assert "garrison[tracing]" in caught.value.message


@pytest.mark.parametrize("endpoint", ["127.0.0.1:4318", "grpc://collector:4317"])
def test_endpoint_must_be_http(tmp_path: Path, endpoint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, tracing={"enabled": True, "otlp_endpoint": endpoint})
    assert caught.value.variable == "GARRISON_TRACING__OTLP_ENDPOINT"
