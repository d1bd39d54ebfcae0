"""Hot-path reads: Core SELECTs run straight on the driver, compiled once per shape.

The records API's get-by-id and list are the platform's hottest paths. Through SQLAlchemy's
async execution layer each one pays for a pooled ``AsyncConnection``, greenlet switches, an
execution context and a result object: more CPU than the query itself. ``FastReader`` keeps
SQLAlchemy for what it is good at (building the statement, compiling it for the dialect,
the column types' conversions) and does the rest itself:

- the compiled form is cached by SQLAlchemy's own cache key, so a statement of a known
  shape is never compiled twice; values come from the key's extracted parameters;
- on MySQL/MariaDB the statement runs on a pool of autocommit ``asyncmy`` connections
  (on SQLite, on the reader engine's connection with ``exec_driver_sql``);
- rows come back as dicts after the columns' result processors (``UtcDateTime`` gives
  aware UTC datetimes, booleans are ``bool``, JSON is parsed), as through the ORM.

Driver errors are raised as SQLAlchemy ``DBAPIError`` so callers and the error middleware
treat them exactly as before (a lost connection is transient and retried by the caller).
Reads only: nothing here begins, commits or locks.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Insert, Select
from sqlalchemy.sql.compiler import SQLCompiler

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from garrison.settings import DatabaseSettings

Processor = Callable[[Any], Any] | None
AnySelect = Select[*tuple[Any, ...]]  # a SELECT of any columns
# Hooks for metrics and tracing: called with the elapsed seconds / around each statement.
QueryObserver = Callable[[float], None]
QuerySpan = Callable[[], AbstractContextManager[Any]]

CACHE_SIZE = 500  # compiled statements
SHAPES_SIZE = 4096  # request shapes, each a compiled statement and its values


@dataclass(frozen=True)
class Bound:
    """A statement's SQL for the dialect and how to turn values into its parameters."""

    sql: str
    names: tuple[str, ...]  # the bound parameters, in positional order
    binders: tuple[Processor, ...]

    @staticmethod
    def parts(
        compiled: SQLCompiler, dialect: Dialect
    ) -> tuple[tuple[str, ...], tuple[Processor, ...]]:
        """``names`` and ``binders`` of a compiled statement."""
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        binders = tuple(
            binds[name].type._cached_bind_processor(dialect) if name in binds else None
            for name in names
        )
        return names, binders

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, binder in zip(self.names, self.binders, strict=True):
            value = values[name]
            out.append(value if binder is None or value is None else binder(value))
        return tuple(out)


@dataclass(frozen=True)
class Prepared(Bound):
    """A SELECT compiled for the dialect, with what it takes to bind and read it."""

    defaults: dict[str, Any]  # values fixed at compile time
    columns: tuple[str, ...]
    readers: tuple[tuple[str, Callable[[Any], Any]], ...]  # only columns that convert
    slots: tuple[str | None, ...]  # the parameter each cache-key value fills

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        columns = self.columns
        rows = [dict(zip(columns, row, strict=True)) for row in raw]
        for name, reader in self.readers:
            for row in rows:
                value = row[name]
                if value is not None:
                    row[name] = reader(value)
        return rows


def _prepare(
    statement: AnySelect, dialect: Dialect, key_params: Sequence[Any], *, expand: bool
) -> Prepared:
    compiled = statement.compile(
        dialect=dialect, compile_kwargs={"render_postcompile": True} if expand else {}
    )
    names, binders = Bound.parts(compiled, dialect)
    columns = tuple(str(c.key) for c in statement.selected_columns)
    readers = tuple(
        (name, reader)
        for name, column in zip(columns, statement.selected_columns, strict=True)
        if (reader := column.type._cached_result_processor(dialect, None)) is not None
    )
    return Prepared(
        sql=compiled.string,
        names=names,
        defaults=dict(compiled.params),
        binders=binders,
        columns=columns,
        readers=readers,
        slots=tuple(compiled.bind_names.get(param) for param in key_params),
    )


