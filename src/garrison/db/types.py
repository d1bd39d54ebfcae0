"""Column types shared by domains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# An auto-incrementing 64-bit key: SQLite only auto-increments ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC instant with microseconds on every backend (MySQL's default DATETIME drops
    them). Stored naive in UTC, returned timezone-aware; naive input is taken as UTC."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class AsciiId(TypeDecorator[str]):
    """A 36-character id (UUID text), stored compactly: ASCII with a binary collation on
    MySQL/MariaDB."""

    impl = String
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(36)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.CHAR(36, charset="ascii", collation="ascii_bin"))
        return dialect.type_descriptor(String(36))


# Text that holds up to 16 MiB on MySQL/MariaDB (its TEXT stops at 64 KiB, less than one
# record's audit entry can need); plain TEXT (unbounded) elsewhere.
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
