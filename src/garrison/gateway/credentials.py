"""A request's credential headers, read once and shared by every layer.

The rate limiter (which keys buckets by the caller) and authentication (which decides who
the caller is) must see the same credential, or a junk first header buys a fresh bucket
while the last one authenticates. So a request carrying ``Authorization`` or ``X-API-Key``
more than once is refused with 400 before either looks, and both read the one dict this
module leaves in the request state.
"""

from __future__ import annotations

from garrison.context import state
from garrison.errors import BadRequest
from garrison.types import Scope

CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")
_STATE_KEY = "credential_headers"


class DuplicateCredential(BadRequest):
    """More than one ``Authorization`` or ``X-API-Key`` header was sent."""

    slug, title = "duplicate-credential", "Duplicate Credential Header"


def credential_headers(scope: Scope) -> dict[str, str]:
    """``{"authorization": ..., "x-api-key": ...}`` (only those present), parsed once per
    request; ``DuplicateCredential`` when one of them appears twice."""
    values = state(scope)
    cached: dict[str, str] | None = values.get(_STATE_KEY)
    if cached is not None:
        return cached
    found: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        if key in CREDENTIAL_HEADERS:
            name = bytes(key).decode()
            if name in found:
                raise DuplicateCredential(
                    f"the request carries more than one {name.title()} header; send one",
                    header=name,
                )
            found[name] = bytes(value).decode("latin-1")
    values[_STATE_KEY] = found
    return found
