"""HAProxy: rendering the shipped front end, and driving a running one through its runtime
API (the admin socket) so a colour switch needs no reload.

The template is ``deploy/haproxy/haproxy.cfg.tmpl`` in the source tree (shipped inside the
wheel as ``garrison/ops/deploy/haproxy/``); the same rendered file is what the tests run.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import string
from dataclasses import dataclass
from pathlib import Path

from garrison import __version__
from garrison.ops.deploy.config import (
    COLOURS,
    Colour,
    DeployConfig,
    DeployConfigError,
    Environment,
)

TEMPLATE_NAME = "haproxy.cfg.tmpl"


def template_path() -> Path:
    shipped = Path(__file__).parent / "haproxy" / TEMPLATE_NAME
    if shipped.exists():
        return shipped
    return Path(__file__).resolve().parents[4] / "deploy" / "haproxy" / TEMPLATE_NAME


def certificate_path(config: DeployConfig, name: str, environment: Environment) -> Path:
    if environment.frontend.certificate is not None:
        return config.path(environment.frontend.certificate)
    return config.env_dir(name) / "tls" / "haproxy.pem"


MAX_SOCKET_PATH = 97  # HAProxy's limit for a unix socket's path


def socket_path(config: DeployConfig, name: str, environment: Environment) -> Path:
    path = environment.frontend.admin_socket
    found = path if path.is_absolute() else config.env_dir(name) / path
    if len(str(found)) > MAX_SOCKET_PATH:
        raise DeployConfigError(
            f"environments.{name}.frontend.admin_socket: {found} is longer than "
            f"{MAX_SOCKET_PATH} characters; give a shorter absolute path"
        )
    return found


def render(config: DeployConfig, name: str, *, active: Colour = "blue") -> str:
    """The HAProxy configuration of environment ``name``; ``active``'s servers start
    enabled, the other colour's start in maintenance (``disabled``)."""
    environment = config.environment(name)
    front = environment.frontend
    lines = []
    for colour in COLOURS:
        for server, host, port in environment.servers(colour):
            state = "" if colour == active else " disabled"
            lines.append(f"    server {server} {host}:{port} check weight 100{state}")
    env_dir = config.env_dir(name)
    return string.Template(template_path().read_text()).substitute(
        backend=environment.backend,
        env=name,
        version=__version__,
        log_target=front.log_target,
        admin_socket=socket_path(config, name, environment),
        pidfile=env_dir / "haproxy.pid",
        bind=front.bind,
        https_port=front.https_port,
        http_port=front.http_port,
        certificate=certificate_path(config, name, environment),
        hsts_max_age=front.hsts_max_age,
        check_host="localhost",
        check_interval=front.check_interval,
        check_fastinter=front.check_fastinter,
        check_fall=front.check_fall,
        check_rise=front.check_rise,
        slowstart=front.slowstart,
        server_maxconn=front.server_maxconn,
        maxconn=front.maxconn,
        servers="\n".join(lines),
    )


class RuntimeApiError(Exception):
    """HAProxy's admin socket refused a command or could not be reached."""


@dataclass(frozen=True)
class ServerStat:
    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", NOLB, no check …
    current_sessions: int
    total_sessions: int
    responses_5xx: int
    responses_total: int
    weight: int

    @property
    def up(self) -> bool:
        return self.status.startswith("UP") or self.status == "no check"


class RuntimeApi:
    """One command per connection on the admin socket (``stats socket … level admin``)."""

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    async def command(self, line: str) -> str:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path)), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise RuntimeApiError(
                f"cannot reach HAProxy's admin socket {self.path}: {exc}"
            ) from exc
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise RuntimeApiError(f"HAProxy did not answer {line.split()[0]!r}: {exc}") from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        answer = data.decode(errors="replace")
        lowered = answer.lower()
        if "unknown command" in lowered or "no such" in lowered or "require" in lowered:
            raise RuntimeApiError(f"HAProxy refused {line!r}: {answer.strip()}")
        return answer

    async def set_state(self, backend: str, server: str, state: str) -> None:
        answer = await self.command(f"set server {backend}/{server} state {state}")
        if answer.strip():
            raise RuntimeApiError(f"HAProxy refused state {state} for {server}: {answer.strip()}")

    async def set_weight(self, backend: str, server: str, weight: int) -> None:
        answer = await self.command(f"set server {backend}/{server} weight {weight}")
        if answer.strip():
            raise RuntimeApiError(f"HAProxy refused weight {weight} for {server}: {answer.strip()}")

    async def stats(self, backend: str) -> dict[str, ServerStat]:
        answer = await self.command("show stat")
        rows = csv.DictReader(io.StringIO(answer.lstrip("# ")))
        found: dict[str, ServerStat] = {}
        for row in rows:
            if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            responses = [_int(row.get(f"hrsp_{kind}")) for kind in ("1xx", "2xx", "3xx", "4xx")]
            fivexx = _int(row.get("hrsp_5xx"))
            found[row["svname"]] = ServerStat(
                name=row["svname"],
                status=row.get("status", ""),
                current_sessions=_int(row.get("scur")),
                total_sessions=_int(row.get("stot")),
                responses_5xx=fivexx,
                responses_total=sum(responses) + fivexx + _int(row.get("hrsp_other")),
                weight=_int(row.get("weight")),
            )
        return found


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
