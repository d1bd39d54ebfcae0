"""Records hot paths against the raw-driver floor, at two table sizes, on MariaDB.

    python -m bench.records --sizes 10000,1000000 --duration 10

For each size: a fresh database, a public ``items`` collection seeded with that many rows
(``score`` indexed, 20 rows per score value), a Garrison server (granian, 2 workers) whose
process also serves floor endpoints running the same SELECTs through asyncmy. wrk drives
four scenarios — get-by-id and a 20-row filtered list, each through Garrison and through the
floor — at 64 connections (throughput) and at 4 connections (unsaturated latency).
Writes ``bench/results/records-<stamp>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncmy
from sqlalchemy.engine import make_url

from garrison.audit import install_keyring
from garrison.db import Database, migrate
from garrison.events import Actor
from garrison.records import registry
from garrison.records.ids import uuid7
from garrison.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("GARRISON_BENCH_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306")
ITEMS = {
    "name": "items",
    "fields": [
        {"name": "title", "type": "text", "max_length": 100},
        {"name": "score", "type": "integer", "indexed": True},
        {"name": "done", "type": "boolean"},
    ],
    "rules": {"list": "", "view": "", "create": ""},  # public (bench/audit_api_cost.py writes)
}
LUA = """
local ids = {}
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
local scores = %(scores)d
math.randomseed(%(seed)d)
request = function()
  if "%(kind)s" == "get" then
    return wrk.format("GET", "%(prefix)s" .. ids[math.random(#ids)])
  end
  local s = math.random(scores) - 1
  return wrk.format("GET", string.format("%(list)s", s))
end
done = function(summary, latency, requests)
  local out = io.open("%(out)s", "w")
  out:write(string.format(
    '{"requests":%%d,"duration_us":%%d,"errors":%%d,"status_errors":%%d,'
    .. '"p50_ms":%%.3f,"p90_ms":%%.3f,"p99_ms":%%.3f,"mean_ms":%%.3f}',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000))
  out:close()
end
"""
SCENARIOS = {
    "garrison_get": ("get", "/api/v1/collections/items/records/", ""),
    "floor_get": ("get", "/bench/floor/items/", ""),
    "garrison_list": (
        "list",
        "",
        "/api/v1/collections/items/records?filter=score%%20%%3D%%20%d&limit=20",
    ),
    "floor_list": ("list", "", "/bench/floor/items?score=%d"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def admin_sql(sql: str) -> None:
    """One statement on the MariaDB server with no database selected (create, drop)."""
    url = make_url(SERVER_URL)
    conn = await asyncmy.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or ""
    )
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(sql)
    finally:
        conn.close()


async def prepare(rows: int, data_dir: Path) -> tuple[str, list[str]]:
    """Fresh database with ``rows`` items; returns its URL and a sample of ids."""
    name = f"garrison_bench_{rows}"
    await admin_sql(f"DROP DATABASE IF EXISTS `{name}`")
    await admin_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = f"{SERVER_URL}/{name}?charset=utf8mb4"
    settings = load_settings(_env_file=None, data_dir=data_dir, database_url=url)
    install_keyring(settings)
    await migrate.upgrade(settings.db_url, settings.db)
    db = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            await registry.create_collection(session, data=ITEMS, actor=Actor.system())
    finally:
        await db.dispose()
    parsed = make_url(url)
    conn = await asyncmy.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        db=name,
        autocommit=False,
    )
    scores = max(1, rows // 20)
    sample: list[str] = []
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        async with conn.cursor() as cursor:
            batch: list[tuple[Any, ...]] = []
            for i in range(rows):
                record_id = uuid7()
                if random.random() < 20_000 / rows:
                    sample.append(record_id)
                batch.append((record_id, now, now, None, 1, f"item {i}", i % scores, i % 2 == 0))
                if len(batch) == 5000 or i == rows - 1:
                    await cursor.executemany(
                        "INSERT INTO c_items (id, created_at, updated_at, owner, version, title,"
                        " score, done) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        batch,
                    )
                    await conn.commit()
                    batch = []
            await cursor.execute("ANALYZE TABLE c_items")
    finally:
        conn.close()
    return url, sample


EXTRA_ENV: dict[str, str] = {}  # --env KEY=VALUE: settings for the server under test


def start_server(
    url: str, data_dir: Path, port: int, workers: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
    env |= {
        "GARRISON_DATABASE_URL": url,
        "GARRISON_DATA_DIR": str(data_dir),
        "GARRISON_LOG__FORMAT": "json",
        "GARRISON_LOG__LEVEL": "info",
        "PYTHONPATH": str(ROOT),
        **EXTRA_ENV,
    }
    code = (
        "from garrison.server import run_server; "
        f"run_server(host='127.0.0.1', port={port}, workers={workers}, shutdown_timeout=5, "
        "target='bench.floor_app:create', factory=True)"
    )
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=out)


def wait_accepting(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run_wrk(
    port: int,
    scenario: str,
    ids_file: Path,
    scores: int,
    connections: int,
    duration: int,
    work: Path,
) -> dict[str, Any]:
    kind, prefix, list_path = SCENARIOS[scenario]
    out = work / f"{scenario}-{connections}.json"
    script = work / f"{scenario}.lua"
    script.write_text(
        LUA
        % {
            "ids": ids_file,
            "scores": scores,
            "seed": 42,
            "kind": kind,
            "prefix": prefix,
            "list": list_path,
            "out": out,
        }
    )
    threads = 2 if connections >= 2 else 1
    subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    return result


def measure(rows: int, duration: int, workers: int, work: Path) -> dict[str, Any]:
    data_dir = work / f"var-{rows}"
    url, sample = asyncio.run(prepare(rows, data_dir))
    ids_file = work / f"ids-{rows}.txt"
    ids_file.write_text("\n".join(sample) + "\n")
    port = free_port()
    server = start_server(url, data_dir, port, workers, work / f"server-{rows}.log")
    try:
        wait_accepting(port)
        results: dict[str, Any] = {}
        for scenario in SCENARIOS:  # warm every path (and the collection cache) first
            run_wrk(port, scenario, ids_file, max(1, rows // 20), 8, 2, work)
        for connections in (64, 4):
            for scenario in SCENARIOS:
                results[f"{scenario}@{connections}"] = run_wrk(
                    port, scenario, ids_file, max(1, rows // 20), connections, duration, work
                )
        return results
    finally:
        server.terminate()
        server.wait(30)
        asyncio.run(admin_sql(f"DROP DATABASE IF EXISTS `garrison_bench_{rows}`"))


def report(by_size: dict[int, dict[str, Any]]) -> str:
    lines = [
        "| rows | scenario | conns | req/s | p50 ms | p99 ms | errors | vs floor |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, results in by_size.items():
        for key, value in results.items():
            scenario, conns = key.split("@")
            ratio = ""
            if scenario.startswith("garrison"):
                floor = results[key.replace("garrison", "floor")]
                ratio = f"{value['rps'] / floor['rps']:.2f}x"
            errors = value["errors"] + value["status_errors"]
            lines.append(
                f"| {rows:,} | {scenario} | {conns} | {value['rps']:,.0f} | {value['p50_ms']:.2f}"
                f" | {value['p99_ms']:.2f} | {errors} | {ratio} |"
            )
    sizes = sorted(by_size)
    if len(sizes) >= 2:
        small, large = by_size[sizes[0]], by_size[sizes[-1]]
        lines.append("")
        lines.append(f"p50 at {sizes[-1]:,} rows / p50 at {sizes[0]:,} rows (4 connections):")
        for scenario in ("garrison_get", "garrison_list"):
            ratio = large[f"{scenario}@4"]["p50_ms"] / small[f"{scenario}@4"]["p50_ms"]
            lines.append(f"- {scenario}: {ratio:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    EXTRA_ENV.update(item.split("=", 1) for item in args.env)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="garrison-bench-") as tmp:
        by_size = {rows: measure(rows, args.duration, args.workers, Path(tmp)) for rows in sizes}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "when": stamp,
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "duration_s": args.duration,
    }
    (args.out / f"records-{stamp}.json").write_text(
        json.dumps({"meta": meta, "results": by_size}, indent=2)
    )
    table = report(by_size)
    (args.out / f"records-{stamp}.md").write_text(f"# Records benchmark {stamp}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
