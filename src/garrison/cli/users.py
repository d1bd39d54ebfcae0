"""``garrison users``: create users non-interactively."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from garrison.auth import service
from garrison.auth.runtime import AuthRuntime
from garrison.cli.common import fail, run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.errors import GarrisonError
from garrison.events import Actor
from garrison.settings import Settings
from garrison.store.factory import open_store

app = typer.Typer(help="Manage users.", no_args_is_help=True)


async def _create(settings: Settings, email: str, role: str, password: str) -> str:
    db = Database(settings.db_url, settings.db)
    store = open_store(settings)
    try:
        runtime = AuthRuntime(settings, db, store)
        return await service.register(
            runtime,
            email=email,
            password=password,
            roles=[role],
            actor=Actor.system(),
            verified=True,
        )
    finally:
        await store.close()
        await db.dispose()


def _problem(exc: GarrisonError) -> str:
    errors = exc.extensions.get("errors") or []
    details = "; ".join(str(e.get("detail")) for e in errors if isinstance(e, dict))
    return f"{exc.detail or exc.title}{': ' + details if details else ''}"


@app.command("create")
def create(
    email: Annotated[str, typer.Option("--email", help="The user's e-mail address.")],
    role: Annotated[
        str, typer.Option("--role", help="Role to give: admin, user, service…")
    ] = "user",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an active, verified user (the password is never taken as an argument)."""
    if not password_stdin:
        fail("pass --password-stdin and the password on standard input", 2)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        fail("no password on standard input", 2)
    settings = settings_or_exit()
    try:
        user_id = run_db(_create(settings, email, role, password))
    except GarrisonError as exc:
        fail(_problem(exc))
    typer.echo(f"created user {user_id} ({role})")
