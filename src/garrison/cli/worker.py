"""``garrison worker``: deliver outbox messages and run the retention job until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from garrison.cli.common import EXIT_CONFIG, EXIT_SCHEMA, fail, run_db, settings_or_exit
from garrison.db import migrate
from garrison.db.engine import Database
from garrison.outbox.registry import import_handler_modules
from garrison.outbox.worker import Worker
from garrison.settings import ConfigError, Settings


async def _run(settings: Settings, *, once: bool) -> int:
    db = Database(settings.db_url, settings.db)
    worker = Worker(db, settings)
    try:
        if once:
            total = 0
            while claimed := await worker.run_once():
                total += claimed
            return total
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await worker.run(stop)
        return 0
    finally:
        await db.dispose()


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit.")
    ] = False,
) -> None:
    """Run the background worker (outbox delivery, audit retention). SIGTERM stops it after
    the batch in hand."""
    settings = settings_or_exit()
    try:
        import_handler_modules(settings.worker.handler_modules)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    if settings.is_development:
        run_db(migrate.upgrade(settings.db_url, settings.db))
    else:
        status = run_db(migrate.status(settings.db_url, settings.db))
        if status.pending:
            fail(
                f"{len(status.pending)} migration(s) pending; run `garrison migrate up` first",
                EXIT_SCHEMA,
            )
    delivered = run_db(_run(settings, once=once))
    if once:
        typer.echo(f"claimed {delivered} message(s)")
