"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from garrison.auth.clock import aware

# Databases hand back naive UTC datetimes; responses always say they are UTC.
Timestamp = Annotated[datetime, AfterValidator(aware)]


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=4096)


class Registration(Credentials):
    password: str = Field(
        min_length=8, max_length=4096, description="the password policy: at least 8 characters"
    )
    invite_token: str | None = Field(default=None, max_length=128)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None
    id_token: str | None = None


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str | None = Field(default=None, max_length=128)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=4096)
    new_password: str = Field(
        min_length=8, max_length=4096, description="the password policy: at least 8 characters"
    )


class UserOut(BaseModel):
    id: str
    email: str
    status: str
    roles: list[str]
    email_verified: bool
    created_at: Timestamp


class Me(UserOut):
    permissions: list[str]


class UserCreate(Credentials):
    roles: list[str] = Field(default_factory=lambda: ["user"], max_length=32)
    verified: bool = False


class RoleAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(max_length=32)


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
    limit: int
    offset: int


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=64, pattern=r"^[a-z][a-z0-9_-]{1,63}$")
    description: str = Field(default="", max_length=255)
    permissions: list[str] = Field(max_length=200)


class RolePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=255)
    permissions: list[str] | None = Field(default=None, max_length=200)


class RoleOut(BaseModel):
    name: str
    description: str
    permissions: list[str]
    builtin: bool


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=100)
    expires_at: datetime | None = None


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    expires_at: Timestamp | None
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None
    created_at: Timestamp


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once; store it now")


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(max_length=100)


class ClientOut(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    status: str
    created_at: Timestamp


class ClientCreated(ClientOut):
    client_secret: str = Field(description="shown once; store it now")


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=128)


class EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=128)
    new_password: str = Field(
        min_length=8, max_length=4096, description="the password policy: at least 8 characters"
    )


class InvitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    role: str = Field(default="user", min_length=2, max_length=64)
