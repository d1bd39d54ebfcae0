"""The app server processes of a colour: started from a release's virtual environment,
probed over HTTP, stopped with SIGTERM (granian drains in-flight requests) and, past the
grace period, SIGKILL.

A child gets a clean environment: the deploy config's variables for the environment (its
``env_file`` and ``env`` table) and a fixed ``PATH``, never the deploying shell's variables.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from garrison.ops.deploy.releases import Release

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Probe:
    status: int | None
    body: bytes
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


def http_get(
    host: str, port: int, path: str, *, timeout: float = 2.0, headers: dict[str, str] | None = None
) -> Probe:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Probe(response.status, response.read())
    except (OSError, http.client.HTTPException) as exc:
        return Probe(None, b"", f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def child_env(release: Release, variables: dict[str, str], data_dir: Path) -> dict[str, str]:
    env = {"PATH": f"{release.venv / 'bin'}:{BASE_PATH}", "LANG": "C.UTF-8"}
    env.setdefault("GARRISON_DATA_DIR", str(data_dir))
    env.update(variables)
    return env


def start(release: Release, *, host: str, port: int, env: dict[str, str], log_path: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - the release's own entry point
            [str(release.garrison), "serve", "--host", host, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the deploy command; stopped by its group
            cwd=str(log_path.parent),
        )
    return process.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().split(") ", 1)[1].startswith("Z"):
                _reap(pid)
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"garrison" in handle.read()
    except (OSError, IndexError):
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _group_alive(pgid: int) -> bool:
    """Whether a Garrison process of the group ``pgid`` is left (its leader reaped if it is
    our child). Members are looked up in /proc, each checked to be Garrison's, so a group
    id that an unrelated process took over later is never signalled."""
    _reap(pgid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":  # pgrp; zombies hold no port
                continue
            if b"garrison" in (entry / "cmdline").read_bytes():
                return True
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return False


def stop(pid: int | None, *, grace: float = 30.0) -> None:
    """SIGTERM the process group, wait up to ``grace`` seconds for every process of it to
    exit, then SIGKILL it. The whole group, not only its leader: the server's workers hold
    the listening port until they are gone, and the next release starts on that port."""
    if not pid or not (alive(pid) or _group_alive(pid)):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded wait for the exit we asked for
    if _group_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _group_alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)  # SIGKILL is not refused; the kernel takes a moment
    _reap(pid)


def log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[:200] for line in text[-lines:])
