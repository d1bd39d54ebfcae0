"""Helpers for the OAuth tests: the browser steps as plain HTTP (read a page's form, post
it), an authlib client that talks to the app in-process, client registration."""

from __future__ import annotations

import html
import re
import warnings
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.authkit import AuthApp, bearer

_INPUT = re.compile(r"<input\b([^>]*)>", re.I)
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_FORM = re.compile(r'<form\b[^>]*action="([^"]*)"', re.I)


def form_of(page: str) -> tuple[str, dict[str, str]]:
    """The action and the named input values of the first form on ``page``."""
    action = _FORM.search(page)
    assert action is not None, page[:500]
    values: dict[str, str] = {}
    for match in _INPUT.finditer(page):
        attrs = {k: html.unescape(v) for k, v in _ATTR.findall(match.group(1))}
        if "name" in attrs:
            values[attrs["name"]] = attrs.get("value", "")
    return html.unescape(action.group(1)), values


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authlib_client_class() -> Any:
    with warnings.catch_warnings():
        # authlib announces a move to "httpx2" when its httpx client is imported.
        import authlib.deprecate

        warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client


async def register_client(
    kit: AuthApp,
    *,
    redirect_uris: list[str],
    scopes: list[str],
    client_type: str = "public",
    first_party: bool = False,
) -> dict[str, Any]:
    admin = await kit.token(role="admin")
    response = await kit.client.post(
        "/api/v1/admin/oauth-clients",
        json={
            "name": "Example App",
            "client_type": client_type,
            "redirect_uris": redirect_uris,
            "scopes": scopes,
            "first_party": first_party,
        },
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def consent(
    browser: httpx.AsyncClient,
    authorize_url: str,
    *,
    email: str,
    password: str,
    decision: str = "allow",
) -> httpx.Response:
    """Open the authorization URL, fill in the login form, press a button; the answer
    (a 303 back to the client, or a page)."""
    page = await browser.get(authorize_url)
    assert page.status_code == 200, page.text
    action, values = form_of(page.text)
    values.update(email=email, password=password, decision=decision)
    return await browser.post(action, data=values)
