"""Secrets: placeholder and strength checks, ``*_FILE`` variables and the secrets directory,
the development secret file, and URL redaction."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
)
from sqlalchemy.engine import make_url

from garrison.settings.base import ENV_PREFIX, ConfigError

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


PLACEHOLDERS = {
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


def with_secret_files(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
    file_secret_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    files = _SecretFilesSource(settings_cls)
    return init_settings, env_settings, files, dotenv_settings, file_secret_settings


def check_secret(value: str, variable: str = f"{ENV_PREFIX}SECRET_KEY") -> None:
    lowered = value.strip().lower()
    if lowered in PLACEHOLDERS or any(word in lowered for word in ("changeme", "change-me")):
        raise ConfigError(variable, "is a placeholder; generate one with `openssl rand -hex 32`")
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(variable, f"must be at least {MIN_SECRET_LENGTH} characters")
    if len(set(value)) < 8:
        raise ConfigError(variable, "has too little variety to be a real secret")


def development_secret(data_dir: Path) -> SecretStr:
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


def redact_url(value: str) -> str:
    try:
        return make_url(value).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as a marker, never verbatim
        return "<unparsable URL>"
