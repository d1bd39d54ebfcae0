"""Mailers: one protocol, three implementations.

``SmtpMailer`` sends through the configured server (``smtp.*`` settings: host, port,
``security`` = ``starttls`` | ``tls`` | ``none``, username, password, sender).
``FileMailer`` is the development default without an SMTP host: each message becomes a
``.eml`` file under ``<data_dir>/mail/`` (mode 0600, as it can carry a one-time link).
``NullMailer`` is what staging and production get without an SMTP host: nothing is sent and
a warning says so. None of them ever logs a body, only the recipient domain and subject.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from garrison.log import get_logger
from garrison.settings import Settings, SmtpSettings

log = get_logger("garrison.mail")


class MailError(Exception):
    """The message could not be handed to the mail server."""


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def _domain(address: str | None) -> str | None:
    return address.rsplit("@", 1)[-1] if address and "@" in address else None


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        assert settings.host is not None
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        if "From" not in message:
            message["From"] = s.sender
        try:
            await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password.get_secret_value() if s.password else None,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                timeout=s.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("mail.failed", to_domain=_domain(message["To"]), error=type(exc).__name__)
            raise MailError(type(exc).__name__) from exc
        log.info("mail.sent", to_domain=_domain(message["To"]), subject=message["Subject"])


class FileMailer:
    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, message: EmailMessage) -> None:
        if "From" not in message:
            message["From"] = self.sender
        path = await asyncio.to_thread(self._write, message.as_bytes())
        log.info(
            "mail.written",
            to_domain=_domain(message["To"]),
            subject=message["Subject"],
            file=path.name,
        )

    def _write(self, data: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{uuid.uuid4().hex}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path


class NullMailer:
    async def send(self, message: EmailMessage) -> None:
        log.warning(
            "mail.not_sent", to_domain=_domain(message["To"]), reason="GARRISON_SMTP__HOST unset"
        )


def open_mailer(settings: Settings) -> Mailer:
    if settings.smtp.host:
        return SmtpMailer(settings.smtp)
    if settings.is_development:
        return FileMailer(settings.data_dir / "mail", settings.smtp.sender)
    return NullMailer()
