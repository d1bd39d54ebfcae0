"""The one place that reads the environment.

Configuration comes from environment variables prefixed ``GARRISON_`` (nested sections use
``__``, e.g. ``GARRISON_HTTP__PORT``), an optional ``.env`` file, and in production the
``PROD_DB_*`` variables. Defaults depend on the environment profile (development, staging,
production); an explicitly set value always wins over the profile.

``load_settings()`` is what processes call at start: it builds the object, applies the
profile, refuses unsafe or incomplete configurations with a ``ConfigError`` naming the
variable, and in development generates the secret key once into the data directory.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

Environment = Literal["development", "staging", "production"]

ENV_PREFIX = "GARRISON_"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
_PLACEHOLDERS = {
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "secret",
    "password",
    "placeholder",
    "example",
    "default",
    "todo",
    "xxx",
    "test",
    "garrison",
}
MIN_SECRET_LENGTH = 32


class ConfigError(Exception):
    """A setting is missing or wrong; ``variable`` names the environment variable to fix."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


class DatabaseSettings(BaseModel):
    pool_size: int = Field(default=10, ge=1, le=500)
    max_overflow: int = Field(default=10, ge=0, le=500)
    pool_timeout: float = Field(default=10.0, gt=0)
    pool_recycle: int = Field(default=1800, ge=-1, description="seconds; -1 disables")
    pool_pre_ping: bool = True
    connect_timeout: float = Field(default=5.0, gt=0)
    isolation_level: Literal["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"] = "READ COMMITTED"
    replica_url: str | None = Field(default=None, description="read-only replica URL")
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    echo: bool = False


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    public_url: str | None = Field(default=None, description="external base URL")
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    allowed_content_types: list[str] = Field(
        default_factory=lambda: [
            "application/json",
            "application/merge-patch+json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ]
    )
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    trusted_proxies: list[str] = Field(default_factory=list, description="IPs or CIDRs")
    hsts: bool = False
    hsts_max_age: int = Field(default=31_536_000, ge=31_536_000)
    secure_cookies: bool = False
    shutdown_timeout: int = Field(default=30, ge=1, description="seconds to drain on SIGTERM")
    backlog: int = Field(
        default=16_384, ge=128, le=1_000_000, description="pending connections the kernel queues"
    )
    keep_alive_timeout: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="seconds an idle keep-alive connection, or a request's headers, may take",
    )
    connections_per_worker: int = Field(
        default=10_000,
        ge=16,
        le=1_000_000,
        description="open connections each worker serves at once; more wait in the backlog",
    )

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or "*" in origin:
                raise ValueError("wildcards are not allowed; list each origin")
            if not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return [origin.rstrip("/") for origin in value]


class LogSettings(BaseModel):
    level: Literal["debug", "info", "warning", "error"] = "debug"
    format: Literal["auto", "json", "console"] = "auto"
    audit: bool = False


class HealthSettings(BaseModel):
    check_timeout: float = Field(default=0.8, gt=0, le=5, description="seconds per check")
    cache_seconds: float = Field(default=1.0, ge=0, le=60)
    disk_warn_mb: int = Field(default=1024, ge=0)
    disk_fail_mb: int = Field(default=100, ge=0)
    backlog_warn_seconds: int = Field(
        default=300, ge=1, description="warn when an event has waited this long for the worker"
    )
    details: Literal["loopback", "never"] = "loopback"


