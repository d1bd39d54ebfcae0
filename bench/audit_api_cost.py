"""What the audit entry and outbox message add to a record write through the API.

    python -m bench.audit_api_cost --duration 10 --rounds 2

One MariaDB database with a public ``items`` collection; the same server (granian, 2
workers, development profile so the in-process worker seals entries and fills the outbox)
is started with the event seam writing audit entries (``on``) and with it only logging
(``off``), alternately, and wrk POSTs records at 16 connections. Reports created/s and the
overhead of ``on`` over ``off``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from bench.records import ROOT, admin_sql, free_port, prepare, wait_accepting

LUA = """
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"title": "item %%d", "score": %%d, "done": true}', n, n %% 100)
  return wrk.format("POST", "/api/v1/collections/items/records",
    {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  local out = io.open("%(out)s", "w")
  out:write(string.format('{"requests":%%d,"duration_us":%%d,"errors":%%d,"p50_ms":%%.3f}',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout + summary.errors.status,
    latency:percentile(50) / 1000))
  out:close()
end
"""


def run(
    url: str, data_dir: Path, audit: str, duration: int, work: Path, *, in_process: bool
) -> dict[str, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
    env |= {
        "GARRISON_DATABASE_URL": url,
        "GARRISON_DATA_DIR": str(data_dir),
        "GARRISON_LOG__FORMAT": "json",
        "GARRISON_LOG__LEVEL": "info",
        "GARRISON_BENCH_AUDIT": audit,
        "GARRISON_WORKER__IN_PROCESS": "true" if in_process else "false",
        "PYTHONPATH": str(ROOT),
    }
    code = (
        "from garrison.server import run_server; "
        f"run_server(host='127.0.0.1', port={port}, workers=2, shutdown_timeout=5, "
        "target='bench.floor_app:create', factory=True)"
    )
    with (work / f"server-{audit}.log").open("ab") as log:
        server = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
    try:
        wait_accepting(port)
        out = work / f"{audit}.json"
        script = work / "post.lua"
        script.write_text(LUA % {"out": out})
        subprocess.run(
            ["wrk", "-t2", "-c16", f"-d{duration}s", "-s", str(script), f"http://127.0.0.1:{port}"],
            check=True,
            capture_output=True,
        )
        result: dict[str, float] = json.loads(out.read_text())
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        return result
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="no in-process worker: the write path alone (nothing seals entries meanwhile)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="garrison-audit-") as tmp:
        work = Path(tmp)
        url, _ = asyncio.run(prepare(1000, work / "var"))
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        try:
            for _ in range(args.rounds):
                for audit in ("off", "on"):
                    results[audit].append(
                        run(
                            url,
                            work / "var",
                            audit,
                            args.duration,
                            work,
                            in_process=not args.no_worker,
                        )
                    )
        finally:
            asyncio.run(admin_sql(f"DROP DATABASE IF EXISTS `{name}`"))
    on = median(r["rps"] for r in results["on"])
    off = median(r["rps"] for r in results["off"])
    errors = sum(r["errors"] for rs in results.values() for r in rs)
    print(f"audit off: {off:,.0f} creates/s   audit on: {on:,.0f} creates/s   errors: {errors}")
    print(f"audit and outbox add {100 * (off / on - 1):.1f}% to a record write through the API")


if __name__ == "__main__":
    main()
