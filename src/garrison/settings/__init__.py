"""The one place that reads the environment.

Configuration comes from environment variables prefixed ``GARRISON_`` (nested sections use
``__``, e.g. ``GARRISON_HTTP__PORT``), an optional ``.env`` file, and in production the
``PROD_DB_*`` variables. Defaults depend on the environment profile (development, staging,
production); an explicitly set value always wins over the profile.

``load_settings()`` is what processes call at start: it builds the object, applies the
profile, refuses unsafe or incomplete configurations with a ``ConfigError`` naming the
variable, and in development generates the secret key once into the data directory.

The section models live beside this module, one per domain (``auth``, ``webhooks``, ``ops``,
…), with the profiles, the secret handling and the checks; callers import them from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from garrison.settings.audit import AuditSettings
from garrison.settings.auth import AuthSettings, SmtpSettings
from garrison.settings.base import ENV_PREFIX, ConfigError, Environment
from garrison.settings.checks import check_settings
from garrison.settings.files import FileSettings
from garrison.settings.flags import FlagSettings
from garrison.settings.gateway import AUTH_SENSITIVE_PATHS, RateLimitSettings, RouteRateLimit
from garrison.settings.ops import (
    AlertSettings,
    BackupSettings,
    DeploySettings,
    HealthSettings,
    StatusSettings,
)
from garrison.settings.platform import (
    CacheSettings,
    DatabaseSettings,
    HttpSettings,
    LogSettings,
    MetricsSettings,
    TracingSettings,
    WorkerSettings,
)
from garrison.settings.privacy import PrivacySettings
from garrison.settings.production import prod_database_url
from garrison.settings.profiles import apply_profile
from garrison.settings.secrets import development_secret, redact_url, with_secret_files
from garrison.settings.webhooks import DEFAULT_SCHEDULE, WebhookSettings

__all__ = [
    "AUTH_SENSITIVE_PATHS",
    "DEFAULT_SCHEDULE",
    "ENV_PREFIX",
    "AlertSettings",
    "AuditSettings",
    "AuthSettings",
    "BackupSettings",
    "CacheSettings",
    "ConfigError",
    "DatabaseSettings",
    "DeploySettings",
    "Environment",
    "FileSettings",
    "FlagSettings",
    "HealthSettings",
    "HttpSettings",
    "LogSettings",
    "MetricsSettings",
    "PrivacySettings",
    "RateLimitSettings",
    "RouteRateLimit",
    "Settings",
    "SmtpSettings",
    "StatusSettings",
    "TracingSettings",
    "WebhookSettings",
    "WorkerSettings",
    "check_settings",
    "load_settings",
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    env: Environment = "development"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = Field(default="garrison:", min_length=1, max_length=64)
    redis_timeout: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="seconds a Redis command or connect may take before the store counts as down",
    )
    redis_max_connections: int = Field(
        default=256, ge=1, le=10_000, description="per process; callers wait when all are busy"
    )
    redis_sentinels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="host:port of each Sentinel (comma-separated)"
    )
    redis_sentinel_master: str = Field(default="mymaster", min_length=1, max_length=64)
    secret_key: SecretStr | None = None
    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list,
        description="older master keys, still read (JSON list); `garrison secrets rotate` "
        "re-encrypts what they sealed under the current key",
    )

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    sentry_dsn: SecretStr | None = Field(default=None, description="Sentry/GlitchTip DSN")

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinel_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for entry in value:
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{entry!r} must be host:port")
        return value

    flags: FlagSettings = Field(default_factory=FlagSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    files: FileSettings = Field(default_factory=FileSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return with_secret_files(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        )

    backup: BackupSettings = Field(default_factory=BackupSettings)

    @model_validator(mode="after")
    def _apply_profile(self) -> Settings:
        apply_profile(self, self.env)
        if self.database_url is None:
            if self.env == "development":
                path = (self.data_dir / "garrison.db").resolve()
                self.database_url = f"sqlite+aiosqlite:///{path}"
            elif self.env == "production":
                self.database_url = prod_database_url()
        return self

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def db_url(self) -> str:
        """The effective database URL (always set once ``load_settings`` succeeded)."""
        if self.database_url is None:
            raise ConfigError(f"{ENV_PREFIX}DATABASE_URL", "is not set")
        return self.database_url

    @property
    def issuer(self) -> str:
        """The ``iss`` of Garrison's tokens: ``auth.issuer``, else the public URL."""
        value = self.auth.issuer or self.http.public_url or "http://localhost:3000"
        return value.rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    def redacted(self) -> dict[str, Any]:
        """The effective configuration with every secret replaced; for ``config show``."""
        data = self.model_dump(mode="json")
        data["secret_key"] = "**********" if self.secret_key else None
        data["previous_secret_keys"] = ["**********" for _ in self.previous_secret_keys]
        data["metrics"]["token"] = "**********" if self.metrics.token else None
        data["sentry_dsn"] = "**********" if self.sentry_dsn else None
        for key in ("database_url", "redis_url"):
            if data.get(key):
                data[key] = redact_url(data[key])
        replicas = data["db"].get("replica_url")
        if isinstance(replicas, str):
            data["db"]["replica_url"] = redact_url(replicas)
        elif replicas:
            data["db"]["replica_url"] = [redact_url(url) for url in replicas]
        return data


def variable_for(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc if isinstance(part, str))


def load_settings(**overrides: Any) -> Settings:
    """Build, complete and check the settings; raises ``ConfigError`` naming the variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(variable_for(tuple(error["loc"])), error["msg"]) from None
    check_settings(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.secret_key is None:
        settings.secret_key = development_secret(settings.data_dir)
    return settings
