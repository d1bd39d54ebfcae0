"""Garrison under its real HTTP server (granian) in its own process, over loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import services

pytestmark = pytest.mark.slow
GOOD_SECRET = "Zq8mW3nR6tY1uI4oP7aS0dF2gH5jK9lX"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_accepting(port: int, timeout: float = 30) -> None:
    """Block until the port accepts connections. granian logs its worker as started before
    the worker's socket listens, so no log line marks this moment: the only signal is a
    connection that succeeds. Bounded by ``timeout``; raises when it never comes."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)  # a bounded back-off between probes, not a guess at timing
            pause = min(pause * 2, 0.2)


class Server:
    """A server process; ``wait_for_log`` blocks on its output (no polling, no sleeps)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
        base.update(env)
        self.proc = subprocess.Popen(
            args, env=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []

    def wait_for_log(self, needle: str, timeout: float = 60) -> str:
        assert self.proc.stdout is not None
        found: list[str] = []

        def reader() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if needle in line:
                    found.append(line)
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(timeout)
        if not found:
            raise AssertionError(f"{needle!r} not logged; output so far:\n{''.join(self.lines)}")
        return found[0]

    def keep_draining(self) -> None:
        """Read the rest of the output in the background: once the pipe is full the
        server's logging, and so the server, would block."""

        def drain() -> None:
            assert self.proc.stdout is not None
            try:
                for line in self.proc.stdout:
                    self.lines.append(line)
            except ValueError:  # closed by stop()
                return

        threading.Thread(target=drain, daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    port = free_port()
    server = Server(
        [sys.executable, "-m", "garrison", "serve", "--port", str(port)],
        {"GARRISON_DATA_DIR": str(tmp_path / "var"), "GARRISON_LOG__FORMAT": "json"},
    )
    try:
        server.wait_for_log("garrison.ready")
        wait_until_accepting(port)
        yield server, port
    finally:
        server.stop()


def test_fresh_start_serves_health(dev_server: tuple[Server, int], tmp_path: Path) -> None:
    _server, port = dev_server
    response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    assert response.json()["status"] == "pass"
    assert (tmp_path / "var" / "garrison.db").exists()
    assert (tmp_path / "var" / "secret_key").exists()
    missing = httpx.get(f"http://127.0.0.1:{port}/nope", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["x-frame-options"] == "DENY"


def test_sigterm_drains_in_flight_requests(dev_server: tuple[Server, int]) -> None:
    """A request still uploading its body when SIGTERM arrives is answered; afterwards new
    connections are refused and the process exits 0."""
    server, port = dev_server
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = b'{"k": "' + b"x" * 1000 + b'"}'
    head = (
        f"POST /api/v1/_drain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:100])
    # Prove the request is in flight at the server: a second connection's request completes
    # first, so the worker has accepted and dispatched work on this socket's sibling.
    assert httpx.get(f"http://127.0.0.1:{port}/api/health/live", timeout=10).status_code == 200
    server.proc.send_signal(signal.SIGTERM)
    server.wait_for_log("Shutting down")
    sock.sendall(body[100:])
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 404"), response[:200]  # answered, not dropped
    assert server.proc.wait(30) == 0
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_production_with_mariadb_and_redis(tmp_path: Path) -> None:
    """The README's production walk-through: PROD_DB_* + Redis + a real secret, migrate up,
    then serve reports ready."""
    url = services.create_mysql_database()
    redis_url = services.check_redis()
    env = services.production_env(url, redis_url, str(tmp_path), GOOD_SECRET)
    server: Server | None = None
    try:
        from tests.test_cli import garrison

        up = garrison("migrate", "up", env=env)
        assert up.returncode == 0, up.stderr
        port = free_port()
        server = Server(
            [sys.executable, "-m", "garrison", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env,
        )
        server.wait_for_log("garrison.ready")
        wait_until_accepting(port)
        response = httpx.get(f"http://127.0.0.1:{port}/api/health/ready", timeout=10)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "pass"
        assert body["checks"]["cache:responseTime"][0]["status"] == "pass"
        assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    finally:
        if server:
            server.stop()
        services.drop_mysql_database(url)


def test_one_worker_holds_more_than_a_thousand_keep_alive_clients(
    dev_server: tuple[Server, int],
) -> None:
    """All 1,500 clients connect and stay connected before any of them is answered. With
    granian's defaults (backpressure = backlog / workers = 1,024) the last ones would wait
    in the accept queue for a connection to close, which none does: the test would hang."""
    server, port = dev_server
    server.keep_draining()  # 1,500 access-log lines
    clients = 1_500

    async def scenario() -> list[bytes]:
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
        request = b"GET /api/health/live HTTP/1.1\r\nHost: garrison\r\n\r\n"
        for _reader, writer in streams:
            writer.write(request)
        try:
            async with asyncio.timeout(60):
                return await asyncio.gather(*(reader.readline() for reader, _ in streams))
        finally:
            for _reader, writer in streams:
                writer.close()
                await writer.wait_closed()

    status_lines = asyncio.run(scenario())
    assert len(status_lines) == clients
    assert all(line.startswith(b"HTTP/1.1 200") for line in status_lines)


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(tmp_path: Path) -> None:
    port = free_port()
    server = Server(
        [sys.executable, "-m", "garrison", "serve", "--port", str(port)],
        {
            "GARRISON_DATA_DIR": str(tmp_path / "var"),
            "GARRISON_LOG__FORMAT": "json",
            "GARRISON_HTTP__KEEP_ALIVE_TIMEOUT": "1",
        },
    )
    try:
        server.wait_for_log("garrison.ready")
        wait_until_accepting(port)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"GET /api/health/live HTTP/1.1\r\nHost: garrison\r\n\r\n")
            stream = conn.makefile("rb")
            assert stream.readline().startswith(b"HTTP/1.1 200")
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert len(stream.read(length)) == length
            # Now idle: the server hangs up after about a second (the read returns b"").
            assert stream.read(1) == b""
    finally:
        server.stop()
