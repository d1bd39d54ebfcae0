"""The auth domain's sections: tokens, passwords, lockout, and the SMTP relay of its mail."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class AuthSettings(BaseModel):
    issuer: str | None = Field(default=None, description="default: http.public_url")
    audience: str = "garrison"
    access_token_ttl: int = Field(default=900, ge=60, le=86_400, description="seconds")
    refresh_idle_ttl: int = Field(default=1_209_600, ge=60, description="seconds unused")
    refresh_absolute_ttl: int = Field(default=2_592_000, ge=60, description="seconds per family")
    leeway: int = Field(default=30, ge=0, le=60, description="clock skew allowed, seconds")
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)
    password_min_length: int = Field(default=8, ge=8)
    password_max_length: int = Field(default=128, ge=64, le=4096)
    registration: Literal["open", "invite", "closed"] = "open"
    key_activation_delay: int = Field(
        default=600, ge=0, description="seconds a new signing key is published before it signs"
    )
    api_key_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    state_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="the longest a process keeps a user's status and roles (0: no copy); "
        "changes reach every process at once through change notices",
    )
    lockout_threshold: int = Field(default=5, ge=1, description="failures before a lockout")
    lockout_base_seconds: float = Field(default=30.0, gt=0)
    lockout_max_seconds: float = Field(default=900.0, gt=0)
    lockout_window_seconds: float = Field(default=3600.0, gt=0, description="failure memory")
    lockout_ip_threshold: int = Field(default=30, ge=1)
    lockout_global_per_minute: int = Field(default=1000, ge=1, description="all failures")
    deny_list_refresh_seconds: float = Field(
        default=2.0, gt=0, le=60, description="how often a process reloads logouts"
    )
    verify_token_ttl: int = Field(default=86_400, ge=60)
    reset_token_ttl: int = Field(default=3600, ge=60)
    # OAuth 2.1 authorization server and sign-in with external providers (docs/oauth.md).
    code_ttl: int = Field(
        default=60, ge=5, le=60, description="seconds an authorization code is valid"
    )
    sign_in_ttl: int = Field(
        default=600,
        ge=30,
        le=3600,
        description="seconds from the redirect to a provider to its callback",
    )
    provider_timeout: float = Field(
        default=10.0, gt=0, le=60, description="seconds a call to an identity provider may take"
    )
    provider_metadata_ttl: float = Field(
        default=600.0,
        ge=0,
        description="seconds a provider's discovery document and JWKS are cached",
    )


class SmtpSettings(BaseModel):
    host: str | None = Field(default=None, description="None: write .eml files (development)")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "Garrison <no-reply@localhost>"
    timeout: float = Field(default=10.0, gt=0)
