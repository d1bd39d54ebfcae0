"""``GET``/``POST /oauth/authorize``: the authorization endpoint of Garrison's OAuth 2.1
server, a small login and consent page.

Until the client and its redirect URI are known to match exactly, errors are a page here,
never a redirect (no open redirect); after that they go back to the client as RFC 6749
§4.1.2.1 errors. PKCE with ``S256`` is required (``plain`` is refused). The form is
CSRF-protected and the page cannot be framed. Responses carry ``iss`` (RFC 9207).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from garrison.auth import service
from garrison.auth.bodies import form_fields
from garrison.auth.deps import AuthDep
from garrison.auth.errors import InvalidCredentials, LockedOut
from garrison.auth.oauth import clients, pages, server
from garrison.auth.oauth.models import OAuthClient
from garrison.auth.runtime import AuthRuntime
from garrison.db.retry import transact

router = APIRouter(include_in_schema=False)
_HIDDEN = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)


@dataclass(frozen=True)
class _Ask:
    client: OAuthClient
    redirect_uri: str
    scope: list[str]
    state: str | None
    code_challenge: str
    nonce: str | None
    values: dict[str, str]


def _back(auth: AuthRuntime, redirect_uri: str, state: str | None, **params: str) -> Response:
    query = {
        **params,
        **({"state": state} if state is not None else {}),
        "iss": auth.settings.issuer,
    }
    glue = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + glue + urlencode(query), status_code=303)


def _error(auth: AuthRuntime, ask_uri: str, state: str | None, code: str, detail: str) -> Response:
    return _back(auth, ask_uri, state, error=code, error_description=detail)


async def _parse(auth: AuthRuntime, values: Mapping[str, str]) -> _Ask | Response:
    settings = auth.settings
    client_id = values.get("client_id", "")
    async with auth.db.read_session() as session:
        client = await clients.active_client(session, client_id=client_id[:64])
    if client is None:
        return pages.error_page(settings, "Unknown application", "client_id names no client.")
    redirect_uri = values.get("redirect_uri")
    if redirect_uri is None and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if redirect_uri is None or redirect_uri not in client.redirect_uris:
        return pages.error_page(
            settings,
            "Redirect not allowed",
            "redirect_uri is missing or is not registered for this application.",
        )
    state = values.get("state")
    if state is not None and len(state) > 1024:
        return pages.error_page(settings, "Bad request", "state is longer than 1024 characters.")
    if values.get("response_type") != "code":
        return _error(auth, redirect_uri, state, "unsupported_response_type", "use code")
    challenge = values.get("code_challenge", "")
    method = values.get("code_challenge_method")
    if method != "S256":
        detail = "PKCE with code_challenge_method=S256 is required (plain is refused)"
        return _error(auth, redirect_uri, state, "invalid_request", detail)
    if not server.valid_challenge(challenge):
        detail = "code_challenge must be the base64url SHA-256 of the verifier"
        return _error(auth, redirect_uri, state, "invalid_request", detail)
    requested = values.get("scope")
    scope = sorted(set(requested.split())) if requested else list(client.scopes)
    allowed = set(client.scopes)
    if not scope or any(item not in allowed for item in scope):
        detail = "the scope asks for more than this client may have"
        return _error(auth, redirect_uri, state, "invalid_scope", detail)
    nonce = values.get("nonce")
    if nonce is not None and len(nonce) > 255:
        return _error(auth, redirect_uri, state, "invalid_request", "nonce is too long")
    kept = {name: values[name] for name in _HIDDEN if name in values}
    return _Ask(client, redirect_uri, scope, state, challenge, nonce, kept)


def _form(
    auth: AuthRuntime, ask: _Ask, cookie: str, *, status: int = 200, **extra: str
) -> Response:
    settings = auth.settings
    hidden = [*ask.values.items(), ("csrf", pages.csrf_field(settings, cookie))]
    return pages.page(
        settings,
        "authorize.html",
        status=status,
        csrf_cookie=cookie,
        redirect_uri=ask.redirect_uri,
        client_name=ask.client.name,
        scopes=[] if ask.client.first_party else ask.scope,
        hidden=hidden,
        action="/oauth/authorize",
        error=extra.get("error", ""),
        email=extra.get("email", ""),
    )


@router.get("/oauth/authorize")
async def authorize_page(request: Request, auth: AuthDep) -> Response:
    parsed = await _parse(auth, dict(request.query_params))
    if isinstance(parsed, Response):
        return parsed
    cookie = request.cookies.get(pages.CSRF_COOKIE)
    if not cookie or len(cookie) > 128:
        cookie = pages.new_csrf_cookie()
    return _form(auth, parsed, cookie)


@router.post("/oauth/authorize")
async def authorize_submit(request: Request, auth: AuthDep) -> Response:
    fields = await form_fields(request)
    cookie = request.cookies.get(pages.CSRF_COOKIE)
    if not pages.csrf_ok(auth.settings, cookie, fields.get("csrf")):
        return pages.error_page(
            auth.settings,
            "Form expired",
            "The sign-in form could not be verified; go back to the application and try again.",
            status=403,
        )
    assert cookie is not None
    parsed = await _parse(auth, fields)
    if isinstance(parsed, Response):
        return parsed
    ask = parsed
    if fields.get("decision") != "allow":
        return _error(auth, ask.redirect_uri, ask.state, "access_denied", "the user declined")
    email = fields.get("email", "")[:320]
    try:
        user_id, _hash = await service.check_login(
            auth, email=email, password=fields.get("password", "")[:4096]
        )
    except InvalidCredentials:
        return _form(auth, ask, cookie, status=401, error="Wrong e-mail or password.", email=email)
    except LockedOut as exc:
        return _form(
            auth, ask, cookie, status=429, error=exc.detail or "Too many attempts.", email=email
        )

    async def work(session: AsyncSession) -> str:
        return await server.create_code(
            session,
            runtime=auth,
            client=ask.client,
            user_id=user_id,
            redirect_uri=ask.redirect_uri,
            scope=ask.scope,
            code_challenge=ask.code_challenge,
            nonce=ask.nonce,
        )

    code = await transact(auth.db, work)
    return _back(auth, ask.redirect_uri, ask.state, code=code)
