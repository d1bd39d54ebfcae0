"""The specification's ``PROD_DB_*`` variables, turned into a database URL."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import URL

from garrison.settings.base import ConfigError
from garrison.settings.secrets import PLACEHOLDERS, with_secret_files


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
        return with_secret_files(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        )


def prod_database_url() -> str | None:
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
    if password.lower() in PLACEHOLDERS:
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
