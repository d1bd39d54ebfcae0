"""Server processes under test: start, wait for the port, stop; and what they cost.

``Usage`` samples a process tree (the server and its workers) in a thread while load runs:
CPU seconds used (user + system, every process of the tree) and the peak resident set of
each process, so a report can say CPU seconds per 10,000 requests and peak RSS per worker.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted if soft == resource.RLIM_INFINITY else soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def wait_accepting(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before listening:\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start(
    argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=out, cwd=cwd, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (the server drains), then SIGKILL of its process group if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def settle(pids: list[int], *, idle_share: float = 0.15, limit: float = 90) -> float:
    """Wait until the process trees are idle (below ``idle_share`` of one core over half a
    second), e.g. after an overload whose queued requests outlive the load generator;
    returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with Usage(pids, interval=0.5) as usage:
            time.sleep(0.5)
        if usage.cpu_seconds < idle_share * 0.5:
            break
    return time.monotonic() - started


class Usage:
    """CPU seconds and peak RSS of the process trees rooted at ``pids`` while in the block."""

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.cpu: dict[int, float] = {}  # pid -> last CPU seconds seen
        self.first: dict[int, float] = {}  # pid -> CPU seconds when first seen
        self.peak_rss: dict[int, int] = {}
        self.workers: set[int] = set()  # children of a root: the server's worker processes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for root in self.roots:
            try:
                children = root.children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            self.workers.update(child.pid for child in children)
            for proc in [root, *children]:
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        rss = proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                seconds = times.user + times.system
                self.first.setdefault(proc.pid, seconds)
                self.cpu[proc.pid] = seconds
                self.peak_rss[proc.pid] = max(rss, self.peak_rss.get(proc.pid, 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Usage:
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu[pid] - self.first[pid] for pid in self.cpu)

    @property
    def peak_rss_mb(self) -> float:
        """Largest peak RSS of one worker process (the root itself when it has none)."""
        pids = [pid for pid in self.peak_rss if pid in self.workers] or list(self.peak_rss)
        return max((self.peak_rss[pid] for pid in pids), default=0) / 2**20

    def summary(self, requests: int) -> dict[str, float]:
        per_10k = self.cpu_seconds / requests * 10_000 if requests else 0.0
        return {
            "cpu_s": round(self.cpu_seconds, 3),
            "cpu_s_per_10k": round(per_10k, 3),
            "peak_rss_mb_per_worker": round(self.peak_rss_mb, 1),
        }
