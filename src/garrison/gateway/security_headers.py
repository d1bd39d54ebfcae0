"""Security headers on every response, errors included (OWASP Secure Headers).

API responses get ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'``
and ``Cache-Control: no-store`` unless the route chose its own caching; the interactive docs
page gets a policy that lets its scripts load. A server-rendered page may send a policy of
its own (the OAuth consent page names where its form may redirect) as long as it keeps
``frame-ancestors 'none'``. Any ``Server`` header is removed.
"""

from __future__ import annotations

import re
from typing import Any

from garrison.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = b"default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    b"frame-ancestors 'none'"
)
# Server-rendered pages (status page, front door): their own stylesheet, forms posting back.
PAGE_CSP = (
    b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    b"base-uri 'none'; frame-ancestors 'none'"
)
# Stored files (uploads served back): an HTML or SVG file must never run script in our
# origin, whatever a browser makes of it.
SANDBOX_CSP = API_CSP + b"; sandbox"
_STATIC = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-xss-protection", b"0"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_OWNED = {name for name, _ in _STATIC} | {b"content-security-policy", b"server"}


class SecurityHeaders:
    """Which policy a path gets, and a response's headers rewritten to carry them."""

    def __init__(
        self,
        *,
        hsts: bool = False,
        hsts_max_age: int = 31_536_000,
        docs_paths: tuple[str, ...] = ("/api/docs",),
        page_prefixes: tuple[str, ...] = (),
        page_paths: frozenset[str] = frozenset(),
        sandboxed: re.Pattern[str] | None = None,
    ) -> None:
        self.docs_paths = docs_paths
        self.page_prefixes = page_prefixes  # server-rendered pages: PAGE_CSP
        self.page_paths = page_paths  # the same, matched exactly
        self.sandboxed = sandboxed  # paths serving stored files: SANDBOX_CSP
        self.extra = list(_STATIC)
        if hsts:
            value = f"max-age={hsts_max_age}; includeSubDomains".encode()
            self.extra.append((b"strict-transport-security", value))

    def policy_for(self, path: str) -> bytes:
        if path.startswith(self.docs_paths):
            return DOCS_CSP
        if path in self.page_paths or (self.page_prefixes and path.startswith(self.page_prefixes)):
            return PAGE_CSP
        if self.sandboxed is not None and self.sandboxed.match(path):
            return SANDBOX_CSP
        return API_CSP

    def rewrite(
        self,
        headers: list[tuple[bytes, bytes]],
        csp: bytes,
        *,
        drop: frozenset[bytes] = frozenset(),
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` without the ones this layer owns (and ``drop``), plus its own."""
        policy = csp
        if csp is PAGE_CSP:  # a page may bring its own policy if it keeps framing denied
            policy = next(
                (
                    v
                    for k, v in headers
                    if k.lower() == b"content-security-policy" and b"frame-ancestors 'none'" in v
                ),
                csp,
            )
        kept: list[tuple[bytes, bytes]] = []
        cached = False
        for key, value in headers:
            lowered = key.lower()
            if lowered in _OWNED or lowered in drop:
                continue
            cached = cached or lowered == b"cache-control"
            kept.append((key, value))
        if not cached:
            kept.append((b"cache-control", b"no-store"))
        kept.extend(self.extra)
        kept.append((b"content-security-policy", policy))
        return kept


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        self.headers = SecurityHeaders(**options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.headers.policy_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.headers.rewrite(list(message.get("headers", [])), csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)
