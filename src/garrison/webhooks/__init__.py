"""Outbound webhooks: Standard Webhooks signatures, per-endpoint retries, a delivery log.

Endpoints are managed under ``/api/v1/webhooks`` (``router``); the worker runs the delivery
loop (``delivery.WebhookDelivery``); sealed events fan out to subscribed endpoints in the
sealing transaction (``service.fan_out``). See docs/webhooks.md.
"""
