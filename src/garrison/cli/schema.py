"""``garrison schema``: export this environment's collections, or bring them to a file's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from pydantic import ValidationError

from garrison.cli.common import EXIT_CONFIG, fail, run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.events import Actor
from garrison.records import plan as planner
from garrison.records.spec import CollectionSpec
from garrison.settings import Settings

app = typer.Typer(help="Export and apply collection schemas.", no_args_is_help=True)


async def _export(settings: Settings) -> bytes:
    db = Database(settings.db_url, settings.db)
    try:
        async with db.read_session() as session:
            document = planner.export_document(await planner.current_specs(session))
    finally:
        await db.dispose()
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


@app.command("export")
def export(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file.")] = None,
) -> None:
    """Print (or write) every collection definition as JSON."""
    settings = settings_or_exit()
    data = run_db(_export(settings))
    if out is None:
        sys.stdout.write(data.decode() + "\n")
    else:
        out.write_bytes(data + b"\n")
        typer.echo(f"wrote {out}", err=True)


async def _plan(
    settings: Settings, desired: list[CollectionSpec], prune: bool
) -> list[planner.Step]:
    db = Database(settings.db_url, settings.db)
    try:
        async with db.read_session() as session:
            return planner.plan(await planner.current_specs(session), desired, prune=prune)
    finally:
        await db.dispose()


async def _apply(settings: Settings, steps: list[planner.Step]) -> None:
    db = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            await planner.apply(session, steps=steps, actor=Actor.system())
    finally:
        await db.dispose()


@app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="A file written by `garrison schema export`.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Also delete collections the file does not have.")
    ] = False,
) -> None:
    """Show the plan that brings this database to FILE's collections, then apply it."""
    settings = settings_or_exit()
    try:
        desired = planner.read_document(orjson.loads(file.read_bytes()))
        steps = run_db(_plan(settings, desired, prune))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", EXIT_CONFIG)
    except orjson.JSONDecodeError:
        fail(f"{file} is not JSON", EXIT_CONFIG)
    except (planner.PlanError, ValidationError) as exc:
        fail(f"{file}: {str(exc).splitlines()[0]}", EXIT_CONFIG)
    if not steps:
        typer.echo("nothing to do: the database already matches")
        return
    typer.echo("plan:")
    for step in steps:
        typer.echo(f"  {'!' if step.destructive else '+'} {step.describe()}")
    if dry_run:
        return
    if not yes:
        if not sys.stdin.isatty():
            fail("not applied: re-run with --yes to apply this plan", EXIT_CONFIG)
        typer.confirm("apply this plan?", abort=True)
    run_db(_apply(settings, steps))
    typer.echo(f"applied {len(steps)} step(s)")
