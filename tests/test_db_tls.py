"""TLS to MariaDB: a private server with a generated CA and require_secure_transport=ON."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from garrison.db import Database
from garrison.ops.cluster.tls import TlsFiles, generate
from garrison.settings import ConfigError, load_settings
from tests.private_mariadb import PrivateServer, private_mariadb

pytestmark = pytest.mark.slow
PASSWORD = "tls-test-password-1234"


@pytest.fixture(scope="module")
def certs() -> Iterator[TlsFiles]:
    with tempfile.TemporaryDirectory(prefix="garrison-tls-") as directory:
        Path(directory).chmod(0o755)  # the server (the mysql user under root) reads them
        yield generate(Path(directory) / "tls", ["127.0.0.1", "localhost"])


@pytest.fixture(scope="module")
def server(certs: TlsFiles) -> Iterator[PrivateServer]:
    options = [
        f"--ssl-ca={certs.ca}",
        f"--ssl-cert={certs.server_cert}",
        f"--ssl-key={certs.server_key}",
        "--require-secure-transport=ON",
    ]
    with private_mariadb(options, prepare=certs.ca.parent) as instance:
        instance.sql(
            "CREATE DATABASE app; "
            f"CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL; "
            "GRANT SELECT ON app.* TO 'app'@'127.0.0.1'; "
            # Without REQUIRE SSL: what refuses it is the server's require_secure_transport.
            f"CREATE USER 'plain'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
            "GRANT SELECT ON app.* TO 'plain'@'127.0.0.1'"
        )
        yield instance


def _database(server: PrivateServer, tmp_path: Path, user: str = "app", **tls: object) -> Database:
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path / "var",
        database_url=f"mysql+asyncmy://{user}:{PASSWORD}@127.0.0.1:{server.port}/app",
        db={"connect_timeout": 5, "retry_deadline": 1, **tls},
    )
    return Database(settings.db_url, settings.db)


async def test_connects_over_verified_tls(
    server: PrivateServer, certs: TlsFiles, tmp_path: Path
) -> None:
    db = _database(server, tmp_path, tls_ca=certs.ca)
    try:
        async with db.connect() as conn:
            cipher = (await conn.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'"))).one()
        assert cipher[1]  # a cipher was negotiated
        rows = await db.fast_read.query("SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert rows[0]["Value"].startswith("TLS")
    finally:
        await db.dispose()


async def test_plain_connection_is_refused(
    server: PrivateServer, certs: TlsFiles, tmp_path: Path
) -> None:
    # The same account connects over TLS; in plain text the server turns it away (MariaDB
    # reports require_secure_transport as access denied, 1045, or as 3159).
    secure = _database(server, tmp_path, user="plain", tls_ca=certs.ca)
    plain = _database(server, tmp_path, user="plain")
    try:
        async with secure.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        with pytest.raises(DBAPIError) as caught:
            async with plain.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert caught.value.orig is not None
        assert caught.value.orig.args[0] in (1045, 3159)
    finally:
        await secure.dispose()
        await plain.dispose()


async def test_a_certificate_from_another_ca_is_refused(
    server: PrivateServer, tmp_path: Path
) -> None:
    other = generate(tmp_path / "other", ["127.0.0.1"])
    db = _database(server, tmp_path, tls_ca=other.ca)
    try:
        with pytest.raises(DBAPIError) as caught:
            async with db.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert "certificate" in str(caught.value).lower()
    finally:
        await db.dispose()


def test_production_refuses_plain_text_to_a_remote_database(tmp_path: Path) -> None:
    values = {
        "_env_file": None,
        "env": "production",
        "data_dir": tmp_path / "var",
        "database_url": "mysql+asyncmy://app:pw@10.0.0.5:3306/app",
        "redis_url": "redis://10.0.0.6:6379/0",
        "secret_key": "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(**values)
    assert caught.value.variable == "GARRISON_DB__TLS_CA"
    assert load_settings(**values, db={"allow_insecure": True}).db.allow_insecure


def test_a_replica_url_naming_the_writer_is_refused(tmp_path: Path) -> None:
    url = "mysql+asyncmy://app:pw@127.0.0.1:3306/app"
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None, data_dir=tmp_path / "var", database_url=url, db={"replica_url": url}
        )
    assert caught.value.variable == "GARRISON_DB__REPLICA_URL"
    assert "writer" in caught.value.message


def test_replica_urls_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = "mysql+asyncmy://app:pw@127.0.0.1:3306/app"
    readers = [
        "mysql+asyncmy://app:pw@127.0.0.1:3307/app",
        "mysql+asyncmy://app:pw@127.0.0.1:3308/app",
    ]
    monkeypatch.setenv("GARRISON_DB__REPLICA_URL", '["' + '", "'.join(readers) + '"]')
    settings = load_settings(_env_file=None, data_dir=tmp_path / "var", database_url=writer)
    assert settings.db.replica_urls == readers
    assert all("pw" not in url for url in settings.redacted()["db"]["replica_url"])
    monkeypatch.setenv("GARRISON_DB__REPLICA_URL", "[not json")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, data_dir=tmp_path / "var", database_url=writer)
    assert caught.value.variable == "GARRISON_DB__REPLICA_URL"
