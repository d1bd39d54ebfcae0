"""``/api/v1/auth``: register, login, token, logout, me, password; and the well-known
documents (JWKS, RFC 8414 metadata)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from starlette.responses import Response

from garrison.auth import email_flows, rbac, service, tokens, users
from garrison.auth.authenticate import credential
from garrison.auth.bodies import basic_credentials, form_fields, is_form, json_object, validate
from garrison.auth.deps import AuthDep, CurrentPrincipal
from garrison.auth.errors import InsufficientScope, InvalidCredentials, OAuthError
from garrison.auth.oauth import openid
from garrison.auth.oauth import server as oauth_server
from garrison.auth.oauth.server_router import authenticated_client, client_credentials_of
from garrison.auth.passwords import check_policy
from garrison.auth.schemas import (
    Credentials,
    LogoutRequest,
    Me,
    PasswordChange,
    Registration,
    TokenResponse,
)
from garrison.deps import ReadSession
from garrison.errors import Forbidden
from garrison.gateway.credentials import credential_headers

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
well_known = APIRouter(tags=["auth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_JSON_OR_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Credentials.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                }
            },
        },
    }
}
_TOKEN_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {
                            "enum": ["authorization_code", "refresh_token", "client_credentials"]
                        },
                        "code": {"type": "string"},
                        "redirect_uri": {"type": "string"},
                        "code_verifier": {"type": "string"},
                        "refresh_token": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    }
}


def _tokens(pair: service.TokenPair) -> JSONResponse:
    body = TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        scope=pair.scope or None,
        id_token=pair.id_token,
    )
    return JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=Me)
async def register(body: Registration, auth: AuthDep, session: ReadSession) -> Me:
    mode = auth.settings.auth.registration
    if mode == "closed":
        raise Forbidden("registration is closed; ask an administrator for an account")
    if mode == "invite":
        if not body.invite_token:
            raise Forbidden("registration needs an invitation (invite_token)")
        user_id = await email_flows.accept_invite(
            auth, token=body.invite_token, email=body.email, password=body.password
        )
    else:
        user_id = await service.register(auth, email=body.email, password=body.password)
        await email_flows.send_verification(auth, user_id=user_id)
    return await _me(session, user_id)


@router.post("/login", response_model=TokenResponse, openapi_extra=_JSON_OR_FORM)
async def login(request: Request, auth: AuthDep) -> JSONResponse:
    if is_form(request):
        fields = await form_fields(request)
        data: dict[str, Any] = {
            "email": fields.get("username", fields.get("email", "")),
            "password": fields.get("password", ""),
        }
    else:
        data = await json_object(request)
    credentials = validate(Credentials, data)
    pair = await service.login(auth, email=credentials.email, password=credentials.password)
    return _tokens(pair)


@router.post("/token", response_model=TokenResponse, openapi_extra=_TOKEN_FORM)
async def token(request: Request, auth: AuthDep) -> JSONResponse:
    if not is_form(request):
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    fields = await form_fields(request)
    grant = fields.get("grant_type")
    if grant == "authorization_code":
        client = await authenticated_client(auth, request, fields)
        pair = await oauth_server.authorization_code_grant(
            auth,
            client=client,
            code=fields.get("code", ""),
            redirect_uri=fields.get("redirect_uri"),
            code_verifier=fields.get("code_verifier"),
        )
        return _tokens(pair)
    if grant == "refresh_token":
        value = fields.get("refresh_token")
        if not value:
            raise OAuthError("invalid_request", "refresh_token is required")
        check = None
        if client_credentials_of(request, fields)[0]:  # an OAuth client refreshing its grant
            client = await authenticated_client(auth, request, fields)

            async def check(_session: object, client_id: str) -> bool:
                return client_id == client.client_id

        return _tokens(await service.refresh_grant(auth, token=value, client_check=check))
    if grant == "client_credentials":
        basic = basic_credentials(request)
        if basic is not None:
            client_id, secret = basic
        else:
            client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
        if not client_id or not secret:
            raise OAuthError(
                "invalid_client",
                "client authentication is required",
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="garrison"'},
            )
        pair = await service.client_credentials(
            auth,
            client_id=client_id[:128],
            secret=secret[:256],
            scope=fields.get("scope"),
            basic=basic is not None,
        )
        return _tokens(pair)
    if not grant:
        raise OAuthError("invalid_request", "grant_type is required")
    raise OAuthError("unsupported_grant_type", f"grant_type {grant[:40]!r} is not supported")


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    principal: CurrentPrincipal, auth: AuthDep, body: LogoutRequest | None = None
) -> Response:
    await service.logout(
        auth, principal=principal, refresh_token=body.refresh_token if body else None
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _me(session: ReadSession, user_id: str) -> Me:
    user = await users.get_user(session, user_id=user_id)
    roles, permissions = await rbac.permissions_of(session, user_id=user_id)
    return Me(
        id=user.id,
        email=user.email,
        status=user.status,
        roles=roles,
        email_verified=user.email_verified_at is not None,
        created_at=user.created_at,
        permissions=sorted(permissions),
    )


@router.get("/me", response_model=Me)
async def me(principal: CurrentPrincipal, session: ReadSession) -> Me:
    if principal.user_id is None:
        raise Forbidden("this credential does not belong to a user")
    return await _me(session, principal.user_id)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: PasswordChange, principal: CurrentPrincipal, auth: AuthDep
) -> Response:
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("only users change passwords")
    check_policy(body.new_password, auth.settings.auth, pointer="#/new_password")
    ok = await service.change_password(
        auth,
        user_id=principal.user_id,
        current=body.current_password,
        new=body.new_password,
        actor=principal.actor,
    )
    if not ok:
        raise InvalidCredentials()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@well_known.get("/.well-known/jwks.json", summary="Public signing keys (JWKS)")
async def jwks(auth: AuthDep) -> JSONResponse:
    return JSONResponse(
        await auth.keyring.jwks(),
        headers={"Cache-Control": "public, max-age=300"},
        media_type="application/jwk-set+json",
    )


@well_known.get("/.well-known/oauth-authorization-server", summary="RFC 8414 metadata")
async def metadata(auth: AuthDep) -> JSONResponse:
    return JSONResponse(_metadata(auth), headers={"Cache-Control": "public, max-age=3600"})


@well_known.get("/.well-known/openid-configuration", summary="OpenID Connect discovery")
async def openid_configuration(auth: AuthDep) -> JSONResponse:
    document = openid.discovery(auth.settings.issuer, _metadata(auth))
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/userinfo", summary="OpenID Connect userinfo")
async def userinfo(
    request: Request, principal: CurrentPrincipal, auth: AuthDep, session: ReadSession
) -> JSONResponse:
    """The signed-in user's claims, for an access token granted ``openid``."""
    found = credential(credential_headers(request.scope))
    scope: frozenset[str] = frozenset()
    if found is not None and found[0] == "jwt":  # checked by CurrentPrincipal already
        scope = (await tokens.verify(found[1], auth.keyring, auth.settings)).scope
    if principal.kind != "user" or principal.user_id is None or "openid" not in scope:
        raise InsufficientScope("openid")
    user = await users.get_user(session, user_id=principal.user_id)
    body = {"sub": user.id, **openid.user_claims(user, scope)}
    return JSONResponse(body, headers=NO_STORE)


def _metadata(auth: AuthDep) -> dict[str, Any]:
    issuer = auth.settings.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/api/v1/auth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/api/v1/auth/revoke",
        "introspection_endpoint": f"{issuer}/api/v1/auth/introspect",
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "bearer",
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "service_documentation": f"{issuer}/api/docs",
    }
