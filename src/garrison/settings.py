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
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
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
    replica_url: str | list[str] | None = Field(
        default=None, description="read-only replica URL, or a JSON list of them"
    )
    max_replica_lag: float = Field(
        default=5.0, gt=0, description="seconds; a replica further behind is skipped"
    )
    replica_check_interval: float = Field(
        default=1.0, gt=0, le=60, description="seconds between replica lag probes"
    )
    retry_deadline: float = Field(
        default=15.0, gt=0, le=120, description="seconds a transaction is retried on failover"
    )
    tls_ca: Path | None = Field(default=None, description="CA bundle that signs the server")
    tls_cert: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    tls_key: Path | None = Field(default=None, description="client certificate's key")
    tls_verify: bool = Field(default=True, description="check the server's name and chain")
    allow_insecure: bool = Field(
        default=False, description="production: allow a non-TLS connection to a remote host"
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    echo: bool = False

    @field_validator("replica_url", mode="before")
    @classmethod
    def _replica_list(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("is not a URL or a JSON list of URLs") from None
        return value

    @property
    def replica_urls(self) -> list[str]:
        """Every reader URL, in the order given."""
        if self.replica_url is None:
            return []
        urls = [self.replica_url] if isinstance(self.replica_url, str) else self.replica_url
        return [url for url in urls if url.strip()]


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


class FlagSettings(BaseModel):
    refresh_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="full reload of the snapshot, behind the change notifications",
    )
    channel: str = Field(default="flags:changed", min_length=1, max_length=64)
    principal_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="OFREP: how long a checked credential is trusted without a new check",
    )


class PrivacySettings(BaseModel):
    export_link_seconds: int = Field(default=900, ge=30, le=86_400, description="signed link")
    export_keep_seconds: int = Field(
        default=86_400, ge=60, le=30 * 86_400, description="the archive is deleted after this"
    )
    session_retention_days: int = Field(
        default=30, ge=1, le=3650, description="refresh tokens this long past expiry/revocation"
    )
    job_retention_days: int = Field(
        default=90, ge=1, le=3650, description="finished export/erasure records"
    )
    retention_batch_size: int = Field(default=500, ge=1, le=10_000)


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


class DeploySettings(BaseModel):
    """``GARRISON_DEPLOY__*``: where ``garrison deploy`` finds its configuration (the rest is
    the deploy config file, ``garrison.ops.deploy.config``)."""

    config: Path = Field(default=Path("deploy.toml"), description="the deploy config file")


FILE_SUFFIX = "_FILE"
SECRETS_DIR_VARIABLE = f"{ENV_PREFIX}SECRETS_DIR"


def _read_secret(variable: str, path: Path) -> str:
    try:
        return path.read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(variable, f"cannot read {path}: {exc.__class__.__name__}") from None


