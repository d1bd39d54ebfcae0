"""The gateway's rate-limit section and its per-route policies."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

AUTH_SENSITIVE_PATHS = [
    "/api/v1/auth/login",
    "/api/v1/auth/token",
    "/api/v1/auth/register",
    "/api/v1/auth/password-reset",
    "/oauth/authorize",  # the authorization server's login form checks passwords
]


class RouteRateLimit(BaseModel):
    """A stricter (or looser) policy for some routes, matched by path prefix on segment
    boundaries (``/api/v1/auth/login`` matches itself and ``/api/v1/auth/login/…``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,31}$")
    paths: list[str] = Field(min_length=1)
    requests_per_minute: int | None = Field(default=None, ge=1, description="None: unlimited")
    burst: int | None = Field(default=None, ge=1)
    sensitive: bool = Field(default=False, description="uses the fail_open_sensitive switch")

    @field_validator("paths")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"{path!r} must start with /")
        return [path.rstrip("/") or "/" for path in value]


def auth_routes(requests_per_minute: int | None, burst: int | None) -> list[RouteRateLimit]:
    return [
        RouteRateLimit(
            name="auth",
            paths=AUTH_SENSITIVE_PATHS,
            requests_per_minute=requests_per_minute,
            burst=burst,
            sensitive=True,
        )
    ]


class RateLimitSettings(BaseModel):
    requests_per_minute: int | None = Field(default=None, ge=1, description="None: unlimited")
    burst: int | None = Field(default=None, ge=1)
    routes: list[RouteRateLimit] = Field(default_factory=list)
    exempt_paths: list[str] = Field(default_factory=lambda: ["/api/health", "/metrics"])
    fail_open: bool = Field(default=True, description="general API when the store is down")
    fail_open_sensitive: bool = Field(default=False, description="auth-sensitive routes")
    quota_cache_seconds: float = Field(default=10.0, ge=0, le=3600)
