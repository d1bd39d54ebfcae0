"""Structured logging: JSON lines in staging/production, readable lines on a developer's TTY.

Every line carries a UTC timestamp, the level, and whatever is bound in the context (the
request id, the user id); values under secret-looking keys are replaced before rendering, so
no processor downstream can leak them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
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


class _JsonLines:
    """Writes a line of the JSON renderer's shape without its processor chain, for the one
    line every request writes (the access log): the fields are fixed and never secret, the
    request id is passed in, and nothing else is bound while it is written."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        fields["event"] = event
        fields["level"] = "info"
        fields["time"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.out.write(orjson.dumps(fields, default=str).decode() + "\n")
        self.out.flush()


# Set by ``configure_logging`` when lines are JSON at INFO or below and carry no trace ids.
_fast_lines: _JsonLines | None = None


def info_line(logger: Any, event: str, fields: dict[str, Any]) -> None:
    """One INFO line: straight to the stream when the configuration allows (see
    ``_JsonLines``), else through ``logger`` (structlog)."""
    writer = _fast_lines
    if writer is not None:
        writer(event, fields)
    else:
        logger.info(event, **fields)


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    global _fast_lines
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

    fast = fmt == "json" and level <= logging.INFO and not settings.tracing.enabled
    _fast_lines = _JsonLines(out) if fast else None
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
