"""The ``garrison`` command as a user runs it: real processes, real exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import GOOD_SECRET, garrison


def test_help_everywhere() -> None:
    commands = [
        [],
        ["serve"],
        ["version"],
        ["migrate"],
        ["migrate", "up"],
        ["migrate", "down"],
        ["migrate", "status"],
        ["migrate", "history"],
        ["config"],
        ["config", "show"],
        ["schema"],
        ["schema", "export"],
        ["schema", "apply"],
    ]
    for args in commands:
        result = garrison(*args, "--help")
        assert result.returncode == 0, args
        assert "Usage" in result.stdout, args


def test_version() -> None:
    from garrison import __version__

    result = garrison("version")
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


def test_production_without_database_exits_2_with_one_line(tmp_path: Path) -> None:
    result = garrison(
        "serve", env={"GARRISON_ENV": "production", "GARRISON_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "GARRISON_DATABASE_URL" in lines[0]
    assert "Traceback" not in result.stderr


def test_placeholder_secret_exits_2(tmp_path: Path) -> None:
    result = garrison(
        "serve",
        env={
            "GARRISON_ENV": "staging",
            "GARRISON_DATA_DIR": str(tmp_path),
            "GARRISON_DATABASE_URL": "mysql+asyncmy://u:p@127.0.0.1/x",
            "GARRISON_REDIS_URL": "redis://127.0.0.1:6379/0",
            "GARRISON_SECRET_KEY": "changeme",
        },
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("garrison: error: GARRISON_SECRET_KEY: is a placeholder")


def test_config_show_redacts(tmp_path: Path) -> None:
    result = garrison(
        "config",
        "show",
        "--json",
        env={
            "GARRISON_DATA_DIR": str(tmp_path),
            "GARRISON_SECRET_KEY": GOOD_SECRET,
            "GARRISON_DATABASE_URL": "mysql+asyncmy://app:db-hunter2@127.0.0.1/g",
        },
    )
    assert result.returncode == 0, result.stderr
    assert GOOD_SECRET not in result.stdout
    assert "db-hunter2" not in result.stdout
    assert '"secret_key": "**********"' in result.stdout


def test_migrate_round_trip(fresh_database_url: str, tmp_path: Path) -> None:
    env = {"GARRISON_DATA_DIR": str(tmp_path), "GARRISON_DATABASE_URL": fresh_database_url}
    status = garrison("migrate", "status", env=env)
    assert status.returncode == 3
    assert "pending" in status.stdout
    up = garrison("migrate", "up", env=env)
    assert up.returncode == 0, up.stderr
    assert garrison("migrate", "status", env=env).returncode == 0
    history = garrison("migrate", "history", env=env)
    assert "0001" in history.stdout
    down = garrison("migrate", "down", "--to", "base", env=env)
    assert down.returncode == 0, down.stderr
    assert garrison("migrate", "status", env=env).returncode == 3


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = garrison(
        "migrate",
        "up",
        env={
            "GARRISON_DATA_DIR": str(tmp_path),
            "GARRISON_DATABASE_URL": "mysql+asyncmy://root@127.0.0.1:1/x",
        },
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach the database" in result.stderr


def test_serve_refuses_pending_migrations_in_staging(
    mysql_url: str, redis_url: str, tmp_path: Path
) -> None:
    from tests import services

    url = services.create_mysql_database()
    try:
        result = garrison(
            "serve",
            env={
                "GARRISON_ENV": "staging",
                "GARRISON_DATA_DIR": str(tmp_path),
                "GARRISON_DATABASE_URL": url,
                "GARRISON_REDIS_URL": redis_url,
                "GARRISON_SECRET_KEY": GOOD_SECRET,
            },
        )
    finally:
        services.drop_mysql_database(url)
    assert result.returncode == 3
    assert "garrison migrate up" in result.stderr


@pytest.mark.parametrize("bad", ["--port=0", "--port=abc", "--workers=0"])
def test_bad_options_are_usage_errors(bad: str) -> None:
    result = garrison("serve", bad)
    assert result.returncode == 2
