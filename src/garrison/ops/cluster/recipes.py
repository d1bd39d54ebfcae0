"""The recipe files under ``deploy/cluster/`` and how they are filled in.

The files are plain MariaDB option files, an HAProxy configuration, a health-check script
and SQL, with ``${field}`` placeholders (``string.Template``): the same files serve as the
production templates, where each field is a host's address or port.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from string import Template

import garrison

RECIPES = ("galera-node.cnf", "replica.cnf", "haproxy.cfg", "wsrep-check.sh", "bootstrap.sql")


def recipes_dir() -> Path:
    """``deploy/cluster``: inside the installed package, else the source checkout's."""
    package = Path(garrison.__file__).resolve().parent
    for candidate in (package / "deploy" / "cluster", package.parents[1] / "deploy" / "cluster"):
        if (candidate / "galera-node.cnf").is_file():
            return candidate
    raise FileNotFoundError("deploy/cluster recipes not found next to the garrison package")


def render(recipe: str, /, **fields: object) -> str:
    text = (recipes_dir() / recipe).read_text()
    return Template(text).substitute({key: str(value) for key, value in fields.items()})


def write_private(path: Path, content: str, mode: int = 0o600) -> Path:
    """Write a file readable by its owner only (credentials, keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)
    return path


def key_file(path: Path) -> Path:
    """A file_key_management key file: key id 1, a random AES-256 key (hex)."""
    if not path.exists():
        write_private(path, f"1;{secrets.token_hex(32)}\n")
    return path


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` now (held open together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
