"""A private ``mariadbd`` on a free loopback port, for tests that stop the database (never
the shared one). It starts on an empty data directory with the grant tables skipped, so it
is up in well under a second; ``kill`` and ``start`` again keep the data directory."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import services
from tests.helpers import free_port

DATABASE = "garrison"


class MariaDbProcess:
    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "data").mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout: float = 30) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--no-defaults",
                f"--datadir={self.root / 'data'}",
                f"--socket={self.root / 'mariadb.sock'}",
                f"--pid-file={self.root / 'mariadb.pid'}",
                f"--log-error={self.root / 'error.log'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--user=root",
                "--innodb-buffer-pool-size=32M",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not asyncio.run(self._answers()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "error.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"the private mariadbd did not start:\n{log}")
            time.sleep(0.05)  # a bounded pause between probes of a starting server

    async def _answers(self) -> bool:
        import asyncmy

        try:
            conn = await asyncmy.connect(
                host="127.0.0.1", port=self.port, user="root", connect_timeout=2
            )
        except Exception:
            return False
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")
        finally:
            conn.close()
        return True

    def kill(self) -> None:
        """SIGKILL: the database is gone at once, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.proc = None


@contextmanager
def throwaway_mariadb(root: Path) -> Iterator[MariaDbProcess]:
    binary = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    if binary is None:
        services.unavailable("mariadbd", "not installed (Debian mariadb-server)")
        raise AssertionError("unreachable")  # unavailable() skips or fails
    server = MariaDbProcess(binary, root)
    try:
        # A new data directory's first files are durable only after a clean shutdown: one
        # round trip makes the later crash (kill) a crash of a well-formed database.
        server.start()
        server.stop()
        server.start()
        yield server
    finally:
        server.kill()
