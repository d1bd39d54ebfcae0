"""``garrison users create`` and ``garrison keys rotate`` as an operator runs them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from garrison.auth.models import SigningKey, User, UserRole
from garrison.db.engine import Database
from tests.conftest import make_settings
from tests.helpers import garrison


def _env(tmp_path: Path) -> dict[str, str]:
    return {"GARRISON_DATA_DIR": str(tmp_path / "var")}


async def _rows(tmp_path: Path) -> tuple[list[tuple[str, str, str]], list[SigningKey]]:
    settings = make_settings(tmp_path)
    db = Database(settings.db_url, settings.db)
    try:
        async with db.read_session() as session:
            users = (
                await session.execute(
                    select(User.email, User.password_hash, UserRole.role_name).join(
                        UserRole, UserRole.user_id == User.id
                    )
                )
            ).all()
            keys = list((await session.scalars(select(SigningKey))).all())
    finally:
        await db.dispose()
    return [tuple(row) for row in users], keys  # type: ignore[misc]


def test_users_create_reads_the_password_from_stdin(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert garrison("migrate", "up", env=env).returncode == 0
    secret = "a long admin passphrase"
    result = garrison(
        "users",
        "create",
        "--email",
        "Root@Example.com",
        "--role",
        "admin",
        "--password-stdin",
        env=env,
        stdin=secret + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert "created user" in result.stdout
    assert secret not in result.stdout + result.stderr
    users, _keys = asyncio.run(_rows(tmp_path))
    assert [(email, role) for email, _hash, role in users] == [("root@example.com", "admin")]
    assert users[0][1].startswith("$argon2id$")

    again = garrison(
        "users",
        "create",
        "--email",
        "root@example.com",
        "--password-stdin",
        env=env,
        stdin=secret + "\n",
    )
    assert again.returncode == 1
    assert "exists" in again.stderr


def test_users_create_refuses_weak_or_missing_passwords(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert garrison("migrate", "up", env=env).returncode == 0
    weak = garrison(
        "users",
        "create",
        "--email",
        "a@example.com",
        "--password-stdin",
        env=env,
        stdin="password\n",
    )
    assert weak.returncode == 1
    assert "too common" in weak.stderr
    assert "password\n" not in weak.stdout
    no_flag = garrison("users", "create", "--email", "a@example.com", env=env)
    assert no_flag.returncode == 2
    bad_role = garrison(
        "users",
        "create",
        "--email",
        "a@example.com",
        "--role",
        "wizard",
        "--password-stdin",
        env=env,
        stdin="a long enough passphrase\n",
    )
    assert bad_role.returncode == 1
    assert "wizard" in bad_role.stderr


def test_keys_rotate_publishes_a_new_key(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert garrison("migrate", "up", env=env).returncode == 0
    first = garrison("keys", "rotate", env=env)
    assert first.returncode == 0, first.stderr
    assert "published" in first.stdout
    _users, keys = asyncio.run(_rows(tmp_path))
    assert len(keys) == 1
    assert keys[0].retired_at is None
    assert keys[0].signs_from <= keys[0].created_at  # nothing else could sign: at once
    assert keys[0].kid in first.stdout
    second = garrison("keys", "rotate", env={**env, "GARRISON_AUTH__KEY_ACTIVATION_DELAY": "0"})
    assert second.returncode == 0
    _users, keys = asyncio.run(_rows(tmp_path))
    assert len(keys) == 2
    old = next(key for key in keys if key.kid in first.stdout)
    assert old.retired_at is not None
    assert old.published_until is not None


def test_help(tmp_path: Path) -> None:
    for args in (["users"], ["users", "create"], ["keys"], ["keys", "rotate"]):
        result = garrison(*args, "--help")
        assert result.returncode == 0
        assert "Usage" in result.stdout
