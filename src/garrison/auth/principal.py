"""Who is calling: the principal behind a request's credential."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from garrison.auth import rbac
from garrison.events import Actor

PrincipalKind = Literal["user", "api_key", "service"]
_KEY_PREFIX: dict[PrincipalKind, str] = {"user": "user", "api_key": "key", "service": "client"}


def principal_key_of(kind: PrincipalKind, id: str) -> str:
    """The one spelling of a caller's identity for rate limits and quotas:
    ``user:<id>``, ``key:<id>``, ``client:<id>``."""
    return f"{_KEY_PREFIX[kind]}:{id}"


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
        return principal_key_of(self.kind, self.id)

    @property
    def actor(self) -> Actor:
        if self.kind == "user":
            return Actor("user", self.id)
        if self.kind == "api_key":
            return Actor("api_key", self.id)
        return Actor("service", self.id)
