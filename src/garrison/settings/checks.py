"""Refusing configurations that are unsafe or incomplete for their environment."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, make_url

from garrison.settings.base import ENV_PREFIX, ConfigError
from garrison.settings.secrets import check_secret

if TYPE_CHECKING:
    from garrison.settings import Settings


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
    _check_files(settings)
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
        check_secret(settings.secret_key.get_secret_value())
    if settings.metrics.token is not None:
        check_secret(settings.metrics.token.get_secret_value(), f"{ENV_PREFIX}METRICS__TOKEN")
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


def _check_files(settings: Settings) -> None:
    files = settings.files
    if files.backend == "s3" and not files.s3_bucket:
        raise ConfigError(f"{ENV_PREFIX}FILES__S3_BUCKET", "is required when FILES__BACKEND is s3")
    if files.replica == "s3" and not (files.replica_s3_bucket or files.s3_bucket):
        raise ConfigError(
            f"{ENV_PREFIX}FILES__REPLICA_S3_BUCKET", "is required when FILES__REPLICA is s3"
        )
