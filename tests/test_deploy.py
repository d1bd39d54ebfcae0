"""The deploy domain's parts without a running stack: the config and its refusals, the
expand/contract rule, the rendered HAProxy config, secrets from files, the watch window's
judge, releases, the ledger (SQLite and MariaDB), and the shipped CI workflow."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from garrison.cli import app as cli_app
from garrison.db import Database
from garrison.db.migrate import script_directory
from garrison.events import Actor
from garrison.ops.deploy import releases
from garrison.ops.deploy import service as ledger
from garrison.ops.deploy.config import DeployConfigError, load_config
from garrison.ops.deploy.haproxy import render
from garrison.ops.deploy.init import init
from garrison.ops.deploy.migrations import IncompatibleMigration, Step, check_compatible
from garrison.ops.deploy.watch import Judge, Sample, histogram, quantile
from garrison.settings import ConfigError, Settings
from tests import services
from tests.authkit import auth_app, bearer
from tests.conftest import migrated
from tests.helpers import assert_problem

REPO = Path(__file__).resolve().parents[1]
GOOD = "Zq8mW3nR6tY1uI4oP7aS0dF2gH5jK9lX"

CONFIG = """
[environments.production]
hosts = ["127.0.0.1"]
blue_ports = [18101, 18102]
green_ports = [18201, 18202]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(text)
    return path


# -- the config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (CONFIG.replace('"127.0.0.1"', '"no-such-host.invalid"'), "unknown host"),
        (CONFIG.replace("18202", "18101"), "listed twice"),
        (CONFIG.replace("18202", "70000"), "out of range"),
        (CONFIG.replace("18201, 18202", "18201"), "as many ports"),
        (CONFIG + "\nsurprise = 1\n", "surprise"),
        ("[environments.production]\nhosts = [1]", "hosts.0"),
        ("not toml [", "deploy.toml"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(DeployConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_environment_is_refused(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONFIG))
    with pytest.raises(DeployConfigError, match="unknown environment 'prod'"):
        config.environment("prod")


def test_cli_refuses_bad_config_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG.replace("18202", "18101"))
    result = subprocess.run(
        [sys.executable, "-m", "garrison", "deploy", "status", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "GARRISON_DATA_DIR": str(tmp_path / "var")},
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "listed twice" in result.stderr
    assert "Traceback" not in result.stderr


# -- expand / contract -----------------------------------------------------------------------


def test_every_revision_declares_whether_it_is_destructive() -> None:
    for script in script_directory().walk_revisions():
        module: Any = script.module
        assert isinstance(getattr(module, "destructive", None), bool), script.revision
        if module.destructive:
            assert isinstance(getattr(module, "safe_after", None), str), script.revision


EXPAND = Step("0100", destructive=False, safe_after=None, doc="add a column")
CONTRACT = Step("0101", destructive=True, safe_after="1.4.0", doc="drop the old column")


def test_expand_steps_run_while_any_release_serves() -> None:
    check_compatible([EXPAND], serving="0.1.0")
    check_compatible([EXPAND, CONTRACT], serving=None)  # nothing serves: no old code


@pytest.mark.parametrize("serving", ["1.3.9", "0.9.0", "1.4.0rc1"])
def test_contract_refused_while_an_older_release_serves(serving: str) -> None:
    with pytest.raises(IncompatibleMigration, match="0101 is destructive"):
        check_compatible([EXPAND, CONTRACT], serving=serving)


@pytest.mark.parametrize("serving", ["1.4.0", "1.10.2", "2.0.0"])
def test_contract_allowed_once_the_serving_release_no_longer_needs_it(serving: str) -> None:
    check_compatible([CONTRACT], serving=serving)


def test_contract_without_safe_after_is_never_run_under_a_serving_release() -> None:
    step = Step("0102", destructive=True, safe_after=None, doc="")
    with pytest.raises(IncompatibleMigration, match="no release"):
        check_compatible([step], serving="99.0")


# -- the rendered front end ------------------------------------------------------------------


def test_long_admin_socket_path_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 90)
    with pytest.raises(DeployConfigError, match="admin_socket"):
        init(deep)


def test_init_renders_a_valid_haproxy_config() -> None:
    short = Path(tempfile.mkdtemp(prefix="gd-"))  # HAProxy caps a socket path at 97
    try:
        _check_rendered(short)
    finally:
        shutil.rmtree(short)


