"""Garrison's authorization server over HTTP: client registration by administrators
(``/api/v1/admin/oauth-clients``, ``clients:write``), RFC 7009 revocation
(``POST /api/v1/auth/revoke``) and RFC 7662 introspection (``POST /api/v1/auth/introspect``).
The authorization-code grant is on the token endpoint (``auth.router``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from starlette.responses import Response

from garrison.auth import clients as service_clients
from garrison.auth.bodies import basic_credentials, form_fields, is_form
from garrison.auth.deps import AuthDep, optional_principal, require
from garrison.auth.errors import OAuthError
from garrison.auth.oauth import clients, server
from garrison.auth.oauth.models import OAuthClient
from garrison.auth.oauth.schemas import (
    Introspection,
    OAuthClientCreated,
    OAuthClientIn,
    OAuthClientOut,
)
from garrison.auth.principal import Principal
from garrison.auth.runtime import AuthRuntime
from garrison.deps import ReadSession, WriteSession

admin = APIRouter(prefix="/api/v1/admin/oauth-clients", tags=["admin"])
endpoints = APIRouter(prefix="/api/v1/auth", tags=["auth"])
ClientsWrite = Annotated[Principal, require("clients:write")]
INTROSPECT = "auth:introspect"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string"},
                        "token_type_hint": {"enum": ["access_token", "refresh_token"]},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                    },
                }
            }
        },
    }
}


def _out(row: OAuthClient) -> OAuthClientOut:
    return OAuthClientOut(
        client_id=row.client_id,
        name=row.name,
        client_type=row.client_type,
        redirect_uris=list(row.redirect_uris),
        scopes=list(row.scopes),
        first_party=row.first_party,
        status=row.status,
        created_at=row.created_at,
    )


@admin.get("", response_model=list[OAuthClientOut])
async def list_oauth_clients(_: ClientsWrite, session: ReadSession) -> list[OAuthClientOut]:
    return [_out(row) for row in await clients.list_clients(session)]


@admin.post("", status_code=status.HTTP_201_CREATED, response_model=OAuthClientCreated)
async def register_oauth_client(
    body: OAuthClientIn, principal: ClientsWrite, session: WriteSession
) -> JSONResponse:
    row, secret = await clients.create_client(
        session,
        name=body.name,
        client_type=body.client_type,
        redirect_uris=body.redirect_uris,
        scopes=body.scopes,
        first_party=body.first_party,
        actor=principal.actor,
    )
    out = OAuthClientCreated(**_out(row).model_dump(), client_secret=secret)
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers=NO_STORE)


@admin.post("/{client_id}/disable", status_code=status.HTTP_204_NO_CONTENT)
async def disable_oauth_client(
    client_id: str, principal: ClientsWrite, session: WriteSession
) -> Response:
    await clients.set_status(
        session, client_id=client_id[:64], status="disabled", actor=principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def client_credentials_of(request: Request, fields: dict[str, str]) -> tuple[str, str | None]:
    """(client_id, secret or None) from Basic authentication or the form (RFC 6749 §2.3)."""
    basic = basic_credentials(request)
    if basic is not None:
        return basic[0][:128], basic[1][:256]
    secret = fields.get("client_secret")
    return fields.get("client_id", "")[:128], secret[:256] if secret else None


async def authenticated_client(
    auth: AuthRuntime, request: Request, fields: dict[str, str]
) -> OAuthClient:
    client_id, secret = client_credentials_of(request, fields)
    if not client_id:
        raise OAuthError(
            "invalid_client",
            "client authentication is required",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="garrison"'},
        )
    return await server.authenticate_client(auth, client_id=client_id, secret=secret)


async def _form(request: Request) -> dict[str, str]:
    if not is_form(request):
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    return await form_fields(request)


@endpoints.post(
    "/revoke",
    summary="Revoke a token (RFC 7009)",
    openapi_extra=_FORM,
    responses={200: {"description": "revoked, or nothing to revoke", "content": {}}},
    response_class=Response,
)
async def revoke(request: Request, auth: AuthDep) -> Response:
    fields = await _form(request)
    client = await authenticated_client(auth, request, fields)
    token = fields.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    await server.revoke(auth, client=client, token=token)
    return Response(status_code=200, headers=NO_STORE)


async def _may_introspect(auth: AuthRuntime, request: Request, fields: dict[str, str]) -> None:
    """A resource server: a confidential OAuth client or a service client (Basic or form
    credentials), or a bearer credential holding ``auth:introspect``."""
    client_id, secret = client_credentials_of(request, fields)
    if client_id and secret:
        if client_id.startswith(clients.CLIENT_PREFIX):
            await server.authenticate_client(auth, client_id=client_id, secret=secret)
            return
        async with auth.db.read_session() as session:
            found = await service_clients.check_secret(session, client_id=client_id, secret=secret)
        if found is not None:
            return
        raise OAuthError(
            "invalid_client",
            "client authentication failed",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="garrison"'},
        )
    principal = await optional_principal(request)
    if principal is None or not principal.can(INTROSPECT):
        raise OAuthError(
            "invalid_client",
            f"introspection needs client authentication or the permission {INTROSPECT!r}",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="garrison"'},
        )


@endpoints.post(
    "/introspect",
    summary="Introspect a token (RFC 7662)",
    response_model=Introspection,
    response_model_exclude_none=True,
    openapi_extra=_FORM,
)
async def introspect(request: Request, auth: AuthDep) -> JSONResponse:
    fields = await _form(request)
    await _may_introspect(auth, request, fields)
    token = fields.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    return JSONResponse(await server.introspect(auth, token=token), headers=NO_STORE)
