"""``garrison migrate``: bring the database schema up or down, show where it stands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from garrison.cli.common import run_db, settings_or_exit
from garrison.db import migrate

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("up")
def up(
    to: Annotated[str, typer.Option("--to", help="Target revision (default: latest).")] = "heads",
) -> None:
    """Apply pending migrations."""
    settings = settings_or_exit()
    before = run_db(migrate.status(settings.db_url, settings.db))
    run_db(migrate.upgrade(settings.db_url, settings.db, to))
    after = run_db(migrate.status(settings.db_url, settings.db))
    applied = len(before.pending) - len(after.pending)
    typer.echo(f"applied {applied} migration(s); at {_revs(after.current)}")


@app.command("down")
def down(
    to: Annotated[
        str, typer.Option("--to", help="Target revision, or 'base' to remove everything.")
    ] = "-1",
) -> None:
    """Revert migrations: one step by default, or down to --to."""
    settings = settings_or_exit()
    run_db(migrate.downgrade(settings.db_url, settings.db, to))
    after = run_db(migrate.status(settings.db_url, settings.db))
    typer.echo(f"now at {_revs(after.current)}")


@app.command("status")
def status() -> None:
    """Show the applied revision and what is pending. Exit 3 when migrations are pending."""
    settings = settings_or_exit()
    result = run_db(migrate.status(settings.db_url, settings.db))
    typer.echo(f"current: {_revs(result.current)}")
    typer.echo(f"latest:  {_revs(result.heads)}")
    if result.pending:
        typer.echo(f"pending: {', '.join(result.pending)}")
        raise typer.Exit(3)
    typer.echo("up to date")


@app.command("history")
def history() -> None:
    """List every revision, oldest first."""
    table = Table("revision", "down", "description")
    for revision, down_revision, message in migrate.history():
        table.add_row(revision, down_revision or "-", message.splitlines()[0] if message else "")
    Console().print(table)


def _revs(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "(empty database)"
