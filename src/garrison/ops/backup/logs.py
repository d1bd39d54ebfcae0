"""Continuous log archiving: a tool writes the transaction log into a local spool
(``mariadb-binlog --read-from-remote-server --raw --stop-never`` for MariaDB, ``litestream
replicate`` to a file replica for SQLite) and ``Archiver`` ships what is new every
``upload_interval`` seconds, each piece compressed and encrypted like every artifact.

Binary logs grow in place, so each upload is the byte range added since the last one:
``logs/mariadb/<file>/<start>-<end>``. Litestream's files never change once written, so each
is shipped once under its own path: ``logs/sqlite/<path>``. ``logs/<engine>/state.json``
records when the archive was last known to be complete (the end of the restore window) and
is what ``backup:log_lag`` reads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from garrison.crypto import Keyring
from garrison.log import get_logger
from garrison.ops.backup import artifact
from garrison.ops.backup.errors import BackupNotFound, LogGap
from garrison.ops.backup.manifest import Engine
from garrison.ops.backup.storage import Storage

log = get_logger("garrison.backup")
_PIECE = re.compile(r"^logs/mariadb/([^/]+)/(\d{16})-(\d{16})$")


class LogState(BaseModel):
    archived_at: datetime
    files: dict[str, int] = Field(default_factory=dict)
    # Litestream orders its files by their time stamps: they are restored with them.
    mtimes: dict[str, float] = Field(default_factory=dict)
    last_event_at: datetime | None = None


def state_key(engine: Engine) -> str:
    return f"logs/{engine}/state.json"


def load_state(storage: Storage, engine: Engine) -> LogState | None:
    try:
        return LogState.model_validate_json(storage.get_bytes(state_key(engine)))
    except (BackupNotFound, ValidationError):
        return None


def piece_key(name: str, start: int, end: int) -> str:
    return f"logs/mariadb/{name}/{start:016d}-{end:016d}"


def binlog_pieces(storage: Storage) -> dict[str, list[tuple[int, int, str]]]:
    found: dict[str, list[tuple[int, int, str]]] = {}
    for key, _size in storage.keys("logs/mariadb/"):
        match = _PIECE.match(key)
        if match:
            found.setdefault(match.group(1), []).append(
                (int(match.group(2)), int(match.group(3)), key)
            )
    return {name: sorted(pieces) for name, pieces in found.items()}


def _number(name: str) -> int:
    return int(name.rpartition(".")[2])


def plan_binlogs(
    pieces: dict[str, list[tuple[int, int, str]]], first: str
) -> list[tuple[str, list[str]]]:
    """The files from ``first`` on, each with its piece keys; ``LogGap`` on any hole."""
    names = sorted((n for n in pieces if _number(n) >= _number(first)), key=_number)
    if not names or names[0] != first:
        raise LogGap(f"the log archive has no {first}, where this backup's log continues")
    plan = []
    for index, name in enumerate(names):
        if index and _number(name) != _number(names[index - 1]) + 1:
            missing = f"{name.rpartition('.')[0]}.{_number(names[index - 1]) + 1:06d}"
            raise LogGap(
                f"the log archive is missing {missing} (between {names[index - 1]} and {name})"
            )
        expected = 0
        for start, end, _key in pieces[name]:
            if start != expected:
                raise LogGap(f"the log archive is missing bytes {expected}..{start} of {name}")
            expected = end
        plan.append((name, [key for _s, _e, key in pieces[name]]))
    return plan


class Archiver:
    """Ships the spool to storage; one per engine, supervised by ``run``."""

    def __init__(
        self,
        *,
        engine: Engine,
        storage: Storage,
        keyring: Keyring,
        spool: Path,
        command: Callable[[LogState | None], list[str]],
        env: dict[str, str] | None = None,
        upload_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.storage = storage
        self.keyring = keyring
        self.spool = spool
        self.command = command
        self.env = env
        self.upload_interval = upload_interval
        self.state: LogState | None = None
        self.uploaded_bytes = 0

    def _ship_binlogs(self) -> bool:
        """Upload what the binlog spool gained; True when something was shipped."""
        assert self.state is not None
        shipped = False
        names = sorted(
            (p.name for p in self.spool.iterdir() if p.is_file() and p.name[-1].isdigit()),
            key=_number,
        )
        for name in names:
            path = self.spool / name
            done = self.state.files.get(name, 0)
            with path.open("rb") as handle:
                handle.seek(done)
                fresh = handle.read()
            if not fresh:
                continue
            self._put(piece_key(name, done, done + len(fresh)), fresh)
            self.state.files[name] = done + len(fresh)
            shipped = True
        # A file with a successor is complete and shipped: the spool need not keep it.
        for name in names[:-1]:
            if self.state.files.get(name, 0) >= (self.spool / name).stat().st_size:
                (self.spool / name).unlink()
        return shipped

    def _ship_tree(self) -> bool:
        assert self.state is not None
        shipped = False
        for path in sorted(self.spool.rglob("*")):
            if not path.is_file() or path.name.endswith((".tmp", "-tmp")) or ".tmp" in path.name:
                continue
            rel = path.relative_to(self.spool).as_posix()
            size = path.stat().st_size
            if self.state.files.get(rel) == size:
                continue
            self._put(f"logs/sqlite/{rel}", path.read_bytes())
            self.state.files[rel] = size
            self.state.mtimes[rel] = path.stat().st_mtime
            shipped = True
        return shipped

    def _put(self, key: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory(dir=self.spool.parent) as tmp:
            out = Path(tmp) / "piece"
            sealed = artifact.seal([data], self.keyring, out)
            self.storage.put_file(key, out)
        self.uploaded_bytes += sealed.size

    def sync_once(self) -> bool:
        """Ship what is new, then record that the archive is complete up to now."""
        now = datetime.now(UTC)
        if self.state is None:
            self.state = load_state(self.storage, self.engine) or LogState(archived_at=now)
        shipped = self._ship_binlogs() if self.engine == "mariadb" else self._ship_tree()
        self.state.archived_at = now
        if shipped:
            self.state.last_event_at = now
        self.storage.put_bytes(state_key(self.engine), self.state.model_dump_json().encode())
        return shipped

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the tool running (restarted with a back-off when it exits) and ship the
        spool until ``stop`` is set; a last sync runs after the tool is stopped."""
        self.spool.mkdir(parents=True, exist_ok=True)
        backoff = 1.0
        while not stop.is_set():
            if self.state is None:
                self.state = await asyncio.to_thread(load_state, self.storage, self.engine)
            argv = self.command(self.state)
            log.info("backup.stream.started", engine=self.engine, tool=Path(argv[0]).name)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.spool,
            )
            started = time.monotonic()
            try:
                while not stop.is_set() and proc.returncode is None:
                    try:
                        await asyncio.to_thread(self.sync_once)
                    except Exception as exc:  # storage outage: keep the tool, try again
                        log.error("backup.stream.upload_failed", error=_brief(exc))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.upload_interval):
                            await stop.wait()
            finally:
                if proc.returncode is None:
                    proc.terminate()
                    try:
                        async with asyncio.timeout(10):
                            await proc.wait()
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
            err = b""
            if proc.stderr is not None:
                err = await proc.stderr.read()
            await asyncio.to_thread(self.sync_once)
            if stop.is_set():
                break
            log.error(
                "backup.stream.tool_exited",
                engine=self.engine,
                code=proc.returncode,
                error=err.decode(errors="replace").strip().splitlines()[-1:] or None,
            )
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 30.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await stop.wait()
        log.info("backup.stream.stopped", engine=self.engine, uploaded_bytes=self.uploaded_bytes)


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def spool_dir(data_dir: Path, engine: Engine) -> Path:
    path = data_dir / "backup-spool" / engine
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    return path
