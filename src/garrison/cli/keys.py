"""``garrison keys``: signing-key rotation."""

from __future__ import annotations

import typer

from garrison.auth import keys
from garrison.cli.common import run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.events import Actor
from garrison.settings import Settings

app = typer.Typer(help="Token signing keys.", no_args_is_help=True)


async def _rotate(settings: Settings) -> tuple[str, str]:
    assert settings.secret_key is not None
    db = Database(settings.db_url, settings.db)
    sealer = keys.Sealer(settings.secret_key.get_secret_value())
    try:
        row = await transact(
            db,
            lambda session: keys.rotate(
                session, sealer=sealer, settings=settings.auth, actor=Actor.system()
            ),
        )
        return row.kid, row.signs_from.isoformat()
    finally:
        await db.dispose()


@app.command("rotate")
def rotate() -> None:
    """Publish a new signing key now; it signs after GARRISON_AUTH__KEY_ACTIVATION_DELAY."""
    settings = settings_or_exit()
    kid, signs_from = run_db(_rotate(settings))
    typer.echo(f"new key {kid} published; signs from {signs_from}")
