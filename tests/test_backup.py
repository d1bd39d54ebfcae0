"""Backups on SQLite (the embedded default) and the pieces every engine shares: encrypted
artifacts, manifests, bad input refused before anything is written, retention, the API."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from garrison.crypto import Keyring
from garrison.ops.backup import artifact, logs, manifest, service
from garrison.ops.backup.errors import ArtifactDamaged, LogGap
from garrison.ops.backup.mariadb import DumpScan, complete_events
from garrison.ops.backup.schedule import BackupJobs, due_slot
from garrison.ops.backup.storage import LocalStorage
from garrison.settings import Settings
from tests.authkit import auth_app, bearer
from tests.backupkit import (
    KNOWN_VALUE,
    SECRET,
    backed_up_with_files,
    cli,
    cli_json,
    stored_bytes,
)
from tests.conftest import make_settings


def _sqlite_db(path: Path, rows: int = 50) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany(
        "INSERT INTO notes (body) VALUES (?)", [(f"{KNOWN_VALUE}-{i}",) for i in range(rows)]
    )
    conn.commit()
    conn.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "live.db"
    _sqlite_db(db)
    return {
        "GARRISON_DATA_DIR": str(tmp_path / "var"),
        "GARRISON_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "GARRISON_SECRET_KEY": SECRET,
    }


def _only_artifact(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "var" / "backups" / "full").glob("*/data.zst.enc")
    return found


def test_create_list_show_restore_sqlite(env: dict[str, str], tmp_path: Path) -> None:
    made = cli_json(env, "backup", "create")
    assert made["engine"] == "sqlite"
    assert made["tables"] == {"notes": 50}
    assert cli_json(env, "backup", "list")["items"][0]["id"] == made["id"]
    assert cli_json(env, "backup", "show", made["id"])["rows"] == 50
    # Nothing in the stored artifacts reads as the data.
    assert KNOWN_VALUE.encode() not in stored_bytes(tmp_path / "var" / "backups")

    target = tmp_path / "restored.db"
    done = cli_json(env, "backup", "restore", made["id"], "--target", f"sqlite:///{target}")
    assert done["tables"] == {"notes": 50}
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT body FROM notes WHERE id = 7").fetchone() == (f"{KNOWN_VALUE}-6",)
    conn.close()


def test_uploaded_files_are_backed_up_verified_and_restored(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The local file backend's objects travel in the backup as a sealed archive: counted in
    the manifest, unreadable in the store, checked by verify, written by restore into a new
    directory only (a non-empty one is refused before anything is written)."""
    objects = tmp_path / "var" / "files"
    (objects / "ab" / "cd").mkdir(parents=True)
    (objects / "ab" / "cd" / "one").write_bytes(f"{KNOWN_VALUE} in a file".encode())
    (objects / "two").write_bytes(bytes(range(256)) * 100)
    made = backed_up_with_files(env, tmp_path / "var" / "backups", 2)

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep").write_text("mine")
    target = tmp_path / "restored.db"
    refused = cli(env, "backup", "restore", made["id"], "--target", f"sqlite:///{target}",
                  "--files-to", str(busy))  # fmt: skip
    assert refused[0] == 2  # a refused target, as for the live database
    assert "not an empty directory" in refused[2]
    assert not target.exists()
    assert [p.name for p in busy.iterdir()] == ["keep"]

    restored = tmp_path / "restored-files"
    done = cli_json(env, "backup", "restore", made["id"], "--target", f"sqlite:///{target}",
                    "--files-to", str(restored))  # fmt: skip
    assert done["files"] == 2
    assert (restored / "ab" / "cd" / "one").read_bytes() == f"{KNOWN_VALUE} in a file".encode()
    assert (restored / "two").read_bytes() == bytes(range(256)) * 100

    # A damaged files archive fails verify, and a restore that asks for the files.
    (sealed,) = (tmp_path / "var" / "backups" / "full").glob("*/files.tar.zst.enc")
    raw = bytearray(sealed.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    sealed.write_bytes(bytes(raw))
    code, out, _ = cli(env, "backup", "verify", made["id"], "--json")
    assert code == 1
    assert json.loads(out)["ok"] is False
    again = cli(env, "backup", "restore", made["id"], "--target", f"sqlite:///{tmp_path / 'r2.db'}",
                "--files-to", str(tmp_path / "r2-files"))  # fmt: skip
    assert again[0] == 1
    assert "corrupt" in again[2]
    assert not (tmp_path / "r2.db").exists()


def test_verify_records_the_result(env: dict[str, str]) -> None:
    made = cli_json(env, "backup", "create")
    result = cli_json(env, "backup", "verify", made["id"])
    assert result["ok"] is True
    assert result["tables_checked"] == 1
    assert result["restore_seconds"] >= 0
    assert cli_json(env, "backup", "show", made["id"])["verification"]["ok"] is True


def test_corrupt_artifact_fails_before_writing(env: dict[str, str], tmp_path: Path) -> None:
    made = cli_json(env, "backup", "create")
    path = _only_artifact(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    target = tmp_path / "restored.db"
    code, _out, err = cli(env, "backup", "restore", made["id"], "--target", f"sqlite:///{target}")
    assert code == 1
    assert "corrupt" in err
    assert len(err.strip().splitlines()) == 1
    assert not target.exists()
    code, _out, err = cli(env, "backup", "verify", made["id"])
    assert code == 1
    assert "corrupt" in err


def test_truncated_artifact_fails(env: dict[str, str], tmp_path: Path) -> None:
    made = cli_json(env, "backup", "create")
    path = _only_artifact(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])
    target = tmp_path / "restored.db"
    code, _out, err = cli(env, "backup", "restore", made["id"], "--target", f"sqlite:///{target}")
    assert code == 1
    assert "truncated" in err
    assert not target.exists()


def test_wrong_key_fails(env: dict[str, str], tmp_path: Path) -> None:
    made = cli_json(env, "backup", "create")
    other = {**env, "GARRISON_SECRET_KEY": "another-secret-key-9876543210-zyxwvutsrqpo"}
    target = tmp_path / "restored.db"
    code, _out, err = cli(other, "backup", "restore", made["id"], "--target", f"sqlite:///{target}")
    assert code == 1
    assert "key this installation does not hold" in err
    assert not target.exists()
    # The old key listed as a previous one opens it again.
    rotated = {**other, "GARRISON_PREVIOUS_SECRET_KEYS": f'["{SECRET}"]'}
    code, _out, err = cli(
        rotated, "backup", "restore", made["id"], "--target", f"sqlite:///{target}"
    )
    assert code == 0, err


def test_live_database_is_refused(env: dict[str, str]) -> None:
    made = cli_json(env, "backup", "create")
    live = env["GARRISON_DATABASE_URL"]
    code, _out, err = cli(env, "backup", "restore", made["id"], "--target", live)
    assert code == 2
    assert "live database" in err
    code, _out, err = cli(env, "backup", "restore", made["id"], "--target", live, "--yes")
    assert code == 0, err


def test_time_outside_the_window(env: dict[str, str], tmp_path: Path) -> None:
    cli_json(env, "backup", "create")
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    before = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    code, _out, err = cli(
        env, "backup", "restore", "--latest", "--to-time", before, "--target", target
    )
    assert code == 2
    assert "before the oldest backup" in err
    code, _out, err = cli(
        env,
        "backup",
        "restore",
        "--latest",
        "--to-time",
        datetime.now(UTC).isoformat(),
        "--target",
        target,
    )
    assert code == 2
    assert "no log archive" in err
    code, _out, err = cli(
        env, "backup", "restore", "--latest", "--to-time", "yesterday", "--target", target
    )
    assert code == 2
    assert "ISO 8601" in err
    assert not (tmp_path / "restored.db").exists()


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    code, _out, err = cli(env, "backup", "restore", "--target", "sqlite:///x.db")
    assert code == 2
    assert "ID or --latest" in err
    code, _out, err = cli(env, "backup", "show", "no-such-backup")
    assert code == 1
    assert "no backup" in err


def test_artifact_round_trip_and_damage(tmp_path: Path) -> None:
    ring = Keyring(SECRET)
    out = tmp_path / "a"
    sealed = artifact.seal([b"x" * 300_000, KNOWN_VALUE.encode()], ring, out)
    assert KNOWN_VALUE.encode() not in out.read_bytes()
    artifact.check(out, sha256=sealed.sha256, size=sealed.size, name="a")
    assert artifact.open_to(out, ring, tmp_path / "plain", name="a") == 300_000 + len(KNOWN_VALUE)
    with pytest.raises(ArtifactDamaged, match="does not hold"):
        artifact.open_to(
            out, Keyring("some-other-master-key-000000000000"), tmp_path / "p2", name="a"
        )
    assert not (tmp_path / "p2").exists()


def test_dump_scan_counts_rows_and_reads_the_position() -> None:
    scan = DumpScan()
    dump = (
        b"-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000003', MASTER_LOG_POS=1234;\n"
        b"CREATE TABLE `t` (\n  `id` int\n);\n"
        b"INSERT INTO `t` VALUES\n(1,'a'),\n(2,'b),(c\\'),\n(3,'x;');\n"
        b"INSERT INTO `u` VALUES (1,'a),(b'),(2,'c');\n"
        b"CREATE TABLE `empty` (\n  `id` int\n);\n"
        b"-- SET GLOBAL gtid_slave_pos='0-1-42';\n"
    )
    for start in range(0, len(dump), 7):  # arbitrary chunk boundaries
        scan.feed(dump[start : start + 7])
    scan.close()
    assert scan.tables == {"t": 3, "u": 2, "empty": 0}
    assert scan.position.binlog_file == "mysql-bin.000003"
    assert scan.position.binlog_pos == 1234
    assert scan.position.gtid == "0-1-42"


def test_binlog_gap_is_named() -> None:
    pieces = {
        "mysql-bin.000001": [(0, 100, "a"), (100, 200, "b")],
        "mysql-bin.000002": [(0, 50, "c")],
        "mysql-bin.000004": [(0, 50, "d")],
    }
    with pytest.raises(LogGap, match=r"missing mysql-bin\.000003"):
        logs.plan_binlogs(pieces, "mysql-bin.000001")
    holed = {"mysql-bin.000001": [(0, 100, "a"), (150, 200, "b")]}
    with pytest.raises(LogGap, match=r"missing bytes 100\.\.150"):
        logs.plan_binlogs(holed, "mysql-bin.000001")
    with pytest.raises(LogGap, match=r"no mysql-bin\.000000"):
        logs.plan_binlogs(pieces, "mysql-bin.000000")
    del pieces["mysql-bin.000004"]
    assert logs.plan_binlogs(pieces, "mysql-bin.000001") == [
        ("mysql-bin.000001", ["a", "b"]),
        ("mysql-bin.000002", ["c"]),
    ]


def test_complete_events_stops_at_a_partial_event() -> None:
    import struct

    event = struct.pack("<IBIII", 1_700_000_000, 2, 1, 30, 0) + b"\x00" * 11
    data = b"\xfebin" + event + event[:10]
    assert complete_events(data) == (4 + 30, 1_700_000_000)


def _manifest(day: datetime) -> manifest.Manifest:
    return manifest.Manifest(
        id=manifest.new_id(day),
        engine="sqlite",
        method="t",
        database="d",
        started_at=day,
        finished_at=day,
        key_id="k",
        artifacts=[],
    )


def test_retention_keeps_daily_and_weekly() -> None:
    start = datetime(2026, 10, 1, 3, tzinfo=UTC)
    fulls = [_manifest(start + timedelta(days=i, hours=h)) for i in range(40) for h in (0, 5)]
    keep = service.retained(fulls, daily=7, weekly=4)
    kept = sorted((m for m in fulls if m.id in keep), key=lambda m: m.started_at)
    # The newest of each of the last 7 days, plus the newest of 4 ISO weeks (overlapping).
    assert len({m.started_at.date() for m in kept}) == len(kept)
    assert kept[-1] == fulls[-1]
    assert len(kept) in (9, 10)
    assert all(m.started_at.hour == 8 for m in kept)


def test_due_slot() -> None:
    now = datetime(2026, 12, 1, 2, 59, tzinfo=UTC)
    assert due_slot(now, "03:00") == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert due_slot(now.replace(hour=3), "03:00") == datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


async def test_schedule_takes_the_daily_full(env: dict[str, str], tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        database_url=env["GARRISON_DATABASE_URL"],
        secret_key=SECRET,
        backup={"full_at": "03:00"},
    )
    jobs = BackupJobs(settings)
    jobs._started = datetime(2026, 1, 1, tzinfo=UTC)  # the process has run past a slot
    assert await jobs.tick() == "create"
    assert await jobs.tick() == "verify"  # the latest full is verified once
    assert await jobs.tick() is None
    fulls = manifest.list_all(LocalStorage(tmp_path / "var" / "backups"))
    assert len(fulls) == 1


async def test_failed_backup_is_audited(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, secret_key=SECRET)
    from tests.conftest import migrated

    await migrated(settings)
    settings.backup.storage_url = "s3://"  # no bucket: every create fails
    jobs = BackupJobs(settings)
    jobs._started = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(Exception, match="names no bucket"):
        await jobs.tick()
    # Storage that cannot be written: the failure is audited in the live database.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.backup.storage_url = blocker.as_uri()
    jobs = BackupJobs(settings)
    jobs._started = datetime(2026, 1, 1, tzinfo=UTC)
    assert await jobs.tick() == "create-failed"
    assert await jobs.tick() is None  # retried after a pause, not every tick
    conn = sqlite3.connect(settings.db_url.split("///", 1)[1])
    actions = [row[0] for row in conn.execute("SELECT action FROM audit_entries")]
    conn.close()
    assert "backup.create.failed" in actions


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_admin_api(settings: Settings) -> None:
    async with auth_app(settings) as running:
        admin = await running.token(role="admin")
        user = await running.token(role="user")
        assert (
            await running.client.get("/api/v1/backups", headers=bearer(user))
        ).status_code == 403
        made = await running.client.post("/api/v1/backups", headers=bearer(admin))
        assert made.status_code == 201, made.text
        backup_id = made.json()["id"]
        assert made.json()["tables"]["auth_users"] == 2
        listed = await running.client.get("/api/v1/backups", headers=bearer(admin))
        assert [item["id"] for item in listed.json()["items"]] == [backup_id]
        verified = await running.client.post(
            f"/api/v1/backups/{backup_id}/verify", headers=bearer(admin)
        )
        assert verified.status_code == 200, verified.text
        assert verified.json()["ok"] is True
        assert verified.json()["audit_entries_checked"] >= 0
        shown = await running.client.get(f"/api/v1/backups/{backup_id}", headers=bearer(admin))
        assert shown.json()["verification"]["ok"] is True
        missing = await running.client.get("/api/v1/backups/nope", headers=bearer(admin))
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.slow
async def test_sqlite_point_in_time_with_litestream(env: dict[str, str], tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        database_url=env["GARRISON_DATABASE_URL"],
        secret_key=SECRET,
        backup={"upload_interval": 0.2},
    )
    cli_json(env, "backup", "create")
    archiver = service.archiver(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(archiver.run(stop))
    storage = LocalStorage(tmp_path / "var" / "backups")
    db = Path(env["GARRISON_DATABASE_URL"].split("///", 1)[1])

    async def until(check: object, what: str) -> None:
        assert callable(check)
        deadline = asyncio.get_running_loop().time() + 60
        while not check():
            assert asyncio.get_running_loop().time() < deadline, what
            await asyncio.sleep(0.05)

    def shipped() -> int:
        state = logs.load_state(storage, "sqlite")
        return len(state.files) if state else 0

    try:
        await until(lambda: shipped() > 0, "litestream never synced")
        conn = sqlite3.connect(db)
        before = shipped()
        conn.execute("INSERT INTO notes (body) VALUES ('written after the full')")
        conn.commit()
        await until(lambda: shipped() > before, "the insert was never archived")
        # Litestream's point in time is when a change was synced (about a second after the
        # commit at most), so T is taken once the insert is in the archive.
        moment = datetime.now(UTC)
        await until(lambda: datetime.now(UTC) > moment + timedelta(seconds=0.05), "clock")
        before = shipped()
        conn.execute("DROP TABLE notes")
        conn.commit()
        conn.close()
        await until(lambda: shipped() > before, "the drop was never archived")
    finally:
        stop.set()
        await task
    target = tmp_path / "restored.db"
    done = cli_json(
        env,
        "backup",
        "restore",
        "--latest",
        "--to-time",
        moment.isoformat(),
        "--target",
        f"sqlite:///{target}",
    )
    assert done["tables"]["notes"] == 51
    assert KNOWN_VALUE.encode() not in stored_bytes(tmp_path / "var" / "backups")


async def test_worker_supervises_the_backup_schedule(tmp_path: Path) -> None:
    from garrison.db.engine import Database
    from garrison.ops import leases
    from garrison.ops.backup.schedule import LEASE
    from garrison.worker import Task, Worker, standard_tasks
    from tests.conftest import migrated

    settings = make_settings(tmp_path, secret_key=SECRET)
    await migrated(settings)
    seen: list[str] = []

    async def supervised(stop: asyncio.Event) -> None:
        seen.append("started")
        await stop.wait()
        seen.append("stopped")

    db = Database(settings.db_url, settings.db)
    try:
        assert [task.name for task in standard_tasks(db, settings)] == ["backup.schedule"]
        worker = Worker(db, settings, jobs=[], tasks=[Task("probe", supervised)])
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        async with asyncio.timeout(60):
            while not seen:
                await asyncio.sleep(0.01)
        await worker.shutdown(stop, task)
        assert seen == ["started", "stopped"]  # the worker waited for the task to finish
        # The standard schedule starts with the worker (it takes the installation's lease).
        worker = Worker(db, settings, jobs=[])
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        async with asyncio.timeout(60):
            while await leases.holder_of(db, LEASE) is None:
                await asyncio.sleep(0.01)
        await worker.shutdown(stop, task)
        assert task.done()
        assert task.exception() is None  # the schedule stopped with the worker
        assert await leases.holder_of(db, LEASE) is None  # and gave the lease up
    finally:
        await db.dispose()
