"""E-mail verification, password reset and invitations through a real SMTP server process
(aiosmtpd on loopback), and the development mailer that writes .eml files."""

from __future__ import annotations

import asyncio
import email
import io
import json
import mailbox
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from garrison.auth.clock import utcnow
from garrison.auth.models import OneTimeToken
from garrison.db.retry import transact
from garrison.log import configure_logging
from tests.authkit import PASSWORD, AuthApp, auth_app, bearer
from tests.conftest import make_settings
from tests.helpers import free_port

CODE = re.compile(r"code to the API: (got_[A-Za-z0-9_-]+)")


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


class SmtpServer:
    def __init__(self, port: int, maildir: Path, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.maildir = maildir
        self.proc = proc

    def messages(self) -> list[Message]:
        box = mailbox.Maildir(self.maildir, create=False)
        return [email.message_from_bytes(box.get_bytes(key)) for key in box.iterkeys()]

    def messages_to(self, address: str) -> list[Message]:
        return [m for m in self.messages() if m["To"] == address]

    async def wait_to(self, address: str, subject: str | None = None) -> list[Message]:
        """The messages to ``address`` (with ``subject``) once at least one has arrived: mail
        goes through the outbox, so the worker sends it just after the request."""
        deadline = time.monotonic() + 30
        while True:
            found = [
                m for m in self.messages_to(address) if subject is None or m["Subject"] == subject
            ]
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.02)

    async def code(self, address: str, subject: str) -> str:
        [message] = await self.wait_to(address, subject)
        match = CODE.search(body_of(message))
        assert match, body_of(message)
        return match.group(1)


