"""Finding the real MariaDB and Redis the suite runs against.

Without them a test skips with the reason; under CI (``CI=true``) a missing service is a
failure instead, so a green CI run always means the MariaDB and Redis paths ran.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

MYSQL_SERVER_URL = os.environ.get("GARRISON_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("GARRISON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(service: str, reason: str) -> None:
    message = f"{service} is not reachable ({reason})"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it")
    pytest.skip(message)


def _mysql_params() -> dict[str, object]:
    from sqlalchemy.engine import make_url

    url = make_url(MYSQL_SERVER_URL)
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
    }


async def _mysql_execute(*statements: str) -> None:
    import asyncmy

    conn = await asyncmy.connect(**_mysql_params(), connect_timeout=3)
    try:
        async with conn.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)
    finally:
        conn.close()


def create_mysql_database() -> str:
    """Create a fresh, uniquely named database; returns its SQLAlchemy URL."""
    name = f"garrison_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(
            _mysql_execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        )
    except Exception as exc:
        unavailable("MariaDB", f"{type(exc).__name__}: {exc}")
    return f"{MYSQL_SERVER_URL}/{name}?charset=utf8mb4"


def drop_mysql_database(url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    asyncio.run(_mysql_execute(f"DROP DATABASE IF EXISTS `{name}`"))


def check_redis() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        unavailable("Redis", f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return REDIS_URL


def production_env(database_url: str, redis_url: str, data_dir: str, secret: str) -> dict[str, str]:
    """The variables of a production start as the README gives it: ``PROD_DB_*`` pointing
    at ``database_url``, Redis, and a real secret."""
    from sqlalchemy.engine import make_url

    parsed = make_url(database_url)
    return {
        "GARRISON_ENV": "production",
        "GARRISON_DATA_DIR": data_dir,
        "GARRISON_REDIS_URL": redis_url,
        "GARRISON_SECRET_KEY": secret,
        "PROD_DB_HOST": parsed.host or "127.0.0.1",
        "PROD_DB_PORT": str(parsed.port or 3306),
        "PROD_DB_NAME": parsed.database or "",
        "PROD_DB_USERNAME": parsed.username or "root",
        "PROD_DB_PASSWORD": parsed.password or "",
        # The health checks' 0.8 s budget is for failing fast in production; beside the
        # suite's parallel processes (or stress-ng) a MariaDB or Redis check can take
        # longer and turn a ready server's "pass" into a 503. Tests of the budget set theirs.
        "GARRISON_HEALTH__CHECK_TIMEOUT": "5",
    }
