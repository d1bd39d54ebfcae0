from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from garrison.db import migrate
from garrison.db.engine import create_engine
from tests.conftest import make_settings


async def _tables(url: str, tmp_path: Path) -> set[str]:
    settings = make_settings(tmp_path, database_url=url)
    engine = create_engine(url, settings.db)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(fresh_database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    heads = migrate.head_revisions()

    status = await migrate.status(settings.db_url, settings.db)
    assert status.current == frozenset()
    assert status.pending

    await migrate.upgrade(settings.db_url, settings.db)
    status = await migrate.status(settings.db_url, settings.db)
    assert status.up_to_date
    assert status.current == heads
    assert "garrison_instance" in await _tables(fresh_database_url, tmp_path)

    await migrate.downgrade(settings.db_url, settings.db, "base")
    status = await migrate.status(settings.db_url, settings.db)
    assert status.current == frozenset()
    assert await _tables(fresh_database_url, tmp_path) <= {"alembic_version"}

    await migrate.upgrade(settings.db_url, settings.db)
    assert (await migrate.status(settings.db_url, settings.db)).up_to_date


async def test_every_revision_steps_down_and_up(fresh_database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    revisions = [rev for rev, _down, _msg in migrate.history()]
    for revision in revisions:
        await migrate.upgrade(settings.db_url, settings.db, revision)
        await migrate.downgrade(settings.db_url, settings.db, "-1")
        await migrate.upgrade(settings.db_url, settings.db, revision)
        status = await migrate.status(settings.db_url, settings.db)
        assert status.current == frozenset({revision})


async def test_instance_row_written_once(fresh_database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrate.upgrade(settings.db_url, settings.db)
    engine = create_engine(settings.db_url, settings.db)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT instance_id FROM garrison_instance"))).all()
    finally:
        await engine.dispose()
    assert len(rows) == 1
    assert len(rows[0][0]) == 36
