"""How much storage the database takes (the storage alert's figure): on MariaDB/MySQL its
tables' data, indexes and the free space inside their files (``information_schema``), on
SQLite the file with its WAL. Read at most once a ``max_age`` per database: the health check
and the metrics scrape share the figure, and ``information_schema.TABLES`` opens every table.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from pathlib import Path

from sqlalchemy.engine import make_url

from garrison.db.engine import Database

_READ: weakref.WeakKeyDictionary[Database, tuple[float, int]] = weakref.WeakKeyDictionary()
_SQL = (
    "SELECT COALESCE(SUM(data_length + index_length + data_free), 0) AS used "
    "FROM information_schema.TABLES WHERE table_schema = DATABASE()"
)


async def storage_bytes(db: Database, *, max_age: float = 60.0) -> int:
    known = _READ.get(db)
    if known is not None and time.monotonic() - known[0] < max_age:
        return known[1]
    if db.is_sqlite:
        used = await asyncio.to_thread(_sqlite_bytes, db.url)
    else:
        rows = await db.writer_fast_read.query(_SQL)
        used = int(rows[0]["used"]) if rows else 0
    _READ[db] = (time.monotonic(), used)
    return used


def _sqlite_bytes(url: str) -> int:
    name = make_url(url).database
    if not name or name == ":memory:":
        return 0
    path = Path(name)
    total = 0
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            total += os.stat(part).st_size
        except FileNotFoundError:
            continue
    return total
