from __future__ import annotations

import stat
from pathlib import Path

import pytest

from garrison.settings import ConfigError, Settings, load_settings

GOOD_SECRET = "kq3V9x7LmN2pR8tY4wZ6aB1cD5eF0gHj"
MYSQL = "mysql+asyncmy://garrison:pw@127.0.0.1:3306/garrison"


def load(tmp_path: Path, **values: object) -> Settings:
    return load_settings(_env_file=None, data_dir=tmp_path, **values)


def test_development_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.env == "development"
    assert settings.db_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'garrison.db'}"
    assert settings.http.port == 3000
    assert settings.http.hsts is False
    assert settings.rate_limit.requests_per_minute is None
    assert settings.redis_url is None


@pytest.mark.parametrize(("env", "rpm", "burst"), [("staging", 500, 100), ("production", 100, 20)])
def test_strict_profiles(tmp_path: Path, env: str, rpm: int, burst: int) -> None:
    settings = load(
        tmp_path,
        env=env,
        database_url=MYSQL,
        redis_url="redis://127.0.0.1:6379/0",
        secret_key=GOOD_SECRET,
    )
    assert settings.rate_limit.requests_per_minute == rpm
    assert settings.rate_limit.burst == burst
    assert settings.http.hsts is True
    assert settings.http.secure_cookies is True
    assert settings.log.format == "json"
    assert settings.log.audit is (env == "production")


def test_explicit_value_beats_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GARRISON_RATE_LIMIT__BURST", "7")
    monkeypatch.setenv("GARRISON_HTTP__HSTS", "false")
    settings = load(
        tmp_path,
        env="production",
        database_url=MYSQL,
        redis_url="redis://x:6379/0",
        secret_key=GOOD_SECRET,
    )
    assert settings.rate_limit.burst == 7
    assert settings.rate_limit.requests_per_minute == 100
    assert settings.http.hsts is False


def test_production_without_database_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env="production", redis_url="redis://x:6379/0", secret_key=GOOD_SECRET)
    assert info.value.variable == "GARRISON_DATABASE_URL"


def test_production_reads_prod_db_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROD_DB_HOST", "db.internal")
    monkeypatch.setenv("PROD_DB_NAME", "garrison")
    monkeypatch.setenv("PROD_DB_USERNAME", "app")
    monkeypatch.setenv("PROD_DB_PASSWORD", "p@ss:w/rd")
    # A remote database in production needs TLS, or this explicit opt-out.
    monkeypatch.setenv("GARRISON_DB__ALLOW_INSECURE", "true")
    settings = load(
        tmp_path, env="production", redis_url="redis://x:6379/0", secret_key=GOOD_SECRET
    )
    from sqlalchemy.engine import make_url

    url = make_url(settings.db_url)
    assert (url.host, url.port, url.database, url.username) == (
        "db.internal",
        3306,
        "garrison",
        "app",
    )
    assert url.password == "p@ss:w/rd"
    assert "p@ss" not in str(settings.redacted())


@pytest.mark.parametrize("missing", ["PROD_DB_NAME", "PROD_DB_USERNAME", "PROD_DB_PASSWORD"])
def test_incomplete_prod_db_names_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: str
) -> None:
    values = {
        "PROD_DB_HOST": "h",
        "PROD_DB_NAME": "n",
        "PROD_DB_USERNAME": "u",
        "PROD_DB_PASSWORD": "pw-long-enough",
    }
    del values[missing]
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env="production", redis_url="redis://x:6379/0", secret_key=GOOD_SECRET)
    assert info.value.variable == missing


@pytest.mark.parametrize("env", ["staging", "production"])
def test_sqlite_refused_outside_development(tmp_path: Path, env: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(
            tmp_path,
            env=env,
            database_url="sqlite+aiosqlite:///x.db",
            redis_url="redis://x:6379/0",
            secret_key=GOOD_SECRET,
        )
    assert info.value.variable == "GARRISON_DATABASE_URL"
    assert "SQLite" in info.value.message


@pytest.mark.parametrize("env", ["staging", "production"])
def test_redis_required_outside_development(tmp_path: Path, env: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env=env, database_url=MYSQL, secret_key=GOOD_SECRET)
    assert info.value.variable == "GARRISON_REDIS_URL"


@pytest.mark.parametrize(
    "secret",
    [None, "changeme", "secret", "short-but-real-9x", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
)
def test_weak_or_missing_secret_refused_in_production(tmp_path: Path, secret: str | None) -> None:
    values: dict[str, object] = {
        "env": "production",
        "database_url": MYSQL,
        "redis_url": "redis://x/0",
    }
    if secret is not None:
        values["secret_key"] = secret
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **values)
    assert info.value.variable == "GARRISON_SECRET_KEY"


def test_development_secret_generated_once_and_private(tmp_path: Path) -> None:
    first = load(tmp_path)
    second = load(tmp_path)
    assert first.secret_key is not None
    assert second.secret_key is not None
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    assert len(first.secret_key.get_secret_value()) >= 48
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600


def test_malformed_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GARRISON_HTTP__PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert info.value.variable == "GARRISON_HTTP__PORT"


@pytest.mark.parametrize("origin", ["*", "https://*.example.com", "example.com"])
def test_cors_origins_must_be_explicit(tmp_path: Path, origin: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, http={"cors_origins": [origin]})
    assert info.value.variable == "GARRISON_HTTP__CORS_ORIGINS"


def test_redacted_hides_every_secret(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        env="staging",
        database_url="mysql+asyncmy://app:hunter2-db@127.0.0.1/g",
        redis_url="redis://:hunter2-redis@127.0.0.1:6379/0",
        secret_key=GOOD_SECRET,
    )
    text = str(settings.redacted())
    for secret in ("hunter2-db", "hunter2-redis", GOOD_SECRET):
        assert secret not in text
    assert "***" in text
