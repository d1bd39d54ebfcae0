"""Running the engines' own tools: finding them, connection arguments without the password
on the command line (``MYSQL_PWD``), and one-line errors when they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from garrison.ops.backup.errors import BackupError, ToolMissing

_DEBIAN = {
    "mariadb-dump": "mariadb-client",
    "mariadb": "mariadb-client",
    "mariadb-binlog": "mariadb-client",
    "mariadb-backup": "mariadb-backup",
    "mbstream": "mariadb-backup",
}


def tool(name: str, tools_dir: str | None = None) -> str:
    candidates = [str(Path(tools_dir) / name)] if tools_dir else []
    for candidate in [*candidates, name]:
        found = shutil.which(candidate)
        if found:
            return found
    package = _DEBIAN.get(name)
    hint = f" (Debian package {package})" if package else ""
    raise ToolMissing(f"{name} is not installed{hint}")


@dataclass(frozen=True)
class Conn:
    """A MariaDB connection as the client tools take it."""

    url: URL

    @classmethod
    def parse(cls, value: str) -> Conn:
        try:
            url = make_url(value)
        except Exception:
            raise BackupError("the database URL is not a valid URL") from None
        if url.get_backend_name() not in ("mysql", "mariadb"):
            raise BackupError("the database URL is not a MariaDB/MySQL URL")
        if not url.database:
            raise BackupError("the database URL names no database")
        return cls(url)

    @property
    def database(self) -> str:
        assert self.url.database
        return self.url.database

    def args(self) -> list[str]:
        out = [f"--user={self.url.username or 'root'}"]
        socket = self.url.query.get("unix_socket")
        if socket:
            out.append(f"--socket={socket}")
        else:
            out += [f"--host={self.url.host or '127.0.0.1'}", f"--port={self.url.port or 3306}"]
            out.append("--protocol=TCP")
        return out

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TZ"] = "UTC"
        env.pop("MYSQL_PWD", None)
        if self.url.password:
            env["MYSQL_PWD"] = str(self.url.password)
        return env

    def with_database(self, name: str) -> Conn:
        return Conn(self.url.set(database=name))

    def same_place(self, other: Conn) -> bool:
        a, b = self.url, other.url
        local = {"localhost", "127.0.0.1", "::1", None}
        same_host = a.host == b.host or (a.host in local and b.host in local)
        return (
            same_host
            and (a.port or 3306) == (b.port or 3306)
            and a.query.get("unix_socket") == b.query.get("unix_socket")
            and a.database == b.database
        )

    def redacted(self) -> str:
        return self.url.render_as_string(hide_password=True)


def run_sql(conn: Conn, sql: str, *, tools_dir: str | None, database: bool = True) -> str:
    """Run statements with the ``mariadb`` client; tab-separated output, no headers."""
    argv = [tool("mariadb", tools_dir), *conn.args(), "--batch", "--skip-column-names"]
    if database:
        argv.append(conn.database)
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [*argv, "-e", sql], env=conn.env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"mariadb: {last_line(done.stderr)}")
    return done.stdout


def last_line(stderr: str | bytes) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "failed with no message"
