"""Releases as artifacts: the wheel built once is installed into a virtual environment of
its own per release (``state/releases/<id>/venv``); the newest ``keep`` are kept so a
rollback needs no install."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

_WHEEL = re.compile(r"^garrison-(?P<version>[^-]+)-[^-]+-[^-]+-[^-]+\.whl$")
MANIFEST = "release.json"


class ReleaseError(Exception):
    """A release could not be found, read or installed; one line."""


@dataclass(frozen=True)
class Release:
    id: str
    version: str
    directory: Path

    @property
    def venv(self) -> Path:
        return self.directory / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def garrison(self) -> Path:
        return self.venv / "bin" / "garrison"

    @property
    def wheel(self) -> Path:
        return next(self.directory.glob("*.whl"))


def release_id(wheel: Path) -> tuple[str, str]:
    match = _WHEEL.match(wheel.name)
    if match is None:
        raise ReleaseError(f"{wheel.name} is not a Garrison wheel (garrison-VERSION-….whl)")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()[:10]
    version = match["version"]
    return f"{version}-{digest}", version


def _site_packages(venv: Path) -> Path:
    scheme = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})
    return Path(scheme["purelib"])


def install(
    wheel: Path,
    releases: Path,
    *,
    pip_args: list[str],
    site_packages: Path | None,
) -> Release:
    """Install ``wheel`` (idempotent: an installed release is reused)."""
    if not wheel.is_file():
        raise ReleaseError(f"{wheel}: no such wheel")
    rid, version = release_id(wheel)
    directory = releases / rid
    release = Release(rid, version, directory)
    if (directory / MANIFEST).exists():
        return release
    if directory.exists():
        shutil.rmtree(directory)  # a half-made install from an interrupted run
    directory.mkdir(parents=True)
    shutil.copy2(wheel, directory / wheel.name)
    try:
        subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", "venv", "--without-pip", str(release.venv)],
            check=True,
            capture_output=True,
        )
        extra = ["--no-deps"] if site_packages is not None else []
        if site_packages is not None:
            # The dependencies come from an installed environment (a wheelhouse-free host,
            # the test suite); the release's own code is still its own copy.
            (_site_packages(release.venv) / "_garrison_deps.pth").write_text(
                f"{site_packages.resolve()}\n"
            )
        subprocess.run(  # noqa: S603
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(release.python),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",  # byte-compiled on first import, off the deploy's clock
                *extra,
                *pip_args,
                str(directory / wheel.name),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        lines = (exc.stderr or exc.stdout or "").strip().splitlines()
        detail = str(lines[-1] if lines else exc)
        raise ReleaseError(f"installing {wheel.name} failed: {detail}") from None
    (directory / MANIFEST).write_text(json.dumps({"id": rid, "version": version}))
    return release


def find(releases: Path, rid: str) -> Release:
    directory = releases / rid
    manifest = directory / MANIFEST
    if not manifest.exists():
        raise ReleaseError(f"release {rid} is not installed here")
    data = json.loads(manifest.read_text())
    return Release(data["id"], data["version"], directory)


def installed(releases: Path) -> list[Release]:
    """Installed releases, newest first."""
    found = [d for d in releases.glob("*") if (d / MANIFEST).exists()]
    found.sort(key=lambda d: (d / MANIFEST).stat().st_mtime, reverse=True)
    return [find(releases, d.name) for d in found]


def prune(releases: Path, *, keep: int, protect: set[str]) -> list[str]:
    """Remove all but the newest ``keep`` releases, never one in ``protect`` (in use)."""
    removed = []
    for release in installed(releases)[keep:]:
        if release.id in protect:
            continue
        shutil.rmtree(release.directory, ignore_errors=True)
        removed.append(release.id)
    return removed
