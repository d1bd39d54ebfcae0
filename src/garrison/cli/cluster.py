"""``garrison cluster up|down|status`` and ``garrison drill failover``: a Galera cluster
behind HAProxy with GTID replicas, as local processes (see docs/ha.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from garrison.cli.common import fail
from garrison.ops.cluster.local import ENV_FILE, ClusterError, ClusterSpec, LocalCluster

app = typer.Typer(help="A local high-availability database cluster.", no_args_is_help=True)
drill_app = typer.Typer(help="Drills that prove the recovery promises.", no_args_is_help=True)

DirOption = Annotated[
    Path, typer.Option("--dir", help="where the cluster's processes keep their files")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document")]
_DEFAULT_DIR = Path("var/cluster")


def _console() -> Console:
    return Console(stderr=True)


@app.command("up")
def up(
    directory: DirOption = _DEFAULT_DIR,
    nodes: Annotated[int, typer.Option(min=1, max=9, help="Galera nodes")] = 3,
    arbitrator: Annotated[
        bool, typer.Option(help="add a Galera arbitrator (garbd) for quorum")
    ] = False,
    replicas: Annotated[int, typer.Option(min=0, max=9, help="asynchronous replicas")] = 1,
    app_host: Annotated[
        list[str] | None, typer.Option(help="address the application connects from")
    ] = None,
    tls: Annotated[
        bool, typer.Option(help="a private CA; the app user and replicas must use TLS")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start the cluster: Galera nodes, HAProxy (writer and reader), GTID replicas."""
    cluster = LocalCluster(directory)
    spec = ClusterSpec(
        nodes=nodes,
        arbitrator=arbitrator,
        replicas=replicas,
        app_hosts=app_host or ["127.0.0.1"],
        tls=tls,
    )
    console = _console()
    try:
        with console.status("starting the cluster") as status:
            cluster.up(spec, progress=lambda message: status.update(message))
    except ClusterError as exc:
        cluster.down()
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(cluster.status()))
        return
    console.print(f"cluster up in {cluster.base}")
    console.print(f"settings for Garrison (secrets inside, mode 600): {cluster.base / ENV_FILE}")
    console.print(f"  set -a; . {cluster.base / ENV_FILE}; set +a; garrison migrate up")


@app.command("down")
def down(directory: DirOption = _DEFAULT_DIR) -> None:
    """Stop every process of the cluster (the data stays; `up` starts a new one)."""
    cluster = LocalCluster(directory)
    if not cluster.procs:
        fail(f"no cluster in {directory}")
    cluster.down()
    typer.echo("cluster stopped")


@app.command("status")
def status(directory: DirOption = _DEFAULT_DIR, as_json: JsonOption = False) -> None:
    """Each member: running, Galera state and cluster size, HAProxy's view, replica lag."""
    cluster = LocalCluster(directory)
    if not cluster.procs:
        fail(f"no cluster in {directory}")
    report = cluster.status()
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table("member", "role", "port", "running", "state", "detail")
    for member in report["members"]:
        if member["role"] == "node":
            detail = f"size {member.get('cluster_size')}, HAProxy {member.get('haproxy')}"
            state = f"{member.get('state')} / {member.get('cluster_status')}"
        elif member["role"] == "replica":
            detail = f"IO {member.get('io')}, SQL {member.get('sql')}"
            state = f"lag {member.get('lag')} s"
        elif member["role"] == "haproxy":
            ports = member.get("ports", {})
            detail = f"writer :{ports.get('write')}, reader :{ports.get('read')}"
            state = ""
        else:
            detail = state = ""
        table.add_row(
            member["name"],
            member["role"],
            str(member["port"]),
            "yes" if member["running"] else "no",
            state,
            member.get("error", detail),
        )
    Console().print(table)


@drill_app.command("failover")
def failover(
    directory: DirOption = Path("var/drill-cluster"),
    duration: Annotated[float, typer.Option(min=10, help="seconds of load")] = 30.0,
    kill_after: Annotated[float, typer.Option(min=1, help="seconds before the kill")] = 8.0,
    writers: Annotated[int, typer.Option(min=1, max=64)] = 4,
    readers: Annotated[int, typer.Option(min=0, max=64)] = 4,
    nodes: Annotated[int, typer.Option(min=2, max=9)] = 3,
    kill_replica: Annotated[
        bool, typer.Option(help="also kill a replica a third of the way in")
    ] = True,
    keep: Annotated[bool, typer.Option(help="leave the cluster running afterwards")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a cluster, load Garrison, SIGKILL the active writer: print the figures."""
    from garrison.ops.cluster.drill import run_failover

    cluster = LocalCluster(directory)
    console = _console()
    try:
        if cluster.procs:
            cluster.destroy()
            cluster = LocalCluster(directory)
        with console.status("starting the cluster") as progress:
            cluster.up(
                ClusterSpec(nodes=nodes, replicas=1),
                progress=lambda message: progress.update(message),
            )
        report = run_failover(
            cluster,
            duration=duration,
            kill_after=kill_after,
            writers=writers,
            readers=readers,
            kill_replica=kill_replica,
            progress=lambda message: console.print(message),
        )
    except ClusterError as exc:
        cluster.down()
        fail(str(exc))
    finally:
        if not keep:
            cluster.down()
    figures = report.as_dict()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    table = Table("figure", "value")
    for name, value in figures.items():
        table.add_row(name, json.dumps(value) if isinstance(value, dict) else str(value))
    Console().print(table)


@drill_app.command("redis")
def redis_failover(
    directory: DirOption = Path("var/drill-redis"),
    duration: Annotated[float, typer.Option(min=10, help="seconds of load")] = 25.0,
    kill_after: Annotated[float, typer.Option(min=1, help="seconds before the kill")] = 5.0,
    as_json: JsonOption = False,
) -> None:
    """Redis master, replica and Sentinel; Garrison under load; SIGKILL the master."""
    from garrison.ops.cluster.drill import run_redis_failover

    console = _console()
    try:
        report = run_redis_failover(
            directory.resolve(),
            duration=duration,
            kill_after=kill_after,
            progress=lambda message: console.print(message),
        )
    except ClusterError as exc:
        fail(str(exc))
    figures = report.as_dict()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    table = Table("figure", "value")
    for name, value in figures.items():
        table.add_row(name, json.dumps(value) if isinstance(value, dict) else str(value))
    Console().print(table)
