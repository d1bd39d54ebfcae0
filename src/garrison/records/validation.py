"""Validating record input against a collection's schema, and shaping rows for output.

Every problem becomes one entry ``{"pointer": "#/field", "detail": ...}`` (RFC 9457 style),
all reported at once; nothing is written unless the whole input is valid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from jsonschema import validators

from garrison.errors import ValidationFailed
from garrison.records.ids import is_uuid
from garrison.records.spec import MAX_JSON_DEPTH, SYSTEM_FIELDS, CollectionSpec, FieldSpec
from garrison.records.values import parse_date, parse_datetime

Mode = Literal["create", "replace", "patch"]
INT64 = (-(2**63), 2**63 - 1)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


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
                if not isinstance(key, str) or not _utf8(key):
                    raise InvalidValue("has a key that is not valid UTF-8", pointer)
                stack.append((child, f"{pointer}/{_escape(key)}", depth + 1))
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
            if not _utf8(item):
                raise InvalidValue("holds a string that is not valid UTF-8", pointer)
        else:
            raise InvalidValue("is not a JSON value", pointer)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escape(name: str) -> str:
    # A key that is not UTF-8 is named with replacement characters: the pointer is output.
    safe = name if _utf8(name) else name.encode("utf-8", "replace").decode("utf-8")
    return safe.replace("~", "~0").replace("/", "~1")


def check_body(data: Any) -> None:
    """422 naming the pointer unless the whole body is storable JSON (see ``check_json``):
    run before anything serialises the body (the idempotency fingerprint, the audit)."""
    if not isinstance(data, Mapping):
        return  # ``validate`` reports it
    errors: list[dict[str, str]] = []
    for name, value in data.items():
        pointer = f"#/{_escape(str(name))}"
        try:
            check_json(value)
        except InvalidValue as exc:
            errors.append({"pointer": pointer + exc.pointer_suffix, "detail": exc.detail})
    if errors:
        raise ValidationFailed("the record has invalid fields", errors=errors)


def _text(value: Any, field: FieldSpec) -> str:
    if not isinstance(value, str):
        raise InvalidValue("must be a string")
    if len(value) > field.text_length:
        raise InvalidValue(f"must be at most {field.text_length} characters")
    if "\x00" in value:
        raise InvalidValue("must not contain NUL characters")
    if not _utf8(value):
        raise InvalidValue("must be valid UTF-8 (no lone surrogates)")
    return value


def convert(value: Any, field: FieldSpec) -> Any:
    """The stored value for ``value``, or ``InvalidValue`` saying what is wrong."""
    match field.type:
        case "text":
            return _text(value, field)
        case "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidValue("must be an integer")
            if not INT64[0] <= value <= INT64[1]:
                raise InvalidValue("is out of the 64-bit integer range")
            return value
        case "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidValue("must be a number")
            if not math.isfinite(value):
                raise InvalidValue("must be finite")
            return float(value)
        case "boolean":
            if not isinstance(value, bool):
                raise InvalidValue("must be true or false")
            return value
        case "date":
            day = parse_date(value)
            if day is None:
                raise InvalidValue("must be a date, e.g. 2026-01-31")
            return day
        case "datetime":
            moment = parse_datetime(value)
            if moment is None:
                raise InvalidValue("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
            return moment
        case "email":
            text = _text(value, field)
            if not _EMAIL.match(text):
                raise InvalidValue("must be an e-mail address")
            local, domain = text.rsplit("@", 1)
            return f"{local}@{domain.lower()}"
        case "url":
            text = _text(value, field)
            parts = urlsplit(text)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidValue("must be an http(s) URL")
            return text
        case "select":
            if value not in (field.values or []):
                raise InvalidValue(f"must be one of: {', '.join(field.values or [])}")
            return value
        case "relation":
            if not isinstance(value, str) or not is_uuid(value):
                raise InvalidValue("must be a record id")
            return value
        case "json":
            check_json(value)
            if field.json_schema is not None:
                validator = validators.validator_for(field.json_schema)(field.json_schema)
                error = next(iter(validator.iter_errors(value)), None)
                if error is not None:
                    suffix = "".join(f"/{_escape(str(p))}" for p in error.absolute_path)
                    raise InvalidValue(error.message, suffix)
            return value
    raise AssertionError(field.type)  # pragma: no cover


def _missing(value: Any, field: FieldSpec) -> bool:
    return value is None or (field.type in ("text", "email", "url") and value == "")


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
            errors.append({"pointer": f"#/{_escape(name)}", "detail": "is read-only"})
        elif name not in fields:
            errors.append(
                {"pointer": f"#/{_escape(name)}", "detail": "is not a field of this collection"}
            )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name in data:
            value = data[name]
        elif mode == "patch":
            continue
        else:
            value = field.default
        pointer = f"#/{_escape(name)}"
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
