"""The deploy stack end to end: HAProxy from the rendered config in front of two Garrison
instances (MariaDB and Redis shared), deploys of real wheels through the ``garrison``
command, the TLS grade checked with sslyze, and failures the deploy must survive."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.deploy_stack import Stack, build_wheel, free_port, variant

from tests import services

pytestmark = [pytest.mark.slow, pytest.mark.mariadb, pytest.mark.redis]
ADMIN = "ops@example.com"
ADMIN2 = "second@example.com"
PASSWORD = "Correct-Horse-Battery-9"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    wheel = build_wheel(out / "dist")
    kinds = ("never_ready", "fails_behind_proxy", "contract")
    return {"good": wheel, **{kind: variant(wheel, out, kind) for kind in kinds}}


def _poll(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # bounded poll of a condition


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Iterator[Stack]:
    if shutil.which("haproxy") is None:
        services.unavailable("HAProxy", "the haproxy command is not installed")
    url = services.create_mysql_database()
    redis_url = services.check_redis()
    root = tmp_path_factory.mktemp("stack")
    stack = Stack(root, url, redis_url, [free_port(), free_port()], [free_port(), free_port()])
    stack.write_config()
    try:
        stack.start_haproxy()
        first = stack.cli("deploy", "--env", "production", "--release", str(wheels["good"]))
        assert first.returncode == 0, first.stderr
        for email in (ADMIN, ADMIN2):
            made = _create_admin(stack, email)
            assert made.returncode == 0, made.stderr
        yield stack
    finally:
        stack.close()
        services.drop_mysql_database(url)


def _create_admin(stack: Stack, email: str) -> Any:
    import subprocess

    garrison = Path(stack.cli_env()["PATH"].split(":")[0]) / "garrison"
    return subprocess.run(
        [str(garrison), "users", "create", "--email", email, "--role", "admin", "--password-stdin"],
        env=stack.app_env(),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def _client(stack: Stack, base: str | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(stack.certificate))
    return httpx.Client(base_url=base or stack.url, verify=context, timeout=10)


def _login(client: httpx.Client, email: str = ADMIN) -> str:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _direct(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)


def _active_ports(stack: Stack) -> list[int]:
    state = stack.state()
    return [int(key.rsplit(":", 1)[1]) for key in state["colours"][state["active"]]["pids"]]


def test_tls_grade_is_modern(stack: Stack) -> None:
    """sslyze against the running front end: TLS 1.2+ only, forward-secret AEAD suites
    only, TLS 1.3 offered, HSTS of at least a year with includeSubDomains."""
    from sslyze.plugins.scan_commands import ScanCommand
    from sslyze.scanner.models import ServerScanRequest, ServerScanStatusEnum
    from sslyze.scanner.scanner import Scanner
    from sslyze.server_setting import ServerNetworkLocation

    scanner = Scanner()
    location = ServerNetworkLocation("localhost", stack.https_port, ip_address="127.0.0.1")
    commands = {
        ScanCommand.SSL_2_0_CIPHER_SUITES,
        ScanCommand.SSL_3_0_CIPHER_SUITES,
        ScanCommand.TLS_1_0_CIPHER_SUITES,
        ScanCommand.TLS_1_1_CIPHER_SUITES,
        ScanCommand.TLS_1_2_CIPHER_SUITES,
        ScanCommand.TLS_1_3_CIPHER_SUITES,
        ScanCommand.HTTP_HEADERS,
    }
    scanner.queue_scans([ServerScanRequest(server_location=location, scan_commands=commands)])
    (result,) = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED
    scans = result.scan_result
    assert scans is not None
    for old in (
        "ssl_2_0_cipher_suites",
        "ssl_3_0_cipher_suites",
        "tls_1_0_cipher_suites",
        "tls_1_1_cipher_suites",
    ):
        attempt = getattr(scans, old)
        assert attempt.result is not None, old
        assert attempt.result.accepted_cipher_suites == [], old
    tls12 = scans.tls_1_2_cipher_suites.result
    assert tls12 is not None
    names = [s.cipher_suite.name for s in tls12.accepted_cipher_suites]
    assert names
    for name in names:
        assert name.startswith("TLS_ECDHE_"), name  # forward secret
        assert "GCM" in name or "CHACHA20_POLY1305" in name, name  # AEAD
    tls13 = scans.tls_1_3_cipher_suites.result
    assert tls13 is not None
    assert tls13.accepted_cipher_suites
    headers = scans.http_headers.result
    assert headers is not None
    hsts = headers.strict_transport_security_header
    assert hsts is not None
    assert hsts.max_age is not None
    assert hsts.max_age >= 31_536_000
    assert hsts.include_subdomains


def test_front_end_redirects_speaks_h2_and_sets_forwarded_headers(stack: Stack) -> None:
    plain = httpx.get(f"http://127.0.0.1:{stack.http_port}/api/health/live", timeout=10)
    assert plain.status_code == 301
    assert plain.headers["location"].startswith("https://")
    context = ssl.create_default_context(cafile=str(stack.certificate))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with _client(stack) as client:
        # A spoofed X-Forwarded-For is replaced by the proxy: Garrison sees the loopback
        # client (health details are shown to loopback callers only) and the https scheme.
        health = client.get("/api/health/ready", headers={"X-Forwarded-For": "203.0.113.9"})
        assert health.status_code == 200
        assert "checks" in health.json()
        assert health.headers["strict-transport-security"].startswith("max-age=")


def test_schema_change_and_logout_are_seen_at_once_by_the_other_instance(stack: Stack) -> None:
    ports = _active_ports(stack)
    assert len(ports) == 2
    name = f"notes{os.getpid()}"
    with _client(stack) as client:
        token = _login(client)
        auth = {"Authorization": f"Bearer {token}"}
        # Warm both instances' caches with the first definition.
        made = client.post(
            "/api/v1/collections",
            headers=auth,
            json={"name": name, "fields": [{"name": "title", "type": "text"}]},
        )
        assert made.status_code == 201, made.text
        for port in ports:
            with _direct(port) as direct:
                listed = direct.get(f"/api/v1/collections/{name}/records", headers=auth)
                assert listed.status_code == 200, listed.text
        changed = client.post(
            f"/api/v1/collections/{name}/changes",
            headers=auth,
            json={"kind": "add_field", "field": {"name": "score", "type": "number"}},
        )
        assert changed.status_code == 200, changed.text
        # Through the balancer, as many times as there are instances and more: every
        # instance knows the new field at once (no TTL wait).
        for _ in range(4):
            created = client.post(
                f"/api/v1/collections/{name}/records",
                headers=auth,
                json={"title": "t", "score": 3},
            )
            assert created.status_code == 201, created.text
        for port in ports:
            with _direct(port) as direct:
                created = direct.post(
                    f"/api/v1/collections/{name}/records",
                    headers=auth,
                    json={"title": "direct", "score": 4},
                )
                assert created.status_code == 201, (port, created.text)
        # Logout through the balancer: the token is refused by both instances.
        out = client.post("/api/v1/auth/logout", headers=auth, json={})
        assert out.status_code in (200, 204), out.text
        for port in ports:
            with _direct(port) as direct:
                me = direct.get("/api/v1/auth/me", headers=auth)
                assert me.status_code == 401, (port, me.text)


def test_contract_migration_is_refused_while_the_old_release_serves(
    stack: Stack, wheels: dict[str, Path]
) -> None:
    before = stack.state()
    result = stack.cli("deploy", "--env", "production", "--release", str(wheels["contract"]))
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "9999 is destructive" in line
    assert "nothing changed" in line
    assert stack.state()["active"] == before["active"]


def test_a_deploy_while_another_runs_is_refused(stack: Stack, wheels: dict[str, Path]) -> None:
    with (stack.env_dir / "deploy.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write("pid test")
        handle.flush()
        try:
            result = stack.cli("deploy", "--env", "production", "--release", str(wheels["good"]))
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    assert result.returncode == 1
    assert "in progress" in result.stderr


def test_release_that_is_never_ready_gets_no_traffic(stack: Stack, wheels: dict[str, Path]) -> None:
    before = stack.state()["active"]
    result = stack.cli("deploy", "--env", "production", "--release", str(wheels["never_ready"]))
    assert result.returncode == 1
    assert "given no traffic" in result.stderr
    assert stack.state()["active"] == before
    history = stack.cli("deploy", "history", "--env", "production", "--json")
    assert '"outcome": "failed"' in history.stdout


def test_release_failing_after_the_switch_is_rolled_back(
    stack: Stack, wheels: dict[str, Path]
) -> None:
    before = stack.state()["active"]
    stop = threading.Event()
    codes: list[int] = []

    def load() -> None:
        with _client(stack) as client:
            while not stop.is_set():
                try:
                    codes.append(client.get("/api/v1/collections").status_code)
                except httpx.HTTPError:
                    codes.append(0)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        result = stack.cli(
            "deploy", "--env", "production", "--release", str(wheels["fails_behind_proxy"])
        )
    finally:
        stop.set()
        thread.join(15)
    assert result.returncode == 1, result.stdout
    assert "rolled_back" in result.stdout
    assert "5xx rate" in result.stdout
    assert stack.state()["active"] == before
    assert 500 in codes  # the fault was real and was seen
    history = stack.cli("deploy", "history", "--env", "production")
    assert "rolled_back" in history.stdout
    assert "success" in history.stdout


def test_promotion_needs_a_staging_pass_and_a_second_admin_and_rollback_is_instant(
    stack: Stack,
) -> None:
    before = stack.state()["active"]
    release = stack.state()["colours"][before]["release"]
    refused = stack.cli("deploy", "promote", "--to", "production", "--release", release)
    assert refused.returncode == 1
    assert "has not passed staging" in refused.stderr
    # A staging pass as the ledger records it (staging's own stack is not started here).
    import asyncio

    from garrison.db import Database
    from garrison.ops.deploy import service as ledger
    from garrison.settings import DatabaseSettings

    async def staged() -> None:
        db = Database(stack.database_url, DatabaseSettings())
        try:
            async with db.transaction() as session:
                record = await ledger.start(
                    session,
                    environment="staging",
                    action="deploy",
                    release_id=release,
                    version="0.1.0",
                    colour="blue",
                    actor=ADMIN,
                )
                await ledger.finish(
                    session, record_id=record, outcome="success", reason=None, checks_passed=True
                )
        finally:
            await db.dispose()

    asyncio.run(staged())
    unapproved = stack.cli("deploy", "promote", "--to", "production", "--actor", ADMIN)
    assert unapproved.returncode == 1
    assert "needs 1 approval" in unapproved.stderr
    same = stack.cli("deploy", "approve", "--release", release, "--to", "production", "--by", ADMIN)
    assert same.returncode == 1
    assert "second admin" in same.stderr
    other = stack.cli(
        "deploy", "approve", "--release", release, "--to", "production", "--by", ADMIN2
    )
    assert other.returncode == 0, other.stderr
    promoted = stack.cli("deploy", "promote", "--to", "production", "--actor", ADMIN, "--json")
    assert promoted.returncode == 0, promoted.stderr
    after = stack.state()
    assert after["active"] != before
    assert after["colours"][after["active"]]["release"] == release
    status = stack.server_status()
    assert all(status[f"{after['active']}-{i}"].startswith("UP") for i in (1, 2)), status
    assert all(status[f"{before}-{i}"] == "MAINT" for i in (1, 2)), status
    # The previous colour still runs: rollback is one switch.
    back = stack.cli("deploy", "rollback", "--env", "production", "--json")
    assert back.returncode == 0, back.stderr
    assert stack.state()["active"] == before
    with _client(stack) as client:
        assert client.get("/api/health/ready").status_code == 200
    history = stack.cli("deploy", "history", "--env", "production")
    assert "promote" in history.stdout
    assert "rollback" in history.stdout


def test_sigkill_of_one_server_fails_over(stack: Stack) -> None:
    state = stack.state()
    active = state["active"]
    victim_key, victim = next(iter(state["colours"][active]["pids"].items()))
    server = f"{active}-1"
    os.killpg(victim, signal.SIGKILL)
    _poll(lambda: stack.server_status()[server].startswith("DOWN"), "HAProxy to mark it DOWN")
    with _client(stack) as client:
        for _ in range(10):
            assert client.get("/api/health/live").status_code == 200
    assert victim_key
