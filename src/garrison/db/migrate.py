"""Alembic, driven from code: the CLI, ``serve`` and the tests all come through here.

The migration scripts live inside the package (``garrison/db/migrations``), so an installed
Garrison can migrate any database it points at. Each function opens its own engine and runs
Alembic on that connection (Alembic is synchronous; it runs inside ``run_sync``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from garrison.db.engine import create_engine
from garrison.settings import DatabaseSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> frozenset[str]:
    return frozenset(script_directory().get_heads())


@dataclass(frozen=True)
class MigrationStatus:
    current: frozenset[str]
    heads: frozenset[str]
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and self.current == self.heads


async def _run(url: str, db: DatabaseSettings, fn: Any, *args: Any) -> Any:
    engine = create_engine(url, db)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn, *args)
    finally:
        await engine.dispose()


def _with_connection(conn: Connection, action: Any, *args: Any) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    action(config, *args)


async def upgrade(url: str, db: DatabaseSettings, revision: str = "heads") -> None:
    await _run(url, db, _with_connection, command.upgrade, revision)


async def downgrade(url: str, db: DatabaseSettings, revision: str = "-1") -> None:
    await _run(url, db, _with_connection, command.downgrade, revision)


def _status(conn: Connection) -> MigrationStatus:
    scripts = script_directory()
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    current = frozenset(context.get_current_heads())
    heads = frozenset(scripts.get_heads())
    pending: list[str] = []
    for script in scripts.walk_revisions():  # newest first
        if script.revision in current or _is_ancestor(scripts, script.revision, current):
            continue
        pending.append(script.revision)
    return MigrationStatus(current=current, heads=heads, pending=tuple(reversed(pending)))


def _is_ancestor(scripts: ScriptDirectory, revision: str, current: frozenset[str]) -> bool:
    for head in current:
        for ancestor in scripts.iterate_revisions(head, "base"):
            if ancestor.revision == revision:
                return True
    return False


async def status(url: str, db: DatabaseSettings) -> MigrationStatus:
    result: MigrationStatus = await _run(url, db, _status)
    return result


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down_revision, message), oldest first."""
    rows = []
    for script in script_directory().walk_revisions():
        down = script.down_revision
        rows.append(
            (
                script.revision,
                down if isinstance(down, str) or down is None else ",".join(down),
                script.doc or "",
            )
        )
    return list(reversed(rows))


async def current_revisions(conn: Any) -> frozenset[str]:
    """The database's applied revisions, read directly (cheap enough for health checks)."""
    try:
        result = await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
    except DBAPIError:
        return frozenset()  # no version table yet: nothing applied
    return frozenset(row[0] for row in result)
