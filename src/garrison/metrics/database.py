"""Database pool and query metrics, from SQLAlchemy engine and pool events.

Pools are labelled ``writer`` and ``reader`` (the reader only when it is a separate engine),
and the hot-path readers' driver pools ``reader/driver`` (and ``replica:…/driver``).
Query durations are labelled by the statement's first keyword, never by its text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from garrison.db.engine import Database
from garrison.db.size import storage_bytes
from garrison.metrics.registry import (
    DB_CLUSTER_SIZE,
    DB_POOL_CHECKED_OUT,
    DB_POOL_OVERFLOW,
    DB_POOL_SIZE,
    DB_POOL_WAIT,
    DB_QUERY_DURATION,
    DB_REPLICA_USABLE,
    DB_REPLICATION_LAG,
    DB_STORAGE_BYTES,
    DB_STORAGE_WARN_BYTES,
    OTHER,
)

_OPERATIONS = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT"}
)
_STARTED = "_garrison_query_started"
_INSTRUMENTED = "_garrison_metrics"
_COUNTED = "_garrison_checked_out"


def operation(statement: str) -> str:
    word = statement.lstrip(" \t\r\n(").split(None, 1)[0].upper() if statement.strip() else ""
    if word == "WITH":
        return "SELECT"
    return word if word in _OPERATIONS else OTHER.upper()


def _label(db: Database, index: int) -> str:
    """``reader`` for the writer's own read pool, ``replica:host:port`` for each replica."""
    return "reader" if index == 0 else f"replica:{db.replicas.replicas[index - 1].name}"


def instrument_database(db: Database) -> None:
    """Attach the listeners to the writer engine and every reader engine."""
    instrument_engine(db.engine.sync_engine, "writer")
    for index, engine in enumerate(db.reader_engines()):
        if engine is not db.engine:
            instrument_engine(engine.sync_engine, _label(db, index))
    # The hot-path reads bypass the engine's events; they report their duration directly.
    for index, reader in enumerate(db.fast_readers()):
        reader.observe = DB_QUERY_DURATION.labels(_label(db, index), "SELECT").observe


def refresh_pool(db: Database) -> None:
    refresh_pool_gauges(db.engine.sync_engine.pool, "writer")
    for index, engine in enumerate(db.reader_engines()):
        if engine is not db.engine:
            refresh_pool_gauges(engine.sync_engine.pool, _label(db, index))
    # The hot-path readers' driver pools (``<reader>/driver``): open and in-use connections.
    for index, reader in enumerate(db.fast_readers()):
        stats = reader.pool_stats()
        if stats is not None:
            label = f"{_label(db, index)}/driver"
            DB_POOL_SIZE.labels(label).set(stats[0])
            DB_POOL_CHECKED_OUT.labels(label).set(stats[1])


async def refresh_storage(db: Database, warn_mb: int | None) -> None:
    """The database's storage figure (read at most once a minute) and its threshold."""
    try:
        DB_STORAGE_BYTES.set(await storage_bytes(db))
    except Exception:  # the database being away is the health check's to report
        return
    if warn_mb is not None:
        DB_STORAGE_WARN_BYTES.set(warn_mb * 1024 * 1024)


async def refresh_replication(db: Database) -> None:
    """Probe every reader now (so lag shows in the scrape that follows its appearance) and
    read the writer's cluster size."""
    if db.is_sqlite:
        return
    await db.replicas.probe_all()
    for replica in db.replicas.replicas:
        DB_REPLICATION_LAG.labels(replica.name).set(-1 if replica.lag is None else replica.lag)
        DB_REPLICA_USABLE.labels(replica.name).set(1 if replica.usable else 0)
    try:
        rows = await db.writer_fast_read.query("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'")
    except Exception:  # the writer being away is the health check's to report
        return
    DB_CLUSTER_SIZE.set(int(rows[0]["Value"]) if rows else 0)


def refresh_pool_gauges(pool: Pool, label: str) -> None:
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "overflow", None)
    if callable(size):
        DB_POOL_SIZE.labels(label).set(size())
    if callable(overflow):
        # QueuePool counts overflow from -size upwards; only connections beyond size count.
        DB_POOL_OVERFLOW.labels(label).set(max(0, overflow()))


def instrument_engine(engine: Engine, label: str) -> None:
    if getattr(engine, _INSTRUMENTED, False):
        return
    setattr(engine, _INSTRUMENTED, True)
    query_duration = DB_QUERY_DURATION
    checked_out = DB_POOL_CHECKED_OUT.labels(label)

    # The start time rides on the statement's execution context, so a statement that never
    # finishes (a cancelled request) leaves nothing behind on the connection.
    def before_execute(
        _conn: Any, _cursor: Any, _stmt: str, _params: Any, context: Any, *_: Any
    ) -> None:
        if context is not None:
            setattr(context, _STARTED, time.perf_counter())

    def finished(context: Any, statement: str | None) -> None:
        started: float | None = getattr(context, _STARTED, None)
        if started is not None:
            setattr(context, _STARTED, None)
            elapsed = time.perf_counter() - started
            query_duration.labels(label, operation(statement or "")).observe(elapsed)

    def after_execute(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, *_: Any
    ) -> None:
        finished(context, statement)

    def on_error(exception_context: Any) -> None:
        if exception_context.execution_context is not None:
            finished(exception_context.execution_context, exception_context.statement)

    # A connection checked out before the listeners were attached is not counted when it
    # comes back: the gauge is the process's, shared by every engine with this label.
    def on_checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        record.record_info[_COUNTED] = True
        checked_out.inc()
        refresh_pool_gauges(engine.pool, label)

    def on_checkin(_dbapi: Any, record: Any) -> None:
        if record.record_info.pop(_COUNTED, False):
            checked_out.dec()

    event.listen(engine, "before_cursor_execute", before_execute)
    event.listen(engine, "after_cursor_execute", after_execute)
    event.listen(engine, "handle_error", on_error)
    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
    _time_acquisition(engine.pool, label)
    refresh_pool_gauges(engine.pool, label)


def _time_acquisition(pool: Pool, label: str) -> None:
    # SQLAlchemy has no "before checkout" event, so the wait for a connection is measured
    # around the pool's own acquisition step on this one pool instance.
    original: Callable[[], Any] | None = getattr(pool, "_do_get", None)
    if original is None:
        return
    wait = DB_POOL_WAIT.labels(label)

    def timed_get() -> Any:
        started = time.perf_counter()
        try:
            return original()
        finally:
            wait.observe(time.perf_counter() - started)

    pool._do_get = timed_get  # type: ignore[method-assign]
