"""Helpers shared by test modules: free ports, waiting for sockets, ``garrison`` commands
and processes whose log lines a test waits on, problem+json assertions.

Waiting is always on a condition with a deadline (a log line, a socket that accepts, a row
count), never on a fixed pause, so the suite behaves the same on a busy machine; the
deadlines are generous because they only matter when something is broken.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "Zq8mW3nR6tY1uI4oP7aS0dF2gH5jK9lX"


# Under pytest-xdist each worker keeps its keys in Redis apart (lockout counters per IP,
# rate-limit buckets, channels), as if it had a Redis of its own; tests that set a prefix
# themselves keep theirs.
WORKER_REDIS_PREFIX = (
    f"garrison-{os.environ['PYTEST_XDIST_WORKER']}:" if "PYTEST_XDIST_WORKER" in os.environ else ""
)


def shares_the_suite_database(database_url: object) -> bool:
    """Whether ``database_url`` is a MariaDB database that several tests open in turn.

    Such a database is one installation: every process and every in-process app that opens
    it holds the same master secret (``GOOD_SECRET``), as the servers of one deployment do.
    Otherwise each test's data directory would generate a secret of its own, and the audit
    keys one test wrapped could not be opened by the next."""
    return str(database_url or "").startswith("mysql")


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without Garrison's settings, plus ``env`` (and the suite's
    master secret for a process that opens a shared MariaDB database)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
    if WORKER_REDIS_PREFIX:
        base["GARRISON_REDIS_PREFIX"] = WORKER_REDIS_PREFIX
    base.update(env or {})
    if shares_the_suite_database(base.get("GARRISON_DATABASE_URL")):
        base.setdefault("GARRISON_SECRET_KEY", GOOD_SECRET)
    return base


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_accepting(port: int, timeout: float = 60, host: str = "127.0.0.1") -> None:
    """Block until ``host:port`` accepts a connection. granian logs its worker as started
    before the worker's socket listens, so no log line marks this moment: the only signal
    is a connection that succeeds. A refused connect returns at once, so the probes back
    off (10 ms doubling to 200 ms); raises once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        try:
            socket.create_connection((host, port), timeout=5).close()
            return
        except OSError:  # refused, or a connect that timed out on a busy machine
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing accepts connections on {host}:{port}") from None
            time.sleep(pause)  # a bounded back-off between probes, not a guess at timing
            pause = min(pause * 2, 0.2)


def garrison(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``garrison ARGS`` to completion with only ``env`` as its configuration."""
    return subprocess.run(
        [sys.executable, "-m", "garrison", *args],
        env=clean_env(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )


LinePredicate = Callable[[str], bool]


class LoggedProcess:
    """A child process whose output (stdout and stderr together) one thread reads from the
    start, so the pipe never fills and every line is kept; ``wait_for`` blocks until a line
    that matches has been seen (earlier lines count too)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        self.proc = subprocess.Popen(
            args,
            env=clean_env(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        except ValueError:  # the pipe was closed by close()
            pass
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, match: str | LinePredicate, timeout: float = 120, count: int = 1) -> str:
        """The ``count``-th line containing ``match`` (or for which it is true), counting
        from the start; raises with the output so far when it does not come within
        ``timeout`` or the process ends first."""
        predicate: LinePredicate = (lambda line: match in line) if isinstance(match, str) else match
        deadline = time.monotonic() + timeout
        seen = found = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        found += 1
                        if found == count:
                            return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    why = "exited" if self._ended else f"not logged within {timeout:.0f} s"
                    raise AssertionError(f"{match!r}: {why}; output:\n{''.join(self.lines)}")
                self._changed.wait(left)

    def wait_for_json(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 120
    ) -> None:
        """Wait for a JSON log line whose object satisfies ``predicate``."""

        def matches(line: str) -> bool:
            try:
                record = json.loads(line)
            except ValueError:
                return False
            return isinstance(record, dict) and predicate(record)

        self.wait_for(matches, timeout)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(60)

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL) and release everything."""
        self.terminate(30)
        self.close()

    def close(self) -> None:
        """Kill the process if it still runs, and release the pipe and the reader."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(60)
        self._reader.join(60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def garrison_process(*args: str, env: dict[str, str]) -> LoggedProcess:
    return LoggedProcess([sys.executable, "-m", "garrison", *args], env)


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert str(body["type"]).startswith("urn:garrison:problem:")
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def wait_until(
    condition: Callable[[], bool], timeout: float = 120, what: str = "the condition"
) -> None:
    """Poll ``condition`` (a cheap check: a row count, a file) with a short back-off until it
    holds; raises once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:.0f} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


async def drop_all_collections(db: Any) -> None:
    """Drop every collection in ``db`` (the shared MariaDB database outlives a test): a
    collection that a relation points at goes after the collections that point at it."""
    from garrison.events import Actor
    from garrison.records import registry
    from garrison.records.errors import CollectionReferenced

    async with db.transaction() as session:
        left = [c.name for c in await registry.list_collections(session)]
        while left:
            for name in list(left):
                try:
                    await registry.delete_collection(
                        session, name=name, confirm=True, actor=Actor.system()
                    )
                except CollectionReferenced:
                    continue
                left.remove(name)


def private_sql(port: int, statement: str, database: str = "mysql", *, batch: bool = True) -> str:
    """Run ``statement`` with the ``mariadb`` client against a private server on ``port``
    (root, no password); its output (tab-separated without headers, unless ``batch`` is off)."""
    client = ["mariadb", "--protocol=TCP", "-h127.0.0.1", f"-P{port}", "-uroot"]
    done = subprocess.run(
        [
            *client,
            *(["--batch", "--skip-column-names"] if batch else []),
            database,
            "-e",
            statement,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
