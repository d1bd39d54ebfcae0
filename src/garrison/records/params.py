"""The list endpoint's query parameters, parsed by hand.

FastAPI's per-parameter machinery costs more CPU than the rest of a list request's Python,
so the list endpoint reads its six parameters here instead, with the same limits, the same
422 problem naming the parameter, and the same OpenAPI description (``OPENAPI``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from garrison.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_LENGTH = {"filter": 4096, "sort": 500, "cursor": 2000, "fields": 2000}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class ListParams:
    filter: str | None = None
    sort: str | None = None
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    fields: list[str] | None = None
    count: bool = False


def parse_list_params(query: Mapping[str, str]) -> ListParams:
    """``ListParams`` from a query string's values; 422 naming each bad parameter."""
    errors: list[dict[str, str]] = []
    text: dict[str, str | None] = {}
    for name, longest in _MAX_LENGTH.items():
        value = query.get(name)
        if value is not None and len(value) > longest:
            errors.append({"parameter": name, "detail": f"at most {longest} characters"})
            value = None
        text[name] = value
    limit = DEFAULT_LIMIT
    raw_limit = query.get("limit")
    if raw_limit is not None:
        try:
            limit = int(raw_limit.strip())
        except ValueError:
            errors.append({"parameter": "limit", "detail": "must be an integer"})
        else:
            if not 1 <= limit <= MAX_LIMIT:
                errors.append({"parameter": "limit", "detail": f"must be 1 to {MAX_LIMIT}"})
    count = False
    raw_count = query.get("count")
    if raw_count is not None:
        word = raw_count.strip().lower()
        if word not in _TRUE and word not in _FALSE:
            errors.append({"parameter": "count", "detail": "must be true or false"})
        count = word in _TRUE
    if errors:
        raise ValidationFailed("the request has invalid parameters", errors=errors)
    fields = text["fields"]
    return ListParams(
        filter=text["filter"] or None,
        sort=text["sort"] or None,
        cursor=text["cursor"] or None,
        limit=limit,
        fields=[f.strip() for f in fields.split(",") if f.strip()] if fields else None,
        count=count,
    )


def _parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


OPENAPI: dict[str, Any] = {
    "parameters": [
        _parameter(
            "filter",
            {"type": "string", "maxLength": _MAX_LENGTH["filter"]},
            "filter expression, e.g. status = 'live' && views > 10",
        ),
        _parameter(
            "sort",
            {"type": "string", "maxLength": _MAX_LENGTH["sort"]},
            "comma-separated fields, '-' for descending, e.g. -created_at,title",
        ),
        _parameter(
            "cursor",
            {"type": "string", "maxLength": _MAX_LENGTH["cursor"]},
            "next_cursor from the previous page",
        ),
        _parameter(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "page size",
        ),
        _parameter(
            "fields",
            {"type": "string", "maxLength": _MAX_LENGTH["fields"]},
            "comma-separated fields to return (id is always included)",
        ),
        _parameter(
            "count", {"type": "boolean", "default": False}, "include the total matching rows"
        ),
    ]
}
