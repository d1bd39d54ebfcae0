"""Blue-green on a host: the steps of ``garrison deploy`` and ``garrison deploy rollback``.

    lock → install the wheel → plan migrations (refuse a contract step the serving release
    cannot take) → migrate → start the idle colour on its own ports → wait for its
    readiness (never given traffic otherwise) → enable it in HAProxy (runtime API, no
    reload) and wait until HAProxy's own checks see it UP → drain the old colour (in-flight
    requests finish) → watch the new colour (readiness, 5xx rate, p95) → on a failure,
    switch back automatically and say why.

The old colour keeps running in maintenance after a good deploy: ``garrison deploy
rollback`` is one switch, instant. The next deploy replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from garrison.ops.deploy import procs, releases
from garrison.ops.deploy.config import (
    COLOURS,
    Colour,
    DeployConfig,
    DeployConfigError,
    Environment,
    read_env_file,
)
from garrison.ops.deploy.haproxy import RuntimeApi, RuntimeApiError, socket_path
from garrison.ops.deploy.migrations import Step
from garrison.ops.deploy.releases import Release
from garrison.ops.deploy.watch import Judge, Sample, histogram

Say = Callable[[str], None]
Started = Callable[[Release, Colour], Awaitable[None]]


class DeployError(Exception):
    """A deploy step failed or was refused; the message is the one line to print."""


class DeployLocked(DeployError):
    pass


@dataclass
class ColourState:
    release: str | None = None
    version: str | None = None
    pids: dict[str, int] = field(default_factory=dict)  # "host:port" -> pid


@dataclass
class State:
    active: Colour | None = None
    colours: dict[str, ColourState] = field(
        default_factory=lambda: {c: ColourState() for c in COLOURS}
    )

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(
            active=data.get("active"),
            colours={c: ColourState(**data["colours"].get(c, {})) for c in COLOURS},
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        os.replace(temporary, path)


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


@dataclass
class Outcome:
    environment: str
    release: str
    version: str
    colour: Colour
    outcome: str  # success, rolled_back, failed
    reason: str | None = None
    checks_passed: bool = False
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


@contextmanager
def deploy_lock(directory: Path, environment: str) -> Iterator[None]:
    """One deploy per environment at a time (an advisory lock the kernel drops when the
    holder dies, so a crashed deploy never leaves it stuck)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "deploy.lock"
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DeployLocked(
                f"another deploy of {environment} is in progress ({holder}); nothing changed"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}")
        handle.flush()
        yield
    finally:
        handle.close()