def launch_smtp(maildir: Path, port: int) -> SmtpServer:
    """aiosmtpd as a process on ``port``, writing to the Maildir ``maildir``; waits for its
    socket (not for a fixed time)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            "-l",
            f"127.0.0.1:{port}",
            str(maildir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:  # wait for the socket, not for a fixed time
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.01)
    return SmtpServer(port, maildir, proc)


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    server = launch_smtp(tmp_path_factory.mktemp("maildir") / "inbox", free_port())
    try:
        yield server
    finally:
        server.proc.terminate()
        server.proc.wait(30)


@pytest.fixture
async def kit(tmp_path: Path, database_url: str, smtp: SmtpServer) -> AsyncIterator[AuthApp]:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        smtp={
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "sender": "Garrison <auth@example.com>",
        },
    )
    async with auth_app(settings) as app:
        yield app


def _address() -> str:
    return f"m-{uuid.uuid4().hex[:10]}@example.com"


async def test_registration_sends_a_verification_link(kit: AuthApp, smtp: SmtpServer) -> None:
    address = _address()
    response = await kit.client.post(
        "/api/v1/auth/register", json={"email": address, "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json()["email_verified"] is False
    [message] = await smtp.wait_to(address)
    assert message["From"] == "Garrison <auth@example.com>"
    code = await smtp.code(address, "Confirm your e-mail address")
    assert f"http://localhost:3000/verify-email?token={code}" in body_of(message)

    verified = await kit.client.post("/api/v1/auth/verify-email", json={"token": code})
    assert verified.status_code == 204
    token = (await kit.login(address))["access_token"]
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.json()["email_verified"] is True
    again = await kit.client.post("/api/v1/auth/verify-email", json={"token": code})
    assert again.status_code == 400
    assert again.headers["content-type"] == "application/problem+json"
    # Already verified: asking again sends nothing more.
    await kit.client.post("/api/v1/auth/verify-email/request", headers=bearer(token))
    assert len(smtp.messages_to(address)) == 1


async def test_password_reset(kit: AuthApp, smtp: SmtpServer) -> None:
    address = await kit.user()
    session = await kit.login(address)
    unknown = _address()
    for target in (address, unknown, "not an address"):
        response = await kit.client.post(
            "/api/v1/auth/password-reset/request", json={"email": target}
        )
        assert response.status_code == 202
        assert response.content == b""
    code = await smtp.code(address, "Reset your password")
    assert smtp.messages_to(unknown) == []  # sent in order: the known address's came after

    weak = await kit.client.post(
        "/api/v1/auth/password-reset", json={"token": code, "new_password": "password"}
    )
    assert weak.status_code == 422
    new_password = "a brand new passphrase"
    done = await kit.client.post(
        "/api/v1/auth/password-reset", json={"token": code, "new_password": new_password}
    )
    assert done.status_code == 204
    reused = await kit.client.post(
        "/api/v1/auth/password-reset",
        json={"token": code, "new_password": "yet another passphrase"},
    )
    assert reused.status_code == 400
    old = await kit.client.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD})
    assert old.status_code == 401
    assert (
        await kit.client.get("/api/v1/auth/me", headers=bearer(session["access_token"]))
    ).status_code == 401
    await kit.login(address, new_password)


async def test_expired_and_forged_links_fail(kit: AuthApp, smtp: SmtpServer) -> None:
    address = await kit.user()
    await kit.client.post("/api/v1/auth/password-reset/request", json={"email": address})
    code = await smtp.code(address, "Reset your password")

    async def expire(session: Any) -> None:
        await session.execute(
            update(OneTimeToken)
            .where(OneTimeToken.email == address)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    await transact(kit.runtime.db, expire)
    for token in (code, "got_forged", "x" * 128):
        response = await kit.client.post(
            "/api/v1/auth/password-reset",
            json={"token": token, "new_password": "a fine passphrase"},
        )
        assert response.status_code == 400
    await kit.login(address)  # the password did not change


async def test_invitations(tmp_path: Path, smtp: SmtpServer) -> None:
    settings = make_settings(
        tmp_path,
        auth={"registration": "invite"},
        smtp={"host": "127.0.0.1", "port": smtp.port, "security": "none"},
    )
    async with auth_app(settings) as kit:
        address = _address()
        no_invite = await kit.client.post(
            "/api/v1/auth/register", json={"email": address, "password": PASSWORD}
        )
        assert no_invite.status_code == 403
        admin = await kit.token(role="admin")
        sent = await kit.client.post(
            "/api/v1/admin/invitations",
            json={"email": address, "role": "service"},
            headers=bearer(admin),
        )
        assert sent.status_code == 202
        code = await smtp.code(address, "You are invited to Garrison")
        wrong_address = await kit.client.post(
            "/api/v1/auth/register",
            json={"email": _address(), "password": PASSWORD, "invite_token": code},
        )
        assert wrong_address.status_code == 400
        joined = await kit.client.post(
            "/api/v1/auth/register",
            json={"email": address.upper(), "password": PASSWORD, "invite_token": code},
        )
        assert joined.status_code == 201, joined.text
        assert joined.json()["roles"] == ["service"]
        assert joined.json()["email_verified"] is True
        twice = await kit.client.post(
            "/api/v1/auth/register",
            json={"email": address, "password": PASSWORD, "invite_token": code},
        )
        assert twice.status_code == 400


async def test_smtp_down_does_not_fail_registration(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, smtp={"host": "127.0.0.1", "port": free_port(), "security": "none", "timeout": 2}
    )
    async with auth_app(settings) as kit:
        response = await kit.client.post(
            "/api/v1/auth/register", json={"email": _address(), "password": PASSWORD}
        )
        assert response.status_code == 201


async def test_development_mailer_writes_eml_files(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    stream = io.StringIO()
    settings.log.format = "json"
    configure_logging(settings, stream=stream)
    async with auth_app(settings) as kit:
        address = _address()
        await kit.client.post(
            "/api/v1/auth/register", json={"email": address, "password": PASSWORD}
        )
        deadline = time.monotonic() + 30  # the in-process worker sends it from the outbox
        while not list((settings.data_dir / "mail").glob("*.eml")):
            assert time.monotonic() < deadline, "no mail written"
            await asyncio.sleep(0.02)
    files = list((settings.data_dir / "mail").glob("*.eml"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600
    message = email.message_from_bytes(files[0].read_bytes())
    assert message["To"] == address
    body = body_of(message)
    code = CODE.search(body)
    assert code is not None
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    written = [line for line in lines if line.get("event") == "mail.written"]
    assert written
    assert written[0]["to_domain"] == "example.com"
    assert code.group(1) not in stream.getvalue()
    assert address not in stream.getvalue()
