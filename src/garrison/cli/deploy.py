"""``garrison deploy``: blue-green deploys behind HAProxy, rollback, history, staged
promotion. A thin layer over ``garrison.ops.deploy``; every refusal is one line, exit 1
(2 for a bad config or usage)."""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from garrison.cli.common import EXIT_CONFIG, fail, run_db, settings_or_exit
from garrison.db.engine import Database
from garrison.ops.deploy import releases
from garrison.ops.deploy import service as ledger
from garrison.ops.deploy.config import DeployConfig, DeployConfigError, load_config
from garrison.ops.deploy.engine import Deployer, DeployError, Outcome, deploy_lock
from garrison.ops.deploy.haproxy import RuntimeApiError
from garrison.ops.deploy.init import init as init_directory
from garrison.ops.deploy.releases import Release, ReleaseError
from garrison.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    help="Blue-green deploys behind HAProxy: deploy, status, rollback, history, promote.",
    invoke_without_command=True,
)
console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Deploy config (default GARRISON_DEPLOY__CONFIG).")
]
EnvOpt = Annotated[str | None, typer.Option("--env", help="Environment in the deploy config.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who deploys (default: the login name).")
]


def _config(settings: Settings, path: Path | None) -> DeployConfig:
    try:
        return load_config(path or settings.deploy.config)
    except DeployConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


def _environment(config: DeployConfig, name: str | None) -> str:
    if name is None:
        if len(config.environments) == 1:
            return next(iter(config.environments))
        fail(f"--env is required (known: {', '.join(sorted(config.environments))})", 2)
    try:
        config.environment(name)
    except DeployConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    return name


_BEGUN = time.monotonic()


def _say(line: str) -> None:
    elapsed = time.monotonic() - _BEGUN
    console.print(f"[bold]deploy[/bold] {elapsed:6.1f}s  {line}", highlight=False)


def _print(data: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        typer.echo(text)


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.db_url, settings.db)
    try:
        return await work(db)
    finally:
        await db.dispose()


async def _deploy(
    settings: Settings,
    deployer: Deployer,
    wheel: Path,
    actor: str,
    action: str,
) -> Outcome:
    async def work(db: Database) -> Outcome:
        record: list[int] = []

        async def started(release: Release, colour: str) -> None:
            async with db.transaction() as session:
                record.append(
                    await ledger.start(
                        session,
                        environment=deployer.name,
                        action=action,
                        release_id=release.id,
                        version=release.version,
                        colour=colour,
                        actor=actor,
                    )
                )

        try:
            outcome = await deployer.deploy(wheel, started=started)
        except (DeployError, RuntimeApiError, ReleaseError) as exc:
            if record:
                async with db.transaction() as session:
                    await ledger.finish(
                        session,
                        record_id=record[0],
                        outcome="failed",
                        reason=str(exc),
                        checks_passed=False,
                    )
            raise
        async with db.transaction() as session:
            await ledger.finish(
                session,
                record_id=record[0],
                outcome=outcome.outcome,
                reason=outcome.reason,
                checks_passed=outcome.checks_passed,
            )
        return outcome

    return await _with_db(settings, work)


def _run_deploy(
    settings: Settings,
    config: DeployConfig,
    name: str,
    wheel: Path,
    actor: str,
    action: str,
    as_json: bool,
) -> None:
    deployer = Deployer(config, name, say=_say)
    try:
        with deploy_lock(config.env_dir(name), name):
            outcome = run_db(_deploy(settings, deployer, wheel, actor, action))
    except (DeployError, RuntimeApiError, ReleaseError, DeployConfigError) as exc:
        fail(str(exc))
    data = outcome.__dict__
    if outcome.outcome == "success":
        _print(data, as_json, f"{name}: {outcome.release} serves as {outcome.colour}")
        return
    _print(data, as_json, f"{name}: {outcome.release} {outcome.outcome}: {outcome.reason}")
    raise typer.Exit(1)


