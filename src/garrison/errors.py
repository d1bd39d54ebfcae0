"""Garrison's error tree, and its one mapping to RFC 9457 problem details.

Every error a request can meet, with its status and problem ``slug`` (the problem ``type``
is ``urn:garrison:problem:<slug>``); the module is named where it is not this one.
``tests/test_errors.py`` holds this drawing to the real classes.

    GarrisonError                                       500  internal
    ├── BadRequest                                      400  bad-request
    │   ├── MalformedBody                               400  malformed-body
    │   ├── DuplicateCredential (gateway.credentials)   400  duplicate-credential
    │   ├── InvalidFilter (records.errors)              400  invalid-filter
    │   ├── InvalidOneTimeToken (auth.email_flows)      400  invalid-one-time-token
    │   ├── MalformedUpload (files.errors)              400  malformed-upload
    │   ├── OAuthError (auth.errors)                    400  oauth-error
    │   └── SignInFailed (auth.errors)                  400  sign-in-failed
    ├── Unauthorized                                    401  unauthorized
    │   ├── InvalidCredentials (auth.errors)            401  invalid-credentials
    │   └── InvalidToken (auth.errors)                  401  invalid-token
    ├── Forbidden                                       403  forbidden
    │   ├── AccountDisabled (auth.errors)               403  account-disabled
    │   ├── InsufficientScope (auth.errors)             403  insufficient-scope
    │   ├── InvalidSignedUrl (files.errors)             403  invalid-signed-url
    │   ├── RuleDenied (records.errors)                 403  rule-denied
    │   └── SignUpClosed (auth.errors)                  403  sign-up-closed
    ├── NotFound                                        404  not-found
    │   ├── CollectionNotFound (records.errors)         404  collection-not-found
    │   ├── FileNotFound (files.errors)                 404  file-not-found
    │   ├── QuotaNotFound (quotas.errors)               404  quota-not-found
    │   └── RecordNotFound (records.errors)             404  record-not-found
    ├── MethodNotAllowed                                405  method-not-allowed
    ├── Conflict                                        409  conflict
    │   ├── ApprovalRefused (ops.deploy.service)        409  approval-refused
    │   ├── CollectionExists (records.errors)           409  collection-exists
    │   ├── CollectionReferenced (records.errors)       409  collection-referenced
    │   ├── ConfirmationRequired (records.errors)       409  confirmation-required
    │   ├── IdempotencyKeyInUse (records.errors)        409  idempotency-key-in-use
    │   ├── IdentityConflict (auth.errors)              409  identity-conflict
    │   ├── LastAdmin (auth.rbac)                       409  last-admin
    │   └── LastSignInMethod (auth.errors)              409  last-sign-in-method
    ├── ReferenceRefused (privacy.reference)            409  reference-refused
    ├── Gone (privacy.router)                           410  gone
    ├── PreconditionFailed                              412  precondition-failed
    │   └── StaleRecord (records.errors)                412  stale-record
    ├── PayloadTooLarge                                 413  payload-too-large
    │   ├── FileTooLarge (files.errors)                 413  file-too-large
    │   └── StorageQuotaExceeded (files.errors)         413  storage-quota-exceeded
    ├── UnsupportedMediaType                            415  unsupported-media-type
    ├── RangeNotSatisfiable (files.errors)              416  range-not-satisfiable
    ├── ValidationFailed                                422  validation-failed
    │   ├── IdempotencyKeyReused (records.errors)       422  idempotency-key-reused
    │   └── WeakPassword (auth.errors)                  422  weak-password
    ├── BackupError (ops.backup.errors)                 422  backup-failed
    │   ├── BackupNotFound (ops.backup.errors)          404  backup-not-found
    │   ├── ArtifactDamaged (ops.backup.errors)         422  backup-artifact-damaged
    │   ├── LogGap (ops.backup.errors)                  422  backup-log-gap
    │   ├── OutsideWindow (ops.backup.errors)           422  backup-outside-window
    │   ├── TargetRefused (ops.backup.errors)           422  backup-target-refused
    │   └── ToolMissing (ops.backup.errors)             503  backup-tool-missing
    ├── TooManyRequests                                 429  too-many-requests
    │   ├── QuotaExceeded                               429  quota-exceeded
    │   └── LockedOut (auth.errors)                     429  locked-out
    ├── DecryptionFailed (crypto)                       500  decryption-failed
    │   └── UnknownKey (crypto)                         500  unknown-key
    ├── ProviderUnavailable (auth.errors)               502  provider-unavailable
    └── ServiceUnavailable                              503  service-unavailable
        ├── DatabaseUnavailable (db.retry)              503  database-unavailable
        ├── ReadOnlyMaintenance (ops.status.readonly)   503  read-only-maintenance
        ├── StorageUnavailable (files.errors)           503  storage-unavailable
        └── SubjectKeyUnavailable (audit.subject_keys)  503  audit-key-unavailable

Domains raise these (or subclasses with their own ``slug``); ``problem_response`` turns any of
them into ``application/problem+json``. ``ConfigError`` (garrison.settings) is not in this tree: it
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
    """The root: an unexpected failure, shown only as a generic 500."""

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
    """The request cannot be understood as sent."""

    status, slug, title = 400, "bad-request", "Bad Request"


class MalformedBody(BadRequest):
    """The body is not valid JSON (or not the declared form)."""

    slug, title = "malformed-body", "Malformed Request Body"


class Unauthorized(GarrisonError):
    """No valid credential was presented."""

    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(GarrisonError):
    """The caller is known but may not do this."""

    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(GarrisonError):
    """Nothing is at this path, or the caller may not know that it is."""

    status, slug, title = 404, "not-found", "Not Found"


class MethodNotAllowed(GarrisonError):
    """The path exists but not for this method (``Allow`` lists the others)."""

    status, slug, title = 405, "method-not-allowed", "Method Not Allowed"


class Conflict(GarrisonError):
    """The request conflicts with the current state."""

    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(GarrisonError):
    """An ``If-Match`` precondition does not hold."""

    status, slug, title = 412, "precondition-failed", "Precondition Failed"


class PayloadTooLarge(GarrisonError):
    """The body is over the configured limit."""

    status, slug, title = 413, "payload-too-large", "Payload Too Large"


class UnsupportedMediaType(GarrisonError):
    """The body's content type is not accepted here."""

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
    """A rate limit refused the request; ``Retry-After`` says when to retry."""

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
