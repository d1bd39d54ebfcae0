"""``garrison monitor URL…``: watch health endpoints from outside and feed the status page."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from garrison.cli.common import fail, prepare_schema, run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.ops.status import monitor
from garrison.settings import Settings

_STYLE = {"operational": "green", "degraded": "yellow", "outage": "red"}


def _table(probes: list[monitor.Probe]) -> Table:
    table = Table("component", "state", "HTTP", "ms", "detail")
    for p in probes:
        style = _STYLE.get(p.state, "")
        table.add_row(
            p.component,
            f"[{style}]{p.state}[/{style}]",
            str(p.http_status or "-"),
            f"{p.milliseconds:.0f}",
            p.detail,
        )
    return table


async def _watch(
    settings: Settings,
    urls: list[str],
    *,
    interval: float,
    probe_timeout: float,
    once: bool,
    record: bool,
    as_json: bool,
) -> list[monitor.Probe]:
    db = Database(settings.db_url, settings.db) if record else None
    stop = asyncio.Event()
    if not once:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    console = Console()
    try:
        while True:
            probes = await monitor.run_once(
                db=db, urls=urls, settings=settings.status, probe_timeout=probe_timeout
            )
            if as_json:
                typer.echo(orjson.dumps([p.__dict__ for p in probes]).decode())
            else:
                console.print(_table(probes))
            if once:
                return probes
            try:
                async with asyncio.timeout(interval):
                    await stop.wait()
                return probes
            except TimeoutError:
                continue
    finally:
        if db is not None:
            await db.dispose()


def monitor_command(
    urls: Annotated[
        list[str], typer.Argument(help="Health URLs, e.g. https://a.example/api/health")
    ],
    interval: Annotated[
        float, typer.Option("--interval", min=1, help="Seconds between rounds.")
    ] = 60.0,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per probe.")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Store results as status components.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array per round.")] = False,
) -> None:
    """Probe health endpoints and show them on this instance's status page as
    ``monitor:<host/path>`` components. Exit 1 (with --once) when one is down."""
    for url in urls:
        if not url.startswith(("http://", "https://")):
            fail(f"not an http(s) URL: {url!r}", 2)
    settings = settings_or_exit(configure_logs=not as_json)
    if record:
        prepare_schema(settings)
    probes = run_db(
        _watch(
            settings,
            urls,
            interval=interval,
            probe_timeout=timeout,
            once=once,
            record=record,
            as_json=as_json,
        )
    )
    if once and any(p.state == "outage" for p in probes):
        raise typer.Exit(1)