@app.callback()
def deploy(
    ctx: typer.Context,
    env: EnvOpt = None,
    release: Annotated[
        Path | None, typer.Option("--release", help="The wheel to deploy (garrison-*.whl).")
    ] = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a release blue-green: `garrison deploy --env staging --release dist/X.whl`."""
    if ctx.invoked_subcommand is not None:
        return
    if release is None:
        fail("--release WHEEL is required (build it with `pip wheel --no-deps -w dist .`)", 2)
    settings = settings_or_exit()
    loaded = _config(settings, config)
    name = _environment(loaded, env)
    _run_deploy(settings, loaded, name, release, actor or getpass.getuser(), "deploy", as_json)


@app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the front end's files.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render HAProxy's config per environment (and a starter deploy.toml, a local cert)."""
    try:
        path, rendered = init_directory(directory, config_path=config)
    except DeployConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    data = {"config": str(path), "environments": [r.__dict__ for r in rendered]}
    lines = [f"deploy config: {path}"]
    for r in rendered:
        lines.append(
            f"{r.environment}: haproxy -f {r.haproxy_config}  (admin socket {r.admin_socket})"
        )
    _print(data, as_json, "\n".join(lines))


@app.command("status")
def status(env: EnvOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Which colour serves, which release each runs, HAProxy's view of each server."""
    settings = settings_or_exit()
    loaded = _config(settings, config)
    name = _environment(loaded, env)
    data = asyncio.run(Deployer(loaded, name).status())
    lines = [f"{name}: active {data['active'] or '-'}"]
    for colour, info in data["colours"].items():
        servers = ", ".join(
            f"{s['server']} {s['address']} {s['haproxy'] or '?'}{'' if s['pid'] else ' (stopped)'}"
            for s in info["servers"]
        )
        lines.append(f"  {colour}: {info['release'] or '-'}  {servers}")
    if data["haproxy_error"]:
        lines.append(f"  haproxy: {data['haproxy_error']}")
    _print(data, as_json, "\n".join(lines))


async def _rollback(settings: Settings, deployer: Deployer, actor: str) -> Outcome:
    outcome = await deployer.rollback()

    async def work(db: Database) -> None:
        async with db.transaction() as session:
            record = await ledger.start(
                session,
                environment=deployer.name,
                action="rollback",
                release_id=outcome.release,
                version=outcome.version,
                colour=outcome.colour,
                actor=actor,
            )
            await ledger.finish(
                session, record_id=record, outcome="success", reason="manual", checks_passed=False
            )

    await _with_db(settings, work)
    return outcome


@app.command("rollback")
def rollback(
    env: EnvOpt = None, config: ConfigOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False
) -> None:
    """Switch back to the standby colour at once (it still runs the previous release)."""
    settings = settings_or_exit()
    loaded = _config(settings, config)
    name = _environment(loaded, env)
    deployer = Deployer(loaded, name, say=_say)
    try:
        with deploy_lock(loaded.env_dir(name), name):
            outcome = run_db(_rollback(settings, deployer, actor or getpass.getuser()))
    except (DeployError, RuntimeApiError) as exc:
        fail(str(exc))
    _print(
        outcome.__dict__, as_json, f"{name}: rolled back to {outcome.release} ({outcome.colour})"
    )


@app.command("history")
def history(
    env: EnvOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Who deployed which release where and when, and how it ended (newest first)."""
    settings = settings_or_exit()

    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.read_session() as session:
            rows = await ledger.history(session, environment=env, limit=limit)
        return [
            {
                "id": r.id,
                "environment": r.environment,
                "action": r.action,
                "release": r.release_id,
                "version": r.version,
                "colour": r.colour,
                "actor": r.actor,
                "outcome": r.outcome,
                "reason": r.reason,
                "checks_passed": r.checks_passed,
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            }
            for r in rows
        ]

    rows = run_db(_with_db(settings, work))
    text = "\n".join(
        f"{r['started_at'][:19]}  {r['environment']:<10} {r['action']:<8} {r['release']:<22} "
        f"{r['outcome']:<11} {r['actor']}{'  ' + r['reason'] if r['reason'] else ''}"
        for r in rows
    )
    _print({"history": rows}, as_json, text or "no deploys yet")


def _staging_of(config: DeployConfig, target: str) -> str:
    staging = config.environment(target).requires_staging
    if staging is None:
        fail(f"{target} has no requires_staging in the deploy config; deploy it directly")
    return staging


@app.command("approve")
def approve(
    release: Annotated[str, typer.Option("--release", help="Release id (deploy history).")],
    to: Annotated[str, typer.Option("--to", help="The environment it may be promoted to.")],
    by: Annotated[str, typer.Option("--by", help="The approving admin's e-mail.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a second admin's approval to promote a release that passed staging."""
    settings = settings_or_exit()
    loaded = _config(settings, config)
    staging = _staging_of(loaded, _environment(loaded, to))

    async def work(db: Database) -> dict[str, Any]:
        async with db.transaction() as session:
            staged = await ledger.require_passed(session, environment=staging, release_id=release)
            approval = await ledger.approve(
                session,
                release_id=release,
                environment=to,
                approver_email=by,
                staged_by=staged.actor,
            )
            return {"release": release, "environment": to, "approver": approval.approver_email}

    try:
        data = run_db(_with_db(settings, work))
    except ledger.ApprovalRefused as exc:
        fail(f"{exc}; nothing changed")
    _print(data, as_json, f"{release}: approved for {to} by {data['approver']}")


@app.command("promote")
def promote(
    to: Annotated[str, typer.Option("--to", help="The environment to promote to.")],
    release: Annotated[
        str | None, typer.Option("--release", help="Release id (default: staging's latest).")
    ] = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy to `--to` the very wheel that passed staging, once a second admin approved."""
    settings = settings_or_exit()
    loaded = _config(settings, config)
    target = _environment(loaded, to)
    staging = _staging_of(loaded, target)
    who = actor or getpass.getuser()

    async def check(db: Database) -> str:
        async with db.read_session() as session:
            rid = release
            if rid is None:
                rows = await ledger.history(session, environment=staging, limit=50)
                good = [r for r in rows if r.outcome == "success" and r.checks_passed]
                if not good:
                    raise ledger.ApprovalRefused(f"no release has passed {staging} yet")
                rid = good[0].release_id
            staged = await ledger.require_passed(session, environment=staging, release_id=rid)
            found = await ledger.approvals(session, release_id=rid, environment=target)
            others = {
                a.approver_email
                for a in found
                if a.approver_email.lower() not in (who.lower(), staged.actor.lower())
            }
            needed = max(loaded.environment(target).approvals, 1)
            if len(others) < needed:
                raise ledger.ApprovalRefused(
                    f"{rid} needs {needed} approval(s) for {target} by an admin other than "
                    f"{staged.actor} (`garrison deploy approve`); it has {len(others)}"
                )
            return rid

    try:
        rid = run_db(_with_db(settings, check))
        wheel = releases.find(loaded.releases_dir(), rid).wheel
    except (ledger.ApprovalRefused, ReleaseError) as exc:
        fail(f"{exc}; nothing changed")
    _run_deploy(settings, loaded, target, wheel, who, "promote", as_json)
