"""Error tracking through sentry-sdk, captured by a local HTTP receiver standing in for
Sentry/GlitchTip: exceptions and 5xx are reported with request id, route and release, and
no secret or personal value leaves the process."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi import APIRouter, Request
from starlette.responses import Response

from garrison import __version__
from garrison.app import create_app
from garrison.ops.alerts import errortracking
from tests.conftest import make_settings, migrated, start

CANARY = "canary-7f3a9c1e5b"
probe = APIRouter()


@probe.post("/api/v1/_boom/{item}")
async def boom(item: str, request: Request) -> Response:
    password = f"pw-{CANARY}"  # a local variable the SDK must not send
    raise RuntimeError(
        f"failed for user {CANARY}@example.com with token=got_{CANARY}{password[:0]}"
    )


@probe.get("/api/v1/_bad-gateway")
async def bad_gateway() -> Response:
    return Response(status_code=502)


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                receiver.bodies.append(data)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.bodies)} envelope(s) arrived, wanted {count}")
            time.sleep(0.02)  # polling a condition with a deadline
        return b"\n".join(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    value = Receiver()
    yield value
    value.close()


async def test_exceptions_and_5xx_are_reported_scrubbed(tmp_path: Path, receiver: Receiver) -> None:
    settings = make_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
        worker={"in_process": False},
        sentry_dsn=f"http://public@127.0.0.1:{receiver.port}/1",
    )
    await migrated(settings)
    app = create_app(settings)
    app.include_router(probe)
    async with start(app) as running:
        assert errortracking.enabled()
        response = await running.client.post(
            f"/api/v1/_boom/{CANARY}?token={CANARY}&email={CANARY}@example.com",
            json={"password": CANARY, "email": f"{CANARY}@example.com"},
            headers={
                "Authorization": f"Bearer {CANARY}",
                "X-API-Key": f"gak_{CANARY}",
                "Cookie": f"session={CANARY}",
                "X-Request-ID": "req-for-sentry-test",
            },
        )
        assert response.status_code == 500
        assert CANARY not in response.text
        assert (await running.client.get("/api/v1/_bad-gateway")).status_code == 502
        errortracking.close()  # flushes the transport
    sent = receiver.wait_for(2)
    assert b"RuntimeError" in sent
    assert b"req-for-sentry-test" in sent
    assert b"/api/v1/_boom/{item}" in sent  # the route template, not the path
    assert f"garrison@{__version__}".encode() in sent
    assert b"HTTP 502 on GET /api/v1/_bad-gateway" in sent
    assert CANARY.encode() not in sent, sent.decode(errors="replace")


def test_scrub_masks_keys_and_values() -> None:
    event = {
        "request": {
            "url": f"http://x/a?token={CANARY}",
            "headers": [["Authorization", f"Bearer {CANARY}"], ["Accept", "*/*"]],
            "cookies": {"session": CANARY},
            "data": {"password": CANARY},
        },
        "user": {"email": "a@example.com"},
        "extra": {"password": CANARY},
        "exception": {
            "values": [
                {
                    "value": f"jwt eyJhbGciOi.eyJzdWIiOiIx.{CANARY} here",
                    "stacktrace": {"frames": [{"vars": {"secret": CANARY}}]},
                }
            ]
        },
        "contexts": {"db": {"api_key": CANARY, "dsn": f"mysql://u:{CANARY}@h/db"}},
    }
    cleaned = errortracking.scrub(event)
    assert CANARY not in repr(cleaned)
    assert cleaned["request"]["headers"][1] == ["Accept", "*/*"]  # harmless values stay
    assert "user" not in cleaned
