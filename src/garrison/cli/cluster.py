"""``garrison cluster up|down|status``: a Galera cluster behind HAProxy with GTID replicas,
as local processes (see docs/ha.md). The drills are in ``cli/drill_ha.py``."""

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
