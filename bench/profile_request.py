"""Where one request's time goes: the production-profile app called in process, layer by layer.

    python -m bench.profile_request --requests 3000 [--scenario get,list,create,health,ofrep]

Builds the app exactly as ``garrison serve`` does under ``GARRISON_ENV=production`` (MariaDB,
Redis, JSON access log to /dev/null, metrics on, audit on; the suite's raised rate limits,
so the limiter still runs and still asks Redis), seeds the suite's ``items`` collection and
one signed-in user, and calls the ASGI app directly, one request at a time, on uvloop. No
HTTP server and no load generator share the cores, so the figures are the app's own cost.

For each scenario it reports the CPU time per request without the profiler
(``time.process_time`` over the whole run), then a cProfile run of the same requests with
the time split into layers: each middleware's own work (its ``__call__`` minus the layer
inside it, its ``send`` wrapper included), and the named parts below the gateway (token
verification, the deny list, the user's state, the quota lookup, the rate-limit script,
the query, serialisation, the access-log line). ``ofrep`` is the OFREP bulk evaluation of
the 20 flags ``bench.flags`` defines, by the signed-in user. cProfile slows Python code more than C
code, so the split is given as shares of the profiled total, scaled to the unprofiled CPU
per request. ``--json`` prints the figures for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import orjson
import uvloop

from bench.records import admin_sql
from bench.suite import garrison_target
from garrison.types import Message

HOST = [(b"host", b"localhost"), (b"user-agent", b"bench/profile")]


# Functions are named "file-suffix:function" as pstats knows them (qualname-less).
MIDDLEWARE = [
    ("gateway layer (id, address, metrics, log, headers)", "gateway/pipeline.py", ("__call__",)),
    ("request id", "gateway/request_id.py", ("__call__",)),
    ("client address", "gateway/client_ip.py", ("__call__",)),
    ("metrics", "gateway/metrics.py", ("__call__",)),
    ("access log", "gateway/access_log.py", ("__call__",)),
    ("security headers", "gateway/security_headers.py", ("__call__",)),
    ("CORS", "starlette/middleware/cors.py", ("__call__",)),
    ("errors", "gateway/errors.py", ("__call__",)),
    ("rate limit", "gateway/rate_limit.py", ("__call__",)),
    ("read-only switch", "status/readonly.py", ("__call__",)),
    ("body limit", "gateway/body_limit.py", ("__call__",)),
    ("content type", "gateway/content_type.py", ("__call__",)),
    ("strict JSON", "gateway/json_body.py", ("__call__",)),
]
PARTS = [
    ("identify (token verify)", [("auth/identify.py", "principal_key")]),
    ("quota lookup", [("quotas/service.py", "__call__")]),
    ("rate-limit script (Redis)", [("store/ratelimit.py", "hit")]),
    ("deny list", [("auth/denylist.py", "is_denied")]),
    ("user state (query)", [("auth/authenticate.py", "_user_principal")]),
    ("access-log line", [("structlog/_native.py", "meth"), ("garrison/log.py", "__call__")]),
    ("metrics observe", [("metrics/registry.py", "observe_request")]),
]


def _cumulative(stats: pstats.Stats, file_suffix: str, names: Iterable[str]) -> float:
    total = 0.0
    wanted = set(names)
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        if filename.endswith(file_suffix) and function in wanted:
            total += row[3]  # cumulative time
    return total


_SEND_WRAPPERS = {"send_with_id", "send_with_headers", "send_wrapper", "<listcomp>", "<genexpr>"}


def _send_wrappers(stats: pstats.Stats) -> float:
    """Own time of the gateway's ``send`` wrappers (and the header rewriting in them)."""
    total = 0.0
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        in_gateway = "garrison/gateway/" in filename
        if (
            (in_gateway and function in _SEND_WRAPPERS)
            or (in_gateway and function == "rewrite")
            or (filename.endswith("garrison/context.py") and function == "__call__")
        ):
            total += row[2]  # own time
    return total


