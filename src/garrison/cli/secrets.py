"""``garrison secrets rotate``: re-encrypt what older master keys sealed."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import Progress

from garrison.cli.common import prepare_schema, run_db, settings_or_exit
from garrison.crypto import keyring_for
from garrison.db.engine import Database
from garrison.settings import Settings

app = typer.Typer(help="Encryption keys for data at rest.", no_args_is_help=True)


async def _rotate(settings: Settings, *, quiet: bool) -> dict[str, int]:
    from garrison import rewrap

    keyring = keyring_for(settings)
    db = Database(settings.db_url, settings.db)
    counts: dict[str, int] = {}
    try:
        names = sorted(rewrap.registered())
        with Progress(disable=quiet, transient=True) as progress:
            task = progress.add_task("re-encrypting", total=len(names))
            for name in names:
                counts[name] = await rewrap.rotate(db, keyring, name)
                progress.advance(task)
    finally:
        await db.dispose()
    return counts


@app.command("rotate")
def rotate(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Re-encrypt every value sealed under a key in GARRISON_PREVIOUS_SECRET_KEYS with the
    current GARRISON_SECRET_KEY. Safe to run again; afterwards the old keys can be removed."""
    settings = settings_or_exit()
    prepare_schema(settings)
    counts = run_db(_rotate(settings, quiet=as_json))
    key_id = keyring_for(settings).current_id
    if as_json:
        typer.echo(json.dumps({"key_id": key_id, "rewrapped": counts}))
        return
    for name, count in counts.items():
        typer.echo(f"{name}: {count} value(s) re-encrypted")
    typer.echo(f"everything is sealed under key {key_id}")
