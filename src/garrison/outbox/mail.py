"""Mail through the outbox: a message is queued in the caller's transaction and sent by the
worker, retried with backoff while the SMTP server is away, so an outage delays mail and
loses none. The message is sealed at rest (it can carry a one-time link)."""

from __future__ import annotations

import email
import email.policy
import uuid
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.crypto import Keyring, keyring_for
from garrison.db.engine import Database
from garrison.mail.mailer import Mailer, open_mailer
from garrison.outbox import service as outbox_service
from garrison.outbox.registry import Message, Registry
from garrison.settings import Settings
from garrison.store import wake

TOPIC = "mail.send"
PURPOSE = "mail.message"


async def queue(session: AsyncSession, *, message: EmailMessage, keyring: Keyring) -> str:
    """Queue ``message`` for sending once the caller's transaction commits; its id."""
    message_id = str(uuid.uuid4())
    sealed = keyring.seal(message.as_bytes(), purpose=PURPOSE, context=message_id)
    await outbox_service.enqueue(
        session,
        messages=[
            outbox_service.NewMessage(
                event_id=message_id,
                topic=TOPIC,
                target_type=None,
                target_id=None,
                payload={"id": message_id, "action": TOPIC, "sealed": sealed},
            )
        ],
    )
    wake.on_commit(session)
    return message_id


class MailConsumer:
    """The outbox handler that sends queued mail; a ``MailError`` makes the worker retry."""

    def __init__(self, settings: Settings, mailer: Mailer | None = None) -> None:
        self.keyring = keyring_for(settings)
        self.mailer = mailer or open_mailer(settings)

    def install(self, registry: Registry) -> None:
        registry.register(TOPIC, self.deliver, key="mail")

    async def deliver(self, message: Message, db: Database) -> None:
        raw = self.keyring.open(
            str(message.payload["sealed"]), purpose=PURPOSE, context=message.event_id
        )
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        await self.mailer.send(parsed)
