"""Garrison's error tree, and its one mapping to RFC 9457 problem details.

    GarrisonError                    500  internal          (base; never shown in detail)
    ├── BadRequest                   400  bad-request
    │   └── MalformedBody            400  malformed-body
    ├── Unauthorized                 401  unauthorized
    ├── Forbidden                    403  forbidden
    ├── NotFound                     404  not-found
    ├── MethodNotAllowed             405  method-not-allowed
    ├── Conflict                     409  conflict
    ├── PreconditionFailed           412  precondition-failed
    ├── PayloadTooLarge              413  payload-too-large
    ├── UnsupportedMediaType         415  unsupported-media-type
    ├── ValidationFailed             422  validation-failed   (``errors``: one per field)
    ├── TooManyRequests              429  too-many-requests   (``Retry-After``)
    └── ServiceUnavailable           503  service-unavailable

Domains raise these (or subclasses with their own ``slug``); ``problem_response`` turns any of
them into ``application/problem+json``. ``ConfigError`` (settings.py) is not in this tree: it
never reaches HTTP, it stops the process at start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson
from starlette.responses import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:garrison:problem:"


class GarrisonError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug


class BadRequest(GarrisonError):
    status, slug, title = 400, "bad-request", "Bad Request"


class MalformedBody(BadRequest):
    slug, title = "malformed-body", "Malformed Request Body"


class Unauthorized(GarrisonError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(GarrisonError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(GarrisonError):
    status, slug, title = 404, "not-found", "Not Found"


class MethodNotAllowed(GarrisonError):
    status, slug, title = 405, "method-not-allowed", "Method Not Allowed"


class Conflict(GarrisonError):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(GarrisonError):
    status, slug, title = 412, "precondition-failed", "Precondition Failed"


class PayloadTooLarge(GarrisonError):
    status, slug, title = 413, "payload-too-large", "Payload Too Large"


class UnsupportedMediaType(GarrisonError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


class ValidationFailed(GarrisonError):
    """``errors`` is a list of ``{"pointer"|"parameter"|"header": ..., "detail": ...}``."""

    status, slug, title = 422, "validation-failed", "Validation Failed"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail, headers=headers, errors=list(errors))


class TooManyRequests(GarrisonError):
    status, slug, title = 429, "too-many-requests", "Too Many Requests"


# The problem type draft-ietf-httpapi-ratelimit-headers registers for a refused request.
QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"


class QuotaExceeded(TooManyRequests):
    """429 with ``violated-policies`` (the names of the exceeded policies)."""

    slug, title = "quota-exceeded", "Quota Exceeded"

    @property
    def type_uri(self) -> str:
        return QUOTA_EXCEEDED_TYPE


class ServiceUnavailable(GarrisonError):
    """Always with ``Retry-After`` (1 s unless the raiser knows better)."""

    status, slug, title = 503, "service-unavailable", "Service Unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail, headers=headers, **extensions)
        if not any(name.lower() == "retry-after" for name in self.headers):
            self.headers["Retry-After"] = "1"


_BY_STATUS: dict[int, type[GarrisonError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        TooManyRequests,
        ServiceUnavailable,
    )
}


def error_for_status(
    status: int, detail: str | None = None, headers: Mapping[str, str] | None = None
) -> GarrisonError:
    """The tree's error for a bare HTTP status (for the framework's own exceptions)."""
    cls = _BY_STATUS.get(status)
    if cls is None or cls is ValidationFailed:
        error = GarrisonError(detail, headers=headers)
        error.status = status  # type: ignore[misc]
        return error
    return cls(detail, headers=headers)


def problem_body(
    error: GarrisonError, *, instance: str | None = None, request_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
    }
    if error.detail:
        body["detail"] = error.detail
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    for key, value in error.extensions.items():
        if key not in body:
            body[key] = value
    return body


def problem_response(
    error: GarrisonError, *, instance: str | None = None, request_id: str | None = None
) -> Response:
    body = problem_body(error, instance=instance, request_id=request_id)
    return Response(
        content=orjson.dumps(body),
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )
