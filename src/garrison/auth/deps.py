"""FastAPI dependencies: the auth runtime, the caller's principal, and ``require()``.

    @router.get("/things", dependencies=[require("things:read")])
    async def things(principal: CurrentPrincipal) -> ...

No credential → 401 ``WWW-Authenticate: Bearer realm="garrison"``; a bad one → 401 with
``error="invalid_token"``; a good one without the permission → 403 ``insufficient_scope``.
The principal is left in ``state(scope)["principal"]`` and its id in ``["user_id"]`` (the
access log reads it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from garrison.auth.authenticate import authenticate
from garrison.auth.errors import InsufficientScope, InvalidToken
from garrison.auth.identify import CLAIMS_KEY
from garrison.auth.principal import Principal
from garrison.auth.runtime import AuthRuntime
from garrison.context import state
from garrison.gateway.credentials import credential_headers
from garrison.gateway.rate_limit import PROBED
from garrison.runtime import runtime_of


def auth_of(request: Request) -> AuthRuntime:
    runtime = runtime_of(request).get(AuthRuntime)
    return runtime


async def get_auth(request: Request) -> AuthRuntime:
    return auth_of(request)  # a coroutine: a plain def dependency costs a thread hop


AuthDep = Annotated[AuthRuntime, Depends(get_auth)]


async def optional_principal(request: Request) -> Principal | None:
    values = state(request.scope)
    if "principal" in values:
        cached: Principal | None = values["principal"]
        return cached
    headers = credential_headers(request.scope)  # 400 when a credential header repeats
    principal = await authenticate(
        auth_of(request),
        headers,
        verified=values.get(CLAIMS_KEY),
        denied_in_store=values.get(PROBED),
    )
    values["principal"] = principal
    if principal is not None:
        values["user_id"] = principal.user_id or principal.id
    return principal


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise InvalidToken("authentication is required", presented=False)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def require(permission: str) -> Any:
    """A dependency that lets only principals holding ``permission`` through."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise InsufficientScope(permission)
        return principal

    check.__name__ = f"require_{permission.replace(':', '_').replace('*', 'all')}"
    return Depends(check)
