"""Engines and sessions.

``Database`` owns a writer engine and the readers: an autocommit engine on the writer and
one per configured replica (``db.replica_url``: one URL or a JSON list). ``session()`` is
for units of work that write; ``read_session()`` and ``fast_read`` are for read-only work
and go to a usable replica when there is one (see ``replicas``), else to the writer.
``reader_for(key)`` is the read that must see ``key``'s own recent write. Nothing here
commits by itself except ``transaction()``: the caller owns the transaction.

SQLite (the embedded default) runs in WAL mode with foreign keys on, a busy timeout and
``synchronous=FULL`` so an acknowledged write survives a crash. Its writer transactions start
with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing when a
read lock would have to be upgraded. Within one process, ``transaction()`` also queues its
SQLite writers on a first-come lock: SQLite's busy handler polls with sleeps that grow to
100 ms, so under contention a waiter could lose to newcomers again and again (1 MiB uploads
from 16 clients had a p99 of 2 s); the lock hands the file over in arrival order and at
once. Waiting longer than the busy timeout is SQLite's "database is locked", as before.

MySQL/MariaDB connections use TLS when ``db.tls_ca`` (or a client certificate) is set.
"""

from __future__ import annotations

import asyncio
import sqlite3
import ssl
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from garrison.db.fastread import FastReader
from garrison.db.replicas import Replica, ReplicaSet, node_name
from garrison.settings import ConfigError, DatabaseSettings

RECENT_WRITERS = 10_000  # callers whose last write is remembered for read-your-writes


def tls_context(db: DatabaseSettings) -> ssl.SSLContext | None:
    """The client TLS context the settings ask for; None for plain connections."""
    if db.tls_ca is None and db.tls_cert is None:
        return None
    try:
        context = ssl.create_default_context(cafile=str(db.tls_ca) if db.tls_ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("GARRISON_DB__TLS_CA", f"cannot be loaded ({exc})") from None
    if not db.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if db.tls_cert is not None:
        try:
            context.load_cert_chain(str(db.tls_cert), str(db.tls_key) if db.tls_key else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("GARRISON_DB__TLS_CERT", f"cannot be loaded ({exc})") from None
    return context


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
    connect_args: dict[str, Any] = {
        "connect_timeout": db.connect_timeout,
        "init_command": "SET time_zone = '+00:00'",
    }
    context = tls_context(db)
    if context is not None:
        connect_args["ssl"] = context
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
        connect_args=connect_args,
    )


def create_engine(url: str, db: DatabaseSettings, *, writer: bool = True) -> AsyncEngine:
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, db, writer=writer)
    return _mysql_engine(url, db, writer=writer)


async def _commit(session: AsyncSession) -> None:
    try:
        await session.commit()
    except DBAPIError as exc:
        exc.during_commit = True  # type: ignore[attr-defined]
        raise


async def _close(closing: Awaitable[None], *, committed: bool) -> None:
    """Close a session or connection. Once the COMMIT succeeded nothing may fail the unit of
    work: a connection that dies while it goes back to the pool (a failover) must not make
    the retry layer run a committed transaction again."""
    try:
        await closing
    except DBAPIError:
        if not committed:
            raise


