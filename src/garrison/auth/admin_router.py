"""``/api/v1/admin``: users, roles and service clients, for principals with the matching
permissions (the built-in ``admin`` role holds them all)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from starlette.responses import Response

from garrison.auth import clients, rbac, service, users
from garrison.auth.deps import AuthDep, require
from garrison.auth.models import Role, ServiceClient, User
from garrison.auth.principal import Principal
from garrison.auth.schemas import (
    ClientCreated,
    ClientIn,
    ClientOut,
    RoleAssignment,
    RoleIn,
    RoleOut,
    RolePatch,
    UserCreate,
    UserOut,
    UserPage,
)
from garrison.deps import ReadSession, WriteSession
from garrison.errors import Forbidden

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

UsersRead = Annotated[Principal, require("users:read")]
UsersWrite = Annotated[Principal, require("users:write")]
RolesWrite = Annotated[Principal, require("roles:write")]
ClientsWrite = Annotated[Principal, require("clients:write")]


async def _user_out(session: ReadSession | WriteSession, user: User) -> UserOut:
    roles, _ = await rbac.permissions_of(session, user_id=user.id)
    return UserOut(
        id=user.id,
        email=user.email,
        status=user.status,
        roles=roles,
        email_verified=user.email_verified_at is not None,
        created_at=user.created_at,
    )


def _role_out(role: Role) -> RoleOut:
    return RoleOut(
        name=role.name,
        description=role.description,
        permissions=list(role.permissions),
        builtin=role.builtin,
    )


def _client_out(row: ServiceClient) -> ClientOut:
    return ClientOut(
        client_id=row.client_id,
        name=row.name,
        scopes=list(row.scopes),
        status=row.status,
        created_at=row.created_at,
    )


@router.get("/users", response_model=UserPage)
async def list_users(
    _: UsersRead,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    status_filter: Annotated[
        str | None, Query(alias="status", pattern="^(active|disabled)$")
    ] = None,
) -> UserPage:
    rows, total = await users.list_users(session, limit=limit, offset=offset, status=status_filter)
    items = [await _user_out(session, row) for row in rows]
    return UserPage(items=items, total=total, limit=limit, offset=offset)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def create_user(
    body: UserCreate, principal: UsersWrite, auth: AuthDep, session: ReadSession
) -> UserOut:
    user_id = await service.register(
        auth,
        email=body.email,
        password=body.password,
        roles=body.roles,
        actor=principal.actor,
        verified=body.verified,
    )
    return await _user_out(session, await users.get_user(session, user_id=user_id))


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: str, _: UsersRead, session: ReadSession) -> UserOut:
    return await _user_out(session, await users.get_user(session, user_id=user_id[:36]))


async def _set_status(
    session: WriteSession, principal: Principal, user_id: str, new_status: str
) -> UserOut:
    if new_status == "disabled" and user_id == principal.user_id:
        raise Forbidden("you cannot disable your own account")
    user = await users.set_status(
        session, user_id=user_id[:36], status=new_status, actor=principal.actor
    )
    return await _user_out(session, user)


@router.post("/users/{user_id}/disable", response_model=UserOut)
async def disable_user(user_id: str, principal: UsersWrite, session: WriteSession) -> UserOut:
    return await _set_status(session, principal, user_id, "disabled")


@router.post("/users/{user_id}/enable", response_model=UserOut)
async def enable_user(user_id: str, principal: UsersWrite, session: WriteSession) -> UserOut:
    return await _set_status(session, principal, user_id, "active")


@router.put("/users/{user_id}/roles", response_model=UserOut)
async def assign_roles(
    user_id: str, body: RoleAssignment, principal: RolesWrite, session: WriteSession
) -> UserOut:
    user = await users.get_user(session, user_id=user_id[:36])
    await rbac.set_user_roles(session, user_id=user.id, roles=body.roles, actor=principal.actor)
    return await _user_out(session, user)


@router.post("/users/{user_id}/revoke-sessions", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_sessions(user_id: str, principal: UsersWrite, session: WriteSession) -> Response:
    user = await users.get_user(session, user_id=user_id[:36])
    await users.revoke_sessions(session, user_id=user.id, actor=principal.actor, reason="admin")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/roles", response_model=list[RoleOut])
async def list_roles(_: UsersRead, session: ReadSession) -> list[RoleOut]:
    return [_role_out(role) for role in await rbac.list_roles(session)]


@router.post("/roles", status_code=status.HTTP_201_CREATED, response_model=RoleOut)
async def create_role(body: RoleIn, principal: RolesWrite, session: WriteSession) -> RoleOut:
    role = await rbac.create_role(
        session,
        name=body.name,
        description=body.description,
        permissions=body.permissions,
        actor=principal.actor,
    )
    return _role_out(role)


@router.patch("/roles/{name}", response_model=RoleOut)
async def update_role(
    name: str, body: RolePatch, principal: RolesWrite, session: WriteSession
) -> RoleOut:
    role = await rbac.update_role(
        session,
        name=name[:64],
        description=body.description,
        permissions=body.permissions,
        actor=principal.actor,
    )
    return _role_out(role)


@router.delete("/roles/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_role(name: str, principal: RolesWrite, session: WriteSession) -> Response:
    await rbac.delete_role(session, name=name[:64], actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/clients", response_model=list[ClientOut])
async def list_clients(_: ClientsWrite, session: ReadSession) -> list[ClientOut]:
    return [_client_out(row) for row in await clients.list_clients(session)]


@router.post("/clients", status_code=status.HTTP_201_CREATED, response_model=ClientCreated)
async def create_client(
    body: ClientIn, principal: ClientsWrite, session: WriteSession
) -> JSONResponse:
    row, secret = await clients.create_client(
        session, name=body.name, scopes=body.scopes, actor=principal.actor
    )
    out = ClientCreated(**_client_out(row).model_dump(), client_secret=secret)
    return JSONResponse(
        out.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.post("/clients/{client_id}/disable", status_code=status.HTTP_204_NO_CONTENT)
async def disable_client(
    client_id: str, principal: ClientsWrite, session: WriteSession
) -> Response:
    await clients.set_status(
        session, client_id=client_id[:64], status="disabled", actor=principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
