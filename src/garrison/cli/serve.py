"""``garrison serve``: check the schema, then run the HTTP server."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.cli.common import EXIT_CONFIG, EXIT_SCHEMA, fail, run_db, settings_or_exit
from garrison.db import migrate
from garrison.log import get_logger
from garrison.outbox.registry import import_handler_modules
from garrison.server import run_server
from garrison.settings import ConfigError


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.", min=1, max=65535)] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.", min=1)] = None,
) -> None:
    """Serve the API (http://localhost:3000 by default)."""
    settings = settings_or_exit()
    log = get_logger("garrison.serve")
    if settings.worker.in_process:  # fail here, in one line, not in every server worker
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
    bind_host = host or settings.http.host
    bind_port = port or settings.http.port
    log.info("garrison.starting", env=settings.env, host=bind_host, port=bind_port)
    run_server(
        host=bind_host,
        port=bind_port,
        workers=workers or settings.http.workers,
        shutdown_timeout=settings.http.shutdown_timeout,
    )
