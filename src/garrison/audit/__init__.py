"""The audit trail: a hash-chained, searchable record of every change and attempt."""

from __future__ import annotations

from garrison import events


def install_recorder() -> None:
    """Record every event of this process in the audit log (idempotent)."""
    from garrison.audit.service import record

    events.install_recorder(record)
