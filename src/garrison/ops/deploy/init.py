"""``garrison deploy init DIR``: a starter deploy config, each environment's HAProxy
configuration, and a self-signed certificate for local use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from garrison.ops.deploy.config import DeployConfig, load_config
from garrison.ops.deploy.haproxy import certificate_path, render, socket_path
from garrison.ops.deploy.tls import write_self_signed

STARTER = """\
# Garrison deploy configuration (`garrison deploy --help`). Paths are relative to this file.
state_dir = "state"
keep_releases = 3
# pip_args = ["--no-index", "--find-links", "wheels"]   # an offline wheelhouse

[environments.staging]
hosts = ["127.0.0.1"]
blue_ports = [9101]
green_ports = [9201]
env_file = "staging.env"

[environments.staging.frontend]
https_port = 9443
http_port = 9080

[environments.production]
hosts = ["127.0.0.1"]
blue_ports = [8101, 8102]
green_ports = [8201, 8202]
env_file = "production.env"
requires_staging = "staging"
approvals = 1

[environments.production.frontend]
https_port = 8443
http_port = 8080

[environments.production.checks]
watch_seconds = 60
max_5xx_ratio = 0.01
max_p95_ms = 500
"""

ENV_STARTER = """\
# Variables of the {name} release (GARRISON_*; a secret may be given as NAME_FILE=path).
GARRISON_ENV={name}
GARRISON_HTTP__TRUSTED_PROXIES=["127.0.0.1"]
# GARRISON_DATABASE_URL=mysql+asyncmy://garrison@127.0.0.1:3306/garrison
# GARRISON_REDIS_URL=redis://127.0.0.1:6379/0
# GARRISON_SECRET_KEY_FILE=/run/secrets/garrison_secret_key
# GARRISON_METRICS__TOKEN_FILE=/run/secrets/garrison_metrics_token
"""


@dataclass(frozen=True)
class Rendered:
    environment: str
    haproxy_config: Path
    certificate: Path
    admin_socket: Path
    certificate_created: bool


def init(directory: Path, *, config_path: Path | None = None) -> tuple[Path, list[Rendered]]:
    directory.mkdir(parents=True, exist_ok=True)
    path = config_path or directory / "deploy.toml"
    if not path.exists():
        path.write_text(STARTER)
        for name in ("staging", "production"):
            env_file = directory / f"{name}.env"
            if not env_file.exists():
                env_file.write_text(ENV_STARTER.format(name=name))
    config = load_config(path)
    return path, [_render(config, name, directory) for name in config.environments]


def _render(config: DeployConfig, name: str, directory: Path) -> Rendered:
    environment = config.environments[name]
    target = directory / "haproxy" / f"{name}.cfg"
    target.parent.mkdir(parents=True, exist_ok=True)
    certificate = certificate_path(config, name, environment)
    created = False
    if not certificate.exists():
        write_self_signed(certificate)
        created = True
    admin = socket_path(config, name, environment)
    admin.parent.mkdir(parents=True, exist_ok=True)
    config.env_dir(name).mkdir(parents=True, exist_ok=True)
    target.write_text(render(config, name))
    return Rendered(name, target, certificate, admin, created)
