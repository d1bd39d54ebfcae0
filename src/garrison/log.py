"""Structured logging: JSON lines in staging/production, readable lines on a developer's TTY.

Every line carries a UTC timestamp, the level, and whatever is bound in the context (the
request id, the user id); values under secret-looking keys are replaced before rendering, so
no processor downstream can leak them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog

from garrison.settings import Settings

REDACTED = "[redacted]"
_SECRET_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "cookie",
    "private_key",
)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_KEYS)


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key != "event" and _is_secret_key(key):
            event_dict[key] = REDACTED
    return event_dict


def _json_dumps(value: Any, **_kwargs: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current span's ids, as the W3C hex strings (tracing on)."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    fmt = settings.log.format
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    level = getattr(logging, settings.log.level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        redact_secrets,
    ]
    if settings.tracing.enabled:
        shared.insert(1, trace_ids)
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (granian, sqlalchemy, alembic) go
    # through the same renderer so every line has the same shape.
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=shared,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.INFO))
    # httpx logs full URLs (query strings can carry secrets) at INFO: keep it quiet.
    for noisy in (
        "sqlalchemy.engine",
        "aiosqlite",
        "asyncio",
        "alembic.runtime.migration",
        "httpx",
        "httpcore",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
