"""File upload figures against a real ``garrison serve`` (granian) on loopback.

1. 1 MiB uploads (a record with one file, multipart) from 16 concurrent clients:
   p50/p99 latency and uploads/s, on local disk and (``--s3``) on a SeaweedFS S3 gateway.
2. Memory: the server's RSS (every process of it) sampled while one large file
   (``--big-mib``, default 256) streams in; the rise over the idle RSS.
3. Download: a ``--download-mib`` (default 100) file fetched ``--downloads`` times through
   Garrison (view rule, storage read, streaming) against the floor: the same bytes as a
   static file (``bench/files_floor.py``) on the same HTTP server in the same run.

    flock /tmp/garrison-bench.lock .venv/bin/python -m bench.files [--s3] [--uploads 800]

SQLite in a temporary data dir (the embedded default), one server worker. The SeaweedFS
test server (``garrison.ops.backup.servers.SeaweedS3``) holds about 320 MiB (5 volumes of
64 MiB): keep ``--s3`` runs under that (e.g. ``--uploads 64 --big-mib 128
--download-mib 64``), or the storage refuses mid-upload. Writes
``bench/results/files-<stamp>.json`` and prints a Markdown table.
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
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from garrison.ops.backup.servers import SeaweedS3, free_port

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
PASSWORD = "bench-password-Zq8mW3nR6tY1uI4o"
COLLECTION = {
    "name": "uploads",
    "fields": [
        {"name": "title", "type": "text"},
        {"name": "blob", "type": "file", "max_size": 4096 * MIB},
    ],
    "rules": {"list": "", "view": "", "create": "", "update": "", "delete": ""},
}


def _env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
    return env | {
        "GARRISON_DATA_DIR": str(data_dir),
        "GARRISON_LOG__LEVEL": "warning",
        "GARRISON_LOG__FORMAT": "json",
        **extra,
    }


@contextmanager
def server(
    data_dir: Path, extra: dict[str, str], workers: int = 1
) -> Iterator[tuple[str, psutil.Process]]:
    env = _env(data_dir, extra)
    garrison = [sys.executable, "-m", "garrison"]
    subprocess.run([*garrison, "migrate", "up"], env=env, check=True, capture_output=True)
    subprocess.run(
        [
            *garrison,
            "users",
            "create",
            "--email",
            "admin@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        env=env,
        input=PASSWORD.encode(),
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(
        [*garrison, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=log,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/api/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the server did not start; see {data_dir / 'server.log'}")
        time.sleep(0.1)
    try:
        yield base, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def rss(process: psutil.Process) -> int:
    total = 0
    for each in [process, *process.children(recursive=True)]:
        try:
            total += each.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def uploads(base: str, token: str, *, count: int, clients: int) -> dict[str, Any]:
    payload = os.urandom(MIB)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/api/v1/collections/uploads/records"
    latencies: list[float] = []
    queue = iter(range(count))
    failures = 0
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one() -> None:
            nonlocal failures
            for _ in queue:
                started = time.perf_counter()
                response = await client.post(
                    url,
                    headers=headers,
                    data={"data": '{"title":"b"}'},
                    files={"blob": ("b.bin", payload, "application/octet-stream")},
                )
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 201:
                    failures += 1
                    errors.append(f"{response.status_code} {response.text[:200]}")

        for _ in range(clients):  # warm-up: one each, not counted
            await client.post(url, headers=headers, files={"blob": ("w", payload, "x/y")})
        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return {
        "uploads": count,
        "clients": clients,
        "failures": failures,
        "errors": errors[:5],
        "per_s": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(percentile(latencies, 0.90), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
    }


def uploads_k6(base: str, token: str, work: Path, *, count: int, clients: int) -> dict[str, Any]:
    """The same uploads with k6 as the client (``bench/suite/k6/files_upload.js``)."""
    from bench.suite.loadgen import k6, k6_result

    payload = work / "upload.bin"
    payload.write_bytes(os.urandom(MIB))
    env: dict[str, str | int | float] = {
        "BASE": base,
        "TOKEN": token,
        "FILE": str(payload),
        "CLIENTS": clients,
    }
    k6("files_upload.js", payload, env | {"UPLOADS": clients}, work=work, name="warm-up")
    found = k6_result(
        k6("files_upload.js", payload, env | {"UPLOADS": count}, work=work, name="uploads")
    )
    return {
        "generator": "k6",
        "uploads": found["requests"],
        "clients": clients,
        "failures": found["failed"],
        "per_s": found["rps"],
        "p50_ms": round(found["p50_ms"], 1),
        "p99_ms": round(found["p99_ms"], 1),
        "max_ms": round(found["max_ms"], 1),
    }


async def big_upload(base: str, token: str, process: psutil.Process, mib: int) -> dict[str, Any]:
    idle = rss(process)
    peak = idle
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            peak = max(peak, rss(process))

    chunk = os.urandom(MIB)
    boundary = uuid.uuid4().hex

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="blob"; '
            'filename="big.bin"\r\n\r\n'
        ).encode()
        for _ in range(mib):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        async with httpx.AsyncClient(timeout=600) as client:
            response = await client.post(
                f"{base}/api/v1/collections/uploads/records",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
                content=body(),
            )
    finally:
        stop.set()
        sampler.join()
    return {
        "mib": mib,
        "status": response.status_code,
        "idle_rss_mib": round(idle / MIB, 1),
        "rss_rise_mib": round((peak - idle) / MIB, 1),
    }


@contextmanager
def floor_server(path: Path, log: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env |= {"BENCH_STATIC_FILE": str(path), "PYTHONPATH": str(ROOT)}
    code = (
        "from garrison.server import run_server; "
        f"run_server(host='127.0.0.1', port={port}, workers=1, shutdown_timeout=5, "
        "target='bench.files_floor:app', factory=False)"
    )
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base, timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the floor did not start; see {log}") from None
            time.sleep(0.1)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


async def mib_per_s(url: str, headers: dict[str, str], times: int) -> float:
    rates = []
    async with httpx.AsyncClient(timeout=600) as client:
        for _ in range(times):
            began, size = time.perf_counter(), 0
            async with client.stream("GET", url, headers=headers) as response:
                response.raise_for_status()
                async for chunk in response.aiter_raw():
                    size += len(chunk)
            rates.append(size / MIB / (time.perf_counter() - began))
    return round(statistics.median(rates), 1)


async def downloads(base: str, token: str, work: Path, *, mib: int, times: int) -> dict[str, Any]:
    data = os.urandom(MIB) * mib
    static = work / "static.bin"
    static.write_bytes(data)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        made = await client.post(
            "/api/v1/collections/uploads/records",
            headers=headers,
            files={"blob": ("big.bin", data, "application/octet-stream")},
        )
        made.raise_for_status()
    record = made.json()
    url = f"{base}/api/v1/collections/uploads/records/{record['id']}/files/blob/{record['blob']}"
    del data
    with floor_server(static, work / "floor.log") as floor:
        garrison = await mib_per_s(url, headers, times)
        floor_rate = await mib_per_s(floor, {}, times)
    return {
        "mib": mib,
        "garrison_mib_s": garrison,
        "floor_mib_s": floor_rate,
        "ratio": round(garrison / floor_rate, 2),
    }


async def measure(
    base: str, process: psutil.Process, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
        )
        token = login.json()["access_token"]
        made = await client.post(
            "/api/v1/collections", json=COLLECTION, headers={"Authorization": f"Bearer {token}"}
        )
        assert made.status_code == 201, made.text
    if args.generator == "k6":
        uploaded = await asyncio.to_thread(
            uploads_k6, base, token, work, count=args.uploads, clients=args.clients
        )
    else:
        uploaded = await uploads(base, token, count=args.uploads, clients=args.clients)
    return {
        "uploads_1mib": uploaded,
        "big_upload": await big_upload(base, token, process, args.big_mib),
        "download": await downloads(base, token, work, mib=args.download_mib, times=args.downloads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=800)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--download-mib", type=int, default=100)
    parser.add_argument("--downloads", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--generator",
        choices=("k6", "httpx"),
        default="k6",
        help="the upload client: k6 (Go, light on the shared cores) or httpx in this process",
    )
    parser.add_argument(
        "--database-url", default=None, help="an empty MySQL/MariaDB database (default SQLite)"
    )
    parser.add_argument("--s3", action="store_true", help="store in a SeaweedFS S3 gateway")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="garrison-files-bench-") as scratch:
        work = Path(scratch)
        extra: dict[str, str] = {
            "GARRISON_HTTP__MAX_BODY_BYTES": str(2 * MIB),
            # The big upload's multipart body is a little larger than its file.
            "GARRISON_FILES__MAX_UPLOAD_BYTES": str((args.big_mib + 16) * MIB),
        }
        if args.database_url:
            extra["GARRISON_DATABASE_URL"] = args.database_url
        gateway = None
        if args.s3:
            gateway = SeaweedS3(work / "seaweed")
            gateway.start()
            import boto3

            bucket = "bench-files"
            s3 = boto3.client(
                "s3",
                endpoint_url=gateway.endpoint,
                region_name="us-east-1",
                aws_access_key_id=gateway.access_key,
                aws_secret_access_key=gateway.secret_key,
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    s3.create_bucket(Bucket=bucket)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            extra |= {
                "GARRISON_FILES__BACKEND": "s3",
                "GARRISON_FILES__S3_BUCKET": bucket,
                "GARRISON_FILES__S3_ENDPOINT_URL": gateway.endpoint,
                "GARRISON_FILES__S3_ACCESS_KEY_ID": gateway.access_key,
                "GARRISON_FILES__S3_SECRET_ACCESS_KEY": gateway.secret_key,
            }
        try:
            data_dir = work / "var"
            data_dir.mkdir()
            with server(data_dir, extra, args.workers) as (base, process):
                figures = asyncio.run(measure(base, process, args, work))
        finally:
            if gateway is not None:
                gateway.stop()
    database = "mariadb" if args.database_url else "sqlite"
    figures |= {"backend": "s3 (SeaweedFS)" if args.s3 else "local disk", "database": database}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"files-{stamp}.json").write_text(json.dumps(figures, indent=2))
    up, big, down = figures["uploads_1mib"], figures["big_upload"], figures["download"]
    print(
        f"| backend | uploads/s | p50 ms | p99 ms | failures | {big['mib']} MiB upload RSS rise |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {figures['backend']} | {up['per_s']} | {up['p50_ms']} | {up['p99_ms']} | "
        f"{up['failures']} | {big['rss_rise_mib']} MiB (status {big['status']}) |"
    )
    print(
        f"\n{down['mib']} MiB download: Garrison {down['garrison_mib_s']} MiB/s, "
        f"static floor {down['floor_mib_s']} MiB/s, ratio {down['ratio']}"
    )


if __name__ == "__main__":
    main()
