"""Engines and sessions.

``Database`` owns a writer engine and, when a replica is configured, a reader engine.
``session()`` is for units of work that write; ``read_session()`` is for read-only work and
goes to the replica when there is one. Neither commits by itself: the caller (the request
dependency or a CLI command) owns the transaction.

SQLite (the embedded default) runs in WAL mode with foreign keys on, a busy timeout and
``synchronous=FULL`` so an acknowledged write survives a crash. Its writer transactions start
with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing when a
read lock would have to be upgraded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from garrison.db.fastread import FastReader
from garrison.settings import DatabaseSettings


def _sqlite_engine(url: str, db: DatabaseSettings, *, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=db.echo,
        connect_args={"timeout": db.sqlite_busy_timeout_ms / 1000},
    )
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is off; SQLAlchemy's "begin" event below
        # emits BEGIN itself, which is what makes IMMEDIATE possible.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(db.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _mysql_engine(url: str, db: DatabaseSettings, *, writer: bool) -> AsyncEngine:
    parsed = make_url(url)
    if "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    # Readers run each statement on its own (autocommit): no BEGIN, nothing to roll back
    # when the connection goes back to the pool, and no pre-ping (a read that meets a dead
    # connection is retried by its caller): one round trip per read instead of three.
    return create_async_engine(
        parsed,
        echo=db.echo,
        pool_size=db.pool_size,
        max_overflow=db.max_overflow,
        pool_timeout=db.pool_timeout,
        pool_recycle=db.pool_recycle,
        pool_pre_ping=db.pool_pre_ping if writer else False,
        pool_reset_on_return="rollback" if writer else None,
        isolation_level=db.isolation_level if writer else "AUTOCOMMIT",
        connect_args={
            "connect_timeout": db.connect_timeout,
            "init_command": "SET time_zone = '+00:00'",
        },
    )


def create_engine(url: str, db: DatabaseSettings, *, writer: bool = True) -> AsyncEngine:
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, db, writer=writer)
    return _mysql_engine(url, db, writer=writer)


class Database:
    def __init__(self, url: str, settings: DatabaseSettings) -> None:
        self.url = url
        self.settings = settings
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = create_engine(url, settings, writer=True)
        if settings.replica_url:
            self.read_engine = create_engine(settings.replica_url, settings, writer=False)
        else:
            # SQLite: the same file with plain BEGIN, so readers never wait for the writer's
            # RESERVED lock. MySQL/MariaDB: a pool of autocommit connections for reads.
            self.read_engine = create_engine(url, settings, writer=False)
        # Hot-path reads (records get and list) run on the driver directly; see fastread.
        self.fast_read = FastReader(self.read_engine, settings)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        return self._sessions()

    def read_session(self) -> AsyncSession:
        return self._read_sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A writer session inside a transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.fast_read.dispose()
        await self.engine.dispose()
        await self.read_engine.dispose()
