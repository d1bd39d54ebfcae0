"""``python -m bench.suite``: every phase of a run in order, then the report.

    python -m bench.suite                  # the full run of `make bench` (about 15 minutes)
    python -m bench.suite --quick          # seconds: tiny load, every code path (smoke test)
    python -m bench.suite --only garrison,floors --duration 3 --out /tmp/bench

Phases: seed MariaDB; the floors; Garrison (wrk closed loop, k6 refresh chains, simulated
users, the arrival-rate sweep, the login storm); capacity (10,000 held connections, 1,000
users at 1 req/s); PocketBase. Each server starts alone and stops before the next, so no
idle server shares the two cores with the one being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.suite import garrison_target, loadgen, pocketbase, procs, report
from bench.suite.loadgen import Request
from bench.suite.plan import Plan, build

ROOT = Path(__file__).resolve().parents[2]
MIX = "get:60,list:30,create:10"
FLOORS = {
    "asgi_hello": "bench.suite.floors:hello",
    "fastapi_hello": "bench.suite.floors:fastapi_hello",
    "raw_driver": "bench.suite.floors:raw_driver",
}


class Run:
    """One run: the plan, a scratch directory and the rows of results gathered so far."""

    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan = plan
        self.work = work
        self.rows: list[dict[str, Any]] = []
        self.sweeps: dict[str, list[dict[str, Any]]] = {}

    def say(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)

    def measure(
        self, system: str, scenario: str, load: str, pids: list[int], go: Callable[[], Any]
    ) -> dict[str, Any]:
        with procs.Usage(pids) as usage:
            result: dict[str, Any] = go()
        result |= usage.summary(result["requests"])
        if self.plan.settle:  # requests queued by an overload must not land in the next row
            result["settle_s"] = round(procs.settle(pids), 1)
        result |= {"system": system, "scenario": scenario, "load": load}
        self.rows.append(result)
        errors = report.errors(result)
        self.say(
            f"{system} {scenario} @ {load}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.1f}"
            f" p99 {result['p99_ms']:.1f} ms, errors {errors}"
        )
        return result

    def wrk(
        self, system: str, scenario: str, base: str, request: Request, pids: list[int], **kw: Any
    ) -> None:
        connections = kw.pop("connections")
        load = kw.pop("load", f"{connections} conns")

        def go() -> dict[str, Any]:
            return loadgen.wrk(
                base,
                request,
                connections=connections,
                duration=kw.pop("duration", self.plan.duration),
                work=self.work,
                name=f"{system}-{scenario}-{connections}",
                **kw,
            )

        self.measure(system, scenario, load, pids, go)

    def warm(self, base: str, requests: list[Request], ids: Path, scores: int) -> None:
        if self.plan.warmup:
            for number, request in enumerate(requests):
                loadgen.wrk(
                    base,
                    request,
                    connections=8,
                    duration=self.plan.warmup,
                    work=self.work,
                    name=f"warm-{number}",
                    ids=ids,
                    scores=scores,
                )


def _floor_server(target: str, env: dict[str, str], workers: int, log: Path) -> tuple[Any, str]:
    port = procs.free_port()
    code = (
        "from garrison.server import run_server; "
        f"run_server(host='127.0.0.1', port={port}, workers={workers}, shutdown_timeout=5, "
        f"target={target!r}, factory=True)"
    )
    proc = procs.start([sys.executable, "-c", code], env, log)
    procs.wait_accepting(port, proc, log)
    return proc, f"http://127.0.0.1:{port}"


def floors(run: Run, seeded: garrison_target.Seeded, ids: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_FLOOR_DB_URL": seeded.url}
    for name, target in FLOORS.items():
        run.say(f"floor {name}: starting")
        proc, base = _floor_server(target, env, run.plan.workers, run.work / f"{name}.log")
        try:
            if name == "raw_driver":
                cases = {
                    "get": Request("get", "/items/"),
                    "list": Request("list", "/items?score="),
                }
            else:
                cases = {"hello": Request("fixed", "/hello")}
            run.warm(base, list(cases.values()), ids, seeded.scores)
            for connections in run.plan.connections:
                for scenario, request in cases.items():
                    run.wrk(
                        name,
                        scenario,
                        base,
                        request,
                        [proc.pid],
                        connections=connections,
                        ids=ids,
                        scores=seeded.scores,
                    )
        finally:
            procs.stop(proc)


def garrison_requests(token: str) -> dict[str, Request]:
    auth = {"Authorization": f"Bearer {token}"}
    api = garrison_target.API
    return {
        "health": Request("fixed", "/api/health"),
        "health_live": Request("fixed", "/api/health/live"),
        "get": Request("get", f"{api}/", headers=auth),
        "list": Request("list", f"{api}?limit=20&filter=score%20%3D%20", headers=auth),
        "create": Request("create", api, method="POST", headers=auth),
    }


def garrison(run: Run, seeded: garrison_target.Seeded, ids: Path, stamp: str) -> None:
    plan = run.plan
    data_dir = run.work / "garrison-data"
    env = garrison_target.environment(seeded, data_dir, stamp, plan.workers)
    run.say("garrison: starting serve and worker (production profile)")
    server = garrison_target.start(seeded, env, plan.workers, run.work)
    try:
        pids = server.pids
        target = garrison_target.k6_target(seeded, server, run.work / "garrison-target.json")
        cases = garrison_requests(server.tokens[0])
        run.warm(server.base, list(cases.values()), ids, seeded.scores)
        common: dict[str, Any] = {"ids": ids, "scores": seeded.scores}
        if plan.wants("garrison"):
            for connections in plan.connections:
                for scenario, request in cases.items():
                    run.wrk(
                        "garrison", scenario, server.base, request, pids,
                        connections=connections, **common,
                    )  # fmt: skip
            login = Request(
                "fixed",
                "/api/v1/auth/login",
                method="POST",
                body=f'{{"email":"{seeded.emails[0]}","password":"{garrison_target.PASSWORD}"}}',
            )
            run.wrk(
                "garrison", "login", server.base, login, pids,
                connections=plan.login_connections, **common,
            )  # fmt: skip
            refresh = {"VUS": plan.refresh_vus, "DURATION": plan.duration}
            run.measure(
                "garrison", "refresh", f"{plan.refresh_vus} VUs", pids,
                lambda: k6_one("refresh.js", target, refresh, run, "refresh", "refresh"),
            )  # fmt: skip
            users(run, "garrison", target, pids)
            sweep(run, "garrison", target, pids)
            storm(run, target, pids)
        if plan.wants("capacity"):
            capacity(run, server.base, cases["get"], target, pids, common)
    finally:
        procs.stop(server.serve)
        procs.stop(server.worker)


def k6_one(
    script: str,
    target: Path,
    env: dict[str, Any],
    run: Run,
    name: str,
    scenario: str | None = None,
) -> dict[str, Any]:
    summary = loadgen.k6(script, target, env, work=run.work, name=name)
    return loadgen.k6_result(summary, scenario)


def users(run: Run, system: str, target: Path, pids: list[int]) -> None:
    plan = run.plan
    env = {
        "USERS": plan.mixed_users,
        "THINK": plan.think_seconds,
        "RAMP": max(1, plan.mixed_duration // 3),
        "DURATION": plan.mixed_duration,
        "MIX": MIX,
    }
    run.measure(
        system, "mixed_users", f"{plan.mixed_users} users", pids,
        lambda: k6_one("users.js", target, env, run, f"{system}-users"),
    )  # fmt: skip


def sweep(run: Run, system: str, target: Path, pids: list[int]) -> None:
    for rate in run.plan.sweep_rates:
        env = {"RATE": rate, "DURATION": run.plan.duration, "MIX": MIX}
        row = run.measure(
            system, "mixed_rate", f"{rate} req/s", pids,
            lambda env=env, rate=rate: k6_one(  # type: ignore[misc]
                "arrival.js", target, env, run, f"{system}-sweep-{rate}"
            ),
        )  # fmt: skip
        run.sweeps.setdefault(system, []).append({"rate": rate, **row})


def storm(run: Run, target: Path, pids: list[int]) -> None:
    plan = run.plan
    for vus, scenario in ((0, "probe_alone"), (plan.storm_vus, "probe_in_login_storm")):
        env = {"PROBE_RATE": plan.probe_rate, "STORM_VUS": vus, "DURATION": plan.storm_duration}

        def go(env: dict[str, Any] = env, vus: int = vus) -> dict[str, Any]:
            summary = loadgen.k6("storm.js", target, env, work=run.work, name=f"storm-{vus}")
            result = loadgen.k6_result(summary, "probe")
            if vus:
                logins = loadgen.k6_result(summary, "storm")
                result["storm_logins"] = logins["requests"]
                result["storm_login_p50_ms"] = logins["p50_ms"]
            return result

        load = f"{plan.probe_rate} req/s" + (f" + {vus} login loops" if vus else "")
        run.measure("garrison", scenario, load, pids, go)


def capacity(
    run: Run, base: str, get: Request, target: Path, pids: list[int], common: dict[str, Any]
) -> None:
    plan = run.plan
    hold(run, "garrison", base, get, pids, common)
    env = {"RATE": plan.capacity_rate, "DURATION": plan.duration, "MIX": MIX}
    run.measure(
        "garrison", "users_1rps", f"{plan.capacity_rate} users x 1 req/s", pids,
        lambda: k6_one("arrival.js", target, env, run, "capacity"),
    )  # fmt: skip


def hold(
    run: Run, system: str, base: str, get: Request, pids: list[int], common: dict[str, Any]
) -> None:
    """Many keep-alive connections open at once, each sending a get-by-id now and then."""
    plan = run.plan
    offered = plan.hold_connections * 1000 / plan.hold_interval_ms
    run.wrk(
        system, "held_connections", base, get, pids,
        connections=plan.hold_connections, duration=plan.hold_duration,
        load=f"{plan.hold_connections:,} conns (~{offered:,.0f} req/s offered)",
        delay_ms=plan.hold_interval_ms, count_5xx=True, timeout=30, **common,
    )  # fmt: skip
    run.rows[-1]["offered_rps"] = round(offered, 1)


def peer(run: Run, rows: list[tuple[str, int, bool]], users: int) -> None:
    run.say("pocketbase: starting and seeding")
    server = pocketbase.start(rows, users, run.work)
    try:
        scores = max(1, len(rows) // 20)
        ids = run.work / "pocketbase-ids.txt"
        ids.write_text("\n".join(server.ids) + "\n")
        auth = {"Authorization": server.tokens[0]}
        pre, post = pocketbase.list_query()
        cases = {
            "health": Request("fixed", "/api/health"),
            "get": Request("get", f"{pocketbase.API}/", headers=auth),
            "list": Request("list", pre, list_post=post, headers=auth),
            "create": Request("create", pocketbase.API, method="POST", headers=auth),
        }
        run.warm(server.base, list(cases.values()), ids, scores)
        for connections in run.plan.connections:
            for scenario, request in cases.items():
                run.wrk(
                    "pocketbase", scenario, server.base, request, server.pids,
                    connections=connections, ids=ids, scores=scores,
                )  # fmt: skip
        target = pocketbase.k6_target(server, scores, run.work / "pocketbase-target.json")
        sweep(run, "pocketbase", target, server.pids)
    finally:
        procs.stop(server.proc)


def preflight(plan: Plan) -> None:
    missing = [tool for tool in ("wrk", "k6", "pocketbase") if not loadgen.have(tool)]
    if missing:
        raise SystemExit(
            f"missing: {', '.join(missing)} (apt-get install -y wrk; pip install -e '.[bench]')"
        )


def execute(plan: Plan, out: Path, keep: bool = False) -> Path:
    preflight(plan)
    nofile = procs.raise_nofile(plan.hold_connections * 2 + 2048)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="garrison-suite-"))
    run = Run(plan, work)
    started = time.monotonic()
    database = garrison_target.database_name(stamp)
    try:
        rows = garrison_target.seed_rows(plan.rows)
        if plan.wants("floors") or plan.wants("garrison") or plan.wants("capacity"):
            run.say(f"seeding MariaDB {database}: {plan.rows:,} rows, {plan.users} users")
            seeded = asyncio.run(
                garrison_target.prepare(database, plan.rows, plan.users, work / "seed-data")
            )
            ids = work / "garrison-ids.txt"
            ids.write_text("\n".join(seeded.ids) + "\n")
            if plan.wants("floors"):
                floors(run, seeded, ids)
            if plan.wants("garrison") or plan.wants("capacity"):
                garrison(run, seeded, ids, stamp)
        if plan.wants("pocketbase"):
            peer(run, rows, plan.users)
    finally:
        if plan.wants("floors") or plan.wants("garrison") or plan.wants("capacity"):
            garrison_target.drop(database)
        if keep:
            run.say(f"scratch directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta = {
        "when": stamp,
        "cpus": os.cpu_count(),
        "workers": plan.workers,
        "plan": vars(plan),
        "mix": MIX,
        "open_files_limit": nofile,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    return report.write(out, stamp, meta, run.rows, run.sweeps)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, seconds in all")
    parser.add_argument("--duration", type=int, help="seconds per measured point")
    parser.add_argument(
        "--only", help="comma-separated groups: floors,garrison,capacity,pocketbase"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="any plan field"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    args = parser.parse_args()
    plan = build(args.quick, args.duration, args.only, args.set)
    written = execute(plan, args.out, keep=args.keep)
    print(written.with_suffix(".md").read_text())
