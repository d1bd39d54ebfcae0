"""A whole deploy stack on loopback, for the deploy tests and drills: a Garrison wheel (and
deliberately broken builds of it), a deploy config on free ports, HAProxy started from the
config that ``garrison deploy init`` rendered, and the ``garrison`` command run as an
operator would.

The broken builds are the same wheel with one file changed (a fault switch):
``never_ready`` answers 503 on ``/api/health/ready``; ``fails_behind_proxy`` answers 500 to
every API request that came through the balancer (its own readiness still passes, so it is
given traffic and must be rolled back); ``contract`` adds a destructive migration.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SECRET = "Zq8mW3nR6tY1uI4oP7aS0dF2gH5jK9lX-deploy"
METRICS_TOKEN = "Mt7pQ2wE9rT4yU1iO6aS3dF8gH5jK0lZ-metrics"

_FAULTS = {
    "never_ready": """

def _fault(app):  # fault switch: this build is never ready
    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/api/health/ready":
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"broken build"})
            return
        await app(scope, receive, send)
    return wrapped
""",
    "fails_behind_proxy": """

def _fault(app):  # fault switch: every API request through the balancer fails
    async def wrapped(scope, receive, send):
        headers = dict(scope.get("headers") or [])
        if (
            scope["type"] == "http"
            and scope["path"].startswith("/api/v1")
            and b"x-forwarded-for" in headers
        ):
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"broken build"})
            return
        await app(scope, receive, send)
    return wrapped
""",
}

_CONTRACT = '''"""drop something the serving release still reads (test build)

Revision ID: 9999
Revises: {down}
"""

revision = "9999"
down_revision = "{down}"
branch_labels = None
depends_on = None
destructive = True
safe_after = "99.0"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build_wheel(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--disable-pip-version-check", "-w", str(out), str(REPO)),
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob("garrison-*.whl"))


def variant(wheel: Path, out: Path, kind: str) -> Path:
    """A copy of ``wheel`` with one change: a marker (``build2``: a new release of the same
    code), a fault switch, or a contract migration. Same file name, different contents."""
    target_dir = out / kind
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w") as dest:
        heads = sorted(n for n in source.namelist() if "/migrations/versions/rev_" in n)
        for item in source.infolist():
            data = source.read(item)
            if kind in _FAULTS and item.filename == "garrison/app.py":
                text = data.decode()
                text = text.replace(
                    "    return create_app(settings)\n", "    return _fault(create_app(settings))\n"
                )
                data = (text + _FAULTS[kind]).encode()
            dest.writestr(item, data)
        if kind == "build2":
            dest.writestr("garrison/_build.txt", uuid.uuid4().hex)
        if kind == "contract":
            last = heads[-1].rsplit("rev_", 1)[1].split("_", 1)[0]
            dest.writestr(
                "garrison/db/migrations/versions/rev_9999_contract.py",
                _CONTRACT.format(down=last),
            )
    return target


@dataclass
class Stack:
    root: Path
    database_url: str
    redis_url: str
    blue_ports: list[int]
    green_ports: list[int]
    watch_seconds: float = 3.0
    canary_seconds: float = 4.0
    canary_weight: int = 10  # the suite's stack: quick detection; the shipped default is 5
    https_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    env_name: str = "production"
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.root / "deploy.toml"

    @property
    def env_dir(self) -> Path:
        return self.root / "state" / self.env_name

    @property
    def socket(self) -> Path:
        return self.env_dir / "run" / "haproxy.sock"

    @property
    def certificate(self) -> Path:
        return self.env_dir / "tls" / "haproxy.pem"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        secrets = self.root / "secrets"
        secrets.mkdir(exist_ok=True)
        (secrets / "secret_key").write_text(SECRET + "\n")
        (secrets / "metrics_token").write_text(METRICS_TOKEN + "\n")
        prefix = f"garrison-deploy-{uuid.uuid4().hex[:8]}:"
        env_lines = {
            "GARRISON_ENV": "staging",
            "GARRISON_DATABASE_URL": self.database_url,
            "GARRISON_REDIS_URL": self.redis_url,
            "GARRISON_REDIS_PREFIX": prefix,
            "GARRISON_SECRET_KEY_FILE": str(secrets / "secret_key"),
            "GARRISON_METRICS__TOKEN_FILE": str(secrets / "metrics_token"),
            "GARRISON_HTTP__TRUSTED_PROXIES": '["127.0.0.1"]',
            "GARRISON_RATE_LIMIT__REQUESTS_PER_MINUTE": "100000000",
            "GARRISON_RATE_LIMIT__BURST": "100000000",
            "GARRISON_RATE_LIMIT__ROUTES": "[]",
            "GARRISON_AUTH__REGISTRATION": "open",
            "GARRISON_LOG__LEVEL": "warning",
            "GARRISON_HTTP__SHUTDOWN_TIMEOUT": "10",
        }
        (self.root / "production.env").write_text(
            "\n".join(f"{k}={v}" for k, v in env_lines.items()) + "\n"
        )
        site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
        self.config_path.write_text(
            f"""state_dir = "state"