class Deployer:
    def __init__(self, config: DeployConfig, name: str, *, say: Say = lambda _: None) -> None:
        self.config = config
        self.name = name
        self.env: Environment = config.environment(name)
        self.dir = config.env_dir(name)
        self.state_path = self.dir / "state.json"
        self.api = RuntimeApi(socket_path(config, name, self.env))
        self.say = say

    # -- the release's environment -------------------------------------------------------

    def variables(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.env.env_file is not None:
            path = self.config.path(self.env.env_file)
            if not path.exists():
                raise DeployConfigError(f"env_file: {path} does not exist")
            found.update(read_env_file(path))
        found.update(self.env.env)
        return found

    def child_env(self, release: Release) -> dict[str, str]:
        return procs.child_env(release, self.variables(), self.dir / "data")

    def metrics_headers(self) -> dict[str, str]:
        variables = self.variables()
        token = variables.get("GARRISON_METRICS__TOKEN")
        if token is None and "GARRISON_METRICS__TOKEN_FILE" in variables:
            token = Path(variables["GARRISON_METRICS__TOKEN_FILE"]).read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- steps -----------------------------------------------------------------------------

    def install(self, wheel: Path) -> Release:
        self.say(f"installing {wheel.name}")
        return releases.install(
            wheel,
            self.config.releases_dir(),
            pip_args=self.config.pip_args,
            site_packages=self.config.site_packages and self.config.path(self.config.site_packages),
        )

    def serving(self, state: State) -> ColourState | None:
        if state.active is None:
            return None
        current = state.colours[state.active]
        return current if any(procs.alive(p) for p in current.pids.values()) else None

    async def migrate(self, release: Release, state: State) -> list[Step]:
        """Plan the new release's pending migrations with its own code and apply them,
        in one run of its interpreter; a contract step the serving release cannot take
        is refused before anything is applied."""
        serving = self.serving(state)
        args = [str(release.python), "-m", "garrison.ops.deploy.migrations", "--apply"]
        if serving is not None and serving.version is not None:
            args += ["--serving", serving.version]
        result = await _run(args, self.child_env(release), self.dir)
        try:
            data = json.loads(result.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeployError(f"the migration plan could not be read: {result[-200:]}") from None
        if "error" in data:
            raise DeployError(f"migrations failed: {data['error']}; traffic unchanged")
        if "refused" in data:
            raise DeployError(f"{data['refused']}; nothing changed")
        plan = [Step(**step) for step in data["pending"]]
        if plan:
            self.say(f"migrations: applied {', '.join(s.revision for s in plan)}")
        else:
            self.say("migrations: none pending")
        return plan

    async def start_colour(self, colour: Colour, release: Release, state: State) -> None:
        """Stop whatever runs as ``colour`` (the standby), start ``release`` there, wait
        for each instance's own readiness. Raises with the reason; nothing gets traffic."""
        for server, _, _ in self.env.servers(colour):
            await self.api.set_state(self.env.backend, server, "maint")
        await _stop_all(state.colours[colour].pids.values())
        env = self.child_env(release)
        pids: dict[str, int] = {}
        for _, host, port in self.env.servers(colour):
            if not await asyncio.to_thread(_port_free, host, port):
                raise DeployError(f"port {host}:{port} is in use by another process")
            log = self.dir / "logs" / f"{colour}-{port}.log"
            pids[f"{host}:{port}"] = procs.start(
                release, host=host, port=port, env=env, log_path=log
            )
        state.colours[colour] = ColourState(release.id, release.version, pids)
        state.save(self.state_path)
        self.say(f"{colour}: started {release.id}; waiting for readiness")
        checks = self.env.checks
        start_deadline = time.monotonic() + checks.start_timeout
        for key, pid in pids.items():
            host, port_text = key.rsplit(":", 1)
            port = int(port_text)
            ready_deadline: float | None = None
            while True:
                probe = await asyncio.to_thread(procs.http_get, host, port, "/api/health/ready")
                if probe.ok:
                    break
                now = time.monotonic()
                if probe.status is not None and ready_deadline is None:
                    ready_deadline = now + checks.readiness_timeout  # it answers: not ready
                late = now > (ready_deadline or start_deadline)
                if not procs.alive(pid) or late:
                    if not procs.alive(pid):
                        why = "exited"
                    elif ready_deadline is None:
                        why = "did not answer in time"
                    else:
                        why = "was never ready"
                    detail = probe.error or f"HTTP {probe.status}"
                    tail = procs.log_tail(self.dir / "logs" / f"{colour}-{port}.log")
                    await self.stop_colour(colour, state)
                    raise DeployError(
                        f"release {release.id} {why} on {key} ({detail}); "
                        f"it was given no traffic. Log: {tail or '-'}"
                    )
                await asyncio.sleep(0.2)  # bounded poll of the readiness endpoint

    async def stop_colour(self, colour: Colour, state: State) -> None:
        for server, _, _ in self.env.servers(colour):
            with contextlib.suppress(RuntimeApiError):
                await self.api.set_state(self.env.backend, server, "maint")
        await _stop_all(state.colours[colour].pids.values())
        state.colours[colour].pids = {}
        state.save(self.state_path)

    async def wait_up(self, colour: Colour, within: float) -> bool:
        names = {s for s, _, _ in self.env.servers(colour)}
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            stats = await self.api.stats(self.env.backend)
            if all(stats[n].up for n in names if n in stats) and names <= set(stats):
                return True
            await asyncio.sleep(0.1)  # HAProxy's checks run every fastinter
        return False

    async def enable(self, colour: Colour, weight: int) -> None:
        """Put ``colour`` in the pool at ``weight`` and wait until HAProxy's own checks see
        every instance UP (else take it out again and raise)."""
        for server, _, _ in self.env.servers(colour):
            await self.api.set_weight(self.env.backend, server, weight)
            await self.api.set_state(self.env.backend, server, "ready")
        if not await self.wait_up(colour, self.env.checks.switch_timeout):
            for server, _, _ in self.env.servers(colour):
                await self.api.set_state(self.env.backend, server, "maint")
            raise DeployError(f"HAProxy's health checks never saw {colour} UP; traffic unchanged")

    async def canary(self, colour: Colour) -> str | None:
        """The new colour beside the old at a small weight; what went wrong, if anything.
        On a failure the new colour is taken out: the old one never stopped serving."""
        checks = self.env.checks
        if checks.canary_seconds <= 0:
            return None
        self.say(
            f"canary: {colour} at weight {checks.canary_weight} for {checks.canary_seconds:.0f} s"
        )
        await self.enable(colour, checks.canary_weight)
        problem = await self.watch(colour, checks.canary_seconds)
        if problem is not None:
            for server, _, _ in self.env.servers(colour):
                await self.api.set_state(self.env.backend, server, "maint")
        return problem

    async def switch(self, to: Colour, state: State) -> None:
        """Give ``to`` all the traffic and drain the other colour; no reload."""
        self.say(f"switching traffic to {to}")
        await self.enable(to, 100)
        old = other(to)
        stats = await self.api.stats(self.env.backend)
        old_servers = [
            s
            for s, _, _ in self.env.servers(old)
            if s in stats and not stats[s].status.startswith("MAINT")  # out already: leave it
        ]
        for server in old_servers:
            await self.api.set_state(self.env.backend, server, "drain")
        state.active = to
        state.save(self.state_path)
        deadline = time.monotonic() + self.env.checks.drain_timeout
        while time.monotonic() < deadline:
            stats = await self.api.stats(self.env.backend)
            if all(stats[s].current_sessions == 0 for s in old_servers if s in stats):
                break
            await asyncio.sleep(0.1)  # until the old colour's in-flight requests end
        for server in old_servers:
            await self.api.set_state(self.env.backend, server, "maint")
        if old_servers:
            self.say(f"{old}: drained")

    async def sample(self, colour: Colour) -> tuple[Sample, list[str]]:
        stats = await self.api.stats(self.env.backend)
        names = [s for s, _, _ in self.env.servers(colour)]
        responses = sum(stats[n].responses_total for n in names if n in stats)
        errors = sum(stats[n].responses_5xx for n in names if n in stats)
        buckets: dict[float, float] | None = {}
        not_ready = []
        headers = self.metrics_headers()
        for server, host, port in self.env.servers(colour):
            ready = await asyncio.to_thread(procs.http_get, host, port, "/api/health/ready")
            if not ready.ok:
                not_ready.append(f"{server} ({ready.error or f'HTTP {ready.status}'})")
            scrape = await asyncio.to_thread(
                procs.http_get, host, port, "/metrics", headers=headers
            )
            if scrape.ok and buckets is not None:
                for bound, count in histogram(scrape.body.decode()).items():
                    buckets[bound] = buckets.get(bound, 0.0) + count
            else:
                buckets = None  # no latency figure without every instance's histogram
        return Sample(time.monotonic(), responses, errors, buckets), not_ready

    async def watch(self, colour: Colour, seconds: float) -> str | None:
        checks = self.env.checks
        if seconds <= 0:
            return None
        judge = Judge(
            checks.window_seconds, checks.max_5xx_ratio, checks.min_requests, checks.max_p95_ms
        )
        misses = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sample, not_ready = await self.sample(colour)
            misses = misses + 1 if not_ready else 0
            if misses >= checks.max_failed_checks:
                return f"readiness failed on {', '.join(not_ready)}"
            problem = judge.add(sample)
            if problem is not None:
                return problem
            await asyncio.sleep(checks.sample_seconds)  # the sampling period
        return None

    # -- the commands -----------------------------------------------------------------------

    async def deploy(self, wheel: Path, *, started: Started | None = None) -> Outcome:
        """Called with the lock held. Raises ``DeployError`` for a refusal or a failure
        before traffic moved; returns the outcome once traffic moved."""
        begun = time.monotonic()
        release = self.install(wheel)
        state = State.load(self.state_path)
        serving = self.serving(state)
        old: Colour | None = state.active if serving else None
        new: Colour = other(old) if old else "blue"
        await self.migrate(release, state)
        if started is not None:  # the ledger's entry: from here on, something changed
            await started(release, new)
        await self.start_colour(new, release, state)
        outcome = Outcome(self.name, release.id, release.version, new, "success")
        switched = time.monotonic()
        if old is not None:
            problem = await self.canary(new)
            if problem is not None:
                self.say(f"canary failed: {problem}; {old} kept all the traffic")
                await self.stop_colour(new, state)
                outcome.outcome, outcome.reason = "rolled_back", f"canary: {problem}"
                outcome.figures["detected_after_seconds"] = round(time.monotonic() - switched, 2)
                outcome.seconds = round(time.monotonic() - begun, 2)
                return outcome
        await self.switch(new, state)
        switched = time.monotonic()
        self.say(f"watching {new} for {self.env.checks.watch_seconds:.0f} s")
        problem = await self.watch(new, self.env.checks.watch_seconds)
        if problem is not None:
            outcome.reason = problem
            outcome.figures["detected_after_seconds"] = round(time.monotonic() - switched, 2)
            if old is None:
                outcome.outcome = "failed"
                self.say(f"watch failed: {problem}; no previous release to return to")
            else:
                self.say(f"watch failed: {problem}; rolling back to {old}")
                rollback_started = time.monotonic()
                await self.switch(old, state)
                await self.stop_colour(new, state)
                outcome.outcome = "rolled_back"
                outcome.figures["rollback_seconds"] = round(time.monotonic() - rollback_started, 2)
        else:
            outcome.checks_passed = True
            keep = {c.release for c in state.colours.values() if c.release}
            removed = releases.prune(
                self.config.releases_dir(), keep=self.config.keep_releases, protect=keep
            )
            if removed:
                self.say(f"pruned releases {', '.join(removed)}")
        outcome.seconds = round(time.monotonic() - begun, 2)
        return outcome

    async def rollback(self) -> Outcome:
        state = State.load(self.state_path)
        if state.active is None:
            raise DeployError(f"{self.name} has no deploy to roll back")
        standby = other(state.active)
        target = state.colours[standby]
        if not target.pids or not all(procs.alive(p) for p in target.pids.values()):
            raise DeployError(
                f"no standby release is running as {standby}; deploy the release to return to"
            )
        started = time.monotonic()
        await self.switch(standby, state)
        assert target.release is not None
        assert target.version is not None
        return Outcome(
            self.name,
            target.release,
            target.version,
            standby,
            "success",
            checks_passed=True,
            seconds=round(time.monotonic() - started, 2),
        )

    async def status(self) -> dict[str, Any]:
        state = State.load(self.state_path)
        try:
            stats = await self.api.stats(self.env.backend)
            haproxy: str | None = None
        except RuntimeApiError as exc:
            stats, haproxy = {}, str(exc)
        colours = {}
        for colour in COLOURS:
            current = state.colours[colour]
            servers = []
            for server, host, port in self.env.servers(colour):
                pid = current.pids.get(f"{host}:{port}")
                stat = stats.get(server)
                servers.append(
                    {
                        "server": server,
                        "address": f"{host}:{port}",
                        "pid": pid if procs.alive(pid) else None,
                        "haproxy": stat.status if stat else None,
                        "sessions": stat.current_sessions if stat else None,
                    }
                )
            colours[colour] = {
                "release": current.release,
                "version": current.version,
                "servers": servers,
            }
        return {
            "environment": self.name,
            "active": state.active,
            "colours": colours,
            "haproxy_error": haproxy,
        }


async def _stop_all(pids: Iterable[int]) -> None:
    await asyncio.gather(*(asyncio.to_thread(procs.stop, pid) for pid in pids))


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    await asyncio.to_thread(cwd.mkdir, parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        cwd=str(cwd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return output.decode(errors="replace")
