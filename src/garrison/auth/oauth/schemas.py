"""Request and response bodies of the OAuth endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from garrison.auth.schemas import Timestamp

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Url = str


class OAuthClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    client_type: Literal["public", "confidential"] = Field(
        default="public", description="public: PKCE only, no secret; confidential: a secret too"
    )
    redirect_uris: list[str] = Field(min_length=1, max_length=20)
    scopes: list[str] = Field(max_length=100)
    first_party: bool = Field(default=False, description="true: no consent step")


class OAuthClientOut(BaseModel):
    client_id: str
    name: str
    client_type: str
    redirect_uris: list[str]
    scopes: list[str]
    first_party: bool
    status: str
    created_at: Timestamp


class OAuthClientCreated(OAuthClientOut):
    client_secret: str | None = Field(default=None, description="shown once (confidential)")


class Introspection(BaseModel):
    """RFC 7662 §2.2; only ``active`` when the token is not active."""

    active: bool
    token_type: str | None = None
    client_id: str | None = None
    sub: str | None = None
    scope: str | None = None
    exp: int | None = None
    iat: int | None = None
    jti: str | None = None
    iss: str | None = None
    aud: str | None = None


Preset = Literal["google", "microsoft", "github", "gitlab", "apple"]


class ProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="used in the URLs")
    preset: Preset | None = None
    kind: Literal["oidc", "oauth2"] | None = Field(default=None, description="default: preset's")
    display_name: str | None = Field(default=None, max_length=128)
    issuer: Url | None = Field(default=None, max_length=2048, description="OpenID Connect")
    authorization_endpoint: Url | None = Field(default=None, max_length=2048)
    token_endpoint: Url | None = Field(default=None, max_length=2048)
    userinfo_endpoint: Url | None = Field(default=None, max_length=2048)
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: str | None = Field(default=None, max_length=4096, description="write-only")
    scopes: list[str] | None = Field(default=None, max_length=30)
    redirect_uris: list[str] = Field(
        default_factory=list, max_length=20, description="where the browser may be sent after"
    )
    enabled: bool = True


class ProviderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=128)
    client_id: str | None = Field(default=None, min_length=1, max_length=255)
    client_secret: str | None = Field(default=None, max_length=4096)
    scopes: list[str] | None = Field(default=None, max_length=30)
    redirect_uris: list[str] | None = Field(default=None, max_length=20)
    enabled: bool | None = None


class ProviderOut(BaseModel):
    name: str
    kind: str
    preset: str | None
    display_name: str
    issuer: str | None
    authorization_endpoint: str | None
    token_endpoint: str | None
    userinfo_endpoint: str | None
    client_id: str
    has_client_secret: bool
    scopes: list[str]
    redirect_uris: list[str]
    callback_url: str = Field(description="register this at the provider")
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp


class IdentityOut(BaseModel):
    id: str
    provider: str
    email: str | None
    created_at: Timestamp
    last_used_at: Timestamp | None


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(pattern=NAME_PATTERN)
    redirect_uri: str | None = Field(default=None, max_length=2048)


class LinkStarted(BaseModel):
    authorization_url: str = Field(description="open this in the browser (single use, short)")
