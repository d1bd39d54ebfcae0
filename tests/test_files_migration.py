"""Migration 0016 (the files table) steps down and up on both backends."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from garrison.db import Database, migrate
from tests.conftest import make_settings


async def _has_files_table(url: str, tmp_path: Path) -> bool:
    settings = make_settings(tmp_path, database_url=url)
    db = Database(settings.db_url, settings.db)
    try:
        async with db.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await db.dispose()
    return "files" in names


async def test_the_files_migration_steps_down_and_up(
    fresh_database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrate.upgrade(settings.db_url, settings.db)
    assert await _has_files_table(fresh_database_url, tmp_path)
    await migrate.downgrade(settings.db_url, settings.db, "0015")
    assert not await _has_files_table(fresh_database_url, tmp_path)
    await migrate.upgrade(settings.db_url, settings.db)
    assert await _has_files_table(fresh_database_url, tmp_path)
