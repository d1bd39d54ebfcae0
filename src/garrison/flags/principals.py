"""A short cache of checked OFREP credentials."""

from __future__ import annotations

import hashlib
import time

from starlette.requests import Request

from garrison.auth.principal import Principal


class PrincipalCache:
    """Credential digest → the principal it was checked to be, for ``ttl`` seconds.

    Evaluation is a hot, read-only path that SDKs poll: a full check costs a Redis and one
    to three database round trips, many times the evaluation itself. A key revoked or a
    user disabled keeps evaluating flags (nothing else) for at most ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: dict[bytes, tuple[Principal, float]] = {}

    @staticmethod
    def digest(request: Request) -> bytes | None:
        headers = request.headers
        value = headers.get("x-api-key") or headers.get("authorization")
        return None if value is None else hashlib.sha256(value.encode("latin-1")).digest()

    def get(self, digest: bytes) -> Principal | None:
        item = self._items.get(digest)
        if item is None:
            return None
        if item[1] < time.monotonic():
            del self._items[digest]
            return None
        return item[0]

    def put(self, digest: bytes, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._items) >= self.max_entries:
            self._items.clear()
        expires = time.monotonic() + self.ttl
        if principal.token_expires is not None:  # never past the token's own expiry
            expires = min(expires, time.monotonic() + principal.token_expires - time.time())
        self._items[digest] = (principal, expires)
