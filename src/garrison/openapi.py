"""The OpenAPI document, completed where FastAPI's generator cannot know the API's habits.

- Every error is ``application/problem+json`` (RFC 9457): one ``Problem`` schema, declared
  once, as the ``4XX``/``5XX`` responses of every operation and as its ``422`` (FastAPI
  would describe its own validation-error shape, which the API never sends).
- Responses without a body (202, 204) declare no content.
- Per-operation facts the generator misses are listed in ``_EXTRA`` (the JWKS media type,
  the quota PUT's 201).
- Multipart bodies (``_MULTIPART``): the record writes also take ``multipart/form-data``
  (fields as JSON in a ``data`` part, files as parts named after their fields), on routes
  of their own that share the JSON routes' path and method, so the JSON operation's request
  body lists both media types; the standalone upload reads its stream itself.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from fastapi import FastAPI

from garrison.errors import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_NO_BODY = ("202", "204", "304")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# (path, method) -> responses to set (merged over what was generated)
_EXTRA: dict[tuple[str, str], dict[str, Any]] = {
    ("/.well-known/jwks.json", "get"): {
        "200": {
            "description": "the JWK Set",
            "content": {"application/jwk-set+json": {"schema": {"type": "object"}}},
        }
    },
    ("/api/v1/admin/quotas/{subject_type}/{subject}", "put"): {
        "201": {
            "description": "created",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QuotaOut"}}},
        }
    },
}


_RECORD_PARTS: dict[str, Any] = {
    "schema": {
        "type": "object",
        "properties": {
            "data": {
                "type": "string",
                "description": "the record's fields, as a JSON object (what the JSON body holds)",
            }
        },
        "additionalProperties": {
            "type": "string",
            "format": "binary",
            "description": "a file for the file field of this part's name (repeat it for"
            " a field that holds several)",
        },
    }
}
_UPLOAD_PARTS: dict[str, Any] = {
    "schema": {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}},
    }
}
_MULTIPART = {
    ("/api/v1/collections/{name}/records", "post"): _RECORD_PARTS,
    ("/api/v1/collections/{name}/records/{record_id}", "patch"): _RECORD_PARTS,
    ("/api/v1/collections/{name}/records/{record_id}", "put"): _RECORD_PARTS,
    ("/api/v1/files", "post"): _UPLOAD_PARTS,
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the problem responses and the corrections above (a copy)."""
    doc = deepcopy(document)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for code in _NO_BODY:
                if code in responses:
                    responses[code].pop("content", None)
            if "422" in responses:
                responses["422"] = _problem("the request has invalid fields")
            responses.update(deepcopy(_EXTRA.get((path, method), {})))
            parts = _MULTIPART.get((path, method))
            if parts is not None:
                body = operation.setdefault("requestBody", {"required": True, "content": {}})
                body.setdefault("content", {})["multipart/form-data"] = deepcopy(parts)
            responses.setdefault("4XX", _problem("a client error (problem details)"))
            responses.setdefault("5XX", _problem("a server-side error (problem details)"))
    return doc


def install(app: FastAPI) -> None:
    """Serve the completed document (built once, on first request)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
