"""A private MariaDB server for a test that needs its own options (TLS, encryption): its
own data directory, socket and loopback port; administered over its socket."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from garrison.ops.cluster.local import ClusterError, wait_for
from garrison.ops.cluster.recipes import free_ports
from tests.services import unavailable


@dataclass
class PrivateServer:
    base: Path
    port: int
    socket: Path
    admin: str

    def sql(self, statement: str) -> list[list[str]]:
        done = subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={self.socket}",
                f"--user={self.admin}",
                "-N",
                "-B",
                "-e",
                statement,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise ClusterError(done.stderr.strip())
        return [line.split("\t") for line in done.stdout.splitlines() if line]


def server_user() -> str:
    return "mysql" if os.geteuid() == 0 else getpass.getuser()


def own(path: Path) -> None:
    """Give ``path`` (recursively) to the server's OS user when the tests run as root."""
    if os.geteuid() != 0:
        return
    for item in [path, *path.rglob("*")]:
        shutil.chown(item, server_user(), server_user())


@contextmanager
def private_mariadb(options: list[str], *, prepare: Path | None = None) -> Iterator[PrivateServer]:
    if shutil.which("mariadbd") is None or shutil.which("mariadb-install-db") is None:
        unavailable("mariadbd", "mariadb-server is not installed")
    base = Path(tempfile.mkdtemp(prefix="garrison-mariadb-"))
    base.chmod(0o755)
    user = server_user()
    admin = "root" if os.geteuid() == 0 else user
    data = base / "data"
    (port,) = free_ports(1)
    common = [f"--datadir={data}", f"--user={user}"]
    server = None
    try:
        data.mkdir()
        if prepare is not None:
            own(prepare)
        own(base)
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                *common,
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ],
            capture_output=True,
            timeout=300,
            check=True,
        )
        socket = base / "mariadbd.sock"
        server = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                *common,
                f"--socket={socket}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--log-error={base / 'error.log'}",
                f"--pid-file={base / 'mariadbd.pid'}",
                "--innodb-buffer-pool-size=32M",
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        instance = PrivateServer(base, port, socket, admin)

        def ready() -> bool:
            if server is not None and server.poll() is not None:
                log = (base / "error.log").read_text(errors="replace").splitlines()
                raise RuntimeError(f"mariadbd exited: {log[-3:]}")
            return bool(instance.sql("SELECT 1"))

        wait_for("the private MariaDB", ready, 120, 0.2)
        yield instance
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(base, ignore_errors=True)
