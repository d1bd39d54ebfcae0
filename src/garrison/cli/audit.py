"""``garrison audit verify|purge``: check the hash chain, apply retention now."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.audit import retention
from garrison.audit.verify import VerifyReport, verify_chain
from garrison.cli.common import fail, run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.settings import Settings

app = typer.Typer(help="The audit log.", no_args_is_help=True)


async def _verify(settings: Settings) -> VerifyReport:
    db = Database(settings.db_url, settings.db)
    try:
        async with db.read_session() as session:
            return await verify_chain(session, checkpoint_key=retention.signing_key(settings))
    finally:
        await db.dispose()


@app.command("verify")
def verify() -> None:
    """Check the hash chain; exit 1 naming the first broken link."""
    settings = settings_or_exit()
    report = run_db(_verify(settings))
    if report.broken is not None:
        where = f"entry #{report.broken.seq}" if report.broken.seq else "checkpoint"
        if report.broken.event_id:
            where += f" (event {report.broken.event_id})"
        fail(f"audit chain broken at {where}: {report.broken.reason}")
    typer.echo(
        f"ok: {report.checked} entries verified (#{report.first_seq}..#{report.head_seq}); "
        f"head {report.head_hash}"
    )
    if report.unsealed:
        typer.echo(f"{report.unsealed} newer entries are not sealed yet (the worker seals them)")


async def _purge(settings: Settings, days: int | None) -> retention.PurgeResult:
    db = Database(settings.db_url, settings.db)
    try:
        return await retention.purge(db, settings=settings, retention_days=days)
    finally:
        await db.dispose()


@app.command("purge")
def purge(
    days: Annotated[
        int | None,
        typer.Option("--older-than-days", min=1, help="Default: audit.retention_days (90)."),
    ] = None,
) -> None:
    """Delete entries past retention now (the worker also does this on a schedule)."""
    settings = settings_or_exit()
    result = run_db(_purge(settings, days))
    typer.echo(f"purged {result.purged} entries older than {result.cutoff.isoformat()}")