keep_releases = 3
site_packages = "{site}"

[environments.staging]
blue_ports = [{free_port()}]
green_ports = [{free_port()}]
[environments.staging.frontend]
https_port = {free_port()}
http_port = {free_port()}

[environments.production]
hosts = ["127.0.0.1"]
blue_ports = {json.dumps(self.blue_ports)}
green_ports = {json.dumps(self.green_ports)}
env_file = "production.env"
requires_staging = "staging"
approvals = 1

[environments.production.frontend]
https_port = {self.https_port}
http_port = {self.http_port}
slowstart = "2s"

[environments.production.checks]
watch_seconds = {self.watch_seconds}
window_seconds = 3
min_requests = 5
readiness_timeout = 6
canary_seconds = {self.canary_seconds}
canary_weight = {self.canary_weight}
"""
        )

    def cli_env(self) -> dict[str, str]:
        """The operator's shell: the ``garrison`` command, the deploy ledger's database, and
        the installation's secret (its commands write audit entries to that database)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB"))}
        base.update(
            {
                "PATH": f"{VENV_BIN}:{base.get('PATH', '/usr/bin:/bin')}",
                "GARRISON_DATABASE_URL": self.database_url,
                "GARRISON_SECRET_KEY_FILE": str(self.root / "secrets" / "secret_key"),
                "GARRISON_DATA_DIR": str(self.root / "cli"),
                "GARRISON_DEPLOY__CONFIG": str(self.config_path),
                "GARRISON_LOG__LEVEL": "warning",
                "USER": "deployer",
            }
        )
        return base

    def cli(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "garrison"), *args],
            env=self.cli_env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )

    def app_env(self) -> dict[str, str]:
        """The release's variables, for one-off commands (``users create``) on the host."""
        env = self.cli_env()
        for line in (self.root / "production.env").read_text().splitlines():
            name, _, value = line.partition("=")
            env[name] = value
        env["GARRISON_DATA_DIR"] = str(self.env_dir / "data")
        return env

    def start_haproxy(self) -> None:
        rendered = self.cli("deploy", "init", str(self.root), "--config", str(self.config_path))
        if rendered.returncode != 0:
            raise RuntimeError(rendered.stderr)
        config = self.root / "haproxy" / f"{self.env_name}.cfg"
        log = (self.root / "haproxy.log").open("ab")
        self.haproxy = subprocess.Popen(
            [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.haproxy.poll() is not None:
                raise RuntimeError((self.root / "haproxy.log").read_text()[-2000:])
            if self.socket.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as sock:
                        sock.connect(str(self.socket))
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("HAProxy's admin socket never appeared")
            time.sleep(0.05)  # bounded poll for the socket

    def admin(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_status(self) -> dict[str, str]:
        found = {}
        for line in self.admin("show stat").splitlines()[1:]:
            cells = line.split(",")
            if len(cells) > 17 and cells[1] not in ("FRONTEND", "BACKEND", ""):
                found[cells[1]] = cells[17]
        return found

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.env_dir / "state.json").read_text())
        return data

    def close(self) -> None:
        """Stop every app server the deploys started, then HAProxy."""
        import signal

        try:
            state = self.state()
        except (OSError, ValueError):
            state = {"colours": {}}
        for colour in state.get("colours", {}).values():
            for pid in colour.get("pids", {}).values():
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 20
        for colour in state.get("colours", {}).values():
            for pid in colour.get("pids", {}).values():
                while time.monotonic() < deadline:
                    try:
                        os.killpg(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.05)  # bounded wait for the exit we asked for
                else:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()
