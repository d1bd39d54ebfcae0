"""A private ``redis-server`` process for tests that stop Redis (never the shared one)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helpers import free_port


class RedisProcess:
    def __init__(self, port: int, proc: subprocess.Popen[str]) -> None:
        self.port = port
        self.proc = proc

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def throwaway_redis() -> Iterator[RedisProcess]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ready = threading.Event()

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Ready to accept connections" in line:
                ready.set()  # keep draining, so the server never blocks on a full pipe

    threading.Thread(target=watch, daemon=True).start()
    server = RedisProcess(port, proc)
    try:
        if not ready.wait(20):
            raise AssertionError("the throwaway redis-server did not start")
        yield server
    finally:
        server.kill()
