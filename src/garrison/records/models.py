"""Tables of the records domain: the collection registry, the schema-change log and the
idempotency keys of record creation. (Each collection's own table is ``c_<name>``.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import UtcDateTime
from garrison.records.types import AsciiId


class CollectionRow(Base):
    __tablename__ = "garrison_collections"

    id: Mapped[str] = mapped_column(AsciiId(), primary_key=True)
    name: Mapped[str] = mapped_column(String(48), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SchemaChangeRow(Base):
    """Every schema change applied to a collection, with what undoes it."""

    __tablename__ = "garrison_schema_changes"

    id: Mapped[str] = mapped_column(AsciiId(), primary_key=True)
    collection: Mapped[str] = mapped_column(String(48), index=True)
    version: Mapped[int] = mapped_column(Integer)
    change: Mapped[dict[str, Any]] = mapped_column(JSON)
    inverse: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str | None] = mapped_column(String(80), nullable=True)
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IdempotencyKey(Base):
    """The first response to a create with an ``Idempotency-Key``, replayed to retries."""

    __tablename__ = "garrison_idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[str] = mapped_column(AsciiId(), primary_key=True)
    scope: Mapped[str] = mapped_column(String(160))  # principal + collection
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    state: Mapped[str] = mapped_column(String(16))  # processing | done
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
