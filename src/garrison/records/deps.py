"""Who is calling the records API, as the records service sees it.

The two dependencies below are the only place the records domain learns about the caller:
``current_caller`` (any caller, anonymous included) and ``collections_admin`` (may define
collections). They are wired to the authentication service's principal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from garrison.errors import Unauthorized
from garrison.records.query import Caller


async def current_caller(request: Request) -> Caller:
    raise Unauthorized("authentication is not configured for the records API yet")


async def collections_admin(request: Request) -> Caller:
    raise Unauthorized("authentication is not configured for the records API yet")


CallerDep = Annotated[Caller, Depends(current_caller)]
AdminDep = Annotated[Caller, Depends(collections_admin)]
