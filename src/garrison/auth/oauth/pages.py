"""The server-rendered pages of the OAuth flows (Jinja2, autoescaped) and their CSRF
token: a random cookie, and in the form its HMAC under a key derived for this purpose
(a signed double submit: a cookie planted by a sibling domain does not forge the field)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from functools import cache
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from garrison.crypto import keyring_for
from garrison.settings import Settings

CSRF_COOKIE = "garrison_oauth_csrf"
_BASE_CSP = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("garrison.auth.oauth", "templates"),
        autoescape=select_autoescape(default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def csrf_field(settings: Settings, cookie: str) -> str:
    _kid, key = keyring_for(settings).derive("auth.oauth.csrf", None)
    return hmac.new(key, cookie.encode(), hashlib.sha256).hexdigest()


def csrf_ok(settings: Settings, cookie: str | None, field: str | None) -> bool:
    if not cookie or not field or len(cookie) > 128 or len(field) > 128:
        return False
    return hmac.compare_digest(csrf_field(settings, cookie), field)


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


def _form_target(redirect_uri: str) -> str:
    """The CSP source that lets the form's redirect reach the client (browsers apply
    ``form-action`` to the redirect after a form post too)."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"


def page(
    settings: Settings,
    template: str,
    *,
    status: int = 200,
    csrf_cookie: str | None = None,
    redirect_uri: str | None = None,
    **values: object,
) -> HTMLResponse:
    html = environment().get_template(template).render(**values)
    targets: Sequence[str] = ["'self'"] + ([_form_target(redirect_uri)] if redirect_uri else [])
    response = HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": f"{_BASE_CSP}; form-action {' '.join(targets)}",
        },
    )
    if csrf_cookie is not None:
        response.set_cookie(
            CSRF_COOKIE,
            csrf_cookie,
            max_age=3600,
            path="/oauth",
            secure=settings.http.secure_cookies,
            httponly=True,
            samesite="strict",
        )
    return response


def error_page(settings: Settings, title: str, detail: str, *, status: int = 400) -> HTMLResponse:
    return page(settings, "error.html", status=status, title=title, detail=detail)
