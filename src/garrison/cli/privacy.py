"""``garrison privacy retention status|apply``: what retention would delete, and applying it."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from garrison.cli.common import run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.privacy import retention
from garrison.settings import Settings

app = typer.Typer(help="Privacy: retention policies.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention of records and system data.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


async def _run(settings: Settings, *, apply: bool, dry_run: bool) -> list[retention.Item]:
    db = Database(settings.db_url, settings.db)
    try:
        if apply:
            return await retention.apply(db, settings, dry_run=dry_run)
        return await retention.status(db, settings)
    finally:
        await db.dispose()


def _show(items: list[retention.Item], *, as_json: bool, applied: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps([item.as_dict() for item in items]).decode())
        return
    table = Table(
        "rule", "older than (days)", "due", *(["deleted"] if applied else []), "applied by"
    )
    for item in items:
        extra = [str(item.deleted)] if applied else []
        table.add_row(item.name, f"{item.days:g}", str(item.due), *extra, item.applied_by)
    Console().print(table)


@retention_app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Every retention rule and how much is due now."""
    settings = settings_or_exit()
    _show(run_db(_run(settings, apply=False, dry_run=True)), as_json=as_json, applied=False)


@retention_app.command("apply")
def apply(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report only; delete nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete what is due now (the worker also does this on the audit purge's schedule)."""
    settings = settings_or_exit()
    items = run_db(_run(settings, apply=True, dry_run=dry_run))
    _show(items, as_json=as_json, applied=not dry_run)
