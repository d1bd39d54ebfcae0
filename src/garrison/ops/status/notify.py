"""Outbox handlers: status notices to confirmed subscribers, alerts to operators.

Delivery is at least once (a handler that fails is retried with the whole message), so a
subscriber may in rare cases get a notice twice; never none.
"""

from __future__ import annotations

from garrison.db.engine import Database
from garrison.mail import Mailer, open_mailer
from garrison.ops.status import mail, service
from garrison.outbox.registry import Handler, Message, Registry
from garrison.settings import Settings

NOTICE_TOPICS = ("status.incident.", "status.maintenance.")
_installed: dict[int, list[Handler]] = {}


def handlers(settings: Settings, mailer: Mailer | None = None) -> list[tuple[str, Handler]]:
    sender = mailer or open_mailer(settings)

    async def notify_subscribers(message: Message, db: Database) -> None:
        async with db.read_session() as session:
            subscribers = await service.confirmed_subscribers(session)
        data = message.payload.get("data") or {}
        for subscriber_id, email in subscribers:
            await sender.send(
                mail.notice(
                    settings,
                    email=email,
                    subscriber_id=subscriber_id,
                    topic=message.topic,
                    data=data,
                )
            )

    async def notify_operators(message: Message, db: Database) -> None:
        to = settings.status.alerts.email_to
        if not to or message.topic not in ("alert.opened", "alert.resolved"):
            return
        data = message.payload.get("data") or {}
        await sender.send(mail.alert(settings, to=to, topic=message.topic, data=data))

    return [
        *((topic, notify_subscribers) for topic in NOTICE_TOPICS),
        ("alert.", notify_operators),
    ]


def install(registry: Registry, settings: Settings, mailer: Mailer | None = None) -> None:
    """Register the handlers on ``registry``, replacing any this module put there before."""
    for old in _installed.pop(id(registry), []):
        registry.unregister(old)
    pairs = handlers(settings, mailer)
    for prefix, handler in pairs:
        registry.register(prefix, handler)
    _installed[id(registry)] = [handler for _, handler in pairs]
