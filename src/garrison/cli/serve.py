"""``garrison serve``: check the schema, then run the HTTP server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from garrison.cli.common import fail, load_handlers, prepare_schema, settings_or_exit
from garrison.log import get_logger
from garrison.server import run_server
from garrison.settings import Settings

# Set for the worker processes: prometheus-client reads it when it is first imported.
PROMETHEUS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.", min=1, max=65535)] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.", min=1)] = None,
) -> None:
    """Serve the API (http://localhost:3000 by default)."""
    settings = settings_or_exit()
    log = get_logger("garrison.serve")
    if settings.worker.in_process:  # fail here, in one line, not in every server worker
        load_handlers(settings)
    prepare_schema(settings)
    bind_host = host or settings.http.host
    bind_port = port or settings.http.port
    log.info("garrison.starting", env=settings.env, host=bind_host, port=bind_port)
    if settings.metrics.enabled:
        _prepare_metrics(settings, settings.data_dir / "metrics" / str(bind_port))
    run_server(
        host=bind_host,
        port=bind_port,
        workers=workers or settings.http.workers,
        shutdown_timeout=settings.http.shutdown_timeout,
        backlog=settings.http.backlog,
        connections_per_worker=settings.http.connections_per_worker,
        keep_alive_timeout=settings.http.keep_alive_timeout,
    )


def _prepare_metrics(settings: Settings, directory: Path) -> None:
    """Multi-process metrics: an emptied directory shared by the workers, announced to them
    through the environment before anything imports prometheus-client, and the separate
    listener (when configured) run from this process."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # the previous run's figures
        stale.unlink()
    os.environ[PROMETHEUS_DIR_VARIABLE] = str(directory)
    os.environ["GARRISON_METRICS__MULTIPROC_DIR"] = str(directory)
    from garrison.metrics.exposition import start_listener

    address = settings.metrics.listen_address
    if address is None and settings.metrics.token is None and not settings.is_development:
        get_logger("garrison.serve").warning(
            "metrics.not_exposed",
            hint="set GARRISON_METRICS__TOKEN or GARRISON_METRICS__LISTEN to scrape /metrics",
        )
    if address is not None:
        try:
            start_listener(*address, directory)
        except OSError as exc:
            fail(f"cannot listen on GARRISON_METRICS__LISTEN={settings.metrics.listen}: {exc}")
        get_logger("garrison.serve").info("metrics.listening", address=settings.metrics.listen)
