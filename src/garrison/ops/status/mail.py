"""The e-mail the status domain sends: subscription confirmations, notices to confirmed
subscribers, and alerts to operators. Plain text; links carry only a one-time token or an
HMAC of the subscriber's id."""

from __future__ import annotations

import hashlib
import hmac
from email.message import EmailMessage
from typing import Any

from garrison.settings import Settings


def unsubscribe_signature(settings: Settings, subscriber_id: str) -> str:
    assert settings.secret_key is not None
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(
        key, f"status-unsubscribe:{subscriber_id}".encode(), hashlib.sha256
    ).hexdigest()[:32]


def confirmation(settings: Settings, *, email: str, token: str) -> EmailMessage:
    link = f"{settings.issuer}/status/subscribe/confirm?token={token}"
    message = EmailMessage()
    message["To"] = email
    message["Subject"] = f"Confirm your subscription to {settings.status.title}"
    message.set_content(
        f"Someone (hopefully you) asked for notices from {settings.status.title}.\n\n"
        f"Confirm with this link:\n\n{link}\n\n"
        "If you did not ask for this, ignore this message: nothing will be sent.\n"
    )
    return message


_READ_ONLY = {
    "started": "The API is read-only until this window ends.",
    "ended": "The API accepts writes again.",
}


def notice(
    settings: Settings, *, email: str, subscriber_id: str, topic: str, data: dict[str, Any]
) -> EmailMessage:
    signature = unsubscribe_signature(settings, subscriber_id)
    unsubscribe = f"{settings.issuer}/status/unsubscribe?id={subscriber_id}&sig={signature}"
    kind = topic.split(".")[1] if topic.count(".") >= 2 else "notice"
    verb = topic.rsplit(".", 1)[-1]
    message = EmailMessage()
    message["To"] = email
    message["Subject"] = (
        f"[{settings.status.title}] {kind.capitalize()} {verb}: {data.get('title')}"
    )
    lines = [f"{kind.capitalize()} {verb}: {data.get('title')}", ""]
    if kind == "incident":
        lines += [f"Status: {data.get('status')}", f"Impact: {data.get('impact')}"]
        if data.get("message"):
            lines += ["", str(data["message"])]
    else:
        lines += [f"From: {data.get('starts_at')}", f"Until: {data.get('ends_at')}"]
        if data.get("read_only"):
            lines.append(_READ_ONLY.get(verb, "The API is read-only during this window."))
        if data.get("description"):
            lines += ["", str(data["description"])]
    lines += ["", f"Status page: {settings.issuer}/status", f"Unsubscribe: {unsubscribe}", ""]
    message.set_content("\n".join(lines))
    return message


def alert(settings: Settings, *, to: list[str], topic: str, data: dict[str, Any]) -> EmailMessage:
    opened = topic.endswith(".opened")
    message = EmailMessage()
    message["To"] = ", ".join(to)
    state = "FIRING" if opened else "RESOLVED"
    message["Subject"] = f"[{state}] {data.get('rule')}: {data.get('summary')}"
    message.set_content(
        f"{state}: {data.get('summary')}\n\n"
        f"Rule: {data.get('rule')}\nSubject: {data.get('subject')}\n"
        f"Value: {data.get('value')}\nThreshold: {data.get('threshold')}\n"
        f"Opened: {data.get('opened_at')}\n"
        + (f"Resolved: {data.get('resolved_at')}\n" if not opened else "")
        + f"\nStatus page: {settings.issuer}/status\n"
    )
    return message
