"""Column types whose behaviour is the same on SQLite and MySQL/MariaDB.

MySQL's default collations compare case-insensitively and ignore trailing spaces, SQLite's
compare bytes; ``ExactText`` gives every backend SQLite's exact semantics (a binary, NO PAD
collation on MySQL/MariaDB), so ``title = 'a'`` means the same thing everywhere. Long text
(over ``VARCHAR_LIMIT`` characters) is a TEXT column, which keeps MySQL rows under their
65,535-byte limit. ``AsciiId`` stores record ids compactly (ASCII, binary collation).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from garrison.db.types import AsciiId

__all__ = ["VARCHAR_LIMIT", "AsciiId", "ExactText"]

VARCHAR_LIMIT = 768


def _binary_collation(dialect: Dialect) -> str:
    return "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


class ExactText(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        long = self.length > VARCHAR_LIMIT
        if dialect.name == "mysql":
            collation = _binary_collation(dialect)
            if long:
                # Sized in bytes (4 per character in utf8mb4): MySQL picks the TEXT type
                # that holds the declared length (MEDIUMTEXT past 16,383 characters).
                return dialect.type_descriptor(mysql.TEXT(self.length * 4, collation=collation))
            return dialect.type_descriptor(mysql.VARCHAR(self.length, collation=collation))
        return dialect.type_descriptor(Text() if long else String(self.length))
