"""MariaDB/MySQL: logical full backups with ``mariadb-dump --single-transaction`` (the GTID
and binlog position recorded from the same snapshot, no global read lock), their restore,
and replay of archived binary logs up to a time or a GTID with ``mariadb-binlog``."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from garrison.ops.backup.errors import BackupError, TargetRefused
from garrison.ops.backup.manifest import Position
from garrison.ops.backup.tools import Conn, last_line, run_sql, tool

_POSITION = re.compile(rb"MASTER_LOG_FILE='([^']+)',\s*MASTER_LOG_POS=(\d+)")
_GTID = re.compile(rb"gtid_slave_pos='([^']*)'")
_STRING = re.compile(rb"'(?:[^'\\]|\\.)*'", re.DOTALL)
_INSERT = b"INSERT INTO `"
_BINLOG_MAGIC = b"\xfebin"
_GTID_SEQ = b"/*M!100001 SET @@session.gtid_seq_no="


@dataclass
class DumpScan:
    """Reads the dump as it streams by: the log position and the rows of each table."""

    tables: dict[str, int] = field(default_factory=dict)
    position: Position = field(default_factory=Position)
    _tail: bytes = b""
    _table: str | None = None

    def feed(self, chunk: bytes) -> None:
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._tail:
            self._line(self._tail)
            self._tail = b""

    def _line(self, line: bytes) -> None:
        if self._table is not None:
            # mariadb-dump writes one row a line after "INSERT INTO `t` VALUES"; strings
            # escape their newlines, so a row never spans lines.
            if line.startswith(b"("):
                self.tables[self._table] += 1
            if line.endswith(b";"):
                self._table = None
        elif line.startswith(_INSERT):
            end = line.index(b"`", len(_INSERT))
            name = line[len(_INSERT) : end].decode()
            self.tables.setdefault(name, 0)
            rest = line[line.index(b"VALUES", end) + 6 :].strip()
            if rest:  # older clients: every row on the statement's line
                self.tables[name] += _STRING.sub(b"''", rest).count(b"),(") + 1
            else:
                self._table = name
        elif line.startswith(b"CREATE TABLE `"):
            name = line[len(b"CREATE TABLE `") : line.index(b"`", 14)].decode()
            self.tables.setdefault(name, 0)
        elif line.startswith(b"-- "):
            if match := _POSITION.search(line):
                self.position.binlog_file = match.group(1).decode()
                self.position.binlog_pos = int(match.group(2))
            elif match := _GTID.search(line):
                self.position.gtid = match.group(1).decode()


NO_BINLOG = (
    "the server has no binary log to record the backup's position in: point-in-time restore "
    "needs log_bin (and binlog_format=ROW)"
)


def require_binlog(conn: Conn, *, tools_dir: str | None) -> None:
    """Refuse a full backup of a server without a binary log before any work is done."""
    if run_sql(conn, "SELECT @@log_bin", tools_dir=tools_dir, database=False).strip() != "1":
        raise BackupError(NO_BINLOG)


def dump(conn: Conn, *, tools_dir: str | None, scan: DumpScan | None) -> Iterator[bytes]:
    """Stream a consistent logical dump of the database, feeding ``scan``, which also asks
    for the binary log position (a server without a binary log is dumped with ``None``)."""
    # At a lower CPU priority: formatting rows is the dump's cost, and writers come first.
    nice = shutil.which("nice")
    argv = [
        *([nice, "-n", "10"] if nice else []),
        tool("mariadb-dump", tools_dir),
        *conn.args(),
        "--single-transaction",
        *(["--master-data=2", "--gtid"] if scan is not None else []),
        "--quick",
        "--hex-blob",
        "--routines",
        "--triggers",
        "--skip-lock-tables",
        "--default-character-set=utf8mb4",
        conn.database,
    ]
    with subprocess.Popen(  # noqa: S603 - fixed argv
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=conn.env()
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        while chunk := proc.stdout.read(1024 * 1024):
            if scan is not None:
                scan.feed(chunk)
            yield chunk
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise BackupError(f"mariadb-dump: {last_line(err)}")
    if scan is None:
        return
    scan.close()
    if scan.position.binlog_file is None:
        raise BackupError(NO_BINLOG)


def server_identity(conn: Conn, *, tools_dir: str | None) -> str:
    return run_sql(
        conn, "SELECT @@hostname, @@port, @@datadir, @@server_id", tools_dir=tools_dir
    ).strip()


def table_counts(conn: Conn, *, tools_dir: str | None) -> dict[str, int]:
    names = run_sql(conn, "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'", tools_dir=tools_dir)
    tables = [line.split("\t")[0] for line in names.splitlines() if line]
    if not tables:
        return {}
    query = " UNION ALL ".join(
        f"SELECT '{name}', COUNT(*) FROM `{name}`"  # noqa: S608 - names from the server
        for name in tables
        if "`" not in name
    )
    out = run_sql(conn, query, tools_dir=tools_dir)
    return {row.split("\t")[0]: int(row.split("\t")[1]) for row in out.splitlines() if row}


def check_target(
    target: Conn, live: Conn | None, *, allow_live: bool, tools_dir: str | None
) -> None:
    """Refuse the live database (unless ``allow_live``) and a target that has tables."""
    if live is not None and not allow_live:
        if target.same_place(live):
            raise TargetRefused(
                f"the target {target.redacted()} is the live database; pass --yes to overwrite it"
            )
        try:
            same_server = _same_server(target, live, tools_dir)
        except BackupError:  # the live server is down (a disaster): the URLs decided
            same_server = False
        if same_server and target.database == live.database:
            raise TargetRefused(
                f"the target {target.redacted()} is the live database; pass --yes to overwrite it"
            )
    run_sql(
        target,
        f"CREATE DATABASE IF NOT EXISTS `{target.database}` CHARACTER SET utf8mb4",
        tools_dir=tools_dir,
        database=False,
    )
    if not allow_live and table_counts(target, tools_dir=tools_dir):
        raise TargetRefused(
            f"the target database {target.database!r} is not empty; restore into a new "
            "database or pass --yes to overwrite it"
        )


def _same_server(a: Conn, b: Conn, tools_dir: str | None) -> bool:
    return server_identity(a.with_database("mysql"), tools_dir=tools_dir) == server_identity(
        b.with_database("mysql"), tools_dir=tools_dir
    )


def load_dump(target: Conn, sql_file: Path, *, tools_dir: str | None) -> None:
    argv = [
        tool("mariadb", tools_dir),
        *target.args(),
        "--init-command=SET SESSION sql_log_bin=0",
        "--default-character-set=utf8mb4",
        target.database,
    ]
    with sql_file.open("rb") as handle:
        done = subprocess.run(  # noqa: S603 - fixed argv
            argv, stdin=handle, capture_output=True, env=target.env(), check=False
        )
    if done.returncode != 0:
        raise BackupError(f"loading the dump failed: {last_line(done.stderr)}")


# -- binary logs --------------------------------------------------------------------------


def binlog_index(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition(".")
    if not stem or not number.isdigit():
        raise BackupError(f"{name!r} is not a binary log file name")
    return stem, int(number)


def complete_events(data: bytes) -> tuple[int, int | None]:
    """(bytes of whole events at the start of a binlog file, timestamp of the last one)."""
    if not data.startswith(_BINLOG_MAGIC):
        return 0, None
    offset, last_time = 4, None
    while offset + 19 <= len(data):
        timestamp, _kind, _server, size = struct.unpack_from("<IBII", data, offset)
        if size < 19 or offset + size > len(data):
            break
        offset += size
        if timestamp:
            last_time = timestamp
    return offset, last_time


def replay(
    target: Conn,
    files: list[Path],
    *,
    live_database: str,
    start_pos: int,
    stop_datetime: datetime | None,
    stop_gtid: str | None,
    tools_dir: str | None,
    on_progress: Callable[[str], None] | None = None,
) -> None:
    """Apply ``files`` (in order) from ``start_pos`` in the first, into ``target``."""
    if not files:
        return
    argv = [
        tool("mariadb-binlog", tools_dir),
        f"--start-position={start_pos}",
        f"--database={live_database}",
    ]
    if live_database != target.database:
        argv.append(f"--rewrite-db={live_database}->{target.database}")
    if stop_datetime is not None:
        argv.append(f"--stop-datetime={stop_datetime:%Y-%m-%d %H:%M:%S}")
    if stop_gtid is not None:
        argv.append(f"--stop-position={stop_gtid}")
    argv += [str(path) for path in files]
    client = [
        tool("mariadb", tools_dir),
        *target.args(),
        "--init-command=SET SESSION sql_log_bin=0",
        "--binary-mode",
        target.database,
    ]
    if on_progress:
        on_progress(f"replaying {len(files)} binary log file(s)")
    with (
        subprocess.Popen(  # noqa: S603 - fixed argv
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=target.env()
        ) as reader,
        subprocess.Popen(  # noqa: S603 - fixed argv
            client,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=target.env(),
        ) as writer,
    ):
        assert reader.stdout is not None
        assert reader.stderr is not None
        assert writer.stdin is not None
        assert writer.stderr is not None
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(reader.stderr.read()))  # type: ignore[union-attr]
        drain.start()
        try:
            # The replayed events are not binlogged again (sql_log_bin=0), so their GTIDs
            # are dropped: strict GTID mode would refuse sequence numbers the target's
            # server has already passed (a restore beside the live database).
            for line in reader.stdout:
                if not line.startswith(_GTID_SEQ):
                    writer.stdin.write(line)
            writer.stdin.close()
        except BrokenPipeError:
            pass
        writer_err = writer.stderr.read()
        writer_rc = writer.wait()
        reader_rc = reader.wait()
        drain.join()
        reader_err = errors[0] if errors else b""
    if reader_rc != 0:
        raise BackupError(f"mariadb-binlog: {last_line(reader_err)}")
    if writer_rc != 0:
        raise BackupError(f"replaying the binary log failed: {last_line(writer_err)}")