def _check_rendered(directory: Path) -> None:
    path, rendered = init(directory / "front")
    assert path.exists()
    assert {r.environment for r in rendered} == {"staging", "production"}
    production = next(r for r in rendered if r.environment == "production")
    text = production.haproxy_config.read_text()
    for needle in (
        "ssl-min-ver TLSv1.2",
        "alpn h2,http/1.1",
        "includeSubDomains",
        "uri /api/health/ready",
        "slowstart",
        "level admin",
        "http-request del-header X-Forwarded-For",
        "server green-1 127.0.0.1:8201 check weight 100 disabled",
        "server blue-2 127.0.0.1:8102 check weight 100\n",
    ):
        assert needle in text, needle
    assert production.certificate.stat().st_mode & 0o077 == 0  # the key is private
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        services.unavailable("HAProxy", "the haproxy command is not installed")
    assert haproxy is not None
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(production.haproxy_config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture
def short_path() -> Iterator[Path]:
    """A directory whose socket paths stay under HAProxy's cap of 97 characters (pytest's
    own temporary paths grow past it under pytest-xdist)."""
    short = Path(tempfile.mkdtemp(prefix="gd-"))
    yield short
    shutil.rmtree(short)


def test_render_starts_the_active_colour_enabled(short_path: Path) -> None:
    config = load_config(write(short_path, CONFIG))
    text = render(config, "production", active="green")
    assert "server green-1 127.0.0.1:18201 check weight 100\n" in text
    assert "server blue-1 127.0.0.1:18101 check weight 100 disabled" in text


# -- secrets from files ----------------------------------------------------------------------


def test_secret_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_text(GOOD + "\n")
    monkeypatch.setenv("GARRISON_SECRET_KEY_FILE", str(tmp_path / "key"))
    settings = Settings(_env_file=None)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == GOOD


def test_every_secret_has_a_file_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("m" * 16 + "T0k3n-metrics-XYZabc")
    (tmp_path / "smtp").write_text("smtp-pass")
    monkeypatch.setenv("GARRISON_METRICS__TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("GARRISON_SMTP__PASSWORD_FILE", str(tmp_path / "smtp"))
    settings = Settings(_env_file=None)
    assert settings.metrics.token is not None
    assert settings.metrics.token.get_secret_value().endswith("XYZabc")
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "smtp-pass"


def test_previous_secret_keys_and_redis_timeout_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = ["o" * 32 + "1", "p" * 32 + "2"]
    (tmp_path / "previous").write_text(json.dumps(older) + "\n")  # a JSON list, as the variable
    (tmp_path / "timeout").write_text("2.5\n")
    monkeypatch.setenv("GARRISON_PREVIOUS_SECRET_KEYS_FILE", str(tmp_path / "previous"))
    monkeypatch.setenv("GARRISON_REDIS_TIMEOUT_FILE", str(tmp_path / "timeout"))
    settings = Settings(_env_file=None)
    assert [key.get_secret_value() for key in settings.previous_secret_keys] == older
    assert settings.redis_timeout == 2.5
    assert older[0] not in str(settings.redacted())


def test_secrets_directory_and_prod_db_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "secret_key").write_text(GOOD)
    (secrets / "PROD_DB_PASSWORD").write_text("db-Pa55word-real\n")
    (secrets / "..data").mkdir()  # Kubernetes' own entries are skipped
    monkeypatch.setenv("GARRISON_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("GARRISON_ENV", "production")
    monkeypatch.setenv("GARRISON_REDIS_URL", "redis://127.0.0.1:6379/0")
    for name, value in {"HOST": "db", "NAME": "g", "USERNAME": "u"}.items():
        monkeypatch.setenv(f"PROD_DB_{name}", value)
    settings = Settings(_env_file=None)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == GOOD
    assert "db-Pa55word-real" in settings.db_url
    assert "db-Pa55word-real" not in str(settings.redacted())


def test_variable_set_directly_wins_over_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("f" * 40)
    monkeypatch.setenv("GARRISON_SECRET_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("GARRISON_SECRET_KEY", GOOD)
    settings = Settings(_env_file=None)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == GOOD


def test_missing_secret_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GARRISON_SECRET_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError) as caught:
        Settings(_env_file=None)
    assert caught.value.variable == "GARRISON_SECRET_KEY_FILE"


# -- the watch window ------------------------------------------------------------------------

_BUCKET = "garrison_http_request_duration_seconds_bucket"
_API = 'method="GET",route="/api/v1/x",status="200"'
_HEALTH = 'method="GET",route="/api/health/ready",status="200"'
SCRAPE = "".join(
    f'{_BUCKET}{{{labels},le="{le}"}} {value}\n'
    for labels, le, value in (
        (_API, "0.05", "A"),
        (_API, "0.5", "B"),
        (_API, "+Inf", "B"),
        (_HEALTH, "0.05", "1000"),
        (_HEALTH, "+Inf", "1000"),
    )
)


def scrape(a: int, b: int) -> str:
    return SCRAPE.replace(" A\n", f" {a}\n").replace(" B\n", f" {b}\n")


def test_histogram_leaves_health_checks_out_and_gives_the_p95() -> None:
    before = histogram(scrape(10, 10))
    after = histogram(scrape(100, 110))
    assert after[float("inf")] == 110
    assert quantile(before, after, 0.50) == 0.05
    assert quantile(before, after, 0.95) == 0.5
    assert quantile(after, after, 0.95) is None


def test_judge_flags_a_5xx_rate_and_a_slow_p95_but_not_a_quiet_window() -> None:
    judge = Judge(window=5, max_5xx_ratio=0.01, min_requests=20, max_p95_ms=100)
    assert judge.add(Sample(0, 0, 0, None)) is None
    assert judge.add(Sample(1, 10, 5, None)) is None  # too few requests to judge
    problem = judge.add(Sample(2, 100, 5, None))
    assert problem is not None
    assert "5xx rate" in problem
    slow = Judge(window=5, max_5xx_ratio=0.01, min_requests=20, max_p95_ms=100)
    slow.add(Sample(0, 0, 0, histogram(scrape(0, 0))))
    flagged = slow.add(Sample(1, 100, 0, histogram(scrape(10, 100))))
    assert flagged is not None
    assert "p95" in flagged
    fine = Judge(window=5, max_5xx_ratio=0.01, min_requests=20, max_p95_ms=100)
    fine.add(Sample(0, 0, 0, histogram(scrape(0, 0))))
    assert fine.add(Sample(1, 100, 0, histogram(scrape(100, 100)))) is None


# -- releases --------------------------------------------------------------------------------


def test_release_id_and_pruning_keep_what_is_in_use(tmp_path: Path) -> None:
    with pytest.raises(releases.ReleaseError, match="not a Garrison wheel"):
        releases.release_id(tmp_path / "other-1.0-py3-none-any.whl")
    root = tmp_path / "releases"
    for index in range(5):
        directory = root / f"0.1.{index}-abc"
        directory.mkdir(parents=True)
        (directory / releases.MANIFEST).write_text(
            f'{{"id": "0.1.{index}-abc", "version": "0.1.{index}"}}'
        )
        stamp = 1_000_000 + index
        import os

        os.utime(directory / releases.MANIFEST, (stamp, stamp))
    removed = releases.prune(root, keep=2, protect={"0.1.0-abc"})
    assert sorted(removed) == ["0.1.1-abc", "0.1.2-abc"]
    assert [r.id for r in releases.installed(root)] == ["0.1.4-abc", "0.1.3-abc", "0.1.0-abc"]


def test_stop_waits_for_every_process_of_the_group(tmp_path: Path) -> None:
    """A release is stopped when its whole process group is gone, not only its leader: a
    server's worker that exits after the leader still holds the port the next release
    starts on (a standby restart met "port in use")."""
    from garrison.ops.deploy import procs

    marker = tmp_path / "worker-ready"
    worker = (
        "import pathlib, signal, sys, time\n"
        "def bye(*_):\n"
        "    time.sleep(0.5)  # a worker finishing its in-flight work\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        "signal.pause()\n"
    )
    leader = (
        "import subprocess, sys, signal\n"
        f"subprocess.Popen([sys.executable, '-c', {worker!r}, 'garrison-worker'])\n"
        "signal.pause()\n"
    )
    group = subprocess.Popen(
        [sys.executable, "-c", leader, "garrison-leader"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():  # the worker has installed its handler
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.01)  # bounded poll of a condition
        procs.stop(group.pid, grace=30)
        assert not procs._group_alive(group.pid)
        assert group.poll() is not None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group.pid, signal.SIGKILL)


# -- the ledger (SQLite and MariaDB) ---------------------------------------------------------


async def test_ledger_history_and_approvals(settings: Settings) -> None:
    from garrison.auth import users

    await migrated(settings)
    db = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            for email, roles in (("a@example.com", ["admin"]), ("u@example.com", ["user"])):
                await users.create_user(
                    session, email=email, password_hash="x", roles=roles, actor=Actor.system()
                )
            record = await ledger.start(
                session,
                environment="staging",
                action="deploy",
                release_id="0.1.0-abc",
                version="0.1.0",
                colour="blue",
                actor="ci@example.com",
            )
            assert (
                await ledger.passed(session, environment="staging", release_id="0.1.0-abc") is None
            )
            await ledger.finish(
                session, record_id=record, outcome="success", reason=None, checks_passed=True
            )
        async with db.transaction() as session:
            staged = await ledger.passed(session, environment="staging", release_id="0.1.0-abc")
            assert staged is not None
            with pytest.raises(ledger.ApprovalRefused, match="not an admin"):
                await ledger.approve(
                    session,
                    release_id="0.1.0-abc",
                    environment="production",
                    approver_email="u@example.com",
                    staged_by=staged.actor,
                )
            with pytest.raises(ledger.ApprovalRefused, match="second admin"):
                await ledger.approve(
                    session,
                    release_id="0.1.0-abc",
                    environment="production",
                    approver_email="a@example.com",
                    staged_by="a@example.com",
                )
            await ledger.approve(
                session,
                release_id="0.1.0-abc",
                environment="production",
                approver_email="A@example.com",
                staged_by=staged.actor,
            )
        async with db.read_session() as session:
            found = await ledger.approvals(
                session, release_id="0.1.0-abc", environment="production"
            )
            assert [a.approver_email for a in found] == ["a@example.com"]
            rows = await ledger.history(session, environment="staging")
            assert [(r.outcome, r.checks_passed) for r in rows] == [("success", True)]
    finally:
        await db.dispose()


async def _passed_staging(session: Any, release: str, *, actor: str) -> int:
    """A deploy of ``release`` to staging whose post-deploy checks passed, as the ledger
    records it; its id."""
    record = await ledger.start(
        session,
        environment="staging",
        action="deploy",
        release_id=release,
        version=release.split("-", 1)[0],
        colour="blue",
        actor=actor,
    )
    await ledger.finish(
        session, record_id=record, outcome="success", reason=None, checks_passed=True
    )
    return record


async def test_approval_api_records_the_signed_in_admin_and_refuses_the_one_who_staged(
    settings: Settings,
) -> None:
    """``POST /api/v1/deploys/approvals`` approves as the signed-in admin: the admin who
    deployed to staging is refused (409, nothing recorded), a second admin is recorded once,
    a user without ``deploys:manage`` gets 403, a release that did not pass staging 409, a
    malformed body 422 naming the field; ``GET /api/v1/deploys`` lists the history."""
    async with auth_app(settings) as api:
        stager, second = await api.user(role="admin"), await api.user(role="admin")
        release = f"0.2.0-{uuid.uuid4().hex[:8]}"  # the MariaDB database is shared
        async with api.runtime.db.transaction() as session:
            record = await _passed_staging(session, release, actor=stager)
        url = "/api/v1/deploys/approvals"
        body = {"release_id": release, "environment": "production"}
        staged = bearer((await api.login(stager))["access_token"])
        other = bearer((await api.login(second))["access_token"])
        user = bearer(await api.token(role="user"))

        assert_problem(await api.client.post(url, json=body), 401)
        assert_problem(await api.client.post(url, json=body, headers=user), 403)
        refused = assert_problem(await api.client.post(url, json=body, headers=staged), 409)
        assert "second admin" in str(refused["detail"])
        unknown = {**body, "release_id": "9.9.9-nope"}
        assert_problem(await api.client.post(url, json=unknown, headers=other), 409)
        for bad in ({**body, "release_id": "../x"}, {**body, "extra": 1}, {"environment": "p"}):
            assert_problem(await api.client.post(url, json=bad, headers=other), 422)
        async with api.runtime.db.read_session() as session:
            assert not await ledger.approvals(session, release_id=release, environment="production")

        for _ in range(2):  # approving twice records one approval
            made = await api.client.post(url, json=body, headers=other)
            assert made.status_code == 201, made.text
            assert made.json()["approver_email"] == second
        async with api.runtime.db.read_session() as session:
            found = await ledger.approvals(session, release_id=release, environment="production")
        assert [a.approver_email for a in found] == [second]

        listed = await api.client.get("/api/v1/deploys?environment=staging", headers=other)
        assert listed.status_code == 200, listed.text
        rows = [r for r in listed.json()["items"] if r["id"] == record]
        assert [(r["release_id"], r["outcome"], r["checks_passed"]) for r in rows] == [
            (release, "success", True)
        ]
        assert_problem(await api.client.get("/api/v1/deploys", headers=user), 403)
        assert_problem(await api.client.get("/api/v1/deploys?limit=0", headers=other), 422)


async def test_cli_with_another_installations_secret_is_one_line_and_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """An operator's shell whose secret is not the installation's cannot open the admins'
    audit keys: ``garrison deploy approve`` says so in one line naming the setting, exit 1,
    and records no approval (it does not seal the entry under a new key)."""
    from garrison.auth import users

    await migrated(settings)
    db = Database(settings.db_url, settings.db)
    release = f"0.3.0-{uuid.uuid4().hex[:8]}"
    second = f"second-{uuid.uuid4().hex[:8]}@example.com"
    try:
        async with db.transaction() as session:
            await users.create_user(
                session, email=second, password_hash="x", roles=["admin"], actor=Actor.system()
            )
            await _passed_staging(session, release, actor="first@example.com")
        config = write(
            tmp_path,
            CONFIG
            + '\nrequires_staging = "staging"\n\n[environments.staging]\nhosts = ["127.0.0.1"]'
            + "\nblue_ports = [18301]\ngreen_ports = [18302]\n",
        )
        result = subprocess.run(
            [sys.executable, "-m", "garrison", "deploy", "approve", "--release", release,
             "--to", "production", "--by", second, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                "PATH": "/usr/bin:/bin",
                "GARRISON_DATA_DIR": str(tmp_path / "operator"),
                "GARRISON_DATABASE_URL": settings.db_url,
                "GARRISON_SECRET_KEY": "not-the-installations-secret-0123456789abcdef",
                "GARRISON_LOG__LEVEL": "error",
            },
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("garrison: error")]
        assert "GARRISON_PREVIOUS_SECRET_KEYS" in line
        async with db.read_session() as session:
            assert not await ledger.approvals(session, release_id=release, environment="production")
    finally:
        await db.dispose()


# -- project hygiene -------------------------------------------------------------------------


def _commands(workflow: dict[str, Any]) -> list[str]:
    found = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                if line.strip():
                    found.append(line.strip())
    return found


def test_ci_workflow_is_valid_and_every_command_exists() -> None:
    path = REPO / ".github" / "workflows" / "deploy.yml"
    workflow = yaml.safe_load(path.read_text())
    assert set(workflow["jobs"]) >= {"test", "build", "staging", "production"}
    assert workflow["jobs"]["production"]["environment"] == "production"
    assert workflow["jobs"]["production"]["needs"] == "staging"
    make_targets = set(re.findall(r"^([a-z]+):", (REPO / "Makefile").read_text(), re.M))
    root = get_command(cli_app)
    checked = 0
    for line in _commands(workflow):
        words = shlex.split(line.replace("$(", "").replace("${{", "").replace("}}", ""))
        for index, word in enumerate(words):
            if word == "garrison":
                command: Any = root
                options: set[str] = set()
                for part in words[index + 1 :]:
                    if part.startswith("-") or not hasattr(command, "commands"):
                        break
                    assert part in command.commands, line
                    command = command.commands[part]
                    options = {o for p in command.params for o in getattr(p, "opts", [])}
                for option in (w for w in words[index + 1 :] if w.startswith("--")):
                    assert option in options, (line, option)
                checked += 1
            elif word == "make":
                assert words[index + 1] in make_targets, line
        if words[0] not in ("garrison", "make", "python", "sudo") and "=" not in words[0]:
            assert shutil.which(words[0]), line
    assert checked >= 5


def test_infrastructure_issue_template_and_runbooks() -> None:
    template = yaml.safe_load((REPO / ".github/ISSUE_TEMPLATE/infrastructure.yml").read_text())
    assert "infrastructure" in template["labels"]
    for runbook in ("docs/deploy.md", "docs/runbooks/rollback.md", "docs/runbooks/failover.md"):
        assert (REPO / runbook).exists(), runbook


def test_template_ships_inside_the_package_source() -> None:
    module = importlib.import_module("garrison.ops.deploy.haproxy")
    assert module.template_path().exists()
