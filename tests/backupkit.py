"""Helpers for the backup tests: running ``garrison backup …`` in-process, and the bytes
of every artifact in a storage location."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from garrison.cli import app

SECRET = "backup-test-secret-0123456789-abcdefghijklmnop"
KNOWN_VALUE = "zebra-quartz-1729-plaintext-canary"


def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def cli_json(env: dict[str, str], *args: str) -> Any:
    code, out, err = cli(env, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def stored_bytes(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


def backed_up_with_files(env: dict[str, str], store: Path, files: int) -> Any:
    """``garrison backup create`` with ``files`` uploaded files in it: counted in the
    manifest, no known value in clear text in ``store``, and ``verify`` passes; the manifest."""
    made = cli_json(env, "backup", "create")
    assert made["files"] == files
    assert KNOWN_VALUE.encode() not in stored_bytes(store)
    verified = cli_json(env, "backup", "verify", made["id"])
    assert verified["ok"] is True, verified
    assert f"{files} uploaded files" in verified["detail"]
    return made
