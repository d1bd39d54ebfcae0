"""Garrison under its real HTTP server (granian) in its own process, over loopback."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests import services
from tests.helpers import GOOD_SECRET, LoggedProcess, free_port, garrison, wait_until_accepting

pytestmark = pytest.mark.slow


def test_fresh_start_serves_health(dev_server: tuple[LoggedProcess, int], tmp_path: Path) -> None:
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


def test_sigterm_drains_in_flight_requests(dev_server: tuple[LoggedProcess, int]) -> None:
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
    server.wait_for("Shutting down")
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
    server: LoggedProcess | None = None
    try:
        up = garrison("migrate", "up", env=env)
        assert up.returncode == 0, up.stderr
        port = free_port()
        server = LoggedProcess(
            [sys.executable, "-m", "garrison", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env,
        )
        server.wait_for("garrison.ready")
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
    dev_server: tuple[LoggedProcess, int],
) -> None:
    """All 1,500 clients connect and stay connected before any of them is answered. With
    granian's defaults (backpressure = backlog / workers = 1,024) the last ones would wait
    in the accept queue for a connection to close, which none does: the test would hang."""
    _server, port = dev_server
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
    server = LoggedProcess(
        [sys.executable, "-m", "garrison", "serve", "--port", str(port)],
        {
            "GARRISON_DATA_DIR": str(tmp_path / "var"),
            "GARRISON_LOG__FORMAT": "json",
            "GARRISON_HTTP__KEEP_ALIVE_TIMEOUT": "1",
        },
    )
    try:
        server.wait_for("garrison.ready")
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
