"""The webhook domain's section: retries, timeouts, concurrency, where deliveries may go."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

# Seconds after the first try: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE = [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


class WebhookSettings(BaseModel):
    enabled: bool = Field(default=True, description="the worker delivers webhooks")
    allow_private_networks: bool | None = Field(
        default=None,
        description="deliver to loopback/private/link-local addresses; default: development",
    )
    allow_http: bool | None = Field(
        default=None, description="plain http:// endpoints; default: development only"
    )
    retry_schedule: list[float] = Field(
        default_factory=lambda: list(DEFAULT_SCHEDULE),
        min_length=1,
        max_length=50,
        description="seconds before each attempt (the first is normally 0)",
    )
    jitter: float = Field(default=0.1, ge=0, le=1, description="± fraction of each delay")
    timeout: float = Field(default=15.0, gt=0, le=300, description="seconds per attempt")
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    secret_overlap_seconds: float = Field(
        default=86_400.0, ge=0, description="old secret still signs after a rotation"
    )
    disable_after_seconds: float = Field(
        default=5 * 86_400.0, gt=0, description="failing with no success this long disables"
    )
    endpoint_concurrency: int = Field(default=4, ge=1, le=100)
    global_concurrency: int = Field(default=200, ge=1, le=10_000)
    max_response_bytes: int = Field(
        default=65_536, ge=1024, le=16 * 1024 * 1024, description="read at most this much"
    )
    stored_response_bytes: int = Field(default=4096, ge=0, le=65_536)
    attempt_retention_days: float = Field(default=30.0, gt=0)
    purge_interval_seconds: float = Field(default=3600.0, gt=0)
    lease_seconds: float | None = Field(
        default=None, gt=0, description="a claim expires after this; default 9 x timeout + 30 s"
    )
    poll_interval: float = Field(default=1.0, gt=0, le=60)
    batch_size: int = Field(default=500, ge=1, le=5000)
    max_filters: int = Field(default=100, ge=1, le=1000)
    max_retry_after_seconds: float = Field(default=86_400.0, gt=0)

    @field_validator("retry_schedule")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(step < 0 for step in value):
            raise ValueError("delays must be >= 0")
        return value

    def private_allowed(self, development: bool) -> bool:
        return development if self.allow_private_networks is None else self.allow_private_networks

    def http_allowed(self, development: bool) -> bool:
        return development if self.allow_http is None else self.allow_http
