"""OpenTelemetry tracing: off by default, on with ``GARRISON_TRACING__ENABLED=true``.

When on, every HTTP request is a server span named ``METHOD /route/{template}`` (never the
raw path), continuing the caller's trace when a W3C ``traceparent`` header comes in; database
statements are child spans; spans leave in batches over OTLP/HTTP to
``tracing.otlp_endpoint``; and every log line written inside a span carries its ``trace_id``
and ``span_id``. The OpenTelemetry packages are the optional ``garrison[tracing]`` extra and
are imported only when tracing is on.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from garrison import __version__
from garrison.context import StatusCapture, request_id, route_template, state
from garrison.db.engine import Database
from garrison.metrics.database import operation
from garrison.settings import TracingSettings
from garrison.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

INSTRUMENTATION = "garrison"
_SPAN = "_garrison_span"


def create_provider(settings: TracingSettings) -> TracerProvider:
    """A tracer provider exporting over OTLP/HTTP; the caller shuts it down (which flushes)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        ),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class _HeaderGetter:
    """Reads propagation headers straight from the ASGI scope."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        name = key.lower().encode()
        values = [v.decode("latin-1") for k, v in carrier.get("headers", ()) if k == name]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier.get("headers", ())]


class TracingMiddleware:
    def __init__(self, app: ASGIApp, *, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.app = app
        self.tracer: Tracer = provider.get_tracer(INSTRUMENTATION, __version__)
        self.propagator = TraceContextTextMapPropagator()
        self.getter = _HeaderGetter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry.trace import SpanKind, Status, StatusCode

        method = scope["method"]
        parent = self.propagator.extract(scope, getter=self.getter)  # type: ignore[arg-type]
        capture = StatusCapture(send)
        with self.tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "")},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self.app(scope, receive, capture)
            finally:
                route = route_template(scope)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", capture.status)
                client_ip = state(scope).get("client_ip")
                if isinstance(client_ip, str):
                    span.set_attribute("client.address", client_ip)
                rid = request_id(scope)
                if rid is not None:
                    span.set_attribute("garrison.request_id", rid)
                if capture.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


def instrument_database(db: Database, provider: TracerProvider) -> None:
    """A client span per SQL statement, as a child of the request's span."""
    tracer = provider.get_tracer(INSTRUMENTATION, __version__)
    engines = [db.engine.sync_engine, *(engine.sync_engine for engine in db.reader_engines())]
    for engine in engines:
        _trace_engine(engine, tracer)
    _trace_fast_reads(db, tracer)


def _trace_fast_reads(db: Database, tracer: Tracer) -> None:
    """The hot-path reads bypass the engine's events: a span around each statement."""
    from opentelemetry.trace import SpanKind

    system = "sqlite" if db.is_sqlite else "mysql"
    attributes = {"db.system.name": system, "db.operation.name": "SELECT"}

    def span() -> AbstractContextManager[Any]:
        return tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes=attributes)

    for reader in db.fast_readers():
        reader.span = span


def _trace_engine(engine: Engine, tracer: Tracer) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    system = "sqlite" if engine.dialect.name == "sqlite" else "mysql"

    def before_execute(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, *_: Any
    ) -> None:
        if context is None:
            return
        name = operation(statement)
        span = tracer.start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": system, "db.operation.name": name},
        )
        setattr(context, _SPAN, span)

    def after_execute(
        _conn: Any, _cursor: Any, _stmt: str, _params: Any, context: Any, *_: Any
    ) -> None:
        span = getattr(context, _SPAN, None)
        if span is not None:
            setattr(context, _SPAN, None)
            span.end()

    def on_error(exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, _SPAN, None) if context is not None else None
        if span is not None:
            setattr(context, _SPAN, None)
            error = type(exception_context.original_exception).__name__
            span.set_status(Status(StatusCode.ERROR, error))
            span.end()

    event.listen(engine, "before_cursor_execute", before_execute)
    event.listen(engine, "after_cursor_execute", after_execute)
    event.listen(engine, "handle_error", on_error)
