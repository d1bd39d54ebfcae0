"""Backups on MariaDB against a private ``mariadbd`` started here (its own datadir, socket and
loopback port, ``log_bin``, ROW format, strict GTIDs; never the shared server), and
artifacts in a real SeaweedFS S3 gateway."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from garrison.ops.backup import logs, service
from garrison.ops.backup.errors import BackupError, ToolMissing
from garrison.ops.backup.servers import PrivateMariaDB, SeaweedS3
from garrison.ops.backup.storage import LocalStorage, S3Storage
from garrison.settings import Settings
from tests import services
from tests.backupkit import KNOWN_VALUE, SECRET, cli, cli_json, stored_bytes
from tests.conftest import make_settings
from tests.helpers import private_sql
from tests.services import unavailable

pytestmark = pytest.mark.slow
T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    db = PrivateMariaDB(tmp_path_factory.mktemp("mariadbd"))
    try:
        db.start()
    except (ToolMissing, BackupError) as exc:
        db.stop()
        unavailable("a private mariadbd", str(exc))
    try:
        yield db
    finally:
        db.stop()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    gateway = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    try:
        gateway.start()
    except (ToolMissing, BackupError) as exc:
        gateway.stop()
        unavailable("SeaweedFS", str(exc))
    try:
        yield gateway
    finally:
        gateway.stop()


def sql(server: PrivateMariaDB, statement: str, database: str = "mysql") -> str:
    return private_sql(server.port, statement, database)


def exists(server: PrivateMariaDB, database: str) -> bool:
    return bool(sql(server, f"SHOW DATABASES LIKE '{database}'"))


def until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _live(server: PrivateMariaDB, rows: int = 100) -> str:
    name = f"app_{uuid.uuid4().hex[:8]}"
    sql(server, f"CREATE DATABASE {name}")
    sql(server, "CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT)", name)
    values = ",".join(f"('{KNOWN_VALUE}-{i}')" for i in range(rows))
    sql(server, f"INSERT INTO notes (body) VALUES {values}", name)
    return name


def _env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    return {
        "GARRISON_DATA_DIR": str(tmp_path / "var"),
        "GARRISON_DATABASE_URL": url,
        "GARRISON_SECRET_KEY": SECRET,
        "GARRISON_BACKUP__UPLOAD_INTERVAL": "0.2",
        **extra,
    }


class Archiving:
    """The log archiver in a thread of its own, as ``garrison backup stream`` runs it."""

    def __init__(self, settings: Settings) -> None:
        self.archiver = service.archiver(settings)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        import threading

        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop.run_until_complete(self.archiver.run(self.stop))

    def __enter__(self) -> Archiving:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(60)
        self.loop.close()

    def shipped(self) -> int:
        state = self.archiver.state
        return sum(state.files.values()) if state else 0

    def wait_for_more(self, than: int) -> None:
        until(lambda: self.shipped() > than, "the archiver shipped nothing new")


def _changes_then_drop(
    server: PrivateMariaDB, settings: Settings, live: str, changes: Callable[[], T]
) -> tuple[datetime, T]:
    """With the log archived: ``changes()``, the moment after them, then ``DROP TABLE notes``
    in a later second (the binlog's clock has one-second steps), archived too."""
    with Archiving(settings) as archiving:
        until(lambda: archiving.archiver.state is not None, "archiver did not start")
        before = archiving.shipped()
        made = changes()
        moment = datetime.now(UTC)
        archiving.wait_for_more(before)
        until(
            lambda: datetime.now(UTC).replace(microsecond=0) > moment.replace(microsecond=0),
            "clock",
        )
        shipped = archiving.shipped()
        sql(server, "DROP TABLE notes", live)
        archiving.wait_for_more(shipped)
    return moment, made


def _restore_to(env: dict[str, str], moment: datetime, target_url: str) -> Any:
    return cli_json(
        env,
        "backup",
        "restore",
        "--latest",
        "--to-time",
        moment.isoformat(),
        "--target",
        target_url,
    )


def test_point_in_time_restore_drop_table(server: PrivateMariaDB, tmp_path: Path) -> None:
    live = _live(server)
    env = _env(tmp_path, server.database_url(live))
    settings = make_settings(
        tmp_path,
        database_url=env["GARRISON_DATABASE_URL"],
        secret_key=SECRET,
        backup={"upload_interval": 0.2},
    )
    made = cli_json(env, "backup", "create")
    assert made["tables"] == {"notes": 100}
    assert made["position"]["binlog_file"].startswith("mysql-bin.")

    def changes() -> str:
        sql(server, "INSERT INTO notes (body) VALUES ('after the full 1')", live)
        sql(server, "FLUSH BINARY LOGS")  # the log continues in a new file
        sql(server, "INSERT INTO notes (body) VALUES ('after the full 2')", live)
        gtid = sql(server, "SELECT @@gtid_binlog_pos")
        sql(server, "UPDATE notes SET body = 'changed after the gtid' WHERE id = 1", live)
        return gtid

    moment, gtid = _changes_then_drop(server, settings, live, changes)
    target = f"restored_{uuid.uuid4().hex[:6]}"
    done = _restore_to(env, moment, server.database_url(target))
    assert done["tables"] == {"notes": 102}
    assert done["logs_replayed"] == 2
    assert sql(server, "SELECT body FROM notes WHERE id = 1", target) == "changed after the gtid"
    assert sql(server, "SELECT body FROM notes WHERE id = 102", target) == "after the full 2"

    by_gtid = f"gtid_{uuid.uuid4().hex[:6]}"
    cli_json(
        env,
        "backup",
        "restore",
        "--latest",
        "--to-gtid",
        gtid,
        "--target",
        server.database_url(by_gtid),
    )
    assert sql(server, "SELECT COUNT(*) FROM notes", by_gtid) == "102"
    assert sql(server, "SELECT body FROM notes WHERE id = 1", by_gtid) == f"{KNOWN_VALUE}-0"

    latest = f"latest_{uuid.uuid4().hex[:6]}"
    cli_json(env, "backup", "restore", "--latest", "--target", server.database_url(latest))
    assert sql(server, "SHOW TABLES", latest) == ""  # the drop is replayed too

    # The live database is refused; a non-empty target too.
    code, _out, err = cli(
        env,
        "backup",
        "restore",
        "--latest",
        "--target",
        server.database_url(live).replace("127.0.0.1", "localhost"),
    )
    assert code == 2
    assert "live database" in err
    code, _out, err = cli(
        env, "backup", "restore", made["id"], "--target", server.database_url(target)
    )
    assert code == 2
    assert "not empty" in err

    # A missing log segment: named, and nothing is written.
    storage = LocalStorage(tmp_path / "var" / "backups")
    first = made["position"]["binlog_file"]
    storage.delete([key for _s, _e, key in logs.binlog_pieces(storage)[first]])
    gap = f"gap_{uuid.uuid4().hex[:6]}"
    code, _out, err = cli(
        env,
        "backup",
        "restore",
        "--latest",
        "--to-time",
        moment.isoformat(),
        "--target",
        server.database_url(gap),
    )
    assert code == 1
    assert f"has no {first}" in err
    assert not exists(server, gap)

    # A time after the archive ends.
    later = (datetime.now(UTC) + timedelta(seconds=0)).isoformat()
    code, _out, err = cli(
        env,
        "backup",
        "restore",
        "--latest",
        "--to-time",
        later,
        "--target",
        server.database_url(gap),
    )
    assert code == 2
    assert "after the end of the archived log" in err
    assert not exists(server, gap)


def test_verify_restores_into_a_scratch_database(server: PrivateMariaDB, tmp_path: Path) -> None:
    live = _live(server, rows=500)
    env = _env(tmp_path, server.database_url(live))
    made = cli_json(env, "backup", "create")
    result = cli_json(env, "backup", "verify", made["id"])
    assert result["ok"] is True, result
    assert result["tables_checked"] == 1
    assert "500 rows match" in result["detail"]
    assert not sql(server, "SHOW DATABASES LIKE 'garrison_verify_%'")


def test_artifacts_in_s3_hold_no_clear_text(
    server: PrivateMariaDB, s3: SeaweedS3, tmp_path: Path
) -> None:
    live = _live(server)
    bucket = f"garrison-{uuid.uuid4().hex[:8]}"
    extra = {
        "GARRISON_BACKUP__STORAGE_URL": f"s3://{bucket}/site-a",
        "GARRISON_BACKUP__COPY_URL": (tmp_path / "second").as_uri(),
        "GARRISON_BACKUP__S3_ENDPOINT_URL": s3.endpoint,
        "GARRISON_BACKUP__S3_ACCESS_KEY_ID": s3.access_key,
        "GARRISON_BACKUP__S3_SECRET_ACCESS_KEY": s3.secret_key,
    }
    env = _env(tmp_path, server.database_url(live), **extra)
    settings = make_settings(
        tmp_path,
        database_url=env["GARRISON_DATABASE_URL"],
        secret_key=SECRET,
        backup={
            "storage_url": f"s3://{bucket}/site-a",
            "copy_url": extra["GARRISON_BACKUP__COPY_URL"],
            "s3_endpoint_url": s3.endpoint,
            "s3_access_key_id": s3.access_key,
            "s3_secret_access_key": s3.secret_key,
            "upload_interval": 0.2,
        },
    )
    store = S3Storage(f"s3://{bucket}/site-a", settings.backup)

    def bucket_ready() -> bool:
        try:
            store.client.create_bucket(Bucket=bucket)
        except Exception:
            return False
        return True

    until(bucket_ready, "SeaweedFS did not create the bucket")
    made = cli_json(env, "backup", "create")
    with Archiving(settings) as archiving:
        until(lambda: archiving.archiver.state is not None, "archiver did not start")
        before = archiving.shipped()
        sql(server, f"INSERT INTO notes (body) VALUES ('{KNOWN_VALUE}-in-the-binlog')", live)
        archiving.wait_for_more(before)

    keys = store.keys("")
    assert any(key.startswith("logs/mariadb/") for key, _ in keys)
    blob = b"".join(store.get_bytes(key) for key, _ in keys)
    assert KNOWN_VALUE.encode() not in blob
    assert b"notes" not in blob.replace(b'"notes"', b"")  # only the manifest names tables
    # The second location holds the same objects, also sealed.
    second = stored_bytes(tmp_path / "second")
    assert second
    assert KNOWN_VALUE.encode() not in second

    target = f"s3_{uuid.uuid4().hex[:6]}"
    done = cli_json(env, "backup", "restore", "--latest", "--target", server.database_url(target))
    assert done["tables"] == {"notes": 101}
    assert cli_json(env, "backup", "verify", made["id"])["ok"] is True


def test_a_physical_backup_restores_to_a_point_in_time(
    server: PrivateMariaDB, tmp_path: Path
) -> None:
    """``GARRISON_BACKUP__METHOD=physical``: mariadb-backup's prepared copy, sealed; restored
    through a scratch server and the archived binary log, and verified like a dump."""
    live = _live(server)
    env = _env(tmp_path, server.database_url(live), GARRISON_BACKUP__METHOD="physical")
    settings = make_settings(
        tmp_path,
        database_url=env["GARRISON_DATABASE_URL"],
        secret_key=SECRET,
        backup={"upload_interval": 0.2, "method": "physical"},
    )
    made = cli_json(env, "backup", "create")
    assert made["method"] == "mariadb-backup"
    assert made["tables"] == {"notes": 100}
    assert made["position"]["binlog_file"].startswith("mysql-bin.")
    assert made["position"]["gtid"]
    # The copy holds InnoDB pages, whose rows are in clear text before sealing.
    assert KNOWN_VALUE.encode() not in stored_bytes(tmp_path / "var" / "backups")

    moment, _ = _changes_then_drop(
        server,
        settings,
        live,
        lambda: sql(server, "INSERT INTO notes (body) VALUES ('after the physical full')", live),
    )
    target = f"physical_{uuid.uuid4().hex[:6]}"
    done = _restore_to(env, moment, server.database_url(target))
    assert done["tables"] == {"notes": 101}
    assert sql(server, "SELECT body FROM notes WHERE id = 101", target) == "after the physical full"
    assert sql(server, "SELECT body FROM notes WHERE id = 1", target) == f"{KNOWN_VALUE}-0"

    verified = cli_json(env, "backup", "verify", made["id"])
    assert verified["ok"] is True, verified
    assert "100 rows match" in verified["detail"]


@pytest.mark.parametrize("method", ["dump", "physical"])
def test_a_server_without_a_binary_log_is_refused(tmp_path: Path, method: str) -> None:
    """The suite's shared server runs without ``log_bin``: one line naming it, exit 1,
    nothing stored (the physical method asks before it copies the data directory)."""
    url = services.create_mysql_database()
    try:
        env = _env(tmp_path, url, GARRISON_BACKUP__METHOD=method)
        code, out, err = cli(env, "backup", "create", "--json")
        assert code == 1
        assert "log_bin" in err.strip().splitlines()[-1]
        assert not out.strip()
        assert not stored_bytes(tmp_path / "var" / "backups")
    finally:
        services.drop_mysql_database(url)
