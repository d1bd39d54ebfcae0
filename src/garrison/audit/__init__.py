"""The audit trail: a hash-chained, searchable record of every change and attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from garrison import events

if TYPE_CHECKING:
    from garrison.settings import Settings


def install_recorder(settings: Settings | None = None) -> None:
    """Record every event of this process in the audit log (idempotent); with ``settings``,
    the installation's keyring wraps the per-person keys of its database's audit entries."""
    from garrison.audit.service import record

    events.install_recorder(record)
    if settings is not None:
        install_keyring(settings)


def install_keyring(settings: Settings) -> None:
    """Wrap the per-person audit keys of ``settings``' database with its keyring."""
    from garrison.audit import subject_keys
    from garrison.crypto import keyring_for

    subject_keys.install_keyring(settings.db_url, keyring_for(settings))
