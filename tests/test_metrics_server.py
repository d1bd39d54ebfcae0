"""Metrics under the real server: several worker processes, and the separate listener."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.helpers import LoggedProcess, free_port, wait_until_accepting
from tests.metrics_helpers import parse, value

pytestmark = pytest.mark.slow
LIVE = {"method": "GET", "route": "/api/health/live", "status": "200"}


def _wait_for_workers(server: LoggedProcess, port: int, count: int) -> None:
    """Every worker has run its startup (one ``garrison.ready`` line each) and the port
    accepts connections."""
    server.wait_for("garrison.ready", count=count)
    wait_until_accepting(port)


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> LoggedProcess:
    return LoggedProcess(
        [sys.executable, "-m", "garrison", "serve", *args],
        {"GARRISON_DATA_DIR": str(tmp_path / "var"), "GARRISON_LOG__FORMAT": "json", **(env or {})},
    )


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[LoggedProcess, int]]:
    port = free_port()
    stale = tmp_path / "var" / "metrics" / str(port)
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"not a metrics file")
    server = _serve(tmp_path, "--port", str(port), "--workers", "2")
    try:
        _wait_for_workers(server, port, 2)
        yield server, port
    finally:
        server.stop()


def test_counts_add_up_across_two_workers(
    two_workers: tuple[LoggedProcess, int], tmp_path: Path
) -> None:
    _server, port = two_workers
    base = f"http://127.0.0.1:{port}"
    sent = 200

    def hit(_: int) -> int:
        # A connection per request, so the kernel spreads them over both workers.
        response = httpx.get(f"{base}/api/health/live", headers={"Connection": "close"}, timeout=10)
        return response.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(hit, range(sent)))
    assert statuses == [200] * sent
    # Each scrape is answered by whichever worker accepts it; every one must see the total.
    for _ in range(6):
        response = httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 200
        samples = parse(response.text)
        assert value(samples, "garrison_http_requests_total", LIVE) == sent
        assert value(samples, "garrison_http_request_duration_seconds_count", LIVE) == sent
        assert value(samples, "garrison_workers") == 2
    # Both workers served some of them: the total above is a sum over processes.
    directory = tmp_path / "var" / "metrics" / str(port)
    per_worker = [_served(path) for path in sorted(directory.glob("counter_*.db"))]
    assert sum(per_worker) == sent
    assert len([n for n in per_worker if n > 0]) == 2, per_worker
    # The stale file of an earlier run was removed before the workers started.
    assert not (directory / "counter_999999.db").exists()


def _served(path: Path) -> float:
    """Requests to the live route counted in one worker's file."""
    families = MultiProcessCollector.merge([str(path)], accumulate=True)  # type: ignore[no-untyped-call]
    return sum(
        float(sample.value)
        for family in families
        for sample in family.samples
        if sample.name == "garrison_http_requests_total"
        and sample.labels.get("route") == LIVE["route"]
    )


def test_separate_listener_serves_what_the_api_does_not(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    server = _serve(
        tmp_path,
        "--port",
        str(port),
        env={"GARRISON_METRICS__LISTEN": f"127.0.0.1:{metrics_port}"},
    )
    try:
        _wait_for_workers(server, port, 1)
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/api/health/live").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
        response = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert response.status_code == 200
        samples = parse(response.text)
        assert value(samples, "garrison_http_requests_total", LIVE) == 3
        assert value(samples, "garrison_http_requests_total", {**LIVE, "route": "/metrics"}) == 0
    finally:
        server.stop()


def test_production_metrics_need_the_token(tmp_path: Path) -> None:
    """As a client would see it in production (MariaDB, Redis, real secrets): /metrics is
    refused without the bearer token and parses with it; the token is never logged."""
    from tests import services
    from tests.helpers import GOOD_SECRET, garrison

    url = services.create_mysql_database()
    token = "Pm4xV8nB2cQ6wE9rT1yU5iO3pA7sD0fGh"
    env = {
        "GARRISON_ENV": "production",
        "GARRISON_DATA_DIR": str(tmp_path / "var"),
        "GARRISON_DATABASE_URL": url,
        "GARRISON_REDIS_URL": services.check_redis(),
        "GARRISON_SECRET_KEY": GOOD_SECRET,
        "GARRISON_METRICS__TOKEN": token,
    }
    server: LoggedProcess | None = None
    try:
        assert garrison("migrate", "up", env=env).returncode == 0
        port = free_port()
        server = LoggedProcess(
            [sys.executable, "-m", "garrison", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env,
        )
        _wait_for_workers(server, port, 1)
        base = f"http://127.0.0.1:{port}"
        for _ in range(5):
            assert httpx.get(f"{base}/api/health/live", timeout=10).status_code == 200
        refused = httpx.get(f"{base}/metrics", timeout=10)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        wrong = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        response = httpx.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 200
        samples = parse(response.text)
        assert value(samples, "garrison_http_requests_total", LIVE) == 5
        unauthorized = {**LIVE, "route": "/metrics", "status": "401"}
        assert value(samples, "garrison_http_requests_total", unauthorized) == 2
        assert value(samples, "garrison_db_pool_size", {"pool": "writer"}) == 10
    finally:
        if server:
            server.proc.terminate()
            rest, _ = server.proc.communicate(timeout=30)
            server.stop()
            output = "".join(server.lines) + rest
            assert "garrison.ready" in output
            assert token not in output
        services.drop_mysql_database(url)


def test_listener_address_in_use_is_one_clear_line(tmp_path: Path) -> None:
    from tests.helpers import garrison

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = garrison(
            "serve",
            "--port",
            str(free_port()),
            env={
                "GARRISON_DATA_DIR": str(tmp_path / "var"),
                "GARRISON_METRICS__LISTEN": f"127.0.0.1:{busy}",
            },
        )
    assert result.returncode == 1
    assert f"GARRISON_METRICS__LISTEN=127.0.0.1:{busy}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_command_does_not_import_prometheus_client_early() -> None:
    """`garrison serve` announces PROMETHEUS_MULTIPROC_DIR before the workers fork; if the
    parent had already imported prometheus-client, the workers would count in memory and
    /metrics would miss every other worker's requests."""
    import subprocess

    code = "import sys, garrison.cli; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
