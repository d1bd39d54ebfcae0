"""Error tracking through ``sentry-sdk`` (Sentry or GlitchTip), on when ``GARRISON_SENTRY_DSN``
is set.

``ErrorTrackingMiddleware`` (inside the errors layer) reports an exception escaping the app
and any other 5xx answer, tagged with the request id, the route template, the method and
the release. Nothing personal or secret leaves: the SDK's default integrations are off (no
logging breadcrumbs, no local variables, no request bodies), and ``scrub`` runs on every
event before it is sent — keys that look secret or personal are replaced, and values that
look like credentials (bearer tokens, JWTs, Garrison's prefixed secrets, e-mail addresses)
are masked wherever they appear, exception messages included.
"""

from __future__ import annotations

import re
from typing import Any

from garrison import __version__
from garrison.context import request_id, route_template, state
from garrison.settings import Settings
from garrison.types import ASGIApp, Message, Receive, Scope, Send

FILTERED = "[Filtered]"
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|auth|cookie|session|csrf|signature|"
    r"credential|private|dsn|e-?mail|phone|address|^ip$|ip_address|user[-_]?agent|"
    r"^name$|first_?name|last_?name|birth|ssn|iban|card",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
    r"|\b(?:got|grt|gak|gss|whsec|gcs)_[A-Za-z0-9_-]{8,}"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
    r"|(?i:password|secret|token)=[^&\s]+"
)
_DROP = ("user", "breadcrumbs", "extra", "modules")
_enabled = False


def _mask(value: str) -> str:
    return _SECRET_VALUE.sub(FILTERED, value)


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: FILTERED if isinstance(key, str) and _SECRET_KEY.search(key) else _walk(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        # (name, value) pairs: headers and query parameters in the SDK's list form
        if all(isinstance(i, list | tuple) and len(i) == 2 for i in value) and value:
            return [
                [k, FILTERED if isinstance(k, str) and _SECRET_KEY.search(k) else _walk(v)]
                for k, v in value
            ]
        return [_walk(item) for item in value]
    if isinstance(value, str):
        return _mask(value)
    return value


def scrub(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    for key in _DROP:
        event.pop(key, None)
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("cookies", "data", "query_string", "env"):
            request.pop(key, None)
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    for frame_holder in (event.get("exception") or {}).get("values", []) or []:
        for frame in (frame_holder.get("stacktrace") or {}).get("frames", []) or []:
            frame.pop("vars", None)
    scrubbed: dict[str, Any] = _walk(event)
    return scrubbed


def init(settings: Settings) -> bool:
    """Start the SDK when a DSN is set; True when on."""
    global _enabled
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk  # only when on: the SDK costs import time

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=f"garrison@{__version__}",
        environment=settings.status.sentry_environment or settings.env,
        include_local_variables=False,
        max_breadcrumbs=0,
        default_integrations=False,
        auto_enabling_integrations=False,
        traces_sample_rate=settings.status.sentry_traces_sample_rate,
        before_send=scrub,  # type: ignore[arg-type]
        before_send_transaction=scrub,  # type: ignore[arg-type]
    )
    _enabled = True
    return True


def close() -> None:
    global _enabled
    if _enabled:
        import sentry_sdk

        client = sentry_sdk.get_client()
        client.flush(timeout=2.0)
        client.close()
        _enabled = False


def enabled() -> bool:
    return _enabled


def _tag(scope: Scope, sentry_scope: Any) -> None:
    sentry_scope.set_tag("request_id", request_id(scope) or "")
    sentry_scope.set_tag("route", route_template(scope) or "<unmatched>")
    sentry_scope.set_tag("method", scope.get("method", ""))
    sentry_scope.set_context(
        "request", {"method": scope.get("method"), "url": route_template(scope) or ""}
    )


def report_exception(exc: BaseException, scope: Scope) -> None:
    import sentry_sdk

    with sentry_sdk.new_scope() as sentry_scope:
        _tag(scope, sentry_scope)
        sentry_sdk.capture_exception(exc)


def report_status(status: int, scope: Scope) -> None:
    import sentry_sdk

    with sentry_sdk.new_scope() as sentry_scope:
        _tag(scope, sentry_scope)
        sentry_scope.set_tag("status", str(status))
        route = route_template(scope) or "<unmatched>"
        sentry_sdk.capture_message(f"HTTP {status} on {scope.get('method')} {route}", "error")


class ErrorTrackingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _enabled:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception as exc:
            report_exception(exc, scope)
            raise
        if status >= 500 and "maintenance" not in state(scope):
            report_status(status, scope)
