"""What the metrics middleware costs: the same server with metrics on and off.

Two ``garrison serve`` processes (development profile, SQLite, one worker each, metrics in
multi-process mode as in production) answer ``GET /api/health/live``; load comes from wrk in
another process over loopback (an httpx loop when wrk is missing, which mostly measures the
client). Rounds alternate between the two servers so drift on a shared machine hits both
alike; the figure to read is the ratio, not the absolute rate.

    python -m bench.metrics_overhead [--seconds 5] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATH = "/api/health/live"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(data_dir: Path, *, metrics: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env.update(
        {
            "GARRISON_DATA_DIR": str(data_dir),
            "GARRISON_LOG__LEVEL": "warning",
            "GARRISON_LOG__FORMAT": "json",
            "GARRISON_METRICS__ENABLED": "true" if metrics else "false",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "garrison", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:  # until the port accepts
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except ConnectionRefusedError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.05)


def load_wrk(port: int, seconds: int, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            f"http://127.0.0.1:{port}{PATH}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def load_httpx(port: int, seconds: int, connections: int) -> float:
    import asyncio

    import httpx

    async def run() -> float:
        count = 0
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as c:

            async def worker() -> None:
                nonlocal count
                while time.monotonic() < deadline:
                    (await c.get(PATH)).raise_for_status()
                    count += 1

            await asyncio.gather(*(worker() for _ in range(connections)))
        return count / seconds

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    load = load_wrk if shutil.which("wrk") else load_httpx
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "metrics on": start_server(Path(tmp) / "on", metrics=True),
            "metrics off": start_server(Path(tmp) / "off", metrics=False),
        }
        try:
            rates: dict[str, list[float]] = {name: [] for name in servers}
            for _proc, port in servers.values():
                load(port, 1, args.connections)  # warm-up
            for _ in range(args.rounds):
                for name, (_proc, port) in servers.items():
                    rates[name].append(load(port, args.seconds, args.connections))
        finally:
            for proc, _port in servers.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    best = {name: max(values) for name, values in rates.items()}
    print(f"load generator: {load.__name__.removeprefix('load_')}, {PATH}")
    for name, values in rates.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:12} best {best[name]:>9,.0f} req/s   rounds: {shown}")
    ratio = best["metrics on"] / best["metrics off"]
    print(f"throughput with metrics / without: {ratio:.3f} (overhead {100 * (1 - ratio):.1f}%)")


if __name__ == "__main__":
    main()
