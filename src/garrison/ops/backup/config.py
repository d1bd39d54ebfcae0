"""``GARRISON_BACKUP__*`` settings. The model lives in ``garrison.settings`` (the base
layer, which imports no domain); it is re-exported here for the backup package."""

from __future__ import annotations

from garrison.settings import BackupSettings

__all__ = ["BackupSettings"]
