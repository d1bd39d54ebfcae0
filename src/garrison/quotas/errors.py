"""Errors of the quota domain."""

from __future__ import annotations

from garrison.errors import NotFound, TooManyRequests

# The problem type draft-ietf-httpapi-ratelimit-headers registers for a refused request.
QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"


class QuotaExceeded(TooManyRequests):
    """429 with ``violated-policies`` (the names of the exceeded policies)."""

    slug, title = "quota-exceeded", "Quota Exceeded"

    @property
    def type_uri(self) -> str:
        return QUOTA_EXCEEDED_TYPE


class QuotaNotFound(NotFound):
    slug, title = "quota-not-found", "Quota Not Found"
