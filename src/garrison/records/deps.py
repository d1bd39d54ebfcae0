"""Who is calling the records API, as the records service sees it.

Authenticated principals need ``records:read`` to list and view and ``records:write`` to
create, change and delete (API keys can be narrower than their owner); beyond that the
collection's rules decide, in the SQL. Anonymous callers hold no permission and get only
what a collection's rules open to everyone (an empty rule). ``collections:manage`` (held by
the admin role) defines collections and bypasses record rules.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from garrison.auth.deps import CurrentPrincipal, optional_principal
from garrison.auth.errors import InsufficientScope
from garrison.auth.principal import Principal
from garrison.events import Actor
from garrison.records.query import Caller

MANAGE = "collections:manage"


def caller_of(principal: Principal | None) -> Caller:
    if principal is None:
        return Caller(actor=Actor.anonymous())
    return Caller(
        actor=principal.actor,
        id=principal.user_id or principal.id,
        role=principal.roles[0] if principal.roles else None,
        admin=principal.can(MANAGE),
    )


def _needs(permission: str) -> object:
    # One dependency taking only the request (not a chain of them): FastAPI's dependency
    # solving is a visible share of a records read.
    async def check(request: Request) -> Caller:
        principal = await optional_principal(request)
        if principal is not None and not principal.can(permission):
            raise InsufficientScope(permission)
        return caller_of(principal)

    return Depends(check)


async def collections_admin(principal: CurrentPrincipal) -> Caller:
    if not principal.can(MANAGE):
        raise InsufficientScope(MANAGE)
    return caller_of(principal)


ReaderDep = Annotated[Caller, _needs("records:read")]
WriterDep = Annotated[Caller, _needs("records:write")]
AdminDep = Annotated[Caller, Depends(collections_admin)]
