"""Feature flags: in-process evaluations per second, the OFREP bulk endpoint (20 flags)
against the health endpoint at 64 connections, and how long a change made on one instance
takes to be served by another.

    flock /tmp/garrison-bench.lock .venv/bin/python -m bench.flags --duration 10 --rounds 2

In-process: a snapshot of 20 flags (static, targeting rules, percentage rollouts) evaluated
in a loop over 1,000 contexts, one flag per call (the lookup ``FlagRuntime.evaluate`` does),
and the heaviest flag alone (two rules of two conditions that miss, then a split). Over
HTTP: two ``garrison serve`` processes (``--workers`` each) on one MariaDB database and
Redis; wrk GETs ``/api/health`` and POSTs the bulk evaluation (an API key with
``flags:evaluate``, and a user's access token) on the first, alternately, ``--rounds`` times.
``--exempt-ofrep`` takes OFREP out of rate limiting like the health endpoint (which is
exempt): the difference is the gateway's per-request quota lookup in Redis, not flags work.
Propagation: the kill switch is flipped through the first instance and the second is polled
over OFREP until it serves the change, ``--flips`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.records import ROOT, admin_sql, free_port, wait_accepting
from garrison.flags.rules import compile_flag
from garrison.flags.runtime import build_snapshot

MYSQL = os.environ.get("GARRISON_BENCH_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306")
REDIS = os.environ.get("GARRISON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "bench password long enough"
CONTEXT: dict[str, Any] = {
    "targetingKey": "user-42",
    "email": "someone@corp.io",
    "roles": ["user"],
    "version": "2.3.1",
}

LUA = """
request = function()
  return wrk.format("%(method)s", "%(path)s", %(headers)s, %(body)s)
