"""Settings of the status page, incidents, alerting and error tracking (``GARRISON_STATUS__*``).

They are defined in ``garrison.settings`` (layer 0, which imports no domain) and named here
for the status code."""

from __future__ import annotations

from garrison.settings import AlertSettings, StatusSettings

__all__ = ["AlertSettings", "StatusSettings"]
