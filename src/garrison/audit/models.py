"""Tables owned by the audit domain.

``audit_entries`` holds the entries. A change's transaction only inserts its entry (``id``
in insert order, no ``seq`` or hash yet), so audited writes never queue behind each other;
the worker then *seals* committed entries in order: it gives each the next ``seq`` and its
``prev_hash``/``hash``, under the lock of ``audit_chain``, the single head row (last ``seq``
and hash). ``audit_checkpoints`` are the signed anchors that retention purges leave behind.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import BigId, LongText, UtcDateTime

GENESIS_HASH = "0" * 64


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # None until sealed
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(191))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(128))
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(191))
    outcome: Mapped[str] = mapped_column(String(16))
    changes: Mapped[str | None] = mapped_column(LongText)  # canonical JSON, secrets redacted
    data: Mapped[str | None] = mapped_column(LongText)  # canonical JSON, secrets redacted
    # Set when the entry is about a person: ip, user_agent, changes and data are then
    # sealed under that person's key (``garrison.audit.subject_keys``) and the plain columns are
    # empty. Erasure destroys the key; the hash covers the sealed text, so the chain holds.
    subject_id: Mapped[str | None] = mapped_column(String(36))
    sealed: Mapped[str | None] = mapped_column(LongText)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_entries_occurred_at", "occurred_at"),
        Index("ix_audit_entries_action", "action"),
        Index("ix_audit_entries_actor", "actor_kind", "actor_id"),
        Index("ix_audit_entries_target", "target_type", "target_id"),
        Index("ix_audit_entries_subject_id", "subject_id"),
    )


class AuditChain(Base):
    """The single head row (id 1), written by the migration and locked by the sealer."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """After a purge: entries up to ``through_seq`` are gone; the first remaining entry's
    ``prev_hash`` is ``anchor_hash``. ``signature`` is an HMAC over both (and the rest)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    through_seq: Mapped[int] = mapped_column(BigInteger, index=True)
    anchor_hash: Mapped[str] = mapped_column(String(64))
    purged: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    signature: Mapped[str] = mapped_column(String(64))


class SubjectKey(Base):
    """One data key per person (user id); deleting it is what makes their sealed audit
    data unrecoverable."""

    __tablename__ = "privacy_subject_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), unique=True)
    # the 32-byte key sealed with the installation's keyring (``gv1.…``); rows from before
    # revision 0017 hold its bare base64 until ``garrison secrets rotate`` wraps them
    key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
