"""Validating record input against a collection's schema, and shaping rows for output.

Every problem becomes one entry ``{"pointer": "#/field", "detail": ...}`` (RFC 9457 style),
all reported at once; nothing is written unless the whole input is valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson

from garrison.errors import ValidationFailed
from garrison.records.kinds import kind_of
from garrison.records.spec import SYSTEM_FIELDS, CollectionSpec, FieldSpec
from garrison.records.values import InvalidValue, check_json, escape_pointer

Mode = Literal["create", "replace", "patch"]


def check_body(data: Any) -> None:
    """422 naming the pointer unless the whole body is storable JSON (see ``check_json``):
    run before anything serialises the body (the idempotency fingerprint, the audit)."""
    if not isinstance(data, Mapping):
        return  # ``validate`` reports it
    errors: list[dict[str, str]] = []
    for name, value in data.items():
        pointer = f"#/{escape_pointer(str(name))}"
        try:
            check_json(value)
        except InvalidValue as exc:
            errors.append({"pointer": pointer + exc.pointer_suffix, "detail": exc.detail})
    if errors:
        raise ValidationFailed("the record has invalid fields", errors=errors)


def convert(value: Any, field: FieldSpec) -> Any:
    """The stored value for ``value``, or ``InvalidValue`` saying what is wrong."""
    return kind_of(field).convert(value, field)


def _missing(value: Any, field: FieldSpec) -> bool:
    return value is None or (kind_of(field).blank_is_missing and value == "")


def validate(
    spec: CollectionSpec, data: Any, mode: Mode
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """(values to store, errors). ``create``/``replace`` apply defaults and require the
    required fields; ``patch`` checks only what is given (a required field cannot be nulled).
    """
    if not isinstance(data, Mapping):
        return {}, [{"pointer": "#", "detail": "the body must be a JSON object"}]
    errors: list[dict[str, str]] = []
    fields = {f.name: f for f in spec.fields}
    for name in data:
        if name in SYSTEM_FIELDS:
            errors.append({"pointer": f"#/{escape_pointer(name)}", "detail": "is read-only"})
        elif name not in fields:
            errors.append(
                {
                    "pointer": f"#/{escape_pointer(name)}",
                    "detail": "is not a field of this collection",
                }
            )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name in data:
            value = data[name]
        elif mode == "patch":
            continue
        else:
            value = field.default
        pointer = f"#/{escape_pointer(name)}"
        if _missing(value, field):
            if field.required:
                errors.append({"pointer": pointer, "detail": "is required"})
            else:
                values[name] = None
            continue
        try:
            values[name] = convert(value, field)
        except InvalidValue as exc:
            errors.append({"pointer": pointer + exc.pointer_suffix, "detail": exc.detail})
    return values, errors


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def output(row: Mapping[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
    """A stored row as the API shows it (optionally only ``fields``, plus ``id``)."""
    # str(): row keys can be SQLAlchemy's quoted_name (a str subclass orjson refuses).
    result = {str(key): _json_value(value) for key, value in row.items()}
    return result if fields is None else select_fields(result, fields)


def select_fields(row: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    keep = set(fields) | {"id"}
    return {key: value for key, value in row.items() if key in keep}


_ENCODE_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def encode(body: Any) -> bytes:
    """JSON for a response body whose records may hold stored values: datetimes come out
    as ``output`` writes them (UTC, ``Z``), dates as ``YYYY-MM-DD``."""
    return orjson.dumps(body, option=_ENCODE_OPTIONS)
