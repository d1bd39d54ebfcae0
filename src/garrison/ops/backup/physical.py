"""MariaDB physical full backups with ``mariadb-backup``, for a backup agent on the database
host (``GARRISON_BACKUP__METHOD=physical``).

``mariadb-backup --backup`` copies the database's InnoDB and Aria files while the server
runs; commits wait only for the moment of ``BACKUP STAGE BLOCK_COMMIT``, where it records the
binary log position and GTID. The copy is prepared at once (the redo log applied: a
consistent data directory, and a backup that cannot be prepared fails now, not at restore
time), its tables are counted on a scratch server, and it is archived as one tar stream,
sealed like every artifact.

A restore starts a scratch ``mariadbd`` on the prepared copy and dumps the database from it;
that dump is loaded into the target and the archived binary logs are replayed from the
recorded position, as after a logical backup. The scratch server listens on a socket in a
private directory only (no TCP port), has no binary log, and skips grant checks: it holds a
copy, and only this process's user can reach it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import URL

from garrison.ops.backup import mariadb
from garrison.ops.backup.errors import ArtifactDamaged, BackupError, ToolMissing
from garrison.ops.backup.manifest import Position
from garrison.ops.backup.servers import terminate
from garrison.ops.backup.tools import Conn, last_line, run_sql, tool

METHOD = "mariadb-backup"
_CHUNK = 1024 * 1024


def _run(argv: list[str], conn: Conn | None, what: str) -> None:
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        argv,
        env=conn.env() if conn else None,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"{what}: {last_line(done.stderr)}")


def _nice() -> list[str]:
    """Run a tool at a lower CPU priority: on the database host, its writers come first."""
    nice = shutil.which("nice")
    return [nice, "-n", "10"] if nice else []


def _datadir(conn: Conn, tools_dir: str | None) -> Path:
    found = run_sql(conn, "SELECT @@datadir", tools_dir=tools_dir, database=False).strip()
    datadir = Path(found)
    if not datadir.is_dir():
        raise BackupError(
            f"GARRISON_BACKUP__METHOD=physical runs on the database host, and the server's "
            f"data directory ({found}) is not on this machine; use the default method, dump"
        )
    return datadir


def backup(conn: Conn, target: Path, *, tools_dir: str | None) -> tuple[Position, dict[str, int]]:
    """Copy and prepare ``conn``'s database (and the ``mysql`` schema a server needs to
    start) into ``target``; the binary log position of the copy and its tables' row counts."""
    binary = tool("mariadb-backup", tools_dir)
    datadir = _datadir(conn, tools_dir)
    mariadb.require_binlog(conn, tools_dir=tools_dir)  # before copying the data directory
    # --no-defaults: the host's my.cnf may describe another server; mariadb-backup reads the
    # InnoDB layout from the running server it is connected to.
    _run(
        [
            *_nice(),
            binary,
            "--no-defaults",
            "--backup",
            *conn.args(),
            f"--datadir={datadir}",
            f"--target-dir={target}",
            f"--databases={conn.database} mysql",
            # Commits wait during BACKUP STAGE BLOCK_COMMIT until the redo-log copier has
            # read up to the LSN of that moment; it polls every second by default, which
            # blocked writes for up to 1 s (the drill saw 1,000 ms). 20 ms polls bound that.
            "--log-copy-interval=20",
        ],
        conn,
        "mariadb-backup --backup",
    )
    _run(
        [*_nice(), binary, "--no-defaults", "--prepare", f"--target-dir={target}"], None, "prepare"
    )
    position = _position(target)
    with ScratchServer(target) as scratch:
        tables = mariadb.table_counts(scratch.with_database(conn.database), tools_dir=tools_dir)
    return position, tables


def _position(prepared: Path) -> Position:
    info = prepared / "xtrabackup_binlog_info"
    fields = info.read_text().split() if info.exists() else []
    if len(fields) < 2:
        raise BackupError(mariadb.NO_BINLOG)
    return Position(
        binlog_file=fields[0], binlog_pos=int(fields[1]), gtid=fields[2] if len(fields) > 2 else ""
    )


def tar_chunks(root: Path) -> Iterator[bytes]:
    """The files under ``root`` as a tar stream, written by a thread into a pipe (so the copy
    is sealed as it is read, not archived on disk first)."""
    read_fd, write_fd = os.pipe()
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb") as sink,
                tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as archive,
            ):
                for path in sorted(root.rglob("*")):
                    if path.is_file() and not path.is_symlink():
                        archive.add(path, arcname=str(path.relative_to(root)), recursive=False)
        except BrokenPipeError:
            pass  # the reader stopped (it failed, and says why)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=produce, name="garrison-backup-tar", daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk
    thread.join()
    if failed:
        raise BackupError(f"archiving the prepared copy failed: {failed[0]}")


def dump_from_archive(archive: Path, out: Path, *, database: str, tools_dir: str | None) -> None:
    """Extract the prepared copy next to ``archive``, start a scratch server on it and write
    a logical dump of ``database`` into ``out``; the copy is removed afterwards."""
    datadir = archive.parent / "prepared"
    datadir.mkdir()
    try:
        try:
            with tarfile.open(archive, "r") as opened:
                opened.extractall(datadir, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ArtifactDamaged(f"the physical backup could not be extracted: {exc}") from None
        archive.unlink()
        with ScratchServer(datadir) as scratch, out.open("wb") as handle:
            source = scratch.with_database(database)
            for chunk in mariadb.dump(source, tools_dir=tools_dir, scan=None):
                handle.write(chunk)
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


class ScratchServer:
    """``mariadbd`` on a prepared copy, reachable only through a socket in a 0700 directory
    of its own; ``with`` yields a connection to it (root, no password)."""

    def __init__(self, datadir: Path, *, buffer_pool: str = "256M", timeout: float = 120.0):
        self.datadir = datadir
        self.buffer_pool = buffer_pool
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        # A short path: a Unix socket's name is limited to about 100 bytes.
        self.home = Path(tempfile.mkdtemp(prefix="garrison-scratch-"))

    @property
    def socket(self) -> Path:
        return self.home / "mysqld.sock"

    def __enter__(self) -> Conn:
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not Path(mariadbd).exists():
            raise ToolMissing("mariadbd is not installed (Debian package mariadb-server)")
        layout = self.datadir / "backup-my.cnf"  # the source's InnoDB page and log settings
        argv = [
            *_nice(),
            mariadbd,
            f"--defaults-file={layout}" if layout.exists() else "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            "--skip-networking",
            "--skip-grant-tables",
            "--skip-log-bin",
            "--skip-slave-start",
            f"--innodb-buffer-pool-size={self.buffer_pool}",
            f"--pid-file={self.home}/mysqld.pid",
            f"--log-error={self.home}/error.log",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.timeout
        while not self._accepting():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                reason = self._error_log()
                self.__exit__(None, None, None)
                raise BackupError(f"the scratch server on the backup did not start: {reason}")
            time.sleep(0.05)
        return Conn(URL.create("mysql", username="root", query={"unix_socket": str(self.socket)}))

    def _accepting(self) -> bool:
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
            return True

    def _error_log(self) -> str:
        path = self.home / "error.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        lines = [ln for ln in text.splitlines() if "ERROR" in ln]
        return lines[-1].strip() if lines else "no error logged"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        terminate(self.proc, grace=60)
        self.proc = None
        shutil.rmtree(self.home, ignore_errors=True)
