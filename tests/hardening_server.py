"""A real Garrison server process for the hardening tests (fuzzing, faults), over loopback.

``running_server`` migrates a database, creates an administrator with the CLI and a user
through the API, starts ``garrison serve`` on a free port and yields a ``Running`` with both
users' tokens. Everything it starts is stopped on exit.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers import GOOD_SECRET, LoggedProcess, free_port, garrison, wait_until_accepting

ADMIN_EMAIL = "admin@example.com"
USER_EMAIL = "user@example.com"
PASSWORD = "correct horse battery staple"


@dataclass
class Running:
    server: LoggedProcess
    base_url: str
    env: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def login(self, who: str) -> str:
        email = ADMIN_EMAIL if who == "admin" else USER_EMAIL
        response = httpx.post(
            f"{self.base_url}/api/v1/auth/login",
            json={"email": email, "password": PASSWORD},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        self.tokens[who] = token
        return token

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def server_env(data_dir: Path, database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {
        "GARRISON_DATA_DIR": str(data_dir),
        "GARRISON_DATABASE_URL": database_url,
        "GARRISON_SECRET_KEY": GOOD_SECRET,
        "GARRISON_LOG__FORMAT": "json",
        "GARRISON_WORKER__IN_PROCESS": "false",
    }
    if redis_url is not None:
        env["GARRISON_REDIS_URL"] = redis_url
        env["GARRISON_REDIS_PREFIX"] = f"hardening-{uuid.uuid4().hex[:10]}:"
    return env


@contextmanager
def running_server(env: dict[str, str], *, start: bool = True) -> Iterator[Running]:
    up = garrison("migrate", "up", env=env)
    assert up.returncode == 0, up.stderr
    made = garrison(
        "users", "create", "--email", ADMIN_EMAIL, "--role", "admin", "--password-stdin",
        env=env, stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    port = free_port()
    server = LoggedProcess(
        [sys.executable, "-m", "garrison", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
    )
    try:
        server.wait_for("garrison.ready")
        wait_until_accepting(port)
        running = Running(server, f"http://127.0.0.1:{port}", env)
        registered = httpx.post(
            f"{running.base_url}/api/v1/auth/register",
            json={"email": USER_EMAIL, "password": PASSWORD},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        running.login("admin")
        running.login("user")
        yield running
    finally:
        server.stop()
