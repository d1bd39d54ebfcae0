"""``/api/v1/auth/providers``: identity providers (``auth:manage``), the sign-in redirect
and callback; ``/api/v1/auth/me/identities``: a user's linked identities."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from starlette.responses import RedirectResponse, Response

from garrison.auth.bodies import form_fields, is_form
from garrison.auth.deps import AuthDep, CurrentPrincipal, require
from garrison.auth.errors import IdentityConflict, ProviderUnavailable, SignInFailed, SignUpClosed
from garrison.auth.oauth import identities, pages, providers, signin
from garrison.auth.oauth.models import Identity, IdentityProvider
from garrison.auth.oauth.schemas import (
    NAME_PATTERN,
    IdentityOut,
    LinkRequest,
    LinkStarted,
    ProviderIn,
    ProviderOut,
    ProviderPatch,
)
from garrison.auth.principal import Principal
from garrison.auth.schemas import TokenResponse
from garrison.crypto import keyring_for
from garrison.deps import ReadSession, WriteSession
from garrison.errors import Forbidden, GarrisonError

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
Manage = Annotated[Principal, require("auth:manage")]
BROWSER_COOKIE = "garrison_signin"
_COOKIE_PATH = "/api/v1/auth/providers"
Name = Annotated[str, Query(pattern=NAME_PATTERN)]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _for_browser(request: Request, auth: AuthDep, exc: GarrisonError) -> Response:
    """A browser (``Accept: text/html``) gets a readable page; API clients the problem."""
    if "text/html" not in request.headers.get("accept", ""):
        raise exc
    return pages.error_page(
        auth.settings, exc.title, exc.detail or "Sign-in failed.", status=exc.status
    )


def _out(row: IdentityProvider, issuer: str) -> ProviderOut:
    return ProviderOut(
        name=row.name,
        kind=row.kind,
        preset=row.preset,
        display_name=row.display_name,
        issuer=row.issuer,
        authorization_endpoint=row.authorization_endpoint,
        token_endpoint=row.token_endpoint,
        userinfo_endpoint=row.userinfo_endpoint,
        client_id=row.client_id,
        has_client_secret=row.client_secret is not None,
        scopes=list(row.scopes),
        redirect_uris=list(row.redirect_uris),
        callback_url=providers.callback_url(issuer, row.name),
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/providers", response_model=list[ProviderOut])
async def list_providers(_: Manage, auth: AuthDep, session: ReadSession) -> list[ProviderOut]:
    rows = await providers.list_providers(session)
    return [_out(row, auth.settings.issuer) for row in rows]


@router.post("/providers", status_code=status.HTTP_201_CREATED, response_model=ProviderOut)
async def create_provider(
    body: ProviderIn, principal: Manage, auth: AuthDep, session: WriteSession
) -> ProviderOut:
    row = await providers.create_provider(
        session,
        values=body.model_dump(),
        keyring=keyring_for(auth.settings),
        actor=principal.actor,
    )
    return _out(row, auth.settings.issuer)


@router.get("/providers/{name}", response_model=ProviderOut)
async def get_provider(name: str, _: Manage, auth: AuthDep, session: ReadSession) -> ProviderOut:
    return _out(await providers.get_provider(session, name=name), auth.settings.issuer)


@router.patch("/providers/{name}", response_model=ProviderOut)
async def update_provider(
    name: str, body: ProviderPatch, principal: Manage, auth: AuthDep, session: WriteSession
) -> ProviderOut:
    row = await providers.update_provider(
        session,
        name=name,
        values=body.model_dump(),
        keyring=keyring_for(auth.settings),
        actor=principal.actor,
    )
    return _out(row, auth.settings.issuer)


@router.delete("/providers/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider(name: str, principal: Manage, session: WriteSession) -> Response:
    await providers.delete_provider(session, name=name, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/providers/{name}/authorize",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "to the identity provider"}},
)
async def authorize(
    name: str,
    request: Request,
    auth: AuthDep,
    redirect_uri: Annotated[str | None, Query(max_length=2048)] = None,
    link_ticket: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    """Start a sign-in (or, with a ``link_ticket`` from ``POST /me/identities``, a link):
    a 302 to the provider, with a cookie binding the sign-in to this browser."""
    browser = request.cookies.get(BROWSER_COOKIE)
    if not browser or len(browser) > 128:
        browser = secrets.token_urlsafe(32)
    try:
        url = await signin.start(
            auth,
            name=name[:64],
            redirect_uri=redirect_uri,
            browser=browser,
            link_ticket=link_ticket,
        )
    except (ProviderUnavailable, SignInFailed) as exc:
        return _for_browser(request, auth, exc)
    response = RedirectResponse(url, status_code=302, headers=NO_STORE)
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=auth.settings.auth.sign_in_ttl,
        path=_COOKIE_PATH,
        secure=auth.settings.http.secure_cookies,
        httponly=True,
        # Sent on the provider's top-level redirect back (Lax); a form_post provider's
        # callback is a cross-site POST, which only a SameSite=None (Secure) cookie joins.
        samesite="none" if auth.settings.http.secure_cookies else "lax",
    )
    return response


@router.get(
    "/providers/{name}/callback",
    response_model=TokenResponse,
    responses={303: {"description": "back to the redirect_uri given at the start"}},
)
async def callback(name: str, request: Request, auth: AuthDep) -> Response:
    """The provider's redirect back, with Garrison's tokens (JSON, or in the fragment of the
    redirect_uri given at the start)."""
    params = {key: value[:4096] for key, value in request.query_params.items()}
    return await _callback(name, request, auth, params)


@router.post(
    "/providers/{name}/callback",
    response_model=TokenResponse,
    responses={303: {"description": "back to the redirect_uri given at the start"}},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "state": {"type": "string"}},
                    }
                }
            }
        }
    },
)
async def callback_form_post(name: str, request: Request, auth: AuthDep) -> Response:
    """The same, for providers that answer with ``response_mode=form_post`` (Apple)."""
    fields = await form_fields(request) if is_form(request) else {}
    params = {key: value[:4096] for key, value in fields.items()}
    return await _callback(name, request, auth, params)


async def _callback(name: str, request: Request, auth: AuthDep, params: dict[str, str]) -> Response:
    """The provider's redirect back. Without a ``redirect_uri`` at the start the answer is
    Garrison's token pair as JSON; with one, a 303 there carrying the tokens in the
    fragment (never sent to a server, never in a log)."""
    try:
        done = await signin.finish(
            auth, name=name[:64], params=params, browser=request.cookies.get(BROWSER_COOKIE)
        )
    except (ProviderUnavailable, SignInFailed, IdentityConflict, SignUpClosed) as exc:
        return _for_browser(request, auth, exc)
    body: dict[str, object]
    if done.tokens is not None:
        body = TokenResponse(
            access_token=done.tokens.access_token,
            expires_in=done.tokens.expires_in,
            refresh_token=done.tokens.refresh_token,
            scope=done.tokens.scope or None,
        ).model_dump(exclude_none=True)
    else:
        body = {"linked": name}
    if done.redirect_uri is None:
        response: Response = JSONResponse(body, headers=NO_STORE)
    else:
        fragment = urlencode({key: str(value) for key, value in body.items()})
        response = RedirectResponse(f"{done.redirect_uri}#{fragment}", 303, headers=NO_STORE)
    response.delete_cookie(BROWSER_COOKIE, path=_COOKIE_PATH)
    return response


def _identity_out(row: Identity) -> IdentityOut:
    return IdentityOut(
        id=row.id,
        provider=row.provider,
        email=row.email,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


def _user(principal: Principal) -> str:
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("identities belong to users")
    return principal.user_id


@router.get("/me/identities", response_model=list[IdentityOut])
async def my_identities(principal: CurrentPrincipal, session: ReadSession) -> list[IdentityOut]:
    rows = await identities.list_for_user(session, user_id=_user(principal))
    return [_identity_out(row) for row in rows]


@router.post("/me/identities", status_code=status.HTTP_201_CREATED, response_model=LinkStarted)
async def link_identity(
    body: LinkRequest, principal: CurrentPrincipal, auth: AuthDep
) -> JSONResponse:
    """Start linking a provider: open ``authorization_url`` in the browser (single use,
    two minutes); the provider's account is linked to the caller at the callback."""
    user_id = _user(principal)
    ticket = await signin.new_link_ticket(auth, user_id=user_id, provider=body.provider)
    query = {
        "link_ticket": ticket,
        **({"redirect_uri": body.redirect_uri} if body.redirect_uri else {}),
    }
    url = (
        f"{auth.settings.issuer}/api/v1/auth/providers/{body.provider}/authorize?{urlencode(query)}"
    )
    return JSONResponse(
        LinkStarted(authorization_url=url).model_dump(), status_code=201, headers=NO_STORE
    )


@router.delete("/me/identities/{identity_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unlink_identity(
    identity_id: str, principal: CurrentPrincipal, session: WriteSession
) -> Response:
    await identities.unlink(
        session, user_id=_user(principal), identity_id=identity_id, actor=principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
