"""Who is calling: the principal behind a request's credential."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from garrison.auth import rbac
from garrison.events import Actor

PrincipalKind = Literal["user", "api_key", "service"]


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    id: str  # user id, API key id or service client id
    user_id: str | None  # the user acting (the key's owner for API keys)
    permissions: frozenset[str]
    roles: tuple[str, ...] = ()
    token_id: str | None = None  # jti of the access token
    token_expires: int | None = None

    def can(self, permission: str) -> bool:
        return rbac.grants(self.permissions, permission)

    @property
    def key(self) -> str:
        """A stable identity for rate limits: ``user:<id>``, ``key:<id>``, ``client:<id>``."""
        prefix = {"user": "user", "api_key": "key", "service": "client"}[self.kind]
        return f"{prefix}:{self.id}"

    @property
    def actor(self) -> Actor:
        if self.kind == "user":
            return Actor("user", self.id)
        if self.kind == "api_key":
            return Actor("api_key", self.id)
        return Actor("service", self.id)