end
done = function(summary, latency, requests)
  local out = io.open("%(out)s", "w")
  out:write(string.format('{"requests":%%d,"duration_us":%%d,"errors":%%d,"p50_ms":%%.3f,"p99_ms":%%.3f}',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout + summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  out:close()
end
"""


def definitions(count: int = 20) -> list[dict[str, Any]]:
    """20 flags: a third static, a third with targeting rules, a third rolled out."""
    out: list[dict[str, Any]] = []
    for n in range(count):
        env: dict[str, Any] = {}
        if n % 3 == 1:
            env["rules"] = [
                {
                    "conditions": [
                        {"attribute": "email_domain", "operator": "equals", "value": "corp.io"},
                        {"attribute": "version", "operator": "semver_gte", "value": "2.0.0"},
                    ],
                    "variant": "on",
                },
                {
                    "conditions": [{"attribute": "roles", "operator": "in", "value": ["admin"]}],
                    "variant": "on",
                },
            ]
        elif n % 3 == 2:
            env["rollout"] = [{"variant": "on", "weight": 25}, {"variant": "off", "weight": 75}]
        out.append(
            {
                "key": f"flag-{n:02d}",
                "type": "boolean",
                "variants": {"on": True, "off": False},
                "default_variant": "off",
                "environments": {"development": env},
                "version": 1,
            }
        )
    return out


def in_process(seconds: float = 3.0) -> dict[str, float]:
    snapshot = build_snapshot(definitions(), "development")
    contexts = [{**CONTEXT, "targetingKey": f"user-{n}"} for n in range(1000)]
    evaluators = snapshot.evaluators
    keys = list(evaluators)
    results: dict[str, float] = {}

    # One flag per call, through the same lookup FlagRuntime.evaluate does.
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for context in contexts:
            for key in keys:
                evaluators[key](context)
        count += len(contexts) * len(keys)
    results["single_per_s"] = count / (time.perf_counter() - start)
    # The heaviest flag alone: two rules of two conditions, none matching, then the split.
    ruled = definitions()[1]
    env = ruled["environments"]["development"]
    env["rollout"] = [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]
    heavy = compile_flag(ruled, "development")
    misses = [{"targetingKey": f"user-{n}", "email": f"u{n}@else.org"} for n in range(1000)]
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for context in misses:
            heavy(context)
        count += len(misses)
    results["heaviest_per_s"] = count / (time.perf_counter() - start)
    return results


def garrison(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "garrison", *args],
        env=env,
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )


def wrk(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: str | None,
    duration: int,
    work: Path,
    name: str,
) -> dict[str, Any]:
    out = work / f"{name}.json"
    script = work / f"{name}.lua"
    lua_headers = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"
    script.write_text(
        LUA
        % {
            "method": method,
            "path": path,
            "headers": lua_headers,
            "body": json.dumps(body) if body else "nil",
            "out": out,
        }
    )
    subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{duration}s", "-s", str(script), f"http://127.0.0.1:{port}"],
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="granian workers per instance")
    parser.add_argument("--flips", type=int, default=10)
    parser.add_argument(
        "--exempt-ofrep",
        action="store_true",
        help="exempt /ofrep from rate limiting as /api/health is (no per-request quota lookup)",
    )
    args = parser.parse_args()

    local = in_process()
    print(f"in-process: {local['single_per_s']:,.0f} evaluations/s (20 mixed flags, one per call); "
          f"heaviest flag alone {local['heaviest_per_s']:,.0f}/s")  # fmt: skip

    name = f"garrison_flags_{uuid.uuid4().hex[:8]}"
    asyncio.run(
        admin_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    )
    servers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="garrison-flags-") as tmp:
            work = Path(tmp)
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))
            }
            env |= {
                "GARRISON_DATABASE_URL": f"{MYSQL}/{name}?charset=utf8mb4",
                "GARRISON_REDIS_URL": REDIS,
                "GARRISON_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:",
                "GARRISON_DATA_DIR": str(work / "var"),
                "GARRISON_LOG__FORMAT": "json",
                "GARRISON_LOG__LEVEL": "warning",
                "GARRISON_WORKER__IN_PROCESS": "false",
                **(
                    {"GARRISON_RATE_LIMIT__EXEMPT_PATHS": '["/api/health", "/metrics", "/ofrep"]'}
                    if args.exempt_ofrep
                    else {}
                ),
                "PYTHONPATH": str(ROOT),
            }
            garrison(env, "migrate", "up")
            garrison(
                env, "users", "create", "--email", "bench@example.com", "--role", "admin",
                "--password-stdin", stdin=PASSWORD + "\n",
            )  # fmt: skip
            ports = [free_port(), free_port()]
            for n, port in enumerate(ports):
                log = (work / f"server-{n}.log").open("ab")
                cmd = [
                    sys.executable,
                    "-m",
                    "garrison",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(args.workers),
                ]
                servers.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log))
            for port in ports:
                wait_accepting(port)
            a, b = (f"http://127.0.0.1:{port}" for port in ports)
            with httpx.Client(timeout=30) as http:
                token = http.post(
                    f"{a}/api/v1/auth/login",
                    json={"email": "bench@example.com", "password": PASSWORD},
                ).json()["access_token"]
                admin = {"Authorization": f"Bearer {token}"}
                key = http.post(
                    f"{a}/api/v1/api-keys",
                    json={"name": "bench", "scopes": ["flags:evaluate"]},
                    headers=admin,
                ).json()["key"]
                for item in definitions():
                    fields = {k: v for k, v in item.items() if k not in ("key", "version")}
                    http.put(
                        f"{a}/api/v1/flags/{item['key']}", json=fields, headers=admin
                    ).raise_for_status()
                bulk = http.post(
                    f"{a}/ofrep/v1/evaluate/flags",
                    json={"context": CONTEXT},
                    headers={"X-API-Key": key},
                )
                assert len(bulk.json()["flags"]) == 20, bulk.text

                body = json.dumps({"context": CONTEXT})
                runs: dict[str, list[dict[str, Any]]] = {
                    "health": [],
                    "bulk_api_key": [],
                    "bulk_user_token": [],
                }
                for r in range(args.rounds):
                    runs["health"].append(
                        wrk(
                            ports[0],
                            "GET",
                            "/api/health",
                            {},
                            None,
                            args.duration,
                            work,
                            f"health-{r}",
                        )
                    )
                    runs["bulk_api_key"].append(
                        wrk(
                            ports[0],
                            "POST",
                            "/ofrep/v1/evaluate/flags",
                            {"Content-Type": "application/json", "X-API-Key": key},
                            body,
                            args.duration,
                            work,
                            f"key-{r}",
                        )
                    )
                    runs["bulk_user_token"].append(
                        wrk(
                            ports[0],
                            "POST",
                            "/ofrep/v1/evaluate/flags",
                            {
                                "Content-Type": "application/json",
                                "Authorization": f"Bearer {token}",
                            },
                            body,
                            args.duration,
                            work,
                            f"token-{r}",
                        )
                    )
                rps = {run: statistics.median(r["rps"] for r in rs) for run, rs in runs.items()}
                errors = sum(r["errors"] for rs in runs.values() for r in rs)
                p99 = {
                    name: statistics.median(r["p99_ms"] for r in rs) for name, rs in runs.items()
                }
                print(
                    f"64 connections, {args.workers} worker(s) per instance, median of "
                    f"{args.rounds} rounds of {args.duration}s; errors {errors}"
                )
                for run, value in rps.items():
                    print(
                        f"  {run:16} {value:10,.0f} req/s   p99 {p99[run]:7.1f} ms   "
                        f"ratio to health {value / rps['health']:.2f}"
                    )

                # Propagation: the kill switch through A, polled on B.
                delays: list[float] = []
                for n in range(args.flips):
                    enabled = n % 2 == 1
                    started = time.perf_counter()
                    http.patch(
                        f"{a}/api/v1/flags/flag-00",
                        json={"environments": {"development": {"enabled": enabled}}},
                        headers=admin,
                    ).raise_for_status()
                    want = "STATIC" if enabled else "DISABLED"
                    while (
                        http.post(
                            f"{b}/ofrep/v1/evaluate/flags/flag-00",
                            json={"context": CONTEXT},
                            headers={"X-API-Key": key},
                        ).json()["reason"]
                        != want
                    ):
                        if time.perf_counter() - started > 10:
                            raise SystemExit("the second instance never served the change")
                    delays.append(time.perf_counter() - started)
                print(
                    "change on A served by B after (PATCH included): median "
                    f"{1000 * statistics.median(delays):.0f} ms, max {1000 * max(delays):.0f} ms "
                    f"over {len(delays)} flips"
                )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(30)
        asyncio.run(admin_sql(f"DROP DATABASE IF EXISTS `{name}`"))


if __name__ == "__main__":
    main()
