"""Reading bodies that may come as JSON or as a form (login accepts both; the OAuth token
endpoint takes a form), with the same problem details as FastAPI's own validation."""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar
from urllib.parse import unquote

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from garrison.auth.errors import OAuthError
from garrison.errors import MalformedBody, ValidationFailed
from garrison.gateway.errors import validation_errors

M = TypeVar("M", bound=BaseModel)


def is_form(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media in ("application/x-www-form-urlencoded", "multipart/form-data")


async def form_fields(request: Request) -> dict[str, str]:
    try:
        form = await request.form(max_files=0, max_fields=50)
    except Exception:
        raise MalformedBody("the form body could not be parsed") from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise MalformedBody("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationFailed(
            "the body must be a JSON object", errors=[{"pointer": "#/", "detail": "not an object"}]
        )
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise ValidationFailed(
            "the request has invalid fields", errors=validation_errors(errors)
        ) from None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    value = request.headers.get("authorization")
    if not value or not value.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            "invalid_client",
            "malformed Basic credentials",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="garrison"'},
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(
            "invalid_client",
            "malformed Basic credentials",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="garrison"'},
        )
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
