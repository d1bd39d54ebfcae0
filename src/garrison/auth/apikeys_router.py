"""``/api/v1/api-keys``: the caller's own API keys (create shows the key once)."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from starlette.responses import Response

from garrison.auth import apikeys, rbac
from garrison.auth.deps import CurrentPrincipal, require
from garrison.auth.models import ApiKey
from garrison.auth.principal import Principal
from garrison.auth.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut
from garrison.deps import ReadSession, WriteSession
from garrison.errors import Forbidden

router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"])


def _out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes),
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
    )


def _owner(principal: Principal) -> str:
    # Keys are created by people: a key cannot mint keys, nor can a service client.
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("API keys are managed with a user's access token")
    return principal.user_id


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    dependencies=[require("api_keys:write")],
)
async def create(
    body: ApiKeyIn, principal: CurrentPrincipal, session: WriteSession
) -> JSONResponse:
    user_id = _owner(principal)
    _roles, held = await rbac.permissions_of(session, user_id=user_id)
    created = await apikeys.create_key(
        session,
        user_id=user_id,
        name=body.name,
        scopes=body.scopes,
        held=held,
        expires_at=body.expires_at,
        actor=principal.actor,
    )
    out = ApiKeyCreated(**_out(created.row).model_dump(), key=created.secret)
    return JSONResponse(
        out.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.get("", response_model=list[ApiKeyOut], dependencies=[require("api_keys:read")])
async def list_keys(principal: CurrentPrincipal, session: ReadSession) -> list[ApiKeyOut]:
    return [_out(row) for row in await apikeys.list_keys(session, user_id=_owner(principal))]


@router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[require("api_keys:write")]
)
async def revoke(key_id: str, principal: CurrentPrincipal, session: WriteSession) -> Response:
    await apikeys.revoke_key(
        session, key_id=key_id[:36], user_id=_owner(principal), actor=principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