class FastReader:
    """Runs SELECTs for the hot read paths; see the module docstring."""

    def __init__(self, engine: AsyncEngine, settings: DatabaseSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.dialect = engine.dialect
        self.is_sqlite = self.dialect.name == "sqlite"
        self._cache: OrderedDict[Any, Prepared] = OrderedDict()
        self._shapes: OrderedDict[Hashable, tuple[Prepared, dict[str, Any]]] = OrderedDict()
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self.observe: QueryObserver | None = None
        self.span: QuerySpan | None = None
        self.ssl: Any = None  # an ssl.SSLContext when the database settings ask for TLS

    # -- statements ---------------------------------------------------------------------

    def prepare(self, statement: AnySelect) -> tuple[Prepared, tuple[Any, ...]]:
        """The compiled statement and its positional parameters."""
        prepared, values = self._compiled(statement)
        return prepared, prepared.bind(values)

    def _compiled(self, statement: AnySelect) -> tuple[Prepared, dict[str, Any]]:
        """The compiled statement and its values by parameter name."""
        key = statement._generate_cache_key()
        if key is None:  # pragma: no cover - every records statement is cacheable
            prepared = _prepare(statement, self.dialect, (), expand=True)
            return prepared, prepared.defaults
        cached = self._cache.get(key.key)
        if cached is None:
            prepared = _prepare(statement, self.dialect, key.bindparams, expand=False)
            if "__[POSTCOMPILE_" in prepared.sql:
                # An expanding IN list: its width is part of the SQL, so compile it with
                # this statement's values and don't keep it.
                prepared = _prepare(statement, self.dialect, (), expand=True)
                return prepared, prepared.defaults
            self._cache[key.key] = prepared
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
            return prepared, prepared.defaults
        self._cache.move_to_end(key.key)
        # This statement's values, matched to the compiled parameters by their position in
        # the cache key (the mechanism SQLAlchemy's own statement cache uses).
        values = dict(cached.defaults)
        for slot, param in zip(cached.slots, key.bindparams, strict=True):
            if slot is not None:
                values[slot] = param.effective_value
        return cached, values

    # -- running --------------------------------------------------------------------------

    async def all(self, statement: AnySelect) -> list[dict[str, Any]]:
        prepared, params = self.prepare(statement)
        raw = await self._run(prepared.sql, params)
        return prepared.rows(raw)

    async def all_by_shape(
        self,
        shape: Hashable,
        build: Callable[[], AnySelect],
        values: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of the statement ``build()`` returns, where ``shape`` determines that
        statement completely except for the named ``bindparam``s in ``values``. A known
        shape skips building the statement and computing its cache key: the compiled form
        and its fixed values are reused as they are. The caller vouches for the shape: it
        must change whenever anything in the statement but ``values`` would."""
        entry = self._shapes.get(shape)
        if entry is None:
            # A new shape costs what any statement costs: built, and compiled unless one of
            # its structure was (a filter's literal values are part of a shape, not of the
            # structure, so many shapes share one compiled statement).
            entry = self._compiled(build())
            self._shapes[shape] = entry
            if len(self._shapes) > SHAPES_SIZE:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(shape)
        prepared, defaults = entry
        params = prepared.bind({**defaults, **values} if values else defaults)
        raw = await self._run(prepared.sql, params)
        return prepared.rows(raw)

    async def _run(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        started = time.perf_counter()
        span = self.span() if self.span is not None else None
        try:
            if span is not None:
                with span:
                    return await self._retrying(sql, params)
            return await self._retrying(sql, params)
        finally:
            if self.observe is not None:
                self.observe(time.perf_counter() - started)

    async def _retrying(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        """A read is safe to repeat: one that meets a lost connection or a node that is not
        ready (a failover) runs again on another connection, within the retry deadline."""
        from garrison.db.retry import with_retry

        # Short: a reader that stays down is skipped by the replica probe within a second,
        # and the caller's own retry (records) picks another reader for its next attempt.
        return await with_retry(
            lambda: self._execute(sql, params),
            deadline=min(2.0, self.settings.retry_deadline),
            unavailable=False,
        )

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                result = await conn.exec_driver_sql(sql, params)
                return list(result.all())
        import asyncmy.errors

        pool = self._pool or await self._open_pool()
        try:
            async with asyncio.timeout(self.settings.pool_timeout):
                conn = await pool.acquire()
        except TimeoutError:
            # As SQLAlchemy's pool reports it (the error middleware makes it a 503).
            raise PoolTimeout(
                f"no reader connection came free within {self.settings.pool_timeout}s"
            ) from None
        except (asyncmy.errors.Error, OSError) as exc:
            # The pool opens a connection here when none is idle: a database that is down
            # fails now, as a driver error (transient, so a 503), never a raw exception.
            raise _driver_error("connect", exc, self.dialect) from exc
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(sql, params)
                rows: Sequence[Sequence[Any]] = await cursor.fetchall()
                return rows
        except (asyncmy.errors.Error, OSError) as exc:
            raise _driver_error(sql, exc, self.dialect, params) from exc
        finally:
            pool.release(conn)

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a raw SQL statement as dicts by column name (status and replication
        probes; MySQL/MariaDB only)."""
        import asyncmy.errors

        pool = self._pool or await self._open_pool()
        try:
            async with asyncio.timeout(self.settings.pool_timeout):
                conn = await pool.acquire()
        except (asyncmy.errors.Error, OSError) as exc:
            raise _driver_error("connect", exc, self.dialect) from exc
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(sql, params or None)
                names = [str(column[0]) for column in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
        except (asyncmy.errors.Error, OSError) as exc:
            raise _driver_error(sql, exc, self.dialect, params) from exc
        finally:
            pool.release(conn)

    def pool_stats(self) -> tuple[int, int] | None:
        """(connections open, connections in use) of the driver pool; None before the first
        read opens it (and on SQLite, which reads through the engine)."""
        pool = self._pool
        if pool is None:
            return None
        return int(pool.size), int(pool.size) - int(pool.freesize)

    async def _open_pool(self) -> Any:
        import asyncmy
        import asyncmy.errors

        async with self._pool_lock:
            if self._pool is None:
                url = make_url(self.engine.url)
                try:
                    self._pool = await asyncmy.create_pool(
                        minsize=1,
                        maxsize=self.settings.pool_size + self.settings.max_overflow,
                        pool_recycle=self.settings.pool_recycle,
                        host=url.host or "127.0.0.1",
                        port=url.port or 3306,
                        user=url.username or "",
                        password=url.password or "",
                        db=url.database or "",
                        charset=str(url.query.get("charset", "utf8mb4")),
                        autocommit=True,
                        connect_timeout=self.settings.connect_timeout,
                        init_command="SET time_zone = '+00:00'",
                        ssl=self.ssl,
                    )
                except (asyncmy.errors.Error, OSError) as exc:
                    raise _driver_error("connect", exc, self.dialect) from exc
            return self._pool

    async def dispose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()


def _driver_error(
    sql: str, exc: Exception, dialect: Dialect, params: tuple[Any, ...] = ()
) -> DBAPIError:
    """An asyncmy error (or the socket error under it) as SQLAlchemy raises driver errors."""
    import asyncmy.errors

    if not isinstance(exc, asyncmy.errors.Error):  # a socket error: the connection is lost
        exc = asyncmy.errors.OperationalError(2013, f"lost connection: {type(exc).__name__}")
    error = DBAPIError.instance(sql, params, exc, asyncmy.errors.Error, dialect=dialect)
    assert isinstance(error, DBAPIError)  # an asyncmy error is always a DBAPI error
    return error


async def rows_of(
    source: FastReader | AsyncSession | AsyncConnection, statement: AnySelect
) -> list[dict[str, Any]]:
    """The statement's rows as dicts, on a ``FastReader`` or inside a session/connection
    (a write path reads in its own transaction)."""
    if isinstance(source, FastReader):
        return await source.all(statement)
    result = await source.execute(statement)
    return [{str(k): v for k, v in row.items()} for row in result.mappings()]


_writes: dict[tuple[int, str, tuple[str, ...]], Bound] = {}


async def execute_in(session: AsyncSession, statement: Insert, values: Mapping[str, Any]) -> None:
    """Run a one-row INSERT of ``values`` on the session's connection, inside its
    transaction, straight on the driver: for a module-level statement written on every
    change (the audit entry), SQLAlchemy's execution layer costs more CPU than the
    statement. The values go through the columns' bind processors, as through SQLAlchemy.
    Not seen by the engine's metrics and tracing events."""
    conn = await session.connection()
    dialect = conn.dialect
    key = (id(statement), dialect.name, tuple(values))
    write = _writes.get(key)
    if write is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(values))
        write = Bound(compiled.string, *Bound.parts(compiled, dialect))
        _writes[key] = write
    params = write.bind(values)
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    if dialect.name == "sqlite":
        import sqlite3

        try:
            cursor = await driver.execute(write.sql, params)
            await cursor.close()
        except sqlite3.Error as exc:
            raise DBAPIError.instance(
                write.sql, params, exc, sqlite3.Error, dialect=dialect
            ) from exc
        return
    import asyncmy.errors

    try:
        async with driver.cursor() as cursor:
            await cursor.execute(write.sql, params)
    except asyncmy.errors.Error as exc:
        raise DBAPIError.instance(
            write.sql, params, exc, asyncmy.errors.Error, dialect=dialect
        ) from exc
