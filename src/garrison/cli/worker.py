"""``garrison worker``: deliver outbox messages and run the retention job until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from garrison.cli.common import load_handlers, prepare_schema, run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.settings import Settings
from garrison.worker import Worker


async def _run(settings: Settings, *, once: bool) -> int:
    db = Database(settings.db_url, settings.db)
    worker = Worker(db, settings)
    try:
        if once:
            total = 0
            while claimed := await worker.run_once():
                total += claimed
            if worker.webhooks is not None:  # and the webhooks due now
                while await worker.webhooks.run_once():
                    await worker.webhooks.drain()
                await worker.webhooks.close()
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
    load_handlers(settings)
    prepare_schema(settings)
    delivered = run_db(_run(settings, once=once))
    if once:
        typer.echo(f"claimed {delivered} message(s)")