def _split(stats: pstats.Stats) -> dict[str, float]:
    """Seconds per named layer of the profiled run (``__total__``: the whole of it)."""
    layers: dict[str, float] = {}
    total = _cumulative(stats, "bench/profile_request.py", ["call"])
    cumulative = [_cumulative(stats, suffix, names) for _n, suffix, names in MIDDLEWARE]
    framework = _cumulative(stats, "starlette/middleware/exceptions.py", ["__call__"])
    outermost = next((c for c in cumulative if c > 0), total)
    layers["server-error layer, app entry"] = max(0.0, total - outermost)
    for index, (name, _suffix, _names) in enumerate(MIDDLEWARE):
        inner = next((c for c in cumulative[index + 1 :] if c > 0), framework)
        layers[name] = max(0.0, cumulative[index] - inner) if cumulative[index] else 0.0
    for name, functions in PARTS:
        layers[name] = sum(_cumulative(stats, suffix, [fn]) for suffix, fn in functions)
    # The parts that run inside a middleware are taken out of its share.
    inside_limiter = ("identify (token verify)", "quota lookup", "rate-limit script (Redis)")
    layers["rate limit"] = max(0.0, layers["rate limit"] - sum(layers[n] for n in inside_limiter))
    # The access-log line and the metrics are written by their own layer, or by the one
    # gateway layer that took them over.
    gateway = "gateway layer (id, address, metrics, log, headers)"
    log_owner = "access log" if layers["access log"] else gateway
    metrics_owner = "metrics" if layers["metrics"] else gateway
    layers[log_owner] = max(0.0, layers[log_owner] - layers["access-log line"])
    layers[metrics_owner] = max(0.0, layers[metrics_owner] - layers["metrics observe"])
    layers["send wrappers (response headers)"] = _send_wrappers(stats)
    solve = _cumulative(stats, "fastapi/dependencies/utils.py", ["solve_dependencies"])
    handler = _cumulative(stats, "fastapi/routing.py", ["run_endpoint_function"])
    serialise = _cumulative(stats, "fastapi/routing.py", ["serialize_response"])
    auth = layers["deny list"] + layers["user state (query)"]
    layers["dependency solving (less deny list, user state)"] = max(0.0, solve - auth)
    layers["handler (query included)"] = handler
    layers["response serialisation"] = serialise
    layers["routing, request parsing, response"] = max(
        0.0, framework - solve - handler - serialise - layers["send wrappers (response headers)"]
    )
    layers["__total__"] = total
    return layers


async def _call(app: Any, method: str, path: str, *, query: bytes, headers: list[Any], body: bytes):
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [*HOST, *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 3000),
    }
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _requests(kind: str, token: str, ids: list[str], scores: int) -> Callable[[], Any]:
    auth = [(b"authorization", f"Bearer {token}".encode())]
    api = garrison_target.API

    def make() -> tuple[str, str, bytes, list[Any], bytes]:
        if kind == "health":
            return "GET", "/api/health", b"", [], b""
        if kind == "ofrep":
            body = orjson.dumps({"context": {"email": "someone@corp.io", "version": "2.3.1"}})
            headers = [(b"content-type", b"application/json")]
            return "POST", "/ofrep/v1/evaluate/flags", b"", [*auth, *headers], body
        if kind == "get":
            return "GET", f"{api}/{random.choice(ids)}", b"", auth, b""
        if kind == "list":
            query = f"limit=20&filter=score%20%3D%20{random.randrange(scores)}".encode()
            return "GET", api, query, auth, b""
        body = orjson.dumps({"title": "profiled", "score": random.randrange(scores), "done": True})
        json_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        return "POST", api, b"", [*auth, *json_headers], body

    return make


async def _profile(
    app: Any,
    kind: str,
    make: Callable[[], Any],
    count: int,
    top: int = 0,
    split_layers: bool = True,
) -> dict[str, Any]:
    async def call(method: str, path: str, query: bytes, headers: list[Any], body: bytes):
        return await _call(app, method, path, query=query, headers=headers, body=body)

    for _ in range(200):  # warm-up: caches, compiled statements, pools
        status, payload = await call(*make())
        if status >= 300:
            raise RuntimeError(f"{kind}: {status} {payload[:300]!r}")
    started = time.process_time()
    for _ in range(count):
        await call(*make())
    cpu_us = (time.process_time() - started) / count * 1e6
    if not split_layers:  # e.g. under py-spy, which samples the timed loop above
        return {"scenario": kind, "cpu_us_per_request": round(cpu_us, 1), "layers": {}}
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        await call(*make())
    profiler.disable()
    stats = pstats.Stats(profiler)
    if top:
        print(f"--- {kind}: the {top} functions with the most own time (profiled) ---")
        stats.sort_stats("tottime").print_stats(top)
    split = _split(stats)
    total = split.pop("__total__") or 1.0
    scale = cpu_us / (total / count * 1e6)  # profiled µs -> unprofiled µs
    layers = {name: round(seconds / count * 1e6 * scale, 1) for name, seconds in split.items()}
    return {"scenario": kind, "cpu_us_per_request": round(cpu_us, 1), "layers": layers}


