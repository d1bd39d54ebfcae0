"""``garrison drill failover`` and ``garrison drill redis``: kill the active database
writer (or the Redis master) under load and print the figures (see docs/ha.md).

The functions are registered on the shared ``drill`` group by ``register``, so other
drills (``garrison drill pitr``) live in their own module on the same group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from garrison.cli.cluster import DirOption, JsonOption
from garrison.cli.common import fail
from garrison.ops.cluster.local import ClusterError, ClusterSpec, LocalCluster


def _console() -> Console:
    return Console(stderr=True)


def register(group: typer.Typer) -> typer.Typer:
    """Add ``failover`` and ``redis`` to the ``drill`` group; returns the group."""
    group.command("failover")(failover)
    group.command("redis")(redis)
    return group


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


def redis(
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