AUTH_SENSITIVE_PATHS = [
    "/api/v1/auth/login",
    "/api/v1/auth/token",
    "/api/v1/auth/register",
    "/api/v1/auth/password-reset",
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


def _auth_routes(requests_per_minute: int | None, burst: int | None) -> list[RouteRateLimit]:
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


class CacheSettings(BaseModel):
    default_ttl: float = Field(default=60.0, gt=0)
    memory_max_entries: int = Field(default=10_000, ge=1)


class MetricsSettings(BaseModel):
    """``/metrics``: open in development; elsewhere behind ``token`` or on ``listen`` only."""

    enabled: bool = True
    token: SecretStr | None = Field(default=None, description="bearer token for /metrics")
    listen: str | None = Field(
        default=None, description="host:port of a separate listener (garrison serve only)"
    )
    multiproc_dir: Path | None = Field(
        default=None, description="set by `garrison serve` for its worker processes"
    )
    process_interval: float = Field(default=10.0, gt=0, description="seconds between samples")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
        return value

    @property
    def listen_address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class TracingSettings(BaseModel):
    """OpenTelemetry tracing (needs the ``garrison[tracing]`` extra); off unless enabled."""

    enabled: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "garrison"
    sample_ratio: float = Field(default=1.0, ge=0, le=1)

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (OTLP over HTTP)")
        return value


class AuditSettings(BaseModel):
    retention_days: int = Field(default=90, ge=1, le=36_500)
    purge_batch_size: int = Field(default=500, ge=1, le=10_000)
    seal_batch_size: int = Field(default=500, ge=1, le=2_000)  # one UPDATE per batch
    purge_interval_seconds: float = Field(default=3600.0, gt=0, description="worker job")
    export_batch_size: int = Field(default=500, ge=1, le=10_000)


class WorkerSettings(BaseModel):
    in_process: bool = Field(default=True, description="run the worker inside `serve`")
    batch_size: int = Field(default=200, ge=1, le=1000)
    poll_interval: float = Field(default=1.0, gt=0, le=60, description="seconds when idle")
    lease_seconds: float = Field(default=60.0, gt=0, description="a claim expires after this")
    max_attempts: int = Field(default=10, ge=1, le=100)
    backoff_base: float = Field(default=1.0, gt=0, description="seconds before retry 1")
    backoff_max: float = Field(default=600.0, gt=0)
    handler_modules: list[str] = Field(
        default_factory=list, description="modules imported at start; they call register()"
    )


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


class SmtpSettings(BaseModel):
    host: str | None = Field(default=None, description="None: write .eml files (development)")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "Garrison <no-reply@localhost>"
    timeout: float = Field(default=10.0, gt=0)


# The backup domain (garrison.ops.backup) reads these; defined here because settings sits
# below every domain.
class BackupSettings(BaseModel):
    storage_url: str | None = Field(
        default=None,
        description="file:///dir or s3://bucket/prefix; default <data_dir>/backups",
    )
    copy_url: str | None = Field(
        default=None, description="a second location every artifact is copied to"
    )
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    method: Literal["dump", "physical"] = Field(
        default="dump", description="MariaDB full backups: mariadb-dump or mariadb-backup"
    )
    full_at: str = Field(default="03:00", description="daily full backup time, HH:MM UTC")
    keep_daily: int = Field(default=7, ge=1)
    keep_weekly: int = Field(default=4, ge=0)
    verify_every_days: int = Field(default=7, ge=0, description="0: the worker never verifies")
    schedule: bool = Field(default=True, description="the worker takes the daily full")
    stream: bool = Field(default=False, description="the worker supervises log archiving")
    upload_interval: float = Field(default=1.0, gt=0, le=60, description="seconds")
    age_warn_hours: float = Field(default=26.0, gt=0)
    log_lag_warn_seconds: float = Field(default=60.0, gt=0)
    tools_dir: str | None = Field(default=None, description="where mariadb-* binaries live")

    @field_validator("full_at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value)
        if match is None:
            raise ValueError("must be HH:MM (UTC), e.g. 03:00")
        return value


class _ProdDatabaseEnv(BaseSettings):
    """The specification's production database variables (no GARRISON_ prefix)."""

    model_config = SettingsConfigDict(env_prefix="PROD_DB_", extra="ignore")

    host: str | None = None
    port: int = 3306
    name: str | None = None
    username: str | None = None
    password: SecretStr | None = None


_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "development": {
        "http": {"host": "127.0.0.1", "hsts": False, "secure_cookies": False},
        "log": {"level": "debug", "format": "auto", "audit": False},
        "rate_limit": {
            "requests_per_minute": None,
            "burst": None,
            "routes": _auth_routes(None, None),
        },
        "worker": {"in_process": True},
        "auth": {"registration": "open"},
    },
    "staging": {
        "http": {"host": "0.0.0.0", "hsts": True, "secure_cookies": True},  # noqa: S104
        "log": {"level": "info", "format": "json", "audit": False},
        "rate_limit": {
            "requests_per_minute": 500,
            "burst": 100,
            "routes": _auth_routes(30, 10),
        },
        "worker": {"in_process": False},
        "auth": {"registration": "invite"},
    },
    "production": {
        "http": {"host": "0.0.0.0", "hsts": True, "secure_cookies": True},  # noqa: S104
        "log": {"level": "info", "format": "json", "audit": True},
        "rate_limit": {
            "requests_per_minute": 100,
            "burst": 20,
            "routes": _auth_routes(10, 5),
        },
        "worker": {"in_process": False},
        "auth": {"registration": "closed"},
    },
}


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
    backup: BackupSettings = Field(default_factory=BackupSettings)

    @model_validator(mode="after")
    def _apply_profile(self) -> Settings:
        for section_name, defaults in _PROFILES[self.env].items():
            section: BaseModel = getattr(self, section_name)
            for field, value in defaults.items():
                if field not in section.model_fields_set:
                    setattr(section, field, copy.deepcopy(value))
        if self.database_url is None:
            if self.env == "development":
                path = (self.data_dir / "garrison.db").resolve()
                self.database_url = f"sqlite+aiosqlite:///{path}"
            elif self.env == "production":
                self.database_url = _prod_database_url()
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
        for key in ("database_url", "redis_url"):
            if data.get(key):
                data[key] = _redact_url(data[key])
        if data["db"].get("replica_url"):
            data["db"]["replica_url"] = _redact_url(data["db"]["replica_url"])
        return data


def _prod_database_url() -> str | None:
    prod = _ProdDatabaseEnv()
    if prod.host is None:
        return None
    if not prod.name:
        raise ConfigError("PROD_DB_NAME", "is required when PROD_DB_HOST is set")
    if not prod.username:
        raise ConfigError("PROD_DB_USERNAME", "is required when PROD_DB_HOST is set")
    if prod.password is None:
        raise ConfigError("PROD_DB_PASSWORD", "is required when PROD_DB_HOST is set")
    password = prod.password.get_secret_value()
    if password.lower() in _PLACEHOLDERS:
        raise ConfigError("PROD_DB_PASSWORD", "is a placeholder; set the real password")
    url = URL.create(
        "mysql+asyncmy",
        username=prod.username,
        password=password or None,
        host=prod.host,
        port=prod.port,
        database=prod.name,
        query={"charset": "utf8mb4"},
    )
    return url.render_as_string(hide_password=False)


def _redact_url(value: str) -> str:
    try:
        return make_url(value).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as a marker, never verbatim
        return "<unparsable URL>"


def _variable_for(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc if isinstance(part, str))


def check_settings(settings: Settings) -> None:
    """Refuse configurations that are unsafe or incomplete for the chosen environment."""
    strict = settings.env != "development"
    if settings.database_url is None:
        hint = "set it or PROD_DB_HOST/PROD_DB_NAME/…" if settings.env == "production" else ""
        raise ConfigError(
            f"{ENV_PREFIX}DATABASE_URL", f"is required in {settings.env} {hint}".rstrip()
        )
    try:
        url = make_url(settings.database_url)
    except Exception as exc:
        raise ConfigError(f"{ENV_PREFIX}DATABASE_URL", "is not a valid database URL") from exc
    if url.get_backend_name() not in ("sqlite", "mysql", "mariadb"):
        raise ConfigError(
            f"{ENV_PREFIX}DATABASE_URL", "must be sqlite+aiosqlite:// or mysql+asyncmy://"
        )
    if strict and url.get_backend_name() == "sqlite":
        raise ConfigError(
            f"{ENV_PREFIX}DATABASE_URL",
            f"SQLite is not allowed in {settings.env}; use mysql+asyncmy://user:pw@host/db",
        )
    if strict and not settings.redis_url:
        raise ConfigError(f"{ENV_PREFIX}REDIS_URL", f"is required in {settings.env}")
    if settings.redis_url and not settings.redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError(f"{ENV_PREFIX}REDIS_URL", "must start with redis://, rediss://")
    if settings.auth.lockout_max_seconds < settings.auth.lockout_base_seconds:
        raise ConfigError(
            f"{ENV_PREFIX}AUTH__LOCKOUT_MAX_SECONDS", "must be at least AUTH__LOCKOUT_BASE_SECONDS"
        )
    if strict:
        if settings.secret_key is None:
            raise ConfigError(f"{ENV_PREFIX}SECRET_KEY", f"is required in {settings.env}")
        _check_secret(settings.secret_key.get_secret_value())
    if settings.metrics.token is not None:
        _check_secret(settings.metrics.token.get_secret_value(), f"{ENV_PREFIX}METRICS__TOKEN")
    if settings.tracing.enabled and not _installed("opentelemetry.sdk"):
        raise ConfigError(
            f"{ENV_PREFIX}TRACING__ENABLED",
            "needs the tracing extra: pip install 'garrison[tracing]'",
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def _check_secret(value: str, variable: str = f"{ENV_PREFIX}SECRET_KEY") -> None:
    lowered = value.strip().lower()
    if lowered in _PLACEHOLDERS or any(word in lowered for word in ("changeme", "change-me")):
        raise ConfigError(variable, "is a placeholder; generate one with `openssl rand -hex 32`")
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(variable, f"must be at least {MIN_SECRET_LENGTH} characters")
    if len(set(value)) < 8:
        raise ConfigError(variable, "has too little variety to be a real secret")


def _development_secret(data_dir: Path) -> SecretStr:
    """Read the generated secret, creating it (mode 0600) on first start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return SecretStr(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return SecretStr(path.read_text().strip())


def load_settings(**overrides: Any) -> Settings:
    """Build, complete and check the settings; raises ``ConfigError`` naming the variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(_variable_for(tuple(error["loc"])), error["msg"]) from None
    check_settings(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.secret_key is None:
        settings.secret_key = _development_secret(settings.data_dir)
    return settings
