"""``garrison quotas list|set|delete``: admin rate-limit quotas from the command line."""

from __future__ import annotations

import enum
import re
from typing import Annotated

import orjson
import typer

from garrison.cli.common import EXIT_CONFIG, fail, run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.events import Actor
from garrison.quotas import service
from garrison.quotas.errors import QuotaNotFound
from garrison.quotas.schemas import MAX_RATE, SUBJECT_PATTERN, QuotaOut
from garrison.settings import Settings
from garrison.store.factory import open_cache, open_store

app = typer.Typer(help="Rate-limit quotas per API key or role.", no_args_is_help=True)


class SubjectKind(enum.StrEnum):
    api_key = "api_key"
    role = "role"


Kind = Annotated[SubjectKind, typer.Argument(help="api_key or role.")]
Subject = Annotated[str, typer.Argument(help="The API key id or the role name.")]


def _subject(value: str) -> str:
    if not re.fullmatch(SUBJECT_PATTERN, value):
        fail(f"SUBJECT must match {SUBJECT_PATTERN}", EXIT_CONFIG)
    return value


async def _invalidate(settings: Settings) -> None:
    """Servers sharing Redis see the change at once; without Redis, within the cache TTL."""
    if not (settings.redis_url or settings.redis_sentinels):
        return
    store = open_store(settings)
    try:
        await service.invalidate_cache(open_cache(settings, store))
    finally:
        await store.close()


@app.command("list")
def list_quotas() -> None:
    """Print every quota as JSON lines."""
    settings = settings_or_exit(configure_logs=False)

    async def run() -> list[QuotaOut]:
        db = Database(settings.db_url, settings.db)
        try:
            async with db.read_session() as session:
                return [QuotaOut.model_validate(q) for q in await service.list_quotas(session)]
        finally:
            await db.dispose()

    for quota in run_db(run()):
        typer.echo(quota.model_dump_json())


@app.command("set")
def set_quota(
    kind: Kind,
    subject: Subject,
    rpm: Annotated[int, typer.Option("--rpm", min=1, max=MAX_RATE, help="Requests/minute.")],
    burst: Annotated[
        int | None, typer.Option(min=1, max=MAX_RATE, help="Requests at once.")
    ] = None,
) -> None:
    """Create or replace the quota of an API key or a role."""
    settings = settings_or_exit()
    name = _subject(subject)

    async def run() -> QuotaOut:
        db = Database(settings.db_url, settings.db)
        try:
            async with db.transaction() as session:
                quota, _created = await service.set_quota(
                    session,
                    subject_type=kind.value,
                    subject=name,
                    requests_per_minute=rpm,
                    burst=burst,
                    actor=Actor.system(),
                )
                out = QuotaOut.model_validate(quota)
        finally:
            await db.dispose()
        await _invalidate(settings)
        return out

    typer.echo(orjson.dumps(run_db(run()).model_dump(mode="json")).decode())


@app.command("delete")
def delete_quota(kind: Kind, subject: Subject) -> None:
    """Remove a quota (the default policy applies again)."""
    settings = settings_or_exit()
    name = _subject(subject)

    async def run() -> None:
        db = Database(settings.db_url, settings.db)
        try:
            async with db.transaction() as session:
                await service.delete_quota(
                    session,
                    subject_type=kind.value,
                    subject=name,
                    actor=Actor.system(),
                )
        finally:
            await db.dispose()
        await _invalidate(settings)

    try:
        run_db(run())
    except QuotaNotFound as exc:
        fail(exc.detail or "no such quota")
