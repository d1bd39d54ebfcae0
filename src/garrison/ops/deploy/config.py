"""The deploy configuration: a TOML file naming each environment's hosts, colours, ports,
front end and checks (``deploy.toml``), and the small settings section that points at it.

Paths in the file are relative to the file's own directory. A file that names an unknown
host, a port out of range or used twice, or an unknown key is refused with one line naming
the field (``DeployConfigError``).
"""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, Colour] = ("blue", "green")


class DeployConfigError(Exception):
    """The deploy config is unusable; the message is one line naming the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FrontEnd(_Strict):
    """The HAProxy in front of one environment."""

    bind: str = "127.0.0.1"
    https_port: int = Field(default=8443, ge=1, le=65535)
    http_port: int = Field(default=8080, ge=1, le=65535)
    admin_socket: Path = Path("run/haproxy.sock")
    certificate: Path | None = Field(default=None, description="PEM: certificate + key")
    hsts_max_age: int = Field(default=63_072_000, ge=31_536_000)
    check_interval: str = "1s"
    check_fastinter: str = "250ms"
    check_fall: int = Field(default=2, ge=1)
    check_rise: int = Field(default=2, ge=1)
    slowstart: str = "5s"
    server_maxconn: int = Field(
        default=64,
        ge=1,
        description="requests in flight per server; more wait in HAProxy's queue, so a "
        "busy server still answers its health checks",
    )
    maxconn: int = Field(default=4000, ge=1, description="HAProxy needs 2 descriptors each")
    log_target: str = "stdout"


class Checks(_Strict):
    """How a new colour is judged before and after it is given traffic."""

    start_timeout: float = Field(default=90.0, gt=0, description="until it answers HTTP")
    readiness_timeout: float = Field(
        default=30.0, gt=0, description="from its first answer until it is ready"
    )
    switch_timeout: float = Field(default=30.0, gt=0, description="HAProxy sees it UP")
    drain_timeout: float = Field(default=30.0, gt=0, description="in-flight requests end")
    canary_seconds: float = Field(
        default=10.0, ge=0, description="the new colour takes a small share first; 0: none"
    )
    canary_weight: int = Field(default=5, ge=1, le=100, description="its weight (old: 100)")
    watch_seconds: float = Field(default=30.0, ge=0, description="the watch window")
    sample_seconds: float = Field(
        default=0.5,
        gt=0,
        description="between samples of the colour's counters (a failing canary is seen one"
        " period after its first failures)",
    )
    window_seconds: float = Field(default=5.0, gt=0, description="rates over this window")
    max_5xx_ratio: float = Field(default=0.01, ge=0, le=1)
    min_requests: int = Field(default=20, ge=1, description="before a ratio is judged")
    max_p95_ms: float = Field(default=1000.0, gt=0)
    max_failed_checks: int = Field(default=2, ge=1, description="readiness misses in a row")


class Environment(_Strict):
    hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1"], min_length=1)
    blue_ports: list[int] = Field(min_length=1)
    green_ports: list[int] = Field(min_length=1)
    backend: str = Field(default="garrison_app", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    frontend: FrontEnd = Field(default_factory=FrontEnd)
    checks: Checks = Field(default_factory=Checks)
    env: dict[str, str] = Field(default_factory=dict, description="the release's variables")
    env_file: Path | None = None
    requires_staging: str | None = Field(
        default=None, description="promotion target: the environment a release must pass"
    )
    approvals: int = Field(default=0, ge=0, le=5, description="second admins to approve")

    @model_validator(mode="after")
    def _ports(self) -> Environment:
        ports = [*self.blue_ports, *self.green_ports]
        for port in ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is out of range (1-65535)")
        if len(set(ports)) != len(ports):
            raise ValueError("a port is listed twice across blue_ports and green_ports")
        if len(self.blue_ports) != len(self.green_ports):
            raise ValueError("blue_ports and green_ports must list as many ports")
        front = {self.frontend.https_port, self.frontend.http_port}
        if front & set(ports):
            raise ValueError("an app port is also a front-end port")
        return self

    def ports(self, colour: Colour) -> list[int]:
        return self.blue_ports if colour == "blue" else self.green_ports

    def servers(self, colour: Colour) -> list[tuple[str, str, int]]:
        """(HAProxy server name, host, port) of every instance of ``colour``."""
        found = []
        for h, host in enumerate(self.hosts, start=1):
            for p, port in enumerate(self.ports(colour), start=1):
                suffix = f"{p}" if len(self.hosts) == 1 else f"{h}-{p}"
                found.append((f"{colour}-{suffix}", host, port))
        return found


class DeployConfig(_Strict):
    state_dir: Path = Path("state")
    keep_releases: int = Field(default=3, ge=1, le=50)
    pip_args: list[str] = Field(default_factory=list, description="e.g. --find-links wheels")
    site_packages: Path | None = Field(
        default=None, description="share an installed environment's dependencies (no-deps)"
    )
    environments: dict[str, Environment] = Field(min_length=1)

    base: Path = Field(default=Path("."), exclude=True)

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else (self.base / value).resolve()

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments))
            raise DeployConfigError(f"unknown environment {name!r} (known: {known})") from None

    def env_dir(self, name: str) -> Path:
        return self.path(self.state_dir) / name

    def releases_dir(self) -> Path:
        return self.path(self.state_dir) / "releases"


def _local_addresses() -> set[str]:
    found = {"localhost"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    return found


def check_host(host: str) -> None:
    """A host must resolve, and (this version drives processes locally) be this machine."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise DeployConfigError(f"hosts: unknown host {host!r} (it does not resolve)") from None
    local = _local_addresses()
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]))
        if address.is_loopback or str(address) in local:
            return
    raise DeployConfigError(
        f"hosts: {host!r} is not this machine; run `garrison deploy` on each host"
    )


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "config"


def load_config(path: Path) -> DeployConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DeployConfigError(
            f"{path}: no deploy config (create one with `garrison deploy init DIR`)"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeployConfigError(f"{path}: {exc}") from None
    try:
        config = DeployConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise DeployConfigError(f"{path}: {_location(error['loc'])}: {error['msg']}") from None
    config.base = path.resolve().parent
    for environment in config.environments.values():
        for host in environment.hosts:
            check_host(host)
    return config


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments, optional quotes), as Docker's ``--env-file``."""
    found: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not name.strip():
            raise DeployConfigError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[name.strip()] = value
    return found
