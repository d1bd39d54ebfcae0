"""Feature flags: definitions over the API, evaluation over OFREP and in-process.

    from garrison import flags

    if flags.evaluate("new-checkout", {"targetingKey": user_id}).value:
        ...

``evaluate`` reads the snapshot the running app holds in memory (no I/O); an unknown flag,
or no running app, resolves with ``error_code="FLAG_NOT_FOUND"`` and ``value=None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from garrison.flags.rules import ERROR, FLAG_NOT_FOUND, Resolution

__all__ = ["Resolution", "evaluate", "value"]

_EMPTY: Mapping[str, Any] = {}
_snapshot: list[Callable[[str, Mapping[str, Any]], Resolution]] = []


def _install(evaluator: Callable[[str, Mapping[str, Any]], Resolution] | None) -> None:
    """Called by the flag runtime when it starts (and with None when it stops)."""
    _snapshot[:] = [] if evaluator is None else [evaluator]


def evaluate(key: str, context: Mapping[str, Any] | None = None) -> Resolution:
    if not _snapshot:
        return Resolution(key, None, None, ERROR, FLAG_NOT_FOUND, "no flag runtime is running")
    return _snapshot[0](key, context or _EMPTY)


def value(key: str, context: Mapping[str, Any] | None = None, *, default: Any = None) -> Any:
    """The flag's value, or ``default`` when it cannot be evaluated."""
    resolution = evaluate(key, context)
    return default if resolution.error_code is not None else resolution.value
