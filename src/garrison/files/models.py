"""The files table: one row per stored object, bound to a record's file field once attached.

A row with no ``record_id`` is an upload not yet attached (a standalone upload, or one
whose record is being written in the same transaction); the sweeper removes those older
than the grace period. The bytes live in storage under ``storage_key``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import AsciiId, UtcDateTime


class FileRow(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(AsciiId(), primary_key=True)
    collection: Mapped[str | None] = mapped_column(String(48))
    record_id: Mapped[str | None] = mapped_column(AsciiId())
    field: Mapped[str | None] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attached_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_files_record", "collection", "record_id", "field"),
        Index("ix_files_pending", "record_id", "created_at"),
        Index("ix_files_owner", "owner"),
    )


class OwnerLock(Base):
    """One row per uploader, written by each transaction that stores their files: on MariaDB
    the row lock makes two uploads of one owner check the quota one after the other (each
    then counts the other's bytes). SQLite runs one writer at a time and needs none."""

    __tablename__ = "files_owner_locks"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    locked_at: Mapped[datetime] = mapped_column(UtcDateTime)
