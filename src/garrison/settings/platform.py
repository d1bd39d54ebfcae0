"""The platform layers' sections: database, HTTP, logging, cache, metrics, tracing, worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator


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