async def _seed_flags(settings: Any) -> None:
    """The 20 flags of ``bench.flags``, configured for this (production) environment."""
    from bench.flags import definitions
    from garrison.db import Database
    from garrison.events import Actor
    from garrison.flags import service as flags
    from garrison.flags.schemas import FlagIn

    db = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            for item in definitions():
                fields = {k: v for k, v in item.items() if k not in ("key", "version")}
                fields["environments"] = {settings.env: fields["environments"]["development"]}
                await flags.put_flag(
                    session, key=item["key"], body=FlagIn(**fields), actor=Actor.system()
                )
    finally:
        await db.dispose()


async def _main(args: argparse.Namespace, sink: TextIO) -> list[dict[str, Any]]:
    stamp = "profile" + secrets.token_hex(3)
    data_dir = Path(tempfile.mkdtemp(prefix="garrison-profile-"))
    name = garrison_target.database_name(stamp)
    seeded = await garrison_target.prepare(name, args.rows, 1, data_dir)
    env = garrison_target.environment(seeded, data_dir, stamp, workers=1)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    results: list[dict[str, Any]] = []
    try:
        from garrison.app import create_app
        from garrison.log import configure_logging
        from garrison.settings import load_settings

        settings = load_settings()
        configure_logging(settings, stream=sink)  # the access log is written, to /dev/null
        if "ofrep" in args.scenario.split(","):
            await _seed_flags(settings)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            body = orjson.dumps({"email": seeded.emails[0], "password": garrison_target.PASSWORD})
            status, payload = await _call(
                app,
                "POST",
                "/api/v1/auth/login",
                query=b"",
                headers=[(b"content-type", b"application/json")],
                body=body,
            )
            if status != 200:
                raise RuntimeError(f"login: {status} {payload[:300]!r}")
            token = orjson.loads(payload)["access_token"]
            for kind in args.scenario.split(","):
                make = _requests(kind, token, seeded.ids, seeded.scores)
                results.append(
                    await _profile(app, kind, make, args.requests, args.top, not args.no_cprofile)
                )
    finally:
        os.environ.clear()
        os.environ.update(saved)
        await admin_sql(f"DROP DATABASE IF EXISTS `{name}`")
    return results


def _table(results: list[dict[str, Any]]) -> str:
    names: list[str] = []
    for result in results:
        names += [n for n in result["layers"] if n not in names]
    head = "| layer (µs per request) | " + " | ".join(r["scenario"] for r in results) + " |"
    lines = [head, "|---|" + "---:|" * len(results)]
    for name in names:
        cells = [f"{r['layers'].get(name, 0):.0f}" for r in results]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cpu = [f"**{r['cpu_us_per_request']:.0f}**" for r in results]
    lines.append("| **CPU per request, unprofiled** | " + " | ".join(cpu) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per scenario")
    parser.add_argument("--rows", type=int, default=10_000, help="rows seeded into items")
    parser.add_argument("--scenario", default="health,get,list,create")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--top", type=int, default=0, help="also print the N costliest functions")
    parser.add_argument(
        "--no-cprofile",
        action="store_true",
        help="only the timed run (to sample it with py-spy; cProfile cannot follow the "
        "ORM's greenlet switches, so its split of a write is not meaningful)",
    )
    args = parser.parse_args()
    with open(os.devnull, "w") as sink:
        results = uvloop.run(_main(args, sink))
    print(json.dumps(results, indent=2) if args.json else _table(results))


if __name__ == "__main__":
    main()