class Database:
    def __init__(self, url: str, settings: DatabaseSettings) -> None:
        self.url = url
        self.settings = settings
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = create_engine(url, settings, writer=True)
        # SQLite: the same file with plain BEGIN, so readers never wait for the writer's
        # RESERVED lock. MySQL/MariaDB: a pool of autocommit connections for reads.
        self.writer_read_engine = create_engine(url, settings, writer=False)
        # Hot-path reads (records get and list) run on the driver directly; see fastread.
        self.writer_fast_read = self._fast_reader(self.writer_read_engine)
        replicas = []
        for replica_url in settings.replica_urls:
            engine = create_engine(replica_url, settings, writer=False)
            replicas.append(Replica(node_name(replica_url), engine, self._fast_reader(engine)))
        self.replicas = ReplicaSet(replicas, settings, writer=self.writer_fast_read)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: this process's writers queue here, one lock per event loop.
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._write_locks = weakref.WeakKeyDictionary()
        self._read_sessions = {
            id(engine): async_sessionmaker(engine, expire_on_commit=False)
            for engine in self.reader_engines()
        }
        # Read-your-writes: the GTID (or, without one, the time) of each caller's last write.
        self.last_gtid: str | None = None
        self._written: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def _fast_reader(self, engine: AsyncEngine) -> FastReader:
        reader = FastReader(engine, self.settings)
        reader.ssl = tls_context(self.settings) if not self.is_sqlite else None
        return reader

    # -- readers --------------------------------------------------------------------------

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine for a read that may lag: a usable replica, else the writer."""
        replica = self.replicas.pick()
        return replica.engine if replica is not None else self.writer_read_engine

    @property
    def fast_read(self) -> FastReader:
        replica = self.replicas.pick()
        return replica.fast_read if replica is not None else self.writer_fast_read

    def reader_engines(self) -> Iterator[AsyncEngine]:
        yield self.writer_read_engine
        for replica in self.replicas.replicas:
            yield replica.engine

    def fast_readers(self) -> Iterator[FastReader]:
        yield self.writer_fast_read
        for replica in self.replicas.replicas:
            yield replica.fast_read

    def note_write(self, key: str) -> None:
        """``key`` (a caller) just committed a write: its next reads must see it."""
        self._written[key] = (time.monotonic(), self.last_gtid)
        self._written.move_to_end(key)
        if len(self._written) > RECENT_WRITERS:
            self._written.popitem(last=False)

    async def reader_for(self, key: str | None) -> FastReader:
        """The reader for ``key``'s reads: any usable replica, unless ``key`` wrote within
        the lag limit, then a replica that has applied its write (``MASTER_GTID_WAIT``, a
        short wait) or the writer."""
        if not self.replicas:
            return self.writer_fast_read
        written = self._written.get(key) if key is not None else None
        if written is not None and time.monotonic() - written[0] > self.settings.max_replica_lag:
            del self._written[key]  # type: ignore[arg-type]
            written = None
        replica = self.replicas.pick()
        if replica is None:
            return self.writer_fast_read
        if written is None:
            return replica.fast_read
        gtid = written[1]
        if gtid and await self.replicas.caught_up(replica, gtid, wait_seconds=0.2):
            return replica.fast_read
        return self.writer_fast_read

    def session(self) -> AsyncSession:
        return self._sessions()

    def read_session(self) -> AsyncSession:
        return self._read_sessions[id(self.read_engine)]()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A writer session inside a transaction: committed on success, rolled back on error.

        An error raised by the COMMIT itself is marked (``during_commit``): a lost
        connection there leaves the outcome unknown, so the retry layer does not run the
        work again. With replicas, the commit's GTID is kept for read-your-writes."""
        if self.is_sqlite:
            async with self._sqlite_writer(), self._unit_of_work() as session:
                yield session
            return
        if not self.replicas:
            async with self._unit_of_work() as session:
                yield session
            return
        # Held for the whole unit of work, so the GTID is read on the committing connection.
        conn = await self.engine.connect()
        committed = False
        try:
            async with self._unit_of_work(
                AsyncSession(bind=conn, expire_on_commit=False)
            ) as session:
                yield session
            committed = True
            try:
                row = (await conn.exec_driver_sql("SELECT @@last_gtid")).first()
            except DBAPIError:  # committed already; read-your-writes falls back to time
                row = None
            if row and row[0]:
                self.last_gtid = str(row[0])
        finally:
            await _close(conn.close(), committed=committed)

    @asynccontextmanager
    async def _unit_of_work(
        self, session: AsyncSession | None = None
    ) -> AsyncIterator[AsyncSession]:
        """``session`` (default: a new writer session), committed when the block ends well,
        closed either way."""
        session = session or self._sessions()
        committed = False
        try:
            yield session
            await _commit(session)
            committed = True
        finally:
            await _close(session.close(), committed=committed)

    @asynccontextmanager
    async def _sqlite_writer(self) -> AsyncIterator[None]:
        """This process's turn to write to the SQLite file, in arrival order."""
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = asyncio.Lock()
        try:
            async with asyncio.timeout(self.settings.sqlite_busy_timeout_ms / 1000):
                await lock.acquire()
        except TimeoutError:
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            ) from None
        try:
            yield
        finally:
            lock.release()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.replicas.close()
        await self.writer_fast_read.dispose()
        await self.engine.dispose()
        await self.writer_read_engine.dispose()
