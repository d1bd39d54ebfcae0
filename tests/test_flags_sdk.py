"""The OpenFeature Python SDK with its OFREP provider, unchanged, against two Garrison
servers (granian processes over loopback) sharing MariaDB and Redis: a boolean flag, a 10 %
rollout whose buckets stay put, and a kill switch thrown on one instance that the other
serves (no timing assertion here: ``bench.flags`` prints how long that takes)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tests import services
from tests.helpers import LoggedProcess, free_port, garrison, wait_until_accepting

pytestmark = pytest.mark.slow
PASSWORD = "a long enough password for the admin"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Two servers on one database and one Redis; yields their URLs and an admin token."""
    url = services.create_mysql_database()
    env = {
        "GARRISON_DATABASE_URL": url,
        "GARRISON_REDIS_URL": services.check_redis(),
        "GARRISON_REDIS_PREFIX": f"t-{uuid.uuid4().hex[:8]}:",
        "GARRISON_DATA_DIR": str(tmp_path / "var"),  # one generated secret for both
        "GARRISON_LOG__FORMAT": "json",
        "GARRISON_LOG__LEVEL": "warning",
        "GARRISON_WORKER__IN_PROCESS": "false",
    }
    servers: list[LoggedProcess] = []
    try:
        assert garrison("migrate", "up", env=env).returncode == 0
        made = garrison(
            "users", "create", "--email", "ops@example.com", "--role", "admin",
            "--password-stdin", env=env, stdin=PASSWORD + "\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        ports = [free_port(), free_port()]
        for port in ports:
            args = [sys.executable, "-m", "garrison", "serve", "--port", str(port)]
            servers.append(LoggedProcess(args, env))
        for port in ports:
            wait_until_accepting(port, timeout=60)
        first, second = (f"http://127.0.0.1:{port}" for port in ports)
        login = httpx.post(
            f"{first}/api/v1/auth/login",
            json={"email": "ops@example.com", "password": PASSWORD},
            timeout=30,
        )
        assert login.status_code == 200, login.text
        yield first, second, {"Authorization": f"Bearer {login.json()['access_token']}"}
    finally:
        for server in servers:
            server.stop()
        services.drop_mysql_database(url)


def wait_for(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)  # a poll interval, not a wait for an expected duration
    return result


def test_openfeature_sdk_against_two_instances(cluster: tuple[str, str, dict[str, str]]) -> None:
    first, second, admin = cluster
    key = httpx.post(
        f"{first}/api/v1/api-keys",
        json={"name": "sdk", "scopes": ["flags:evaluate"]},
        headers=admin,
        timeout=30,
    ).json()["key"]
    definition = {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "default_variant": "off",
        "environments": {
            "development": {
                "rollout": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]
            }
        },
    }
    created = httpx.put(
        f"{first}/api/v1/flags/new-checkout", json=definition, headers=admin, timeout=30
    )
    assert created.status_code == 201, created.text

    api.set_provider(
        OFREPProvider(second, headers_factory=lambda: {"X-API-Key": key}), domain="garrison"
    )
    client = api.get_client("garrison")
    try:
        users = [f"user-{n}" for n in range(300)]

        def on_for(user: str) -> bool:
            details = client.get_boolean_details(
                "new-checkout", False, EvaluationContext(targeting_key=user)
            )
            assert details.error_code is None, details.error_message
            assert details.reason == Reason.SPLIT
            return details.value

        # The second instance learns of the flag from the first (Redis pub/sub).
        wait_for(
            lambda: (
                client.get_boolean_details(
                    "new-checkout", False, EvaluationContext(targeting_key="probe")
                ).error_code
                is None
            )
        )
        rolled = {user for user in users if on_for(user)}
        assert 10 <= len(rolled) <= 60  # about 10 % of 300
        assert {user for user in users if on_for(user)} == rolled  # stable across calls

        missing = client.get_boolean_details("no-such-flag", True)
        assert missing.value is True
        assert missing.error_code == ErrorCode.FLAG_NOT_FOUND

        killed = httpx.patch(
            f"{first}/api/v1/flags/new-checkout",
            json={"environments": {"development": {"enabled": False}}},
            headers=admin,
            timeout=30,
        )
        assert killed.status_code == 200
        some = sorted(rolled)[0]
        details = wait_for(
            lambda: (
                d
                if (d := client.get_boolean_details(
                    "new-checkout", True, EvaluationContext(targeting_key=some)
                )).reason == Reason.DISABLED
                else None
            )
        )  # fmt: skip
        assert details.value is False
        assert details.variant == "off"
    finally:
        api.shutdown()