def secret_file_values(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    """Variables given as files, the Docker and Kubernetes way: ``NAME_FILE=/path`` for any
    ``NAME`` (``GARRISON_SECRET_KEY_FILE``, ``PROD_DB_PASSWORD_FILE``, …), and every file
    of the directory ``GARRISON_SECRETS_DIR`` (named ``GARRISON_SECRET_KEY`` or
    ``secret_key``). A variable set directly wins over its file."""
    found: dict[str, str] = {}
    directory = environ.get(SECRETS_DIR_VARIABLE)
    if directory:
        root = Path(directory)
        if not root.is_dir():
            raise ConfigError(SECRETS_DIR_VARIABLE, f"{root} is not a directory")
        for path in sorted(root.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue  # Kubernetes' ..data links and the like
            name = path.name.upper()
            if not name.startswith((ENV_PREFIX, "PROD_DB_")):
                name = ENV_PREFIX + name
            if name.startswith(prefix):
                found[name] = _read_secret(SECRETS_DIR_VARIABLE, path)
    for variable, value in environ.items():
        name = variable.upper()
        if name.startswith(prefix) and name.endswith(FILE_SUFFIX) and name != SECRETS_DIR_VARIABLE:
            found[name.removesuffix(FILE_SUFFIX)] = _read_secret(variable, Path(value))
    return found


class _SecretFilesSource(EnvSettingsSource):
    """The environment source, fed from ``*_FILE`` variables and the secrets directory."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        prefix = (self.env_prefix or "").upper()
        values = secret_file_values(os.environ, prefix)
        return {k.lower(): v for k, v in values.items()}


def _with_secret_files(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
    file_secret_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    files = _SecretFilesSource(settings_cls)
    return init_settings, env_settings, files, dotenv_settings, file_secret_settings


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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return _with_secret_files(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        )


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


# The status page, incidents, alerting and error tracking (GARRISON_STATUS__*).
class AlertSettings(BaseModel):
    """Alert rules the worker evaluates on Garrison's own metrics and health checks."""

    enabled: bool = True
    interval_seconds: float = Field(default=60.0, ge=1, description="between evaluations")
    email_to: list[str] = Field(default_factory=list, description="operators' addresses")
    error_rate: float = Field(default=0.05, gt=0, le=1, description="5xx share per route")
    min_requests: int = Field(default=20, ge=1, description="per route and window")
    latency_p95_ms: float = Field(default=200.0, gt=0)
    db_query_p95_ms: float = Field(default=100.0, gt=0)
    replication_lag_seconds: float = Field(default=30.0, gt=0)
    backup_max_age_hours: float = Field(default=26.0, gt=0)
    suppress_minutes: dict[str, float] = Field(
        default_factory=dict,
        description="rule name → minutes a rule stays quiet after it resolved (flap guard)",
    )
    default_suppress_minutes: float = Field(default=10.0, ge=0)


class StatusSettings(BaseModel):
    title: str = Field(default="Garrison status", max_length=100)
    sample_interval_seconds: float = Field(
        default=60.0, ge=1, le=3600, description="the worker records a sample per component"
    )
    sample_retention_days: int = Field(default=3, ge=1, le=90, description="minute samples")
    history_days: int = Field(default=90, ge=7, le=365, description="days on the uptime bar")
    cache_seconds: float = Field(default=30.0, ge=0, le=600, description="page and JSON")
    maintenance_poll_seconds: float = Field(
        default=5.0, gt=0, le=300, description="how often the read-only switch is re-read"
    )
    subscribe_token_ttl: int = Field(default=172_800, ge=300, description="confirm link, s")
    sentry_environment: str | None = Field(default=None, description="default: GARRISON_ENV")
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0, le=1)
    alerts: AlertSettings = Field(default_factory=AlertSettings)


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
        return _with_secret_files(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        )

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
        data["sentry_dsn"] = "**********" if self.sentry_dsn else None
        for key in ("database_url", "redis_url"):
            if data.get(key):
                data[key] = _redact_url(data[key])
        replicas = data["db"].get("replica_url")
        if isinstance(replicas, str):
            data["db"]["replica_url"] = _redact_url(replicas)
        elif replicas:
            data["db"]["replica_url"] = [_redact_url(url) for url in replicas]
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
    if strict and not (settings.redis_url or settings.redis_sentinels):
        raise ConfigError(f"{ENV_PREFIX}REDIS_URL", f"is required in {settings.env}")
    _check_database_links(settings, url)
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


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _check_database_links(settings: Settings, writer: URL) -> None:
    """Readers, TLS files, and production's refusal of plain text to a remote database."""
    db = settings.db
    variable = f"{ENV_PREFIX}DB__REPLICA_URL"
    for replica in db.replica_urls:
        try:
            parsed = make_url(replica)
        except Exception as exc:
            raise ConfigError(variable, "is not a valid database URL") from exc
        if parsed.get_backend_name() != writer.get_backend_name():
            raise ConfigError(variable, "must use the same database kind as DATABASE_URL")
        same = (parsed.host, parsed.port or 3306, parsed.database)
        if parsed.get_backend_name() != "sqlite" and same == (
            writer.host,
            writer.port or 3306,
            writer.database,
        ):
            raise ConfigError(variable, "points at the writer (DATABASE_URL); name a replica")
    for name in ("tls_ca", "tls_cert", "tls_key"):
        path: Path | None = getattr(db, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"{ENV_PREFIX}DB__{name.upper()}", f"{path} is not a readable file")
    if (db.tls_cert is None) != (db.tls_key is None):
        raise ConfigError(f"{ENV_PREFIX}DB__TLS_KEY", "TLS_CERT and TLS_KEY go together")
    if settings.env == "production" and writer.get_backend_name() != "sqlite":
        hosts = [writer.host or "localhost"]
        hosts += [make_url(u).host or "localhost" for u in db.replica_urls]
        remote = [host for host in hosts if host not in _LOOPBACK]
        if remote and db.tls_ca is None and not db.allow_insecure:
            raise ConfigError(
                f"{ENV_PREFIX}DB__TLS_CA",
                f"production refuses a non-TLS connection to {remote[0]}; set the CA"
                " (or DB__ALLOW_INSECURE=true)",
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
