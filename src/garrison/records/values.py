"""Checks on single values that record validation, field kinds and filters share: dates and
date-times, storable JSON, UTF-8 text, and the error they raise."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

# MariaDB refuses JSON nested deeper than 32 levels; the record itself is one.
MAX_JSON_DEPTH = 31


def parse_date(value: Any) -> date | None:
    """``YYYY-MM-DD`` as a date; None when it is not one."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time as an aware UTC datetime (no offset means UTC); None when it is
    not one."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


INT64 = (-(2**63), 2**63 - 1)


class InvalidValue(ValueError):
    def __init__(self, detail: str, pointer_suffix: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer_suffix = pointer_suffix


def check_json(value: Any) -> None:
    """``InvalidValue`` (with the pointer below the field) unless every part of a JSON value
    can be stored and written back: containers at most ``MAX_JSON_DEPTH`` deep (MariaDB's
    limit), integers within 64 bits (orjson's, for the audit entry and the response), finite
    numbers and strings without lone surrogates (not UTF-8). Iterative: no recursion limit."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, pointer, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= MAX_JSON_DEPTH:
                raise InvalidValue(f"is nested more than {MAX_JSON_DEPTH} levels deep", pointer)
            for key, child in item.items():
                if not isinstance(key, str) or not is_utf8(key):
                    raise InvalidValue("has a key that is not valid UTF-8", pointer)
                stack.append((child, f"{pointer}/{escape_pointer(key)}", depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_JSON_DEPTH:
                raise InvalidValue(f"is nested more than {MAX_JSON_DEPTH} levels deep", pointer)
            stack.extend((child, f"{pointer}/{i}", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64[0] <= item <= INT64[1]:
                raise InvalidValue("holds an integer out of the 64-bit range", pointer)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidValue("holds a number that is not finite", pointer)
        elif isinstance(item, str):
            if not is_utf8(item):
                raise InvalidValue("holds a string that is not valid UTF-8", pointer)
        else:
            raise InvalidValue("is not a JSON value", pointer)


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_pointer(name: str) -> str:
    # A key that is not UTF-8 is named with replacement characters: the pointer is output.
    safe = name if is_utf8(name) else name.encode("utf-8", "replace").decode("utf-8")
    return safe.replace("~", "~0").replace("/", "~1")
