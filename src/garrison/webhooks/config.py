"""Webhook settings (``GARRISON_WEBHOOKS__*``): the section is defined in ``garrison.settings``
(settings sit below every domain); re-exported here for the webhook modules."""

from garrison.settings import DEFAULT_SCHEDULE, WebhookSettings

__all__ = ["DEFAULT_SCHEDULE", "WebhookSettings"]
