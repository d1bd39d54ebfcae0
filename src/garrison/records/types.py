"""Column types whose behaviour is the same on SQLite and MySQL/MariaDB.

MySQL's default collations compare case-insensitively and ignore trailing spaces, SQLite's
compare bytes; ``ExactText`` gives every backend SQLite's exact semantics (a binary, NO PAD
collation on MySQL/MariaDB), so ``title = 'a'`` means the same thing everywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class ExactText(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "mysql":
            mariadb = bool(getattr(dialect, "is_mariadb", False))
            collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
            return dialect.type_descriptor(mysql.VARCHAR(self.length, collation=collation))
        return dialect.type_descriptor(String(self.length))
